//! Legacy keys in Chromium: the keys list and a legacy key's page, checked at every width
//! (`target/screenshots/legacy-*`).

use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::fixtures::legacy_key;

#[sqlx::test]
async fn legacy_keys_are_marked_on_the_list_and_their_page_at_every_width(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
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
    let tenant_id = sqlx::query_scalar("SELECT tenant_id FROM tenant WHERE slug = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let id = legacy_key(&pool, tenant_id, &format!("sk_{}", "7".repeat(32))).await;
    sqlx::query(
        "UPDATE api_key SET last_used_at = now() - interval '3 hours' WHERE api_key_id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();

    ada.goto(&app.url("/t/acme/keys")).await;
    ada.expect_text(".badge.legacy", "legacy").await;
    problems.extend(ada.check_page("legacy-keys").await);
    ada.goto(&app.url(&format!("/t/acme/keys/{id}"))).await;
    ada.expect_text("h2.key-title", "old key").await;
    ada.expect_text("a[href$='/roll']", "Roll into a checksummed key")
        .await;
    problems.extend(ada.check_page("legacy-key").await);
    ada.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}
