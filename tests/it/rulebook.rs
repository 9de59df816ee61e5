//! One rulebook: the same table of key rules run through every door that makes or changes a key
//! (the portal's new-key and edit forms, the management API's create, PATCH and import, an approved
//! request's reveal, rolls), each of which must refuse the same cases with the same words; and every
//! change names its actor, person or machine.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{TestApp, field_value};
use crate::support::fixtures::{TenantAdmin, create_key, key_link, member_client, submit_key};
use crate::support::management::{OPERATOR, management_api, patch, post, tenant_token};
use crate::support::fixtures::Tenant;

/// One rule, as each door expresses the request it refuses.
struct Rule {
    what: &'static str,
    /// The tenant's maximum key lifetime in days while the rule is tried.
    lifetime_days: Option<i32>,
    /// Fields over a valid new key (management API create and import).
    json: Value,
    /// Fields over a valid new-key form; `None` where the form has no such field.
    form: Option<&'static [(&'static str, &'static str)]>,
    /// What a door that makes a key says.
    create_message: &'static str,
    /// Fields over an unchanged PATCH and edit form; `None` where a change cannot say it.
    patch: Option<Value>,
    edit_form: Option<&'static [(&'static str, &'static str)]>,
    /// What a door that changes a key says.
    change_message: &'static str,
}

fn rules() -> Vec<Rule> {
    let bad_entry = r#""10.0.0.0/33" is not an IP address or CIDR block (write e.g. 203.0.113.0/24 or 2001:db8::/32)."#;
    vec![
        Rule {
            what: "a key that never expires under a 30-day policy",
            lifetime_days: Some(30),
            json: json!({}),
            form: Some(&[("expiry", "never")]),
            create_message: "This tenant's keys must expire within 30 days: choose an expiry.",
            patch: Some(json!({ "expires_at": null })),
            edit_form: Some(&[("expiry", "never")]),
            change_message: "This tenant's keys must expire within 30 days of being made; choose an earlier expiry.",
        },
        Rule {
            what: "an expiry decades away under a 30-day policy",
            lifetime_days: Some(30),
            json: json!({ "expires_at": "2099-01-01T00:00:00Z" }),
            form: Some(&[("expiry", "date"), ("expiry_date", "2099-01-01")]),
            create_message: "This tenant's keys must expire within 30 days: choose an earlier expiry.",
            patch: Some(json!({ "expires_at": "2099-01-01T00:00:00Z" })),
            edit_form: Some(&[("expiry", "date"), ("expiry_date", "2099-01-01")]),
            change_message: "This tenant's keys must expire within 30 days of being made; choose an earlier expiry.",
        },
        Rule {
            what: "an expiry in the past",
            lifetime_days: None,
            json: json!({ "expires_at": "2020-01-01T00:00:00Z" }),
            form: Some(&[("expiry", "date"), ("expiry_date", "2020-01-01")]),
            create_message: "The expiry must be in the future.",
            patch: Some(json!({ "expires_at": "2020-01-01T00:00:00Z" })),
            edit_form: Some(&[("expiry", "date"), ("expiry_date", "2020-01-01")]),
            change_message: "The expiry must be in the future.",
        },
        Rule {
            what: "a scope outside the catalogue",
            lifetime_days: None,
            json: json!({ "full_access": false, "scopes": ["admin"] }),
            form: Some(&[("access", "scopes"), ("scopes", "admin")]),
            create_message: r#""admin" is not a scope of this deployment."#,
            patch: Some(json!({ "scopes": ["admin"] })),
            edit_form: Some(&[("access", "scopes"), ("scopes", "admin")]),
            change_message: r#""admin" is not a scope of this deployment."#,
        },
        Rule {
            what: "full access and scopes at once",
            lifetime_days: None,
            json: json!({ "full_access": true, "scopes": ["read"] }),
            form: Some(&[("access", "full"), ("scopes", "read")]),
            create_message: "Choose either full access or some scopes, not both: a key with full access names no scopes.",
            patch: Some(json!({ "full_access": true, "scopes": ["read"] })),
            edit_form: Some(&[("access", "full"), ("scopes", "read")]),
            change_message: "Choose either full access or some scopes, not both: a key with full access names no scopes.",
        },
        Rule {
            what: "a rate limit out of bounds",
            lifetime_days: None,
            json: json!({ "rate_limit": 0 }),
            form: Some(&[("rate_limit", "0")]),
            create_message: "Enter a whole number of requests per minute from 1 to 1000000.",
            patch: Some(json!({ "rate_limit": 2_000_000 })),
            edit_form: Some(&[("rate_limit", "2000000")]),
            change_message: "Enter a whole number of requests per minute from 1 to 1000000.",
        },
        Rule {
            what: "an allowlist entry that is no address",
            lifetime_days: None,
            json: json!({ "ip_allowlist": ["10.0.0.0/33"] }),
            form: Some(&[("ip_allowlist", "10.0.0.0/33")]),
            create_message: bad_entry,
            patch: Some(json!({ "ip_allowlist": ["10.0.0.0/33"] })),
            edit_form: Some(&[("ip_allowlist", "10.0.0.0/33")]),
            change_message: bad_entry,
        },
        Rule {
            what: "metadata that is no object",
            lifetime_days: None,
            json: json!({ "meta": [1, 2] }),
            form: None,
            create_message: "Metadata must be a JSON object like {\"plan\": \"pro\"}, not a list or a single value.",
            patch: Some(json!({ "meta": [1, 2] })),
            edit_form: Some(&[("meta", "[1, 2]")]),
            change_message: "Metadata must be a JSON object like {\"plan\": \"pro\"}, not a list or a single value.",
        },
        Rule {
            what: "a blank name",
            lifetime_days: None,
            json: json!({ "name": "  " }),
            form: Some(&[("name", "  ")]),
            create_message: "Give the key a name, so you know later what it is for.",
            patch: Some(json!({ "name": "" })),
            edit_form: Some(&[("name", "")]),
            change_message: "Give the key a name, so you know later what it is for.",
        },
    ]
}

/// `text` as askama writes it into a page.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// `base` with `over`'s fields set (a repeated name in `over` adds values; the first replaces).
fn form_with<'a>(base: &[(&'a str, &'a str)], over: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields: Vec<_> = base
        .iter()
        .filter(|(name, _)| !over.iter().any(|(over, _)| over == name))
        .copied()
        .collect();
    fields.extend_from_slice(over);
    fields
}

fn json_with(base: Value, over: &Value) -> Value {
    let mut merged = base;
    for (name, value) in over.as_object().unwrap() {
        merged[name] = value.clone();
    }
    merged
}

async fn set_lifetime(pool: &PgPool, tenant_id: Uuid, days: Option<i32>) {
    sqlx::query(
        "INSERT INTO tenant_key_policy (tenant_id, max_key_lifetime_days) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET max_key_lifetime_days = $2",
    )
    .bind(tenant_id)
    .bind(days)
    .execute(pool)
    .await
    .unwrap();
}

async fn keys_in(pool: &PgPool, tenant_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM api_key WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn user_id(pool: &PgPool, email: &str) -> Uuid {
    sqlx::query_scalar("SELECT app_user_id FROM app_user WHERE email = $1")
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A refusal page: 422, showing `message`.
async fn assert_page_refuses(response: reqwest::Response, door: &str, rule: &str, message: &str) {
    let status = response.status();
    let html = response.text().await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{door}: {rule}");
    assert!(
        html.contains(&escaped(message)),
        "{door}: {rule}: the page does not say {message:?}"
    );
}

/// A JSON refusal: 422 naming `field`, saying `message`.
fn assert_json_refuses(answer: &crate::support::management::Answer, door: &str, rule: &str, field: &str, message: &str) {
    assert_eq!(answer.status, 422, "{door}: {rule}: {}", answer.body);
    assert_eq!(answer.body["error"]["message"], message, "{door}: {rule}");
    assert_eq!(answer.body["error"]["field"], field, "{door}: {rule}");
}

/// The JSON field a message is about.
fn field_of(rule: &Rule) -> &'static str {
    let over = rule.json.as_object().unwrap();
    if rule.lifetime_days.is_some() || over.contains_key("expires_at") {
        "expires_at"
    } else if over.contains_key("scopes") {
        "scopes"
    } else {
        over.keys().next().map_or("expires_at", |name| {
            ["rate_limit", "ip_allowlist", "meta", "name"]
                .into_iter()
                .find(|known| known == name)
                .unwrap()
        })
    }
}

const NEW_KEY: [(&str, &str); 4] = [
    ("name", "rule"),
    ("environment", "test"),
    ("access", "full"),
    ("expiry", "30"),
];

/// The edit form of a key as it stands, unchanged.
const UNCHANGED: [(&str, &str); 8] = [
    ("name", "changed by rule"),
    ("note", ""),
    ("access", "full"),
    ("expiry", "keep"),
    ("expiry_date", ""),
    ("rate_limit", ""),
    ("meta", ""),
    ("ip_allowlist", ""),
];

#[sqlx::test]
async fn every_door_refuses_what_the_rules_refuse_with_the_same_words(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = TenantAdmin::acme(&app).await;
    let ada = user_id(&pool, "ada@example.com").await;
    let tenant = Tenant {
        id: acme.tenant_id,
        slug: "acme".into(),
        admin: ada,
    };
    let token = tenant_token(&pool, &tenant, &["keys:read", "keys:write"]).await;
    let made = post(
        &app,
        "/v1/tenants/acme/keys",
        OPERATOR,
        json!({ "name": "changed by rule", "environment": "test", "full_access": true, "expires_at": "2030-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let key_id = made.body["key"]["id"].as_str().unwrap().to_owned();
    let key_path = format!("/v1/tenants/acme/keys/{key_id}");
    let edit_path = format!("/t/acme/keys/{key_id}/edit");
    let json_key = json!({ "name": "rule", "environment": "test", "full_access": true, "expires_at": "2030-01-01T00:00:00Z" });
    let mut refused = 0;

    for rule in rules() {
        set_lifetime(&pool, acme.tenant_id, rule.lifetime_days).await;
        let before = keys_in(&pool, acme.tenant_id).await;
        let mut asked = json_with(json_key.clone(), &rule.json);
        if rule.lifetime_days.is_some() && !rule.json.as_object().unwrap().contains_key("expires_at") {
            asked.as_object_mut().unwrap().remove("expires_at");
        }
        let field = field_of(&rule);

        if let Some(form) = rule.form {
            let response = submit_key(&app, &acme.client, "acme", &form_with(&NEW_KEY, form)).await;
            assert_page_refuses(response, "portal create", rule.what, rule.create_message).await;
            refused += 1;
        }
        for (door, credential) in [("API create (tenant token)", token.as_str()), ("API create (operator)", OPERATOR)] {
            let answer = post(&app, "/v1/tenants/acme/keys", credential, asked.clone()).await;
            assert_json_refuses(&answer, door, rule.what, field, rule.create_message);
            refused += 1;
        }
        let mut entry = asked.clone();
        entry["secret_sha256"] = json!(format!("{:064x}", refused));
        let answer = post(&app, "/v1/tenants/acme/keys/import", &token, json!({ "keys": [entry] })).await;
        assert_json_refuses(&answer, "import", rule.what, &format!("keys[0].{field}"), rule.create_message);
        refused += 1;

        if let Some(change) = &rule.patch {
            let answer = patch(&app, &key_path, &token, change.clone()).await;
            assert_json_refuses(&answer, "API patch", rule.what, field, rule.change_message);
            refused += 1;
        }
        if let Some(form) = rule.edit_form {
            let response = app.submit(&acme.client, &edit_path, &edit_path, &form_with(&UNCHANGED, form)).await;
            assert_page_refuses(response, "portal edit", rule.what, rule.change_message).await;
            refused += 1;
        }
        assert_eq!(keys_in(&pool, acme.tenant_id).await, before, "{}: no door made a key", rule.what);
    }
    assert!(refused >= 50, "{refused} refusals tried");
    // Nothing about the key changed either.
    let key = crate::support::management::get(&app, &key_path, &token).await;
    assert_eq!(key.body["name"], "changed by rule");
    assert_eq!(key.body["full_access"], true);
    assert_eq!(key.body["ip_allowlist"], json!([]));
}

#[sqlx::test]
async fn an_unconfirmed_account_gets_no_live_key_through_any_door(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let client = app.signed_in_unverified_user("una@example.com", "Una").await;
    let created = crate::support::fixtures::create_tenant(&app, &client, "Unverified", "unv").await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let tenant = Tenant {
        id: sqlx::query_scalar("SELECT tenant_id FROM tenant WHERE slug = 'unv'")
            .fetch_one(&pool)
            .await
            .unwrap(),
        slug: "unv".into(),
        admin: user_id(&pool, "una@example.com").await,
    };
    let message = "Live keys need a confirmed email address: follow the link we mailed you (your \
                   account page sends it again). Test keys work meanwhile.";
    let live = [("name", "prod"), ("environment", "live"), ("access", "full"), ("expiry", "never")];
    let response = submit_key(&app, &client, "unv", &live).await;
    assert_page_refuses(response, "portal create", "unconfirmed", message).await;

    // A token the unconfirmed admin made carries their standing: no live key through it either.
    let token = tenant_token(&pool, &tenant, &["keys:write"]).await;
    let body = json!({ "name": "prod", "environment": "live", "full_access": true });
    let answer = post(&app, "/v1/tenants/unv/keys", &token, body.clone()).await;
    assert_json_refuses(&answer, "API create", "unconfirmed", "environment", message);
    let mut entry = body.clone();
    entry["secret_sha256"] = json!("ab".repeat(32));
    let answer = post(&app, "/v1/tenants/unv/keys/import", &token, json!({ "keys": [entry] })).await;
    assert_json_refuses(&answer, "import", "unconfirmed", "keys[0].environment", message);
    assert_eq!(keys_in(&pool, tenant.id).await, 0);

    // Test keys work meanwhile, and once the address is confirmed, so do live keys.
    let test = json!({ "name": "ci", "environment": "test", "full_access": true });
    assert_eq!(post(&app, "/v1/tenants/unv/keys", &token, test).await.status, 201);
    app.confirm_email("una@example.com").await;
    assert_eq!(post(&app, "/v1/tenants/unv/keys", &token, body).await.status, 201);
    // The operator is the deployment itself: it needs no confirmed address.
    let operator = post(&app, "/v1/tenants/unv/keys", OPERATOR, json!({ "name": "op", "environment": "live", "full_access": true })).await;
    assert_eq!(operator.status, 201);
}

#[sqlx::test]
async fn an_approved_key_is_judged_again_when_it_is_revealed(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let acme = TenantAdmin::acme(&app).await;
    let developer = member_client(&app, &acme.client, "acme", "dev@example.com", "Dev", "developer").await;
    sqlx::query("INSERT INTO tenant_key_policy (tenant_id, live_keys) VALUES ($1, 'approval')")
        .bind(acme.tenant_id)
        .execute(&pool)
        .await
        .unwrap();
    let asked = submit_key(
        &app,
        &developer,
        "acme",
        &[("name", "prod"), ("environment", "live"), ("access", "full"), ("expiry", "never"), ("reason", "launch")],
    )
    .await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    let request_path = asked.headers()["location"].to_str().unwrap().to_owned();
    let approved = app
        .submit(&acme.client, &request_path, &format!("{request_path}/approve"), &[("reason", "")])
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    // Since the approval the tenant has limited key lifetimes: the never-expiring key it approved
    // is refused at the reveal, with the words the new-key form uses.
    set_lifetime(&pool, acme.tenant_id, Some(30)).await;
    let reveal = app
        .submit(&developer, &request_path, &format!("{request_path}/reveal"), &[])
        .await;
    assert_page_refuses(
        reveal,
        "approval reveal",
        "lifetime",
        "This tenant's keys must expire within 30 days: choose an expiry.",
    )
    .await;
    assert_eq!(keys_in(&pool, acme.tenant_id).await, 0);
    // Without the limit, the approval stands and the key is shown once.
    set_lifetime(&pool, acme.tenant_id, None).await;
    let reveal = app
        .submit(&developer, &request_path, &format!("{request_path}/reveal"), &[])
        .await;
    assert_eq!(reveal.status(), StatusCode::OK);
    assert!(reveal.text().await.unwrap().contains("ak_live_"));
}

#[sqlx::test]
async fn rolls_keep_the_lifetime_policy_and_the_grace_bound_at_every_door(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = TenantAdmin::acme(&app).await;
    let (_, key_id) = create_key(&app, &acme.client, "acme", "old", "test").await;
    set_lifetime(&pool, acme.tenant_id, Some(30)).await;
    let within = |body: &Value| {
        let at = time::OffsetDateTime::parse(
            body["expires_at"].as_str().expect("the successor expires"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        at <= time::OffsetDateTime::now_utc() + time::Duration::days(30)
    };
    let too_long = post(
        &app,
        &format!("/v1/tenants/acme/keys/{key_id}/roll"),
        OPERATOR,
        json!({ "grace_seconds": 604_801 }),
    )
    .await;
    assert_json_refuses(
        &too_long,
        "API roll",
        "grace",
        "grace_seconds",
        "The old key keeps working from no time at all up to 7 days (604800 seconds).",
    );
    let rolled = post(
        &app,
        &format!("/v1/tenants/acme/keys/{key_id}/roll"),
        OPERATOR,
        json!({ "grace_seconds": 0 }),
    )
    .await;
    assert_eq!(rolled.status, 201, "{}", rolled.body);
    assert!(within(&rolled.body["key"]));
    // The portal's roll of the successor: its successor too expires within the policy.
    let successor: Uuid = rolled.body["key"]["id"].as_str().unwrap().parse().unwrap();
    let response = crate::support::fixtures::roll(&app, &acme.client, "acme", successor, "none").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    let newest = key_link(&html, "acme").unwrap();
    let newest = crate::support::management::get(&app, &format!("/v1/tenants/acme/keys/{newest}"), OPERATOR).await;
    assert!(within(&newest.body));
}

#[sqlx::test]
async fn keys_made_by_machines_name_the_machine_everywhere(pool: PgPool) {
    let app = management_api(pool.clone(), &[("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let acme = TenantAdmin::acme(&app).await;
    let tenant = Tenant {
        id: acme.tenant_id,
        slug: "acme".into(),
        admin: user_id(&pool, "ada@example.com").await,
    };
    let token = tenant_token(&pool, &tenant, &["keys:write", "webhooks:write"]).await;
    let endpoint = post(
        &app,
        "/v1/tenants/acme/webhooks",
        &token,
        json!({ "name": "Audit", "url": "http://127.0.0.1:9/hook", "environment": "test" }),
    )
    .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let by_token = post(&app, "/v1/tenants/acme/keys", &token, json!({ "name": "billing", "environment": "test", "full_access": true })).await;
    assert_eq!(by_token.status, 201);
    let by_operator = post(&app, "/v1/tenants/acme/keys", OPERATOR, json!({ "name": "ops", "environment": "test", "full_access": true })).await;
    let token_key = by_token.body["key"]["id"].as_str().unwrap();
    let operator_key = by_operator.body["key"]["id"].as_str().unwrap();
    let disabled = patch(&app, &format!("/v1/tenants/acme/keys/{token_key}"), &token, json!({ "disabled": true })).await;
    assert_eq!(disabled.status, 200);
    let revoked = post(&app, &format!("/v1/tenants/acme/keys/{operator_key}/revoke"), OPERATOR, json!({})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);

    let token_name = "API token \u{201c}acme backend\u{201d}";
    let list = app.get_html(&acme.client, "/t/acme/keys").await;
    assert!(list.contains(&escaped(token_name)), "the keys list names the token");
    assert!(list.contains("Operator"), "the keys list names the operator");
    assert!(!list.contains("a former member"));
    let page = app.get_html(&acme.client, &format!("/t/acme/keys/{token_key}")).await;
    assert!(page.contains(&escaped(token_name)) && !page.contains("a former member"));
    let page = app.get_html(&acme.client, &format!("/t/acme/keys/{operator_key}")).await;
    assert!(page.contains("Operator") && !page.contains("a former member"));

    // Every webhook event says who acted.
    let payloads: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM webhook_event ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let actors: Vec<(String, Value)> = payloads
        .iter()
        .map(|payload| (payload["type"].as_str().unwrap().to_owned(), payload["data"]["actor"].clone()))
        .collect();
    let token_id: Uuid = sqlx::query_scalar("SELECT management_token_id FROM management_token")
        .fetch_one(&pool)
        .await
        .unwrap();
    let by_the_token = json!({ "type": "token", "id": token_id, "name": "acme backend" });
    assert!(actors.contains(&("key.created".into(), by_the_token.clone())), "{actors:?}");
    assert!(actors.contains(&("key.disabled".into(), by_the_token)), "{actors:?}");
    assert!(actors.contains(&("key.created".into(), json!({ "type": "operator" }))), "{actors:?}");
    assert!(actors.contains(&("key.revoked".into(), json!({ "type": "operator" }))), "{actors:?}");
    assert!(actors.iter().all(|(_, actor)| actor["type"].is_string()), "{actors:?}");

    // A person's key names the person.
    let (_, own) = create_key(&app, &acme.client, "acme", "mine", "test").await;
    let page = app.get_html(&acme.client, &format!("/t/acme/keys/{own}")).await;
    assert!(page.contains("Ada"));
    let _ = field_value;
}

#[sqlx::test]
async fn the_api_makes_a_key_with_every_setting_in_one_call(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = TenantAdmin::acme(&app).await;
    sqlx::query("INSERT INTO tenant_key_policy (tenant_id, default_ip_allowlist) VALUES ($1, '{192.0.2.0/24}')")
        .bind(acme.tenant_id)
        .execute(&pool)
        .await
        .unwrap();
    let made = post(
        &app,
        "/v1/tenants/acme/keys",
        OPERATOR,
        json!({
            "name": "billing",
            "environment": "test",
            "scopes": ["read"],
            "rate_limit": 42,
            "expires_at": "2030-01-01T00:00:00Z",
            "note": "used by the billing job",
            "meta": { "plan": "pro" },
            "ip_allowlist": ["203.0.113.7", "2001:db8::/32"],
        }),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let key = &made.body["key"];
    assert_eq!(key["note"], "used by the billing job");
    assert_eq!(key["meta"], json!({ "plan": "pro" }));
    assert_eq!(key["ip_allowlist"], json!(["203.0.113.7/32", "2001:db8::/32"]));
    assert_eq!(key["rate_limit"], 42);
    // Without an allowlist, a key starts with the tenant's default, as the portal's form does.
    let plain = post(&app, "/v1/tenants/acme/keys", OPERATOR, json!({ "name": "plain", "environment": "test", "full_access": true })).await;
    assert_eq!(plain.body["key"]["ip_allowlist"], json!(["192.0.2.0/24"]));
    // It works only from the addresses it names, from its first verification.
    let secret = made.body["secret"].as_str().unwrap();
    let verdict = |ip: &'static str| {
        let app = &app;
        async move {
            let response = crate::support::key_api::verify(app, json!({ "key": secret, "client_ip": ip })).await;
            response.json::<Value>().await.unwrap()["code"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(verdict("203.0.113.7").await, "VALID");
    assert_eq!(verdict("198.51.100.1").await, "IP_NOT_ALLOWED");
    let _: Option<Client> = None;
}
