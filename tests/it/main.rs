//! Integration tests: each test gets its own migrated database and drives Gatehouse over HTTP
//! as a browser would (cookie jar, CSRF tokens), or through real headless Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod auth;
mod browser;
mod chrome;
mod fail_closed;
mod gateway;
mod helpers;
mod instances;
mod key_api;
mod key_fixtures;
mod keys;
mod metering;
mod oidc;
mod operations;
mod pg_cluster;
mod security;
mod sso;
mod sso_browser;
mod tenants;
mod usage;
