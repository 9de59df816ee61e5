//! `/v1/tenants` and `/v1/tenants/{tenant}`: provisioning with an external id and an invited
//! admin, listing by external id, renaming, suspending and resuming.

use std::time::{Duration, Instant};

use gatehouse::vocabulary::Environment;
use serde_json::json;
use sqlx::PgPool;

use crate::support::fixtures::Tenant;
use crate::support::key_api::code_of;
use crate::support::management::{OPERATOR, get, management_api, patch, post};
use crate::support::smtp::MailSink;

#[sqlx::test]
async fn an_operator_creates_a_tenant_with_an_external_id_and_its_admin_gets_the_invitation(
    pool: PgPool,
) {
    let sink = MailSink::start();
    let app = management_api(pool.clone(), &[("GATEHOUSE_SMTP_URL", &sink.url())]).await;
    let created = post(
        &app,
        "/v1/tenants",
        OPERATOR,
        json!({ "name": "Initech Ltd", "external_id": "cus_42", "admin_email": "Peter@Initech.example" }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["slug"], "initech-ltd");
    assert_eq!(created.body["external_id"], "cus_42");
    assert_eq!(created.body["suspended"], false);
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

    let mail = sink
        .mail("peter@initech.example", "You are invited to Initech Ltd")
        .await;
    let link = mail.link(&app.url("/invitations/"));
    assert!(link.starts_with(&app.url("/invitations/")));

    let by_external = get(&app, "/v1/tenants?external_id=cus_42", OPERATOR).await;
    assert_eq!(by_external.status, 200);
    assert_eq!(by_external.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_external.body["data"][0]["name"], "Initech Ltd");
    assert!(by_external.body["next_cursor"].is_null());
    let none = get(&app, "/v1/tenants?external_id=cus_43", OPERATOR).await;
    assert!(none.body["data"].as_array().unwrap().is_empty());

    let id = created.body["id"].as_str().unwrap();
    for named in [id, "initech-ltd", "ext:cus_42"] {
        let read = get(&app, &format!("/v1/tenants/{named}"), OPERATOR).await;
        assert_eq!(read.status, 200, "{named}");
        assert_eq!(read.body["id"], id);
    }
    let audit: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT action, actor_token FROM audit_event ORDER BY at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        [
            ("tenant.created".to_owned(), Some("Operator".to_owned())),
            ("invitation.created".to_owned(), Some("Operator".to_owned())),
        ]
    );
}

#[sqlx::test]
async fn bad_tenant_requests_say_what_is_wrong_and_change_nothing(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    Tenant::create(&pool, "acme").await;
    sqlx::query("UPDATE tenant SET external_id = 'cus_1'")
        .execute(&pool)
        .await
        .unwrap();
    let cases = [
        (json!({ "name": "" }), 422, "INVALID", Some("name")),
        (
            json!({ "name": "Acme", "slug": "acme" }),
            409,
            "CONFLICT",
            Some("slug"),
        ),
        (
            json!({ "name": "Other", "external_id": "cus_1" }),
            409,
            "CONFLICT",
            Some("external_id"),
        ),
        (
            json!({ "name": "Other", "external_id": "a b" }),
            422,
            "INVALID",
            Some("external_id"),
        ),
        (
            json!({ "name": "Other", "admin_email": "nope" }),
            422,
            "INVALID",
            Some("admin_email"),
        ),
        (
            json!({ "name": "Other", "plan": "gold" }),
            400,
            "BAD_REQUEST",
            None,
        ),
        (json!({ "slug": "other" }), 400, "BAD_REQUEST", None),
    ];
    for (body, status, code, field) in cases {
        let answer = post(&app, "/v1/tenants", OPERATOR, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert_eq!(answer.code(), code, "{body}");
        assert_eq!(answer.body["error"]["field"].as_str(), field, "{body}");
    }
    let unknown = post(
        &app,
        "/v1/tenants",
        OPERATOR,
        json!({ "name": "X", "plan": "gold" }),
    )
    .await;
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plan")
    );
    let not_json = app
        .client()
        .post(app.url("/v1/tenants"))
        .bearer_auth(OPERATOR)
        .body("name=Other")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    assert_eq!(app.count("tenant").await, 1);
    assert_eq!(
        get(&app, "/v1/tenants/ext:nobody", OPERATOR).await.status,
        404
    );
    let bad_limit = get(&app, "/v1/tenants?limit=500", OPERATOR).await;
    assert_eq!(
        (bad_limit.status.as_u16(), bad_limit.code()),
        (422, "INVALID")
    );
    let bad_cursor = get(&app, "/v1/tenants?cursor=xyz", OPERATOR).await;
    assert_eq!(bad_cursor.body["error"]["field"], "cursor");
    let unknown_parameter = get(&app, "/v1/tenants?plan=gold", OPERATOR).await;
    assert_eq!(unknown_parameter.status, 400);
}

#[sqlx::test]
async fn tenants_are_listed_a_page_at_a_time_with_an_opaque_cursor(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    for slug in ["one", "two", "three", "four", "five"] {
        Tenant::create(&pool, slug).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/tenants?limit=2".to_owned();
    loop {
        let page = get(&app, &path, OPERATOR).await;
        assert_eq!(page.status, 200);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|t| t["slug"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/tenants?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["one", "two", "three", "four", "five"]);
}

#[sqlx::test]
async fn a_suspended_tenant_s_keys_answer_tenant_suspended_on_every_instance_within_a_second(
    pool: PgPool,
) {
    let first = management_api(pool.clone(), &[]).await;
    let second = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    first.wait_until_listening().await;
    second.wait_until_listening().await;
    assert_eq!(code_of(&second, &key).await, "VALID");
    assert_eq!(
        second.key_cache.len(),
        1,
        "the second instance caches the key"
    );

    let suspended = patch(
        &first,
        "/v1/tenants/acme",
        OPERATOR,
        json!({ "suspended": true }),
    )
    .await;
    assert_eq!(suspended.status, 200);
    assert_eq!(suspended.body["suspended"], true);
    let at = Instant::now();
    loop {
        let code = code_of(&second, &key).await;
        if code == "TENANT_SUSPENDED" {
            break;
        }
        assert_eq!(code, "VALID");
        assert!(
            at.elapsed() < Duration::from_secs(1),
            "still valid a second later"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gateway = crate::support::key_api::authorize(
        &second,
        "",
        Some(("Authorization", &format!("Bearer {key}"))),
    )
    .await;
    assert_eq!(gateway.status(), 401);
    let body: serde_json::Value = gateway.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TENANT_SUSPENDED");

    let resumed = patch(
        &first,
        "/v1/tenants/acme",
        OPERATOR,
        json!({ "suspended": false }),
    )
    .await;
    assert_eq!(resumed.body["suspended"], false);
    let at = Instant::now();
    while code_of(&second, &key).await != "VALID" {
        assert!(
            at.elapsed() < Duration::from_secs(1),
            "still suspended a second later"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE action LIKE 'tenant.%' ORDER BY at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["tenant.suspended", "tenant.resumed"]);
}

#[sqlx::test]
async fn an_operator_renames_a_tenant_and_changes_its_external_id(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    Tenant::create(&pool, "acme").await;
    Tenant::create(&pool, "globex").await;
    sqlx::query("UPDATE tenant SET external_id = 'cus_g' WHERE slug = 'globex'")
        .execute(&pool)
        .await
        .unwrap();
    let changed = patch(
        &app,
        "/v1/tenants/acme",
        OPERATOR,
        json!({ "name": "Acme Rockets", "external_id": "cus_a" }),
    )
    .await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body["name"], "Acme Rockets");
    assert_eq!(changed.body["external_id"], "cus_a");
    let taken = patch(
        &app,
        "/v1/tenants/acme",
        OPERATOR,
        json!({ "external_id": "cus_g" }),
    )
    .await;
    assert_eq!((taken.status.as_u16(), taken.code()), (409, "CONFLICT"));
    let bad = patch(&app, "/v1/tenants/acme", OPERATOR, json!({ "name": " " })).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["error"]["field"], "name");
    let unknown = patch(&app, "/v1/tenants/acme", OPERATOR, json!({ "slug": "x" })).await;
    assert_eq!(unknown.status, 400);
}
