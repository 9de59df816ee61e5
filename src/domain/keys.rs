//! API keys in the portal: names, expiry and grace choices, statuses, the new-key form's rules, and
//! the lifecycle (create, roll, revoke) with its audit trail. The key format is `key_format`.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::config::Config;
use crate::db::keys::{self as db_keys, NewKeyRow};
use crate::db::reminders;
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::ip_allowlist::IpAllowlist;
use crate::domain::key_format::{NewKey, masked};
use crate::domain::mail::{self, Mail};
use crate::domain::vocabulary::{Environment, Role};
use crate::domain::webhooks::{self, EventType};

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
    fn stored(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// When a new key stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    Days(i64),
    On(time::Date),
}

/// The expiry choices of the new-key form: the form's value and what it says.
pub const EXPIRY_CHOICES: [(&str, &str); 5] = [
    ("never", "Never"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
    ("date", "On a date…"),
];

impl Expiry {
    /// `choice` is `never`, `30`, `90`, `365` or `date` (then `date` holds YYYY-MM-DD).
    pub fn parse(choice: &str, date: &str) -> Result<Self, String> {
        match choice {
            "never" | "" => Ok(Self::Never),
            "30" | "90" | "365" => Ok(Self::Days(choice.parse().unwrap_or(30))),
            "date" => {
                let format = time::macros::format_description!("[year]-[month]-[day]");
                let date = time::Date::parse(date.trim(), &format)
                    .map_err(|_| "Pick an expiry date (YYYY-MM-DD).".to_owned())?;
                if date <= OffsetDateTime::now_utc().date() {
                    return Err("The expiry date must be in the future.".into());
                }
                Ok(Self::On(date))
            }
            _ => Err("Choose when the key expires.".into()),
        }
    }

    pub fn at(self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Self::Never => None,
            Self::Days(days) => Some(now + Duration::days(days)),
            Self::On(date) => Some(date.midnight().assume_utc()),
        }
    }
}

/// How long a rolled key keeps working next to its successor.
/// The grace periods a roll offers: the form's value and what it says.
pub const GRACE_CHOICES: [(&str, &str); 4] = [
    ("none", "Not at all: it stops now"),
    ("1h", "For 1 hour"),
    ("24h", "For 24 hours"),
    ("7d", "For 7 days"),
];
/// The grace a roll form starts with.
pub const DEFAULT_GRACE: &str = "1h";

pub fn parse_grace(choice: &str) -> Result<Duration, String> {
    match choice {
        "none" => Ok(Duration::ZERO),
        "1h" => Ok(Duration::hours(1)),
        "24h" => Ok(Duration::hours(24)),
        "7d" => Ok(Duration::days(7)),
        _ => Err("Choose how long the old key keeps working.".into()),
    }
}

/// A key's state as the list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Expiring,
    Expired,
    Disabled,
    Rolled,
    Revoked,
}

impl Status {
    pub fn of(
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
        revoked_at: Option<OffsetDateTime>,
        rolled_at: Option<OffsetDateTime>,
        disabled_at: Option<OffsetDateTime>,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else if disabled_at.is_some() {
            Self::Disabled
        } else if rolled_at.is_some() {
            Self::Rolled
        } else if expires_at.is_some_and(|at| at - now <= Duration::days(7)) {
            Self::Expiring
        } else {
            Self::Active
        }
    }

    /// A stored key's status now.
    pub fn of_key(key: &db_keys::Key, now: OffsetDateTime) -> Self {
        Self::of(
            now,
            key.expires_at,
            key.revoked_at,
            key.rolled_at,
            key.disabled_at,
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::Disabled => "disabled",
            Self::Rolled => "rolled",
            Self::Revoked => "revoked",
        }
    }

    /// Every status, in the order the list's filter offers them.
    pub const ALL: [Status; 6] = [
        Self::Active,
        Self::Expiring,
        Self::Expired,
        Self::Disabled,
        Self::Rolled,
        Self::Revoked,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// Still accepted by the key API (a rolled key works until its grace ends; a disabled key
    /// does not, until it is enabled again).
    pub fn works(self) -> bool {
        matches!(self, Self::Active | Self::Expiring | Self::Rolled)
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

/// What a key is made with, after validation.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub name: KeyName,
    pub environment: Environment,
    pub access: Access,
    pub expires_at: Option<OffsetDateTime>,
    pub rate_limit: u32,
    pub ip_allowlist: IpAllowlist,
    /// Carried over by a roll; empty for a new key.
    pub note: String,
    pub meta: serde_json::Value,
}

/// What went wrong in the new-key form, per field.
#[derive(Debug, Default)]
pub struct KeyErrors {
    pub name: Option<String>,
    pub environment: Option<String>,
    pub scopes: Option<String>,
    pub expiry: Option<String>,
    pub rate_limit: Option<String>,
    pub ip_allowlist: Option<String>,
}

/// The new-key form as typed.
#[derive(Debug, Default, Clone)]
pub struct KeyInput {
    pub name: String,
    pub environment: String,
    /// `full` or `scopes`: the choice of the form's two access options (empty when none was made).
    pub access: String,
    pub scopes: Vec<String>,
    pub expiry: String,
    pub expiry_date: String,
    pub rate_limit: String,
    pub ip_allowlist: String,
}

/// Validates the form. Only admins may choose a rate limit; others get the environment's default.
/// Live keys need a verified email address (`email_verified`).
// Per-field messages, made once per form submission: their size costs nothing worth a Box.
#[allow(clippy::result_large_err)]
pub fn validate(
    input: &KeyInput,
    catalogue: &[String],
    default_limit: impl Fn(Environment) -> u32,
    may_set_limit: bool,
    email_verified: bool,
) -> Result<KeySettings, KeyErrors> {
    let mut errors = KeyErrors::default();
    let name = KeyName::parse(&input.name)
        .map_err(|e| errors.name = Some(e))
        .ok();
    let environment = Environment::parse(&input.environment);
    if environment.is_none() {
        errors.environment = Some("Choose live or test.".into());
    } else if environment == Some(Environment::Live) && !email_verified {
        errors.environment = Some(
            "Live keys need a confirmed email address: follow the link we mailed you (your account \
             page sends it again). Test keys work meanwhile."
                .into(),
        );
    }
    let access = access(input, catalogue)
        .map_err(|e| errors.scopes = Some(e))
        .ok();
    let expires_at = Expiry::parse(&input.expiry, &input.expiry_date)
        .map_err(|e| errors.expiry = Some(e))
        .ok()
        .map(|expiry| expiry.at(OffsetDateTime::now_utc()));
    let rate_limit = match (environment, input.rate_limit.trim()) {
        (Some(env), "") => Some(default_limit(env)),
        (Some(_), _) if !may_set_limit => {
            errors.rate_limit = Some("Only tenant admins can choose a rate limit.".into());
            None
        }
        (_, typed) => match typed.parse::<u32>() {
            Ok(limit) if (1..=1_000_000).contains(&limit) => Some(limit),
            _ => {
                errors.rate_limit =
                    Some("Enter a whole number of requests per minute from 1 to 1000000.".into());
                None
            }
        },
    };
    let ip_allowlist = IpAllowlist::parse(&input.ip_allowlist)
        .map_err(|e| errors.ip_allowlist = Some(e))
        .ok();
    match (
        name,
        environment,
        access,
        expires_at,
        rate_limit,
        ip_allowlist,
    ) {
        (
            Some(name),
            Some(environment),
            Some(access),
            Some(expires_at),
            Some(rate_limit),
            Some(ip_allowlist),
        ) if errors.environment.is_none() => Ok(KeySettings {
            name,
            environment,
            access,
            expires_at,
            rate_limit,
            ip_allowlist,
            note: String::new(),
            meta: json!({}),
        }),
        _ => Err(errors),
    }
}

/// The access the form asks for. Full access is only ever what was chosen: a submission that also
/// names scopes is refused rather than widened or narrowed.
fn access(input: &KeyInput, catalogue: &[String]) -> Result<Access, String> {
    if let Some(unknown) = input.scopes.iter().find(|scope| !catalogue.contains(scope)) {
        return Err(format!("{unknown:?} is not a scope of this deployment."));
    }
    let chosen: Vec<String> = catalogue
        .iter()
        .filter(|scope| input.scopes.contains(scope))
        .cloned()
        .collect();
    match (input.access.as_str(), chosen.is_empty()) {
        ("full", true) => Ok(Access::Full),
        ("full", false) => Err(
            "Choose either Full access or some scopes, not both: untick the scopes or choose \
             \"Only these scopes\"."
                .into(),
        ),
        ("scopes" | "", false) => Ok(Access::Scopes(chosen)),
        ("scopes" | "", true) => {
            Err("Choose Full access, or tick the scopes this key may use.".into())
        }
        _ => Err("Choose Full access, or tick the scopes this key may use.".into()),
    }
}

/// Who may change, roll or revoke a key: admins any key of the tenant, developers their own.
/// Locks the key's row (so changes cannot interleave) and loads it, if `actor` may manage it and
/// its status now is one `open` accepts for the change at hand.
async fn lock_manageable(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    api_key_id: Uuid,
    role: Role,
    actor: &Actor,
    open: impl Fn(Status) -> bool,
) -> DomainResult<Result<db_keys::Key, KeyProblem>> {
    db_keys::lock(&mut *tx, tenant_id, api_key_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let key = db_keys::get(&mut *tx, tenant_id, api_key_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if !may_manage(role, actor.user_id, key.created_by) {
        return Ok(Err(KeyProblem::NotYours));
    }
    let status = Status::of_key(&key, OffsetDateTime::now_utc());
    if !open(status) {
        return Ok(Err(KeyProblem::Finished(status)));
    }
    Ok(Ok(key))
}

pub fn may_manage(role: Role, user_id: Option<Uuid>, created_by: Option<Uuid>) -> bool {
    role >= Role::Admin
        || (role >= Role::Developer && created_by.is_some() && created_by == user_id)
}

/// A key as webhook events describe it: never its secret, only the masked form.
pub fn key_event(
    id: Uuid,
    name: &str,
    environment: Environment,
    masked: &str,
) -> serde_json::Value {
    json!({ "id": id, "name": name, "environment": environment, "masked": masked })
}

fn key_target(name: &str, masked: &str) -> String {
    format!("key:{name} ({masked})")
}

/// Creates a key; the returned `NewKey` is the only copy of the secret.
pub async fn create_key(
    pool: &PgPool,
    prefix: &str,
    tenant_id: Uuid,
    settings: &KeySettings,
    actor: &Actor,
) -> DomainResult<(NewKey, Uuid)> {
    let mut tx = pool.begin().await?;
    let created = create_in(&mut tx, prefix, tenant_id, settings, actor).await?;
    tx.commit().await?;
    Ok(created)
}

/// Creates a key in the caller's transaction: the row, `key.created` (webhook and audit event).
pub(crate) async fn create_in(
    tx: &mut PgConnection,
    prefix: &str,
    tenant_id: Uuid,
    settings: &KeySettings,
    actor: &Actor,
) -> DomainResult<(NewKey, Uuid)> {
    let key = NewKey::generate(prefix, settings.environment);
    let id = insert_key(&mut *tx, tenant_id, &key, settings, None, actor).await?;
    let masked_key = masked(prefix, settings.environment, &key.last_four());
    webhooks::publish(
        &mut *tx,
        tenant_id,
        EventType::KeyCreated,
        Some(settings.environment),
        json!({
            "key": key_event(id, settings.name.as_str(), settings.environment, &masked_key),
            "full_access": settings.access.is_full(),
            "scopes": settings.access.chosen(),
            "rate_limit": settings.rate_limit,
            "expires_at": settings.expires_at.map(webhooks::rfc3339),
            "actor": actor.describe(),
        }),
    )
    .await?;
    let details = json!({
        "environment": settings.environment.as_str(),
        "scopes": settings.access.label(),
        "rate_limit": settings.rate_limit,
        "expires": settings.expires_at.map_or_else(|| "never".to_owned(), |at| at.date().to_string()),
        "ip_allowlist": settings.ip_allowlist.label(),
    });
    let target = key_target(settings.name.as_str(), &masked_key);
    crate::db::audit::insert(
        &mut *tx,
        &actor.event(tenant_id, "key.created", target, details),
    )
    .await?;
    Ok((key, id))
}

async fn insert_key(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    key: &NewKey,
    settings: &KeySettings,
    rolled_from: Option<Uuid>,
    actor: &Actor,
) -> DomainResult<Uuid> {
    let stored = StoredSecret {
        hash: key.hash(),
        last_four: key.last_four(),
        legacy: false,
    };
    insert_row(tx, tenant_id, &stored, settings, rolled_from, actor).await
}

/// What is stored of a key's secret.
pub(crate) struct StoredSecret {
    pub hash: [u8; 32],
    /// Empty when only the hash is known.
    pub last_four: String,
    /// In the platform's old format rather than Gatehouse's.
    pub legacy: bool,
}

/// The `api_key` row of a key with `settings`.
pub(crate) async fn insert_row(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    secret: &StoredSecret,
    settings: &KeySettings,
    rolled_from: Option<Uuid>,
    actor: &Actor,
) -> DomainResult<Uuid> {
    let id = db_keys::insert(
        &mut *tx,
        &NewKeyRow {
            tenant_id,
            created_by: actor.user_id,
            name: settings.name.as_str(),
            environment: settings.environment.as_str(),
            secret_hash: &secret.hash,
            last_four: &secret.last_four,
            full_access: settings.access.is_full(),
            scopes: settings.access.chosen(),
            rate_limit: i32::try_from(settings.rate_limit).unwrap_or(i32::MAX),
            expires_at: settings.expires_at,
            rolled_from,
            note: &settings.note,
            meta: &settings.meta,
            ip_allowlist: &settings.ip_allowlist.entries(),
            legacy: secret.legacy,
        },
    )
    .await?;
    Ok(id)
}

/// Why a key cannot be rolled or revoked now.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyProblem {
    NotYours,
    Finished(Status),
    /// A developer tried to change a rate limit.
    RateLimitForAdmins,
    /// The expiry is later than the tenant's maximum key lifetime (days) allows.
    ExpiryPastPolicy(i64),
}

impl KeyProblem {
    pub fn message(&self) -> String {
        match self {
            Self::NotYours => {
                "Developers can change, roll and revoke only the keys they created. Ask a tenant admin."
                    .into()
            }
            Self::Finished(Status::Rolled) => {
                "This key has already been rolled; roll its successor instead.".into()
            }
            Self::Finished(Status::Disabled) => {
                "This key is disabled: enable it first, or revoke it.".into()
            }
            Self::RateLimitForAdmins => "Only tenant admins can change a key's rate limit.".into(),
            Self::ExpiryPastPolicy(days) => format!(
                "This tenant's keys must expire within {days} days of being made; choose an earlier expiry."
            ),
            Self::Finished(status) => format!(
                "This key is {} and can no longer be changed.",
                status.as_str()
            ),
        }
    }
}

/// A rolled key's successor (its secret shown once), and the old key's hash for cache invalidation.
pub struct Rolled {
    pub key: NewKey,
    pub new_id: Uuid,
    pub old_hash: Vec<u8>,
}

/// Rolls a key: a new key with the same settings now, the old one working for `grace` more.
pub async fn roll_key(
    pool: &PgPool,
    config: &Config,
    tenant_id: Uuid,
    api_key_id: Uuid,
    grace: Duration,
    role: Role,
    actor: &Actor,
) -> DomainResult<Result<Rolled, KeyProblem>> {
    let prefix = config.key_prefix.as_str();
    let mut tx = pool.begin().await?;
    let open = |status| matches!(status, Status::Active | Status::Expiring);
    let old = match lock_manageable(&mut tx, tenant_id, api_key_id, role, actor, open).await? {
        Ok(key) => key,
        Err(problem) => return Ok(Err(problem)),
    };
    let now = OffsetDateTime::now_utc();
    let environment = old.environment;
    let mut settings = KeySettings {
        name: KeyName::stored(old.name.clone()),
        environment,
        access: Access::stored(old.full_access, old.scopes.clone()),
        expires_at: old.expires_at,
        rate_limit: u32::try_from(old.rate_limit).unwrap_or(1),
        ip_allowlist: IpAllowlist::stored(&old.ip_allowlist),
        note: old.note.clone(),
        meta: old.meta.clone(),
    };
    // The successor is a new key: it expires within the tenant's maximum lifetime, if any.
    let policy = crate::db::key_policies::get(&mut *tx, tenant_id).await?;
    if let Some(latest) = crate::domain::key_policy::latest_expiry(&policy, now) {
        settings.expires_at = Some(settings.expires_at.map_or(latest, |at| at.min(latest)));
    }
    let key = NewKey::generate(prefix, environment);
    let new_id = insert_key(
        &mut tx,
        tenant_id,
        &key,
        &settings,
        Some(old.api_key_id),
        actor,
    )
    .await?;
    db_keys::mark_rolled(
        &mut *tx,
        tenant_id,
        old.api_key_id,
        actor.user_id,
        now + grace,
    )
    .await?;
    db_keys::notify_changed(&mut *tx, &old.secret_hash).await?;
    tell_creator(
        &mut tx,
        config,
        tenant_id,
        old.api_key_id,
        &old.name,
        old.created_by,
        actor,
        "rolled",
    )
    .await?;
    webhooks::publish(
        &mut tx,
        tenant_id,
        EventType::KeyRolled,
        Some(old.environment),
        json!({
            "key": key_event(old.api_key_id, &old.name, old.environment, &masked(prefix, old.environment, &old.last_four)),
            "successor": key_event(new_id, &old.name, old.environment, &masked(prefix, old.environment, &key.last_four())),
            "old_key_works_until": webhooks::rfc3339(now + grace),
            "actor": actor.describe(),
        }),
    )
    .await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "key.rolled",
            key_target(&old.name, &masked(prefix, old.environment, &old.last_four)),
            json!({
                "new_key": masked(prefix, old.environment, &key.last_four()),
                "grace": grace_label(grace),
            }),
        )
        .await?;
    Ok(Ok(Rolled {
        key,
        new_id,
        old_hash: old.secret_hash,
    }))
}

/// Mails the key's creator when someone else rolled or revoked it (a security notice), in the
/// change's transaction.
#[allow(clippy::too_many_arguments)]
async fn tell_creator(
    tx: &mut sqlx::PgConnection,
    config: &Config,
    tenant_id: Uuid,
    api_key_id: Uuid,
    key_name: &str,
    created_by: Option<Uuid>,
    actor: &Actor,
    action: &str,
) -> DomainResult<()> {
    let Some(creator) = created_by.filter(|creator| Some(*creator) != actor.user_id) else {
        return Ok(());
    };
    // A management token acting: the notice names no person.
    let Some(acting) = actor.user_id else {
        return Ok(());
    };
    let Some(facts) = reminders::key_notice_facts(&mut *tx, tenant_id, creator, acting).await?
    else {
        return Ok(());
    };
    let notice = Mail::KeyChanged {
        name: facts.name,
        tenant: facts.tenant_name,
        key_name: key_name.to_owned(),
        action: action.to_owned(),
        by: facts.actor_name,
        link: config
            .public_url
            .link(&format!("/t/{}/keys/{api_key_id}", facts.tenant_slug)),
    };
    mail::send(&mut *tx, &facts.email, notice).await?;
    Ok(())
}

pub fn grace_label(grace: Duration) -> String {
    match grace.whole_hours() {
        0 => "none".into(),
        1 => "1 hour".into(),
        hours if hours < 48 => format!("{hours} hours"),
        hours => format!("{} days", hours / 24),
    }
}

/// Revokes a key at once; every instance drops it from its cache. Returns the key's hash, so the
/// caller can drop it from this instance's cache without waiting for the notification.
pub async fn revoke_key(
    pool: &PgPool,
    config: &Config,
    tenant_id: Uuid,
    api_key_id: Uuid,
    role: Role,
    actor: &Actor,
) -> DomainResult<Result<Vec<u8>, KeyProblem>> {
    let prefix = config.key_prefix.as_str();
    let mut tx = pool.begin().await?;
    let open = |status| status != Status::Revoked;
    let key = match lock_manageable(&mut tx, tenant_id, api_key_id, role, actor, open).await? {
        Ok(key) => key,
        Err(problem) => return Ok(Err(problem)),
    };
    db_keys::revoke(&mut *tx, tenant_id, api_key_id, actor.user_id).await?;
    db_keys::notify_changed(&mut *tx, &key.secret_hash).await?;
    tell_creator(
        &mut tx,
        config,
        tenant_id,
        key.api_key_id,
        &key.name,
        key.created_by,
        actor,
        "revoked",
    )
    .await?;
    webhooks::publish(
        &mut tx,
        tenant_id,
        EventType::KeyRevoked,
        Some(key.environment),
        json!({
            "key": key_event(api_key_id, &key.name, key.environment, &masked(prefix, key.environment, &key.last_four)),
            "actor": actor.describe(),
        }),
    )
    .await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "key.revoked",
            key_target(&key.name, &masked(prefix, key.environment, &key.last_four)),
            json!({}),
        )
        .await?;
    Ok(Ok(key.secret_hash))
}

/// The most characters a key's note may have.
pub const NOTE_MAX_CHARS: usize = 500;
/// The most bytes a key's metadata may take, as compact JSON.
pub const META_MAX_BYTES: usize = 1024;

/// A key's note: for the people who manage the key (never sent to the platform).
pub fn parse_note(input: &str) -> Result<String, String> {
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

/// A key's metadata as typed: empty for none, else a JSON object.
pub fn parse_meta(input: &str) -> Result<serde_json::Value, String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(json!({}));
    }
    let value: serde_json::Value = serde_json::from_str(input).map_err(|err| {
        format!(
            "Metadata must be a JSON object like {{\"plan\": \"pro\"}}: {err} (line {}, column {}).",
            err.line(),
            err.column()
        )
    })?;
    check_meta(value)
}

/// Metadata as a JSON value (the management API's `meta`): an object of at most 1 KB.
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

/// A change to a key; `None` leaves a field as it is. The portal's edit form and the management
/// API both make one and hand it to [`edit_key`], which holds the rules.
#[derive(Debug, Clone, Default)]
pub struct KeyEdit {
    pub name: Option<KeyName>,
    pub note: Option<String>,
    pub access: Option<Access>,
    /// Admins only.
    pub rate_limit: Option<u32>,
    /// `Some(None)`: never expires.
    pub expires_at: Option<Option<OffsetDateTime>>,
    pub meta: Option<serde_json::Value>,
    pub ip_allowlist: Option<IpAllowlist>,
    pub disabled: Option<bool>,
}

/// The edit form as typed.
#[derive(Debug, Default, Clone)]
pub struct EditInput {
    pub name: String,
    pub note: String,
    pub access: String,
    pub scopes: Vec<String>,
    /// `keep`, or one of [`EXPIRY_CHOICES`].
    pub expiry: String,
    pub expiry_date: String,
    /// Empty: unchanged.
    pub rate_limit: String,
    pub meta: String,
    pub ip_allowlist: String,
}

/// What went wrong in the edit form, per field.
#[derive(Debug, Default)]
pub struct EditErrors {
    pub name: Option<String>,
    pub note: Option<String>,
    pub scopes: Option<String>,
    pub expiry: Option<String>,
    pub rate_limit: Option<String>,
    pub meta: Option<String>,
    pub ip_allowlist: Option<String>,
}

impl EditErrors {
    /// A refusal of [`edit_key`] that belongs to a field of the form.
    pub fn from_problem(problem: &KeyProblem) -> Option<Self> {
        let message = Some(problem.message());
        match problem {
            KeyProblem::RateLimitForAdmins => Some(Self {
                rate_limit: message,
                ..Self::default()
            }),
            KeyProblem::ExpiryPastPolicy(_) => Some(Self {
                expiry: message,
                ..Self::default()
            }),
            KeyProblem::NotYours | KeyProblem::Finished(_) => None,
        }
    }
}

/// Validates the edit form into a change of every field it shows (an unchanged field changes
/// nothing: [`edit_key`] compares).
#[allow(clippy::result_large_err)]
pub fn validate_edit(input: &EditInput, catalogue: &[String]) -> Result<KeyEdit, EditErrors> {
    let mut errors = EditErrors::default();
    let name = KeyName::parse(&input.name)
        .map_err(|e| errors.name = Some(e))
        .ok();
    let note = parse_note(&input.note)
        .map_err(|e| errors.note = Some(e))
        .ok();
    let as_new = KeyInput {
        access: input.access.clone(),
        scopes: input.scopes.clone(),
        ..KeyInput::default()
    };
    let access = access(&as_new, catalogue)
        .map_err(|e| errors.scopes = Some(e))
        .ok();
    let expires_at = match input.expiry.as_str() {
        "keep" | "" => Some(None),
        choice => Expiry::parse(choice, &input.expiry_date)
            .map_err(|e| errors.expiry = Some(e))
            .ok()
            .map(|expiry| Some(expiry.at(OffsetDateTime::now_utc()))),
    };
    let rate_limit = match input.rate_limit.trim() {
        "" => Some(None),
        typed => match typed.parse::<u32>() {
            Ok(limit) if (1..=1_000_000).contains(&limit) => Some(Some(limit)),
            _ => {
                errors.rate_limit =
                    Some("Enter a whole number of requests per minute from 1 to 1000000.".into());
                None
            }
        },
    };
    let meta = parse_meta(&input.meta)
        .map_err(|e| errors.meta = Some(e))
        .ok();
    let ip_allowlist = IpAllowlist::parse(&input.ip_allowlist)
        .map_err(|e| errors.ip_allowlist = Some(e))
        .ok();
    match (
        name,
        note,
        access,
        expires_at,
        rate_limit,
        meta,
        ip_allowlist,
    ) {
        (
            Some(name),
            Some(note),
            Some(access),
            Some(expires_at),
            Some(rate_limit),
            Some(meta),
            Some(ip_allowlist),
        ) => Ok(KeyEdit {
            name: Some(name),
            note: Some(note),
            access: Some(access),
            rate_limit,
            expires_at,
            meta: Some(meta),
            ip_allowlist: Some(ip_allowlist),
            disabled: None,
        }),
        _ => Err(errors),
    }
}

/// A key after an edit: its hash (to drop it from this instance's cache at once) and what changed.
#[derive(Debug)]
pub struct Edited {
    pub secret_hash: Vec<u8>,
    /// The names of the fields that changed; empty when the edit changed nothing.
    pub changed: Vec<&'static str>,
}

/// One field's change, for the audit trail: `old → new`.
fn change(
    changes: &mut serde_json::Map<String, serde_json::Value>,
    field: &'static str,
    old: impl std::fmt::Display,
    new: impl std::fmt::Display,
) {
    changes.insert(field.into(), json!(format!("{old} → {new}")));
}

fn expiry_label(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "never".to_owned(), webhooks::rfc3339)
}

/// Changes a key (its creator or an admin; the rate limit admins only; the expiry within the
/// tenant's maximum key lifetime). Audited with every field's old and new value, announced to
/// every instance's cache, and `key.disabled` published when it is disabled.
pub async fn edit_key(
    pool: &PgPool,
    config: &Config,
    tenant_id: Uuid,
    api_key_id: Uuid,
    edit: &KeyEdit,
    role: Role,
    actor: &Actor,
) -> DomainResult<Result<Edited, KeyProblem>> {
    let prefix = config.key_prefix.as_str();
    let mut tx = pool.begin().await?;
    let open = |status| !matches!(status, Status::Revoked | Status::Expired);
    let key = match lock_manageable(&mut tx, tenant_id, api_key_id, role, actor, open).await? {
        Ok(key) => key,
        Err(problem) => return Ok(Err(problem)),
    };
    let max_lifetime_days = crate::db::key_policies::get(&mut *tx, tenant_id)
        .await?
        .max_key_lifetime_days;
    let mut changes = serde_json::Map::new();
    let mut changed = Vec::new();

    let name = edit
        .name
        .as_ref()
        .map_or(key.name.as_str(), KeyName::as_str);
    if name != key.name {
        change(&mut changes, "name", &key.name, name);
        changed.push("name");
    }
    let note = edit.note.as_deref().unwrap_or(&key.note);
    if note != key.note {
        let shown = |note: &str| {
            if note.is_empty() {
                "(none)".to_owned()
            } else {
                note.to_owned()
            }
        };
        change(&mut changes, "note", shown(&key.note), shown(note));
        changed.push("note");
    }
    let old_access = Access::stored(key.full_access, key.scopes.clone());
    let access = edit.access.clone().unwrap_or_else(|| old_access.clone());
    if access != old_access {
        change(&mut changes, "scopes", old_access.label(), access.label());
        changed.push("scopes");
    }
    let rate_limit = edit.rate_limit.map_or(key.rate_limit, |limit| {
        i32::try_from(limit).unwrap_or(i32::MAX)
    });
    if rate_limit != key.rate_limit {
        if role < Role::Admin {
            return Ok(Err(KeyProblem::RateLimitForAdmins));
        }
        change(&mut changes, "rate_limit", key.rate_limit, rate_limit);
        changed.push("rate_limit");
    }
    // A rolled key's expiry is the end of its grace: an edit cannot stretch it.
    let expires_at = match edit.expires_at {
        Some(_) if key.rolled_at.is_some() => key.expires_at,
        Some(at) => at,
        None => key.expires_at,
    };
    if expires_at != key.expires_at {
        if let Some(days) = max_lifetime_days.map(i64::from) {
            let latest = key.created_at + Duration::days(days);
            if expires_at.is_none_or(|at| at > latest) {
                return Ok(Err(KeyProblem::ExpiryPastPolicy(days)));
            }
        }
        change(
            &mut changes,
            "expires",
            expiry_label(key.expires_at),
            expiry_label(expires_at),
        );
        changed.push("expires");
    }
    let meta = edit.meta.as_ref().unwrap_or(&key.meta);
    if *meta != key.meta {
        change(&mut changes, "meta", &key.meta, meta);
        changed.push("meta");
    }
    let old_allowlist = IpAllowlist::stored(&key.ip_allowlist);
    let allowlist = edit.ip_allowlist.as_ref().unwrap_or(&old_allowlist);
    if allowlist.entries() != key.ip_allowlist {
        change(
            &mut changes,
            "ip_allowlist",
            old_allowlist.label(),
            allowlist.label(),
        );
        changed.push("ip_allowlist");
    }
    let was_disabled = key.disabled_at.is_some();
    let disabled = edit.disabled.unwrap_or(was_disabled);
    if disabled != was_disabled {
        let label = |disabled: bool| if disabled { "disabled" } else { "enabled" };
        change(&mut changes, "state", label(was_disabled), label(disabled));
        changed.push("state");
    }
    if changed.is_empty() {
        return Ok(Ok(Edited {
            secret_hash: key.secret_hash,
            changed,
        }));
    }

    db_keys::update(
        &mut *tx,
        tenant_id,
        api_key_id,
        &db_keys::KeyUpdate {
            name,
            note,
            full_access: access.is_full(),
            scopes: access.chosen(),
            rate_limit,
            expires_at,
            meta,
            ip_allowlist: &allowlist.entries(),
            disabled,
            changed_by: actor.user_id,
        },
    )
    .await?;
    db_keys::notify_changed(&mut *tx, &key.secret_hash).await?;
    let masked_key = masked(prefix, key.environment, &key.last_four);
    if disabled && !was_disabled {
        webhooks::publish(
            &mut tx,
            tenant_id,
            EventType::KeyDisabled,
            Some(key.environment),
            json!({
                "key": key_event(api_key_id, name, key.environment, &masked_key),
                "actor": { "id": actor.user_id },
            }),
        )
        .await?;
    }
    let action = match (was_disabled, disabled) {
        (false, true) => "key.disabled",
        (true, false) => "key.enabled",
        _ => "key.updated",
    };
    actor
        .commit_with_event(
            tx,
            tenant_id,
            action,
            key_target(name, &masked_key),
            serde_json::Value::Object(changes),
        )
        .await?;
    Ok(Ok(Edited {
        secret_hash: key.secret_hash,
        changed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(access_choice: &str, scopes: &[&str]) -> Result<Access, String> {
        let input = KeyInput {
            access: access_choice.into(),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            ..KeyInput::default()
        };
        access(&input, &["read".to_owned(), "write".to_owned()])
    }

    #[test]
    fn access_is_what_was_chosen_and_never_widened() {
        assert_eq!(asking("full", &[]), Ok(Access::Full));
        assert_eq!(
            asking("scopes", &["read"]),
            Ok(Access::Scopes(vec!["read".into()]))
        );
        assert_eq!(
            asking("", &["read"]),
            Ok(Access::Scopes(vec!["read".into()]))
        );
        assert!(asking("full", &["read"]).unwrap_err().contains("not both"));
        assert!(asking("scopes", &[]).is_err());
        assert!(asking("", &[]).is_err());
        assert!(asking("everything", &[]).is_err());
        assert!(
            asking("scopes", &["admin"])
                .unwrap_err()
                .contains("not a scope")
        );
        assert_eq!(Access::Full.label(), "Full access");
    }

    #[test]
    fn statuses_follow_time_revocation_and_rolling() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(Status::of(now, None, None, None, None), Status::Active);
        assert_eq!(
            Status::of(now, Some(now + Duration::days(3)), None, None, None),
            Status::Expiring
        );
        assert_eq!(
            Status::of(now, Some(now - Duration::seconds(1)), None, None, Some(now)),
            Status::Expired
        );
        assert_eq!(
            Status::of(now, Some(now + Duration::hours(1)), None, Some(now), None),
            Status::Rolled
        );
        assert_eq!(
            Status::of(now, None, Some(now), None, None),
            Status::Revoked
        );
        assert_eq!(
            Status::of(now, None, None, Some(now), Some(now)),
            Status::Disabled
        );
        assert!(!Status::Disabled.works());
        assert!(Status::Rolled.works() && !Status::Expired.works() && !Status::Revoked.works());
    }

    #[test]
    fn metadata_is_a_small_json_object() {
        assert_eq!(parse_meta("").unwrap(), json!({}));
        assert_eq!(
            parse_meta(r#" {"plan": "pro", "customer": 42} "#).unwrap(),
            json!({"plan": "pro", "customer": 42})
        );
        assert!(parse_meta("[1, 2]").unwrap_err().contains("JSON object"));
        assert!(parse_meta("{\"plan\": ").unwrap_err().contains("line 1"));
        let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1100));
        assert!(parse_meta(&big).unwrap_err().contains("1024 bytes"));
    }

    #[test]
    fn notes_are_bounded_and_keep_their_lines() {
        assert_eq!(
            parse_note(" used by CI\r\nsee runbook ").unwrap(),
            "used by CI\nsee runbook"
        );
        assert!(parse_note(&"x".repeat(501)).is_err());
        assert!(parse_note("bell\u{7}").is_err());
    }

    #[test]
    fn expiry_and_grace_choices_parse() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(Expiry::parse("never", "").unwrap().at(now), None);
        assert_eq!(
            Expiry::parse("30", "").unwrap().at(now),
            Some(now + Duration::days(30))
        );
        assert!(Expiry::parse("date", "2000-01-01").is_err());
        assert!(Expiry::parse("date", "soon").is_err());
        assert!(Expiry::parse("date", "2999-12-31").is_ok());
        assert!(Expiry::parse("12", "").is_err());
        assert_eq!(parse_grace("1h").unwrap(), Duration::hours(1));
        assert!(parse_grace("2h").is_err());
    }
}
