//! `/t/{slug}/members` and `/t/{slug}/leave`: roles, removal, leaving, and the last admin.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::{change_role, membership_of, remove_member};
use crate::support::app::{PASSWORD, TestApp, assert_redirect};
use crate::support::fixtures::{TenantAdmin, World, member_client};

#[sqlx::test]
async fn the_last_admin_can_neither_leave_nor_be_demoted_or_removed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let own = membership_of(&app, "ada@example.com").await;
    let demote = change_role(&app, &admin, own, "developer").await;
    assert_eq!(demote.status(), StatusCode::CONFLICT);
    assert!(demote.text().await.unwrap().contains("at least one admin"));
    let remove = remove_member(&app, &admin, own).await;
    assert_eq!(remove.status(), StatusCode::CONFLICT);
    let leave = app
        .submit(&admin, "/t/acme/leave", "/t/acme/leave", &[])
        .await;
    assert_eq!(leave.status(), StatusCode::CONFLICT);
    let role: String = sqlx::query_scalar("SELECT role FROM membership")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(role, "admin");

    // With a second admin, the first may step down.
    member_client(&app, &admin, "acme", "bob@example.com", "Bob", "admin").await;
    let demote = change_role(&app, &admin, own, "developer").await;
    assert_eq!(demote.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&admin, "/t/acme/audit").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[sqlx::test]
async fn removal_and_demotion_take_effect_on_the_very_next_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    // The developer has two sessions.
    let dev_phone = app.client();
    app.sign_in(&dev_phone, "dev@example.com", PASSWORD).await;
    assert_eq!(
        app.get(&dev_phone, "/t/acme").await.status(),
        StatusCode::OK
    );
    let dev_id = membership_of(&app, "dev@example.com").await;
    let confirm = app
        .get_html(&world.admin, &format!("/t/acme/members/{dev_id}/remove"))
        .await;
    assert!(
        confirm.contains("Remove Dan Developer?"),
        "a confirmation step first"
    );
    let response = remove_member(&app, &world.admin, dev_id).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    for client in [&world.developer, &dev_phone] {
        assert_eq!(
            app.get(client, "/t/acme").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    // An admin lowered to viewer loses admin pages at once.
    let second_admin = app.client();
    app.sign_in(&second_admin, "admin2@example.com", PASSWORD)
        .await;
    assert_eq!(
        app.get(&second_admin, "/t/acme/audit").await.status(),
        StatusCode::OK
    );
    let id = membership_of(&app, "admin2@example.com").await;
    change_role(&app, &world.admin, id, "viewer").await;
    let response = app.get(&second_admin, "/t/acme/audit").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Your role there is viewer")
    );
}

#[sqlx::test]
async fn a_member_may_leave_a_tenant(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let page = app.get_html(&world.viewer, "/t/acme/leave").await;
    assert!(page.contains("Leave Acme?"));
    let response = app
        .submit(&world.viewer, "/t/acme/leave", "/t/acme/leave", &[])
        .await;
    assert_redirect(&response, "/");
    assert_eq!(
        app.get(&world.viewer, "/t/acme").await.status(),
        StatusCode::NOT_FOUND
    );
    let home = app.get_html(&world.viewer, "/").await;
    assert!(home.contains("You left Acme."));
}
