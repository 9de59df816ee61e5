//! Who calls the management API: an operator token (`GATEHOUSE_OPERATOR_TOKENS`, the whole
//! platform) or a tenant management token (one tenant, its scopes). Verifier tokens open nothing
//! here. Also: the tenant a path names, and the per-token rate limit.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::edge;
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::db::management::{self as db_management, ApiTenant};
use crate::domain::audit::{Actor, Who as ActorWho};
use crate::domain::management::{self, Scope};
use crate::domain::rate_limit::{Policy, Quota};
use crate::domain::tokens::sha256;

use crate::api::error::{ApiError, ApiResult, Challenge};

/// An authenticated caller of the management API.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Who,
    pub actor: Actor,
}

#[derive(Debug, Clone)]
pub enum Who {
    Operator,
    Tenant {
        token_id: Uuid,
        tenant_id: Uuid,
        scopes: Vec<String>,
    },
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::unauthorized(Challenge::Management, message)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        // Authenticated already (`idempotency::idempotent` does it before anything kept is read).
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
        let Ok(ClientIp(client_ip)) = ClientIp::from_request_parts(parts, state).await;
        let authenticated = authenticate(parts, state, client_ip).await;
        // A token that opens nothing counts against the client's address ([`rate_limit`]
        // throttles it beyond `GATEHOUSE_BAD_TOKEN_LIMIT` a minute).
        if let Err(refused) = &authenticated
            && refused.status == StatusCode::UNAUTHORIZED
            && edge::bearer(&parts.headers).is_some()
        {
            state
                .management_limits
                .record_bad_key(client_ip, OffsetDateTime::now_utc());
        }
        authenticated
    }
}

/// Who presents `Authorization: Bearer <token>`, or why it opens nothing here (401).
async fn authenticate(parts: &Parts, state: &AppState, client_ip: IpAddr) -> ApiResult<Caller> {
    let presented = edge::bearer(&parts.headers).ok_or_else(|| {
        unauthorized(
            "Send an operator token or a tenant management token as `Authorization: Bearer <token>`.",
        )
    })?;
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.chars().take(256).collect::<String>())
    };
    let actor = |who: ActorWho| Actor {
        who,
        request_id: header_text("x-request-id").unwrap_or_default(),
        client_ip,
        user_agent: header_text(header::USER_AGENT.as_str()),
    };
    if edge::verifier_accepted(&state.config.operator_token_digests, Some(presented)) {
        return Ok(Caller {
            who: Who::Operator,
            actor: actor(ActorWho::Operator),
        });
    }
    let refused = || unauthorized("This token is not valid for the management API.");
    if !management::is_token(&state.config.key_prefix, presented) {
        return Err(refused());
    }
    let token = db_management::token_by_hash(&state.pool, &sha256(presented))
        .await?
        .ok_or_else(refused)?;
    if token.revoked_at.is_some() {
        return Err(unauthorized("This token has been revoked."));
    }
    if token
        .expires_at
        .is_some_and(|at| at <= OffsetDateTime::now_utc())
    {
        return Err(unauthorized("This token has expired."));
    }
    db_management::touch_token(&state.pool, token.management_token_id).await?;
    Ok(Caller {
        who: Who::Tenant {
            token_id: token.management_token_id,
            tenant_id: token.tenant_id,
            scopes: token.scopes,
        },
        actor: actor(ActorWho::Token {
            id: token.management_token_id,
            name: token.name,
            created_by: token.created_by,
        }),
    })
}

impl Caller {
    /// Only operator tokens may do this.
    pub fn operator_only(&self) -> ApiResult<()> {
        match self.who {
            Who::Operator => Ok(()),
            Who::Tenant { .. } => Err(ApiError::forbidden(
                "Only an operator token may do this; tenant management tokens cannot.",
            )),
        }
    }

    /// The caller holds `scope` (operators hold every scope).
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        match &self.who {
            Who::Operator => Ok(()),
            Who::Tenant { scopes, .. } if scopes.iter().any(|s| s == scope.as_str()) => Ok(()),
            Who::Tenant { .. } => Err(ApiError::forbidden(format!(
                "This token lacks the {} scope.",
                scope.as_str()
            ))),
        }
    }

    /// The tenant `{tenant}` names (its id, slug or `ext:<external_id>`), if the caller may see
    /// it: another tenant is 404 for a tenant token, as if it did not exist.
    pub async fn tenant(&self, state: &AppState, named: &str) -> ApiResult<ApiTenant> {
        let found = match named.strip_prefix("ext:") {
            Some(external_id) => {
                db_management::tenant(&state.pool, None, None, Some(external_id)).await?
            }
            None => match Uuid::parse_str(named) {
                Ok(id) => db_management::tenant(&state.pool, Some(id), None, None).await?,
                Err(_) => db_management::tenant(&state.pool, None, Some(named), None).await?,
            },
        };
        let tenant = found.ok_or_else(ApiError::not_found)?;
        match &self.who {
            Who::Tenant { tenant_id, .. } if *tenant_id != tenant.tenant_id => {
                Err(ApiError::not_found())
            }
            _ => Ok(tenant),
        }
    }

    /// The tenant, once the caller holds `scope` in it.
    pub async fn tenant_with(
        &self,
        state: &AppState,
        named: &str,
        scope: Scope,
    ) -> ApiResult<ApiTenant> {
        let tenant = self.tenant(state, named).await?;
        self.require(scope)?;
        Ok(tenant)
    }
}

/// Who a request says it is, before authentication: a digest of its bearer token (or of
/// nothing). Rate limits are kept per this identity, and idempotency keys once it authenticated
/// (the same token, still valid).
pub fn presented_identity(headers: &HeaderMap) -> Uuid {
    let digest = sha256(edge::bearer(headers).unwrap_or_default());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// The management API's rate limits, before anything else runs: a client address that presented
/// `GATEHOUSE_BAD_TOKEN_LIMIT` tokens that opened nothing in this minute is refused until the minute
/// ends, whatever token it sends (no token is looked up for it); then each token may make
/// `GATEHOUSE_MANAGEMENT_RATE_LIMIT` calls a minute. Beyond either, 429 with `Retry-After`.
pub async fn rate_limit(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    let now = OffsetDateTime::now_utc();
    if let Some(throttled) = state.management_limits.client_throttled(client, now) {
        return refused(
            "Too many tokens that are not valid came from this address. Try again after Retry-After seconds.",
            &throttled,
        );
    }
    let identity = presented_identity(request.headers());
    let taken = state
        .management_limits
        .take(identity, state.config.management_rate_limit, now)
        .map(as_token_quota)
        .map_err(as_token_quota);
    match taken {
        Ok(quota) => {
            let mut response = next.run(request).await;
            edge::add_ratelimit_headers(response.headers_mut(), &quota);
            response
        }
        Err(spent) => refused(
            "Too many management API calls with this token. Try again after Retry-After seconds.",
            &spent,
        ),
    }
}

/// 429 until `spent`'s window ends, with its `RateLimit` headers.
fn refused(message: &str, spent: &Quota) -> Response {
    let mut response = ApiError::rate_limited(message, spent.reset).into_response();
    edge::add_ratelimit_headers(response.headers_mut(), spent);
    response
}

fn as_token_quota(quota: Quota) -> Quota {
    Quota {
        policy: Policy::Token,
        ..quota
    }
}
