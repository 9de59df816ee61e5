//! `/t/{slug}/keys…`: creating (shown once), listing (masked) and a key's own page.

mod edit;
mod history;
mod legacy;
mod quick_start;
mod requests;
mod roll_and_revoke;

use gatehouse::domain::keys::format as key_format;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{PASSWORD, TestApp, field_value};
use crate::support::binary::Binary;
use crate::support::fixtures::{
    TenantAdmin, World, create_key, key_link, revealed, roll, submit_key,
};
use crate::support::key_api::{key_api, verify};

async fn key_count(app: &TestApp) -> i64 {
    app.count("api_key").await
}

#[sqlx::test]
async fn a_new_key_is_shown_once_and_then_only_masked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let empty = app.get_html(&admin, "/t/acme/keys").await;
    assert!(empty.contains("No API keys yet"));

    let form = app.get_html(&admin, "/t/acme/keys/new").await;
    let form_id = field_value(&form, "form_id").unwrap();
    let fields = [
        ("form_id", form_id.as_str()),
        ("name", "Billing service"),
        ("environment", "live"),
        ("scopes", "read"),
        ("expiry", "90"),
    ];
    let response = app
        .submit(&admin, "/t/acme/keys/new", "/t/acme/keys", &fields)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    let secret = revealed(&html).unwrap();
    assert!(
        secret.starts_with("ak_live_") && secret.len() == "ak_live_".len() + 38,
        "{secret}"
    );
    assert!(key_format::parse("ak", &secret).is_ok());
    assert!(html.contains("Copy key") && html.contains("only time it is shown"));

    // Sending the same form again (reload, back button) never shows a key or makes another.
    let again = app
        .submit(&admin, "/t/acme/keys/new", "/t/acme/keys", &fields)
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let again = again.text().await.unwrap();
    assert!(again.contains("This key was already shown") && !again.contains(&secret));
    assert_eq!(key_count(&app).await, 1);

    let masked = format!("ak_live_••••{}", &secret[secret.len() - 4..]);
    let list = app.get_html(&admin, "/t/acme/keys").await;
    assert!(list.contains(&masked) && list.contains("Billing service"));
    assert!(!list.contains(&secret[8..]));
    let id = key_link(&list, "acme").unwrap();
    let page = app.get_html(&admin, &format!("/t/acme/keys/{id}")).await;
    assert!(page.contains(&masked) && !page.contains(&secret[8..]));
    assert!(page.contains("read") && page.contains("1000 per minute"));
}

#[sqlx::test]
async fn bad_key_settings_are_refused_with_reasons_and_nothing_is_made(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[
                ("name", " "),
                ("environment", "test"),
                ("scopes", "read"),
                ("expiry", "never"),
            ],
            "Give the key a name",
        ),
        (
            &[("name", "k"), ("environment", "test"), ("expiry", "never")],
            "Choose full access, or the scopes this key may use",
        ),
        (
            &[
                ("name", "k"),
                ("environment", "test"),
                ("access", "full"),
                ("scopes", "read"),
                ("expiry", "never"),
            ],
            "either full access or some scopes, not both",
        ),
        (
            &[
                ("name", "k"),
                ("environment", "test"),
                ("scopes", "admin"),
                ("expiry", "never"),
            ],
            "is not a scope",
        ),
        (
            &[
                ("name", "k"),
                ("environment", "test"),
                ("scopes", "read"),
                ("expiry", "date"),
                ("expiry_date", "2001-01-01"),
            ],
            "must be in the future",
        ),
        (
            &[
                ("name", "k"),
                ("environment", "test"),
                ("scopes", "read"),
                ("expiry", "never"),
                ("rate_limit", "5"),
            ],
            "Only tenant admins",
        ),
    ];
    for (fields, reason) in cases {
        let response = submit_key(&app, &world.developer, "acme", fields).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reason}"
        );
        assert!(response.text().await.unwrap().contains(reason), "{reason}");
    }
    assert_eq!(key_count(&app).await, 0);
    // An admin may choose the rate limit.
    let response = submit_key(
        &app,
        &world.admin,
        "acme",
        &[
            ("name", "k"),
            ("environment", "test"),
            ("scopes", "read"),
            ("expiry", "never"),
            ("rate_limit", "5"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let limit: i32 = sqlx::query_scalar("SELECT rate_limit FROM api_key")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(limit, 5);
}

/// The key API's answer for `key` when `scope` is required.
async fn scope_code(app: &TestApp, key: &str, scope: &str) -> String {
    let answer: Value = verify(app, json!({ "key": key, "scopes": [scope] }))
        .await
        .json()
        .await
        .unwrap();
    answer["code"].as_str().unwrap().to_owned()
}

#[sqlx::test]
async fn a_key_has_exactly_the_access_chosen_and_full_access_covers_scopes_added_later(
    pool: PgPool,
) {
    let app = key_api(pool.clone(), &[]).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let form = app.get_html(&admin, "/t/acme/keys/new").await;
    assert!(form.contains("Full access") && form.contains("Only these scopes"));
    assert!(
        !form.contains(" checked> <span><strong>"),
        "no access is chosen for the user"
    );

    let response = submit_key(
        &app,
        &admin,
        "acme",
        &[
            ("name", "Reader"),
            ("environment", "live"),
            ("access", "scopes"),
            ("scopes", "read"),
            ("expiry", "never"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reader = revealed(&response.text().await.unwrap()).unwrap();
    let (full, _) = create_key(&app, &admin, "acme", "Everything", "live").await;
    let list = app.get_html(&admin, "/t/acme/keys").await;
    assert!(
        list.contains(r#"<td data-label="Scopes">Full access</td>"#)
            && list.contains(r#"<td data-label="Scopes">read</td>"#)
    );

    assert_eq!(scope_code(&app, &reader, "read").await, "VALID");
    assert_eq!(
        scope_code(&app, &reader, "write").await,
        "INSUFFICIENT_SCOPE"
    );
    assert_eq!(scope_code(&app, &full, "write").await, "VALID");

    // The operator adds a scope: full access includes it, chosen scopes do not.
    let wider = key_api(pool, &[("GATEHOUSE_SCOPES", "read,write,deploy")]).await;
    assert_eq!(scope_code(&wider, &full, "deploy").await, "VALID");
    assert_eq!(
        scope_code(&wider, &reader, "deploy").await,
        "INSUFFICIENT_SCOPE"
    );
}

#[sqlx::test]
async fn a_viewer_reads_keys_but_cannot_create_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    create_key(&app, &world.admin, "acme", "Admin's key", "live").await;
    let list = app.get_html(&world.viewer, "/t/acme/keys").await;
    assert!(list.contains("Admin&#39;s key") || list.contains("Admin's key"));
    assert!(!list.contains("New key"));
    assert_eq!(
        app.get(&world.viewer, "/t/acme/keys/new").await.status(),
        StatusCode::FORBIDDEN
    );
    let response = app
        .submit(
            &world.viewer,
            "/t/acme/keys",
            "/t/acme/keys",
            &[
                ("name", "x"),
                ("environment", "test"),
                ("scopes", "read"),
                ("expiry", "never"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(key_count(&app).await, 1);
}

#[sqlx::test]
async fn another_tenants_key_ids_give_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, acme_key) = create_key(&app, &world.admin, "acme", "Acme key", "live").await;
    // The outsider is admin of `other`, and asks for Acme's key through their own tenant.
    for path in [
        format!("/t/other/keys/{acme_key}"),
        format!("/t/other/keys/{acme_key}/roll"),
        format!("/t/acme/keys/{acme_key}"),
    ] {
        assert_eq!(
            app.get(&world.outsider, &path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let response = app
        .submit(
            &world.outsider,
            "/t/other/keys",
            &format!("/t/other/keys/{acme_key}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let revoked: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT revoked_at FROM api_key")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(revoked.is_none());
}

#[sqlx::test]
async fn keys_are_filtered_by_environment_status_and_name_and_paginated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let TenantAdmin {
        client: admin,
        tenant_id,
        ..
    } = TenantAdmin::acme(&app).await;
    // 30 test keys, and one key in each other state, made directly.
    for n in 0..30 {
        sqlx::query("INSERT INTO api_key (tenant_id, name, environment, secret_hash, last_four, scopes, rate_limit, created_at)
                     VALUES ($1, $2, 'test', $3, 'abcd', '{read}', 100, now() - $4 * interval '1 minute')")
            .bind(tenant_id).bind(format!("bulk key {n:02}")).bind(Uuid::new_v4().as_bytes().repeat(2)).bind(n + 10)
            .execute(&app.pool).await.unwrap();
    }
    for (name, extra) in [
        ("expiring soon", "expires_at = now() + interval '2 days'"),
        ("long expired", "expires_at = now() - interval '1 day'"),
        (
            "was rolled",
            "rolled_at = now(), expires_at = now() + interval '1 hour'",
        ),
        ("was revoked", "revoked_at = now()"),
        ("plain live", "environment = 'live'"),
    ] {
        let id: Uuid = sqlx::query_scalar("INSERT INTO api_key (tenant_id, name, environment, secret_hash, last_four, scopes, rate_limit)
                     VALUES ($1, $2, 'test', $3, 'abcd', '{read}', 100) RETURNING api_key_id")
            .bind(tenant_id).bind(name).bind(Uuid::new_v4().as_bytes().repeat(2))
            .fetch_one(&app.pool).await.unwrap();
        sqlx::query(&format!("UPDATE api_key SET {extra} WHERE api_key_id = $1"))
            .bind(id)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let rows = |html: &str| html.matches("<tr").count() - 1;
    for (status, name) in [
        ("expiring", "expiring soon"),
        ("expired", "long expired"),
        ("rolled", "was rolled"),
        ("revoked", "was revoked"),
    ] {
        let html = app
            .get_html(&admin, &format!("/t/acme/keys?status={status}"))
            .await;
        assert_eq!(rows(&html), 1, "{status}");
        assert!(html.contains(name), "{status}");
    }
    let live = app.get_html(&admin, "/t/acme/keys?environment=live").await;
    assert_eq!(rows(&live), 1);
    assert!(live.contains("plain live"));
    let search = app.get_html(&admin, "/t/acme/keys?q=BULK%20KEY%200").await;
    assert_eq!(rows(&search), 10);
    let first = app.get_html(&admin, "/t/acme/keys").await;
    assert_eq!(rows(&first), 25);
    assert!(first.contains("Older"));
    let second = app.get_html(&admin, "/t/acme/keys?page=2").await;
    assert_eq!(rows(&second), 10);
    let none = app
        .get_html(&admin, "/t/acme/keys?q=nothing-like-this")
        .await;
    assert!(none.contains("No keys match"));
}

#[sqlx::test]
async fn neither_the_database_nor_the_logs_ever_contain_a_key(pool: PgPool) {
    let server = Binary::start(&pool, &[("RUST_LOG", "debug")]).await;
    let app = &server.app;
    let admin = TenantAdmin::acme(app).await.client;
    let mut secrets = Vec::new();
    for (name, env) in [("one", "live"), ("two", "test")] {
        secrets.push(create_key(app, &admin, "acme", name, env).await.0);
    }
    let first_id: Uuid = sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE name = 'one'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let rolled = roll(app, &admin, "acme", first_id, "1h").await;
    secrets.push(revealed(&rolled.text().await.unwrap()).unwrap());
    let logs = server.stop().await;
    assert!(logs.contains("key created"), "the log was captured");
    // Every table, the session store included, as text.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
         WHERE table_schema IN ('public', 'tower_sessions') AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut dump = String::new();
    for table in tables {
        let text: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM {table} t"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        dump.push_str(&text.unwrap_or_default());
    }
    let sessions: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(encode(data, 'escape'), '|') FROM tower_sessions.session",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    dump.push_str(&sessions.unwrap_or_default());
    assert!(
        dump.contains("one") && dump.contains("ada@example.com"),
        "the dump has data"
    );
    for secret in &secrets {
        let body = &secret[8..];
        assert!(!dump.contains(body), "a key is in the database");
        assert!(!logs.contains(body), "a key is in the logs");
    }
    assert!(!logs.contains(PASSWORD), "a password is in the logs");
}

mod expiry_reminders {
    //! Mails 30, 7 and 1 days before a key expires: to its creator and, for live keys, the
    //! tenant's admins; each once, also with two instances; not to people who turned them off.

    use std::time::Duration;

    use reqwest::StatusCode;
    use sqlx::PgPool;
    use uuid::Uuid;

    use crate::support::app::{TestApp, location};
    use crate::support::fixtures::{TenantAdmin, create_key, member_client};
    use crate::support::smtp::MailSink;

    fn quick(config: &mut gatehouse::config::Config) {
        config.outbox_poll = Duration::from_millis(50);
        config.expiry_reminder_interval = Duration::from_millis(100);
    }

    async fn expire_in(app: &TestApp, key: Uuid, hours: i64) {
        sqlx::query("UPDATE api_key SET expires_at = now() + make_interval(hours => $2) WHERE api_key_id = $1")
            .bind(key)
            .bind(i32::try_from(hours).unwrap())
            .execute(&app.pool)
            .await
            .unwrap();
    }

    #[sqlx::test]
    async fn reminders_go_out_once_per_threshold_to_the_creator_and_for_live_keys_the_admins(
        pool: PgPool,
    ) {
        let sink = MailSink::start();
        let env = [("GATEHOUSE_SMTP_URL", sink.url())];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let one = TestApp::spawn_with(pool.clone(), &env, quick).await;
        let two = TestApp::spawn_with(pool, &env, quick).await;
        let admin = TenantAdmin::acme(&one).await;
        let dev = member_client(
            &one,
            &admin.client,
            "acme",
            "dev@example.com",
            "Dev",
            "developer",
        )
        .await;
        let (_, live) = create_key(&one, &dev, "acme", "billing", "live").await;
        let (_, test) = create_key(&one, &dev, "acme", "ci", "test").await;

        expire_in(&one, live, 20 * 24).await;
        expire_in(&one, test, 20 * 24).await;
        let live_to_dev = sink
            .mail("dev@example.com", "billing expires in 20 days")
            .await;
        // (Each test instance has its own public URL; a deployment's instances share one.)
        assert!(
            live_to_dev.text.contains(&format!("/t/acme/keys/{live}")),
            "{}",
            live_to_dev.text
        );
        sink.mail("ada@example.com", "billing expires in 20 days")
            .await;
        sink.mail("dev@example.com", "ci expires in 20 days").await;

        // Each threshold once, whatever the number of instances and checks.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            sink.received().len(),
            3 + 3,
            "three reminders; two sign-ups and an invitation"
        );
        expire_in(&one, live, 5 * 24).await;
        sink.mail("dev@example.com", "billing expires in 5 days")
            .await;
        expire_in(&one, live, 12).await;
        sink.mail("dev@example.com", "billing expires in 1 day")
            .await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let to_ada: Vec<_> = sink
            .received()
            .into_iter()
            .filter(|mail| mail.rcpt_to == ["ada@example.com"] && mail.subject.contains("expires"))
            .collect();
        assert_eq!(
            to_ada.len(),
            3,
            "the admin gets the live key's three, not the test key's"
        );
        one.stop().await;
        two.stop().await;
    }

    #[sqlx::test]
    async fn people_who_turned_reminders_off_get_none(pool: PgPool) {
        let sink = MailSink::start();
        let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], quick).await;
        let admin = TenantAdmin::acme(&app).await;
        let page = app.get_html(&admin.client, "/account").await;
        assert!(page.contains(r#"name="expiry_reminders" value="on" checked"#));
        let off = app
            .submit(&admin.client, "/account", "/account/reminders", &[])
            .await;
        assert_eq!(location(&off), "/account");
        let page = app.get_html(&admin.client, "/account").await;
        assert!(page.contains("no longer get key-expiry reminders"));
        assert!(!page.contains(r#"value="on" checked"#));

        let (_, key) = create_key(&app, &admin.client, "acme", "billing", "live").await;
        expire_in(&app, key, 24 * 3).await;
        let reminded: i64 = loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM key_expiry_reminder")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            if n > 0 {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(reminded, 1);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(
            sink.received()
                .iter()
                .all(|mail| !mail.subject.contains("expires")),
            "no reminder"
        );
        assert_eq!(
            app.get(&admin.client, "/account").await.status(),
            StatusCode::OK
        );
    }
}

#[sqlx::test]
async fn key_times_read_in_the_viewers_zone_relative_when_recent_with_the_exact_moment_kept(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, old) = create_key(&app, &admin, "acme", "Old key", "test").await;
    let (_, fresh) = create_key(&app, &admin, "acme", "Fresh key", "test").await;
    sqlx::query("UPDATE api_key SET created_at = '2026-11-03T20:00:00Z', last_used_at = '2026-11-03T20:30:00Z' WHERE api_key_id = $1")
        .bind(old)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE api_key SET last_used_at = now() - interval '5 minutes 10 seconds' WHERE api_key_id = $1")
        .bind(fresh)
        .execute(&app.pool)
        .await
        .unwrap();

    let utc = app.get_html(&admin, "/t/acme/keys").await;
    assert!(utc.contains(r#"<time datetime="2026-11-03T20:00:00Z" title="3 Nov 2026, 20:00:00 UTC">3 Nov 2026</time>"#), "{utc}");
    assert!(utc.contains("Times in UTC"));

    sqlx::query("UPDATE app_user SET time_zone = 'Asia/Tokyo'")
        .execute(&app.pool)
        .await
        .unwrap();
    let tokyo = app.get_html(&admin, "/t/acme/keys").await;
    // 20:00 UTC is 05:00 the next day in Tokyo: the day shown moves with the zone.
    assert!(tokyo.contains(r#"<time datetime="2026-11-03T20:00:00Z" title="4 Nov 2026, 05:00:00 JST">4 Nov 2026</time>"#), "{tokyo}");
    assert!(tokyo.contains(r#"title="4 Nov 2026, 05:30:00 JST">4 Nov 2026, 05:30</time>"#));
    assert!(
        tokyo.contains(">5 minutes ago</time>"),
        "a recent use reads relative"
    );
    assert!(tokyo.contains("Times in Asia/Tokyo"));
    let page = app.get_html(&admin, &format!("/t/acme/keys/{old}")).await;
    assert!(page.contains("4 Nov 2026, 05:30</time>") && page.contains("Times in Asia/Tokyo"));
}
