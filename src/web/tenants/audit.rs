//! `/t/{slug}/audit`: the tenant's audit log, filtered by action, newest first.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{TenantMember, TenantNav};
use crate::app::AppState;
use crate::db::audit;
use crate::error::AppResult;
use crate::web::format::date_time;
use crate::web::session::encode;
use crate::web::{Layout, render};

const AUDIT_PAGE_SIZE: i64 = 50;

struct EventRow {
    at: String,
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
    details
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(text) => format!("{key}: {text}"),
                    other => format!("{key}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "tenants/audit.html")]
struct AuditPage {
    layout: Layout,
    tenant: TenantNav,
    events: Vec<EventRow>,
    actions: Vec<String>,
    action: String,
    newer: Option<String>,
    older: Option<String>,
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
    let page = i64::from(query.page.unwrap_or(1).max(1));
    let mut events = audit::page(
        &state.pool,
        member.tenant_id(),
        action.as_deref(),
        AUDIT_PAGE_SIZE + 1,
        (page - 1) * AUDIT_PAGE_SIZE,
    )
    .await?;
    let has_older = events.len() > usize::try_from(AUDIT_PAGE_SIZE).unwrap_or(usize::MAX);
    events.truncate(usize::try_from(AUDIT_PAGE_SIZE).unwrap_or(usize::MAX));
    let slug = &member.membership.slug;
    let link = |page: i64| {
        let mut url = format!("/t/{slug}/audit?page={page}");
        if let Some(action) = &action {
            url.push_str(&format!("&action={}", encode(action)));
        }
        url
    };
    let page_view = AuditPage {
        layout: member.layout().await?,
        tenant: member.nav("audit"),
        actions: audit::actions(&state.pool, member.tenant_id()).await?,
        events: events
            .into_iter()
            .map(|event| EventRow {
                at: date_time(event.at),
                actor: match (event.actor_name, event.actor_email) {
                    (Some(name), Some(email)) => format!("{name} <{email}>"),
                    _ => "a deleted user".into(),
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
        newer: (page > 1).then(|| link(page - 1)),
        older: has_older.then(|| link(page + 1)),
    };
    Ok(render(&page_view)?.into_response())
}
