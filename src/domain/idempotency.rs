//! Idempotency keys of the management API's POSTs: the first answer is kept [`KEPT`] per caller
//! and key and replayed to a retry; the same key with another request is refused. A key is
//! claimed before its request runs and answered after, each in a short statement of its own, so
//! no connection or lock is held while the request runs: a request with the same key meanwhile is
//! told to retry ([`Claim::InProgress`]), and a claim whose request never answered (a crash, a
//! dropped connection) lapses after [`LEASE`]. Answers that hold a secret (a new key) are sealed.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::management as db_management;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::sealing::SecretKey;

/// How long an answer is kept for retries.
pub const KEPT: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a claim holds a key while its request runs: longer than any request may run (the
/// server answers 408 after 30 s and drops the request), so two requests never run under one key.
pub const LEASE: Duration = Duration::from_secs(60);

/// A request's hold on its key, from [`claim`] until [`record`] or [`release`].
#[derive(Debug)]
pub struct Claimed {
    caller: String,
    key: String,
    claim: Uuid,
}

/// An answer kept for a key, opened for a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What a key says of a request.
#[derive(Debug)]
pub enum Claim {
    /// The key is this request's: run it, then [`record`] its answer (or [`release`] the key).
    Claimed(Claimed),
    /// The answer the first request with this key got, to replay.
    Answered(Kept),
    /// The first request with this key is still running: retry shortly.
    InProgress,
    /// The key was used with another request.
    Reused,
    /// The kept answer cannot be opened: why, for the caller.
    Unreadable(&'static str),
}

/// Claims `key` of `caller` (who the request is, never a secret) for a request whose method,
/// path and body make `fingerprint`, or says what the key already holds.
pub async fn claim(
    pool: &PgPool,
    secret_key: Option<&SecretKey>,
    caller: &str,
    key: &str,
    fingerprint: &[u8],
) -> DomainResult<Claim> {
    let request_hash = sha256_bytes(fingerprint);
    let claim = Uuid::new_v4();
    db_management::prune_idempotency_keys(pool, KEPT.as_secs_f64()).await?;
    // The row may vanish between the two statements (its claim lapsed, or pruned): claim again.
    for _ in 0..3 {
        if db_management::claim_idempotency_key(
            pool,
            (caller, key),
            &request_hash,
            claim,
            (LEASE.as_secs_f64(), KEPT.as_secs_f64()),
        )
        .await?
        {
            return Ok(Claim::Claimed(Claimed {
                caller: caller.to_owned(),
                key: key.to_owned(),
                claim,
            }));
        }
        let Some(row) = db_management::idempotency_key(pool, caller, key).await? else {
            continue;
        };
        if row.request_hash != request_hash {
            return Ok(Claim::Reused);
        }
        let (Some(status), Some(response)) = (row.status, row.response) else {
            return Ok(Claim::InProgress);
        };
        return Ok(open(secret_key, caller, key, status, response, row.sealed));
    }
    Err(DomainError::unexpected(
        "an Idempotency-Key could be neither claimed nor read",
    ))
}

fn open(
    secret_key: Option<&SecretKey>,
    caller: &str,
    key: &str,
    status: i16,
    response: Vec<u8>,
    sealed: bool,
) -> Claim {
    let body = match (secret_key, sealed) {
        (_, false) => response,
        (Some(secret_key), true) => match secret_key.open(&response, &context(caller, key)) {
            Ok(body) => body,
            Err(_) => {
                return Claim::Unreadable(
                    "The answer kept for this Idempotency-Key cannot be read (the secret key changed). Use a new key.",
                );
            }
        },
        (None, true) => {
            return Claim::Unreadable(
                "The answer kept for this Idempotency-Key cannot be read without GATEHOUSE_SECRET_KEY. Use a new key.",
            );
        }
    };
    Claim::Answered(Kept {
        status: u16::try_from(status).unwrap_or(200),
        body,
    })
}

/// Whether an answer with `status` is kept: refusals a retry may get past (authentication, rate
/// limits) and failures are not; a retry of those runs afresh.
pub fn keeps(status: u16) -> bool {
    !(status >= 500 || status == 401 || status == 429)
}

/// Keeps the answer of the claimed request (sealed when there is a secret key; without one, a
/// secret in it is replaced by a note that it was shown once).
pub async fn record(
    pool: &PgPool,
    secret_key: Option<&SecretKey>,
    claimed: Claimed,
    status: u16,
    body: &[u8],
) -> DomainResult<()> {
    let Claimed { caller, key, claim } = claimed;
    let (response, sealed) = match secret_key {
        Some(secret_key) => (secret_key.seal(body, &context(&caller, &key)), true),
        None => (without_secret(body), false),
    };
    let status = i16::try_from(status).map_err(DomainError::unexpected)?;
    let recorded = db_management::answer_idempotency_key(
        pool,
        (&caller, &key),
        claim,
        status,
        (&response, sealed),
    )
    .await?;
    if !recorded {
        tracing::warn!("an Idempotency-Key's claim lapsed before its request answered");
    }
    Ok(())
}

/// Gives the key up without keeping an answer: a retry runs afresh.
pub async fn release(pool: &PgPool, claimed: Claimed) -> DomainResult<()> {
    db_management::release_idempotency_key(pool, &claimed.caller, &claimed.key, claimed.claim)
        .await?;
    Ok(())
}

fn sha256_bytes(bytes: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).to_vec()
}

pub(crate) fn context(caller: &str, key: &str) -> String {
    format!("idempotency_key.response:{caller}:{key}")
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

    #[test]
    fn refusals_a_retry_may_get_past_and_failures_are_not_kept() {
        for status in [200, 201, 400, 403, 404, 409, 422] {
            assert!(keeps(status), "{status}");
        }
        for status in [401, 429, 500, 503] {
            assert!(!keeps(status), "{status}");
        }
    }

    #[test]
    fn a_claim_outlives_any_request() {
        // The server drops a request after 30 s (server.rs, TimeoutLayer).
        assert!(LEASE > Duration::from_secs(30));
    }
}
