//! Key controls in Chromium: editing a key (with a bad allowlist first), disabling and enabling
//! it, and setting the tenant's key policy; every page checked at 1280, 768 and 390 px
//! (`target/screenshots/controls-*`).

use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::key_api::{code_of, key_api};

#[sqlx::test]
async fn an_admin_edits_disables_and_enables_a_key_and_sets_the_key_policy(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let api = key_api(pool, &[]).await;
    let ada = Chrome::start().await;
    let mut problems = Vec::new();

    ada.goto(&app.url("/signup")).await;
    ada.fill("#email", "ada@example.com").await;
    ada.fill("#display_name", "Ada Lovelace").await;
    ada.fill("#password", PASSWORD).await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text("h1", "Welcome").await;
    app.confirm_email("ada@example.com").await;
    ada.goto(&app.url("/tenants/new")).await;
    ada.fill("#name", "Acme").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".flash", "Acme is ready").await;

    ada.goto(&app.url("/t/acme/keys/new")).await;
    ada.fill("#name", "Billing service").await;
    ada.click("input[name=environment][value=live]").await;
    ada.click("input[name=access][value=full]").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".warning", "Copy this key now").await;
    let secret = ada.value("#new-key").await;
    ada.goto(&app.url("/t/acme/keys")).await;
    ada.click("a.mono[href^='/t/acme/keys/']").await;
    ada.expect_text("h2.key-title", "Billing service").await;

    // Edit: a bad allowlist entry is named, and what was typed stays.
    ada.click("a[href$='/edit']").await;
    ada.expect_text("h2", "Edit key").await;
    ada.fill(
        "#note",
        "Used by the invoicing job. Ask Ada before changing.",
    )
    .await;
    ada.fill("#ip_allowlist", "203.0.113.0/24\n2001:db8::/32\n10.0.0.300")
        .await;
    ada.fill("#meta", r#"{"plan": "pro", "customer": "cus_42"}"#)
        .await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text("#ip_allowlist-error", "\"10.0.0.300\" is not an IP address")
        .await;
    assert!(ada.value("#note").await.contains("Ask Ada before changing"));
    problems.extend(ada.check_page("controls-key-edit-error").await);
    ada.fill("#ip_allowlist", "203.0.113.7/24\n2001:DB8::/32")
        .await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".flash", "Key saved").await;
    ada.expect_text(".facts", "203.0.113.0/24, 2001:db8::/32")
        .await;
    ada.expect_text("pre.meta", "cus_42").await;
    problems.extend(ada.check_page("controls-key-edited").await);
    assert_eq!(code_of(&api, &secret).await, "IP_NOT_ALLOWED");

    // Disable, after a confirmation; then enable again.
    ada.click("a[href$='/disable']").await;
    ada.expect_text("h2", "Disable Billing service?").await;
    problems.extend(ada.check_page("controls-key-disable").await);
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".flash", "Key disabled").await;
    ada.expect_text("h2.key-title", "disabled").await;
    problems.extend(ada.check_page("controls-key-disabled").await);
    ada.click("form[action$='/enable'] button[type=submit]")
        .await;
    ada.expect_text(".flash", "Key enabled").await;

    // The key policy, on the settings page; the new-key form follows it.
    ada.goto(&app.url("/t/acme/settings")).await;
    ada.fill("#max_key_lifetime_days", "30").await;
    ada.fill("#default_ip_allowlist", "198.51.100.0/24").await;
    ada.click("input[name=live_keys][value=approval]").await;
    ada.click("form[action$='/settings/keys'] button[type=submit]")
        .await;
    ada.expect_text(".flash", "Key policy saved").await;
    problems.extend(ada.check_page("controls-settings-policy").await);
    ada.goto(&app.url("/t/acme/keys")).await;
    ada.expect_text("table", "over policy").await;
    problems.extend(ada.check_page("controls-keys-over-policy").await);
    ada.goto(&app.url("/t/acme/keys/new")).await;
    assert_eq!(ada.value("#ip_allowlist").await, "198.51.100.0/24");
    ada.expect_text("main form", "must expire within 30 days")
        .await;
    problems.extend(ada.check_page("controls-key-new-policy").await);
    ada.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}
