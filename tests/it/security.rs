//! Rules every page obeys: CSRF, cross-site refusal, headers, escaping, body limits.

use reqwest::{Client, Response, StatusCode};
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::fixtures::{TenantAdmin, create_key};

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

#[sqlx::test]
async fn unsafe_portal_requests_with_a_body_other_than_a_form_are_refused_and_change_nothing(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, key_id) = create_key(&app, &admin, "acme", "Kept", "live").await;
    let token = app.csrf_token(&admin, "/t/acme/keys/new").await;
    let body =
        format!("csrf_token={token}&name=Smuggled&environment=live&access=full&expiry=never");
    for content_type in [
        "text/plain",
        "application/json",
        "multipart/form-data; boundary=x",
    ] {
        for path in [
            "/t/acme/keys".to_owned(),
            format!("/t/acme/keys/{key_id}/revoke"),
        ] {
            let response = admin
                .post(app.url(&path))
                .header("content-type", content_type)
                .header("x-csrf-token", &token)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type} to {path}"
            );
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .contains("accepts only its own forms")
            );
        }
    }
    assert_eq!(app.count("api_key").await, 1, "no key was made");
    let list = app.get_html(&admin, "/t/acme/keys").await;
    assert!(list.contains("status-active") && !list.contains("status-revoked"));
}

/// Query values no page expects, percent-encoded as they travel.
const HOSTILE: [&str; 9] = [
    "%00",
    "a%00b",
    "%ED%A0%80",
    "%0D%0AX-Injected:%201",
    "%25",
    "_",
    "%",
    "%ZZ",
    "%C0%AF",
];
/// Every query parameter a page reads, tried on every page.
const PARAMETERS: [&str; 9] = [
    "q",
    "environment",
    "status",
    "page",
    "action",
    "range",
    "next",
    "code",
    "state",
];

/// The status line's code for a GET sent byte for byte, for what an HTTP client library refuses
/// to send (a 100 KB address).
async fn raw_get_status(app: &TestApp, target: &str, cookie: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer:.80}"))
}

#[sqlx::test]
async fn hostile_query_strings_on_every_page_never_cause_a_server_error(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, key_id) = create_key(&app, &admin, "acme", "Probe", "live").await;
    let (probe, jar) = app.client_with_jar();
    app.sign_in(&probe, "ada@example.com", PASSWORD).await;
    let cookie = app.session_cookie_in(&jar).unwrap();
    let mut paths: Vec<String> = gatehouse::web::tenants::RULES
        .iter()
        .filter(|(method, _, _)| *method == "get")
        .map(|(_, path, _)| {
            path.replace("{slug}", "acme")
                .replace("/keys/{id}", &format!("/keys/{key_id}"))
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
        })
        .collect();
    for public in [
        "/",
        "/signin",
        "/signup",
        "/account",
        "/tenants/new",
        "/invitations/x",
        "/auth/oidc/corp",
        "/healthz",
        "/readyz",
    ] {
        paths.push(public.to_owned());
    }
    // The longest address the HTTP client sends; longer ones go byte for byte below.
    let long = "A".repeat(60 * 1024);
    let huge = "A".repeat(100 * 1024);
    let signed_out = app.client();
    for path in &paths {
        for parameter in PARAMETERS {
            for value in HOSTILE.iter().copied().chain([long.as_str()]) {
                for client in [&admin, &signed_out] {
                    let url = format!("{}{path}?{parameter}={value}", app.base);
                    let response = client.get(&url).send().await.unwrap();
                    assert!(
                        !response.status().is_server_error(),
                        "{} for {path}?{parameter}={}",
                        response.status(),
                        &value[..value.len().min(20)]
                    );
                }
            }
            let status = raw_get_status(&app, &format!("{path}?{parameter}={huge}"), &cookie).await;
            assert!(status < 500, "{status} for {path}?{parameter}=<100 KB>");
        }
    }
    for url in [
        "/t/acme/keys?q=%00",
        "/t/acme/audit?action=%00",
        "/t/acme/keys?q=%ED%A0%80",
    ] {
        let response = app.get(&admin, url).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("cannot read (a NUL byte or broken UTF-8)"),
            "{url}"
        );
    }
}
