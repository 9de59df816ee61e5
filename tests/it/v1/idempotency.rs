//! `Idempotency-Key` under load and against revoked callers: parallel idempotent POSTs on a
//! small pool all succeed, the same key while its first request runs is a 409 with
//! `Retry-After` and then the replay, and a replay is only for a caller that is still valid.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::management::{
    Answer, OPERATOR, management_api, send, small_pool, tenant_token,
};

/// `POST {path}` with `token`, `body` and `Idempotency-Key: key` from a task of its own.
fn spawn_post(
    app: &TestApp,
    path: &str,
    token: &str,
    body: &Value,
    key: &str,
) -> tokio::task::JoinHandle<(u16, Value, bool)> {
    let request = app
        .client()
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body);
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 409 {
            assert_eq!(
                retry_after.as_ref().map(|value| value.to_str().unwrap()),
                Some("1"),
                "{body}"
            );
        }
        (status, body, replayed)
    })
}

#[sqlx::test]
async fn forty_parallel_idempotent_posts_on_a_small_pool_each_make_their_key(pool: PgPool) {
    let app = management_api(
        small_pool(&pool, 4).await,
        &[("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "4")],
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:write"]).await;
    let path = "/v1/tenants/acme/keys";
    let body = json!({ "name": "worker", "environment": "test", "scopes": ["read"] });

    let tasks: Vec<_> = (0..40)
        .map(|i| spawn_post(&app, path, &token, &body, &format!("parallel-{i}")))
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, body, _) = task.await.unwrap();
        statuses.push((status, body["error"]["code"].clone()));
    }
    assert!(
        statuses.iter().all(|(status, _)| *status == 201),
        "{statuses:?}"
    );
    assert_eq!(app.count("api_key").await, 40);

    // The same key twice at once: one request makes the key; the other is told to retry (409
    // with Retry-After) or, if the first had finished, gets its answer.
    let (first, second) = (
        spawn_post(&app, path, &token, &body, "twice"),
        spawn_post(&app, path, &token, &body, "twice"),
    );
    let answers = [first.await.unwrap(), second.await.unwrap()];
    let made: Vec<_> = answers
        .iter()
        .filter(|(status, _, replayed)| *status == 201 && !replayed)
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    let other = answers
        .iter()
        .find(|(status, _, replayed)| *status != 201 || *replayed)
        .unwrap();
    match other {
        (409, body, _) => assert_eq!(body["error"]["code"], "IDEMPOTENCY_KEY_IN_USE"),
        (201, body, true) => assert_eq!(body, &made[0].1),
        other => panic!("{other:?}"),
    }
    assert_eq!(app.count("api_key").await, 41);
}

#[sqlx::test]
async fn the_same_key_while_its_first_request_runs_is_a_409_with_retry_after_then_the_answer(
    pool: PgPool,
) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let path = "/v1/tenants/acme/keys";
    let body = json!({ "name": "slow", "environment": "test", "scopes": ["read"] });
    // The first request's key waits for this lock on its tenant (the key's reference to it).
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tenant WHERE tenant_id = $1 FOR UPDATE")
        .bind(acme.id)
        .execute(&mut *lock)
        .await
        .unwrap();

    let post = |key: &'static str| {
        send(
            &app,
            Method::POST,
            path,
            OPERATOR,
            Some(body.clone()),
            Some(key),
        )
    };
    let (first, second) = tokio::join!(post("slow-1"), async {
        // Once the first request holds its key (or after a while, whatever it holds)...
        for _ in 0..40 {
            if app.count("idempotency_key").await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // ...the same key is answered at once, not after the first request.
        let second = tokio::time::timeout(Duration::from_secs(3), post("slow-1")).await;
        lock.rollback().await.unwrap();
        second
    });
    let second: Answer = second.expect("the second request is answered while the first runs");
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.code(), "IDEMPOTENCY_KEY_IN_USE");
    assert_eq!(second.headers["retry-after"], "1");

    let third = post("slow-1").await;
    assert_eq!(third.status, 201);
    assert_eq!(third.headers["idempotent-replayed"], "true");
    assert_eq!(third.body, first.body, "the first answer, with its secret");
    assert_eq!(app.count("api_key").await, 1);
}

#[sqlx::test]
async fn a_replay_is_only_for_the_same_token_while_it_is_valid(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:write"]).await;
    let other = tenant_token(&pool, &acme, &["keys:write"]).await;
    let body = json!({ "name": "ci", "environment": "test", "scopes": ["read"] });
    let first = create_ci(&app, &token, &body).await;
    assert_eq!(first.status, 201);
    let secret = first.body["secret"].as_str().unwrap().to_owned();
    let replay = create_ci(&app, &token, &body).await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["secret"], secret.as_str());

    // Another token of the tenant with the same key makes its own key.
    let others = create_ci(&app, &other, &body).await;
    assert_eq!(others.status, 201);
    assert!(others.headers.get("idempotent-replayed").is_none());
    assert_ne!(others.body["secret"], secret.as_str());

    sqlx::query(
        "UPDATE management_token SET revoked_at = now() WHERE secret_hash = sha256($1::bytea)",
    )
    .bind(token.as_bytes())
    .execute(&pool)
    .await
    .unwrap();
    let after = create_ci(&app, &token, &body).await;
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(after.headers.get("idempotent-replayed").is_none());
    assert!(!after.body.to_string().contains(&secret));
    assert!(
        after.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    assert_eq!(app.count("api_key").await, 2);
}

/// `POST /v1/tenants/acme/keys` with `token` and `Idempotency-Key: create-ci`.
async fn create_ci(app: &TestApp, token: &str, body: &Value) -> Answer {
    let path = "/v1/tenants/acme/keys";
    send(
        app,
        Method::POST,
        path,
        token,
        Some(body.clone()),
        Some("create-ci"),
    )
    .await
}
