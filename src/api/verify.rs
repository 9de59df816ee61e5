//! `POST /v1/keys/verify`: the platform's servers ask whether a key is good. A judged key always
//! gets 200 with `{"valid", "code", "key"?, "ratelimit"?}`.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::api::error::{ApiError, Challenge, ErrorBody};
use crate::api::{contract, edge};
use crate::app::{AppState, MAX_BODY_BYTES};
use crate::client_ip::ClientIp;
use crate::config::Profile;
use crate::domain::rate_limit::Quota;
use crate::domain::request_log::{CallInfo, Via};
use crate::domain::verification::{
    ClientAddress, Code, KeyRecord, Requirements, Unavailable, Verdict,
};
use crate::metrics::Endpoint;
use crate::vocabulary::Environment;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerifyRequest<'a> {
    /// Read in place from the body unless it holds escapes.
    #[serde(borrow)]
    #[schema(value_type = String)]
    key: Cow<'a, str>,
    #[serde(default, borrow)]
    #[schema(value_type = Option<String>)]
    environment: Option<Cow<'a, str>>,
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
    /// The client's request to the platform, for the request log: `method`, `path` (its query
    /// string is cut off), `user_agent`; all optional.
    #[serde(default)]
    request: Option<ClientRequest>,
}

/// The client's request to the platform, recorded in the request log.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ClientRequest {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
}

impl ClientRequest {
    /// Says what is wrong with it, if anything.
    fn problem(&self) -> Option<&'static str> {
        let method_ok = self.method.as_deref().is_none_or(|method| {
            (1..=16).contains(&method.len()) && method.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if !method_ok {
            return Some("`request.method` must be an HTTP method such as \"GET\".");
        }
        if self
            .path
            .as_deref()
            .is_some_and(|path| !path.starts_with('/'))
        {
            return Some("`request.path` must be a path starting with \"/\".");
        }
        None
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyAnswer<'a> {
    pub valid: bool,
    pub code: &'static str,
    /// For a refusal: why, in a sentence (IP_NOT_ALLOWED names the address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyView<'a>>,
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
pub struct KeyView<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub environment: &'static str,
    pub tenant: TenantView<'a>,
    pub scopes: &'a [String],
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<time::OffsetDateTime>,
    /// The key's metadata object (`{}` when it has none).
    pub meta: &'a serde_json::Value,
    /// Imported in the platform's old format (`GATEHOUSE_LEGACY_KEY_PATTERN`).
    pub legacy: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView<'a> {
    pub id: Uuid,
    pub slug: &'a str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateLimitView {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset: u32,
}

impl<'a> KeyView<'a> {
    fn of(key: &'a KeyRecord) -> Self {
        Self {
            id: key.id,
            name: &key.name,
            environment: key.environment.as_str(),
            tenant: TenantView {
                id: key.tenant_id,
                slug: &key.tenant_slug,
            },
            scopes: &key.scopes,
            expires_at: key.expires_at,
            meta: &key.meta,
            legacy: key.legacy,
        }
    }
}

#[utoipa::path(post, path = "/v1/keys/verify", tag = "key API", request_body = VerifyRequest,
    security(("verifier_token" = [])),
    responses(
        (status = 200, description = "The key was judged (`valid` says how)", body = VerifyAnswer),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No verifier token, or a wrong one", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Keys cannot be checked now (fail closed)", body = ErrorBody),
    ))]
pub async fn verify_key(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    request: Request,
) -> Response {
    answer_verify(&state, client, request).await
}

/// The handler's work, also called directly for the key API's hot routes (`server.rs`).
pub async fn answer_verify(state: &AppState, client: IpAddr, request: Request) -> Response {
    let started = state.metrics.start();
    let (body, request_id) = match admit(state, request) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(err)) if is_too_large(&err) => return ApiError::too_large().into_response(),
        Ok(Err(_)) => return bad_request("The body could not be read."),
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "TIMEOUT",
                "The request took too long. Please try again.",
            )
            .into_response();
        }
    };
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
    // Only a `client_ip` the caller names counts for IP allowlists: the caller's own address is
    // its server's, not its client's.
    let client_ip = match request.client_ip.as_deref().map(str::parse::<IpAddr>) {
        None => None,
        Some(Ok(address)) => Some(address),
        Some(Err(_)) => return bad_request("`client_ip` must be an IPv4 or IPv6 address."),
    };
    let client = client_ip.unwrap_or(client);
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
    if let Some(problem) = request.request.as_ref().and_then(ClientRequest::problem) {
        return bad_request(problem);
    }
    let required = Requirements {
        environment,
        tenant: request.tenant.filter(|tenant| !tenant.is_empty()),
        scopes: request.scopes.unwrap_or_default(),
        client: client_ip.map_or(ClientAddress::NotGiven, ClientAddress::Known),
        ..Requirements::default()
    };
    match state.verifier.judge(&request.key, &required, client).await {
        Ok(verdict) => {
            state
                .request_log
                .record(&verdict, &required, client, Via::Verify, || {
                    let given = request.request.unwrap_or_default();
                    CallInfo::new(
                        given.method.as_deref(),
                        given.path.as_deref(),
                        given.user_agent.as_deref(),
                        request_id.as_ref().and_then(|id| id.to_str().ok()),
                        &request.key,
                    )
                });
            let response = answer(&verdict, required.client, profile.map(|profile| &**profile));
            state
                .metrics
                .verified(Endpoint::Verify, verdict.code, started);
            response
        }
        Err(Unavailable) => edge::unavailable(),
    }
}

/// The body of a request that presented a verifier token, and its `X-Request-Id`: all the
/// answer needs of the head, so the head is not held (nor moved) across the awaits. Reads the
/// `Request` itself, not the `HeaderMap` extractor: that one copies every header.
#[allow(clippy::result_large_err)] // the refusal is the answer itself
fn admit(
    state: &AppState,
    request: Request,
) -> Result<(axum::body::Body, Option<axum::http::HeaderValue>), Response> {
    let (parts, body) = request.into_parts();
    let presented = edge::bearer(&parts.headers);
    if !edge::verifier_accepted(&state.config.verifier_token_digests, presented) {
        let message = if presented.is_some() {
            "The verifier token in `Authorization: Bearer <token>` is wrong: it is not one of \
             this Gatehouse's verifier tokens."
        } else {
            "Send a verifier token as `Authorization: Bearer <token>`."
        };
        return Err(ApiError::unauthorized(Challenge::Verifier, message).into_response());
    }
    Ok((body, parts.headers.get(edge::REQUEST_ID).cloned()))
}

/// Longest a caller may take to send its body (the portal's stack has the same bound for the
/// whole request).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn is_too_large(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// What forward-auth would answer in `profile`, as JSON for a server to relay.
fn in_profile(verdict: &Verdict, client: ClientAddress, profile: &Profile) -> ResponseView {
    let message = verdict.code.message_for(client);
    let response = match (verdict.code, &verdict.key) {
        (Code::Valid, Some(key)) => contract::pass(profile, key, verdict.quota.as_ref(), None),
        (code, _) => contract::refusal(profile, code.as_str(), &message, verdict.quota.as_ref()),
    };
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_TYPE)
        .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
        .collect();
    let templated =
        contract::templated_body(profile, verdict.code.as_str(), &message, response.status());
    let body = match (templated, verdict.code, &verdict.key) {
        (Some(body), _, _) => serde_json::from_str(&body).unwrap_or(Value::Null),
        (None, Code::Valid, Some(_)) => Value::Null,
        // A refusal without the profile's template has the standard error body.
        (None, code, _) => {
            serde_json::to_value(ErrorBody::of(code.as_str(), &message)).unwrap_or(Value::Null)
        }
    };
    ResponseView {
        status: response.status().as_u16(),
        headers,
        body,
    }
}

fn answer(verdict: &Verdict, client: ClientAddress, profile: Option<&Profile>) -> Response {
    if let (Code::Valid, Some(key), None) = (verdict.code, &verdict.key, profile)
        && let Some(mut response) = valid_answer(key, verdict.quota.as_ref())
    {
        if let Some(quota) = &verdict.quota {
            edge::add_ratelimit_headers(response.headers_mut(), quota);
        }
        return response;
    }
    let body = VerifyAnswer {
        valid: verdict.code.is_valid(),
        code: verdict.code.as_str(),
        message: (!verdict.code.is_valid()).then(|| verdict.code.message_for(client).into_owned()),
        key: verdict.key.as_deref().map(KeyView::of),
        ratelimit: verdict.quota.map(|quota| RateLimitView {
            limit: quota.limit,
            remaining: quota.remaining,
            reset: quota.reset,
        }),
        response: profile.map(|profile| in_profile(verdict, client, profile)),
    };
    let mut response = edge::json_response(&body);
    if let Some(quota) = &verdict.quota {
        edge::add_ratelimit_headers(response.headers_mut(), quota);
    }
    response
}

/// A `VALID` answer written around the key's view serialized once per cached record: the same
/// JSON as [`VerifyAnswer`] gives (`valid`, `code`, `key`, `ratelimit`, in that order), without
/// serializing the key's fields on every call. `None` if the view cannot be serialized.
fn valid_answer(key: &KeyRecord, quota: Option<&Quota>) -> Option<Response> {
    const START: &[u8] = br#"{"valid":true,"code":"VALID","key":"#;
    // `,"ratelimit":{"limit":…,"remaining":…,"reset":…}}` with three u32s at most.
    const RATELIMIT_MAX: usize = 80;
    let view = match key.answer_view.get() {
        Some(view) => view,
        None => {
            let view = serde_json::to_vec(&KeyView::of(key)).ok()?;
            key.answer_view.get_or_init(|| view.into_boxed_slice())
        }
    };
    // Written once into a buffer of its final size, the numbers without the formatter.
    let mut body = Vec::with_capacity(START.len() + view.len() + RATELIMIT_MAX);
    body.extend_from_slice(START);
    body.extend_from_slice(view);
    if let Some(quota) = quota {
        body.extend_from_slice(br#","ratelimit":{"limit":"#);
        edge::push_number(&mut body, quota.limit);
        body.extend_from_slice(br#","remaining":"#);
        edge::push_number(&mut body, quota.remaining);
        body.extend_from_slice(br#","reset":"#);
        edge::push_number(&mut body, quota.reset);
        body.push(b'}');
    }
    body.push(b'}');
    Some(edge::json_bytes_response(body))
}

fn bad_request(message: &str) -> Response {
    ApiError::bad_request(message).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::verification::KeyForVerification;
    use crate::domain::rate_limit::Policy;

    fn key(meta: serde_json::Value, expires: bool) -> KeyRecord {
        KeyRecord::from_row(
            KeyForVerification {
                api_key_id: Uuid::new_v4(),
                tenant_id: Uuid::new_v4(),
                tenant_slug: "acme".into(),
                name: "CI \"deploy\" key ✓".into(),
                environment: Environment::Live,
                full_access: false,
                scopes: vec!["read".into(), "write".into()],
                rate_limit: 100,
                expires_at: expires
                    .then(|| time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()),
                revoked_at: None,
                disabled_at: None,
                ip_allowlist: Vec::new(),
                meta,
                tenant_suspended: false,
                legacy: false,
            },
            &[],
        )
    }

    #[test]
    fn a_valid_answer_written_around_the_cached_view_is_the_serialized_answer() {
        let quota = Quota {
            policy: Policy::Key,
            limit: 100,
            remaining: 99,
            reset: 42,
        };
        for (record, quota) in [
            (key(json!({}), false), Some(quota)),
            (key(json!({"plan": "pro", "n": [1, 2]}), true), Some(quota)),
            (key(json!({}), true), None),
            (
                key(json!({}), false),
                Some(Quota {
                    limit: u32::MAX,
                    remaining: 0,
                    reset: 0,
                    ..quota
                }),
            ),
        ] {
            let expected = serde_json::to_value(VerifyAnswer {
                valid: true,
                code: "VALID",
                message: None,
                key: Some(KeyView::of(&record)),
                ratelimit: quota.map(|quota| RateLimitView {
                    limit: quota.limit,
                    remaining: quota.remaining,
                    reset: quota.reset,
                }),
                response: None,
            })
            .unwrap();
            // Twice: the first serializes the view, the second reuses it.
            for _ in 0..2 {
                let response = valid_answer(&record, quota.as_ref()).unwrap();
                let body = body_of(response);
                let written: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(written, expected);
            }
        }
    }

    fn body_of(response: Response) -> Vec<u8> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap()
            .to_vec()
    }
}
