//! Gatehouse: a self-hosted developer portal and API-key service on PostgreSQL.

/// The key API and operations endpoints (JSON, no sessions).
pub mod api;
/// Application state.
pub mod app;
/// The command line: serve, migrate, check-config, secret-key rotate, healthcheck.
pub mod cli;
/// The client's address, behind trusted proxies.
pub mod client_ip;
/// Configuration from the environment.
pub mod config;
/// All SQL.
pub mod db;
/// Product rules and types.
pub mod domain;
/// The error type and how it is shown.
pub mod error;
/// The secret scanners' public keys, for leak reports' signatures.
pub mod leak_keys;
/// The outbox's mail courier: templates/mail rendered, sent by SMTP (lettre) or to the log.
pub mod mailer;
/// The metrics registry: counters and histograms on atomics, written in Prometheus' text format.
pub mod metrics;
/// OpenID Connect relying party: discovery, authorization requests, ID token validation.
pub mod oidc_client;
/// The router, its layers, serving and shutdown.
pub mod server;
/// Accepting connections and serving them with hyper (as `axum::serve`, wakes coalesced).
pub mod serving;
/// The shared vocabulary: roles, environments, answer codes, the public URL (a leaf).
pub mod vocabulary;
/// The portal.
pub mod web;
/// The outbox's webhook courier (HTTP, signatures, the SSRF guard).
pub mod webhook_courier;
