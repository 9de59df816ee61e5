//! `/v1/authorize` (any method, any path below it): forward-auth for gateways (nginx
//! `auth_request`, Traefik ForwardAuth, Envoy ext_authz). The gateway sends `Gatehouse-Verifier`
//! and the client's headers; the answer is a status and headers, never a body the client needs.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::edge;
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::domain::verification::{Code, Requirements, Unavailable, Verdict};
use crate::domain::vocabulary::Environment;

pub static VERIFIER_HEADER: HeaderName = HeaderName::from_static("gatehouse-verifier");
pub static KEY_ID_HEADER: HeaderName = HeaderName::from_static("gatehouse-key-id");
pub static TENANT_ID_HEADER: HeaderName = HeaderName::from_static("gatehouse-tenant-id");
pub static TENANT_HEADER: HeaderName = HeaderName::from_static("gatehouse-tenant");
pub static ENVIRONMENT_HEADER: HeaderName = HeaderName::from_static("gatehouse-environment");
pub static SCOPES_HEADER: HeaderName = HeaderName::from_static("gatehouse-scopes");

pub async fn authorize(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let verifier = headers
        .get(&VERIFIER_HEADER)
        .and_then(|value| value.to_str().ok());
    if !edge::verifier_accepted(&state.config.verifier_tokens, verifier) {
        return edge::error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "The gateway must send a verifier token in `Gatehouse-Verifier`.",
        );
    }
    let required = match requirements(query.as_deref().unwrap_or("")) {
        Ok(required) => required,
        Err(message) => {
            return edge::error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message);
        }
    };
    let Some(presented) = presented_key(&headers, &state.config.key_headers) else {
        let mut response = edge::error_response(
            StatusCode::UNAUTHORIZED,
            "MISSING_KEY",
            "Send an API key, e.g. `Authorization: Bearer <key>`.",
        );
        challenge(&mut response);
        return response;
    };
    match state.verifier.judge(&presented, &required, client).await {
        Ok(verdict) => answer(&verdict),
        Err(Unavailable) => edge::unavailable(),
    }
}

fn answer(verdict: &Verdict) -> Response {
    let status = match verdict.code {
        Code::Valid => StatusCode::OK,
        Code::Malformed | Code::NotFound | Code::Expired | Code::Revoked => {
            StatusCode::UNAUTHORIZED
        }
        Code::EnvironmentMismatch | Code::TenantMismatch | Code::InsufficientScope => {
            StatusCode::FORBIDDEN
        }
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut response = if status == StatusCode::OK {
        StatusCode::OK.into_response()
    } else {
        edge::error_response(status, verdict.code.as_str(), verdict.code.message())
    };
    let headers = response.headers_mut();
    if let Some(quota) = &verdict.quota {
        edge::add_ratelimit_headers(headers, quota);
        if verdict.code == Code::RateLimited {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(quota.reset));
        }
    }
    if status == StatusCode::UNAUTHORIZED {
        challenge(&mut response);
    }
    if let (Code::Valid, Some(key)) = (verdict.code, &verdict.key) {
        let headers = response.headers_mut();
        let mut set = |name: &HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name.clone(), value);
            }
        };
        set(&KEY_ID_HEADER, &key.id.to_string());
        set(&TENANT_ID_HEADER, &key.tenant_id.to_string());
        set(&TENANT_HEADER, &key.tenant_slug);
        set(&ENVIRONMENT_HEADER, key.environment.as_str());
        set(&SCOPES_HEADER, &key.scopes.join(" "));
    }
    response
}

fn challenge(response: &mut Response) {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gatehouse\""),
    );
}

/// The key from the first configured header that holds one. `Bearer <key>` is unwrapped in any
/// header; `Authorization` with another scheme holds no key.
pub fn presented_key(headers: &HeaderMap, names: &[String]) -> Option<String> {
    names.iter().find_map(|name| {
        let value = headers.get(name.as_str())?.to_str().ok()?.trim();
        let key = match edge::strip_bearer(value) {
            Some(key) => key,
            None if name.eq_ignore_ascii_case("authorization") => return None,
            None => value,
        };
        (!key.is_empty()).then(|| key.to_owned())
    })
}

/// `environment`, `tenant` (at most once each) and `scope` (repeatable); other parameters are
/// ignored (Envoy appends the original path, for instance).
pub fn requirements(query: &str) -> Result<Requirements, String> {
    let mut required = Requirements::default();
    let mut seen_environment = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "environment" => {
                if seen_environment {
                    return Err("`environment` may be given once.".into());
                }
                seen_environment = true;
                required.environment = Some(
                    Environment::parse(&value)
                        .ok_or("`environment` must be \"live\" or \"test\".")?,
                );
            }
            "tenant" => {
                if required.tenant.is_some() {
                    return Err("`tenant` may be given once.".into());
                }
                required.tenant = Some(value.into_owned());
            }
            "scope" => {
                for scope in value.split([' ', ',']).filter(|scope| !scope.is_empty()) {
                    required.scopes.push(scope.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(required)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["Authorization".into(), "X-Api-Key".into(), "ApiKey".into()]
    }

    #[test]
    fn the_key_comes_from_the_first_configured_header_that_has_one() {
        let mut headers = HeaderMap::new();
        headers.insert("apikey", "ak_third".parse().unwrap());
        assert_eq!(
            presented_key(&headers, &names()).as_deref(),
            Some("ak_third")
        );
        headers.insert("x-api-key", "ak_second".parse().unwrap());
        assert_eq!(
            presented_key(&headers, &names()).as_deref(),
            Some("ak_second")
        );
        headers.insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
        assert_eq!(
            presented_key(&headers, &names()).as_deref(),
            Some("ak_second")
        );
        headers.insert("authorization", "Bearer ak_first".parse().unwrap());
        assert_eq!(
            presented_key(&headers, &names()).as_deref(),
            Some("ak_first")
        );
        assert_eq!(presented_key(&HeaderMap::new(), &names()), None);
    }

    #[test]
    fn query_requirements_are_parsed_and_repeats_refused() {
        let required =
            requirements("environment=live&scope=read&scope=write&tenant=acme&x=1").unwrap();
        assert_eq!(required.environment, Some(Environment::Live));
        assert_eq!(required.scopes, ["read", "write"]);
        assert_eq!(required.tenant.as_deref(), Some("acme"));
        assert!(requirements("environment=prod").is_err());
        assert!(requirements("environment=live&environment=test").is_err());
        assert!(requirements("tenant=a&tenant=b").is_err());
        assert_eq!(requirements("").unwrap(), Requirements::default());
    }
}
