//! Reading the usage counters for the portal. A tenant's figures come from the per-tenant
//! roll-ups, a key's from its own counters: neither grows with the number of keys.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::vocabulary::{Code, Environment, Window};

/// The resolution a window is read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Minute,
    Hour,
    Day,
}

type Counts = Vec<(OffsetDateTime, Code, i64)>;

impl Grain {
    /// In the order `key_usage_window` lists them in a batch.
    pub const ALL: [Grain; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// The usage window read at this grain, whose busiest keys `key_usage_window` keeps.
    pub fn window(self) -> Window {
        match self {
            Self::Minute => Window::Hour,
            Self::Hour => Window::Day,
            Self::Day => Window::Month,
        }
    }

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
/// read at `grain` (the coarsest that covers the window, so the rows read stay few). Unfiltered
/// and within the grain's own window (the last hour by minute, 24 hours by hour, 30 days by day),
/// from the summary the metering batch keeps, one row per key active in it; a longer window or an
/// environment filter sums the keys' counters.
pub async fn busiest_keys(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    environment: Option<Environment>,
    since: OffsetDateTime,
    grain: Grain,
    limit: i64,
) -> sqlx::Result<Vec<BusyKey>> {
    if environment.is_some() || since < grain.window().start(OffsetDateTime::now_utc()) {
        return busiest_keys_summed(db, tenant_id, environment, since, grain, limit).await;
    }
    // A row counts from its own `since`, the window's start when the batch last moved it: the
    // buckets between that and this window's start are added or taken off.
    sqlx::query_as!(
        BusyKey,
        r#"WITH w AS MATERIALIZED (
               SELECT api_key_id, since, valid, total FROM key_usage_window
               WHERE tenant_id = $1 AND grain = $3
           ),
           moved AS (
               SELECT api_key_id, since FROM w WHERE since <> $2
           ),
           correction AS (
               SELECT api_key_id,
                      coalesce(sum(count) FILTER (WHERE outcome = 'VALID'), 0)::bigint AS valid,
                      sum(count)::bigint AS total
               FROM (SELECT m.api_key_id, m.outcome,
                            CASE WHEN m.bucket < w.since THEN m.count ELSE -m.count END AS count
                     FROM moved w JOIN key_usage_minute m ON m.api_key_id = w.api_key_id
                     WHERE $3 = 'minute' AND m.bucket >= least(w.since, $2) AND m.bucket < greatest(w.since, $2)
                     UNION ALL
                     SELECT m.api_key_id, m.outcome,
                            CASE WHEN m.bucket < w.since THEN m.count ELSE -m.count END
                     FROM moved w JOIN key_usage_hour m ON m.api_key_id = w.api_key_id
                     WHERE $3 = 'hour' AND m.bucket >= least(w.since, $2) AND m.bucket < greatest(w.since, $2)
                     UNION ALL
                     SELECT m.api_key_id, m.outcome,
                            CASE WHEN m.bucket < w.since THEN m.count ELSE -m.count END
                     FROM moved w JOIN key_usage_day m ON m.api_key_id = w.api_key_id
                     WHERE $3 = 'day' AND m.bucket >= least(w.since, $2) AND m.bucket < greatest(w.since, $2)) d
               GROUP BY api_key_id
           )
           SELECT k.api_key_id, k.name, k.environment AS "environment: Environment", k.last_four,
                  u.valid AS "valid!", u.total AS "total!"
           FROM (SELECT w.api_key_id, w.valid + coalesce(c.valid, 0) AS valid,
                        w.total + coalesce(c.total, 0) AS total
                 FROM w LEFT JOIN correction c USING (api_key_id)
                 WHERE w.total + coalesce(c.total, 0) > 0
                 ORDER BY total DESC
                 LIMIT $4) u
           JOIN api_key k USING (api_key_id)
           ORDER BY u.total DESC, k.name"#,
        tenant_id,
        since,
        grain.as_str(),
        limit,
    )
    .fetch_all(db)
    .await
}

/// `busiest_keys` from every key's counters.
async fn busiest_keys_summed(
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
