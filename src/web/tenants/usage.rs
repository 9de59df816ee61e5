//! `/t/{slug}/usage` and `/t/{slug}/keys/{id}/usage` (+ `.csv`): verifications over time, split
//! by outcome, as a server-rendered SVG chart with the same figures in a table beneath.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::{TenantMember, TenantNav};
use crate::app::AppState;
use crate::db::keys as db_keys;
use crate::db::management as db_management;
use crate::db::usage::{self as db_usage, BusyKey, Grain};
use crate::domain::key_format::masked;
use crate::domain::usage::{Counts, nice_ceiling, series};
use crate::error::{AppError, AppResult};
use crate::vocabulary::Code;
use crate::vocabulary::Environment;
use crate::vocabulary::Window;
use crate::web::page::{Clock, Layout, render};

#[derive(Deserialize)]
pub struct UsageQuery {
    range: Option<String>,
    /// The key filter of the tenant's page: its figures are the key's own page.
    key: Option<String>,
    /// The environment filter of the tenant's page: `live` or `test`; anything else shows both.
    environment: Option<String>,
}

impl UsageQuery {
    fn environment(&self) -> Option<Environment> {
        self.environment.as_deref().and_then(Environment::parse)
    }
}

/// Keys offered by the tenant usage page's key filter (newest first).
const KEY_CHOICES: i64 = 100;

/// A window's figures for a tenant's keys of one environment, or for all of them.
async fn load_tenant(
    state: &AppState,
    tenant_id: Uuid,
    environment: Option<Environment>,
    window: Window,
) -> AppResult<Vec<(OffsetDateTime, Counts)>> {
    let Some(environment) = environment else {
        return load(state, tenant_id, None, window).await;
    };
    // The tenant roll-ups have no environment: summed from its keys' counters, as the
    // management API's usage does (this grows with the number of keys; the unfiltered page not).
    let now = OffsetDateTime::now_utc();
    let rows = db_management::usage(
        &state.pool,
        tenant_id,
        (window.start(now), now + time::Duration::DAY),
        grain(window).as_str(),
        None,
        Some(environment),
    )
    .await?;
    Ok(series(window, now, rows))
}

/// A window's figures for a tenant, or one key of it.
pub async fn load(
    state: &AppState,
    tenant_id: Uuid,
    api_key_id: Option<Uuid>,
    window: Window,
) -> AppResult<Vec<(OffsetDateTime, Counts)>> {
    let now = OffsetDateTime::now_utc();
    let since = window.start(now);
    let rows = match api_key_id {
        Some(key) => {
            db_usage::key_counts(&state.pool, tenant_id, key, since, grain(window)).await?
        }
        None => db_usage::tenant_counts(&state.pool, tenant_id, since, grain(window)).await?,
    };
    Ok(series(window, now, rows))
}

/// The coarsest counters that still give the window's buckets.
pub fn grain(window: Window) -> Grain {
    match window {
        Window::Hour => Grain::Minute,
        Window::Day => Grain::Hour,
        Window::Month | Window::Quarter => Grain::Day,
    }
}

/// Whether the window's buckets are whole (UTC) days, labelled by date alone.
fn daily(window: Window) -> bool {
    matches!(window, Window::Month | Window::Quarter)
}

/// A bucket as the chart and table name it: minutes and hours at the viewer's time of day
/// ("14:05", dated "3 Nov 14:05" when `dated`), days by their date ("3 Nov", UTC days).
fn bucket_label(window: Window, at: OffsetDateTime, clock: &Clock, dated: bool) -> String {
    if daily(window) {
        return at
            .format(format_description!("[day padding:none] [month repr:short]"))
            .unwrap_or_default();
    }
    let local = clock.local_time(at);
    let text = if dated {
        local.format(format_description!(
            "[day padding:none] [month repr:short] [hour]:[minute]"
        ))
    } else {
        local.format(format_description!("[hour]:[minute]"))
    };
    text.unwrap_or_default()
}

/// What one bar counts, for the y-axis and the chart's title: "verifications per hour".
fn unit(window: Window) -> &'static str {
    match window {
        Window::Hour => "verifications per minute",
        Window::Day => "verifications per hour",
        Window::Month | Window::Quarter => "verifications per day (UTC)",
    }
}

/// An answer of the key API as the usage pages name and colour it, in the order the chart
/// stacks them: valid first, then each refusal by its reason.
pub struct Outcome {
    pub code: Code,
    pub name: &'static str,
    /// The CSS class of its bars and legend swatch.
    pub chart: &'static str,
    /// The CSS class of its figures.
    pub tone: &'static str,
}

const fn outcome(
    code: Code,
    name: &'static str,
    chart: &'static str,
    tone: &'static str,
) -> Outcome {
    Outcome {
        code,
        name,
        chart,
        tone,
    }
}

pub const OUTCOMES: [Outcome; Code::ALL.len()] = [
    outcome(Code::Valid, "valid", "o-valid", "ok"),
    outcome(Code::RateLimited, "rate limited", "o-limited", "warn"),
    outcome(Code::Revoked, "revoked key", "o-revoked", "bad"),
    outcome(Code::Expired, "expired key", "o-expired", "bad"),
    outcome(
        Code::EnvironmentMismatch,
        "wrong environment",
        "o-environment",
        "bad",
    ),
    outcome(Code::TenantMismatch, "other tenant", "o-tenant", "bad"),
    outcome(Code::InsufficientScope, "missing scope", "o-scope", "bad"),
    outcome(Code::Disabled, "disabled key", "o-disabled", "bad"),
    outcome(
        Code::IpNotAllowed,
        "address not allowed",
        "o-address",
        "bad",
    ),
    outcome(
        Code::TenantSuspended,
        "tenant suspended",
        "o-suspended",
        "bad",
    ),
    outcome(Code::Malformed, "malformed key", "o-malformed", "bad"),
    outcome(Code::NotFound, "unknown key", "o-unknown", "bad"),
];

/// The outcomes worth a column, a figure and a legend entry in a period: valid always, each
/// refusal only when it happened.
pub fn shown_outcomes(totals: &Counts) -> Vec<&'static Outcome> {
    OUTCOMES
        .iter()
        .filter(|outcome| outcome.code == Code::Valid || totals.get(outcome.code) > 0)
        .collect()
}

/// `counts` of each of `outcomes`.
pub fn figures(outcomes: &[&'static Outcome], counts: &Counts) -> Vec<(&'static Outcome, i64)> {
    outcomes
        .iter()
        .map(|outcome| (*outcome, counts.get(outcome.code)))
        .collect()
}

/// Calls with revoked or expired keys in a period, for the warning on the overview, usage and
/// key pages: the strongest security signal a tenant gets.
pub struct DeadKeyCalls {
    pub revoked: i64,
    pub expired: i64,
    /// "last 24 hours", …
    pub period: String,
    /// Where the figures by reason are, when the page is not that already.
    pub link: Option<String>,
}

pub fn dead_key_calls(
    totals: &Counts,
    window: Window,
    link: Option<String>,
) -> Option<DeadKeyCalls> {
    (totals.dead_key_calls() > 0).then(|| DeadKeyCalls {
        revoked: totals.get(Code::Revoked),
        expired: totals.get(Code::Expired),
        period: window.label().to_lowercase(),
        link,
    })
}

pub struct Segment {
    pub y: f64,
    pub height: f64,
    pub class: &'static str,
}

pub struct Bar {
    /// Its figures in words, shown above the chart while the bar has focus (keyboard, touch) or
    /// the pointer, and read out as its label.
    pub readout: String,
    pub x: f64,
    pub width: f64,
    pub segments: Vec<Segment>,
    pub title: String,
}

pub struct Tick {
    pub position: f64,
    pub label: String,
    /// Every other x label: phones show only the rest, so labels stay legible without overlapping.
    pub minor: bool,
}

/// An SVG stacked bar chart, laid out here so the template only draws.
pub struct Chart {
    /// The y-axis unit, written above the axis.
    pub unit: &'static str,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub plot_bottom: f64,
    pub bars: Vec<Bar>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
}

const CHART_WIDTH: f64 = 760.0;
const CHART_HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
/// Room above the plot for the unit and a focused bar's figures.
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

#[allow(clippy::cast_precision_loss)]
pub fn chart(window: Window, buckets: &[(OffsetDateTime, Counts)], clock: &Clock) -> Chart {
    let ceiling = nice_ceiling(buckets.iter().map(|(_, c)| c.total()).max().unwrap_or(0));
    let plot_height = CHART_HEIGHT - TOP - BOTTOM;
    let plot_bottom = CHART_HEIGHT - BOTTOM;
    let slot = (CHART_WIDTH - LEFT) / buckets.len().max(1) as f64;
    let scale = |count: i64| count as f64 / ceiling as f64 * plot_height;
    let bars = buckets
        .iter()
        .enumerate()
        .map(|(i, (at, counts))| {
            let mut y = plot_bottom;
            let mut segments = Vec::new();
            for outcome in &OUTCOMES {
                let count = counts.get(outcome.code);
                if count > 0 {
                    let height = scale(count);
                    y -= height;
                    segments.push(Segment {
                        y,
                        height,
                        class: outcome.chart,
                    });
                }
            }
            let figures: Vec<String> = OUTCOMES
                .iter()
                .filter_map(|outcome| {
                    let count = counts.get(outcome.code);
                    (count > 0).then(|| format!("{count} {}", outcome.name))
                })
                .collect();
            let figures = if figures.is_empty() {
                "no verifications".to_owned()
            } else {
                figures.join(", ")
            };
            let title = format!("{}: {figures}", bucket_label(window, *at, clock, true));
            Bar {
                readout: title.clone(),
                x: LEFT + i as f64 * slot + slot * 0.15,
                width: slot * 0.7,
                segments,
                title,
            }
        })
        .collect();
    let y_ticks = [0, ceiling / 2, ceiling]
        .into_iter()
        .map(|value| Tick {
            position: plot_bottom - scale(value),
            label: value.to_string(),
            minor: false,
        })
        .collect();
    let every = match window {
        Window::Hour => 10,
        Window::Day => 4,
        Window::Month => 5,
        Window::Quarter => 15,
    };
    // The first label, and each that starts another day, carries its date.
    let mut last_day = None;
    let x_ticks = buckets
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, (at, _))| {
            let day = clock.local_time(*at).date();
            let dated = last_day != Some(day);
            last_day = Some(day);
            Tick {
                position: LEFT + i as f64 * slot + slot / 2.0,
                label: bucket_label(window, *at, clock, dated),
                minor: (i / every) % 2 == 1,
            }
        })
        .collect();
    Chart {
        unit: unit(window),
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        left: LEFT,
        plot_bottom,
        bars,
        y_ticks,
        x_ticks,
    }
}

pub struct Row {
    pub label: String,
    pub figures: Vec<(&'static Outcome, i64)>,
    pub total: i64,
}

pub struct BusyRow {
    pub id: Uuid,
    pub masked: String,
    pub name: String,
    pub environment: Environment,
    pub valid: i64,
    pub total: i64,
}

pub fn busy_rows(prefix: &str, keys: Vec<BusyKey>) -> Vec<BusyRow> {
    keys.into_iter()
        .map(|key| BusyRow {
            id: key.api_key_id,
            masked: masked(prefix, key.environment, &key.last_four),
            name: key.name,
            environment: key.environment,
            valid: key.valid,
            total: key.total,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "usage/show.html")]
struct UsagePage {
    layout: Layout,
    tenant: TenantNav,
    /// The key's name and page, for a key's usage; none for the tenant's.
    key: Option<(String, String)>,
    base: String,
    window: Window,
    windows: [Window; Window::ALL.len()],
    /// The environment filter (tenant page only), and the query text that keeps it in links.
    environment: Option<Environment>,
    environment_query: String,
    environments: [Environment; 2],
    /// What the table's first column holds: "Time (Europe/Berlin)", "Day (UTC)".
    period_heading: String,
    chart: Chart,
    rows: Vec<Row>,
    /// Periods without a single verification, left out of the table.
    quiet_rows: usize,
    totals: Counts,
    dead_keys: Option<DeadKeyCalls>,
    outcomes: Vec<&'static Outcome>,
    totals_by_outcome: Vec<(&'static Outcome, i64)>,
    busiest: Vec<BusyRow>,
    /// The key filter's choices (tenant page only): id and "name (masked)".
    key_choices: Vec<(Uuid, String)>,
}

async fn usage_page(
    state: &AppState,
    member: &TenantMember,
    key_id: Option<Uuid>,
    environment: Option<Environment>,
    window: Window,
) -> AppResult<Response> {
    let tenant_id = member.membership.tenant_id;
    let slug = &member.membership.slug;
    let (key, base) = match key_id {
        Some(id) => {
            let key = db_keys::get(&state.pool, tenant_id, id)
                .await?
                .ok_or(AppError::NotFound)?;
            let label = format!(
                "{} ({})",
                key.name,
                masked(&state.config.key_prefix, key.environment, &key.last_four)
            );
            (
                Some((label, format!("/t/{slug}/keys/{id}"))),
                format!("/t/{slug}/keys/{id}/usage"),
            )
        }
        None => (None, format!("/t/{slug}/usage")),
    };
    let buckets = match key_id {
        Some(_) => load(state, tenant_id, key_id, window).await?,
        None => load_tenant(state, tenant_id, environment, window).await?,
    };
    let clock = Clock::of(&member.user);
    let totals = Counts::sum(buckets.iter().map(|(_, counts)| counts));
    let outcomes = shown_outcomes(&totals);
    let busiest = match key_id {
        None => busy_rows(
            &state.config.key_prefix,
            db_usage::busiest_keys(
                &state.pool,
                tenant_id,
                environment,
                window.start(OffsetDateTime::now_utc()),
                grain(window),
                10,
            )
            .await?,
        ),
        Some(_) => Vec::new(),
    };
    let key_choices = match key_id {
        None => {
            let all = db_keys::KeyFilter {
                environment: None,
                status: None,
                search: None,
            };
            db_keys::list(&state.pool, tenant_id, &all, KEY_CHOICES, 0)
                .await?
                .into_iter()
                .map(|key| {
                    let shown = masked(&state.config.key_prefix, key.environment, &key.last_four);
                    (key.api_key_id, format!("{} ({shown})", key.name))
                })
                .collect()
        }
        Some(_) => Vec::new(),
    };
    let page = UsagePage {
        layout: member.layout().await?,
        tenant: member.nav(if key_id.is_some() { "keys" } else { "usage" }),
        key,
        base,
        window,
        windows: Window::ALL,
        environment,
        environment_query: environment
            .map(|environment| format!("&environment={environment}"))
            .unwrap_or_default(),
        environments: Environment::ALL,
        chart: chart(window, &buckets, &clock),
        period_heading: if daily(window) {
            "Day (UTC)".to_owned()
        } else {
            format!("Time ({})", clock.zone_name())
        },
        rows: buckets
            .iter()
            .rev()
            .filter(|(_, counts)| counts.total() > 0)
            .map(|(at, counts)| Row {
                label: bucket_label(window, *at, &clock, true),
                figures: figures(&outcomes, counts),
                total: counts.total(),
            })
            .collect(),
        quiet_rows: buckets
            .iter()
            .filter(|(_, counts)| counts.total() == 0)
            .count(),
        totals_by_outcome: figures(&outcomes, &totals),
        dead_keys: dead_key_calls(&totals, window, None),
        totals,
        outcomes,
        busiest,
        key_choices,
    };
    Ok(render(&page)?.into_response())
}

fn csv(
    state_slug: &str,
    key_id: Option<Uuid>,
    window: Window,
    buckets: &[(OffsetDateTime, Counts)],
) -> Response {
    let mut body = String::from("bucket_start");
    for outcome in &OUTCOMES {
        body.push(',');
        body.push_str(&outcome.code.as_str().to_ascii_lowercase());
    }
    body.push_str(",total\n");
    for (at, counts) in buckets {
        body.push_str(
            &at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        );
        for outcome in &OUTCOMES {
            body.push_str(&format!(",{}", counts.get(outcome.code)));
        }
        body.push_str(&format!(",{}\n", counts.total()));
    }
    let name = match key_id {
        Some(id) => format!("{state_slug}-key-{id}-usage-{}.csv", window.as_str()),
        None => format!("{state_slug}-usage-{}.csv", window.as_str()),
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn show_tenant_usage(
    State(state): State<AppState>,
    member: TenantMember,
    Query(query): Query<UsageQuery>,
) -> AppResult<Response> {
    let window = Window::parse(query.range.as_deref());
    // Filtering by key leads to the key's own usage page (which checks the key is the tenant's).
    if let Some(key) = query.key.as_deref().filter(|key| !key.is_empty()) {
        let key: Uuid = key.parse().map_err(|_| AppError::NotFound)?;
        let slug = &member.membership.slug;
        let to = format!("/t/{slug}/keys/{key}/usage?range={}", window.as_str());
        return Ok(Redirect::to(&to).into_response());
    }
    usage_page(&state, &member, None, query.environment(), window).await
}

pub async fn tenant_usage_csv(
    State(state): State<AppState>,
    member: TenantMember,
    Query(query): Query<UsageQuery>,
) -> AppResult<Response> {
    let window = Window::parse(query.range.as_deref());
    let tenant_id = member.membership.tenant_id;
    let buckets = load_tenant(&state, tenant_id, query.environment(), window).await?;
    Ok(csv(&member.membership.slug, None, window, &buckets))
}

pub async fn show_key_usage(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
    Query(query): Query<UsageQuery>,
) -> AppResult<Response> {
    usage_page(
        &state,
        &member,
        Some(key_id),
        None,
        Window::parse(query.range.as_deref()),
    )
    .await
}

pub async fn key_usage_csv(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
    Query(query): Query<UsageQuery>,
) -> AppResult<Response> {
    let tenant_id = member.membership.tenant_id;
    db_keys::get(&state.pool, tenant_id, key_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let window = Window::parse(query.range.as_deref());
    let buckets = load(&state, tenant_id, Some(key_id), window).await?;
    Ok(csv(&member.membership.slug, Some(key_id), window, &buckets))
}
