//! `/t/{slug}/audit`: the tenant's audit log, filtered by action, newest first.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{TenantMember, TenantNav};
use crate::app::AppState;
use crate::db::audit;
use crate::error::AppResult;
use crate::web::page::{Clock, Layout, Pager, Paging, When, html};

const AUDIT_PAGE_SIZE: i64 = 50;

struct EventRow {
    at: When,
    actor: String,
    action: String,
    target: String,
    details: String,
    client_ip: String,
    request_id: String,
    request_short: String,
}

/// `{"from":"viewer","to":"admin"}` as `from: viewer · to: admin`.
fn describe(details: &serde_json::Value) -> String {
    detail_lines(details).join(" · ")
}

/// An event's details, a `field: value` line each (`name: old → new` for changes).
pub(super) fn detail_lines(details: &serde_json::Value) -> Vec<String> {
    details
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(text) => format!("{key}: {text}"),
                    other => format!("{key}: {other}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Who acted, by name: a person, or a machine's label ("Operator", "API token “…”"); a person
/// whose account is gone reads as "a former member".
pub(super) fn actor_name(event: &audit::Event) -> String {
    event
        .actor_name
        .clone()
        .or_else(|| event.actor_token.clone())
        .unwrap_or_else(|| "a former member".into())
}

#[derive(Template)]
#[template(path = "tenants/audit.html")]
struct AuditPage {
    layout: Layout,
    tenant: TenantNav,
    events: Vec<EventRow>,
    actions: Vec<String>,
    action: String,
    pager: Pager,
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    action: Option<String>,
    page: Option<u32>,
}

pub(super) async fn list_audit_events(
    State(state): State<AppState>,
    member: TenantMember,
    Query(query): Query<AuditQuery>,
) -> AppResult<Response> {
    let action = query.action.filter(|a| !a.is_empty());
    let paging = Paging::new(query.page, AUDIT_PAGE_SIZE);
    let mut events = audit::page(
        &state.pool,
        member.tenant_id(),
        action.as_deref(),
        paging.limit(),
        paging.offset(),
    )
    .await?;
    let pager = paging.pager(
        &mut events,
        &format!("/t/{}/audit", member.membership.slug),
        &[("action", action.as_deref())],
    );
    let clock = Clock::of(&member.user);
    let page_view = AuditPage {
        layout: member.layout().await?,
        tenant: member.nav("audit"),
        actions: audit::actions(&state.pool, member.tenant_id()).await?,
        events: events
            .into_iter()
            .map(|event| EventRow {
                at: clock.stamp(event.at),
                actor: match &event.actor_email {
                    Some(email) => format!("{} <{email}>", actor_name(&event)),
                    None => actor_name(&event),
                },
                action: event.action,
                target: event.target,
                details: describe(&event.details),
                client_ip: event.client_ip.unwrap_or_default(),
                request_short: event
                    .request_id
                    .as_deref()
                    .unwrap_or_default()
                    .chars()
                    .take(8)
                    .collect(),
                request_id: event.request_id.unwrap_or_default(),
            })
            .collect(),
        action: action.clone().unwrap_or_default(),
        pager,
    };
    html(&page_view)
}
