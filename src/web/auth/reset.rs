//! `/password/forgot` and `/password/reset`: getting back in by a mailed link. The link's token
//! is moved from the URL into the session at once (a redirect), so it stays out of the address
//! bar, history and `Referer`; the reset pages also send `Referrer-Policy: no-referrer`.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::PasswordRefusal;
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::domain::accounts::NewPassword;
use crate::domain::email_links::{self, RESET_PATH, ResetRefused, ResetRequest};
use crate::error::AppResult;
use crate::web::Visitor;
use crate::web::page::{Layout, html, html_with_status, render};
use crate::web::session::{self, session_error};

/// The session key holding a reset token between the link and the form.
const RESET_TOKEN: &str = "reset_token";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/password/forgot", get(forgot_form).post(request_reset))
        .route(RESET_PATH, get(reset_form).post(reset_password))
}

#[derive(Template)]
#[template(path = "auth/forgot.html")]
struct ForgotPage {
    layout: Layout,
    email: String,
    sent: bool,
    error: Option<String>,
}

async fn forgot_form(visitor: Visitor) -> AppResult<Response> {
    let page = ForgotPage {
        layout: visitor.form_layout().await?,
        email: String::new(),
        sent: false,
        error: None,
    };
    html(&page)
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
}

async fn request_reset(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    visitor: Visitor,
    Form(form): Form<ForgotForm>,
) -> AppResult<Response> {
    let outcome =
        email_links::request_reset(&state.pool, &state.config.public_url, &form.email, client)
            .await?;
    let layout = visitor.form_layout().await?;
    let response = match outcome {
        ResetRequest::Sent => render(&ForgotPage {
            layout,
            email: form.email,
            sent: true,
            error: None,
        })?
        .into_response(),
        ResetRequest::Throttled { retry_after_secs } => {
            tracing::warn!(client.ip = %client, "password reset throttled");
            let refusal = PasswordRefusal::too_many("reset requests", retry_after_secs);
            let page = ForgotPage {
                layout,
                email: form.email,
                sent: false,
                error: Some(refusal.message.replace("failed ", "")),
            };
            refusal.respond(render(&page)?)
        }
    };
    Ok(response)
}

#[derive(Template)]
#[template(path = "auth/reset.html")]
struct ResetPage {
    layout: Layout,
    usable: bool,
    error: Option<String>,
    min_password: usize,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn reset_form(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<TokenQuery>,
) -> AppResult<Response> {
    if let Some(token) = query.token {
        // Keep the token, then show the form at a URL without it.
        visitor
            .session
            .insert(RESET_TOKEN, token)
            .await
            .map_err(session_error)?;
        return Ok(no_referrer(Redirect::to(RESET_PATH).into_response()));
    }
    let token: Option<String> = visitor
        .session
        .get(RESET_TOKEN)
        .await
        .map_err(session_error)?;
    let usable = match &token {
        Some(token) => email_links::reset_link_is_usable(&state.pool, token).await?,
        None => false,
    };
    let page = ResetPage {
        layout: visitor.form_layout().await?,
        usable,
        error: None,
        min_password: NewPassword::MIN_CHARS,
    };
    let status = if usable {
        StatusCode::OK
    } else {
        StatusCode::GONE
    };
    Ok(no_referrer(html_with_status(status, &page)?))
}

#[derive(Deserialize)]
struct ResetForm {
    new_password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<ResetForm>,
) -> AppResult<Response> {
    let token: Option<String> = visitor
        .session
        .get(RESET_TOKEN)
        .await
        .map_err(session_error)?;
    let outcome = match token {
        Some(token) => {
            email_links::reset_password(
                &state.pool,
                &state.passwords,
                &state.config.public_url,
                &token,
                &form.new_password,
            )
            .await?
        }
        None => Err(ResetRefused::BadLink),
    };
    let (status, usable, error) = match outcome {
        Ok(user) => {
            tracing::info!(user.id = %user.app_user_id, "password reset by mailed link; every session ended");
            visitor
                .session
                .remove::<String>(RESET_TOKEN)
                .await
                .map_err(session_error)?;
            if visitor.user.is_some() {
                session::sign_out(&visitor.session).await?;
            }
            session::flash(
                &visitor.session,
                "Your password was changed and every session signed out. Sign in with the new one.",
            )
            .await?;
            return Ok(no_referrer(Redirect::to("/signin").into_response()));
        }
        Err(ResetRefused::BadLink) => (StatusCode::GONE, false, None),
        Err(ResetRefused::Rejected(why)) => (StatusCode::UNPROCESSABLE_ENTITY, true, Some(why)),
    };
    let page = ResetPage {
        layout: visitor.form_layout().await?,
        usable,
        error,
        min_password: NewPassword::MIN_CHARS,
    };
    Ok(no_referrer(html_with_status(status, &page)?))
}

fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
