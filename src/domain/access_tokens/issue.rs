//! Issuing an access token (RFC 9068) to a key that authenticated as an OAuth2 client: the scopes
//! it asks for narrow the key's (never widen them), the resource it names picks the audience, and
//! the token is a JWT signed with ES256 by the key that signs now.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::signing_keys::{ALG, Signer};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::verification::KeyRecord;

/// The media type of an access token (RFC 9068 §2.1), in its short form.
pub const TYP: &str = "at+jwt";

/// What the deployment configures for tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss`: the public URL.
    pub issuer: String,
    /// Each token's lifetime (at most an hour).
    pub ttl: Duration,
    /// The audiences a client may name as `resource`; the first is the default.
    pub audiences: Vec<String>,
}

/// Why a token is refused although the client authenticated (RFC 6749 §5.2, RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_scope`: a scope the key does not hold, or none left.
    Scope(String),
    /// `invalid_target`: a resource that is not one of the audiences.
    Target(String),
}

impl Refusal {
    pub fn error(&self) -> &'static str {
        match self {
            Self::Scope(_) => "invalid_scope",
            Self::Target(_) => "invalid_target",
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Self::Scope(why) | Self::Target(why) => why,
        }
    }
}

/// The scopes a token gets: the key's, or those of them `requested` (space-separated) names.
pub fn narrow(held: &[String], requested: Option<&str>) -> Result<Vec<String>, Refusal> {
    let Some(requested) = requested else {
        return Ok(held.to_vec());
    };
    let mut scopes: Vec<String> = Vec::new();
    for scope in requested.split(' ').filter(|scope| !scope.is_empty()) {
        if !held.iter().any(|held| held == scope) {
            return Err(Refusal::Scope(format!(
                "The key does not hold the scope {scope:?}; a token may only narrow its key's scopes."
            )));
        }
        if !scopes.iter().any(|kept| kept == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.is_empty() {
        return Err(Refusal::Scope("scope names no scope.".into()));
    }
    Ok(scopes)
}

/// The audience `resource` names (RFC 8707), or the default.
pub fn audience(settings: &TokenSettings, resource: Option<&str>) -> Result<String, Refusal> {
    match resource {
        None => Ok(settings.audiences.first().cloned().unwrap_or_default()),
        Some(resource) => settings
            .audiences
            .iter()
            .find(|audience| audience.as_str() == resource)
            .cloned()
            .ok_or_else(|| {
                Refusal::Target(format!(
                    "{resource:?} is not a resource this server issues tokens for."
                ))
            }),
    }
}

/// The claims of an access token (RFC 9068 §2.2, and the tenant and environment).
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub scope: String,
    /// The key behind the token.
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    /// `live` or `test`.
    pub environment: &'static str,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// An issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub jti: String,
    pub expires_in: i64,
    pub scope: String,
}

/// A token for `key` (the client `client_id`) with `scopes` for `audience`, signed by `signer`.
pub fn issue(
    signer: &Signer,
    settings: &TokenSettings,
    key: &KeyRecord,
    client_id: &str,
    scopes: &[String],
    audience: String,
    now: OffsetDateTime,
) -> DomainResult<Issued> {
    let jti = Uuid::new_v4().simple().to_string();
    let claims = Claims {
        iss: settings.issuer.clone(),
        sub: client_id.to_owned(),
        client_id: client_id.to_owned(),
        aud: audience,
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: (now + settings.ttl).unix_timestamp(),
        jti: jti.clone(),
        scope: scopes.join(" "),
        key_id: key.id,
        tenant_id: key.tenant_id,
        tenant_slug: key.tenant_slug.clone(),
        environment: key.environment.as_str(),
    };
    let token = sign(signer, &claims)?;
    Ok(Issued {
        token,
        jti,
        expires_in: settings.ttl.whole_seconds(),
        scope: claims.scope,
    })
}

/// The JWS compact serialization of `claims`.
fn sign(signer: &Signer, claims: &Claims) -> DomainResult<String> {
    let header = Header {
        alg: ALG,
        typ: TYP,
        kid: &signer.kid,
    };
    let header = serde_json::to_vec(&header).map_err(DomainError::unexpected)?;
    let claims = serde_json::to_vec(claims).map_err(DomainError::unexpected)?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = signer.sign(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Vec<String> {
        vec!["read".into(), "write".into()]
    }

    #[test]
    fn scope_narrows_the_key_s_scopes_and_never_widens_them() {
        assert_eq!(narrow(&held(), None).unwrap(), held());
        assert_eq!(narrow(&held(), Some("read")).unwrap(), ["read"]);
        assert_eq!(
            narrow(&held(), Some("write read write")).unwrap(),
            ["write", "read"]
        );
        assert_eq!(
            narrow(&held(), Some("read admin")).unwrap_err().error(),
            "invalid_scope"
        );
        assert!(narrow(&held(), Some("")).is_err());
    }

    #[test]
    fn resource_picks_one_of_the_audiences() {
        let settings = TokenSettings {
            issuer: "https://gatehouse.example".into(),
            ttl: Duration::minutes(5),
            audiences: vec![
                "https://api.example".into(),
                "https://billing.example".into(),
            ],
        };
        assert_eq!(audience(&settings, None).unwrap(), "https://api.example");
        assert_eq!(
            audience(&settings, Some("https://billing.example")).unwrap(),
            "https://billing.example"
        );
        assert_eq!(
            audience(&settings, Some("https://evil.example"))
                .unwrap_err()
                .error(),
            "invalid_target"
        );
    }
}
