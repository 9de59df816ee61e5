//! A tenant's members and keys (`/t/{slug}/…`), walked in Chromium.

use gatehouse::vocabulary::Code;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::fixtures::busy_hour;
use crate::support::smtp::MailSink;

#[sqlx::test]
async fn an_admin_invites_a_colleague_who_joins_then_is_demoted_and_removed(pool: PgPool) {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    let alice = Chrome::start().await;
    let bob = Chrome::start().await;

    alice.goto(&app.url("/signup")).await;
    alice.fill("#email", "alice@example.com").await;
    alice.fill("#display_name", "Alice Admin").await;
    alice.fill("#password", PASSWORD).await;
    alice.click("main form button[type=submit]").await;
    alice
        .expect_text(".empty-state", "You do not belong to a tenant yet")
        .await;
    alice.screenshot("10-home-no-tenants").await;

    alice.click(".empty-state a.button").await;
    alice.expect_text("h1", "New tenant").await;
    alice.fill("#name", "Acme Rockets").await;
    alice.click("main form button[type=submit]").await;
    alice.expect_text(".flash", "Acme Rockets is ready").await;
    alice.screenshot("11-tenant-overview").await;

    alice.click(".tabs a[href='/t/acme-rockets/members']").await;
    alice.expect_text(".card-head", "Members").await;
    alice.fill("#invite-email", "bob@example.com").await;
    alice.select("#invite-role", "developer").await;
    alice.click("#invite button[type=submit]").await;
    alice
        .expect_text("h2", "Invitation for bob@example.com")
        .await;
    alice.screenshot("12-invitation-link").await;
    let link = alice.value("#invitation-link").await;
    assert!(link.starts_with(&format!("{}/invitations/", app.base)));

    bob.goto(&link).await;
    bob.expect_text("h1", "Join Acme Rockets").await;
    bob.screenshot("13-invitation-signed-out").await;
    bob.click("main a[href^='/signup']").await;
    bob.expect_text("h1", "Create your account").await;
    assert_eq!(bob.value("#email").await, "bob@example.com");
    bob.fill("#display_name", "Bob Builder").await;
    bob.fill("#password", PASSWORD).await;
    bob.click("main form button[type=submit]").await;
    // An unconfirmed address cannot accept: Bob follows the link mailed to him, then comes back.
    bob.expect_text(".alert", "Confirm your email address first")
        .await;
    bob.screenshot("13b-invitation-unverified").await;
    let confirm = sink.mail("bob@example.com", "Confirm your email").await;
    bob.goto(&confirm.link(&app.url("/account/verify?token=")))
        .await;
    bob.expect_text(".flash", "your email address is confirmed")
        .await;
    bob.goto(&link).await;
    bob.expect_text("main form button[type=submit]", "Accept and join")
        .await;
    bob.screenshot("14-invitation-accept").await;
    bob.click("main form button[type=submit]").await;
    bob.expect_text(".flash", "Welcome to Acme Rockets").await;
    bob.expect_text("#role", "Your role: Developer").await;

    alice.goto(&app.url("/t/acme-rockets/members")).await;
    alice.expect_text("tbody", "Bob Builder").await;
    alice.select("tbody tr:nth-child(2) select", "viewer").await;
    alice.click("tbody tr:nth-child(2) .role-form button").await;
    alice.expect_text(".flash", "Role changed to Viewer").await;
    alice.screenshot("15-members").await;

    bob.goto(&app.url("/t/acme-rockets")).await;
    bob.expect_text("#role", "Your role: Viewer").await;

    alice.click("tbody tr:nth-child(2) a.danger-link").await;
    alice.expect_text("h2", "Remove Bob Builder?").await;
    alice.screenshot("16-remove-confirm").await;
    alice.click("main form button.danger").await;
    alice.expect_text(".flash", "Member removed").await;

    bob.goto(&app.url("/t/acme-rockets")).await;
    bob.expect_text("h1", "Not Found").await;

    alice.click(".tabs a[href='/t/acme-rockets/audit']").await;
    alice.expect_text("table", "member.removed").await;
    alice.screenshot("17-audit-log").await;

    alice.close().await;
    bob.close().await;
}

#[sqlx::test]
async fn a_developer_creates_copies_rolls_and_revokes_keys(pool: PgPool) {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    let chrome = Chrome::start().await;
    chrome.goto(&app.url("/signup")).await;
    chrome.fill("#email", "ada@example.com").await;
    chrome.fill("#display_name", "Ada Lovelace").await;
    chrome.fill("#password", PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text("h1", "Welcome").await;
    // Live keys need a confirmed address.
    let confirm = sink.mail("ada@example.com", "Confirm your email").await;
    chrome
        .goto(&confirm.link(&app.url("/account/verify?token=")))
        .await;
    chrome.expect_text("h1", "Your account").await;
    chrome.expect_text(".badge", "verified").await;
    chrome.goto(&app.url("/tenants/new")).await;
    chrome.fill("#name", "Acme").await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text(".flash", "Acme is ready").await;

    // Case-sensitive text is shown as it is, never in capitals.
    chrome.expect_text(".eyebrow code", "acme").await;
    chrome.click(".tabs a[href='/t/acme/keys']").await;
    chrome.expect_text(".empty-state", "No API keys yet").await;
    chrome.screenshot("20-keys-empty").await;

    let mut secrets = Vec::new();
    for (name, environment) in [("Billing service", "live"), ("CI pipeline", "test")] {
        chrome.goto(&app.url("/t/acme/keys/new")).await;
        chrome.expect_text("h2", "New API key").await;
        chrome.fill("#name", name).await;
        chrome
            .click(&format!("input[name=environment][value={environment}]"))
            .await;
        if environment == "live" {
            chrome.click("input[name=access][value=full]").await;
        } else {
            chrome.click("input[name=access][value=scopes]").await;
            chrome.click("input[name=scopes][value=read]").await;
        }
        if environment == "live" {
            chrome.screenshot("21-key-new").await;
        }
        chrome.click("main form button[type=submit]").await;
        chrome.expect_text(".warning", "Copy this key now").await;
        if environment == "live" {
            chrome.screenshot("22-key-reveal").await;
        }
        chrome.click("[data-copy=new-key]").await;
        chrome.expect_text("[data-copy=new-key]", "Copied").await;
        let copied = chrome
            .client
            .execute_async(
                "navigator.clipboard.readText().then(arguments[0], () => arguments[0](''))",
                vec![],
            )
            .await
            .unwrap();
        let shown = chrome.value("#new-key").await;
        assert!(shown.starts_with(&format!("ak_{environment}_")));
        if let Some(copied) = copied.as_str().filter(|text| !text.is_empty()) {
            assert_eq!(copied, shown, "the copy button copies the key");
        }
        secrets.push(shown);
    }

    chrome.goto(&app.url("/t/acme/keys")).await;
    let live_masked = format!("ak_live_••••{}", &secrets[0][secrets[0].len() - 4..]);
    chrome.expect_text("table", &live_masked).await;
    chrome.screenshot("23-keys-list").await;

    // Reloading the reveal page never shows the key again: going back re-sends the form.
    chrome.client.back().await.unwrap();
    let source = chrome.client.source().await.unwrap();
    assert!(!source.contains(&secrets[1]));

    chrome.goto(&app.url("/t/acme/keys")).await;
    chrome.click("tbody tr:nth-child(2) a.mono").await;
    chrome
        .click("a.button[href*='/keys/'][href$='/usage']")
        .await;
    chrome.expect_text(".eyebrow a", &live_masked).await;
    chrome.goto(&app.url("/t/acme/keys")).await;
    chrome.click("a.mono[href^='/t/acme/keys/']").await;
    chrome.expect_text("h2.key-title", "CI pipeline").await;
    chrome.goto(&app.url("/t/acme/keys")).await;
    chrome.click("tbody tr:nth-child(2) a.mono").await;
    chrome.expect_text("h2.key-title", "Billing service").await;
    chrome.screenshot("24-key-page").await;
    chrome.click("a[href$='/roll']").await;
    chrome.expect_text("h2", "Roll Billing service?").await;
    chrome.select("#grace", "1h").await;
    chrome.screenshot("25-key-roll").await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text(".card .eyebrow", "Key rolled").await;
    let rolled = chrome.value("#new-key").await;
    assert!(rolled.starts_with("ak_live_") && rolled != secrets[0]);
    chrome.click("main a[href*='/keys/']").await;
    chrome.expect_text(".timeline", "by rolling").await;
    chrome.click(".timeline a.mono").await;
    chrome.expect_text(".timeline", "Rolled").await;
    chrome.expect_text("h2.key-title", "rolled").await;
    chrome.screenshot("26-key-rolled").await;

    chrome.click("a.button.danger").await;
    chrome.expect_text("h2", "Revoke Billing service?").await;
    chrome.screenshot("27-key-revoke-confirm").await;
    chrome.click("main form button.danger").await;
    chrome.expect_text(".flash", "Key revoked").await;
    chrome.goto(&app.url("/t/acme/keys")).await;
    chrome.expect_text("table", "revoked").await;
    chrome.screenshot("28-keys-after").await;

    // Usage, as the metering flush would have recorded it.
    let ci: uuid::Uuid =
        sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE name = 'CI pipeline'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    busy_hour(&app.pool, ci, Code::Revoked, 4).await;
    chrome.click(".tabs a[href='/t/acme/usage']").await;
    chrome.expect_text("h2", "Verifications").await;
    chrome.click(".segmented a[href$='range=1h']").await;
    chrome.expect_text("h2", "Last hour").await;
    chrome.screenshot("29-usage-hour").await;
    chrome.goto(&app.url("/t/acme")).await;
    chrome.expect_text(".big-figures", "verifications").await;
    chrome.screenshot("30-tenant-overview-usage").await;
    chrome.close().await;
}
