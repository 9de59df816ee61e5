//! How the portal writes a moment for its viewer: the one place times are formatted. Every page's
//! times go through one `Clock`, built for the signed-in person, in the time zone they chose on the
//! account page (UTC by default; the footer names it). A `When` is a moment on a page, and knows how
//! to read in a table cell ("5 minutes ago"), after a verb ("Created just now", "Created on 3 Nov
//! 2026"), as an end ("works until 17:42 (in 59 minutes)") and as a stamp with its relative form
//! beside it ("3 Nov 2026, 14:05:09 (5 minutes ago)").

use time::OffsetDateTime;
use time::macros::format_description;

#[derive(Clone)]
pub struct Clock {
    zone: jiff::tz::TimeZone,
    zone_name: String,
    now: OffsetDateTime,
}

/// Within this much of now a moment reads relative ("3 hours ago", "in 20 minutes").
const RELATIVE_WITHIN: time::Duration = time::Duration::hours(24);
/// Beside a stamp, the relative form counts days up to this far ("12 days ago"), then stops.
const DAYS_WITHIN: time::Duration = time::Duration::days(60);

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
    pub fn of(user: &crate::db::users::User) -> Self {
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

    /// A wall-clock time the viewer typed (a filter's "from"), read in their zone. In a gap of a
    /// daylight-saving change the later reading is taken, in an overlap the earlier.
    pub fn from_local(&self, typed: time::PrimitiveDateTime) -> Option<OffsetDateTime> {
        let civil = jiff::civil::DateTime::new(
            i16::try_from(typed.year()).ok()?,
            i8::try_from(u8::from(typed.month())).ok()?,
            i8::try_from(typed.day()).ok()?,
            i8::try_from(typed.hour()).ok()?,
            i8::try_from(typed.minute()).ok()?,
            i8::try_from(typed.second()).ok()?,
            0,
        )
        .ok()?;
        let zoned = civil.to_zoned(self.zone.clone()).ok()?;
        OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).ok()
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
        self.when(at, format(local, DATE_TIME))
    }

    /// [`Clock::at`], or "never" without a moment.
    pub fn at_or_never(&self, at: Option<OffsetDateTime>) -> When {
        at.map_or_else(|| When::none("never"), |at| self.at(at))
    }

    /// A day: relative when recent, else "3 Nov 2026" (member since, joined, created).
    pub fn day(&self, at: OffsetDateTime) -> When {
        let (local, _) = self.local(at);
        self.when(at, format(local, DATE))
    }

    /// A stamp: the date and time to the second in the viewer's zone, always, with the relative
    /// form beside it while there is one ("3 Nov 2026, 14:05:09 (5 minutes ago)"): the audit log,
    /// the request log, a key's recent calls.
    pub fn stamp(&self, at: OffsetDateTime) -> When {
        let (local, _) = self.local(at);
        let mut when = self.when(at, format(local, DATE_TIME_SECONDS));
        let beside = when.relative.take().or_else(|| days(at - self.now));
        when.shown = when.absolute.clone();
        when.beside = beside;
        when.date_together = true;
        when
    }

    /// The exact moment as plain text, zone named: "3 Nov 2026, 14:05:09 CET" (for sentences and titles).
    pub fn exact(&self, at: OffsetDateTime) -> String {
        let (local, abbreviation) = self.local(at);
        format!("{} {abbreviation}", format(local, DATE_TIME_SECONDS))
    }

    /// A day as plain text in a sentence that may be read later (an explanation, a CSV): "3 Nov 2026".
    pub fn date(&self, at: OffsetDateTime) -> String {
        format(self.local(at).0, DATE)
    }

    /// A moment as plain text in such a sentence, zone named: "3 Nov 2026, 14:05 CET".
    pub fn date_time(&self, at: OffsetDateTime) -> String {
        let (local, abbreviation) = self.local(at);
        format!("{} {abbreviation}", format(local, DATE_TIME))
    }

    fn when(&self, at: OffsetDateTime, absolute: String) -> When {
        let relative = relative(at - self.now);
        let (local, _) = self.local(at);
        When {
            iso: at
                .to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            exact: self.exact(at),
            shown: relative.clone().unwrap_or_else(|| absolute.clone()),
            before: "",
            beside: None,
            date_together: false,
            hour_minute: format(local, HOUR_MINUTE),
            relative,
            absolute,
        }
    }
}

type Description = &'static [time::format_description::BorrowedFormatItem<'static>];
const DATE: Description = format_description!("[day padding:none] [month repr:short] [year]");
const DATE_TIME: Description =
    format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute]");
const DATE_TIME_SECONDS: Description =
    format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute]:[second]");
const HOUR_MINUTE: Description = format_description!("[hour]:[minute]");

fn format(at: OffsetDateTime, description: Description) -> String {
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
    if seconds < 3600 {
        Some(ago_or_in(offset, seconds / 60, "minute"))
    } else {
        Some(ago_or_in(offset, seconds / 3600, "hour"))
    }
}

/// "3 days ago", "in 12 days": a stamp's relative form beyond a day, up to [`DAYS_WITHIN`].
fn days(offset: time::Duration) -> Option<String> {
    (offset.abs() < DAYS_WITHIN).then(|| ago_or_in(offset, offset.whole_days().abs(), "day"))
}

fn ago_or_in(offset: time::Duration, count: i64, unit: &str) -> String {
    let amount = format!("{count} {unit}{}", if count == 1 { "" } else { "s" });
    if offset.is_negative() {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// A moment on a page: `<time datetime="…" title="exact, zone named">shown</time>`, so the exact time
/// is on hover and for screen readers, whatever the page shows; a phrase's preposition before it
/// and its relative form beside it stay outside the element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct When {
    iso: String,
    exact: String,
    shown: String,
    /// Written before the element: "on ", "until ".
    before: &'static str,
    /// Written after it, in brackets: "in 59 minutes".
    beside: Option<String>,
    /// A stamp's date is kept on one line ("3 Nov 2026," then the time) in a narrow column.
    date_together: bool,
    /// The moment's own parts, from which the phrases are made.
    relative: Option<String>,
    absolute: String,
    hour_minute: String,
}

impl When {
    /// No moment: `text` ("never") as plain text.
    pub fn none(text: &str) -> Self {
        Self {
            iso: String::new(),
            exact: String::new(),
            shown: text.to_owned(),
            before: "",
            beside: None,
            date_together: false,
            relative: None,
            absolute: text.to_owned(),
            hour_minute: String::new(),
        }
    }

    /// What the page shows for the moment itself ("5 minutes ago", "3 Nov 2026, 14:05").
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The moment after a verb, as a sentence reads: "Created just now", "Created 3 hours ago",
    /// "Created on 3 Nov 2026".
    pub fn on(&self) -> Self {
        match &self.relative {
            Some(relative) => Self {
                shown: relative.clone(),
                before: "",
                beside: None,
                ..self.clone()
            },
            None => Self {
                shown: self.absolute.clone(),
                before: if self.iso.is_empty() { "" } else { "on " },
                beside: None,
                ..self.clone()
            },
        }
    }

    /// The moment as an end: "until 17:42 (in 59 minutes)" within a day, else "until 3 Nov 2026,
    /// 14:05".
    pub fn until(&self) -> Self {
        match &self.relative {
            Some(relative) => Self {
                shown: self.hour_minute.clone(),
                before: "until ",
                beside: Some(relative.clone()),
                ..self.clone()
            },
            None => Self {
                shown: self.absolute.clone(),
                before: if self.iso.is_empty() { "" } else { "until " },
                beside: None,
                ..self.clone()
            },
        }
    }

    /// The whole phrase as plain text ("until 17:42 (in 59 minutes)"): for option labels and tests.
    pub fn text(&self) -> String {
        match &self.beside {
            Some(beside) => format!("{}{} ({beside})", self.before, self.shown),
            None => format!("{}{}", self.before, self.shown),
        }
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use askama::filters::{Escaper, Html};
        if self.iso.is_empty() {
            return Html.write_escaped_str(&mut *f, &self.shown);
        }
        // Every part is made here from digits, month names and zone abbreviations; escaped anyway.
        f.write_str(self.before)?;
        f.write_str(r#"<time datetime=""#)?;
        Html.write_escaped_str(&mut *f, &self.iso)?;
        f.write_str(r#"" title=""#)?;
        Html.write_escaped_str(&mut *f, &self.exact)?;
        f.write_str(r#"">"#)?;
        match self.shown.split_once(", ") {
            Some((date, time)) if self.date_together => {
                Html.write_escaped_str(&mut *f, &date.replace(' ', "\u{a0}"))?;
                f.write_str(", ")?;
                Html.write_escaped_str(&mut *f, time)?;
            }
            _ => Html.write_escaped_str(&mut *f, &self.shown)?,
        }
        f.write_str("</time>")?;
        if let Some(beside) = &self.beside {
            f.write_str(r#" <span class="relative">("#)?;
            Html.write_escaped_str(&mut *f, beside)?;
            f.write_str(")</span>")?;
        }
        Ok(())
    }
}

/// Written as markup, not escaped again: `Display` builds the element.
impl askama::filters::HtmlSafe for When {}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::Clock;

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
    fn after_a_verb_a_moment_reads_as_a_sentence() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let berlin = Clock::new("Europe/Berlin", now);
        // "Created … on just now" read wrong: a recent moment takes no preposition.
        let created = |at| format!("Created {}", berlin.day(at).on().text());
        assert_eq!(
            created(datetime!(2026-12-01 11:59:40 UTC)),
            "Created just now"
        );
        assert_eq!(
            created(datetime!(2026-12-01 09:00 UTC)),
            "Created 3 hours ago"
        );
        assert_eq!(
            created(datetime!(2026-11-03 09:00 UTC)),
            "Created on 3 Nov 2026"
        );
        assert_eq!(
            format!(
                "Revoked {}",
                berlin.at(datetime!(2026-11-03 09:00 UTC)).on().text()
            ),
            "Revoked on 3 Nov 2026, 10:00"
        );
        // The element holds the moment; the preposition stays outside it.
        assert_eq!(
            berlin.day(datetime!(2026-11-03 09:00 UTC)).on().to_string(),
            r#"on <time datetime="2026-11-03T09:00:00Z" title="3 Nov 2026, 10:00:00 CET">3 Nov 2026</time>"#
        );
        assert_eq!(
            super::When::none("never").on().text(),
            "never",
            "no moment, no preposition"
        );
    }

    #[test]
    fn an_end_reads_as_until_a_time_with_how_long_beside_it() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let berlin = Clock::new("Europe/Berlin", now);
        // "works until in 59 minutes" read wrong: the end's clock time, how long in brackets.
        let works = |at| format!("works {}", berlin.at(at).until().text());
        assert_eq!(
            works(datetime!(2026-12-01 12:59 UTC)),
            "works until 13:59 (in 59 minutes)"
        );
        assert_eq!(
            works(datetime!(2026-12-02 11:00 UTC)),
            "works until 12:00 (in 23 hours)"
        );
        assert_eq!(
            works(datetime!(2026-12-08 09:30 UTC)),
            "works until 8 Dec 2026, 10:30"
        );
        assert_eq!(
            berlin
                .at(datetime!(2026-12-01 12:59 UTC))
                .until()
                .to_string(),
            r#"until <time datetime="2026-12-01T12:59:00Z" title="1 Dec 2026, 13:59:00 CET">13:59</time> <span class="relative">(in 59 minutes)</span>"#
        );
    }

    #[test]
    fn a_stamp_shows_date_and_time_with_the_relative_form_beside_it() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let berlin = Clock::new("Europe/Berlin", now);
        let stamp = |at| berlin.stamp(at).text();
        assert_eq!(
            stamp(datetime!(2026-12-01 11:59:30 UTC)),
            "1 Dec 2026, 12:59:30 (just now)"
        );
        assert_eq!(
            stamp(datetime!(2026-12-01 11:00:05 UTC)),
            "1 Dec 2026, 12:00:05 (59 minutes ago)"
        );
        assert_eq!(
            stamp(datetime!(2026-11-28 08:00 UTC)),
            "28 Nov 2026, 09:00:00 (3 days ago)"
        );
        assert_eq!(
            stamp(datetime!(2026-11-30 11:00 UTC)),
            "30 Nov 2026, 12:00:00 (1 day ago)"
        );
        assert_eq!(
            stamp(datetime!(2026-06-01 12:00 UTC)),
            "1 Jun 2026, 14:00:00"
        );
        assert_eq!(
            berlin.stamp(datetime!(2026-12-01 11:59 UTC)).to_string(),
            "<time datetime=\"2026-12-01T11:59:00Z\" title=\"1 Dec 2026, 12:59:00 CET\">\
             1\u{a0}Dec\u{a0}2026, 12:59:00</time> <span class=\"relative\">(1 minute ago)</span>",
            "the date breaks nowhere, the time goes on the next line when the column is narrow"
        );
    }

    #[test]
    fn a_typed_wall_clock_time_is_read_in_the_viewers_zone() {
        let berlin = Clock::new("Europe/Berlin", datetime!(2026-12-01 12:00 UTC));
        assert_eq!(
            berlin.from_local(datetime!(2026-11-03 14:30)),
            Some(datetime!(2026-11-03 13:30 UTC))
        );
        assert_eq!(
            berlin.from_local(datetime!(2026-07-03 14:30)),
            Some(datetime!(2026-07-03 12:30 UTC))
        );
        let utc = Clock::new("UTC", datetime!(2026-12-01 12:00 UTC));
        assert_eq!(
            utc.from_local(datetime!(2026-11-03 14:30)),
            Some(datetime!(2026-11-03 14:30 UTC))
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
}
