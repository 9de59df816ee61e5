//! The hot path both key-API endpoints share: parse key → checksum → cache → (on a miss) one
//! indexed lookup → rate limit → meter. Also the verifier-token check and the rate-limit headers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::domain::keys;
use crate::domain::rate_limit::Quota;
use crate::domain::verification::{self, Code, Requirements};
use crate::error::ErrorReport;

/// Longest a lookup may take (pool wait included) before the key API answers 503.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// What a 503 tells callers to wait, in seconds.
pub const RETRY_UNAVAILABLE_AFTER: u32 = 1;

/// The key API's answer about a key.
#[derive(Debug)]
pub struct Verdict {
    pub code: Code,
    /// The key, when it was found.
    pub key: Option<Arc<verification::KeyRecord>>,
    /// The rate limit that was consulted: the key's, or the client's when it is throttled.
    pub quota: Option<Quota>,
}

impl Verdict {
    fn without_key(code: Code, quota: Option<Quota>) -> Self {
        Self {
            code,
            key: None,
            quota,
        }
    }
}

/// The database could not answer in time: fail closed.
#[derive(Debug)]
pub struct Unavailable;

/// Judges a presented key. Malformed keys never reach the database; a client address that has
/// used up its bad-key attempts is answered from the cache only.
pub async fn judge(
    state: &AppState,
    presented: &str,
    required: &Requirements,
    client: IpAddr,
) -> Result<Verdict, Unavailable> {
    let now = OffsetDateTime::now_utc();
    let limits = &state.rate_limits;
    let parsed = match keys::parse(&state.config.key_prefix, presented) {
        Ok(parsed) => parsed,
        Err(_) => {
            if let Some(quota) = limits.client_throttled(client, now) {
                return Ok(Verdict::without_key(Code::RateLimited, Some(quota)));
            }
            limits.record_bad_key(client, now);
            return Ok(Verdict::without_key(Code::Malformed, None));
        }
    };

    let key = match state.key_cache.get(&parsed.hash) {
        Some(key) => key,
        None => {
            if let Some(quota) = limits.client_throttled(client, now) {
                return Ok(Verdict::without_key(Code::RateLimited, Some(quota)));
            }
            let generation = state.key_cache.generation();
            let lookup = tokio::time::timeout(
                LOOKUP_TIMEOUT,
                verification::lookup_key(&state.key_lookups, &parsed.hash),
            )
            .await;
            let row = match lookup {
                Ok(Ok(row)) => row,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "key lookup failed; answering 503");
                    return Err(Unavailable);
                }
                Err(_) => {
                    tracing::warn!("key lookup timed out; answering 503");
                    return Err(Unavailable);
                }
            };
            let Some(key) = row else {
                limits.record_bad_key(client, now);
                return Ok(Verdict::without_key(Code::NotFound, None));
            };
            let key = Arc::new(key);
            state
                .key_cache
                .insert(parsed.hash, Arc::clone(&key), generation);
            key
        }
    };

    let mut code = key.judge(now, required);
    let mut quota = None;
    if code == Code::Valid {
        match limits.take(key.id, key.rate_limit, now) {
            Ok(left) => quota = Some(left),
            Err(spent) => {
                code = Code::RateLimited;
                quota = Some(spent);
            }
        }
    }
    state.meter.record(&key, code, now);
    Ok(Verdict {
        code,
        key: Some(key),
        quota,
    })
}

/// Compares the presented verifier token with every configured one in constant time (hashes of
/// equal length, no early exit). No tokens configured: nothing is accepted.
pub fn verifier_accepted(tokens: &[SecretString], presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let presented = Sha256::digest(presented.as_bytes());
    let mut accepted = Choice::from(0);
    for token in tokens {
        accepted |= Sha256::digest(token.expose_secret().as_bytes()).ct_eq(&presented);
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
