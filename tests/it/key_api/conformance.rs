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

/// One key of each kind a seed documents an answer for: tenant acme's good (`read` only, limit
/// 1000), expired, revoked and rate-limited (limit 2) keys, tenant globex's key, an unknown key.
struct Keys {
    good: String,
    good_id: uuid::Uuid,
    expired: String,
    revoked: String,
    limited: String,
    foreign: String,
    unknown: String,
}

impl Keys {
    async fn create(pool: &PgPool) -> Self {
        let acme = Tenant::create(pool, "acme").await;
        let globex = Tenant::create(pool, "globex").await;
        let (good, good_id) = acme.key(pool, Environment::Live, &["read"], 1000).await;
        let (expired, expired_id) = acme.key(pool, Environment::Live, &["read"], 1000).await;
        expire(pool, expired_id).await;
        let (revoked, revoked_id) = acme.key(pool, Environment::Live, &["read"], 1000).await;
        acme.revoke(pool, revoked_id).await;
        let (limited, _) = acme.key(pool, Environment::Live, &["read"], 2).await;
        let (foreign, _) = globex.key(pool, Environment::Live, &["read"], 1000).await;
        Self {
            good,
            good_id,
            expired,
            revoked,
            limited,
            foreign,
            unknown: unknown_key(),
        }
    }
}

/// The standard error body.
fn error(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

const MALFORMED: &str = "This is not an API key of this service.";
const NOT_FOUND: &str = "No such API key.";
const EXPIRED: &str = "The API key has expired.";
const REVOKED: &str = "The API key has been revoked.";
const OTHER_TENANT: &str = "The API key belongs to another tenant.";
const NO_SCOPE: &str = "The API key lacks a scope this request needs.";
const RATE_LIMITED: &str = "Too many requests. Try again after the time in Retry-After.";

#[sqlx::test]
async fn seed_004_clients_get_401_code_minus_23_and_403_for_scopes_through_nginx(pool: PgPool) {
    // The gateway serves tenant acme's API.
    let gateway = Through::gateway(Kind::Nginx, &pool, "seed004&tenant=acme", &[]).await;
    let Keys {
        good,
        good_id,
        expired,
        revoked,
        foreign,
        unknown,
        ..
    } = Keys::create(&pool).await;

    for (case, key, message) in [
        ("missing", None, "Send an API key in `ApiKey`."),
        ("malformed", Some("not-a-key"), MALFORMED),
        ("unknown", Some(unknown.as_str()), NOT_FOUND),
        ("expired", Some(expired.as_str()), EXPIRED),
        ("revoked", Some(revoked.as_str()), REVOKED),
        ("other tenant", Some(foreign.as_str()), OTHER_TENANT),
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
            json!({ "code": 403, "message": NO_SCOPE })
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
            error("RATE_LIMITED", RATE_LIMITED)
        )
    );
}

#[sqlx::test]
async fn seed_000_feed_clients_send_bearer_keys_and_a_jwt_is_no_key_through_nginx(pool: PgPool) {
    // The gateway serves tenant acme's feeds.
    let gateway = Through::gateway(Kind::Nginx, &pool, "seed000&tenant=acme", &[]).await;
    let keys = Keys::create(&pool).await;
    let bearer = |key: &str| format!("Bearer {key}");
    let jwt = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    let missing = error(
        "MISSING_KEY",
        "Send an API key in `Authorization: Bearer <key>`.",
    );
    for (case, path, authorization, status, body) in [
        (
            "missing",
            "/feed",
            None,
            StatusCode::UNAUTHORIZED,
            missing.clone(),
        ),
        (
            "a JWT",
            "/feed",
            Some(jwt.to_owned()),
            StatusCode::UNAUTHORIZED,
            missing,
        ),
        (
            "malformed",
            "/feed",
            Some(bearer("ak_live_short")),
            StatusCode::UNAUTHORIZED,
            error("MALFORMED", MALFORMED),
        ),
        (
            "unknown",
            "/feed",
            Some(bearer(&keys.unknown)),
            StatusCode::UNAUTHORIZED,
            error("NOT_FOUND", NOT_FOUND),
        ),
        (
            "expired",
            "/feed",
            Some(bearer(&keys.expired)),
            StatusCode::UNAUTHORIZED,
            error("EXPIRED", EXPIRED),
        ),
        (
            "revoked",
            "/feed",
            Some(bearer(&keys.revoked)),
            StatusCode::UNAUTHORIZED,
            error("REVOKED", REVOKED),
        ),
        (
            "other tenant",
            "/feed",
            Some(bearer(&keys.foreign)),
            StatusCode::FORBIDDEN,
            error("TENANT_MISMATCH", OTHER_TENANT),
        ),
        (
            "missing scope",
            "/write/feed",
            Some(bearer(&keys.good)),
            StatusCode::FORBIDDEN,
            error("INSUFFICIENT_SCOPE", NO_SCOPE),
        ),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        let response = gateway.get(path, &headers).await;
        // The challenge on every 401, none on a 403.
        let challenge = response.headers().get("www-authenticate").cloned();
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(challenge.unwrap(), "Bearer realm=\"feeds\"", "{case}");
        } else {
            assert_eq!(challenge, None, "{case}");
        }
        assert_eq!(answer(response).await, (status, body), "{case}");
    }

    let response = gateway
        .get("/feed", &[("Authorization", &bearer(&keys.good))])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"key\";q=1000;w=60"
    );
    let echoed: Value = response.json().await.unwrap();
    assert!(echoed["headers"].get("authorization").is_none());
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");

    // Over the limit: 429 with the IETF rate-limit headers and Retry-After.
    keep_within_one_minute(10).await;
    let limited = bearer(&keys.limited);
    let limited = [("Authorization", limited.as_str())];
    for _ in 0..2 {
        assert_eq!(
            gateway.get("/feed", &limited).await.status(),
            StatusCode::OK
        );
    }
    let response = gateway.get("/feed", &limited).await;
    assert!((1..=60).contains(&retry_after(&response)));
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    assert_eq!(
        answer(response).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            error("RATE_LIMITED", RATE_LIMITED)
        )
    );
}

#[sqlx::test]
async fn seed_002_clients_send_x_platform_api_key_and_x_tenant_id_through_traefik(pool: PgPool) {
    let gateway = Through::gateway(Kind::Traefik, &pool, "seed002", &["X-Platform-Api-Key"]).await;
    let keys = Keys::create(&pool).await;
    let for_acme = |key: &str| {
        vec![
            ("X-Platform-Api-Key".to_owned(), key.to_owned()),
            ("X-Tenant-Id".to_owned(), "acme".to_owned()),
        ]
    };

    for (case, path, headers, status, body) in [
        (
            "missing",
            "/orders",
            vec![("X-Tenant-Id".to_owned(), "acme".to_owned())],
            StatusCode::UNAUTHORIZED,
            error("MISSING_KEY", "Send an API key in `X-Platform-Api-Key`."),
        ),
        (
            "malformed",
            "/orders",
            for_acme("not-a-key"),
            StatusCode::UNAUTHORIZED,
            error("MALFORMED", MALFORMED),
        ),
        (
            "unknown",
            "/orders",
            for_acme(&keys.unknown),
            StatusCode::UNAUTHORIZED,
            error("NOT_FOUND", NOT_FOUND),
        ),
        (
            "expired",
            "/orders",
            for_acme(&keys.expired),
            StatusCode::UNAUTHORIZED,
            error("EXPIRED", EXPIRED),
        ),
        (
            "revoked",
            "/orders",
            for_acme(&keys.revoked),
            StatusCode::UNAUTHORIZED,
            error("REVOKED", REVOKED),
        ),
        (
            "other tenant",
            "/orders",
            for_acme(&keys.foreign),
            StatusCode::FORBIDDEN,
            error("TENANT_MISMATCH", OTHER_TENANT),
        ),
        (
            "missing scope",
            "/write/orders",
            for_acme(&keys.good),
            StatusCode::FORBIDDEN,
            error("INSUFFICIENT_SCOPE", NO_SCOPE),
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let response = gateway.get(path, &headers).await;
        // The profile's realm is "": no challenge.
        assert!(
            !response.headers().contains_key("www-authenticate"),
            "{case}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{case}"
        );
        assert_eq!(answer(response).await, (status, body), "{case}");
    }

    // A good key for its own tenant: the upstream gets the identity, not the key, and not what
    // the client claimed.
    let response = gateway
        .get(
            "/orders",
            &[
                ("X-Platform-Api-Key", &keys.good),
                ("X-Tenant-Id", "acme"),
                ("Gatehouse-Key-Id", "forged"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(
        echoed["headers"]["gatehouse-key-id"],
        keys.good_id.to_string()
    );
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");
    assert_eq!(echoed["headers"]["x-tenant-id"], "acme");
    assert!(echoed["headers"].get("x-platform-api-key").is_none());

    // Over the limit: 429 with the IETF rate-limit headers and Retry-After.
    keep_within_one_minute(10).await;
    for _ in 0..2 {
        let response = gateway
            .get("/orders", &[("X-Platform-Api-Key", &keys.limited)])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = gateway
        .get("/orders", &[("X-Platform-Api-Key", &keys.limited)])
        .await;
    assert!((1..=60).contains(&retry_after(&response)));
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    assert!(
        response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"key\";r=0;t=")
    );
    assert_eq!(
        answer(response).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            error("RATE_LIMITED", RATE_LIMITED)
        )
    );
}

#[sqlx::test]
async fn seed_003_clients_get_one_401_for_every_bad_x_invois_key_through_caddy(pool: PgPool) {
    // The gateway serves tenant acme's API.
    let gateway =
        Through::gateway(Kind::Caddy, &pool, "seed003&tenant=acme", &["X-Invois-Key"]).await;
    let keys = Keys::create(&pool).await;
    let unauthorized = json!({ "error": "Unauthorized: Valid API key required" });

    for (case, path, key, status, body) in [
        (
            "missing",
            "/invoices",
            None,
            StatusCode::UNAUTHORIZED,
            unauthorized.clone(),
        ),
        (
            "malformed",
            "/invoices",
            Some("not-a-key"),
            StatusCode::UNAUTHORIZED,
            unauthorized.clone(),
        ),
        (
            "unknown",
            "/invoices",
            Some(keys.unknown.as_str()),
            StatusCode::UNAUTHORIZED,
            unauthorized.clone(),
        ),
        (
            "expired",
            "/invoices",
            Some(keys.expired.as_str()),
            StatusCode::UNAUTHORIZED,
            unauthorized.clone(),
        ),
        (
            "revoked",
            "/invoices",
            Some(keys.revoked.as_str()),
            StatusCode::UNAUTHORIZED,
            unauthorized.clone(),
        ),
        // Seed 003 documents only its 401; the rest is Gatehouse's standard body.
        (
            "other tenant",
            "/invoices",
            Some(keys.foreign.as_str()),
            StatusCode::FORBIDDEN,
            error("TENANT_MISMATCH", OTHER_TENANT),
        ),
        (
            "missing scope",
            "/write/invoices",
            Some(keys.good.as_str()),
            StatusCode::FORBIDDEN,
            error("INSUFFICIENT_SCOPE", NO_SCOPE),
        ),
    ] {
        let headers: Vec<(&str, &str)> = key.map(|key| ("X-Invois-Key", key)).into_iter().collect();
        let response = gateway.get(path, &headers).await;
        assert!(
            !response.headers().contains_key("www-authenticate"),
            "{case}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{case}"
        );
        assert_eq!(answer(response).await, (status, body), "{case}");
    }

    // A good key: the client sees its budget, the upstream the identity and not the key.
    keep_within_one_minute(10).await;
    let response = gateway
        .get(
            "/invoices",
            &[("X-Invois-Key", &keys.good), ("Gatehouse-Tenant", "globex")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"key\";q=1000;w=60"
    );
    assert!(
        response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"key\";r=999;t=")
    );
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(
        echoed["headers"]["gatehouse-key-id"],
        keys.good_id.to_string()
    );
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");
    assert!(echoed["headers"].get("x-invois-key").is_none());
    assert!(echoed["headers"].get("ratelimit").is_none());

    // Over the limit: 429 with the rate-limit headers, Retry-After and the standard body.
    for remaining in ["1", "0"] {
        let response = gateway
            .get("/invoices", &[("X-Invois-Key", &keys.limited)])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let ratelimit = response.headers()["ratelimit"].to_str().unwrap();
        assert!(
            ratelimit.starts_with(&format!("\"key\";r={remaining};t=")),
            "{ratelimit}"
        );
    }
    let response = gateway
        .get("/invoices", &[("X-Invois-Key", &keys.limited)])
        .await;
    assert!((1..=60).contains(&retry_after(&response)));
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    assert_eq!(
        answer(response).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            error("RATE_LIMITED", RATE_LIMITED)
        )
    );
}
