//! `/t/{slug}/keys/{id}/roll` and `/t/{slug}/keys/{id}/revoke`.

use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use super::key_count;
use crate::support::app::{TestApp, assert_redirect, field_value};
use crate::support::fixtures::{TenantAdmin, World, create_key, revealed, roll};
use crate::support::key_api::{code_of, key_api};

#[sqlx::test]
async fn a_developer_cannot_roll_or_revoke_another_members_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, admins_key) = create_key(&app, &world.admin, "acme", "Admin's key", "live").await;
    let page = app
        .get_html(&world.developer, &format!("/t/acme/keys/{admins_key}"))
        .await;
    assert!(!page.contains("Roll key") && page.contains("Only its creator or a tenant admin"));
    assert_eq!(
        app.get(&world.developer, &format!("/t/acme/keys/{admins_key}/roll"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let roll = app
        .submit(
            &world.developer,
            "/t/acme/keys",
            &format!("/t/acme/keys/{admins_key}/roll"),
            &[("grace", "none"), ("form_id", "x1")],
        )
        .await;
    assert_eq!(roll.status(), StatusCode::FORBIDDEN);
    let revoke = app
        .submit(
            &world.developer,
            "/t/acme/keys",
            &format!("/t/acme/keys/{admins_key}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::FORBIDDEN);
    assert!(
        revoke
            .text()
            .await
            .unwrap()
            .contains("only the keys they created")
    );
    let (revoked, rolled): (Option<time::OffsetDateTime>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT revoked_at, rolled_at FROM api_key WHERE api_key_id = $1")
            .bind(admins_key)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(revoked.is_none() && rolled.is_none());
    assert_eq!(key_count(&app).await, 1);

    // Their own key they can revoke; an admin can revoke anyone's.
    let (_, own) = create_key(&app, &world.developer, "acme", "Dev's key", "test").await;
    let response = app
        .submit(
            &world.developer,
            "/t/acme/keys",
            &format!("/t/acme/keys/{own}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, another) = create_key(&app, &world.developer, "acme", "Dev's second key", "test").await;
    let response = app
        .submit(
            &world.admin,
            "/t/acme/keys",
            &format!("/t/acme/keys/{another}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn rolling_makes_a_linked_successor_and_keeps_the_old_key_for_the_grace(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (old_secret, old_id) = create_key(&app, &admin, "acme", "Billing", "live").await;
    let form = app
        .get_html(&admin, &format!("/t/acme/keys/{old_id}/roll"))
        .await;
    assert!(form.contains("Roll Billing?"));
    let form_id = field_value(&form, "form_id").unwrap();
    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{old_id}"),
            &format!("/t/acme/keys/{old_id}/roll"),
            &[("grace", "1h"), ("form_id", &form_id)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    let new_secret = revealed(&html).unwrap();
    assert_ne!(new_secret, old_secret);
    assert!(html.contains("keeps working until"));

    let (rolled_at, expires_at): (Option<time::OffsetDateTime>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT rolled_at, expires_at FROM api_key WHERE api_key_id = $1")
            .bind(old_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(rolled_at.is_some());
    let left = expires_at.unwrap() - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(59) && left <= time::Duration::hours(1),
        "{left}"
    );
    let new_id: Uuid = sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE rolled_from = $1")
        .bind(old_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (name, full_access, env): (String, bool, String) =
        sqlx::query_as("SELECT name, full_access, environment FROM api_key WHERE api_key_id = $1")
            .bind(new_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (name.as_str(), full_access, env.as_str()),
        ("Billing", true, "live")
    );

    // Linked on both pages.
    let old_page = app
        .get_html(&admin, &format!("/t/acme/keys/{old_id}"))
        .await;
    assert!(old_page.contains(&format!("/t/acme/keys/{new_id}")) && old_page.contains("rolled"));
    let new_page = app
        .get_html(&admin, &format!("/t/acme/keys/{new_id}"))
        .await;
    assert!(new_page.contains(&format!("/t/acme/keys/{old_id}")));
    // Inside its grace the old key works: the list shows it rolled, with its end in the Expires
    // column, instead of greying it.
    let list = app.get_html(&admin, "/t/acme/keys").await;
    assert!(
        !list.contains(r#"class="inactive""#),
        "a rolled key that still works is not greyed"
    );
    assert!(list.contains("status-rolled"));
    assert!(old_page.contains("this key still works until") && !old_page.contains("Roll key"));
    // A rolled key cannot be rolled again.
    assert_eq!(
        app.get(&admin, &format!("/t/acme/keys/{old_id}/roll"))
            .await
            .status(),
        StatusCode::CONFLICT
    );
}

#[sqlx::test]
async fn revoking_asks_first_then_takes_effect_and_stays_listed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, id) = create_key(&app, &admin, "acme", "Old integration", "test").await;
    let confirm = app
        .get_html(&admin, &format!("/t/acme/keys/{id}/revoke"))
        .await;
    assert!(confirm.contains("Revoke Old integration?") && confirm.contains("cannot be undone"));
    let revoked: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT revoked_at FROM api_key")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(revoked.is_none(), "the confirmation page changes nothing");
    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{id}/revoke"),
            &format!("/t/acme/keys/{id}/revoke"),
            &[],
        )
        .await;
    assert_redirect(&response, format!("/t/acme/keys/{id}"));
    let page = app.get_html(&admin, &format!("/t/acme/keys/{id}")).await;
    assert!(page.contains("Key revoked") && page.contains("Revoked</strong> by Ada"));
    let list = app.get_html(&admin, "/t/acme/keys").await;
    assert!(list.contains(r#"class="inactive""#) && list.contains("status-revoked"));
    let again = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{id}"),
            &format!("/t/acme/keys/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[sqlx::test]
async fn every_create_roll_and_revoke_is_in_the_audit_log(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (secret, id) = create_key(&app, &admin, "acme", "Audited", "live").await;
    roll(&app, &admin, "acme", id, "none").await;
    app.submit(
        &admin,
        "/t/acme/keys",
        &format!("/t/acme/keys/{id}/revoke"),
        &[],
    )
    .await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE action LIKE 'key.%' ORDER BY at, action",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["key.created", "key.rolled", "key.revoked"]);
    let log = app
        .get_html(&admin, "/t/acme/audit?action=key.rolled")
        .await;
    assert!(log.contains("key:Audited (ak_live_••••"));
    assert!(!log.contains(&secret[8..]));
}

#[sqlx::test]
async fn a_key_revoked_or_rolled_in_the_portal_is_refused_by_the_key_api_at_once(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (revoked, revoked_id) = create_key(&app, &admin, "acme", "To revoke", "live").await;
    let (rolled, rolled_id) = create_key(&app, &admin, "acme", "To roll", "live").await;
    // Both are verified, so both are in the cache.
    for secret in [&revoked, &rolled] {
        assert_eq!(code_of(&app, secret).await, "VALID");
    }
    app.submit(
        &admin,
        "/t/acme/keys",
        &format!("/t/acme/keys/{revoked_id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(code_of(&app, &revoked).await, "REVOKED");

    let response = roll(&app, &admin, "acme", rolled_id, "none").await;
    let successor = revealed(&response.text().await.unwrap()).unwrap();
    assert_eq!(code_of(&app, &rolled).await, "EXPIRED");
    assert_eq!(code_of(&app, &successor).await, "VALID");
}

#[sqlx::test]
async fn the_creator_is_mailed_when_someone_else_rolls_or_revokes_their_key(pool: PgPool) {
    let sink = crate::support::smtp::MailSink::start();
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    let world = World::build(&app).await;
    let (_, own) = create_key(&app, &world.developer, "acme", "mine", "test").await;
    let (_, other) = create_key(&app, &world.developer, "acme", "billing", "test").await;

    // The developer's own revocation tells nobody.
    let revoke = |client, key: Uuid| {
        let app = &app;
        async move {
            app.submit(
                client,
                &format!("/t/acme/keys/{key}/revoke"),
                &format!("/t/acme/keys/{key}/revoke"),
                &[],
            )
            .await
        }
    };
    assert_eq!(
        revoke(&world.developer, own).await.status(),
        StatusCode::SEE_OTHER
    );
    // The admin's does.
    assert_eq!(
        revoke(&world.admin, other).await.status(),
        StatusCode::SEE_OTHER
    );
    let notice = sink
        .mail(
            "dev@example.com",
            "Your API key billing was revoked by someone else",
        )
        .await;
    assert!(
        notice.text.contains("Alice Admin revoked your API key"),
        "{}",
        notice.text
    );
    assert!(
        notice
            .text
            .contains(&app.url(&format!("/t/acme/keys/{other}")))
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !sink
            .received()
            .iter()
            .any(|mail| mail.subject.contains("mine was revoked")),
        "no notice for one's own change"
    );
}
