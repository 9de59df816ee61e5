//! Application state: what every request handler and background task shares.

use std::sync::Arc;

use sqlx::PgPool;
use tower_sessions_sqlx_store::PostgresStore;

use crate::config::Config;
use crate::domain::access_tokens::{Rotation, SigningKeys};
use crate::domain::passwords::Passwords;
use crate::domain::rate_limit::RateLimits;
use crate::domain::request_log::RequestLog;
use crate::domain::verification::Verifier;
use crate::error::AppError;
use crate::mailer::Mailer;
use crate::metrics::Metrics;
use crate::webhook_courier::WebhookCourier;
use crate::{db, oidc_client};

/// Largest request body accepted anywhere (portal forms, key API calls).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Cloned for every request (axum's `State`), so one reference count, not one per part: some
/// parts own strings (the session store's table name) that a field-by-field clone would copy.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler and background task shares, behind [`AppState`].
pub struct Shared {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub passwords: Passwords,
    pub sessions: PostgresStore,
    pub oidc: oidc_client::Providers,
    /// The key API's pipeline, with its cache, rate limits, usage counters and connections.
    pub verifier: Arc<Verifier>,
    /// What `GET /metrics` reports (records nothing without `GATEHOUSE_METRICS_LISTEN`).
    pub metrics: Arc<Metrics>,
    /// The request log's buffer: refused and first valid verifications, written off the hot path.
    pub request_log: Arc<RequestLog>,
    /// The outbox's courier for mail.
    pub mailer: Arc<Mailer>,
    /// The outbox's courier for webhook deliveries.
    pub webhooks: Arc<WebhookCourier>,
    /// The management API's rate windows, per token, and its failed authentications per client
    /// address.
    pub management_limits: Arc<RateLimits>,
    /// The secret scanners' public keys, for their leak reports' signatures.
    pub leak_keys: Arc<crate::leak_keys::LeakKeys>,
    /// The keys that sign access tokens; `None` without `GATEHOUSE_SECRET_KEY` (no tokens then).
    pub signing_keys: Option<Arc<SigningKeys>>,
}

impl axum::extract::FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.config)
    }
}

impl AppState {
    /// Connects, migrates and prepares everything a server needs.
    pub async fn connect(config: Config) -> Result<Self, AppError> {
        let pool = db::connect(&config.database_url, config.database_max_connections).await?;
        Self::migrate(&pool).await?;
        Self::with_pool(config, pool).await
    }

    /// Applies the migrations and the session store's table (`gatehouse migrate`, and every start).
    pub async fn migrate(pool: &PgPool) -> Result<(), AppError> {
        db::MIGRATOR
            .run(pool)
            .await
            .map_err(|err| AppError::unexpected(format!("migrations failed: {err}")))?;
        PostgresStore::new(pool.clone()).migrate().await?;
        Ok(())
    }

    /// Builds the state over an existing (migrated) pool; tests use this with their own database.
    pub async fn with_pool(config: Config, pool: PgPool) -> Result<Self, AppError> {
        let sessions = PostgresStore::new(pool.clone());
        sessions.migrate().await?;
        let hashers = std::thread::available_parallelism().map_or(2, usize::from);
        let oidc = oidc_client::Providers::start(&config)
            .await
            .map_err(AppError::unexpected)?;
        let mailer = Mailer::new(config.smtp_url.as_ref(), &config.mail_from)
            .map_err(AppError::unexpected)?;
        if config.secret_key.is_none() && db::webhooks::any_endpoint(&pool).await? {
            return Err(AppError::unexpected(
                "GATEHOUSE_SECRET_KEY is required: this deployment has webhook endpoints, whose \
                 secrets it seals (32 random bytes in base64: openssl rand -base64 32)",
            ));
        }
        let webhooks = WebhookCourier::new(&config).map_err(AppError::unexpected)?;
        let metrics = Arc::new(Metrics::new(config.metrics_listen.is_some()));
        let leak_keys = crate::leak_keys::LeakKeys::new(&config).map_err(AppError::unexpected)?;
        let signing_keys = match &config.secret_key {
            Some(secret) => {
                let keys = SigningKeys::new(secret.clone());
                // The first key, or a successor the schedule is due: tokens can be signed at once.
                keys.rotate(
                    &pool,
                    time::OffsetDateTime::now_utc(),
                    Rotation::Scheduled {
                        period: config.token_key_rotation,
                    },
                )
                .await
                .map_err(AppError::from)?;
                Some(Arc::new(keys))
            }
            None => None,
        };
        Ok(Self(Arc::new(Shared {
            leak_keys: Arc::new(leak_keys),
            webhooks: Arc::new(webhooks),
            management_limits: Arc::new(RateLimits::new(config.bad_tokens_per_client)),
            signing_keys,
            mailer: Arc::new(mailer),
            pool: pool.clone(),
            verifier: Arc::new(
                Verifier::new(config.verifier_settings(), pool).with_metrics(Arc::clone(&metrics)),
            ),
            metrics,
            request_log: Arc::new(RequestLog::new(
                config.request_log,
                config.request_log_buffer,
            )),
            config: Arc::new(config),
            passwords: Passwords::new(hashers)?,
            sessions,
            oidc,
        })))
    }
}
