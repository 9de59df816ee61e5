//! `/t/{slug}/logs` (+ `.csv`) and the key page's recent calls: the request log as members read it,
//! filled by real calls through the key API.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::TestApp;
use crate::support::fixtures::{TenantAdmin, create_key, submit_key};
use crate::support::key_api::{key_api, logged, verify};

/// Verifies `key` with `extra` fields merged into the body; asserts the code.
async fn call(app: &TestApp, key: &str, extra: Value, code: &str) {
    let mut body = json!({ "key": key });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let response = verify(app, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["code"], code);
}

/// A test key with only the `read` scope, made through the portal; (secret, id).
async fn read_only_key(app: &TestApp, client: &Client, slug: &str) -> (String, Uuid) {
    let response = submit_key(
        app,
        client,
        slug,
        &[
            ("name", "Reader"),
            ("environment", "test"),
            ("access", "scopes"),
            ("scopes", "read"),
            ("expiry", "never"),
        ],
    )
    .await;
    let html = response.text().await.unwrap();
    (
        crate::support::fixtures::revealed(&html).unwrap(),
        crate::support::fixtures::key_link(&html, slug).unwrap(),
    )
}

async fn revoke(app: &TestApp, client: &Client, slug: &str, id: Uuid) {
    let path = format!("/t/{slug}/keys/{id}/revoke");
    let response = app.submit(client, &path, &path, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn refused_calls_are_explained_on_the_logs_page_and_the_key_page(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    let (revoked, revoked_id) = create_key(&app, &ada, "acme", "Old CI", "test").await;
    revoke(&app, &ada, "acme", revoked_id).await;
    let (reader, reader_id) = read_only_key(&app, &ada, "acme").await;

    let request = json!({ "request": {
        "method": "post", "path": "/orders/42?token=hunter2&page=3", "user_agent": "billing-cron/1.2"
    }});
    call(&app, &revoked, request.clone(), "REVOKED").await;
    call(
        &app,
        &reader,
        json!({ "environment": "live" }),
        "ENVIRONMENT_MISMATCH",
    )
    .await;
    call(
        &app,
        &reader,
        json!({ "scopes": ["read", "write"] }),
        "INSUFFICIENT_SCOPE",
    )
    .await;
    call(&app, &reader, request, "VALID").await;
    logged(&app, 4).await;

    let page = app.get_html(&ada, "/t/acme/logs").await;
    assert!(page.contains("The key was revoked by Ada on"), "{page}");
    assert!(page.contains("A test key on a live route."));
    assert!(page.contains("The key lacks the write scope."));
    assert!(page.contains("Accepted."));
    assert!(page.contains("POST /orders/42"));
    assert!(page.contains("billing-cron/1.2"));
    assert!(!page.contains("hunter2"), "the query string is never kept");
    assert!(page.contains("(verify API, no request details)"));

    let key_page = app
        .get_html(&ada, &format!("/t/acme/keys/{revoked_id}"))
        .await;
    assert!(key_page.contains("Recent calls"));
    assert!(key_page.contains("The key was revoked by Ada on"));
    assert!(
        !key_page.contains("A test key on a live route."),
        "only this key's calls"
    );
    let other_key = app
        .get_html(&ada, &format!("/t/acme/keys/{reader_id}"))
        .await;
    assert!(other_key.contains("The key lacks the write scope."));
    assert!(!other_key.contains("revoked by Ada"));
}

/// `at` as the portal writes a stamp for a viewer in Tokyo (UTC+9 all year): "4 Nov 2026, 05:00:09"
/// in the title, and on the page with the date kept on one line.
fn in_tokyo(at: time::OffsetDateTime) -> (String, String) {
    let title = at
        .to_offset(time::macros::offset!(+9))
        .format(time::macros::format_description!(
            "[day padding:none] [month repr:short] [year], [hour]:[minute]:[second]"
        ))
        .unwrap();
    let (date, time) = title.split_once(", ").unwrap();
    let shown = format!("{}, {time}", date.replace(' ', "\u{a0}"));
    (title, shown)
}

#[sqlx::test]
async fn calls_and_audit_events_read_in_the_viewers_zone_with_how_long_ago_beside_them(
    pool: PgPool,
) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    sqlx::query("UPDATE app_user SET time_zone = 'Asia/Tokyo'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (reader, reader_id) = read_only_key(&app, &ada, "acme").await;
    call(
        &app,
        &reader,
        json!({ "environment": "live" }),
        "ENVIRONMENT_MISMATCH",
    )
    .await;
    logged(&app, 1).await;
    let at: time::OffsetDateTime = sqlx::query_scalar("SELECT at FROM request_log")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (title, stamp) = in_tokyo(at);

    // The log and the key's recent calls: the date and time in Tokyo, named on hover.
    let logs = app.get_html(&ada, "/t/acme/logs").await;
    assert!(
        logs.contains(&format!(
            r#"title="{title} JST">{stamp}</time> <span class="relative">("#
        )),
        "{title}: {logs}"
    );
    assert!(!logs.contains(" UTC<"), "no time reads in UTC: {logs}");
    assert!(logs.contains("From (Asia/Tokyo)"));
    let key_page = app
        .get_html(&ada, &format!("/t/acme/keys/{reader_id}"))
        .await;
    assert!(
        key_page.contains(&format!(r#"title="{title} JST">{stamp}</time>"#)),
        "{key_page}"
    );
    // A recent moment after a verb takes no preposition: "Created by Ada just now".
    assert!(
        key_page.contains("<strong>Created</strong> by Ada <time"),
        "{key_page}"
    );
    assert!(!key_page.contains(" on <time") && !key_page.contains("on just now"));

    // Filters are typed on the same clock: the call's own minute in Tokyo starts a range that
    // holds it and ends one that does not.
    let typed = at
        .to_offset(time::macros::offset!(+9))
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]"
        ))
        .unwrap();
    let rows = |html: &str| html.matches("<tr class=\"call-").count();
    let from = app
        .get_html(&ada, &format!("/t/acme/logs?from={typed}"))
        .await;
    assert_eq!(rows(&from), 1, "from {typed} in Tokyo holds the call");
    let to = app
        .get_html(&ada, &format!("/t/acme/logs?to={typed}"))
        .await;
    assert_eq!(rows(&to), 0, "to {typed} in Tokyo ends before the call");

    // The audit log: the date and time, with the relative form beside it.
    let created: time::OffsetDateTime = sqlx::query_scalar(
        "SELECT at FROM audit_event WHERE action = 'key.created' ORDER BY at DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let audit = app.get_html(&ada, "/t/acme/audit").await;
    let (title, created) = in_tokyo(created);
    assert!(
        audit.contains(&format!(
            r#"title="{title} JST">{created}</time> <span class="relative">("#
        )),
        "{title}: {audit}"
    );
    assert!(!audit.contains(">just now</time>") && !audit.contains("ago</time>"));
}

/// The page's text with tags dropped and entities read, for comparing with an API's message.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&#x60;", "`")
        .replace("&#96;", "`")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[sqlx::test]
async fn an_allowlist_refusal_is_explained_in_the_words_the_api_answered(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    let response = submit_key(
        &app,
        &ada,
        "acme",
        &[
            ("name", "Pinned"),
            ("environment", "test"),
            ("access", "full"),
            ("expiry", "never"),
            ("ip_allowlist", "10.0.0.0/8"),
        ],
    )
    .await;
    let html = response.text().await.unwrap();
    let key = crate::support::fixtures::revealed(&html).unwrap();
    let id = crate::support::fixtures::key_link(&html, "acme").unwrap();

    // Without `client_ip` (the caller is at 127.0.0.1), then from an address off the list.
    let mut messages = Vec::new();
    for body in [
        json!({ "key": key }),
        json!({ "key": key, "client_ip": "198.51.100.7" }),
    ] {
        let answer: Value = verify(&app, body).await.json().await.unwrap();
        assert_eq!(answer["code"], "IP_NOT_ALLOWED");
        messages.push(answer["message"].as_str().unwrap().to_owned());
    }
    assert!(
        messages[0].contains("no client address was given"),
        "{messages:?}"
    );
    logged(&app, 2).await;

    let page = text_of(&app.get_html(&ada, "/t/acme/logs").await);
    let key_page = text_of(&app.get_html(&ada, &format!("/t/acme/keys/{id}")).await);
    let csv = app
        .get(&ada, "/t/acme/logs.csv")
        .await
        .text()
        .await
        .unwrap();
    for message in &messages {
        assert!(
            page.contains(message.as_str()),
            "the log page says {message:?}: {page}"
        );
        assert!(
            key_page.contains(message.as_str()),
            "the key page says {message:?}"
        );
        assert!(
            csv.contains(message.as_str()),
            "the CSV says {message:?}: {csv}"
        );
    }
    assert!(
        !page.contains("127.0.0.1 is not on"),
        "the caller's own address was not what was checked"
    );
}

#[sqlx::test]
async fn an_empty_log_says_what_will_appear_there(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    let page = app.get_html(&ada, "/t/acme/logs").await;
    assert!(page.contains("No calls recorded yet."));
    assert!(!page.contains("were dropped"), "no drops, no warning");
    let key_id = create_key(&app, &ada, "acme", "CI", "test").await.1;
    let key_page = app.get_html(&ada, &format!("/t/acme/keys/{key_id}")).await;
    assert!(key_page.contains("No calls recorded for this key yet."));
}

#[sqlx::test]
async fn filters_narrow_the_log_and_the_csv_follows_them(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    let (revoked, revoked_id) = create_key(&app, &ada, "acme", "Old CI", "test").await;
    revoke(&app, &ada, "acme", revoked_id).await;
    let (reader, reader_id) = read_only_key(&app, &ada, "acme").await;
    let formula = json!({ "client_ip": "198.51.100.7",
        "request": { "path": "/=cmd", "user_agent": "=HYPERLINK(\"http://evil.example\")" } });
    call(
        &app,
        &revoked,
        json!({ "client_ip": "203.0.113.9" }),
        "REVOKED",
    )
    .await;
    call(&app, &revoked, formula, "REVOKED").await;
    call(
        &app,
        &reader,
        json!({ "scopes": ["write"], "client_ip": "203.0.113.9" }),
        "INSUFFICIENT_SCOPE",
    )
    .await;
    logged(&app, 3).await;
    let rows = |html: &str| html.matches("<tr class=\"call-").count();

    assert_eq!(rows(&app.get_html(&ada, "/t/acme/logs").await), 3);
    let by_key = app
        .get_html(&ada, &format!("/t/acme/logs?key={reader_id}"))
        .await;
    assert_eq!(rows(&by_key), 1);
    assert!(by_key.contains("The key lacks the write scope."));
    let by_code = app.get_html(&ada, "/t/acme/logs?code=REVOKED").await;
    assert_eq!(rows(&by_code), 2);
    let by_address = app.get_html(&ada, "/t/acme/logs?address=203.0.113.9").await;
    assert_eq!(rows(&by_address), 2);
    let both = app
        .get_html(&ada, "/t/acme/logs?code=REVOKED&address=203.0.113.9")
        .await;
    assert_eq!(rows(&both), 1);
    let future = app
        .get_html(&ada, "/t/acme/logs?from=2099-01-01T00:00")
        .await;
    assert_eq!(rows(&future), 0);
    assert!(future.contains("No calls match these filters."));
    let past = app
        .get_html(
            &ada,
            "/t/acme/logs?from=2020-01-01T00:00&to=2099-01-01T00:00",
        )
        .await;
    assert_eq!(rows(&past), 3);

    let bad = app
        .get_html(&ada, "/t/acme/logs?from=yesterday&address=300.1.1.1")
        .await;
    assert!(bad.contains("From must be a date and time like 2026-11-03T14:30."));
    assert!(bad.contains("is not an IPv4 or IPv6 address"));
    assert!(
        bad.contains(r#"value="yesterday""#),
        "what was typed is kept"
    );

    let response = app
        .get(&ada, "/t/acme/logs.csv?code=REVOKED&address=198.51.100.7")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("time,key_id,key,code,explanation"));
    assert!(lines[1].contains("\"REVOKED\""));
    assert!(
        lines[1].contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""),
        "{csv}"
    );
    assert!(lines[1].contains("\"'/=cmd\"") || lines[1].contains("\"/=cmd\""));
    assert!(
        !csv.contains(",\"=") && !csv.contains(",="),
        "no cell starts a formula"
    );
    let refused = app.get(&ada, "/t/acme/logs.csv?address=nonsense").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn older_pages_follow_a_keyset_cursor_without_repeats(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    let (revoked, revoked_id) = create_key(&app, &ada, "acme", "Old CI", "test").await;
    revoke(&app, &ada, "acme", revoked_id).await;
    for _ in 0..55 {
        call(&app, &revoked, json!({}), "REVOKED").await;
    }
    logged(&app, 55).await;
    let first = app.get_html(&ada, "/t/acme/logs?code=REVOKED").await;
    assert_eq!(first.matches("<tr class=\"call-").count(), 50);
    let start = first
        .find("/t/acme/logs?code=REVOKED&#38;before=")
        .unwrap_or_else(|| panic!("an Older link: {}", &first[first.len() - 1200..]));
    let end = first[start..].find('"').unwrap() + start;
    let older = first[start..end].replace("&#38;", "&");
    let second = app.get_html(&ada, &older).await;
    assert_eq!(second.matches("<tr class=\"call-").count(), 5);
    assert!(second.contains("← Newer"));
    let broken = app.get_html(&ada, "/t/acme/logs?before=garbage").await;
    assert!(broken.contains("That page link is broken"));
}

#[sqlx::test]
async fn another_tenants_calls_never_show(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    let globex = TenantAdmin::create(&app, "gus@example.com", "Gus", "Globex", "globex").await;
    let (theirs, their_id) = create_key(&app, &globex.client, "globex", "Globex CI", "test").await;
    revoke(&app, &globex.client, "globex", their_id).await;
    call(
        &app,
        &theirs,
        json!({ "client_ip": "192.0.2.55" }),
        "REVOKED",
    )
    .await;
    logged(&app, 1).await;

    let theirs_page = app.get_html(&globex.client, "/t/globex/logs").await;
    assert!(theirs_page.contains("192.0.2.55"));
    for path in [
        "/t/acme/logs".to_owned(),
        format!("/t/acme/logs?key={their_id}"),
        "/t/acme/logs?address=192.0.2.55".to_owned(),
    ] {
        let page = app.get_html(&ada, &path).await;
        assert_eq!(page.matches("<tr class=\"call-").count(), 0, "{path}");
        assert!(!page.contains("Globex CI"), "{path}");
    }
    let csv = app
        .get(&ada, &format!("/t/acme/logs.csv?key={their_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1, "only the header: {csv}");
    let not_a_member = app.get(&ada, "/t/globex/logs").await;
    assert_eq!(not_a_member.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn records_dropped_by_a_full_buffer_are_announced_not_silent(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let ada = TenantAdmin::acme(&app).await.client;
    // What the writer adds after a flush in which the buffer was full.
    gatehouse::db::request_log::add_gap(&app.pool, time::OffsetDateTime::now_utc(), 1234, 0)
        .await
        .unwrap();
    let page = app.get_html(&ada, "/t/acme/logs").await;
    assert!(
        page.contains("1234 records were dropped in the last 24 hours"),
        "{page}"
    );
}
