//! Requests for live keys under the key policy "developers with an admin's approval": a developer
//! asks (name, access, expiry, reason), an admin approves or denies with a reason, the requester is
//! told (mail, webhook) and reveals the key once. The key is made at the reveal, so its secret
//! never waits in the database.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::key_requests::{self as db_requests, KeyRequest, NewRequest, RequestStatus};
use crate::db::reminders;
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::keys::format::NewKey;
use crate::domain::keys::{
    self, AccessChoice, Admission, KeyConfig, KeyErrors, NewKeyRequest, Pending, Requester,
};
use crate::domain::mail::{self, Mail};
use crate::domain::webhooks::{self, Event, KeyRequestDecided, KeyRequestRef};
use crate::vocabulary::Environment;

/// The most characters a request's or a decision's reason may have.
pub const REASON_MAX_CHARS: usize = 500;

/// Why a request cannot be decided or revealed now.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestProblem {
    /// A reason is required (asking; denying).
    ReasonNeeded(&'static str),
    ReasonTooLong,
    /// Already decided (or revealed).
    NotPending(RequestStatus),
    /// Only the requester reveals the key.
    NotTheRequester,
    /// Not approved (pending, denied) or already revealed.
    NotRevealable(RequestStatus),
}

impl RequestProblem {
    pub fn message(&self) -> String {
        match self {
            Self::ReasonNeeded(what) => format!("Give a reason {what}."),
            Self::ReasonTooLong => format!("Reasons are at most {REASON_MAX_CHARS} characters."),
            Self::NotPending(status) => {
                format!("This request was already {}.", status.as_str())
            }
            Self::NotTheRequester => "Only the person who asked for this key can reveal it.".into(),
            Self::NotRevealable(RequestStatus::Pending) => {
                "This request is still waiting for an admin: no key exists yet.".into()
            }
            Self::NotRevealable(RequestStatus::Denied) => {
                "This request was denied: no key was made.".into()
            }
            Self::NotRevealable(_) => {
                "This key was already revealed: a key is shown only once. If you did not copy it, \
                 revoke it and ask again."
                    .into()
            }
        }
    }
}

fn reason(input: &str, needed: Option<&'static str>) -> Result<String, RequestProblem> {
    let reason = input.trim();
    if reason.is_empty()
        && let Some(what) = needed
    {
        return Err(RequestProblem::ReasonNeeded(what));
    }
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(RequestProblem::ReasonTooLong);
    }
    Ok(reason.to_owned())
}

/// Files a developer's request for a live key the rules sent to approval; the key waits for an
/// admin.
pub async fn request_key(
    pool: &PgPool,
    pending: &Pending,
    why: &str,
    actor: &Actor,
) -> DomainResult<Result<Uuid, RequestProblem>> {
    let (tenant_id, settings) = (pending.tenant_id, &pending.settings);
    let why = match reason(why, Some("for the live key, so an admin can decide")) {
        Ok(why) => why,
        Err(problem) => return Ok(Err(problem)),
    };
    let mut tx = pool.begin().await?;
    let id = db_requests::insert(
        &mut *tx,
        &NewRequest {
            tenant_id,
            requested_by: actor.user_id(),
            name: settings.name.as_str(),
            full_access: settings.access.is_full(),
            scopes: settings.access.chosen(),
            expires_at: settings.expires_at,
            ip_allowlist: &settings.ip_allowlist.entries(),
            reason: &why,
        },
    )
    .await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "key_request.created",
            format!("key request:{}", settings.name.as_str()),
            json!({ "scopes": settings.access.label(), "reason": why }),
        )
        .await?;
    Ok(Ok(id))
}

async fn lock(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    key_request_id: Uuid,
) -> DomainResult<KeyRequest> {
    if !db_requests::lock(&mut *tx, tenant_id, key_request_id).await? {
        return Err(DomainError::NotFound);
    }
    db_requests::get(&mut *tx, tenant_id, key_request_id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// An admin approves or denies a pending request (a denial needs a reason). The requester is
/// mailed and `key_request.approved` / `.denied` published, in the decision's transaction.
pub async fn decide(
    pool: &PgPool,
    config: &KeyConfig,
    tenant_id: Uuid,
    key_request_id: Uuid,
    approve: bool,
    why: &str,
    actor: &Actor,
) -> DomainResult<Result<(), RequestProblem>> {
    let why = match reason(
        why,
        (!approve).then_some("for denying it: the developer sees it"),
    ) {
        Ok(why) => why,
        Err(problem) => return Ok(Err(problem)),
    };
    let mut tx = pool.begin().await?;
    let request = lock(&mut tx, tenant_id, key_request_id).await?;
    if request.status != RequestStatus::Pending {
        return Ok(Err(RequestProblem::NotPending(request.status)));
    }
    let status = if approve {
        RequestStatus::Approved
    } else {
        RequestStatus::Denied
    };
    db_requests::decide(&mut *tx, key_request_id, status, actor.user_id(), &why).await?;
    if let Some(requester) = request.requested_by
        && let Some(facts) =
            reminders::key_notice_facts(&mut *tx, tenant_id, requester, actor.user_id()).await?
    {
        let notice = Mail::KeyRequestDecided {
            name: facts.name,
            tenant: facts.tenant_name,
            key_name: request.name.clone(),
            approved: approve,
            by: actor
                .machine_label()
                .or(facts.actor_name)
                .unwrap_or_else(|| "a former member".into()),
            reason: why.clone(),
            link: config.public_url.link(&format!(
                "/t/{}/key-requests/{key_request_id}",
                facts.tenant_slug
            )),
        };
        mail::send(&mut *tx, &facts.email, notice).await?;
    }
    let decided = KeyRequestDecided {
        request: KeyRequestRef {
            id: key_request_id,
            name: request.name.clone(),
            requested_by: request.requested_by,
            reason: request.reason.clone(),
        },
        decision_reason: why.clone(),
        actor: actor.into(),
    };
    let event = if approve {
        Event::KeyRequestApproved(decided)
    } else {
        Event::KeyRequestDenied(decided)
    };
    webhooks::publish(&mut tx, tenant_id, Some(Environment::Live), &event).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            if approve {
                "key_request.approved"
            } else {
                "key_request.denied"
            },
            format!("key request:{}", request.name),
            json!({ "reason": if why.is_empty() { "(none)" } else { why.as_str() } }),
        )
        .await?;
    Ok(Ok(()))
}

/// Why a reveal made no key: the request's state, or a rule the key no longer meets (the tenant's
/// policy or the requester's account changed since the approval).
#[derive(Debug, PartialEq, Eq)]
pub enum RevealRefusal {
    Request(RequestProblem),
    Rules(KeyErrors),
}

/// The requester reveals an approved request's key: the rules are applied again now (the approval
/// stands in for the policy's "with approval"), the key is made (shown once by the caller) and the
/// request marked revealed, so it cannot be revealed again.
pub async fn reveal(
    pool: &PgPool,
    config: &KeyConfig,
    tenant_id: Uuid,
    key_request_id: Uuid,
    by: Requester<'_>,
) -> DomainResult<Result<(NewKey, Uuid, String), RevealRefusal>> {
    let actor = by.actor;
    let mut tx = pool.begin().await?;
    let request = lock(&mut tx, tenant_id, key_request_id).await?;
    if actor.user_id().is_none() || request.requested_by != actor.user_id() {
        return Ok(Err(RevealRefusal::Request(RequestProblem::NotTheRequester)));
    }
    if request.status != RequestStatus::Approved {
        return Ok(Err(RevealRefusal::Request(RequestProblem::NotRevealable(
            request.status,
        ))));
    }
    let asked = NewKeyRequest {
        name: request.name.clone(),
        environment: Ok(Environment::Live),
        access: AccessChoice {
            full: Some(request.full_access),
            scopes: request.scopes.clone(),
        },
        expires_at: Ok(request.expires_at),
        rate_limit: Ok(None),
        note: format!("Approved request: {}", request.reason),
        meta: Ok(None),
        ip_allowlist: Some(request.ip_allowlist.clone()),
    };
    let admitted = match keys::admit(&mut tx, config, tenant_id, &asked, by, true).await? {
        Ok(Admission::Create(admitted)) => admitted,
        // An approved request is never sent to approval again.
        Ok(Admission::NeedsApproval(_)) => {
            return Err(DomainError::unexpected(
                "an approved key request needs approval",
            ));
        }
        Err(errors) => return Ok(Err(RevealRefusal::Rules(errors))),
    };
    let (key, id) = keys::create_in(&mut tx, &config.key_prefix, &admitted, actor).await?;
    db_requests::mark_revealed(&mut *tx, key_request_id, id).await?;
    tx.commit().await?;
    Ok(Ok((key, id, request.name)))
}
