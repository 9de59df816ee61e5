//! The sender: one lane-keeper per kind, each claiming what its courier's bounds let it start and
//! starting each delivery at once; lanes in flight, and lanes resting after timeouts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::recorder::{self, Finished};
use super::{ClaimTerms, Claimed, Courier, Couriers, Failure, NotSent, SenderPolicy};
use crate::db::outbox::{self as db_outbox, Busy};

/// How long deliveries in flight at shutdown have to finish (and then their outcomes to be
/// recorded).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A lane whose receiver timed out rests this long, doubling with each timeout in a row...
const BACKOFF_FIRST: Duration = Duration::from_secs(5);
/// ... to this.
const BACKOFF_LONGEST: Duration = Duration::from_secs(600);

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
/// and claims again as deliveries finish, a message is due, or the poll comes round. Outcomes go
/// to the kind's recorder.
pub(super) async fn run_kind<C: Courier>(
    pool: PgPool,
    courier: Arc<C>,
    policy: SenderPolicy,
    mut wake: watch::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let bounds = courier.bounds();
    let (record, recorder) = recorder::start(pool.clone(), courier.clone(), policy, bounds);
    let mut lanes = Lanes::default();
    let mut running: JoinSet<Done> = JoinSet::new();
    let mut failing = false;
    // The last claim found nothing outside the lanes it had to leave alone, and nothing came due
    // since (no wake, no poll): a claim that fills a lane need not be followed by another.
    let mut settled = false;
    loop {
        let free = bounds.in_flight.saturating_sub(running.len());
        let mut claimed_any = false;
        if free > 0 {
            let busy = lanes.busy(bounds.per_lane);
            let terms = ClaimTerms {
                limit: i64::try_from(free).unwrap_or(i64::MAX),
                per_lane: bounds.per_lane,
                busy: &busy,
                lease: policy.lease,
            };
            match courier.claim(&pool, terms).await {
                Ok(claimed) => {
                    if failing {
                        tracing::info!("the outbox is reachable again");
                        failing = false;
                    }
                    claimed_any = !claimed.is_empty();
                    settled |= !claimed_any;
                    for (claimed, message) in claimed {
                        lanes.started(&claimed.lane);
                        let (courier, record) = (courier.clone(), record.clone());
                        running.spawn(async move {
                            attempt(courier.as_ref(), claimed, message, policy, record).await
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
        if claimed_any && !full && !settled {
            // More may be waiting in lanes this claim left no room for: look again at once
            // (once: when that finds nothing, a lane that fills again hides nothing new).
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
            () = tokio::time::sleep(policy.poll), if !full => { settled = false; }
            _ = wake.changed(), if !full => { settled = false; }
            () = stopping(&mut stop) => {
                // What is in flight has a moment to finish; the rest is left to its lease (and
                // sent again, with the same id, by whichever sender claims it next).
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
    };
    if record.send(Finished { claimed, outcome }).await.is_err() {
        // The lease runs out and the message is tried again.
        tracing::warn!(outbox.id = %id, "cannot record an attempt: the recorder has stopped");
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

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
