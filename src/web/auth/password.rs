//! `/signup`, `/signin`, `/signout`: password accounts.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::PasswordRefusal;
use super::sso::{self, ProviderButton};
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::domain::accounts::{self, NewPassword, SignIn, SignUpErrors};
use crate::error::AppResult;
use crate::web::Visitor;
use crate::web::page::{Layout, html, html_with_status, render};
use crate::web::session::{self, safe_next};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(new_account_form).post(create_account))
        .route("/signin", get(sign_in_form).post(sign_in))
        .route("/signout", post(sign_out))
}

#[derive(Template)]
#[template(path = "auth/signup.html")]
struct SignUpPage {
    layout: Layout,
    next: String,
    providers: Vec<ProviderButton>,
    email: String,
    display_name: String,
    errors: SignUpErrors,
    min_password: usize,
}

async fn sign_up_page(
    state: &AppState,
    visitor: &Visitor,
    next: String,
    email: String,
    display_name: String,
    errors: SignUpErrors,
) -> AppResult<SignUpPage> {
    Ok(SignUpPage {
        layout: visitor.form_layout().await?,
        providers: sso::provider_buttons(state, &next),
        next,
        email,
        display_name,
        errors,
        min_password: NewPassword::MIN_CHARS,
    })
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    email: Option<String>,
    /// Set by signing out, which lands here: the page says so.
    signed_out: Option<String>,
}

async fn new_account_form(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<NextQuery>,
) -> AppResult<Response> {
    let next = safe_next(query.next.as_deref()).to_owned();
    if visitor.user.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let email = query.email.unwrap_or_default();
    let page = sign_up_page(
        &state,
        &visitor,
        next,
        email,
        String::new(),
        SignUpErrors::default(),
    );
    html(&page.await?)
}

#[derive(Deserialize)]
struct SignUpForm {
    email: String,
    display_name: String,
    password: String,
    next: Option<String>,
}

async fn create_account(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<SignUpForm>,
) -> AppResult<Response> {
    let next = safe_next(form.next.as_deref()).to_owned();
    let outcome = accounts::sign_up(
        &state.pool,
        &state.passwords,
        &state.config.public_url,
        &form.email,
        &form.display_name,
        &form.password,
    )
    .await?;
    match outcome {
        Ok(user) => {
            tracing::info!(user.id = %user.app_user_id, "account created");
            session::sign_in(&visitor.session, &user).await?;
            session::flash(
                &visitor.session,
                "Welcome to Gatehouse. Your account is ready: we have mailed you a link to confirm your address.",
            )
            .await?;
            Ok(Redirect::to(&next).into_response())
        }
        Err(errors) => {
            let page = sign_up_page(
                &state,
                &visitor,
                next,
                form.email,
                form.display_name,
                errors,
            )
            .await?;
            html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "auth/signin.html")]
pub(super) struct SignInPage {
    layout: Layout,
    providers: Vec<ProviderButton>,
    email: String,
    next: String,
    error: Option<String>,
    /// "You are signed out.", on the page signing out lands on.
    notice: Option<&'static str>,
}

pub(super) async fn sign_in_page(
    state: &AppState,
    visitor: &Visitor,
    email: String,
    next: &str,
    error: Option<String>,
) -> AppResult<SignInPage> {
    Ok(SignInPage {
        layout: visitor.form_layout().await?,
        providers: sso::provider_buttons(state, next),
        email,
        next: next.to_owned(),
        error,
        notice: None,
    })
}

async fn sign_in_form(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<NextQuery>,
) -> AppResult<Response> {
    let next = safe_next(query.next.as_deref());
    if visitor.user.is_some() {
        return Ok(Redirect::to(next).into_response());
    }
    let mut page = sign_in_page(&state, &visitor, String::new(), next, None).await?;
    if query.signed_out.is_some() {
        page.notice = Some("You are signed out.");
    }
    html(&page)
}

#[derive(Deserialize)]
struct SignInForm {
    email: String,
    password: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    visitor: Visitor,
    Form(form): Form<SignInForm>,
) -> AppResult<Response> {
    let next = safe_next(form.next.as_deref());
    let outcome = accounts::sign_in(
        &state.pool,
        &state.passwords,
        &form.email,
        &form.password,
        client,
    )
    .await?;
    let refusal = match outcome {
        SignIn::Success(user) => {
            tracing::info!(user.id = %user.app_user_id, "signed in");
            session::sign_in(&visitor.session, &user).await?;
            return Ok(Redirect::to(next).into_response());
        }
        SignIn::Invalid => PasswordRefusal::new(
            StatusCode::UNAUTHORIZED,
            "That email and password do not match an account.",
        ),
        SignIn::Throttled { retry_after_secs } => {
            tracing::warn!(client.ip = %client, "sign-in throttled");
            PasswordRefusal::too_many("sign-in attempts", retry_after_secs)
        }
    };
    let error = Some(refusal.message.clone());
    let page = sign_in_page(&state, &visitor, form.email, next, error).await?;
    Ok(refusal.respond(render(&page)?))
}

async fn sign_out(State(state): State<AppState>, visitor: Visitor) -> AppResult<Response> {
    let at_provider = sso::provider_sign_out(&state, &visitor.session).await?;
    session::sign_out(&visitor.session).await?;
    Ok(at_provider.unwrap_or_else(|| Redirect::to("/signin?signed_out=1").into_response()))
}
