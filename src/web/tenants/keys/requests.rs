//! `/t/{slug}/key-requests/{id}`: a request for a live key, its approval or denial (admins), and
//! revealing the approved key once (its requester).

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::create::created_page;
use crate::app::AppState;
use crate::db::key_requests::{self as db_requests, KeyRequest, RequestStatus};
use crate::domain::keys::Access;
use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::requests::{self as key_requests, RequestProblem, RevealRefusal};
use crate::error::{AppError, AppResult};
use crate::vocabulary::Role;
use crate::web::page::{Clock, Layout, When, html, html_with_status};
use crate::web::session;
use crate::web::tenants::{TenantMember, TenantNav, member_name};

/// A request as a list or its page shows it.
pub struct RequestView {
    pub id: Uuid,
    pub name: String,
    pub requester: String,
    pub access: String,
    pub expires: When,
    pub ip_allowlist: String,
    pub reason: String,
    pub status: &'static str,
    pub asked: When,
}

impl RequestView {
    pub fn new(request: &KeyRequest, clock: &Clock) -> Self {
        Self {
            id: request.key_request_id,
            name: request.name.clone(),
            requester: member_name(request.requested_by_name.clone()),
            access: Access::stored(request.full_access, request.scopes.clone()).label(),
            expires: clock.at_or_never(request.expires_at),
            ip_allowlist: IpAllowlist::stored(&request.ip_allowlist).label(),
            reason: request.reason.clone(),
            status: request.status.as_str(),
            asked: clock.at(request.created_at),
        }
    }
}

/// The pending requests an admin sees on the keys page.
pub async fn pending(state: &AppState, member: &TenantMember) -> AppResult<Vec<RequestView>> {
    if member.role < Role::Admin {
        return Ok(Vec::new());
    }
    let rows = db_requests::list(
        &state.pool,
        member.membership.tenant_id,
        RequestStatus::Pending,
    )
    .await?;
    let clock = Clock::of(&member.user);
    Ok(rows
        .iter()
        .map(|request| RequestView::new(request, &clock))
        .collect())
}

#[derive(Template)]
#[template(path = "keys/request.html")]
struct RequestPage {
    layout: Layout,
    tenant: TenantNav,
    request: RequestView,
    decided_by: String,
    decided_at: Option<When>,
    decision_reason: String,
    key_id: Option<Uuid>,
    can_decide: bool,
    can_reveal: bool,
    error: Option<String>,
}

async fn load(state: &AppState, member: &TenantMember, id: Uuid) -> AppResult<KeyRequest> {
    db_requests::get(&state.pool, member.membership.tenant_id, id)
        .await?
        .ok_or(AppError::NotFound)
}

async fn request_page(
    state: &AppState,
    member: &TenantMember,
    id: Uuid,
    error: Option<String>,
) -> AppResult<RequestPage> {
    let request = load(state, member, id).await?;
    let is_requester = request.requested_by == Some(member.user.app_user_id);
    // Developers see their own requests; admins every request of the tenant.
    if !is_requester && member.role < Role::Admin {
        return Err(AppError::Forbidden(
            "Only the person who asked and the tenant's admins can see this request.".into(),
        ));
    }
    Ok(RequestPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        can_decide: member.role >= Role::Admin && request.status == RequestStatus::Pending,
        can_reveal: is_requester && request.status == RequestStatus::Approved,
        decided_by: member_name(request.decided_by_name.clone()),
        decided_at: request.decided_at.map(|at| Clock::of(&member.user).at(at)),
        decision_reason: request.decision_reason.clone(),
        key_id: request.api_key_id,
        request: RequestView::new(&request, &Clock::of(&member.user)),
        error,
    })
}

pub async fn show_request(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let page = request_page(&state, &member, id, None).await?;
    html(&page)
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    reason: String,
}

pub async fn approve_request(
    state: State<AppState>,
    member: TenantMember,
    path: Path<(String, Uuid)>,
    form: Form<DecisionForm>,
) -> AppResult<Response> {
    decide(state, member, path, form, true).await
}

pub async fn deny_request(
    state: State<AppState>,
    member: TenantMember,
    path: Path<(String, Uuid)>,
    form: Form<DecisionForm>,
) -> AppResult<Response> {
    decide(state, member, path, form, false).await
}

async fn decide(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
    Form(form): Form<DecisionForm>,
    approve: bool,
) -> AppResult<Response> {
    let decided = key_requests::decide(
        &state.pool,
        &state.config.keys(),
        member.membership.tenant_id,
        id,
        approve,
        &form.reason,
        &member.actor,
    )
    .await?;
    if let Err(problem) = decided {
        return refused(&state, &member, id, &problem).await;
    }
    let message = if approve {
        "Request approved. The developer is mailed and reveals the key from the request's page."
    } else {
        "Request denied. The developer is mailed with your reason."
    };
    session::flash(&member.session, message).await?;
    Ok(Redirect::to(&format!("/t/{}/keys", member.membership.slug)).into_response())
}

async fn refused(
    state: &AppState,
    member: &TenantMember,
    id: Uuid,
    problem: &RequestProblem,
) -> AppResult<Response> {
    let status = match problem {
        RequestProblem::ReasonNeeded(_) | RequestProblem::ReasonTooLong => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RequestProblem::NotTheRequester => StatusCode::FORBIDDEN,
        RequestProblem::NotPending(_) | RequestProblem::NotRevealable(_) => StatusCode::CONFLICT,
    };
    let page = request_page(state, member, id, Some(problem.message())).await?;
    html_with_status(status, &page)
}

pub async fn reveal_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let revealed = key_requests::reveal(
        &state.pool,
        &state.config.keys(),
        member.membership.tenant_id,
        id,
        member.requester(),
    )
    .await?;
    let (key, key_id, name) = match revealed {
        Ok(revealed) => revealed,
        Err(RevealRefusal::Request(problem)) => {
            return refused(&state, &member, id, &problem).await;
        }
        // The tenant's policy or the account changed since the approval: say what now stands in
        // the way, on the request's page.
        Err(RevealRefusal::Rules(errors)) => {
            let why = errors
                .all()
                .into_iter()
                .map(|(_, why)| why)
                .collect::<Vec<_>>()
                .join(" ");
            let page = request_page(&state, &member, id, Some(why)).await?;
            return html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    tracing::info!(key.id = %key_id, request.id = %id, "approved key revealed");
    let layout = member.layout().await?;
    let page = created_page(&state, &member, layout, &key, key_id, name, None);
    html(&page)
}
