//! Rules every page obeys: CSRF, cross-site refusal, headers, escaping, body limits.

use reqwest::{Client, Response, StatusCode};
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};

const NEW_PASSWORD: &str = "a different and longer passphrase";

/// Posts the change-password form as `client` (from the current to `NEW_PASSWORD`) with the CSRF
/// token `token`, if any, and the extra `headers`.
async fn change_password(
    app: &TestApp,
    client: &Client,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    let mut form = vec![
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
    ];
    if let Some(token) = token {
        form.insert(0, ("csrf_token", token));
    }
    let mut request = client.post(app.url("/account/password")).form(&form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn password_unchanged(app: &TestApp) {
    let response = app
        .sign_in(&app.client(), "ada@example.com", PASSWORD)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the password must not have changed"
    );
}

#[sqlx::test]
async fn a_post_without_a_csrf_token_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = change_password(&app, &client, None, &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("This form has expired")
    );
    password_unchanged(&app).await;
}

#[sqlx::test]
async fn a_post_with_another_sessions_token_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let victim = app.signed_in_user("ada@example.com", "Ada").await;
    let attacker = app.signed_in_user("eve@example.com", "Eve").await;
    let token = app.csrf_token(&attacker, "/account").await;
    let response = change_password(&app, &victim, Some(&token), &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    password_unchanged(&app).await;
}

#[sqlx::test]
async fn a_post_from_a_foreign_origin_is_refused_even_with_a_valid_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let token = app.csrf_token(&client, "/account").await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = change_password(&app, &client, Some(&token), &[(header, value)]).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
        assert!(response.text().await.unwrap().contains("refused"));
    }
    password_unchanged(&app).await;
    // The same request from the portal's own origin goes through.
    let response = change_password(
        &app,
        &client,
        Some(&token),
        &[("origin", &app.base), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn sign_in_without_a_session_token_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    // A login-CSRF attempt: no session, no token.
    let response = app
        .client()
        .post(app.url("/signin"))
        .form(&[("email", "ada@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test]
async fn an_oversize_body_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.client();
    let token = app.csrf_token(&client, "/signup").await;
    let huge = "x".repeat(64 * 1024);
    let response = client
        .post(app.url("/signup"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "a@example.com"),
            ("display_name", &huge),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.text().await.unwrap().contains("too large"));
    let count: i64 = app.count("app_user").await;
    assert_eq!(count, 0);
}

#[sqlx::test]
async fn html_typed_into_a_name_is_shown_escaped(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app
        .signed_in_user("ada@example.com", "<script>alert(1)</script>")
        .await;
    for page in ["/", "/account"] {
        let html = app.get_html(&client, page).await;
        assert!(!html.contains("<script>alert(1)</script>"), "{page}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;"),
            "{page}"
        );
    }
}

#[sqlx::test]
async fn security_headers_are_on_every_response_including_errors(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.client();
    for path in ["/", "/signin", "/no/such/page", "/healthz"] {
        let response = app.get(&client, path).await;
        let headers = response.headers();
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers.contains_key("referrer-policy"), "{path}");
        assert!(headers.contains_key("x-request-id"), "{path}");
        assert!(
            !headers.contains_key("strict-transport-security"),
            "{path}: plain http"
        );
    }
    let not_found = app.get(&client, "/no/such/page").await;
    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    let request_id = not_found.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = not_found.text().await.unwrap();
    assert!(html.contains("Not Found") && html.contains(&request_id));
}

#[sqlx::test]
async fn signed_in_pages_are_never_cached(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    for path in ["/", "/account"] {
        assert_eq!(
            app.get(&client, path).await.headers()["cache-control"],
            "no-store",
            "{path}"
        );
    }
}

#[sqlx::test]
async fn the_session_cookie_is_http_only_and_same_site_lax(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app.get(&app.client(), "/signin").await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("gatehouse="));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Visitors to the landing page get no session at all.
    let landing = app.get(&app.client(), "/").await;
    assert!(!landing.headers().contains_key("set-cookie"));
}

#[sqlx::test]
async fn behind_https_cookies_are_secure_and_hsts_is_sent(pool: PgPool) {
    let app = TestApp::spawn_with(
        pool,
        &[("GATEHOUSE_PUBLIC_URL", "https://portal.example")],
        |_| {},
    )
    .await;
    let response = app.get(&app.client(), "/signin").await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("__Host-gatehouse=") && cookie.contains("Secure"),
        "{cookie}"
    );
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}
