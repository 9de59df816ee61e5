//! `/v1/tenants/{tenant}/members…`, `/invitations…` and `/audit`: the portal's rules hold through
//! the API (the last admin stays, the invitation is mailed), and the audit log pages oldest first.

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::support::fixtures::Tenant;
use crate::support::management::{OPERATOR, call, get, management_api, patch, post, tenant_token};
use crate::support::smtp::MailSink;

#[sqlx::test]
async fn members_are_listed_and_changed_but_the_last_admin_stays(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["members:read", "members:write"]).await;
    let listed = get(&app, "/v1/tenants/acme/members", &token).await;
    assert_eq!(listed.status, 200);
    let members = listed.body["data"].as_array().unwrap().clone();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["role"], "admin");
    let id = members[0]["id"].as_str().unwrap();

    let demote = patch(
        &app,
        &format!("/v1/tenants/acme/members/{id}"),
        &token,
        json!({ "role": "viewer" }),
    )
    .await;
    assert_eq!((demote.status.as_u16(), demote.code()), (409, "CONFLICT"));
    assert!(
        demote.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least one admin")
    );
    let remove = call(
        &app,
        Method::DELETE,
        &format!("/v1/tenants/acme/members/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(remove.status, 409);
    let bad_role = patch(
        &app,
        &format!("/v1/tenants/acme/members/{id}"),
        &token,
        json!({ "role": "owner" }),
    )
    .await;
    assert_eq!(bad_role.body["error"]["field"], "role");

    // A second admin, then the first may go.
    let bob: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO app_user (email, display_name) VALUES ('bob@acme.example', 'Bob') RETURNING app_user_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let bob_membership: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO membership (tenant_id, app_user_id, role) VALUES ($1, $2, 'developer') RETURNING membership_id",
    )
    .bind(acme.id)
    .bind(bob)
    .fetch_one(&pool)
    .await
    .unwrap();
    let promote = patch(
        &app,
        &format!("/v1/tenants/acme/members/{bob_membership}"),
        &token,
        json!({ "role": "admin" }),
    )
    .await;
    assert_eq!(promote.status, 204);
    let removed = call(
        &app,
        Method::DELETE,
        &format!("/v1/tenants/acme/members/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(removed.status, 204);
    let left = get(&app, "/v1/tenants/acme/members", &token).await;
    assert_eq!(left.body["data"].as_array().unwrap().len(), 1);

    let reader = tenant_token(&pool, &acme, &["members:read"]).await;
    let refused = patch(
        &app,
        &format!("/v1/tenants/acme/members/{bob_membership}"),
        &reader,
        json!({ "role": "viewer" }),
    )
    .await;
    assert_eq!(refused.status, 403);
}

#[sqlx::test]
async fn an_invitation_made_through_the_api_is_mailed_listed_and_revocable(pool: PgPool) {
    let sink = MailSink::start();
    let app = management_api(pool.clone(), &[("GATEHOUSE_SMTP_URL", &sink.url())]).await;
    Tenant::create(&pool, "acme").await;
    let invited = post(
        &app,
        "/v1/tenants/acme/invitations",
        OPERATOR,
        json!({ "email": "Carol@Example.com", "role": "developer" }),
    )
    .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    assert_eq!(invited.body["email"], "carol@example.com");
    sink.mail("carol@example.com", "You are invited to acme")
        .await;
    let again = post(
        &app,
        "/v1/tenants/acme/invitations",
        OPERATOR,
        json!({ "email": "carol@example.com", "role": "developer" }),
    )
    .await;
    assert_eq!(again.status, 422);
    let pending = get(&app, "/v1/tenants/acme/invitations", OPERATOR).await;
    assert_eq!(pending.body["data"].as_array().unwrap().len(), 1);
    let id = invited.body["id"].as_str().unwrap();
    let revoked = post(
        &app,
        &format!("/v1/tenants/acme/invitations/{id}/revoke"),
        OPERATOR,
        json!({}),
    )
    .await;
    assert_eq!(revoked.status, 204);
    let pending = get(&app, "/v1/tenants/acme/invitations", OPERATOR).await;
    assert!(pending.body["data"].as_array().unwrap().is_empty());
    let twice = post(
        &app,
        &format!("/v1/tenants/acme/invitations/{id}/revoke"),
        OPERATOR,
        json!({}),
    )
    .await;
    assert_eq!(twice.status, 404);
}

#[sqlx::test]
async fn the_audit_log_pages_oldest_first_and_needs_audit_read(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    for name in ["one", "two", "three"] {
        let created = post(
            &app,
            "/v1/tenants/acme/keys",
            OPERATOR,
            json!({ "name": name, "environment": "test", "full_access": true }),
        )
        .await;
        assert_eq!(created.status, 201);
    }
    let token = tenant_token(&pool, &acme, &["audit:read"]).await;
    let first = get(
        &app,
        "/v1/tenants/acme/audit?action=key.created&limit=2",
        &token,
    )
    .await;
    assert_eq!(first.status, 200);
    let data = first.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data[0]["target"].as_str().unwrap().contains("one"));
    assert_eq!(data[0]["actor_token"], "Operator");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = get(
        &app,
        &format!("/v1/tenants/acme/audit?action=key.created&limit=2&cursor={cursor}"),
        &token,
    )
    .await;
    let data = second.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert!(data[0]["target"].as_str().unwrap().contains("three"));
    assert!(second.body["next_cursor"].is_null());

    let keys_only = tenant_token(&pool, &acme, &["keys:read"]).await;
    assert_eq!(
        get(&app, "/v1/tenants/acme/audit", &keys_only).await.status,
        403
    );
}
