//! Webhooks: the event catalogue, endpoints (settings, receiver credentials, signing secrets sealed
//! at rest), Standard Webhooks signatures, publishing an event in the change's transaction, and the
//! delivery rules the courier (`crate::webhook_courier`) follows: retry schedule, health, disabling.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::config::PublicUrl;
use crate::db::audit::{self, NewEvent};
use crate::db::outbox as db_outbox;
use crate::db::tenants as db_tenants;
use crate::db::webhooks::{self as db_webhooks, Endpoint, EndpointSettings};
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::mail::{self, Mail};
use crate::domain::sealing::SecretKey;
use crate::domain::vocabulary::Environment;

/// The outbox kind of webhook deliveries.
pub const KIND: &str = "webhook";
/// How long a rolled secret keeps signing beside the new one.
pub const SECRET_OVERLAP: time::Duration = time::Duration::hours(24);
/// After failing this long, an endpoint is disabled and the tenant's admins are told.
pub const DISABLE_AFTER: time::Duration = time::Duration::days(3);
/// Random bytes in a signing secret (Standard Webhooks allows 24 to 64).
const SECRET_BYTES: usize = 32;
const SECRET_PREFIX: &str = "whsec_";

/// What happened, as receivers see it in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    KeyCreated,
    KeyRolled,
    KeyRevoked,
    KeyDisabled,
    KeyRequestApproved,
    KeyRequestDenied,
    KeyExpiring,
    KeyExpired,
    KeyRateLimited,
    MemberJoined,
    MemberRemoved,
    MemberRoleChanged,
    InvitationCreated,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        Self::KeyCreated,
        Self::KeyRolled,
        Self::KeyRevoked,
        Self::KeyDisabled,
        Self::KeyRequestApproved,
        Self::KeyRequestDenied,
        Self::KeyExpiring,
        Self::KeyExpired,
        Self::KeyRateLimited,
        Self::MemberJoined,
        Self::MemberRemoved,
        Self::MemberRoleChanged,
        Self::InvitationCreated,
        Self::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreated => "key.created",
            Self::KeyRolled => "key.rolled",
            Self::KeyRevoked => "key.revoked",
            Self::KeyDisabled => "key.disabled",
            Self::KeyRequestApproved => "key_request.approved",
            Self::KeyRequestDenied => "key_request.denied",
            Self::KeyExpiring => "key.expiring",
            Self::KeyExpired => "key.expired",
            Self::KeyRateLimited => "key.rate_limited",
            Self::MemberJoined => "member.joined",
            Self::MemberRemoved => "member.removed",
            Self::MemberRoleChanged => "member.role_changed",
            Self::InvitationCreated => "invitation.created",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::KeyCreated => "a key was created",
            Self::KeyRolled => "a key was rolled (its successor created)",
            Self::KeyRevoked => "a key was revoked",
            Self::KeyDisabled => "a key was disabled (it can be enabled again)",
            Self::KeyRequestApproved => "an admin approved a developer's request for a live key",
            Self::KeyRequestDenied => "an admin denied a developer's request for a live key",
            Self::KeyExpiring => "a key expires in 30, 7 or 1 days",
            Self::KeyExpired => "a key passed its expiry",
            Self::KeyRateLimited => "a key hit its rate limit (at most hourly)",
            Self::MemberJoined => "someone joined the tenant",
            Self::MemberRemoved => "a member was removed or left",
            Self::MemberRoleChanged => "a member's role changed",
            Self::InvitationCreated => "someone was invited",
            Self::WebhookTest => "\"Send test event\" (always delivered)",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// Publishes an event in the transaction of the change that causes it: one delivery for every
/// enabled endpoint of the tenant that wants the type (key events only to endpoints of the key's
/// environment). `data` must hold no secret.
pub async fn publish(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    event_type: EventType,
    environment: Option<Environment>,
    data: Value,
) -> DomainResult<()> {
    publish_to(tx, tenant_id, event_type, environment, None, data).await?;
    Ok(())
}

async fn publish_to(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    event_type: EventType,
    environment: Option<Environment>,
    only: Option<Uuid>,
    data: Value,
) -> DomainResult<(String, i64)> {
    let id = format!("evt_{}", Uuid::new_v4().simple());
    let created_at = rfc3339(OffsetDateTime::now_utc());
    let queued = db_webhooks::publish(
        &mut *tx,
        tenant_id,
        &id,
        event_type.as_str(),
        environment,
        only,
        &created_at,
        &data,
    )
    .await?;
    if queued > 0 {
        db_outbox::notify_due(tx).await?;
    }
    Ok((id, queued))
}

/// A time as events carry it: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Keys that hit their rate limit (as the usage flusher saw them, off the key API's hot path):
/// `key.rate_limited`, at most once per key per hour, whichever instance sees it first.
pub async fn keys_rate_limited(pool: &PgPool, api_key_ids: &[Uuid]) -> DomainResult<()> {
    if api_key_ids.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for key in db_webhooks::claim_rate_limited_events(&mut *tx, api_key_ids).await? {
        publish(
            &mut tx,
            key.tenant_id,
            EventType::KeyRateLimited,
            Some(key.environment),
            json!({
                "key": { "id": key.api_key_id, "name": key.name, "environment": key.environment },
                "rate_limit": key.rate_limit,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A signing secret: `whsec_` and the base64 of random bytes.
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// What the endpoint's owner copies once: `whsec_…`.
    pub fn reveal(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}".
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The seeds' `X-Webhook-Signature`: `sha256=` and the hex HMAC-SHA256 of the body.
    pub fn sign_seed(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

/// How Gatehouse authenticates to the receiver (seed 001): stored sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ReceiverAuth {
    None,
    Headers { headers: Vec<(String, String)> },
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl ReceiverAuth {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Headers { .. } => "headers",
            Self::Basic { .. } => "basic",
            Self::Bearer { .. } => "bearer",
        }
    }

    /// The headers each delivery carries for it.
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            Self::None => Vec::new(),
            Self::Headers { headers } => headers.clone(),
            Self::Basic { username, password } => vec![(
                "authorization".into(),
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                ),
            )],
            Self::Bearer { token } => vec![("authorization".into(), format!("Bearer {token}"))],
        }
    }
}

pub const AUTH_KINDS: [(&str, &str); 4] = [
    ("none", "None"),
    ("headers", "Extra headers"),
    ("basic", "HTTP Basic"),
    ("bearer", "Bearer token"),
];

/// The endpoint form as typed.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct EndpointInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub environment: String,
    /// "all" or "chosen".
    #[serde(default)]
    pub events: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub seed_signature: Option<String>,
    #[serde(default)]
    pub auth_kind: String,
    /// One `Name: value` a line.
    #[serde(default)]
    pub auth_headers: String,
    #[serde(default)]
    pub auth_username: String,
    #[serde(default)]
    pub auth_password: String,
    #[serde(default)]
    pub auth_token: String,
}

/// What is wrong with each field of the endpoint form.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EndpointErrors {
    pub name: Option<String>,
    pub url: Option<String>,
    pub environment: Option<String>,
    pub events: Option<String>,
    pub auth: Option<String>,
}

/// A checked endpoint form. `auth` is `None` when the form left the stored credentials as they are.
#[derive(Debug, Clone)]
pub struct EndpointForm {
    pub name: String,
    pub url: String,
    pub environment: Environment,
    pub event_types: Option<Vec<String>>,
    pub seed_signature: bool,
    pub auth_kind: &'static str,
    pub auth: Option<ReceiverAuth>,
}

impl EndpointInput {
    /// Checks the form. `stored_auth_kind` is the endpoint's current kind when editing: the same
    /// kind with empty credentials keeps the stored ones. `allow_private` is
    /// `GATEHOUSE_WEBHOOK_ALLOW_PRIVATE`.
    pub fn check(
        &self,
        stored_auth_kind: Option<&str>,
        allow_private: bool,
    ) -> Result<EndpointForm, EndpointErrors> {
        let mut errors = EndpointErrors::default();
        let (name, url) = check_name_and_url(&self.name, &self.url, allow_private, &mut errors);
        let environment = Environment::parse(&self.environment);
        if environment.is_none() {
            errors.environment = Some("Choose live or test events.".into());
        }
        let event_types = if self.events == "chosen" {
            check_event_types(&self.event_types)
                .map_err(|why| errors.events = Some(why))
                .ok()
        } else {
            None
        };
        let auth = self.check_auth(stored_auth_kind, &mut errors);
        match (environment, errors == EndpointErrors::default()) {
            (Some(environment), true) => Ok(EndpointForm {
                name,
                url,
                environment,
                event_types,
                seed_signature: self.seed_signature.is_some(),
                auth_kind: auth.0,
                auth: auth.1,
            }),
            _ => Err(errors),
        }
    }

    fn check_auth(
        &self,
        stored_kind: Option<&str>,
        errors: &mut EndpointErrors,
    ) -> (&'static str, Option<ReceiverAuth>) {
        let kind = auth_kind(&self.auth_kind);
        let candidate = match kind {
            "headers" => {
                let mut headers = Vec::new();
                for line in self
                    .auth_headers
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                {
                    match line.split_once(':') {
                        Some((name, value)) => {
                            headers.push((name.trim().to_owned(), value.trim().to_owned()));
                        }
                        None => {
                            errors.auth = Some(
                                "Write one header a line as \"Name: value\" (letters, digits and - in names)."
                                    .into(),
                            );
                            return (kind, None);
                        }
                    }
                }
                ReceiverAuth::Headers { headers }
            }
            "basic" => ReceiverAuth::Basic {
                username: self.auth_username.trim().to_owned(),
                password: self.auth_password.clone(),
            },
            "bearer" => ReceiverAuth::Bearer {
                token: self.auth_token.trim().to_owned(),
            },
            _ => ReceiverAuth::None,
        };
        if stored_kind == Some(kind) && candidate.is_blank() {
            return (kind, None);
        }
        match candidate.check() {
            Ok(auth) => (kind, Some(auth)),
            Err(why) => {
                errors.auth = Some(why);
                (kind, None)
            }
        }
    }
}

/// Endpoint settings as an API client gives them, typed: checked by the same rules as the form.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub name: String,
    pub url: String,
    pub environment: Environment,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
    pub seed_signature: bool,
    /// `None` keeps the stored credentials (when changing an endpoint).
    pub auth: Option<ReceiverAuth>,
    /// The stored kind, when `auth` is `None`.
    pub stored_auth_kind: &'static str,
}

impl EndpointSpec {
    /// The spec of a stored endpoint, to change some of its settings.
    pub fn of(endpoint: &Endpoint) -> Self {
        Self {
            name: endpoint.name.clone(),
            url: endpoint.url.clone(),
            environment: endpoint.environment,
            event_types: endpoint.event_types.clone(),
            seed_signature: endpoint.seed_signature,
            auth: None,
            stored_auth_kind: auth_kind(&endpoint.auth_kind),
        }
    }

    pub fn check(&self, allow_private: bool) -> Result<EndpointForm, EndpointErrors> {
        let mut errors = EndpointErrors::default();
        let (name, url) = check_name_and_url(&self.name, &self.url, allow_private, &mut errors);
        let event_types = match &self.event_types {
            None => None,
            Some(types) => check_event_types(types)
                .map_err(|why| errors.events = Some(why))
                .ok(),
        };
        let auth = match self.auth.clone().map(ReceiverAuth::check).transpose() {
            Ok(auth) => auth,
            Err(why) => {
                errors.auth = Some(why);
                None
            }
        };
        if errors != EndpointErrors::default() {
            return Err(errors);
        }
        Ok(EndpointForm {
            name,
            url,
            environment: self.environment,
            event_types,
            seed_signature: self.seed_signature,
            auth_kind: auth
                .as_ref()
                .map_or(self.stored_auth_kind, ReceiverAuth::kind),
            auth,
        })
    }
}

fn check_name_and_url(
    name: &str,
    url: &str,
    allow_private: bool,
    errors: &mut EndpointErrors,
) -> (String, String) {
    let name = check_name(name).unwrap_or_else(|why| {
        errors.name = Some(why);
        String::new()
    });
    let url = url.trim().to_owned();
    if let Err(why) = check_url(&url, allow_private) {
        errors.url = Some(why);
    }
    (name, url)
}

/// The stored or typed receiver authentication kind; anything unknown is "none".
pub fn auth_kind(kind: &str) -> &'static str {
    AUTH_KINDS
        .iter()
        .map(|(known, _)| *known)
        .find(|known| *known == kind)
        .unwrap_or("none")
}

/// An endpoint name: 1 to 100 characters, trimmed.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("Give the endpoint a name of 1 to 100 characters.".into());
    }
    if name.chars().any(char::is_control) {
        return Err("The name cannot contain control characters.".into());
    }
    Ok(name.to_owned())
}

/// Chosen event types: known ones, at least one, each once.
pub fn check_event_types(values: &[String]) -> Result<Vec<String>, String> {
    let mut chosen: Vec<String> = Vec::new();
    for value in values {
        let Some(event_type) = EventType::parse(value) else {
            return Err(format!("{value:?} is not an event type."));
        };
        if !chosen.iter().any(|t| t == event_type.as_str()) {
            chosen.push(event_type.as_str().to_owned());
        }
    }
    if chosen.is_empty() {
        return Err("Choose at least one event type, or all events.".into());
    }
    Ok(chosen)
}

impl ReceiverAuth {
    /// No credentials typed at all (a form that keeps the stored ones).
    fn is_blank(&self) -> bool {
        match self {
            Self::None => false,
            Self::Headers { headers } => headers.is_empty(),
            Self::Basic { username, password } => username.is_empty() && password.is_empty(),
            Self::Bearer { token } => token.is_empty(),
        }
    }

    /// The credentials, checked: header names of letters, digits and `-` (lower-cased), none
    /// Gatehouse sets itself, values of visible characters; a Basic user name without `:`.
    pub fn check(self) -> Result<Self, String> {
        let visible = |value: &str| value.chars().all(|c| !c.is_control());
        match self {
            Self::None => Ok(Self::None),
            Self::Headers { headers } => {
                if headers.is_empty() {
                    return Err("Add at least one header, as \"Name: value\".".into());
                }
                let mut checked = Vec::new();
                for (name, value) in headers {
                    let name = name.trim().to_ascii_lowercase();
                    let value = value.trim().to_owned();
                    if !is_header_name(&name) || value.is_empty() || !visible(&value) {
                        return Err(
                            "Give each header as \"Name: value\" (letters, digits and - in names)."
                                .into(),
                        );
                    }
                    if is_reserved_header(&name) {
                        return Err(format!(
                            "{name:?} is set by Gatehouse itself; choose another header."
                        ));
                    }
                    checked.push((name, value));
                }
                Ok(Self::Headers { headers: checked })
            }
            Self::Basic { username, password } => {
                let username = username.trim().to_owned();
                if username.contains(':') {
                    return Err("A Basic user name cannot contain \":\".".into());
                }
                if !visible(&username) || !visible(&password) {
                    return Err("The user name and password cannot hold control characters.".into());
                }
                if username.is_empty() || password.is_empty() {
                    return Err("Give the user name and password the receiver expects.".into());
                }
                Ok(Self::Basic { username, password })
            }
            Self::Bearer { token } => {
                let token = token.trim().to_owned();
                if token.chars().any(|c| c.is_control() || c == ' ') {
                    return Err("A bearer token cannot contain spaces.".into());
                }
                if token.is_empty() {
                    return Err("Give the token the receiver expects.".into());
                }
                Ok(Self::Bearer { token })
            }
        }
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_reserved_header(name: &str) -> bool {
    matches!(
        name,
        "content-type" | "content-length" | "host" | "user-agent" | "x-webhook-signature"
    ) || name.starts_with("webhook-")
}

/// An endpoint URL: http or https, a host, no credentials in it (receiver authentication is for
/// that), and no internal address written in it unless `allow_private`. A name is checked again
/// at every delivery, against the address it then resolves to.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    if url.chars().any(char::is_control) {
        return Err("The URL cannot contain control characters.".into());
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| "Give a full URL like https://example.com/hooks/gatehouse.".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err("The URL must start with https:// (or http://) and name a host.".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("Put credentials under receiver authentication, not in the URL.".into());
    }
    if url.len() > 2000 {
        return Err("The URL is too long (2000 characters at most).".into());
    }
    if let Some(ip) = literal_address(url)
        && !allow_private
        && is_internal(ip)
    {
        return Err(format!(
            "{ip} is an internal address: webhooks go to public addresses only."
        ));
    }
    Ok(())
}

/// The IP address written as the URL's host, if one is.
pub fn literal_address(url: &str) -> Option<IpAddr> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Loopback, private, link-local (cloud metadata), multicast, unspecified and other
/// not-publicly-routed addresses: what a webhook must not reach unless allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata too)
                || (first & 0xffc0) == 0xfe80 // link-local
                || ip == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xa9fe)
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || a >= 240
}

/// Why webhook settings cannot be changed at all.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookProblem {
    /// The deployment has no `GATEHOUSE_SECRET_KEY`.
    NoSecretKey,
    Invalid(EndpointErrors),
}

fn secret_context(endpoint_id: Uuid) -> String {
    format!("webhook_endpoint.secret:{endpoint_id}")
}

fn auth_context(endpoint_id: Uuid) -> String {
    format!("webhook_endpoint.auth:{endpoint_id}")
}

fn seal_auth(
    key: &SecretKey,
    endpoint_id: Uuid,
    auth: &ReceiverAuth,
) -> DomainResult<Option<Vec<u8>>> {
    if *auth == ReceiverAuth::None {
        return Ok(None);
    }
    let plain = serde_json::to_vec(auth).map_err(DomainError::unexpected)?;
    Ok(Some(key.seal(&plain, &auth_context(endpoint_id))))
}

fn settings<'a>(form: &'a EndpointForm, auth_sealed: Option<&'a [u8]>) -> EndpointSettings<'a> {
    EndpointSettings {
        name: &form.name,
        url: &form.url,
        environment: form.environment,
        event_types: form.event_types.as_deref(),
        seed_signature: form.seed_signature,
        auth_kind: form.auth_kind,
        auth_sealed,
    }
}

fn audit_details(form: &EndpointForm) -> Value {
    json!({
        "url": form.url,
        "environment": form.environment.as_str(),
        "events": form.event_types.as_ref().map_or_else(|| "all".to_owned(), |types| types.join(" ")),
        "authentication": form.auth_kind,
    })
}

/// The tenant's endpoint, or `NotFound` (another tenant's id too).
async fn endpoint_of(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    endpoint_id: Uuid,
) -> DomainResult<Endpoint> {
    db_webhooks::get(tx, tenant_id, endpoint_id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Registers an endpoint; returns its id and its signing secret, to show once.
pub async fn create_endpoint(
    pool: &PgPool,
    key: Option<&SecretKey>,
    tenant_id: Uuid,
    form: &EndpointForm,
    actor: &Actor,
) -> DomainResult<Result<(Uuid, SigningSecret), WebhookProblem>> {
    let Some(key) = key else {
        return Ok(Err(WebhookProblem::NoSecretKey));
    };
    let id = Uuid::new_v4();
    let secret = SigningSecret::generate();
    let secret_sealed = key.seal(secret.bytes(), &secret_context(id));
    let auth_sealed = seal_auth(key, id, form.auth.as_ref().unwrap_or(&ReceiverAuth::None))?;
    let mut tx = pool.begin().await?;
    db_webhooks::insert(
        &mut *tx,
        id,
        tenant_id,
        &settings(form, auth_sealed.as_deref()),
        &secret_sealed,
        actor.user_id(),
    )
    .await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.created",
            format!("webhook:{}", form.name),
            audit_details(form),
        )
        .await?;
    Ok(Ok((id, secret)))
}

/// Changes an endpoint's settings (credentials only when the form gave new ones).
pub async fn update_endpoint(
    pool: &PgPool,
    key: Option<&SecretKey>,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    form: &EndpointForm,
    actor: &Actor,
) -> DomainResult<Result<(), WebhookProblem>> {
    let Some(key) = key else {
        return Ok(Err(WebhookProblem::NoSecretKey));
    };
    let auth_sealed = match &form.auth {
        Some(auth) => seal_auth(key, endpoint_id, auth)?,
        None => None,
    };
    let mut tx = pool.begin().await?;
    if !db_webhooks::update(
        &mut *tx,
        tenant_id,
        endpoint_id,
        &settings(form, auth_sealed.as_deref()),
    )
    .await?
    {
        return Err(DomainError::NotFound);
    }
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.updated",
            format!("webhook:{}", form.name),
            audit_details(form),
        )
        .await?;
    Ok(Ok(()))
}

/// A new signing secret, shown once; the old one signs beside it for 24 hours.
pub async fn roll_secret(
    pool: &PgPool,
    key: Option<&SecretKey>,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    actor: &Actor,
) -> DomainResult<Result<SigningSecret, WebhookProblem>> {
    let Some(key) = key else {
        return Ok(Err(WebhookProblem::NoSecretKey));
    };
    let mut tx = pool.begin().await?;
    let endpoint = endpoint_of(&mut tx, tenant_id, endpoint_id).await?;
    let secret = SigningSecret::generate();
    let context = secret_context(endpoint_id);
    db_webhooks::roll_secret(
        &mut *tx,
        tenant_id,
        endpoint_id,
        &key.seal(secret.bytes(), &context),
        &endpoint.secret_sealed,
        OffsetDateTime::now_utc() + SECRET_OVERLAP,
    )
    .await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.secret_rolled",
            format!("webhook:{}", endpoint.name),
            json!({}),
        )
        .await?;
    Ok(Ok(secret))
}

/// Turns an endpoint on or off by hand.
pub async fn set_enabled(
    pool: &PgPool,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    enabled: bool,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    let endpoint = endpoint_of(&mut tx, tenant_id, endpoint_id).await?;
    let reason = (!enabled).then_some("Disabled by an admin.");
    if db_webhooks::set_enabled(&mut *tx, endpoint_id, enabled, reason).await? {
        let action = if enabled {
            "webhook.enabled"
        } else {
            "webhook.disabled"
        };
        actor
            .commit_with_event(
                tx,
                tenant_id,
                action,
                format!("webhook:{}", endpoint.name),
                json!({}),
            )
            .await?;
    }
    Ok(())
}

/// Sends `webhook.test` to one endpoint; returns the event's id, or `None` when the endpoint is
/// disabled (it gets nothing).
pub async fn send_test(
    pool: &PgPool,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    actor: &Actor,
) -> DomainResult<Option<String>> {
    let mut tx = pool.begin().await?;
    let endpoint = endpoint_of(&mut tx, tenant_id, endpoint_id).await?;
    let (event_id, queued) = publish_to(
        &mut tx,
        tenant_id,
        EventType::WebhookTest,
        None,
        Some(endpoint_id),
        json!({ "endpoint": { "id": endpoint_id, "name": endpoint.name }, "message": "A test event from Gatehouse." }),
    )
    .await?;
    if queued == 0 {
        // Nothing was sent, so nothing is recorded.
        return Ok(None);
    }
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.test_sent",
            format!("webhook:{}", endpoint.name),
            json!({}),
        )
        .await?;
    Ok(Some(event_id))
}

/// Deletes an endpoint with its delivery log; deliveries waiting for it are cancelled in the same
/// transaction, so nothing is sent to it afterwards (only a POST already on the wire at that
/// moment can still arrive; the courier skips a message whose endpoint is gone).
pub async fn delete_endpoint(
    pool: &PgPool,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    let endpoint = endpoint_of(&mut tx, tenant_id, endpoint_id).await?;
    db_webhooks::cancel_deliveries(&mut *tx, endpoint_id).await?;
    db_webhooks::delete(&mut *tx, tenant_id, endpoint_id).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.deleted",
            format!("webhook:{}", endpoint.name),
            json!({ "url": endpoint.url }),
        )
        .await?;
    Ok(())
}

/// Queues an event again for one endpoint: the same `webhook-id`, a new attempt.
pub async fn resend(
    pool: &PgPool,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    event_id: &str,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    let endpoint = endpoint_of(&mut tx, tenant_id, endpoint_id).await?;
    if !db_webhooks::requeue(&mut *tx, tenant_id, endpoint_id, event_id).await? {
        return Err(DomainError::NotFound);
    }
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.resent",
            format!("webhook:{}", endpoint.name),
            json!({ "event": event_id }),
        )
        .await?;
    Ok(())
}

/// The secrets a delivery to `endpoint` uses: the signing secrets (the previous one too while the
/// overlap lasts) and the receiver's credentials.
pub struct DeliverySecrets {
    pub signing: Vec<SigningSecret>,
    pub auth: ReceiverAuth,
}

pub fn open_secrets(
    key: &SecretKey,
    endpoint: &Endpoint,
    now: OffsetDateTime,
) -> Result<DeliverySecrets, String> {
    let id = endpoint.webhook_endpoint_id;
    let context = secret_context(id);
    let mut signing = vec![SigningSecret::from_bytes(
        key.open(&endpoint.secret_sealed, &context)
            .map_err(|e| e.to_string())?,
    )];
    if let (Some(previous), Some(until)) = (
        &endpoint.previous_secret_sealed,
        endpoint.previous_secret_until,
    ) && until > now
    {
        signing.push(SigningSecret::from_bytes(
            key.open(previous, &context).map_err(|e| e.to_string())?,
        ));
    }
    let auth = match &endpoint.auth_sealed {
        None => ReceiverAuth::None,
        Some(sealed) => {
            let plain = key
                .open(sealed, &auth_context(id))
                .map_err(|e| e.to_string())?;
            serde_json::from_slice(&plain)
                .map_err(|_| "unreadable receiver credentials".to_owned())?
        }
    };
    Ok(DeliverySecrets { signing, auth })
}

/// Records a delivery's outcome on the endpoint. A `410 Gone` disables it at once; failures for
/// 3 days disable it too, and then the tenant's admins are mailed.
pub async fn record_outcome(
    pool: &PgPool,
    endpoint: &Endpoint,
    delivered: bool,
    gone: bool,
    status: Option<i32>,
    public_url: &PublicUrl,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    let id = endpoint.webhook_endpoint_id;
    let failing_since = db_webhooks::record_outcome(&mut *tx, id, delivered, status).await?;
    let reason = if gone {
        Some("The receiver answered 410 Gone.".to_owned())
    } else {
        failing_since
            .filter(|since| *since <= OffsetDateTime::now_utc() - DISABLE_AFTER)
            .map(|since| format!("Every delivery failed since {}.", since.date()))
    };
    if let Some(reason) = reason
        && db_webhooks::set_enabled(&mut *tx, id, false, Some(&reason)).await?
    {
        let tenant = db_tenants::by_id(&mut *tx, endpoint.tenant_id).await?;
        let link = public_url.link(&format!("/t/{}/webhooks/{id}", tenant.slug));
        for (email, name) in db_webhooks::admins(&mut *tx, endpoint.tenant_id).await? {
            mail::send(
                &mut *tx,
                &email,
                Mail::WebhookDisabled {
                    name,
                    tenant: tenant.name.clone(),
                    endpoint: endpoint.name.clone(),
                    reason: reason.clone(),
                    link: link.clone(),
                },
            )
            .await?;
        }
        audit::insert(
            &mut *tx,
            &NewEvent {
                tenant_id: endpoint.tenant_id,
                actor_id: None,
                actor_token: None,
                action: "webhook.disabled",
                target: format!("webhook:{}", endpoint.name),
                request_id: None,
                client_ip: None,
                user_agent: None,
                details: json!({ "reason": reason }),
            },
        )
        .await?;
        tracing::warn!(webhook.id = %id, tenant.id = %endpoint.tenant_id, %reason, "webhook endpoint disabled");
    }
    tx.commit().await?;
    Ok(())
}

/// Steps of the retry schedule, in units of the first retry (5 s): 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h: about 28 hours in all.
const SCHEDULE: [u32; 7] = [1, 60, 360, 1440, 3600, 7200, 7200];
/// The longest `Retry-After` honoured.
pub const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(10 * 3600);

/// The wait a receiver's `Retry-After` asks for (RFC 9110: delay seconds, or an HTTP date in
/// IMF-fixdate or the two obsolete formats), at most `LONGEST_RETRY_AFTER`; a date already past
/// asks for no wait. `None` when the value is neither.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(LONGEST_RETRY_AFTER))
}

/// The wait after the `attempts`-th failed attempt, with ±10 % jitter; `None` once the schedule is done.
pub fn retry_in(attempts: i32, first: Duration) -> Option<Duration> {
    let step = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = first.saturating_mul(*SCHEDULE.get(step)?);
    Some(base.mul_f64(rand::rng().random_range(0.9..=1.1)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_after_reads_seconds_and_http_dates_in_all_three_formats() {
        use std::time::{Duration, SystemTime};
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 90);
        let ninety = Some(Duration::from_secs(90));
        assert_eq!(
            super::retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            ninety
        );
        assert_eq!(
            super::retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            ninety
        );
        assert_eq!(super::retry_after("Sun Nov  6 08:49:37 1994", now), ninety);
        assert_eq!(
            super::retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            super::retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO),
            "a date already past asks for no wait"
        );
        assert_eq!(
            super::retry_after(
                &httpdate::fmt_http_date(now + Duration::from_secs(86_400)),
                now
            ),
            Some(super::LONGEST_RETRY_AFTER)
        );
        assert_eq!(super::retry_after("soon", now), None);
        assert_eq!(super::retry_after("-5", now), None);
    }

    use super::*;

    #[test]
    fn internal_addresses_are_told_from_public_ones() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "ff02::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_signature_matches_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification's test vectors.
        let secret =
            SigningSecret::from_bytes(STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_and_32_random_bytes() {
        let secret = SigningSecret::generate();
        let shown = secret.reveal();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&shown[6..]).unwrap().len(), 32);
        assert_ne!(shown, SigningSecret::generate().reveal());
    }

    #[test]
    fn retries_follow_the_schedule_with_jitter_then_stop() {
        let first = Duration::from_secs(5);
        let expected = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
        for (attempt, secs) in (1..).zip(expected) {
            let wait = retry_in(attempt, first).unwrap().as_secs_f64();
            assert!(
                wait >= f64::from(secs) * 0.9 && wait <= f64::from(secs) * 1.1,
                "{attempt}: {wait}"
            );
        }
        assert_eq!(retry_in(8, first), None);
    }

    fn input(auth_kind: &str) -> EndpointInput {
        EndpointInput {
            name: "Billing".into(),
            url: "https://hooks.example.com/in".into(),
            environment: "live".into(),
            events: "all".into(),
            auth_kind: auth_kind.into(),
            ..EndpointInput::default()
        }
    }

    #[test]
    fn the_form_needs_a_name_a_web_url_and_an_environment() {
        let errors = EndpointInput::default().check(None, false).unwrap_err();
        assert!(errors.name.is_some() && errors.url.is_some() && errors.environment.is_some());
        for bad in [
            "ftp://x.example/",
            "https://user:pw@x.example/",
            "hooks.example.com",
        ] {
            let mut form = input("none");
            form.url = bad.into();
            assert!(form.check(None, false).unwrap_err().url.is_some(), "{bad}");
        }
        assert_eq!(
            input("none").check(None, false).unwrap().auth,
            Some(ReceiverAuth::None)
        );
    }

    #[test]
    fn an_internal_address_in_the_url_is_refused_unless_allowed() {
        for internal in [
            "http://127.0.0.1:8080/in",
            "http://[::1]/in",
            "http://169.254.169.254/",
        ] {
            let mut form = input("none");
            form.url = internal.into();
            assert!(
                form.check(None, false)
                    .unwrap_err()
                    .url
                    .unwrap()
                    .contains("internal")
            );
            assert!(
                form.check(None, true).is_ok(),
                "{internal} is allowed by the setting"
            );
        }
        // A name is judged at delivery, by the address it resolves to then.
        let mut form = input("none");
        form.url = "http://localhost:8080/in".into();
        assert!(form.check(None, false).is_ok());
    }

    #[test]
    fn typed_settings_follow_the_forms_rules() {
        let spec = EndpointSpec {
            name: " Billing ".into(),
            url: "https://hooks.example.com/in".into(),
            environment: Environment::Live,
            event_types: Some(vec!["key.revoked".into(), "key.revoked".into()]),
            seed_signature: true,
            auth: Some(ReceiverAuth::Headers {
                headers: vec![("X-Api-Key".into(), "abc".into())],
            }),
            stored_auth_kind: "none",
        };
        let form = spec.check(false).unwrap();
        assert_eq!(form.name, "Billing");
        assert_eq!(form.event_types, Some(vec!["key.revoked".to_owned()]));
        assert_eq!(form.auth_kind, "headers");
        let bad = |change: fn(&mut EndpointSpec)| {
            let mut spec = spec.clone();
            change(&mut spec);
            spec.check(false).unwrap_err()
        };
        assert!(bad(|s| s.url = "http://10.0.0.1/".into()).url.is_some());
        assert!(
            bad(|s| s.event_types = Some(vec!["key.deleted".into()]))
                .events
                .is_some()
        );
        assert!(bad(|s| s.event_types = Some(Vec::new())).events.is_some());
        assert!(
            bad(|s| s.auth = Some(ReceiverAuth::Headers {
                headers: vec![("webhook-id".into(), "1".into())]
            }))
            .auth
            .is_some()
        );
        assert!(
            bad(|s| s.auth = Some(ReceiverAuth::Basic {
                username: "a:b".into(),
                password: "pw".into()
            }))
            .auth
            .is_some()
        );
        assert!(
            bad(|s| s.auth = Some(ReceiverAuth::Bearer {
                token: String::new()
            }))
            .auth
            .is_some()
        );
        let kept = EndpointSpec {
            auth: None,
            stored_auth_kind: "bearer",
            ..spec.clone()
        };
        let form = kept.check(false).unwrap();
        assert_eq!(
            (form.auth_kind, form.auth),
            ("bearer", None),
            "stored credentials kept"
        );
    }

    #[test]
    fn chosen_events_must_be_known_and_not_empty() {
        let mut form = input("none");
        form.events = "chosen".into();
        assert!(form.check(None, false).unwrap_err().events.is_some());
        form.event_types = vec!["key.revoked".into(), "key.deleted".into()];
        assert!(
            form.check(None, false)
                .unwrap_err()
                .events
                .unwrap()
                .contains("key.deleted")
        );
        form.event_types = vec!["key.revoked".into()];
        assert_eq!(
            form.check(None, false).unwrap().event_types,
            Some(vec!["key.revoked".to_owned()])
        );
    }

    #[test]
    fn receiver_credentials_are_required_unless_kept() {
        let mut form = input("bearer");
        assert!(form.check(None, false).unwrap_err().auth.is_some());
        assert_eq!(
            form.check(Some("bearer"), false).unwrap().auth,
            None,
            "kept"
        );
        form.auth_token = "tok-123".into();
        let auth = form.check(None, false).unwrap().auth.unwrap();
        assert_eq!(
            auth.headers(),
            [("authorization".to_owned(), "Bearer tok-123".to_owned())]
        );
        let mut form = input("headers");
        form.auth_headers = "X-Api-Key: abc\nwebhook-id: 1".into();
        assert!(
            form.check(None, false)
                .unwrap_err()
                .auth
                .unwrap()
                .contains("webhook-id")
        );
        form.auth_headers = "X-Api-Key: abc".into();
        assert!(form.check(None, false).is_ok());
        let mut form = input("basic");
        form.auth_username = "gate".into();
        form.auth_password = "pw".into();
        let auth = form.check(None, false).unwrap().auth.unwrap();
        assert_eq!(
            auth.headers()[0].1,
            format!("Basic {}", STANDARD.encode("gate:pw"))
        );
    }

    #[test]
    fn endpoint_names_refuse_control_characters() {
        assert_eq!(check_name("  Billing  "), Ok("Billing".to_owned()));
        assert!(
            check_name("n\u{0}x").is_err(),
            "PostgreSQL text cannot hold NUL"
        );
        assert!(check_name("tab\there").is_err());
        assert!(check_name("").is_err());
        assert!(check_url("https://hooks.example.com/in\u{0}", false).is_err());
        assert!(check_url("https://hooks.example.com/in", false).is_ok());
    }
}
