//! `/t/{slug}/usage` and `/t/{slug}/keys/{id}/usage` (+ `.csv`): verifications over time, split
//! by outcome, as a server-rendered SVG chart with the same figures in a table beneath.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

mod chart;
mod load;
mod outcomes;

pub use chart::Chart;
use chart::{bucket_label, chart, daily};
use load::load_tenant;
pub use load::{grain, load};
pub use outcomes::{
    BusyRow, DeadKeyCalls, OUTCOMES, Outcome, busy_rows, dead_key_calls, figures, shown_outcomes,
};

use super::{TenantMember, TenantNav};
use crate::app::AppState;
use crate::db::keys as db_keys;
use crate::db::usage as db_usage;
use crate::domain::keys::format::masked;
use crate::domain::usage::Counts;
use crate::error::{AppError, AppResult};
use crate::vocabulary::{Environment, Window};
use crate::web::page::{Clock, Layout, html};

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

pub struct Row {
    pub label: String,
    pub figures: Vec<(&'static Outcome, i64)>,
    pub total: i64,
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
    html(&page)
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
