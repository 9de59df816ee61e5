//! The identity providers SSO tests sign in against: the real `oidc-provider` (npm) run by
//! `node`, and a small signing test issuer for tokens a real provider never issues.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::support::app::{TestApp, location};
use crate::support::first_line;

pub const CLIENT_ID: &str = "gatehouse-portal";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
pub const DISPLAY_NAME: &str = "Corp SSO";

/// The variables that configure provider `corp` at `issuer`.
pub fn provider_env(issuer: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_OIDC_PROVIDERS", "corp".into()),
        ("GATEHOUSE_OIDC_CORP_ISSUER", issuer.into()),
        ("GATEHOUSE_OIDC_CORP_CLIENT_ID", CLIENT_ID.into()),
        ("GATEHOUSE_OIDC_CORP_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("GATEHOUSE_OIDC_CORP_DISPLAY_NAME", DISPLAY_NAME.into()),
        ("GATEHOUSE_OIDC_CORP_PROVIDER_LOGOUT", "true".into()),
    ]
}

/// A Gatehouse whose provider `corp` is the real oidc-provider.
pub async fn app_with_provider(pool: PgPool) -> (TestApp, RealProvider) {
    app_with_provider_adjusted(pool, |_| {}).await
}

pub async fn app_with_provider_adjusted(
    pool: PgPool,
    adjust: impl FnOnce(&mut gatehouse::config::Config),
) -> (TestApp, RealProvider) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let provider = RealProvider::start(&base);
    let env = provider_env(&provider.issuer);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_on(listener, pool, &env, adjust).await;
    (app, provider)
}

/// The real `oidc-provider`, configured by `tests/oidc/provider.mjs`, on a free loopback port.
/// Killed (by pid) when dropped, also when a test panics.
pub struct RealProvider {
    pub issuer: String,
    child: Child,
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

impl RealProvider {
    pub fn start(app_base: &str) -> Self {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "tests/oidc/node_modules is missing: run `npm ci` in tests/oidc (scripts/test does)"
        );
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(&node)
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env(
                "REDIRECT_URIS",
                format!("{app_base}/auth/oidc/corp/callback"),
            )
            .env("POST_LOGOUT_REDIRECT_URIS", format!("{app_base}/signin"))
            // Closed when this process ends, however it ends: the provider then exits too.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {node} (is Node.js installed?): {err}"));
        let line = first_line(&mut child, "oidc-provider");
        let mut provider = Self {
            issuer: String::new(),
            child,
        };
        provider.issuer = line
            .trim()
            .strip_prefix("issuer ")
            .unwrap_or_else(|| panic!("unexpected first line from the provider: {line:?}"))
            .to_owned();
        provider
    }

    /// Walks the provider's pages as `login` would: from the authorization URL Gatehouse
    /// redirected to, through the login and consent forms, to the callback URL on `app_base`
    /// (returned, not visited).
    pub async fn authorize(
        &self,
        client: &Client,
        authorize_url: &str,
        login: &str,
        app_base: &str,
    ) -> String {
        let mut url: Url = authorize_url.parse().unwrap();
        for _ in 0..12 {
            if url.as_str().starts_with(app_base) {
                return url.to_string();
            }
            let response = client.get(url.clone()).send().await.unwrap();
            if response.status().is_redirection() {
                url = url.join(location(&response)).unwrap();
                continue;
            }
            assert_eq!(response.status(), StatusCode::OK, "provider page {url}");
            let html = response.text().await.unwrap();
            let action = form_action(&html).unwrap_or_else(|| panic!("no form on {url}: {html}"));
            let fields: Vec<(&str, &str)> = if html.contains(r#"name="login""#) {
                vec![
                    ("prompt", "login"),
                    ("login", login),
                    ("password", "any password"),
                ]
            } else {
                vec![("prompt", "consent")]
            };
            let response = client
                .post(url.join(&action).unwrap())
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_redirection(), "{}", response.status());
            url = url.join(location(&response)).unwrap();
        }
        panic!("the provider never sent the browser back to Gatehouse");
    }
}

impl Drop for RealProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form_action(html: &str) -> Option<String> {
    let start = html.find("<form")?;
    let rest = &html[start..];
    let marker = "action=\"";
    let at = rest.find(marker)? + marker.len();
    let end = rest[at..].find('"')? + at;
    Some(rest[at..end].replace("&amp;", "&"))
}

/// A token a real provider would not issue, for the test issuer to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// A correct token: the control that shows the issuer works.
    Nothing,
    WrongAudience,
    ExtraAudience,
    WrongAuthorizedParty,
    WrongIssuer,
    Expired,
    IssuedInTheFuture,
    IssuedLongAgo,
    AlgNone,
    BadSignature,
    UnknownKeyId,
    SignedWithClientSecret,
    MissingNonce,
    WrongNonce,
}

struct IssuerState {
    issuer: String,
    key: SigningKey,
    other_key: SigningKey,
    forgery: Mutex<Forgery>,
    /// code -> nonce from the authorization request.
    codes: Mutex<HashMap<String, Option<String>>>,
}

/// A small OpenID issuer (ES256) that signs whatever the test asks for. It only supports what
/// Gatehouse uses: discovery, keys, authorize (no login: it answers at once) and token.
pub struct TestIssuer {
    pub issuer: String,
    state: Arc<IssuerState>,
    server: tokio::task::JoinHandle<()>,
}

const KEY_ID: &str = "test-key-1";

fn signing_key() -> SigningKey {
    loop {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return key;
        }
    }
}

impl TestIssuer {
    pub async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    pub async fn start_on(listener: TcpListener) -> Self {
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IssuerState {
            issuer: issuer.clone(),
            key: signing_key(),
            other_key: signing_key(),
            forgery: Mutex::new(Forgery::Nothing),
            codes: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            issuer,
            state,
            server,
        }
    }

    /// The next token endpoint answer carries this forgery.
    pub fn forge(&self, forgery: Forgery) {
        *self.state.forgery.lock().unwrap() = forgery;
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Json<Value> {
    let issuer = &state.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        // Advertising `none` and HS256 must not make Gatehouse accept them.
        "id_token_signing_alg_values_supported": ["ES256", "HS256", "none"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

fn public_jwk(key: &SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": B64.encode(&bytes[1..33]),
        "y": B64.encode(&bytes[33..65]),
    })
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Json<Value> {
    Json(json!({ "keys": [public_jwk(&state.key, KEY_ID)] }))
}

async fn authorize(
    State(state): State<Arc<IssuerState>>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let code = uuid::Uuid::new_v4().to_string();
    state
        .codes
        .lock()
        .unwrap()
        .insert(code.clone(), query.get("nonce").cloned());
    let mut back: Url = query["redirect_uri"].parse().unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &query["state"]);
    Redirect::to(back.as_str())
}

async fn token(
    State(state): State<Arc<IssuerState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let nonce = state
        .codes
        .lock()
        .unwrap()
        .remove(&form["code"])
        .expect("unknown code");
    let forgery = *state.forgery.lock().unwrap();
    let id_token = forge(&state, forgery, nonce);
    Json(json!({
        "access_token": "test-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
}

fn forge(state: &IssuerState, forgery: Forgery, nonce: Option<String>) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": state.issuer,
        "sub": "forged-subject",
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": nonce,
        "email": "mallory@example.test",
        "email_verified": true,
        "name": "Mallory",
    });
    let mut header = json!({ "alg": "ES256", "typ": "JWT", "kid": KEY_ID });
    match forgery {
        Forgery::Nothing
        | Forgery::AlgNone
        | Forgery::BadSignature
        | Forgery::UnknownKeyId
        | Forgery::SignedWithClientSecret => {}
        Forgery::WrongAudience => claims["aud"] = json!("another-client"),
        Forgery::ExtraAudience => claims["aud"] = json!([CLIENT_ID, "another-client"]),
        Forgery::WrongAuthorizedParty => claims["azp"] = json!("another-client"),
        Forgery::WrongIssuer => claims["iss"] = json!("https://evil.example"),
        Forgery::Expired => {
            claims["exp"] = json!(now - 10);
            claims["iat"] = json!(now - 310);
        }
        Forgery::IssuedInTheFuture => claims["iat"] = json!(now + 3600),
        Forgery::IssuedLongAgo => {
            claims["iat"] = json!(now - 24 * 3600);
            claims["exp"] = json!(now + 3600);
        }
        Forgery::MissingNonce => {
            claims.as_object_mut().unwrap().remove("nonce");
        }
        Forgery::WrongNonce => claims["nonce"] = json!("not-the-nonce-that-was-sent"),
    }
    match forgery {
        Forgery::AlgNone => header = json!({ "alg": "none", "typ": "JWT" }),
        Forgery::SignedWithClientSecret => header = json!({ "alg": "HS256", "typ": "JWT" }),
        _ => {}
    }
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature: Vec<u8> = match forgery {
        Forgery::AlgNone => Vec::new(),
        Forgery::SignedWithClientSecret => {
            use hmac::Mac as _;
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
            mac.update(signing_input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Forgery::UnknownKeyId => {
            let mut unknown = signing_input.clone();
            // Same claims, signed by a key the issuer does not publish, under its own kid.
            let header = json!({ "alg": "ES256", "typ": "JWT", "kid": "not-published" });
            unknown = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                unknown.split_once('.').unwrap().1
            );
            let signature: Signature = state.other_key.sign(unknown.as_bytes());
            return format!("{unknown}.{}", B64.encode(signature.to_bytes()));
        }
        Forgery::BadSignature => {
            let signature: Signature = state.other_key.sign(signing_input.as_bytes());
            signature.to_bytes().to_vec()
        }
        _ => {
            let signature: Signature = state.key.sign(signing_input.as_bytes());
            signature.to_bytes().to_vec()
        }
    };
    format!("{signing_input}.{}", B64.encode(signature))
}

/// Starts SSO as a browser would and returns the provider URL Gatehouse sent it to.
pub async fn start_sso(app: &TestApp, client: &Client, path: &str) -> String {
    let response = app.get(client, path).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
    location(&response).to_owned()
}

/// Signs `login` in at the provider and returns the callback URL, not yet visited.
pub async fn callback_for(
    app: &TestApp,
    provider: &RealProvider,
    client: &Client,
    login: &str,
) -> String {
    let authorize = start_sso(app, client, "/auth/oidc/corp").await;
    provider
        .authorize(client, &authorize, login, &app.base)
        .await
}

/// A full SSO sign-in in a fresh browser; returns the browser and the callback's answer.
pub async fn sso_sign_in(
    app: &TestApp,
    provider: &RealProvider,
    login: &str,
) -> (Client, Response) {
    let client = app.client();
    let callback = callback_for(app, provider, &client, login).await;
    let response = client.get(callback).send().await.unwrap();
    (client, response)
}
