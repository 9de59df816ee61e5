//! `/t/{slug}/keys/{id}/roll` and `/revoke`: replacing a key with a new one, and ending it.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::create::{already_shown, created_page};
use super::form::{DEFAULT_GRACE, GRACE_CHOICES, read_grace};
use super::{KeyView, load_key, manageable_key, refuse, refuse_change};
use crate::app::AppState;
use crate::domain::keys::format::masked;
use crate::domain::keys::{self, Status};
use crate::error::{AppError, AppResult};
use crate::web::page::{Clock, ConfirmPage, Layout, html};
use crate::web::session;
use crate::web::session::{first_use, new_form_id};
use crate::web::tenants::{TenantMember, TenantNav};

// ---- roll ----

#[derive(Template)]
#[template(path = "keys/roll.html")]
struct RollPage {
    layout: Layout,
    tenant: TenantNav,
    key: KeyView,
    form_id: String,
    graces: [(&'static str, &'static str); 4],
    default_grace: &'static str,
}
pub async fn roll_key_form(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let view = manageable_key(&state, &member, key_id, |status| {
        !matches!(status, Status::Active | Status::Expiring)
    })
    .await?;
    let page = RollPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        key: view,
        form_id: new_form_id(),
        graces: GRACE_CHOICES,
        default_grace: DEFAULT_GRACE,
    };
    html(&page)
}

#[derive(Deserialize)]
pub struct RollForm {
    grace: String,
    #[serde(default)]
    form_id: String,
}

pub async fn roll_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
    axum::Form(form): axum::Form<RollForm>,
) -> AppResult<Response> {
    let grace = read_grace(&form.grace).map_err(AppError::Validation)?;
    if !first_use(&member.session, &form.form_id).await? {
        return already_shown(&member, member.layout().await?);
    }
    let outcome = keys::roll_key(
        &state.pool,
        &state.config.keys(),
        member.membership.tenant_id,
        key_id,
        grace,
        member.requester(),
    )
    .await?;
    let rolled = outcome.map_err(|refusal| refuse_change(&refusal))?;
    // Every instance hears of it through NOTIFY; this one need not wait.
    state.verifier.forget(&rolled.old_hash);
    let (key, new_id) = (rolled.key, rolled.new_id);
    let old = load_key(&state, &member, key_id).await?;
    tracing::info!(key.id = %key_id, key.successor = %new_id, "key rolled");
    let note = format!(
        "The old key {} keeps working until {}.",
        masked(&state.config.key_prefix, old.environment, &old.last_four),
        old.expires_at
            .map_or_else(|| "now".into(), |at| Clock::of(&member.user).exact(at))
    );
    let layout = member.layout().await?;
    let page = created_page(&state, &member, layout, &key, new_id, old.name, Some(note));
    html(&page)
}

// ---- revoke ----

pub async fn confirm_revoke(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let view = manageable_key(&state, &member, key_id, |status| status == Status::Revoked).await?;
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        title: format!("Revoke {}?", view.name),
        message: format!(
            "{} stops working at once, on every server that checks it. This cannot be undone; \
             anything still using it will be refused.",
            view.masked
        ),
        action: format!("/t/{slug}/keys/{key_id}/revoke"),
        button: "Revoke key",
        cancel: format!("/t/{slug}/keys/{key_id}"),
    };
    html(&page)
}

pub async fn revoke_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let hash = keys::revoke_key(
        &state.pool,
        &state.config.keys(),
        member.membership.tenant_id,
        key_id,
        member.requester(),
    )
    .await?
    .map_err(|problem| refuse(&problem))?;
    state.verifier.forget(&hash);
    tracing::info!(key.id = %key_id, "key revoked");
    session::flash(&member.session, "Key revoked. It no longer works anywhere.").await?;
    Ok(Redirect::to(&format!("/t/{}/keys/{key_id}", member.membership.slug)).into_response())
}
