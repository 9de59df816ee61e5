//! `/t/{slug}/keys/...`: creating (shown once), listing (masked), rolling and revoking keys.

use std::process::Stdio;
use std::time::Duration;

use gatehouse::domain::keys;
use reqwest::{Client, StatusCode};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{TestApp, location};
use crate::tenants::{World, create_tenant};

/// Submits the new-key form; returns the response.
pub async fn submit_key(
    app: &TestApp,
    client: &Client,
    slug: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let form_page = format!("/t/{slug}/keys/new");
    let html = app.get(client, &form_page).await.text().await.unwrap();
    let form_id = value_of(&html, "form_id").expect("the form has an id");
    let mut all: Vec<(&str, &str)> = vec![("form_id", &form_id)];
    all.extend_from_slice(fields);
    app.submit(client, &form_page, &format!("/t/{slug}/keys"), &all)
        .await
}

/// Creates a key through the portal and returns (secret, key id).
pub async fn create_key(
    app: &TestApp,
    client: &Client,
    slug: &str,
    name: &str,
    environment: &str,
) -> (String, Uuid) {
    let response = submit_key(
        app,
        client,
        slug,
        &[
            ("name", name),
            ("environment", environment),
            ("full_access", "1"),
            ("expiry", "never"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "key creation");
    let html = response.text().await.unwrap();
    let secret = revealed(&html).expect("the new key is shown");
    let id = key_link(&html, slug).expect("a link to the key's page");
    (secret, id)
}

/// Rolls a key through its roll form (so with a fresh form id), with a grace of `grace`.
async fn roll(
    app: &TestApp,
    client: &Client,
    slug: &str,
    id: Uuid,
    grace: &str,
) -> reqwest::Response {
    let path = format!("/t/{slug}/keys/{id}/roll");
    let form = app.get(client, &path).await.text().await.unwrap();
    let form_id = value_of(&form, "form_id").unwrap();
    app.submit(
        client,
        &path,
        &path,
        &[("grace", grace), ("form_id", &form_id)],
    )
    .await
}

fn value_of(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

pub fn revealed(html: &str) -> Option<String> {
    let start = html.find(r#"id="new-key""#)?;
    let from = html[start..].find(r#"value=""#)? + start + 7;
    let end = html[from..].find('"')? + from;
    Some(html[from..end].to_owned())
}

fn key_link(html: &str, slug: &str) -> Option<Uuid> {
    let marker = format!("/t/{slug}/keys/");
    html.match_indices(&marker)
        .filter_map(|(at, _)| html[at + marker.len()..].get(..36)?.parse().ok())
        .next()
}

async fn key_count(app: &TestApp) -> i64 {
    app.count("api_key").await
}

#[sqlx::test]
async fn a_new_key_is_shown_once_and_then_only_masked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let empty = app.get(&admin, "/t/acme/keys").await.text().await.unwrap();
    assert!(empty.contains("No API keys yet"));

    let form = app
        .get(&admin, "/t/acme/keys/new")
        .await
        .text()
        .await
        .unwrap();
    let form_id = value_of(&form, "form_id").unwrap();
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
    assert!(keys::parse("ak", &secret).is_ok());
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
    let list = app.get(&admin, "/t/acme/keys").await.text().await.unwrap();
    assert!(list.contains(&masked) && list.contains("Billing service"));
    assert!(!list.contains(&secret[8..]));
    let id = key_link(&list, "acme").unwrap();
    let page = app
        .get(&admin, &format!("/t/acme/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&masked) && !page.contains(&secret[8..]));
    assert!(page.contains("read") && page.contains("1000 per minute"));
}

#[sqlx::test]
async fn bad_key_settings_are_refused_with_reasons_and_nothing_is_made(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let cases: [(&[(&str, &str)], &str); 5] = [
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
            "at least one scope",
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

#[sqlx::test]
async fn a_developer_cannot_roll_or_revoke_another_members_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, admins_key) = create_key(&app, &world.admin, "acme", "Admin's key", "live").await;
    let page = app
        .get(&world.developer, &format!("/t/acme/keys/{admins_key}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Roll key") && page.contains("Only its creator or a tenant admin"));
    assert_eq!(
        app.get(&world.developer, &format!("/t/acme/keys/{admins_key}/roll"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let roll = app
        .submit(
            &world.developer,
            "/t/acme/keys",
            &format!("/t/acme/keys/{admins_key}/roll"),
            &[("grace", "none"), ("form_id", "x1")],
        )
        .await;
    assert_eq!(roll.status(), StatusCode::FORBIDDEN);
    let revoke = app
        .submit(
            &world.developer,
            "/t/acme/keys",
            &format!("/t/acme/keys/{admins_key}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::FORBIDDEN);
    assert!(
        revoke
            .text()
            .await
            .unwrap()
            .contains("only the keys they created")
    );
    let (revoked, rolled): (Option<time::OffsetDateTime>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT revoked_at, rolled_at FROM api_key WHERE api_key_id = $1")
            .bind(admins_key)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(revoked.is_none() && rolled.is_none());
    assert_eq!(key_count(&app).await, 1);

    // Their own key they can revoke; an admin can revoke anyone's.
    let (_, own) = create_key(&app, &world.developer, "acme", "Dev's key", "test").await;
    let response = app
        .submit(
            &world.developer,
            "/t/acme/keys",
            &format!("/t/acme/keys/{own}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, another) = create_key(&app, &world.developer, "acme", "Dev's second key", "test").await;
    let response = app
        .submit(
            &world.admin,
            "/t/acme/keys",
            &format!("/t/acme/keys/{another}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn a_viewer_reads_keys_but_cannot_create_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    create_key(&app, &world.admin, "acme", "Admin's key", "live").await;
    let list = app
        .get(&world.viewer, "/t/acme/keys")
        .await
        .text()
        .await
        .unwrap();
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
async fn rolling_makes_a_linked_successor_and_keeps_the_old_key_for_the_grace(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let (old_secret, old_id) = create_key(&app, &admin, "acme", "Billing", "live").await;
    let form = app
        .get(&admin, &format!("/t/acme/keys/{old_id}/roll"))
        .await
        .text()
        .await
        .unwrap();
    assert!(form.contains("Roll Billing?"));
    let form_id = value_of(&form, "form_id").unwrap();
    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{old_id}"),
            &format!("/t/acme/keys/{old_id}/roll"),
            &[("grace", "1h"), ("form_id", &form_id)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    let new_secret = revealed(&html).unwrap();
    assert_ne!(new_secret, old_secret);
    assert!(html.contains("keeps working until"));

    let (rolled_at, expires_at): (Option<time::OffsetDateTime>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT rolled_at, expires_at FROM api_key WHERE api_key_id = $1")
            .bind(old_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(rolled_at.is_some());
    let left = expires_at.unwrap() - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(59) && left <= time::Duration::hours(1),
        "{left}"
    );
    let new_id: Uuid = sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE rolled_from = $1")
        .bind(old_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (name, scopes, env): (String, Vec<String>, String) =
        sqlx::query_as("SELECT name, scopes, environment FROM api_key WHERE api_key_id = $1")
            .bind(new_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (name.as_str(), scopes, env.as_str()),
        (
            "Billing",
            vec!["read".to_owned(), "write".to_owned()],
            "live"
        )
    );

    // Linked on both pages.
    let old_page = app
        .get(&admin, &format!("/t/acme/keys/{old_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(old_page.contains(&format!("/t/acme/keys/{new_id}")) && old_page.contains("rolled"));
    let new_page = app
        .get(&admin, &format!("/t/acme/keys/{new_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(new_page.contains(&format!("/t/acme/keys/{old_id}")));
    // A rolled key cannot be rolled again.
    assert_eq!(
        app.get(&admin, &format!("/t/acme/keys/{old_id}/roll"))
            .await
            .status(),
        StatusCode::CONFLICT
    );
}

#[sqlx::test]
async fn revoking_asks_first_then_takes_effect_and_stays_listed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let (_, id) = create_key(&app, &admin, "acme", "Old integration", "test").await;
    let confirm = app
        .get(&admin, &format!("/t/acme/keys/{id}/revoke"))
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("Revoke Old integration?") && confirm.contains("cannot be undone"));
    let revoked: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT revoked_at FROM api_key")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(revoked.is_none(), "the confirmation page changes nothing");
    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{id}/revoke"),
            &format!("/t/acme/keys/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(location(&response), format!("/t/acme/keys/{id}"));
    let page = app
        .get(&admin, &format!("/t/acme/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Key revoked") && page.contains("Revoked</strong> by Ada"));
    let list = app.get(&admin, "/t/acme/keys").await.text().await.unwrap();
    assert!(list.contains(r#"class="inactive""#) && list.contains("status-revoked"));
    let again = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{id}"),
            &format!("/t/acme/keys/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[sqlx::test]
async fn every_create_roll_and_revoke_is_in_the_audit_log(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let (secret, id) = create_key(&app, &admin, "acme", "Audited", "live").await;
    roll(&app, &admin, "acme", id, "none").await;
    app.submit(
        &admin,
        "/t/acme/keys",
        &format!("/t/acme/keys/{id}/revoke"),
        &[],
    )
    .await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE action LIKE 'key.%' ORDER BY at, action",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["key.created", "key.rolled", "key.revoked"]);
    let log = app
        .get(&admin, "/t/acme/audit?action=key.rolled")
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("key:Audited (ak_live_••••"));
    assert!(!log.contains(&secret[8..]));
}

#[sqlx::test]
async fn keys_are_filtered_by_environment_status_and_name_and_paginated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let tenant_id: Uuid = sqlx::query_scalar("SELECT tenant_id FROM tenant")
        .fetch_one(&app.pool)
        .await
        .unwrap();
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
            .get(&admin, &format!("/t/acme/keys?status={status}"))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(rows(&html), 1, "{status}");
        assert!(html.contains(name), "{status}");
    }
    let live = app
        .get(&admin, "/t/acme/keys?environment=live")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&live), 1);
    assert!(live.contains("plain live"));
    let search = app
        .get(&admin, "/t/acme/keys?q=BULK%20KEY%200")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&search), 10);
    let first = app.get(&admin, "/t/acme/keys").await.text().await.unwrap();
    assert_eq!(rows(&first), 25);
    assert!(first.contains("Older"));
    let second = app
        .get(&admin, "/t/acme/keys?page=2")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&second), 10);
    let none = app
        .get(&admin, "/t/acme/keys?q=nothing-like-this")
        .await
        .text()
        .await
        .unwrap();
    assert!(none.contains("No keys match"));
}

#[sqlx::test]
async fn neither_the_database_nor_the_logs_ever_contain_a_key(pool: PgPool) {
    // The real binary, with debug logging, its output captured.
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let base_url = std::env::var("DATABASE_URL").unwrap();
    let url = format!("{}/{database}", base_url.rsplit_once('/').unwrap().0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = std::env::temp_dir().join(format!("gatehouse-log-{}.txt", Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env("DATABASE_URL", &url)
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let app = TestApp::external(format!("http://127.0.0.1:{port}"), pool.clone());
    for _ in 0..100 {
        if reqwest::get(app.url("/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let mut secrets = Vec::new();
    for (name, env) in [("one", "live"), ("two", "test")] {
        secrets.push(create_key(&app, &admin, "acme", name, env).await.0);
    }
    let first_id: Uuid = sqlx::query_scalar("SELECT api_key_id FROM api_key WHERE name = 'one'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let rolled = roll(&app, &admin, "acme", first_id, "1h").await;
    secrets.push(revealed(&rolled.text().await.unwrap()).unwrap());
    let _ = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.id().unwrap().to_string())
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
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
    assert!(
        !logs.contains(crate::support::app::PASSWORD),
        "a password is in the logs"
    );
}

#[sqlx::test]
async fn a_key_revoked_or_rolled_in_the_portal_is_refused_by_the_key_api_at_once(pool: PgPool) {
    let app = crate::support::fixtures::key_api(pool, &[]).await;
    let admin = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let (revoked, revoked_id) = create_key(&app, &admin, "acme", "To revoke", "live").await;
    let (rolled, rolled_id) = create_key(&app, &admin, "acme", "To roll", "live").await;
    // Both are verified, so both are in the cache.
    for secret in [&revoked, &rolled] {
        assert_eq!(
            crate::support::fixtures::code_of(&app, secret).await,
            "VALID"
        );
    }
    app.submit(
        &admin,
        "/t/acme/keys",
        &format!("/t/acme/keys/{revoked_id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(
        crate::support::fixtures::code_of(&app, &revoked).await,
        "REVOKED"
    );

    let response = roll(&app, &admin, "acme", rolled_id, "none").await;
    let successor = revealed(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        crate::support::fixtures::code_of(&app, &rolled).await,
        "EXPIRED"
    );
    assert_eq!(
        crate::support::fixtures::code_of(&app, &successor).await,
        "VALID"
    );
}
