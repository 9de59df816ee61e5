//! `/account`, `/account/password` and `/account/identities/{id}/unlink`.

use reqwest::{Client, Response, StatusCode};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{PASSWORD, TestApp, assert_redirect, location};
use crate::support::identity_providers::{DISPLAY_NAME, app_with_provider, sso_sign_in};

const NEW_PASSWORD: &str = "a different and longer passphrase";

/// Posts the change-password form of the account page.
async fn change_password(app: &TestApp, client: &Client, current: &str, new: &str) -> Response {
    app.submit(
        client,
        "/account",
        "/account/password",
        &[("current_password", current), ("new_password", new)],
    )
    .await
}

#[sqlx::test]
async fn the_account_page_needs_a_sign_in(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app.get(&app.client(), "/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/signin"));
}

#[sqlx::test]
async fn changing_the_password_needs_the_current_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = change_password(&app, &client, "not my password at all", NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("That is not your current password.")
    );
    // Nothing changed: the old password still signs in.
    let response = app
        .sign_in(&app.client(), "ada@example.com", PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn a_new_password_must_meet_the_policy(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = change_password(&app, &client, PASSWORD, "qwertyuiopasdfgh").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("too easy to guess"));
}

#[sqlx::test]
async fn changing_the_password_ends_every_other_session(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let laptop = app.signed_in_user("ada@example.com", "Ada").await;
    let phone = app.client();
    assert_eq!(
        app.sign_in(&phone, "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.get(&phone, "/account").await.status(), StatusCode::OK);

    let response = change_password(&app, &laptop, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // The session that changed it stays signed in and says what happened.
    let page = app.get(&laptop, "/account").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Every other session of yours has been signed out")
    );
    // The other one is signed out on its very next request.
    let response = app.get(&phone, "/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Old password refused, new one accepted.
    let fresh = app.client();
    assert_eq!(
        app.sign_in(&fresh, "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in(&fresh, "ada@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

/// The id of the one linked identity.
async fn the_identity(app: &TestApp) -> Uuid {
    sqlx::query_scalar("SELECT user_identity_id FROM user_identity")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Unlinks an identity through the account page.
async fn unlink(app: &TestApp, client: &Client, id: Uuid) -> Response {
    app.submit(
        client,
        "/account",
        &format!("/account/identities/{id}/unlink"),
        &[],
    )
    .await
}

#[sqlx::test]
async fn a_user_with_a_password_may_unlink_an_identity(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    app.signed_in_user("ada@example.test", "Ada").await;
    let (client, _) = sso_sign_in(&app, &provider, "ada").await;
    let linked = app
        .submit(
            &client,
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(linked.status(), StatusCode::SEE_OTHER);
    let id = the_identity(&app).await;
    let response = unlink(&app, &client, id).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let account = app.get_html(&client, "/account").await;
    assert!(account.contains(&format!(
        "{DISPLAY_NAME} is no longer linked to your account."
    )));
    assert!(account.contains("No identity provider is linked"));
    // Signing in through the provider asks for the password again.
    let (_, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_redirect(&response, "/auth/oidc/link");
}

#[sqlx::test]
async fn an_sso_only_user_cannot_unlink_the_only_way_in(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (client, _) = sso_sign_in(&app, &provider, "ada").await;
    let page = app.get_html(&client, "/account").await;
    assert!(!page.contains("Unlink"));
    assert!(page.contains("cannot be unlinked"));
    let id = the_identity(&app).await;
    let response = unlink(&app, &client, id).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let identities: i64 = app.count("user_identity").await;
    assert_eq!(identities, 1);
}

#[sqlx::test]
async fn another_users_identity_cannot_be_unlinked(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    sso_sign_in(&app, &provider, "ada").await;
    let id = the_identity(&app).await;
    let mallory = app.signed_in_user("mallory@example.com", "Mallory").await;
    let response = unlink(&app, &mallory, id).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
