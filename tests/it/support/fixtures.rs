//! Fixtures: tenants and keys made straight through the domain (for the key API tests), a tenant
//! with a member of each role made through the portal's own forms, keys made through the portal,
//! and usage counted as the key API counts it.

use std::net::IpAddr;

use gatehouse::db::request_log::{LogRow, insert_batch};
use gatehouse::db::verification;
use gatehouse::domain::audit::{Actor, Who};
use gatehouse::domain::keys::format as key_format;
use gatehouse::domain::keys::{self, AccessChoice, Admission, NewKeyRequest, Requester};
use gatehouse::domain::metering::Meter;
use gatehouse::domain::rate_limit::RateLimits;
use gatehouse::domain::verification::{Code, KeyRecord};
use gatehouse::vocabulary::Environment;
use reqwest::{Client, StatusCode};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::app::{TestApp, assert_redirect, field_value};

pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub admin: Uuid,
}

impl Tenant {
    pub async fn create(pool: &PgPool, slug: &str) -> Self {
        let admin: Uuid = sqlx::query_scalar(
            "INSERT INTO app_user (email, display_name, email_verified_at) VALUES ($1, 'Admin', now())
             RETURNING app_user_id",
        )
        .bind(format!("admin@{slug}.example"))
        .fetch_one(pool)
        .await
        .unwrap();
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO tenant (slug, name) VALUES ($1, $1) RETURNING tenant_id",
        )
        .bind(slug)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO membership (tenant_id, app_user_id, role) VALUES ($1, $2, 'admin')",
        )
        .bind(id)
        .bind(admin)
        .execute(pool)
        .await
        .unwrap();
        Self {
            id,
            slug: slug.to_owned(),
            admin,
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            who: Who::Person(self.admin),
            request_id: "test".into(),
            client_ip: IpAddr::from([127, 0, 0, 1]),
            user_agent: None,
        }
    }

    /// A new key; returns the secret and the key's id.
    pub async fn key(
        &self,
        pool: &PgPool,
        environment: Environment,
        scopes: &[&str],
        rate_limit: u32,
    ) -> (String, Uuid) {
        let request = NewKeyRequest {
            name: format!("{environment} key"),
            environment: Ok(environment),
            access: AccessChoice {
                full: Some(false),
                scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            },
            rate_limit: Ok(Some(rate_limit)),
            ..NewKeyRequest::default()
        };
        let actor = self.actor();
        let mut conn = pool.acquire().await.unwrap();
        let admission = keys::admit(
            &mut conn,
            &config(),
            self.id,
            &request,
            Requester::machine(&actor),
            false,
        )
        .await
        .unwrap()
        .unwrap();
        drop(conn);
        let Admission::Create(admitted) = admission else {
            panic!("an admin's key needs no approval")
        };
        let (key, id) = keys::create_key(pool, "ak", admitted, &actor)
            .await
            .unwrap();
        (key.expose().to_owned(), id)
    }

    /// Changes a key as an admin would (the domain's rules apply; a refusal panics).
    pub async fn edit(&self, pool: &PgPool, key_id: Uuid, edit: keys::KeyChangeRequest) {
        keys::edit_key(
            pool,
            &config(),
            self.id,
            key_id,
            &edit,
            Requester::machine(&self.actor()),
        )
        .await
        .unwrap()
        .unwrap();
    }

    pub async fn revoke(&self, pool: &PgPool, key_id: Uuid) {
        keys::revoke_key(
            pool,
            &config(),
            self.id,
            key_id,
            Requester::machine(&self.actor()),
        )
        .await
        .unwrap()
        .unwrap();
    }

    /// Rolls a key with a grace of `grace`; returns the successor's secret.
    pub async fn roll(&self, pool: &PgPool, key_id: Uuid, grace: time::Duration) -> String {
        let rolled = keys::roll_key(
            pool,
            &config(),
            self.id,
            key_id,
            grace,
            Requester::machine(&self.actor()),
        )
        .await
        .unwrap()
        .unwrap();
        rolled.key.expose().to_owned()
    }
}

/// The default configuration (key prefix `ak`), for domain calls made without a running app.
fn config() -> keys::KeyConfig {
    gatehouse::config::Config::from_lookup(|name| {
        (name == "DATABASE_URL").then(|| "postgres://unused@127.0.0.1/unused".to_owned())
    })
    .unwrap()
    .keys()
}

pub async fn expire(pool: &PgPool, key_id: Uuid) {
    sqlx::query(
        "UPDATE api_key SET expires_at = now() - interval '1 second' WHERE api_key_id = $1",
    )
    .bind(key_id)
    .execute(pool)
    .await
    .unwrap();
}

/// Revokes a key straight in the database, so no instance hears of it.
pub async fn revoke_unnoticed(pool: &PgPool, key_id: Uuid) {
    sqlx::query("UPDATE api_key SET revoked_at = now() WHERE api_key_id = $1")
        .bind(key_id)
        .execute(pool)
        .await
        .unwrap();
}

/// A key of the platform's old format in `tenant_id`, stored as an import stores it (SHA-256,
/// legacy).
pub async fn legacy_key(pool: &PgPool, tenant_id: Uuid, secret: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO api_key (tenant_id, name, environment, secret_hash, last_four, scopes,
                              rate_limit, legacy)
         VALUES ($1, 'old key', 'live', $2, $3, ARRAY['read'], 100, true)
         RETURNING api_key_id",
    )
    .bind(tenant_id)
    .bind(key_format::hash(secret).as_slice())
    .bind(key_format::last_four(secret))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A well-formed key (right prefix, length and checksum) that was never issued.
pub fn unknown_key() -> String {
    key_format::NewKey::generate("ak", Environment::Live)
        .expose()
        .to_owned()
}

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

/// A signed-in admin of a tenant made through the portal's own form: where most tenant tests
/// start.
pub struct TenantAdmin {
    pub client: Client,
    pub tenant_id: Uuid,
}

impl TenantAdmin {
    /// Ada (`ada@example.com`), signed in, admin of the new tenant Acme (`acme`).
    pub async fn acme(app: &TestApp) -> Self {
        Self::create(app, "ada@example.com", "Ada", "Acme", "acme").await
    }

    /// A new account `email` named `name`, signed in, that creates tenant `tenant` at `slug`.
    pub async fn create(app: &TestApp, email: &str, name: &str, tenant: &str, slug: &str) -> Self {
        let client = app.signed_in_user(email, name).await;
        let response = create_tenant(app, &client, tenant, slug).await;
        assert_redirect(&response, format!("/t/{slug}"));
        let tenant_id = sqlx::query_scalar("SELECT tenant_id FROM tenant WHERE slug = $1")
            .bind(slug)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        Self { client, tenant_id }
    }
}

impl World {
    pub async fn build(app: &TestApp) -> Self {
        let acme =
            TenantAdmin::create(app, "admin@example.com", "Alice Admin", "Acme", "acme").await;
        let admin = acme.client;
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
        let outsider =
            TenantAdmin::create(app, "out@example.com", "Oscar Outsider", "Other", "other").await;
        Self {
            admin,
            developer,
            viewer,
            outsider: outsider.client,
            tenant_id: acme.tenant_id,
        }
    }
}

/// Submits the new-key form; returns the response.
pub async fn submit_key(
    app: &TestApp,
    client: &Client,
    slug: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let form_page = format!("/t/{slug}/keys/new");
    let html = app.get_html(client, &form_page).await;
    let form_id = field_value(&html, "form_id").expect("the form has an id");
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
            ("access", "full"),
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
pub async fn roll(
    app: &TestApp,
    client: &Client,
    slug: &str,
    id: Uuid,
    grace: &str,
) -> reqwest::Response {
    let path = format!("/t/{slug}/keys/{id}/roll");
    let form = app.get_html(client, &path).await;
    let form_id = field_value(&form, "form_id").unwrap();
    app.submit(
        client,
        &path,
        &path,
        &[("grace", grace), ("form_id", &form_id)],
    )
    .await
}

pub fn revealed(html: &str) -> Option<String> {
    let start = html.find(r#"id="new-key""#)?;
    let from = html[start..].find(r#"value=""#)? + start + 7;
    let end = html[from..].find('"')? + from;
    Some(html[from..end].to_owned())
}

pub fn key_link(html: &str, slug: &str) -> Option<Uuid> {
    let marker = format!("/t/{slug}/keys/");
    html.match_indices(&marker)
        .filter_map(|(at, _)| html[at + marker.len()..].get(..36)?.parse().ok())
        .next()
}

/// Counts `count` verifications of `key` with `outcome`, `minutes_ago`, the way the key API
/// counts them: the key as its lookup finds it, counted in a `Meter` at that time, and written by
/// the meter's own flush (every counter table and roll-up, one batch).
pub async fn record_usage(pool: &PgPool, key: Uuid, minutes_ago: i64, outcome: Code, count: u64) {
    let secret_hash: Vec<u8> =
        sqlx::query_scalar("SELECT secret_hash FROM api_key WHERE api_key_id = $1")
            .bind(key)
            .fetch_one(pool)
            .await
            .unwrap();
    let row = verification::find_by_hash(pool, &secret_hash)
        .await
        .unwrap()
        .expect("the key exists");
    let record = KeyRecord::from_row(row, &["read".to_owned(), "write".to_owned()]);
    let at = OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago);
    let meter = Meter::new();
    for _ in 0..count {
        meter.record(&record, outcome, at);
    }
    let written = meter.flush(pool, &RateLimits::new(100)).await.unwrap();
    assert_eq!(written, count, "the flush wrote every verification");
}

/// A busy last hour for `key`: 20 to 49 valid calls a minute, 6 rate limited every ninth minute
/// and `refused` times `refusal` every thirteenth.
pub async fn busy_hour(pool: &PgPool, key: Uuid, refusal: Code, refused: u64) {
    for minutes_ago in 0..60_i64 {
        let valid = 20 + (minutes_ago.unsigned_abs() * 7) % 30;
        record_usage(pool, key, minutes_ago, Code::Valid, valid).await;
        if minutes_ago % 9 == 0 {
            record_usage(pool, key, minutes_ago, Code::RateLimited, 6).await;
        }
        if minutes_ago % 13 == 0 {
            record_usage(pool, key, minutes_ago, refusal, refused).await;
        }
    }
}

/// Records of calls with `key`, written as the request log's writer writes them: a refusal of
/// each kind, accepted calls, long paths and user agents, IPv4 and IPv6 clients.
pub async fn log_calls(pool: &PgPool, key: Uuid) {
    let tenant_id: Uuid = sqlx::query_scalar("SELECT tenant_id FROM api_key WHERE api_key_id = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let calls: [(&'static str, Option<&str>, &str, Option<&str>); 6] = [
        (
            "VALID",
            None,
            "203.0.113.9",
            Some("/v2/invoices/2026-11/lines"),
        ),
        (
            "INSUFFICIENT_SCOPE",
            Some("write"),
            "203.0.113.9",
            Some("/v2/invoices"),
        ),
        (
            "RATE_LIMITED",
            Some("1000"),
            "2001:db8:85a3::8a2e:370:7334",
            Some(
                "/v2/customers/cus_8f3k2l9q0w1e2r3t4y5u6i7o8p/payment-methods/pm_1234567890abcdef",
            ),
        ),
        ("ENVIRONMENT_MISMATCH", Some("test"), "198.51.100.7", None),
        ("IP_NOT_ALLOWED", None, "192.0.2.200", Some("/v2/refunds")),
        ("DISABLED", None, "192.0.2.201", Some("/")),
    ];
    let rows: Vec<LogRow> = calls
        .iter()
        .enumerate()
        .map(|(i, (code, detail, client, path))| LogRow {
            at: now - time::Duration::seconds(i64::try_from(i).unwrap() * 37),
            tenant_id,
            api_key_id: key,
            code,
            detail: detail.map(str::to_owned),
            via: if path.is_some() { "authorize" } else { "verify" },
            client_ip: (*client).to_owned(),
            method: path.map(|_| "POST".to_owned()),
            path: path.map(str::to_owned),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) billing-pipeline/4.12.0"
                    .into(),
            ),
            request_id: Some(Uuid::new_v4().to_string()),
        })
        .collect();
    insert_batch(pool, &rows).await.unwrap();
}
