//! `/tenants/new`, `/t/{slug}/...` and `/invitations/{token}`: tenants, roles, members, invitations, audit.

mod api_access;
mod audit;
mod forms;
mod invitations;
mod key_policy;
mod keys;
mod logs;
mod members;
mod settings;
mod usage;
mod webhook_log;
mod webhooks;

use gatehouse::vocabulary::Role;
use gatehouse::web::tenants::RULES;
use reqwest::{Client, StatusCode};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{TestApp, assert_redirect, location};
use crate::support::fixtures::{TenantAdmin, World, create_tenant};

/// The id of the membership in `acme` of the member with this email.
async fn membership_of(app: &TestApp, email: &str) -> Uuid {
    sqlx::query_scalar(
        "SELECT membership_id FROM membership JOIN app_user USING (app_user_id)
         WHERE email = $1",
    )
    .bind(email)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Changes a member's role in `acme` through the members page.
async fn change_role(
    app: &TestApp,
    admin: &Client,
    membership: Uuid,
    role: &str,
) -> reqwest::Response {
    app.submit(
        admin,
        "/t/acme/members",
        &format!("/t/acme/members/{membership}/role"),
        &[("role", role)],
    )
    .await
}

/// Removes a member from `acme` through the members page.
async fn remove_member(app: &TestApp, admin: &Client, membership: Uuid) -> reqwest::Response {
    app.submit(
        admin,
        "/t/acme/members",
        &format!("/t/acme/members/{membership}/remove"),
        &[],
    )
    .await
}

/// A member with no password, made straight in the database: a cheap target for removals.
async fn throwaway_member(pool: &PgPool, tenant_id: Uuid) -> Uuid {
    let user_id: Uuid = sqlx::query_scalar(
        "INSERT INTO app_user (email, display_name) VALUES ($1, 'Throwaway') RETURNING app_user_id",
    )
    .bind(format!("{}@example.com", Uuid::new_v4()))
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO membership (tenant_id, app_user_id, role) VALUES ($1, $2, 'viewer') RETURNING membership_id",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn throwaway_invitation(pool: &PgPool, tenant_id: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO invitation (tenant_id, email, role, token_hash, expires_at)
         VALUES ($1, $2, 'viewer', $3, now() + interval '1 day') RETURNING invitation_id",
    )
    .bind(tenant_id)
    .bind(format!("{}@example.com", Uuid::new_v4()))
    .bind(Uuid::new_v4().as_bytes().to_vec())
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A key owned by the user with this email, made straight in the database.
pub async fn throwaway_key(pool: &PgPool, tenant_id: Uuid, owner_email: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO api_key (tenant_id, created_by, name, environment, secret_hash, last_four, scopes, rate_limit)
         SELECT $1, app_user_id, 'Throwaway', 'test', $2, 'abcd', '{read}', 100 FROM app_user WHERE email = $3
         RETURNING api_key_id",
    )
    .bind(tenant_id)
    .bind([Uuid::new_v4().as_bytes().as_slice(), Uuid::new_v4().as_bytes().as_slice()].concat())
    .bind(owner_email)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A request for a live key made straight in the database, by `owner_email`, in `status`.
async fn throwaway_request(
    pool: &PgPool,
    tenant_id: Uuid,
    owner_email: &str,
    status: &str,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO key_request (tenant_id, requested_by, name, reason, status, full_access)
         SELECT $1, app_user_id, 'Throwaway', 'because', $3, true FROM app_user WHERE email = $2
         RETURNING key_request_id",
    )
    .bind(tenant_id)
    .bind(owner_email)
    .bind(status)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A webhook endpoint made straight in the database (its sealed secret a dummy), with an event
/// `evt_throwaway` of the tenant to resend.
async fn throwaway_endpoint(pool: &PgPool, tenant_id: Uuid) -> Uuid {
    sqlx::query(
        "INSERT INTO webhook_event (webhook_event_id, tenant_id, event_type, payload)
         VALUES ('evt_throwaway', $1, 'webhook.test', '{}') ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO webhook_endpoint (tenant_id, name, url, environment, secret_sealed)
         VALUES ($1, 'Throwaway', 'https://hooks.example.invalid/', 'test', '\\x00') RETURNING webhook_endpoint_id",
    )
    .bind(tenant_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn throwaway_token(pool: &PgPool, tenant_id: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO management_token (tenant_id, name, scopes, secret_hash, last_four)
         VALUES ($1, 'Throwaway', '{keys:read}', gen_random_uuid()::text::bytea, 'abcd')
         RETURNING management_token_id",
    )
    .bind(tenant_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The form a route gets when it is allowed, so that an allowed request succeeds.
fn form_for(path: &str) -> Vec<(&'static str, String)> {
    let form_id = Uuid::new_v4().to_string();
    if path.ends_with("/webhooks") || path.ends_with("/webhooks/{id}") {
        vec![
            ("name", "Table endpoint".into()),
            ("url", "https://hooks.example.com/in".into()),
            ("environment", "live".into()),
            ("events", "all".into()),
            ("auth_kind", "none".into()),
            ("form_id", form_id),
        ]
    } else if path.ends_with("/api-access") {
        vec![
            ("name", "Table token".into()),
            ("scopes", "keys:read".into()),
            ("expiry", "30".into()),
        ]
    } else if path.ends_with("/resend") {
        vec![("event_id", "evt_throwaway".into())]
    } else if path.ends_with("/settings/keys") {
        vec![("live_keys", "anyone".into())]
    } else if path.ends_with("/keys") {
        vec![
            ("name", "Table key".into()),
            ("environment", "test".into()),
            ("scopes", "read".into()),
            ("expiry", "never".into()),
            ("form_id", form_id),
        ]
    } else if path.ends_with("/key-requests/{id}/deny") {
        vec![("reason", "Not now".into())]
    } else if path.ends_with("/keys/{id}/edit") {
        vec![
            ("name", "Table key, edited".into()),
            ("access", "full".into()),
            ("expiry", "keep".into()),
        ]
    } else if path.ends_with("/roll") {
        vec![("grace", "1h".into()), ("form_id", form_id)]
    } else if path.ends_with("/invitations") {
        vec![
            ("email", format!("{}@example.com", Uuid::new_v4())),
            ("role", "viewer".into()),
        ]
    } else if path.ends_with("/role") {
        vec![("role", "developer".into())]
    } else if path.ends_with("/settings/name") {
        vec![("name", "Acme".into())]
    } else if path.ends_with("/settings/delete") {
        // Not the slug: the tenant must outlive the table. A 422 shows the route was reached.
        vec![("confirm", "not-the-slug".into())]
    } else {
        Vec::new()
    }
}

#[sqlx::test]
async fn every_tenant_route_answers_each_role_as_its_rule_says(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let visitor = app.client();
    let personas: [(&str, &Client, Option<Role>); 5] = [
        ("admin", &world.admin, Some(Role::Admin)),
        ("developer", &world.developer, Some(Role::Developer)),
        ("viewer", &world.viewer, Some(Role::Viewer)),
        ("member of another tenant", &world.outsider, None),
        ("signed-out visitor", &visitor, None),
    ];
    assert!(RULES.len() >= 18, "every tenant route is in the table");
    let mut failures = Vec::new();
    for (method, pattern, least) in RULES {
        for (persona, client, role) in &personas {
            // A fresh target per request, so allowed removals and revocations always have one.
            let owner = match *persona {
                "developer" => "dev@example.com",
                "viewer" => "viewer@example.com",
                _ => "admin@example.com",
            };
            let id = if pattern.contains("/invitations/{id}") {
                throwaway_invitation(&app.pool, world.tenant_id).await
            } else if pattern.contains("/api-access/{id}") {
                throwaway_token(&app.pool, world.tenant_id).await
            } else if pattern.contains("/webhooks/{id}") {
                throwaway_endpoint(&app.pool, world.tenant_id).await
            } else if pattern.contains("/key-requests/{id}") {
                let status = if pattern.ends_with("/reveal") {
                    "approved"
                } else {
                    "pending"
                };
                throwaway_request(&app.pool, world.tenant_id, owner, status).await
            } else if pattern.contains("/keys/{id}") {
                throwaway_key(&app.pool, world.tenant_id, owner).await
            } else {
                throwaway_member(&app.pool, world.tenant_id).await
            };
            let path = pattern
                .replace("{slug}", "acme")
                .replace("{id}", &id.to_string());
            let response = if *method == "get" {
                app.get(client, &path).await
            } else {
                // Tokens come from a page every persona can load (visitors get the sign-in form).
                let token_page = if *persona == "signed-out visitor" {
                    "/signin"
                } else {
                    "/account"
                };
                let token = app.csrf_token(client, token_page).await;
                let mut form = vec![("csrf_token", token)];
                form.extend(form_for(pattern));
                client
                    .post(app.url(&path))
                    .form(&form)
                    .send()
                    .await
                    .unwrap()
            };
            let status = response.status();
            let expected_ok = role.is_some_and(|role| role >= *least);
            let right = match (persona, role) {
                (&"signed-out visitor", _) => {
                    status == StatusCode::SEE_OTHER && location(&response).starts_with("/signin")
                }
                (_, None) => status == StatusCode::NOT_FOUND,
                // Refused form contents (the delete's wrong slug): reached. (A key test's missing
                // key is a verdict, shown on the key's page the test redirects to.)
                _ if expected_ok && pattern.ends_with("/settings/delete") => {
                    status == StatusCode::UNPROCESSABLE_ENTITY
                }
                _ if expected_ok => {
                    status.is_success()
                        || (status == StatusCode::SEE_OTHER
                            && !location(&response).starts_with("/signin"))
                }
                _ => status == StatusCode::FORBIDDEN,
            };
            if !right {
                failures.push(format!("{method} {pattern} as {persona}: got {status}"));
            }
            if pattern.ends_with("/leave") && *method == "post" && expected_ok {
                // Put the persona back for the routes that follow.
                let email = match *persona {
                    "admin" => "admin@example.com",
                    "developer" => "dev@example.com",
                    _ => "viewer@example.com",
                };
                sqlx::query("INSERT INTO membership (tenant_id, app_user_id, role) SELECT $1, app_user_id, $2 FROM app_user WHERE email = $3")
                    .bind(world.tenant_id)
                    .bind(role.unwrap().as_str())
                    .bind(email)
                    .execute(&app.pool)
                    .await
                    .unwrap();
            }
        }
    }
    assert!(
        failures.is_empty(),
        "wrong answers:\n{}",
        failures.join("\n")
    );
}

#[sqlx::test]
async fn a_new_tenant_makes_its_creator_admin_and_appears_on_the_home_page(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let empty = app.get_html(&client, "/").await;
    assert!(empty.contains("Create a tenant"));
    let response = create_tenant(&app, &client, "Acme Rockets, Inc.", "").await;
    assert_redirect(&response, "/t/acme-rockets-inc");
    let page = app.get_html(&client, "/t/acme-rockets-inc").await;
    assert!(page.contains("Acme Rockets, Inc. is ready. You are its admin."));
    assert!(page.contains("Your role: Admin"));
    let home = app.get_html(&client, "/").await;
    assert!(home.contains(r#"href="/t/acme-rockets-inc""#) && home.contains("admin"));
}

#[sqlx::test]
async fn a_taken_or_malformed_slug_is_refused_with_a_reason(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = TenantAdmin::acme(&app).await.client;
    let taken = create_tenant(&app, &client, "Acme again", "acme").await;
    assert_eq!(taken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.text().await.unwrap().contains("is taken"));
    let bad = create_tenant(&app, &client, "Acme", "-Bad Slug-").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("lowercase letters, digits and hyphens")
    );
    let count: i64 = app.count("tenant").await;
    assert_eq!(count, 1);
}

#[sqlx::test]
async fn html_in_tenant_and_member_names_is_shown_escaped(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::create(
        &app,
        "ada@example.com",
        "<b>Ada</b>",
        "<img src=x onerror=alert(1)>",
        "evil",
    )
    .await
    .client;
    for path in ["/", "/t/evil", "/t/evil/members", "/t/evil/audit"] {
        let html = app.get_html(&admin, path).await;
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(!html.contains("<b>Ada</b>"), "{path}");
    }
}
