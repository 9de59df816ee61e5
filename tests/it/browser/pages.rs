//! Every page of the portal at 1280, 768 and 390 px: no sideways scrolling, no serious or
//! critical axe-core violation, a screenshot of each (`target/screenshots/page-*`).

use gatehouse::vocabulary::Code;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::fixtures::{busy_hour, log_calls};

#[sqlx::test]
async fn every_page_fits_phone_tablet_and_desktop_and_axe_finds_nothing_serious(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ada = Chrome::start().await;
    let mut problems = Vec::new();

    ada.goto(&app.url("/")).await;
    ada.expect_text("h1", "API keys").await;
    problems.extend(ada.check_page("page-landing").await);
    ada.goto(&app.url("/signin")).await;
    ada.expect_text("h1", "Sign in").await;
    problems.extend(ada.check_page("page-signin").await);

    let email = "ada.lovelace-with-a-long-address@analytical-engines.example.com";
    ada.goto(&app.url("/signup")).await;
    ada.fill("#email", email).await;
    ada.fill("#display_name", "Ada Lovelace").await;
    ada.fill("#password", "too short").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text("#password-error", "at least 15 characters")
        .await;
    problems.extend(ada.check_page("page-signup-error").await);
    ada.fill("#password", PASSWORD).await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".empty-state", "You do not belong to a tenant yet")
        .await;
    problems.extend(ada.check_page("page-home-empty").await);
    // Live keys need a confirmed address (following the mailed link is tested on its own).
    app.confirm_email(email).await;

    ada.goto(&app.url("/tenants/new")).await;
    problems.extend(ada.check_page("page-tenant-new").await);
    ada.fill("#name", "Acme Rockets International").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".flash", "is ready").await;
    problems.extend(ada.check_page("page-tenant-overview-new").await);
    let slug = "acme-rockets-international";

    ada.goto(&app.url(&format!("/t/{slug}/keys"))).await;
    problems.extend(ada.check_page("page-keys-empty").await);
    ada.goto(&app.url(&format!("/t/{slug}/keys/new"))).await;
    problems.extend(ada.check_page("page-key-new").await);
    ada.fill("#name", "Billing service for the invoicing pipeline")
        .await;
    ada.click("input[name=environment][value=live]").await;
    ada.click("input[name=access][value=full]").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".warning", "Copy this key now").await;
    problems.extend(ada.check_page("page-key-reveal").await);
    ada.click("form.test-key button[type=submit]").await;
    ada.expect_text(".test-result", "Accepted").await;
    problems.extend(ada.check_page("page-key-tested").await);

    ada.goto(&app.url(&format!("/t/{slug}/keys/new"))).await;
    ada.fill("#name", "CI").await;
    ada.click("input[name=environment][value=test]").await;
    ada.click("input[name=access][value=scopes]").await;
    ada.click("input[name=scopes][value=read]").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".warning", "Copy this key now").await;

    let billing: uuid::Uuid =
        sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE name <> 'CI'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    busy_hour(&app.pool, billing, Code::InsufficientScope, 3).await;
    ada.goto(&app.url(&format!("/t/{slug}/logs"))).await;
    problems.extend(ada.check_page("page-logs-empty").await);
    log_calls(&app.pool, billing).await;
    ada.goto(&app.url(&format!("/t/{slug}/logs"))).await;
    problems.extend(ada.check_page("page-logs").await);
    ada.goto(&app.url(&format!("/t/{slug}/logs?from=yesterday&address=nonsense")))
        .await;
    problems.extend(ada.check_page("page-logs-bad-filter").await);

    ada.goto(&app.url(&format!("/t/{slug}/keys"))).await;
    problems.extend(ada.check_page("page-keys").await);
    let key_page = format!("/t/{slug}/keys/{billing}");
    ada.goto(&app.url(&key_page)).await;
    problems.extend(ada.check_page("page-key").await);
    ada.goto(&app.url(&format!("{key_page}/usage"))).await;
    problems.extend(ada.check_page("page-key-usage").await);
    ada.goto(&app.url(&format!("{key_page}/roll"))).await;
    problems.extend(ada.check_page("page-key-roll").await);
    ada.goto(&app.url(&format!("{key_page}/revoke"))).await;
    problems.extend(ada.check_page("page-key-revoke").await);
    ada.goto(&app.url(&format!("{key_page}/edit"))).await;
    problems.extend(ada.check_page("page-key-edit").await);
    ada.goto(&app.url(&format!("{key_page}/disable"))).await;
    problems.extend(ada.check_page("page-key-disable").await);
    let request: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO key_request (tenant_id, requested_by, name, reason, scopes)
         SELECT k.tenant_id, k.created_by, 'Payments production service', 'Going live with the payments integration next Monday', '{read}'
         FROM api_key k WHERE k.api_key_id = $1
         RETURNING key_request_id",
    )
    .bind(billing)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    ada.goto(&app.url(&format!("/t/{slug}/key-requests/{request}")))
        .await;
    problems.extend(ada.check_page("page-key-request").await);
    ada.goto(&app.url(&format!("/t/{slug}/usage"))).await;
    problems.extend(ada.check_page("page-usage").await);
    ada.goto(&app.url(&format!("/t/{slug}/usage?range=1h")))
        .await;
    problems.extend(ada.check_page("page-usage-hour").await);
    ada.goto(&app.url(&format!("/t/{slug}"))).await;
    problems.extend(ada.check_page("page-tenant-overview").await);

    ada.goto(&app.url(&format!("/t/{slug}/members"))).await;
    let bob_email = "bartholomew.longname-builder@construction-company.example";
    ada.fill("#invite-email", bob_email).await;
    ada.select("#invite-role", "developer").await;
    ada.click("#invite button[type=submit]").await;
    ada.expect_text("h2", "Invitation for").await;
    problems.extend(ada.check_page("page-invitation-link").await);
    let link = ada.value("#invitation-link").await;

    let bob = Chrome::start().await;
    bob.goto(&link).await;
    bob.expect_text("h1", "Join Acme Rockets").await;
    problems.extend(bob.check_page("page-invitation-signed-out").await);
    bob.click("main a[href^='/signup']").await;
    bob.fill("#display_name", "Bartholomew Builder").await;
    bob.fill("#password", PASSWORD).await;
    bob.click("main form button[type=submit]").await;
    // Invitations need a confirmed address (following the mailed link is tested on its own).
    bob.expect_text("h1", "Join Acme Rockets").await;
    app.confirm_email(bob_email).await;
    bob.goto(&link).await;
    bob.expect_text("main form button[type=submit]", "Accept and join")
        .await;
    problems.extend(bob.check_page("page-invitation-accept").await);
    bob.click("main form button[type=submit]").await;
    bob.expect_text(".flash", "Welcome to Acme Rockets").await;
    bob.close().await;

    ada.goto(&app.url(&format!("/t/{slug}/members"))).await;
    problems.extend(ada.check_page("page-members").await);
    ada.goto(&app.url(&format!("/t/{slug}/audit"))).await;
    problems.extend(ada.check_page("page-audit").await);
    ada.goto(&app.url(&format!("/t/{slug}/api-access"))).await;
    problems.extend(ada.check_page("page-api-access").await);
    ada.fill("#name", "Billing backend").await;
    ada.click("input[name=scopes][value='keys:read']").await;
    ada.click("form[action$='/api-access'] button[type=submit]")
        .await;
    ada.expect_text("h2", "Billing backend").await;
    problems.extend(ada.check_page("page-api-token-created").await);
    ada.goto(&app.url(&format!("/t/{slug}/api-access"))).await;
    problems.extend(ada.check_page("page-api-access-list").await);
    ada.goto(&app.url(&format!("/t/{slug}/settings"))).await;
    ada.fill("#confirm", "not the slug").await;
    ada.click("form[action$='/settings/delete'] button[type=submit]")
        .await;
    ada.expect_text("#confirm-error", "Type the tenant").await;
    problems.extend(ada.check_page("page-settings-error").await);
    ada.goto(&app.url("/")).await;
    problems.extend(ada.check_page("page-home").await);
    ada.goto(&app.url("/account")).await;
    problems.extend(ada.check_page("page-account").await);
    ada.goto(&app.url("/docs/api")).await;
    ada.expect_text("h1", "Gatehouse API").await;
    problems.extend(ada.check_page("page-api-reference").await);
    ada.goto(&app.url("/no/such/page")).await;
    problems.extend(ada.check_page("page-404").await);
    ada.goto(&app.url(&format!("/t/{slug}/keys/{}", uuid::Uuid::new_v4())))
        .await;
    ada.expect_text("nav.tabs", "API keys").await;
    problems.extend(ada.check_page("page-404-in-tenant").await);
    ada.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[sqlx::test]
async fn the_page_walk_fails_on_a_console_error_or_a_resource_that_does_not_load(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let browser = Chrome::start().await;
    browser.goto(&app.url("/signin")).await;
    assert_eq!(browser.console_problems().await, Vec::<String>::new());

    browser
        .client
        .execute(
            r#"console.error("something broke");
            const img = document.createElement("img");
            img.src = "/static/no-such-image.png";
            img.alt = "";
            document.body.append(img);"#,
            vec![],
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let problems = browser.check_page("page-with-errors").await;
    browser.close().await;
    assert!(
        problems.iter().any(|p| p.contains("something broke")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("no-such-image.png") && p.contains("404")),
        "{problems:#?}"
    );
}
