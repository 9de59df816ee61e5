//! Rate limits of the key API, in fixed one-minute windows (the same minutes usage is counted in):
//! per key (its `rate_limit` per minute, shared across instances through the usage counters) and
//! per client address for attempts with bad keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;
use uuid::Uuid;

/// The policy a quota belongs to, as named in the `RateLimit-Policy` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The key's own limit.
    Key,
    /// Attempts with bad keys from one client address.
    Client,
    /// Management API calls with one token.
    Token,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Client => "client",
            Self::Token => "token",
        }
    }
}

/// Where a caller stands in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub policy: Policy,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window ends (1 to 60).
    pub reset: u32,
}

/// The window (minute since the epoch) `now` falls in and the seconds left in it.
pub fn window(now: OffsetDateTime) -> (i64, u32) {
    let seconds = now.unix_timestamp();
    let left = 60 - seconds.rem_euclid(60);
    (seconds.div_euclid(60), u32::try_from(left).unwrap_or(60))
}

#[derive(Debug, Default, Clone, Copy)]
struct KeyWindow {
    minute: i64,
    /// Verifications this instance allowed in the window.
    local: u64,
    /// Of those, how many the usage counters already hold.
    written: u64,
    /// Allowed by other instances, as of the last usage flush.
    others: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct ClientWindow {
    minute: i64,
    failures: u32,
}

pub struct RateLimits {
    /// Keyed by key ids the server made: a fast hasher. Client addresses keep SipHash.
    keys: Mutex<foldhash::HashMap<Uuid, KeyWindow>>,
    clients: Mutex<HashMap<IpAddr, ClientWindow>>,
    bad_keys_per_client: u32,
}

impl RateLimits {
    pub fn new(bad_keys_per_client: u32) -> Self {
        Self {
            keys: Mutex::new(foldhash::HashMap::default()),
            clients: Mutex::new(HashMap::new()),
            bad_keys_per_client,
        }
    }

    /// Takes one verification from the key's budget: `Ok` with what is left, or `Err` when the
    /// budget of this window is spent (nothing is taken then).
    pub fn take(&self, key_id: Uuid, limit: u32, now: OffsetDateTime) -> Result<Quota, Quota> {
        let (minute, reset) = window(now);
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = keys.entry(key_id).or_default();
        if entry.minute != minute {
            *entry = KeyWindow {
                minute,
                ..KeyWindow::default()
            };
        }
        let used = entry.local + entry.others;
        let quota = |remaining: u64| Quota {
            policy: Policy::Key,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset,
        };
        if used >= u64::from(limit) {
            return Err(quota(0));
        }
        entry.local += 1;
        Ok(quota(u64::from(limit) - used - 1))
    }

    /// After a usage flush: `written` allowed verifications of this instance were added to the
    /// key's counter for `minute`, which now holds `total` across every instance.
    pub fn learn(&self, key_id: Uuid, minute: i64, written: u64, total: u64) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = keys.get_mut(&key_id)
            && entry.minute == minute
        {
            entry.written += written;
            entry.others = total.saturating_sub(entry.written);
        }
    }

    /// The client's standing when it has used up its bad-key attempts in this window.
    pub fn client_throttled(&self, client: IpAddr, now: OffsetDateTime) -> Option<Quota> {
        let (minute, reset) = window(now);
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = clients.get(&client)?;
        (entry.minute == minute && entry.failures >= self.bad_keys_per_client).then_some(Quota {
            policy: Policy::Client,
            limit: self.bad_keys_per_client,
            remaining: 0,
            reset,
        })
    }

    /// Counts an attempt with a malformed or unknown key against the client's address.
    pub fn record_bad_key(&self, client: IpAddr, now: OffsetDateTime) {
        let (minute, _) = window(now);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = clients.entry(client).or_default();
        if entry.minute != minute {
            *entry = ClientWindow {
                minute,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// Forgets windows that have ended.
    pub fn sweep(&self, now: OffsetDateTime) {
        let (minute, _) = window(now);
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, entry| entry.minute >= minute);
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, entry| entry.minute >= minute);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn windows_are_whole_minutes() {
        assert_eq!(window(datetime!(2026-01-01 00:00:00 UTC)).1, 60);
        assert_eq!(window(datetime!(2026-01-01 00:00:59 UTC)).1, 1);
        let (a, _) = window(datetime!(2026-01-01 00:00:59 UTC));
        let (b, _) = window(datetime!(2026-01-01 00:01:00 UTC));
        assert_eq!(b, a + 1);
    }

    #[test]
    fn a_key_gets_its_limit_per_minute_and_then_a_new_window() {
        let limits = RateLimits::new(10);
        let key = Uuid::new_v4();
        let now = datetime!(2026-01-01 12:00:10 UTC);
        for left in (0..3).rev() {
            let quota = limits.take(key, 3, now).unwrap();
            assert_eq!((quota.remaining, quota.reset), (left, 50));
        }
        let refused = limits.take(key, 3, now).unwrap_err();
        assert_eq!((refused.limit, refused.remaining), (3, 0));
        assert!(
            limits
                .take(key, 3, datetime!(2026-01-01 12:01:00 UTC))
                .is_ok()
        );
    }

    #[test]
    fn what_other_instances_allowed_counts_against_the_key() {
        let limits = RateLimits::new(10);
        let key = Uuid::new_v4();
        let now = datetime!(2026-01-01 12:00:10 UTC);
        let (minute, _) = window(now);
        limits.take(key, 10, now).unwrap();
        limits.take(key, 10, now).unwrap();
        // Our 2 were written; the counter says 9: the others allowed 7.
        limits.learn(key, minute, 2, 9);
        assert_eq!(limits.take(key, 10, now).unwrap().remaining, 0);
        assert!(limits.take(key, 10, now).is_err());
    }

    #[test]
    fn a_client_with_too_many_bad_keys_is_throttled_until_the_window_ends() {
        let limits = RateLimits::new(2);
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let now = datetime!(2026-01-01 12:00:30 UTC);
        limits.record_bad_key(client, now);
        assert!(limits.client_throttled(client, now).is_none());
        limits.record_bad_key(client, now);
        let quota = limits.client_throttled(client, now).unwrap();
        assert_eq!(
            (quota.policy, quota.remaining, quota.reset),
            (Policy::Client, 0, 30)
        );
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(limits.client_throttled(other, now).is_none());
        assert!(
            limits
                .client_throttled(client, datetime!(2026-01-01 12:01:00 UTC))
                .is_none()
        );
    }
}
