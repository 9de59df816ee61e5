//! "Why was I refused?": a developer's calls through the real key API, then the Logs page and the
//! key page in Chromium.

use serde_json::json;
use sqlx::PgPool;

use crate::support::app::PASSWORD;
use crate::support::browser::Chrome;
use crate::support::key_api::{key_api, logged, verify};

#[sqlx::test]
async fn a_developer_sees_why_their_calls_were_refused(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = Chrome::start().await;
    ada.goto(&app.url("/signup")).await;
    ada.fill("#email", "ada@example.com").await;
    ada.fill("#display_name", "Ada").await;
    ada.fill("#password", PASSWORD).await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".empty-state", "You do not belong to a tenant yet")
        .await;
    ada.goto(&app.url("/tenants/new")).await;
    ada.fill("#name", "Acme").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".flash", "is ready").await;

    ada.goto(&app.url("/t/acme/logs")).await;
    ada.expect_text(".empty-row", "No calls recorded yet.")
        .await;

    ada.goto(&app.url("/t/acme/keys/new")).await;
    ada.fill("#name", "Checkout service").await;
    ada.click("input[name=environment][value=test]").await;
    ada.click("input[name=access][value=scopes]").await;
    ada.click("input[name=scopes][value=read]").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".warning", "Copy this key now").await;
    let key = ada.value("#new-key").await;
    assert!(key.starts_with("ak_test_"));

    // The platform's server checks the key for a write to /orders, then for a live route.
    let body = |extra: serde_json::Value| {
        let mut body = json!({ "key": key, "client_ip": "203.0.113.9",
            "request": { "method": "POST", "path": "/orders?draft=1", "user_agent": "checkout/2.0" } });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for extra in [
        json!({ "scopes": ["write"] }),
        json!({ "environment": "live" }),
    ] {
        let answer: serde_json::Value = verify(&app, body(extra)).await.json().await.unwrap();
        assert_eq!(answer["valid"], false);
    }
    logged(&app, 2).await;

    ada.goto(&app.url("/t/acme")).await;
    ada.click(".tabs a[href='/t/acme/logs']").await;
    ada.expect_text("table.calls", "The key lacks the write scope.")
        .await;
    ada.expect_text("table.calls", "A test key on a live route.")
        .await;
    ada.expect_text("table.calls", "POST /orders").await;
    ada.expect_text("table.calls", "203.0.113.9").await;
    ada.screenshot("40-logs").await;
    ada.resize(390, 844).await;
    ada.screenshot("40-logs-phone").await;
    ada.resize(1280, 900).await;

    ada.select("#code", "ENVIRONMENT_MISMATCH").await;
    ada.click("form.log-filters button[type=submit]").await;
    ada.expect_text("table.calls", "A test key on a live route.")
        .await;
    assert!(ada.path().await.contains("code=ENVIRONMENT_MISMATCH"));

    ada.click("table.calls td[data-label=Key] a").await;
    ada.expect_text(".recent-calls", "A test key on a live route.")
        .await;
    ada.screenshot("41-key-recent-calls").await;
    ada.close().await;
}
