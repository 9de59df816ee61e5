//! Usage counters: batched, idempotent upserts of per-minute and per-hour counts (and the roll-ups
//! per tenant and per key per day), `last_used_at`, and retention.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::usage::Grain;

/// A batch of counters, written all or nothing. Rows are unique per (key, bucket, outcome) and
/// sorted, so concurrent writers lock rows in the same order.
#[derive(Debug, Clone, Default)]
pub struct UsageBatch {
    pub flush_id: Uuid,
    pub minutes: Vec<UsageRow>,
    pub hours: Vec<UsageRow>,
    pub last_used: Vec<(Uuid, OffsetDateTime)>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageRow {
    pub api_key_id: Uuid,
    pub bucket: OffsetDateTime,
    pub outcome: String,
    pub tenant_id: Uuid,
    pub count: i64,
}

/// A minute counter after the batch was added: the total of every instance.
#[derive(Debug, Clone)]
pub struct MinuteTotal {
    pub api_key_id: Uuid,
    pub bucket: OffsetDateTime,
    pub outcome: String,
    pub count: i64,
}

/// Writes the batch in one transaction. Returns `None` when this batch was written before (a retry
/// after a lost acknowledgement), else the minute totals it produced. Counters of keys deleted
/// meanwhile are dropped.
pub async fn write_batch(
    conn: &mut PgConnection,
    batch: &UsageBatch,
) -> sqlx::Result<Option<Vec<MinuteTotal>>> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let first_time = sqlx::query!(
        "INSERT INTO key_usage_flush (flush_id) VALUES ($1) ON CONFLICT DO NOTHING",
        batch.flush_id,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first_time {
        tx.rollback().await?;
        return Ok(None);
    }

    // The busiest keys' windows: moved to the current windows first, then added to below.
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", WINDOW_LOCK)
        .execute(&mut *tx)
        .await?;
    let now = OffsetDateTime::now_utc();
    slide_windows(&mut tx, now).await?;

    // The minutes (their totals come back for the rate limiter) and the tenant's minutes.
    let (keys, tenants, buckets, outcomes, counts) = columns(&batch.minutes);
    let totals = sqlx::query_as!(
        MinuteTotal,
        r#"WITH u AS (
               SELECT u.* FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::bigint[])
                    AS u(api_key_id, tenant_id, bucket, outcome, count)
               WHERE EXISTS (SELECT 1 FROM api_key k WHERE k.api_key_id = u.api_key_id)
           ),
           tenant_minutes AS (
               INSERT INTO tenant_usage_minute (tenant_id, bucket, outcome, count)
               SELECT tenant_id, bucket, outcome, sum(count) FROM u GROUP BY tenant_id, bucket, outcome
               ON CONFLICT (tenant_id, bucket, outcome)
               DO UPDATE SET count = tenant_usage_minute.count + EXCLUDED.count
           )
           INSERT INTO key_usage_minute (api_key_id, tenant_id, bucket, outcome, count)
           SELECT api_key_id, tenant_id, bucket, outcome, count FROM u
           ON CONFLICT (api_key_id, bucket, outcome)
           DO UPDATE SET count = key_usage_minute.count + EXCLUDED.count
           RETURNING api_key_id AS "api_key_id!", bucket AS "bucket!", outcome AS "outcome!", count AS "count!""#,
        &keys,
        &tenants,
        &buckets,
        &outcomes,
        &counts,
    )
    .fetch_all(&mut *tx)
    .await?;

    // The hours, and the roll-ups the portal reads (per tenant per hour, per key per day), from
    // the same rows in one statement.
    let (keys, tenants, buckets, outcomes, counts) = columns(&batch.hours);
    sqlx::query!(
        r#"WITH u AS (
               SELECT u.* FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::bigint[])
                    AS u(api_key_id, tenant_id, bucket, outcome, count)
               WHERE EXISTS (SELECT 1 FROM api_key k WHERE k.api_key_id = u.api_key_id)
           ),
           hours AS (
               INSERT INTO key_usage_hour (api_key_id, tenant_id, bucket, outcome, count)
               SELECT api_key_id, tenant_id, bucket, outcome, count FROM u
               ON CONFLICT (api_key_id, bucket, outcome)
               DO UPDATE SET count = key_usage_hour.count + EXCLUDED.count
           ),
           tenant_hours AS (
               INSERT INTO tenant_usage_hour (tenant_id, bucket, outcome, count)
               SELECT tenant_id, bucket, outcome, sum(count) FROM u GROUP BY tenant_id, bucket, outcome
               ON CONFLICT (tenant_id, bucket, outcome)
               DO UPDATE SET count = tenant_usage_hour.count + EXCLUDED.count
           )
           INSERT INTO key_usage_day (api_key_id, tenant_id, bucket, outcome, count)
           SELECT api_key_id, tenant_id, date_trunc('day', bucket, 'UTC'), outcome, sum(count) FROM u
           GROUP BY api_key_id, tenant_id, date_trunc('day', bucket, 'UTC'), outcome
           ON CONFLICT (api_key_id, bucket, outcome)
           DO UPDATE SET count = key_usage_day.count + EXCLUDED.count"#,
        &keys,
        &tenants,
        &buckets,
        &outcomes,
        &counts,
    )
    .execute(&mut *tx)
    .await?;

    // Each key's counts in each window, by the bucket its minute falls in at each grain (the
    // hours and days are the minutes' too). A row already there counts from its own `since`.
    let (keys, tenants, buckets, outcomes, counts) = columns(&batch.minutes);
    let starts = Grain::ALL.map(|grain| grain.window().start(now));
    sqlx::query!(
        r#"WITH u AS (
               SELECT u.* FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::bigint[])
                    AS u(api_key_id, tenant_id, bucket, outcome, count)
               WHERE EXISTS (SELECT 1 FROM api_key k WHERE k.api_key_id = u.api_key_id)
           ),
           g AS (
               SELECT u.api_key_id, u.tenant_id, g.grain, g.since, g.bucket, u.outcome, u.count
               FROM u CROSS JOIN LATERAL (VALUES
                   ('minute', $6::timestamptz, u.bucket),
                   ('hour', $7::timestamptz, date_trunc('hour', u.bucket, 'UTC')),
                   ('day', $8::timestamptz, date_trunc('day', u.bucket, 'UTC'))
               ) AS g(grain, since, bucket)
           ),
           d AS (
               SELECT g.tenant_id, g.grain, g.api_key_id, coalesce(w.since, g.since) AS since,
                      coalesce(sum(g.count) FILTER (WHERE g.outcome = 'VALID'), 0)::bigint AS valid,
                      sum(g.count)::bigint AS total
               FROM g LEFT JOIN key_usage_window w
                    ON w.tenant_id = g.tenant_id AND w.grain = g.grain AND w.api_key_id = g.api_key_id
               WHERE g.bucket >= coalesce(w.since, g.since)
               GROUP BY 1, 2, 3, 4
           )
           INSERT INTO key_usage_window (tenant_id, grain, api_key_id, since, valid, total)
           SELECT tenant_id, grain, api_key_id, since, valid, total FROM d
           ON CONFLICT (tenant_id, grain, api_key_id) DO UPDATE
           SET valid = key_usage_window.valid + EXCLUDED.valid,
               total = key_usage_window.total + EXCLUDED.total"#,
        &keys,
        &tenants,
        &buckets,
        &outcomes,
        &counts,
        starts[0],
        starts[1],
        starts[2],
    )
    .execute(&mut *tx)
    .await?;

    let (used_keys, used_at): (Vec<Uuid>, Vec<OffsetDateTime>) =
        batch.last_used.iter().copied().unzip();
    sqlx::query!(
        r#"UPDATE api_key k SET last_used_at = u.at
           FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(api_key_id, at)
           WHERE k.api_key_id = u.api_key_id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)"#,
        &used_keys,
        &used_at,
    )
    .execute(&mut *tx)
    .await?;

    tx.commit().await?;
    Ok(Some(totals))
}

/// The advisory lock a transaction holds while it moves or adds to `key_usage_window`, so the
/// counters it reads to move a window are all the ones counted there.
const WINDOW_LOCK: i64 = 0x6761_7465_7573_6167;

/// Moves every key's window of the busiest-keys summary that the clock has left behind to the
/// current window's start (see `migrations/*_key_usage_window.sql`); when nothing is behind, one
/// index probe per grain. Each minute even without traffic, so readers correct little.
pub async fn move_windows(conn: &mut PgConnection, now: OffsetDateTime) -> sqlx::Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", WINDOW_LOCK)
        .execute(&mut *tx)
        .await?;
    slide_windows(&mut tx, now).await?;
    tx.commit().await
}

/// The sliding itself, in a transaction holding `WINDOW_LOCK`: the buckets that left the window are
/// subtracted (or, when the row is older than a whole window, the window is summed afresh), and
/// windows left empty are deleted. A figure never goes below zero: should a row ever undercount
/// (instances whose clocks disagree by minutes), the page shows too little rather than the batch
/// failing on the table's checks and metering stopping.
async fn slide_windows(conn: &mut PgConnection, now: OffsetDateTime) -> sqlx::Result<()> {
    for grain in Grain::ALL {
        let window = grain.window();
        let since = window.start(now);
        let whole = since - window.step() * window.buckets();
        sqlx::query!(
            r#"WITH stale AS (
                   SELECT tenant_id, api_key_id, since, since >= $3 AS near FROM key_usage_window
                   WHERE grain = $1 AND since < $2
               ),
               sums AS (
                   SELECT s.tenant_id, s.api_key_id, s.near,
                          coalesce(sum(c.count) FILTER (WHERE c.outcome = 'VALID'), 0)::bigint AS valid,
                          coalesce(sum(c.count), 0)::bigint AS total
                   FROM stale s LEFT JOIN LATERAL (
                       SELECT outcome, count FROM key_usage_minute m
                       WHERE $1 = 'minute' AND m.api_key_id = s.api_key_id
                         AND m.bucket >= (CASE WHEN s.near THEN s.since ELSE $2 END) AND (m.bucket < $2) = s.near
                       UNION ALL
                       SELECT outcome, count FROM key_usage_hour m
                       WHERE $1 = 'hour' AND m.api_key_id = s.api_key_id
                         AND m.bucket >= (CASE WHEN s.near THEN s.since ELSE $2 END) AND (m.bucket < $2) = s.near
                       UNION ALL
                       SELECT outcome, count FROM key_usage_day m
                       WHERE $1 = 'day' AND m.api_key_id = s.api_key_id
                         AND m.bucket >= (CASE WHEN s.near THEN s.since ELSE $2 END) AND (m.bucket < $2) = s.near
                   ) c ON true
                   GROUP BY s.tenant_id, s.api_key_id, s.near
               )
               UPDATE key_usage_window w
               SET since = $2,
                   valid = CASE WHEN sums.near THEN greatest(w.valid - sums.valid, 0) ELSE sums.valid END,
                   total = CASE WHEN sums.near THEN greatest(w.total - sums.total, w.valid - sums.valid, 0)
                           ELSE sums.total END
               FROM sums
               WHERE w.tenant_id = sums.tenant_id AND w.grain = $1 AND w.api_key_id = sums.api_key_id"#,
            grain.as_str(),
            since,
            whole,
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!(
            "DELETE FROM key_usage_window WHERE grain = $1 AND since = $2 AND total = 0",
            grain.as_str(),
            since,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

type Columns = (
    Vec<Uuid>,
    Vec<Uuid>,
    Vec<OffsetDateTime>,
    Vec<String>,
    Vec<i64>,
);

fn columns(rows: &[UsageRow]) -> Columns {
    let mut columns: Columns = Default::default();
    for row in rows {
        columns.0.push(row.api_key_id);
        columns.1.push(row.tenant_id);
        columns.2.push(row.bucket);
        columns.3.push(row.outcome.clone());
        columns.4.push(row.count);
    }
    columns
}

/// Deletes minute counters older than `minutes_before`, hourly ones older than `hours_before`, and
/// the record of batches written before `flushes_before`. Returns how many rows went.
pub async fn purge(
    conn: &mut PgConnection,
    minutes_before: OffsetDateTime,
    hours_before: OffsetDateTime,
    flushes_before: OffsetDateTime,
) -> sqlx::Result<u64> {
    let minutes = sqlx::query!(
        "DELETE FROM key_usage_minute WHERE bucket < $1",
        minutes_before
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let hours = sqlx::query!("DELETE FROM key_usage_hour WHERE bucket < $1", hours_before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let rollups = sqlx::query!(
        r#"WITH minutes AS (DELETE FROM tenant_usage_minute WHERE bucket < $1),
                hours AS (DELETE FROM tenant_usage_hour WHERE bucket < $2)
           DELETE FROM key_usage_day WHERE bucket < $2"#,
        minutes_before,
        hours_before,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let flushes = sqlx::query!(
        "DELETE FROM key_usage_flush WHERE flushed_at < $1",
        flushes_before
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(minutes + hours + rollups + flushes)
}
