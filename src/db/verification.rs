//! The key API's one hot-path query: a key by the SHA-256 of its secret (unique index).

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// What the key API needs to judge a key, with its tenant's slug.
#[derive(Debug, Clone)]
pub struct KeyForVerification {
    pub api_key_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub name: String,
    pub environment: String,
    pub scopes: Vec<String>,
    pub rate_limit: i32,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// One index lookup on `api_key_secret_hash_key` joined to the tenant by primary key.
pub async fn find_by_hash(
    db: impl PgExecutor<'_>,
    secret_hash: &[u8],
) -> sqlx::Result<Option<KeyForVerification>> {
    sqlx::query_as!(
        KeyForVerification,
        r#"SELECT k.api_key_id, k.tenant_id, t.slug AS tenant_slug, k.name, k.environment,
                  k.scopes, k.rate_limit, k.expires_at, k.revoked_at
           FROM api_key k
           JOIN tenant t ON t.tenant_id = k.tenant_id
           WHERE k.secret_hash = $1"#,
        secret_hash,
    )
    .fetch_optional(db)
    .await
}
