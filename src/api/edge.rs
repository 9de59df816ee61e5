//! What both key-API endpoints share at the HTTP edge: the verifier-token check, bearer
//! credentials, the rate-limit headers and the JSON answers' writing. The judging is the domain's
//! `Verifier`; errors are [`ApiError`]s.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

use crate::api::error::ApiError;
use crate::config::TokenDigests;
use crate::domain::rate_limit::Quota;
use crate::domain::tokens::sha256;

/// Compares the presented verifier token with every configured one in constant time (hashes of
/// equal length, no early exit). No tokens configured: nothing is accepted.
pub fn verifier_accepted(tokens: &TokenDigests, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let presented = sha256(presented);
    let mut accepted = Choice::from(0);
    for token in &tokens.0 {
        accepted |= token.ct_eq(&presented);
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
    headers.get(REQUEST_ID)?.to_str().ok()
}

/// The header a caller's request id comes in.
pub const REQUEST_ID: &str = "x-request-id";

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `RateLimit-Policy: "key";q=1000;w=60` and `RateLimit: "key";r=998;t=42`
/// (draft-ietf-httpapi-ratelimit-headers).
pub fn add_ratelimit_headers(headers: &mut HeaderMap, quota: &Quota) {
    let name = quota.policy.name();
    for (header, first, second) in [
        (
            &RATELIMIT_POLICY,
            (&b";q="[..], quota.limit),
            (&b";w="[..], 60),
        ),
        (&RATELIMIT, (b";r=", quota.remaining), (b";t=", quota.reset)),
    ] {
        let mut value = std::io::Cursor::new([0u8; RATELIMIT_VALUE_MAX]);
        ratelimit_value(&mut value, name, first, second);
        let written = usize::try_from(value.position()).unwrap_or(0);
        // Digits, quotes and a known name: always a valid header value (its one allocation).
        if let Ok(value) = HeaderValue::from_bytes(&value.get_ref()[..written]) {
            headers.insert(header.clone(), value);
        }
    }
}

/// Room for the longest rate-limit header value, `"client";r=4294967295;t=4294967295` (34 bytes).
const RATELIMIT_VALUE_MAX: usize = 40;

/// `"name";a=1;b=2`, written on the stack without the formatter (on every answer).
fn ratelimit_value(
    value: &mut impl std::io::Write,
    name: &str,
    first: (&[u8], u32),
    second: (&[u8], u32),
) {
    let mut digits = [0u8; 10];
    let _ = value.write_all(b"\"");
    let _ = value.write_all(name.as_bytes());
    let _ = value.write_all(b"\"");
    for (label, number) in [first, second] {
        let _ = value.write_all(label);
        let _ = value.write_all(decimal(number, &mut digits));
    }
}

/// Appends `n` in decimal (on every answer: no formatter).
pub fn push_number(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(decimal(n, &mut [0u8; 10]));
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: u32, digits: &mut [u8; 10]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

/// `body` serialized as an `application/json` answer, written once into a buffer of the usual
/// size (axum's `Json` starts smaller and grows).
pub fn json_response(body: &impl serde::Serialize) -> Response {
    let mut buffer = Vec::with_capacity(512);
    match serde_json::to_writer(&mut buffer, body) {
        Ok(()) => json_bytes_response(buffer),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize an answer");
            ApiError::internal().into_response()
        }
    }
}

/// `body`, already JSON, as an `application/json` answer.
pub fn json_bytes_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, JSON.clone())], body).into_response()
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// 503, fail closed.
pub fn unavailable() -> Response {
    ApiError::unavailable("Keys cannot be checked right now. Please retry shortly.").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_tokens_must_match_one_configured_token_exactly() {
        let tokens = TokenDigests::of(&[
            secrecy::SecretString::from("first-verifier-token-000"),
            secrecy::SecretString::from("second-verifier-token-00"),
        ]);
        assert!(verifier_accepted(&tokens, Some("second-verifier-token-00")));
        assert!(!verifier_accepted(&tokens, Some("second-verifier-token-0")));
        assert!(!verifier_accepted(&tokens, Some("")));
        assert!(!verifier_accepted(&tokens, None));
        assert!(!verifier_accepted(
            &TokenDigests::default(),
            Some("anything-at-all-000")
        ));
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
        add_ratelimit_headers(
            &mut headers,
            &Quota {
                policy: crate::domain::rate_limit::Policy::Client,
                limit: u32::MAX,
                remaining: 0,
                reset: 60,
            },
        );
        assert_eq!(headers["ratelimit-policy"], "\"client\";q=4294967295;w=60");
        assert_eq!(headers["ratelimit"], "\"client\";r=0;t=60");
    }
}
