//! The `login_failure` table: recent failed sign-ins, for throttling.

use sqlx::PgExecutor;
use sqlx::postgres::types::PgInterval;

fn interval(window: std::time::Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Failures for `subject` within `window`, and seconds until the oldest of them leaves it.
pub async fn recent(
    db: impl PgExecutor<'_>,
    subject: &str,
    window: std::time::Duration,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "count!",
                  coalesce(ceil(extract(epoch FROM min(failed_at) + $2::interval - now())), 0)::bigint AS "retry_after!"
           FROM login_failure
           WHERE subject = $1 AND failed_at > now() - $2::interval"#,
        subject,
        interval(window),
    )
    .fetch_one(db)
    .await?;
    Ok((row.count, row.retry_after))
}

/// Records a failure and forgets this subject's failures that have left the window.
pub async fn record(
    db: impl PgExecutor<'_>,
    subject: &str,
    window: std::time::Duration,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"WITH expired AS (
               DELETE FROM login_failure WHERE subject = $1 AND failed_at <= now() - $2::interval
           )
           INSERT INTO login_failure (subject) VALUES ($1)"#,
        subject,
        interval(window),
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn clear(db: impl PgExecutor<'_>, subject: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM login_failure WHERE subject = $1", subject)
        .execute(db)
        .await?;
    Ok(())
}
