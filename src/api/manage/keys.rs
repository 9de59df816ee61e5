//! `/v1/tenants/{tenant}/keys…` (keys:read, keys:write) and `POST /v1/keys/whoami` (operator).
//! Changes go through `domain::keys` and `domain::management`, so audit events, webhooks, mails
//! and cache invalidation happen as in the portal.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::db::keys::{self as db_keys, Key as KeyRow};
use crate::db::management as db_management;
use crate::domain::keys::format::{self as key_format, shown};
use crate::domain::keys::{
    self as domain_keys, AccessChoice, Admission, KeyChangeRequest, KeyErrors, KeyProblem,
    NewKeyRequest, Read, Refusal, Requester,
};
use crate::domain::management::{self, Scope};
use crate::vocabulary::Environment;

use super::caller::Caller;
use super::tenants::Tenant;
use super::{
    ApiError, ApiResult, ErrorBody, JsonBody, Page, StrictQuery, created, decode_cursor, page_size,
    paged, rfc3339,
};

/// A key, never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Key {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = String, example = "live")]
    pub environment: Environment,
    /// `ak_live_••••4f2a`
    pub masked: String,
    /// `active`, `expiring` (within 7 days), `expired`, `disabled`, `rolled` (working until its
    /// grace ends), `revoked`.
    pub status: String,
    /// Holds every scope of the deployment, also scopes added later.
    pub full_access: bool,
    pub scopes: Vec<String>,
    /// Verifications per minute.
    pub rate_limit: i32,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The key this one replaced by a roll.
    pub rolled_from: Option<Uuid>,
    /// A note for the tenant's people; empty when none.
    pub note: String,
    /// The key's metadata object, returned by the key API as `key.meta`.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    /// CIDR blocks the key works from; empty: any address.
    pub ip_allowlist: Vec<String>,
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    /// Imported in the platform's old format (`GATEHOUSE_LEGACY_KEY_PATTERN`).
    pub legacy: bool,
    /// The key's id as an OAuth2 client (`POST /oauth/token`; the client secret is the key).
    pub client_id: String,
}

impl Key {
    pub(super) fn view(prefix: &str, key: KeyRow) -> Self {
        let status = key.status;
        Self {
            id: key.api_key_id,
            masked: shown(prefix, key.environment, &key.last_four, key.legacy),
            name: key.name,
            environment: key.environment,
            status: status.as_str().to_owned(),
            full_access: key.full_access,
            scopes: key.scopes,
            rate_limit: key.rate_limit,
            expires_at: key.expires_at.map(rfc3339),
            created_at: rfc3339(key.created_at),
            last_used_at: key.last_used_at.map(rfc3339),
            revoked_at: key.revoked_at.map(rfc3339),
            rolled_from: key.rolled_from,
            note: key.note,
            meta: key.meta,
            ip_allowlist: key.ip_allowlist,
            disabled_at: key.disabled_at.map(rfc3339),
            legacy: key.legacy,
            client_id: key.client_id,
        }
    }
}

/// A new key and its secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyWithSecret {
    pub key: Key,
    /// The key itself. Store it now: Gatehouse keeps only its SHA-256.
    pub secret: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListKeys {
    /// `live` or `test`.
    pub environment: Option<String>,
    /// `active`, `expiring`, `expired`, `rolled` or `revoked`.
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, 1-80 characters.
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    /// Scopes of the deployment's catalogue; or `full_access: true`.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub full_access: bool,
    /// Verifications per minute (1-1000000); the environment's default when absent.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_limit: Option<u32>,
    /// When the key stops working (RFC 3339, in the future); never when absent (refused when the
    /// tenant's policy sets a maximum lifetime).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// A note for the tenant's people (never sent to the platform).
    pub note: Option<String>,
    /// Metadata: a JSON object of at most 1 KB, returned by the key API as `key.meta`.
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
    /// IP addresses or CIDR blocks, IPv4 or IPv6, the key works from; `[]`: any address. The
    /// tenant's default allowlist when absent.
    pub ip_allowlist: Option<Vec<String>>,
}

/// The settings to change; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    pub name: Option<String>,
    /// Replaces the scopes (and ends full access).
    pub scopes: Option<Vec<String>>,
    /// `true` gives every scope; `false` needs `scopes`.
    pub full_access: Option<bool>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_limit: Option<u32>,
    /// RFC 3339; `null` removes the expiry.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// A note for the tenant's people (empty removes it).
    pub note: Option<String>,
    /// Replaces the metadata: a JSON object of at most 1 KB.
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
    /// Replaces the allowlist: IP addresses or CIDR blocks, IPv4 or IPv6; `[]`: any address.
    pub ip_allowlist: Option<Vec<String>>,
    /// `true` disables the key (code `DISABLED`), `false` enables it again.
    pub disabled: Option<bool>,
}

/// Tells `"field": null` (Some(None)) from an absent field (None).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollKey {
    /// How long the old key keeps working: 0 (stops now) to 604800 (7 days).
    #[schema(minimum = 0, maximum = 604_800)]
    pub grace_seconds: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Whoami {
    /// A key found somewhere it should not be.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoamiAnswer {
    pub tenant: Tenant,
    pub key: Key,
}

/// An RFC 3339 time as the rules take it (they decide whether it may be in the past).
pub(super) fn read_time(value: &str) -> Read<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|_| "expires_at must be an RFC 3339 time like 2027-01-31T00:00:00Z.".to_owned())
}

/// `live` or `test`, as the rules take it.
pub(super) fn read_environment(value: &str) -> Read<Environment> {
    Environment::parse(value).ok_or_else(|| "environment must be \"live\" or \"test\".".to_owned())
}

pub(super) fn environment(value: &str) -> ApiResult<Environment> {
    read_environment(value).map_err(|why| ApiError::invalid("environment", why))
}

/// The rules' refusal of a setting: 422 naming the (first) field.
pub(super) fn invalid(errors: &KeyErrors) -> ApiError {
    match errors.first() {
        Some((field, message)) => ApiError::invalid(field.json_name(), message),
        None => ApiError::invalid("key", "The key's settings were refused."),
    }
}

/// The rules' refusal of a change to a key: a setting (422) or the key's state (409).
fn refused(refusal: &Refusal) -> ApiError {
    match refusal {
        Refusal::Invalid(errors) => invalid(errors),
        Refusal::Problem(problem) => conflict(problem),
    }
}

fn conflict(problem: &KeyProblem) -> ApiError {
    ApiError::conflict(problem.message())
}

async fn load(state: &AppState, tenant_id: Uuid, key_id: Uuid) -> ApiResult<Key> {
    let row = db_keys::get(&state.pool, tenant_id, key_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Key::view(&state.config.key_prefix, row))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/keys", tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"), ListKeys),
    security(("operator_token" = []), ("tenant_token" = ["keys:read"])),
    responses(
        (status = 200, description = "Keys in creation order", body = Page<Key>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing keys:read", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "Bad filter, limit or cursor", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    StrictQuery(query): StrictQuery<ListKeys>,
) -> ApiResult<Json<Page<Key>>> {
    let tenant = caller.tenant_with(&state, &named, Scope::KeysRead).await?;
    let limit = page_size(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let environment = query.environment.as_deref().map(environment).transpose()?;
    if let Some(status) = &query.status
        && domain_keys::Status::parse(status).is_none()
    {
        return Err(ApiError::invalid(
            "status",
            "status must be active, expiring, expired, disabled, rolled or revoked.",
        ));
    }
    let rows = db_management::keys(
        &state.pool,
        tenant.tenant_id,
        environment,
        query.status.as_deref(),
        after,
        limit + 1,
    )
    .await?;
    let prefix = state.config.key_prefix.clone();
    Ok(Json(paged(
        rows,
        limit,
        |row| (row.created_at, row.api_key_id),
        |row| Key::view(&prefix, row),
    )))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys", tag = "keys", request_body = CreateKey,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["keys:write"])),
    responses(
        (status = 201, description = "The key and its secret (shown once)", body = KeyWithSecret),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing keys:write", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    JsonBody(body): JsonBody<CreateKey>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_with(&state, &named, Scope::KeysWrite).await?;
    let request = NewKeyRequest {
        name: body.name,
        environment: read_environment(&body.environment),
        access: AccessChoice {
            full: Some(body.full_access),
            scopes: body.scopes,
        },
        expires_at: body.expires_at.as_deref().map(read_time).transpose(),
        rate_limit: Ok(body.rate_limit),
        note: body.note.unwrap_or_default(),
        meta: Ok(body.meta),
        ip_allowlist: body.ip_allowlist,
    };
    let by = Requester::machine(&caller.actor);
    let mut conn = state.pool.acquire().await?;
    let admitted = match domain_keys::admit(
        &mut conn,
        &state.config.keys(),
        tenant.tenant_id,
        &request,
        by,
        false,
    )
    .await?
    {
        Ok(Admission::Create(admitted)) => admitted,
        Ok(Admission::NeedsApproval(_)) => {
            return Err(ApiError::conflict(
                "In this tenant a developer's live keys need an admin's approval.",
            ));
        }
        Err(errors) => return Err(invalid(&errors)),
    };
    drop(conn);
    let (secret, id) = domain_keys::create_key(
        &state.pool,
        &state.config.key_prefix,
        admitted,
        &caller.actor,
    )
    .await?;
    Ok(created(KeyWithSecret {
        key: load(&state, tenant.tenant_id, id).await?,
        secret: secret.expose().to_owned(),
    }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/keys/{key_id}", tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("key_id" = Uuid, Path, description = "The key's id")),
    security(("operator_token" = []), ("tenant_token" = ["keys:read"])),
    responses(
        (status = 200, description = "The key", body = Key),
        (status = 400, description = "Bad key id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing keys:read", body = ErrorBody),
        (status = 404, description = "No such tenant or key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, key_id)): Path<(String, String)>,
) -> ApiResult<Json<Key>> {
    let tenant = caller.tenant_with(&state, &named, Scope::KeysRead).await?;
    Ok(Json(
        load(&state, tenant.tenant_id, key_id_of(&key_id)?).await?,
    ))
}

/// A key id from the path; anything else is no key here.
fn key_id_of(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/keys/{key_id}", tag = "keys", request_body = UpdateKey,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("key_id" = Uuid, Path, description = "The key's id")),
    security(("operator_token" = []), ("tenant_token" = ["keys:write"])),
    responses(
        (status = 200, description = "The key as changed", body = Key),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing keys:write", body = ErrorBody),
        (status = 404, description = "No such tenant or key", body = ErrorBody),
        (status = 409, description = "The key is revoked, expired or rolled and can no longer be changed", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, key_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateKey>,
) -> ApiResult<Json<Key>> {
    let tenant = caller.tenant_with(&state, &named, Scope::KeysWrite).await?;
    let key_id = key_id_of(&key_id)?;
    let access = match (body.full_access, body.scopes) {
        (None, None) => None,
        (full, scopes) => Some(AccessChoice {
            full,
            scopes: scopes.unwrap_or_default(),
        }),
    };
    let change = KeyChangeRequest {
        name: body.name,
        note: body.note,
        access,
        rate_limit: body.rate_limit.map(Ok),
        expires_at: body
            .expires_at
            .map(|at| at.as_deref().map(read_time).transpose()),
        meta: body.meta.map(Ok),
        ip_allowlist: body.ip_allowlist,
        disabled: body.disabled,
    };
    let hash = domain_keys::edit_key(
        &state.pool,
        &state.config.keys(),
        tenant.tenant_id,
        key_id,
        &change,
        Requester::machine(&caller.actor),
    )
    .await?
    .map_err(|refusal| refused(&refusal))?
    .secret_hash;
    state.verifier.forget(&hash);
    Ok(Json(load(&state, tenant.tenant_id, key_id).await?))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys/{key_id}/roll", tag = "keys", request_body = RollKey,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("key_id" = Uuid, Path, description = "The key's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["keys:write"])),
    responses(
        (status = 201, description = "The successor and its secret (shown once)", body = KeyWithSecret),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing keys:write", body = ErrorBody),
        (status = 404, description = "No such tenant or key", body = ErrorBody),
        (status = 409, description = "The key is rolled, expired or revoked; Idempotency-Key reused", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "grace_seconds out of range", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn roll_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, key_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<RollKey>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_with(&state, &named, Scope::KeysWrite).await?;
    let key_id = key_id_of(&key_id)?;
    let grace = time::Duration::seconds(i64::from(body.grace_seconds));
    let rolled = domain_keys::roll_key(
        &state.pool,
        &state.config.keys(),
        tenant.tenant_id,
        key_id,
        grace,
        Requester::machine(&caller.actor),
    )
    .await?
    .map_err(|refusal| refused(&refusal))?;
    state.verifier.forget(&rolled.old_hash);
    Ok(created(KeyWithSecret {
        key: load(&state, tenant.tenant_id, rolled.new_id).await?,
        secret: rolled.key.expose().to_owned(),
    }))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys/{key_id}/revoke", tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("key_id" = Uuid, Path, description = "The key's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["keys:write"])),
    responses(
        (status = 200, description = "The key, revoked everywhere at once", body = Key),
        (status = 400, description = "Bad Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing keys:write", body = ErrorBody),
        (status = 404, description = "No such tenant or key", body = ErrorBody),
        (status = 409, description = "Already revoked; Idempotency-Key reused", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, key_id)): Path<(String, String)>,
) -> ApiResult<Json<Key>> {
    let tenant = caller.tenant_with(&state, &named, Scope::KeysWrite).await?;
    let key_id = key_id_of(&key_id)?;
    let hash = domain_keys::revoke_key(
        &state.pool,
        &state.config.keys(),
        tenant.tenant_id,
        key_id,
        Requester::machine(&caller.actor),
    )
    .await?
    .map_err(|problem| conflict(&problem))?;
    state.verifier.forget(&hash);
    Ok(Json(load(&state, tenant.tenant_id, key_id).await?))
}

#[utoipa::path(post, path = "/v1/keys/whoami", tag = "keys", request_body = Whoami,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "Whose key this is (audited in that tenant)", body = WhoamiAnswer),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an operator token", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Not a key of this deployment", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Whoami>,
) -> ApiResult<Json<WhoamiAnswer>> {
    caller.operator_only()?;
    let hash = key_format::lookup_hash(
        &state.config.key_prefix,
        state.config.legacy_key_pattern.as_ref(),
        body.key.trim(),
    )
    .ok_or_else(|| ApiError::invalid("key", "This is not an API key of this deployment."))?;
    let (tenant_id, key_id) = management::identify_key(&state.pool, &hash, &caller.actor)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let tenant = db_management::tenant(&state.pool, Some(tenant_id), None, None)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(WhoamiAnswer {
        tenant: tenant.into(),
        key: load(&state, tenant_id, key_id).await?,
    }))
}
