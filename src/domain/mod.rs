//! Rules and types of the product: no HTTP, no SQL.

pub mod accounts;
pub mod identities;
pub mod keys;
pub mod passwords;
pub mod tenants;
pub mod throttle;
pub mod usage;
