//! `POST /v1/leaks/{sender}`: secret scanners' leak reports in GitHub's partner format. The door
//! checks the signature over the raw body with the sender's published key
//! ([`crate::leak_keys`]), reads the candidates and answers the domain's feedback. A forged, missing or re-serialised signature is a
//! 401 and changes nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::api::error::{ApiError, Challenge};
use crate::app::AppState;
use crate::domain::leaks::{self, Candidate};

/// A report of 1,000 matches is about 200 KB; GitHub sends at most that many at once.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The body limit of the leak routes (larger than the portal's).
pub fn body_limit(path: &str) -> Option<usize> {
    path.starts_with("/v1/leaks/").then_some(MAX_BODY_BYTES)
}

fn refused() -> ApiError {
    ApiError::unauthorized(
        Challenge::Profile(Some(HeaderValue::from_static(
            "Signature realm=\"gatehouse-leaks\"",
        ))),
        "The report's signature does not verify with the sender's published keys.",
    )
}

/// `POST /v1/leaks/{sender}`: 200 with the feedback array, or 401 for a bad signature.
pub async fn report(
    State(state): State<AppState>,
    Path(sender): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(keys) = state.leak_keys.sender(&sender) else {
        return Err(ApiError::not_found());
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let (Some(id), Some(signature)) = (
        header(&keys.sender.key_id_header),
        header(&keys.sender.signature_header),
    ) else {
        return Err(refused());
    };
    let Some(point) = keys.point(id).await else {
        return Err(refused());
    };
    if !leaks::signature_holds(&point, &body, signature) {
        return Err(refused());
    }
    let candidates: Vec<Candidate> = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request(
            "The report is a JSON array of {\"token\", \"type\", \"url\", \"source\"}.",
        )
    })?;
    let feedback =
        leaks::take_report(&state.pool, &state.config.keys(), &sender, &candidates).await?;
    Ok(Json(feedback).into_response())
}
