//! A tenant with a webhook endpoint (signing secret and receiver credentials, both sealed) and a
//! real receiver: what the rotation and the restore drill check still works.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::key_api::VERIFIER;
use crate::support::management::{call, post, tenant_token};
use crate::support::webhooks::{Received, Receiver};

/// The key the test app seals with (`support/app.rs`'s default).
pub const OLD_KEY: &str = "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE=";
/// `new-test-secret-key-32-bytes!!!!`
pub const NEW_KEY: &str = "bmV3LXRlc3Qtc2VjcmV0LWtleS0zMi1ieXRlcyEhISE=";
/// `a-stranger-key-of-32-bytes!!!!!!`: seals nothing here.
pub const STRANGER_KEY: &str = "YS1zdHJhbmdlci1rZXktb2YtMzItYnl0ZXMhISEhISE=";

pub struct World {
    pub app: TestApp,
    pub token: String,
    pub endpoint: String,
    pub secret: String,
    pub receiver: Receiver,
}

pub async fn app(pool: PgPool, secret_key: &str) -> TestApp {
    TestApp::spawn_with(
        pool,
        &[
            ("GATEHOUSE_SECRET_KEY", secret_key),
            ("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
        ],
        |config| config.outbox_poll = Duration::from_millis(50),
    )
    .await
}

impl World {
    /// Tenant `acme`, a tenant token, and an endpoint with bearer credentials at a receiver.
    pub async fn build(pool: PgPool, secret_key: &str) -> Self {
        let app = app(pool.clone(), secret_key).await;
        let acme = Tenant::create(&pool, "acme").await;
        let scopes = ["webhooks:read", "webhooks:write", "keys:write"];
        let token = tenant_token(&pool, &acme, &scopes).await;
        let receiver = Receiver::start().await;
        let created = post(
            &app,
            "/v1/tenants/acme/webhooks",
            &token,
            json!({ "name": "Billing", "url": receiver.url, "environment": "live",
                    "auth": { "kind": "bearer", "token": "receiver-token-123" } }),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
        Self {
            app,
            token,
            endpoint: created.body["endpoint"]["id"].as_str().unwrap().to_owned(),
            secret: created.body["secret"].as_str().unwrap().to_owned(),
            receiver,
        }
    }

    /// The same world served by a new instance (the old one stopped) sealing with `secret_key`,
    /// on `pool` (a restored database), or on the same database with [`World::restart`].
    pub async fn restart_on(self, pool: PgPool, secret_key: &str) -> Self {
        let Self {
            app: old,
            token,
            endpoint,
            secret,
            receiver,
        } = self;
        old.stop().await;
        Self {
            app: app(pool, secret_key).await,
            token,
            endpoint,
            secret,
            receiver,
        }
    }

    pub async fn restart(self, secret_key: &str) -> Self {
        let pool = self.app.pool.clone();
        self.restart_on(pool, secret_key).await
    }

    /// Asks for a test event and waits for it at the receiver.
    pub async fn send_test(&self) -> Received {
        let sent = call(
            &self.app,
            Method::POST,
            &format!("/v1/tenants/acme/webhooks/{}/test", self.endpoint),
            &self.token,
            None,
        )
        .await;
        assert_eq!(sent.status, 202, "{}", sent.body);
        self.receiver.event("webhook.test").await
    }
}
