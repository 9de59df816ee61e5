//! A tenant admin registers a webhook endpoint in Chromium, copies its secret, sends a test event
//! and reads the delivery log, then deletes the endpoint; screenshots at 1280 and 390 px wide.

use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::webhooks::{Receiver, verify_with_library};

#[sqlx::test]
async fn an_admin_registers_an_endpoint_and_its_test_event_arrives_signed(pool: PgPool) {
    let app = TestApp::spawn_with(
        pool,
        &[("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true")],
        |config| {
            config.outbox_poll = std::time::Duration::from_millis(100);
        },
    )
    .await;
    let receiver = Receiver::start().await;
    let chrome = Chrome::start().await;
    chrome.goto(&app.url("/signup")).await;
    chrome.fill("#email", "ada@example.com").await;
    chrome.fill("#display_name", "Ada").await;
    chrome.fill("#password", PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome.goto(&app.url("/tenants/new")).await;
    chrome.fill("#name", "Acme").await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text(".flash", "Acme is ready").await;

    chrome.click(".tabs a[href='/t/acme/webhooks']").await;
    chrome
        .expect_text(".empty-state", "No webhook endpoints yet")
        .await;
    chrome.screenshot("60-webhooks-empty").await;
    chrome.click(".empty-state a.button").await;
    chrome.fill("#name", "Billing sync").await;
    chrome.fill("#url", &receiver.url).await;
    chrome.screenshot("61-webhook-new").await;
    chrome.click("main form button[type=submit]").await;
    chrome
        .expect_text(".warning", "Copy this signing secret now")
        .await;
    chrome.screenshot("62-webhook-secret").await;
    let secret = chrome.value("#signing-secret").await;
    assert!(secret.starts_with("whsec_"));

    chrome.click("main a.button.secondary").await;
    chrome.click(".page-head form button[type=submit]").await;
    chrome.expect_text(".flash", "Test event queued").await;
    let delivery = receiver.event("webhook.test").await;
    verify_with_library(&secret, &delivery).expect("the library accepts the test event");
    // The log shows the attempt once it is recorded.
    let path = chrome.path().await;
    for _ in 0..50 {
        chrome.goto(&app.url(&path)).await;
        if chrome.client.source().await.unwrap().contains("ms</td>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    chrome.expect_text("table.deliveries", "webhook.test").await;
    chrome.screenshot("63-webhook-log").await;
    chrome.client.set_window_size(390, 844).await.unwrap();
    chrome.screenshot("63-webhook-log-390").await;
    chrome.goto(&app.url("/t/acme/webhooks")).await;
    chrome.screenshot("60-webhooks-390").await;
    chrome.goto(&app.url(&format!("{path}/edit"))).await;
    chrome.screenshot("61-webhook-edit-390").await;
    chrome.client.set_window_size(1280, 900).await.unwrap();
    chrome.goto(&app.url("/t/acme/webhooks")).await;
    chrome.screenshot("60-webhooks").await;

    // Deleting asks first, on a page of its own.
    chrome.goto(&app.url(&path)).await;
    chrome.screenshot("64-webhook-page").await;
    chrome.click(".page-head a.button.danger").await;
    chrome
        .expect_text(".confirm h2", "Delete Billing sync?")
        .await;
    let problems = chrome.check_page("65-webhook-delete").await;
    assert!(problems.is_empty(), "{problems:#?}");
    chrome.click(".confirm button[type=submit]").await;
    chrome
        .expect_text(".flash", "Endpoint Billing sync deleted")
        .await;
    chrome
        .expect_text(".empty-state", "No webhook endpoints yet")
        .await;
    chrome.close().await;
}
