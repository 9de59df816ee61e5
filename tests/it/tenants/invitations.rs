//! `/t/{slug}/invitations` and `/invitations/{token}`: inviting people and joining.

use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{PASSWORD, TestApp, assert_redirect};
use crate::support::fixtures::{TenantAdmin, accept, invite};

#[sqlx::test]
async fn an_invited_person_joins_with_the_role_and_only_once(pool: PgPool) {
    let sink = crate::support::smtp::MailSink::start();
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let link = invite(&app, &admin, "acme", "Bob@Example.com", "developer").await;

    // Opened signed out: the page says who it is for and how to continue.
    let bob = app.client();
    let page = app.get_html(&bob, &link).await;
    assert!(
        page.contains("Join Acme")
            && page.contains("bob@example.com")
            && page.contains("developer")
    );
    // Signs up (the email matched case-insensitively) and lands back on the invitation.
    let response = app
        .submit(
            &bob,
            &format!("/signup?next={link}"),
            "/signup",
            &[
                ("email", "BOB@example.com"),
                ("display_name", "Bob"),
                ("password", PASSWORD),
                ("next", &link),
            ],
        )
        .await;
    assert_redirect(&response, &link);
    // Bob confirms his address by the link mailed at sign-up, then accepts.
    let mail = sink.mail("bob@example.com", "Confirm your email").await;
    let confirm = mail.link(&app.url("/account/verify?token="));
    app.get(&bob, &confirm[app.base.len()..]).await;
    let response = accept(&app, &bob, &link).await;
    assert_redirect(&response, "/t/acme");
    let page = app.get_html(&bob, "/t/acme").await;
    assert!(page.contains("Welcome to Acme") && page.contains("Your role: Developer"));

    // Reused: refused, and nothing changes.
    let again = accept(&app, &bob, &link).await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(again.text().await.unwrap().contains("already been used"));
    let members: i64 = app.count("membership").await;
    assert_eq!(members, 2);
}

async fn memberships(app: &TestApp) -> i64 {
    app.count("membership").await
}

#[sqlx::test]
async fn an_invitation_for_another_email_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let link = invite(&app, &admin, "acme", "bob@example.com", "admin").await;
    let eve = app.signed_in_user("eve@example.com", "Eve").await;
    let page = app.get_html(&eve, &link).await;
    assert!(page.contains("This invitation is for bob@example.com"));
    let response = accept(&app, &eve, &link).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(memberships(&app).await, 1);
    assert_eq!(
        app.get(&eve, "/t/acme").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn a_revoked_invitation_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let link = invite(&app, &admin, "acme", "bob@example.com", "viewer").await;
    let members = app.get_html(&admin, "/t/acme/members").await;
    assert!(members.contains("bob@example.com"), "listed as pending");
    let id: Uuid = sqlx::query_scalar("SELECT invitation_id FROM invitation")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let response = app
        .submit(
            &admin,
            "/t/acme/members",
            &format!("/t/acme/invitations/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let bob = app.signed_in_user("bob@example.com", "Bob").await;
    let response = accept(&app, &bob, &link).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("withdrawn"));
    assert_eq!(memberships(&app).await, 1);
}

#[sqlx::test]
async fn an_expired_invitation_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let link = invite(&app, &admin, "acme", "bob@example.com", "viewer").await;
    sqlx::query("UPDATE invitation SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let bob = app.signed_in_user("bob@example.com", "Bob").await;
    let response = accept(&app, &bob, &link).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("expired"));
    assert_eq!(memberships(&app).await, 1);
}

#[sqlx::test]
async fn a_made_up_invitation_link_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let bob = app.signed_in_user("bob@example.com", "Bob").await;
    let response = accept(&app, &bob, "/invitations/not-a-real-token-at-all").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(memberships(&app).await, 0);
}

#[sqlx::test]
async fn invitations_are_stored_only_as_hashes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let link = invite(&app, &admin, "acme", "bob@example.com", "viewer").await;
    let token = link.trim_start_matches("/invitations/");
    let dump: String = sqlx::query_scalar("SELECT string_agg(i::text, '|') FROM invitation i")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains(token));
    let members_page = app.get_html(&admin, "/t/acme/members").await;
    assert!(
        !members_page.contains(token),
        "the link is shown once, not on the list"
    );
}

#[sqlx::test]
async fn the_invitation_is_mailed_with_the_same_link_the_admin_sees(pool: PgPool) {
    let sink = crate::support::smtp::MailSink::start();
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    let admin = TenantAdmin::acme(&app).await;
    let link = invite(&app, &admin.client, "acme", "Bob@Example.com", "viewer").await;
    let mail = sink
        .mail("bob@example.com", "You are invited to Acme")
        .await;
    assert_eq!(mail.link(&app.url("/invitations/")), app.url(&link));
    assert!(
        mail.text
            .contains("Ada invites you to join Acme on Gatehouse as viewer"),
        "{}",
        mail.text
    );
    // The admin's page says it was mailed and still shows the link.
    let page = app.get_html(&admin.client, "/t/acme/members").await;
    assert!(page.contains("bob@example.com"));
}
