//! A tenant's key policy: the longest a new key may live, the IP allowlist new keys start with, and
//! who may create live keys. Admins set it on the settings page; the new-key form, rolls, edits
//! and the keys list follow it.

use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::db::key_policies::{self, KeyPolicy};
use crate::db::tenants as db_tenants;
use crate::domain::audit::Actor;
use crate::domain::error::DomainResult;
use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::{KeyErrors, KeySettings};
use crate::vocabulary::{Environment, LiveKeys, Role};

/// The policy form as typed.
#[derive(Debug, Default, Clone)]
pub struct PolicyInput {
    /// Days; empty for no limit.
    pub max_key_lifetime_days: String,
    pub default_ip_allowlist: String,
    pub live_keys: String,
}

impl PolicyInput {
    /// The form filled with a stored policy.
    pub fn of(policy: &KeyPolicy) -> Self {
        Self {
            max_key_lifetime_days: policy
                .max_key_lifetime_days
                .map(|days| days.to_string())
                .unwrap_or_default(),
            default_ip_allowlist: policy.default_ip_allowlist.join("\n"),
            live_keys: policy.live_keys.as_str().into(),
        }
    }
}

/// What went wrong in the policy form, per field.
#[derive(Debug, Default)]
pub struct PolicyErrors {
    pub max_key_lifetime_days: Option<String>,
    pub default_ip_allowlist: Option<String>,
    pub live_keys: Option<String>,
}

// Per-field messages, made once per form submission: their size costs nothing worth a Box.
#[allow(clippy::result_large_err)]
pub fn validate(input: &PolicyInput) -> Result<KeyPolicy, PolicyErrors> {
    let mut errors = PolicyErrors::default();
    let max_key_lifetime_days = match input.max_key_lifetime_days.trim() {
        "" => Some(None),
        typed => match typed.parse::<i32>() {
            Ok(days) if (1..=3650).contains(&days) => Some(Some(days)),
            _ => {
                errors.max_key_lifetime_days = Some(
                    "Enter a whole number of days from 1 to 3650, or leave it empty for no limit."
                        .into(),
                );
                None
            }
        },
    };
    let allowlist = IpAllowlist::parse(&input.default_ip_allowlist)
        .map_err(|e| errors.default_ip_allowlist = Some(e))
        .ok();
    let live_keys = LiveKeys::parse(&input.live_keys);
    if live_keys.is_none() {
        errors.live_keys = Some("Choose who may create live keys.".into());
    }
    match (max_key_lifetime_days, allowlist, live_keys) {
        (Some(max_key_lifetime_days), Some(allowlist), Some(live_keys)) => Ok(KeyPolicy {
            max_key_lifetime_days,
            default_ip_allowlist: allowlist.entries(),
            live_keys,
        }),
        _ => Err(errors),
    }
}

fn lifetime_label(days: Option<i32>) -> String {
    days.map_or_else(|| "no limit".to_owned(), |days| format!("{days} days"))
}

/// Saves the policy, audited with what changed (`old → new`). False when nothing changed.
pub async fn save_policy(
    pool: &PgPool,
    tenant_id: Uuid,
    policy: &KeyPolicy,
    actor: &Actor,
) -> DomainResult<bool> {
    let mut tx = pool.begin().await?;
    db_tenants::lock_tenant(&mut *tx, tenant_id).await?;
    let old = key_policies::get(&mut *tx, tenant_id).await?;
    let mut changes = serde_json::Map::new();
    if old.max_key_lifetime_days != policy.max_key_lifetime_days {
        changes.insert(
            "max_key_lifetime".into(),
            json!(format!(
                "{} → {}",
                lifetime_label(old.max_key_lifetime_days),
                lifetime_label(policy.max_key_lifetime_days)
            )),
        );
    }
    if old.default_ip_allowlist != policy.default_ip_allowlist {
        changes.insert(
            "default_ip_allowlist".into(),
            json!(format!(
                "{} → {}",
                IpAllowlist::stored(&old.default_ip_allowlist).label(),
                IpAllowlist::stored(&policy.default_ip_allowlist).label()
            )),
        );
    }
    if old.live_keys != policy.live_keys {
        changes.insert(
            "live_keys".into(),
            json!(format!(
                "{} → {}",
                old.live_keys.as_str(),
                policy.live_keys.as_str()
            )),
        );
    }
    if changes.is_empty() {
        return Ok(false);
    }
    key_policies::save(&mut *tx, tenant_id, policy).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "tenant.key_policy_changed",
            "tenant key policy".into(),
            serde_json::Value::Object(changes),
        )
        .await?;
    Ok(true)
}

/// The latest a key made at `made_at` may expire under the policy (None: no limit).
pub fn latest_expiry(policy: &KeyPolicy, made_at: OffsetDateTime) -> Option<OffsetDateTime> {
    policy
        .max_key_lifetime_days
        .map(|days| made_at + Duration::days(i64::from(days)))
}

/// A key that lives longer than the policy now allows (made before the policy, or never expiring):
/// flagged on the keys list.
pub fn over_policy(
    policy: &KeyPolicy,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
) -> bool {
    latest_expiry(policy, created_at)
        .is_some_and(|latest| expires_at.is_none_or(|at| at > latest + Duration::minutes(1)))
}

/// What the policy makes of a valid new-key form.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Make the key now.
    Create,
    /// A developer's live key under "with approval": it waits as a request for an admin.
    NeedsApproval,
}

/// Applies the policy to a new key's settings: its expiry within the maximum lifetime, and who may
/// create live keys. A refusal is a form error on the field it concerns.
#[allow(clippy::result_large_err)]
pub fn admit(
    policy: &KeyPolicy,
    role: Role,
    settings: &KeySettings,
    now: OffsetDateTime,
) -> Result<Admission, KeyErrors> {
    if let Some(latest) = latest_expiry(policy, now) {
        let days = policy.max_key_lifetime_days.unwrap_or_default();
        match settings.expires_at {
            None => {
                return Err(KeyErrors {
                    expiry: Some(format!(
                        "This tenant's keys must expire within {days} days: choose an expiry."
                    )),
                    ..KeyErrors::default()
                });
            }
            Some(at) if at > latest + Duration::minutes(1) => {
                return Err(KeyErrors {
                    expiry: Some(format!(
                        "This tenant's keys must expire within {days} days: choose an earlier expiry."
                    )),
                    ..KeyErrors::default()
                });
            }
            Some(_) => {}
        }
    }
    if settings.environment == Environment::Live && role < Role::Admin {
        match policy.live_keys {
            LiveKeys::Anyone => {}
            LiveKeys::Admins => {
                return Err(KeyErrors {
                    environment: Some(
                        "In this tenant only admins create live keys. Test keys work meanwhile."
                            .into(),
                    ),
                    ..KeyErrors::default()
                });
            }
            LiveKeys::Approval => return Ok(Admission::NeedsApproval),
        }
    }
    Ok(Admission::Create)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::{Access, KeyName};

    fn settings(environment: Environment, expires_at: Option<OffsetDateTime>) -> KeySettings {
        KeySettings {
            name: KeyName::parse("ci").unwrap(),
            environment,
            access: Access::Full,
            expires_at,
            rate_limit: 10,
            ip_allowlist: IpAllowlist::default(),
            note: String::new(),
            meta: json!({}),
        }
    }

    fn policy(days: Option<i32>, live_keys: LiveKeys) -> KeyPolicy {
        KeyPolicy {
            max_key_lifetime_days: days,
            default_ip_allowlist: vec![],
            live_keys,
        }
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn new_keys_must_expire_within_the_maximum_lifetime() {
        let now = OffsetDateTime::now_utc();
        let ninety = policy(Some(90), LiveKeys::Anyone);
        let admit = |expires| {
            admit(
                &ninety,
                Role::Admin,
                &settings(Environment::Test, expires),
                now,
            )
        };
        assert!(admit(None).unwrap_err().expiry.unwrap().contains("90 days"));
        assert!(admit(Some(now + Duration::days(91))).is_err());
        assert_eq!(
            admit(Some(now + Duration::days(90))).unwrap(),
            Admission::Create
        );
        let none = policy(None, LiveKeys::Anyone);
        assert_eq!(
            super::admit(
                &none,
                Role::Developer,
                &settings(Environment::Live, None),
                now
            )
            .unwrap(),
            Admission::Create
        );
    }

    #[test]
    fn who_may_create_live_keys_follows_the_policy() {
        let now = OffsetDateTime::now_utc();
        let live = settings(Environment::Live, None);
        let test = settings(Environment::Test, None);
        let admins = policy(None, LiveKeys::Admins);
        assert!(
            admit(&admins, Role::Developer, &live, now)
                .unwrap_err()
                .environment
                .is_some()
        );
        assert_eq!(
            admit(&admins, Role::Developer, &test, now).unwrap(),
            Admission::Create
        );
        assert_eq!(
            admit(&admins, Role::Admin, &live, now).unwrap(),
            Admission::Create
        );
        let approval = policy(None, LiveKeys::Approval);
        assert_eq!(
            admit(&approval, Role::Developer, &live, now).unwrap(),
            Admission::NeedsApproval
        );
        assert_eq!(
            admit(&approval, Role::Admin, &live, now).unwrap(),
            Admission::Create
        );
    }

    #[test]
    fn keys_living_longer_than_the_policy_are_flagged() {
        let made = OffsetDateTime::now_utc();
        let thirty = policy(Some(30), LiveKeys::Anyone);
        assert!(over_policy(&thirty, made, None));
        assert!(over_policy(&thirty, made, Some(made + Duration::days(31))));
        assert!(!over_policy(&thirty, made, Some(made + Duration::days(30))));
        assert!(!over_policy(&policy(None, LiveKeys::Anyone), made, None));
    }

    #[test]
    fn the_policy_form_is_validated_per_field() {
        let input = PolicyInput {
            max_key_lifetime_days: "0".into(),
            default_ip_allowlist: "10.0.0.0/8, nonsense".into(),
            live_keys: "everyone".into(),
        };
        let errors = validate(&input).unwrap_err();
        assert!(errors.max_key_lifetime_days.is_some());
        assert!(
            errors
                .default_ip_allowlist
                .unwrap()
                .contains("\"nonsense\"")
        );
        assert!(errors.live_keys.is_some());
        let policy = validate(&PolicyInput {
            max_key_lifetime_days: " 90 ".into(),
            default_ip_allowlist: "10.9.9.9/8".into(),
            live_keys: "approval".into(),
        })
        .unwrap();
        assert_eq!(policy.max_key_lifetime_days, Some(90));
        assert_eq!(policy.default_ip_allowlist, ["10.0.0.0/8"]);
        assert_eq!(policy.live_keys, LiveKeys::Approval);
    }
}
