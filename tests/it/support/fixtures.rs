//! Fixtures for the key API tests: a tenant, keys made through the domain's own `create_key`, and
//! a Gatehouse configured with a verifier token.

use std::net::IpAddr;

use gatehouse::domain::keys::{self, Environment, KeySettings};
use gatehouse::domain::tenants::{Actor, Role};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::app::TestApp;

pub const VERIFIER: &str = "verifier-token-for-tests-0001";
pub const OTHER_VERIFIER: &str = "second-verifier-token-0002";

/// A Gatehouse that accepts `VERIFIER` and `OTHER_VERIFIER`, plus `env`.
pub async fn key_api(pool: PgPool, env: &[(&str, &str)]) -> TestApp {
    let tokens = format!("{VERIFIER},{OTHER_VERIFIER}");
    let mut vars = vec![("GATEHOUSE_VERIFIER_TOKENS", tokens.as_str())];
    vars.extend_from_slice(env);
    TestApp::spawn_with(pool, &vars, |_| {}).await
}

pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub admin: Uuid,
}

impl Tenant {
    pub async fn create(pool: &PgPool, slug: &str) -> Self {
        let admin: Uuid = sqlx::query_scalar(
            "INSERT INTO app_user (email, display_name) VALUES ($1, 'Admin') RETURNING app_user_id",
        )
        .bind(format!("admin@{slug}.example"))
        .fetch_one(pool)
        .await
        .unwrap();
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO tenant (slug, name) VALUES ($1, $1) RETURNING tenant_id",
        )
        .bind(slug)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO membership (tenant_id, app_user_id, role) VALUES ($1, $2, 'admin')",
        )
        .bind(id)
        .bind(admin)
        .execute(pool)
        .await
        .unwrap();
        Self {
            id,
            slug: slug.to_owned(),
            admin,
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.admin,
            request_id: "test".into(),
            client_ip: IpAddr::from([127, 0, 0, 1]),
            user_agent: None,
        }
    }

    /// A new key; returns the secret and the key's id.
    pub async fn key(
        &self,
        pool: &PgPool,
        environment: Environment,
        scopes: &[&str],
        rate_limit: u32,
    ) -> (String, Uuid) {
        let settings = KeySettings {
            name: format!("{environment} key"),
            environment,
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            expires_at: None,
            rate_limit,
        };
        let (key, id) = keys::create_key(pool, "ak", self.id, &settings, &self.actor())
            .await
            .unwrap();
        (key.expose().to_owned(), id)
    }

    pub async fn revoke(&self, pool: &PgPool, key_id: Uuid) {
        keys::revoke_key(pool, "ak", self.id, key_id, Role::Admin, &self.actor())
            .await
            .unwrap()
            .unwrap();
    }

    /// Rolls a key with a grace of `grace`; returns the successor's secret.
    pub async fn roll(&self, pool: &PgPool, key_id: Uuid, grace: time::Duration) -> String {
        let rolled = keys::roll_key(
            pool,
            "ak",
            self.id,
            key_id,
            grace,
            Role::Admin,
            &self.actor(),
        )
        .await
        .unwrap()
        .unwrap();
        rolled.key.expose().to_owned()
    }
}

pub async fn expire(pool: &PgPool, key_id: Uuid) {
    sqlx::query(
        "UPDATE api_key SET expires_at = now() - interval '1 second' WHERE api_key_id = $1",
    )
    .bind(key_id)
    .execute(pool)
    .await
    .unwrap();
}

/// A well-formed key (right prefix, length and checksum) that was never issued.
pub fn unknown_key() -> String {
    keys::NewKey::generate("ak", Environment::Live)
        .expose()
        .to_owned()
}

/// POSTs `body` to /v1/keys/verify with `VERIFIER`.
pub async fn verify(app: &TestApp, body: Value) -> reqwest::Response {
    app.client()
        .post(app.url("/v1/keys/verify"))
        .bearer_auth(VERIFIER)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `code` the verify endpoint gives `key` with no requirements (asserting a 200).
pub async fn code_of(app: &TestApp, key: &str) -> String {
    let response = verify(app, json!({ "key": key })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["code"].as_str().unwrap().to_owned()
}

/// Forward-auth as a gateway calls it: `Gatehouse-Verifier` plus the client's key header.
pub async fn authorize(
    app: &TestApp,
    query: &str,
    key_header: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = app
        .client()
        .get(app.url(&format!("/v1/authorize{query}")))
        .header("Gatehouse-Verifier", VERIFIER);
    if let Some((name, value)) = key_header {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// Waits while the current minute has fewer than `seconds` left, so a test's requests fall in
/// one rate-limit window.
pub async fn keep_within_one_minute(seconds: i64) {
    let left = 60 - OffsetDateTime::now_utc().unix_timestamp().rem_euclid(60);
    if left < seconds {
        tokio::time::sleep(std::time::Duration::from_secs(
            u64::try_from(left).unwrap() + 1,
        ))
        .await;
    }
}
