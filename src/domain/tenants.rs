//! Tenants and memberships: the rules, including "every tenant keeps an admin".

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::db::OnUnique;
use crate::db::keys as db_keys;
use crate::db::tenants::{self as db_tenants, Member, Tenant};
use crate::db::users::User;
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::webhooks::{self, Event, MemberRef, MemberRemoved, MemberRoleChanged};
use crate::vocabulary::Role;

/// A tenant's display name.
#[derive(Debug, Clone)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let name: String = input.trim().nfc().collect();
        if name.is_empty() {
            return Err("Enter a name for the tenant.".into());
        }
        if name.chars().count() > 80 {
            return Err("Tenant names are at most 80 characters.".into());
        }
        if name.chars().any(char::is_control) {
            return Err("Tenant names cannot contain control characters.".into());
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tenant's name in URLs: 3-40 lowercase letters, digits and inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

/// Slugs that would read as something else in a URL.
const RESERVED_SLUGS: [&str; 8] = [
    "new", "admin", "api", "static", "settings", "account", "signin", "signup",
];

impl Slug {
    pub fn parse(input: &str) -> Result<Self, String> {
        let slug = input.trim().to_ascii_lowercase();
        let valid_chars = slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !(3..=40).contains(&slug.len())
            || !valid_chars
            || slug.starts_with('-')
            || slug.ends_with('-')
        {
            return Err(
                "Use 3 to 40 lowercase letters, digits and hyphens, not starting or ending with a hyphen."
                    .into(),
            );
        }
        if RESERVED_SLUGS.contains(&slug.as_str()) {
            return Err(format!("\"{slug}\" is reserved. Choose another."));
        }
        Ok(Self(slug))
    }

    /// A slug made from a name: "Acme Rockets, Inc." -> "acme-rockets-inc".
    pub fn from_name(name: &str) -> String {
        let mut slug = String::new();
        for c in name.nfkd().filter(char::is_ascii) {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let mut slug: String = slug.trim_matches('-').chars().take(40).collect();
        while slug.ends_with('-') {
            slug.pop();
        }
        slug
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What went wrong with a new tenant, per field.
#[derive(Debug, Default)]
pub struct TenantErrors {
    pub name: Option<String>,
    pub slug: Option<String>,
}

/// Creates a tenant with `creator` as its first admin.
pub async fn create_tenant(
    pool: &PgPool,
    creator: &User,
    name: &str,
    slug: &str,
    actor: &Actor,
) -> DomainResult<Result<Tenant, TenantErrors>> {
    let mut errors = TenantErrors::default();
    let name = TenantName::parse(name)
        .map_err(|e| errors.name = Some(e))
        .ok();
    let slug_input = if slug.trim().is_empty() {
        name.as_ref()
            .map(|n| Slug::from_name(n.as_str()))
            .unwrap_or_default()
    } else {
        slug.to_owned()
    };
    let slug = Slug::parse(&slug_input)
        .map_err(|e| errors.slug = Some(e))
        .ok();
    let (Some(name), Some(slug)) = (name, slug) else {
        return Ok(Err(errors));
    };
    let mut tx = pool.begin().await?;
    let Ok(tenant) = db_tenants::insert(&mut *tx, slug.as_str(), name.as_str())
        .await
        .on_unique(&[db_tenants::UNIQUE_SLUG])?
    else {
        errors.slug = Some(format!("\"{}\" is taken. Choose another.", slug.as_str()));
        return Ok(Err(errors));
    };
    db_tenants::insert_membership(&mut *tx, tenant.tenant_id, creator.app_user_id, Role::Admin)
        .await?;
    actor
        .commit_with_event(
            tx,
            tenant.tenant_id,
            "tenant.created",
            format!("tenant:{}", tenant.slug),
            json!({ "name": tenant.name }),
        )
        .await?;
    Ok(Ok(tenant))
}

/// A member as webhook events describe them.
fn member_ref(member: &Member) -> MemberRef {
    MemberRef {
        user_id: member.app_user_id,
        email: member.email.clone(),
        name: member.display_name.clone(),
        role: member.role,
    }
}

/// A member change refused by a rule.
#[derive(Debug, PartialEq, Eq)]
pub enum MemberProblem {
    LastAdmin,
}

impl MemberProblem {
    pub fn message(&self) -> &'static str {
        match self {
            Self::LastAdmin => {
                "Every tenant needs at least one admin. Make someone else an admin first."
            }
        }
    }
}

/// Whether a member with `role`, in a tenant with `admins` admins, is its last admin: they may
/// neither leave, be removed, nor take another role (pages do not offer it, and say why).
pub fn is_last_admin(role: Role, admins: i64) -> bool {
    role == Role::Admin && admins <= 1
}

/// Locks the tenant (so two changes cannot each take away "the other" admin) and loads the member,
/// saying whether they are its last admin.
async fn lock_member(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    membership_id: Uuid,
) -> DomainResult<(Member, bool)> {
    db_tenants::lock_tenant(&mut *tx, tenant_id).await?;
    let member = db_tenants::member(&mut *tx, tenant_id, membership_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let last_admin = member.role == Role::Admin
        && is_last_admin(
            member.role,
            db_tenants::count_admins(&mut *tx, tenant_id).await?,
        );
    Ok((member, last_admin))
}

/// Changes a member's role; the last admin cannot be demoted.
pub async fn change_role(
    pool: &PgPool,
    tenant_id: Uuid,
    membership_id: Uuid,
    role: Role,
    actor: &Actor,
) -> DomainResult<Result<(), MemberProblem>> {
    let mut tx = pool.begin().await?;
    let (member, last_admin) = lock_member(&mut tx, tenant_id, membership_id).await?;
    let old = member.role;
    if old == role {
        return Ok(Ok(()));
    }
    if last_admin {
        return Ok(Err(MemberProblem::LastAdmin));
    }
    db_tenants::set_role(&mut *tx, tenant_id, membership_id, role).await?;
    let event = Event::MemberRoleChanged(MemberRoleChanged {
        member: member_ref(&member),
        from: old,
        to: role,
        actor: actor.into(),
    });
    webhooks::publish(&mut tx, tenant_id, None, &event).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "member.role_changed",
            format!("user:{}", member.email),
            json!({ "from": old.as_str(), "to": role.as_str() }),
        )
        .await?;
    Ok(Ok(()))
}

/// Removes a member (or lets one leave: `action` says which); the last admin cannot go.
pub async fn remove_member(
    pool: &PgPool,
    tenant_id: Uuid,
    membership_id: Uuid,
    action: &str,
    actor: &Actor,
) -> DomainResult<Result<(), MemberProblem>> {
    let mut tx = pool.begin().await?;
    let (member, last_admin) = lock_member(&mut tx, tenant_id, membership_id).await?;
    if last_admin {
        return Ok(Err(MemberProblem::LastAdmin));
    }
    db_tenants::delete_membership(&mut *tx, tenant_id, membership_id).await?;
    let event = Event::MemberRemoved(MemberRemoved {
        member: member_ref(&member),
        left: Some(member.app_user_id) == actor.user_id(),
        actor: actor.into(),
    });
    webhooks::publish(&mut tx, tenant_id, None, &event).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            action,
            format!("user:{}", member.email),
            json!({ "role": member.role }),
        )
        .await?;
    Ok(Ok(()))
}

/// Renames the tenant; its slug (and so its URLs) stay.
pub async fn rename_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
    old_name: &str,
    input: &str,
    actor: &Actor,
) -> DomainResult<Result<TenantName, String>> {
    let name = match TenantName::parse(input) {
        Ok(name) => name,
        Err(message) => return Ok(Err(message)),
    };
    let mut tx = pool.begin().await?;
    db_tenants::lock_tenant(&mut *tx, tenant_id).await?;
    db_tenants::rename(&mut *tx, tenant_id, name.as_str()).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "tenant.renamed",
            format!("tenant:{}", name.as_str()),
            json!({ "from": old_name, "to": name.as_str() }),
        )
        .await?;
    Ok(Ok(name))
}

/// Deletes the tenant once its slug is typed to confirm: a soft delete that keeps the audit trail.
/// Every key is revoked in the same transaction, and a change notification sent for each so
/// every instance's cache forgets it; returns their secret hashes (for this instance's cache).
pub async fn delete_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
    slug: &str,
    typed: &str,
    actor: &Actor,
) -> DomainResult<Result<Vec<Vec<u8>>, String>> {
    if typed.trim() != slug {
        return Ok(Err(format!(
            "Type the tenant's slug, {slug}, exactly to confirm. Nothing was deleted."
        )));
    }
    let mut tx = pool.begin().await?;
    db_tenants::lock_tenant(&mut *tx, tenant_id).await?;
    let revoked = db_keys::revoke_all(&mut *tx, tenant_id, &actor.by()).await?;
    for hash in &revoked {
        db_keys::notify_changed(&mut *tx, hash).await?;
    }
    db_tenants::mark_deleted(&mut tx, tenant_id).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "tenant.deleted",
            format!("tenant:{slug}"),
            json!({ "keys_revoked": revoked.len() }),
        )
        .await?;
    Ok(Ok(revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_made_from_names() {
        assert_eq!(Slug::from_name("Acme Rockets, Inc."), "acme-rockets-inc");
        assert_eq!(Slug::from_name("  Café Zürich  "), "cafe-zurich");
        assert_eq!(Slug::from_name("<b>"), "b");
    }

    #[test]
    fn slugs_are_validated() {
        assert!(Slug::parse("acme").is_ok());
        assert_eq!(Slug::parse("Acme-2").unwrap().as_str(), "acme-2");
        for bad in [
            "ab",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            "new",
            &"a".repeat(41),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_names_are_bounded() {
        assert!(TenantName::parse("  ").is_err());
        assert!(TenantName::parse(&"n".repeat(81)).is_err());
        assert_eq!(TenantName::parse(" Acme ").unwrap().as_str(), "Acme");
    }
}
