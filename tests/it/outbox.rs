//! The outbox behind every mail: real SMTP (aiosmtpd), several instances, an SMTP server that is
//! down for a while, and the real binary's logs.

use std::collections::HashMap;
use std::time::Duration;

use gatehouse::domain::mail::{self, Mail};
use sqlx::PgPool;

use crate::auth::reset::set_new_password;
use crate::support::app::{TestApp, location};
use crate::support::binary::Binary;
use crate::support::smtp::MailSink;

const NEW_PASSWORD: &str = "a brand new passphrase for ada";

fn quick(config: &mut gatehouse::config::Config) {
    config.outbox_poll = Duration::from_millis(50);
    config.outbox_first_retry = Duration::from_millis(300);
}

async fn queue_invitations(pool: &PgPool, count: usize) {
    for n in 0..count {
        let mail = Mail::Invitation {
            tenant: "Acme".into(),
            inviter: "Ada".into(),
            role: "developer".into(),
            link: format!("http://127.0.0.1/invitations/{n}"),
        };
        mail::send(pool, &format!("person{n}@example.com"), mail)
            .await
            .unwrap();
    }
}

#[sqlx::test]
async fn two_instances_share_one_outbox_and_every_mail_arrives_once(pool: PgPool) {
    let sink = MailSink::start();
    // Written while no instance runs (as before a restart): none is lost.
    queue_invitations(&pool, 20).await;
    let env = [("GATEHOUSE_SMTP_URL", sink.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let one = TestApp::spawn_with(pool.clone(), &env, quick).await;
    let two = TestApp::spawn_with(pool.clone(), &env, quick).await;
    queue_invitations(&pool, 20).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sink.received().len() < 40 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a duplicate to show up, if there were one.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let received = sink.received();
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for mail in &received {
        *per_recipient.entry(mail.rcpt_to.join(",")).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 20, "every recipient got mail");
    assert!(per_recipient.values().all(|n| *n == 2), "{per_recipient:?}");
    assert_eq!(received.len(), 40, "every mail arrived once");
    let ids: std::collections::HashSet<_> = received.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len(), 40, "each mail has its own Message-ID");
    let sent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_message WHERE sent_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(sent, 40);
    one.stop().await;
    two.stop().await;
}

#[sqlx::test]
async fn mail_sent_while_smtp_is_down_arrives_late_once_with_every_attempt_recorded(pool: PgPool) {
    let mut sink = MailSink::start();
    sink.pause();
    let app =
        TestApp::spawn_with(pool.clone(), &[("GATEHOUSE_SMTP_URL", &sink.url())], quick).await;
    app.signed_in_user("ada@example.com", "Ada").await;
    // Two failed attempts (at once, then after 300 ms), each recorded with its error.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let failures: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox_attempt WHERE error IS NOT NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if failures >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed attempts recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (attempts, last_error, sent): (i32, Option<String>, bool) =
        sqlx::query_as("SELECT attempts, last_error, sent_at IS NOT NULL FROM outbox_message")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(attempts >= 2 && !sent);
    assert!(
        last_error.unwrap().contains("SMTP"),
        "the error is recorded"
    );
    assert!(sink.received().is_empty());

    sink.resume();
    let mails = sink.wait_for("ada@example.com", 1).await;
    assert!(mails[0].subject.contains("Confirm your email address"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.received().len(), 1, "sent once, late");
    let successes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_attempt WHERE error IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(successes, 1);
    // Once sent, the stored payload no longer holds the link's token.
    let payload: String = sqlx::query_scalar("SELECT payload::text FROM outbox_message")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!payload.contains("token="), "{payload}");
}

#[sqlx::test]
async fn no_token_or_password_reaches_the_log(pool: PgPool) {
    let sink = MailSink::start();
    let server = Binary::start(
        &pool,
        &[("GATEHOUSE_SMTP_URL", &sink.url()), ("RUST_LOG", "debug")],
    )
    .await;
    let app = &server.app;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let verify = sink.mail("ada@example.com", "Confirm your email").await;
    let verify_link = verify.link(&app.url("/account/verify?token="));
    assert_eq!(
        app.get(&client, &verify_link[app.base.len()..])
            .await
            .status(),
        reqwest::StatusCode::SEE_OTHER
    );

    let stranger = app.client();
    app.submit(
        &stranger,
        "/password/forgot",
        "/password/forgot",
        &[("email", "ada@example.com")],
    )
    .await;
    let reset = sink.mail("ada@example.com", "Reset your").await;
    let reset_link = reset.link(&app.url("/password/reset?token="));
    let response = stranger.get(&reset_link).send().await.unwrap();
    assert_eq!(location(&response), "/password/reset");
    let done = set_new_password(app, &stranger, NEW_PASSWORD).await;
    assert_eq!(done.status(), reqwest::StatusCode::SEE_OTHER);
    sink.mail("ada@example.com", "password was changed").await;

    let logs = server.stop().await;
    assert!(
        logs.contains("mail goes to SMTP at"),
        "the start-up log says where mail goes"
    );
    assert!(
        logs.contains("password reset by mailed link"),
        "the log was captured"
    );
    for link in [&verify_link, &reset_link] {
        let token = link.rsplit('=').next().unwrap();
        assert!(!logs.contains(token), "a mailed token is in the logs");
    }
    assert!(
        !logs.contains(crate::support::app::PASSWORD),
        "a password is in the logs"
    );
    assert!(!logs.contains(NEW_PASSWORD), "a password is in the logs");
}

#[sqlx::test]
async fn without_smtp_each_mail_is_logged_with_recipient_subject_and_link(pool: PgPool) {
    let server = Binary::start(&pool, &[]).await;
    let app = &server.app;
    app.signed_in_user("ada@example.com", "Ada").await;
    app.submit(
        &app.client(),
        "/password/forgot",
        "/password/forgot",
        &[("email", "ada@example.com")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let reset_prefix = app.url("/password/reset?token=");
    let logs = server.stop().await;
    assert!(
        logs.contains("mail goes to the log only (GATEHOUSE_SMTP_URL is not set)"),
        "{logs}"
    );
    let line = logs
        .lines()
        .find(|line| line.contains("Reset your Gatehouse password"))
        .expect("the reset mail is logged");
    assert!(line.contains("ada@example.com"), "{line}");
    assert!(line.contains(&reset_prefix), "{line}");
    let sent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_message WHERE sent_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(sent, 2, "the verification and the reset mail, both done");
}

#[sqlx::test]
async fn a_public_https_deployment_without_smtp_warns_at_start(pool: PgPool) {
    let server = Binary::start(
        &pool,
        &[("GATEHOUSE_PUBLIC_URL", "https://portal.example.test")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logs = server.stop().await;
    let warning = logs
        .lines()
        .find(|line| line.contains("WARN") && line.contains("GATEHOUSE_SMTP_URL"))
        .unwrap_or_else(|| panic!("no warning naming GATEHOUSE_SMTP_URL: {logs}"));
    assert!(warning.contains("mail is not sent"), "{warning}");
}
