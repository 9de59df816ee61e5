//! Every key is also an OAuth2 client: its `client_id`, shown on the key page and in the
//! management API's key objects.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::{TenantAdmin, create_key};
use crate::support::management::{OPERATOR, get, management_api, post};

fn is_client_id(value: &Value) -> bool {
    value.as_str().is_some_and(|id| {
        id.strip_prefix("client_").is_some_and(|hex| {
            hex.len() == 24
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
    })
}

#[sqlx::test]
async fn each_key_s_client_id_is_its_own_and_stays_the_same_in_every_answer(pool: PgPool) {
    let app = management_api(pool, &[]).await;
    let tenant = post(&app, "/v1/tenants", OPERATOR, json!({"name": "Acme"})).await;
    assert_eq!(tenant.status, StatusCode::CREATED, "{}", tenant.body);
    let keys = "/v1/tenants/acme/keys";
    let mut made = Vec::new();
    for name in ["one", "two"] {
        let answer = post(
            &app,
            keys,
            OPERATOR,
            json!({"name": name, "environment": "live", "full_access": true}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert!(
            is_client_id(&answer.body["key"]["client_id"]),
            "{}",
            answer.body
        );
        made.push(answer.body["key"].clone());
    }
    assert_ne!(made[0]["client_id"], made[1]["client_id"]);
    let read = get(
        &app,
        &format!("{keys}/{}", made[0]["id"].as_str().unwrap()),
        OPERATOR,
    )
    .await;
    assert_eq!(read.body["client_id"], made[0]["client_id"]);
    let listed = get(&app, keys, OPERATOR).await;
    let mut listed: Vec<&Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| &key["client_id"])
        .collect();
    listed.sort_by_key(|id| id.as_str().unwrap().to_owned());
    let mut expected = vec![&made[0]["client_id"], &made[1]["client_id"]];
    expected.sort_by_key(|id| id.as_str().unwrap().to_owned());
    assert_eq!(listed, expected);
}

#[sqlx::test]
async fn the_key_page_shows_the_client_id_beside_the_key(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let ada = TenantAdmin::acme(&app).await;
    let (_, id) = create_key(&app, &ada.client, "acme", "Billing", "live").await;
    let client_id: String =
        sqlx::query_scalar("SELECT client_id FROM api_key WHERE api_key_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let html = app
        .get_html(&ada.client, &format!("/t/acme/keys/{id}"))
        .await;
    assert!(
        html.contains(&format!(
            "<dt>Client ID</dt><dd class=\"mono break\">{client_id}</dd>"
        )),
        "the key page shows {client_id}"
    );
}
