//! The harness: a running Gatehouse on its own database, and an HTTP client that behaves like a browser.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse::app::AppState;
use gatehouse::config::Config;
use gatehouse::domain::key_cache::KeyCache;
use gatehouse::server;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Client, Response, StatusCode};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery staple 42";

/// A Gatehouse server on a free loopback port, stopped when dropped (or gracefully by `stop`).
pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub key_cache: Arc<KeyCache>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, &[], |_| {}).await
    }

    /// `env` adds configuration variables; `adjust` changes the parsed config (for durations
    /// shorter than the environment allows).
    pub async fn spawn_with(
        pool: PgPool,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::spawn_on(listener, pool, env, adjust).await
    }

    /// Like `spawn_with`, on a listener bound beforehand (for an identity provider that must know
    /// Gatehouse's address before Gatehouse starts).
    pub async fn spawn_on(
        listener: TcpListener,
        pool: PgPool,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut vars: HashMap<String, String> = HashMap::from([
            // The pool below is used; the URL only has to parse.
            (
                "DATABASE_URL".into(),
                "postgres://unused@127.0.0.1/unused".into(),
            ),
            ("GATEHOUSE_PUBLIC_URL".into(), base.clone()),
            // A fixed key for sealing webhook secrets (the run command generates one).
            (
                "GATEHOUSE_SECRET_KEY".into(),
                "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE=".into(),
            ),
        ]);
        for (name, value) in env {
            vars.insert((*name).into(), (*value).into());
        }
        let mut config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        adjust(&mut config);
        let state = AppState::with_pool(config, pool.clone()).await.unwrap();
        let key_cache = state.verifier.cache.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            pool,
            key_cache,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// A handle on a server started some other way (the real binary), for its client helpers.
    pub fn external(base: String, pool: PgPool) -> Self {
        Self {
            base,
            pool,
            // The real binary has its own; this one is never used.
            key_cache: Arc::new(KeyCache::new(std::time::Duration::ZERO)),
            shutdown: None,
            server: None,
        }
    }

    /// Shuts down as SIGTERM does: stops accepting, drains requests, writes usage counters.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    /// Waits until the instance hears key changes (its cache is off until then).
    pub async fn wait_until_listening(&self) {
        for _ in 0..200 {
            if self.key_cache.is_listening() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the instance never started listening for key changes");
    }

    /// How many rows `table` has: what a test checks to see that nothing was made.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like client: its own cookie jar, redirects not followed (tests look at them).
    pub fn client(&self) -> Client {
        self.client_with_jar().0
    }

    /// A client and its cookie jar, for tests that look at or replay cookies.
    pub fn client_with_jar(&self) -> (Client, Arc<Jar>) {
        let jar = Arc::new(Jar::default());
        let client = Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        (client, jar)
    }

    /// The session cookie (`name=value`) the jar would send to this app.
    pub fn session_cookie_in(&self, jar: &Jar) -> Option<String> {
        let url = self.base.parse().unwrap();
        let header = jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find(|cookie| cookie.starts_with("gatehouse="))
            .map(str::to_owned)
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.unwrap()
    }

    /// The page at `path`, which must answer 200.
    pub async fn get_html(&self, client: &Client, path: &str) -> String {
        let response = self.get(client, path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.unwrap()
    }

    /// Loads `form_page` for its CSRF token, then posts `fields` to `action` with it.
    pub async fn submit(
        &self,
        client: &Client,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        let token = self.csrf_token(client, form_page).await;
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        form.extend_from_slice(fields);
        client
            .post(self.url(action))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    pub async fn csrf_token(&self, client: &Client, page: &str) -> String {
        let html = self.get(client, page).await.text().await.unwrap();
        csrf_from(&html).unwrap_or_else(|| panic!("no CSRF token on {page}"))
    }

    pub async fn sign_up(&self, client: &Client, email: &str, name: &str) -> Response {
        self.submit(
            client,
            "/signup",
            "/signup",
            &[
                ("email", email),
                ("display_name", name),
                ("password", PASSWORD),
            ],
        )
        .await
    }

    pub async fn sign_in(&self, client: &Client, email: &str, password: &str) -> Response {
        self.submit(
            client,
            "/signin",
            "/signin",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// A new client with a new account whose address is confirmed, signed in. (Confirming by
    /// the mailed link is tested on its own; here it is set directly.)
    pub async fn signed_in_user(&self, email: &str, name: &str) -> Client {
        let client = self.signed_in_unverified_user(email, name).await;
        self.confirm_email(email).await;
        client
    }

    /// Marks an account's address confirmed, as following the mailed link would.
    pub async fn confirm_email(&self, email: &str) {
        sqlx::query("UPDATE app_user SET email_verified_at = now() WHERE email = lower($1)")
            .bind(email)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// A new client with a new account that has not confirmed its address, signed in.
    pub async fn signed_in_unverified_user(&self, email: &str, name: &str) -> Client {
        let client = self.client();
        let response = self.sign_up(&client, email, name).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-up failed");
        client
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

pub fn csrf_from(html: &str) -> Option<String> {
    field_value(html, "csrf_token").filter(|token| !token.is_empty())
}

/// The `value` of the form field `name` in a page.
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

pub fn location(response: &Response) -> &str {
    response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// Asserts that `response` is a redirect (303 See Other) to `to`.
#[track_caller]
pub fn assert_redirect(response: &Response, to: impl AsRef<str>) {
    let to = to.as_ref();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "a redirect to {to}"
    );
    assert_eq!(location(response), to);
}

/// The `Retry-After` of `response`, in seconds.
pub fn retry_after(response: &Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}
