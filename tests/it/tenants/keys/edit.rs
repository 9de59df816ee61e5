//! `/t/{slug}/keys/{id}/edit`, `/disable` and `/enable`.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{TestApp, assert_redirect};
use crate::support::fixtures::{Tenant, TenantAdmin, World, create_key};
use crate::support::key_api::{code_of, key_api, verify};

/// The edit form's fields as the form starts (full access, expiry kept), with `changes` over them.
fn edit_fields<'a>(name: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![("name", name), ("access", "full"), ("expiry", "keep")];
    for (field, value) in changes {
        fields.retain(|(name, _)| name != field || *field == "scopes");
        fields.push((field, value));
    }
    fields
}

async fn submit_edit(
    app: &TestApp,
    client: &Client,
    id: Uuid,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let path = format!("/t/acme/keys/{id}/edit");
    app.submit(client, &format!("/t/acme/keys/{id}"), &path, fields)
        .await
}

async fn stored(app: &TestApp, id: Uuid) -> (String, String, i32, Vec<String>, Value) {
    sqlx::query_as(
        "SELECT name, note, rate_limit, ip_allowlist, meta FROM api_key WHERE api_key_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn is_disabled(pool: &PgPool, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT disabled_at IS NOT NULL FROM api_key WHERE api_key_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn an_admin_edits_a_key_and_its_page_and_the_audit_log_show_the_change(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let api = key_api(pool, &[]).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (secret, id) = create_key(&app, &admin, "acme", "Billing", "live").await;

    let form = app
        .get_html(&admin, &format!("/t/acme/keys/{id}/edit"))
        .await;
    assert!(form.contains(r#"value="Billing""#) && form.contains("Keep: never"));
    let fields = edit_fields(
        "Billing v2",
        &[
            ("note", "Used by the invoicing job.\nAsk Ada."),
            ("access", "scopes"),
            ("scopes", "read"),
            ("rate_limit", "77"),
            ("ip_allowlist", "10.1.2.3/16\n2001:DB8::1, ::ffff:192.0.2.9"),
            ("meta", r#"{"plan": "pro", "customer": "cus_42"}"#),
        ],
    );
    let response = submit_edit(&app, &admin, id, &fields).await;
    assert_redirect(&response, format!("/t/acme/keys/{id}"));

    let page = app.get_html(&admin, &format!("/t/acme/keys/{id}")).await;
    assert!(page.contains("Key saved."), "the flash says so");
    assert!(page.contains("Billing v2"));
    assert!(page.contains("Used by the invoicing job.\nAsk Ada."));
    assert!(page.contains("10.1.0.0/16, 2001:db8::1/128, 192.0.2.9/32"));
    assert!(page.contains("&quot;plan&quot;: &quot;pro&quot;") || page.contains("&#34;plan&#34;"));
    assert!(page.contains("77 per minute"));
    let (name, _, rate_limit, allowlist, meta) = stored(&app, id).await;
    assert_eq!((name.as_str(), rate_limit), ("Billing v2", 77));
    assert_eq!(
        allowlist,
        ["10.1.0.0/16", "2001:db8::1/128", "192.0.2.9/32"]
    );
    assert_eq!(meta, json!({ "plan": "pro", "customer": "cus_42" }));

    // The key API sees it at once: the allowlist, the narrower scopes, the metadata.
    let answer: Value = verify(
        &api,
        json!({ "key": secret, "client_ip": "10.1.9.9", "scopes": ["read"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["code"], "VALID");
    assert_eq!(answer["key"]["meta"]["customer"], "cus_42");
    assert_eq!(
        code_within_a_second(&api, &secret, "IP_NOT_ALLOWED").await,
        "IP_NOT_ALLOWED"
    );

    let audit = app.get_html(&admin, "/t/acme/audit").await;
    assert!(audit.contains("key.updated"));
    assert!(audit.contains("name: Billing → Billing v2"), "{audit}");
    assert!(audit.contains("rate_limit: 1000 → 77"));
    assert!(audit.contains("scopes: Full access → read"));
    assert!(audit.contains("ip_allowlist: any address → 10.1.0.0/16"));
    assert!(!audit.contains(&secret));

    // Sending the same form again changes nothing and audits nothing.
    let events = app.count("audit_event").await;
    let response = submit_edit(&app, &admin, id, &fields).await;
    assert_redirect(&response, format!("/t/acme/keys/{id}"));
    assert!(
        app.get_html(&admin, &format!("/t/acme/keys/{id}"))
            .await
            .contains("Nothing changed.")
    );
    assert_eq!(app.count("audit_event").await, events);
}

#[sqlx::test]
async fn bad_input_is_named_on_the_form_and_nothing_is_lost_or_saved(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, id) = create_key(&app, &admin, "acme", "Billing", "live").await;

    let response = submit_edit(
        &app,
        &admin,
        id,
        &edit_fields(
            "Billing",
            &[
                ("note", "Keep this note"),
                ("ip_allowlist", "203.0.113.0/24\n10.0.0.300"),
                ("meta", "[1, 2]"),
            ],
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("&quot;10.0.0.300&quot; is not an IP address or CIDR block")
            || page.contains("&#34;10.0.0.300&#34; is not an IP address or CIDR block"),
        "{page}"
    );
    assert!(page.contains("Metadata must be a JSON object"));
    assert!(page.contains("Keep this note"), "what was typed stays");
    assert!(page.contains("203.0.113.0/24\n10.0.0.300"));

    let too_big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(1100));
    let response = submit_edit(
        &app,
        &admin,
        id,
        &edit_fields("Billing", &[("meta", too_big.as_str())]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("at most 1024 bytes")
    );

    let (name, note, _, allowlist, meta) = stored(&app, id).await;
    assert_eq!((name.as_str(), note.as_str()), ("Billing", ""));
    assert!(allowlist.is_empty());
    assert_eq!(meta, json!({}));
}

#[sqlx::test]
async fn viewers_cannot_edit_and_developers_edit_only_their_own_keys_without_rate_limits(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, admins_key) = create_key(&app, &world.admin, "acme", "Admin's key", "live").await;
    let (_, own) = create_key(&app, &world.developer, "acme", "Dev's key", "test").await;

    for path in [
        format!("/t/acme/keys/{own}/edit"),
        format!("/t/acme/keys/{own}/disable"),
    ] {
        assert_eq!(
            app.get(&world.viewer, &path).await.status(),
            StatusCode::FORBIDDEN
        );
    }
    let response = submit_edit(&app, &world.viewer, own, &edit_fields("Viewer's", &[])).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let viewers_page = app
        .get_html(&world.viewer, &format!("/t/acme/keys/{own}"))
        .await;
    assert!(!viewers_page.contains("/edit\"") && !viewers_page.contains("Disable"));

    // Another member's key: 403, and nothing changes.
    assert_eq!(
        app.get(&world.developer, &format!("/t/acme/keys/{admins_key}/edit"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let response = submit_edit(
        &app,
        &world.developer,
        admins_key,
        &edit_fields("Taken over", &[]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(stored(&app, admins_key).await.0, "Admin's key");

    // Their own key: yes, but not its rate limit (the form does not offer it; a forged field is refused).
    let form = app
        .get_html(&world.developer, &format!("/t/acme/keys/{own}/edit"))
        .await;
    assert!(!form.contains(r#"name="rate_limit""#));
    let response = submit_edit(
        &app,
        &world.developer,
        own,
        &edit_fields("Dev's key", &[("rate_limit", "999999")]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Only tenant admins can choose a key&#39;s rate limit")
    );
    let response = submit_edit(
        &app,
        &world.developer,
        own,
        &edit_fields("Dev's renamed key", &[]),
    )
    .await;
    assert_redirect(&response, format!("/t/acme/keys/{own}"));
    let (name, _, rate_limit, _, _) = stored(&app, own).await;
    assert_eq!(name, "Dev's renamed key");
    assert_ne!(rate_limit, 999_999);
}

#[sqlx::test]
async fn another_tenants_key_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let globex = Tenant::create(&pool, "globex").await;
    let (_, theirs) = globex
        .key(
            &pool,
            gatehouse::vocabulary::Environment::Live,
            &["read"],
            10,
        )
        .await;
    for path in ["edit", "disable"] {
        let response = app
            .get(&admin, &format!("/t/acme/keys/{theirs}/{path}"))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["edit", "disable", "enable"] {
        let response = app
            .submit(
                &admin,
                "/t/acme/keys",
                &format!("/t/acme/keys/{theirs}/{path}"),
                &edit_fields("Mine now", &[]),
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert!(!is_disabled(&pool, theirs).await);
}

#[sqlx::test]
async fn disabling_asks_first_and_enabling_makes_the_key_work_again(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let api = key_api(pool, &[]).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (secret, id) = create_key(&app, &admin, "acme", "Billing", "live").await;

    let confirm = app
        .get_html(&admin, &format!("/t/acme/keys/{id}/disable"))
        .await;
    assert!(confirm.contains("Disable Billing?") && confirm.contains("until you enable it"));
    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{id}/disable"),
            &format!("/t/acme/keys/{id}/disable"),
            &[],
        )
        .await;
    assert_redirect(&response, format!("/t/acme/keys/{id}"));
    assert_eq!(
        code_within_a_second(&api, &secret, "DISABLED").await,
        "DISABLED"
    );
    let page = app.get_html(&admin, &format!("/t/acme/keys/{id}")).await;
    assert!(page.contains("Key disabled.") && page.contains("status-disabled"));
    assert!(page.contains(">Enable</button>") && page.contains("<strong>Disabled</strong> by"));
    let list = app.get_html(&admin, "/t/acme/keys?status=disabled").await;
    assert!(
        list.contains("Billing"),
        "the list filters by the new status"
    );
    assert!(
        app.get(&admin, &format!("/t/acme/keys/{id}/disable"))
            .await
            .status()
            == StatusCode::CONFLICT,
        "a disabled key is not disabled twice"
    );

    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{id}"),
            &format!("/t/acme/keys/{id}/enable"),
            &[],
        )
        .await;
    assert_redirect(&response, format!("/t/acme/keys/{id}"));
    assert_eq!(code_within_a_second(&api, &secret, "VALID").await, "VALID");
    let audit = app.get_html(&admin, "/t/acme/audit").await;
    assert!(audit.contains("key.disabled") && audit.contains("key.enabled"));
    assert!(audit.contains("state: enabled → disabled"));
}

#[sqlx::test]
async fn edit_disable_and_enable_forms_need_the_csrf_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, id) = create_key(&app, &admin, "acme", "Billing", "live").await;
    for action in ["edit", "disable", "enable"] {
        let response = admin
            .post(app.url(&format!("/t/acme/keys/{id}/{action}")))
            .form(&edit_fields("Forged", &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
    }
    let (name, ..) = stored(&app, id).await;
    assert_eq!(name, "Billing");
    assert!(!is_disabled(&app.pool, id).await);
}

/// The key API's code for `secret` once it is `expected`, or after a second: the key API runs
/// beside the portal, as another instance, and hears of a change within a second (NOTIFY).
async fn code_within_a_second(api: &TestApp, secret: &str, expected: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let code = code_of(api, secret).await;
        if code == expected || std::time::Instant::now() >= deadline {
            return code;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
