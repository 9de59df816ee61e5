//! `POST /oauth/token`: a key, as an OAuth2 client, gets an access token that an independent
//! library (PyJWT) accepts from the metadata document and the JWKS alone; every refusal is an
//! RFC 6749 §5.2 error.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::management::{OPERATOR, management_api, post};

/// What PyJWT (tests/tokens/verify.py) makes of `token`: the header and claims, or its refusal.
async fn independent_verdict(issuer: &str, audience: &str, token: &str) -> Result<Value, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("python3")
        .arg(root.join("tests/tokens/verify.py"))
        .args([issuer, audience, token])
        .env("PYTHONPATH", root.join(".tools/pyjwt"))
        .output()
        .await
        .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A tenant `acme` with a live key holding `read` and `write`: (secret, client id, key id).
async fn client(app: &TestApp, name: &str) -> (String, String, String) {
    let _ = post(
        app,
        "/v1/tenants",
        OPERATOR,
        json!({"name": "Acme", "slug": "acme"}),
    )
    .await;
    let made = post(
        app,
        "/v1/tenants/acme/keys",
        OPERATOR,
        json!({"name": name, "environment": "live", "scopes": ["read", "write"]}),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    (
        made.body["secret"].as_str().unwrap().to_owned(),
        made.body["key"]["client_id"].as_str().unwrap().to_owned(),
        made.body["key"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn ask(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(app.url("/oauth/token"))
        .form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[sqlx::test]
async fn a_key_gets_a_token_an_independent_library_accepts_from_the_metadata_and_jwks_alone(
    pool: PgPool,
) {
    let app = management_api(pool, &[]).await;
    let (secret, client_id, key_id) = client(&app, "billing").await;
    let (status, headers, body) = ask(
        &app,
        Some((&client_id, &secret)),
        &[("grant_type", "client_credentials"), ("scope", "read")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().unwrap();
    let verdict = independent_verdict(&app.base, &app.base, token)
        .await
        .unwrap();
    let (header, claims) = (&verdict["header"], &verdict["claims"]);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["aud"], app.base.as_str());
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["key_id"], key_id.as_str());
    assert_eq!(claims["tenant_slug"], "acme");
    assert_eq!(claims["environment"], "live");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    // The same with the credentials in the body (client_secret_post); no scope: the key's.
    let (status, _, body) = ask(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read write");
    let second = body["access_token"].as_str().unwrap();
    let verdict = independent_verdict(&app.base, &app.base, second)
        .await
        .unwrap();
    assert_ne!(verdict["claims"]["jti"], json!(null));

    // The judge refuses a changed payload, and a token for another audience.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("read write");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert!(
        independent_verdict(&app.base, &app.base, &forged)
            .await
            .is_err()
    );
    assert!(
        independent_verdict(&app.base, "https://other.example", token)
            .await
            .is_err()
    );

    let metadata: Value = reqwest::get(app.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["token_endpoint"], app.url("/oauth/token").as_str());
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
}

#[sqlx::test]
async fn resource_picks_a_configured_audience(pool: PgPool) {
    let app = management_api(
        pool,
        &[
            (
                "GATEHOUSE_TOKEN_AUDIENCES",
                "https://api.example.com,https://billing.example.com",
            ),
            ("GATEHOUSE_TOKEN_TTL_SECONDS", "60"),
        ],
    )
    .await;
    let (secret, client_id, _) = client(&app, "billing").await;
    let (status, _, body) = ask(
        &app,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://billing.example.com"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 60);
    let token = body["access_token"].as_str().unwrap();
    let verdict = independent_verdict(&app.base, "https://billing.example.com", token)
        .await
        .unwrap();
    assert_eq!(verdict["claims"]["aud"], "https://billing.example.com");
}

/// Basic credentials, the form, the status and `error` expected.
type Case<'a> = (
    Option<(&'a str, &'a str)>,
    Vec<(&'a str, &'a str)>,
    StatusCode,
    &'a str,
);

#[sqlx::test]
async fn the_token_endpoint_refuses_with_rfc_6749_errors(pool: PgPool) {
    let app = management_api(pool, &[]).await;
    let (secret, client_id, key_id) = client(&app, "billing").await;
    let (other_secret, _, _) = client(&app, "other").await;
    let grant = ("grant_type", "client_credentials");
    let cases: Vec<Case> = vec![
        (
            Some((&client_id, "ak_live_wrong")),
            vec![grant],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some((&client_id, &other_secret)),
            vec![grant],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            None,
            vec![grant],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some((&client_id, &secret)),
            vec![("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            Some((&client_id, &secret)),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some((&client_id, &secret)),
            vec![grant, ("scope", "read admin")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some((&client_id, &secret)),
            vec![grant, ("resource", "https://evil.example")],
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            Some((&client_id, &secret)),
            vec![grant, ("client_secret", &secret)],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some((&client_id, &secret)),
            vec![grant, ("scope", "read"), ("scope", "write")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (basic, form, status, error) in cases {
        let (got, headers, body) = ask(&app, basic, &form).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{form:?}: {body}"
        );
        assert_eq!(headers["cache-control"], "no-store");
        if status == StatusCode::UNAUTHORIZED {
            assert!(headers.contains_key("www-authenticate"));
        }
    }
    // A revoked key gets no token.
    let revoked = post(
        &app,
        &format!("/v1/tenants/acme/keys/{key_id}/revoke"),
        OPERATOR,
        json!({}),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let (status, _, body) = ask(&app, Some((&client_id, &secret)), &[grant]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
}
