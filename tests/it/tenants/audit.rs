//! `/t/{slug}/audit`: the tenant's audit log.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::{change_role, membership_of};
use crate::support::app::TestApp;
use crate::support::fixtures::{TenantAdmin, World};

#[sqlx::test]
async fn the_audit_log_records_who_did_what_from_where(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let viewer_id = membership_of(&app, "viewer@example.com").await;
    let response = change_role(&app, &world.admin, viewer_id, "developer").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let log = app.get_html(&world.admin, "/t/acme/audit").await;
    for action in [
        "tenant.created",
        "invitation.created",
        "invitation.accepted",
        "member.role_changed",
    ] {
        assert!(log.contains(action), "{action} is logged");
    }
    assert!(
        log.contains("Alice Admin &#60;admin@example.com&#62;")
            || log.contains("Alice Admin &lt;admin@example.com&gt;")
    );
    assert!(log.contains("127.0.0.1"));
    // Newest first.
    assert!(log.find("member.role_changed").unwrap() < log.find("tenant.created").unwrap());
    // Each event carries the request id of the request that made it.
    let (request_id, ip): (String, String) = sqlx::query_as(
        "SELECT request_id, client_ip FROM audit_event WHERE action = 'member.role_changed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(request_id.len(), 36);
    assert_eq!(ip, "127.0.0.1");

    let filtered = app
        .get_html(&world.admin, "/t/acme/audit?action=member.role_changed")
        .await;
    assert!(filtered.contains("from: viewer · to: developer"));
    assert!(!filtered.contains("<code>tenant.created</code>"));
}

#[sqlx::test]
async fn the_audit_log_is_paginated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    sqlx::query(
        "INSERT INTO audit_event (tenant_id, action, target, at)
         SELECT tenant_id, 'test.event', 'n:' || n, now() - n * interval '1 minute'
         FROM tenant, generate_series(1, 60) AS n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let first = app.get_html(&admin, "/t/acme/audit").await;
    assert!(first.contains("Older"));
    assert!(!first.contains("Newer"));
    assert_eq!(
        first.matches("<tr>").count() - 1,
        50,
        "50 events and a header row"
    );
    let second = app.get_html(&admin, "/t/acme/audit?page=2").await;
    assert!(second.contains("Newer") && !second.contains("Older"));
    assert_eq!(second.matches("<tr>").count() - 1, 11);
}
