//! Access tokens (issue 25): every key is also an OAuth2 client, and gets short-lived JWTs
//! (RFC 9068) signed with Gatehouse's own keys ([`signing_keys`]).

pub mod issue;
pub mod signing_keys;

pub use issue::TokenSettings;
pub use signing_keys::{Rotation, SigningKeys};
