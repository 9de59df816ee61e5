//! One durable outbox for everything Gatehouse sends (mail now, webhooks next): a message is a row
//! written in the same transaction as the change that causes it; a sender on every instance claims
//! due rows (`FOR UPDATE SKIP LOCKED`), hands each to the courier of its kind, and records the
//! attempt. Failures are retried on the courier's schedule (by default 1 minute, doubling to 1 hour,
//! for 24 hours). A crash between sending and recording sends again after the lease, with the same
//! message id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::db::outbox::{self as db_outbox, Claimed};
use crate::domain::error::DomainResult;

/// The wait after the longest backoff step.
pub const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// Messages one sender claims at a time.
const BATCH: i64 = 20;
/// How long a claimed message is kept from other senders while one sends it.
const LEASE: Duration = Duration::from_secs(300);

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
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Self {
            why,
            retry_after: None,
            give_up: false,
        }
    }
}

/// Delivers the messages of one kind (SMTP for mail, HTTP for webhooks).
pub trait Courier: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Sends one message. `id` is the message's id, the same on every attempt, so a receiver
    /// can tell a re-send from a new message.
    fn deliver<'a>(&'a self, id: Uuid, payload: &'a Value) -> Delivery<'a>;
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
}

/// The couriers of one instance, one per kind.
#[derive(Clone, Default)]
pub struct Couriers(Vec<Arc<dyn Courier>>);

impl Couriers {
    pub fn new(couriers: Vec<Arc<dyn Courier>>) -> Self {
        Self(couriers)
    }

    fn kinds(&self) -> Vec<String> {
        self.0.iter().map(|c| c.kind().to_owned()).collect()
    }

    fn of(&self, kind: &str) -> Option<&Arc<dyn Courier>> {
        self.0.iter().find(|c| c.kind() == kind)
    }
}

/// Sends what is due until `stop` turns true.
pub async fn run_sender(
    pool: PgPool,
    couriers: Couriers,
    policy: SenderPolicy,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    // Without it (the database was away at start), polling alone still sends everything.
    let mut wake = db_outbox::listen_due(&pool).await.ok();
    loop {
        match send_due(&pool, &couriers, policy).await {
            Ok(sent) => {
                if failing {
                    tracing::info!("the outbox is reachable again");
                    failing = false;
                }
                if sent > 0 {
                    // More may be waiting: look again at once.
                    continue;
                }
            }
            Err(err) if !failing => {
                tracing::warn!(error = %err, "cannot read the outbox; retrying");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(policy.poll) => {}
            () = woken(&mut wake) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
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

/// Claims one batch of due messages and tries each once; returns how many were claimed.
pub async fn send_due(
    pool: &PgPool,
    couriers: &Couriers,
    policy: SenderPolicy,
) -> DomainResult<usize> {
    let claimed = db_outbox::claim(pool, &couriers.kinds(), BATCH, LEASE).await?;
    let count = claimed.len();
    for message in claimed {
        let Some(courier) = couriers.of(&message.kind) else {
            continue;
        };
        attempt(pool, courier.as_ref(), &message, policy).await?;
    }
    Ok(count)
}

async fn attempt(
    pool: &PgPool,
    courier: &dyn Courier,
    message: &Claimed,
    policy: SenderPolicy,
) -> DomainResult<()> {
    let id = message.outbox_message_id;
    match courier.deliver(id, &message.payload).await {
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
}
