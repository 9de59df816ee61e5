//! The lanes of one kind in a sender: per lane, the deliveries running, the messages claimed ahead
//! and waiting their turn (prefetch), and how far ahead it may claim (its depth); and the lanes
//! resting after timeouts.
//!
//! The rules: at most `per_lane` deliveries run in a lane; a lane holds (running and waiting) at
//! most `per_lane × depth`, its depth growing by one with each delivery answered fast (up to
//! [`DEEPEST`]) and falling to 1 with one that is not (what it then holds beyond is given back); a
//! lane that times out gives back all it holds and rests; a waiting message whose claim is older
//! than the time left to deliver it within its lease is not started but given back.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{Busy, Claimed};

/// A lane answering fast may hold up to this many rounds of its deliveries.
pub(super) const DEEPEST: i32 = 16;
/// A delivery answered within this (or within the time a claim stays fresh, shared by the rounds
/// a full lane holds, when that is shorter) is fast.
const FAST: Duration = Duration::from_millis(250);
/// A lane whose receiver timed out rests this long, doubling with each timeout in a row...
pub(super) const BACKOFF_FIRST: Duration = Duration::from_secs(5);
/// ... to this.
const BACKOFF_LONGEST: Duration = Duration::from_secs(600);

/// What one delivery left for its lane-keeper to know.
pub(super) struct Done {
    pub lane: String,
    pub slow: bool,
    pub delivered: bool,
    /// How long the receiver took (or the delivery, when it was cut off).
    pub took: Duration,
}

/// A claimed message waiting in its lane, and when its claim was asked for.
struct Waiting<M> {
    claimed: Claimed,
    message: M,
    at: Instant,
}

struct Lane<M> {
    running: i32,
    waiting: VecDeque<Waiting<M>>,
    depth: i32,
}

impl<M> Default for Lane<M> {
    fn default() -> Self {
        Self {
            running: 0,
            waiting: VecDeque::new(),
            depth: 1,
        }
    }
}

impl<M> Lane<M> {
    fn held(&self) -> i32 {
        self.running
            .saturating_add(i32::try_from(self.waiting.len()).unwrap_or(i32::MAX))
    }

    /// Gives back what it holds beyond `per_lane × depth`, the last claimed first.
    fn trim(&mut self, per_lane: i32, back: &mut Vec<Claimed>) {
        while self.held() > per_lane.saturating_mul(self.depth) {
            match self.waiting.pop_back() {
                Some(waiting) => back.push(waiting.claimed),
                None => break,
            }
        }
    }
}

/// The lanes of one kind in this sender.
pub(super) struct Lanes<M> {
    per_lane: i32,
    /// How long a claim stays fresh enough to start: the lease less the delivery's own limit.
    fresh_for: Duration,
    lanes: HashMap<String, Lane<M>>,
    /// Lanes whose receiver timed out, how many times in a row, and until when they rest.
    resting: HashMap<String, (u32, Instant)>,
    running: usize,
    waiting: usize,
}

impl<M> Lanes<M> {
    pub fn new(per_lane: i32, fresh_for: Duration) -> Self {
        Self {
            per_lane,
            fresh_for,
            lanes: HashMap::new(),
            resting: HashMap::new(),
            running: 0,
            waiting: 0,
        }
    }

    /// Deliveries running, and messages waiting.
    pub fn held(&self) -> usize {
        self.running + self.waiting
    }

    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running
    }

    /// What a claim must leave alone or limit: lanes holding their fill or resting are closed;
    /// the others are counted so each gets up to `per_lane × depth` (the claim's `per_lane`
    /// applies to a lane this sender has no state for: depth 1).
    pub fn busy(&self) -> Busy {
        let now = Instant::now();
        let mut busy = Busy::default();
        for (name, lane) in &self.lanes {
            let fill = self.per_lane.saturating_mul(lane.depth);
            if lane.held() >= fill {
                busy.closed.push(name.clone());
            } else {
                busy.lanes.push(name.clone());
                busy.in_flight.push(lane.held() - (fill - self.per_lane));
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

    /// Keeps a claimed message in its lane until it may start; `at`: when its claim was asked for.
    /// A message of a lane resting (it began while the claim was under way) goes to `refused`
    /// instead, with how long the lane still rests.
    pub fn claimed(
        &mut self,
        claimed: Claimed,
        message: M,
        at: Instant,
        refused: &mut Vec<(Claimed, Duration)>,
    ) {
        let now = Instant::now();
        if let Some((_, until)) = self.resting.get(&claimed.lane)
            && *until > now
        {
            refused.push((claimed, *until - now));
            return;
        }
        let lane = self.lanes.entry(claimed.lane.clone()).or_default();
        lane.waiting.push_back(Waiting {
            claimed,
            message,
            at,
        });
        self.waiting += 1;
    }

    /// Takes the waiting messages that may start now, the longest waiting first, with up to
    /// `room` deliveries starting in all and at most `per_lane` running in a lane; those whose
    /// claim is no longer fresh go to `stale`, to be given back.
    pub fn start(
        &mut self,
        room: usize,
        now: Instant,
        stale: &mut Vec<Claimed>,
    ) -> Vec<(Claimed, M)> {
        let mut starting = Vec::new();
        while starting.len() < room {
            let next = self
                .lanes
                .iter()
                .filter(|(_, lane)| lane.running < self.per_lane)
                .filter_map(|(name, lane)| lane.waiting.front().map(|w| (w.at, name)))
                .min_by_key(|(at, _)| *at)
                .map(|(_, name)| name.clone());
            let Some(name) = next else { break };
            let Some(lane) = self.lanes.get_mut(&name) else {
                break;
            };
            let Some(waiting) = lane.waiting.pop_front() else {
                break;
            };
            self.waiting -= 1;
            if now.saturating_duration_since(waiting.at) > self.fresh_for {
                stale.push(waiting.claimed);
                continue;
            }
            lane.running += 1;
            self.running += 1;
            starting.push((waiting.claimed, waiting.message));
        }
        starting
    }

    /// Whether a lane waits for a claim to fill it: what it has waiting is under half its fill.
    pub fn wants_more(&self, lane: &str) -> bool {
        self.lanes.get(lane).is_none_or(|lane| {
            let waiting = i32::try_from(lane.waiting.len()).unwrap_or(i32::MAX);
            waiting.saturating_mul(2) < self.per_lane.saturating_mul(lane.depth)
        })
    }

    /// Notes a finished delivery: its lane's depth follows how fast it answered, and what the lane
    /// then holds beyond its fill goes to `back` (all it has waiting, when it timed out). Returns
    /// how long to rest the lane, if it should.
    pub fn finished(&mut self, done: &Done, back: &mut Vec<Claimed>) -> Option<Duration> {
        let fast = FAST.min(self.fresh_for / DEEPEST.unsigned_abs());
        let per_lane = self.per_lane;
        if let Some(lane) = self.lanes.get_mut(&done.lane) {
            lane.running -= 1;
            self.running = self.running.saturating_sub(1);
            if done.slow {
                lane.depth = 1;
                self.waiting -= lane.waiting.len();
                back.extend(lane.waiting.drain(..).map(|waiting| waiting.claimed));
            } else if done.took > fast {
                lane.depth = 1;
                let before = back.len();
                lane.trim(per_lane, back);
                self.waiting -= back.len() - before;
            } else if done.delivered {
                lane.depth = (lane.depth + 1).min(DEEPEST);
            }
            if lane.held() == 0 && lane.depth == 1 {
                self.lanes.remove(&done.lane);
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

    /// Everything waiting (at shutdown: to be given back).
    pub fn drain(&mut self) -> Vec<Claimed> {
        self.waiting = 0;
        self.lanes
            .values_mut()
            .flat_map(|lane| lane.waiting.drain(..).map(|waiting| waiting.claimed))
            .collect()
    }
}

/// How long a lane whose receiver timed out `strikes` times in a row rests: 5 s, doubling to
/// 10 minutes.
pub(super) fn backoff(strikes: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(2u32.saturating_pow(strikes.saturating_sub(1).min(16)))
        .min(BACKOFF_LONGEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const FRESH: Duration = Duration::from_secs(30);

    fn claim(lane: &str) -> Claimed {
        Claimed {
            outbox_message_id: Uuid::new_v4(),
            kind: "webhook".to_owned(),
            lane: lane.to_owned(),
            payload: serde_json::Value::Null,
            attempts: 1,
            give_up_at: time::OffsetDateTime::now_utc(),
        }
    }

    fn done(lane: &str, delivered: bool, slow: bool, took_ms: u64) -> Done {
        Done {
            lane: lane.to_owned(),
            slow,
            delivered,
            took: Duration::from_millis(took_ms),
        }
    }

    /// Claims `n` messages for `lane` now, and returns their ids.
    fn fill(lanes: &mut Lanes<()>, lane: &str, n: usize, at: Instant) -> Vec<Uuid> {
        (0..n)
            .map(|_| {
                let claimed = claim(lane);
                let id = claimed.outbox_message_id;
                lanes.claimed(claimed, (), at, &mut Vec::new());
                id
            })
            .collect()
    }

    fn ids(claimed: &[Claimed]) -> Vec<Uuid> {
        claimed.iter().map(|c| c.outbox_message_id).collect()
    }

    #[test]
    fn at_most_per_lane_start_and_a_stale_claim_is_given_back_not_sent() {
        let mut lanes = Lanes::new(4, FRESH);
        let now = Instant::now();
        let old = fill(
            &mut lanes,
            "webhook:a",
            2,
            now - FRESH - Duration::from_secs(1),
        );
        let fresh = fill(&mut lanes, "webhook:a", 6, now);
        let mut stale = Vec::new();
        let started = lanes.start(64, now, &mut stale);
        assert_eq!(ids(&stale), old, "the stale claims are given back");
        let started: Vec<Claimed> = started.into_iter().map(|(c, ())| c).collect();
        assert_eq!(ids(&started), fresh[..4], "4 start, in the order claimed");
        assert_eq!((lanes.running(), lanes.held()), (4, 6));
        // The room in all bounds what starts, too.
        let mut other = Lanes::new(4, FRESH);
        fill(&mut other, "webhook:b", 3, now);
        fill(&mut other, "webhook:c", 3, now);
        assert_eq!(other.start(5, now, &mut stale).len(), 5);
    }

    #[test]
    fn a_lane_answering_fast_is_claimed_deeper_and_one_slow_answer_gives_back_the_surplus() {
        let mut lanes = Lanes::new(4, FRESH);
        let now = Instant::now();
        fill(&mut lanes, "webhook:a", 4, now);
        let mut back = Vec::new();
        assert_eq!(lanes.start(64, now, &mut back).len(), 4);
        // Depth 1: the lane is full with its 4 running.
        assert_eq!(lanes.busy().closed, ["webhook:a"]);
        for _ in 0..3 {
            lanes.finished(&done("webhook:a", true, false, 5), &mut back);
        }
        // Depth 4 (1 + 3 fast): 1 running of 16, so 15 more may be claimed (a claim's per_lane,
        // 4, plus 11).
        let busy = lanes.busy();
        assert_eq!(
            (busy.lanes, busy.in_flight),
            (vec!["webhook:a".to_owned()], vec![-11])
        );
        for _ in 0..40 {
            lanes.claimed(claim("webhook:a"), (), now, &mut Vec::new());
            lanes.start(64, now, &mut back);
            lanes.finished(&done("webhook:a", true, false, 5), &mut back);
        }
        assert!(back.is_empty());
        let deepest = 4 * DEEPEST;
        let busy = lanes.busy();
        assert_eq!(
            busy.in_flight,
            [1 - (deepest - 4)],
            "depth stops at {DEEPEST}"
        );
        fill(
            &mut lanes,
            "webhook:a",
            usize::try_from(deepest - 1).unwrap(),
            now,
        );
        assert_eq!(lanes.busy().closed, ["webhook:a"]);
        lanes.start(64, now, &mut back);
        assert_eq!((lanes.running(), lanes.held()), (4, 64));
        // One slow answer: depth 1, and all but 4 held go back.
        lanes.finished(&done("webhook:a", true, false, 900), &mut back);
        assert_eq!(back.len(), 60 - 1, "63 held after the answer, 4 kept");
        assert_eq!(lanes.held(), 4);
        assert_eq!(lanes.busy().closed, ["webhook:a"]);
    }

    #[test]
    fn a_lane_that_times_out_gives_back_all_it_has_waiting_and_rests_one_strike_a_wave() {
        let mut lanes = Lanes::new(4, FRESH);
        let now = Instant::now();
        fill(&mut lanes, "webhook:slow", 4, now);
        fill(&mut lanes, "webhook:fast", 1, now);
        let mut back = Vec::new();
        lanes.start(64, now, &mut back);
        let waiting = fill(&mut lanes, "webhook:slow", 3, now);
        let busy = lanes.busy();
        assert_eq!(busy.closed, ["webhook:slow"]);
        assert_eq!(
            (busy.lanes, busy.in_flight),
            (vec!["webhook:fast".to_owned()], vec![1])
        );

        // Three timeouts at once: the lane rests 5 s, not 5 + 10 + 20.
        let waits: Vec<_> = (0..3)
            .map(|_| lanes.finished(&done("webhook:slow", false, true, 3000), &mut back))
            .collect();
        assert_eq!(waits, [Some(BACKOFF_FIRST), None, None]);
        assert_eq!(ids(&back), waiting, "what waited is given back");
        assert_eq!(lanes.busy().closed, ["webhook:slow"], "resting");
        // What a claim under way brings for it meanwhile goes back too, with the rest left.
        let mut refused = Vec::new();
        lanes.claimed(claim("webhook:slow"), (), now, &mut refused);
        let rest = refused.first().map(|(_, rest)| *rest).unwrap_or_default();
        assert!(rest > BACKOFF_FIRST - Duration::from_secs(1) && rest <= BACKOFF_FIRST);
        assert_eq!(lanes.held(), 2, "only the two still running");
        // A failure that is not a timeout rests nothing; a delivery ends the rest.
        assert_eq!(
            lanes.finished(&done("webhook:fast", false, false, 5), &mut back),
            None
        );
        assert_eq!(
            lanes.finished(&done("webhook:slow", true, false, 5), &mut back),
            None
        );
        assert_eq!(lanes.held(), 0);
        assert!(lanes.busy().closed.is_empty());
    }

    #[test]
    fn at_shutdown_everything_waiting_is_given_back() {
        let mut lanes = Lanes::new(4, FRESH);
        let now = Instant::now();
        let mut waiting = fill(&mut lanes, "webhook:a", 6, now);
        waiting.extend(fill(&mut lanes, "webhook:b", 1, now));
        let mut back = Vec::new();
        let started: Vec<Uuid> = lanes
            .start(64, now, &mut back)
            .into_iter()
            .map(|(c, ())| c.outbox_message_id)
            .collect();
        waiting.retain(|id| !started.contains(id));
        let mut drained = ids(&lanes.drain());
        drained.sort();
        waiting.sort();
        assert_eq!(drained, waiting);
        assert_eq!(lanes.held(), lanes.running());
    }

    #[test]
    fn a_resting_lane_waits_5_s_doubling_to_10_minutes() {
        let waits: Vec<u64> = (1..=9).map(|strikes| backoff(strikes).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
    }
}
