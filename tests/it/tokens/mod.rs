//! Access tokens (issue 25): the signing keys and their publication (`/.well-known/…`,
//! `/v1/signing-keys`).

mod clients;
mod issue;
mod signing_keys;
