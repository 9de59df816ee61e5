//! Rules and types of the product: no HTTP, no SQL.

pub mod access_tokens;
pub mod accounts;
pub mod audit;
pub mod email_links;
pub mod error;
pub mod idempotency;
pub mod identities;
pub mod invitations;
pub mod key_cache;
pub mod keys;
pub mod mail;
pub mod management;
pub mod metering;
pub mod outbox;
pub mod passwords;
pub mod rate_limit;
pub mod reminders;
pub mod request_log;
pub mod sealing;
pub mod tenants;
pub mod throttle;
pub mod tokens;
pub mod usage;
pub mod verification;
pub mod webhooks;
