//! Forms as a person sees them in Chromium: lists of choices one a line (or an even grid) with
//! each label's text in one run, the key form's date only when a date is chosen, a server's error
//! gone once the browser stops the next submission, the invite error by its field, the last
//! admin's members page, the signed-out notice, and the webhook delivery log at phone width.
//! Screenshots: `target/screenshots/forms-*`.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::webhooks::Receiver;

/// Ada signs up and makes the tenant Acme (`acme`), of which she is the only admin.
async fn ada_with_acme(app: &TestApp) -> Chrome {
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
    chrome
}

async fn run(chrome: &Chrome, script: &str) -> Value {
    chrome.client.execute(script, vec![]).await.unwrap()
}

/// Every `label.choice` on the page whose text is not one run beside its box (the label's
/// flex layout would set each piece apart as a column).
async fn split_labels(chrome: &Chrome) -> Vec<String> {
    let found = run(
        chrome,
        r##"return [...document.querySelectorAll("label.choice")].filter((label) =>
             [...label.childNodes].filter((node) =>
               node.nodeType === Node.ELEMENT_NODE ? node.tagName !== "INPUT"
                 : node.nodeType === Node.TEXT_NODE && node.textContent.trim() !== "").length > 1
           ).map((label) => label.textContent.trim());"##,
    )
    .await;
    serde_json::from_value(found).unwrap()
}

/// The number of choices in each row of the `.scope-list` the selector names, top to bottom,
/// and how many distinct left edges they have.
async fn rows_of(chrome: &Chrome, list: &str) -> (Vec<u64>, usize) {
    let found = run(
        chrome,
        &format!(
            r##"const boxes = [...document.querySelectorAll("{list} label.choice")]
                 .map((label) => label.getBoundingClientRect());
               const rows = new Map();
               for (const box of boxes) {{
                 const top = Math.round(box.top);
                 rows.set(top, (rows.get(top) || 0) + 1);
               }}
               return [[...rows.keys()].sort((a, b) => a - b).map((top) => rows.get(top)),
                       new Set(boxes.map((box) => Math.round(box.left))).size];"##
        ),
    )
    .await;
    serde_json::from_value(found).unwrap()
}

async fn displayed(chrome: &Chrome, css: &str) -> bool {
    run(
        chrome,
        &format!(r##"return document.querySelector("{css}").offsetParent !== null;"##),
    )
    .await
        == json!(true)
}

#[sqlx::test]
async fn choices_sit_one_a_line_or_in_an_even_grid_and_their_labels_read_as_one_line(pool: PgPool) {
    let scopes = "read,write,billing:read,billing:write,orders:read,orders:write,admin";
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SCOPES", scopes)], |_| {}).await;
    let chrome = ada_with_acme(&app).await;
    let mut problems = Vec::new();

    chrome.goto(&app.url("/t/acme/webhooks/new")).await;
    assert_eq!(split_labels(&chrome).await, Vec::<String>::new());
    // Event types (each with a description): one a line.
    let (rows, lefts) = rows_of(&chrome, ".scope-list").await;
    assert!(rows.iter().all(|&n| n == 1), "one a line: {rows:?}");
    assert_eq!(lefts, 1, "all start at the same edge");
    // "All events, including…": no gap between the bold words and the rest.
    let gap = run(
        &chrome,
        r##"const strong = [...document.querySelectorAll("label.choice strong")]
             .find((s) => s.textContent === "All events");
           const range = document.createRange();
           range.selectNodeContents(strong.nextSibling);
           const text = range.getClientRects()[0], words = strong.getBoundingClientRect();
           return [text.left - words.right, Math.abs(text.top - words.top)];"##,
    )
    .await;
    assert!(gap[0].as_f64().unwrap() < 1.0, "{gap}");
    assert!(gap[1].as_f64().unwrap() < 1.0, "on one line: {gap}");
    problems.extend(chrome.check_page("forms-webhook-new").await);

    // The key form: scopes in an even grid; the date only once "On a date…" is chosen.
    chrome.goto(&app.url("/t/acme/keys/new")).await;
    assert_eq!(split_labels(&chrome).await, Vec::<String>::new());
    let (rows, _) = rows_of(&chrome, ".scope-list").await;
    assert!(
        rows.len() > 1 && rows[..rows.len() - 1].iter().all(|&n| n == rows[0]),
        "every row but the last as full as the first: {rows:?}"
    );
    assert!(
        !displayed(&chrome, "#expiry_date").await,
        "hidden under Never"
    );
    problems.extend(chrome.check_page("forms-key-new").await);
    chrome.select("#expiry", "date").await;
    assert!(displayed(&chrome, "#expiry_date").await, "shown for a date");
    problems.extend(chrome.check_page("forms-key-new-date").await);
    chrome.select("#expiry", "never").await;
    assert!(!displayed(&chrome, "#expiry_date").await);
    chrome.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[sqlx::test]
async fn a_servers_error_goes_when_the_browser_stops_the_next_submission(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let chrome = ada_with_acme(&app).await;
    chrome.goto(&app.url("/account")).await;
    chrome
        .fill("#current_password", "not my password at all")
        .await;
    chrome
        .fill("#new_password", "a brand new passphrase here")
        .await;
    chrome
        .click("form[action='/account/password'] button[type=submit]")
        .await;
    chrome
        .expect_text("#current_password-error", "password")
        .await;
    chrome.screenshot("forms-password-server-error").await;
    // Too short: the browser refuses the submission with its own bubble.
    chrome.fill("#current_password", PASSWORD).await;
    chrome.fill("#new_password", "short").await;
    chrome
        .click("form[action='/account/password'] button[type=submit]")
        .await;
    let left = run(
        &chrome,
        r##"const form = document.querySelector("form[action='/account/password']");
           return [form.querySelectorAll(".field-error").length,
                   form.querySelectorAll("[aria-invalid]").length,
                   document.querySelector("#new_password").validity.tooShort];"##,
    )
    .await;
    assert_eq!(
        left,
        json!([0, 0, true]),
        "only the browser's message is left"
    );
    chrome.screenshot("forms-password-bubble").await;
    chrome.close().await;
}

#[sqlx::test]
async fn the_invite_error_the_last_admin_and_signing_out_read_right(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let chrome = ada_with_acme(&app).await;
    let mut problems = Vec::new();
    chrome.goto(&app.url("/t/acme/members")).await;
    chrome.click(".invite-form button[type=submit]").await;
    chrome
        .expect_text(
            "#invite-error",
            "Enter the email address of the person to invite",
        )
        .await;
    // By the field: the message is right under the email box.
    let below = run(
        &chrome,
        r##"const field = document.querySelector("#invite-email").getBoundingClientRect();
           const error = document.querySelector("#invite-error").getBoundingClientRect();
           return [error.top - field.bottom, Math.abs(error.left - field.left)];"##,
    )
    .await;
    assert!(below[0].as_f64().unwrap() < 16.0, "{below}");
    assert!(below[1].as_f64().unwrap() < 1.0, "{below}");
    assert!(
        !chrome
            .client
            .source()
            .await
            .unwrap()
            .contains("href=\"/t/acme/leave\""),
        "the last admin is not offered Leave"
    );
    problems.extend(chrome.check_page("forms-members-invite-error").await);

    chrome.click("form[action='/signout'] button").await;
    chrome.expect_text(".flash", "You are signed out.").await;
    problems.extend(chrome.check_page("forms-signed-out").await);
    chrome.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[sqlx::test]
async fn the_delivery_log_fits_a_phone_with_its_body_open(pool: PgPool) {
    let app = TestApp::spawn_with(
        pool,
        &[("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true")],
        |config| {
            config.outbox_poll = std::time::Duration::from_millis(100);
        },
    )
    .await;
    let receiver = Receiver::start().await;
    let chrome = ada_with_acme(&app).await;
    chrome.goto(&app.url("/t/acme/webhooks/new")).await;
    chrome.fill("#name", "Billing sync").await;
    chrome
        .fill("#url", &format!("{}?token=abc123", receiver.url))
        .await;
    chrome.click("main form button[type=submit]").await;
    chrome
        .expect_text(".warning", "Copy this signing secret now")
        .await;
    chrome.click("main a.button.secondary").await;
    chrome.click(".page-head form button[type=submit]").await;
    receiver.event("webhook.test").await;
    let path = chrome.path().await;
    for _ in 0..50 {
        chrome.goto(&app.url(&path)).await;
        if chrome.client.source().await.unwrap().contains(" ms</td>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    chrome.click("details.payload summary").await;
    chrome
        .expect_text("details.payload pre", "\"webhook.test\"")
        .await;
    let mut problems = chrome.check_page("forms-webhook-log").await;
    // Nothing of the log is cut off inside its card (the card would scroll sideways).
    for width in [1280, 768, 390] {
        chrome.resize(width, 844).await;
        let sizes = run(
            &chrome,
            r##"const card = document.querySelector("table.deliveries").closest(".card");
               return [card.scrollWidth, card.clientWidth];"##,
        )
        .await;
        assert!(
            sizes[0].as_u64() <= sizes[1].as_u64(),
            "at {width} px the log is wider than its card: {sizes}"
        );
        run(
            &chrome,
            r##"document.querySelector("#deliveries").scrollIntoView();"##,
        )
        .await;
        chrome
            .screenshot(&format!("forms-webhook-log-open-{width}"))
            .await;
    }
    // The list of endpoints too.
    chrome.goto(&app.url("/t/acme/webhooks")).await;
    for width in [1280, 768, 390] {
        chrome.resize(width, 844).await;
        let sizes = run(
            &chrome,
            r##"const card = document.querySelector("table.webhooks").closest(".card");
               return [card.scrollWidth, card.clientWidth];"##,
        )
        .await;
        assert!(
            sizes[0].as_u64() <= sizes[1].as_u64(),
            "at {width} px the endpoints are wider than their card: {sizes}"
        );
    }
    problems.extend(chrome.check_page("forms-webhooks").await);
    chrome.resize(1280, 900).await;
    chrome.goto(&app.url(&format!("{path}?failed=1"))).await;
    problems.extend(chrome.check_page("forms-webhook-log-failed").await);
    chrome.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}
