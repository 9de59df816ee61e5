//! `/t/{slug}/api-access`: the tenant's management API tokens (admins): create one (shown once),
//! see when each was last used, revoke.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::{TenantMember, TenantNav};
use crate::app::AppState;
use crate::db::management as db_management;
use crate::domain::management::{self, Scope, TokenInput, masked_token};
use crate::error::AppResult;
use crate::web::page::{Clock, ConfirmPage, Layout, When, html, html_with_status};
use crate::web::session;

/// A token as the list shows it.
struct TokenRow {
    id: Uuid,
    name: String,
    masked: String,
    scopes: String,
    created: When,
    created_by: String,
    expires: When,
    last_used: When,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "tenants/api_access.html")]
struct ApiAccessPage {
    layout: Layout,
    tenant: TenantNav,
    tokens: Vec<TokenRow>,
    scopes: Vec<(&'static str, &'static str)>,
    input: TokenInput,
    error: Option<String>,
    head: String,
}

#[derive(Template)]
#[template(path = "tenants/api_token_created.html")]
struct TokenCreatedPage {
    layout: Layout,
    tenant: TenantNav,
    name: String,
    secret: String,
}

async fn access_page(
    state: &AppState,
    member: &TenantMember,
    input: TokenInput,
    error: Option<String>,
) -> AppResult<ApiAccessPage> {
    let prefix = &state.config.key_prefix;
    let now = time::OffsetDateTime::now_utc();
    let clock = Clock::of(&member.user);
    let tokens = db_management::tokens(&state.pool, member.tenant_id())
        .await?
        .into_iter()
        .map(|token| TokenRow {
            id: token.management_token_id,
            masked: masked_token(prefix, &token.last_four),
            scopes: token.scopes.join(" "),
            created: clock.at(token.created_at),
            created_by: super::member_name(token.created_by_name),
            expires: clock.at_or_never(token.expires_at),
            last_used: clock.at_or_never(token.last_used_at),
            status: if token.revoked_at.is_some() {
                "revoked"
            } else if token.expires_at.is_some_and(|at| at <= now) {
                "expired"
            } else {
                "active"
            },
            name: token.name,
        })
        .collect();
    Ok(ApiAccessPage {
        layout: member.layout().await?,
        tenant: member.nav("api-access"),
        tokens,
        scopes: Scope::ALL
            .iter()
            .map(|scope| (scope.as_str(), scope.description()))
            .collect(),
        input,
        error,
        head: management::token_head(prefix),
    })
}

pub async fn show_api_access(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    let input = TokenInput {
        expiry: "90".into(),
        ..TokenInput::default()
    };
    html(&access_page(&state, &member, input, None).await?)
}

pub async fn create_api_token(
    State(state): State<AppState>,
    member: TenantMember,
    body: Bytes,
) -> AppResult<Response> {
    let mut input = TokenInput::default();
    for (name, value) in form_urlencoded::parse(&body) {
        match name.as_ref() {
            "name" => input.name = value.into_owned(),
            "scopes" => input.scopes.push(value.into_owned()),
            "expiry" => input.expiry = value.into_owned(),
            _ => {}
        }
    }
    let made = management::create_token(
        &state.pool,
        &state.config.key_prefix,
        member.tenant_id(),
        &input,
        &member.actor,
    )
    .await?;
    match made {
        Ok(token) => {
            tracing::info!(token.id = %token.id, tenant.slug = %member.membership.slug, "management token created");
            let page = TokenCreatedPage {
                layout: member.layout().await?,
                tenant: member.nav("api-access"),
                name: input.name.trim().to_owned(),
                secret: token.secret,
            };
            html(&page)
        }
        Err(message) => {
            let page = access_page(&state, &member, input, Some(message)).await?;
            html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

pub async fn confirm_revoke_api_token(
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("api-access"),
        title: "Revoke this API token?".into(),
        message: "Calls with it are refused from this moment. The platform's backend needs a new \
                  token to go on."
            .into(),
        action: format!("/t/{slug}/api-access/{id}/revoke"),
        button: "Revoke token",
        cancel: format!("/t/{slug}/api-access"),
    };
    html(&page)
}

pub async fn revoke_api_token(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    management::revoke_token(&state.pool, member.tenant_id(), id, &member.actor).await?;
    session::flash(&member.session, "The API token is revoked.".to_owned()).await?;
    Ok(Redirect::to(&format!("/t/{}/api-access", member.membership.slug)).into_response())
}
