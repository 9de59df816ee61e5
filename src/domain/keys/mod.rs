//! API keys: the rulebook every door calls. A door (the portal's forms, the management API, import,
//! an approved request) translates its input into a typed request ([`NewKeyRequest`],
//! [`KeyChangeRequest`], a grace for a roll) and calls one function per action ([`admit`] then
//! [`create_key`], [`edit_key`], [`roll_key`], [`revoke_key`]), which applies every rule and names
//! the actor. Refusals come back typed, per field ([`KeyErrors`]) or about the key ([`KeyProblem`]).

pub mod allowlist;
mod edit;
pub mod format;
pub mod import;
mod lifecycle;
pub mod policy;
pub mod requests;
mod settings;
mod status;

pub use edit::{Edited, edit_key};
pub use lifecycle::{
    Admission, Admitted, LIVE_NEEDS_CONFIRMED_EMAIL, MAX_GRACE, Pending, Rolled, Rules, admit,
    create_in, create_key, grace_label, revoke_key, roll_key,
};
pub use settings::{
    Access, AccessChoice, KeyChangeRequest, KeyErrors, KeyField, KeyName, KeySettings,
    META_MAX_BYTES, NOTE_MAX_CHARS, NewKeyRequest, RATE_LIMIT_ADMINS, RATE_LIMIT_BOUNDS,
    RATE_LIMIT_MESSAGE, Read, check_expiry, check_meta, check_note, check_rate_limit,
    meta_from_text,
};
pub use status::Status;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::keys::{self as db_keys, NewKeyRow};
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::vocabulary::PublicUrl;
use crate::vocabulary::Role;

/// What the key rules take from the deployment's configuration (the configuration is the outer
/// layer: it hands these values in, `Config::keys`).
#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// The `ak` of `ak_live_…`.
    pub key_prefix: String,
    /// The scope catalogue (`GATEHOUSE_SCOPES`).
    pub scopes: Vec<String>,
    /// A new key's rate limit when none is chosen, per environment.
    pub rate_limit_live: u32,
    pub rate_limit_test: u32,
    /// For links in mails.
    pub public_url: PublicUrl,
}

/// Who asks for a change, and the role they act with in the tenant (a management or operator token
/// acts as a tenant admin).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub actor: &'a Actor,
    pub role: Role,
}

impl<'a> Requester<'a> {
    /// A machine acting through the management API: a tenant admin's powers.
    pub fn machine(actor: &'a Actor) -> Self {
        Self {
            actor,
            role: Role::Admin,
        }
    }
}

/// Why a key cannot be changed, rolled or revoked now (apart from a bad setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    NotYours,
    Finished(Status),
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
            Self::Finished(status) => format!(
                "This key is {} and can no longer be changed.",
                status.as_str()
            ),
        }
    }
}

/// A refusal of a change to an existing key: a setting the rules refuse, or the key itself.
// Made once per refused request: the size of the per-field messages costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Invalid(KeyErrors),
    Problem(KeyProblem),
}

impl From<KeyErrors> for Refusal {
    fn from(errors: KeyErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl From<KeyProblem> for Refusal {
    fn from(problem: KeyProblem) -> Self {
        Self::Problem(problem)
    }
}

/// Who may change, roll or revoke a key: admins any key of the tenant, developers their own.
pub fn may_manage(role: Role, user_id: Option<Uuid>, created_by: Option<Uuid>) -> bool {
    role >= Role::Admin
        || (role >= Role::Developer && created_by.is_some() && created_by == user_id)
}

/// Locks the key's row (so changes cannot interleave) and loads it, if the requester may manage it
/// and its status now is one `open` accepts for the change at hand.
async fn lock_manageable(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    api_key_id: Uuid,
    by: Requester<'_>,
    open: impl Fn(Status) -> bool,
) -> DomainResult<Result<db_keys::Key, KeyProblem>> {
    db_keys::lock(&mut *tx, tenant_id, api_key_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let key = db_keys::get(&mut *tx, tenant_id, api_key_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if !may_manage(by.role, by.actor.user_id(), key.created_by) {
        return Ok(Err(KeyProblem::NotYours));
    }
    let status = key.status;
    if !open(status) {
        return Ok(Err(KeyProblem::Finished(status)));
    }
    Ok(Ok(key))
}

/// How audit events name a key.
fn key_target(name: &str, masked: &str) -> String {
    format!("key:{name} ({masked})")
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
            created_by: &actor.by(),
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
