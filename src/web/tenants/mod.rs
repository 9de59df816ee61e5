//! `/t/{slug}/…`: the one table declaring every tenant route with its least role, and the check.

mod api_access;
mod audit;
mod key_policy;
mod keys;
mod logs;
mod members;
mod overview;
mod settings;
mod usage;
mod webhook_log;
mod webhooks;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_sessions::Session;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::tenants::{self as db_tenants, Membership};
use crate::db::users::User;
use crate::domain::audit::Actor;
use crate::error::{AppError, AppResult};
use crate::vocabulary::Role;
use crate::web::CurrentUser;
use crate::web::meta::RequestMeta;
use crate::web::page::Layout;

// Every `/t/` route is declared here and nowhere else, with the least role it needs: the table
// gives each route `authorize` as a route layer, which loads the membership and decides, and
// handlers reach the tenant only through the `TenantMember` it decided.
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
    get  "/t/{slug}" => Viewer overview::show_tenant;
    get  "/t/{slug}/members" => Viewer members::list_members;
    post "/t/{slug}/invitations" => Admin members::create_invitation;
    post "/t/{slug}/invitations/{id}/revoke" => Admin members::revoke_invitation;
    post "/t/{slug}/members/{id}/role" => Admin members::change_role;
    get  "/t/{slug}/members/{id}/remove" => Admin members::confirm_remove_member;
    post "/t/{slug}/members/{id}/remove" => Admin members::remove_member;
    get  "/t/{slug}/leave" => Viewer members::confirm_leave;
    post "/t/{slug}/leave" => Viewer members::leave_tenant;
    get  "/t/{slug}/audit" => Admin audit::list_audit_events;
    get  "/t/{slug}/settings" => Admin settings::show_settings;
    post "/t/{slug}/settings/name" => Admin settings::rename_tenant;
    post "/t/{slug}/settings/delete" => Admin settings::delete_tenant;
    post "/t/{slug}/settings/keys" => Admin key_policy::save_key_policy;
    get  "/t/{slug}/api-access" => Admin api_access::show_api_access;
    post "/t/{slug}/api-access" => Admin api_access::create_api_token;
    get  "/t/{slug}/api-access/{id}/revoke" => Admin api_access::confirm_revoke_api_token;
    post "/t/{slug}/api-access/{id}/revoke" => Admin api_access::revoke_api_token;
    get  "/t/{slug}/keys" => Viewer keys::list_keys;
    get  "/t/{slug}/keys/new" => Developer keys::create::new_key_form;
    post "/t/{slug}/keys" => Developer keys::create::create_key;
    get  "/t/{slug}/keys/{id}" => Viewer keys::show_key;
    post "/t/{slug}/keys/{id}/test" => Viewer keys::check::test_key;
    get  "/t/{slug}/keys/{id}/roll" => Developer keys::change::roll_key_form;
    post "/t/{slug}/keys/{id}/roll" => Developer keys::change::roll_key;
    get  "/t/{slug}/keys/{id}/revoke" => Developer keys::change::confirm_revoke;
    post "/t/{slug}/keys/{id}/revoke" => Developer keys::change::revoke_key;
    get  "/t/{slug}/keys/{id}/edit" => Developer keys::edit::edit_key_form;
    post "/t/{slug}/keys/{id}/edit" => Developer keys::edit::update_key;
    get  "/t/{slug}/keys/{id}/disable" => Developer keys::edit::confirm_disable;
    post "/t/{slug}/keys/{id}/disable" => Developer keys::edit::disable_key;
    post "/t/{slug}/keys/{id}/enable" => Developer keys::edit::enable_key;
    get  "/t/{slug}/key-requests/{id}" => Developer keys::requests::show_request;
    post "/t/{slug}/key-requests/{id}/approve" => Admin keys::requests::approve_request;
    post "/t/{slug}/key-requests/{id}/deny" => Admin keys::requests::deny_request;
    post "/t/{slug}/key-requests/{id}/reveal" => Developer keys::requests::reveal_key;
    get  "/t/{slug}/usage" => Viewer usage::show_tenant_usage;
    get  "/t/{slug}/usage.csv" => Viewer usage::tenant_usage_csv;
    get  "/t/{slug}/keys/{id}/usage" => Viewer usage::show_key_usage;
    get  "/t/{slug}/keys/{id}/usage.csv" => Viewer usage::key_usage_csv;
    get  "/t/{slug}/logs" => Viewer logs::list_logs;
    get  "/t/{slug}/logs.csv" => Viewer logs::logs_csv;
    get  "/t/{slug}/webhooks" => Viewer webhooks::list_webhooks;
    get  "/t/{slug}/webhooks/new" => Admin webhooks::new_webhook_form;
    post "/t/{slug}/webhooks" => Admin webhooks::create_webhook;
    get  "/t/{slug}/webhooks/{id}" => Viewer webhook_log::show_webhook;
    post "/t/{slug}/webhooks/{id}" => Admin webhooks::update_webhook;
    get  "/t/{slug}/webhooks/{id}/edit" => Admin webhooks::edit_webhook_form;
    post "/t/{slug}/webhooks/{id}/roll" => Admin webhooks::roll_webhook_secret;
    post "/t/{slug}/webhooks/{id}/enable" => Admin webhooks::enable_webhook;
    post "/t/{slug}/webhooks/{id}/disable" => Admin webhooks::disable_webhook;
    post "/t/{slug}/webhooks/{id}/test" => Admin webhooks::send_test_event;
    post "/t/{slug}/webhooks/{id}/resend" => Admin webhooks::resend_event;
    get  "/t/{slug}/webhooks/{id}/delete" => Admin webhooks::confirm_delete_webhook;
    post "/t/{slug}/webhooks/{id}/delete" => Admin webhooks::delete_webhook;
}

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/new", get(overview::new_tenant_form))
        .route("/tenants", post(overview::create_tenant))
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
    /// The member as the domain's rules see who asks: their actor and role in the tenant.
    pub fn requester(&self) -> crate::domain::keys::Requester<'_> {
        crate::domain::keys::Requester {
            actor: &self.actor,
            role: self.role,
        }
    }

    pub async fn layout(&self) -> AppResult<Layout> {
        Layout::build(&self.session, Some(&self.user), true).await
    }

    pub fn nav(&self, active: &'static str) -> TenantNav {
        TenantNav::of(&self.membership, active)
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

/// The tabs an error page inside `/t/{slug}/…` shows: only when `user` is a member of that tenant
/// (anyone else's 404 stays the same as for a tenant that does not exist), with the tab of the
/// path's area marked.
pub async fn nav_for_error(state: &AppState, path: &str, user: &User) -> Option<TenantNav> {
    let mut parts = path.strip_prefix("/t/")?.split('/');
    let slug = parts.next().filter(|slug| !slug.is_empty())?;
    let membership = db_tenants::membership(&state.pool, slug, user.app_user_id)
        .await
        .ok()??;
    let active = match parts.next().unwrap_or_default() {
        "" => "overview",
        "keys" | "key-requests" => "keys",
        "usage" | "usage.csv" => "usage",
        "logs" | "logs.csv" => "logs",
        "webhooks" => "webhooks",
        "members" | "invitations" | "leave" => "members",
        "audit" => "audit",
        "api-access" => "api-access",
        "settings" => "settings",
        _ => "",
    };
    Some(TenantNav::of(&membership, active))
}

/// The tenant's header and tabs.
pub struct TenantNav {
    pub slug: String,
    pub name: String,
    pub role: Role,
    pub is_admin: bool,
    pub active: &'static str,
    /// The platform's id for the tenant, shown beside the slug.
    pub external_id: Option<String>,
    pub suspended: bool,
}

impl TenantNav {
    fn of(membership: &Membership, active: &'static str) -> Self {
        Self {
            slug: membership.slug.clone(),
            name: membership.name.clone(),
            role: membership.role,
            is_admin: membership.role >= Role::Admin,
            active,
            external_id: membership.external_id.clone(),
            suspended: membership.suspended,
        }
    }
}

/// A person by name; one whose account no longer exists reads as "a former member".
fn member_name(name: Option<String>) -> String {
    name.unwrap_or_else(|| "a former member".into())
}
