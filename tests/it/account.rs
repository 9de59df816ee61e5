//! `/account` and `/account/password`.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp, location};

const NEW_PASSWORD: &str = "a different and longer passphrase";

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
    let response = app
        .submit(
            &client,
            "/account",
            "/account/password",
            &[
                ("current_password", "not my password at all"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
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
    let response = app
        .submit(
            &client,
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "qwertyuiopasdfgh"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("too common"));
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

    let response = app
        .submit(
            &laptop,
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
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
