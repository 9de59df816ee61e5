//! `token_signing_key`: the keys that sign access tokens, their private halves sealed, and the
//! rotation's lock. (Every instance hears a rotation through `keys::notify_signing_keys_changed`.)

use sqlx::{PgExecutor, Postgres, Transaction};
use time::OffsetDateTime;

/// One signing key as stored.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key_sealed: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub publish_at: OffsetDateTime,
    pub sign_from: OffsetDateTime,
    pub retire_at: Option<OffsetDateTime>,
    pub unpublish_at: Option<OffsetDateTime>,
}

/// Every key, oldest first.
pub async fn all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<SigningKeyRow>> {
    sqlx::query_as!(
        SigningKeyRow,
        "SELECT kid, public_key, private_key_sealed, created_at, publish_at, sign_from,
                retire_at, unpublish_at
         FROM token_signing_key ORDER BY sign_from, created_at"
    )
    .fetch_all(db)
    .await
}

/// Holds the rotation's lock until the transaction ends: one instance rotates at a time.
pub async fn lock(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('token_signing_key'))")
        .execute(&mut **tx)
        .await
        .map(drop)
}

pub async fn insert(db: impl PgExecutor<'_>, row: &SigningKeyRow) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO token_signing_key
             (kid, public_key, private_key_sealed, created_at, publish_at, sign_from)
         VALUES ($1, $2, $3, $4, $5, $6)",
        row.kid,
        row.public_key,
        row.private_key_sealed,
        row.created_at,
        row.publish_at,
        row.sign_from,
    )
    .execute(db)
    .await
    .map(drop)
}

/// The key stops signing at `retire_at` and leaves the JWKS at `unpublish_at`.
pub async fn retire(
    db: impl PgExecutor<'_>,
    kid: &str,
    retire_at: OffsetDateTime,
    unpublish_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE token_signing_key SET retire_at = $2, unpublish_at = $3 WHERE kid = $1",
        kid,
        retire_at,
        unpublish_at,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Forgets keys no longer published since before `before`.
pub async fn delete_unpublished(
    db: impl PgExecutor<'_>,
    before: OffsetDateTime,
) -> sqlx::Result<u64> {
    sqlx::query!(
        "DELETE FROM token_signing_key WHERE unpublish_at < $1",
        before
    )
    .execute(db)
    .await
    .map(|done| done.rows_affected())
}
