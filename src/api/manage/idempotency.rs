//! `Idempotency-Key` on every management POST, the door of `domain::idempotency`: the caller is
//! authenticated first (a replay is only for the caller that made the request, while it is still
//! valid), the key is claimed, the request runs with no connection held, its answer is kept. The
//! same key while the first request runs is a 409 with `Retry-After`; with another request, a 409.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::domain::idempotency::{self, Claim, Kept};

use super::ApiError;
use super::caller::{Caller, presented_identity};

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
    let (mut parts, body) = request.into_parts();
    // Authenticated before anything kept is read; the handler's `Caller` is this one.
    let authenticated = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    parts.extensions.insert(authenticated);
    let caller = format!("bearer:{}", presented_identity(&parts.headers));
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return ApiError::too_large().into_response();
    };
    let mut fingerprint = format!("{} {}\n", parts.method, parts.uri).into_bytes();
    fingerprint.extend_from_slice(&body);

    let secret_key = state.config.secret_key.as_ref();
    let claimed = match idempotency::claim(&state.pool, secret_key, &caller, &key, &fingerprint)
        .await
    {
        Err(err) => return ApiError::from(err).into_response(),
        Ok(Claim::Claimed(claimed)) => claimed,
        Ok(Claim::Answered(kept)) => return replay(kept),
        Ok(Claim::InProgress) => {
            return ApiError::in_progress(
                "IDEMPOTENCY_KEY_IN_USE",
                "A request with this Idempotency-Key is still being answered. Retry after Retry-After seconds to get its answer.",
            )
            .into_response();
        }
        Ok(Claim::Reused) => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used with another request in the last 24 hours. Use a new key for a new request.",
            )
            .into_response();
        }
        Ok(Claim::Unreadable(why)) => return ApiError::conflict(why).into_response(),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status();
    if !idempotency::keeps(status.as_u16()) {
        if let Err(err) = idempotency::release(&state.pool, claimed).await {
            // The claim lapses by itself; the answer stands.
            tracing::warn!(error = %err, "cannot release an Idempotency-Key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, MAX_KEPT_ANSWER).await else {
        let _ = idempotency::release(&state.pool, claimed).await;
        return ApiError::from(crate::domain::error::DomainError::unexpected(
            "an answer too large to keep for Idempotency-Key",
        ))
        .into_response();
    };
    if let Err(err) =
        idempotency::record(&state.pool, secret_key, claimed, status.as_u16(), &body).await
    {
        // The request was done: its answer is the caller's. A retry after the claim lapses runs
        // afresh.
        tracing::error!(error = %err, "cannot keep the answer of an Idempotency-Key");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(kept: Kept) -> Response {
    let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    let mut response = (status, kept.body).into_response();
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
