//! `/v1/tenants/{tenant}/webhooks…` (webhooks:read, webhooks:write): the tenant's webhook
//! endpoints, as the portal's webhook pages manage them. Changes go through `domain::webhooks`
//! (the same checks, sealing and audit events as the portal); the signing secret is in the
//! answer to a create or a roll only, never in any other.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::db::webhooks::{self as db_webhooks, Endpoint};
use crate::domain::management::Scope;
use crate::domain::webhooks::{
    self, EndpointErrors, EndpointForm, EndpointSpec, ReceiverAuth, SigningSecret, WebhookProblem,
};
use crate::vocabulary::Environment;

use super::caller::Caller;
use super::keys::{environment, present};
use super::{
    ApiError, ApiResult, ErrorBody, JsonBody, Page, StrictQuery, created, decode_cursor, page_size,
    paged, rfc3339,
};

/// A webhook endpoint: never its signing secret nor the receiver's credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub name: String,
    pub url: String,
    /// Whose key events it gets: `live` or `test` (member and invitation events go to both).
    #[schema(value_type = String, example = "live")]
    pub environment: Environment,
    /// The event types it gets; `null`: every type.
    pub event_types: Option<Vec<String>>,
    /// `false`: it gets no events (disabled by a caller, an admin, or after 3 days of failures).
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// Deliveries also carry `X-Webhook-Signature: sha256=<hex HMAC of the body>`.
    pub seed_signature: bool,
    /// How Gatehouse authenticates to the receiver: `none`, `headers`, `basic` or `bearer`.
    pub auth_kind: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Until when the previous signing secret still signs beside the current one (after a roll).
    #[schema(format = DateTime)]
    pub previous_secret_until: Option<String>,
    pub delivery: DeliverySummary,
}

/// How deliveries to the endpoint have gone.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliverySummary {
    /// `disabled`, `no deliveries yet`, `delivering` or `failing`, as the portal shows it.
    pub health: String,
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    /// The receiver's HTTP status at the last attempt; `null` when none came (refused, timed out).
    pub last_status: Option<i32>,
    /// Failed attempts since the last success.
    pub failures_in_row: i32,
    /// The first failure of the current run of failures.
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
}

impl WebhookEndpoint {
    fn view(endpoint: Endpoint) -> Self {
        let health = match (
            endpoint.enabled,
            endpoint.failures_in_row,
            endpoint.last_status,
        ) {
            (false, _, _) => "disabled",
            (true, 0, None) if endpoint.last_delivery_at.is_none() => "no deliveries yet",
            (true, 0, _) => "delivering",
            (true, _, _) => "failing",
        };
        let now = time::OffsetDateTime::now_utc();
        Self {
            id: endpoint.webhook_endpoint_id,
            name: endpoint.name,
            url: endpoint.url,
            environment: endpoint.environment,
            event_types: endpoint.event_types,
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason,
            seed_signature: endpoint.seed_signature,
            auth_kind: endpoint.auth_kind,
            created_at: rfc3339(endpoint.created_at),
            previous_secret_until: endpoint
                .previous_secret_until
                .filter(|until| *until > now)
                .map(rfc3339),
            delivery: DeliverySummary {
                health: health.to_owned(),
                last_attempt_at: endpoint.last_delivery_at.map(rfc3339),
                last_status: endpoint.last_status,
                failures_in_row: endpoint.failures_in_row,
                failing_since: endpoint.failing_since.map(rfc3339),
            },
        }
    }
}

/// An endpoint and its signing secret: the only answers that hold it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: verify every delivery with it (Standard Webhooks). Store it now; it is never
    /// shown again.
    pub secret: String,
}

/// A sent test event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    /// The event's `webhook-id` (and `id` in its body).
    pub event_id: String,
}

/// How Gatehouse authenticates to the receiver. `kind` decides which other fields apply:
/// `none`; `headers` with `headers`; `basic` with `username` and `password`; `bearer` with `token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookAuth {
    /// `none`, `headers`, `basic` or `bearer`.
    pub kind: String,
    /// Header name → value, sent with every delivery (`headers`).
    pub headers: Option<BTreeMap<String, String>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl WebhookAuth {
    /// The credentials this names, before the domain's checks; only the fields of its kind.
    fn receiver_auth(self) -> ApiResult<ReceiverAuth> {
        let extra = |fields: &[&Option<String>], headers: bool| {
            fields.iter().any(|field| field.is_some()) || headers
        };
        let (auth, stray) = match self.kind.as_str() {
            "none" => (
                ReceiverAuth::None,
                extra(
                    &[&self.username, &self.password, &self.token],
                    self.headers.is_some(),
                ),
            ),
            "headers" => (
                ReceiverAuth::Headers {
                    headers: self.headers.unwrap_or_default().into_iter().collect(),
                },
                extra(&[&self.username, &self.password, &self.token], false),
            ),
            "basic" => (
                ReceiverAuth::Basic {
                    username: self.username.unwrap_or_default(),
                    password: self.password.unwrap_or_default(),
                },
                extra(&[&self.token], self.headers.is_some()),
            ),
            "bearer" => (
                ReceiverAuth::Bearer {
                    token: self.token.unwrap_or_default(),
                },
                extra(&[&self.username, &self.password], self.headers.is_some()),
            ),
            _ => {
                return Err(ApiError::invalid(
                    "auth.kind",
                    "auth.kind must be none, headers, basic or bearer.",
                ));
            }
        };
        if stray {
            return Err(ApiError::invalid(
                "auth",
                "Give only the fields of auth.kind: headers (headers), basic (username, password), bearer (token).",
            ));
        }
        Ok(auth)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// 1-100 characters.
    pub name: String,
    /// `https://…` (or `http://`); no credentials in it; no internal address unless the
    /// deployment allows them.
    pub url: String,
    /// `live` or `test`: whose key events it gets.
    pub environment: String,
    /// Event types to send; absent or `null`: every type.
    pub event_types: Option<Vec<String>>,
    /// Also sign with `X-Webhook-Signature: sha256=<hex>`.
    #[serde(default)]
    pub seed_signature: bool,
    /// How to authenticate to the receiver; absent: `none`.
    pub auth: Option<WebhookAuth>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub name: Option<String>,
    pub url: Option<String>,
    /// `live` or `test`.
    pub environment: Option<String>,
    /// Event types to send; `null`: every type; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    pub seed_signature: Option<bool>,
    /// New receiver credentials; absent: the stored ones stay.
    pub auth: Option<WebhookAuth>,
    /// `false` stops deliveries; `true` resumes them (and forgets the run of failures).
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooks {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

const NO_KEY: &str = "Webhooks need GATEHOUSE_SECRET_KEY, which seals their secrets: ask the \
    operator of this Gatehouse to set it.";

/// The first field the domain's checks refused, as a 422.
fn invalid(errors: EndpointErrors) -> ApiError {
    let fields = [
        ("name", errors.name),
        ("url", errors.url),
        ("environment", errors.environment),
        ("event_types", errors.events),
        ("auth", errors.auth),
    ];
    fields
        .into_iter()
        .find_map(|(field, why)| why.map(|why| ApiError::invalid(field, why)))
        .unwrap_or_else(|| ApiError::invalid("body", "The settings are not valid."))
}

fn refused(problem: WebhookProblem) -> ApiError {
    match problem {
        WebhookProblem::NoSecretKey => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", NO_KEY)
        }
        WebhookProblem::Invalid(errors) => invalid(errors),
    }
}

/// An endpoint id from the path; anything else is no endpoint here.
fn endpoint_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

async fn stored(state: &AppState, tenant_id: Uuid, id: Uuid) -> ApiResult<Endpoint> {
    db_webhooks::get(&state.pool, tenant_id, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> ApiResult<WebhookEndpoint> {
    Ok(WebhookEndpoint::view(stored(state, tenant_id, id).await?))
}

fn checked(state: &AppState, spec: &EndpointSpec) -> ApiResult<EndpointForm> {
    spec.check(state.config.webhook_allow_private)
        .map_err(invalid)
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"), ListWebhooks),
    security(("operator_token" = []), ("tenant_token" = ["webhooks:read"])),
    responses(
        (status = 200, description = "Endpoints in creation order", body = Page<WebhookEndpoint>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing webhooks:read", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "Bad limit or cursor", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    StrictQuery(query): StrictQuery<ListWebhooks>,
) -> ApiResult<Json<Page<WebhookEndpoint>>> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::WebhooksRead)
        .await?;
    let limit = page_size(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let rows = db_webhooks::page(&state.pool, tenant.tenant_id, after, limit + 1).await?;
    Ok(Json(paged(
        rows,
        limit,
        |row| (row.created_at, row.webhook_endpoint_id),
        WebhookEndpoint::view,
    )))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhooks", tag = "webhooks", request_body = CreateWebhook,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["webhooks:write"])),
    responses(
        (status = 201, description = "The endpoint and its signing secret (shown once)", body = EndpointWithSecret),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing webhooks:write", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid (url, event_types, auth, …)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "The deployment has no GATEHOUSE_SECRET_KEY", body = ErrorBody),
    ))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> ApiResult<Response> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::WebhooksWrite)
        .await?;
    let spec = EndpointSpec {
        name: body.name,
        url: body.url,
        environment: environment(&body.environment)?,
        event_types: body.event_types,
        seed_signature: body.seed_signature,
        auth: Some(
            body.auth
                .map(WebhookAuth::receiver_auth)
                .transpose()?
                .unwrap_or(ReceiverAuth::None),
        ),
        stored_auth_kind: "none",
    };
    let form = checked(&state, &spec)?;
    let (id, secret) = webhooks::create_endpoint(
        &state.pool,
        state.config.secret_key.as_ref(),
        tenant.tenant_id,
        &form,
        &caller.actor,
    )
    .await?
    .map_err(refused)?;
    Ok(created(
        with_secret(&state, tenant.tenant_id, id, &secret).await?,
    ))
}

async fn with_secret(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    secret: &SigningSecret,
) -> ApiResult<EndpointWithSecret> {
    Ok(EndpointWithSecret {
        endpoint: load(state, tenant_id, id).await?,
        secret: secret.reveal(),
    })
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("webhook_id" = Uuid, Path, description = "The endpoint's id")),
    security(("operator_token" = []), ("tenant_token" = ["webhooks:read"])),
    responses(
        (status = 200, description = "The endpoint (never its secret)", body = WebhookEndpoint),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing webhooks:read", body = ErrorBody),
        (status = 404, description = "No such tenant or endpoint", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::WebhooksRead)
        .await?;
    Ok(Json(
        load(&state, tenant.tenant_id, endpoint_id(&id)?).await?,
    ))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}", tag = "webhooks", request_body = UpdateWebhook,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("webhook_id" = Uuid, Path, description = "The endpoint's id")),
    security(("operator_token" = []), ("tenant_token" = ["webhooks:write"])),
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookEndpoint),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing webhooks:write", body = ErrorBody),
        (status = 404, description = "No such tenant or endpoint", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "The deployment has no GATEHOUSE_SECRET_KEY", body = ErrorBody),
    ))]
pub async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateWebhook>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::WebhooksWrite)
        .await?;
    let id = endpoint_id(&id)?;
    let endpoint = stored(&state, tenant.tenant_id, id).await?;
    let settings_change = body.name.is_some()
        || body.url.is_some()
        || body.environment.is_some()
        || body.event_types.is_some()
        || body.seed_signature.is_some()
        || body.auth.is_some();
    // Everything is checked before anything changes.
    let form = if settings_change {
        let mut spec = EndpointSpec::of(&endpoint);
        if let Some(name) = body.name {
            spec.name = name;
        }
        if let Some(url) = body.url {
            spec.url = url;
        }
        if let Some(value) = &body.environment {
            spec.environment = environment(value)?;
        }
        if let Some(event_types) = body.event_types {
            spec.event_types = event_types;
        }
        if let Some(seed_signature) = body.seed_signature {
            spec.seed_signature = seed_signature;
        }
        spec.auth = body.auth.map(WebhookAuth::receiver_auth).transpose()?;
        Some(checked(&state, &spec)?)
    } else {
        None
    };
    if let Some(form) = form {
        webhooks::update_endpoint(
            &state.pool,
            state.config.secret_key.as_ref(),
            tenant.tenant_id,
            id,
            &form,
            &caller.actor,
        )
        .await?
        .map_err(refused)?;
    }
    if let Some(enabled) = body.enabled {
        webhooks::set_enabled(&state.pool, tenant.tenant_id, id, enabled, &caller.actor).await?;
    }
    Ok(Json(load(&state, tenant.tenant_id, id).await?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("webhook_id" = Uuid, Path, description = "The endpoint's id")),
    security(("operator_token" = []), ("tenant_token" = ["webhooks:write"])),
    responses(
        (status = 204, description = "Deleted with its delivery log; deliveries not yet sent are cancelled"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing webhooks:write", body = ErrorBody),
        (status = 404, description = "No such tenant or endpoint", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::WebhooksWrite)
        .await?;
    webhooks::delete_endpoint(
        &state.pool,
        tenant.tenant_id,
        endpoint_id(&id)?,
        &caller.actor,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}/test", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("webhook_id" = Uuid, Path, description = "The endpoint's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["webhooks:write"])),
    responses(
        (status = 202, description = "A signed `webhook.test` event is queued for the endpoint", body = TestSent),
        (status = 400, description = "Bad Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing webhooks:write", body = ErrorBody),
        (status = 404, description = "No such tenant or endpoint", body = ErrorBody),
        (status = 409, description = "The endpoint is disabled; Idempotency-Key reused", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn send_test_event(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::WebhooksWrite)
        .await?;
    let event_id = webhooks::send_test(
        &state.pool,
        tenant.tenant_id,
        endpoint_id(&id)?,
        &caller.actor,
    )
    .await?
    .ok_or_else(|| {
        ApiError::conflict("The endpoint is disabled: enable it to send a test event.")
    })?;
    Ok((StatusCode::ACCEPTED, Json(TestSent { event_id })).into_response())
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}/roll_secret", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("webhook_id" = Uuid, Path, description = "The endpoint's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["webhooks:write"])),
    responses(
        (status = 200, description = "The new signing secret (shown once); the previous one signs beside it for 24 hours", body = EndpointWithSecret),
        (status = 400, description = "Bad Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing webhooks:write", body = ErrorBody),
        (status = 404, description = "No such tenant or endpoint", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "The deployment has no GATEHOUSE_SECRET_KEY", body = ErrorBody),
    ))]
pub async fn roll_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((named, id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointWithSecret>> {
    let tenant = caller
        .tenant_with(&state, &named, Scope::WebhooksWrite)
        .await?;
    let id = endpoint_id(&id)?;
    let secret = webhooks::roll_secret(
        &state.pool,
        state.config.secret_key.as_ref(),
        tenant.tenant_id,
        id,
        &caller.actor,
    )
    .await?
    .map_err(refused)?;
    Ok(Json(
        with_secret(&state, tenant.tenant_id, id, &secret).await?,
    ))
}
