//! Rules and types of the product: no HTTP, no SQL.

pub mod accounts;
pub mod identities;
pub mod passwords;
pub mod throttle;
