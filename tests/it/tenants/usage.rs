//! `/t/{slug}/usage`, `/t/{slug}/keys/{id}/usage` and their CSV downloads.

use gatehouse::db::metering as db_metering;
use gatehouse::db::usage::{self as db_usage, Grain};
use gatehouse::vocabulary::Code;
use reqwest::StatusCode;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::support::app::{TestApp, assert_redirect};
use crate::support::fixtures::{World, create_key, record_usage};

fn figure_rows(html: &str) -> usize {
    html.matches(r#"<th scope="row">"#).count()
}

#[sqlx::test]
async fn usage_is_shown_by_reason_as_a_chart_and_a_table_of_the_busy_periods(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, busy) = create_key(&app, &world.developer, "acme", "Busy key", "live").await;
    let (_, quiet) = create_key(&app, &world.developer, "acme", "Quiet key", "test").await;
    record_usage(&app.pool, busy, 1, Code::Valid, 40).await;
    record_usage(&app.pool, busy, 1, Code::RateLimited, 7).await;
    record_usage(&app.pool, busy, 5, Code::Revoked, 2).await;
    record_usage(&app.pool, quiet, 2, Code::Valid, 3).await;
    record_usage(&app.pool, quiet, 3 * 60, Code::NotFound, 5).await;
    record_usage(&app.pool, busy, 3 * 24 * 60, Code::Valid, 100).await;

    let hour = app.get_html(&world.viewer, "/t/acme/usage?range=1h").await;
    assert_eq!(figure_rows(&hour), 3, "a row per minute with verifications");
    assert!(hour.contains("57 minutes without verifications left out."));
    assert!(
        hour.contains(r#"<span class="stat-value">52</span>"#),
        "52 in the last hour"
    );
    assert!(hour.contains(r#"<span class="stat-value warn">7</span>"#));
    // Each refusal by its reason, in the figures, the table's columns, the chart and its legend.
    assert!(hour.contains(
        r#"<span class="stat-value bad">2</span><span class="stat-label">revoked key</span>"#
    ));
    assert!(hour.contains(r#"<th scope="col" class="num">Revoked key</th>"#));
    assert!(
        hour.contains("<svg")
            && hour.contains(r#"<rect class="o-limited""#)
            && hour.contains(r#"<rect class="o-revoked""#)
            && hour.contains(r#"<span class="swatch o-revoked"></span>revoked key"#)
            && hour.contains(r#"role="img""#)
    );
    // A reason that did not happen in the period takes no column.
    assert!(!hour.contains("nknown key"));
    assert!(!hour.contains("rejected"));
    // Busiest first.
    let busiest = &hour[hour.find("Busiest keys").unwrap()..];
    assert!(busiest.find("Busy key").unwrap() < busiest.find("Quiet key").unwrap());

    let day = app.get_html(&world.viewer, "/t/acme/usage?range=24h").await;
    assert!((2..=3).contains(&figure_rows(&day)));
    assert!(day.contains(r#"<th scope="col" class="num">Unknown key</th>"#));
    assert!(
        day.contains(r#"<span class="stat-value">57</span>"#),
        "57 in 24 hours"
    );

    let month = app.get_html(&world.viewer, "/t/acme/usage?range=30d").await;
    // A row per day with verifications: today and three days ago, and yesterday too when the
    // test runs in the first hours after midnight (UTC, the viewer's time zone).
    let now = time::OffsetDateTime::now_utc();
    let days: std::collections::BTreeSet<time::Date> = [1, 2, 5, 3 * 60, 3 * 24 * 60]
        .into_iter()
        .map(|minutes_ago| (now - time::Duration::minutes(minutes_ago)).date())
        .collect();
    assert_eq!(
        figure_rows(&month),
        days.len(),
        "a row per day with verifications"
    );
    assert!(month.contains(r#"<span class="stat-value">157</span>"#));
}

#[sqlx::test]
async fn a_keys_usage_counts_that_key_only(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, a) = create_key(&app, &world.admin, "acme", "Key A", "live").await;
    let (_, b) = create_key(&app, &world.admin, "acme", "Key B", "live").await;
    record_usage(&app.pool, a, 1, Code::Valid, 11).await;
    record_usage(&app.pool, b, 1, Code::Valid, 900).await;
    let page = app
        .get_html(&world.viewer, &format!("/t/acme/keys/{a}/usage?range=1h"))
        .await;
    assert!(page.contains("Key A") && page.contains(r#"<span class="stat-value">11</span>"#));
    for range in ["24h", "30d"] {
        let page = app
            .get_html(
                &world.viewer,
                &format!("/t/acme/keys/{a}/usage?range={range}"),
            )
            .await;
        assert!(
            page.contains(r#"<span class="stat-value">11</span>"#),
            "{range}"
        );
    }
    let csv = app
        .get_html(
            &world.viewer,
            &format!("/t/acme/keys/{a}/usage.csv?range=1h"),
        )
        .await;
    let total: i64 = csv
        .lines()
        .skip(1)
        .map(|line| line.rsplit(',').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 11);
    // Another tenant's key, through the outsider's own tenant: not found.
    assert_eq!(
        app.get(&world.outsider, &format!("/t/other/keys/{a}/usage"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&world.outsider, &format!("/t/other/keys/{a}/usage.csv"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn usage_downloads_as_csv(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, key) = create_key(&app, &world.admin, "acme", "Key", "live").await;
    record_usage(&app.pool, key, 0, Code::Valid, 4).await;
    record_usage(&app.pool, key, 0, Code::Expired, 1).await;
    let response = app.get(&world.viewer, "/t/acme/usage.csv?range=24h").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("acme-usage-24h.csv")
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "bucket_start,valid,rate_limited,revoked,expired,environment_mismatch,tenant_mismatch,\
         insufficient_scope,disabled,ip_not_allowed,tenant_suspended,malformed,not_found,total"
    );
    assert_eq!(lines.len(), 25, "every hour, busy or not");
    assert!(
        lines[24].ends_with(",4,0,0,1,0,0,0,0,0,0,0,0,5"),
        "{}",
        lines[24]
    );
}

#[sqlx::test]
async fn the_tenant_home_shows_todays_totals_and_busiest_keys(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let empty = app.get_html(&world.viewer, "/t/acme").await;
    assert!(empty.contains("No verifications yet"));
    let (_, key) = create_key(&app, &world.admin, "acme", "Checkout", "live").await;
    record_usage(&app.pool, key, 10, Code::Valid, 30).await;
    record_usage(&app.pool, key, 10, Code::RateLimited, 2).await;
    let page = app.get_html(&world.viewer, "/t/acme").await;
    assert!(page.contains("<strong>32</strong> verifications"));
    assert!(page.contains("30 valid") && page.contains("2 rate limited"));
    assert!(page.contains("Checkout"));
}

#[sqlx::test]
async fn calls_with_a_revoked_or_expired_key_are_flagged_on_the_overview_key_and_usage_pages(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, key) = create_key(&app, &world.admin, "acme", "Old key", "live").await;
    // Refusals that say nothing about a retired secret raise no alarm.
    record_usage(&app.pool, key, 3, Code::RateLimited, 5).await;
    record_usage(&app.pool, key, 3, Code::InsufficientScope, 2).await;
    let key_page = format!("/t/acme/keys/{key}");
    for path in [
        "/t/acme",
        "/t/acme/usage",
        &key_page,
        &format!("{key_page}/usage"),
    ] {
        let page = app.get_html(&world.viewer, path).await;
        assert!(
            !page.contains("no longer work are still being called"),
            "{path}"
        );
    }

    record_usage(&app.pool, key, 2, Code::Revoked, 3).await;
    record_usage(&app.pool, key, 2, Code::Expired, 1).await;
    let overview = app.get_html(&world.viewer, "/t/acme").await;
    assert!(overview.contains("Keys that no longer work are still being called."));
    assert!(overview.contains(
        "3 calls with a revoked key and 1 call with an expired key in the last 24 hours."
    ));
    assert!(overview.contains(
        r#"<a href="/t/acme/logs?code=REVOKED">See the refused calls in the request log</a>"#
    ));
    for path in [
        "/t/acme/usage?range=1h",
        &key_page,
        &format!("{key_page}/usage"),
    ] {
        let page = app.get_html(&world.viewer, path).await;
        assert!(
            page.contains("Keys that no longer work are still being called."),
            "{path}"
        );
    }
}

#[sqlx::test]
async fn usage_reaches_back_90_days_names_its_units_and_dates_and_every_bar_can_be_focused(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, key) = create_key(&app, &world.developer, "acme", "Old timer", "live").await;
    record_usage(&app.pool, key, 60 * 24 * 60, Code::Valid, 9).await;
    record_usage(&app.pool, key, 2, Code::Valid, 4).await;

    let month = app.get_html(&world.viewer, "/t/acme/usage?range=30d").await;
    assert!(
        month.contains(r#"<span class="stat-value">4</span>"#),
        "60 days ago is outside 30"
    );
    let quarter = app.get_html(&world.viewer, "/t/acme/usage?range=90d").await;
    assert!(quarter.contains("Verifications · Last 90 days"));
    assert!(
        quarter.contains(r#"<span class="stat-value">13</span>"#),
        "{quarter}"
    );
    assert_eq!(
        quarter.matches(r#"<g class="bar" tabindex="0""#).count(),
        90
    );
    assert!(
        quarter.contains(">verifications per day (UTC)</text>"),
        "the y-axis unit"
    );
    assert!(quarter.contains(r#"<th scope="col">Day (UTC)</th>"#));
    // A bar's figures in words, shown when it has focus (keyboard or touch), not only on hover.
    assert!(quarter.contains(r#"aria-label="#) && quarter.contains(": 9 valid</text>"));

    sqlx::query("UPDATE app_user SET time_zone = 'Asia/Tokyo'")
        .execute(&app.pool)
        .await
        .unwrap();
    let day = app.get_html(&world.viewer, "/t/acme/usage?range=24h").await;
    assert!(day.contains(">verifications per hour</text>"));
    assert!(day.contains(r#"<th scope="col">Time (Asia/Tokyo)</th>"#));
    // The first x label carries its date ("3 Dec 14:00"), the rest their time of day.
    let first_label = day.split(r#"dominant-baseline="hanging">"#).nth(1).unwrap();
    let first_label = &first_label[..first_label.find('<').unwrap()];
    assert!(
        first_label.split(' ').count() == 3 && first_label.contains(':'),
        "{first_label}"
    );
}

#[sqlx::test]
async fn the_key_filter_leads_to_that_keys_usage_and_never_to_another_tenants(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, key) = create_key(&app, &world.developer, "acme", "Filtered", "test").await;
    let page = app.get_html(&world.viewer, "/t/acme/usage?range=30d").await;
    assert!(page.contains(&format!(r#"<option value="{key}">Filtered ("#)));
    let response = app
        .get(&world.viewer, &format!("/t/acme/usage?range=30d&key={key}"))
        .await;
    assert_redirect(&response, format!("/t/acme/keys/{key}/usage?range=30d"));
    let page = app
        .get_html(
            &world.viewer,
            &format!("/t/acme/keys/{key}/usage?range=30d"),
        )
        .await;
    assert!(page.contains("Filtered (") && page.contains("Last 30 days"));
    let (_, theirs) = create_key(&app, &world.outsider, "other", "Theirs", "test").await;
    let response = app
        .get(&world.viewer, &format!("/t/acme/usage?key={theirs}"))
        .await;
    assert_redirect(&response, format!("/t/acme/keys/{theirs}/usage?range=24h"));
    let response = app
        .get(&world.viewer, &format!("/t/acme/keys/{theirs}/usage"))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.get(&world.viewer, "/t/acme/usage?key=not-a-key").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// Each key's (valid, total) since `since` at `grain`, summed from the counters themselves, busiest
/// first as the page lists them.
async fn summed(
    pool: &PgPool,
    tenant: Uuid,
    grain: Grain,
    since: OffsetDateTime,
) -> Vec<(Uuid, i64, i64)> {
    let table = match grain {
        Grain::Minute => "key_usage_minute",
        Grain::Hour => "key_usage_hour",
        Grain::Day => "key_usage_day",
    };
    sqlx::query_as(&format!(
        "SELECT u.api_key_id, coalesce(sum(count) FILTER (WHERE outcome = 'VALID'), 0)::bigint,
                sum(count)::bigint
         FROM {table} u JOIN api_key k USING (api_key_id)
         WHERE u.tenant_id = $1 AND bucket >= $2
         GROUP BY u.api_key_id, k.name ORDER BY 3 DESC, k.name"
    ))
    .bind(tenant)
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The busiest keys of every window as of `now`, from the summary, against the counters summed.
async fn assert_busiest_exact(pool: &PgPool, tenant: Uuid, now: OffsetDateTime, when: &str) {
    for grain in Grain::ALL {
        let since = grain.window().start(now);
        let busiest: Vec<(Uuid, i64, i64)> =
            db_usage::busiest_keys(pool, tenant, None, since, grain, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|key| (key.api_key_id, key.valid, key.total))
                .collect();
        assert_eq!(
            busiest,
            summed(pool, tenant, grain, since).await,
            "{grain:?}, {when}"
        );
    }
}

#[sqlx::test]
async fn the_busiest_keys_summary_stays_exact_across_flushes_and_as_its_windows_move(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let tenant: Uuid = sqlx::query_scalar("SELECT tenant_id FROM tenant WHERE slug = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (_, a) = create_key(&app, &world.admin, "acme", "Key A", "live").await;
    let (_, b) = create_key(&app, &world.admin, "acme", "Key B", "live").await;
    // One flush each: the same minute twice, both edges of the last hour, of the last day and of
    // the last 30 days, valid and refused.
    let day = 24 * 60;
    for (key, minutes_ago, outcome, count) in [
        (a, 0, Code::Valid, 5),
        (a, 0, Code::Valid, 3),
        (a, 30, Code::RateLimited, 4),
        (a, 58, Code::Valid, 2),
        (a, 61, Code::Valid, 7),
        (a, 23 * 60 - 30, Code::Valid, 11),
        (a, 25 * 60, Code::Valid, 13),
        (a, 3 * day, Code::Revoked, 6),
        (a, 31 * day, Code::Valid, 17),
        (b, 1, Code::Valid, 9),
        (b, 45, Code::Expired, 8),
        (b, 2 * 60, Code::Valid, 30),
        (b, 20 * day, Code::Valid, 40),
    ] {
        record_usage(&app.pool, key, minutes_ago, outcome, count).await;
    }
    let now = OffsetDateTime::now_utc();
    assert_busiest_exact(&app.pool, tenant, now, "after the flushes").await;
    let hour = app.get_html(&world.viewer, "/t/acme/usage?range=1h").await;
    assert!(
        hour.contains(
            r#"<td data-label="Name">Key B</td><td class="num" data-label="Valid">9</td><td class="num" data-label="All verifications">17</td>"#
        ) && hour.contains(
            r#"<td data-label="Name">Key A</td><td class="num" data-label="Valid">10</td><td class="num" data-label="All verifications">14</td>"#
        ),
        "the hour's busiest keys with their figures, Key B first"
    );

    // The windows moved on by the batch (as ten minutes later): buckets that left are taken off;
    // readers of the current window add them back.
    let later = now + Duration::minutes(10);
    db_metering::move_windows(&mut app.pool.acquire().await.unwrap(), later)
        .await
        .unwrap();
    assert_busiest_exact(&app.pool, tenant, later, "ten minutes on").await;
    assert_busiest_exact(&app.pool, tenant, now, "read from before the move").await;
    record_usage(&app.pool, a, 0, Code::Valid, 1).await;
    record_usage(&app.pool, b, 50, Code::Valid, 100).await;
    assert_busiest_exact(&app.pool, tenant, later, "flushed after the move").await;
    assert_busiest_exact(
        &app.pool,
        tenant,
        now,
        "flushed after the move, read from before",
    )
    .await;

    // Two days on, the hour's and the day's windows are empty and summed afresh, the month's moved.
    let days_later = now + Duration::days(2);
    db_metering::move_windows(&mut app.pool.acquire().await.unwrap(), days_later)
        .await
        .unwrap();
    assert_busiest_exact(&app.pool, tenant, days_later, "two days on").await;
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT grain FROM key_usage_window WHERE tenant_id = $1 ORDER BY 1")
            .bind(tenant)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, ["day", "day"], "emptied windows are deleted");
}

#[sqlx::test]
async fn the_environment_filter_counts_that_environments_keys_only_in_every_range_and_the_csv(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, live) = create_key(&app, &world.admin, "acme", "Production key", "live").await;
    let (_, test) = create_key(&app, &world.admin, "acme", "Sandbox key", "test").await;
    record_usage(&app.pool, live, 1, Code::Valid, 40).await;
    record_usage(&app.pool, test, 2, Code::Valid, 3).await;
    record_usage(&app.pool, test, 2, Code::NotFound, 2).await;

    let both = app.get_html(&world.viewer, "/t/acme/usage?range=1h").await;
    assert!(both.contains(r#"<span class="stat-value">45</span>"#));
    for range in ["1h", "24h", "30d"] {
        let page = app
            .get_html(
                &world.viewer,
                &format!("/t/acme/usage?range={range}&environment=test"),
            )
            .await;
        assert!(
            page.contains(
                r#"<span class="stat-value">5</span><span class="stat-label">verifications</span>"#
            ),
            "{range}: the test key's 5 only"
        );
        assert!(
            page.contains("test keys</h2>"),
            "{range}: the heading says so"
        );
        let busiest = &page[page.find("Busiest keys").unwrap()..];
        assert!(busiest.contains("Sandbox key") && !busiest.contains("Production key"));
        // The period links and the download keep the filter.
        let links = page.replace("&#38;", "&").replace("&amp;", "&");
        assert!(links.contains(r#"href="/t/acme/usage?range=24h&environment=test""#));
        assert!(links.contains(&format!(
            r#"href="/t/acme/usage.csv?range={range}&environment=test""#
        )));
    }
    let live_page = app
        .get_html(&world.viewer, "/t/acme/usage?range=24h&environment=live")
        .await;
    assert!(live_page.contains(
        r#"<span class="stat-value">40</span><span class="stat-label">verifications</span>"#
    ));
    assert!(
        !live_page.contains("unknown key"),
        "the test key's refusals are left out"
    );

    let csv = app
        .get(
            &world.viewer,
            "/t/acme/usage.csv?range=24h&environment=test",
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.lines().last().unwrap().ends_with(",5"), "{csv}");
}

#[sqlx::test]
async fn the_environment_filter_never_counts_another_tenants_keys(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, ours) = create_key(&app, &world.admin, "acme", "Ours", "test").await;
    let (_, theirs) = create_key(&app, &world.outsider, "other", "Theirs", "test").await;
    record_usage(&app.pool, ours, 1, Code::Valid, 2).await;
    record_usage(&app.pool, theirs, 1, Code::Valid, 50).await;
    let page = app
        .get_html(&world.viewer, "/t/acme/usage?range=1h&environment=test")
        .await;
    assert!(page.contains(
        r#"<span class="stat-value">2</span><span class="stat-label">verifications</span>"#
    ));
    assert!(!page.contains("Theirs"));
}
