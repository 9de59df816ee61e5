//! `/t/{slug}/keys/{id}/edit`, `/disable` and `/enable`: changing a key's settings, and switching
//! it off and on again. The rules are `domain::keys::edit_key`'s.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::form::{EXPIRY_CHOICES, EditInput};
use super::{KeyView, load_key, manageable_key, pretty_meta, refuse, refuse_change};
use crate::app::AppState;
use crate::db::key_policies;
use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::{self, KeyChangeRequest, KeyErrors, Refusal, Status};
use crate::error::AppResult;
use crate::vocabulary::Role;
use crate::web::page::{ConfirmPage, Layout, html, html_with_status};
use crate::web::session;
use crate::web::tenants::{TenantMember, TenantNav};

#[derive(Template)]
#[template(path = "keys/edit.html")]
struct EditKeyPage {
    layout: Layout,
    tenant: TenantNav,
    key: KeyView,
    input: EditInput,
    errors: KeyErrors,
    catalogue: Vec<String>,
    is_admin: bool,
    expiries: [(&'static str, &'static str); 5],
    max_lifetime_days: Option<i64>,
}

fn finished(status: Status) -> bool {
    matches!(status, Status::Revoked | Status::Expired)
}

pub async fn edit_key_form(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let view = manageable_key(&state, &member, key_id, finished).await?;
    let key = load_key(&state, &member, key_id).await?;
    let input = EditInput {
        name: key.name.clone(),
        note: key.note.clone(),
        access: if key.full_access { "full" } else { "scopes" }.into(),
        scopes: key.scopes.clone(),
        expiry: "keep".into(),
        expiry_date: String::new(),
        rate_limit: key.rate_limit.to_string(),
        meta: pretty_meta(&key.meta),
        ip_allowlist: IpAllowlist::stored(&key.ip_allowlist).entries().join("\n"),
    };
    let page = edit_page(&state, &member, view, input, KeyErrors::default()).await?;
    html(&page)
}

async fn edit_page(
    state: &AppState,
    member: &TenantMember,
    key: KeyView,
    input: EditInput,
    errors: KeyErrors,
) -> AppResult<EditKeyPage> {
    Ok(EditKeyPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        key,
        input,
        errors,
        catalogue: state.config.scopes.clone(),
        is_admin: member.role >= Role::Admin,
        expiries: EXPIRY_CHOICES,
        max_lifetime_days: max_lifetime_days(state, member).await?,
    })
}

/// The tenant's maximum key lifetime, if its admins set one.
async fn max_lifetime_days(state: &AppState, member: &TenantMember) -> AppResult<Option<i64>> {
    Ok(key_policies::get(&state.pool, member.membership.tenant_id)
        .await?
        .max_key_lifetime_days
        .map(i64::from))
}

/// The form's fields; `scopes` repeats, which typed `Form` cannot read.
fn read_form(body: &[u8]) -> EditInput {
    let mut input = EditInput::default();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match name.as_ref() {
            "name" => input.name = value,
            "note" => input.note = value,
            "access" => input.access = value,
            "scopes" => input.scopes.push(value),
            "expiry" => input.expiry = value,
            "expiry_date" => input.expiry_date = value,
            "rate_limit" => input.rate_limit = value,
            "meta" => input.meta = value,
            "ip_allowlist" => input.ip_allowlist = value,
            _ => {}
        }
    }
    input
}

pub async fn update_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
    body: Bytes,
) -> AppResult<Response> {
    let view = manageable_key(&state, &member, key_id, finished).await?;
    let input = read_form(&body);
    let outcome = keys::edit_key(
        &state.pool,
        &state.config.keys(),
        member.membership.tenant_id,
        key_id,
        &input.request(),
        member.requester(),
    )
    .await?;
    let edited = match outcome {
        Ok(edited) => edited,
        Err(Refusal::Invalid(errors)) => {
            return invalid(&state, &member, view, input, errors).await;
        }
        Err(Refusal::Problem(problem)) => return Err(refuse(&problem)),
    };
    state.verifier.forget(&edited.secret_hash);
    let message = if edited.changed.is_empty() {
        "Nothing changed.".to_owned()
    } else {
        tracing::info!(key.id = %key_id, changed = ?edited.changed, "key edited");
        "Key saved. Every server checking keys sees the change within a second.".to_owned()
    };
    session::flash(&member.session, &message).await?;
    Ok(Redirect::to(&format!("/t/{}/keys/{key_id}", member.membership.slug)).into_response())
}

async fn invalid(
    state: &AppState,
    member: &TenantMember,
    view: KeyView,
    input: EditInput,
    errors: KeyErrors,
) -> AppResult<Response> {
    let page = edit_page(state, member, view, input, errors).await?;
    html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

// ---- disable and enable ----

pub async fn confirm_disable(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let view = manageable_key(&state, &member, key_id, |status| {
        finished(status) || status == Status::Disabled
    })
    .await?;
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        title: format!("Disable {}?", view.name),
        message: format!(
            "{} is refused (code DISABLED) on every server that checks it, within a second, until \
             you enable it again. Nothing else about the key changes.",
            view.masked
        ),
        action: format!("/t/{slug}/keys/{key_id}/disable"),
        button: "Disable key",
        cancel: format!("/t/{slug}/keys/{key_id}"),
    };
    html(&page)
}

pub async fn disable_key(
    state: State<AppState>,
    member: TenantMember,
    path: Path<(String, Uuid)>,
) -> AppResult<Response> {
    switch(state, member, path, true).await
}

pub async fn enable_key(
    state: State<AppState>,
    member: TenantMember,
    path: Path<(String, Uuid)>,
) -> AppResult<Response> {
    switch(state, member, path, false).await
}

async fn switch(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
    disabled: bool,
) -> AppResult<Response> {
    let change = KeyChangeRequest {
        disabled: Some(disabled),
        ..KeyChangeRequest::default()
    };
    let edited = keys::edit_key(
        &state.pool,
        &state.config.keys(),
        member.membership.tenant_id,
        key_id,
        &change,
        member.requester(),
    )
    .await?
    .map_err(|refusal| refuse_change(&refusal))?;
    state.verifier.forget(&edited.secret_hash);
    let message = match (disabled, edited.changed.is_empty()) {
        (true, false) => "Key disabled. It is refused everywhere until you enable it.",
        (false, false) => "Key enabled. It works again.",
        (true, true) => "The key was already disabled.",
        (false, true) => "The key was already enabled.",
    };
    tracing::info!(key.id = %key_id, disabled, "key switched");
    session::flash(&member.session, message).await?;
    Ok(Redirect::to(&format!("/t/{}/keys/{key_id}", member.membership.slug)).into_response())
}
