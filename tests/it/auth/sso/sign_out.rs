//! `/signout` after a single sign-on: the session ends here and at the provider.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::{assert_signed_out, query_value};
use crate::support::app::assert_redirect;
use crate::support::identity_providers::{app_with_provider, sso_sign_in};

#[sqlx::test]
async fn signing_out_ends_the_session_here_and_at_the_provider(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (client, _) = sso_sign_in(&app, &provider, "ada").await;
    let response = app.submit(&client, "/account", "/signout", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("You are signed out of Gatehouse"));
    let marker = r#"id="provider-sign-out" href=""#;
    let start = page.find(marker).unwrap() + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    let logout = page[start..end].replace("&#38;", "&");
    assert!(
        logout.starts_with(&format!("{}/session/end?", provider.issuer)),
        "{logout}"
    );
    assert!(!query_value(&logout, "id_token_hint").is_empty());
    assert_eq!(
        query_value(&logout, "post_logout_redirect_uri"),
        format!("{}/signin", app.base)
    );
    assert_signed_out(&app, &client).await;
    // The provider accepts the request: its confirmation page, not an error.
    let confirm = client.get(&logout).send().await.unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    assert!(
        confirm
            .text()
            .await
            .unwrap()
            .contains("Do you want to sign-out")
    );
}

#[sqlx::test]
async fn a_password_sign_out_does_not_visit_the_provider(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let client = app.signed_in_user("bo@example.com", "Bo").await;
    let response = app.submit(&client, "/account", "/signout", &[]).await;
    assert_redirect(&response, "/signin?signed_out=1");
}
