//! The page frame every portal page shares: Layout, render, dates, error page, confirm page, pager.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;
use time::macros::format_description;
use tower_sessions::Session;

use super::assets::{CSS_PATH, JS_PATH};
use super::session;
use super::tenants::TenantNav;
use crate::db::users::User;
use crate::error::{AppError, AppResult, ErrorReport};

/// What every page's frame needs: who is signed in, the CSRF token for its forms, a flash message.
pub struct Layout {
    pub user_name: Option<String>,
    pub user_email: Option<String>,
    pub csrf_token: String,
    pub flash: Option<String>,
    /// The zone the page's times are in, named in the footer (signed-in pages only).
    pub time_zone: Option<String>,
    pub css: &'static str,
    pub js: &'static str,
}

impl Layout {
    pub async fn build(
        session: &Session,
        user: Option<&User>,
        with_token: bool,
    ) -> AppResult<Self> {
        let flash = session::take_flash(session).await?;
        Ok(Self {
            user_name: user.map(|user| user.display_name.clone()),
            user_email: user.map(|user| user.email.clone()),
            csrf_token: if with_token {
                session::csrf_token(session).await?
            } else {
                String::new()
            },
            flash,
            time_zone: user.map(|user| user.time_zone.clone()),
            css: CSS_PATH.as_str(),
            js: JS_PATH.as_str(),
        })
    }

    /// For pages rendered outside the session layer (error pages): the signed-in user's header,
    /// when there is one, with its session's form token but not its flash.
    pub fn outside_session(user: Option<&(User, String)>) -> Self {
        Self {
            user_name: user.map(|(user, _)| user.display_name.clone()),
            user_email: user.map(|(user, _)| user.email.clone()),
            csrf_token: user.map(|(_, token)| token.clone()).unwrap_or_default(),
            flash: None,
            time_zone: user.map(|(user, _)| user.time_zone.clone()),
            css: CSS_PATH.as_str(),
            js: JS_PATH.as_str(),
        }
    }
}

/// Renders a page; a template error becomes a logged 500, never a panic.
pub fn render(page: &impl Template) -> AppResult<Html<String>> {
    page.render().map(Html).map_err(AppError::unexpected)
}

/// A page as the whole answer (200).
pub fn html(page: &impl Template) -> AppResult<Response> {
    Ok(render(page)?.into_response())
}

/// A page as the whole answer with `status`: a form shown again with its problems (422, 409).
pub fn html_with_status(status: StatusCode, page: &impl Template) -> AppResult<Response> {
    Ok((status, render(page)?).into_response())
}

/// How the portal writes a moment for its viewer: one format ("3 Nov 2026, 14:05"), in the time zone
/// the viewer chose on the account page (UTC by default), recent moments relative ("5 minutes ago").
/// Every page's times go through one `Clock`, built for the signed-in person.
#[derive(Clone)]
pub struct Clock {
    zone: jiff::tz::TimeZone,
    zone_name: String,
    now: OffsetDateTime,
}

/// Within this much of now a moment reads relative ("3 hours ago", "in 20 minutes").
const RELATIVE_WITHIN: time::Duration = time::Duration::hours(24);

impl Clock {
    /// A clock in the named IANA zone; an unknown name (never stored, but possible) reads as UTC.
    pub fn new(zone_name: &str, now: OffsetDateTime) -> Self {
        match jiff::tz::TimeZone::get(zone_name) {
            Ok(zone) => Self {
                zone,
                zone_name: zone_name.to_owned(),
                now,
            },
            Err(_) => Self {
                zone: jiff::tz::TimeZone::UTC,
                zone_name: "UTC".to_owned(),
                now,
            },
        }
    }

    /// The clock of a signed-in person, at this moment.
    pub fn of(user: &User) -> Self {
        Self::new(&user.time_zone, OffsetDateTime::now_utc())
    }

    /// The zone's name, as the page footer shows it ("Europe/Berlin").
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// `at` as a wall-clock time in the viewer's zone.
    pub fn local_time(&self, at: OffsetDateTime) -> OffsetDateTime {
        self.local(at).0
    }

    /// `at` in the viewer's zone, with the zone's abbreviation ("CET", "UTC").
    fn local(&self, at: OffsetDateTime) -> (OffsetDateTime, String) {
        let timestamp = jiff::Timestamp::from_second(at.unix_timestamp()).unwrap_or_default();
        let info = self.zone.to_offset_info(timestamp);
        let offset = time::UtcOffset::from_whole_seconds(info.offset().seconds())
            .unwrap_or(time::UtcOffset::UTC);
        (at.to_offset(offset), info.abbreviation().to_owned())
    }

    /// A moment with its time of day: relative when recent, else "3 Nov 2026, 14:05".
    pub fn at(&self, at: OffsetDateTime) -> When {
        let (local, _) = self.local(at);
        let shown = relative(at - self.now).unwrap_or_else(|| {
            format(
                local,
                format_description!(
                    "[day padding:none] [month repr:short] [year], [hour]:[minute]"
                ),
            )
        });
        self.when(at, shown)
    }

    /// [`Clock::at`], or "never" without a moment.
    pub fn at_or_never(&self, at: Option<OffsetDateTime>) -> When {
        at.map_or_else(|| When::none("never"), |at| self.at(at))
    }

    /// A day: relative when recent, else "3 Nov 2026" (member since, joined, created).
    pub fn day(&self, at: OffsetDateTime) -> When {
        let (local, _) = self.local(at);
        let shown = relative(at - self.now).unwrap_or_else(|| {
            format(
                local,
                format_description!("[day padding:none] [month repr:short] [year]"),
            )
        });
        self.when(at, shown)
    }

    /// The exact moment as plain text, zone named: "3 Nov 2026, 14:05:09 CET" (for sentences and titles).
    pub fn exact(&self, at: OffsetDateTime) -> String {
        let (local, abbreviation) = self.local(at);
        let clock = format(
            local,
            format_description!(
                "[day padding:none] [month repr:short] [year], [hour]:[minute]:[second]"
            ),
        );
        format!("{clock} {abbreviation}")
    }

    fn when(&self, at: OffsetDateTime, shown: String) -> When {
        When {
            iso: at
                .to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            exact: self.exact(at),
            shown,
        }
    }
}

fn format(
    at: OffsetDateTime,
    description: &[time::format_description::BorrowedFormatItem<'_>],
) -> String {
    at.format(description).unwrap_or_default()
}

/// "just now", "5 minutes ago", "in 3 hours"; `None` beyond a day either way.
fn relative(offset: time::Duration) -> Option<String> {
    if offset.abs() >= RELATIVE_WITHIN {
        return None;
    }
    let seconds = offset.whole_seconds().abs();
    if seconds < 60 {
        return Some(
            if offset.is_negative() {
                "just now"
            } else {
                "in under a minute"
            }
            .to_owned(),
        );
    }
    let (count, unit) = if seconds < 3600 {
        (seconds / 60, "minute")
    } else {
        (seconds / 3600, "hour")
    };
    let amount = format!("{count} {unit}{}", if count == 1 { "" } else { "s" });
    Some(if offset.is_negative() {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    })
}

/// A moment on a page: `<time datetime="…" title="exact, zone named">shown</time>`, so the exact time
/// is on hover and for screen readers, whatever the page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct When {
    iso: String,
    exact: String,
    shown: String,
}

impl When {
    /// No moment: `text` ("never") as plain text.
    pub fn none(text: &str) -> Self {
        Self {
            iso: String::new(),
            exact: String::new(),
            shown: text.to_owned(),
        }
    }

    /// What the page shows ("5 minutes ago", "3 Nov 2026, 14:05").
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use askama::filters::{Escaper, Html};
        if self.iso.is_empty() {
            return Html.write_escaped_str(&mut *f, &self.shown);
        }
        // Every part is made here from digits, month names and zone abbreviations; escaped anyway.
        f.write_str(r#"<time datetime=""#)?;
        Html.write_escaped_str(&mut *f, &self.iso)?;
        f.write_str(r#"" title=""#)?;
        Html.write_escaped_str(&mut *f, &self.exact)?;
        f.write_str(r#"">"#)?;
        Html.write_escaped_str(&mut *f, &self.shown)?;
        f.write_str("</time>")
    }
}

/// Written as markup, not escaped again: `Display` builds the element.
impl askama::filters::HtmlSafe for When {}

/// An email address that wraps before its dots and at-sign (and after hyphens), never mid-word.
pub struct Address(pub String);

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use askama::filters::{Escaper, Html};
        for part in self.0.split_inclusive(['@', '.']) {
            // Each break opportunity goes before the separator that ends the part before it.
            let (text, separator) = match part.strip_suffix(['@', '.']) {
                Some(text) => (text, &part[text.len()..]),
                None => (part, ""),
            };
            Html.write_escaped_str(&mut *f, text)?;
            if !separator.is_empty() {
                f.write_str("<wbr>")?;
                Html.write_escaped_str(&mut *f, separator)?;
            }
        }
        Ok(())
    }
}

/// Written as markup: `Display` escapes every part and adds only `<wbr>`.
impl askama::filters::HtmlSafe for Address {}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: &'a str,
    request_id: &'a str,
}

/// The error page: what a person sees for 404, 403, 500 and the rest, with the signed-in user's
/// header when there is one (a member must not look signed out on a 403).
pub fn error_page(
    report: &ErrorReport,
    request_id: &str,
    user: Option<&(User, String)>,
) -> Response {
    let page = ErrorPage {
        layout: Layout::outside_session(user),
        status: report.status.as_u16(),
        title: report.status.canonical_reason().unwrap_or("Error"),
        message: &report.message,
        request_id,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "error page failed to render");
            report.message.clone().into_response()
        }
    }
}

/// "Are you sure?" before anything destructive. Without an `action`, only the way back is offered.
#[derive(Template)]
#[template(path = "tenants/confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub tenant: TenantNav,
    pub title: String,
    pub message: String,
    pub action: String,
    pub button: &'static str,
    pub cancel: String,
}

/// Which page of a newest-first list is asked for (`?page=`, from 1).
pub struct Paging {
    page: i64,
    size: i64,
}

impl Paging {
    pub fn new(page: Option<u32>, size: i64) -> Self {
        Self {
            page: i64::from(page.unwrap_or(1).max(1)),
            size,
        }
    }

    /// Rows to fetch: one more than a page, to tell whether an older page exists.
    pub fn limit(&self) -> i64 {
        self.size + 1
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.size
    }

    /// Cuts `rows` (fetched with `limit` and `offset`) to the page and links its neighbours:
    /// `{base}?page=N` followed by the filters that are set.
    pub fn pager<T>(
        &self,
        rows: &mut Vec<T>,
        base: &str,
        filters: &[(&str, Option<&str>)],
    ) -> Pager {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        let has_older = rows.len() > size;
        rows.truncate(size);
        let link = |page: i64| {
            let mut url = format!("{base}?page={page}");
            for (name, value) in filters {
                if let Some(value) = value {
                    url.push_str(&format!("&{name}={}", session::encode(value)));
                }
            }
            url
        };
        Pager {
            newer: (self.page > 1).then(|| link(self.page - 1)),
            older: has_older.then(|| link(self.page + 1)),
        }
    }
}

/// The links to the newer and older pages, drawn by the `pager` macro in macros.html.
pub struct Pager {
    pub newer: Option<String>,
    pub older: Option<String>,
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::{Clock, Paging};

    #[test]
    fn a_moment_reads_in_the_viewers_zone_with_its_abbreviation_across_daylight_saving() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let berlin = Clock::new("Europe/Berlin", now);
        // Winter: UTC+1 (CET); summer: UTC+2 (CEST).
        let winter = berlin.at(datetime!(2026-11-03 13:05:09 UTC));
        assert_eq!(winter.shown(), "3 Nov 2026, 14:05");
        assert_eq!(
            berlin.exact(datetime!(2026-11-03 13:05:09 UTC)),
            "3 Nov 2026, 14:05:09 CET"
        );
        assert_eq!(
            berlin.exact(datetime!(2026-07-03 13:05:09 UTC)),
            "3 Jul 2026, 15:05:09 CEST"
        );
        assert_eq!(
            winter.to_string(),
            r#"<time datetime="2026-11-03T13:05:09Z" title="3 Nov 2026, 14:05:09 CET">3 Nov 2026, 14:05</time>"#
        );
        // Near midnight the day itself changes with the zone.
        let tokyo = Clock::new("Asia/Tokyo", now);
        assert_eq!(
            tokyo.day(datetime!(2026-11-03 20:00 UTC)).shown(),
            "4 Nov 2026"
        );
        assert_eq!(
            Clock::new("UTC", now)
                .day(datetime!(2026-11-03 20:00 UTC))
                .shown(),
            "3 Nov 2026"
        );
    }

    #[test]
    fn recent_moments_read_relative_both_ways_and_older_ones_exact() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let clock = Clock::new("UTC", now);
        let shown = |at| clock.at(at).shown().to_owned();
        assert_eq!(shown(datetime!(2026-12-01 11:59:30 UTC)), "just now");
        assert_eq!(shown(datetime!(2026-12-01 11:59 UTC)), "1 minute ago");
        assert_eq!(shown(datetime!(2026-12-01 11:55 UTC)), "5 minutes ago");
        assert_eq!(shown(datetime!(2026-12-01 09:00 UTC)), "3 hours ago");
        assert_eq!(shown(datetime!(2026-12-01 12:20 UTC)), "in 20 minutes");
        assert_eq!(shown(datetime!(2026-12-02 11:00 UTC)), "in 23 hours");
        assert_eq!(shown(datetime!(2026-11-30 12:00 UTC)), "30 Nov 2026, 12:00");
        assert_eq!(shown(datetime!(2026-12-08 09:30 UTC)), "8 Dec 2026, 09:30");
    }

    #[test]
    fn an_address_wraps_before_its_dots_and_at_sign_and_stays_escaped() {
        let address = super::Address("ada.l<b>@x.example".to_owned());
        assert_eq!(
            address.to_string(),
            "ada<wbr>.l&#60;b&#62;<wbr>@x<wbr>.example"
        );
    }

    #[test]
    fn an_unknown_zone_reads_as_utc() {
        let clock = Clock::new("Mars/Olympus_Mons", datetime!(2026-12-01 12:00 UTC));
        assert_eq!(clock.zone_name(), "UTC");
        assert_eq!(
            clock.exact(datetime!(2026-11-03 13:05:09 UTC)),
            "3 Nov 2026, 13:05:09 UTC"
        );
    }

    #[test]
    fn pager_links_neighbours_and_keeps_filters() {
        let paging = Paging::new(Some(2), 2);
        assert_eq!((paging.limit(), paging.offset()), (3, 2));
        let mut rows = vec![1, 2, 3];
        let pager = paging.pager(
            &mut rows,
            "/t/acme/audit",
            &[("action", Some("key created")), ("q", None)],
        );
        assert_eq!(rows, [1, 2]);
        assert_eq!(
            pager.newer.as_deref(),
            Some("/t/acme/audit?page=1&action=key+created")
        );
        assert_eq!(
            pager.older.as_deref(),
            Some("/t/acme/audit?page=3&action=key+created")
        );
    }

    #[test]
    fn first_and_last_pages_have_one_neighbour_or_none() {
        let mut rows = vec![1];
        let pager = Paging::new(None, 2).pager(&mut rows, "/x", &[]);
        assert!(pager.newer.is_none() && pager.older.is_none());
        let pager = Paging::new(Some(0), 2).pager(&mut vec![1, 2, 3], "/x", &[]);
        assert_eq!(
            (pager.newer, pager.older.as_deref()),
            (None, Some("/x?page=2"))
        );
    }
}
