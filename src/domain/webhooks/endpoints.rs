//! Webhook endpoints: their settings as a form or an API client gives them and the rules that check
//! them, the receiver's credentials (sealed at rest, like the signing secret), and creating,
//! changing, rolling, enabling and deleting an endpoint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::webhooks::{self as db_webhooks, Endpoint, EndpointSettings};
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::sealing::SecretKey;
use crate::vocabulary::Environment;

use super::address::check_url;
use super::events::check_event_types;
use super::signing::{SECRET_OVERLAP, SigningSecret, seal_auth, secret_context};

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

/// Why webhook settings cannot be changed at all.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookProblem {
    /// The deployment has no `GATEHOUSE_SECRET_KEY`.
    NoSecretKey,
    Invalid(EndpointErrors),
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
pub(super) async fn endpoint_of(
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

#[cfg(test)]
mod tests {
    use super::*;

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
