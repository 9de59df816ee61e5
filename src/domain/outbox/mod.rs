//! One durable outbox for everything Gatehouse sends (mail, webhooks): a message is a row written
//! in the same transaction as the change that causes it; a sender on every instance claims due
//! rows (`FOR UPDATE SKIP LOCKED`), hands each to the courier of its kind, and records the
//! attempt. Failures are retried on the courier's schedule (by default 1 minute, doubling to 1
//! hour, for 24 hours). A crash between sending and recording sends again after the lease, with
//! the same message id.
//!
//! Lanes ([`sender`]): each kind has its own lane-keeper (mail never waits behind a webhook), which
//! runs its deliveries concurrently within its courier's [`Bounds`]: so many in all, and so many to
//! one receiver (a lane: one webhook endpoint). A claim takes only what can start at once, so a
//! message never waits in a sender; a delivery is cut off at three quarters of the lease, so a
//! claim never outlives it. A lane whose receiver keeps timing out rests (its waiting messages are
//! due later: 5 s, doubling to 10 minutes), and the other lanes go on.
//!
//! Round trips ([`recorder`]): a claim is one statement for the whole batch, and reads what the
//! deliveries need with it ([`Courier::claim`]); a delivery's place in its lane is free as soon as
//! the receiver has answered, and its outcome goes to the kind's recorder, which writes whatever
//! finished meanwhile in one statement ([`Courier::record_sent`]), in the order it finished.

mod recorder;
mod sender;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::db::outbox as db_outbox;
use crate::domain::error::DomainResult;

pub use crate::db::outbox::{Busy, ClaimTerms, Claimed};
pub use sender::run_sender;

/// The wait after the longest backoff step.
pub const LONGEST_RETRY: Duration = Duration::from_secs(3600);

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

/// A delivery that failed, with what it leaves for its courier to log beside the outbox's own
/// record (a webhook's attempt, once a request was made), if anything.
#[derive(Debug)]
pub struct NotSent<R> {
    pub failure: Failure,
    pub record: Option<R>,
}

impl<R> From<Failure> for NotSent<R> {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            record: None,
        }
    }
}

impl<R> From<String> for NotSent<R> {
    fn from(why: String) -> Self {
        Failure::from(why).into()
    }
}

/// How many deliveries of one kind a sender runs at once: in all, and to one receiver (a lane).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub in_flight: usize,
    pub per_lane: i32,
}

/// Delivers the messages of one kind (SMTP for mail, HTTP for webhooks).
pub trait Courier: Send + Sync + 'static {
    /// A claimed message as its delivery needs it: its payload, and what was read with it.
    type Message: Send + Sync + 'static;
    /// What a delivery leaves to record (the payload to keep, a webhook's attempt).
    type Record: Send + Sync + 'static;

    fn kind(&self) -> &'static str;
    /// How many of its deliveries may run at once (by default 4, all in one lane).
    fn bounds(&self) -> Bounds {
        Bounds {
            in_flight: 4,
            per_lane: 4,
        }
    }
    /// Claims due messages of its kind on `terms`, in one statement (`db::outbox::claim`'s, with
    /// whatever its deliveries read joined to it).
    fn claim(
        &self,
        pool: &PgPool,
        terms: ClaimTerms<'_>,
    ) -> impl Future<Output = sqlx::Result<Vec<(Claimed, Self::Message)>>> + Send;
    /// Sends one message. `id` is the message's id, the same on every attempt, so a receiver
    /// can tell a re-send from a new message. The receiver has `within` to answer (the courier's
    /// own timeout may be shorter); the sender cuts off a delivery that runs much longer.
    fn deliver(
        &self,
        id: Uuid,
        message: &Self::Message,
        within: Duration,
    ) -> impl Future<Output = Result<Self::Record, NotSent<Self::Record>>> + Send;
    /// Records delivered messages, in one statement and in the order given: the outbox's rows
    /// (an `outbox_attempt` each, the message sent, as `db::outbox::record_sent`) and the
    /// courier's own.
    fn record_sent(
        &self,
        pool: &PgPool,
        sent: &[(Uuid, Self::Record)],
    ) -> impl Future<Output = DomainResult<()>> + Send;
    /// Records what a failed delivery left for the courier's own log, before the outbox records
    /// the failure (by default nothing).
    fn record_failure(
        &self,
        pool: &PgPool,
        id: Uuid,
        record: Self::Record,
    ) -> impl Future<Output = DomainResult<()>> + Send {
        let _ = (pool, id, record);
        async { Ok(()) }
    }
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

    /// The longest one delivery may take before the sender cuts it off and counts it as failed
    /// (and slow); recording it follows within moments.
    pub fn delivery_limit(&self) -> Duration {
        self.lease.mul_f64(0.75)
    }
}

/// A courier as a sender runs it: every [`Courier`] is one.
pub trait KindSender: Send + Sync {
    /// Sends this kind's due messages until `stop` turns true.
    fn run(
        self: Arc<Self>,
        pool: PgPool,
        policy: SenderPolicy,
        wake: watch::Receiver<()>,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<C: Courier> KindSender for C {
    fn run(
        self: Arc<Self>,
        pool: PgPool,
        policy: SenderPolicy,
        wake: watch::Receiver<()>,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(sender::run_kind(pool, self, policy, wake, stop))
    }
}

/// The couriers of one instance, one per kind.
#[derive(Clone, Default)]
pub struct Couriers(Vec<Arc<dyn KindSender>>);

impl Couriers {
    pub fn new(couriers: Vec<Arc<dyn KindSender>>) -> Self {
        Self(couriers)
    }
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
}
