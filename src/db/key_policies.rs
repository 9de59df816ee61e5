//! The `tenant_key_policy` table: a tenant's rules for its keys (no row: no rules).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::vocabulary::LiveKeys;

/// A tenant's key policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    pub max_key_lifetime_days: Option<i32>,
    pub default_ip_allowlist: Vec<String>,
    pub live_keys: LiveKeys,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            max_key_lifetime_days: None,
            default_ip_allowlist: Vec::new(),
            live_keys: LiveKeys::Anyone,
        }
    }
}

pub async fn get(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<KeyPolicy> {
    let row = sqlx::query_as!(
        KeyPolicy,
        r#"SELECT max_key_lifetime_days, default_ip_allowlist, live_keys AS "live_keys: LiveKeys"
           FROM tenant_key_policy WHERE tenant_id = $1"#,
        tenant_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.unwrap_or_default())
}

pub async fn save(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    policy: &KeyPolicy,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO tenant_key_policy (tenant_id, max_key_lifetime_days, default_ip_allowlist, live_keys)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant_id) DO UPDATE
           SET max_key_lifetime_days = EXCLUDED.max_key_lifetime_days,
               default_ip_allowlist = EXCLUDED.default_ip_allowlist,
               live_keys = EXCLUDED.live_keys,
               updated_at = now()"#,
        tenant_id,
        policy.max_key_lifetime_days,
        &policy.default_ip_allowlist,
        policy.live_keys.as_str(),
    )
    .execute(db)
    .await
    .map(drop)
}
