//! `/t/{slug}/key-requests/{id}`: developers' live keys under "with an admin's approval": asked,
//! approved or denied, mailed, and revealed once.

use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{TestApp, location};
use crate::support::fixtures::{World, revealed, submit_key};
use crate::support::key_api::{code_of, key_api};
use crate::support::smtp::MailSink;

/// A tenant whose policy wants approval for live keys, and a developer's request for one.
async fn requested(app: &TestApp) -> (World, Uuid) {
    let world = World::build(app).await;
    let response = app
        .submit(
            &world.admin,
            "/t/acme/settings",
            "/t/acme/settings/keys",
            &[("live_keys", "approval")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = submit_key(
        app,
        &world.developer,
        "acme",
        &[
            ("name", "Payments prod"),
            ("environment", "live"),
            ("access", "scopes"),
            ("scopes", "read"),
            ("expiry", "never"),
            ("reason", "Going live with payments on Monday"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = location(&response).to_owned();
    assert!(to.starts_with("/t/acme/key-requests/"), "{to}");
    let id = to.rsplit('/').next().unwrap().parse().unwrap();
    (world, id)
}

async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    id: Uuid,
    action: &str,
    reason: &str,
) -> reqwest::Response {
    let page = format!("/t/acme/key-requests/{id}");
    app.submit(
        client,
        &page,
        &format!("{page}/{action}"),
        &[("reason", reason)],
    )
    .await
}

#[sqlx::test]
async fn a_pending_request_makes_no_key_and_cannot_be_revealed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (world, id) = requested(&app).await;
    assert_eq!(
        app.count("api_key").await,
        0,
        "no key exists while it waits"
    );
    let page = app
        .get_html(&world.developer, &format!("/t/acme/key-requests/{id}"))
        .await;
    assert!(page.contains("Waiting for a tenant admin") && page.contains("status-pending"));
    assert!(!page.contains("Reveal the key"));
    let response = post(&app, &world.developer, id, "reveal", "").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("still waiting for an admin")
    );
    assert_eq!(app.count("api_key").await, 0);

    // Developers cannot decide; the admin sees it waiting on the keys page.
    let response = post(&app, &world.developer, id, "approve", "").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let keys = app.get_html(&world.admin, "/t/acme/keys").await;
    assert!(keys.contains("Live keys waiting for approval"));
    assert!(keys.contains("Going live with payments on Monday"));
    // A request without a reason is refused, and nothing is filed.
    let response = submit_key(
        &app,
        &world.developer,
        "acme",
        &[
            ("name", "No reason"),
            ("environment", "live"),
            ("access", "full"),
            ("expiry", "never"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("Give a reason"));
    assert_eq!(app.count("key_request").await, 1);
    // Viewers and other tenants never see it.
    assert_eq!(
        app.get(&world.viewer, &format!("/t/acme/key-requests/{id}"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&world.outsider, &format!("/t/other/key-requests/{id}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn an_approved_request_is_mailed_and_revealed_once_by_its_requester(pool: PgPool) {
    let sink = MailSink::start();
    let app =
        TestApp::spawn_with(pool.clone(), &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    // A second instance on the same database sends from the same outbox: it is configured alike
    // (without SMTP it would write the mail to its log, as a deployment without SMTP does).
    let api = key_api(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())]).await;
    let (world, id) = requested(&app).await;

    let response = post(&app, &world.admin, id, "approve", "Enjoy").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let mail = sink
        .mail(
            "dev@example.com",
            "Your request for the live key Payments prod was approved",
        )
        .await;
    assert!(mail.text.contains("Alice Admin approved") && mail.text.contains("Enjoy"));
    assert!(mail.text.contains(&format!("/t/acme/key-requests/{id}")));
    assert_eq!(
        app.count("api_key").await,
        0,
        "the key is made at the reveal"
    );

    // Only the requester reveals it.
    let response = post(&app, &world.admin, id, "reveal", "").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = post(&app, &world.developer, id, "reveal", "").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let secret = revealed(&response.text().await.unwrap()).expect("the key is shown");
    assert!(secret.starts_with("ak_live_"));
    assert_eq!(code_of(&api, &secret).await, "VALID");

    let response = post(&app, &world.developer, id, "reveal", "").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = response.text().await.unwrap();
    assert!(page.contains("already revealed") && !page.contains(&secret));
    assert_eq!(app.count("api_key").await, 1);
    let audit = app.get_html(&world.admin, "/t/acme/audit").await;
    assert!(audit.contains("key_request.created") && audit.contains("key_request.approved"));
}

#[sqlx::test]
async fn a_denied_request_needs_a_reason_is_mailed_and_makes_no_key(pool: PgPool) {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    let (world, id) = requested(&app).await;

    let response = post(&app, &world.admin, id, "deny", "  ").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Give a reason for denying it")
    );
    let response = post(
        &app,
        &world.admin,
        id,
        "deny",
        "Use the sandbox until the audit",
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let mail = sink
        .mail(
            "dev@example.com",
            "Your request for the live key Payments prod was denied",
        )
        .await;
    assert!(mail.text.contains("Use the sandbox until the audit"));

    let page = app
        .get_html(&world.developer, &format!("/t/acme/key-requests/{id}"))
        .await;
    assert!(page.contains("Denied") && page.contains("Use the sandbox until the audit"));
    let response = post(&app, &world.developer, id, "reveal", "").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("denied: no key was made")
    );
    let response = post(&app, &world.admin, id, "approve", "").await;
    assert_eq!(response.status(), StatusCode::CONFLICT, "decided once");
    assert_eq!(app.count("api_key").await, 0);
}

#[sqlx::test]
async fn request_decisions_and_reveals_need_the_csrf_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (world, id) = requested(&app).await;
    for (client, action) in [
        (&world.admin, "approve"),
        (&world.admin, "deny"),
        (&world.developer, "reveal"),
    ] {
        let response = client
            .post(app.url(&format!("/t/acme/key-requests/{id}/{action}")))
            .form(&[("reason", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
    }
    let status: String =
        sqlx::query_scalar("SELECT status FROM key_request WHERE key_request_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "pending");
}
