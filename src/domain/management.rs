//! The management API's rules: token scopes and the `<prefix>_mgmt_` token format, tenant
//! management tokens (create, revoke), tenants provisioned by the platform (external ids, the
//! invited first admin, suspension). Keys made and changed through the API follow `domain::keys`.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::OnUnique;
use crate::db::management::{self as db_management, ApiTenant, NewToken};
use crate::db::tenants as db_tenants;
use crate::domain::accounts::Email;
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::invitations::{self, InvitationMail};
use crate::domain::keys::KeyName;
use crate::domain::keys::format as key_format;
use crate::domain::tenants::{Slug, TenantName};
use crate::domain::tokens::sha256;
use crate::vocabulary::PublicUrl;

/// What a tenant management token may do. Operator tokens may do everything, everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    KeysRead,
    KeysWrite,
    MembersRead,
    MembersWrite,
    UsageRead,
    AuditRead,
    WebhooksRead,
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Self::KeysRead,
        Self::KeysWrite,
        Self::MembersRead,
        Self::MembersWrite,
        Self::UsageRead,
        Self::AuditRead,
        Self::WebhooksRead,
        Self::WebhooksWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeysRead => "keys:read",
            Self::KeysWrite => "keys:write",
            Self::MembersRead => "members:read",
            Self::MembersWrite => "members:write",
            Self::UsageRead => "usage:read",
            Self::AuditRead => "audit:read",
            Self::WebhooksRead => "webhooks:read",
            Self::WebhooksWrite => "webhooks:write",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == value)
    }

    /// What the portal's checkbox says.
    pub fn description(self) -> &'static str {
        match self {
            Self::KeysRead => "list and read keys",
            Self::KeysWrite => "create, change, roll, revoke and import keys",
            Self::MembersRead => "list members and invitations",
            Self::MembersWrite => "invite, change roles, remove members",
            Self::UsageRead => "read usage counts (billing)",
            Self::AuditRead => "read the audit log",
            Self::WebhooksRead => "list and read webhook endpoints",
            Self::WebhooksWrite => "create, change, test, roll and delete webhook endpoints",
        }
    }
}

/// The start of every management token of this deployment: `<prefix>_mgmt_`.
pub fn token_head(key_prefix: &str) -> String {
    format!("{key_prefix}_mgmt_")
}

/// Whether `presented` has the shape and checksum of a management token (no database involved).
pub fn is_token(key_prefix: &str, presented: &str) -> bool {
    key_format::is_checksummed(&token_head(key_prefix), presented)
}

/// How lists show a token: `ak_mgmt_••••4f2a`.
pub fn masked_token(key_prefix: &str, last_four: &str) -> String {
    format!("{}••••{last_four}", token_head(key_prefix))
}

/// A new tenant management token, as the "API access" form asks for it.
#[derive(Debug, Default, Clone)]
pub struct TokenInput {
    pub name: String,
    pub scopes: Vec<String>,
    /// `never`, `30`, `90`, `365`.
    pub expiry: String,
}

/// A token just made: its secret exists only here.
pub struct IssuedToken {
    pub id: Uuid,
    pub secret: String,
}

/// Makes a tenant management token; refusals say what to fix.
pub async fn create_token(
    pool: &PgPool,
    key_prefix: &str,
    tenant_id: Uuid,
    input: &TokenInput,
    actor: &Actor,
) -> DomainResult<Result<IssuedToken, String>> {
    let name = match KeyName::parse(&input.name) {
        Ok(name) => name,
        Err(_) => return Ok(Err("Give the token a name of 1 to 80 characters.".into())),
    };
    if let Some(unknown) = input.scopes.iter().find(|s| Scope::parse(s).is_none()) {
        return Ok(Err(format!("{unknown:?} is not a management scope.")));
    }
    let scopes: Vec<String> = Scope::ALL
        .iter()
        .map(|scope| scope.as_str().to_owned())
        .filter(|scope| input.scopes.contains(scope))
        .collect();
    if scopes.is_empty() {
        return Ok(Err("Tick at least one scope.".into()));
    }
    let days = match input.expiry.as_str() {
        "never" | "" => None,
        "30" => Some(30),
        "90" => Some(90),
        "365" => Some(365),
        _ => return Ok(Err("Choose when the token expires.".into())),
    };
    let expires_at = days.map(|days| OffsetDateTime::now_utc() + time::Duration::days(days));
    let secret = key_format::checksummed(&token_head(key_prefix));
    let last_four = key_format::last_four(&secret);
    let mut tx = pool.begin().await?;
    let id = db_management::insert_token(
        &mut *tx,
        &NewToken {
            tenant_id,
            name: name.as_str(),
            scopes: &scopes,
            secret_hash: &sha256(&secret),
            last_four: &last_four,
            created_by: actor.user_id(),
            expires_at,
        },
    )
    .await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "api_token.created",
            format!(
                "api token:{} ({})",
                name.as_str(),
                masked_token(key_prefix, &last_four)
            ),
            json!({
                "scopes": scopes.join(" "),
                "expires": expires_at.map_or_else(|| "never".to_owned(), |at| at.date().to_string()),
            }),
        )
        .await?;
    Ok(Ok(IssuedToken { id, secret }))
}

/// Revokes a token of the tenant at once (the next call with it is refused).
pub async fn revoke_token(
    pool: &PgPool,
    tenant_id: Uuid,
    token_id: Uuid,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    let name = db_management::revoke_token(&mut *tx, tenant_id, token_id, actor.user_id())
        .await?
        .ok_or(DomainError::NotFound)?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "api_token.revoked",
            format!("api token:{name}"),
            json!({}),
        )
        .await
}

/// An external id: 1-128 letters, digits and `._:-` (the platform's customer or account id).
pub fn parse_external_id(input: &str) -> Result<String, String> {
    let valid = (1..=128).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if valid {
        Ok(input.to_owned())
    } else {
        Err(
            "external_id must be 1 to 128 letters, digits, dots, colons, underscores or hyphens."
                .into(),
        )
    }
}

/// What the platform asks for when it creates a tenant.
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub name: String,
    pub slug: Option<String>,
    pub external_id: Option<String>,
    pub admin_email: Option<String>,
}

/// A refusal about one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
    /// A conflict with existing data (a taken slug or external id) rather than bad input.
    pub conflict: bool,
}

impl FieldProblem {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
            conflict: false,
        }
    }

    fn taken(field: &'static str, message: String) -> Self {
        Self {
            field,
            message,
            conflict: true,
        }
    }

    fn external_id_taken() -> Self {
        Self::taken("external_id", "Another tenant has this external_id.".into())
    }
}

/// Creates a tenant for the platform; with `admin_email`, invites its first admin (the invitation
/// mail goes through the outbox in the same transaction as the tenant).
pub async fn provision_tenant(
    pool: &PgPool,
    public_url: &PublicUrl,
    request: &NewTenant,
    actor: &Actor,
) -> DomainResult<Result<ApiTenant, FieldProblem>> {
    let name = match TenantName::parse(&request.name) {
        Ok(name) => name,
        Err(why) => return Ok(Err(FieldProblem::invalid("name", why))),
    };
    let slug_input = request
        .slug
        .clone()
        .unwrap_or_else(|| Slug::from_name(name.as_str()));
    let slug = match Slug::parse(&slug_input) {
        Ok(slug) => slug,
        Err(why) => return Ok(Err(FieldProblem::invalid("slug", why))),
    };
    let external_id = match request.external_id.as_deref().map(parse_external_id) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(why)) => return Ok(Err(FieldProblem::invalid("external_id", why))),
    };
    if let Some(Err(why)) = request.admin_email.as_deref().map(Email::parse) {
        return Ok(Err(FieldProblem::invalid("admin_email", why)));
    }
    let mut tx = pool.begin().await?;
    let tenant = match db_management::insert_tenant(
        &mut *tx,
        slug.as_str(),
        name.as_str(),
        external_id.as_deref(),
    )
    .await
    .on_unique(&[db_tenants::UNIQUE_SLUG, db_management::UNIQUE_EXTERNAL_ID])?
    {
        Ok(tenant) => tenant,
        Err(constraint) if constraint == db_tenants::UNIQUE_SLUG => {
            return Ok(Err(FieldProblem::taken(
                "slug",
                format!("The slug {:?} is taken.", slug.as_str()),
            )));
        }
        Err(_) => return Ok(Err(FieldProblem::external_id_taken())),
    };
    actor
        .commit_with_event(
            tx,
            tenant.tenant_id,
            "tenant.created",
            format!("tenant:{}", tenant.slug),
            json!({ "name": tenant.name, "external_id": tenant.external_id }),
        )
        .await?;
    if let Some(email) = &request.admin_email {
        let mail = InvitationMail {
            public_url,
            tenant_name: &tenant.name,
        };
        if let Err(why) =
            invitations::invite(pool, tenant.tenant_id, email, "admin", actor, &mail).await?
        {
            return Err(DomainError::unexpected(format!(
                "the first admin's invitation failed: {why}"
            )));
        }
    }
    Ok(Ok(tenant))
}

/// Suspends or resumes a tenant. Every instance forgets its keys at commit (the key-change
/// notification), so a suspension is seen everywhere within the time a notification takes.
pub async fn set_suspended(
    pool: &PgPool,
    tenant_id: Uuid,
    suspended: bool,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    db_tenants::lock_tenant(&mut *tx, tenant_id).await?;
    if !db_management::set_suspended(&mut *tx, tenant_id, suspended).await? {
        return Ok(());
    }
    db_management::notify_tenant_keys_changed(&mut *tx, tenant_id).await?;
    let action = if suspended {
        "tenant.suspended"
    } else {
        "tenant.resumed"
    };
    actor
        .commit_with_event(tx, tenant_id, action, "tenant".into(), json!({}))
        .await
}

/// Changes the tenant's external id; a taken one is refused.
pub async fn set_external_id(
    pool: &PgPool,
    tenant_id: Uuid,
    external_id: &str,
    actor: &Actor,
) -> DomainResult<Result<(), FieldProblem>> {
    let external_id = match parse_external_id(external_id) {
        Ok(id) => id,
        Err(why) => return Ok(Err(FieldProblem::invalid("external_id", why))),
    };
    let mut tx = pool.begin().await?;
    let changed = db_management::set_external_id(&mut *tx, tenant_id, &external_id)
        .await
        .on_unique(&[db_management::UNIQUE_EXTERNAL_ID])?;
    if changed.is_err() {
        return Ok(Err(FieldProblem::external_id_taken()));
    }
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "tenant.external_id_changed",
            "tenant".into(),
            json!({ "to": external_id }),
        )
        .await?;
    Ok(Ok(()))
}

/// Leak triage: whose key has this hash. The lookup is audited in the key's tenant (the tenant
/// sees that its key was found and looked up).
pub async fn identify_key(
    pool: &PgPool,
    secret_hash: &[u8],
    actor: &Actor,
) -> DomainResult<Option<(Uuid, Uuid)>> {
    let mut tx = pool.begin().await?;
    let Some(key) = crate::db::verification::find_by_hash(&mut *tx, secret_hash).await? else {
        return Ok(None);
    };
    let last_four = crate::db::keys::get(&mut *tx, key.tenant_id, key.api_key_id)
        .await?
        .map(|row| row.last_four)
        .unwrap_or_default();
    actor
        .commit_with_event(
            tx,
            key.tenant_id,
            "key.identified",
            format!("key:{} (••••{last_four})", key.name),
            json!({ "why": "looked up by its secret (leak triage)" }),
        )
        .await?;
    Ok(Some((key.tenant_id, key.api_key_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_names() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("keys:admin"), None);
    }

    #[test]
    fn management_tokens_carry_a_checksum_and_are_not_keys() {
        let token = key_format::checksummed(&token_head("ak"));
        assert!(token.starts_with("ak_mgmt_"));
        assert!(is_token("ak", &token));
        let mut changed = token.clone().into_bytes();
        let last = changed.len() - 10;
        changed[last] = if changed[last] == b'a' { b'b' } else { b'a' };
        assert!(!is_token("ak", &String::from_utf8(changed).unwrap()));
        assert!(!is_token("zz", &token));
        assert!(key_format::parse("ak", &token).is_err());
    }

    #[test]
    fn external_ids_are_plain_identifiers() {
        assert!(parse_external_id("cus_123:eu.west-1").is_ok());
        assert!(parse_external_id("").is_err());
        assert!(parse_external_id("a b").is_err());
        assert!(parse_external_id(&"x".repeat(129)).is_err());
    }
}
