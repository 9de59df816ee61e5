//! Sign-in throttling policy: how many failures, per account and per client, in what window.

use std::time::Duration;

/// Failures are counted over this sliding window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins for one email address before it is throttled.
pub const PER_ACCOUNT: i64 = 10;
/// Failed sign-ins from one client address before it is throttled.
pub const PER_CLIENT: i64 = 30;

/// What throttling keys on. Stored as text (`account:<email>`, `client:<ip>`).
#[derive(Debug, Clone)]
pub enum Subject<'a> {
    Account(&'a str),
    Client(std::net::IpAddr),
}

impl Subject<'_> {
    pub fn key(&self) -> String {
        match self {
            Self::Account(email) => format!("account:{email}"),
            Self::Client(ip) => format!("client:{ip}"),
        }
    }

    pub fn limit(&self) -> i64 {
        match self {
            Self::Account(_) => PER_ACCOUNT,
            Self::Client(_) => PER_CLIENT,
        }
    }
}
