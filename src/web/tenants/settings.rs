//! `/t/{slug}/settings`: the tenant's name, its key policy (key_policy.rs) and deleting the tenant
//! (admins).

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{TenantMember, TenantNav, key_policy};
use crate::app::AppState;
use crate::domain::tenants;
use crate::error::AppResult;
use crate::web::page::{Layout, html, html_with_status};
use crate::web::session;

#[derive(Template)]
#[template(path = "tenants/settings.html")]
struct SettingsPage {
    layout: Layout,
    tenant: TenantNav,
    name: String,
    name_error: Option<String>,
    delete_error: Option<String>,
    policy: key_policy::PolicyForm,
}

async fn settings_page(
    member: &TenantMember,
    name: String,
    name_error: Option<String>,
    delete_error: Option<String>,
) -> AppResult<SettingsPage> {
    Ok(SettingsPage {
        layout: member.layout().await?,
        tenant: member.nav("settings"),
        name,
        name_error,
        delete_error,
        policy: key_policy::PolicyForm::default(),
    })
}

pub async fn show_settings(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    let name = member.membership.name.clone();
    let mut page = settings_page(&member, name, None, None).await?;
    page.policy = key_policy::PolicyForm::load(&state, &member).await?;
    html(&page)
}

/// The settings page with the key policy form as sent and its errors (422).
pub(super) async fn refused_policy(
    member: &TenantMember,
    policy: key_policy::PolicyForm,
) -> AppResult<Response> {
    let name = member.membership.name.clone();
    let mut page = settings_page(member, name, None, None).await?;
    page.policy = policy;
    html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

pub async fn rename_tenant(
    State(state): State<AppState>,
    member: TenantMember,
    Form(form): Form<RenameForm>,
) -> AppResult<Response> {
    let tenant = &member.membership;
    let renamed = tenants::rename_tenant(
        &state.pool,
        tenant.tenant_id,
        &tenant.name,
        &form.name,
        &member.actor,
    )
    .await?;
    match renamed {
        Ok(name) => {
            session::flash(
                &member.session,
                format!("The tenant is now called {}.", name.as_str()),
            )
            .await?;
            Ok(Redirect::to(&format!("/t/{}/settings", tenant.slug)).into_response())
        }
        Err(message) => {
            let mut page = settings_page(&member, form.name, Some(message), None).await?;
            page.policy = key_policy::PolicyForm::load(&state, &member).await?;
            html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete_tenant(
    State(state): State<AppState>,
    member: TenantMember,
    Form(form): Form<DeleteForm>,
) -> AppResult<Response> {
    let tenant = &member.membership;
    let deleted = tenants::delete_tenant(
        &state.pool,
        tenant.tenant_id,
        &tenant.slug,
        &form.confirm,
        &member.actor,
    )
    .await?;
    match deleted {
        Ok(revoked) => {
            for hash in &revoked {
                state.verifier.forget(hash);
            }
            tracing::info!(tenant.slug = %tenant.slug, keys.revoked = revoked.len(), "tenant deleted");
            session::flash(
                &member.session,
                format!(
                    "{} was deleted and its {} active key{} revoked.",
                    tenant.name,
                    revoked.len(),
                    if revoked.len() == 1 { "" } else { "s" }
                ),
            )
            .await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(message) => {
            let name = tenant.name.clone();
            let mut page = settings_page(&member, name, None, Some(message)).await?;
            page.policy = key_policy::PolicyForm::load(&state, &member).await?;
            html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}
