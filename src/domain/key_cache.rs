//! The cache of verified keys: at most 10 s old, used only while this instance is listening for
//! key changes, emptied of a key at once when it is revoked or rolled (here, or anywhere through
//! PostgreSQL `LISTEN/NOTIFY`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::db::keys::CHANGED_CHANNEL;
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
    entries: RwLock<HashMap<SecretHash, (Instant, Arc<KeyRecord>)>>,
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
            entries: RwLock::new(HashMap::new()),
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

/// Parses a notification payload: the key's SHA-256 in hex.
pub fn parse_payload(payload: &str) -> Option<SecretHash> {
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

/// Listens for key changes until the pool closes, re-listening after any connection loss. While
/// not listening the cache is off, and it starts empty after every (re)connection, so no change
/// made while the connection was down can be missed.
pub async fn listen_for_changes(pool: PgPool, cache: Arc<KeyCache>) {
    let mut warned = false;
    while !pool.is_closed() {
        match listen(&pool).await {
            Ok(mut listener) => {
                cache.set_listening(true);
                if warned {
                    tracing::info!("listening for key changes again");
                    warned = false;
                }
                while let Ok(Some(notification)) = listener.try_recv().await {
                    match parse_payload(notification.payload()) {
                        Some(hash) => cache.invalidate(&hash),
                        None => cache.clear(),
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

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported at once; this loop re-listens itself.
    listener.eager_reconnect(false);
    listener.listen(CHANGED_CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::vocabulary::Environment;
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

    #[test]
    fn payloads_are_hex_hashes() {
        let hash = crate::domain::keys::hash("ak_live_x");
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_payload(&hex), Some(hash));
        assert_eq!(parse_payload("zz"), None);
        let mut bad = hex.clone();
        bad.replace_range(0..1, "g");
        assert_eq!(parse_payload(&bad), None);
    }
}
