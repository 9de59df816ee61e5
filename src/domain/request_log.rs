//! The request log ("why was I refused?"): every refused verification of a known key, and of the
//! valid ones the first per (key, client address, minute), recorded off the hot path. Records go
//! into a bounded buffer (a full buffer drops and counts, never blocks); a background writer
//! inserts them in batches every second and once more at graceful shutdown, and keeps the daily
//! partitions (created ahead, dropped after `GATEHOUSE_REQUEST_LOG_DAYS`). Never the key, never a
//! query string.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::db::request_log::{self as db_log, LogRow};
use crate::domain::rate_limit;
use crate::domain::verification::{Code, Requirements, Verdict};

/// Records the buffer holds before it drops (about 1 KiB each at most).
pub const BUFFER: usize = 10_000;
/// Distinct (key, address) pairs remembered per minute for the valid-call dedupe.
const SEEN_PER_MINUTE: usize = 100_000;
/// Records written per INSERT.
const BATCH: usize = 2_000;
/// How often partitions are created ahead and old ones dropped.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// Days of partitions created ahead of today.
const DAYS_AHEAD: i64 = 2;
/// How long a record's texts may be, in characters.
const MAX_PATH: usize = 512;
const MAX_USER_AGENT: usize = 256;
const MAX_METHOD: usize = 16;
const MAX_REQUEST_ID: usize = 128;

/// Which endpoint judged a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Verify,
    Authorize,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Authorize => "authorize",
        }
    }
}

/// What the caller's request was, as the edge saw it: cleaned by [`CallInfo::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallInfo {
    pub method: Option<String>,
    pub path: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl CallInfo {
    /// Cuts the query string and fragment off `path`, shortens every text, and blanks out the
    /// presented key wherever a client put it (`/api/<key>`, a user agent).
    pub fn new(
        method: Option<&str>,
        path: Option<&str>,
        user_agent: Option<&str>,
        request_id: Option<&str>,
        presented_key: &str,
    ) -> Self {
        let clean = |text: &str, max: usize| -> Option<String> {
            let text = text.trim();
            if text.is_empty() {
                return None;
            }
            let text = if presented_key.len() >= 8 && text.contains(presented_key) {
                text.replace(presented_key, "[key]")
            } else {
                text.to_owned()
            };
            Some(truncate(&text, max))
        };
        let path = path
            .map(|path| path.split(['?', '#']).next().unwrap_or_default())
            .and_then(|path| clean(path, MAX_PATH));
        Self {
            method: method
                .and_then(|method| clean(method, MAX_METHOD))
                .map(|method| method.to_ascii_uppercase()),
            path,
            user_agent: user_agent.and_then(|agent| clean(agent, MAX_USER_AGENT)),
            request_id: request_id.and_then(|id| clean(id, MAX_REQUEST_ID)),
        }
    }
}

/// `text` cut to `max` characters (an ellipsis marks the cut), control characters removed.
fn truncate(text: &str, max: usize) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    if text.chars().filter(|c| !c.is_control()).nth(max).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

/// The valid calls already recorded this minute.
#[derive(Default)]
struct Seen {
    minute: i64,
    pairs: HashSet<(Uuid, IpAddr)>,
}

/// The in-memory side of the request log: the buffer, the dedupe set and the gap counters.
pub struct RequestLog {
    enabled: bool,
    sender: mpsc::Sender<LogRow>,
    receiver: Mutex<Option<mpsc::Receiver<LogRow>>>,
    seen: Mutex<Seen>,
    /// Records lost because the buffer (or the dedupe set) was full, since the last flush.
    dropped: AtomicU64,
    /// Calls with no known key (no tenant to show them to), since the last flush.
    unknown_key: AtomicU64,
}

impl RequestLog {
    /// A log whose buffer holds `capacity` records; a disabled one records nothing.
    pub fn new(enabled: bool, capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            enabled,
            sender,
            receiver: Mutex::new(Some(receiver)),
            seen: Mutex::new(Seen::default()),
            dropped: AtomicU64::new(0),
            unknown_key: AtomicU64::new(0),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Counts a call that named no key Gatehouse knows (no key at all, malformed, unknown).
    pub fn count_unknown_key(&self) {
        if self.enabled {
            self.unknown_key.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a judged call. `info` is only built for calls that are kept: a valid call already
    /// seen this minute from the same address costs one set lookup.
    pub fn record(
        &self,
        verdict: &Verdict,
        required: &Requirements,
        client: IpAddr,
        via: Via,
        info: impl FnOnce() -> CallInfo,
    ) {
        if !self.enabled {
            return;
        }
        let Some(key) = verdict.key.as_deref() else {
            self.count_unknown_key();
            return;
        };
        let at = verdict.at;
        if verdict.code.is_valid() && !self.first_this_minute(key.id, client, at) {
            return;
        }
        let detail = match verdict.code {
            Code::InsufficientScope => Some(
                required
                    .scopes
                    .iter()
                    .filter(|scope| !key.scopes.contains(scope))
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Code::TenantMismatch => [&required.tenant, &required.claimed_tenant]
                .into_iter()
                .flatten()
                .next()
                .map(|tenant| truncate(tenant, 64)),
            Code::EnvironmentMismatch => required.environment.map(|e| e.as_str().to_owned()),
            Code::RateLimited => verdict.quota.map(|quota| quota.limit.to_string()),
            // What the allowlist was checked against, or why nothing was: the log explains the
            // refusal in the words the API answered with.
            Code::IpNotAllowed => Some(required.client.recorded()),
            _ => None,
        };
        let info = info();
        self.push(LogRow {
            at,
            tenant_id: key.tenant_id,
            api_key_id: key.id,
            code: verdict.code.as_str(),
            detail,
            via: via.as_str(),
            client_ip: client.to_string(),
            method: info.method,
            path: info.path,
            user_agent: info.user_agent,
            request_id: info.request_id,
        });
    }

    /// Whether this is the first valid call of `key` from `client` in `at`'s minute (and now
    /// remembered). A full set answers no and counts a drop: memory stays bounded.
    fn first_this_minute(&self, key: Uuid, client: IpAddr, at: OffsetDateTime) -> bool {
        let (minute, _) = rate_limit::window(at);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.minute != minute {
            seen.minute = minute;
            seen.pairs.clear();
        }
        if seen.pairs.contains(&(key, client)) {
            return false;
        }
        if seen.pairs.len() >= SEEN_PER_MINUTE {
            drop(seen);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        seen.pairs.insert((key, client));
        true
    }

    /// Puts a record in the buffer, or counts it dropped when the buffer is full.
    fn push(&self, row: LogRow) {
        match self.sender.try_send(row) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Records dropped since the counters were last taken.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<LogRow>> {
        self.receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The writer's side: drains the buffer into the database.
struct Writer {
    pool: PgPool,
    receiver: mpsc::Receiver<LogRow>,
    /// A batch whose insert failed, retried first.
    pending: Vec<LogRow>,
}

impl Writer {
    /// Writes everything buffered and the gap counters. Returns the records written.
    async fn flush(&mut self, log: &RequestLog) -> sqlx::Result<u64> {
        let mut written = 0;
        loop {
            if self.pending.is_empty() {
                while self.pending.len() < BATCH {
                    match self.receiver.try_recv() {
                        Ok(row) => self.pending.push(row),
                        Err(_) => break,
                    }
                }
            }
            if self.pending.is_empty() {
                break;
            }
            db_log::insert_batch(&self.pool, &self.pending).await?;
            written += self.pending.len() as u64;
            self.pending.clear();
        }
        let dropped = log.dropped.swap(0, Ordering::Relaxed);
        let unknown = log.unknown_key.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "the request log's buffer was full: records were dropped"
            );
        }
        if dropped > 0 || unknown > 0 {
            let (minute, _) = rate_limit::window(OffsetDateTime::now_utc());
            let counted = db_log::add_gap(
                &self.pool,
                minute_start(minute),
                i64::try_from(dropped).unwrap_or(i64::MAX),
                i64::try_from(unknown).unwrap_or(i64::MAX),
            )
            .await;
            if let Err(err) = counted {
                // Counted again next time.
                log.dropped.fetch_add(dropped, Ordering::Relaxed);
                log.unknown_key.fetch_add(unknown, Ordering::Relaxed);
                return Err(err);
            }
        }
        Ok(written)
    }
}

fn minute_start(minute: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The UTC day `at` falls in, as the partitions name days.
fn day_of(at: OffsetDateTime) -> time::Date {
    at.to_offset(time::UtcOffset::UTC).date()
}

/// Creates the partitions of today and the next days, and drops those wholly older than `days`
/// days. Safe on N instances: one does it at a time (an advisory lock), and creating is
/// idempotent. Returns the partitions dropped, or `None` when another instance held the lock.
pub async fn maintain(pool: &PgPool, days: u32, now: OffsetDateTime) -> sqlx::Result<Option<u64>> {
    let today = day_of(now);
    let keep_from = today - time::Duration::days(i64::from(days.max(1)) - 1);
    let mut tx = pool.begin().await?;
    if !db_log::try_lock_maintenance(&mut tx).await? {
        return Ok(None);
    }
    for ahead in 0..=DAYS_AHEAD {
        db_log::create_partition(&mut tx, today + time::Duration::days(ahead)).await?;
    }
    let mut dropped = 0;
    for (name, day) in db_log::partitions(&mut *tx).await? {
        if day < keep_from {
            db_log::drop_partition(&mut tx, &name).await?;
            dropped += 1;
        }
    }
    let oldest = keep_from.midnight().assume_offset(time::UtcOffset::UTC);
    db_log::purge_gaps(&mut *tx, oldest).await?;
    tx.commit().await?;
    Ok(Some(dropped))
}

/// Writes the buffer every `interval` until `stop` turns true, then once more, so a graceful
/// shutdown loses nothing buffered. Keeps the partitions at start and hourly.
pub async fn run_writer(
    pool: PgPool,
    log: std::sync::Arc<RequestLog>,
    days: u32,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if !log.enabled {
        return;
    }
    let Some(receiver) = log.take_receiver() else {
        tracing::error!("the request log's writer was started twice");
        return;
    };
    let mut writer = Writer {
        pool: pool.clone(),
        receiver,
        pending: Vec::new(),
    };
    // The first flush one interval after the start (nothing is buffered before).
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_maintenance: Option<tokio::time::Instant> = None;
    let mut failing = false;
    loop {
        if last_maintenance.is_none_or(|at| at.elapsed() >= MAINTENANCE_EVERY) {
            match maintain(&pool, days, OffsetDateTime::now_utc()).await {
                Ok(dropped) => {
                    last_maintenance = Some(tokio::time::Instant::now());
                    if let Some(dropped @ 1..) = dropped {
                        tracing::info!(
                            partitions = dropped,
                            "dropped request log partitions past retention"
                        );
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "request log maintenance failed; retried later")
                }
            }
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        match writer.flush(&log).await {
            Ok(_) if failing => {
                tracing::info!("the request log is being written again");
                failing = false;
            }
            Ok(_) => {}
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "cannot write the request log; the batch is retried, \
                        records beyond the buffer are dropped and counted");
                    failing = true;
                }
                // A missing partition (maintenance failed earlier) is the likely cause.
                last_maintenance = None;
            }
        }
    }
    writer.receiver.close();
    match writer.flush(&log).await {
        Ok(written) => tracing::info!(records = written, "request log written at shutdown"),
        Err(err) => tracing::error!(error = %err, lost = writer.pending.len() + log.buffered(),
            "the request log could not be written at shutdown"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::rate_limit::{Policy, Quota};
    use crate::domain::verification::KeyRecord;
    use crate::vocabulary::Environment;

    fn key() -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: Uuid::new_v4(),
            name: "ci".into(),
            environment: Environment::Live,
            tenant_id: Uuid::new_v4(),
            tenant_slug: "acme".into(),
            scopes: vec!["read".into()],
            rate_limit: 100,
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

    fn verdict(code: Code, key: &Arc<KeyRecord>) -> Verdict {
        Verdict {
            code,
            key: Some(Arc::clone(key)),
            quota: Some(Quota {
                policy: Policy::Key,
                limit: 100,
                remaining: 0,
                reset: 10,
            }),
            at: OffsetDateTime::now_utc(),
        }
    }

    fn drain(log: &RequestLog) -> Vec<LogRow> {
        let mut receiver = log.take_receiver().unwrap();
        let mut rows = Vec::new();
        while let Ok(row) = receiver.try_recv() {
            rows.push(row);
        }
        rows
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    /// A call with no requirements from `client`, judged `code`.
    fn judged(log: &RequestLog, code: Code, key: &Arc<KeyRecord>, client: IpAddr) {
        log.record(
            &verdict(code, key),
            &Requirements::default(),
            client,
            Via::Verify,
            CallInfo::default,
        );
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_growing() {
        // Nobody writes: the buffer fills and stays at its size.
        let log = RequestLog::new(true, 50);
        let key = key();
        for _ in 0..150 {
            judged(&log, Code::Revoked, &key, HOME);
        }
        assert_eq!(log.buffered(), 50);
        assert_eq!(log.dropped(), 100);
        assert_eq!(drain(&log).len(), 50);
    }

    #[test]
    fn only_the_first_valid_call_per_key_address_and_minute_is_kept() {
        let log = RequestLog::new(true, 100);
        let key = key();
        let other: IpAddr = "2001:db8::1".parse().unwrap();
        for client in [HOME, HOME, other, HOME, other] {
            judged(&log, Code::Valid, &key, client);
        }
        // Refusals are all kept.
        for _ in 0..3 {
            judged(&log, Code::RateLimited, &key, HOME);
        }
        let rows = drain(&log);
        let valid: Vec<_> = rows.iter().filter(|row| row.code == "VALID").collect();
        assert_eq!(valid.len(), 2);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[2].detail.as_deref(), Some("100"));
    }

    #[test]
    fn refusals_carry_what_explains_them() {
        let log = RequestLog::new(true, 10);
        let key = key();
        let required = Requirements {
            environment: Some(Environment::Test),
            tenant: Some("globex".into()),
            scopes: vec!["read".into(), "write".into(), "admin".into()],
            ..Requirements::default()
        };
        for code in [
            Code::InsufficientScope,
            Code::TenantMismatch,
            Code::EnvironmentMismatch,
        ] {
            log.record(
                &verdict(code, &key),
                &required,
                HOME,
                Via::Authorize,
                CallInfo::default,
            );
        }
        let details: Vec<_> = drain(&log).into_iter().map(|row| row.detail).collect();
        assert_eq!(
            details,
            [
                Some("write admin".to_owned()),
                Some("globex".to_owned()),
                Some("test".to_owned())
            ]
        );
    }

    #[test]
    fn calls_without_a_known_key_are_only_counted_and_a_disabled_log_keeps_nothing() {
        let log = RequestLog::new(true, 10);
        let unknown = Verdict {
            code: Code::NotFound,
            key: None,
            quota: None,
            at: OffsetDateTime::now_utc(),
        };
        log.record(
            &unknown,
            &Requirements::default(),
            HOME,
            Via::Verify,
            || unreachable!("no record is built for an unknown key"),
        );
        assert_eq!(log.unknown_key.load(Ordering::Relaxed), 1);
        assert_eq!(log.buffered(), 0);

        let off = RequestLog::new(false, 10);
        off.record(
            &verdict(Code::Revoked, &key()),
            &Requirements::default(),
            HOME,
            Via::Verify,
            || unreachable!("a disabled log builds nothing"),
        );
        off.count_unknown_key();
        assert_eq!((off.buffered(), off.dropped()), (0, 0));
    }

    #[test]
    fn call_info_cuts_the_query_shortens_and_never_holds_the_key() {
        let key = "ak_live_abcdefghijklmnopqrstuvwxyz0123456789";
        let info = CallInfo::new(
            Some("get"),
            Some(&format!("/api/{key}/orders?token=secret#x")),
            Some(&format!("curl/8 {key}\n{}", "x".repeat(400))),
            Some("req-1"),
            key,
        );
        assert_eq!(info.method.as_deref(), Some("GET"));
        assert_eq!(info.path.as_deref(), Some("/api/[key]/orders"));
        let agent = info.user_agent.unwrap();
        assert!(agent.starts_with("curl/8 [key]x"), "{agent}");
        assert_eq!(agent.chars().count(), MAX_USER_AGENT);
        assert!(agent.ends_with('…'));
        assert_eq!(CallInfo::new(None, Some("  "), None, None, key).path, None);
    }
}
