//! The cache of verified keys: at most 10 s old, used only while this instance is listening for
//! key changes, emptied of a key at once when it is revoked or rolled (here, or anywhere through
//! PostgreSQL `LISTEN/NOTIFY`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::db::keys::{KeyChange, KeyChanges};
use crate::domain::access_tokens::SigningKeys;
use crate::domain::verification::KeyRecord;

/// The design's bound: a cached answer is never older than this.
pub const MAX_TTL: Duration = Duration::from_secs(10);
/// Entries beyond this are not cached (a flood of distinct keys cannot grow memory without bound).
const MAX_ENTRIES: usize = 200_000;
/// Wait between attempts to (re)establish `LISTEN`.
const RELISTEN_AFTER: Duration = Duration::from_millis(250);

pub type SecretHash = [u8; 32];

pub struct KeyCache {
    ttl: Duration,
    /// Keyed by SHA-256 digests of stored keys: a fast hasher, no SipHash per verification.
    entries: RwLock<foldhash::HashMap<SecretHash, (Instant, Arc<KeyRecord>)>>,
    /// Bumped by every invalidation, so a lookup that started before it does not cache its result.
    generation: AtomicU64,
    /// True only while the `LISTEN` connection is up: without it, changes elsewhere go unheard.
    listening: AtomicBool,
}

impl KeyCache {
    /// `ttl` is capped at [`MAX_TTL`]; zero turns caching off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl: ttl.min(MAX_TTL),
            entries: RwLock::new(foldhash::HashMap::default()),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// A fresh entry, if caching is on and changes are being heard.
    pub fn get(&self, hash: &SecretHash) -> Option<Arc<KeyRecord>> {
        if !self.is_enabled() || !self.is_listening() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let (stored, record) = entries.get(hash)?;
        (stored.elapsed() < self.ttl).then(|| Arc::clone(record))
    }

    /// Take this before a database lookup and hand it to [`insert`](Self::insert) after.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a lookup's result unless a key changed since `generation` was taken.
    pub fn insert(&self, hash: SecretHash, record: Arc<KeyRecord>, generation: u64) {
        if !self.is_enabled() || !self.is_listening() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(hash, (Instant::now(), record));
    }

    /// Forgets one key at once. The portal calls this after revoking or rolling a key; the
    /// notification that follows does the same on every instance.
    pub fn invalidate(&self, hash: &[u8]) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(hash) = SecretHash::try_from(hash) {
            entries.remove(&hash);
        }
    }

    /// Forgets everything (when notifications may have been missed).
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Drops entries past their time, so memory follows the working set.
    pub fn sweep(&self) {
        let ttl = self.ttl;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
    }

    fn set_listening(&self, listening: bool) {
        if !listening {
            // Stop serving from the cache before anything else: changes may go unheard from now.
            self.listening.store(false, Ordering::Release);
        }
        self.clear();
        if listening {
            self.listening.store(true, Ordering::Release);
        }
    }

    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Listens for key changes until the pool closes, re-listening after any connection loss. While
/// not listening the cache is off, and it starts empty after every (re)connection, so no change
/// made while the connection was down can be missed. The token signing keys (when there are) are
/// read again on a rotation and after every (re)connection.
pub async fn listen_for_changes(
    pool: PgPool,
    cache: Arc<KeyCache>,
    signing_keys: Option<Arc<SigningKeys>>,
) {
    let reload = |signing_keys: &Option<Arc<SigningKeys>>| {
        if let Some(keys) = signing_keys.clone() {
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(err) = keys.reload(&pool).await {
                    tracing::warn!(error = %err, "cannot read the token signing keys");
                }
            });
        }
    };
    let mut warned = false;
    while !pool.is_closed() {
        match KeyChanges::listen(&pool).await {
            Ok(mut listener) => {
                cache.set_listening(true);
                reload(&signing_keys);
                if warned {
                    tracing::info!("listening for key changes again");
                    warned = false;
                }
                while let Some(change) = listener.next().await {
                    match change {
                        KeyChange::Key(hash) => cache.invalidate(&hash),
                        KeyChange::Unknown => cache.clear(),
                        KeyChange::SigningKeys => reload(&signing_keys),
                    }
                }
                cache.set_listening(false);
            }
            Err(err) => {
                if !warned && !pool.is_closed() {
                    tracing::warn!(error = %err, "cannot listen for key changes; the key cache is off until it can");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(RELISTEN_AFTER).await;
    }
    cache.set_listening(false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Environment;
    use uuid::Uuid;

    fn record() -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: Uuid::new_v4(),
            name: "k".into(),
            environment: Environment::Live,
            tenant_id: Uuid::new_v4(),
            tenant_slug: "acme".into(),
            scopes: vec![],
            rate_limit: 1,
            expires_at: None,
            revoked_at: None,
            disabled: false,
            ip_allowlist: Default::default(),
            meta: serde_json::json!({}),
            tenant_suspended: false,
            legacy: false,
            answer_view: Default::default(),
        })
    }

    fn listening(ttl: Duration) -> KeyCache {
        let cache = KeyCache::new(ttl);
        cache.set_listening(true);
        cache
    }

    #[test]
    fn entries_are_served_until_their_time_is_up() {
        let cache = listening(Duration::from_millis(50));
        let generation = cache.generation();
        cache.insert([1; 32], record(), generation);
        assert!(cache.get(&[1; 32]).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn the_ttl_never_exceeds_ten_seconds() {
        assert_eq!(KeyCache::new(Duration::from_secs(3600)).ttl, MAX_TTL);
    }

    #[test]
    fn nothing_is_cached_when_off_or_not_listening() {
        let off = listening(Duration::ZERO);
        off.insert([1; 32], record(), off.generation());
        assert!(off.get(&[1; 32]).is_none());

        let deaf = KeyCache::new(MAX_TTL);
        deaf.insert([1; 32], record(), deaf.generation());
        assert!(deaf.get(&[1; 32]).is_none());
    }

    #[test]
    fn losing_the_listener_empties_and_disables_the_cache() {
        let cache = listening(MAX_TTL);
        cache.insert([1; 32], record(), cache.generation());
        cache.set_listening(false);
        assert!(cache.get(&[1; 32]).is_none());
        cache.set_listening(true);
        assert!(
            cache.get(&[1; 32]).is_none(),
            "nothing survives a reconnection"
        );
    }

    #[test]
    fn an_invalidation_during_a_lookup_keeps_the_stale_result_out() {
        let cache = listening(MAX_TTL);
        let before_lookup = cache.generation();
        cache.invalidate(&[1; 32]);
        cache.insert([1; 32], record(), before_lookup);
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn invalidation_removes_only_that_key() {
        let cache = listening(MAX_TTL);
        cache.insert([1; 32], record(), cache.generation());
        cache.insert([2; 32], record(), cache.generation());
        cache.invalidate(&[1; 32]);
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get(&[2; 32]).is_some());
    }
}
