//! `/v1/authorize` (any method, any path below it): forward-auth for gateways (nginx
//! `auth_request`, Traefik ForwardAuth, Envoy ext_authz). The gateway sends `Gatehouse-Verifier`
//! and the client's headers; the answer is a status and headers, never a body the client needs.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};

use crate::api::error::{ApiError, Challenge, ErrorBody};
use crate::api::{contract, edge};
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::domain::request_log::{CallInfo, Via};
use crate::domain::verification::{ClientAddress, Code, Requirements, Unavailable};
use crate::metrics::Endpoint;
use crate::vocabulary::Environment;

pub static VERIFIER_HEADER: HeaderName = HeaderName::from_static("gatehouse-verifier");

#[utoipa::path(get, path = "/v1/authorize", tag = "key API",
    description = "Forward-auth for gateways; any method, and any path below `/v1/authorize/`. \
        The key is read from the client's headers (`GATEHOUSE_KEY_HEADERS`).",
    params(
        ("environment" = Option<String>, Query, description = "`live` or `test`"),
        ("scope" = Option<Vec<String>>, Query, description = "A scope the key must hold (repeatable)"),
        ("tenant" = Option<String>, Query, description = "The tenant (id or slug) the key must belong to"),
        ("profile" = Option<String>, Query, description = "A contract profile of GATEHOUSE_PROFILES_FILE"),
    ),
    security(("gateway_verifier" = [])),
    responses(
        (status = 200, description = "The key is good; identity headers (`Gatehouse-Key-Id`, `Gatehouse-Tenant`, …) follow"),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No verifier token or a wrong one; no key, or a bad, expired, revoked or suspended one", body = ErrorBody),
        (status = 403, description = "Environment, tenant or scope mismatch", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Keys cannot be checked now (fail closed)", body = ErrorBody),
    ))]
pub async fn authorize(
    State(state): State<AppState>,
    ClientIp(peer_client): ClientIp,
    request: Request,
) -> Response {
    answer_authorize(&state, peer_client, request).await
}

/// The handler's work, also called directly for the key API's hot routes (`server.rs`).
pub async fn answer_authorize(state: &AppState, peer_client: IpAddr, request: Request) -> Response {
    // The request itself, not extractors that copy the headers, the URI and the query.
    let headers = request.headers();
    let uri = request.uri();
    let started = state.metrics.start();
    let verifier = headers
        .get(&VERIFIER_HEADER)
        .and_then(|value| value.to_str().ok());
    if !edge::verifier_accepted(&state.config.verifier_token_digests, verifier) {
        let message = if verifier.is_some() {
            "The verifier token in `Gatehouse-Verifier` is wrong: it is not one of this \
             Gatehouse's verifier tokens."
        } else {
            "The gateway must send a verifier token in `Gatehouse-Verifier`."
        };
        return ApiError::unauthorized(Challenge::Gateway, message).into_response();
    }
    let query = uri.query().unwrap_or("");
    let (mut required, profile) = match requirements(query).and_then(|required| {
        let name = profile_name(query)?;
        let profile = state.config.profiles.get(name.as_deref()).ok_or_else(|| {
            format!(
                "No profile is named {:?} in GATEHOUSE_PROFILES_FILE.",
                name.unwrap_or_default()
            )
        })?;
        Ok((required, profile))
    }) {
        Ok(found) => found,
        Err(message) => {
            return ApiError::bad_request(message).into_response();
        }
    };
    // The gateway presented a verifier token: its word for the client's address is trusted.
    // A word that does not parse leaves the address unknown (a key with an allowlist is refused);
    // the peer stands for the client in the throttle and the log.
    let (client, forwarded) = match forwarded_client(headers) {
        Forwarded::Client(client) => (client, ClientAddress::Known(client)),
        Forwarded::Unreadable => (peer_client, ClientAddress::Unreadable),
        Forwarded::Absent => (peer_client, ClientAddress::Known(peer_client)),
    };
    required.client = forwarded;
    let Some(presented) = contract::locate_key(headers, profile, &state.config.key_prefix) else {
        state.request_log.count_unknown_key();
        let message = contract::missing_key_message(profile);
        return contract::refusal(profile, contract::MISSING_KEY, &message, None);
    };
    if let Some(header) = &profile.tenant_header {
        required.claimed_tenant = headers
            .get(header)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|tenant| !tenant.is_empty())
            .map(str::to_owned);
    }
    let verdict = match state
        .verifier
        .judge(&presented.key, &required, client)
        .await
    {
        Ok(verdict) => verdict,
        Err(Unavailable) => return edge::unavailable(),
    };
    state
        .request_log
        .record(&verdict, &required, client, Via::Authorize, || {
            let (method, path) = client_request(headers, uri.path());
            CallInfo::new(
                method,
                path,
                headers
                    .get(axum::http::header::USER_AGENT)
                    .and_then(|value| value.to_str().ok()),
                edge::request_id(headers),
                &presented.key,
            )
        });
    let response = match (verdict.code, &verdict.key) {
        (Code::Valid, Some(key)) => contract::pass(
            profile,
            key,
            verdict.quota.as_ref(),
            Some(&contract::ClientHeaders {
                headers,
                presented: &presented,
                key_prefix: &state.config.key_prefix,
                legacy_pattern: state.config.legacy_key_pattern.as_ref(),
            }),
        ),
        (code, _) => {
            if code == Code::IpNotAllowed && forwarded == ClientAddress::Unreadable {
                tracing::warn!(
                    gateway = %peer_client,
                    "forward-auth: the gateway's client address (the last X-Forwarded-For entry, \
                     or X-Real-IP) is not an address; a key with an IP allowlist is refused"
                );
            }
            contract::refusal(
                profile,
                code.as_str(),
                &code.message_for(forwarded),
                verdict.quota.as_ref(),
            )
        }
    };
    state
        .metrics
        .verified(Endpoint::Authorize, verdict.code, started);
    response
}

/// The client's address as the gateway reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    Client(IpAddr),
    /// The gateway sent a client address that does not parse: never a fallback to another
    /// header (a client may have written it), the address is unknown.
    Unreadable,
    /// No forwarding header: the peer is the client.
    Absent,
}

/// The rightmost `X-Forwarded-For` entry (the one the gateway itself added), else `X-Real-IP`.
/// Reads without allocating.
pub fn forwarded_client(headers: &HeaderMap) -> Forwarded {
    let parsed = |text: &str| {
        text.trim()
            .parse()
            .map_or(Forwarded::Unreadable, Forwarded::Client)
    };
    if let Some(last) = headers.get_all("x-forwarded-for").iter().next_back() {
        return match last.to_str() {
            Ok(value) => parsed(value.rsplit(',').next().unwrap_or_default()),
            Err(_) => Forwarded::Unreadable,
        };
    }
    match headers.get("x-real-ip").map(|value| value.to_str()) {
        Some(Ok(value)) => parsed(value),
        Some(Err(_)) => Forwarded::Unreadable,
        None => Forwarded::Absent,
    }
}

/// The client's method and path as the gateway reports them: `X-Forwarded-Method` and
/// `X-Forwarded-Uri` (Traefik, Caddy), `X-Original-Method` and `X-Original-URI` (nginx), else the
/// path below `/v1/authorize/` (Envoy appends it). The query string is cut off later.
fn client_request<'a>(
    headers: &'a HeaderMap,
    own_path: &'a str,
) -> (Option<&'a str>, Option<&'a str>) {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let method = header("x-forwarded-method").or_else(|| header("x-original-method"));
    let path = header("x-forwarded-uri")
        .or_else(|| header("x-original-uri"))
        .or_else(|| {
            own_path
                .strip_prefix("/v1/authorize")
                .filter(|rest| rest.starts_with('/'))
        });
    (method, path)
}

/// `profile` (at most once).
fn profile_name(query: &str) -> Result<Option<String>, String> {
    let mut names = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "profile")
        .map(|(_, value)| value.into_owned());
    let first = names.next();
    if names.next().is_some() {
        return Err("`profile` may be given once.".into());
    }
    Ok(first)
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

    #[test]
    fn the_gateway_reports_the_client_in_its_rightmost_forwarded_entry_or_real_ip() {
        let mut headers = HeaderMap::new();
        assert_eq!(forwarded_client(&headers), Forwarded::Absent);
        headers.insert("x-real-ip", "198.51.100.4".parse().unwrap());
        assert_eq!(
            forwarded_client(&headers),
            Forwarded::Client("198.51.100.4".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        assert_eq!(
            forwarded_client(&headers),
            Forwarded::Client("203.0.113.7".parse().unwrap())
        );
        // The rightmost entry does not parse: no fallback to X-Real-IP, nor to an entry further
        // left (the client may have written those).
        for unreadable in ["garbage", "203.0.113.7, garbage", "203.0.113.7,", ""] {
            headers.insert("x-forwarded-for", unreadable.parse().unwrap());
            assert_eq!(
                forwarded_client(&headers),
                Forwarded::Unreadable,
                "{unreadable:?}"
            );
        }
        headers.remove("x-forwarded-for");
        headers.insert("x-real-ip", "nonsense".parse().unwrap());
        assert_eq!(forwarded_client(&headers), Forwarded::Unreadable);
    }

    #[test]
    fn a_profile_is_named_once_at_most() {
        assert_eq!(profile_name("environment=live"), Ok(None));
        assert_eq!(
            profile_name("profile=seed004&scope=read"),
            Ok(Some("seed004".into()))
        );
        assert!(profile_name("profile=a&profile=b").is_err());
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
