//! The sender: one lane-keeper per kind, each claiming what its courier's bounds let it start and
//! starting each delivery at once; lanes in flight, and lanes resting after timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::lanes::{Done, Lanes};
use super::recorder::{self, Finished};
use super::{ClaimTerms, Claimed, Courier, Couriers, Failure, NotSent, SenderPolicy};
use crate::db::outbox as db_outbox;

/// How long deliveries in flight at shutdown have to finish (and then their outcomes to be
/// recorded).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A sender holds (running and waiting) at most this many messages of a kind per delivery its
/// bounds let run at once.
const HELD_PER_DELIVERY: usize = 4;

/// Sends what is due until `stop` turns true: one lane-keeper per kind (mail is never behind a
/// webhook), each running its deliveries concurrently within its courier's bounds.
pub async fn run_sender(
    pool: PgPool,
    couriers: Couriers,
    policy: SenderPolicy,
    stop: watch::Receiver<bool>,
) {
    let (woke, wake) = watch::channel(());
    let mut kinds = JoinSet::new();
    for courier in couriers.0 {
        kinds.spawn(courier.run(pool.clone(), policy, wake.clone(), stop.clone()));
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

/// The lane-keeper of one kind: claims ahead what its lanes may hold (see [`Lanes`]), starts each
/// delivery its bounds let start, and claims again (one claim at a time, while deliveries run) as
/// a lane's waiting messages fall under half its fill, a message is due, or the poll comes round.
/// Outcomes go to the kind's recorder.
pub(super) async fn run_kind<C: Courier>(
    pool: PgPool,
    courier: Arc<C>,
    policy: SenderPolicy,
    mut wake: watch::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let bounds = courier.bounds();
    let (record, recorder) = recorder::start(pool.clone(), courier.clone(), policy, bounds);
    let fresh_for = policy.lease.saturating_sub(policy.delivery_limit());
    let mut lanes = Lanes::new(bounds.per_lane, fresh_for);
    let most_held = bounds.in_flight.saturating_mul(HELD_PER_DELIVERY);
    let mut running: JoinSet<Done> = JoinSet::new();
    let mut claiming: Option<JoinHandle<Claim<C::Message>>> = None;
    let mut failing = false;
    // A claim may find something: set by a wake, the poll, a claim that found something, and a
    // delivery finishing whose lane runs low (or that frees a place when all were held).
    let mut look = true;
    loop {
        let mut back = Vec::new();
        let room = bounds.in_flight.saturating_sub(running.len());
        for (claimed, message) in lanes.start(room, Instant::now(), &mut back) {
            let (courier, record) = (courier.clone(), record.clone());
            running.spawn(async move {
                attempt(courier.as_ref(), claimed, message, policy, record).await
            });
        }
        give_back(&pool, &back, "no longer fresh").await;
        let held = lanes.held();
        if claiming.is_none() && look && held < most_held {
            look = false;
            let terms = (
                lanes.busy(),
                i64::try_from(most_held - held).unwrap_or(i64::MAX),
            );
            let (pool, courier, at) = (pool.clone(), courier.clone(), Instant::now());
            claiming = Some(tokio::spawn(async move {
                let (busy, limit) = terms;
                let terms = ClaimTerms {
                    limit,
                    per_lane: bounds.per_lane,
                    busy: &busy,
                    lease: policy.lease,
                };
                (courier.claim(&pool, terms).await, at)
            }));
        }
        let idle = claiming.is_none() && !look;
        tokio::select! {
            claim = async {
                match claiming.as_mut() {
                    Some(claim) => claim.await,
                    None => std::future::pending().await,
                }
            }, if claiming.is_some() => {
                claiming = None;
                match claim {
                    Ok((Ok(claimed), at)) => {
                        if failing {
                            tracing::info!("the outbox is reachable again");
                            failing = false;
                        }
                        // More may be waiting in lanes this claim left no room for: look again
                        // (once it finds nothing, a lane filling again hides nothing new).
                        look = !claimed.is_empty();
                        let mut resting = Vec::new();
                        for (claimed, message) in claimed {
                            lanes.claimed(claimed, message, at, &mut resting);
                        }
                        give_back_resting(&pool, resting).await;
                    }
                    Ok((Err(err), _)) if !failing => {
                        tracing::warn!(error = %err, "cannot read the outbox; retrying");
                        failing = true;
                    }
                    Ok((Err(_), _)) => {}
                    Err(err) => tracing::warn!(error = %err, "the claim did not finish"),
                }
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                let all_held = lanes.held() >= most_held;
                let mut finished = vec![done];
                // Everything else that finished meanwhile, before starting and claiming again.
                while let Some(done) = running.try_join_next() {
                    finished.push(done);
                }
                for done in finished.into_iter().flatten() {
                    look |= all_held || lanes.wants_more(&done.lane);
                    finish(&pool, &mut lanes, &done).await;
                }
            }
            () = tokio::time::sleep(policy.poll), if idle => { look = true; }
            _ = wake.changed() => { look = true; }
            () = stopping(&mut stop) => {
                // A claim under way is let finish, and what waits is given back at once (for
                // any sender to take); what is in flight has a moment to finish, the rest is
                // left to its lease (and sent again, with the same id, by whichever sender
                // claims it next).
                if let Some(claim) = claiming.take()
                    && let Ok(Ok((Ok(claimed), at))) = tokio::time::timeout(SHUTDOWN_GRACE, claim).await
                {
                    let mut resting = Vec::new();
                    for (claimed, message) in claimed {
                        lanes.claimed(claimed, message, at, &mut resting);
                    }
                    give_back_resting(&pool, resting).await;
                }
                give_back(&pool, &lanes.drain(), "shutting down").await;
                let drained = async { while running.join_next().await.is_some() {} };
                if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
                    tracing::warn!(left = running.len(), outbox.kind = courier.kind(),
                        "deliveries still in flight at shutdown: left to their lease");
                }
                // The recorder writes what finished, then ends (every sender to it is gone).
                drop(running);
                drop(record);
                if tokio::time::timeout(SHUTDOWN_GRACE, recorder).await.is_err() {
                    tracing::warn!(outbox.kind = courier.kind(),
                        "outcomes not recorded at shutdown: left to their lease");
                }
                return;
            }
        }
    }
}

/// A claim's outcome, and when it was asked for.
type Claim<M> = (sqlx::Result<Vec<(Claimed, M)>>, Instant);

/// Gives claimed messages back unsent (on failure they are left to their lease).
async fn give_back(pool: &PgPool, back: &[Claimed], why: &str) {
    if back.is_empty() {
        return;
    }
    let ids: Vec<_> = back.iter().map(|c| c.outbox_message_id).collect();
    let attempts: Vec<_> = back.iter().map(|c| c.attempts).collect();
    match db_outbox::release(pool, &ids, &attempts).await {
        Ok(released) => tracing::debug!(released, why, "claimed messages given back unsent"),
        Err(err) => tracing::warn!(error = %err, why,
            "cannot give claimed messages back: left to their lease"),
    }
}

/// Gives back what a claim brought for lanes that began resting meanwhile, and keeps their
/// waiting messages back for the rest of the rest.
async fn give_back_resting(pool: &PgPool, resting: Vec<(Claimed, Duration)>) {
    if resting.is_empty() {
        return;
    }
    let mut rests: Vec<(String, Duration)> = Vec::new();
    let back: Vec<Claimed> = resting
        .into_iter()
        .map(|(claimed, rest)| {
            if !rests.iter().any(|(lane, _)| *lane == claimed.lane) {
                rests.push((claimed.lane.clone(), rest));
            }
            claimed
        })
        .collect();
    give_back(pool, &back, "its lane rests").await;
    for (lane, rest) in rests {
        if let Err(err) = db_outbox::defer_lane(pool, &lane, rest).await {
            tracing::warn!(error = %err, outbox.lane = %lane, "cannot back the lane off");
        }
    }
}

async fn finish<M>(pool: &PgPool, lanes: &mut Lanes<M>, done: &Done) {
    let mut back = Vec::new();
    let rest = lanes.finished(done, &mut back);
    give_back(pool, &back, "the lane slowed down").await;
    if let Some(wait) = rest {
        match db_outbox::defer_lane(pool, &done.lane, wait).await {
            Ok(deferred) => tracing::warn!(outbox.lane = %done.lane, rest_secs = wait.as_secs(),
                deferred, "the receiver keeps timing out: its lane rests"),
            Err(err) => {
                tracing::warn!(error = %err, outbox.lane = %done.lane, "cannot back the lane off")
            }
        }
    }
}

/// Tries one claimed message once and hands the outcome to the recorder. The delivery is cut off
/// well within the lease, so the claim never outlives it; its place in the lane is free once the
/// receiver has answered (the recorder holds the message until it is recorded: its lease does).
async fn attempt<C: Courier>(
    courier: &C,
    claimed: Claimed,
    message: C::Message,
    policy: SenderPolicy,
    record: mpsc::Sender<Finished<C::Record>>,
) -> Done {
    let id = claimed.outbox_message_id;
    let limit = policy.delivery_limit();
    let began = Instant::now();
    let outcome =
        match tokio::time::timeout(limit, courier.deliver(id, &message, policy.answer_limit()))
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(NotSent::from(Failure {
                why: format!("no answer within {} ms", limit.as_millis()),
                retry_after: None,
                give_up: false,
                slow: true,
            })),
        };
    drop(message);
    let done = Done {
        lane: claimed.lane.clone(),
        slow: outcome
            .as_ref()
            .is_err_and(|not_sent| not_sent.failure.slow),
        delivered: outcome.is_ok(),
        took: began.elapsed(),
    };
    if record.send(Finished { claimed, outcome }).await.is_err() {
        // The lease runs out and the message is tried again.
        tracing::warn!(outbox.id = %id, "cannot record an attempt: the recorder has stopped");
    }
    done
}
