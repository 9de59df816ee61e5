//! All SQL lives here, one file per aggregate.

pub mod audit;
pub mod email_tokens;
pub mod identities;
pub mod invitations;
pub mod key_policies;
pub mod key_requests;
pub mod keys;
pub mod leaks;
pub mod login_failures;
pub mod management;
pub mod metering;
pub mod oidc_flows;
pub mod outbox;
pub mod reminders;
pub mod request_log;
pub mod sealed;
pub mod signing_keys;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod verification;
pub mod webhook_deliveries;
pub mod webhooks;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Migrations compiled into the binary. Migrations a newer release applied are not an error: during
/// a rolling upgrade an instance of the previous release may (re)start on a database the new
/// release has already migrated (migrations keep the previous release working:
/// docs/operations.md, Upgrades).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

/// Longest a request waits for a connection: with the database down, pages answer 503 within 2 s
/// (this, then at most [`PROBE_TIMEOUT`] to confirm) instead of hanging.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest [`answers`] waits.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Connections idle longer than this are checked before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Opens the pool of at most `max_connections` to `url`. Statements are bounded so a stuck
/// database fails requests instead of hanging them.
pub async fn connect(url: &SecretString, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url
        .expose_secret()
        .parse::<PgConnectOptions>()?
        .application_name("gatehouse")
        // Warnings and errors only: `IF NOT EXISTS` notices from migrations at every start are noise.
        .options([
            ("statement_timeout", "5000"),
            ("client_min_messages", "warning"),
        ]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection that sat idle is pinged before use (it may have died with a database
        // restart); a busy one is not, so the key API's lookup is one round trip, not two.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
}

/// Whether the database answers within [`PROBE_TIMEOUT`]: tells an outage from a failure whose
/// cause is hidden (a session store error arrives as text).
pub async fn answers(pool: &PgPool) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, ping(pool)).await,
        Ok(Ok(()))
    )
}

/// Whether an error means the database could not be reached (rather than refused a statement).
pub fn is_unreachable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}

/// One round trip: is the database answering?
pub async fn ping(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(db)
        .await
        .map(drop)
}

/// Tells a write refused by a unique constraint apart from every other failure
/// (the RealWorld example's `on_constraint`): the refusal is for the person, the rest is a failure.
pub trait OnUnique<T> {
    /// `Ok(Err(name))` when one of `constraints` refused the write; other errors pass through.
    fn on_unique(self, constraints: &[&'static str]) -> sqlx::Result<Result<T, &'static str>>;
}

impl<T> OnUnique<T> for sqlx::Result<T> {
    fn on_unique(self, constraints: &[&'static str]) -> sqlx::Result<Result<T, &'static str>> {
        match self {
            Ok(value) => Ok(Ok(value)),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                match constraints
                    .iter()
                    .find(|name| err.constraint() == Some(**name))
                {
                    Some(name) => Ok(Err(*name)),
                    None => Err(sqlx::Error::Database(err)),
                }
            }
            Err(err) => Err(err),
        }
    }
}
