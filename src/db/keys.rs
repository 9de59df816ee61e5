//! The `api_key` table, as the portal sees it. The key API's hot-path lookup lives beside it.

use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::audit::By;
use crate::vocabulary::Environment;

/// PostgreSQL channel on which every instance hears that a key changed (payload: hex SHA-256).
pub const CHANGED_CHANNEL: &str = "gatehouse_key_changed";

#[derive(Debug, Clone)]
pub struct Key {
    pub api_key_id: Uuid,
    pub tenant_id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_by_name: Option<String>,
    pub name: String,
    pub environment: Environment,
    pub secret_hash: Vec<u8>,
    pub last_four: String,
    pub full_access: bool,
    pub scopes: Vec<String>,
    pub rate_limit: i32,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by_name: Option<String>,
    pub rolled_from: Option<Uuid>,
    pub rolled_at: Option<OffsetDateTime>,
    pub rolled_by_name: Option<String>,
    pub last_used_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub note: String,
    pub meta: serde_json::Value,
    pub ip_allowlist: Vec<String>,
    pub disabled_at: Option<OffsetDateTime>,
    pub disabled_by_name: Option<String>,
    /// Imported in the platform's old format (`GATEHOUSE_LEGACY_KEY_PATTERN`).
    pub legacy: bool,
    /// Its id as an OAuth2 client (public; the client secret is the key).
    pub client_id: String,
    /// As of the query, by `api_key_status` (the one definition of a key's status).
    pub status: KeyStatus,
}

/// A key's state as lists show it, computed by the SQL function `api_key_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Expiring,
    Expired,
    Disabled,
    Rolled,
    Revoked,
}

pub struct NewKeyRow<'a> {
    pub tenant_id: Uuid,
    pub created_by: &'a By,
    pub name: &'a str,
    pub environment: &'a str,
    pub secret_hash: &'a [u8],
    pub last_four: &'a str,
    pub full_access: bool,
    pub scopes: &'a [String],
    pub rate_limit: i32,
    pub expires_at: Option<OffsetDateTime>,
    pub rolled_from: Option<Uuid>,
    pub note: &'a str,
    pub meta: &'a serde_json::Value,
    pub ip_allowlist: &'a [String],
    pub legacy: bool,
}

pub async fn insert(db: impl PgExecutor<'_>, key: &NewKeyRow<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO api_key (tenant_id, created_by, name, environment, secret_hash, last_four,
                                full_access, scopes, rate_limit, expires_at, rolled_from,
                                note, meta, ip_allowlist, legacy, created_by_label)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           RETURNING api_key_id"#,
        key.tenant_id,
        key.created_by.user,
        key.name,
        key.environment,
        key.secret_hash,
        key.last_four,
        key.full_access,
        key.scopes,
        key.rate_limit,
        key.expires_at,
        key.rolled_from,
        key.note,
        key.meta,
        key.ip_allowlist,
        key.legacy,
        key.created_by.label,
    )
    .fetch_one(db)
    .await
}

/// A key's id as an OAuth2 client.
pub async fn client_id(db: impl PgExecutor<'_>, api_key_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT client_id FROM api_key WHERE api_key_id = $1",
        api_key_id
    )
    .fetch_optional(db)
    .await
}

/// Which of `hashes` some key of any tenant already has.
pub async fn taken_hashes(
    db: impl PgExecutor<'_>,
    hashes: &[Vec<u8>],
) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar!(
        "SELECT secret_hash FROM api_key WHERE secret_hash = ANY($1)",
        hashes,
    )
    .fetch_all(db)
    .await
}

/// Keys of a tenant by id, in creation order (for answers about many new keys at once).
pub async fn by_ids(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_ids: &[Uuid],
) -> sqlx::Result<Vec<Key>> {
    sqlx::query_as!(
        Key,
        r#"SELECT k.api_key_id, k.tenant_id, k.created_by, k.created_by_label AS "created_by_name?",
                  k.name, k.environment AS "environment: Environment", k.secret_hash, k.last_four, k.full_access, k.scopes, k.rate_limit,
                  k.expires_at, k.revoked_at, NULL::text AS "revoked_by_name?",
                  k.rolled_from, k.rolled_at, NULL::text AS "rolled_by_name?",
                  k.last_used_at, k.created_at, k.note, k.meta, k.ip_allowlist,
                  k.disabled_at, NULL::text AS "disabled_by_name?", k.legacy, k.client_id,
                  api_key_status(k.expires_at, k.revoked_at, k.rolled_at, k.disabled_at, now()) AS "status!: KeyStatus"
           FROM api_key k
           WHERE k.tenant_id = $1 AND k.api_key_id = ANY($2)
           ORDER BY k.created_at, k.api_key_id"#,
        tenant_id,
        api_key_ids,
    )
    .fetch_all(db)
    .await
}

/// One key of a tenant, with the names of the people in its history.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
) -> sqlx::Result<Option<Key>> {
    sqlx::query_as!(
        Key,
        r#"SELECT k.api_key_id, k.tenant_id, k.created_by, COALESCE(c.display_name, k.created_by_label) AS "created_by_name?",
                  k.name, k.environment AS "environment: Environment", k.secret_hash, k.last_four, k.full_access, k.scopes, k.rate_limit,
                  k.expires_at, k.revoked_at, COALESCE(r.display_name, k.revoked_by_label) AS "revoked_by_name?",
                  k.rolled_from, k.rolled_at, COALESCE(o.display_name, k.rolled_by_label) AS "rolled_by_name?",
                  k.last_used_at, k.created_at, k.note, k.meta, k.ip_allowlist,
                  k.disabled_at, COALESCE(d.display_name, k.disabled_by_label) AS "disabled_by_name?", k.legacy, k.client_id,
                  api_key_status(k.expires_at, k.revoked_at, k.rolled_at, k.disabled_at, now()) AS "status!: KeyStatus"
           FROM api_key k
           LEFT JOIN app_user c ON c.app_user_id = k.created_by
           LEFT JOIN app_user r ON r.app_user_id = k.revoked_by
           LEFT JOIN app_user o ON o.app_user_id = k.rolled_by
           LEFT JOIN app_user d ON d.app_user_id = k.disabled_by
           WHERE k.tenant_id = $1 AND k.api_key_id = $2"#,
        tenant_id,
        api_key_id,
    )
    .fetch_optional(db)
    .await
}

/// As `get`, locking the row for a change.
pub async fn lock(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT api_key_id FROM api_key WHERE tenant_id = $1 AND api_key_id = $2 FOR UPDATE",
        tenant_id,
        api_key_id,
    )
    .fetch_optional(db)
    .await
}

/// The key made by rolling this one, if any.
pub async fn successor(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
) -> sqlx::Result<Option<(Uuid, String)>> {
    let row = sqlx::query!(
        "SELECT api_key_id, name FROM api_key WHERE tenant_id = $1 AND rolled_from = $2",
        tenant_id,
        api_key_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| (row.api_key_id, row.name)))
}

/// Filters of the keys page. `status` is one of domain::keys::Status's names.
#[derive(Debug, Default)]
pub struct KeyFilter<'a> {
    pub environment: Option<&'a str>,
    pub status: Option<&'a str>,
    pub search: Option<&'a str>,
}

/// A page of a tenant's keys, newest first. The status expression mirrors
/// `domain::keys::Status::of` (tests compare the two through the keys page).
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    filter: &KeyFilter<'_>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Key>> {
    let search = filter.search.map(|text| {
        format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    sqlx::query_as!(
        Key,
        r#"SELECT k.api_key_id, k.tenant_id, k.created_by, COALESCE(c.display_name, k.created_by_label) AS "created_by_name?",
                  k.name, k.environment AS "environment: Environment", k.secret_hash, k.last_four, k.full_access, k.scopes, k.rate_limit,
                  k.expires_at, k.revoked_at, NULL::text AS "revoked_by_name?",
                  k.rolled_from, k.rolled_at, NULL::text AS "rolled_by_name?",
                  k.last_used_at, k.created_at, k.note, k.meta, k.ip_allowlist,
                  k.disabled_at, NULL::text AS "disabled_by_name?", k.legacy, k.client_id,
                  api_key_status(k.expires_at, k.revoked_at, k.rolled_at, k.disabled_at, now()) AS "status!: KeyStatus"
           FROM api_key k
           LEFT JOIN app_user c ON c.app_user_id = k.created_by
           WHERE k.tenant_id = $1
             AND ($2::text IS NULL OR k.environment = $2)
             AND ($3::text IS NULL OR k.name ILIKE $3)
             AND ($4::text IS NULL OR $4 = api_key_status(k.expires_at, k.revoked_at, k.rolled_at, k.disabled_at, now()))
           ORDER BY k.created_at DESC, k.api_key_id
           LIMIT $5 OFFSET $6"#,
        tenant_id,
        filter.environment,
        search,
        filter.status,
        limit,
        offset,
    )
    .fetch_all(db)
    .await
}

/// What an edit sets: every editable column at once (the domain worked out the new values).
pub struct KeyUpdate<'a> {
    pub name: &'a str,
    pub note: &'a str,
    pub full_access: bool,
    pub scopes: &'a [String],
    pub rate_limit: i32,
    pub expires_at: Option<OffsetDateTime>,
    pub meta: &'a serde_json::Value,
    pub ip_allowlist: &'a [String],
    pub disabled: bool,
    pub changed_by: &'a By,
}

pub async fn update(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
    key: &KeyUpdate<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE api_key
           SET name = $3, note = $4, full_access = $5, scopes = $6, rate_limit = $7, expires_at = $8,
               meta = $9, ip_allowlist = $10,
               disabled_at = CASE WHEN NOT $11 THEN NULL WHEN disabled_at IS NULL THEN now() ELSE disabled_at END,
               disabled_by = CASE WHEN NOT $11 THEN NULL WHEN disabled_at IS NULL THEN $12 ELSE disabled_by END,
               disabled_by_label = CASE WHEN NOT $11 THEN NULL WHEN disabled_at IS NULL THEN $13 ELSE disabled_by_label END
           WHERE tenant_id = $1 AND api_key_id = $2"#,
        tenant_id,
        api_key_id,
        key.name,
        key.note,
        key.full_access,
        key.scopes,
        key.rate_limit,
        key.expires_at,
        key.meta,
        key.ip_allowlist,
        key.disabled,
        key.changed_by.user,
        key.changed_by.label,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Revokes a key that is not revoked yet; true when this call revoked it.
pub async fn revoke(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
    revoked_by: &By,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE api_key SET revoked_at = now(), revoked_by = $3, revoked_by_label = $4
           WHERE tenant_id = $1 AND api_key_id = $2 AND revoked_at IS NULL"#,
        tenant_id,
        api_key_id,
        revoked_by.user,
        revoked_by.label,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every key of the tenant not revoked yet; the secret hashes of those it revoked.
pub async fn revoke_all(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    revoked_by: &By,
) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar!(
        r#"UPDATE api_key SET revoked_at = now(), revoked_by = $2, revoked_by_label = $3
           WHERE tenant_id = $1 AND revoked_at IS NULL
           RETURNING secret_hash"#,
        tenant_id,
        revoked_by.user,
        revoked_by.label,
    )
    .fetch_all(db)
    .await
}

/// Marks a key rolled; it keeps working until `works_until` (or its own earlier expiry).
pub async fn mark_rolled(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
    rolled_by: &By,
    works_until: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE api_key
           SET rolled_at = now(), rolled_by = $3, rolled_by_label = $5,
               expires_at = CASE WHEN expires_at IS NULL OR expires_at > $4 THEN $4 ELSE expires_at END
           WHERE tenant_id = $1 AND api_key_id = $2"#,
        tenant_id,
        api_key_id,
        rolled_by.user,
        works_until,
        rolled_by.label,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Tells every instance (this one included) that the key with this hash changed; delivered at commit.
/// What a notification on [`CHANGED_CHANNEL`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// This key (its SHA-256) changed.
    Key([u8; 32]),
    /// The keys that sign access tokens changed (a rotation): read them again.
    SigningKeys,
    /// Something changed but the payload could not be read: assume anything did.
    Unknown,
}

/// A connection listening on [`CHANGED_CHANNEL`], the other end of [`notify_changed`].
pub struct KeyChanges(PgListener);

impl KeyChanges {
    pub async fn listen(pool: &PgPool) -> sqlx::Result<Self> {
        let mut listener = PgListener::connect_with(pool).await?;
        // A lost connection is reported at once: the caller re-listens and knows it missed changes.
        listener.eager_reconnect(false);
        listener.listen(CHANGED_CHANNEL).await?;
        Ok(Self(listener))
    }

    /// The next change; `None` once the connection is lost.
    pub async fn next(&mut self) -> Option<KeyChange> {
        let notification = self.0.try_recv().await.ok()??;
        if notification.payload() == SIGNING_KEYS_PAYLOAD {
            return Some(KeyChange::SigningKeys);
        }
        Some(parse_payload(notification.payload()).map_or(KeyChange::Unknown, KeyChange::Key))
    }
}

/// What [`notify_signing_keys_changed`] says on [`CHANGED_CHANNEL`]: the one listener every
/// instance keeps hears rotations of the token signing keys too.
const SIGNING_KEYS_PAYLOAD: &str = "signing_keys";

/// Tells every instance (this one included) to read the token signing keys again; delivered at
/// commit.
pub async fn notify_signing_keys_changed(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_notify($1, $2)",
        CHANGED_CHANNEL,
        SIGNING_KEYS_PAYLOAD
    )
    .execute(db)
    .await
    .map(drop)
}

/// A notification's payload: the key's SHA-256 in hex, as [`notify_changed`] writes it.
fn parse_payload(payload: &str) -> Option<[u8; 32]> {
    let payload = payload.trim().as_bytes();
    if payload.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(payload.chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(hash)
}

pub async fn notify_changed(db: impl PgExecutor<'_>, secret_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_notify($1, encode($2, 'hex'))",
        CHANGED_CHANNEL,
        secret_hash,
    )
    .execute(db)
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_hex_hashes() {
        let hash: [u8; 32] = std::array::from_fn(|at| u8::try_from(at).unwrap_or(0));
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_payload(&hex), Some(hash));
        assert_eq!(parse_payload("zz"), None);
        let mut bad = hex.clone();
        bad.replace_range(0..1, "g");
        assert_eq!(parse_payload(&bad), None);
    }
}

/// A key as a picker lists it.
#[derive(Debug, Clone)]
pub struct KeyChoice {
    pub api_key_id: Uuid,
    pub name: String,
    pub environment: Environment,
    pub last_four: String,
}

/// A tenant's keys for a filter's picker, newest first.
pub async fn choices(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Vec<KeyChoice>> {
    sqlx::query_as!(
        KeyChoice,
        r#"SELECT api_key_id, name, environment AS "environment: Environment", last_four
           FROM api_key WHERE tenant_id = $1
           ORDER BY created_at DESC, api_key_id LIMIT 500"#,
        tenant_id,
    )
    .fetch_all(db)
    .await
}
