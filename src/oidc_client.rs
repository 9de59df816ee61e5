//! OpenID Connect relying party: provider discovery, authorization requests, the code exchange
//! and strict ID token validation. No HTTP serving, no SQL: `web::auth::sso` drives it.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    JsonWebKeySet, LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse as _,
};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;

use crate::config::{Config, OidcProviderConfig};

/// Only asymmetric signatures. `none` is never acceptable; HMAC (`HS256`…) would make the
/// client secret a signing key, so anyone holding it (every instance, every log that leaked it)
/// could mint sign-ins, and none of the providers Gatehouse documents needs it.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Clock difference tolerated between Gatehouse and a provider for `iat`.
const CLOCK_SKEW_SECS: i64 = 60;
/// A token whose key is unknown makes Gatehouse fetch the provider's keys again (they may have
/// rotated), but not more often than this.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// First retry of a failed discovery; doubles up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Discovered metadata and keys are fetched again this often, to follow key rotation.
const REFRESH: Duration = Duration::from_secs(3600);

/// The configured providers, in configuration order. Cheap to clone.
#[derive(Clone, Default)]
pub struct Providers {
    list: Arc<Vec<Arc<Provider>>>,
}

impl Providers {
    /// Builds the providers and tries discovery once for each, concurrently. A provider that
    /// cannot be discovered is logged and stays unavailable until a retry succeeds; it never
    /// stops the start.
    pub async fn start(config: &Config) -> Result<Self, String> {
        let http = http_client()?;
        let public = config.public_url.origin();
        let list = config
            .oidc_providers
            .iter()
            .map(|provider| {
                let redirect = format!("{public}/auth/oidc/{}/callback", provider.name);
                Ok(Arc::new(Provider {
                    config: provider.clone(),
                    issuer: IssuerUrl::new(provider.issuer.clone())
                        .map_err(|err| format!("{}: bad issuer: {err}", provider.name))?,
                    redirect_uri: RedirectUrl::new(redirect).map_err(|err| err.to_string())?,
                    post_logout_redirect_uri: PostLogoutRedirectUrl::new(format!(
                        "{public}/signin"
                    ))
                    .map_err(|err| err.to_string())?,
                    http: http.clone(),
                    discovered: RwLock::new(None),
                    jwks_fetched_at: std::sync::Mutex::new(None),
                }))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let providers = Self {
            list: Arc::new(list),
        };
        let mut attempts = JoinSet::new();
        for provider in providers.list.iter() {
            let provider = Arc::clone(provider);
            attempts.spawn(async move { provider.discover().await });
        }
        while attempts.join_next().await.is_some() {}
        Ok(providers)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.list
            .iter()
            .find(|provider| provider.config.name == name)
    }

    pub fn by_issuer(&self, issuer: &str) -> Option<&Arc<Provider>> {
        self.list
            .iter()
            .find(|provider| provider.config.issuer == issuer)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.list.iter()
    }

    /// Runs until aborted: retries providers that could not be discovered (backing off), and
    /// refreshes the others hourly.
    pub async fn keep_discovering(self) {
        if self.list.is_empty() {
            return;
        }
        let mut retry = FIRST_RETRY;
        let mut refreshed = Instant::now();
        loop {
            let missing = self.list.iter().any(|provider| !provider.is_available());
            tokio::time::sleep(if missing { retry } else { REFRESH }).await;
            let refresh_all = refreshed.elapsed() >= REFRESH;
            if refresh_all {
                refreshed = Instant::now();
            }
            for provider in self.list.iter() {
                if refresh_all || !provider.is_available() {
                    provider.discover().await;
                }
            }
            retry = if self.list.iter().all(|provider| provider.is_available()) {
                FIRST_RETRY
            } else {
                (retry * 2).min(MAX_RETRY)
            };
        }
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    // A provider's endpoints must answer themselves: following redirects would let a compromised
    // or misconfigured endpoint send the code and client secret elsewhere.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("cannot build the OpenID Connect HTTP client: {err}"))
}

/// One provider: its configuration and, once discovered, its metadata and keys.
pub struct Provider {
    pub config: OidcProviderConfig,
    issuer: IssuerUrl,
    redirect_uri: RedirectUrl,
    post_logout_redirect_uri: PostLogoutRedirectUrl,
    http: reqwest::Client,
    discovered: RwLock<Option<Arc<ProviderMetadataWithLogout>>>,
    jwks_fetched_at: std::sync::Mutex<Option<Instant>>,
}

/// Where to send the browser, and what to keep until it comes back.
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A sign-in the provider vouched for, after every check.
#[derive(Debug, Clone)]
pub struct VerifiedLogin {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// True only when the provider said so (or the operator vouches for its emails).
    pub email_verified: bool,
    pub name: Option<String>,
    /// Kept for RP-initiated logout (`id_token_hint`); never logged.
    pub id_token: String,
}

/// Why a sign-in through a provider failed. The message is for logs; people see a plain one.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("provider not discovered")]
    Unavailable,
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the provider refused the code: {0}")]
    Refused(String),
    #[error("ID token rejected: {0}")]
    InvalidToken(String),
}

impl Provider {
    pub fn is_available(&self) -> bool {
        self.metadata().is_some()
    }

    fn metadata(&self) -> Option<Arc<ProviderMetadataWithLogout>> {
        self.discovered
            .read()
            .map_or(None, |discovered| discovered.clone())
    }

    fn store(&self, metadata: ProviderMetadataWithLogout) {
        if let Ok(mut discovered) = self.discovered.write() {
            *discovered = Some(Arc::new(metadata));
        }
    }

    /// Fetches the discovery document and keys; on failure logs why and keeps what it had.
    pub async fn discover(&self) {
        let name = &self.config.name;
        let issuer = &self.config.issuer;
        match ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                if let Err(why) = check_metadata(&metadata) {
                    tracing::error!(oidc.provider = %name, oidc.issuer = %issuer, reason = %why,
                        "OpenID provider is misconfigured; its sign-in button stays unavailable");
                    return;
                }
                let was_available = self.is_available();
                if let Ok(mut fetched) = self.jwks_fetched_at.lock() {
                    *fetched = Some(Instant::now());
                }
                self.store(metadata);
                if !was_available {
                    tracing::info!(oidc.provider = %name, oidc.issuer = %issuer, "OpenID provider discovered");
                }
            }
            Err(err) => {
                let level_error = !self.is_available();
                let reason = chain(&err);
                if level_error {
                    tracing::error!(oidc.provider = %name, oidc.issuer = %issuer, %reason,
                        "OpenID provider discovery failed (GATEHOUSE_OIDC_{}_ISSUER); its sign-in \
                         button shows it as unavailable and discovery is retried",
                        name.to_ascii_uppercase());
                } else {
                    tracing::warn!(oidc.provider = %name, oidc.issuer = %issuer, %reason,
                        "OpenID provider refresh failed; keeping the metadata already known");
                }
            }
        }
    }

    fn client(
        &self,
        metadata: &ProviderMetadataWithLogout,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(
                self.config.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect_uri.clone())
    }

    /// A new authorization request: code flow, PKCE S256, fresh `state` and `nonce`.
    pub fn authorization_request(&self) -> Option<AuthorizationRequest> {
        let metadata = self.metadata()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client(&metadata)
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Some(AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code and validates the ID token. `max_age` bounds how old its `iat` may be.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        max_age: Duration,
    ) -> Result<VerifiedLogin, LoginError> {
        let metadata = self.metadata().ok_or(LoginError::Unavailable)?;
        let client = self.client(&metadata);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| LoginError::Refused(format!("no token endpoint: {err}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|err| match err {
                RequestTokenError::ServerResponse(response) => {
                    LoginError::Refused(response.error().to_string())
                }
                RequestTokenError::Request(err) => LoginError::Unreachable(chain(&err)),
                other => LoginError::Refused(chain(&other)),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| LoginError::InvalidToken("the token response has no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_owned());
        let claims = match self.verify(&metadata, id_token, &nonce, max_age) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since discovery: fetch them once more.
                let refreshed = self.refetch_keys(&metadata).await?;
                self.verify(&refreshed, id_token, &nonce, max_age)
            }
            other => other,
        }
        .map_err(|err| LoginError::InvalidToken(err.to_string()))?;

        // `azp` is the party the token was issued to; openidconnect leaves it unchecked.
        let client_id = self.config.client_id.as_str();
        if let Some(azp) = claims.authorized_party()
            && azp.as_str() != client_id
        {
            return Err(LoginError::InvalidToken(format!(
                "azp is {:?}, not this client",
                azp.as_str()
            )));
        }
        if claims.audiences().len() > 1 && claims.authorized_party().is_none() {
            return Err(LoginError::InvalidToken(
                "several audiences and no azp".into(),
            ));
        }
        Ok(VerifiedLogin {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|email| email.as_str().to_owned()),
            email_verified: claims.email_verified() == Some(true) || self.config.trust_email,
            name: display_name(&claims),
            id_token: id_token.to_string(),
        })
    }

    fn verify(
        &self,
        metadata: &ProviderMetadataWithLogout,
        id_token: &CoreIdToken,
        nonce: &Nonce,
        max_age: Duration,
    ) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        let advertised = metadata.id_token_signing_alg_values_supported();
        let allowed: Vec<_> = ALLOWED_ALGS
            .iter()
            .filter(|alg| advertised.contains(alg))
            .cloned()
            .collect();
        // A public-client verifier: it never accepts a token signed with the client secret.
        let verifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.config.client_id.clone()),
            self.issuer.clone(),
            metadata.jwks().clone(),
        )
        .set_allowed_algs(allowed)
        .set_issue_time_verifier_fn(move |iat| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let issued = iat.timestamp();
            if issued > now + CLOCK_SKEW_SECS {
                Err(format!("issued {}s in the future", issued - now))
            } else if issued < now - max_age - CLOCK_SKEW_SECS {
                Err(format!("issued {}s ago", now - issued))
            } else {
                Ok(())
            }
        });
        id_token.claims(&verifier, nonce).cloned()
    }

    async fn refetch_keys(
        &self,
        metadata: &ProviderMetadataWithLogout,
    ) -> Result<ProviderMetadataWithLogout, LoginError> {
        let unknown_key =
            || LoginError::InvalidToken("signed with a key the provider does not publish".into());
        {
            let Ok(mut fetched) = self.jwks_fetched_at.lock() else {
                return Err(unknown_key());
            };
            if fetched.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
                return Err(unknown_key());
            }
            *fetched = Some(Instant::now());
        }
        let jwks = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|err| LoginError::Unreachable(chain(&err)))?;
        let refreshed = (*metadata).clone().set_jwks(jwks);
        self.store(refreshed.clone());
        tracing::info!(oidc.provider = %self.config.name, "OpenID provider keys fetched again");
        Ok(refreshed)
    }

    /// Where to send the browser so the provider ends its session too, when it offers that and
    /// the operator turned it on.
    pub fn logout_url(&self, id_token: &str) -> Option<String> {
        if !self.config.provider_logout {
            return None;
        }
        let metadata = self.metadata()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let hint: CoreIdToken = id_token.parse().ok()?;
        Some(
            LogoutRequest::from(endpoint)
                .set_id_token_hint(&hint)
                .set_client_id(ClientId::new(self.config.client_id.clone()))
                .set_post_logout_redirect_uri(self.post_logout_redirect_uri.clone())
                .http_get_url()
                .to_string(),
        )
    }
}

/// Refuses metadata Gatehouse cannot work with safely, so the operator hears at start.
fn check_metadata(metadata: &ProviderMetadataWithLogout) -> Result<(), String> {
    if metadata.token_endpoint().is_none() {
        return Err("the discovery document has no token_endpoint".into());
    }
    let advertised = metadata.id_token_signing_alg_values_supported();
    if !ALLOWED_ALGS.iter().any(|alg| advertised.contains(alg)) {
        return Err(
            "the provider signs ID tokens only with algorithms Gatehouse refuses (none or HS*)"
                .into(),
        );
    }
    Ok(())
}

fn display_name(claims: &CoreIdTokenClaims) -> Option<String> {
    claims
        .name()
        .and_then(|name| name.get(None))
        .map(|name| name.as_str().to_owned())
        .or_else(|| {
            claims
                .preferred_username()
                .map(|name| name.as_str().to_owned())
        })
        .filter(|name| !name.trim().is_empty())
}

/// An error and its causes on one line: library errors often say only "Request failed".
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
