//! The "done when": a script with only an operator token creates a tenant, invites its
//! admin, creates a key, verifies it through the key API, reads its usage and revokes it.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::support::key_api::code_of;
use crate::support::management::{OPERATOR, get, management_api, post};
use crate::support::smtp::MailSink;

#[sqlx::test]
async fn an_operator_script_provisions_a_customer_end_to_end_without_a_browser(pool: PgPool) {
    let sink = MailSink::start();
    let app = management_api(
        pool,
        &[
            ("GATEHOUSE_SMTP_URL", &sink.url()),
            ("GATEHOUSE_USAGE_FLUSH_SECONDS", "1"),
        ],
    )
    .await;

    let tenant = post(
        &app,
        "/v1/tenants",
        OPERATOR,
        json!({ "name": "Hooli", "external_id": "acct_7", "admin_email": "gavin@hooli.example" }),
    )
    .await;
    assert_eq!(tenant.status, 201);
    sink.mail("gavin@hooli.example", "You are invited to Hooli")
        .await;

    let key = post(
        &app,
        "/v1/tenants/ext:acct_7/keys",
        OPERATOR,
        json!({ "name": "production", "environment": "live", "full_access": true }),
    )
    .await;
    assert_eq!(key.status, 201);
    let secret = key.body["secret"].as_str().unwrap().to_owned();
    let id = key.body["key"]["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(code_of(&app, &secret).await, "VALID");
    }

    let mut valid = 0;
    for _ in 0..50 {
        let usage = get(
            &app,
            &format!("/v1/tenants/ext:acct_7/usage?grain=minute&key_id={id}"),
            OPERATOR,
        )
        .await;
        assert_eq!(usage.status, 200, "{}", usage.body);
        valid = usage.body["totals"]["VALID"].as_i64().unwrap_or(0);
        if valid == 3 {
            assert_eq!(usage.body["buckets"][0]["counts"]["VALID"], 3);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(valid, 3, "the usage shows the three verifications");

    let revoked = post(
        &app,
        &format!("/v1/tenants/ext:acct_7/keys/{id}/revoke"),
        OPERATOR,
        json!({}),
    )
    .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(code_of(&app, &secret).await, "REVOKED");
}
