//! The seeds' documented answers, through a real gateway with the example profiles
//! (`examples/profiles.toml`) and configurations: a client of each platform gets exactly the
//! status, body and headers its platform documents.

use gatehouse::vocabulary::Environment;
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

/// A case a seed documents: a request (`key` in the seed's key header) and the exact answer.
struct Case {
    name: &'static str,
    path: &'static str,
    key: Option<String>,
    status: StatusCode,
    body: Value,
}

impl Keys {
    /// Every refusal a seed documents, in the standard contract, for a gateway that serves
    /// tenant acme with `/write/` needing the `write` scope.
    fn refusals(&self, missing_key_message: &str) -> Vec<Case> {
        let case = |name, path, key: Option<&str>, status, code, message: &str| Case {
            name,
            path,
            key: key.map(str::to_owned),
            status,
            body: error(code, message),
        };
        let (refused, forbidden) = (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN);
        vec![
            case(
                "missing",
                "/orders",
                None,
                refused,
                "MISSING_KEY",
                missing_key_message,
            ),
            case(
                "malformed",
                "/orders",
                Some("ak_live_short"),
                refused,
                "MALFORMED",
                MALFORMED,
            ),
            case(
                "unknown",
                "/orders",
                Some(&self.unknown),
                refused,
                "NOT_FOUND",
                NOT_FOUND,
            ),
            case(
                "expired",
                "/orders",
                Some(&self.expired),
                refused,
                "EXPIRED",
                EXPIRED,
            ),
            case(
                "revoked",
                "/orders",
                Some(&self.revoked),
                refused,
                "REVOKED",
                REVOKED,
            ),
            case(
                "other tenant",
                "/orders",
                Some(&self.foreign),
                forbidden,
                "TENANT_MISMATCH",
                OTHER_TENANT,
            ),
            case(
                "missing scope",
                "/write/orders",
                Some(&self.good),
                forbidden,
                "INSUFFICIENT_SCOPE",
                NO_SCOPE,
            ),
        ]
    }
}

/// The answer to the third request in a minute with `headers` (a key whose limit is 2), after
/// checking the first two pass.
async fn over_the_limit(gateway: &Through, headers: &[(&str, &str)]) -> reqwest::Response {
    keep_within_one_minute(10).await;
    for _ in 0..2 {
        assert_eq!(
            gateway.get("/orders", headers).await.status(),
            StatusCode::OK
        );
    }
    let response = gateway.get("/orders", headers).await;
    assert!((1..=60).contains(&retry_after(&response)));
    response
}

/// Sends `headers` to `path` and asserts the exact answer: `status`, `body` as JSON, and
/// `challenge` as `WWW-Authenticate` (`None`: no challenge).
async fn expect(
    gateway: &Through,
    case: &str,
    path: &str,
    headers: &[(&str, &str)],
    (status, body): (StatusCode, Value),
    challenge: Option<&str>,
) {
    let response = gateway.get(path, headers).await;
    let given = response.headers().get("www-authenticate");
    assert_eq!(
        given.map(|value| value.to_str().unwrap()),
        challenge,
        "{case}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{case}"
    );
    assert_eq!(answer(response).await, (status, body), "{case}");
}

#[sqlx::test]
async fn seed_004_clients_get_401_code_minus_23_and_403_for_scopes_through_nginx(pool: PgPool) {
    // The gateway serves tenant acme's API.
    let gateway = Through::gateway(Kind::Nginx, &pool, "seed004&tenant=acme", &[]).await;
    let keys = Keys::create(&pool).await;

    // Every refusal but a missing scope is 401 with code -23; a missing scope is 403 (seed 004
    // gives it no number, so `{number}` is the status).
    for case in keys.refusals("Send an API key in `ApiKey`.") {
        let message = case.body["error"]["message"].clone();
        let (status, number) = match case.name {
            "missing scope" => (StatusCode::FORBIDDEN, 403),
            _ => (StatusCode::UNAUTHORIZED, -23),
        };
        let headers: Vec<(&str, &str)> = case
            .key
            .iter()
            .map(|key| ("ApiKey", key.as_str()))
            .collect();
        let body = json!({ "code": number, "message": message });
        expect(
            &gateway,
            case.name,
            case.path,
            &headers,
            (status, body),
            None,
        )
        .await;
    }

    // A good key: the upstream gets the identity, not the key, and not what the client claimed.
    let response = gateway
        .get(
            "/orders",
            &[("ApiKey", &keys.good), ("Gatehouse-Tenant", "globex")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ratelimit-limit"], "1000");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "999");
    assert!(!response.headers().contains_key("ratelimit"));
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(
        echoed["headers"]["gatehouse-key-id"],
        keys.good_id.to_string()
    );
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
    let response = over_the_limit(&gateway, &[("ApiKey", &limited)]).await;
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
    let missing = "Send an API key in `Authorization: Bearer <key>`.";
    let mut cases = keys.refusals(missing);
    cases.push(Case {
        name: "a JWT",
        path: "/orders",
        key: None,
        status: StatusCode::UNAUTHORIZED,
        body: error("MISSING_KEY", missing),
    });
    for case in cases {
        let authorization = match case.name {
            "a JWT" => Some(jwt.to_owned()),
            _ => case.key.as_deref().map(bearer),
        };
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        let challenge =
            (case.status == StatusCode::UNAUTHORIZED).then_some("Bearer realm=\"feeds\"");
        let expected = (case.status, case.body);
        expect(
            &gateway, case.name, case.path, &headers, expected, challenge,
        )
        .await;
    }

    let response = gateway
        .get("/orders", &[("Authorization", &bearer(&keys.good))])
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
    let limited = bearer(&keys.limited);
    let response = over_the_limit(&gateway, &[("Authorization", &limited)]).await;
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

    // The tenant comes in X-Tenant-Id (the route names none).
    for case in keys.refusals("Send an API key in `X-Platform-Api-Key`.") {
        let mut headers = vec![("X-Tenant-Id", "acme")];
        headers.extend(case.key.as_deref().map(|key| ("X-Platform-Api-Key", key)));
        // The profile's realm is "": no challenge.
        let expected = (case.status, case.body);
        expect(&gateway, case.name, case.path, &headers, expected, None).await;
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
    let response = over_the_limit(&gateway, &[("X-Platform-Api-Key", &keys.limited)]).await;
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    let ratelimit = response.headers()["ratelimit"].to_str().unwrap();
    assert!(ratelimit.starts_with("\"key\";r=0;t="), "{ratelimit}");
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

    // Every 401 is seed 003's one answer; it documents no other, so the rest is Gatehouse's.
    for case in keys.refusals("Send an API key in `X-Invois-Key`.") {
        let body = match case.status {
            StatusCode::UNAUTHORIZED => json!({ "error": "Unauthorized: Valid API key required" }),
            _ => case.body,
        };
        let headers: Vec<(&str, &str)> = case
            .key
            .iter()
            .map(|key| ("X-Invois-Key", key.as_str()))
            .collect();
        let expected = (case.status, body);
        expect(&gateway, case.name, case.path, &headers, expected, None).await;
    }

    // A good key: the client sees its budget, the upstream the identity and not the key.
    let response = gateway
        .get(
            "/orders",
            &[("X-Invois-Key", &keys.good), ("Gatehouse-Tenant", "globex")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"key\";q=1000;w=60"
    );
    let ratelimit = response.headers()["ratelimit"].to_str().unwrap();
    assert!(ratelimit.starts_with("\"key\";r=999;t="), "{ratelimit}");
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(
        echoed["headers"]["gatehouse-key-id"],
        keys.good_id.to_string()
    );
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");
    assert!(echoed["headers"].get("x-invois-key").is_none());
    assert!(echoed["headers"].get("ratelimit").is_none());

    // Over the limit: 429 with the rate-limit headers, Retry-After and the standard body.
    let response = over_the_limit(&gateway, &[("X-Invois-Key", &keys.limited)]).await;
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    assert_eq!(
        answer(response).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            error("RATE_LIMITED", RATE_LIMITED)
        )
    );
}
