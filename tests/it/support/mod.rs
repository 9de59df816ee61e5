//! What the tests share: the running app and its browser-like client, real Chromium, throwaway
//! PostgreSQL clusters, identity providers, and fixtures.

pub mod app;
pub mod browser;
pub mod clusters;
pub mod fixtures;
pub mod identity_providers;
pub mod key_api;
