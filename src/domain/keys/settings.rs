//! What a key is made with and the rules each setting follows on its own: name, access, rate-limit
//! bounds, note, metadata, allowlist. The typed requests the doors build live here too.

use serde_json::json;
use time::OffsetDateTime;

use crate::domain::keys::allowlist::IpAllowlist;
use crate::vocabulary::Environment;

/// A key's name: what the key is for, 1-80 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = input.trim();
        if name.is_empty() {
            return Err("Give the key a name, so you know later what it is for.".into());
        }
        if name.chars().count() > 80 {
            return Err("Key names are at most 80 characters.".into());
        }
        if name.chars().any(char::is_control) {
            return Err("Key names cannot contain control characters.".into());
        }
        Ok(Self(name.to_owned()))
    }

    /// A name read back from the database: it was validated when it was stored.
    pub(crate) fn stored(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// What a key may do: everything (every scope of the catalogue when it is judged, also scopes
/// added to `GATEHOUSE_SCOPES` later), or the scopes chosen for it. Never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Full,
    Scopes(Vec<String>),
}

impl Access {
    /// As stored: `full_access`, and the chosen scopes (none for full access).
    pub fn stored(full_access: bool, scopes: Vec<String>) -> Self {
        if full_access {
            Self::Full
        } else {
            Self::Scopes(scopes)
        }
    }

    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full)
    }

    /// The chosen scopes; none for full access.
    pub fn chosen(&self) -> &[String] {
        match self {
            Self::Full => &[],
            Self::Scopes(scopes) => scopes,
        }
    }

    /// What lists and pages show.
    pub fn label(&self) -> String {
        match self {
            Self::Full => "Full access".into(),
            Self::Scopes(scopes) => scopes.join(", "),
        }
    }
}

/// The access a door asks for: `full` is the explicit choice (`None`: not made), `scopes` the
/// scopes named. [`AccessChoice::check`] decides; full access is never widened or narrowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessChoice {
    pub full: Option<bool>,
    pub scopes: Vec<String>,
}

impl AccessChoice {
    pub fn check(&self, catalogue: &[String]) -> Result<Access, String> {
        if let Some(unknown) = self.scopes.iter().find(|scope| !catalogue.contains(scope)) {
            return Err(format!("{unknown:?} is not a scope of this deployment."));
        }
        // In the catalogue's order, each once.
        let chosen: Vec<String> = catalogue
            .iter()
            .filter(|scope| self.scopes.contains(scope))
            .cloned()
            .collect();
        match (self.full, chosen.is_empty()) {
            (Some(true), true) => Ok(Access::Full),
            (Some(true), false) => Err(
                "Choose either full access or some scopes, not both: a key with full access names \
                 no scopes."
                    .into(),
            ),
            (_, false) => Ok(Access::Scopes(chosen)),
            (_, true) => Err("Choose full access, or the scopes this key may use.".into()),
        }
    }
}

/// The fewest and most verifications per minute a key's rate limit may allow.
pub const RATE_LIMIT_BOUNDS: std::ops::RangeInclusive<u32> = 1..=1_000_000;
/// What is said of a rate limit outside [`RATE_LIMIT_BOUNDS`] (or not a number at all).
pub const RATE_LIMIT_MESSAGE: &str =
    "Enter a whole number of requests per minute from 1 to 1000000.";
/// Who may choose a rate limit.
pub const RATE_LIMIT_ADMINS: &str = "Only tenant admins can choose a key's rate limit.";

/// A rate limit within the bounds.
pub fn check_rate_limit(limit: u32) -> Result<u32, String> {
    if RATE_LIMIT_BOUNDS.contains(&limit) {
        Ok(limit)
    } else {
        Err(RATE_LIMIT_MESSAGE.into())
    }
}

/// The most characters a key's note may have.
pub const NOTE_MAX_CHARS: usize = 500;
/// The most bytes a key's metadata may take, as compact JSON.
pub const META_MAX_BYTES: usize = 1024;

/// A key's note: for the people who manage the key (never sent to the platform).
pub fn check_note(input: &str) -> Result<String, String> {
    let note = input.trim();
    if note.chars().count() > NOTE_MAX_CHARS {
        return Err(format!("Notes are at most {NOTE_MAX_CHARS} characters."));
    }
    if note
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err("Notes cannot contain control characters.".into());
    }
    Ok(note.replace("\r\n", "\n"))
}

/// A key's metadata as typed in a form: empty for none, else JSON (checked by [`check_meta`]).
pub fn meta_from_text(input: &str) -> Result<serde_json::Value, String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(input).map_err(|err| {
        // serde_json's message ends with its position ("… at line 1 column 9"): said once, here.
        let message = err.to_string();
        let what = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(what, _)| what);
        format!(
            "Metadata must be a JSON object like {{\"plan\": \"pro\"}}; this is not valid JSON \
             at line {}, column {}: {what}.",
            err.line(),
            err.column()
        )
    })
}

/// Metadata: a JSON object of at most 1 KB as compact JSON.
pub fn check_meta(value: serde_json::Value) -> Result<serde_json::Value, String> {
    if !value.is_object() {
        return Err("Metadata must be a JSON object like {\"plan\": \"pro\"}, not a list or a single value.".into());
    }
    let size = value.to_string().len();
    if size > META_MAX_BYTES {
        return Err(format!(
            "Metadata is at most {META_MAX_BYTES} bytes as compact JSON; this is {size}."
        ));
    }
    Ok(value)
}

/// A key's expiry, which must lie in the future.
pub fn check_expiry(at: OffsetDateTime, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if at <= now {
        return Err("The expiry must be in the future.".into());
    }
    Ok(at)
}

/// What a key is made with, after every rule.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub name: KeyName,
    pub environment: Environment,
    pub access: Access,
    pub expires_at: Option<OffsetDateTime>,
    pub rate_limit: u32,
    pub ip_allowlist: IpAllowlist,
    pub note: String,
    pub meta: serde_json::Value,
}

/// A value a door read from its input, or what the door could not read (a form's date that is no
/// date): the rules report it under its field beside every other refusal.
pub type Read<T> = Result<T, String>;

/// A new key as a door asks for it: the door's input translated, nothing decided yet. Every door
/// (the portal's form, the management API, import, an approved request) builds one and hands it
/// to [`super::admit`], which applies every rule.
#[derive(Debug, Clone)]
pub struct NewKeyRequest {
    pub name: String,
    pub environment: Read<Environment>,
    pub access: AccessChoice,
    /// `None`: never expires.
    pub expires_at: Read<Option<OffsetDateTime>>,
    /// `None`: the environment's default.
    pub rate_limit: Read<Option<u32>>,
    pub note: String,
    /// `None`: no metadata.
    pub meta: Read<Option<serde_json::Value>>,
    /// `None`: the tenant's default allowlist. `Some([])`: any address.
    pub ip_allowlist: Option<Vec<String>>,
}

impl Default for NewKeyRequest {
    fn default() -> Self {
        Self {
            name: String::new(),
            environment: Err("Choose live or test.".into()),
            access: AccessChoice::default(),
            expires_at: Ok(None),
            rate_limit: Ok(None),
            note: String::new(),
            meta: Ok(None),
            ip_allowlist: None,
        }
    }
}

/// A change to a key as a door asks for it; `None` leaves a setting as it is. The portal's edit
/// form and the management API's PATCH both build one and hand it to [`super::edit_key`].
#[derive(Debug, Clone, Default)]
pub struct KeyChangeRequest {
    pub name: Option<String>,
    pub note: Option<String>,
    pub access: Option<AccessChoice>,
    pub rate_limit: Option<Read<u32>>,
    /// `Some(Ok(None))`: never expires.
    pub expires_at: Option<Read<Option<OffsetDateTime>>>,
    pub meta: Option<Read<serde_json::Value>>,
    pub ip_allowlist: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

/// A setting the rules speak about: how the portal's forms and the JSON doors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    Name,
    Environment,
    Scopes,
    Expiry,
    RateLimit,
    IpAllowlist,
    Note,
    Meta,
    /// How long a rolled key keeps working.
    Grace,
    /// The key as a whole (who may change it, its state).
    Key,
}

impl KeyField {
    /// The field's name in the JSON doors (`field` of an error).
    pub fn json_name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Environment => "environment",
            Self::Scopes => "scopes",
            Self::Expiry => "expires_at",
            Self::RateLimit => "rate_limit",
            Self::IpAllowlist => "ip_allowlist",
            Self::Note => "note",
            Self::Meta => "meta",
            Self::Grace => "grace_seconds",
            Self::Key => "key",
        }
    }
}

/// Why the rules refused a request, per field (every field at once, as the portal shows them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyErrors {
    pub name: Option<String>,
    pub environment: Option<String>,
    pub scopes: Option<String>,
    pub expiry: Option<String>,
    pub rate_limit: Option<String>,
    pub ip_allowlist: Option<String>,
    pub note: Option<String>,
    pub meta: Option<String>,
    pub grace: Option<String>,
}

impl KeyErrors {
    /// One refusal of `field`.
    pub fn of(field: KeyField, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.set(field, message.into());
        errors
    }

    pub fn set(&mut self, field: KeyField, message: String) {
        let slot = match field {
            KeyField::Name | KeyField::Key => &mut self.name,
            KeyField::Environment => &mut self.environment,
            KeyField::Scopes => &mut self.scopes,
            KeyField::Expiry => &mut self.expiry,
            KeyField::RateLimit => &mut self.rate_limit,
            KeyField::IpAllowlist => &mut self.ip_allowlist,
            KeyField::Note => &mut self.note,
            KeyField::Meta => &mut self.meta,
            KeyField::Grace => &mut self.grace,
        };
        slot.get_or_insert(message);
    }

    /// Keeps `value` when it is good, else records why under `field`.
    pub fn take<T>(&mut self, field: KeyField, value: Result<T, String>) -> Option<T> {
        value.map_err(|why| self.set(field, why)).ok()
    }

    /// Keeps a setting that was given and is good; records why a given one is not.
    pub fn take_some<T>(&mut self, field: KeyField, value: Option<Result<T, String>>) -> Option<T> {
        value.and_then(|value| self.take(field, value))
    }

    /// Every refusal, in the order the forms show the fields.
    pub fn all(&self) -> Vec<(KeyField, &str)> {
        [
            (KeyField::Name, &self.name),
            (KeyField::Environment, &self.environment),
            (KeyField::Scopes, &self.scopes),
            (KeyField::Expiry, &self.expiry),
            (KeyField::RateLimit, &self.rate_limit),
            (KeyField::IpAllowlist, &self.ip_allowlist),
            (KeyField::Note, &self.note),
            (KeyField::Meta, &self.meta),
            (KeyField::Grace, &self.grace),
        ]
        .into_iter()
        .filter_map(|(field, message)| message.as_deref().map(|message| (field, message)))
        .collect()
    }

    /// The first refusal (what a JSON door answers with).
    pub fn first(&self) -> Option<(KeyField, &str)> {
        self.all().into_iter().next()
    }

    pub fn is_empty(&self) -> bool {
        self.all().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(full: Option<bool>, scopes: &[&str]) -> Result<Access, String> {
        AccessChoice {
            full,
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        }
        .check(&["read".to_owned(), "write".to_owned()])
    }

    #[test]
    fn access_is_what_was_chosen_and_never_widened() {
        assert_eq!(asking(Some(true), &[]), Ok(Access::Full));
        assert_eq!(
            asking(Some(false), &["write", "read"]),
            Ok(Access::Scopes(vec!["read".into(), "write".into()]))
        );
        assert_eq!(
            asking(None, &["read"]),
            Ok(Access::Scopes(vec!["read".into()]))
        );
        assert!(
            asking(Some(true), &["read"])
                .unwrap_err()
                .contains("not both")
        );
        assert!(asking(Some(false), &[]).is_err());
        assert!(asking(None, &[]).is_err());
        assert!(
            asking(Some(false), &["admin"])
                .unwrap_err()
                .contains("not a scope")
        );
        assert_eq!(Access::Full.label(), "Full access");
    }

    #[test]
    fn metadata_is_a_small_json_object() {
        assert_eq!(meta_from_text("").unwrap(), json!({}));
        let typed = meta_from_text(r#" {"plan": "pro", "customer": 42} "#).unwrap();
        assert_eq!(
            check_meta(typed).unwrap(),
            json!({"plan": "pro", "customer": 42})
        );
        assert!(
            check_meta(json!([1, 2]))
                .unwrap_err()
                .contains("JSON object")
        );
        assert!(
            meta_from_text("{\"plan\": ")
                .unwrap_err()
                .contains("line 1")
        );
        let big = json!({ "x": "a".repeat(1100) });
        assert!(check_meta(big).unwrap_err().contains("1024 bytes"));
    }

    #[test]
    fn notes_are_bounded_and_keep_their_lines() {
        assert_eq!(
            check_note(" used by CI\r\nsee runbook ").unwrap(),
            "used by CI\nsee runbook"
        );
        assert!(check_note(&"x".repeat(501)).is_err());
        assert!(check_note("bell\u{7}").is_err());
    }

    #[test]
    fn rate_limits_stay_within_bounds() {
        assert_eq!(check_rate_limit(1), Ok(1));
        assert_eq!(check_rate_limit(1_000_000), Ok(1_000_000));
        assert!(check_rate_limit(0).is_err());
        assert!(check_rate_limit(1_000_001).is_err());
    }

    #[test]
    fn refusals_are_reported_per_field_in_form_order() {
        let mut errors = KeyErrors::default();
        assert!(errors.is_empty());
        assert_eq!(
            errors.take(KeyField::Meta, Err::<(), _>("bad".into())),
            None
        );
        errors.set(KeyField::Name, "no name".into());
        errors.set(KeyField::Name, "second".into());
        assert_eq!(errors.first(), Some((KeyField::Name, "no name")));
        assert_eq!(errors.all().len(), 2);
        assert_eq!(KeyField::Expiry.json_name(), "expires_at");
    }
}
