//! Leak reports' tables: `key_leak`, `management_token_leak`, `tenant_leak_policy`, and the one
//! batched lookup of a report's well-formed candidates.

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::vocabulary::Environment;

/// A key a report named, found by its hash.
#[derive(Debug, Clone)]
pub struct FoundKey {
    pub api_key_id: Uuid,
    pub tenant_id: Uuid,
    pub environment: Environment,
    pub secret_hash: Vec<u8>,
}

/// Every key among `hashes`, in one query.
pub async fn find_keys(pool: &PgPool, hashes: &[Vec<u8>]) -> sqlx::Result<Vec<FoundKey>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as!(
        FoundKey,
        r#"SELECT api_key_id, tenant_id, environment AS "environment: Environment", secret_hash
           FROM api_key WHERE secret_hash = ANY($1)"#,
        hashes,
    )
    .fetch_all(pool)
    .await
}

/// A management token a report named.
#[derive(Debug, Clone)]
pub struct FoundToken {
    pub management_token_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub revoked: bool,
}

/// Every management token among `hashes`, in one query.
pub async fn find_tokens(pool: &PgPool, hashes: &[Vec<u8>]) -> sqlx::Result<Vec<FoundToken>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as!(
        FoundToken,
        r#"SELECT management_token_id, tenant_id, name, secret_hash, revoked_at IS NOT NULL AS "revoked!"
           FROM management_token WHERE secret_hash = ANY($1)"#,
        hashes,
    )
    .fetch_all(pool)
    .await
}

/// A tenant's leak policy: (live, test); none when the tenant never set one.
pub async fn policy(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query!(
        "SELECT live, test FROM tenant_leak_policy WHERE tenant_id = $1",
        tenant_id
    )
    .fetch_optional(db)
    .await
    .map(|row| row.map(|row| (row.live, row.test)))
}

pub async fn set_policy(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    live: &str,
    test: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO tenant_leak_policy (tenant_id, live, test) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET live = $2, test = $3, updated_at = now()"#,
        tenant_id,
        live,
        test,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Whether this key was already reported at this URL.
pub async fn key_reported(
    db: impl PgExecutor<'_>,
    api_key_id: Uuid,
    url: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM key_leak WHERE api_key_id = $1 AND url = $2) AS "exists!""#,
        api_key_id,
        url,
    )
    .fetch_one(db)
    .await
}

pub struct NewKeyLeak<'a> {
    pub api_key_id: Uuid,
    pub tenant_id: Uuid,
    pub url: &'a str,
    pub origin: &'a str,
    pub source: &'a str,
    pub action: &'a str,
}

/// Records the leak; false when this key and URL were recorded before (by a report sent twice).
pub async fn insert_key_leak(db: impl PgExecutor<'_>, leak: &NewKeyLeak<'_>) -> sqlx::Result<bool> {
    sqlx::query!(
        r#"INSERT INTO key_leak (api_key_id, tenant_id, url, origin, source, action)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"#,
        leak.api_key_id,
        leak.tenant_id,
        leak.url,
        leak.origin,
        leak.source,
        leak.action,
    )
    .execute(db)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// Records a management token's leak; false when recorded before.
pub async fn insert_token_leak(
    db: impl PgExecutor<'_>,
    management_token_id: Uuid,
    url: &str,
    origin: &str,
    source: &str,
) -> sqlx::Result<bool> {
    sqlx::query!(
        r#"INSERT INTO management_token_leak (management_token_id, url, origin, source)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"#,
        management_token_id,
        url,
        origin,
        source,
    )
    .execute(db)
    .await
    .map(|done| done.rows_affected() == 1)
}

/// A key's leak as its page and the keys list show it.
#[derive(Debug, Clone)]
pub struct KeyLeak {
    pub api_key_id: Uuid,
    pub url: String,
    pub origin: String,
    pub source: String,
    pub action: String,
    pub reported_at: OffsetDateTime,
}

/// The latest leak of each of `api_key_ids` that has one.
pub async fn latest_of(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_ids: &[Uuid],
) -> sqlx::Result<Vec<KeyLeak>> {
    sqlx::query_as!(
        KeyLeak,
        r#"SELECT DISTINCT ON (api_key_id) api_key_id, url, origin, source, action, reported_at
           FROM key_leak WHERE tenant_id = $1 AND api_key_id = ANY($2)
           ORDER BY api_key_id, reported_at DESC"#,
        tenant_id,
        api_key_ids,
    )
    .fetch_all(db)
    .await
}
