//! The management API's tables: `management_token`, `idempotency_key`, and the tenant and key
//! reads it pages through with cursors.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::keys::{Key, KeyStatus};
use crate::vocabulary::Environment;

/// The unique constraint on `tenant.external_id`.
pub const UNIQUE_EXTERNAL_ID: &str = "tenant_external_id_key";

/// A tenant as the management API shows it.
#[derive(Debug, Clone)]
pub struct ApiTenant {
    pub tenant_id: Uuid,
    pub slug: String,
    pub name: String,
    pub external_id: Option<String>,
    pub suspended_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

/// A tenant by id, slug or external id (`ext:<id>`); deleted tenants are never found.
pub async fn tenant(
    db: impl PgExecutor<'_>,
    id: Option<Uuid>,
    slug: Option<&str>,
    external_id: Option<&str>,
) -> sqlx::Result<Option<ApiTenant>> {
    sqlx::query_as!(
        ApiTenant,
        r#"SELECT tenant_id, slug, name, external_id, suspended_at, created_at FROM tenant
           WHERE deleted_at IS NULL
             AND (tenant_id = $1 OR slug = $2 OR external_id = $3)
           LIMIT 1"#,
        id,
        slug,
        external_id,
    )
    .fetch_optional(db)
    .await
}

/// A page of tenants in creation order after `after`, optionally only the one with `external_id`.
pub async fn tenants(
    db: impl PgExecutor<'_>,
    external_id: Option<&str>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ApiTenant>> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        ApiTenant,
        r#"SELECT tenant_id, slug, name, external_id, suspended_at, created_at FROM tenant
           WHERE deleted_at IS NULL
             AND ($1::text IS NULL OR external_id = $1)
             AND ($2::timestamptz IS NULL OR (created_at, tenant_id) > ($2, $3))
           ORDER BY created_at, tenant_id
           LIMIT $4"#,
        external_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Inserts a tenant made through the management API (no member yet: its admin is invited).
pub async fn insert_tenant(
    db: impl PgExecutor<'_>,
    slug: &str,
    name: &str,
    external_id: Option<&str>,
) -> sqlx::Result<ApiTenant> {
    sqlx::query_as!(
        ApiTenant,
        r#"INSERT INTO tenant (slug, name, external_id) VALUES ($1, $2, $3)
           RETURNING tenant_id, slug, name, external_id, suspended_at, created_at"#,
        slug,
        name,
        external_id,
    )
    .fetch_one(db)
    .await
}

pub async fn set_external_id(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    external_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenant SET external_id = $2 WHERE tenant_id = $1",
        tenant_id,
        external_id,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Suspends or resumes a tenant; true when that changed something.
pub async fn set_suspended(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    suspended: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE tenant SET suspended_at = CASE WHEN $2 THEN now() END
           WHERE tenant_id = $1 AND (suspended_at IS NOT NULL) <> $2"#,
        tenant_id,
        suspended,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Tells every instance that each key of the tenant changed (its cache forgets them at commit).
pub async fn notify_tenant_keys_changed(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_notify($1, encode(secret_hash, 'hex')) FROM api_key WHERE tenant_id = $2",
        crate::db::keys::CHANGED_CHANNEL,
        tenant_id,
    )
    .execute(db)
    .await
    .map(drop)
}

/// A page of a tenant's keys in creation order after `after`, filtered by environment and status
/// (the status expression is `db::keys::list`'s).
pub async fn keys(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    environment: Option<Environment>,
    status: Option<&str>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Key>> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        Key,
        r#"SELECT k.api_key_id, k.tenant_id, k.created_by, k.created_by_label AS "created_by_name?",
                  k.name, k.environment AS "environment: Environment", k.secret_hash, k.last_four, k.full_access, k.scopes, k.rate_limit,
                  k.expires_at, k.revoked_at, NULL::text AS "revoked_by_name?",
                  k.rolled_from, k.rolled_at, NULL::text AS "rolled_by_name?",
                  k.last_used_at, k.created_at, k.note, k.meta, k.ip_allowlist, k.disabled_at,
                  NULL::text AS "disabled_by_name?", k.legacy, k.client_id,
                  api_key_status(k.expires_at, k.revoked_at, k.rolled_at, k.disabled_at, now()) AS "status!: KeyStatus"
           FROM api_key k
           WHERE k.tenant_id = $1
             AND ($2::text IS NULL OR k.environment = $2)
             AND ($3::text IS NULL OR $3 = api_key_status(k.expires_at, k.revoked_at, k.rolled_at, k.disabled_at, now()))
             AND ($4::timestamptz IS NULL OR (k.created_at, k.api_key_id) > ($4, $5))
           ORDER BY k.created_at, k.api_key_id
           LIMIT $6"#,
        tenant_id,
        environment.map(Environment::as_str),
        status,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(db)
    .await
}

/// A tenant management token, as lists show it and as the API checks it.
#[derive(Debug, Clone)]
pub struct Token {
    pub management_token_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub last_four: String,
    pub created_by: Option<Uuid>,
    pub created_by_name: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

pub struct NewToken<'a> {
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub scopes: &'a [String],
    pub secret_hash: &'a [u8],
    pub last_four: &'a str,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<OffsetDateTime>,
}

pub async fn insert_token(db: impl PgExecutor<'_>, token: &NewToken<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO management_token (tenant_id, name, scopes, secret_hash, last_four, created_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING management_token_id"#,
        token.tenant_id,
        token.name,
        token.scopes,
        token.secret_hash,
        token.last_four,
        token.created_by,
        token.expires_at,
    )
    .fetch_one(db)
    .await
}

/// The tenant's tokens, newest first.
pub async fn tokens(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Vec<Token>> {
    sqlx::query_as!(
        Token,
        r#"SELECT t.management_token_id, t.tenant_id, t.name, t.scopes, t.last_four, t.created_by,
                  u.display_name AS "created_by_name?", t.created_at, t.expires_at, t.last_used_at, t.revoked_at
           FROM management_token t LEFT JOIN app_user u ON u.app_user_id = t.created_by
           WHERE t.tenant_id = $1
           ORDER BY t.created_at DESC, t.management_token_id"#,
        tenant_id,
    )
    .fetch_all(db)
    .await
}

/// The token with this secret hash, if its tenant still exists.
pub async fn token_by_hash(
    db: impl PgExecutor<'_>,
    secret_hash: &[u8],
) -> sqlx::Result<Option<Token>> {
    sqlx::query_as!(
        Token,
        r#"SELECT t.management_token_id, t.tenant_id, t.name, t.scopes, t.last_four, t.created_by,
                  NULL::text AS "created_by_name?", t.created_at, t.expires_at, t.last_used_at, t.revoked_at
           FROM management_token t JOIN tenant n ON n.tenant_id = t.tenant_id
           WHERE t.secret_hash = $1 AND n.deleted_at IS NULL"#,
        secret_hash,
    )
    .fetch_optional(db)
    .await
}

/// Records a use, at most once a minute per token (lists show it to the minute).
pub async fn touch_token(db: impl PgExecutor<'_>, management_token_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE management_token SET last_used_at = now()
           WHERE management_token_id = $1
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"#,
        management_token_id,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Revokes a token of the tenant that is not revoked yet; its name when this call revoked it.
pub async fn revoke_token(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    management_token_id: Uuid,
    revoked_by: Option<Uuid>,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"UPDATE management_token SET revoked_at = now(), revoked_by = $3
           WHERE tenant_id = $1 AND management_token_id = $2 AND revoked_at IS NULL
           RETURNING name"#,
        tenant_id,
        management_token_id,
        revoked_by,
    )
    .fetch_optional(db)
    .await
}

/// What an `Idempotency-Key` holds: the request it was first used with and, once that request
/// was answered, its answer (`status` and `response` are NULL while it runs).
#[derive(Debug, Clone)]
pub struct IdempotencyRow {
    pub request_hash: Vec<u8>,
    pub status: Option<i16>,
    pub response: Option<Vec<u8>>,
    pub sealed: bool,
}

/// Removes the answers older than `kept_secs` (the index on `created_at` keeps this cheap), so an
/// expired key starts afresh.
pub async fn prune_idempotency_keys(db: impl PgExecutor<'_>, kept_secs: f64) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM idempotency_key WHERE created_at < now() - make_interval(secs => $1)",
        kept_secs,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Claims `(caller, key)` for a request with `request_hash` under `claim` until `lease_secs` from
/// now, in one statement: a new row, or one whose answer is older than `kept_secs` or whose claim
/// lapsed. False when the key holds a live claim or answer (read it with [`idempotency_key`]).
pub async fn claim_idempotency_key(
    db: impl PgExecutor<'_>,
    (caller, key): (&str, &str),
    request_hash: &[u8],
    claim: Uuid,
    (lease_secs, kept_secs): (f64, f64),
) -> sqlx::Result<bool> {
    let claimed = sqlx::query_scalar!(
        r#"INSERT INTO idempotency_key (caller, idempotency_key, request_hash, claim, claimed_until)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
           ON CONFLICT (caller, idempotency_key) DO UPDATE
               SET request_hash = EXCLUDED.request_hash, claim = EXCLUDED.claim,
                   claimed_until = EXCLUDED.claimed_until, status = NULL, response = NULL,
                   sealed = false, created_at = now()
               WHERE idempotency_key.created_at < now() - make_interval(secs => $6)
                  OR (idempotency_key.status IS NULL AND idempotency_key.claimed_until <= now())
           RETURNING claim AS "claim!""#,
        caller,
        key,
        request_hash,
        claim,
        lease_secs,
        kept_secs,
    )
    .fetch_optional(db)
    .await?;
    Ok(claimed == Some(claim))
}

/// What `(caller, key)` holds, if anything.
pub async fn idempotency_key(
    db: impl PgExecutor<'_>,
    caller: &str,
    key: &str,
) -> sqlx::Result<Option<IdempotencyRow>> {
    sqlx::query_as!(
        IdempotencyRow,
        r#"SELECT request_hash, status, response, sealed FROM idempotency_key
           WHERE caller = $1 AND idempotency_key = $2"#,
        caller,
        key,
    )
    .fetch_optional(db)
    .await
}

/// Records the answer of the request that holds `claim`; false when the claim is no longer its
/// own (it lapsed and another request took the key over).
pub async fn answer_idempotency_key(
    db: impl PgExecutor<'_>,
    (caller, key): (&str, &str),
    claim: Uuid,
    status: i16,
    (response, sealed): (&[u8], bool),
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE idempotency_key
           SET status = $4, response = $5, sealed = $6, claim = NULL, claimed_until = NULL
           WHERE caller = $1 AND idempotency_key = $2 AND claim = $3 AND status IS NULL"#,
        caller,
        key,
        claim,
        status,
        response,
        sealed,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up `claim` without an answer: the next request with the key runs afresh.
pub async fn release_idempotency_key(
    db: impl PgExecutor<'_>,
    caller: &str,
    key: &str,
    claim: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"DELETE FROM idempotency_key
           WHERE caller = $1 AND idempotency_key = $2 AND claim = $3 AND status IS NULL"#,
        caller,
        key,
        claim,
    )
    .execute(db)
    .await
    .map(drop)
}

/// (bucket, outcome, count) of a tenant's keys from `from` until before `to`, summed per
/// `grain` (`minute`, `hour` or `day`, read from the counters of that grain), for one key or
/// one environment when given.
pub async fn usage(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    (from, to): (OffsetDateTime, OffsetDateTime),
    grain: &str,
    api_key_id: Option<Uuid>,
    environment: Option<Environment>,
) -> sqlx::Result<Vec<(OffsetDateTime, crate::vocabulary::Code, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT u.bucket AS "bucket!", u.outcome AS "outcome!: crate::vocabulary::Code",
                  sum(u.count)::bigint AS "count!"
           FROM (SELECT api_key_id, bucket, outcome, count FROM key_usage_minute
                 WHERE $4 = 'minute' AND tenant_id = $1 AND bucket >= $2 AND bucket < $3
                 UNION ALL
                 SELECT api_key_id, bucket, outcome, count FROM key_usage_hour
                 WHERE $4 = 'hour' AND tenant_id = $1 AND bucket >= $2 AND bucket < $3
                 UNION ALL
                 SELECT api_key_id, bucket, outcome, count FROM key_usage_day
                 WHERE $4 = 'day' AND tenant_id = $1 AND bucket >= $2 AND bucket < $3) u
           JOIN api_key k ON k.api_key_id = u.api_key_id
           WHERE ($5::uuid IS NULL OR u.api_key_id = $5)
             AND ($6::text IS NULL OR k.environment = $6)
           GROUP BY 1, 2
           ORDER BY 1, 2"#,
        tenant_id,
        from,
        to,
        grain,
        api_key_id,
        environment.map(Environment::as_str),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.bucket, row.outcome, row.count))
        .collect())
}

/// An audit event as the management API shows it.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub audit_event_id: Uuid,
    pub actor_email: Option<String>,
    pub actor_token: Option<String>,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    pub details: serde_json::Value,
    pub at: OffsetDateTime,
}

/// A page of the tenant's audit events, oldest first, after `after`.
pub async fn audit_events(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    action: Option<&str>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        AuditRow,
        r#"SELECT e.audit_event_id, u.email AS "actor_email?", e.actor_token, e.action, e.target,
                  e.request_id, e.client_ip, e.details, e.at
           FROM audit_event e LEFT JOIN app_user u ON u.app_user_id = e.actor_id
           WHERE e.tenant_id = $1 AND ($2::text IS NULL OR e.action = $2)
             AND ($3::timestamptz IS NULL OR (e.at, e.audit_event_id) > ($3, $4))
           ORDER BY e.at, e.audit_event_id
           LIMIT $5"#,
        tenant_id,
        action,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(db)
    .await
}
