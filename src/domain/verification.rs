//! How the key API judges a presented key: the answer codes, what a caller may require, the order
//! of the checks, and the `Verifier` that runs the whole pipeline (parse key → checksum → cache →
//! on a miss one indexed lookup → rate limit → meter). No HTTP.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::verification::{KeyForVerification, LookupConnections};
use crate::domain::key_cache::KeyCache;
use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::format as key_format;
use crate::domain::metering::Meter;
use crate::domain::rate_limit::{Quota, RateLimits};
use crate::metrics::Metrics;
use crate::vocabulary::Environment;
pub use crate::vocabulary::{ClientAddress, Code};

/// Queries the key API runs at once. Lookups that arrive while all are busy share the next
/// query (`LookupConnections`), so a few lanes keep up with any rate: more would only split the
/// batches and wake more PostgreSQL backends per lookup.
const LOOKUP_LANES: usize = 4;

/// Longest a lookup may take (pool wait included) before the key API answers 503.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What the caller requires of the key besides being good.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub environment: Option<Environment>,
    /// A tenant id or slug.
    pub tenant: Option<String>,
    /// The tenant the client names (a profile's tenant header); checked like `tenant`.
    pub claimed_tenant: Option<String>,
    pub scopes: Vec<String>,
    /// The client's address for the key's IP allowlist; none (not given, unreadable) fails a
    /// key that has one.
    pub client: ClientAddress,
}

/// A key as the key API knows it; what the cache holds (at most 10 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: Uuid,
    pub name: String,
    pub environment: Environment,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub scopes: Vec<String>,
    /// Verifications per minute.
    pub rate_limit: u32,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub disabled: bool,
    pub ip_allowlist: IpAllowlist,
    /// The key's metadata object, returned to the platform as `key.meta`.
    pub meta: serde_json::Value,
    /// The key's tenant is suspended by the operator.
    pub tenant_suspended: bool,
    /// Imported in the platform's old format; answered as `key.legacy`.
    pub legacy: bool,
    /// The key API's JSON view of this record, serialized on first use. A cached record is
    /// replaced when its key changes, never changed, so the view cannot go stale.
    pub answer_view: std::sync::OnceLock<Box<[u8]>>,
}

impl KeyRecord {
    /// The key as judged now: a full-access key holds every scope of `catalogue`.
    pub fn from_row(row: KeyForVerification, catalogue: &[String]) -> Self {
        Self {
            id: row.api_key_id,
            name: row.name,
            environment: row.environment,
            tenant_id: row.tenant_id,
            tenant_slug: row.tenant_slug,
            scopes: if row.full_access {
                catalogue.to_vec()
            } else {
                row.scopes
            },
            rate_limit: u32::try_from(row.rate_limit).unwrap_or(1).max(1),
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            disabled: row.disabled_at.is_some(),
            ip_allowlist: IpAllowlist::stored(&row.ip_allowlist),
            meta: row.meta,
            tenant_suspended: row.tenant_suspended,
            legacy: row.legacy,
            answer_view: std::sync::OnceLock::new(),
        }
    }

    /// The answer before rate limiting, checked in this order: revoked, expired (a rolled key
    /// past its grace has expired), tenant suspended, disabled, client address, environment,
    /// tenant, scopes.
    pub fn judge(&self, now: OffsetDateTime, required: &Requirements) -> Code {
        if self.revoked_at.is_some() {
            return Code::Revoked;
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Code::Expired;
        }
        if self.tenant_suspended {
            return Code::TenantSuspended;
        }
        if self.disabled {
            return Code::Disabled;
        }
        if !self.ip_allowlist.allows(required.client.ip()) {
            return Code::IpNotAllowed;
        }
        if required
            .environment
            .is_some_and(|environment| environment != self.environment)
        {
            return Code::EnvironmentMismatch;
        }
        if [&required.tenant, &required.claimed_tenant]
            .into_iter()
            .flatten()
            .any(|tenant| !self.belongs_to(tenant))
        {
            return Code::TenantMismatch;
        }
        if required
            .scopes
            .iter()
            .any(|scope| !self.scopes.contains(scope))
        {
            return Code::InsufficientScope;
        }
        Code::Valid
    }

    fn belongs_to(&self, tenant: &str) -> bool {
        match Uuid::parse_str(tenant) {
            Ok(id) => id == self.tenant_id,
            Err(_) => tenant == self.tenant_slug,
        }
    }
}

/// The key API's answer about a key.
#[derive(Debug)]
pub struct Verdict {
    pub code: Code,
    /// The key, when it was found.
    pub key: Option<Arc<KeyRecord>>,
    /// The rate limit that was consulted: the key's, or the client's when it is throttled.
    pub quota: Option<Quota>,
    /// When it was judged: the one clock reading the call's rate limit, expiry, metering and
    /// request log share.
    pub at: OffsetDateTime,
}

impl Verdict {
    fn without_key(code: Code, quota: Option<Quota>, at: OffsetDateTime) -> Self {
        Self {
            code,
            key: None,
            quota,
            at,
        }
    }
}

/// The database could not answer in time: fail closed.
#[derive(Debug)]
pub struct Unavailable;

/// The key API's pipeline and everything it keeps between requests: the cache of verified keys,
/// the rate-limit windows, the usage counters and the lookup connections.
pub struct Verifier {
    key_prefix: String,
    /// Keys of the platform's old format, looked up like Gatehouse's own.
    legacy_pattern: Option<regex::Regex>,
    /// The scope catalogue, which full-access keys hold.
    scopes: Vec<String>,
    /// Verified keys, at most 10 s old; emptied of a key at once when it changes.
    pub cache: Arc<KeyCache>,
    pub limits: Arc<RateLimits>,
    pub meter: Arc<Meter>,
    lookups: LookupConnections,
    /// Cache hits and misses, when the deployment reads metrics.
    pub metrics: Arc<Metrics>,
}

/// What the deployment decides of the key API's pipeline (from `GATEHOUSE_*`).
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub key_prefix: String,
    /// Keys of the platform's old format, looked up like Gatehouse's own.
    pub legacy_pattern: Option<regex::Regex>,
    /// The scope catalogue, which full-access keys hold.
    pub scopes: Vec<String>,
    /// How long a verified key is cached (at most 10 s).
    pub key_cache_ttl: Duration,
    /// Bad keys per minute a client address may present before it is throttled.
    pub bad_keys_per_client: u32,
    /// The pool's size, which bounds the key API's own lookup connections.
    pub database_max_connections: u32,
}

impl Verifier {
    pub fn new(settings: VerifierSettings, pool: PgPool) -> Self {
        Self {
            key_prefix: settings.key_prefix,
            legacy_pattern: settings.legacy_pattern,
            scopes: settings.scopes,
            cache: Arc::new(KeyCache::new(settings.key_cache_ttl)),
            limits: Arc::new(RateLimits::new(settings.bad_keys_per_client)),
            meter: Arc::new(Meter::new()),
            lookups: LookupConnections::new(
                pool,
                LOOKUP_LANES.min(usize::try_from(settings.database_max_connections).unwrap_or(1)),
            ),
            metrics: Arc::new(Metrics::new(false)),
        }
    }

    /// Queries run for lookups, and lookups answered, so far.
    pub fn lookup_queries_and_lookups(&self) -> (u64, u64) {
        self.lookups.queries_and_lookups()
    }

    /// Records cache hits and misses in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Forgets a key this instance just revoked or rolled; the notification that the change
    /// sends does the same on every other instance.
    pub fn forget(&self, secret_hash: &[u8]) {
        self.cache.invalidate(secret_hash);
    }

    /// Judges a presented key. Malformed keys never reach the database; a client address that
    /// has used up its bad-key attempts is answered from the cache only.
    pub async fn judge(
        &self,
        presented: &str,
        required: &Requirements,
        client: IpAddr,
    ) -> Result<Verdict, Unavailable> {
        let now = OffsetDateTime::now_utc();
        let limits = &self.limits;
        let Some(hash) = self.secret_hash(presented) else {
            if let Some(quota) = limits.client_throttled(client, now) {
                return Ok(Verdict::without_key(Code::RateLimited, Some(quota), now));
            }
            limits.record_bad_key(client, now);
            return Ok(Verdict::without_key(Code::Malformed, None, now));
        };

        let cached = self.cache.get(&hash);
        self.metrics.cache_hit(cached.is_some());
        let key = match cached {
            Some(key) => key,
            None => {
                if let Some(quota) = limits.client_throttled(client, now) {
                    return Ok(Verdict::without_key(Code::RateLimited, Some(quota), now));
                }
                let generation = self.cache.generation();
                let Some(key) = self.lookup(&hash).await? else {
                    limits.record_bad_key(client, now);
                    return Ok(Verdict::without_key(Code::NotFound, None, now));
                };
                let key = Arc::new(key);
                self.cache.insert(hash, Arc::clone(&key), generation);
                key
            }
        };

        let mut code = key.judge(now, required);
        let mut quota = None;
        if code == Code::Valid {
            match limits.take(key.id, key.rate_limit, now) {
                Ok(left) => quota = Some(left),
                Err(spent) => {
                    code = Code::RateLimited;
                    quota = Some(spent);
                }
            }
        }
        self.meter.record(&key, code, now);
        Ok(Verdict {
            code,
            key: Some(key),
            quota,
            at: now,
        })
    }

    /// See [`key_format::lookup_hash`].
    fn secret_hash(&self, presented: &str) -> Option<[u8; 32]> {
        key_format::lookup_hash(&self.key_prefix, self.legacy_pattern.as_ref(), presented)
    }

    /// The key with this secret hash: one lookup on the unique index, on the key API's own
    /// connections (one round trip), bounded by [`LOOKUP_TIMEOUT`].
    async fn lookup(&self, secret_hash: &[u8; 32]) -> Result<Option<KeyRecord>, Unavailable> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.lookups.find_by_hash(secret_hash)).await {
            Ok(Ok(row)) => Ok(row.map(|row| KeyRecord::from_row(row, &self.scopes))),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "key lookup failed; answering 503");
                Err(Unavailable)
            }
            Err(_) => {
                tracing::warn!("key lookup timed out; answering 503");
                Err(Unavailable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn record() -> KeyRecord {
        KeyRecord {
            id: Uuid::new_v4(),
            name: "ci".into(),
            environment: Environment::Live,
            tenant_id: Uuid::new_v4(),
            tenant_slug: "acme".into(),
            scopes: vec!["read".into()],
            rate_limit: 10,
            expires_at: None,
            revoked_at: None,
            disabled: false,
            ip_allowlist: IpAllowlist::default(),
            meta: serde_json::json!({}),
            tenant_suspended: false,
            legacy: false,
            answer_view: Default::default(),
        }
    }

    #[test]
    fn a_good_key_with_no_requirements_is_valid() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(record().judge(now, &Requirements::default()), Code::Valid);
    }

    #[test]
    fn revocation_wins_over_expiry_and_expiry_over_mismatches() {
        let now = OffsetDateTime::now_utc();
        let mut key = record();
        key.expires_at = Some(now - Duration::seconds(1));
        let strict = Requirements {
            environment: Some(Environment::Test),
            tenant: Some("other".into()),
            scopes: vec!["write".into()],
            ..Requirements::default()
        };
        assert_eq!(key.judge(now, &strict), Code::Expired);
        key.revoked_at = Some(now);
        assert_eq!(key.judge(now, &strict), Code::Revoked);
    }

    #[test]
    fn a_suspended_tenant_s_keys_answer_tenant_suspended_before_any_mismatch() {
        let now = OffsetDateTime::now_utc();
        let mut key = record();
        key.tenant_suspended = true;
        let strict = Requirements {
            environment: Some(Environment::Test),
            ..Requirements::default()
        };
        assert_eq!(key.judge(now, &strict), Code::TenantSuspended);
        key.revoked_at = Some(now);
        assert_eq!(key.judge(now, &strict), Code::Revoked);
    }

    #[test]
    fn a_key_expires_at_its_expiry_instant() {
        let now = OffsetDateTime::now_utc();
        let mut key = record();
        key.expires_at = Some(now);
        assert_eq!(key.judge(now, &Requirements::default()), Code::Expired);
        key.expires_at = Some(now + Duration::seconds(1));
        assert_eq!(key.judge(now, &Requirements::default()), Code::Valid);
    }

    #[test]
    fn environment_tenant_and_scopes_are_checked_in_that_order() {
        let now = OffsetDateTime::now_utc();
        let key = record();
        let mut required = Requirements {
            environment: Some(Environment::Test),
            tenant: Some("other".into()),
            scopes: vec!["write".into()],
            ..Requirements::default()
        };
        assert_eq!(key.judge(now, &required), Code::EnvironmentMismatch);
        required.environment = Some(Environment::Live);
        assert_eq!(key.judge(now, &required), Code::TenantMismatch);
        required.tenant = Some("acme".into());
        required.claimed_tenant = Some("globex".into());
        assert_eq!(key.judge(now, &required), Code::TenantMismatch);
        required.claimed_tenant = Some("acme".into());
        assert_eq!(key.judge(now, &required), Code::InsufficientScope);
        required.scopes = vec!["read".into()];
        assert_eq!(key.judge(now, &required), Code::Valid);
    }

    #[test]
    fn a_tenant_is_named_by_id_or_slug() {
        let now = OffsetDateTime::now_utc();
        let key = record();
        let by = |tenant: String| Requirements {
            tenant: Some(tenant),
            ..Requirements::default()
        };
        assert_eq!(key.judge(now, &by(key.tenant_id.to_string())), Code::Valid);
        assert_eq!(key.judge(now, &by("acme".into())), Code::Valid);
        assert_eq!(
            key.judge(now, &by(Uuid::new_v4().to_string())),
            Code::TenantMismatch
        );
    }
}
