//! `POST /oauth/token` (RFC 6749 §4.4): a key, authenticated as an OAuth2 client
//! (`client_secret_basic` or `client_secret_post`; the client id is the key's `client_id`, the
//! secret the key), gets a short-lived access token (RFC 9068). The key is judged by the key API's
//! own pipeline, so every rule of a verification applies (revoked, disabled, expired, tenant
//! suspended, IP allowlist, rate limit) and the issuance is metered as a verification.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::db;
use crate::domain::access_tokens::issue::{self, Refusal};
use crate::domain::verification::{Requirements, Unavailable};
use crate::vocabulary::{ClientAddress, Code};

/// An error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Serialize)]
struct OAuthError {
    error: &'static str,
    error_description: String,
}

fn refuse(status: StatusCode, error: &'static str, description: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(OAuthError {
            error,
            error_description: description.into(),
        }),
    )
        .into_response();
    no_store(&mut response);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"gatehouse\""),
        );
    }
    response
}

/// A refusal before the key is judged.
struct Refused {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        refuse(self.status, self.error, self.description)
    }
}

fn invalid_client(description: &str) -> Refused {
    Refused {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: description.to_owned(),
    }
}

fn invalid_request(description: impl Into<String>) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        description: description.into(),
    }
}

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

#[derive(Debug, Serialize)]
struct TokenAnswer {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
}

/// The form's parameters, each at most once (RFC 6749 §3.2).
fn parameters(body: &[u8]) -> Result<HashMap<String, String>, Refused> {
    let mut found = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if found.insert(name.to_string(), value.to_string()).is_some() {
            return Err(invalid_request(format!("{name} is given more than once.")));
        }
    }
    Ok(found)
}

/// `client_id` and `client_secret` from `Authorization: Basic` (RFC 6749 §2.3.1: each
/// form-urlencoded) or from the body; never both.
fn credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(String, String), Refused> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        });
    let in_body = form.contains_key("client_secret");
    match basic {
        Some(_) if in_body => Err(invalid_request(
            "Authenticate the client one way: Authorization: Basic or client_secret in the body.",
        )),
        Some(encoded) => {
            let decoded = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    invalid_client("The Basic credentials are not base64 of id:secret.")
                })?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| invalid_client("The Basic credentials are not id:secret."))?;
            let unescape = |part: &str| {
                percent_encoding::percent_decode_str(&part.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Ok((unescape(id), unescape(secret)))
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
            _ => Err(invalid_client(
                "Authenticate the client: Authorization: Basic with the client id and the key, \
                 or client_id and client_secret in the body.",
            )),
        },
    }
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(keys) = state.signing_keys.as_deref() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "This deployment issues no tokens: GATEHOUSE_SECRET_KEY is not set.",
        );
    };
    let form = match parameters(&body) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let (client_id, secret) = match credentials(&headers, &form) {
        Ok(credentials) => credentials,
        Err(refused) => return refused.into_response(),
    };
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only grant_type=client_credentials is supported.",
            );
        }
        None => return invalid_request("grant_type is missing.").into_response(),
    }
    let required = Requirements {
        client: ClientAddress::Known(client),
        ..Requirements::default()
    };
    let verdict = match state.verifier.judge(&secret, &required, client).await {
        Ok(verdict) => verdict,
        Err(Unavailable) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Try again in a second.",
            );
        }
    };
    let key = match (verdict.code, verdict.key) {
        (Code::Valid, Some(key)) => key,
        (Code::RateLimited, _) => {
            let mut refused = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                "The key's rate limit is spent; a token request counts as a verification.",
            );
            if let Some(quota) = verdict.quota {
                crate::api::edge::add_ratelimit_headers(refused.headers_mut(), &quota);
            }
            return refused;
        }
        (code, _) => {
            return invalid_client(&format!(
                "The client could not be authenticated ({}).",
                code.as_str()
            ))
            .into_response();
        }
    };
    match db::keys::client_id(&state.pool, key.id).await {
        Ok(Some(id)) if id == client_id => {}
        Ok(_) => return invalid_client("The client id is not this key's.").into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot read a key's client id");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Try again in a second.",
            );
        }
    }
    let settings = state.config.token_settings();
    let granted =
        issue::narrow(&key.scopes, form.get("scope").map(String::as_str)).and_then(|scopes| {
            issue::audience(&settings, form.get("resource").map(String::as_str))
                .map(|audience| (scopes, audience))
        });
    let (scopes, audience) = match granted {
        Ok(granted) => granted,
        Err(refusal @ (Refusal::Scope(_) | Refusal::Target(_))) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                refusal.error(),
                refusal.description(),
            );
        }
    };
    let Some(signer) = keys.signer(verdict.at) else {
        tracing::error!("no token signing key opens; rotate them (POST /v1/signing-keys/rotate)");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "No signing key is available.",
        );
    };
    match issue::issue(
        &signer, &settings, &key, &client_id, &scopes, audience, verdict.at,
    ) {
        Ok(issued) => {
            let mut response = Json(TokenAnswer {
                access_token: issued.token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
                scope: issued.scope,
            })
            .into_response();
            no_store(&mut response);
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot sign a token");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The token could not be signed.",
            )
        }
    }
}
