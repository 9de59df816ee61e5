//! Typed configuration read once from the environment; a bad value stops the start naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::domain::keys::KeyConfig;
use crate::domain::sealing::SecretKey;
use crate::domain::verification::VerifierSettings;
pub use crate::vocabulary::PublicUrl;

pub use log_format::LogFormat;
pub use oidc::OidcProviderConfig;
pub use profiles::{Profile, Profiles};

mod env;
mod leaks;
mod log_format;
mod oidc;
pub mod profiles;
mod read;

/// Digests of secret tokens (never shown in `Debug`).
#[derive(Clone, Default)]
pub struct TokenDigests(pub Vec<[u8; 32]>);

impl TokenDigests {
    pub fn of(tokens: &[SecretString]) -> Self {
        use secrecy::ExposeSecret;
        Self(
            tokens
                .iter()
                .map(|token| crate::domain::tokens::sha256(token.expose_secret()))
                .collect(),
        )
    }
}

impl std::fmt::Debug for TokenDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} digests]", self.0.len())
    }
}

/// Everything the deployment configures. Secrets are `SecretString`, so `Debug` never shows them.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: SecretString,
    pub listen: SocketAddr,
    /// Where `GET /metrics` is served (a listener of its own); `None`: no metrics at all.
    pub metrics_listen: Option<SocketAddr>,
    pub public_url: PublicUrl,
    pub verifier_tokens: Vec<SecretString>,
    /// SHA-256 of each verifier token, made once: the key API compares digests per request.
    pub verifier_token_digests: TokenDigests,
    /// Tokens of the platform's backend for the whole management API (`GATEHOUSE_OPERATOR_TOKENS`).
    pub operator_tokens: Vec<SecretString>,
    /// SHA-256 of each operator token, made once like the verifier tokens'.
    pub operator_token_digests: TokenDigests,
    /// Management API calls per minute per token (each instance counts its own).
    pub management_rate_limit: u32,
    /// Tokens that open nothing one client address may present to the management API per minute
    /// before it is throttled.
    pub bad_tokens_per_client: u32,
    pub key_prefix: String,
    /// Keys of the platform's old format that import takes and the key API looks up
    /// (`GATEHOUSE_LEGACY_KEY_PATTERN`, anchored as a whole match); none when unset.
    pub legacy_key_pattern: Option<regex::Regex>,
    pub scopes: Vec<String>,
    pub key_headers: Vec<String>,
    /// The platform's API address, for the portal's quick start (`None`: a placeholder is shown).
    pub api_base_url: Option<String>,
    /// Contract profiles (`GATEHOUSE_PROFILES_FILE`) and today's contract for requests naming none.
    pub profiles: Profiles,
    pub session_idle: Duration,
    pub session_lifetime: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub database_max_connections: u32,
    /// Default verifications per minute for new live keys.
    pub rate_limit_live: u32,
    /// Default verifications per minute for new test keys.
    pub rate_limit_test: u32,
    /// How long the key API may answer from its cache (0 to 10 s; 0 turns the cache off).
    pub key_cache_ttl: Duration,
    /// How often usage counters are written to the database.
    pub usage_flush_interval: Duration,
    /// Attempts with malformed or unknown keys one client address may make per minute.
    pub bad_keys_per_client: u32,
    /// Whether the request log records verifications (`GATEHOUSE_REQUEST_LOG`, on by default).
    pub request_log: bool,
    /// Days of request log kept, in daily partitions (`GATEHOUSE_REQUEST_LOG_DAYS`).
    pub request_log_days: u32,
    /// How often the request log's buffer is written.
    pub request_log_flush_interval: Duration,
    /// Records the request log's buffer holds before it drops (and counts) them.
    pub request_log_buffer: usize,
    /// OpenID Connect providers people may sign in through, in the order the sign-in page lists them.
    pub oidc_providers: Vec<OidcProviderConfig>,
    /// How long an SSO sign-in may take from leaving for the provider to coming back.
    pub oidc_flow_lifetime: Duration,
    /// Where mail goes (lettre's URL form); `None` writes each mail to the log instead.
    pub smtp_url: Option<SecretString>,
    /// The `From` of every mail.
    pub mail_from: String,
    /// How often each instance looks for due outbox messages.
    pub outbox_poll: Duration,
    /// The wait before the first retry of a failed message (doubling to an hour).
    pub outbox_first_retry: Duration,
    /// How long a sender holds a claimed outbox message (2 minutes); a delivery is cut off at
    /// three quarters of it.
    pub outbox_lease: Duration,
    /// How often each instance looks for keys to send expiry reminders about.
    pub expiry_reminder_interval: Duration,
    /// Seals webhook secrets and receivers' credentials at rest; webhooks need it.
    pub secret_key: Option<SecretKey>,
    /// How long a token signing key signs before its successor does
    /// (`GATEHOUSE_TOKEN_KEY_ROTATION_DAYS`, 30 by default).
    pub token_key_rotation: time::Duration,
    /// Each access token's lifetime (`GATEHOUSE_TOKEN_TTL_SECONDS`, 300 by default, at most 3600).
    pub token_ttl: time::Duration,
    /// The audiences a token may be issued for (`GATEHOUSE_TOKEN_AUDIENCES`; the first is the
    /// default; the public URL when unset).
    pub token_audiences: Vec<String>,
    /// Whether webhooks may go to loopback, private and link-local addresses (tests, labs).
    pub webhook_allow_private: bool,
    /// The first retry of a failed webhook delivery (5 s; the later steps scale with it).
    pub webhook_first_retry: Duration,
    /// How long a receiver has to answer a webhook delivery.
    pub webhook_timeout: Duration,
    /// Secret scanners whose leak reports `POST /v1/leaks/{name}` takes (GitHub's first).
    pub leak_senders: Vec<LeakSender>,
    /// The least time between two fetches of a sender's public keys (60 s).
    pub leak_keys_refetch: Duration,
}

/// A secret scanner that reports leaked keys in GitHub's partner format: its keys document and
/// the headers its signature comes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakSender {
    /// In the route (`/v1/leaks/github`) and in the actor that acts on its reports.
    pub name: String,
    /// `{"public_keys": [{"key_identifier", "key", "is_current"}]}`.
    pub keys_url: String,
    pub key_id_header: String,
    pub signature_header: String,
}

/// GitHub's secret scanning keys document.
pub const GITHUB_LEAK_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// A configuration value that could not be used; names the variable and says why.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: String,
    pub reason: String,
}

/// Every configuration value that could not be used, in the order the variables are read; one
/// per line when shown.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The first refusal (there is always one).
    pub fn first(&self) -> &ConfigError {
        &self.0[0]
    }

    /// The variables named, in order.
    pub fn variables(&self) -> Vec<&str> {
        self.0
            .iter()
            .map(|problem| problem.variable.as_str())
            .collect()
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, problem) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

pub(crate) fn invalid(variable: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// What the key rules take of the configuration.
    pub fn keys(&self) -> KeyConfig {
        KeyConfig {
            key_prefix: self.key_prefix.clone(),
            scopes: self.scopes.clone(),
            rate_limit_live: self.rate_limit_live,
            rate_limit_test: self.rate_limit_test,
            public_url: self.public_url.clone(),
        }
    }

    /// What the key API's pipeline takes of the configuration.
    pub fn verifier_settings(&self) -> VerifierSettings {
        VerifierSettings {
            key_prefix: self.key_prefix.clone(),
            legacy_pattern: self.legacy_key_pattern.clone(),
            scopes: self.scopes.clone(),
            key_cache_ttl: self.key_cache_ttl,
            bad_keys_per_client: self.bad_keys_per_client,
            database_max_connections: self.database_max_connections,
        }
    }
}

impl Config {
    /// What issuing access tokens takes of the configuration.
    pub fn token_settings(&self) -> crate::domain::access_tokens::TokenSettings {
        crate::domain::access_tokens::TokenSettings {
            issuer: self.public_url.origin().to_owned(),
            ttl: self.token_ttl,
            audiences: self.token_audiences.clone(),
        }
    }
}

/// Trusted proxies are CIDR blocks, the same type as key allowlists' entries.
pub use crate::domain::keys::allowlist::IpNet;

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = config(&[("DATABASE_URL", "postgres://localhost/db")]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url.origin(), "http://127.0.0.1:8080");
        assert!(config.verifier_tokens.is_empty());
        assert_eq!(config.key_prefix, "ak");
        assert_eq!(config.scopes, ["read", "write"]);
        assert_eq!(config.key_headers, ["Authorization", "X-Api-Key", "ApiKey"]);
        assert_eq!(config.session_idle, Duration::from_secs(30 * 60));
        assert_eq!(config.session_lifetime, Duration::from_secs(12 * 3600));
        assert!(config.oidc_providers.is_empty());
        assert_eq!(config.oidc_flow_lifetime, Duration::from_secs(10 * 60));
        assert_eq!(config.key_cache_ttl, Duration::from_secs(10));
        assert_eq!(config.usage_flush_interval, Duration::from_secs(2));
        assert_eq!(config.bad_keys_per_client, 100);
        assert_eq!(config.bad_tokens_per_client, 20);
        assert!(config.smtp_url.is_none());
        assert_eq!(config.mail_from, "Gatehouse <gatehouse@localhost>");
        assert!(config.secret_key.is_none());
        assert!(!config.webhook_allow_private);
        assert_eq!(config.webhook_timeout, Duration::from_secs(15));
        assert!(config.api_base_url.is_none());
        assert_eq!(config.token_key_rotation, time::Duration::days(30));
        assert_eq!(config.token_ttl, time::Duration::seconds(300));
        assert_eq!(config.token_audiences, ["http://127.0.0.1:8080"]);
    }

    #[test]
    fn the_request_log_is_on_for_14_days_unless_configured_and_bad_values_are_named() {
        let db = ("DATABASE_URL", "postgres://x/y");
        let plain = config(&[db]).unwrap();
        assert!(plain.request_log);
        assert_eq!(plain.request_log_days, 14);
        let off = config(&[db, ("GATEHOUSE_REQUEST_LOG", "off")]).unwrap();
        assert!(!off.request_log);
        let week = config(&[db, ("GATEHOUSE_REQUEST_LOG_DAYS", "7")]).unwrap();
        assert_eq!(week.request_log_days, 7);
        for (variable, value) in [
            ("GATEHOUSE_REQUEST_LOG_DAYS", "0"),
            ("GATEHOUSE_REQUEST_LOG_DAYS", "366"),
            ("GATEHOUSE_REQUEST_LOG", "sometimes"),
        ] {
            let err = config(&[db, (variable, value)]).unwrap_err();
            assert_eq!(err.variables(), [variable]);
        }
    }

    #[test]
    fn a_bad_secret_key_is_named_and_a_good_one_never_shown() {
        let err = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("GATEHOUSE_SECRET_KEY", "c2hvcnQ="),
        ])
        .unwrap_err();
        assert_eq!(err.variables(), ["GATEHOUSE_SECRET_KEY"]);
        let key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
        let config = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("GATEHOUSE_SECRET_KEY", key),
        ])
        .unwrap();
        assert!(config.secret_key.is_some());
        assert!(!format!("{config:?}").contains(key));
    }

    #[test]
    fn the_api_base_url_keeps_its_path_without_the_trailing_slash() {
        let config = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("GATEHOUSE_API_BASE_URL", " https://api.example.com/v2/ "),
        ])
        .unwrap();
        assert_eq!(
            config.api_base_url.as_deref(),
            Some("https://api.example.com/v2")
        );
    }

    #[test]
    fn mail_comes_from_the_public_host_unless_configured() {
        let config = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("GATEHOUSE_PUBLIC_URL", "https://Portal.Example.com:8443"),
            (
                "GATEHOUSE_SMTP_URL",
                "smtps://user:hunter2-smtp@mail.example.com:465",
            ),
        ])
        .unwrap();
        assert_eq!(config.mail_from, "Gatehouse <gatehouse@portal.example.com>");
        assert!(!format!("{config:?}").contains("hunter2-smtp"));
    }

    pub(super) const CORP: [(&str, &str); 5] = [
        ("DATABASE_URL", "postgres://x/y"),
        ("GATEHOUSE_OIDC_PROVIDERS", "corp"),
        (
            "GATEHOUSE_OIDC_CORP_ISSUER",
            "https://login.corp.example/realms/staff",
        ),
        ("GATEHOUSE_OIDC_CORP_CLIENT_ID", "gatehouse"),
        (
            "GATEHOUSE_OIDC_CORP_CLIENT_SECRET",
            "oidc-client-secret-value",
        ),
    ];

    #[test]
    fn an_oidc_provider_is_read_from_its_own_variables() {
        let mut pairs = CORP.to_vec();
        pairs.push(("GATEHOUSE_OIDC_CORP_DISPLAY_NAME", "Corp SSO"));
        pairs.push(("GATEHOUSE_OIDC_CORP_PROVIDER_LOGOUT", "true"));
        let config = config(&pairs).unwrap();
        let [corp] = config.oidc_providers.as_slice() else {
            panic!("one provider expected");
        };
        assert_eq!(corp.name, "corp");
        assert_eq!(corp.issuer, "https://login.corp.example/realms/staff");
        assert_eq!(corp.client_id, "gatehouse");
        assert_eq!(corp.display_name, "Corp SSO");
        assert!(corp.provider_logout);
        assert!(!corp.trust_email);
        // Without a display name, the button uses the name.
        assert_eq!(config_of(&CORP).oidc_providers[0].display_name, "corp");
    }

    pub(super) fn config_of(pairs: &[(&str, &str)]) -> Config {
        config(pairs).unwrap()
    }

    #[test]
    fn the_legacy_key_pattern_matches_whole_keys_and_a_bad_one_is_named() {
        const DB: (&str, &str) = ("DATABASE_URL", "postgres://localhost/db");
        assert!(config_of(&[DB]).legacy_key_pattern.is_none());
        let pattern = config_of(&[DB, ("GATEHOUSE_LEGACY_KEY_PATTERN", "sk_[0-9a-f]{32}")])
            .legacy_key_pattern
            .unwrap();
        assert!(pattern.is_match(&format!("sk_{}", "a".repeat(32))));
        assert!(!pattern.is_match(&format!("xsk_{}", "a".repeat(32))));
        assert!(!pattern.is_match(&format!("sk_{}0", "a".repeat(32))));
        // An alternation is anchored as a whole too.
        let either = config_of(&[DB, ("GATEHOUSE_LEGACY_KEY_PATTERN", "a|b")]);
        assert!(!either.legacy_key_pattern.unwrap().is_match("ab"));
        let err = config(&[DB, ("GATEHOUSE_LEGACY_KEY_PATTERN", "sk_[0-9")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("GATEHOUSE_LEGACY_KEY_PATTERN"), "{err}");
    }

    #[test]
    fn a_missing_or_bad_oidc_variable_is_named() {
        for missing in [
            "GATEHOUSE_OIDC_CORP_ISSUER",
            "GATEHOUSE_OIDC_CORP_CLIENT_ID",
            "GATEHOUSE_OIDC_CORP_CLIENT_SECRET",
        ] {
            let pairs: Vec<_> = CORP
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert_eq!(config(&pairs).unwrap_err().first().variable, missing);
        }
        let cases = [
            ("GATEHOUSE_OIDC_PROVIDERS", "corp,co rp"),
            ("GATEHOUSE_OIDC_PROVIDERS", "corp,CORP"),
            ("GATEHOUSE_OIDC_CORP_ISSUER", "http://login.corp.example"),
            ("GATEHOUSE_OIDC_CORP_ISSUER", "login.corp.example"),
            (
                "GATEHOUSE_OIDC_CORP_ISSUER",
                "https://login.corp.example/?tenant=x",
            ),
            ("GATEHOUSE_OIDC_CORP_PROVIDER_LOGOUT", "sometimes"),
            ("GATEHOUSE_OIDC_CORP_TRUST_EMAIL", "2"),
        ];
        for (variable, value) in cases {
            let mut pairs: Vec<_> = CORP
                .iter()
                .copied()
                .filter(|(k, _)| *k != variable)
                .collect();
            pairs.push((variable, value));
            let err = config(&pairs).unwrap_err();
            assert_eq!(err.variables(), [variable], "{value}");
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases = [
            ("GATEHOUSE_LISTEN", "localhost"),
            ("GATEHOUSE_PUBLIC_URL", "ftp://example.com"),
            ("GATEHOUSE_PUBLIC_URL", "https://example.com/portal"),
            ("GATEHOUSE_KEY_PREFIX", "A K"),
            ("GATEHOUSE_VERIFIER_TOKENS", "short"),
            ("GATEHOUSE_SCOPES", "read,wr ite"),
            ("GATEHOUSE_SESSION_IDLE_MINUTES", "0"),
            ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("GATEHOUSE_RATE_LIMIT_LIVE", "0"),
            ("GATEHOUSE_RATE_LIMIT_TEST", "many"),
            ("GATEHOUSE_KEY_CACHE_SECONDS", "11"),
            ("GATEHOUSE_USAGE_FLUSH_SECONDS", "0"),
            ("GATEHOUSE_BAD_KEY_LIMIT", "-1"),
            ("GATEHOUSE_BAD_TOKEN_LIMIT", "0"),
            ("GATEHOUSE_SMTP_URL", "mail.example.com:25"),
            ("GATEHOUSE_MAIL_FROM", "gatehouse"),
            ("GATEHOUSE_PROFILES_FILE", "/nonexistent/profiles.toml"),
            ("GATEHOUSE_API_BASE_URL", "api.example.com"),
            ("GATEHOUSE_TOKEN_KEY_ROTATION_DAYS", "0"),
            ("GATEHOUSE_TOKEN_KEY_ROTATION_DAYS", "366"),
            ("GATEHOUSE_TOKEN_TTL_SECONDS", "3601"),
            ("GATEHOUSE_TOKEN_TTL_SECONDS", "0"),
            (
                "GATEHOUSE_TOKEN_AUDIENCES",
                "https://api.example.com,not a url",
            ),
            (
                "GATEHOUSE_API_BASE_URL",
                "https://api.example.com/'; rm -rf ~",
            ),
        ];
        for (variable, value) in cases {
            let err = config(&[("DATABASE_URL", "postgres://x/y"), (variable, value)]).unwrap_err();
            assert_eq!(err.variables(), [variable], "{value}");
            assert!(err.to_string().starts_with(variable));
        }
        assert_eq!(config(&[]).unwrap_err().first().variable, "DATABASE_URL");
    }

    #[test]
    fn every_bad_variable_is_named_not_only_the_first() {
        let err = config(&[
            ("GATEHOUSE_LISTEN", "localhost"),
            ("GATEHOUSE_KEY_PREFIX", "A K"),
            ("GATEHOUSE_SESSION_IDLE_MINUTES", "90"),
            ("GATEHOUSE_SESSION_LIFETIME_MINUTES", "60"),
            ("GATEHOUSE_RATE_LIMIT_TEST", "many"),
            ("GATEHOUSE_SMTP_URL", "mail.example.com:25"),
            ("GATEHOUSE_SECRET_KEY", "c2hvcnQ="),
        ])
        .unwrap_err();
        assert_eq!(
            err.variables(),
            [
                "DATABASE_URL",
                "GATEHOUSE_LISTEN",
                "GATEHOUSE_KEY_PREFIX",
                "GATEHOUSE_SESSION_LIFETIME_MINUTES",
                "GATEHOUSE_RATE_LIMIT_TEST",
                "GATEHOUSE_SMTP_URL",
                "GATEHOUSE_SECRET_KEY",
            ]
        );
        let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 7);
        assert!(lines[1].starts_with("GATEHOUSE_LISTEN: "), "{lines:?}");
    }

    #[test]
    fn every_bad_variable_of_every_sso_provider_is_named() {
        let err = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("GATEHOUSE_OIDC_PROVIDERS", "corp,Bad Name,staff"),
            ("GATEHOUSE_OIDC_CORP_ISSUER", "http://login.corp.example"),
            ("GATEHOUSE_OIDC_CORP_CLIENT_SECRET", "s"),
            ("GATEHOUSE_OIDC_CORP_TRUST_EMAIL", "perhaps"),
            ("GATEHOUSE_OIDC_STAFF_ISSUER", "https://staff.example"),
            ("GATEHOUSE_OIDC_STAFF_CLIENT_ID", "gatehouse"),
        ])
        .unwrap_err();
        assert_eq!(
            err.variables(),
            [
                "GATEHOUSE_OIDC_CORP_CLIENT_ID",
                "GATEHOUSE_OIDC_CORP_ISSUER",
                "GATEHOUSE_OIDC_CORP_TRUST_EMAIL",
                "GATEHOUSE_OIDC_PROVIDERS",
                "GATEHOUSE_OIDC_STAFF_CLIENT_SECRET",
            ]
        );
    }

    #[test]
    fn the_key_cache_can_be_shortened_or_turned_off_but_not_lengthened() {
        let with = |seconds: &str| {
            config(&[
                ("DATABASE_URL", "postgres://x/y"),
                ("GATEHOUSE_KEY_CACHE_SECONDS", seconds),
            ])
        };
        assert_eq!(with("0").unwrap().key_cache_ttl, Duration::ZERO);
        assert_eq!(with("3").unwrap().key_cache_ttl, Duration::from_secs(3));
        assert!(with("30").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = config(&[
            ("DATABASE_URL", "postgres://admin:hunter2-database@db/x"),
            ("GATEHOUSE_VERIFIER_TOKENS", "verifier-token-0123456789"),
            ("GATEHOUSE_OIDC_PROVIDERS", "corp"),
            ("GATEHOUSE_OIDC_CORP_ISSUER", "https://login.corp.example"),
            ("GATEHOUSE_OIDC_CORP_CLIENT_ID", "gatehouse"),
            ("GATEHOUSE_OIDC_CORP_CLIENT_SECRET", "hunter2-oidc-secret"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-database"));
        assert!(!debug.contains("verifier-token-0123456789"));
        assert!(!debug.contains("hunter2-oidc-secret"));
    }
}
