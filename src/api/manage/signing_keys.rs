//! `GET /v1/signing-keys` and `POST /v1/signing-keys/rotate` (operator tokens): the keys that
//! sign access tokens, and their rotation on demand.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::domain::access_tokens::signing_keys::{ALG, KeySummary, Rotation, SigningKeys};

use super::caller::Caller;
use super::{ApiError, ApiResult, ErrorBody, JsonBody, rfc3339};

/// A key that signs access tokens (its private half never leaves the database, sealed).
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKey {
    /// The key's id in the JWKS and in each token's header: its RFC 7638 thumbprint.
    pub kid: String,
    /// Always `ES256`.
    pub alg: String,
    /// `next` (published, not signing yet), `signing`, `retired` (published for the tokens it
    /// signed) or `unpublished`.
    pub state: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it joined the JWKS.
    #[schema(format = DateTime)]
    pub publish_at: String,
    /// When it signs from.
    #[schema(format = DateTime)]
    pub sign_from: String,
    /// When it stops signing (set once a successor exists).
    #[schema(format = DateTime)]
    pub retire_at: Option<String>,
    /// When it leaves the JWKS: every token it signed has expired by then.
    #[schema(format = DateTime)]
    pub unpublish_at: Option<String>,
}

impl From<KeySummary> for SigningKey {
    fn from(key: KeySummary) -> Self {
        Self {
            kid: key.kid,
            alg: ALG.to_owned(),
            state: key.state.as_str().to_owned(),
            created_at: rfc3339(key.created_at),
            publish_at: rfc3339(key.times.publish_at),
            sign_from: rfc3339(key.times.sign_from),
            retire_at: key.times.retire_at.map(rfc3339),
            unpublish_at: key.times.unpublish_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyList {
    /// Newest first.
    pub data: Vec<SigningKey>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    /// `false` (default): a new key is published now and signs in 15 minutes; the current one
    /// then stops signing and stays published until its tokens expired. `true` (a key leaked):
    /// a new key signs now and every other key leaves the JWKS now; tokens they signed no longer
    /// verify.
    #[serde(default)]
    pub immediately: bool,
}

fn enabled(state: &AppState) -> ApiResult<&SigningKeys> {
    state.signing_keys.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "This deployment issues no tokens: GATEHOUSE_SECRET_KEY is not set.",
        )
    })
}

async fn listed(state: &AppState) -> ApiResult<Json<SigningKeyList>> {
    let keys = SigningKeys::list(&state.pool, OffsetDateTime::now_utc()).await?;
    Ok(Json(SigningKeyList {
        data: keys.into_iter().map(SigningKey::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/signing-keys", tag = "tokens",
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "Every signing key still known, newest first", body = SigningKeyList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an operator token", body = ErrorBody),
        (status = 404, description = "No tokens here (no GATEHOUSE_SECRET_KEY)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_signing_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SigningKeyList>> {
    caller.operator_only()?;
    enabled(&state)?;
    listed(&state).await
}

#[utoipa::path(post, path = "/v1/signing-keys/rotate", tag = "tokens", request_body = RotateKeys,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The keys after the rotation (a rotation already under way is left as it is)", body = SigningKeyList),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an operator token", body = ErrorBody),
        (status = 404, description = "No tokens here (no GATEHOUSE_SECRET_KEY)", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused, or its first request still runs", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn rotate_signing_keys(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RotateKeys>,
) -> ApiResult<Json<SigningKeyList>> {
    caller.operator_only()?;
    let keys = enabled(&state)?;
    let rotation = if body.immediately {
        Rotation::Immediately
    } else {
        Rotation::OnDemand
    };
    keys.rotate(&state.pool, OffsetDateTime::now_utc(), rotation)
        .await?;
    listed(&state).await
}
