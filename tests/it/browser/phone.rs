//! A tenant admin on a phone (390 px) and a tablet (768 px): every tenant tab and the header's Home
//! in sight at a glance, and the usage page's busiest keys and figures inside their cards.

use gatehouse::vocabulary::Code;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::fixtures::{busy_hour, log_calls};

#[sqlx::test]
async fn on_a_phone_every_tab_is_in_sight_and_no_card_hides_its_figures(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ada = Chrome::start().await;
    ada.goto(&app.url("/signup")).await;
    ada.fill("#email", "ada@example.com").await;
    ada.fill("#display_name", "Ada Lovelace").await;
    ada.fill("#password", PASSWORD).await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".empty-state", "You do not belong to a tenant yet")
        .await;
    ada.goto(&app.url("/tenants/new")).await;
    ada.fill("#name", "Acme Rockets International").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".flash", "is ready").await;
    let slug = "acme-rockets-international";
    ada.goto(&app.url(&format!("/t/{slug}/keys/new"))).await;
    ada.fill("#name", "Billing service").await;
    ada.click("input[name=environment][value=test]").await;
    ada.click("input[name=access][value=full]").await;
    ada.click("main form button[type=submit]").await;
    ada.expect_text(".warning", "Copy this key now").await;
    let key: uuid::Uuid = sqlx::query_scalar("SELECT api_key_id FROM api_key")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    busy_hour(&app.pool, key, Code::InsufficientScope, 3).await;
    log_calls(&app.pool, key).await;

    let mut problems = Vec::new();
    for (width, height) in [(390, 844), (768, 1000)] {
        ada.resize(width, height).await;
        for page in [
            "",
            "/keys",
            "/usage",
            "/logs",
            "/members",
            "/audit",
            "/settings",
        ] {
            ada.goto(&app.url(&format!("/t/{slug}{page}"))).await;
            let name = format!("{width}px /t/{slug}{page}");
            // An admin's nine tabs, and the way home.
            let tabs = ada.out_of_sight("nav.tabs a").await;
            problems.extend(tabs.into_iter().map(|tab| format!("{name}: tab {tab}")));
            let home = ada.out_of_sight("header nav a.home-link").await;
            problems.extend(home.into_iter().map(|link| format!("{name}: {link}")));
            let cut = ada.clipped(".card").await;
            problems.extend(cut.into_iter().map(|card| format!("{name}: card {card}")));
        }
        ada.goto(&app.url(&format!("/t/{slug}/usage"))).await;
        ada.expect_text(".card-head", "Busiest keys").await;
        ada.screenshot_whole(&format!("phone-usage-{width}"), width, height)
            .await;
        ada.goto(&app.url(&format!("/t/{slug}"))).await;
        ada.screenshot_whole(&format!("phone-overview-{width}"), width, height)
            .await;
        ada.goto(&app.url(&format!("/t/{slug}/keys"))).await;
        ada.screenshot_whole(&format!("phone-keys-{width}"), width, height)
            .await;
        ada.goto(&app.url(&format!("/t/{slug}/audit"))).await;
        ada.screenshot_whole(&format!("phone-audit-{width}"), width, height)
            .await;
        ada.goto(&app.url(&format!("/t/{slug}/logs"))).await;
        ada.screenshot_whole(&format!("phone-logs-{width}"), width, height)
            .await;
        ada.goto(&app.url(&format!("/t/{slug}/keys/{key}"))).await;
        ada.screenshot_whole(&format!("phone-key-{width}"), width, height)
            .await;
    }
    ada.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}
