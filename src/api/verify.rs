//! `POST /v1/keys/verify`: the platform's servers ask whether a key is good. A judged key always
//! gets 200 with `{"valid", "code", "key"?, "ratelimit"?}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::api::{self, contract, edge};
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::config::Profile;
use crate::domain::verification::{Code, KeyRecord, Requirements, Unavailable, Verdict};
use crate::domain::vocabulary::Environment;
use crate::error::ErrorReport;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerifyRequest {
    key: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// The caller's client, for bad-key throttling; the caller presented a verifier token.
    #[serde(default)]
    client_ip: Option<String>,
    /// A contract profile: the answer adds what the client should be told in it.
    #[serde(default)]
    profile: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyAnswer {
    pub valid: bool,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimitView>,
    /// With a profile: the status, headers and body to answer the client with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResponseView {
    pub status: u16,
    #[schema(value_type = Object)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: serde_json::Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    pub environment: &'static str,
    pub tenant: TenantView,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub slug: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateLimitView {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset: u32,
}

impl KeyView {
    fn of(key: &KeyRecord) -> Self {
        Self {
            id: key.id,
            name: key.name.clone(),
            environment: key.environment.as_str(),
            tenant: TenantView {
                id: key.tenant_id,
                slug: key.tenant_slug.clone(),
            },
            scopes: key.scopes.clone(),
            expires_at: key.expires_at,
        }
    }
}

#[utoipa::path(post, path = "/v1/keys/verify", tag = "key API", request_body = VerifyRequest,
    security(("verifier_token" = [])),
    responses(
        (status = 200, description = "The key was judged (`valid` says how)", body = VerifyAnswer),
        (status = 400, description = "Bad body", body = crate::api::manage::ErrorBody),
        (status = 401, description = "No verifier token", body = crate::api::manage::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::manage::ErrorBody),
        (status = 503, description = "Keys cannot be checked now (fail closed)", body = crate::api::manage::ErrorBody),
    ))]
pub async fn verify_key(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !edge::verifier_accepted(&state.config.verifier_tokens, edge::bearer(&headers)) {
        return edge::error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Send a verifier token as `Authorization: Bearer <token>`.",
        );
    }
    let request: VerifyRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return bad_request(&format!(
                "The body must be JSON like {{\"key\": \"...\"}}: {}",
                describe(&err)
            ));
        }
    };
    let environment = match request.environment.as_deref() {
        None => None,
        Some(value) => match Environment::parse(value) {
            Some(environment) => Some(environment),
            None => return bad_request("`environment` must be \"live\" or \"test\"."),
        },
    };
    let client = match request.client_ip.as_deref().map(str::parse::<IpAddr>) {
        None => client,
        Some(Ok(address)) => address,
        Some(Err(_)) => return bad_request("`client_ip` must be an IPv4 or IPv6 address."),
    };
    let profile = match request.profile.as_deref() {
        None => None,
        Some(name) => match state.config.profiles.get(Some(name)) {
            Some(profile) => Some(profile),
            None => {
                return bad_request(&format!(
                    "No profile is named {name:?} in GATEHOUSE_PROFILES_FILE."
                ));
            }
        },
    };
    let required = Requirements {
        environment,
        tenant: request.tenant.filter(|tenant| !tenant.is_empty()),
        scopes: request.scopes.unwrap_or_default(),
        ..Requirements::default()
    };
    match state.verifier.judge(&request.key, &required, client).await {
        Ok(verdict) => answer(&verdict, profile.map(|profile| &**profile)),
        Err(Unavailable) => edge::unavailable(),
    }
}

/// What forward-auth would answer in `profile`, as JSON for a server to relay.
fn in_profile(verdict: &Verdict, profile: &Profile) -> ResponseView {
    let response = match (verdict.code, &verdict.key) {
        (Code::Valid, Some(key)) => contract::pass(
            profile,
            key,
            verdict.quota.as_ref(),
            &HeaderMap::new(),
            &header::AUTHORIZATION,
        ),
        (code, _) => contract::refusal(
            profile,
            code.as_str(),
            code.message(),
            verdict.quota.as_ref(),
        ),
    };
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_TYPE)
        .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
        .collect();
    let body = match response.extensions().get::<ErrorReport>() {
        Some(report) => api::error_body(report).0,
        None => contract::templated_body(
            profile,
            verdict.code.as_str(),
            verdict.code.message(),
            response.status(),
        )
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null),
    };
    ResponseView {
        status: response.status().as_u16(),
        headers,
        body,
    }
}

fn answer(verdict: &Verdict, profile: Option<&Profile>) -> Response {
    let body = VerifyAnswer {
        valid: verdict.code.is_valid(),
        code: verdict.code.as_str(),
        key: verdict.key.as_deref().map(KeyView::of),
        ratelimit: verdict.quota.map(|quota| RateLimitView {
            limit: quota.limit,
            remaining: quota.remaining,
            reset: quota.reset,
        }),
        response: profile.map(|profile| in_profile(verdict, profile)),
    };
    let mut response = Json(body).into_response();
    if let Some(quota) = &verdict.quota {
        edge::add_ratelimit_headers(response.headers_mut(), quota);
    }
    response
}

fn bad_request(message: &str) -> Response {
    edge::error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// Says what is wrong with the body without echoing it (it may hold a key).
fn describe(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => "a field is missing or has the wrong type (`key` is required)".into(),
        Category::Syntax | Category::Eof => "it is not valid JSON".into(),
        Category::Io => "it could not be read".into(),
    }
}
