//! `/t/{slug}/logs` (+ `.csv`): the request log, "why was I refused?": the tenant's recorded
//! calls filtered by key, code, time and address, newest first with keyset paging, each refusal
//! explained in words. Also the recent calls on a key's page.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use super::{TenantMember, TenantNav};
use crate::app::AppState;
use crate::db::keys::{self as db_keys, KeyChoice};
use crate::db::request_log::{self as db_log, LogEntry, LogFilter};
use crate::domain::keys::format::masked;
use crate::error::AppResult;
use crate::vocabulary::{ClientAddress, Code};
use crate::web::page::{Clock, Layout, Pager, When, html};
use crate::web::session::encode;

const PAGE_SIZE: i64 = 50;
/// Rows a CSV export holds at most (newest first).
const CSV_ROWS: i64 = 10_000;
/// Calls a key's page lists.
pub const RECENT_CALLS: i64 = 20;
/// The codes the filter offers besides those the tenant's records hold, written by other parts
/// of the key API (the key controls, the management API).
const LATER_CODES: [&str; 3] = ["DISABLED", "IP_NOT_ALLOWED", "TENANT_SUSPENDED"];

/// A refusal in words, from its code, the detail recorded with it and what its key's row says
/// now, its dates in the viewer's zone. Keyed by the code's text, so codes this build does not know
/// still read sensibly.
pub fn explain(entry: &LogEntry, clock: &Clock) -> String {
    let date = |at| clock.date(at);
    let date_time = |at| clock.date_time(at);
    let detail = entry.detail.as_deref().unwrap_or_default();
    match entry.code.as_str() {
        "VALID" => "Accepted.".into(),
        "REVOKED" => match (entry.key_revoked_at, entry.key_revoked_by_name.as_deref()) {
            (Some(at), Some(name)) => format!("The key was revoked by {name} on {}.", date(at)),
            (Some(at), None) => format!("The key was revoked on {}.", date(at)),
            _ => "The key had been revoked.".into(),
        },
        "EXPIRED" => match (entry.key_rolled_at, entry.key_expires_at) {
            (Some(rolled), Some(end)) => format!(
                "The key was rolled on {} and stopped working when its grace period ended on {}.",
                date(rolled),
                date_time(end)
            ),
            (None, Some(end)) => format!("The key expired on {}.", date_time(end)),
            _ => "The key had expired.".into(),
        },
        "ENVIRONMENT_MISMATCH" => match (entry.key_environment, detail) {
            (Some(key), route @ ("live" | "test")) => format!("A {key} key on a {route} route."),
            _ => "The key is not for the environment the call asked for.".into(),
        },
        "TENANT_MISMATCH" if !detail.is_empty() => format!(
            "The call asked for tenant \u{201c}{detail}\u{201d}; the key belongs to this one."
        ),
        "TENANT_MISMATCH" => "The call asked for another tenant.".into(),
        "INSUFFICIENT_SCOPE" => match detail.split(' ').filter(|s| !s.is_empty()).count() {
            0 => "The key lacks a scope the call needs.".into(),
            1 => format!("The key lacks the {detail} scope."),
            _ => format!("The key lacks the scopes {}.", detail.replace(' ', ", ")),
        },
        "RATE_LIMITED" if !detail.is_empty() => {
            format!("Rate limited: {detail} requests per minute.")
        }
        "RATE_LIMITED" => "Rate limited.".into(),
        // The API's own words (the address checked, or why there was none).
        "IP_NOT_ALLOWED" => Code::IpNotAllowed
            .message_for(ClientAddress::from_record(
                entry.detail.as_deref(),
                &entry.client_ip,
            ))
            .into_owned(),
        "DISABLED" => "The key was disabled.".into(),
        "TENANT_SUSPENDED" => "The tenant is suspended.".into(),
        "MALFORMED" | "NOT_FOUND" => "No such key.".into(),
        other => format!("Refused ({other})."),
    }
}

/// A record as a row shows it.
pub struct CallRow {
    /// The date and time in the viewer's zone, how long ago beside it.
    pub at: When,
    pub valid: bool,
    pub code: String,
    pub explanation: String,
    pub key_id: Uuid,
    pub key_label: String,
    pub client_ip: String,
    pub request: String,
    pub user_agent: String,
    pub request_id: String,
    pub request_short: String,
}

impl CallRow {
    pub fn new(entry: &LogEntry, prefix: &str, clock: &Clock) -> Self {
        let request = match (&entry.method, &entry.path) {
            (Some(method), Some(path)) => format!("{method} {path}"),
            (None, Some(path)) => path.clone(),
            (Some(method), None) => method.clone(),
            (None, None) if entry.via == "verify" => "(verify API, no request details)".into(),
            (None, None) => "(forward-auth, no path)".into(),
        };
        let request_id = entry.request_id.clone().unwrap_or_default();
        Self {
            at: clock.stamp(entry.at),
            valid: entry.code == Code::Valid.as_str(),
            code: entry.code.clone(),
            explanation: explain(entry, clock),
            key_id: entry.api_key_id,
            key_label: match (&entry.key_name, entry.key_environment, &entry.key_last_four) {
                (Some(name), Some(environment), Some(last_four)) => {
                    format!("{name} ({})", masked(prefix, environment, last_four))
                }
                _ => "a deleted key".into(),
            },
            client_ip: entry.client_ip.clone(),
            request,
            user_agent: entry.user_agent.clone().unwrap_or_default(),
            request_short: request_id.chars().take(8).collect(),
            request_id,
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct LogsQuery {
    key: Option<String>,
    code: Option<String>,
    from: Option<String>,
    to: Option<String>,
    address: Option<String>,
    before: Option<String>,
}

/// The filters as typed (shown again in the form) and as understood, with what was wrong.
struct Filters {
    key: String,
    code: String,
    from: String,
    to: String,
    address: String,
    parsed: LogFilter,
    before: Option<(OffsetDateTime, Uuid)>,
    problems: Vec<String>,
}

const TYPED_TIME: &[time::format_description::BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]");
const TYPED_TIME_SECONDS: &[time::format_description::BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// A time typed into a filter, on the viewer's clock.
fn typed_time(text: &str, clock: &Clock) -> Option<OffsetDateTime> {
    let text = text.trim();
    PrimitiveDateTime::parse(text, TYPED_TIME)
        .or_else(|_| PrimitiveDateTime::parse(text, TYPED_TIME_SECONDS))
        .ok()
        .and_then(|typed| clock.from_local(typed))
}

/// `{unix nanoseconds}_{id}`: the last row of a page, which the next page starts after.
fn cursor(entry: &LogEntry) -> String {
    format!(
        "{}_{}",
        entry.at.unix_timestamp_nanos(),
        entry.request_log_id
    )
}

fn parse_cursor(text: &str) -> Option<(OffsetDateTime, Uuid)> {
    let (nanos, id) = text.split_once('_')?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos.parse().ok()?).ok()?;
    Some((at, Uuid::parse_str(id).ok()?))
}

impl Filters {
    fn read(query: LogsQuery, clock: &Clock) -> Self {
        let typed = |value: Option<String>| value.map(|v| v.trim().to_owned()).unwrap_or_default();
        let (key, code, from, to, address) = (
            typed(query.key),
            typed(query.code),
            typed(query.from),
            typed(query.to),
            typed(query.address),
        );
        let mut problems = Vec::new();
        let mut parsed = LogFilter::default();
        if !key.is_empty() {
            match Uuid::parse_str(&key) {
                Ok(id) => parsed.api_key_id = Some(id),
                Err(_) => problems.push("Choose a key from the list.".to_owned()),
            }
        }
        if !code.is_empty() {
            if code.len() <= 40 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                parsed.code = Some(code.clone());
            } else {
                problems.push("Choose a code from the list.".to_owned());
            }
        }
        for (typed, slot, name) in [
            (&from, &mut parsed.from, "From"),
            (&to, &mut parsed.to, "To"),
        ] {
            if !typed.is_empty() {
                match typed_time(typed, clock) {
                    Some(at) => *slot = Some(at),
                    None => problems.push(format!(
                        "{name} must be a date and time like 2026-11-03T14:30."
                    )),
                }
            }
        }
        if let (Some(from), Some(to)) = (parsed.from, parsed.to)
            && from >= to
        {
            problems.push("From must be before To.".to_owned());
        }
        if !address.is_empty() {
            match address.parse::<std::net::IpAddr>() {
                Ok(ip) => parsed.client_ip = Some(ip.to_string()),
                Err(_) => problems.push(format!(
                    "{address:?} is not an IPv4 or IPv6 address (like 203.0.113.9 or 2001:db8::1)."
                )),
            }
        }
        let before = match query.before.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match parse_cursor(text) {
                Some(cursor) => Some(cursor),
                None => {
                    problems.push("That page link is broken; this is the newest page.".into());
                    None
                }
            },
        };
        Self {
            key,
            code,
            from,
            to,
            address,
            parsed,
            before,
            problems,
        }
    }

    fn is_set(&self) -> bool {
        [&self.key, &self.code, &self.from, &self.to, &self.address]
            .iter()
            .any(|value| !value.is_empty())
    }

    /// `key=…&code=…` for the filters that are set.
    fn query_string(&self) -> String {
        [
            ("key", &self.key),
            ("code", &self.code),
            ("from", &self.from),
            ("to", &self.to),
            ("address", &self.address),
        ]
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

pub struct KeyOption {
    id: String,
    label: String,
}

#[derive(Template)]
#[template(path = "tenants/logs.html")]
struct LogsPage {
    layout: Layout,
    tenant: TenantNav,
    /// The viewer's zone, which the filters' times are read in.
    zone: String,
    enabled: bool,
    days: u32,
    dropped: i64,
    calls: Vec<CallRow>,
    /// The calls table's key column (the key page leaves it out).
    show_key: bool,
    keys: Vec<KeyOption>,
    codes: Vec<String>,
    key: String,
    code: String,
    from: String,
    to: String,
    address: String,
    filtered: bool,
    problems: Vec<String>,
    csv: String,
    pager: Pager,
}

pub(super) async fn list_logs(
    State(state): State<AppState>,
    member: TenantMember,
    Query(query): Query<LogsQuery>,
) -> AppResult<Response> {
    let tenant_id = member.membership.tenant_id;
    let slug = &member.membership.slug;
    let clock = Clock::of(&member.user);
    let filters = Filters::read(query, &clock);
    let mut entries = if filters.problems.is_empty() {
        db_log::page(
            &state.pool,
            tenant_id,
            &filters.parsed,
            filters.before,
            PAGE_SIZE + 1,
        )
        .await?
    } else {
        Vec::new()
    };
    let has_older = entries.len() > usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX));
    let base = format!("/t/{slug}/logs");
    let filter_query = filters.query_string();
    let link = |extra: Option<String>| {
        let parts: Vec<String> = [Some(filter_query.clone()), extra]
            .into_iter()
            .flatten()
            .filter(|part| !part.is_empty())
            .collect();
        if parts.is_empty() {
            base.clone()
        } else {
            format!("{base}?{}", parts.join("&"))
        }
    };
    let pager = Pager {
        // Keyset pages go one way; the way back is the newest page.
        newer: filters.before.is_some().then(|| link(None)),
        older: has_older
            .then(|| {
                entries
                    .last()
                    .map(|last| link(Some(format!("before={}", cursor(last)))))
            })
            .flatten(),
    };
    let mut codes: Vec<String> = Code::ALL
        .iter()
        .map(|code| code.as_str().to_owned())
        .collect();
    codes.extend(LATER_CODES.iter().map(|code| (*code).to_owned()));
    codes.extend(db_log::codes(&state.pool, tenant_id).await?);
    codes.retain(|code| !matches!(code.as_str(), "MALFORMED" | "NOT_FOUND"));
    codes.sort();
    codes.dedup();
    let prefix = &state.config.key_prefix;
    let page = LogsPage {
        layout: member.layout().await?,
        tenant: member.nav("logs"),
        zone: clock.zone_name().to_owned(),
        enabled: state.request_log.is_enabled(),
        days: state.config.request_log_days,
        dropped: db_log::dropped_since(
            &state.pool,
            OffsetDateTime::now_utc() - time::Duration::days(1),
        )
        .await?,
        calls: entries
            .iter()
            .map(|entry| CallRow::new(entry, prefix, &clock))
            .collect(),
        show_key: true,
        keys: key_options(db_keys::choices(&state.pool, tenant_id).await?, prefix),
        codes,
        filtered: filters.is_set(),
        csv: if filter_query.is_empty() {
            format!("{base}.csv")
        } else {
            format!("{base}.csv?{filter_query}")
        },
        key: filters.key,
        code: filters.code,
        from: filters.from,
        to: filters.to,
        address: filters.address,
        problems: filters.problems,
        pager,
    };
    html(&page)
}

fn key_options(keys: Vec<KeyChoice>, prefix: &str) -> Vec<KeyOption> {
    keys.into_iter()
        .map(|key| KeyOption {
            id: key.api_key_id.to_string(),
            label: format!(
                "{} ({})",
                key.name,
                masked(prefix, key.environment, &key.last_four)
            ),
        })
        .collect()
}

/// A CSV cell: quoted, and text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return first) made inert with a leading apostrophe.
fn cell(text: &str) -> String {
    let inert = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", inert.replace('"', "\"\""))
}

pub(super) async fn logs_csv(
    State(state): State<AppState>,
    member: TenantMember,
    Query(query): Query<LogsQuery>,
) -> AppResult<Response> {
    let clock = Clock::of(&member.user);
    let filters = Filters::read(query, &clock);
    if let Some(problem) = filters.problems.first() {
        return Err(crate::error::AppError::BadRequest(problem.clone()));
    }
    let entries = db_log::page(
        &state.pool,
        member.membership.tenant_id,
        &filters.parsed,
        filters.before,
        CSV_ROWS,
    )
    .await?;
    let mut body = String::from(
        "time,key_id,key,code,explanation,client_ip,method,path,user_agent,request_id,via\n",
    );
    let prefix = &state.config.key_prefix;
    for entry in &entries {
        let row = CallRow::new(entry, prefix, &clock);
        let fields = [
            entry
                .at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            entry.api_key_id.to_string(),
            row.key_label,
            row.code,
            row.explanation,
            row.client_ip,
            entry.method.clone().unwrap_or_default(),
            entry.path.clone().unwrap_or_default(),
            row.user_agent,
            row.request_id,
            entry.via.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|field| cell(field)).collect();
        body.push_str(&line.join(","));
        body.push('\n');
    }
    let name = format!("{}-request-log.csv", member.membership.slug);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Environment;
    use time::macros::datetime;

    fn entry(code: &str, detail: Option<&str>) -> LogEntry {
        LogEntry {
            request_log_id: Uuid::new_v4(),
            at: datetime!(2026-11-03 10:00 UTC),
            api_key_id: Uuid::new_v4(),
            code: code.into(),
            detail: detail.map(str::to_owned),
            via: "authorize".into(),
            client_ip: "203.0.113.9".into(),
            method: None,
            path: None,
            user_agent: None,
            request_id: None,
            key_name: Some("ci".into()),
            key_environment: Some(Environment::Test),
            key_last_four: Some("4f2a".into()),
            key_revoked_at: None,
            key_revoked_by_name: None,
            key_expires_at: None,
            key_rolled_at: None,
        }
    }

    fn explain(entry: &LogEntry) -> String {
        super::explain(entry, &Clock::new("UTC", datetime!(2026-12-01 12:00 UTC)))
    }

    #[test]
    fn every_refusal_reads_as_a_sentence_with_its_reason() {
        let mut revoked = entry("REVOKED", None);
        revoked.key_revoked_at = Some(datetime!(2026-11-03 09:00 UTC));
        revoked.key_revoked_by_name = Some("Ada".into());
        assert_eq!(
            explain(&revoked),
            "The key was revoked by Ada on 3 Nov 2026."
        );
        let mut expired = entry("EXPIRED", None);
        expired.key_expires_at = Some(datetime!(2026-11-02 08:00 UTC));
        assert_eq!(
            explain(&expired),
            "The key expired on 2 Nov 2026, 08:00 UTC."
        );
        // In the viewer's zone, named.
        assert_eq!(
            super::explain(
                &expired,
                &Clock::new("Europe/Berlin", datetime!(2026-12-01 12:00 UTC))
            ),
            "The key expired on 2 Nov 2026, 09:00 CET."
        );
        assert_eq!(
            explain(&entry("ENVIRONMENT_MISMATCH", Some("live"))),
            "A test key on a live route."
        );
        assert_eq!(
            explain(&entry("INSUFFICIENT_SCOPE", Some("write"))),
            "The key lacks the write scope."
        );
        assert_eq!(
            explain(&entry("INSUFFICIENT_SCOPE", Some("write admin"))),
            "The key lacks the scopes write, admin."
        );
        assert_eq!(
            explain(&entry("RATE_LIMITED", Some("100"))),
            "Rate limited: 100 requests per minute."
        );
        assert_eq!(
            explain(&entry("IP_NOT_ALLOWED", Some("198.51.100.7"))),
            "The address 198.51.100.7 is not on this API key's allowlist."
        );
        // Recorded before the address checked was kept: the client's.
        assert_eq!(
            explain(&entry("IP_NOT_ALLOWED", None)),
            "The address 203.0.113.9 is not on this API key's allowlist."
        );
        assert_eq!(explain(&entry("DISABLED", None)), "The key was disabled.");
        assert_eq!(
            explain(&entry("TENANT_SUSPENDED", None)),
            "The tenant is suspended."
        );
        assert_eq!(
            explain(&entry("SOMETHING_NEW", None)),
            "Refused (SOMETHING_NEW)."
        );
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_made_inert() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("/api/orders"), "\"/api/orders\"");
    }

    #[test]
    fn bad_filters_are_named_and_good_ones_kept() {
        let berlin = Clock::new("Europe/Berlin", datetime!(2026-12-01 12:00 UTC));
        let filters = Filters::read(
            LogsQuery {
                from: Some("yesterday".into()),
                address: Some("203.0.113.300".into()),
                code: Some("REVOKED".into()),
                to: Some("2026-11-03T14:30".into()),
                ..LogsQuery::default()
            },
            &berlin,
        );
        assert_eq!(filters.problems.len(), 2, "{:?}", filters.problems);
        assert!(filters.problems[0].starts_with("From must be"));
        assert!(filters.problems[1].contains("203.0.113.300"));
        assert_eq!(filters.parsed.code.as_deref(), Some("REVOKED"));
        // Typed on the viewer's clock: 14:30 in Berlin is 13:30 UTC.
        assert_eq!(filters.parsed.to, Some(datetime!(2026-11-03 13:30 UTC)));
        assert_eq!(
            filters.query_string(),
            "code=REVOKED&from=yesterday&to=2026-11-03T14%3A30&address=203.0.113.300"
        );
    }

    #[test]
    fn a_cursor_round_trips() {
        let row = entry("VALID", None);
        assert_eq!(
            parse_cursor(&cursor(&row)),
            Some((row.at, row.request_log_id))
        );
        assert_eq!(parse_cursor("nonsense"), None);
    }
}
