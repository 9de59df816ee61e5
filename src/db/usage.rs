//! Reading the usage counters (`key_usage_minute`, `key_usage_hour`) for the portal.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// (bucket, outcome, count) rows since `since`, for a tenant or one of its keys. Minutes for the
/// last hour, hours for longer windows (days are summed from hours by the caller).
pub async fn counts(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Option<Uuid>,
    since: OffsetDateTime,
    per_minute: bool,
) -> sqlx::Result<Vec<(OffsetDateTime, String, i64)>> {
    let rows = if per_minute {
        sqlx::query!(
            r#"SELECT bucket, outcome, sum(count)::bigint AS "count!"
               FROM key_usage_minute
               WHERE tenant_id = $1 AND ($2::uuid IS NULL OR api_key_id = $2) AND bucket >= $3
               GROUP BY bucket, outcome"#,
            tenant_id,
            api_key_id,
            since,
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|row| (row.bucket, row.outcome, row.count))
        .collect()
    } else {
        sqlx::query!(
            r#"SELECT bucket, outcome, sum(count)::bigint AS "count!"
               FROM key_usage_hour
               WHERE tenant_id = $1 AND ($2::uuid IS NULL OR api_key_id = $2) AND bucket >= $3
               GROUP BY bucket, outcome"#,
            tenant_id,
            api_key_id,
            since,
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|row| (row.bucket, row.outcome, row.count))
        .collect()
    };
    Ok(rows)
}

#[derive(Debug, Clone)]
pub struct BusyKey {
    pub api_key_id: Uuid,
    pub name: String,
    pub environment: String,
    pub last_four: String,
    pub valid: i64,
    pub total: i64,
}

/// The tenant's keys with the most verifications since `since`.
pub async fn busiest_keys(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    since: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<Vec<BusyKey>> {
    sqlx::query_as!(
        BusyKey,
        r#"SELECT k.api_key_id, k.name, k.environment, k.last_four,
                  u.valid AS "valid!", u.total AS "total!"
           FROM (SELECT api_key_id,
                        coalesce(sum(count) FILTER (WHERE outcome = 'VALID'), 0)::bigint AS valid,
                        sum(count)::bigint AS total
                 FROM key_usage_hour
                 WHERE tenant_id = $1 AND bucket >= $2
                 GROUP BY api_key_id
                 ORDER BY total DESC
                 LIMIT $3) u
           JOIN api_key k USING (api_key_id)
           ORDER BY u.total DESC, k.name"#,
        tenant_id,
        since,
        limit,
    )
    .fetch_all(db)
    .await
}
