//! Rules and types of the product: no HTTP, no SQL.

pub mod accounts;
pub mod key_cache;
pub mod keys;
pub mod passwords;
pub mod rate_limit;
pub mod tenants;
pub mod throttle;
pub mod metering;
pub mod verification;
