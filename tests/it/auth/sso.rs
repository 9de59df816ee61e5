//! `/auth/oidc/...`: single sign-on against the real `oidc-provider`, and against a test issuer
//! for the tokens a real provider never issues.

use std::time::Duration;

use reqwest::cookie::CookieStore as _;
use reqwest::{Client, Response, StatusCode, Url};
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp, location};
use crate::support::identity_providers::{
    DISPLAY_NAME, Forgery, RealProvider, TestIssuer, app_with_provider, app_with_provider_adjusted,
    provider_env,
};

/// Starts SSO as a browser would and returns the provider URL Gatehouse sent it to.
async fn start(app: &TestApp, client: &Client, path: &str) -> String {
    let response = app.get(client, path).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
    location(&response).to_owned()
}

/// Signs `login` in at the provider and returns the callback URL, not yet visited.
async fn callback_for(
    app: &TestApp,
    provider: &RealProvider,
    client: &Client,
    login: &str,
) -> String {
    let authorize = start(app, client, "/auth/oidc/corp").await;
    provider
        .authorize(client, &authorize, login, &app.base)
        .await
}

/// A full SSO sign-in in a fresh browser; returns the browser and the callback's answer.
async fn sso_sign_in(app: &TestApp, provider: &RealProvider, login: &str) -> (Client, Response) {
    let client = app.client();
    let callback = callback_for(app, provider, &client, login).await;
    let response = client.get(callback).send().await.unwrap();
    (client, response)
}

async fn users(app: &TestApp) -> i64 {
    app.count("app_user").await
}

async fn assert_signed_out(app: &TestApp, client: &Client) {
    let response = app.get(client, "/account").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "no session may exist"
    );
    assert!(location(&response).starts_with("/signin"));
}

/// What a refused callback must look like: the status, the reason on the sign-in page, and no
/// session.
async fn assert_refused(
    app: &TestApp,
    client: &Client,
    response: Response,
    status: StatusCode,
    says: &str,
) {
    assert_eq!(response.status(), status);
    let page = response.text().await.unwrap();
    assert!(page.contains(says), "expected {says:?} in:\n{page}");
    assert!(page.contains("<h1>Sign in</h1>"));
    assert_signed_out(app, client).await;
}

fn with_query(url: &str, name: &str, value: Option<&str>) -> String {
    let mut url: Url = url.parse().unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (key, v) in &pairs {
            query.append_pair(key, v);
        }
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    url.to_string()
}

fn query_value(url: &str, name: &str) -> String {
    let url: Url = url.parse().unwrap();
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

const START_AGAIN: &str = "This sign-in cannot be completed";

#[sqlx::test]
async fn the_sign_in_and_sign_up_pages_offer_the_provider(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let client = app.client();
    for page in ["/signin", "/signup"] {
        let html = app.get(&client, page).await.text().await.unwrap();
        assert!(
            html.contains(&format!("Sign in with {DISPLAY_NAME}")),
            "{page}"
        );
        assert!(html.contains(r#"href="/auth/oidc/corp""#), "{page}");
    }
    // The page asked for before sign-in rides along.
    let html = app
        .get(&client, "/signin?next=%2Faccount")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"href="/auth/oidc/corp?next=%2Faccount""#));
}

#[sqlx::test]
async fn a_new_user_signs_in_through_the_provider_and_lands_on_the_page_asked_for(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start(&app, &client, "/auth/oidc/corp?next=%2Faccount").await;
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
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");

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
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let home = app.get(&again, "/").await.text().await.unwrap();
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
async fn an_unreachable_provider_is_shown_as_unavailable_and_passwords_still_work(pool: PgPool) {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = provider_env(&issuer);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(pool, &env, |_| {}).await;
    let client = app.client();
    let page = app.get(&client, "/signin").await.text().await.unwrap();
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
    let page = app.get(&client, "/signin").await.text().await.unwrap();
    assert!(page.contains("(unavailable right now)"));
    let _issuer = TestIssuer::start_on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    // Discovery is retried in the background (first after 5 s).
    for _ in 0..40 {
        let page = app.get(&client, "/signin").await.text().await.unwrap();
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
async fn a_person_who_cancels_at_the_provider_is_told_so(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let client = app.client();
    let mut url: Url = start(&app, &client, "/auth/oidc/corp")
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
async fn an_unknown_provider_is_not_found(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let response = app.get(&app.client(), "/auth/oidc/nosuch").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn a_forged_state_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let callback = callback_for(&app, &provider, &client, "ada").await;
    let forged = with_query(&callback, "state", Some("forged-state-value-0123456789"));
    let response = client.get(forged).send().await.unwrap();
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::BAD_REQUEST,
        START_AGAIN,
    )
    .await;
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
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::BAD_REQUEST,
        START_AGAIN,
    )
    .await;
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
    assert_refused(
        &app,
        &attacker,
        response,
        StatusCode::BAD_REQUEST,
        START_AGAIN,
    )
    .await;
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
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::BAD_REQUEST,
        START_AGAIN,
    )
    .await;
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
    let authorize = start(&app, &client, "/auth/oidc/corp").await;
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

#[sqlx::test]
async fn a_missing_nonce_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start(&app, &client, "/auth/oidc/corp").await;
    // The request reaches the provider without its nonce, so the ID token carries none.
    let stripped = with_query(&authorize, "nonce", None);
    let callback = provider
        .authorize(&client, &stripped, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::FORBIDDEN,
        "could not be verified",
    )
    .await;
    assert_eq!(users(&app).await, 0);
}

#[sqlx::test]
async fn a_wrong_nonce_is_refused(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start(&app, &client, "/auth/oidc/corp").await;
    let swapped = with_query(&authorize, "nonce", Some("a-nonce-gatehouse-never-sent"));
    let callback = provider
        .authorize(&client, &swapped, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::FORBIDDEN,
        "could not be verified",
    )
    .await;
    assert_eq!(users(&app).await, 0);
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
async fn a_password_account_is_linked_only_with_its_password(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    app.signed_in_user("ada@example.test", "Ada Lovelace").await;
    let client = app.client();
    let authorize = start(&app, &client, "/auth/oidc/corp?next=%2Faccount").await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/auth/oidc/link");
    // Not signed in until the password is given.
    assert_signed_out(&app, &client).await;
    let page = app
        .get(&client, "/auth/oidc/link")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("Link {DISPLAY_NAME} to your account")));
    assert!(page.contains("ada@example.test"));

    let wrong = app
        .submit(
            &client,
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", "not the right password")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("That is not the password of this account.")
    );
    assert_signed_out(&app, &client).await;

    let right = app
        .submit(
            &client,
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&right), "/account");
    let account = app.get(&client, "/account").await.text().await.unwrap();
    assert!(account.contains("is now linked to your account"));
    assert!(account.contains("Unlink"));
    assert_eq!(users(&app).await, 1);

    // Asked once: the next SSO sign-in goes straight in.
    let (again, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert_eq!(app.get(&again, "/account").await.status(), StatusCode::OK);
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
    let id: uuid::Uuid = sqlx::query_scalar("SELECT user_identity_id FROM user_identity")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let response = app
        .submit(
            &client,
            "/account",
            &format!("/account/identities/{id}/unlink"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let account = app.get(&client, "/account").await.text().await.unwrap();
    assert!(account.contains(&format!(
        "{DISPLAY_NAME} is no longer linked to your account."
    )));
    assert!(account.contains("No identity provider is linked"));
    // Signing in through the provider asks for the password again.
    let (_, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_eq!(location(&response), "/auth/oidc/link");
}

#[sqlx::test]
async fn an_sso_only_user_cannot_unlink_the_only_way_in(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (client, _) = sso_sign_in(&app, &provider, "ada").await;
    let page = app.get(&client, "/account").await.text().await.unwrap();
    assert!(!page.contains("Unlink"));
    assert!(page.contains("cannot be unlinked"));
    let id: uuid::Uuid = sqlx::query_scalar("SELECT user_identity_id FROM user_identity")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let response = app
        .submit(
            &client,
            "/account",
            &format!("/account/identities/{id}/unlink"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let identities: i64 = app.count("user_identity").await;
    assert_eq!(identities, 1);
}

#[sqlx::test]
async fn another_users_identity_cannot_be_unlinked(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    sso_sign_in(&app, &provider, "ada").await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT user_identity_id FROM user_identity")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mallory = app.signed_in_user("mallory@example.com", "Mallory").await;
    let response = app
        .submit(
            &mallory,
            "/account",
            &format!("/account/identities/{id}/unlink"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn an_invitation_link_survives_the_round_trip(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start(
        &app,
        &client,
        "/auth/oidc/corp?next=%2Finvitations%2Fabc123",
    )
    .await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/invitations/abc123");
}

#[sqlx::test]
async fn an_invitation_is_accepted_through_sso_when_the_verified_email_matches(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    crate::tenants::create_tenant(&app, &admin, "Acme", "acme").await;
    // The provider says `<login>@example.test`, verified.
    let link = crate::tenants::invite(&app, &admin, "acme", "ada@example.test", "developer").await;
    let other = crate::tenants::invite(&app, &admin, "acme", "bob@example.test", "viewer").await;

    let client = app.client();
    let authorize = start(
        &app,
        &client,
        &format!("/auth/oidc/corp?next={}", link.replace('/', "%2F")),
    )
    .await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_eq!(location(&response), link);
    let page = app.get(&client, &link).await.text().await.unwrap();
    assert!(page.contains("Accept and join"));
    let response = crate::tenants::accept(&app, &client, &link).await;
    assert_eq!(location(&response), "/t/acme");
    let page = app.get(&client, "/t/acme").await.text().await.unwrap();
    assert!(page.contains("Your role: Developer"));
    // Bob's invitation is not Ada's to take.
    assert_eq!(
        crate::tenants::accept(&app, &client, &other).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[sqlx::test]
async fn next_never_sends_an_sso_user_to_another_site(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let client = app.client();
    let authorize = start(&app, &client, "/auth/oidc/corp?next=%2F%2Fevil.example%2Fx").await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_eq!(location(&response), "/");
}

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
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/signin?signed_out=1");
}

/// Runs one SSO sign-in against the test issuer with `forgery` in the ID token.
async fn sign_in_with_forged_token(pool: PgPool, forgery: Forgery) -> (TestApp, Client, Response) {
    let issuer = TestIssuer::start().await;
    issuer.forge(forgery);
    let env = provider_env(&issuer.issuer);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(pool, &env, |_| {}).await;
    let client = app.client();
    let authorize = start(&app, &client, "/auth/oidc/corp").await;
    let callback = client.get(authorize).send().await.unwrap();
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    let response = client.get(location(&callback)).send().await.unwrap();
    // Keep the issuer alive until the callback has been answered.
    drop(issuer);
    (app, client, response)
}

async fn assert_forgery_refused(pool: PgPool, forgery: Forgery) {
    let (app, client, response) = sign_in_with_forged_token(pool, forgery).await;
    assert_refused(
        &app,
        &client,
        response,
        StatusCode::FORBIDDEN,
        "could not be verified",
    )
    .await;
    assert_eq!(users(&app).await, 0, "{forgery:?} created a user");
}

#[sqlx::test]
async fn the_test_issuers_honest_token_signs_in(pool: PgPool) {
    // The control: the refusals below are due to their forgeries alone.
    let (app, client, response) = sign_in_with_forged_token(pool, Forgery::Nothing).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&client, "/account").await.status(), StatusCode::OK);
    assert_eq!(users(&app).await, 1);
}

#[sqlx::test]
async fn a_token_for_another_audience_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongAudience).await;
}

#[sqlx::test]
async fn a_token_with_an_untrusted_extra_audience_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::ExtraAudience).await;
}

#[sqlx::test]
async fn a_token_authorized_for_another_party_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongAuthorizedParty).await;
}

#[sqlx::test]
async fn a_token_from_another_issuer_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongIssuer).await;
}

#[sqlx::test]
async fn an_expired_token_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::Expired).await;
}

#[sqlx::test]
async fn a_token_issued_in_the_future_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::IssuedInTheFuture).await;
}

#[sqlx::test]
async fn a_token_issued_long_ago_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::IssuedLongAgo).await;
}

#[sqlx::test]
async fn an_unsigned_alg_none_token_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::AlgNone).await;
}

#[sqlx::test]
async fn a_token_with_a_bad_signature_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::BadSignature).await;
}

#[sqlx::test]
async fn a_token_signed_with_an_unknown_key_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::UnknownKeyId).await;
}

#[sqlx::test]
async fn a_token_signed_with_the_client_secret_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::SignedWithClientSecret).await;
}

#[sqlx::test]
async fn a_token_without_the_nonce_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::MissingNonce).await;
}

#[sqlx::test]
async fn a_token_with_another_nonce_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongNonce).await;
}
