//! A key's page: its whole history (every change, with its fields), no test for a key that can no
//! longer work, the revoked-key alert leading to the refused calls themselves, and the new-key form
//! telling an unconfirmed account about live keys before it asks.

use gatehouse::vocabulary::Code;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::{TenantAdmin, create_key, record_usage};

#[sqlx::test]
async fn a_keys_history_shows_every_change_with_its_fields(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let acme = TenantAdmin::acme(&app).await;
    let (_, id) = create_key(&app, &acme.client, "acme", "billing", "test").await;
    let edit = format!("/t/acme/keys/{id}/edit");
    let saved = app
        .submit(
            &acme.client,
            &edit,
            &edit,
            &[
                ("name", "billing job"),
                ("note", "runs nightly"),
                ("access", "full"),
                ("expiry", "keep"),
                ("rate_limit", ""),
                ("meta", ""),
                ("ip_allowlist", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    for action in ["disable", "enable"] {
        let path = format!("/t/acme/keys/{id}/{action}");
        let switched = app
            .submit(&acme.client, &format!("/t/acme/keys/{id}"), &path, &[])
            .await;
        assert_eq!(switched.status(), StatusCode::SEE_OTHER, "{action}");
    }
    let page = app
        .get_html(&acme.client, &format!("/t/acme/keys/{id}"))
        .await;
    let history = &page[page.find("<h2>History</h2>").expect("a history")..];
    assert!(
        history.contains("<strong>Changed</strong> by Ada"),
        "{history}"
    );
    assert!(history.contains("name: billing → billing job"));
    assert!(history.contains("note: (none) → runs nightly"));
    assert!(history.contains("ip_allowlist: any address → 203.0.113.0/24"));
    assert!(history.contains("<strong>Enabled</strong> by Ada"));
    assert!(history.contains("<strong>Disabled</strong> by Ada"));
}

#[sqlx::test]
async fn a_key_that_can_no_longer_work_offers_no_test(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let acme = TenantAdmin::acme(&app).await;
    let (_, id) = create_key(&app, &acme.client, "acme", "old", "test").await;
    let page = format!("/t/acme/keys/{id}");
    assert!(
        app.get_html(&acme.client, &page)
            .await
            .contains("Test this key")
    );
    let revoked = app
        .submit(&acme.client, &page, &format!("{page}/revoke"), &[])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let html = app.get_html(&acme.client, &page).await;
    assert!(!html.contains("Test this key"));
    assert!(html.contains("This key can no longer work, so there is nothing to test"));
}

#[sqlx::test]
async fn the_revoked_key_alert_leads_to_the_refused_calls_in_the_request_log(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let acme = TenantAdmin::acme(&app).await;
    let (_, id) = create_key(&app, &acme.client, "acme", "old", "test").await;
    let page = format!("/t/acme/keys/{id}");
    app.submit(&acme.client, &page, &format!("{page}/revoke"), &[])
        .await;
    record_usage(&pool, id, 5, Code::Revoked, 3).await;
    let html = app.get_html(&acme.client, &page).await;
    assert!(
        html.contains(&format!("/t/acme/logs?key={id}&#38;code=REVOKED")),
        "the alert links to the request log's REVOKED calls of this key: {}",
        &html[html.find("retired").unwrap_or(0)..][..400.min(html.len())]
    );
}

#[sqlx::test]
async fn the_new_key_form_tells_an_unconfirmed_account_that_live_keys_wait(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let notice = "Live keys wait for your confirmed email address";
    let unconfirmed = app
        .signed_in_unverified_user("una@example.com", "Una")
        .await;
    crate::support::fixtures::create_tenant(&app, &unconfirmed, "Una's", "unas").await;
    let form = app.get_html(&unconfirmed, "/t/unas/keys/new").await;
    assert!(form.contains(notice));
    let acme = TenantAdmin::acme(&app).await;
    let form = app.get_html(&acme.client, "/t/acme/keys/new").await;
    assert!(!form.contains(notice));
}
