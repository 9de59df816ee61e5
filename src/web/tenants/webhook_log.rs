//! `/t/{slug}/webhooks/{id}`: an endpoint's page with its delivery log, newest first, a page at a
//! time: each attempt's status, latency, error, the headers sent (secrets hidden), the answer and
//! the JSON body that was sent; `?failed=1` keeps only the attempts that failed.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::webhooks::{EndpointView, endpoint_path, load};
use crate::app::AppState;
use crate::db::webhooks::{self as db_webhooks, Attempt};
use crate::error::AppResult;
use crate::vocabulary::Role;
use crate::web::page::{Clock, Layout, Pager, Paging, When, html};
use crate::web::tenants::{TenantMember, TenantNav};

/// Attempts a page of an endpoint's delivery log lists.
const LOG_LENGTH: i64 = 50;

/// One line of the delivery log.
struct AttemptView {
    at: When,
    event_id: String,
    event_type: String,
    status: String,
    ok: bool,
    duration_ms: i32,
    error: String,
    response: String,
    headers: Vec<(String, String)>,
    /// The JSON body that was sent, pretty-printed.
    body: String,
}

impl AttemptView {
    fn of(attempt: Attempt, clock: &Clock) -> Self {
        let headers = attempt
            .request_headers
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            at: clock.at(attempt.attempted_at),
            ok: attempt.error.is_none(),
            status: attempt
                .status
                .map_or_else(|| "—".to_owned(), |s| s.to_string()),
            event_id: attempt.webhook_event_id,
            event_type: attempt.event_type,
            duration_ms: attempt.duration_ms,
            error: attempt.error.unwrap_or_default(),
            response: attempt.response.unwrap_or_default(),
            headers,
            body: serde_json::to_string_pretty(&attempt.payload).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks/show.html")]
struct WebhookPage {
    layout: Layout,
    tenant: TenantNav,
    endpoint: EndpointView,
    attempts: Vec<AttemptView>,
    failed_only: bool,
    pager: Pager,
    can_manage: bool,
}

/// `?page=` and `?failed=1` (only the deliveries that failed) of an endpoint's delivery log.
#[derive(Deserialize)]
pub struct LogQuery {
    page: Option<u32>,
    failed: Option<String>,
}

pub async fn show_webhook(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
    Query(query): Query<LogQuery>,
) -> AppResult<Response> {
    let endpoint = load(&state, &member, id).await?;
    let failed_only = query.failed.as_deref().is_some_and(|v| !v.is_empty());
    let paging = Paging::new(query.page, LOG_LENGTH);
    let mut attempts = db_webhooks::attempts(
        &state.pool,
        member.tenant_id(),
        id,
        failed_only,
        paging.limit(),
        paging.offset(),
    )
    .await?;
    let pager = paging.pager(
        &mut attempts,
        &endpoint_path(&member, id),
        &[("failed", failed_only.then_some("1"))],
    );
    let clock = Clock::of(&member.user);
    let page = WebhookPage {
        layout: member.layout().await?,
        tenant: member.nav("webhooks"),
        endpoint: EndpointView::of(&endpoint, &clock, member.role),
        attempts: attempts
            .into_iter()
            .map(|attempt| AttemptView::of(attempt, &clock))
            .collect(),
        failed_only,
        pager,
        can_manage: member.role >= Role::Admin,
    };
    html(&page)
}
