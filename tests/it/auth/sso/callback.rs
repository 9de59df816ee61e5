//! `/auth/oidc/{provider}/callback`: signing in or up against the real `oidc-provider`, and every
//! way a callback is refused (state, code, nonce, email, flow lifetime).

use std::time::Duration;

use reqwest::cookie::CookieStore as _;
use reqwest::{StatusCode, Url};
use sqlx::PgPool;

use super::{
    START_AGAIN, assert_refused, assert_token_refused, assert_told_to_start_again, query_value,
    users, with_query,
};
use crate::support::app::{assert_redirect, location};
use crate::support::fixtures::{TenantAdmin, accept, invite};
use crate::support::identity_providers::{
    DISPLAY_NAME, app_with_provider, app_with_provider_adjusted, callback_for, sso_sign_in,
    start_sso,
};

#[sqlx::test]
async fn a_new_user_signs_in_through_the_provider_and_lands_on_the_page_asked_for(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start_sso(&app, &client, "/auth/oidc/corp?next=%2Faccount").await;
    assert!(authorize.starts_with(&format!("{}/auth?", provider.issuer)));
    // Code flow with PKCE S256, state and nonce, for exactly this redirect URI.
    assert_eq!(query_value(&authorize, "response_type"), "code");
    assert_eq!(query_value(&authorize, "code_challenge_method"), "S256");
    assert_eq!(query_value(&authorize, "scope"), "openid email profile");
    assert_eq!(
        query_value(&authorize, "redirect_uri"),
        format!("{}/auth/oidc/corp/callback", app.base)
    );
    assert!(query_value(&authorize, "state").len() >= 16);
    assert!(query_value(&authorize, "nonce").len() >= 16);

    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_redirect(&response, "/account");

    let account = app.get(&client, "/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    let page = account.text().await.unwrap();
    assert!(page.contains("ada@example.test"));
    assert!(page.contains("Your account is ready"));
    assert!(page.contains(DISPLAY_NAME), "the linked identity is listed");
    assert!(page.contains("there is no password to change"));
    let (hash, issuer, subject): (Option<String>, String, String) = sqlx::query_as(
        "SELECT u.password_hash, i.issuer, i.subject
         FROM app_user u JOIN user_identity i USING (app_user_id)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(hash, None);
    assert_eq!(issuer, provider.issuer);
    assert_eq!(subject, "ada");
}

#[sqlx::test]
async fn a_returning_user_signs_in_to_the_same_account(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (_first, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (again, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_redirect(&response, "/");
    let home = app.get_html(&again, "/").await;
    assert!(home.contains("Welcome, Ada"));
    assert!(!home.contains("Your account is ready"), "no second account");
    assert_eq!(users(&app).await, 1);
}

#[sqlx::test]
async fn the_session_id_changes_at_sso_sign_in(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (client, jar) = app.client_with_jar();
    app.get(&client, "/signin").await;
    let before = app
        .session_cookie_in(&jar)
        .expect("the sign-in page starts a session");
    let callback = callback_for(&app, &provider, &client, "ada").await;
    let response = client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = app.session_cookie_in(&jar).unwrap();
    assert_ne!(before, after);
    let replay = app
        .client()
        .get(app.url("/account"))
        .header("cookie", before)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn a_person_who_cancels_at_the_provider_is_told_so(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let client = app.client();
    let mut url: Url = start_sso(&app, &client, "/auth/oidc/corp")
        .await
        .parse()
        .unwrap();
    // To the provider's login page, then its "cancel" link instead of signing in.
    loop {
        let response = client.get(url.clone()).send().await.unwrap();
        if !response.status().is_redirection() {
            break;
        }
        url = url.join(location(&response)).unwrap();
    }
    url = url.join(&format!("{}/abort", url.path())).unwrap();
    while !url.as_str().starts_with(&app.base) {
        let response = client.get(url.clone()).send().await.unwrap();
        url = url.join(location(&response)).unwrap();
    }
    assert_eq!(query_value(url.as_str(), "error"), "access_denied");
    let response = client.get(url).send().await.unwrap();
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::FORBIDDEN,
        &format!("{DISPLAY_NAME} did not sign you in"),
    )
    .await;
    assert_eq!(users(&app).await, 0);
}

#[sqlx::test]
async fn a_forged_state_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let callback = callback_for(&app, &provider, &client, "ada").await;
    let forged = with_query(&callback, "state", Some("forged-state-value-0123456789"));
    let response = client.get(forged).send().await.unwrap();
    assert_told_to_start_again(&app, &client, response).await;
    assert_eq!(users(&app).await, 0);
}

#[sqlx::test]
async fn a_missing_state_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let callback = callback_for(&app, &provider, &client, "ada").await;
    let response = client
        .get(with_query(&callback, "state", None))
        .send()
        .await
        .unwrap();
    assert_told_to_start_again(&app, &client, response).await;
    assert_eq!(users(&app).await, 0);
}

#[sqlx::test]
async fn a_state_from_another_browser_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let victim = app.client();
    let callback = callback_for(&app, &provider, &victim, "ada").await;
    // The callback URL (code and state) delivered to a browser that did not start the flow:
    // a login CSRF attempt, or a stolen link.
    let attacker = app.client();
    app.get(&attacker, "/signin").await;
    let response = attacker.get(&callback).send().await.unwrap();
    assert_told_to_start_again(&app, &attacker, response).await;
    assert_eq!(users(&app).await, 0);
    // The flow is still the victim's to finish.
    let response = victim.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&victim, "/account").await.status(), StatusCode::OK);
}

#[sqlx::test]
async fn a_replayed_callback_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (client, jar) = app.client_with_jar();
    let callback = callback_for(&app, &provider, &client, "ada").await;
    let response = client.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The same browser (cookies and all) replays it after signing out: state is single use.
    let flow_cookie = jar.cookies(&app.base.parse().unwrap()).unwrap();
    let response = app.submit(&client, "/account", "/signout", &[]).await;
    assert!(response.status().is_redirection() || response.status() == StatusCode::OK);
    let replay = app.client();
    let response = replay
        .get(&callback)
        .header("cookie", flow_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains(START_AGAIN));
    let response = client.get(&callback).send().await.unwrap();
    assert_told_to_start_again(&app, &client, response).await;
}

#[sqlx::test]
async fn a_replayed_code_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let used = callback_for(&app, &provider, &client, "ada").await;
    assert_eq!(
        client.get(&used).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let response = app.submit(&client, "/account", "/signout", &[]).await;
    assert!(response.status().is_success() || response.status().is_redirection());
    // A fresh flow in the same browser, finished with the old code: the state is valid, the
    // code is not (used, and issued for another PKCE challenge).
    let authorize = start_sso(&app, &client, "/auth/oidc/corp").await;
    let state = query_value(&authorize, "state");
    let replayed = with_query(&used, "state", Some(&state));
    let response = client.get(replayed).send().await.unwrap();
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::FORBIDDEN,
        &format!("{DISPLAY_NAME} did not confirm this sign-in"),
    )
    .await;
}

/// Signs in with the authorization request's nonce changed to `nonce` (or removed) on its way to
/// the provider, so the ID token carries another nonce (or none): refused, and nobody is made.
async fn assert_nonce_refused(pool: PgPool, nonce: Option<&str>) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start_sso(&app, &client, "/auth/oidc/corp").await;
    let changed = with_query(&authorize, "nonce", nonce);
    let callback = provider
        .authorize(&client, &changed, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_token_refused(&app, &client, response).await;
    assert_eq!(users(&app).await, 0);
}

#[sqlx::test]
async fn a_missing_nonce_is_refused(pool: PgPool) {
    assert_nonce_refused(pool, None).await;
}

#[sqlx::test]
async fn a_wrong_nonce_is_refused(pool: PgPool) {
    assert_nonce_refused(pool, Some("a-nonce-gatehouse-never-sent")).await;
}

#[sqlx::test]
async fn an_unverified_email_creates_no_account(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (client, response) = sso_sign_in(&app, &provider, "unverified-bo").await;
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::FORBIDDEN,
        &format!("{DISPLAY_NAME} has not verified your email address"),
    )
    .await;
    assert_eq!(users(&app).await, 0);
}

#[sqlx::test]
async fn the_same_email_under_another_subject_takes_nothing_over(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (_ada, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Another person at the provider whose (verified) email is also ada@example.test.
    let (eve, response) = sso_sign_in(&app, &provider, "eve~ada").await;
    assert_refused(
        &app,
        &eve,
        response,
        StatusCode::FORBIDDEN,
        "already exists and signs in another way",
    )
    .await;
    assert_eq!(users(&app).await, 1);
    let identities: i64 = app.count("user_identity").await;
    assert_eq!(
        identities, 1,
        "eve's subject was not linked to ada's account"
    );
}

#[sqlx::test]
async fn an_expired_flow_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider_adjusted(pool, |config| {
        config.oidc_flow_lifetime = Duration::from_secs(1);
    })
    .await;
    let client = app.client();
    let callback = callback_for(&app, &provider, &client, "ada").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = client.get(callback).send().await.unwrap();
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::BAD_REQUEST,
        "This sign-in took too long",
    )
    .await;
    assert_eq!(users(&app).await, 0);
}

#[sqlx::test]
async fn an_invitation_is_accepted_through_sso_when_the_verified_email_matches(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    // The provider says `<login>@example.test`, verified.
    let link = invite(&app, &admin, "acme", "ada@example.test", "developer").await;
    let other = invite(&app, &admin, "acme", "bob@example.test", "viewer").await;

    let client = app.client();
    let authorize = start_sso(
        &app,
        &client,
        &format!("/auth/oidc/corp?next={}", link.replace('/', "%2F")),
    )
    .await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_redirect(&response, &link);
    let page = app.get_html(&client, &link).await;
    assert!(page.contains("Accept and join"));
    let response = accept(&app, &client, &link).await;
    assert_redirect(&response, "/t/acme");
    let page = app.get_html(&client, "/t/acme").await;
    assert!(page.contains("Your role: Developer"));
    // Bob's invitation is not Ada's to take.
    assert_eq!(
        accept(&app, &client, &other).await.status(),
        StatusCode::FORBIDDEN
    );
}
