//! `/account`: the signed-in user's profile and password.

use askama::Template;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::format::date;
use super::session;
use super::{CurrentUser, Layout, render};
use crate::app::AppState;
use crate::domain::accounts::{self, NewPassword, PasswordChangeError};
use crate::error::AppResult;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(show_account))
        .route("/account/password", post(change_password))
}

#[derive(Template)]
#[template(path = "account/index.html")]
struct AccountPage {
    layout: Layout,
    email: String,
    display_name: String,
    member_since: String,
    password_changed: Option<String>,
    has_password: bool,
    current_error: Option<String>,
    new_error: Option<String>,
    min_password: usize,
}

async fn account_page(
    current: &CurrentUser,
    current_error: Option<String>,
    new_error: Option<String>,
) -> AppResult<AccountPage> {
    let user = &current.user;
    Ok(AccountPage {
        layout: current.layout().await?,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        member_since: date(user.created_at),
        password_changed: user.password_changed_at.map(date),
        has_password: user.password_hash.is_some(),
        current_error,
        new_error,
        min_password: NewPassword::MIN_CHARS,
    })
}

async fn show_account(current: CurrentUser) -> AppResult<Response> {
    Ok(render(&account_page(&current, None, None).await?)?.into_response())
}

#[derive(Deserialize)]
struct ChangePasswordForm {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<ChangePasswordForm>,
) -> AppResult<Response> {
    let outcome = accounts::change_password(
        &state.pool,
        &state.passwords,
        &current.user,
        &form.current_password,
        &form.new_password,
    )
    .await?;
    let (current_error, new_error) = match outcome {
        Ok(generation) => {
            tracing::info!(user.id = %current.user.app_user_id, "password changed; other sessions ended");
            session::renew(&current.session, &current.user, generation).await?;
            session::flash(
                &current.session,
                "Password changed. Every other session of yours has been signed out.",
            )
            .await?;
            return Ok(Redirect::to("/account").into_response());
        }
        Err(PasswordChangeError::WrongCurrent) => {
            (Some("That is not your current password.".to_owned()), None)
        }
        Err(PasswordChangeError::Rejected(why)) => (None, Some(why)),
    };
    let page = account_page(&current, current_error, new_error).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
}
