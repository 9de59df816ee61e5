//! The key API's one hot-path query: a key by the SHA-256 of its secret (unique index).

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::vocabulary::Environment;

/// What the key API needs to judge a key, with its tenant's slug.
#[derive(Debug, Clone)]
pub struct KeyForVerification {
    pub api_key_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub name: String,
    pub environment: Environment,
    pub full_access: bool,
    pub scopes: Vec<String>,
    pub rate_limit: i32,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub disabled_at: Option<OffsetDateTime>,
    pub ip_allowlist: Vec<String>,
    pub meta: serde_json::Value,
    pub tenant_suspended: bool,
    pub legacy: bool,
}

/// One index lookup on `api_key_secret_hash_key` joined to the tenant by primary key.
pub async fn find_by_hash(
    db: impl PgExecutor<'_>,
    secret_hash: &[u8],
) -> sqlx::Result<Option<KeyForVerification>> {
    sqlx::query_as!(
        KeyForVerification,
        r#"SELECT k.api_key_id, k.tenant_id, t.slug AS tenant_slug, k.name, k.environment AS "environment: Environment",
                  k.full_access, k.scopes, k.rate_limit, k.expires_at, k.revoked_at,
                  k.disabled_at, k.ip_allowlist, k.meta,
                  t.suspended_at IS NOT NULL AS "tenant_suspended!", k.legacy
           FROM api_key k
           JOIN tenant t ON t.tenant_id = k.tenant_id
           WHERE k.secret_hash = $1"#,
        secret_hash,
    )
    .fetch_optional(db)
    .await
}

/// Connections of the key API's own for the lookup above. A lookup through the pool costs two
/// round trips (sqlx pings every connection it takes back); through these, one. Connections are
/// opened on first use with the pool's options, dropped on any error (the next lookup opens a new
/// one), and refused once the pool is closed.
pub struct LookupConnections {
    pool: PgPool,
    lanes: Vec<tokio::sync::Mutex<Option<PgConnection>>>,
    next: AtomicUsize,
}

impl LookupConnections {
    pub fn new(pool: PgPool, size: usize) -> Self {
        Self {
            pool,
            lanes: (0..size.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// As [`find_by_hash`], on a free connection of its own (or the next one to come free).
    pub async fn find_by_hash(
        &self,
        secret_hash: &[u8],
    ) -> sqlx::Result<Option<KeyForVerification>> {
        if self.pool.is_closed() {
            return Err(sqlx::Error::PoolClosed);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let free = (0..self.lanes.len()).find_map(|offset| {
            self.lanes[(start + offset) % self.lanes.len()]
                .try_lock()
                .ok()
        });
        let mut lane = match free {
            Some(lane) => lane,
            None => self.lanes[start].lock().await,
        };
        // Taken out while in use: if this future is dropped mid-query (a timeout), the
        // connection goes with it instead of being reused in an unknown state.
        let mut conn = match lane.take() {
            Some(conn) => conn,
            None => PgConnection::connect_with(&self.pool.connect_options()).await?,
        };
        let found = find_by_hash(&mut conn, secret_hash).await?;
        *lane = Some(conn);
        Ok(found)
    }
}
