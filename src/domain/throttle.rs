//! Throttling policy: how many failed sign-ins (and mails asked for), per account and per client,
//! in what window.

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
    /// Password-reset mails asked for one address (whether or not it has an account).
    ResetAccount(&'a str),
    /// Password-reset mails asked for from one client address.
    ResetClient(std::net::IpAddr),
    /// Verification mails one account asked to have sent again.
    VerifyResend(uuid::Uuid),
}

impl Subject<'_> {
    pub fn key(&self) -> String {
        match self {
            Self::Account(email) => format!("account:{email}"),
            Self::Client(ip) => format!("client:{ip}"),
            Self::ResetAccount(email) => format!("reset-account:{email}"),
            Self::ResetClient(ip) => format!("reset-client:{ip}"),
            Self::VerifyResend(user) => format!("verify-resend:{user}"),
        }
    }

    pub fn limit(&self) -> i64 {
        match self {
            Self::Account(_) => PER_ACCOUNT,
            Self::Client(_) => PER_CLIENT,
            Self::ResetAccount(_) => 3,
            Self::ResetClient(_) => 10,
            Self::VerifyResend(_) => 3,
        }
    }
}

/// Whether any of `subjects` has used up its allowance in the window: the seconds to wait if so.
pub async fn exceeded(db: &sqlx::PgPool, subjects: &[Subject<'_>]) -> sqlx::Result<Option<i64>> {
    for subject in subjects {
        let (count, retry_after) =
            crate::db::login_failures::recent(db, &subject.key(), WINDOW).await?;
        if count >= subject.limit() {
            return Ok(Some(retry_after.max(1)));
        }
    }
    Ok(None)
}

/// Counts one use against each of `subjects`.
pub async fn record(db: &sqlx::PgPool, subjects: &[Subject<'_>]) -> sqlx::Result<()> {
    for subject in subjects {
        crate::db::login_failures::record(db, &subject.key(), WINDOW).await?;
    }
    Ok(())
}
