//! What a newcomer reads in answers and pages outside a tenant: a verifier token that is wrong is
//! called wrong (not missing), the API reference renders its `code` and is titled once, and
//! signing out says so.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::{TestApp, assert_redirect};
use crate::support::key_api::{VERIFIER, key_api};

async fn message(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[sqlx::test]
async fn a_wrong_verifier_token_is_called_wrong_and_a_missing_one_missing(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let authorize = |verifier: Option<&str>| {
        let mut request = app
            .client()
            .get(app.url("/v1/authorize"))
            .header("X-Api-Key", "ak_test_whatever");
        if let Some(verifier) = verifier {
            request = request.header("Gatehouse-Verifier", verifier);
        }
        request.send()
    };
    let wrong = message(authorize(Some("not-the-verifier-token")).await.unwrap()).await;
    assert!(!wrong.contains("must send"), "{wrong}");
    assert_eq!(
        wrong,
        "The verifier token in `Gatehouse-Verifier` is wrong: it is not one of this Gatehouse's verifier tokens."
    );
    let missing = message(authorize(None).await.unwrap()).await;
    assert_eq!(
        missing,
        "The gateway must send a verifier token in `Gatehouse-Verifier`."
    );
    // The accepted token still passes admission (the key is judged next).
    let judged = authorize(Some(VERIFIER)).await.unwrap();
    assert_ne!(
        judged.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap_or_default(),
        missing
    );

    let verify = |token: Option<&str>| {
        let mut request = app
            .client()
            .post(app.url("/v1/keys/verify"))
            .json(&json!({ "key": "ak_test_whatever" }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let wrong = message(verify(Some("not-the-verifier-token")).await.unwrap()).await;
    assert!(wrong.contains("is wrong"), "{wrong}");
    let missing = message(verify(None).await.unwrap()).await;
    assert_eq!(
        missing,
        "Send a verifier token as `Authorization: Bearer <token>`."
    );
}

#[sqlx::test]
async fn the_api_reference_is_titled_once_and_renders_code_spans(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let page = app.get_html(&app.client(), "/docs/api").await;
    assert!(
        page.contains("<title>API reference · Gatehouse</title>"),
        "titled once"
    );
    assert!(!page.contains("Gatehouse · Gatehouse"));
    assert!(!page.contains('`'), "no raw Markdown backticks");
    assert!(
        page.contains("<code>Gatehouse-Key-Id</code>"),
        "a code span of the document's prose is code"
    );
}

#[sqlx::test]
async fn signing_out_lands_on_a_page_that_says_so(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = app.submit(&client, "/account", "/signout", &[]).await;
    assert_redirect(&response, "/signin?signed_out=1");
    let landing = app.get_html(&client, "/signin?signed_out=1").await;
    assert!(landing.contains(r#"<div class="flash" role="status">You are signed out.</div>"#));
    // Only there: the sign-in page reached otherwise does not say it.
    let plain = app.get_html(&app.client(), "/signin").await;
    assert!(!plain.contains("You are signed out"));
    // And the session is gone.
    assert_eq!(
        app.get(&client, "/account").await.status(),
        StatusCode::SEE_OTHER
    );
}
