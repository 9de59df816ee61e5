//! One durable outbox for everything Gatehouse sends (mail now, webhooks next): a message is a row
//! written in the same transaction as the change that causes it; a sender on every instance claims
//! due rows (`FOR UPDATE SKIP LOCKED`), hands each to the courier of its kind, and records the
//! attempt. Failures are retried on the courier's schedule (by default 1 minute, doubling to 1 hour,
//! for 24 hours). A crash between sending and recording sends again after the lease, with the same
//! message id.
//!
//! Lanes: each kind has its own lane-keeper (mail never waits behind a webhook), which runs its
//! deliveries concurrently within its courier's [`Bounds`]: so many in all, and so many to one
//! receiver (a lane: one webhook endpoint). A claim takes only what can start at once, so a
//! message never waits in a sender; a delivery is cut off at three quarters of the lease, so a
//! claim never outlives it. A lane whose receiver keeps timing out rests (its waiting messages are
//! due later: 5 s, doubling to 10 minutes), and the other lanes go on.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::db::outbox::{self as db_outbox, Busy, Claimed};
use crate::domain::error::DomainResult;

/// The wait after the longest backoff step.
pub const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// How long deliveries in flight at shutdown have to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A lane whose receiver timed out rests this long, doubling with each timeout in a row...
const BACKOFF_FIRST: Duration = Duration::from_secs(5);
/// ... to this.
const BACKOFF_LONGEST: Duration = Duration::from_secs(600);

/// What a courier's delivery returns: `Ok(kept)` is the payload to keep once sent (without
/// secrets), `Err(failure)` a failure.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send + 'a>>;

/// A failed delivery: why, worded for the log (never a secret in it), and what the courier asks
/// of the next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub why: String,
    /// The receiver asked for this wait at least (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
    /// Trying again cannot help (a webhook endpoint answered `410 Gone`): give up now.
    pub give_up: bool,
    /// The receiver did not answer in time: its lane is backed off.
    pub slow: bool,
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Self {
            why,
            retry_after: None,
            give_up: false,
            slow: false,
        }
    }
}

/// How many deliveries of one kind a sender runs at once: in all, and to one receiver (a lane).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub in_flight: usize,
    pub per_lane: i32,
}

/// Delivers the messages of one kind (SMTP for mail, HTTP for webhooks).
pub trait Courier: Send + Sync {
    fn kind(&self) -> &'static str;
    /// How many of its deliveries may run at once (by default 4, all in one lane).
    fn bounds(&self) -> Bounds {
        Bounds {
            in_flight: 4,
            per_lane: 4,
        }
    }
    /// Sends one message. `id` is the message's id, the same on every attempt, so a receiver
    /// can tell a re-send from a new message. The receiver has `within` to answer (the courier's
    /// own timeout may be shorter); the sender cuts off a delivery that runs much longer.
    fn deliver<'a>(&'a self, id: Uuid, payload: &'a Value, within: Duration) -> Delivery<'a>;
    /// The wait after the `attempts`-th failed attempt, or `None` to give up: by default
    /// `policy.first_retry` doubling to an hour (until the message's `give_up_at`).
    fn retry_in(&self, attempts: i32, policy: SenderPolicy) -> Option<Duration> {
        Some(retry_delay(attempts, policy.first_retry))
    }
}

/// Puts a message in the outbox. Pass the transaction of the change that causes it.
pub async fn enqueue(db: impl PgExecutor<'_>, kind: &str, payload: &Value) -> DomainResult<Uuid> {
    Ok(db_outbox::insert(db, kind, payload).await?)
}

/// How long to wait after the `attempts`-th failed attempt: 1 × `first`, 2×, 4×, … up to an hour.
pub fn retry_delay(attempts: i32, first: Duration) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    first
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(LONGEST_RETRY.max(first))
}

/// How a sender paces itself.
#[derive(Debug, Clone, Copy)]
pub struct SenderPolicy {
    /// How often to look for due messages when there were none.
    pub poll: Duration,
    /// The first retry's wait (1 minute; tests shorten it).
    pub first_retry: Duration,
    /// How long a claimed message is kept from other senders while one sends it. A delivery is
    /// cut off at three quarters of it, so a claim never outlives its lease.
    pub lease: Duration,
}

impl SenderPolicy {
    /// How long a receiver may take at most: half the lease, leaving time to record.
    pub fn answer_limit(&self) -> Duration {
        self.lease / 2
    }

    /// The longest one delivery may take, recording included, before the sender cuts it off and
    /// counts it as failed (and slow).
    pub fn delivery_limit(&self) -> Duration {
        self.lease.mul_f64(0.75)
    }
}

/// The couriers of one instance, one per kind.
#[derive(Clone, Default)]
pub struct Couriers(Vec<Arc<dyn Courier>>);

impl Couriers {
    pub fn new(couriers: Vec<Arc<dyn Courier>>) -> Self {
        Self(couriers)
    }
}

/// Sends what is due until `stop` turns true: one lane-keeper per kind (mail is never behind a
/// webhook), each running its deliveries concurrently within its courier's [`Bounds`].
pub async fn run_sender(
    pool: PgPool,
    couriers: Couriers,
    policy: SenderPolicy,
    stop: watch::Receiver<bool>,
) {
    let (woke, wake) = watch::channel(());
    let mut kinds = tokio::task::JoinSet::new();
    for courier in couriers.0 {
        kinds.spawn(run_kind(
            pool.clone(),
            courier,
            policy,
            wake.clone(),
            stop.clone(),
        ));
    }
    // Without it (the database was away at start), polling alone still sends everything.
    let mut listener = db_outbox::listen_due(&pool).await.ok();
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            () = woken(&mut listener) => { woke.send_replace(()); }
            () = stopping(&mut stopped) => break,
        }
    }
    while kinds.join_next().await.is_some() {}
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Completes when a writer says a message is due now (`db::outbox::notify_due`); never when
/// there is no listener (it is dropped on an error, and polling carries on).
async fn woken(listener: &mut Option<PgListener>) {
    let Some(connection) = listener.as_mut() else {
        return std::future::pending().await;
    };
    if connection.recv().await.is_err() {
        *listener = None;
    }
}

/// What one delivery left for its lane-keeper to know.
struct Done {
    lane: String,
    slow: bool,
    delivered: bool,
}

/// The lanes of one kind in this sender: deliveries in flight per lane, and the lanes backed off.
#[derive(Default)]
struct Lanes {
    in_flight: HashMap<String, i32>,
    /// Lanes whose receiver timed out, how many times in a row, and until when they rest.
    resting: HashMap<String, (u32, Instant)>,
}

impl Lanes {
    fn busy(&self, per_lane: i32) -> Busy {
        let now = Instant::now();
        let mut busy = Busy::default();
        for (lane, count) in &self.in_flight {
            if *count >= per_lane {
                busy.closed.push(lane.clone());
            } else {
                busy.lanes.push(lane.clone());
                busy.in_flight.push(*count);
            }
        }
        busy.closed.extend(
            self.resting
                .iter()
                .filter(|(_, (_, until))| *until > now)
                .map(|(lane, _)| lane.clone()),
        );
        busy
    }

    fn started(&mut self, lane: &str) {
        *self.in_flight.entry(lane.to_owned()).or_default() += 1;
    }

    /// Notes a finished delivery; returns how long to back its lane off, if it should be.
    fn finished(&mut self, done: &Done) -> Option<Duration> {
        if let Some(count) = self.in_flight.get_mut(&done.lane) {
            *count -= 1;
            if *count <= 0 {
                self.in_flight.remove(&done.lane);
            }
        }
        if done.delivered {
            self.resting.remove(&done.lane);
            return None;
        }
        if !done.slow {
            return None;
        }
        let now = Instant::now();
        let (strikes, until) = self.resting.get(&done.lane).copied().unwrap_or((0, now));
        if until > now {
            // One of a wave that started before the lane began resting: no new strike.
            return None;
        }
        let strikes = strikes + 1;
        let wait = backoff(strikes);
        self.resting
            .insert(done.lane.clone(), (strikes, now + wait));
        Some(wait)
    }
}

/// How long a lane whose receiver timed out `strikes` times in a row rests: 5 s, doubling to
/// 10 minutes.
fn backoff(strikes: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(2u32.saturating_pow(strikes.saturating_sub(1).min(16)))
        .min(BACKOFF_LONGEST)
}

/// The lane-keeper of one kind: claims what its bounds let it start, starts each delivery at once,
/// and claims again as deliveries finish, a message is due, or the poll comes round.
async fn run_kind(
    pool: PgPool,
    courier: Arc<dyn Courier>,
    policy: SenderPolicy,
    mut wake: watch::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let bounds = courier.bounds();
    let mut lanes = Lanes::default();
    let mut running: JoinSet<Done> = JoinSet::new();
    let mut failing = false;
    loop {
        let free = bounds.in_flight.saturating_sub(running.len());
        let mut claimed_any = false;
        if free > 0 {
            let busy = lanes.busy(bounds.per_lane);
            let limit = i64::try_from(free).unwrap_or(i64::MAX);
            match db_outbox::claim(
                &pool,
                courier.kind(),
                limit,
                bounds.per_lane,
                &busy,
                policy.lease,
            )
            .await
            {
                Ok(claimed) => {
                    if failing {
                        tracing::info!("the outbox is reachable again");
                        failing = false;
                    }
                    claimed_any = !claimed.is_empty();
                    for message in claimed {
                        lanes.started(&message.lane);
                        let (pool, courier) = (pool.clone(), courier.clone());
                        running.spawn(async move {
                            attempt(&pool, courier.as_ref(), message, policy).await
                        });
                    }
                }
                Err(err) if !failing => {
                    tracing::warn!(error = %err, "cannot read the outbox; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        let full = running.len() >= bounds.in_flight;
        if claimed_any && !full {
            // More may be waiting in lanes this claim left no room for: look again at once.
            continue;
        }
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(done) = done {
                    finish(&pool, &mut lanes, &done).await;
                }
                // Everything else that finished meanwhile, before claiming again.
                while let Some(done) = running.try_join_next() {
                    if let Ok(done) = done {
                        finish(&pool, &mut lanes, &done).await;
                    }
                }
            }
            () = tokio::time::sleep(policy.poll), if !full => {}
            _ = wake.changed(), if !full => {}
            () = stopping(&mut stop) => {
                // What is in flight has a moment to finish; the rest is left to its lease (and
                // sent again, with the same id, by whichever sender claims it next).
                let drained = async { while running.join_next().await.is_some() {} };
                if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
                    tracing::warn!(left = running.len(), outbox.kind = courier.kind(),
                        "deliveries still in flight at shutdown: left to their lease");
                }
                return;
            }
        }
    }
}

async fn finish(pool: &PgPool, lanes: &mut Lanes, done: &Done) {
    if let Some(wait) = lanes.finished(done) {
        match db_outbox::defer_lane(pool, &done.lane, wait).await {
            Ok(deferred) => tracing::warn!(outbox.lane = %done.lane, rest_secs = wait.as_secs(),
                deferred, "the receiver keeps timing out: its lane rests"),
            Err(err) => {
                tracing::warn!(error = %err, outbox.lane = %done.lane, "cannot back the lane off")
            }
        }
    }
}

/// Tries one claimed message once and records the outcome. The delivery is cut off well within
/// the lease, so the claim never outlives it.
async fn attempt(
    pool: &PgPool,
    courier: &dyn Courier,
    message: Claimed,
    policy: SenderPolicy,
) -> Done {
    let id = message.outbox_message_id;
    let limit = policy.delivery_limit();
    let result = match tokio::time::timeout(
        limit,
        courier.deliver(id, &message.payload, policy.answer_limit()),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(Failure {
            why: format!("no answer within {} ms", limit.as_millis()),
            retry_after: None,
            give_up: false,
            slow: true,
        }),
    };
    let done = Done {
        lane: message.lane.clone(),
        slow: result.as_ref().is_err_and(|failure| failure.slow),
        delivered: result.is_ok(),
    };
    if let Err(err) = record(pool, courier, &message, result, policy).await {
        // The lease runs out and the message is tried again.
        tracing::warn!(outbox.id = %id, error = %err, "cannot record an attempt");
    }
    done
}

async fn record(
    pool: &PgPool,
    courier: &dyn Courier,
    message: &Claimed,
    result: Result<Value, Failure>,
    policy: SenderPolicy,
) -> DomainResult<()> {
    let id = message.outbox_message_id;
    match result {
        Ok(kept) => {
            db_outbox::record_sent(pool, id, &kept).await?;
            tracing::info!(outbox.id = %id, outbox.kind = %message.kind, attempts = message.attempts, "sent");
        }
        Err(failure) => {
            let why = &failure.why;
            let retry_in = if failure.give_up {
                None
            } else {
                courier
                    .retry_in(message.attempts, policy)
                    .map(|wait| failure.retry_after.map_or(wait, |asked| asked.max(wait)))
            };
            let gave_up = db_outbox::record_failed(pool, id, why, retry_in).await?;
            match retry_in {
                Some(retry_in) if !gave_up => {
                    tracing::warn!(outbox.id = %id, outbox.kind = %message.kind, attempts = message.attempts,
                        error = %why, retry_in_secs = retry_in.as_secs(), "not sent; will retry");
                }
                _ => {
                    tracing::error!(outbox.id = %id, outbox.kind = %message.kind, attempts = message.attempts,
                        error = %why, "not sent; given up");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_a_minute_doubling_to_an_hour() {
        let minute = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=9)
            .map(|attempt| retry_delay(attempt, minute).as_secs() / 60)
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(1000, minute), LONGEST_RETRY);
    }

    fn done(lane: &str, delivered: bool, slow: bool) -> Done {
        Done {
            lane: lane.to_owned(),
            slow,
            delivered,
        }
    }

    #[test]
    fn a_full_lane_is_closed_a_busy_one_counted_and_a_wave_of_timeouts_is_one_strike() {
        let mut lanes = Lanes::default();
        for _ in 0..4 {
            lanes.started("webhook:slow");
        }
        lanes.started("webhook:fast");
        let busy = lanes.busy(4);
        assert_eq!(busy.closed, ["webhook:slow"]);
        assert_eq!(
            (busy.lanes, busy.in_flight),
            (vec!["webhook:fast".to_owned()], vec![1])
        );

        // Four timeouts at once: the lane rests 5 s, not 5 + 10 + 20 + 40.
        let waits: Vec<_> = (0..4)
            .map(|_| lanes.finished(&done("webhook:slow", false, true)))
            .collect();
        assert_eq!(waits, [Some(BACKOFF_FIRST), None, None, None]);
        assert_eq!(lanes.busy(4).closed, ["webhook:slow"], "resting");
        // A failure that is not a timeout rests nothing; a delivery ends the rest.
        assert_eq!(lanes.finished(&done("webhook:fast", false, false)), None);
        lanes.started("webhook:slow");
        assert_eq!(lanes.finished(&done("webhook:slow", true, false)), None);
        assert!(lanes.busy(4).closed.is_empty());
        assert!(lanes.in_flight.is_empty());
    }

    #[test]
    fn a_resting_lane_waits_5_s_doubling_to_10_minutes() {
        let waits: Vec<u64> = (1..=9).map(|strikes| backoff(strikes).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
    }
}
