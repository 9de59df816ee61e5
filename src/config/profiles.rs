//! Contract profiles from `GATEHOUSE_PROFILES_FILE` (TOML): per platform, where the key is, which
//! header names the tenant, and what a refusal looks like (status, body, realm, rate-limit
//! headers), which identity headers go upstream and whether the key is stripped. Checked whole at
//! start; a bad file stops the start naming the line.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderName, StatusCode};
use serde::Deserialize;

use super::{ConfigError, invalid};

const VARIABLE: &str = "GATEHOUSE_PROFILES_FILE";

/// The deployment's profiles by name, and the contract used when a request names none.
#[derive(Debug, Clone)]
pub struct Profiles {
    default: Arc<Profile>,
    named: BTreeMap<String, Arc<Profile>>,
}

impl Profiles {
    /// Only today's contract: no named profiles.
    pub fn plain(key_headers: &[String]) -> Self {
        Self {
            default: Arc::new(Profile::plain(key_headers)),
            named: BTreeMap::new(),
        }
    }

    /// Reads and checks the file at `path`; `key_headers` are the deployment's
    /// (`GATEHOUSE_KEY_HEADERS`), for profiles that name none.
    pub fn load(path: &str, key_headers: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| invalid(VARIABLE, format!("cannot read {path:?}: {err}")))?;
        Self::parse(&text, key_headers)
            .map_err(|reason| invalid(VARIABLE, format!("{path}: {reason}")))
    }

    /// Parses a profiles file. The error says where (line and column) and what is wrong.
    pub fn parse(text: &str, key_headers: &[String]) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|err| err.to_string())?;
        let mut profiles = Self::plain(key_headers);
        for (name, raw) in file.profile {
            let profile = raw.into_profile(name.0.clone(), key_headers);
            profiles.named.insert(name.0, Arc::new(profile));
        }
        Ok(profiles)
    }

    /// The profile a request names, or today's contract for none.
    pub fn get(&self, name: Option<&str>) -> Option<&Arc<Profile>> {
        match name {
            None => Some(&self.default),
            Some(name) => self.named.get(name),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.keys().map(String::as_str)
    }
}

/// One platform's contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Empty for today's contract.
    pub name: String,
    /// Tried in order; the first that holds a key wins.
    pub key_headers: Vec<KeyHeader>,
    /// The client names its tenant here; a key of another tenant is `TENANT_MISMATCH`.
    pub tenant_header: Option<HeaderName>,
    /// Status per code name, overriding the usual one.
    pub status: BTreeMap<String, StatusCode>,
    /// Error body per code name or per status ("401"); the first that matches is used.
    pub bodies: BTreeMap<String, BodyTemplate>,
    /// `{number}` per code name.
    pub numbers: BTreeMap<String, i64>,
    /// `WWW-Authenticate` realm on 401; `None` sends no challenge.
    pub realm: Option<String>,
    pub ratelimit_headers: RateLimitStyle,
    pub identity: IdentityHeaders,
    /// The gateway must not pass the key on: a 200 answer carries the profile's other key
    /// headers as the client sent them, for the gateway to replace the client's with.
    pub strip_key: bool,
}

impl Profile {
    fn plain(key_headers: &[String]) -> Self {
        Self {
            name: String::new(),
            key_headers: key_headers
                .iter()
                .map(|name| KeyHeader::plain(name))
                .collect(),
            tenant_header: None,
            status: BTreeMap::new(),
            bodies: BTreeMap::new(),
            numbers: BTreeMap::new(),
            realm: Some("gatehouse".to_owned()),
            ratelimit_headers: RateLimitStyle::Ietf,
            identity: IdentityHeaders::default(),
            strip_key: false,
        }
    }

    /// The body template for a refusal with this code and status, if the profile has one.
    pub fn body(&self, code: &str, status: StatusCode) -> Option<&BodyTemplate> {
        self.bodies
            .get(code)
            .or_else(|| self.bodies.get(status.as_str()))
    }
}

/// A header a key may come in, optionally after a scheme (`Authorization: Bearer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeader {
    pub name: HeaderName,
    /// The name as configured, for messages (`X-Api-Key` rather than `x-api-key`).
    pub spelled: String,
    /// `Some("Bearer")`: only `Bearer <key>` holds a key. `None`: the whole value (a `Bearer `
    /// in front is unwrapped all the same).
    pub scheme: Option<String>,
}

impl KeyHeader {
    /// A header of `GATEHOUSE_KEY_HEADERS`: `Authorization` carries `Bearer`, others the bare key.
    fn plain(name: &str) -> Self {
        let spelled = name.to_owned();
        // `GATEHOUSE_KEY_HEADERS` holds header names only: checked before this is called.
        let name =
            HeaderName::from_bytes(name.as_bytes()).unwrap_or(axum::http::header::AUTHORIZATION);
        let scheme = (name == axum::http::header::AUTHORIZATION).then(|| "Bearer".to_owned());
        Self {
            name,
            spelled,
            scheme,
        }
    }

    /// `Name` or `Name: Scheme`.
    fn parse(value: &str) -> Result<Self, String> {
        let (name, scheme) = match value.split_once(':') {
            Some((name, scheme)) => (name.trim(), Some(scheme.trim())),
            None => (value.trim(), None),
        };
        let spelled = name.to_owned();
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let scheme = match scheme {
            None => None,
            Some(scheme) if is_token(scheme) => Some(scheme.to_owned()),
            Some(scheme) => return Err(format!("{scheme:?} is not an authentication scheme")),
        };
        Ok(Self {
            name,
            spelled,
            scheme,
        })
    }
}

/// Which rate-limit headers answers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RateLimitStyle {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    #[serde(rename = "ietf")]
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix time).
    #[serde(rename = "x-ratelimit")]
    XRateLimit,
    #[serde(rename = "both")]
    Both,
    #[serde(rename = "none")]
    None,
}

/// The names of the headers a good key's identity is sent upstream in; `None` leaves one out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub key_id: Option<HeaderName>,
    pub tenant_id: Option<HeaderName>,
    pub tenant: Option<HeaderName>,
    pub environment: Option<HeaderName>,
    pub scopes: Option<HeaderName>,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            key_id: Some(HeaderName::from_static("gatehouse-key-id")),
            tenant_id: Some(HeaderName::from_static("gatehouse-tenant-id")),
            tenant: Some(HeaderName::from_static("gatehouse-tenant")),
            environment: Some(HeaderName::from_static("gatehouse-environment")),
            scopes: Some(HeaderName::from_static("gatehouse-scopes")),
        }
    }
}

/// A JSON error body with `{code}` and `{message}` (inside strings) and `{number}` (a number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate(String);

impl BodyTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        let template = Self(template.to_owned());
        let sample = template.render("SAMPLE_CODE", "A \"quoted\" message.", -1);
        serde_json::from_str::<serde_json::Value>(&sample).map_err(|err| {
            format!("the body template is not JSON once filled in ({err}): {sample}")
        })?;
        Ok(template)
    }

    /// The body: `code` and `message` JSON-escaped, `number` as a JSON number.
    pub fn render(&self, code: &str, message: &str, number: i64) -> String {
        self.0
            .replace("{code}", &json_escaped(code))
            .replace("{message}", &json_escaped(message))
            .replace("{number}", &number.to_string())
    }
}

/// `text` as it appears between the quotes of a JSON string.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

// The file as written; newtypes check each value where it stands, so an error names its line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profile: BTreeMap<ProfileName, RawProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    key_headers: Option<KeyHeaders>,
    tenant_header: Option<Header>,
    #[serde(default)]
    status: BTreeMap<CodeName, RefusalStatus>,
    #[serde(default)]
    body: BTreeMap<CodeOrStatus, Template>,
    #[serde(default)]
    numbers: BTreeMap<CodeName, i64>,
    realm: Option<Realm>,
    ratelimit_headers: Option<RateLimitStyle>,
    #[serde(default)]
    identity_headers: RawIdentity,
    #[serde(default)]
    strip_key: bool,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    key_id: Option<OptionalHeader>,
    tenant_id: Option<OptionalHeader>,
    tenant: Option<OptionalHeader>,
    environment: Option<OptionalHeader>,
    scopes: Option<OptionalHeader>,
}

impl RawProfile {
    fn into_profile(self, name: String, key_headers: &[String]) -> Profile {
        let plain = Profile::plain(key_headers);
        let pick = |given: Option<OptionalHeader>, default: Option<HeaderName>| match given {
            Some(OptionalHeader(header)) => header,
            None => default,
        };
        let identity = IdentityHeaders {
            key_id: pick(self.identity_headers.key_id, plain.identity.key_id),
            tenant_id: pick(self.identity_headers.tenant_id, plain.identity.tenant_id),
            tenant: pick(self.identity_headers.tenant, plain.identity.tenant),
            environment: pick(
                self.identity_headers.environment,
                plain.identity.environment,
            ),
            scopes: pick(self.identity_headers.scopes, plain.identity.scopes),
        };
        Profile {
            name,
            key_headers: self
                .key_headers
                .map_or(plain.key_headers, |headers| headers.0),
            tenant_header: self.tenant_header.map(|header| header.0),
            status: self
                .status
                .into_iter()
                .map(|(code, status)| (code.0, status.0))
                .collect(),
            bodies: self
                .body
                .into_iter()
                .map(|(key, template)| (key.0, template.0))
                .collect(),
            numbers: self
                .numbers
                .into_iter()
                .map(|(code, number)| (code.0, number))
                .collect(),
            realm: self.realm.map_or(plain.realm, |realm| realm.0),
            ratelimit_headers: self.ratelimit_headers.unwrap_or(plain.ratelimit_headers),
            identity,
            strip_key: self.strip_key,
        }
    }
}

macro_rules! checked {
    ($(#[$meta:meta])* $name:ident($inner:ty) from $raw:ty = $raw_name:literal, $check:expr) => {
        $(#[$meta])*
        #[derive(Deserialize)]
        #[serde(try_from = $raw_name)]
        struct $name($inner);
        impl TryFrom<$raw> for $name {
            type Error = String;
            fn try_from(value: $raw) -> Result<Self, String> {
                let check: fn($raw) -> Result<$inner, String> = $check;
                check(value).map(Self)
            }
        }
    };
}

checked!(#[derive(PartialEq, Eq, PartialOrd, Ord)] ProfileName(String) from String = "String", |name| {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(name)
    } else {
        Err(format!(
            "{name:?} is not a profile name (letters, digits, '-', '_', '.')"
        ))
    }
});

checked!(#[derive(PartialEq, Eq, PartialOrd, Ord)] CodeName(String) from String = "String", |code| {
    if code == "VALID" {
        Err("VALID is not a refusal".to_owned())
    } else if is_code_name(&code) {
        Ok(code)
    } else {
        Err(format!(
            "{code:?} is not a code name (capitals, digits and '_', e.g. TENANT_MISMATCH)"
        ))
    }
});

checked!(#[derive(PartialEq, Eq, PartialOrd, Ord)] CodeOrStatus(String) from String = "String", |key| {
    if is_code_name(&key) && key != "VALID" {
        return Ok(key);
    }
    match key.parse::<u16>() {
        Ok(status) if (400..=599).contains(&status) => Ok(key),
        _ => Err(format!(
            "{key:?} is neither a code name (e.g. NOT_FOUND) nor an error status (400 to 599)"
        )),
    }
});

checked!(RefusalStatus(StatusCode) from u16 = "u16", |status| {
    StatusCode::from_u16(status)
        .ok()
        .filter(|status| status.is_client_error() || status.is_server_error())
        .ok_or_else(|| format!("{status} is not an error status (400 to 599)"))
});

checked!(Template(BodyTemplate) from String = "String", |template| BodyTemplate::parse(&template));

checked!(Header(HeaderName) from String = "String", |name| {
    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| format!("{name:?} is not a header name"))
});

checked!(OptionalHeader(Option<HeaderName>) from String = "String", |name| {
    if name.trim().is_empty() {
        return Ok(None);
    }
    HeaderName::from_bytes(name.trim().as_bytes())
        .map(Some)
        .map_err(|_| format!("{name:?} is not a header name (\"\" leaves the header out)"))
});

checked!(KeyHeaders(Vec<KeyHeader>) from Vec<String> = "Vec<String>", |names| {
    if names.is_empty() {
        return Err("needs at least one header".to_owned());
    }
    names.iter().map(|name| KeyHeader::parse(name)).collect()
});

checked!(Realm(Option<String>) from String = "String", |realm| {
    if realm.is_empty() {
        Ok(None)
    } else if realm.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') {
        Ok(Some(realm))
    } else {
        Err(format!("{realm:?}: a realm is printable ASCII without quotes or backslashes (\"\" sends no challenge)"))
    }
});

fn is_code_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value.starts_with(|c: char| c.is_ascii_uppercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Vec<String> {
        vec!["Authorization".into(), "X-Api-Key".into(), "ApiKey".into()]
    }

    #[test]
    fn a_profile_sets_every_part_of_the_contract() {
        let profiles = Profiles::parse(
            r#"
[profile.seed004]
key_headers = ["ApiKey", "Authorization: Bearer"]
tenant_header = "X-Tenant-Id"
realm = "platform"
ratelimit_headers = "x-ratelimit"
strip_key = true
status = { TENANT_MISMATCH = 401, DISABLED = 401 }
numbers = { MISSING_KEY = -23 }
identity_headers = { key_id = "X-Key-Id", scopes = "" }

[profile.seed004.body]
401 = '{"code": {number}, "message": "{message}"}'
RATE_LIMITED = '{"error": "{code}"}'
"#,
            &headers(),
        )
        .unwrap();
        let profile = profiles.get(Some("seed004")).unwrap();
        assert_eq!(profile.key_headers[0].name, "apikey");
        assert_eq!(profile.key_headers[0].scheme, None);
        assert_eq!(profile.key_headers[1].scheme.as_deref(), Some("Bearer"));
        assert_eq!(profile.tenant_header.as_ref().unwrap(), "x-tenant-id");
        assert_eq!(profile.realm.as_deref(), Some("platform"));
        assert_eq!(profile.ratelimit_headers, RateLimitStyle::XRateLimit);
        assert!(profile.strip_key);
        assert_eq!(profile.status["TENANT_MISMATCH"], StatusCode::UNAUTHORIZED);
        // Codes Gatehouse does not give yet are accepted, for later.
        assert_eq!(profile.status["DISABLED"], StatusCode::UNAUTHORIZED);
        assert_eq!(profile.numbers["MISSING_KEY"], -23);
        assert_eq!(profile.identity.key_id.as_ref().unwrap(), "x-key-id");
        assert_eq!(profile.identity.scopes, None);
        assert_eq!(
            profile.identity.tenant.as_ref().unwrap(),
            "gatehouse-tenant"
        );
        let body = profile
            .body("MISSING_KEY", StatusCode::UNAUTHORIZED)
            .unwrap();
        assert_eq!(
            body.render("MISSING_KEY", "Say \"hi\"", -23),
            r#"{"code": -23, "message": "Say \"hi\""}"#
        );
        assert!(profile.body("NOT_FOUND", StatusCode::FORBIDDEN).is_none());
        assert_eq!(
            profile
                .body("RATE_LIMITED", StatusCode::TOO_MANY_REQUESTS)
                .unwrap()
                .render("RATE_LIMITED", "", 0),
            r#"{"error": "RATE_LIMITED"}"#
        );
        assert!(profiles.get(Some("other")).is_none());
        assert_eq!(profiles.get(None).unwrap().name, "");
    }

    #[test]
    fn a_profile_without_key_headers_reads_the_deployments() {
        let profiles = Profiles::parse("[profile.plain]\n", &headers()).unwrap();
        let profile = profiles.get(Some("plain")).unwrap();
        let names: Vec<_> = profile
            .key_headers
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["authorization", "x-api-key", "apikey"]);
        assert_eq!(profile.realm.as_deref(), Some("gatehouse"));
        assert_eq!(profile.ratelimit_headers, RateLimitStyle::Ietf);
    }

    #[test]
    fn a_bad_profiles_file_is_refused_naming_the_line() {
        let cases = [
            ("[profile.a]\nkey_headers = []\n", 2),
            (
                "[profile.a]\nrealm = \"x\"\nkey_headers = [\"Bad Header\"]\n",
                3,
            ),
            ("[profile.a]\n\n[profile.a.status]\nNOT_FOUND = 200\n", 4),
            ("[profile.a]\n[profile.a.status]\nnot_found = 401\n", 3),
            (
                "[profile.a]\n[profile.a.body]\n401 = '{\"code\": {code}}'\n",
                3,
            ),
            ("[profile.a]\n[profile.a.body]\n200 = '{}'\n", 3),
            ("[profile.a]\nratelimit_headers = \"github\"\n", 2),
            ("[profile.a]\nstrip_keys = true\n", 2),
            ("[profile.a]\ntenant_header = \"X Tenant\"\n", 2),
            ("[profile.\"a b\"]\n", 1),
            ("[profile.a]\nrealm = \"say \\\"hi\\\"\"\n", 2),
            ("[profile.a\n", 1),
        ];
        for (text, line) in cases {
            let err = Profiles::parse(text, &headers()).unwrap_err();
            assert!(
                err.contains(&format!("line {line}")),
                "{text:?} should name line {line}: {err}"
            );
        }
    }
}
