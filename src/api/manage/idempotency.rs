//! `Idempotency-Key` on every management POST: the first answer is kept 24 hours per caller and
//! key and replayed to a retry; the same key with another request is refused (409). Answers that
//! hold a secret (a new key) are sealed under `GATEHOUSE_SECRET_KEY`.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::db::management::{self as db_management, StoredAnswer};

use super::ApiError;
use super::caller::presented_identity;

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed answer.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Largest answer kept for replay (an import's answer lists up to 1,000 keys).
const MAX_KEPT_ANSWER: usize = 1024 * 1024;

pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            key.to_owned()
        }
        _ => {
            return ApiError::bad_request(
                "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice).",
            )
            .into_response();
        }
    };
    let caller = format!("bearer:{}", presented_identity(request.headers()));
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return ApiError::too_large().into_response();
    };
    let mut fingerprint = format!("{} {}\n", parts.method, parts.uri).into_bytes();
    fingerprint.extend_from_slice(&body);
    let request_hash = sha256_bytes(&fingerprint);

    let mut tx = match state.pool.begin().await {
        Ok(tx) => tx,
        Err(err) => return ApiError::from(err).into_response(),
    };
    match db_management::claim_idempotency_key(&mut tx, &caller, &key).await {
        Err(err) => return ApiError::from(err).into_response(),
        Ok(Some(stored)) if stored.request_hash != request_hash => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used with another request in the last 24 hours. Use a new key for a new request.",
            )
            .into_response();
        }
        Ok(Some(stored)) => return replay(&state, &caller, &key, &stored),
        Ok(None) => {}
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status();
    // Refusals a retry may get past (authentication, rate limits) and failures are not kept.
    if status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
        )
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, MAX_KEPT_ANSWER).await else {
        return ApiError::from(crate::domain::error::DomainError::unexpected(
            "an answer too large to keep for Idempotency-Key",
        ))
        .into_response();
    };
    let (response_bytes, sealed) = match &state.config.secret_key {
        Some(secret_key) => (secret_key.seal(&body, &context(&caller, &key)), true),
        None => (without_secret(&body), false),
    };
    let answer = StoredAnswer {
        request_hash,
        status: i16::try_from(status.as_u16()).unwrap_or(500),
        response: response_bytes,
        sealed,
    };
    if let Err(err) = db_management::store_answer(&mut *tx, &caller, &key, &answer).await {
        return ApiError::from(err).into_response();
    }
    if let Err(err) = tx.commit().await {
        return ApiError::from(err).into_response();
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(state: &AppState, caller: &str, key: &str, stored: &StoredAnswer) -> Response {
    let body = match (&state.config.secret_key, stored.sealed) {
        (Some(secret_key), true) => {
            match secret_key.open(&stored.response, &context(caller, key)) {
                Ok(body) => body,
                Err(_) => {
                    return ApiError::conflict(
                    "The answer kept for this Idempotency-Key cannot be read (the secret key changed). Use a new key.",
                )
                .into_response();
                }
            }
        }
        (_, false) => stored.response.clone(),
        (None, true) => {
            return ApiError::conflict(
                "The answer kept for this Idempotency-Key cannot be read without GATEHOUSE_SECRET_KEY. Use a new key.",
            )
            .into_response();
        }
    };
    let status = u16::try_from(stored.status)
        .ok()
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}

fn context(caller: &str, key: &str) -> String {
    format!("idempotency_key.response:{caller}:{key}")
}

fn sha256_bytes(bytes: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).to_vec()
}

/// Without a sealing key no secret is kept: a replay says the secret was shown once.
fn without_secret(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut object)) if object.contains_key("secret") => {
            object.insert(
                "secret".into(),
                serde_json::Value::from("(shown once; not kept for replays)"),
            );
            serde_json::to_vec(&object).unwrap_or_default()
        }
        _ => body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_kept_without_a_sealing_key_never_hold_the_secret() {
        let kept = without_secret(br#"{"key":{"id":"x"},"secret":"ak_live_abc"}"#);
        assert!(!String::from_utf8(kept.clone()).unwrap().contains("ak_live"));
        assert_eq!(without_secret(b"{\"a\":1}"), b"{\"a\":1}".to_vec());
    }
}
