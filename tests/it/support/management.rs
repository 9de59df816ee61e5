//! A client of the management API (`/v1/tenants…`) as the platform's backend calls it: an
//! operator token, or a tenant management token made as the portal makes it.

use gatehouse::domain::management::{self, TokenInput};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::key_api::VERIFIER;

pub const OPERATOR: &str = "operator-token-for-tests-0001";

/// A Gatehouse with `OPERATOR` as operator token and the key API's `VERIFIER`, plus `env`.
pub async fn management_api(pool: PgPool, env: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("GATEHOUSE_OPERATOR_TOKENS", OPERATOR),
        ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
    ];
    vars.extend_from_slice(env);
    TestApp::spawn_with(pool, &vars, |_| {}).await
}

/// An answer: status, JSON body (`Null` when there is none) and headers.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    /// The `error.code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Calls `method path` with `token` and, when given, a JSON body.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Answer {
    send(app, method, path, token, body, None).await
}

/// As `call`, with an `Idempotency-Key`.
pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Answer {
    let mut request = app
        .client()
        .request(method, app.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

pub async fn get(app: &TestApp, path: &str, token: &str) -> Answer {
    call(app, Method::GET, path, token, None).await
}

pub async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Answer {
    call(app, Method::POST, path, token, Some(body)).await
}

pub async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> Answer {
    call(app, Method::PATCH, path, token, Some(body)).await
}

/// A tenant management token of `tenant` with `scopes`, made by its admin as the portal does.
pub async fn tenant_token(pool: &PgPool, tenant: &Tenant, scopes: &[&str]) -> String {
    let input = TokenInput {
        name: format!("{} backend", tenant.slug),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        expiry: "never".into(),
    };
    management::create_token(pool, "ak", tenant.id, &input, &tenant.actor())
        .await
        .unwrap()
        .unwrap()
        .secret
}

/// A pool as `gatehouse::db::connect` makes it (its acquire timeout), of `size` connections to
/// the test's database.
pub async fn small_pool(pool: &PgPool, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(gatehouse::db::ACQUIRE_TIMEOUT)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap()
}
