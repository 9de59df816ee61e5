//! `/v1/tenants` and `/v1/tenants/{tenant}` (operator tokens; a tenant token may read its own).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::db::management::{self as db_management, ApiTenant};
use crate::domain::management::{self, NewTenant};
use crate::domain::tenants;

use super::caller::Caller;
use super::{
    ApiResult, ErrorBody, JsonBody, Page, StrictQuery, created, decode_cursor, page_size, paged,
    rfc3339,
};

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// The platform's own id for this tenant.
    pub external_id: Option<String>,
    pub suspended: bool,
    #[schema(format = DateTime)]
    pub suspended_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<ApiTenant> for Tenant {
    fn from(tenant: ApiTenant) -> Self {
        Self {
            id: tenant.tenant_id,
            slug: tenant.slug,
            name: tenant.name,
            external_id: tenant.external_id,
            suspended: tenant.suspended_at.is_some(),
            suspended_at: tenant.suspended_at.map(rfc3339),
            created_at: rfc3339(tenant.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1-80 characters.
    pub name: String,
    /// 3-40 lowercase letters, digits and inner hyphens; made from the name when absent.
    pub slug: Option<String>,
    /// The platform's own id (unique): 1-128 letters, digits and `._:-`.
    pub external_id: Option<String>,
    /// Invited as the tenant's first admin (the invitation mail is sent).
    pub admin_email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<String>,
    pub external_id: Option<String>,
    /// `true` suspends the tenant (its keys answer `TENANT_SUSPENDED`); `false` resumes it.
    pub suspended: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTenants {
    /// Only the tenant with this external id.
    pub external_id: Option<String>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListTenants),
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "Tenants in creation order", body = Page<Tenant>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an operator token", body = ErrorBody),
        (status = 422, description = "Bad limit or cursor", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<ListTenants>,
) -> ApiResult<Json<Page<Tenant>>> {
    caller.operator_only()?;
    let limit = page_size(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let rows =
        db_management::tenants(&state.pool, query.external_id.as_deref(), after, limit + 1).await?;
    Ok(Json(paged(
        rows,
        limit,
        |row| (row.created_at, row.tenant_id),
        Tenant::from,
    )))
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = [])),
    responses(
        (status = 201, description = "The tenant (its admin invited)", body = Tenant),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an operator token", body = ErrorBody),
        (status = 409, description = "Slug or external id taken; Idempotency-Key reused", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateTenant>,
) -> ApiResult<Response> {
    caller.operator_only()?;
    let request = NewTenant {
        name: body.name,
        slug: body.slug,
        external_id: body.external_id,
        admin_email: body.admin_email,
    };
    let tenant = management::provision_tenant(
        &state.pool,
        &state.config.public_url,
        &request,
        &caller.actor,
    )
    .await??;
    Ok(created(Tenant::from(tenant)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`")),
    security(("operator_token" = []), ("tenant_token" = [])),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such tenant (or not the token's)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
) -> ApiResult<Json<Tenant>> {
    Ok(Json(caller.tenant(&state, &named).await?.into()))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", request_body = UpdateTenant,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`")),
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The tenant as changed", body = Tenant),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "External id taken", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    JsonBody(body): JsonBody<UpdateTenant>,
) -> ApiResult<Json<Tenant>> {
    let tenant = caller.tenant(&state, &named).await?;
    caller.operator_only()?;
    let id = tenant.tenant_id;
    if let Some(name) = &body.name {
        tenants::rename_tenant(&state.pool, id, &tenant.name, name, &caller.actor)
            .await?
            .map_err(|why| super::ApiError::invalid("name", why))?;
    }
    if let Some(external_id) = &body.external_id {
        management::set_external_id(&state.pool, id, external_id, &caller.actor).await??;
    }
    if let Some(suspended) = body.suspended {
        management::set_suspended(&state.pool, id, suspended, &caller.actor).await?;
    }
    let tenant = db_management::tenant(&state.pool, Some(id), None, None)
        .await?
        .ok_or_else(super::ApiError::not_found)?;
    Ok(Json(tenant.into()))
}
