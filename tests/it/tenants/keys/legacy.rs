//! Imported keys of the platform's old format in the portal: marked "legacy" with their last
//! use, and offered a roll into a checksummed key.

use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::{TenantAdmin, legacy_key, revealed, roll};

#[sqlx::test]
async fn a_legacy_key_is_marked_shows_its_last_use_and_rolls_into_a_checksummed_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await;
    let id = legacy_key(
        &app.pool,
        admin.tenant_id,
        &format!("sk_{}", "a".repeat(32)),
    )
    .await;
    sqlx::query(
        "UPDATE api_key SET last_used_at = now() - interval '2 hours' WHERE api_key_id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();

    let list = app.get_html(&admin.client, "/t/acme/keys").await;
    assert!(list.contains(r#"class="badge legacy""#), "{list}");
    assert!(list.contains("••••aaaa") && !list.contains("ak_live_••••aaaa"));
    let page = app
        .get_html(&admin.client, &format!("/t/acme/keys/{id}"))
        .await;
    assert!(page.contains(r#"class="badge legacy""#));
    assert!(page.contains("Roll into a checksummed key"));
    assert!(
        !page.contains("<dt>Last used</dt><dd>never"),
        "its last use is shown"
    );

    let rolled = roll(&app, &admin.client, "acme", id, "none").await;
    let html = rolled.text().await.unwrap();
    let secret = revealed(&html).expect("the new key is shown once");
    assert!(secret.starts_with("ak_live_"), "a checksummed key");
    let new_id: uuid::Uuid =
        sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE rolled_from = $1 AND NOT legacy")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let new_page = app
        .get_html(&admin.client, &format!("/t/acme/keys/{new_id}"))
        .await;
    assert!(!new_page.contains(r#"class="badge legacy""#));
    assert!(new_page.contains("Roll key"));
}
