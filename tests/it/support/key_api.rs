//! A client of the key API (`/v1/…`) as a service or a gateway calls it, with its verifier tokens.

use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;

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

/// Waits until the request log holds `rows` records (the writer flushes every second).
pub async fn logged(app: &TestApp, rows: i64) {
    for _ in 0..100 {
        if app.count("request_log").await >= rows {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the request log holds {} records, not {rows}",
        app.count("request_log").await
    );
}
