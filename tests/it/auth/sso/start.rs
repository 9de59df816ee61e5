//! `/auth/oidc/{provider}`: where sign-in through the provider starts, whether the provider is
//! offered at all, and where the person is sent back to.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp, assert_redirect};
use crate::support::identity_providers::{
    DISPLAY_NAME, TestIssuer, app_with_provider, provider_env, start_sso,
};

#[sqlx::test]
async fn the_sign_in_and_sign_up_pages_offer_the_provider(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let client = app.client();
    for page in ["/signin", "/signup"] {
        let html = app.get_html(&client, page).await;
        assert!(
            html.contains(&format!("Sign in with {DISPLAY_NAME}")),
            "{page}"
        );
        assert!(html.contains(r#"href="/auth/oidc/corp""#), "{page}");
    }
    // The page asked for before sign-in rides along.
    let html = app.get_html(&client, "/signin?next=%2Faccount").await;
    assert!(html.contains(r#"href="/auth/oidc/corp?next=%2Faccount""#));
}

#[sqlx::test]
async fn an_unreachable_provider_is_shown_as_unavailable_and_passwords_still_work(pool: PgPool) {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = provider_env(&issuer);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(pool, &env, |_| {}).await;
    let client = app.client();
    let page = app.get_html(&client, "/signin").await;
    assert!(page.contains(&format!(
        "Sign in with {DISPLAY_NAME} (unavailable right now)"
    )));
    assert!(!page.contains(r#"href="/auth/oidc/corp""#));
    let response = app.get(&client, "/auth/oidc/corp").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("cannot be reached right now")
    );
    // Password accounts are unaffected.
    app.signed_in_user("bo@example.com", "Bo").await;
    let response = app.sign_in(&app.client(), "bo@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn a_provider_that_comes_up_later_becomes_available(pool: PgPool) {
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let env = provider_env(&format!("http://{addr}"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(pool, &env, |_| {}).await;
    let client = app.client();
    let page = app.get_html(&client, "/signin").await;
    assert!(page.contains("(unavailable right now)"));
    let _issuer = TestIssuer::start_on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    // Discovery is retried in the background (first after 5 s).
    for _ in 0..40 {
        let page = app.get_html(&client, "/signin").await;
        if page.contains(r#"href="/auth/oidc/corp""#) {
            assert!(!page.contains("(unavailable right now)"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the provider never became available");
}

#[sqlx::test]
async fn a_provider_whose_discovery_names_another_issuer_is_unavailable(pool: PgPool) {
    let issuer = TestIssuer::start().await;
    // A trailing slash is another issuer: compared exactly, never "fixed".
    let env = provider_env(&format!("{}/", issuer.issuer));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(pool, &env, |_| {}).await;
    let response = app.get(&app.client(), "/auth/oidc/corp").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test]
async fn an_unknown_provider_is_not_found(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let response = app.get(&app.client(), "/auth/oidc/nosuch").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn an_invitation_link_survives_the_round_trip(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start_sso(
        &app,
        &client,
        "/auth/oidc/corp?next=%2Finvitations%2Fabc123",
    )
    .await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_redirect(&response, "/invitations/abc123");
}

#[sqlx::test]
async fn next_never_sends_an_sso_user_to_another_site(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start_sso(&app, &client, "/auth/oidc/corp?next=%2F%2Fevil.example%2Fx").await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_redirect(&response, "/");
}
