//! A key's life: admitted by the rules ([`admit`]), created, rolled into a successor, revoked. Each
//! step is audited, announced to webhooks and every instance's cache, and names its actor.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::settings::{KeyErrors, KeyField, KeyName, KeySettings, NewKeyRequest};
use super::{
    KeyConfig, KeyProblem, Refusal, Requester, Status, StoredSecret, insert_row, key_target,
    lock_manageable,
};
use crate::db::key_policies::{self, KeyPolicy};
use crate::db::keys as db_keys;
use crate::db::{reminders, users};
use crate::domain::audit::{Actor, Who};
use crate::domain::error::DomainResult;
use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::format::{NewKey, masked};
use crate::domain::keys::policy as key_policy;
use crate::domain::mail::{self, Mail};
use crate::domain::webhooks::{self, Event, EventTime, KeyCreated, KeyRef, KeyRevoked, KeyRolled};
use crate::vocabulary::{Environment, Role};

/// What is said when an account without a confirmed email address asks for a live key (or a
/// management token made by one does).
pub const LIVE_NEEDS_CONFIRMED_EMAIL: &str = "Live keys need a confirmed email address: follow \
     the link we mailed you (your account page sends it again). Test keys work meanwhile.";

/// A new key that passed every rule: only [`admit`] makes one, and [`create_key`] takes it.
#[derive(Debug)]
pub struct Admitted {
    tenant_id: Uuid,
    settings: KeySettings,
}

impl Admitted {
    pub fn settings(&self) -> &KeySettings {
        &self.settings
    }
}

/// A developer's live key under the policy "with an admin's approval": it passed every rule and
/// waits as a request (`key_requests::request_key`) until an admin decides.
#[derive(Debug)]
pub struct Pending {
    pub(crate) tenant_id: Uuid,
    pub(crate) settings: KeySettings,
}

impl Pending {
    pub fn settings(&self) -> &KeySettings {
        &self.settings
    }
}

/// What the rules make of a new key.
#[derive(Debug)]
pub enum Admission {
    Create(Admitted),
    NeedsApproval(Pending),
}

/// What the rules of a new key depend on besides the request: the deployment's catalogue and
/// defaults, the tenant's policy, and who asks. Loaded once ([`Rules::load`]) for many keys.
pub struct Rules {
    tenant_id: Uuid,
    catalogue: Vec<String>,
    default_limit_live: u32,
    default_limit_test: u32,
    policy: KeyPolicy,
    role: Role,
    email_confirmed: bool,
    /// An admin already approved this key (its request is being revealed).
    approved: bool,
    now: OffsetDateTime,
}

impl Rules {
    pub async fn load(
        conn: &mut PgConnection,
        config: &KeyConfig,
        tenant_id: Uuid,
        by: Requester<'_>,
        approved: bool,
    ) -> DomainResult<Self> {
        let policy = key_policies::get(&mut *conn, tenant_id).await?;
        let email_confirmed = match (&by.actor.who, by.actor.answerable()) {
            (Who::Operator, _) => true,
            (_, Some(person)) => users::find_by_id(&mut *conn, person)
                .await?
                .is_some_and(|user| user.is_verified()),
            (_, None) => false,
        };
        Ok(Self {
            tenant_id,
            catalogue: config.scopes.clone(),
            default_limit_live: config.rate_limit_live,
            default_limit_test: config.rate_limit_test,
            policy,
            role: by.role,
            email_confirmed,
            approved,
            now: OffsetDateTime::now_utc(),
        })
    }

    /// What the rules make of `request` (see [`admit`]).
    #[allow(clippy::result_large_err)]
    pub fn admit(&self, request: &NewKeyRequest) -> Result<Admission, KeyErrors> {
        let (settings, needs_approval) = check_new(request, self)?;
        let tenant_id = self.tenant_id;
        Ok(if needs_approval {
            Admission::NeedsApproval(Pending {
                tenant_id,
                settings,
            })
        } else {
            Admission::Create(Admitted {
                tenant_id,
                settings,
            })
        })
    }
}

/// Applies every rule to a new key: the name, the environment and who may have a live key (a
/// confirmed email; the tenant's policy: anyone, admins only, or with approval), the scope
/// catalogue, the expiry (in the future, within the tenant's maximum lifetime), the rate limit
/// (its bounds; only admins choose one), the allowlist (its syntax; the tenant's default when none
/// is given), the note and the metadata. Every door calls this; none decides anything itself.
pub async fn admit(
    conn: &mut PgConnection,
    config: &KeyConfig,
    tenant_id: Uuid,
    request: &NewKeyRequest,
    by: Requester<'_>,
    approved: bool,
) -> DomainResult<Result<Admission, KeyErrors>> {
    let rules = Rules::load(conn, config, tenant_id, by, approved).await?;
    Ok(rules.admit(request))
}

/// The rules of [`admit`], on what they depend on: the settings, and whether an admin must approve.
#[allow(clippy::result_large_err)]
fn check_new(request: &NewKeyRequest, context: &Rules) -> Result<(KeySettings, bool), KeyErrors> {
    let mut errors = KeyErrors::default();
    let name = errors.take(KeyField::Name, KeyName::parse(&request.name));
    let environment = errors.take(KeyField::Environment, request.environment.clone());
    if environment == Some(Environment::Live) && !context.email_confirmed {
        errors.set(KeyField::Environment, LIVE_NEEDS_CONFIRMED_EMAIL.into());
    }
    let access = errors.take(KeyField::Scopes, request.access.check(&context.catalogue));
    let expires_at = errors.take(
        KeyField::Expiry,
        request.expires_at.clone().and_then(|at| {
            at.map(|at| super::check_expiry(at, context.now))
                .transpose()
        }),
    );
    let rate_limit = errors.take(
        KeyField::RateLimit,
        request.rate_limit.clone().and_then(|limit| match limit {
            None => Ok(match environment {
                Some(Environment::Test) => context.default_limit_test,
                _ => context.default_limit_live,
            }),
            Some(_) if context.role < Role::Admin => Err(super::RATE_LIMIT_ADMINS.into()),
            Some(limit) => super::check_rate_limit(limit),
        }),
    );
    let ip_allowlist = errors.take(
        KeyField::IpAllowlist,
        match &request.ip_allowlist {
            None => Ok(IpAllowlist::stored(&context.policy.default_ip_allowlist)),
            Some(entries) => IpAllowlist::from_entries(entries),
        },
    );
    let note = errors.take(KeyField::Note, super::check_note(&request.note));
    let meta = errors.take(
        KeyField::Meta,
        request.meta.clone().and_then(|meta| match meta {
            None => Ok(json!({})),
            Some(meta) => super::check_meta(meta),
        }),
    );
    // Every setting is there exactly when no field was refused.
    let settings = (|| {
        Some(KeySettings {
            name: name?,
            environment: environment?,
            access: access?,
            expires_at: expires_at?,
            rate_limit: rate_limit?,
            ip_allowlist: ip_allowlist?,
            note: note?,
            meta: meta?,
        })
    })();
    let settings = match settings {
        Some(settings) if errors.is_empty() => settings,
        _ => return Err(errors),
    };
    let needs_approval =
        match key_policy::admit(&context.policy, context.role, &settings, context.now)? {
            key_policy::Admission::Create => false,
            key_policy::Admission::NeedsApproval => !context.approved,
        };
    Ok((settings, needs_approval))
}

/// Creates an admitted key; the returned `NewKey` is the only copy of the secret.
pub async fn create_key(
    pool: &PgPool,
    prefix: &str,
    admitted: Admitted,
    actor: &Actor,
) -> DomainResult<(NewKey, Uuid)> {
    let mut tx = pool.begin().await?;
    let created = create_in(&mut tx, prefix, &admitted, actor).await?;
    tx.commit().await?;
    Ok(created)
}

/// Creates an admitted key in the caller's transaction: the row, `key.created` (webhook and audit
/// event).
pub async fn create_in(
    tx: &mut PgConnection,
    prefix: &str,
    admitted: &Admitted,
    actor: &Actor,
) -> DomainResult<(NewKey, Uuid)> {
    let Admitted {
        tenant_id,
        settings,
    } = admitted;
    let tenant_id = *tenant_id;
    let key = NewKey::generate(prefix, settings.environment);
    let id = insert_key(&mut *tx, tenant_id, &key, settings, None, actor).await?;
    let masked_key = masked(prefix, settings.environment, &key.last_four());
    let event = Event::KeyCreated(KeyCreated {
        key: KeyRef::new(
            id,
            settings.name.as_str(),
            settings.environment,
            &masked_key,
        ),
        full_access: settings.access.is_full(),
        scopes: settings.access.chosen().to_vec(),
        rate_limit: settings.rate_limit,
        expires_at: settings.expires_at.map(EventTime),
        actor: actor.into(),
    });
    webhooks::publish(&mut *tx, tenant_id, Some(settings.environment), &event).await?;
    let details = json!({
        "environment": settings.environment.as_str(),
        "scopes": settings.access.label(),
        "rate_limit": settings.rate_limit,
        "expires": settings.expires_at.map_or_else(|| "never".to_owned(), |at| at.date().to_string()),
        "ip_allowlist": settings.ip_allowlist.label(),
    });
    let target = key_target(settings.name.as_str(), &masked_key);
    let event = crate::db::audit::NewEvent {
        api_key_id: Some(id),
        ..actor.event(tenant_id, "key.created", target, details)
    };
    crate::db::audit::insert(&mut *tx, &event).await?;
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

/// A rolled key's successor (its secret shown once), and the old key's hash for cache invalidation.
pub struct Rolled {
    pub key: NewKey,
    pub new_id: Uuid,
    pub old_hash: Vec<u8>,
}

/// The longest a rolled key keeps working beside its successor.
pub const MAX_GRACE: Duration = Duration::days(7);

/// Rolls a key: a new key with the same settings now, the old one working for `grace` more (at
/// most [`MAX_GRACE`]). The successor expires within the tenant's maximum lifetime.
pub async fn roll_key(
    pool: &PgPool,
    config: &KeyConfig,
    tenant_id: Uuid,
    api_key_id: Uuid,
    grace: Duration,
    by: Requester<'_>,
) -> DomainResult<Result<Rolled, Refusal>> {
    if grace.is_negative() || grace > MAX_GRACE {
        return Ok(Err(KeyErrors::of(
            KeyField::Grace,
            "The old key keeps working from no time at all up to 7 days (604800 seconds).",
        )
        .into()));
    }
    let prefix = config.key_prefix.as_str();
    let actor = by.actor;
    let mut tx = pool.begin().await?;
    let open = |status| matches!(status, Status::Active | Status::Expiring);
    let old = match lock_manageable(&mut tx, tenant_id, api_key_id, by, open).await? {
        Ok(key) => key,
        Err(problem) => return Ok(Err(problem.into())),
    };
    let now = OffsetDateTime::now_utc();
    let environment = old.environment;
    let mut settings = KeySettings {
        name: KeyName::stored(old.name.clone()),
        environment,
        access: super::Access::stored(old.full_access, old.scopes.clone()),
        expires_at: old.expires_at,
        rate_limit: u32::try_from(old.rate_limit).unwrap_or(1),
        ip_allowlist: IpAllowlist::stored(&old.ip_allowlist),
        note: old.note.clone(),
        meta: old.meta.clone(),
    };
    // The successor is a new key: it expires within the tenant's maximum lifetime, if any.
    let policy = key_policies::get(&mut *tx, tenant_id).await?;
    if let Some(latest) = key_policy::latest_expiry(&policy, now) {
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
        &actor.by(),
        now + grace,
    )
    .await?;
    db_keys::notify_changed(&mut *tx, &old.secret_hash).await?;
    tell_creator(&mut tx, config, tenant_id, &old, actor, "rolled").await?;
    let event = Event::KeyRolled(KeyRolled {
        key: KeyRef::new(
            old.api_key_id,
            &old.name,
            old.environment,
            &masked(prefix, old.environment, &old.last_four),
        ),
        successor: KeyRef::new(
            new_id,
            &old.name,
            old.environment,
            &masked(prefix, old.environment, &key.last_four()),
        ),
        old_key_works_until: EventTime(now + grace),
        actor: actor.into(),
    });
    webhooks::publish(&mut tx, tenant_id, Some(old.environment), &event).await?;
    actor
        .commit_with_key_event(
            tx,
            tenant_id,
            old.api_key_id,
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
/// change's transaction. A machine acting is named as itself.
async fn tell_creator(
    tx: &mut PgConnection,
    config: &KeyConfig,
    tenant_id: Uuid,
    key: &db_keys::Key,
    actor: &Actor,
    action: &str,
) -> DomainResult<()> {
    let Some(creator) = key
        .created_by
        .filter(|creator| Some(*creator) != actor.user_id())
    else {
        return Ok(());
    };
    let Some(facts) =
        reminders::key_notice_facts(&mut *tx, tenant_id, creator, actor.user_id()).await?
    else {
        return Ok(());
    };
    let notice = Mail::KeyChanged {
        name: facts.name,
        tenant: facts.tenant_name,
        key_name: key.name.clone(),
        action: action.to_owned(),
        by: actor
            .machine_label()
            .or(facts.actor_name)
            .unwrap_or_else(|| "a former member".into()),
        link: config
            .public_url
            .link(&format!("/t/{}/keys/{}", facts.tenant_slug, key.api_key_id)),
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
    config: &KeyConfig,
    tenant_id: Uuid,
    api_key_id: Uuid,
    by: Requester<'_>,
) -> DomainResult<Result<Vec<u8>, KeyProblem>> {
    let prefix = config.key_prefix.as_str();
    let actor = by.actor;
    let mut tx = pool.begin().await?;
    let open = |status| status != Status::Revoked;
    let key = match lock_manageable(&mut tx, tenant_id, api_key_id, by, open).await? {
        Ok(key) => key,
        Err(problem) => return Ok(Err(problem)),
    };
    db_keys::revoke(&mut *tx, tenant_id, api_key_id, &actor.by()).await?;
    db_keys::notify_changed(&mut *tx, &key.secret_hash).await?;
    tell_creator(&mut tx, config, tenant_id, &key, actor, "revoked").await?;
    let event = Event::KeyRevoked(KeyRevoked {
        key: KeyRef::new(
            api_key_id,
            &key.name,
            key.environment,
            &masked(prefix, key.environment, &key.last_four),
        ),
        actor: actor.into(),
    });
    webhooks::publish(&mut tx, tenant_id, Some(key.environment), &event).await?;
    actor
        .commit_with_key_event(
            tx,
            tenant_id,
            api_key_id,
            "key.revoked",
            key_target(&key.name, &masked(prefix, key.environment, &key.last_four)),
            json!({}),
        )
        .await?;
    Ok(Ok(key.secret_hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::AccessChoice;
    use crate::vocabulary::LiveKeys;

    fn policy(days: Option<i32>, live_keys: LiveKeys) -> KeyPolicy {
        KeyPolicy {
            max_key_lifetime_days: days,
            default_ip_allowlist: vec!["10.0.0.0/8".into()],
            live_keys,
        }
    }

    fn request(environment: Environment) -> NewKeyRequest {
        NewKeyRequest {
            name: "ci".into(),
            environment: Ok(environment),
            access: AccessChoice {
                full: Some(true),
                scopes: vec![],
            },
            ..NewKeyRequest::default()
        }
    }

    #[allow(clippy::result_large_err)]
    fn check(
        request: &NewKeyRequest,
        policy: &KeyPolicy,
        role: Role,
        confirmed: bool,
    ) -> Result<(KeySettings, bool), KeyErrors> {
        check_new(
            request,
            &Rules {
                tenant_id: Uuid::nil(),
                catalogue: vec!["read".to_owned(), "write".to_owned()],
                default_limit_live: 600,
                default_limit_test: 6000,
                policy: policy.clone(),
                role,
                email_confirmed: confirmed,
                approved: false,
                now: OffsetDateTime::now_utc(),
            },
        )
    }

    #[test]
    fn a_new_key_takes_the_tenant_defaults_it_was_not_given() {
        let (settings, approval) = check(
            &request(Environment::Test),
            &policy(None, LiveKeys::Anyone),
            Role::Developer,
            false,
        )
        .unwrap();
        assert!(!approval);
        assert_eq!(settings.rate_limit, 6000);
        assert_eq!(settings.ip_allowlist.entries(), ["10.0.0.0/8"]);
        assert_eq!(settings.meta, json!({}));
        assert_eq!(settings.expires_at, None);
    }

    #[test]
    fn every_refusal_is_reported_at_once() {
        let mut asked = request(Environment::Live);
        asked.name = " ".into();
        asked.rate_limit = Ok(Some(5));
        asked.meta = Ok(Some(json!([1])));
        asked.ip_allowlist = Some(vec!["nonsense".into()]);
        let errors = check(
            &asked,
            &policy(None, LiveKeys::Anyone),
            Role::Developer,
            false,
        )
        .unwrap_err();
        assert_eq!(
            errors.environment.as_deref(),
            Some(LIVE_NEEDS_CONFIRMED_EMAIL)
        );
        assert!(errors.name.is_some() && errors.meta.is_some() && errors.ip_allowlist.is_some());
        assert_eq!(
            errors.rate_limit.as_deref(),
            Some(super::super::RATE_LIMIT_ADMINS)
        );
    }

    #[test]
    fn the_policy_bounds_lifetime_and_routes_live_keys_to_approval() {
        let thirty = policy(Some(30), LiveKeys::Approval);
        let never = check(&request(Environment::Test), &thirty, Role::Admin, true);
        assert!(never.unwrap_err().expiry.unwrap().contains("30 days"));
        let mut soon = request(Environment::Live);
        soon.expires_at = Ok(Some(OffsetDateTime::now_utc() + Duration::days(10)));
        assert!(check(&soon, &thirty, Role::Developer, true).unwrap().1);
        assert!(!check(&soon, &thirty, Role::Admin, true).unwrap().1);
        let mut past = soon.clone();
        past.expires_at = Ok(Some(OffsetDateTime::now_utc() - Duration::days(1)));
        assert!(
            check(&past, &thirty, Role::Admin, true)
                .unwrap_err()
                .expiry
                .unwrap()
                .contains("future")
        );
    }
}
