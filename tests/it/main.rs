//! Integration tests: each test gets its own migrated database and drives Gatehouse over HTTP
//! as a browser would (cookie jar, CSRF tokens), or through real headless Chromium.
//!
//! The test modules mirror the URLs they exercise (`tenants/keys` tests `/t/{slug}/keys…`,
//! `key_api/verify` tests `/v1/keys/verify`); what they share lives in `support`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod auth;
mod browser;
mod docs;
mod error_pages;
mod key_api;
mod leaks;
mod operations;
mod ops;
mod outbox;
mod rulebook;
mod scripts;
mod security;
mod support;
mod tenants;
mod tokens;
mod v1;
mod wording;
