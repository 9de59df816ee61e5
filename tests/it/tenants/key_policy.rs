//! `POST /t/{slug}/settings/keys`: the tenant's key policy, and the new-key form, rolls, edits and
//! the keys list following it.

use reqwest::{Client, StatusCode};
use sqlx::PgPool;

use crate::support::app::{TestApp, assert_redirect, field_value};
use crate::support::fixtures::{TenantAdmin, World, create_key, revealed, roll, submit_key};
use crate::support::key_api::key_api;

async fn save_policy(app: &TestApp, admin: &Client, fields: &[(&str, &str)]) -> reqwest::Response {
    app.submit(admin, "/t/acme/settings", "/t/acme/settings/keys", fields)
        .await
}

async fn expires_at(app: &TestApp, id: uuid::Uuid) -> Option<time::OffsetDateTime> {
    sqlx::query_scalar("SELECT expires_at FROM api_key WHERE api_key_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn an_admin_sets_the_policy_and_bad_values_are_named(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let response = save_policy(
        &app,
        &admin,
        &[
            ("max_key_lifetime_days", "0"),
            ("default_ip_allowlist", "203.0.113.0/24\n300.0.0.1"),
            ("live_keys", "approval"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("from 1 to 3650"));
    assert!(page.contains("300.0.0.1") && page.contains("is not an IP address"));
    assert!(
        page.contains("203.0.113.0/24\n300.0.0.1"),
        "what was typed stays"
    );

    let response = save_policy(
        &app,
        &admin,
        &[
            ("max_key_lifetime_days", "90"),
            ("default_ip_allowlist", "203.0.113.7/24"),
            ("live_keys", "approval"),
        ],
    )
    .await;
    assert_redirect(&response, "/t/acme/settings");
    let settings = app.get_html(&admin, "/t/acme/settings").await;
    assert!(settings.contains("Key policy saved."));
    assert_eq!(
        field_value(&settings, "max_key_lifetime_days").as_deref(),
        Some("90")
    );
    assert!(settings.contains(">203.0.113.0/24</textarea>"));
    assert!(settings.contains(r#"value="approval" checked"#));
    let audit = app.get_html(&admin, "/t/acme/audit").await;
    assert!(audit.contains("tenant.key_policy_changed"));
    assert!(audit.contains("max_key_lifetime: no limit → 90 days"));

    // The new-key form starts from the policy.
    let form = app.get_html(&admin, "/t/acme/keys/new").await;
    assert!(form.contains(">203.0.113.0/24</textarea>"));
    assert!(form.contains("must expire within 90 days"));
}

#[sqlx::test]
async fn viewers_and_developers_cannot_change_the_policy(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    for client in [&world.developer, &world.viewer] {
        let token = app.csrf_token(client, "/account").await;
        let response = client
            .post(app.url("/t/acme/settings/keys"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("max_key_lifetime_days", "1"),
                ("live_keys", "admins"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    // Without the CSRF token even an admin is refused.
    let response = world
        .admin
        .post(app.url("/t/acme/settings/keys"))
        .form(&[("max_key_lifetime_days", "1"), ("live_keys", "admins")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("tenant_key_policy").await, 0);
}

#[sqlx::test]
async fn an_expiry_past_the_maximum_lifetime_is_refused_at_create_and_edit(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, old_key) = create_key(&app, &admin, "acme", "Made before", "test").await;
    save_policy(
        &app,
        &admin,
        &[("max_key_lifetime_days", "30"), ("live_keys", "anyone")],
    )
    .await;

    for (expiry, date) in [("never", ""), ("90", ""), ("date", "2999-01-01")] {
        let response = submit_key(
            &app,
            &admin,
            "acme",
            &[
                ("name", "Too long"),
                ("environment", "test"),
                ("access", "full"),
                ("expiry", expiry),
                ("expiry_date", date),
            ],
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{expiry}"
        );
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("keys must expire within 30 days")
        );
    }
    assert_eq!(app.count("api_key").await, 1, "no key was made");
    let response = submit_key(
        &app,
        &admin,
        "acme",
        &[
            ("name", "Short lived"),
            ("environment", "test"),
            ("access", "full"),
            ("expiry", "30"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(revealed(&response.text().await.unwrap()).is_some());

    // The key made before the policy never expires: flagged, and an edit cannot stretch it further.
    let list = app.get_html(&admin, "/t/acme/keys").await;
    assert_eq!(list.matches("over policy").count(), 1, "{list}");
    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{old_key}"),
            &format!("/t/acme/keys/{old_key}/edit"),
            &[
                ("name", "Made before"),
                ("access", "full"),
                ("expiry", "365"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("must expire within 30 days of being made")
    );
    assert_eq!(expires_at(&app, old_key).await, None);

    // Rolling it gives a successor that expires within the policy.
    let response = roll(&app, &admin, "acme", old_key, "none").await;
    assert_eq!(response.status(), StatusCode::OK);
    let successor: uuid::Uuid =
        sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE rolled_from = $1")
            .bind(old_key)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let expires = expires_at(&app, successor)
        .await
        .expect("the successor expires");
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "{days} hours");
}

#[sqlx::test]
async fn with_admins_only_a_developer_cannot_create_a_live_key(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let _api = key_api(pool, &[]).await;
    let world = World::build(&app).await;
    save_policy(&app, &world.admin, &[("live_keys", "admins")]).await;
    let live = [
        ("name", "Prod"),
        ("environment", "live"),
        ("access", "full"),
        ("expiry", "never"),
    ];
    let response = submit_key(&app, &world.developer, "acme", &live).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("only admins create live keys")
    );
    assert_eq!(app.count("api_key").await, 0);
    let mut test = live;
    test[1] = ("environment", "test");
    assert_eq!(
        submit_key(&app, &world.developer, "acme", &test)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        submit_key(&app, &world.admin, "acme", &live).await.status(),
        StatusCode::OK
    );
}
