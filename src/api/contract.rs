//! A contract profile at the HTTP edge: where the key is in a request, and how an answer looks
//! (status, body, challenge, rate-limit and identity headers). No profile is today's contract.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::api::edge;
use crate::api::error::{ApiError, Challenge, ErrorBody};
use crate::config::Profile;
use crate::config::profiles::{KeyHeader, RateLimitStyle};
use crate::domain::keys::format as key_format;
use crate::domain::rate_limit::Quota;
use crate::domain::verification::{Code, KeyRecord};

/// The code forward-auth gives a request with no key in any of the profile's headers.
pub const MISSING_KEY: &str = "MISSING_KEY";

/// A key found in a request, and the header it came in.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub key: String,
    pub header: &'a HeaderName,
}

/// The first key in the profile's headers, in order. Something that is not a key (another
/// scheme, a JWT, a bearer token without the deployment's prefix) is passed over: it neither
/// hides a key in a later header nor counts as a bad key.
pub fn locate_key<'p>(
    headers: &HeaderMap,
    profile: &'p Profile,
    key_prefix: &str,
) -> Option<Presented<'p>> {
    profile.key_headers.iter().find_map(|wanted| {
        let key = key_in(headers, wanted, key_prefix)?;
        Some(Presented {
            key,
            header: &wanted.name,
        })
    })
}

fn key_in(headers: &HeaderMap, wanted: &KeyHeader, key_prefix: &str) -> Option<String> {
    let value = headers.get(&wanted.name)?.to_str().ok()?.trim();
    let key = match &wanted.scheme {
        Some(scheme) => {
            let (given, token) = value.split_once(' ')?;
            let token = token.trim();
            // Under a scheme other credentials are usual (a JWT as `Bearer`): only a token
            // with the deployment's prefix is a key.
            if !given.eq_ignore_ascii_case(scheme) || !has_prefix(token, key_prefix) {
                return None;
            }
            token
        }
        None => {
            let key = edge::strip_bearer(value).unwrap_or(value);
            if looks_like_jwt(key) {
                return None;
            }
            key
        }
    };
    (!key.is_empty()).then(|| key.to_owned())
}

fn has_prefix(token: &str, key_prefix: &str) -> bool {
    token
        .strip_prefix(key_prefix)
        .is_some_and(|rest| rest.starts_with('_'))
}

/// Three dot-separated base64url parts: a JWT (a key never holds a dot).
fn looks_like_jwt(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// "Send an API key in `ApiKey` or `Authorization: Bearer <key>`."
pub fn missing_key_message(profile: &Profile) -> String {
    let names: Vec<String> = profile
        .key_headers
        .iter()
        .map(|wanted| match &wanted.scheme {
            Some(scheme) => format!("`{}: {scheme} <key>`", wanted.spelled),
            None => format!("`{}`", wanted.spelled),
        })
        .collect();
    let listed = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    format!("Send an API key in {listed}.")
}

/// The usual status of a refusal code at forward-auth.
pub fn usual_status(code: &str) -> StatusCode {
    match Code::parse(code) {
        Some(Code::Valid) => StatusCode::OK,
        Some(
            Code::EnvironmentMismatch
            | Code::TenantMismatch
            | Code::InsufficientScope
            | Code::IpNotAllowed,
        ) => StatusCode::FORBIDDEN,
        Some(Code::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
        Some(
            Code::Malformed
            | Code::NotFound
            | Code::Expired
            | Code::Revoked
            | Code::Disabled
            | Code::TenantSuspended,
        )
        | None => StatusCode::UNAUTHORIZED,
    }
}

/// A refusal in the profile's contract: its status for the code, its body (or the standard
/// `{"error": {"code", "message"}}`), the challenge on 401, the rate-limit headers.
pub fn refusal(
    profile: &Profile,
    code: &'static str,
    message: &str,
    quota: Option<&Quota>,
) -> Response {
    let status = profile
        .status
        .get(code)
        .copied()
        .unwrap_or_else(|| usual_status(code));
    let templated = templated_body(profile, code, message, status);
    // Only a 401 carries the challenge (built on the refusals that need it).
    let challenge = (status == StatusCode::UNAUTHORIZED)
        .then(|| challenge(profile))
        .flatten();
    let mut response = match &templated {
        Some(body) => {
            let mut response = (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                body.clone(),
            )
                .into_response();
            if let Some(challenge) = challenge {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
            }
            response
        }
        None => ApiError {
            challenge: Challenge::Profile(challenge),
            ..ApiError::new(status, code, message)
        }
        .into_response(),
    };
    if !profile.name.is_empty() {
        // For gateways that answer refusals themselves (nginx `auth_request` drops the body).
        let body = templated.unwrap_or_else(|| {
            serde_json::to_string(&ErrorBody::of(code, message)).unwrap_or_default()
        });
        if let Ok(body) = HeaderValue::from_str(&body) {
            response.headers_mut().insert(BODY_HEADER.clone(), body);
        }
    }
    if let Some(quota) = quota {
        let headers = response.headers_mut();
        add_ratelimit_headers(headers, profile.ratelimit_headers, quota);
        if code == Code::RateLimited.as_str() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(quota.reset));
        }
    }
    response
}

/// The profile's body for a refusal, when it has a template for the code or the status.
pub fn templated_body(
    profile: &Profile,
    code: &str,
    message: &str,
    status: StatusCode,
) -> Option<String> {
    let template = profile.body(code, status)?;
    let number = profile
        .numbers
        .get(code)
        .copied()
        .unwrap_or_else(|| i64::from(status.as_u16()));
    Some(template.render(code, message, number))
}

/// `<scheme> realm="<realm>"`: the scheme of the first key header that has one, else Bearer.
fn challenge(profile: &Profile) -> Option<HeaderValue> {
    let realm = profile.realm.as_deref()?;
    let scheme = profile
        .key_headers
        .iter()
        .find_map(|wanted| wanted.scheme.as_deref())
        .unwrap_or("Bearer");
    HeaderValue::from_str(&format!("{scheme} realm=\"{realm}\"")).ok()
}

/// The rate-limit headers in the profile's style.
pub fn add_ratelimit_headers(headers: &mut HeaderMap, style: RateLimitStyle, quota: &Quota) {
    if matches!(style, RateLimitStyle::Ietf | RateLimitStyle::Both) {
        edge::add_ratelimit_headers(headers, quota);
    }
    if matches!(style, RateLimitStyle::XRateLimit | RateLimitStyle::Both) {
        let reset = OffsetDateTime::now_utc().unix_timestamp() + i64::from(quota.reset);
        headers.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(quota.limit));
        headers.insert(
            X_RATELIMIT_REMAINING.clone(),
            HeaderValue::from(quota.remaining),
        );
        headers.insert(X_RATELIMIT_RESET.clone(), HeaderValue::from(reset));
    }
}

/// A named profile's refusal body, repeated in a header for nginx `auth_request`.
pub static BODY_HEADER: HeaderName = HeaderName::from_static("gatehouse-body");
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The client's request as `strip_key` reads it: its headers, the key found and the header it
/// came in, and what else looks like a key of this deployment (its prefix, the legacy pattern).
pub struct ClientHeaders<'a> {
    pub headers: &'a HeaderMap,
    pub presented: &'a Presented<'a>,
    pub key_prefix: &'a str,
    pub legacy_pattern: Option<&'a regex::Regex>,
}

/// A 200 for a good key: the identity headers under the profile's names, the rate-limit
/// headers, and with `strip_key` the profile's other key headers as the client sent them, less
/// every value that holds the key or anything shaped like a key of this deployment (a gateway
/// that replaces the client's key headers with these passes everything but keys).
pub fn pass(
    profile: &Profile,
    key: &KeyRecord,
    quota: Option<&Quota>,
    client: Option<&ClientHeaders<'_>>,
) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    let identity = &profile.identity;
    let mut set = |name: &Option<HeaderName>, value: &str| {
        if let (Some(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name.clone(), value);
        }
    };
    set(&identity.key_id, &key.id.to_string());
    set(&identity.tenant_id, &key.tenant_id.to_string());
    set(&identity.tenant, &key.tenant_slug);
    set(&identity.environment, key.environment.as_str());
    set(&identity.scopes, &key.scopes.join(" "));
    if let Some(quota) = quota {
        add_ratelimit_headers(headers, profile.ratelimit_headers, quota);
    }
    if profile.strip_key
        && let Some(client) = client
    {
        for wanted in &profile.key_headers {
            if wanted.name == *client.presented.header {
                continue;
            }
            for value in client.headers.get_all(&wanted.name) {
                // A value that is not text is passed over: it cannot be checked.
                let passed = value.to_str().is_ok_and(|text| {
                    !key_format::holds_key(
                        client.key_prefix,
                        client.legacy_pattern,
                        &client.presented.key,
                        text,
                    )
                });
                if passed {
                    headers.append(wanted.name.clone(), value.clone());
                }
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profiles;
    use crate::vocabulary::Environment;

    fn profiles() -> Profiles {
        Profiles::parse(
            r#"
[profile.seed004]
key_headers = ["Authorization: Bearer", "ApiKey"]
realm = "platform"
"#,
            &["Authorization".into(), "X-Api-Key".into(), "ApiKey".into()],
        )
        .unwrap()
    }

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    const JWT: &str = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";

    #[test]
    fn a_jwt_in_authorization_neither_hides_a_key_nor_is_one() {
        let profiles = profiles();
        let profile = profiles.get(Some("seed004")).unwrap();
        let both = request(&[("authorization", JWT), ("apikey", "ak_live_x")]);
        let found = locate_key(&both, profile, "ak").unwrap();
        assert_eq!(found.key, "ak_live_x");
        assert_eq!(found.header, "apikey");
        assert_eq!(
            locate_key(&request(&[("authorization", JWT)]), profile, "ak"),
            None
        );
        // A bearer key in Authorization comes first.
        let first = request(&[
            ("authorization", "Bearer ak_test_y"),
            ("apikey", "ak_live_x"),
        ]);
        assert_eq!(locate_key(&first, profile, "ak").unwrap().key, "ak_test_y");
        // A JWT is not a key in a bare header either; anything else there is (maybe malformed).
        let plain = profiles.get(None).unwrap();
        let jwt = JWT.trim_start_matches("Bearer ");
        assert_eq!(
            locate_key(&request(&[("x-api-key", jwt)]), plain, "ak"),
            None
        );
        assert_eq!(
            locate_key(&request(&[("x-api-key", "not-a-key")]), plain, "ak")
                .unwrap()
                .key,
            "not-a-key"
        );
    }

    #[test]
    fn with_strip_key_no_header_holding_a_key_is_handed_back() {
        let profiles = Profiles::parse(
            "[profile.s]\nkey_headers = [\"X-Api-Key\", \"Authorization: Bearer\", \"ApiKey\"]\nstrip_key = true\n",
            &[],
        )
        .unwrap();
        let profile = profiles.get(Some("s")).unwrap();
        let legacy = regex::Regex::new("^(?:sk_[0-9a-f]{8})$").unwrap();
        let key = crate::domain::keys::format::NewKey::generate("ak", Environment::Live);
        let key = key.expose();
        let record = KeyRecord {
            id: uuid::Uuid::nil(),
            name: "ci".into(),
            environment: Environment::Live,
            tenant_id: uuid::Uuid::nil(),
            tenant_slug: "acme".into(),
            scopes: vec![],
            rate_limit: 10,
            expires_at: None,
            revoked_at: None,
            disabled: false,
            ip_allowlist: Default::default(),
            meta: serde_json::json!({}),
            tenant_suspended: false,
            legacy: false,
            answer_view: Default::default(),
        };
        let answer = |sent: &HeaderMap| {
            let presented = locate_key(sent, profile, "ak").unwrap();
            let client = ClientHeaders {
                headers: sent,
                presented: &presented,
                key_prefix: "ak",
                legacy_pattern: Some(&legacy),
            };
            pass(profile, &record, None, Some(&client))
                .headers()
                .clone()
        };
        // The same key in every key header: none comes back.
        let bearer = format!("Bearer {key}");
        let same = request(&[
            ("x-api-key", key),
            ("authorization", &bearer),
            ("apikey", key),
        ]);
        for name in ["x-api-key", "authorization", "apikey"] {
            assert!(!answer(&same).contains_key(name), "{name}");
        }
        // Other key-shaped values (another key, a legacy key) neither; a JWT does.
        let others = request(&[
            ("x-api-key", key),
            ("authorization", JWT),
            ("apikey", "sk_0123abcd"),
        ]);
        let answered = answer(&others);
        assert_eq!(answered["authorization"], JWT);
        assert!(!answered.contains_key("apikey"));
        let mistyped = request(&[("x-api-key", key), ("apikey", "ak_test_mistyped")]);
        assert!(!answer(&mistyped).contains_key("apikey"));
    }

    #[test]
    fn the_missing_key_message_names_the_headers_the_profile_reads() {
        let profiles = profiles();
        assert_eq!(
            missing_key_message(profiles.get(Some("seed004")).unwrap()),
            "Send an API key in `Authorization: Bearer <key>` or `ApiKey`."
        );
        assert_eq!(
            missing_key_message(profiles.get(None).unwrap()),
            "Send an API key in `Authorization: Bearer <key>`, `X-Api-Key` or `ApiKey`."
        );
    }
}
