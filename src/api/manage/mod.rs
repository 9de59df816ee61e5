//! The management API (`/v1/tenants…`, `/v1/keys/whoami`, `/v1/openapi.json`): the platform's
//! backend provisions tenants, keys and members with an operator token or a tenant management
//! token. JSON in and out, errors `{"error": {"code", "message", "field"?}}`, cursor pagination,
//! `Idempotency-Key` on every POST, a rate limit per token.

pub mod caller;
pub mod idempotency;
pub mod import;
pub mod keys;
pub mod members;
pub mod openapi;
pub mod signing_keys;
pub mod tenants;
pub mod usage;
pub mod webhooks;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// The management API answers errors as every JSON route does; its handlers name them from here.
pub use crate::api::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use crate::app::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    let managed = Router::new()
        .route(
            "/v1/tenants",
            get(tenants::list_tenants).post(tenants::create_tenant),
        )
        .route(
            "/v1/tenants/{tenant}",
            get(tenants::get_tenant).patch(tenants::update_tenant),
        )
        .route(
            "/v1/tenants/{tenant}/keys",
            get(keys::list_keys).post(keys::create_key),
        )
        .route(
            "/v1/tenants/{tenant}/keys/import",
            post(import::import_keys),
        )
        .route(
            "/v1/tenants/{tenant}/keys/{key_id}",
            get(keys::get_key).patch(keys::update_key),
        )
        .route(
            "/v1/tenants/{tenant}/keys/{key_id}/roll",
            post(keys::roll_key),
        )
        .route(
            "/v1/tenants/{tenant}/keys/{key_id}/revoke",
            post(keys::revoke_key),
        )
        .route("/v1/tenants/{tenant}/usage", get(usage::read_usage))
        .route("/v1/tenants/{tenant}/members", get(members::list_members))
        .route(
            "/v1/tenants/{tenant}/members/{member_id}",
            axum::routing::patch(members::change_role).delete(members::remove_member),
        )
        .route(
            "/v1/tenants/{tenant}/invitations",
            get(members::list_invitations).post(members::create_invitation),
        )
        .route(
            "/v1/tenants/{tenant}/invitations/{invitation_id}/revoke",
            post(members::revoke_invitation),
        )
        .route(
            "/v1/tenants/{tenant}/audit",
            get(members::list_audit_events),
        )
        .route(
            "/v1/tenants/{tenant}/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/v1/tenants/{tenant}/webhooks/{webhook_id}",
            get(webhooks::get_webhook)
                .patch(webhooks::update_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route(
            "/v1/tenants/{tenant}/webhooks/{webhook_id}/test",
            post(webhooks::send_test_event),
        )
        .route(
            "/v1/tenants/{tenant}/webhooks/{webhook_id}/roll_secret",
            post(webhooks::roll_webhook_secret),
        )
        .route("/v1/keys/whoami", post(keys::whoami))
        .route("/v1/signing-keys", get(signing_keys::list_signing_keys))
        .route(
            "/v1/signing-keys/rotate",
            post(signing_keys::rotate_signing_keys),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
        .layer(middleware::from_fn_with_state(state, caller::rate_limit));
    Router::new()
        .merge(managed)
        .route("/v1/openapi.json", get(openapi::serve_document))
}

/// The request body limit of `path` when it needs more than [`crate::app::MAX_BODY_BYTES`]:
/// an import of 1,000 keys.
pub fn body_limit(path: &str) -> Option<usize> {
    (path.starts_with("/v1/tenants/") && path.ends_with("/keys/import"))
        .then_some(import::MAX_BODY_BYTES)
}

/// A JSON request body: `Content-Type: application/json`, unknown fields refused (each body type
/// is `deny_unknown_fields`), errors that say what is wrong.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .split(';')
                    .next()
                    .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "Send the body as JSON with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::too_large())?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|err| ApiError::bad_request(describe(&err)))
    }
}

/// What is wrong with a body, without echoing string values (a body may hold a key).
fn describe(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => {
            let text = err.to_string();
            // serde's own words name the field ("unknown field `x`", "missing field `name`",
            // "invalid type: integer, expected a string"); quoted values are cut out.
            let text = match text.find(" at line ") {
                Some(end) => &text[..end],
                None => &text,
            };
            let without_values = match text.split_once("string \"") {
                Some((head, _)) => format!("{head}string"),
                None => text.to_owned(),
            };
            format!("The body does not fit: {without_values}.")
        }
        Category::Syntax | Category::Eof => "The body is not valid JSON.".into(),
        Category::Io => "The body could not be read.".into(),
    }
}

/// A page of a list: the items and, when there are more, the cursor of the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `limit` and `cursor` of list requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Default page size; the most is 100.
pub const DEFAULT_LIMIT: i64 = 50;

/// The page size asked for: 1 to 100.
pub fn page_size(limit: Option<i64>) -> ApiResult<i64> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=100).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::invalid("limit", "limit must be from 1 to 100.")),
    }
}

/// An opaque cursor: where the last item of a page sits in creation order.
pub fn encode_cursor(at: OffsetDateTime, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{id}", at.unix_timestamp_nanos()))
}

pub fn decode_cursor(cursor: Option<&str>) -> ApiResult<Option<(OffsetDateTime, Uuid)>> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("cursor", "This cursor is not one Gatehouse gave out.");
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(bad)?;
    let (nanos, id) = text.split_once('.').ok_or_else(bad)?;
    let at = nanos
        .parse::<i128>()
        .ok()
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Some((at, id)))
}

/// The page of `rows` (one more than `limit` was read, to know whether another page follows).
pub fn paged<R, T: ToSchema>(
    mut rows: Vec<R>,
    limit: i64,
    position: impl Fn(&R) -> (OffsetDateTime, Uuid),
    view: impl Fn(R) -> T,
) -> Page<T> {
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| rows.last().map(&position))
        .flatten()
        .map(|(at, id)| encode_cursor(at, id));
    Page {
        data: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

/// A query string parsed strictly: unknown parameters refused, like unknown body fields.
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_like(query).map(StrictQuery)
    }
}

/// Parses `a=1&b=2` into `T` through a JSON object of strings (numbers where they parse), so
/// serde's field checks apply.
fn serde_urlencoded_like<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    let mut object = serde_json::Map::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = match value.parse::<i64>() {
            Ok(number) if name == "limit" => serde_json::Value::from(number),
            _ => serde_json::Value::from(value.into_owned()),
        };
        if object.insert(name.clone().into_owned(), value).is_some() {
            return Err(ApiError::bad_request(format!(
                "The query parameter {name:?} is given twice."
            )));
        }
    }
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|err| {
        let text = err.to_string();
        ApiError::bad_request(format!("The query does not fit: {text}."))
    })
}

/// 201 with a JSON body.
pub fn created<T: Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// RFC 3339 in answers.
pub fn rfc3339(at: OffsetDateTime) -> String {
    crate::domain::webhooks::rfc3339(at)
}
