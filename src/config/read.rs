//! Reading the whole configuration from the variables (`Config::from_env`), each value checked and
//! every refusal naming its variable.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::env::Env;
use super::{Config, ConfigError, IpNet, Profiles, PublicUrl, TokenDigests, invalid, oidc};
use crate::domain::sealing::SecretKey;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can pass a map instead of the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let get = |name: &str| env.get(name);

        let database_url = get("DATABASE_URL")
            .map(SecretString::from)
            .ok_or_else(|| invalid("DATABASE_URL", "is required (postgres://user@host:port/db)"))?;

        let listen = match get("GATEHOUSE_LISTEN") {
            Some(value) => value.trim().parse().map_err(|_| {
                invalid(
                    "GATEHOUSE_LISTEN",
                    format!("{value:?} is not an address like 127.0.0.1:8080"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };

        let metrics_listen = get("GATEHOUSE_METRICS_LISTEN")
            .filter(|value| !value.trim().is_empty())
            .map(|value| {
                value.trim().parse().map_err(|_| {
                    invalid(
                        "GATEHOUSE_METRICS_LISTEN",
                        format!("{value:?} is not an address like 127.0.0.1:9100"),
                    )
                })
            })
            .transpose()?;

        let public_url = PublicUrl::parse(
            get("GATEHOUSE_PUBLIC_URL")
                .as_deref()
                .unwrap_or("http://127.0.0.1:8080"),
        )
        .map_err(|reason| invalid("GATEHOUSE_PUBLIC_URL", reason))?;

        let verifier_tokens = tokens(&env, "GATEHOUSE_VERIFIER_TOKENS")?;
        let operator_tokens = tokens(&env, "GATEHOUSE_OPERATOR_TOKENS")?;
        if operator_tokens.iter().any(|operator| {
            verifier_tokens
                .iter()
                .any(|verifier| verifier.expose_secret() == operator.expose_secret())
        }) {
            return Err(invalid(
                "GATEHOUSE_OPERATOR_TOKENS",
                "a token is also a verifier token; give the management API tokens of its own",
            ));
        }
        let management_rate_limit = per_minute(&env, "GATEHOUSE_MANAGEMENT_RATE_LIMIT", 600)?;
        let bad_tokens_per_client = per_minute(&env, "GATEHOUSE_BAD_TOKEN_LIMIT", 20)?;

        let key_prefix = get("GATEHOUSE_KEY_PREFIX").unwrap_or_else(|| "ak".to_owned());
        if key_prefix.is_empty()
            || key_prefix.len() > 16
            || !key_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(invalid(
                "GATEHOUSE_KEY_PREFIX",
                "must be 1 to 16 lowercase letters or digits",
            ));
        }

        let legacy_key_pattern = get("GATEHOUSE_LEGACY_KEY_PATTERN")
            .filter(|pattern| !pattern.trim().is_empty())
            .map(|pattern| {
                regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|err| {
                    invalid(
                        "GATEHOUSE_LEGACY_KEY_PATTERN",
                        format!("is not a regular expression: {err}"),
                    )
                })
            })
            .transpose()?;

        let scopes = match env.list("GATEHOUSE_SCOPES") {
            scopes if get("GATEHOUSE_SCOPES").is_some() => scopes,
            _ => vec!["read".to_owned(), "write".to_owned()],
        };
        if scopes.is_empty() {
            return Err(invalid("GATEHOUSE_SCOPES", "needs at least one scope"));
        }
        if let Some(bad) = scopes.iter().find(|scope| !is_scope_name(scope)) {
            return Err(invalid(
                "GATEHOUSE_SCOPES",
                format!("{bad:?} is not a scope name (letters, digits, ':', '.', '_', '-')"),
            ));
        }

        let key_headers = match env.list("GATEHOUSE_KEY_HEADERS") {
            headers if get("GATEHOUSE_KEY_HEADERS").is_some() => headers,
            _ => vec!["Authorization".into(), "X-Api-Key".into(), "ApiKey".into()],
        };
        if let Some(bad) = key_headers
            .iter()
            .find(|name| axum::http::HeaderName::from_bytes(name.as_bytes()).is_err())
        {
            return Err(invalid(
                "GATEHOUSE_KEY_HEADERS",
                format!("{bad:?} is not a header name"),
            ));
        }

        let api_base_url = get("GATEHOUSE_API_BASE_URL")
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
            .map(|url| api_base_url(&url).map(|()| url))
            .transpose()
            .map_err(|reason| invalid("GATEHOUSE_API_BASE_URL", reason))?;

        let profiles = match get("GATEHOUSE_PROFILES_FILE") {
            Some(path) => Profiles::load(path.trim(), &key_headers)?,
            None => Profiles::plain(&key_headers),
        };

        let session_idle = minutes(&env, "GATEHOUSE_SESSION_IDLE_MINUTES", 30)?;
        let session_lifetime = minutes(&env, "GATEHOUSE_SESSION_LIFETIME_MINUTES", 12 * 60)?;
        if session_lifetime < session_idle {
            return Err(invalid(
                "GATEHOUSE_SESSION_LIFETIME_MINUTES",
                "must not be shorter than GATEHOUSE_SESSION_IDLE_MINUTES",
            ));
        }

        let trusted_proxies = env
            .list("GATEHOUSE_TRUSTED_PROXIES")
            .iter()
            .map(|entry| IpNet::parse(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| invalid("GATEHOUSE_TRUSTED_PROXIES", reason))?;

        let database_max_connections =
            env.number("GATEHOUSE_DATABASE_MAX_CONNECTIONS", 1..=1000, 16, "")?;

        let rate_limit_live = per_minute(&env, "GATEHOUSE_RATE_LIMIT_LIVE", 1000)?;
        let rate_limit_test = per_minute(&env, "GATEHOUSE_RATE_LIMIT_TEST", 100)?;
        let oidc_providers = oidc::providers(&env)?;
        let key_cache_ttl = seconds(&env, "GATEHOUSE_KEY_CACHE_SECONDS", 0..=10, 10)?;
        let usage_flush_interval = seconds(&env, "GATEHOUSE_USAGE_FLUSH_SECONDS", 1..=60, 2)?;
        let bad_keys_per_client = per_minute(&env, "GATEHOUSE_BAD_KEY_LIMIT", 100)?;
        let request_log = env.switch("GATEHOUSE_REQUEST_LOG", true)?;
        let request_log_days = env.number("GATEHOUSE_REQUEST_LOG_DAYS", 1..=365, 14, "days")?;

        let smtp_url = get("GATEHOUSE_SMTP_URL")
            .filter(|url| !url.trim().is_empty())
            .map(|url| SecretString::from(url.trim().to_owned()));
        if let Some(url) = &smtp_url {
            crate::mailer::smtp_transport(url.expose_secret())
                .map_err(|reason| invalid("GATEHOUSE_SMTP_URL", reason))?;
        }
        let mail_from = get("GATEHOUSE_MAIL_FROM")
            .unwrap_or_else(|| format!("Gatehouse <gatehouse@{}>", public_url.mail_domain()));
        crate::mailer::parse_from(&mail_from)
            .map_err(|reason| invalid("GATEHOUSE_MAIL_FROM", reason))?;

        let secret_key = get("GATEHOUSE_SECRET_KEY")
            .filter(|key| !key.trim().is_empty())
            .map(|key| SecretKey::parse(&key))
            .transpose()
            .map_err(|reason| invalid("GATEHOUSE_SECRET_KEY", reason))?;
        let token_key_rotation = time::Duration::days(env.number(
            "GATEHOUSE_TOKEN_KEY_ROTATION_DAYS",
            1..=365,
            30,
            "days",
        )?);
        let token_ttl = time::Duration::seconds(env.number(
            "GATEHOUSE_TOKEN_TTL_SECONDS",
            1..=3600,
            300,
            "seconds",
        )?);
        let token_audiences = match env.list("GATEHOUSE_TOKEN_AUDIENCES") {
            audiences if audiences.is_empty() => vec![public_url.origin().to_owned()],
            audiences => audiences,
        };
        if let Some(bad) = token_audiences
            .iter()
            .find(|audience| audience.is_empty() || audience.contains(char::is_whitespace))
        {
            return Err(invalid(
                "GATEHOUSE_TOKEN_AUDIENCES",
                format!("{bad:?} is not an audience (a URI without spaces)"),
            ));
        }
        let webhook_allow_private = env.flag("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE")?;

        Ok(Self {
            database_url,
            listen,
            metrics_listen,
            public_url,
            verifier_token_digests: TokenDigests::of(&verifier_tokens),
            verifier_tokens,
            operator_token_digests: TokenDigests::of(&operator_tokens),
            operator_tokens,
            management_rate_limit,
            bad_tokens_per_client,
            key_prefix,
            legacy_key_pattern,
            scopes,
            key_headers,
            api_base_url,
            profiles,
            session_idle,
            session_lifetime,
            trusted_proxies,
            database_max_connections,
            rate_limit_live,
            rate_limit_test,
            oidc_providers,
            oidc_flow_lifetime: Duration::from_secs(10 * 60),
            key_cache_ttl,
            usage_flush_interval,
            bad_keys_per_client,
            request_log,
            request_log_days,
            request_log_flush_interval: Duration::from_secs(1),
            request_log_buffer: crate::domain::request_log::BUFFER,
            smtp_url,
            mail_from,
            outbox_poll: Duration::from_secs(1),
            outbox_first_retry: Duration::from_secs(60),
            outbox_lease: Duration::from_secs(120),
            expiry_reminder_interval: Duration::from_secs(300),
            secret_key,
            token_key_rotation,
            token_ttl,
            token_audiences,
            webhook_allow_private,
            webhook_first_retry: Duration::from_secs(5),
            webhook_timeout: Duration::from_secs(15),
        })
    }
}

/// The platform's API address: http(s), a host, and a path if any; nothing a shell line would
/// treat specially, since the portal shows it inside a curl command.
fn api_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/%[]@+,=".contains(*c)))
    {
        return Err(format!("{url:?} contains {bad:?}; give a plain URL"));
    }
    Ok(())
}

/// A comma-separated list of tokens, each at least 16 characters long.
fn tokens<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
) -> Result<Vec<SecretString>, ConfigError> {
    env.list(variable)
        .into_iter()
        .map(|token| {
            if token.len() < 16 {
                Err(invalid(
                    variable,
                    "every token must be at least 16 characters long",
                ))
            } else {
                Ok(SecretString::from(token))
            }
        })
        .collect()
}

fn minutes<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
    default: u64,
) -> Result<Duration, ConfigError> {
    let minutes = env.number(variable, 1..=525_600, default, "minutes")?;
    Ok(Duration::from_secs(minutes * 60))
}

fn seconds<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<Duration, ConfigError> {
    env.number(variable, range, default, "seconds")
        .map(Duration::from_secs)
}

fn per_minute<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
    default: u32,
) -> Result<u32, ConfigError> {
    env.number(variable, 1..=1_000_000, default, "requests per minute")
}

fn is_scope_name(scope: &str) -> bool {
    scope.len() <= 64
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
}
