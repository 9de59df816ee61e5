//! `/signup`, `/signin`, `/signout`: password accounts.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::sso::{self as oidc, ProviderButton};
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::domain::accounts::{self, NewPassword, SignIn, SignUpErrors};
use crate::error::AppResult;
use crate::web::Visitor;
use crate::web::page::{Layout, render};
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

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    email: Option<String>,
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
    let page = SignUpPage {
        layout: visitor.form_layout().await?,
        providers: oidc::provider_buttons(&state, &next),
        next,
        email: query.email.unwrap_or_default(),
        display_name: String::new(),
        errors: SignUpErrors::default(),
        min_password: NewPassword::MIN_CHARS,
    };
    Ok(render(&page)?.into_response())
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
                "Welcome to Gatehouse. Your account is ready.",
            )
            .await?;
            Ok(Redirect::to(&next).into_response())
        }
        Err(errors) => {
            let page = SignUpPage {
                layout: visitor.form_layout().await?,
                providers: oidc::provider_buttons(&state, &next),
                next,
                email: form.email,
                display_name: form.display_name,
                errors,
                min_password: NewPassword::MIN_CHARS,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "auth/signin.html")]
struct SignInPage {
    layout: Layout,
    providers: Vec<ProviderButton>,
    email: String,
    next: String,
    error: Option<String>,
}

async fn sign_in_form(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<NextQuery>,
) -> AppResult<Response> {
    let next = safe_next(query.next.as_deref()).to_owned();
    if visitor.user.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let page = SignInPage {
        layout: visitor.form_layout().await?,
        providers: oidc::provider_buttons(&state, &next),
        email: String::new(),
        next,
        error: None,
    };
    Ok(render(&page)?.into_response())
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
    let next = safe_next(form.next.as_deref()).to_owned();
    let outcome = accounts::sign_in(
        &state.pool,
        &state.passwords,
        &form.email,
        &form.password,
        client,
    )
    .await?;
    let (status, error, retry_after) = match outcome {
        SignIn::Success(user) => {
            tracing::info!(user.id = %user.app_user_id, "signed in");
            session::sign_in(&visitor.session, &user).await?;
            return Ok(Redirect::to(&next).into_response());
        }
        SignIn::Invalid => (
            StatusCode::UNAUTHORIZED,
            "That email and password do not match an account.".to_owned(),
            None,
        ),
        SignIn::Throttled { retry_after_secs } => {
            let minutes = (retry_after_secs + 59) / 60;
            tracing::warn!(client.ip = %client, "sign-in throttled");
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-in attempts. Please wait {minutes} minute{} and try again.",
                    if minutes == 1 { "" } else { "s" }
                ),
                Some(retry_after_secs),
            )
        }
    };
    let page = SignInPage {
        layout: visitor.form_layout().await?,
        providers: oidc::provider_buttons(&state, &next),
        email: form.email,
        next,
        error: Some(error),
    };
    let mut response = (status, render(&page)?).into_response();
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Ok(response)
}

async fn sign_out(State(state): State<AppState>, visitor: Visitor) -> AppResult<Response> {
    let at_provider = oidc::provider_sign_out(&state, &visitor.session).await?;
    session::sign_out(&visitor.session).await?;
    Ok(at_provider.unwrap_or_else(|| Redirect::to("/signin?signed_out=1").into_response()))
}

/// The sign-in page with a message saying why a sign-in (through a provider) did not happen.
pub(super) async fn sign_in_refused(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    message: String,
    next: &str,
) -> AppResult<Response> {
    let page = SignInPage {
        layout: visitor.form_layout().await?,
        providers: oidc::provider_buttons(state, next),
        email: String::new(),
        next: next.to_owned(),
        error: Some(message),
    };
    Ok((status, render(&page)?).into_response())
}
