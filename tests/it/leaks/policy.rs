//! The tenant's leak policy per environment decides what a report does to a key; management tokens
//! found in a report are always revoked.

use gatehouse::domain::leaks::{LeakAction, LeakPolicy, set_policy};
use gatehouse::vocabulary::Environment;
use serde_json::Value;
use sqlx::PgPool;

use crate::leaks::github::intake;
use crate::support::fixtures::Tenant;
use crate::support::key_api::code_of;
use crate::support::leaks::{KeysServer, Signer, report, send_signed};
use crate::support::management::{get, tenant_token};

#[sqlx::test]
async fn the_policy_of_each_environment_acts_and_management_tokens_are_always_revoked(
    pool: PgPool,
) {
    let scanner = Signer::new("k1");
    let keys = KeysServer::start(&[&scanner]).await;
    let app = intake(&pool, &keys).await;
    let acme = Tenant::create(&pool, "acme").await;
    let policy = LeakPolicy {
        live: LeakAction::Disable,
        test: LeakAction::Revoke,
    };
    set_policy(&pool, acme.id, policy, &acme.actor())
        .await
        .unwrap();
    let (live, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (test, _) = acme.key(&pool, Environment::Test, &["read"], 1000).await;
    let token = tenant_token(&pool, &acme, &["keys:read"]).await;
    assert_eq!(get(&app, "/v1/tenants/acme/keys", &token).await.status, 200);

    let url = "https://github.com/octo/app/blob/1/.env";
    let response = send_signed(
        &app,
        &scanner,
        report(&[(&live, url), (&test, url), (&token, url)]),
    )
    .await;
    assert_eq!(response.status(), 200);
    let feedback: Vec<Value> = response.json().await.unwrap();
    assert!(
        feedback.iter().all(|item| item["label"] == "true_positive"),
        "{feedback:?}"
    );

    assert_eq!(code_of(&app, &live).await, "DISABLED");
    assert_eq!(code_of(&app, &test).await, "REVOKED");
    assert_eq!(get(&app, "/v1/tenants/acme/keys", &token).await.status, 401);
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM key_leak ORDER BY action")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(actions, ["disable", "revoke"]);
}
