//! `/v1/tenants/{tenant}/members…` and `/invitations…` (members:read, members:write), and
//! `/v1/tenants/{tenant}/audit` (audit:read). Changes go through the portal's domain functions,
//! so the last-admin rule, mails, webhooks and the audit trail hold as in the portal.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::db::invitations as db_invitations;
use crate::db::management as db_management;
use crate::db::tenants as db_tenants;
use crate::domain::invitations::{self, InvitationMail};
use crate::domain::management::Scope;
use crate::domain::tenants;
use crate::vocabulary::Role;

use super::caller::Caller;
use super::{
    ApiError, ApiResult, ErrorBody, JsonBody, Page, StrictQuery, created, decode_cursor, page_size,
    paged, rfc3339,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// The membership's id.
    pub id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    /// `admin`, `developer` or `viewer`.
    pub role: String,
    #[schema(format = DateTime)]
    pub joined_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

impl From<db_invitations::Invitation> for Invitation {
    fn from(invitation: db_invitations::Invitation) -> Self {
        Self {
            id: invitation.invitation_id,
            email: invitation.email,
            role: invitation.role.as_str().to_owned(),
            created_at: rfc3339(invitation.created_at),
            expires_at: rfc3339(invitation.expires_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    /// `admin`, `developer` or `viewer`.
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub email: String,
    /// `admin`, `developer` or `viewer`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    /// `key.created`, `member.removed`, `tenant.suspended`, …
    pub action: String,
    pub target: String,
    /// The person who acted, when one did.
    pub actor_email: Option<String>,
    /// The management API token that acted, when no person did.
    pub actor_token: Option<String>,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    /// Only events with this action.
    pub action: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn role(value: &str) -> ApiResult<Role> {
    Role::parse(value).map_err(|why| ApiError::invalid("role", why))
}

fn member_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/members", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`")),
    security(("operator_token" = []), ("tenant_token" = ["members:read"])),
    responses(
        (status = 200, description = "Every member (one page)", body = Page<Member>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing members:read", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
) -> ApiResult<Json<Page<Member>>> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::MembersRead)
        .await?;
    let members = db_tenants::members(&state.pool, tenant.tenant_id).await?;
    Ok(Json(Page {
        data: members
            .into_iter()
            .map(|member| Member {
                id: member.membership_id,
                user_id: member.app_user_id,
                email: member.email,
                name: member.display_name,
                role: member.role.as_str().to_owned(),
                joined_at: rfc3339(member.created_at),
            })
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/members/{member_id}", tag = "members", request_body = ChangeRole,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("member_id" = Uuid, Path, description = "The membership's id")),
    security(("operator_token" = []), ("tenant_token" = ["members:write"])),
    responses(
        (status = 204, description = "The role is changed"),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing members:write", body = ErrorBody),
        (status = 404, description = "No such tenant or member", body = ErrorBody),
        (status = 409, description = "The last admin cannot be demoted", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Not a role", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ChangeRole>,
) -> ApiResult<StatusCode> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::MembersWrite)
        .await?;
    let id = member_id(&id)?;
    let role = role(&body.role)?;
    tenants::change_role(&state.pool, tenant.tenant_id, id, role, &caller.actor)
        .await?
        .map_err(|problem| ApiError::conflict(problem.message()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/members/{member_id}", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("member_id" = Uuid, Path, description = "The membership's id")),
    security(("operator_token" = []), ("tenant_token" = ["members:write"])),
    responses(
        (status = 204, description = "The member is removed"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing members:write", body = ErrorBody),
        (status = 404, description = "No such tenant or member", body = ErrorBody),
        (status = 409, description = "The last admin cannot be removed", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::MembersWrite)
        .await?;
    let id = member_id(&id)?;
    tenants::remove_member(
        &state.pool,
        tenant.tenant_id,
        id,
        "member.removed",
        &caller.actor,
    )
    .await?
    .map_err(|problem| ApiError::conflict(problem.message()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/invitations", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`")),
    security(("operator_token" = []), ("tenant_token" = ["members:read"])),
    responses(
        (status = 200, description = "Pending invitations (one page)", body = Page<Invitation>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing members:read", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
) -> ApiResult<Json<Page<Invitation>>> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::MembersRead)
        .await?;
    let pending = db_invitations::pending(&state.pool, tenant.tenant_id).await?;
    Ok(Json(Page {
        data: pending.into_iter().map(Invitation::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/invitations", tag = "members", request_body = Invite,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["members:write"])),
    responses(
        (status = 201, description = "The invitation (its link is mailed to the address)", body = Invitation),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing members:write", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A bad address or role; already a member or invited", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    JsonBody(body): JsonBody<Invite>,
) -> ApiResult<Response> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::MembersWrite)
        .await?;
    role(&body.role)?;
    let mail = InvitationMail {
        public_url: &state.config.public_url,
        tenant_name: &tenant.name,
    };
    let issued = invitations::invite(
        &state.pool,
        tenant.tenant_id,
        &body.email,
        &body.role,
        &caller.actor,
        &mail,
    )
    .await?
    .map_err(|why| ApiError::invalid("email", why))?;
    Ok(created(Invitation::from(issued.invitation)))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/invitations/{invitation_id}/revoke", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("invitation_id" = Uuid, Path, description = "The invitation's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["members:write"])),
    responses(
        (status = 204, description = "The invitation link no longer works"),
        (status = 400, description = "Bad Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing members:write", body = ErrorBody),
        (status = 404, description = "No such tenant or pending invitation", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::MembersWrite)
        .await?;
    let id = member_id(&id)?;
    invitations::revoke_invitation(&state.pool, tenant.tenant_id, id, &caller.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/audit", tag = "audit",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"), ListAudit),
    security(("operator_token" = []), ("tenant_token" = ["audit:read"])),
    responses(
        (status = 200, description = "Audit events, oldest first", body = Page<AuditEvent>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing audit:read", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "Bad limit or cursor", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    StrictQuery(query): StrictQuery<ListAudit>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    let tenant = caller.tenant_with(&state, &named, Scope::AuditRead).await?;
    let limit = page_size(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let rows = db_management::audit_events(
        &state.pool,
        tenant.tenant_id,
        query.action.as_deref(),
        after,
        limit + 1,
    )
    .await?;
    Ok(Json(paged(
        rows,
        limit,
        |row| (row.at, row.audit_event_id),
        |row| AuditEvent {
            id: row.audit_event_id,
            action: row.action,
            target: row.target,
            actor_email: row.actor_email,
            actor_token: row.actor_token,
            request_id: row.request_id,
            client_ip: row.client_ip,
            details: row.details,
            at: rfc3339(row.at),
        },
    )))
}
