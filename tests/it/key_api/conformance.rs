//! The seeds' documented answers, through a real gateway with the README's profiles: a client of
//! each platform gets exactly the status, body and headers its platform documents.

use gatehouse::domain::vocabulary::Environment;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::retry_after;
use crate::support::fixtures::{Tenant, expire, unknown_key};
use crate::support::gateways::{Kind, Through, answer};
use crate::support::key_api::keep_within_one_minute;

#[sqlx::test]
async fn seed_004_clients_get_401_code_minus_23_and_403_for_scopes_through_nginx(pool: PgPool) {
    // The gateway serves tenant acme's API.
    let gateway = Through::gateway(Kind::Nginx, &pool, "seed004&tenant=acme", &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let globex = Tenant::create(&pool, "globex").await;
    let (good, good_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (expired, expired_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    expire(&pool, expired_id).await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.revoke(&pool, revoked_id).await;
    let (foreign, _) = globex.key(&pool, Environment::Live, &["read"], 1000).await;
    let unknown = unknown_key();

    for (case, key, message) in [
        ("missing", None, "Send an API key in `ApiKey`."),
        (
            "malformed",
            Some("not-a-key"),
            "This is not an API key of this service.",
        ),
        ("unknown", Some(unknown.as_str()), "No such API key."),
        (
            "expired",
            Some(expired.as_str()),
            "The API key has expired.",
        ),
        (
            "revoked",
            Some(revoked.as_str()),
            "The API key has been revoked.",
        ),
        (
            "other tenant",
            Some(foreign.as_str()),
            "The API key belongs to another tenant.",
        ),
    ] {
        let headers: Vec<(&str, &str)> = key.map(|key| ("ApiKey", key)).into_iter().collect();
        let response = gateway.get("/orders", &headers).await;
        assert!(
            !response.headers().contains_key("www-authenticate"),
            "{case}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{case}"
        );
        assert_eq!(
            answer(response).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({ "code": -23, "message": message })
            ),
            "{case}"
        );
    }

    // The tenant lacks access to the endpoint (a scope): 403.
    let response = gateway.get("/write/orders", &[("ApiKey", &good)]).await;
    assert_eq!(
        answer(response).await,
        (
            StatusCode::FORBIDDEN,
            json!({ "code": 403, "message": "The API key lacks a scope this request needs." })
        )
    );

    // A good key: the upstream gets the identity, not the key, and not what the client claimed.
    let response = gateway
        .get(
            "/orders",
            &[("ApiKey", &good), ("Gatehouse-Tenant", "globex")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ratelimit-limit"], "1000");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "999");
    assert!(!response.headers().contains_key("ratelimit"));
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["headers"]["gatehouse-key-id"], good_id.to_string());
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");
    assert!(echoed["headers"].get("apikey").is_none());
}

#[sqlx::test]
async fn seed_004_clients_over_their_limit_get_429_with_x_ratelimit_headers_through_nginx(
    pool: PgPool,
) {
    let gateway = Through::gateway(Kind::Nginx, &pool, "seed004", &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (limited, _) = acme.key(&pool, Environment::Live, &["read"], 2).await;
    keep_within_one_minute(10).await;
    for remaining in ["1", "0"] {
        let response = gateway.get("/orders", &[("ApiKey", &limited)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
    }
    let response = gateway.get("/orders", &[("ApiKey", &limited)]).await;
    assert!((1..=60).contains(&retry_after(&response)));
    assert_eq!(response.headers()["x-ratelimit-limit"], "2");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let reset: i64 = response.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now..=now + 61).contains(&reset));
    assert_eq!(
        answer(response).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "error": { "code": "RATE_LIMITED",
                "message": "Too many requests. Try again after the time in Retry-After." } })
        )
    );
}

#[sqlx::test]
async fn seed_000_feed_clients_send_bearer_keys_and_a_jwt_is_no_key_through_nginx(pool: PgPool) {
    let gateway = Through::gateway(Kind::Nginx, &pool, "seed000", &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (good, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let jwt = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    let bearer_good = format!("Bearer {good}");
    let unknown = format!("Bearer {}", unknown_key());
    for (case, authorization, code, message) in [
        (
            "missing",
            None,
            "MISSING_KEY",
            "Send an API key in `Authorization: Bearer <key>`.",
        ),
        (
            "a JWT",
            Some(jwt),
            "MISSING_KEY",
            "Send an API key in `Authorization: Bearer <key>`.",
        ),
        (
            "malformed",
            Some("Bearer ak_live_short"),
            "MALFORMED",
            "This is not an API key of this service.",
        ),
        (
            "unknown",
            Some(unknown.as_str()),
            "NOT_FOUND",
            "No such API key.",
        ),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("Authorization", value))
            .into_iter()
            .collect();
        let response = gateway.get("/feed", &headers).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"feeds\"",
            "{case}"
        );
        assert_eq!(
            answer(response).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({ "error": { "code": code, "message": message } })
            ),
            "{case}"
        );
    }
    let response = gateway
        .get("/feed", &[("Authorization", &bearer_good)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"key\";q=1000;w=60"
    );
    let echoed: Value = response.json().await.unwrap();
    assert!(echoed["headers"].get("authorization").is_none());
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");
}
