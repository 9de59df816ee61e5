//! `/signup`, `/signin`, `/signout`.

use std::time::{Duration, Instant};

use gatehouse::domain::passwords::Passwords;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp, assert_redirect, location, retry_after};
use crate::support::binary::Binary;

#[sqlx::test]
async fn signing_up_signs_in_and_shows_the_home_page(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.client();
    let response = app
        .sign_up(&client, "Ada@Example.com", "Ada Lovelace")
        .await;
    assert_redirect(&response, "/");
    let home = app.get_html(&client, "/").await;
    assert!(home.contains("Welcome, Ada Lovelace"));
    assert!(home.contains("Your account is ready"));
    assert!(home.contains("You do not belong to a tenant yet"));
}

#[sqlx::test]
async fn an_email_can_sign_up_only_once_in_any_spelling(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let client = app.client();
    let response = app
        .sign_up(&client, "  ADA@example.COM ", "Another Ada")
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("An account with this email already exists"));
    let count: i64 = app.count("app_user").await;
    assert_eq!(count, 1);
}

#[sqlx::test]
async fn short_long_and_common_passwords_are_refused_with_a_reason(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let long = "a fine long passphrase ".repeat(12);
    let cases = [
        ("too short pw", "at least 15 characters"),
        (long.as_str(), "at most 256 characters"),
        ("passwordpassword", "too easy to guess"),
        ("123456789012345", "too easy to guess"),
        ("password1234567", "too easy to guess"),
        ("iloveyou1234567", "too easy to guess"),
        ("Password123456!", "too easy to guess"),
    ];
    for (password, reason) in cases {
        let client = app.client();
        let response = app
            .submit(
                &client,
                "/signup",
                "/signup",
                &[
                    ("email", "bo@example.com"),
                    ("display_name", "Bo"),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains(reason), "{password}: expected {reason:?}");
        // What was typed is kept, except the password.
        assert!(page.contains(r#"value="bo@example.com""#));
        assert!(!page.contains(password));
    }
    let count: i64 = app.count("app_user").await;
    assert_eq!(count, 0);
}

#[sqlx::test]
async fn signing_in_with_the_right_password_returns_to_the_page_asked_for(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let client = app.client();
    let redirect = app.get(&client, "/account").await;
    assert_redirect(&redirect, "/signin?next=%2Faccount");
    let response = app
        .submit(
            &client,
            "/signin?next=%2Faccount",
            "/signin",
            &[
                ("email", "ADA@example.com"),
                ("password", PASSWORD),
                ("next", "/account"),
            ],
        )
        .await;
    assert_redirect(&response, "/account");
    let account = app.get(&client, "/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    assert!(account.text().await.unwrap().contains("ada@example.com"));
}

#[sqlx::test]
async fn next_never_sends_a_user_to_another_site(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let client = app.client();
    let response = app
        .submit(
            &client,
            "/signin",
            "/signin",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_redirect(&response, "/");
}

/// The page without the parts that legitimately differ (the email typed in).
async fn answer(app: &TestApp, email: &str, password: &str) -> (StatusCode, String, Duration) {
    let client = app.client();
    let token = app.csrf_token(&client, "/signin").await;
    let started = Instant::now();
    let response = client
        .post(app.url("/signin"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let status = response.status();
    let body = response
        .text()
        .await
        .unwrap()
        .replace(email, "EMAIL")
        .replace(&token, "TOKEN");
    (status, body, elapsed)
}

#[sqlx::test]
async fn wrong_password_and_unknown_email_get_the_same_answer_in_comparable_time(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let mut wrong_time = Duration::ZERO;
    let mut unknown_time = Duration::ZERO;
    for _ in 0..3 {
        let (wrong_status, wrong_body, wrong) =
            answer(&app, "ada@example.com", "not the password at all").await;
        let (unknown_status, unknown_body, unknown) =
            answer(&app, "nobody@example.com", "not the password at all").await;
        assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown_status, wrong_status);
        assert_eq!(unknown_body, wrong_body);
        assert!(wrong_body.contains("That email and password do not match an account."));
        wrong_time += wrong;
        unknown_time += unknown;
    }
    // Without the dummy hash an unknown email answers ~50x faster; allow generous noise.
    let ratio = unknown_time.as_secs_f64() / wrong_time.as_secs_f64();
    assert!(
        (0.4..2.5).contains(&ratio),
        "unknown/wrong time ratio {ratio:.2}"
    );
}

#[sqlx::test]
async fn failed_sign_ins_are_throttled_per_account(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let client = app.client();
    for attempt in 0..10 {
        let response = app
            .sign_in(&client, "ada@example.com", "wrong password, try again")
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // Now even the right password is refused, from any client, with a clear message.
    let other = app.client();
    let response = app.sign_in(&other, "ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=900).contains(&retry_after(&response)));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );
    // Another account from the same client is not affected.
    app.signed_in_user("bo@example.com", "Bo").await;
    let response = app.sign_in(&app.client(), "bo@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn failed_sign_ins_are_throttled_per_client_address(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let client = app.client();
    // Spread over many accounts so the per-account limit never triggers.
    for attempt in 0..30 {
        let email = format!("guess{attempt}@example.com");
        let response = app
            .sign_in(&client, &email, "wrong password, try again")
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let response = app.sign_in(&client, "ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy(pool: PgPool) {
    // Trusting loopback as a proxy, each forwarded address is its own client.
    let app =
        TestApp::spawn_with(pool, &[("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1")], |_| {}).await;
    let client = app.client();
    for attempt in 0..30 {
        let token = app.csrf_token(&client, "/signin").await;
        let email = format!("guess{attempt}@example.com");
        client
            .post(app.url("/signin"))
            .header("x-forwarded-for", "198.51.100.7")
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", &email),
                ("password", "wrong password here"),
            ])
            .send()
            .await
            .unwrap();
    }
    let token = app.csrf_token(&client, "/signin").await;
    let from = |ip: &'static str| {
        client
            .post(app.url("/signin"))
            .header("x-forwarded-for", ip)
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", "x@example.com"),
                ("password", "wrong password here"),
            ])
            .send()
    };
    assert_eq!(
        from("198.51.100.7").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        from("198.51.100.8").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn an_untrusted_peer_cannot_dodge_throttling_with_forwarded_for(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.client();
    for attempt in 0..30 {
        let token = app.csrf_token(&client, "/signin").await;
        let email = format!("guess{attempt}@example.com");
        let forged = format!("203.0.113.{attempt}");
        client
            .post(app.url("/signin"))
            .header("x-forwarded-for", forged)
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", &email),
                ("password", "wrong password here"),
            ])
            .send()
            .await
            .unwrap();
    }
    let response = app
        .sign_in(&client, "someone@example.com", "wrong password here")
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test]
async fn the_session_id_changes_at_sign_in(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let (client, jar) = app.client_with_jar();
    app.get(&client, "/signin").await;
    let before = app
        .session_cookie_in(&jar)
        .expect("the sign-in form starts a session");
    let response = app.sign_in(&client, "ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = app.session_cookie_in(&jar).unwrap();
    assert_ne!(before, after);
    // The pre-sign-in id is not a signed-in session.
    let replay = app.client();
    let response = replay
        .get(app.url("/account"))
        .header("cookie", before)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn the_old_cookie_is_dead_after_sign_out(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (client, jar) = app.client_with_jar();
    app.sign_up(&client, "ada@example.com", "Ada").await;
    let cookie = app.session_cookie_in(&jar).unwrap();
    let sessions_before: i64 = app.count("tower_sessions.session").await;
    let response = app.submit(&client, "/account", "/signout", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let sessions_after: i64 = app.count("tower_sessions.session").await;
    assert_eq!(
        sessions_after,
        sessions_before - 1,
        "the server-side record is deleted"
    );
    let replay = app
        .client()
        .get(app.url("/account"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    assert!(location(&replay).starts_with("/signin"));
}

#[sqlx::test]
async fn sign_out_is_not_possible_with_a_get(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = app.get(&client, "/signout").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.get(&client, "/account").await.status(), StatusCode::OK);
}

#[sqlx::test]
async fn an_idle_session_ends(pool: PgPool) {
    let app = TestApp::spawn_with(pool, &[], |config| {
        config.session_idle = Duration::from_secs(2);
    })
    .await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    // Activity keeps it alive past the idle timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(app.get(&client, "/account").await.status(), StatusCode::OK);
    }
    // ...silence ends it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = app.get(&client, "/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn a_session_ends_at_its_absolute_lifetime_however_active(pool: PgPool) {
    let app = TestApp::spawn_with(pool, &[], |config| {
        config.session_lifetime = Duration::from_secs(2);
    })
    .await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    for _ in 0..2 {
        assert_eq!(app.get(&client, "/account").await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let response = app.get(&client, "/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let sessions: i64 = app.count("tower_sessions.session").await;
    assert_eq!(sessions, 0, "the expired session is removed from the store");
}

#[sqlx::test]
async fn parallel_sign_ins_hold_at_most_one_argon2_block_per_hashing_slot(pool: PgPool) {
    // The account's hash is made here, so the server has hashed nothing when it is measured idle.
    let hash = Passwords::new(1).unwrap().hash(PASSWORD).await.unwrap();
    sqlx::query(
        "INSERT INTO app_user (email, display_name, password_hash) VALUES ('ada@example.com', 'Ada', $1)",
    )
    .bind(hash)
    .execute(&pool)
    .await
    .unwrap();
    let server = Binary::start(&pool, &[]).await;
    let app = &server.app;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.resident_mib("VmRSS");
    for _round in 0..3 {
        let mut browsers = Vec::new();
        for _ in 0..20 {
            let client = app.client();
            let token = app.csrf_token(&client, "/signin").await;
            browsers.push((client, token));
        }
        let sign_ins: Vec<_> = browsers
            .into_iter()
            .map(|(client, token)| {
                let url = app.url("/signin");
                tokio::spawn(async move {
                    client
                        .post(url)
                        .form(&[
                            ("csrf_token", token.as_str()),
                            ("email", "ada@example.com"),
                            ("password", PASSWORD),
                        ])
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for sign_in in sign_ins {
            assert_eq!(sign_in.await.unwrap(), StatusCode::SEE_OTHER);
        }
    }
    let peak = server.resident_mib("VmHWM");
    let slots = std::thread::available_parallelism().map_or(2, usize::from) as u64;
    server.stop().await;
    // 19 MiB per slot, and room for everything else 60 sign-ins touch.
    assert!(
        peak <= idle + slots * 19 + 40,
        "peak {peak} MiB from idle {idle} MiB with {slots} hashing slots"
    );
}
