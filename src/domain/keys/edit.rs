//! Changing a key's settings ([`edit_key`]): the same rules as a new key's, plus who may change
//! what (the creator or an admin; the rate limit admins only) and the tenant's maximum lifetime
//! counted from when the key was made. Audited field by field.

use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::settings::{
    Access, KeyChangeRequest, KeyErrors, KeyField, KeyName, RATE_LIMIT_ADMINS, check_expiry,
    check_meta, check_note, check_rate_limit,
};
use super::{KeyConfig, Refusal, Requester, Status, key_target, lock_manageable};
use crate::db::key_policies;
use crate::db::keys as db_keys;
use crate::domain::error::DomainResult;
use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::format::masked;
use crate::domain::webhooks::{self, Event, KeyDisabled, KeyRef};
use crate::vocabulary::Role;

/// A change that passed the rules every setting follows on its own; `None` leaves a setting.
#[derive(Debug, Default)]
struct KeyEdit {
    name: Option<KeyName>,
    note: Option<String>,
    access: Option<Access>,
    rate_limit: Option<u32>,
    expires_at: Option<Option<OffsetDateTime>>,
    meta: Option<serde_json::Value>,
    ip_allowlist: Option<IpAllowlist>,
    disabled: Option<bool>,
}

/// The rules each asked-for setting follows on its own (as for a new key).
#[allow(clippy::result_large_err)]
fn check_change(
    change: &KeyChangeRequest,
    catalogue: &[String],
    now: OffsetDateTime,
) -> Result<KeyEdit, KeyErrors> {
    let mut errors = KeyErrors::default();
    let edit = KeyEdit {
        name: errors.take_some(KeyField::Name, change.name.as_deref().map(KeyName::parse)),
        note: errors.take_some(KeyField::Note, change.note.as_deref().map(check_note)),
        access: errors.take_some(
            KeyField::Scopes,
            change.access.as_ref().map(|access| access.check(catalogue)),
        ),
        rate_limit: errors.take_some(
            KeyField::RateLimit,
            change
                .rate_limit
                .clone()
                .map(|limit| limit.and_then(check_rate_limit)),
        ),
        expires_at: errors.take_some(
            KeyField::Expiry,
            change
                .expires_at
                .clone()
                .map(|at| at.and_then(|at| at.map(|at| check_expiry(at, now)).transpose())),
        ),
        meta: errors.take_some(
            KeyField::Meta,
            change.meta.clone().map(|meta| meta.and_then(check_meta)),
        ),
        ip_allowlist: errors.take_some(
            KeyField::IpAllowlist,
            change
                .ip_allowlist
                .as_deref()
                .map(IpAllowlist::from_entries),
        ),
        disabled: change.disabled,
    };
    if errors.is_empty() {
        Ok(edit)
    } else {
        Err(errors)
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

/// Changes a key (its creator or an admin; the rate limit admins only; the expiry in the future and
/// within the tenant's maximum key lifetime). Audited with every field's old and new value,
/// announced to every instance's cache, and `key.disabled` published when it is disabled.
pub async fn edit_key(
    pool: &PgPool,
    config: &KeyConfig,
    tenant_id: Uuid,
    api_key_id: Uuid,
    request: &KeyChangeRequest,
    by: Requester<'_>,
) -> DomainResult<Result<Edited, Refusal>> {
    let edit = match check_change(request, &config.scopes, OffsetDateTime::now_utc()) {
        Ok(edit) => edit,
        Err(errors) => return Ok(Err(errors.into())),
    };
    let prefix = config.key_prefix.as_str();
    let actor = by.actor;
    let mut tx = pool.begin().await?;
    let open = |status| !matches!(status, Status::Revoked | Status::Expired);
    let key = match lock_manageable(&mut tx, tenant_id, api_key_id, by, open).await? {
        Ok(key) => key,
        Err(problem) => return Ok(Err(problem.into())),
    };
    let max_lifetime_days = key_policies::get(&mut *tx, tenant_id)
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
        if by.role < Role::Admin {
            return Ok(Err(
                KeyErrors::of(KeyField::RateLimit, RATE_LIMIT_ADMINS).into()
            ));
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
                return Ok(Err(KeyErrors::of(
                    KeyField::Expiry,
                    format!(
                        "This tenant's keys must expire within {days} days of being made; choose an earlier expiry."
                    ),
                )
                .into()));
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
            changed_by: &actor.by(),
        },
    )
    .await?;
    db_keys::notify_changed(&mut *tx, &key.secret_hash).await?;
    let masked_key = masked(prefix, key.environment, &key.last_four);
    if disabled && !was_disabled {
        let event = Event::KeyDisabled(KeyDisabled {
            key: KeyRef::new(api_key_id, name, key.environment, &masked_key),
            actor: actor.into(),
        });
        webhooks::publish(&mut tx, tenant_id, Some(key.environment), &event).await?;
    }
    let action = match (was_disabled, disabled) {
        (false, true) => "key.disabled",
        (true, false) => "key.enabled",
        _ => "key.updated",
    };
    actor
        .commit_with_key_event(
            tx,
            tenant_id,
            api_key_id,
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
    use crate::domain::keys::AccessChoice;

    #[test]
    fn a_change_follows_the_rules_of_each_setting() {
        let catalogue = ["read".to_owned()];
        let now = OffsetDateTime::now_utc();
        let good = check_change(
            &KeyChangeRequest {
                name: Some(" renamed ".into()),
                rate_limit: Some(Ok(10)),
                ..KeyChangeRequest::default()
            },
            &catalogue,
            now,
        )
        .unwrap();
        assert_eq!(good.name.unwrap().as_str(), "renamed");
        assert_eq!(good.rate_limit, Some(10));
        assert!(good.access.is_none() && good.expires_at.is_none());
        let bad = check_change(
            &KeyChangeRequest {
                access: Some(AccessChoice {
                    full: Some(false),
                    scopes: vec!["admin".into()],
                }),
                rate_limit: Some(Ok(0)),
                expires_at: Some(Ok(Some(now - Duration::hours(1)))),
                meta: Some(Ok(json!("plan"))),
                ip_allowlist: Some(vec!["10.0.0.0/33".into()]),
                ..KeyChangeRequest::default()
            },
            &catalogue,
            now,
        )
        .unwrap_err();
        assert_eq!(bad.all().len(), 5);
    }
}
