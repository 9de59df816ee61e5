//! `/tenants/new` and `/t/{slug}`: creating a tenant and its overview page.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{TenantMember, TenantNav, usage};
use crate::app::AppState;
use crate::db::invitations as db_invitations;
use crate::db::keys::{self as db_keys, KeyFilter};
use crate::db::tenants as db_tenants;
use crate::domain::tenants::{self, TenantErrors};
use crate::domain::usage::Counts;
use crate::error::AppResult;
use crate::vocabulary::Role;
use crate::vocabulary::{Code, Window};
use crate::web::CurrentUser;
use crate::web::meta::RequestMeta;
use crate::web::page::{Clock, Layout, When, html, html_with_status};
use crate::web::session;

#[derive(Template)]
#[template(path = "tenants/new.html")]
struct NewTenantPage {
    layout: Layout,
    name: String,
    slug: String,
    errors: TenantErrors,
}

pub(super) async fn new_tenant_form(current: CurrentUser) -> AppResult<Response> {
    let page = NewTenantPage {
        layout: current.layout().await?,
        name: String::new(),
        slug: String::new(),
        errors: TenantErrors::default(),
    };
    html(&page)
}

#[derive(Deserialize)]
pub(super) struct NewTenantForm {
    name: String,
    #[serde(default)]
    slug: String,
}

pub(super) async fn create_tenant(
    State(state): State<AppState>,
    current: CurrentUser,
    meta: RequestMeta,
    Form(form): Form<NewTenantForm>,
) -> AppResult<Response> {
    let actor = meta.actor(&current.user);
    match tenants::create_tenant(&state.pool, &current.user, &form.name, &form.slug, &actor).await?
    {
        Ok(tenant) => {
            tracing::info!(tenant.slug = %tenant.slug, "tenant created");
            session::flash(
                &current.session,
                format!("{} is ready. You are its admin.", tenant.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/t/{}", tenant.slug)).into_response())
        }
        Err(errors) => {
            let page = NewTenantPage {
                layout: current.layout().await?,
                name: form.name,
                slug: form.slug,
                errors,
            };
            html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

// ---- /t/{slug} ----

#[derive(Template)]
#[template(path = "tenants/show.html")]
struct TenantPage {
    layout: Layout,
    tenant: TenantNav,
    role_description: &'static str,
    /// The viewer is the tenant's only admin: leaving is not offered, and the page says why.
    last_admin: bool,
    member_count: usize,
    pending_count: usize,
    joined: When,
    today: Counts,
    today_by_outcome: Vec<(&'static usage::Outcome, i64)>,
    dead_keys: Option<usage::DeadKeyCalls>,
    busiest: Vec<usage::BusyRow>,
    /// The tenant has no key yet: the overview leads to the first one.
    first_key: bool,
    can_create: bool,
}

pub(super) async fn show_tenant(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    let members = db_tenants::members(&state.pool, member.tenant_id()).await?;
    let pending = db_invitations::pending(&state.pool, member.tenant_id()).await?;
    let day = usage::load(&state, member.tenant_id(), None, Window::Day).await?;
    let today = Counts::sum(day.iter().map(|(_, counts)| counts));
    let since = Window::Day.start(time::OffsetDateTime::now_utc());
    let busiest = usage::busy_rows(
        &state.config.key_prefix,
        crate::db::usage::busiest_keys(
            &state.pool,
            member.tenant_id(),
            None,
            since,
            usage::grain(Window::Day),
            5,
        )
        .await?,
    );
    let no_filter = KeyFilter {
        environment: None,
        status: None,
        search: None,
    };
    let first_key = db_keys::list(&state.pool, member.tenant_id(), &no_filter, 1, 0)
        .await?
        .is_empty();
    let page = TenantPage {
        first_key,
        can_create: member.role >= Role::Developer,
        layout: member.layout().await?,
        tenant: member.nav("overview"),
        role_description: member.role.description(),
        last_admin: crate::domain::tenants::is_last_admin(
            member.role,
            i64::try_from(members.iter().filter(|m| m.role == Role::Admin).count())
                .unwrap_or(i64::MAX),
        ),
        member_count: members.len(),
        pending_count: pending.len(),
        joined: Clock::of(&member.user).day(member.membership.created_at),
        today_by_outcome: usage::figures(&usage::shown_outcomes(&today), &today),
        dead_keys: usage::dead_key_calls(
            &today,
            Window::Day,
            // The request log names each refused caller's address and user agent.
            Some(format!(
                "/t/{}/logs?code={}",
                member.membership.slug,
                if today.get(Code::Revoked) > 0 {
                    Code::Revoked
                } else {
                    Code::Expired
                }
                .as_str()
            )),
        ),
        today,
        busiest,
    };
    html(&page)
}
