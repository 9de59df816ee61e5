//! `/tenants/new` and `/t/{slug}/...`: tenant pages, members, invitations, the audit log.
//! Every `/t/` route is declared with the least role it needs, in one table; a middleware built
//! from that table loads the membership and decides, and handlers can only reach the tenant
//! through what it decided.

pub mod keys;
pub mod usage;

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::audit;
use crate::db::tenants::{self as db_tenants, Membership};
use crate::db::users::User;
use crate::domain::tenants::{self, Actor, TenantErrors};
use crate::domain::usage::{Counts, Window};
use crate::domain::vocabulary::Role;
use crate::error::{AppError, AppResult};
use crate::web::format::{date, date_time};
use crate::web::meta::RequestMeta;
use crate::web::session::{self, encode};
use crate::web::{CurrentUser, Layout, render};

macro_rules! tenant_routes {
    ($($method:ident $path:literal => $role:ident $handler:path;)*) => {
        /// Every tenant route: method, path and the least role it needs.
        pub const RULES: &[(&str, &str, Role)] = &[$((stringify!($method), $path, Role::$role)),*];

        fn tenant_router(state: &AppState) -> Router<AppState> {
            Router::new()
                $(.route(
                    $path,
                    $method($handler).route_layer(from_fn_with_state((state.clone(), Role::$role), authorize)),
                ))*
        }
    };
}

tenant_routes! {
    get  "/t/{slug}" => Viewer show_tenant;
    get  "/t/{slug}/members" => Viewer list_members;
    post "/t/{slug}/invitations" => Admin create_invitation;
    post "/t/{slug}/invitations/{id}/revoke" => Admin revoke_invitation;
    post "/t/{slug}/members/{id}/role" => Admin change_role;
    get  "/t/{slug}/members/{id}/remove" => Admin confirm_remove_member;
    post "/t/{slug}/members/{id}/remove" => Admin remove_member;
    get  "/t/{slug}/leave" => Viewer confirm_leave;
    post "/t/{slug}/leave" => Viewer leave_tenant;
    get  "/t/{slug}/audit" => Admin list_audit_events;
    get  "/t/{slug}/keys" => Viewer keys::list_keys;
    get  "/t/{slug}/keys/new" => Developer keys::new_key_form;
    post "/t/{slug}/keys" => Developer keys::create_key;
    get  "/t/{slug}/keys/{id}" => Viewer keys::show_key;
    get  "/t/{slug}/keys/{id}/roll" => Developer keys::roll_key_form;
    post "/t/{slug}/keys/{id}/roll" => Developer keys::roll_key;
    get  "/t/{slug}/keys/{id}/revoke" => Developer keys::confirm_revoke;
    post "/t/{slug}/keys/{id}/revoke" => Developer keys::revoke_key;
    get  "/t/{slug}/usage" => Viewer usage::show_tenant_usage;
    get  "/t/{slug}/usage.csv" => Viewer usage::tenant_usage_csv;
    get  "/t/{slug}/keys/{id}/usage" => Viewer usage::show_key_usage;
    get  "/t/{slug}/keys/{id}/usage.csv" => Viewer usage::key_usage_csv;
}

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/new", get(new_tenant_form))
        .route("/tenants", post(create_tenant))
        .merge(tenant_router(state))
}

/// The signed-in user's membership in the tenant of the path, as decided by `authorize`.
#[derive(Clone)]
pub struct TenantMember {
    pub user: User,
    pub session: Session,
    pub membership: Membership,
    pub role: Role,
    pub actor: Actor,
}

impl TenantMember {
    pub async fn layout(&self) -> AppResult<Layout> {
        Layout::build(&self.session, Some(&self.user), true).await
    }

    pub fn nav(&self, active: &'static str) -> TenantNav {
        TenantNav {
            slug: self.membership.slug.clone(),
            name: self.membership.name.clone(),
            role: self.role,
            is_admin: self.role >= Role::Admin,
            active,
        }
    }

    fn tenant_id(&self) -> Uuid {
        self.membership.tenant_id
    }
}

impl FromRequestParts<AppState> for TenantMember {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        // Absent only when a route was registered outside the rule table: deny.
        parts
            .extensions
            .get::<TenantMember>()
            .cloned()
            .ok_or_else(|| AppError::unexpected("tenant route without an authorization rule"))
    }
}

/// Loads the membership for the tenant in the path and the user in the session. Not a member
/// (or no such tenant): 404, the same answer. Member with too low a role: 403.
async fn authorize(
    State((state, least)): State<(AppState, Role)>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let current = match CurrentUser::from_request_parts(&mut parts, &state).await {
        Ok(current) => current,
        Err(response) => return response,
    };
    let slug = params.get("slug").map_or("", String::as_str);
    let membership = match db_tenants::membership(&state.pool, slug, current.user.app_user_id).await
    {
        Ok(Some(membership)) => membership,
        Ok(None) => return AppError::NotFound.into_response(),
        Err(err) => return AppError::from(err).into_response(),
    };
    let role = membership.role;
    if role < least {
        return AppError::Forbidden(format!(
            "This page is for tenant {}s of {}. Your role there is {}; ask an admin if you need more.",
            least.as_str(),
            membership.name,
            role.as_str()
        ))
        .into_response();
    }
    let meta = match RequestMeta::from_request_parts(&mut parts, &state).await {
        Ok(meta) => meta,
        Err(err) => return err.into_response(),
    };
    let actor = meta.actor(&current.user);
    parts.extensions.insert(TenantMember {
        user: current.user,
        session: current.session,
        membership,
        role,
        actor,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// The tenant's header and tabs.
pub struct TenantNav {
    pub slug: String,
    pub name: String,
    pub role: Role,
    pub is_admin: bool,
    pub active: &'static str,
}

// ---- /tenants/new ----

#[derive(Template)]
#[template(path = "tenants/new.html")]
struct NewTenantPage {
    layout: Layout,
    name: String,
    slug: String,
    errors: TenantErrors,
}

async fn new_tenant_form(current: CurrentUser) -> AppResult<Response> {
    let page = NewTenantPage {
        layout: current.layout().await?,
        name: String::new(),
        slug: String::new(),
        errors: TenantErrors::default(),
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
struct NewTenantForm {
    name: String,
    #[serde(default)]
    slug: String,
}

async fn create_tenant(
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
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
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
    member_count: usize,
    pending_count: usize,
    joined: String,
    today: Counts,
    busiest: Vec<usage::BusyRow>,
}

async fn show_tenant(State(state): State<AppState>, member: TenantMember) -> AppResult<Response> {
    let members = db_tenants::members(&state.pool, member.tenant_id()).await?;
    let pending = db_tenants::pending_invitations(&state.pool, member.tenant_id()).await?;
    let day = usage::load(&state, member.tenant_id(), None, Window::Day).await?;
    let today = Counts::sum(day.iter().map(|(_, counts)| counts));
    let since = Window::Day.start(time::OffsetDateTime::now_utc());
    let busiest = usage::busy_rows(
        &state.config.key_prefix,
        crate::db::usage::busiest_keys(
            &state.pool,
            member.tenant_id(),
            since,
            usage::grain(Window::Day),
            5,
        )
        .await?,
    );
    let page = TenantPage {
        layout: member.layout().await?,
        tenant: member.nav("overview"),
        role_description: member.role.description(),
        member_count: members.len(),
        pending_count: pending.len(),
        joined: date(member.membership.created_at),
        today,
        busiest,
    };
    Ok(render(&page)?.into_response())
}

// ---- /t/{slug}/members ----

struct MemberRow {
    membership_id: Uuid,
    display_name: String,
    email: String,
    role: Role,
    joined: String,
    is_you: bool,
}

struct InvitationRow {
    invitation_id: Uuid,
    email: String,
    role: Role,
    invited_by: String,
    expires: String,
    expired: bool,
}

#[derive(Template)]
#[template(path = "tenants/members.html")]
struct MembersPage {
    layout: Layout,
    tenant: TenantNav,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    roles: [Role; 3],
    invite_email: String,
    invite_role: Role,
    invite_error: Option<String>,
    error: Option<String>,
}

async fn members_page(
    state: &AppState,
    member: &TenantMember,
    invite: Option<(String, Role, String)>,
    error: Option<String>,
) -> AppResult<MembersPage> {
    let now = time::OffsetDateTime::now_utc();
    let members = db_tenants::members(&state.pool, member.tenant_id())
        .await?
        .into_iter()
        .map(|row| MemberRow {
            membership_id: row.membership_id,
            is_you: row.app_user_id == member.user.app_user_id,
            display_name: row.display_name,
            email: row.email,
            role: row.role,
            joined: date(row.created_at),
        })
        .collect();
    let invitations = if member.role >= Role::Admin {
        db_tenants::pending_invitations(&state.pool, member.tenant_id())
            .await?
            .into_iter()
            .map(|row| InvitationRow {
                invitation_id: row.invitation_id,
                email: row.email,
                role: row.role,
                invited_by: row
                    .invited_by_name
                    .unwrap_or_else(|| "a former member".into()),
                expires: date(row.expires_at),
                expired: row.expires_at <= now,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (invite_email, invite_role, invite_error) = match invite {
        Some((email, role, why)) => (email, role, Some(why)),
        None => (String::new(), Role::Developer, None),
    };
    Ok(MembersPage {
        layout: member.layout().await?,
        tenant: member.nav("members"),
        members,
        invitations,
        roles: Role::ALL,
        invite_email,
        invite_role,
        invite_error,
        error,
    })
}

async fn list_members(State(state): State<AppState>, member: TenantMember) -> AppResult<Response> {
    Ok(render(&members_page(&state, &member, None, None).await?)?.into_response())
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
    role: String,
}

#[derive(Template)]
#[template(path = "tenants/invitation_created.html")]
struct InvitationCreatedPage {
    layout: Layout,
    tenant: TenantNav,
    email: String,
    role: Role,
    link: String,
    expires: String,
}

async fn create_invitation(
    State(state): State<AppState>,
    member: TenantMember,
    Form(form): Form<InviteForm>,
) -> AppResult<Response> {
    match tenants::invite(
        &state.pool,
        member.tenant_id(),
        &form.email,
        &form.role,
        &member.actor,
    )
    .await?
    {
        Ok(issued) => {
            let page = InvitationCreatedPage {
                layout: member.layout().await?,
                tenant: member.nav("members"),
                email: issued.invitation.email.clone(),
                role: issued.invitation.role,
                link: format!(
                    "{}/invitations/{}",
                    state.config.public_url.origin(),
                    issued.token
                ),
                expires: date_time(issued.invitation.expires_at),
            };
            // The link exists only in this response: it is never stored.
            Ok(render(&page)?.into_response())
        }
        Err(why) => {
            // The form is shown again with its default choice when the submitted role was not one.
            let role = Role::parse(&form.role).unwrap_or(Role::Developer);
            let page = members_page(&state, &member, Some((form.email, role, why)), None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

async fn revoke_invitation(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, invitation_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    tenants::revoke_invitation(
        &state.pool,
        member.tenant_id(),
        invitation_id,
        &member.actor,
    )
    .await?;
    session::flash(
        &member.session,
        "Invitation revoked. Its link no longer works.",
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{}/members", member.membership.slug)).into_response())
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, membership_id)): Path<(String, Uuid)>,
    Form(form): Form<RoleForm>,
) -> AppResult<Response> {
    let role = Role::parse(&form.role).map_err(AppError::Validation)?;
    match tenants::change_role(
        &state.pool,
        member.tenant_id(),
        membership_id,
        role,
        &member.actor,
    )
    .await?
    {
        Ok(()) => {
            session::flash(
                &member.session,
                format!("Role changed to {}.", role.label()),
            )
            .await?;
            // An admin who demoted themselves can no longer see the members page as admin,
            // but can still see it: members is a viewer page.
            Ok(Redirect::to(&format!("/t/{}/members", member.membership.slug)).into_response())
        }
        Err(problem) => {
            let page = members_page(&state, &member, None, Some(problem.message().into())).await?;
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
    }
}

/// "Are you sure?" before anything destructive. Without an `action`, only the way back is offered.
#[derive(Template)]
#[template(path = "tenants/confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub tenant: TenantNav,
    pub title: String,
    pub message: String,
    pub action: String,
    pub button: &'static str,
    pub cancel: String,
}

async fn confirm_remove_member(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, membership_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let target = db_tenants::member(&state.pool, member.tenant_id(), membership_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("members"),
        title: format!("Remove {}?", target.display_name),
        message: format!(
            "{} ({}) loses access to {} at once, in every session. Their keys are not revoked by this; revoke them separately if needed.",
            target.display_name, target.email, member.membership.name
        ),
        action: format!("/t/{slug}/members/{membership_id}/remove"),
        button: "Remove member",
        cancel: format!("/t/{slug}/members"),
    };
    Ok(render(&page)?.into_response())
}

async fn remove_member(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, membership_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let slug = member.membership.slug.clone();
    let leaving = membership_id == member.membership.membership_id;
    let action = if leaving {
        "member.left"
    } else {
        "member.removed"
    };
    match tenants::remove_member(
        &state.pool,
        member.tenant_id(),
        membership_id,
        action,
        &member.actor,
    )
    .await?
    {
        Ok(()) if leaving => {
            session::flash(
                &member.session,
                format!("You left {}.", member.membership.name),
            )
            .await?;
            Ok(Redirect::to("/").into_response())
        }
        Ok(()) => {
            session::flash(&member.session, "Member removed.").await?;
            Ok(Redirect::to(&format!("/t/{slug}/members")).into_response())
        }
        Err(problem) => {
            let page = members_page(&state, &member, None, Some(problem.message().into())).await?;
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
    }
}

async fn confirm_leave(member: TenantMember) -> AppResult<Response> {
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("members"),
        title: format!("Leave {}?", member.membership.name),
        message: "You lose access to this tenant and its keys at once. To come back, an admin has to invite you again."
            .into(),
        action: format!("/t/{slug}/leave"),
        button: "Leave tenant",
        cancel: format!("/t/{slug}"),
    };
    Ok(render(&page)?.into_response())
}

async fn leave_tenant(State(state): State<AppState>, member: TenantMember) -> AppResult<Response> {
    let own = member.membership.membership_id;
    let name = member.membership.name.clone();
    match tenants::remove_member(
        &state.pool,
        member.tenant_id(),
        own,
        "member.left",
        &member.actor,
    )
    .await?
    {
        Ok(()) => {
            session::flash(&member.session, format!("You left {name}.")).await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(problem) => {
            let page = members_page(&state, &member, None, Some(problem.message().into())).await?;
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
    }
}

// ---- /t/{slug}/audit ----

const AUDIT_PAGE_SIZE: i64 = 50;

struct EventRow {
    at: String,
    actor: String,
    action: String,
    target: String,
    details: String,
    client_ip: String,
    request_id: String,
    request_short: String,
}

/// `{"from":"viewer","to":"admin"}` as `from: viewer · to: admin`.
fn describe(details: &serde_json::Value) -> String {
    details
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(text) => format!("{key}: {text}"),
                    other => format!("{key}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "tenants/audit.html")]
struct AuditPage {
    layout: Layout,
    tenant: TenantNav,
    events: Vec<EventRow>,
    actions: Vec<String>,
    action: String,
    newer: Option<String>,
    older: Option<String>,
}

#[derive(Deserialize)]
struct AuditQuery {
    action: Option<String>,
    page: Option<u32>,
}

async fn list_audit_events(
    State(state): State<AppState>,
    member: TenantMember,
    Query(query): Query<AuditQuery>,
) -> AppResult<Response> {
    let action = query.action.filter(|a| !a.is_empty());
    let page = i64::from(query.page.unwrap_or(1).max(1));
    let mut events = audit::page(
        &state.pool,
        member.tenant_id(),
        action.as_deref(),
        AUDIT_PAGE_SIZE + 1,
        (page - 1) * AUDIT_PAGE_SIZE,
    )
    .await?;
    let has_older = events.len() > usize::try_from(AUDIT_PAGE_SIZE).unwrap_or(usize::MAX);
    events.truncate(usize::try_from(AUDIT_PAGE_SIZE).unwrap_or(usize::MAX));
    let slug = &member.membership.slug;
    let link = |page: i64| {
        let mut url = format!("/t/{slug}/audit?page={page}");
        if let Some(action) = &action {
            url.push_str(&format!("&action={}", encode(action)));
        }
        url
    };
    let page_view = AuditPage {
        layout: member.layout().await?,
        tenant: member.nav("audit"),
        actions: audit::actions(&state.pool, member.tenant_id()).await?,
        events: events
            .into_iter()
            .map(|event| EventRow {
                at: date_time(event.at),
                actor: match (event.actor_name, event.actor_email) {
                    (Some(name), Some(email)) => format!("{name} <{email}>"),
                    _ => "a deleted user".into(),
                },
                action: event.action,
                target: event.target,
                details: describe(&event.details),
                client_ip: event.client_ip.unwrap_or_default(),
                request_short: event
                    .request_id
                    .as_deref()
                    .unwrap_or_default()
                    .chars()
                    .take(8)
                    .collect(),
                request_id: event.request_id.unwrap_or_default(),
            })
            .collect(),
        action: action.clone().unwrap_or_default(),
        newer: (page > 1).then(|| link(page - 1)),
        older: has_older.then(|| link(page + 1)),
    };
    Ok(render(&page_view)?.into_response())
}
