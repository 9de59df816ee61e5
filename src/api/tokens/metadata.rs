//! `GET /.well-known/oauth-authorization-server` (RFC 8414) and `GET /.well-known/jwks.json`
//! (RFC 7517): everything an independent verifier needs to check Gatehouse's tokens.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::domain::access_tokens::signing_keys::{Jwk, SigningKeys};

/// Verifiers may keep either document five minutes: a new key is published 15 minutes before it
/// signs, so every verifier has it before a token it signed arrives.
static CACHEABLE: HeaderValue = HeaderValue::from_static("public, max-age=300");

/// The signing keys, or 404 when this deployment issues no tokens.
fn signing_keys(state: &AppState) -> Result<&SigningKeys, ApiError> {
    state.signing_keys.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "This deployment issues no tokens: GATEHOUSE_SECRET_KEY is not set.",
        )
    })
}

#[derive(Debug, Serialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// `GET /.well-known/jwks.json`: every published key (the one that signs, the next one, and those
/// retired while tokens they signed may still be alive).
pub async fn jwks(State(state): State<AppState>) -> Response {
    match signing_keys(&state) {
        Ok(keys) => cacheable(JwkSet {
            keys: keys.published(OffsetDateTime::now_utc()),
        }),
        Err(refused) => refused.into_response(),
    }
}

#[derive(Debug, Serialize)]
struct AuthorizationServer {
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    scopes_supported: Vec<String>,
    /// No authorization endpoint: machine clients only (client credentials).
    response_types_supported: Vec<String>,
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn authorization_server(State(state): State<AppState>) -> Response {
    if let Err(refused) = signing_keys(&state) {
        return refused.into_response();
    }
    let url = &state.config.public_url;
    cacheable(AuthorizationServer {
        issuer: url.origin().to_owned(),
        token_endpoint: url.link("/oauth/token"),
        jwks_uri: url.link("/.well-known/jwks.json"),
        grant_types_supported: vec!["client_credentials"],
        token_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post"],
        scopes_supported: state.config.scopes.clone(),
        response_types_supported: Vec::new(),
    })
}

fn cacheable(body: impl Serialize) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, CACHEABLE.clone());
    response
}
