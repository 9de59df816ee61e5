//! What both key-API endpoints share at the HTTP edge: the verifier-token check, bearer
//! credentials, the rate-limit headers and the error answers. The judging is the domain's
//! `Verifier`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use subtle::{Choice, ConstantTimeEq};

use crate::domain::rate_limit::Quota;
use crate::domain::tokens::sha256;
use crate::error::ErrorReport;

/// What a 503 tells callers to wait, in seconds.
pub const RETRY_UNAVAILABLE_AFTER: u32 = 1;

/// Compares the presented verifier token with every configured one in constant time (hashes of
/// equal length, no early exit). No tokens configured: nothing is accepted.
pub fn verifier_accepted(tokens: &[SecretString], presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let presented = sha256(presented);
    let mut accepted = Choice::from(0);
    for token in tokens {
        accepted |= sha256(token.expose_secret()).ct_eq(&presented);
    }
    accepted.into()
}

/// The credentials of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    strip_bearer(value)
}

/// `Bearer <token>` (scheme case-insensitive) → `<token>`.
pub fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The request's id: the caller's `X-Request-Id`, or the one the request-id layer assigned.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-request-id")?.to_str().ok()
}

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `RateLimit-Policy: "key";q=1000;w=60` and `RateLimit: "key";r=998;t=42`
/// (draft-ietf-httpapi-ratelimit-headers).
pub fn add_ratelimit_headers(headers: &mut HeaderMap, quota: &Quota) {
    let name = quota.policy.name();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{name}\";q={};w=60", quota.limit)) {
        headers.insert(RATELIMIT_POLICY.clone(), value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!(
        "\"{name}\";r={};t={}",
        quota.remaining, quota.reset
    )) {
        headers.insert(RATELIMIT.clone(), value);
    }
}

/// An error answer; `render_errors` turns the report into `{"error": {"code", "message"}}`.
pub fn error_response(status: StatusCode, code: &'static str, message: &str) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(ErrorReport {
        status,
        code,
        message: message.to_owned(),
    });
    response
}

/// 503, fail closed.
pub fn unavailable() -> Response {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "Keys cannot be checked right now. Please retry shortly.",
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(RETRY_UNAVAILABLE_AFTER),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_tokens_must_match_one_configured_token_exactly() {
        let tokens = vec![
            SecretString::from("first-verifier-token-000"),
            SecretString::from("second-verifier-token-00"),
        ];
        assert!(verifier_accepted(&tokens, Some("second-verifier-token-00")));
        assert!(!verifier_accepted(&tokens, Some("second-verifier-token-0")));
        assert!(!verifier_accepted(&tokens, Some("")));
        assert!(!verifier_accepted(&tokens, None));
        assert!(!verifier_accepted(&[], Some("anything-at-all-000")));
    }

    #[test]
    fn bearer_credentials_are_read_case_insensitively() {
        assert_eq!(strip_bearer("Bearer abc"), Some("abc"));
        assert_eq!(strip_bearer("bearer  abc "), Some("abc"));
        assert_eq!(strip_bearer("Basic abc"), None);
        assert_eq!(strip_bearer("Bearer "), None);
        assert_eq!(strip_bearer("abc"), None);
    }

    #[test]
    fn ratelimit_headers_follow_the_draft() {
        let mut headers = HeaderMap::new();
        add_ratelimit_headers(
            &mut headers,
            &Quota {
                policy: crate::domain::rate_limit::Policy::Key,
                limit: 100,
                remaining: 7,
                reset: 42,
            },
        );
        assert_eq!(headers["ratelimit-policy"], "\"key\";q=100;w=60");
        assert_eq!(headers["ratelimit"], "\"key\";r=7;t=42");
    }
}
