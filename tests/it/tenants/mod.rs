//! `/tenants/new`, `/t/{slug}/...` and `/invitations/{token}`: tenants, roles, members, invitations, audit.

pub mod keys;
pub mod usage;

use gatehouse::domain::tenants::Role;
use gatehouse::web::tenants::RULES;
use reqwest::{Client, StatusCode};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{TestApp, location};

/// A tenant `acme` with one member of each role, a second admin, and an outsider who belongs
/// only to tenant `other`.
pub struct World {
    pub admin: Client,
    pub developer: Client,
    pub viewer: Client,
    pub outsider: Client,
    pub tenant_id: Uuid,
}

pub async fn create_tenant(
    app: &TestApp,
    client: &Client,
    name: &str,
    slug: &str,
) -> reqwest::Response {
    app.submit(
        client,
        "/tenants/new",
        "/tenants",
        &[("name", name), ("slug", slug)],
    )
    .await
}

/// Invites `email` as `role` and returns the link's path (`/invitations/<token>`).
pub async fn invite(app: &TestApp, admin: &Client, slug: &str, email: &str, role: &str) -> String {
    let response = app
        .submit(
            admin,
            &format!("/t/{slug}/members"),
            &format!("/t/{slug}/invitations"),
            &[("email", email), ("role", role)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "invitation for {email}");
    let html = response.text().await.unwrap();
    let start = html
        .find(&format!("{}/invitations/", app.base))
        .expect("the page shows the link")
        + app.base.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// Accepts an invitation link with a signed-in client.
pub async fn accept(app: &TestApp, client: &Client, link: &str) -> reqwest::Response {
    app.submit(client, link, link, &[]).await
}

pub async fn member_client(
    app: &TestApp,
    admin: &Client,
    slug: &str,
    email: &str,
    name: &str,
    role: &str,
) -> Client {
    let link = invite(app, admin, slug, email, role).await;
    let client = app.signed_in_user(email, name).await;
    assert_eq!(
        accept(app, &client, &link).await.status(),
        StatusCode::SEE_OTHER
    );
    client
}

impl World {
    pub async fn build(app: &TestApp) -> Self {
        let admin = app.signed_in_user("admin@example.com", "Alice Admin").await;
        assert_eq!(
            create_tenant(app, &admin, "Acme", "acme").await.status(),
            StatusCode::SEE_OTHER
        );
        let developer = member_client(
            app,
            &admin,
            "acme",
            "dev@example.com",
            "Dan Developer",
            "developer",
        )
        .await;
        let viewer = member_client(
            app,
            &admin,
            "acme",
            "viewer@example.com",
            "Vera Viewer",
            "viewer",
        )
        .await;
        member_client(
            app,
            &admin,
            "acme",
            "admin2@example.com",
            "Second Admin",
            "admin",
        )
        .await;
        let outsider = app
            .signed_in_user("out@example.com", "Oscar Outsider")
            .await;
        assert_eq!(
            create_tenant(app, &outsider, "Other", "other")
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        let tenant_id = sqlx::query_scalar("SELECT tenant_id FROM tenant WHERE slug = 'acme'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        Self {
            admin,
            developer,
            viewer,
            outsider,
            tenant_id,
        }
    }
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

/// The form a route gets when it is allowed, so that an allowed request succeeds.
fn form_for(path: &str) -> Vec<(&'static str, String)> {
    let form_id = Uuid::new_v4().to_string();
    if path.ends_with("/keys") {
        vec![
            ("name", "Table key".into()),
            ("environment", "test".into()),
            ("scopes", "read".into()),
            ("expiry", "never".into()),
            ("form_id", form_id),
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
    let empty = app.get(&client, "/").await.text().await.unwrap();
    assert!(empty.contains("Create a tenant"));
    let response = create_tenant(&app, &client, "Acme Rockets, Inc.", "").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/t/acme-rockets-inc");
    let page = app
        .get(&client, "/t/acme-rockets-inc")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Acme Rockets, Inc. is ready. You are its admin."));
    assert!(page.contains("Your role: Admin"));
    let home = app.get(&client, "/").await.text().await.unwrap();
    assert!(home.contains(r#"href="/t/acme-rockets-inc""#) && home.contains("admin"));
}

#[sqlx::test]
async fn a_taken_or_malformed_slug_is_refused_with_a_reason(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    create_tenant(&app, &client, "Acme", "acme").await;
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
    let admin = app.signed_in_user("ada@example.com", "<b>Ada</b>").await;
    create_tenant(&app, &admin, "<img src=x onerror=alert(1)>", "evil").await;
    for path in ["/", "/t/evil", "/t/evil/members", "/t/evil/audit"] {
        let html = app.get(&admin, path).await.text().await.unwrap();
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(!html.contains("<b>Ada</b>"), "{path}");
    }
}

#[sqlx::test]
async fn an_invited_person_joins_with_the_role_and_only_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let link = invite(&app, &admin, "acme", "Bob@Example.com", "developer").await;

    // Opened signed out: the page says who it is for and how to continue.
    let bob = app.client();
    let page = app.get(&bob, &link).await.text().await.unwrap();
    assert!(
        page.contains("Join Acme")
            && page.contains("bob@example.com")
            && page.contains("developer")
    );
    // Signs up (the email matched case-insensitively) and lands back on the invitation.
    let response = app
        .submit(
            &bob,
            &format!("/signup?next={link}"),
            "/signup",
            &[
                ("email", "BOB@example.com"),
                ("display_name", "Bob"),
                ("password", crate::support::app::PASSWORD),
                ("next", &link),
            ],
        )
        .await;
    assert_eq!(location(&response), link);
    let response = accept(&app, &bob, &link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/t/acme");
    let page = app.get(&bob, "/t/acme").await.text().await.unwrap();
    assert!(page.contains("Welcome to Acme") && page.contains("Your role: Developer"));

    // Reused: refused, and nothing changes.
    let again = accept(&app, &bob, &link).await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(again.text().await.unwrap().contains("already been used"));
    let members: i64 = app.count("membership").await;
    assert_eq!(members, 2);
}

async fn memberships(app: &TestApp) -> i64 {
    app.count("membership").await
}

#[sqlx::test]
async fn an_invitation_for_another_email_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let link = invite(&app, &admin, "acme", "bob@example.com", "admin").await;
    let eve = app.signed_in_user("eve@example.com", "Eve").await;
    let page = app.get(&eve, &link).await.text().await.unwrap();
    assert!(page.contains("This invitation is for bob@example.com"));
    let response = accept(&app, &eve, &link).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(memberships(&app).await, 1);
    assert_eq!(
        app.get(&eve, "/t/acme").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn a_revoked_invitation_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let link = invite(&app, &admin, "acme", "bob@example.com", "viewer").await;
    let members = app
        .get(&admin, "/t/acme/members")
        .await
        .text()
        .await
        .unwrap();
    assert!(members.contains("bob@example.com"), "listed as pending");
    let id: Uuid = sqlx::query_scalar("SELECT invitation_id FROM invitation")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let response = app
        .submit(
            &admin,
            "/t/acme/members",
            &format!("/t/acme/invitations/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let bob = app.signed_in_user("bob@example.com", "Bob").await;
    let response = accept(&app, &bob, &link).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("withdrawn"));
    assert_eq!(memberships(&app).await, 1);
}

#[sqlx::test]
async fn an_expired_invitation_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let link = invite(&app, &admin, "acme", "bob@example.com", "viewer").await;
    sqlx::query("UPDATE invitation SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let bob = app.signed_in_user("bob@example.com", "Bob").await;
    let response = accept(&app, &bob, &link).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("expired"));
    assert_eq!(memberships(&app).await, 1);
}

#[sqlx::test]
async fn a_made_up_invitation_link_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let bob = app.signed_in_user("bob@example.com", "Bob").await;
    let response = accept(&app, &bob, "/invitations/not-a-real-token-at-all").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(memberships(&app).await, 0);
}

#[sqlx::test]
async fn invitations_are_stored_only_as_hashes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let link = invite(&app, &admin, "acme", "bob@example.com", "viewer").await;
    let token = link.trim_start_matches("/invitations/");
    let dump: String = sqlx::query_scalar("SELECT string_agg(i::text, '|') FROM invitation i")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains(token));
    let members_page = app
        .get(&admin, "/t/acme/members")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !members_page.contains(token),
        "the link is shown once, not on the list"
    );
}

#[sqlx::test]
async fn the_last_admin_can_neither_leave_nor_be_demoted_or_removed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    let own: Uuid = sqlx::query_scalar("SELECT membership_id FROM membership")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let demote = app
        .submit(
            &admin,
            "/t/acme/members",
            &format!("/t/acme/members/{own}/role"),
            &[("role", "developer")],
        )
        .await;
    assert_eq!(demote.status(), StatusCode::CONFLICT);
    assert!(demote.text().await.unwrap().contains("at least one admin"));
    let remove = app
        .submit(
            &admin,
            "/t/acme/members",
            &format!("/t/acme/members/{own}/remove"),
            &[],
        )
        .await;
    assert_eq!(remove.status(), StatusCode::CONFLICT);
    let leave = app
        .submit(&admin, "/t/acme/leave", "/t/acme/leave", &[])
        .await;
    assert_eq!(leave.status(), StatusCode::CONFLICT);
    let role: String = sqlx::query_scalar("SELECT role FROM membership")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(role, "admin");

    // With a second admin, the first may step down.
    member_client(&app, &admin, "acme", "bob@example.com", "Bob", "admin").await;
    let demote = app
        .submit(
            &admin,
            "/t/acme/members",
            &format!("/t/acme/members/{own}/role"),
            &[("role", "developer")],
        )
        .await;
    assert_eq!(demote.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&admin, "/t/acme/audit").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[sqlx::test]
async fn removal_and_demotion_take_effect_on_the_very_next_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    // The developer has two sessions.
    let dev_phone = app.client();
    app.sign_in(&dev_phone, "dev@example.com", crate::support::app::PASSWORD)
        .await;
    assert_eq!(
        app.get(&dev_phone, "/t/acme").await.status(),
        StatusCode::OK
    );
    let dev_id: Uuid = sqlx::query_scalar("SELECT membership_id FROM membership JOIN app_user USING (app_user_id) WHERE email = 'dev@example.com'")
        .fetch_one(&app.pool).await.unwrap();
    let confirm = app
        .get(&world.admin, &format!("/t/acme/members/{dev_id}/remove"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        confirm.contains("Remove Dan Developer?"),
        "a confirmation step first"
    );
    let response = app
        .submit(
            &world.admin,
            "/t/acme/members",
            &format!("/t/acme/members/{dev_id}/remove"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    for client in [&world.developer, &dev_phone] {
        assert_eq!(
            app.get(client, "/t/acme").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    // An admin lowered to viewer loses admin pages at once.
    let second_admin = app.client();
    app.sign_in(
        &second_admin,
        "admin2@example.com",
        crate::support::app::PASSWORD,
    )
    .await;
    assert_eq!(
        app.get(&second_admin, "/t/acme/audit").await.status(),
        StatusCode::OK
    );
    let id: Uuid = sqlx::query_scalar("SELECT membership_id FROM membership JOIN app_user USING (app_user_id) WHERE email = 'admin2@example.com'")
        .fetch_one(&app.pool).await.unwrap();
    app.submit(
        &world.admin,
        "/t/acme/members",
        &format!("/t/acme/members/{id}/role"),
        &[("role", "viewer")],
    )
    .await;
    let response = app.get(&second_admin, "/t/acme/audit").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Your role there is viewer")
    );
}

#[sqlx::test]
async fn a_member_may_leave_a_tenant(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let page = app
        .get(&world.viewer, "/t/acme/leave")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Leave Acme?"));
    let response = app
        .submit(&world.viewer, "/t/acme/leave", "/t/acme/leave", &[])
        .await;
    assert_eq!(location(&response), "/");
    assert_eq!(
        app.get(&world.viewer, "/t/acme").await.status(),
        StatusCode::NOT_FOUND
    );
    let home = app.get(&world.viewer, "/").await.text().await.unwrap();
    assert!(home.contains("You left Acme."));
}

#[sqlx::test]
async fn the_audit_log_records_who_did_what_from_where(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let viewer_id: Uuid = sqlx::query_scalar("SELECT membership_id FROM membership JOIN app_user USING (app_user_id) WHERE email = 'viewer@example.com'")
        .fetch_one(&app.pool).await.unwrap();
    let response = app
        .submit(
            &world.admin,
            "/t/acme/members",
            &format!("/t/acme/members/{viewer_id}/role"),
            &[("role", "developer")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let log = app
        .get(&world.admin, "/t/acme/audit")
        .await
        .text()
        .await
        .unwrap();
    for action in [
        "tenant.created",
        "invitation.created",
        "invitation.accepted",
        "member.role_changed",
    ] {
        assert!(log.contains(action), "{action} is logged");
    }
    assert!(
        log.contains("Alice Admin &#60;admin@example.com&#62;")
            || log.contains("Alice Admin &lt;admin@example.com&gt;")
    );
    assert!(log.contains("127.0.0.1"));
    // Newest first.
    assert!(log.find("member.role_changed").unwrap() < log.find("tenant.created").unwrap());
    // Each event carries the request id of the request that made it.
    let (request_id, ip): (String, String) = sqlx::query_as(
        "SELECT request_id, client_ip FROM audit_event WHERE action = 'member.role_changed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(request_id.len(), 36);
    assert_eq!(ip, "127.0.0.1");

    let filtered = app
        .get(&world.admin, "/t/acme/audit?action=member.role_changed")
        .await
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("from: viewer · to: developer"));
    assert!(!filtered.contains("<code>tenant.created</code>"));
}

#[sqlx::test]
async fn the_audit_log_is_paginated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in_user("admin@example.com", "Alice").await;
    create_tenant(&app, &admin, "Acme", "acme").await;
    sqlx::query(
        "INSERT INTO audit_event (tenant_id, action, target, at)
         SELECT tenant_id, 'test.event', 'n:' || n, now() - n * interval '1 minute'
         FROM tenant, generate_series(1, 60) AS n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let first = app.get(&admin, "/t/acme/audit").await.text().await.unwrap();
    assert!(first.contains("Older"));
    assert!(!first.contains("Newer"));
    assert_eq!(
        first.matches("<tr>").count() - 1,
        50,
        "50 events and a header row"
    );
    let second = app
        .get(&admin, "/t/acme/audit?page=2")
        .await
        .text()
        .await
        .unwrap();
    assert!(second.contains("Newer") && !second.contains("Older"));
    assert_eq!(second.matches("<tr>").count() - 1, 11);
}
