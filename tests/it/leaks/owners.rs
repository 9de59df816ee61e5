//! What a leak report tells the key's owners: a `key.leaked` webhook (checked with the
//! standardwebhooks library) and a mail to the key's creator and the tenant's admins (received by
//! the real SMTP server), once however often the report comes.

use std::time::Duration;

use gatehouse::vocabulary::Environment;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::key_api::VERIFIER;
use crate::support::leaks::{KeysServer, Signer, report, send_signed};
use crate::support::management::{OPERATOR, post};
use crate::support::smtp::MailSink;
use crate::support::webhooks::{Receiver, verify_with_library};

#[sqlx::test]
async fn a_leaked_key_is_announced_by_webhook_and_mailed_to_its_creator_and_the_admins(
    pool: PgPool,
) {
    let scanner = Signer::new("k1");
    let keys = KeysServer::start(&[&scanner]).await;
    let sink = MailSink::start();
    let app = TestApp::spawn_with(
        pool.clone(),
        &[
            ("GATEHOUSE_OPERATOR_TOKENS", OPERATOR),
            ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
            ("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("GATEHOUSE_LEAK_GITHUB_KEYS_URL", &keys.url),
            ("GATEHOUSE_SMTP_URL", &sink.url()),
        ],
        |config| config.outbox_poll = Duration::from_millis(50),
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let receiver = Receiver::start().await;
    let created = post(
        &app,
        "/v1/tenants/acme/webhooks",
        OPERATOR,
        json!({ "name": "Security", "url": receiver.url, "environment": "live",
                "event_types": ["key.leaked"] }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let (live, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;

    let url = "https://github.com/octo/app/blob/0ab1/.env";
    let body = report(&[(&live, url)]);
    assert_eq!(
        send_signed(&app, &scanner, body.clone()).await.status(),
        200
    );

    let event = receiver.event("key.leaked").await;
    let verified: Value = verify_with_library(&secret, &event).expect("signed with the secret");
    let data = &verified["data"];
    assert_eq!(data["key"]["id"], json!(id));
    assert_eq!(data["key"]["environment"], "live");
    assert_eq!(
        data["key"]["masked"],
        format!("ak_live_••••{}", &live[live.len() - 4..])
    );
    assert_eq!(data["url"], url);
    assert_eq!(data["source"], "content");
    assert_eq!(data["action"], "revoke");
    assert_eq!(
        data["actor"],
        json!({ "type": "leak_report", "origin": "github" })
    );
    assert!(
        !String::from_utf8_lossy(&event.body).contains(live.as_str()),
        "the event holds the secret"
    );

    // The fixture's tenant admin created the key: one mail, not two.
    let mail = sink
        .mail(
            "admin@acme.example",
            "Your API key live key was found in public",
        )
        .await;
    assert!(mail.text.contains(url), "{}", mail.text);
    assert!(mail.text.contains("revoked it"), "{}", mail.text);
    let link = mail.link(&app.url("/t/acme/keys/"));
    assert_eq!(link, app.url(&format!("/t/acme/keys/{id}")));
    assert!(!mail.text.contains(&live));

    // Sent again: nothing new.
    assert_eq!(send_signed(&app, &scanner, body).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver
            .received()
            .iter()
            .filter(|received| received.event_type() == "key.leaked")
            .count(),
        1
    );
    sink.mail("admin@acme.example", "was found in public").await;
}
