//! The key API's one hot-path query: a key by the SHA-256 of its secret (unique index).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use crate::vocabulary::Environment;

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

/// The rows of every key whose secret hash is in `secret_hashes`, each with its hash: one probe
/// of the unique index per hash, for a batch of lookups. (`secret_hash = ANY($1)` plans as a
/// bitmap scan whose generic plan PostgreSQL deems worse than a custom one, so it would plan
/// every execution anew.)
async fn find_by_hashes(
    db: impl PgExecutor<'_>,
    secret_hashes: &[Vec<u8>],
) -> sqlx::Result<Vec<(Vec<u8>, KeyForVerification)>> {
    let rows = sqlx::query!(
        r#"SELECT k.secret_hash, k.api_key_id, k.tenant_id, t.slug AS tenant_slug, k.name,
                  k.environment AS "environment: Environment",
                  k.full_access, k.scopes, k.rate_limit, k.expires_at, k.revoked_at,
                  k.disabled_at, k.ip_allowlist, k.meta,
                  t.suspended_at IS NOT NULL AS "tenant_suspended!", k.legacy
           FROM unnest($1::bytea[]) AS wanted(secret_hash)
           JOIN api_key k ON k.secret_hash = wanted.secret_hash
           JOIN tenant t ON t.tenant_id = k.tenant_id"#,
        secret_hashes,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let key = KeyForVerification {
                api_key_id: row.api_key_id,
                tenant_id: row.tenant_id,
                tenant_slug: row.tenant_slug,
                name: row.name,
                environment: row.environment,
                full_access: row.full_access,
                scopes: row.scopes,
                rate_limit: row.rate_limit,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
                disabled_at: row.disabled_at,
                ip_allowlist: row.ip_allowlist,
                meta: row.meta,
                tenant_suspended: row.tenant_suspended,
                legacy: row.legacy,
            };
            (row.secret_hash, key)
        })
        .collect())
}

/// Why a lookup found no answer: the database failed, or the pool is closed.
#[derive(Debug, Clone)]
pub struct LookupFailed(Arc<str>);

impl std::fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<sqlx::Error> for LookupFailed {
    fn from(err: sqlx::Error) -> Self {
        Self(err.to_string().into())
    }
}

type Answer = Result<Option<KeyForVerification>, LookupFailed>;

/// A lookup waiting for a batch to take it.
struct Waiting {
    secret_hash: [u8; 32],
    answer: oneshot::Sender<Answer>,
}

/// Longest a lane waits for its query (connecting included) before it drops the connection and
/// answers the batch with an error: a database that stops answering must not hold a lane forever.
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most lookups one query takes.
const MAX_BATCH: usize = 64;

/// The key API's lookups, on connections of its own, batched: a lookup joins a queue and waits
/// for its answer; each of `lanes` worker tasks takes everything queued (up to [`MAX_BATCH`]) into
/// one query, answers it, and goes back for more. A lone lookup is one query at once; under load,
/// lookups that arrive while the lanes are busy share the next query, so the round trip, the
/// wake-up of a PostgreSQL backend and sqlx's per-query work are paid once per batch, not once
/// per lookup. No lookup waits on a timer.
///
/// Through the pool a lookup would cost two round trips (sqlx pings every connection it takes
/// back); through these, one. A lane opens its connection on first use with the pool's options,
/// drops it on any error (the next batch opens a new one), and answers errors once the pool is
/// closed. The lanes start with the first lookup and end when this is dropped.
pub struct LookupConnections {
    lanes: Arc<Lanes>,
    count: usize,
    workers: std::sync::OnceLock<Vec<tokio::task::AbortHandle>>,
}

/// What the lane workers share with the lookups.
struct Lanes {
    pool: PgPool,
    queue: Mutex<VecDeque<Waiting>>,
    queued: Notify,
    /// Queries run, against lookups answered: how well lookups share queries.
    queries: AtomicU64,
    lookups: AtomicU64,
}

impl LookupConnections {
    pub fn new(pool: PgPool, lanes: usize) -> Self {
        Self {
            lanes: Arc::new(Lanes {
                pool,
                queue: Mutex::new(VecDeque::new()),
                queued: Notify::new(),
                queries: AtomicU64::new(0),
                lookups: AtomicU64::new(0),
            }),
            count: lanes.max(1),
            workers: std::sync::OnceLock::new(),
        }
    }

    /// Queries run and lookups answered so far.
    pub fn queries_and_lookups(&self) -> (u64, u64) {
        (
            self.lanes.queries.load(Ordering::Relaxed),
            self.lanes.lookups.load(Ordering::Relaxed),
        )
    }

    /// As [`find_by_hash`], in the next batch.
    pub async fn find_by_hash(&self, secret_hash: &[u8; 32]) -> Answer {
        if self.lanes.pool.is_closed() {
            return Err(sqlx::Error::PoolClosed.into());
        }
        self.workers.get_or_init(|| {
            (0..self.count)
                .map(|_| tokio::spawn(Arc::clone(&self.lanes).serve()).abort_handle())
                .collect()
        });
        let (answer, answered) = oneshot::channel();
        lock(&self.lanes.queue).push_back(Waiting {
            secret_hash: *secret_hash,
            answer,
        });
        self.lanes.queued.notify_one();
        answered
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::WorkerCrashed.into()))
    }
}

impl Drop for LookupConnections {
    fn drop(&mut self) {
        for worker in self.workers.get().into_iter().flatten() {
            worker.abort();
        }
    }
}

impl Lanes {
    /// A lane: answers batches for as long as it lives, on a connection of its own.
    async fn serve(self: Arc<Self>) {
        let mut conn: Option<PgConnection> = None;
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = lock(&self.queue);
                let taken = queue.len().min(MAX_BATCH);
                queue
                    .drain(..taken)
                    .filter(|waiting| !waiting.answer.is_closed())
                    .collect()
            };
            if batch.is_empty() {
                self.queued.notified().await;
                continue;
            }
            self.answer(batch, &mut conn).await;
        }
    }

    /// Answers `batch` with one query on `conn` (opened when there is none; dropped on an error).
    async fn answer(&self, mut batch: Vec<Waiting>, conn: &mut Option<PgConnection>) {
        batch.sort_unstable_by_key(|waiting| waiting.secret_hash);
        let mut hashes: Vec<Vec<u8>> = batch.iter().map(|w| w.secret_hash.to_vec()).collect();
        hashes.dedup();
        let found = async {
            if self.pool.is_closed() {
                return Err(sqlx::Error::PoolClosed);
            }
            let mut open = match conn.take() {
                Some(open) => open,
                None => {
                    // The statements' plans do not depend on their arguments: plan them once.
                    let options = (*self.pool.connect_options())
                        .clone()
                        .options([("plan_cache_mode", "force_generic_plan")]);
                    PgConnection::connect_with(&options).await?
                }
            };
            self.queries.fetch_add(1, Ordering::Relaxed);
            let rows = match hashes.as_slice() {
                [alone] => find_by_hash(&mut open, alone)
                    .await?
                    .map(|key| (alone.clone(), key))
                    .into_iter()
                    .collect(),
                _ => find_by_hashes(&mut open, &hashes).await?,
            };
            *conn = Some(open);
            Ok(rows)
        };
        let found = tokio::time::timeout(QUERY_TIMEOUT, found)
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        let mut rows = match found {
            Ok(rows) => rows,
            Err(err) => {
                let failed = LookupFailed::from(err);
                for waiting in batch {
                    let _ = waiting.answer.send(Err(failed.clone()));
                }
                return;
            }
        };
        self.lookups
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Waiters are sorted by hash: the last one of each hash takes the row, the others a copy.
        while let Some(waiting) = batch.pop() {
            let position = rows
                .iter()
                .position(|(hash, _)| hash.as_slice() == waiting.secret_hash);
            let same_next = batch
                .last()
                .is_some_and(|next| next.secret_hash == waiting.secret_hash);
            let row = match position {
                Some(at) if same_next => Some(rows[at].1.clone()),
                Some(at) => Some(rows.swap_remove(at).1),
                None => None,
            };
            let _ = waiting.answer.send(Ok(row));
        }
    }
}

/// A lock that a panicking holder cannot poison for everyone after it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
