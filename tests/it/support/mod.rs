//! What the tests share: the running app and its browser-like client, real Chromium, throwaway
//! PostgreSQL clusters, identity providers, and fixtures.

pub mod app;
pub mod binary;
pub mod browser;
pub mod clusters;
pub mod fixtures;
pub mod identity_providers;
pub mod key_api;
pub mod smtp;
pub mod webhooks;

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
