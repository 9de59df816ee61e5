//! `/`: the landing page for visitors, the signed-in home for users.

use askama::Template;
use axum::Router;
use axum::response::Html;
use axum::routing::get;

use super::{Layout, Visitor, render};
use crate::app::AppState;
use crate::error::AppResult;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(show_home))
}

#[derive(Template)]
#[template(path = "home/landing.html")]
struct LandingPage {
    layout: Layout,
}

#[derive(Template)]
#[template(path = "home/index.html")]
struct HomePage {
    layout: Layout,
    display_name: String,
}

async fn show_home(visitor: Visitor) -> AppResult<Html<String>> {
    let layout = visitor.layout().await?;
    match &visitor.user {
        Some(user) => render(&HomePage {
            layout,
            display_name: user.display_name.clone(),
        }),
        None => render(&LandingPage { layout }),
    }
}
