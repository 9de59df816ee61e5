//! `/password/forgot` and `/password/reset`: getting back in by mail, read from a real SMTP server.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp, location};
use crate::support::smtp::MailSink;

const NEW_PASSWORD: &str = "a brand new passphrase for ada";

async fn app_with_mail(pool: PgPool, sink: &MailSink) -> TestApp {
    TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await
}

async fn ask_for_reset(app: &TestApp, client: &reqwest::Client, email: &str) -> reqwest::Response {
    app.submit(
        client,
        "/password/forgot",
        "/password/forgot",
        &[("email", email)],
    )
    .await
}

/// Posts the new-password form of the reset page (the token is in `client`'s session).
pub(crate) async fn set_new_password(
    app: &TestApp,
    client: &reqwest::Client,
    password: &str,
) -> reqwest::Response {
    app.submit(
        client,
        "/password/reset",
        "/password/reset",
        &[("new_password", password)],
    )
    .await
}

/// Follows a mailed reset link as a browser does (the token moves into the session) and returns
/// the page it lands on.
async fn follow_reset_link(
    app: &TestApp,
    client: &reqwest::Client,
    link: &str,
) -> reqwest::Response {
    let response = client.get(link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/password/reset");
    app.get(client, "/password/reset").await
}

#[sqlx::test]
async fn a_reset_link_from_the_mail_sets_a_new_password_once_and_ends_every_session(pool: PgPool) {
    let sink = MailSink::start();
    let app = app_with_mail(pool, &sink).await;
    let signed_in = app.signed_in_user("ada@example.com", "Ada").await;

    let stranger = app.client();
    let response = ask_for_reset(&app, &stranger, "Ada@Example.com").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("If an account uses")
    );

    let mail = sink
        .mail("ada@example.com", "Reset your Gatehouse password")
        .await;
    let link = mail.link(&app.url("/password/reset?token="));
    let token = link.rsplit('=').next().unwrap();
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    assert!(
        mail.html.contains(&link),
        "the HTML part carries the same link"
    );
    assert_eq!(mail.to, "ada@example.com");
    assert!(
        mail.from.starts_with("Gatehouse <gatehouse@"),
        "{}",
        mail.from
    );

    let page = stranger.get(&link).send().await.unwrap();
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let form = app.get(&stranger, "/password/reset").await;
    assert_eq!(form.headers()["referrer-policy"], "no-referrer");
    assert_eq!(form.status(), StatusCode::OK, "{link}");
    assert!(form.text().await.unwrap().contains("Set new password"));
    // A weak password is refused and the link still works.
    let weak = set_new_password(&app, &stranger, "short").await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let done = set_new_password(&app, &stranger, NEW_PASSWORD).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/signin");

    // The other session ended; the old password is gone, the new one works.
    assert_eq!(
        app.get(&signed_in, "/account").await.status(),
        StatusCode::SEE_OTHER
    );
    let old = app
        .sign_in(&app.client(), "ada@example.com", PASSWORD)
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app
        .sign_in(&app.client(), "ada@example.com", NEW_PASSWORD)
        .await;
    assert_eq!(new.status(), StatusCode::SEE_OTHER);
    sink.mail("ada@example.com", "Your Gatehouse password was changed")
        .await;

    // Used once: the same link now says it cannot be used.
    let again = app.client();
    let response = follow_reset_link(&app, &again, &link).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("cannot be used"));
}

#[sqlx::test]
async fn an_expired_reset_link_is_refused(pool: PgPool) {
    let sink = MailSink::start();
    let app = app_with_mail(pool, &sink).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    ask_for_reset(&app, &app.client(), "ada@example.com").await;
    let link = sink
        .mail("ada@example.com", "Reset your")
        .await
        .link(&app.url("/password/reset?token="));
    sqlx::query("UPDATE email_token SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let client = app.client();
    let response = follow_reset_link(&app, &client, &link).await;
    assert_eq!(response.status(), StatusCode::GONE);
    // Posting anyway (a form kept open past expiry) changes nothing.
    let token = app.csrf_token(&client, "/password/forgot").await;
    let posted = client
        .post(app.url("/password/reset"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("new_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::GONE);
    let old = app
        .sign_in(&app.client(), "ada@example.com", PASSWORD)
        .await;
    assert_eq!(
        old.status(),
        StatusCode::SEE_OTHER,
        "the password is unchanged"
    );
}

#[sqlx::test]
async fn the_reset_link_uses_the_public_url_whatever_host_the_request_named(pool: PgPool) {
    let sink = MailSink::start();
    let app = app_with_mail(pool, &sink).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let client = app.client();
    let token = app.csrf_token(&client, "/password/forgot").await;
    let response = client
        .post(app.url("/password/forgot"))
        .header("Host", "attacker.example")
        .form(&[("csrf_token", token.as_str()), ("email", "ada@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mail = sink.mail("ada@example.com", "Reset your").await;
    assert!(!mail.text.contains("attacker.example"), "{}", mail.text);
    assert!(mail.text.contains(&app.url("/password/reset?token=")));
}

#[sqlx::test]
async fn an_unknown_email_gets_the_same_answer_in_comparable_time_and_no_mail(pool: PgPool) {
    let sink = MailSink::start();
    let app = app_with_mail(pool, &sink).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    // Three of each per address stays within the throttle (3 per address, 10 per client).
    for round in 0..3 {
        let client = app.client();
        app.csrf_token(&client, "/password/forgot").await;
        let started = Instant::now();
        let one = ask_for_reset(&app, &client, "ada@example.com").await;
        known.push(started.elapsed());
        let started = Instant::now();
        let other = ask_for_reset(&app, &client, &format!("nobody{round}@example.com")).await;
        unknown.push(started.elapsed());
        assert_eq!(one.status(), other.status());
        let one = one.text().await.unwrap();
        let other = other.text().await.unwrap();
        assert!(one.contains("If an account uses") && other.contains("If an account uses"));
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[1], unknown[1]);
    let difference = known.abs_diff(unknown);
    eprintln!("reset request, median of 3: {known:?} with an account, {unknown:?} without");
    assert!(
        difference < Duration::from_millis(50),
        "median {known:?} with an account, {unknown:?} without"
    );
    sink.wait_for("ada@example.com", 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        sink.received()
            .iter()
            .all(|mail| mail.rcpt_to == ["ada@example.com"]),
        "no mail to an address without an account"
    );
}

#[sqlx::test]
async fn reset_requests_are_throttled_per_address_and_per_client(pool: PgPool) {
    let sink = MailSink::start();
    let app = app_with_mail(pool, &sink).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    let client = app.client();
    for _ in 0..3 {
        assert_eq!(
            ask_for_reset(&app, &client, "ada@example.com")
                .await
                .status(),
            StatusCode::OK
        );
    }
    let throttled = ask_for_reset(&app, &client, "ada@example.com").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    assert!(
        throttled
            .text()
            .await
            .unwrap()
            .contains("Too many reset requests")
    );
    sink.wait_for("ada@example.com", 3).await;

    // Per client: other addresses from the same client run out at 10 in all.
    for n in 0..7 {
        let status = ask_for_reset(&app, &client, &format!("other{n}@example.com"))
            .await
            .status();
        assert_eq!(status, StatusCode::OK, "request {n}");
    }
    let throttled = ask_for_reset(&app, &client, "someone.else@example.com").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        sink.received().len(),
        3 + 1,
        "three resets and the sign-up's verification"
    );
}
