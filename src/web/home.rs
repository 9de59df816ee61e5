//! `/`: the landing page for visitors, the signed-in home (the user's tenants) for users.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use super::Visitor;
use super::page::{Clock, Layout, When, render};
use crate::app::AppState;
use crate::db::tenants;
use crate::error::AppResult;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(show_home))
}

#[derive(Template)]
#[template(path = "home/landing.html")]
struct LandingPage {
    layout: Layout,
}

struct TenantRow {
    slug: String,
    name: String,
    role: &'static str,
    joined: When,
}

#[derive(Template)]
#[template(path = "home/index.html")]
struct HomePage {
    layout: Layout,
    display_name: String,
    tenants: Vec<TenantRow>,
}

async fn show_home(State(state): State<AppState>, visitor: Visitor) -> AppResult<Html<String>> {
    let layout = visitor.layout().await?;
    let Some(user) = &visitor.user else {
        return render(&LandingPage { layout });
    };
    let clock = Clock::of(user);
    let tenants = tenants::memberships_of(&state.pool, user.app_user_id)
        .await?
        .into_iter()
        .map(|m| TenantRow {
            joined: clock.day(m.created_at),
            slug: m.slug,
            name: m.name,
            role: m.role.as_str(),
        })
        .collect();
    render(&HomePage {
        layout,
        display_name: user.display_name.clone(),
        tenants,
    })
}
