//! Usage metering: every verification of a known key is counted in memory by (key, minute,
//! outcome); a background task writes the counters in batches every few seconds and once more at
//! graceful shutdown. A batch that failed is retried as the same batch (same id), and the database
//! refuses a batch id twice, so a retried flush never counts twice. Counters are kept 7 days per
//! minute and 400 days per hour.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::db::metering::{self as db_usage, UsageBatch, UsageRow};
use crate::domain::rate_limit::{self, RateLimits};
use crate::domain::verification::{Code, KeyRecord};
use crate::domain::webhooks;

/// Minute counters are deleted after this.
pub const MINUTES_KEPT: time::Duration = time::Duration::days(7);
/// Hourly counters are deleted after this.
pub const HOURS_KEPT: time::Duration = time::Duration::days(400);
/// How long a written batch's id is remembered (retries happen within seconds).
const FLUSH_IDS_KEPT: time::Duration = time::Duration::days(1);
/// How often old counters are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Attempts of the last flush at shutdown, and the wait between them.
const FINAL_ATTEMPTS: u32 = 10;
const FINAL_RETRY_AFTER: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Bucket {
    api_key_id: Uuid,
    tenant_id: Uuid,
    minute: i64,
    outcome: Code,
}

#[derive(Debug, Default)]
struct Counts {
    // Keyed by ids the server made: a fast hasher (every verification hashes both).
    buckets: foldhash::HashMap<Bucket, u64>,
    last_used: foldhash::HashMap<Uuid, OffsetDateTime>,
}

#[derive(Default)]
pub struct Meter {
    counts: Mutex<Counts>,
    /// The batch being written; kept until the database has it, then retried as is.
    in_flight: tokio::sync::Mutex<Option<UsageBatch>>,
    health: FlushHealth,
}

/// When the counters were last written, and how many flushes failed.
#[derive(Debug)]
pub struct FlushHealth {
    /// Unix milliseconds of the last successful flush (the start of the process before one).
    last_success_ms: AtomicI64,
    failures: AtomicU64,
}

impl Default for FlushHealth {
    fn default() -> Self {
        Self {
            last_success_ms: AtomicI64::new(unix_ms()),
            failures: AtomicU64::new(0),
        }
    }
}

impl FlushHealth {
    fn succeeded(&self) {
        self.last_success_ms.store(unix_ms(), Ordering::Relaxed);
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Seconds since the last successful flush: what a crash would lose, at most.
    pub fn lag_seconds(&self) -> f64 {
        (unix_ms() - self.last_success_ms.load(Ordering::Relaxed)) as f64 / 1000.0
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

fn unix_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one verification of a known key.
    pub fn record(&self, key: &KeyRecord, outcome: Code, now: OffsetDateTime) {
        let (minute, _) = rate_limit::window(now);
        let bucket = Bucket {
            api_key_id: key.id,
            tenant_id: key.tenant_id,
            minute,
            outcome,
        };
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.buckets.entry(bucket).or_insert(0) += 1;
        // "Last used" is the last time the key worked: a refused call is no use of it.
        if outcome.is_valid() {
            let last = counts.last_used.entry(key.id).or_insert(now);
            if *last < now {
                *last = now;
            }
        }
    }

    /// Verifications counted and not yet written (the batch in flight included when known).
    pub fn unwritten(&self) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let pending: u64 = counts.buckets.values().sum();
        drop(counts);
        let in_flight = self
            .in_flight
            .try_lock()
            .map(|batch| {
                batch.as_ref().map_or(0, |b| {
                    b.minutes.iter().map(|r| r.count.unsigned_abs()).sum()
                })
            })
            .unwrap_or(0);
        pending + in_flight
    }

    /// Writes what was counted: first a batch left over from a failed flush, then everything
    /// counted since. Returns the number of verifications written. On error nothing is lost: the
    /// batch stays and is retried by the next flush.
    pub async fn flush(&self, pool: &PgPool, limits: &RateLimits) -> sqlx::Result<u64> {
        let result = self.write_counts(pool, limits).await;
        match &result {
            Ok(_) => self.health.succeeded(),
            Err(_) => self.health.failed(),
        }
        result
    }

    /// How flushing goes, for metrics.
    pub fn health(&self) -> &FlushHealth {
        &self.health
    }

    async fn write_counts(&self, pool: &PgPool, limits: &RateLimits) -> sqlx::Result<u64> {
        let mut in_flight = self.in_flight.lock().await;
        let mut written = 0;
        let mut limited = Vec::new();
        for _ in 0..2 {
            if in_flight.is_none() {
                *in_flight = self.take_batch();
            }
            let Some(batch) = in_flight.as_ref() else {
                break;
            };
            let mut conn = pool.acquire().await?;
            if let Some(totals) = db_usage::write_batch(&mut conn, batch).await? {
                learn_from(limits, batch, &totals);
            }
            let rate_limited = Code::RateLimited.as_str();
            limited.extend(
                batch
                    .minutes
                    .iter()
                    .filter(|row| row.outcome == rate_limited)
                    .map(|row| row.api_key_id),
            );
            written += batch
                .minutes
                .iter()
                .map(|row| row.count.unsigned_abs())
                .sum::<u64>();
            *in_flight = None;
        }
        drop(in_flight);
        limited.sort_unstable();
        limited.dedup();
        if let Err(err) = webhooks::keys_rate_limited(pool, &limited).await {
            tracing::warn!(error = %err, "cannot publish key.rate_limited events");
        }
        Ok(written)
    }

    fn take_batch(&self) -> Option<UsageBatch> {
        let counts =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        if counts.buckets.is_empty() {
            return None;
        }
        let mut minutes = Vec::with_capacity(counts.buckets.len());
        let mut hours: HashMap<(Uuid, i64, Code), (Uuid, u64)> = HashMap::new();
        for (bucket, count) in counts.buckets {
            minutes.push(UsageRow {
                api_key_id: bucket.api_key_id,
                bucket: minute_start(bucket.minute),
                outcome: bucket.outcome.as_str().to_owned(),
                tenant_id: bucket.tenant_id,
                count: i64::try_from(count).unwrap_or(i64::MAX),
            });
            let hour = bucket.minute.div_euclid(60);
            hours
                .entry((bucket.api_key_id, hour, bucket.outcome))
                .or_insert((bucket.tenant_id, 0))
                .1 += count;
        }
        let mut hours: Vec<UsageRow> = hours
            .into_iter()
            .map(
                |((api_key_id, hour, outcome), (tenant_id, count))| UsageRow {
                    api_key_id,
                    bucket: minute_start(hour * 60),
                    outcome: outcome.as_str().to_owned(),
                    tenant_id,
                    count: i64::try_from(count).unwrap_or(i64::MAX),
                },
            )
            .collect();
        minutes.sort();
        hours.sort();
        let mut last_used: Vec<(Uuid, OffsetDateTime)> = counts.last_used.into_iter().collect();
        last_used.sort();
        Some(UsageBatch {
            flush_id: Uuid::new_v4(),
            minutes,
            hours,
            last_used,
        })
    }
}

fn minute_start(minute: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Tells the rate limiter what every instance allowed this minute, from the totals the batch left.
fn learn_from(limits: &RateLimits, batch: &UsageBatch, totals: &[db_usage::MinuteTotal]) {
    let valid = Code::Valid.as_str();
    for total in totals.iter().filter(|total| total.outcome == valid) {
        let mine = batch
            .minutes
            .iter()
            .find(|row| {
                row.api_key_id == total.api_key_id
                    && row.bucket == total.bucket
                    && row.outcome == valid
            })
            .map_or(0, |row| row.count.unsigned_abs());
        let minute = total.bucket.unix_timestamp().div_euclid(60);
        limits.learn(total.api_key_id, minute, mine, total.count.unsigned_abs());
    }
}

/// Deletes counters past their retention.
pub async fn apply_retention(pool: &PgPool, now: OffsetDateTime) -> sqlx::Result<u64> {
    let mut conn = pool.acquire().await?;
    db_usage::purge(
        &mut conn,
        now - MINUTES_KEPT,
        now - HOURS_KEPT,
        now - FLUSH_IDS_KEPT,
    )
    .await
}

/// Moves the busiest keys' windows to the current ones (a batch does too; this is for the minutes
/// without one).
pub async fn move_windows(pool: &PgPool, now: OffsetDateTime) -> sqlx::Result<()> {
    let mut conn = pool.acquire().await?;
    db_usage::move_windows(&mut conn, now).await
}

/// Flushes every `interval` until `stop` turns true, then flushes once more (retrying for a few
/// seconds) so a graceful shutdown loses nothing. Also ends rate-limit windows and applies
/// retention and moves the busiest keys' windows each minute.
pub async fn run_flusher(
    pool: PgPool,
    meter: std::sync::Arc<Meter>,
    limits: std::sync::Arc<RateLimits>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention: Option<tokio::time::Instant> = None;
    let mut failing = false;
    let mut last_moved: Option<i64> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        match meter.flush(&pool, &limits).await {
            Ok(_) if failing => {
                tracing::info!("usage counters are being written again");
                failing = false;
            }
            Ok(_) => {}
            Err(err) if !failing => {
                tracing::warn!(error = %err, "cannot write usage counters; they are kept and retried");
                failing = true;
            }
            Err(_) => {}
        }
        let now = OffsetDateTime::now_utc();
        limits.sweep(now);
        let minute = now.unix_timestamp().div_euclid(60);
        if last_moved != Some(minute) {
            match move_windows(&pool, now).await {
                Ok(()) => last_moved = Some(minute),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot move the busiest keys' windows; retried")
                }
            }
        }
        if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            match apply_retention(&pool, now).await {
                Ok(deleted) => {
                    last_retention = Some(tokio::time::Instant::now());
                    if deleted > 0 {
                        tracing::info!(rows = deleted, "deleted usage counters past retention");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "usage retention failed; retried later"),
            }
        }
    }
    for attempt in 1..=FINAL_ATTEMPTS {
        match meter.flush(&pool, &limits).await {
            Ok(written) => {
                tracing::info!(
                    verifications = written,
                    "usage counters written at shutdown"
                );
                return;
            }
            Err(err) if attempt == FINAL_ATTEMPTS => {
                tracing::error!(error = %err, lost = meter.unwritten(), "usage counters could not be written at shutdown");
            }
            Err(_) => tokio::time::sleep(FINAL_RETRY_AFTER).await,
        }
    }
}
