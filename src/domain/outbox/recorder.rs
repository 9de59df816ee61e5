//! The recorder of one kind: writes the outcomes of its deliveries in the order they finished.
//! Whatever was delivered meanwhile goes in one statement ([`Courier::record_sent`]), so a busy
//! sender pays one round trip (and one commit) for many deliveries; a failure is recorded on its
//! own, after what was delivered before it. Nothing waits on purpose: while one write runs, the
//! next batch gathers.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{Bounds, Claimed, Courier, NotSent, SenderPolicy};
use crate::db::outbox as db_outbox;
use crate::domain::error::DomainResult;

/// The most outcomes one write records.
const BATCH: usize = 256;

/// A delivery's outcome, on its way to be recorded.
pub(super) struct Finished<R> {
    pub claimed: Claimed,
    pub outcome: Result<R, NotSent<R>>,
}

/// Starts the recorder of `courier`'s kind: the channel deliveries hand their outcomes to, and the
/// task, which ends once every sender to the channel is gone and what it holds is written. The
/// channel holds at most twice the deliveries in flight: a recorder that falls behind slows the
/// deliveries down instead of gathering more than their leases allow.
pub(super) fn start<C: Courier>(
    pool: PgPool,
    courier: Arc<C>,
    policy: SenderPolicy,
    bounds: Bounds,
) -> (mpsc::Sender<Finished<C::Record>>, JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::channel(bounds.in_flight.max(1) * 2);
    let task = tokio::spawn(async move {
        let mut finished = Vec::with_capacity(BATCH);
        while receiver.recv_many(&mut finished, BATCH).await > 0 {
            write(&pool, courier.as_ref(), policy, finished.drain(..)).await;
        }
    });
    (sender, task)
}

/// Records `finished` in order: runs of deliveries in one statement each, failures one by one.
async fn write<C: Courier>(
    pool: &PgPool,
    courier: &C,
    policy: SenderPolicy,
    finished: impl Iterator<Item = Finished<C::Record>>,
) {
    let mut sent: Vec<(Claimed, C::Record)> = Vec::new();
    for Finished { claimed, outcome } in finished {
        match outcome {
            Ok(record) => sent.push((claimed, record)),
            Err(not_sent) => {
                record_sent(pool, courier, std::mem::take(&mut sent)).await;
                if let Err(err) = record_failed(pool, courier, &claimed, not_sent, policy).await {
                    // The lease runs out and the message is tried again.
                    tracing::warn!(outbox.id = %claimed.outbox_message_id, error = %err,
                        "cannot record an attempt");
                }
            }
        }
    }
    record_sent(pool, courier, sent).await;
}

/// Records delivered messages in one statement; when that fails, each on its own, so one that
/// cannot be recorded (its endpoint just deleted) leaves only itself to its lease.
async fn record_sent<C: Courier>(pool: &PgPool, courier: &C, sent: Vec<(Claimed, C::Record)>) {
    if sent.is_empty() {
        return;
    }
    let (claimed, records): (Vec<Claimed>, Vec<C::Record>) = sent.into_iter().unzip();
    let records: Vec<(Uuid, C::Record)> = claimed
        .iter()
        .map(|message| message.outbox_message_id)
        .zip(records)
        .collect();
    let written = courier.record_sent(pool, &records).await;
    let written: Vec<DomainResult<()>> = match written {
        Ok(()) => claimed.iter().map(|_| Ok(())).collect(),
        Err(_) if records.len() > 1 => {
            let mut each = Vec::with_capacity(records.len());
            for one in &records {
                each.push(courier.record_sent(pool, std::slice::from_ref(one)).await);
            }
            each
        }
        Err(err) => vec![Err(err)],
    };
    for (message, written) in claimed.iter().zip(written) {
        let id = message.outbox_message_id;
        match written {
            Ok(()) => {
                tracing::info!(outbox.id = %id, outbox.kind = %message.kind, attempts = message.attempts, "sent")
            }
            // The lease runs out and the message is sent again, with the same id.
            Err(err) => tracing::warn!(outbox.id = %id, error = %err, "cannot record an attempt"),
        }
    }
}

/// Records a failed attempt: the courier's own log first, then the outbox's row, due again on the
/// courier's schedule (or the receiver's `Retry-After`, if longer) or given up.
async fn record_failed<C: Courier>(
    pool: &PgPool,
    courier: &C,
    message: &Claimed,
    not_sent: NotSent<C::Record>,
    policy: SenderPolicy,
) -> DomainResult<()> {
    let id = message.outbox_message_id;
    let failure = not_sent.failure;
    if let Some(record) = not_sent.record
        && let Err(err) = courier.record_failure(pool, id, record).await
    {
        tracing::warn!(outbox.id = %id, error = %err, "cannot log a failed attempt");
    }
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
    Ok(())
}
