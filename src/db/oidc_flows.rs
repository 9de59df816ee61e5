//! The `oidc_flow` table: SSO sign-ins in progress.

use sqlx::PgExecutor;
use sqlx::postgres::types::PgInterval;

/// What a returning browser needs to finish its sign-in.
#[derive(Debug)]
pub struct Flow {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next_path: String,
    /// False when the flow outlived its lifetime (it is deleted all the same).
    pub live: bool,
}

pub struct NewFlow<'a> {
    pub state_hash: &'a [u8],
    pub browser_hash: &'a [u8],
    pub provider: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub next_path: &'a str,
    pub lifetime: std::time::Duration,
}

fn interval(duration: std::time::Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
    }
}

pub async fn insert(db: impl PgExecutor<'_>, flow: &NewFlow<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO oidc_flow
               (state_hash, browser_hash, provider, nonce, pkce_verifier, next_path, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval)"#,
        flow.state_hash,
        flow.browser_hash,
        flow.provider,
        flow.nonce,
        flow.pkce_verifier,
        flow.next_path,
        interval(flow.lifetime),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Removes and returns the flow for this `state`, only if this browser started it: whoever
/// asks first gets it, every later callback with the same `state` finds nothing.
pub async fn take(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
    browser_hash: &[u8],
) -> sqlx::Result<Option<Flow>> {
    sqlx::query_as!(
        Flow,
        r#"DELETE FROM oidc_flow
           WHERE state_hash = $1 AND browser_hash = $2
           RETURNING provider, nonce, pkce_verifier, next_path, (expires_at > now()) AS "live!""#,
        state_hash,
        browser_hash,
    )
    .fetch_optional(db)
    .await
}

/// Forgets flows nobody came back for.
pub async fn delete_expired(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM oidc_flow WHERE expires_at <= now()")
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
