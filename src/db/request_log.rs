//! The `request_log` table (partitioned by day) and its gap counters: batched inserts, the
//! partitions' upkeep, and the reads of the Logs page and the key page.

use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::vocabulary::Environment;

/// One record as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub at: OffsetDateTime,
    pub tenant_id: Uuid,
    pub api_key_id: Uuid,
    pub code: &'static str,
    pub detail: Option<String>,
    pub via: &'static str,
    pub client_ip: String,
    pub method: Option<String>,
    pub path: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Writes `rows` in one statement (arrays unnested).
pub async fn insert_batch(db: impl PgExecutor<'_>, rows: &[LogRow]) -> sqlx::Result<()> {
    let mut at = Vec::with_capacity(rows.len());
    let mut tenants = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut codes = Vec::with_capacity(rows.len());
    let mut details = Vec::with_capacity(rows.len());
    let mut vias = Vec::with_capacity(rows.len());
    let mut clients = Vec::with_capacity(rows.len());
    let mut methods = Vec::with_capacity(rows.len());
    let mut paths = Vec::with_capacity(rows.len());
    let mut agents = Vec::with_capacity(rows.len());
    let mut request_ids = Vec::with_capacity(rows.len());
    for row in rows {
        at.push(row.at);
        tenants.push(row.tenant_id);
        keys.push(row.api_key_id);
        codes.push(row.code.to_owned());
        details.push(row.detail.clone());
        vias.push(row.via.to_owned());
        clients.push(row.client_ip.clone());
        methods.push(row.method.clone());
        paths.push(row.path.clone());
        agents.push(row.user_agent.clone());
        request_ids.push(row.request_id.clone());
    }
    sqlx::query!(
        r#"INSERT INTO request_log (at, tenant_id, api_key_id, code, detail, via, client_ip,
                                    method, path, user_agent, request_id)
           SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                $11::text[])"#,
        &at,
        &tenants,
        &keys,
        &codes,
        &details as &[Option<String>],
        &vias,
        &clients,
        &methods as &[Option<String>],
        &paths as &[Option<String>],
        &agents as &[Option<String>],
        &request_ids as &[Option<String>],
    )
    .execute(db)
    .await
    .map(drop)
}

/// Adds to the gap counters of `minute`.
pub async fn add_gap(
    db: impl PgExecutor<'_>,
    minute: OffsetDateTime,
    dropped: i64,
    unknown_key: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO request_log_gap (minute, dropped, unknown_key) VALUES ($1, $2, $3)
           ON CONFLICT (minute) DO UPDATE
           SET dropped = request_log_gap.dropped + EXCLUDED.dropped,
               unknown_key = request_log_gap.unknown_key + EXCLUDED.unknown_key"#,
        minute,
        dropped,
        unknown_key,
    )
    .execute(db)
    .await
    .map(drop)
}

/// Records dropped by any instance since `since`.
pub async fn dropped_since(db: impl PgExecutor<'_>, since: OffsetDateTime) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(sum(dropped), 0)::bigint AS "dropped!" FROM request_log_gap WHERE minute >= $1"#,
        since,
    )
    .fetch_one(db)
    .await
}

pub async fn purge_gaps(db: impl PgExecutor<'_>, before: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM request_log_gap WHERE minute < $1", before)
        .execute(db)
        .await
        .map(drop)
}

/// Takes the maintenance lock for this transaction, unless another instance holds it.
pub async fn try_lock_maintenance(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<bool> {
    // Any fixed number: "request_log" in ASCII, cut to 63 bits.
    const LOCK: i64 = 0x7265_7175_6573_746c;
    sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#, LOCK)
        .fetch_one(&mut **tx)
        .await
}

fn partition_name(day: Date) -> String {
    let digits = day
        .format(format_description!("[year][month][day]"))
        .unwrap_or_default();
    format!("request_log_p{digits}")
}

/// Creates the partition of `day` (UTC) unless it exists.
pub async fn create_partition(conn: &mut PgConnection, day: Date) -> sqlx::Result<()> {
    let bound = |day: Date| {
        day.format(format_description!("[year]-[month]-[day] 00:00:00+00"))
            .unwrap_or_default()
    };
    // DDL takes no parameters; the name and bounds are built from a date, never from input.
    let statement = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF request_log FOR VALUES FROM ('{}') TO ('{}')",
        partition_name(day),
        bound(day),
        bound(day.next_day().unwrap_or(day)),
    );
    sqlx::query(&statement).execute(conn).await.map(drop)
}

/// The partitions of `request_log` with the day each holds.
pub async fn partitions(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, Date)>> {
    let names = sqlx::query_scalar!(
        r#"SELECT c.relname::text AS "name!" FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'request_log'::regclass
           ORDER BY 1"#
    )
    .fetch_all(db)
    .await?;
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let digits = name.strip_prefix("request_log_p")?;
            let day = Date::parse(digits, format_description!("[year][month][day]")).ok()?;
            Some((name, day))
        })
        .collect())
}

/// Drops a partition `partitions` listed.
pub async fn drop_partition(conn: &mut PgConnection, name: &str) -> sqlx::Result<()> {
    // `name` came from the catalogue and matched `request_log_pYYYYMMDD`.
    sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
        .execute(conn)
        .await
        .map(drop)
}

/// What the Logs page narrows to; every field optional.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub api_key_id: Option<Uuid>,
    pub code: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub client_ip: Option<String>,
}

/// A record as the pages show it, with what its key says about the refusal.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub request_log_id: Uuid,
    pub at: OffsetDateTime,
    pub api_key_id: Uuid,
    pub code: String,
    pub detail: Option<String>,
    pub via: String,
    pub client_ip: String,
    pub method: Option<String>,
    pub path: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub key_name: Option<String>,
    pub key_environment: Option<Environment>,
    pub key_last_four: Option<String>,
    pub key_revoked_at: Option<OffsetDateTime>,
    pub key_revoked_by_name: Option<String>,
    pub key_expires_at: Option<OffsetDateTime>,
    pub key_rolled_at: Option<OffsetDateTime>,
}

/// A tenant's records, newest first, older than `before` (the keyset cursor) when given.
pub async fn page(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    filter: &LogFilter,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<LogEntry>> {
    let (before_at, before_id) = before.unzip();
    sqlx::query_as!(
        LogEntry,
        r#"SELECT l.request_log_id, l.at, l.api_key_id, l.code, l.detail, l.via, l.client_ip,
                  l.method, l.path, l.user_agent, l.request_id,
                  k.name AS "key_name?", k.environment AS "key_environment?: Environment",
                  k.last_four AS "key_last_four?", k.revoked_at AS "key_revoked_at?",
                  r.display_name AS "key_revoked_by_name?", k.expires_at AS "key_expires_at?",
                  k.rolled_at AS "key_rolled_at?"
           FROM request_log l
           LEFT JOIN api_key k ON k.api_key_id = l.api_key_id AND k.tenant_id = l.tenant_id
           LEFT JOIN app_user r ON r.app_user_id = k.revoked_by
           WHERE l.tenant_id = $1
             AND ($2::uuid IS NULL OR l.api_key_id = $2)
             AND ($3::text IS NULL OR l.code = $3)
             AND ($4::timestamptz IS NULL OR l.at >= $4)
             AND ($5::timestamptz IS NULL OR l.at < $5)
             AND ($6::text IS NULL OR l.client_ip = $6)
             AND ($7::timestamptz IS NULL OR (l.at, l.request_log_id) < ($7, $8::uuid))
           ORDER BY l.at DESC, l.request_log_id DESC
           LIMIT $9"#,
        tenant_id,
        filter.api_key_id,
        filter.code,
        filter.from,
        filter.to,
        filter.client_ip,
        before_at,
        before_id,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The codes a tenant's records hold, for the filter (beside the known ones).
pub async fn codes(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT code FROM request_log WHERE tenant_id = $1 ORDER BY code",
        tenant_id,
    )
    .fetch_all(db)
    .await
}
