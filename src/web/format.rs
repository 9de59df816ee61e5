//! How dates and times read on every page.

use time::OffsetDateTime;
use time::macros::format_description;

/// "22 Nov 2026"
pub fn date(at: OffsetDateTime) -> String {
    at.format(format_description!("[day] [month repr:short] [year]"))
        .unwrap_or_default()
}

/// "22 Nov 2026, 23:18:04 UTC"
pub fn date_time(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[day] [month repr:short] [year], [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_default()
}
