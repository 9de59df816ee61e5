//! `/t/{slug}/settings`: renaming a tenant, and deleting it (typed confirmation, every key revoked
//! at once on every instance, the audit trail kept).

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::{TestApp, assert_redirect};
use crate::support::fixtures::{World, create_key};
use crate::support::key_api::{code_of, key_api};

#[sqlx::test]
async fn an_admin_renames_the_tenant_and_its_urls_stay(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let page = app.get_html(&world.admin, "/t/acme/settings").await;
    assert!(page.contains("Delete this tenant"));

    let response = app
        .submit(
            &world.admin,
            "/t/acme/settings",
            "/t/acme/settings/name",
            &[("name", "  Acme Rockets ")],
        )
        .await;
    assert_redirect(&response, "/t/acme/settings");
    let page = app.get_html(&world.admin, "/t/acme/settings").await;
    assert!(page.contains("The tenant is now called Acme Rockets."));
    assert!(
        app.get_html(&world.viewer, "/t/acme")
            .await
            .contains("<h1>Acme Rockets</h1>")
    );
    let audit = app.get_html(&world.admin, "/t/acme/audit").await;
    assert!(audit.contains("tenant.renamed"), "{audit}");
}

#[sqlx::test]
async fn a_bad_name_is_refused_with_the_reason_and_the_typed_text_kept(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let long = "x".repeat(81);
    let response = app
        .submit(
            &world.admin,
            "/t/acme/settings",
            "/t/acme/settings/name",
            &[("name", &long)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("at most 80 characters") && page.contains(&long));
    assert!(
        app.get_html(&world.admin, "/t/acme")
            .await
            .contains("<h1>Acme</h1>")
    );
}

#[sqlx::test]
async fn only_admins_reach_the_settings(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    for client in [&world.developer, &world.viewer] {
        assert_eq!(
            app.get(client, "/t/acme/settings").await.status(),
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        app.get(&world.outsider, "/t/acme/settings").await.status(),
        StatusCode::NOT_FOUND
    );
    let token = app.csrf_token(&world.developer, "/t/acme").await;
    let response = world
        .developer
        .post(app.url("/t/acme/settings/delete"))
        .form(&[("csrf_token", token.as_str()), ("confirm", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        app.get_html(&world.viewer, "/t/acme")
            .await
            .contains("Acme")
    );
}

#[sqlx::test]
async fn deleting_needs_the_slug_typed_exactly(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (secret, _) = create_key(&app, &world.admin, "acme", "CI", "test").await;
    for typed in ["", "Acme", "acme-"] {
        let response = app
            .submit(
                &world.admin,
                "/t/acme/settings",
                "/t/acme/settings/delete",
                &[("confirm", typed)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = response.text().await.unwrap();
        assert!(
            page.contains("Type the tenant&#39;s slug, acme, exactly")
                || page.contains("Type the tenant's slug, acme, exactly"),
            "{page}"
        );
    }
    assert!(
        app.get_html(&world.admin, "/t/acme/keys")
            .await
            .contains("CI")
    );
    let revoked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_key WHERE revoked_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(revoked, 0, "{}", &secret[..8]);
}

#[sqlx::test]
async fn deleting_a_tenant_revokes_every_key_on_every_instance_and_keeps_the_audit_trail(
    pool: PgPool,
) {
    let app = key_api(pool.clone(), &[]).await;
    // A second instance on the same database, which has its keys cached.
    let other = key_api(pool, &[]).await;
    let world = World::build(&app).await;
    let (live, _) = create_key(&app, &world.admin, "acme", "Billing", "test").await;
    let (test, _) = create_key(&app, &world.developer, "acme", "CI", "test").await;
    for key in [&live, &test] {
        assert_eq!(code_of(&other, key).await, "VALID");
    }

    let response = app
        .submit(
            &world.admin,
            "/t/acme/settings",
            "/t/acme/settings/delete",
            &[("confirm", " acme ")],
        )
        .await;
    assert_redirect(&response, "/");
    let home = app.get_html(&world.admin, "/").await;
    assert!(home.contains("Acme was deleted and its 2 active keys revoked."));
    assert!(!home.contains("/t/acme\""));

    for key in [&live, &test] {
        assert_eq!(code_of(&app, key).await, "REVOKED");
        let mut code = String::new();
        for _ in 0..40 {
            code = code_of(&other, key).await;
            if code == "REVOKED" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(code, "REVOKED", "the other instance's cache forgot the key");
    }
    for client in [&world.admin, &world.viewer] {
        for path in ["/t/acme", "/t/acme/keys", "/t/acme/settings"] {
            assert_eq!(
                app.get(client, path).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_event ORDER BY at, audit_event_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actions.last().map(String::as_str), Some("tenant.deleted"));
    assert!(actions.iter().any(|action| action == "key.created"));
}
