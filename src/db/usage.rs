//! Reading the usage counters for the portal. A tenant's figures come from the per-tenant
//! roll-ups, a key's from its own counters: neither grows with the number of keys.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::verification::Code;
use crate::domain::vocabulary::Environment;

/// The resolution a window is read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Minute,
    Hour,
    Day,
}

type Counts = Vec<(OffsetDateTime, Code, i64)>;

impl Grain {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// (bucket, outcome, count) rows of a tenant since `since`, per minute or per hour (days are
/// summed from hours by the caller).
pub async fn tenant_counts(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    since: OffsetDateTime,
    grain: Grain,
) -> sqlx::Result<Counts> {
    let rows = sqlx::query!(
        r#"SELECT bucket AS "bucket!", outcome AS "outcome!: Code", count AS "count!" FROM tenant_usage_minute
           WHERE $3 = 'minute' AND tenant_id = $1 AND bucket >= $2
           UNION ALL
           SELECT bucket, outcome, count FROM tenant_usage_hour
           WHERE $3 <> 'minute' AND tenant_id = $1 AND bucket >= $2"#,
        tenant_id,
        since,
        grain.as_str(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.bucket, row.outcome, row.count))
        .collect())
}

/// (bucket, outcome, count) rows of one key of the tenant since `since`.
pub async fn key_counts(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
    since: OffsetDateTime,
    grain: Grain,
) -> sqlx::Result<Counts> {
    let rows = sqlx::query!(
        r#"SELECT bucket AS "bucket!", outcome AS "outcome!: Code", count AS "count!" FROM key_usage_minute
           WHERE $4 = 'minute' AND tenant_id = $1 AND api_key_id = $2 AND bucket >= $3
           UNION ALL
           SELECT bucket, outcome, count FROM key_usage_hour
           WHERE $4 = 'hour' AND tenant_id = $1 AND api_key_id = $2 AND bucket >= $3
           UNION ALL
           SELECT bucket, outcome, count FROM key_usage_day
           WHERE $4 = 'day' AND tenant_id = $1 AND api_key_id = $2 AND bucket >= $3"#,
        tenant_id,
        api_key_id,
        since,
        grain.as_str(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.bucket, row.outcome, row.count))
        .collect())
}

#[derive(Debug, Clone)]
pub struct BusyKey {
    pub api_key_id: Uuid,
    pub name: String,
    pub environment: Environment,
    pub last_four: String,
    pub valid: i64,
    pub total: i64,
}

/// The tenant's keys (of `environment`, when given) with the most verifications since `since`,
/// read at `grain` (the coarsest that covers the window, so the rows read stay few).
pub async fn busiest_keys(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    environment: Option<Environment>,
    since: OffsetDateTime,
    grain: Grain,
    limit: i64,
) -> sqlx::Result<Vec<BusyKey>> {
    sqlx::query_as!(
        BusyKey,
        r#"WITH counts AS (
               SELECT api_key_id, outcome, count FROM key_usage_minute
               WHERE $3 = 'minute' AND tenant_id = $1 AND bucket >= $2
               UNION ALL
               SELECT api_key_id, outcome, count FROM key_usage_hour
               WHERE $3 = 'hour' AND tenant_id = $1 AND bucket >= $2
               UNION ALL
               SELECT api_key_id, outcome, count FROM key_usage_day
               WHERE $3 = 'day' AND tenant_id = $1 AND bucket >= $2
           )
           SELECT k.api_key_id, k.name, k.environment AS "environment: Environment", k.last_four,
                  u.valid AS "valid!", u.total AS "total!"
           FROM (SELECT api_key_id,
                        coalesce(sum(count) FILTER (WHERE outcome = 'VALID'), 0)::bigint AS valid,
                        sum(count)::bigint AS total
                 FROM counts
                 WHERE $5::text IS NULL
                    OR api_key_id IN (SELECT api_key_id FROM api_key WHERE tenant_id = $1 AND environment = $5)
                 GROUP BY api_key_id
                 ORDER BY total DESC
                 LIMIT $4) u
           JOIN api_key k USING (api_key_id)
           ORDER BY u.total DESC, k.name"#,
        tenant_id,
        since,
        grain.as_str(),
        limit,
        environment.map(Environment::as_str),
    )
    .fetch_all(db)
    .await
}
