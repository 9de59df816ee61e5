//! `/t/{slug}/api-access`: admins make management API tokens (shown once), see their last use
//! and revoke them; the token then works (and stops working) against the management API.

use sqlx::PgPool;

use crate::support::app::{TestApp, assert_redirect};
use crate::support::fixtures::World;
use crate::support::management::{OPERATOR, get};

fn revealed_token(html: &str) -> String {
    let start = html.find("ak_mgmt_").expect("the token is shown");
    html[start..start + "ak_mgmt_".len() + 38].to_owned()
}

#[sqlx::test]
async fn an_admin_makes_a_token_that_is_shown_once_works_shows_its_last_use_and_can_be_revoked(
    pool: PgPool,
) {
    let app = TestApp::spawn_with(
        pool.clone(),
        &[("GATEHOUSE_OPERATOR_TOKENS", OPERATOR)],
        |_| {},
    )
    .await;
    let world = World::build(&app).await;
    let page = app.get_html(&world.admin, "/t/acme/api-access").await;
    assert!(page.contains("keys:write") && page.contains("usage:read"));

    let created = app
        .submit(
            &world.admin,
            "/t/acme/api-access",
            "/t/acme/api-access",
            &[
                ("name", "Billing backend"),
                ("scopes", "keys:read"),
                ("scopes", "usage:read"),
                ("expiry", "90"),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    assert!(html.contains("Copy this token now"));
    let token = revealed_token(&html);

    let listed = app.get_html(&world.admin, "/t/acme/api-access").await;
    assert!(listed.contains("Billing backend"));
    assert!(!listed.contains(&token), "the list never shows the token");
    assert!(listed.contains(&format!("ak_mgmt_••••{}", &token[token.len() - 4..])));
    assert!(listed.contains("keys:read usage:read"));

    assert_eq!(get(&app, "/v1/tenants/acme/keys", &token).await.status, 200);
    assert_eq!(
        get(&app, "/v1/tenants/acme/usage", &token).await.status,
        200
    );
    let listed = app.get_html(&world.admin, "/t/acme/api-access").await;
    let row = &listed[listed.find("Billing backend").unwrap()..];
    let last_used_cell = &row[row.find("data-label=\"Last used\"").unwrap()..];
    assert!(!last_used_cell[..60].contains("never"), "{last_used_cell}");

    let id: uuid::Uuid = sqlx::query_scalar("SELECT management_token_id FROM management_token")
        .fetch_one(&pool)
        .await
        .unwrap();
    let confirm = app
        .get_html(&world.admin, &format!("/t/acme/api-access/{id}/revoke"))
        .await;
    assert!(confirm.contains("Revoke this API token?"));
    let revoked = app
        .submit(
            &world.admin,
            &format!("/t/acme/api-access/{id}/revoke"),
            &format!("/t/acme/api-access/{id}/revoke"),
            &[],
        )
        .await;
    assert_redirect(&revoked, "/t/acme/api-access");
    assert_eq!(get(&app, "/v1/tenants/acme/keys", &token).await.status, 401);
    let audit = app.get_html(&world.admin, "/t/acme/audit").await;
    assert!(audit.contains("api_token.created") && audit.contains("api_token.revoked"));
}

#[sqlx::test]
async fn a_token_needs_a_name_and_a_scope_and_only_admins_make_them(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let world = World::build(&app).await;
    let refused = app
        .submit(
            &world.admin,
            "/t/acme/api-access",
            "/t/acme/api-access",
            &[("name", "No scopes"), ("expiry", "30")],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("Tick at least one scope."));
    assert!(
        html.contains("value=\"No scopes\""),
        "what was typed is kept"
    );
    let bogus = app
        .submit(
            &world.admin,
            "/t/acme/api-access",
            "/t/acme/api-access",
            &[("name", "x"), ("scopes", "keys:admin"), ("expiry", "30")],
        )
        .await;
    assert_eq!(bogus.status(), 422);
    assert_eq!(app.count("management_token").await, 0);

    for member in [&world.developer, &world.viewer] {
        assert_eq!(app.get(member, "/t/acme/api-access").await.status(), 403);
    }
    assert_eq!(
        app.get(&world.outsider, "/t/acme/api-access")
            .await
            .status(),
        404
    );
}

#[sqlx::test]
async fn the_portal_shows_the_external_id_and_says_when_the_tenant_is_suspended(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let world = World::build(&app).await;
    let page = app.get_html(&world.viewer, "/t/acme").await;
    assert!(!page.contains("suspended"));
    sqlx::query(
        "UPDATE tenant SET external_id = 'cus_77', suspended_at = now() WHERE slug = 'acme'",
    )
    .execute(&pool)
    .await
    .unwrap();
    for path in ["/t/acme", "/t/acme/keys"] {
        let page = app.get_html(&world.viewer, path).await;
        assert!(page.contains("cus_77"), "{path}");
        assert!(page.contains("This tenant is suspended."), "{path}");
    }
}
