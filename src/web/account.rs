//! `/account`: the signed-in user's profile, password and linked identities.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use uuid::Uuid;

use super::auth::provider_display;
use super::page::{Address, Clock, Layout, When, html, html_with_status};
use super::session;
use super::{CurrentUser, Visitor};
use crate::app::AppState;
use crate::db::identities;
use crate::domain::accounts::{self, NewPassword, PasswordChangeError};
use crate::domain::email_links::{self, EmailChangeRefused, VERIFY_PATH, Verified};
use crate::domain::identities::Unlink;
use crate::error::{AppError, AppResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(show_account))
        .route("/account/password", post(change_password))
        .route("/account/email", post(change_email))
        .route("/account/reminders", post(set_reminders))
        .route("/account/profile", post(update_profile))
        .route(VERIFY_PATH, get(verify_email))
        .route("/account/verify/resend", post(resend_verification))
        .route(
            "/account/identities/{user_identity_id}/unlink",
            post(unlink_identity),
        )
}

#[derive(Template)]
#[template(path = "account/index.html")]
struct AccountPage {
    layout: Layout,
    email: String,
    verified: bool,
    expiry_reminders: bool,
    display_name: String,
    /// The address as the profile shows it, wrapping at sensible points.
    email_wrapped: Address,
    member_since: When,
    password_changed: Option<When>,
    has_password: bool,
    current_error: Option<String>,
    new_error: Option<String>,
    /// The email-change form: what was typed and what is wrong with it.
    new_email: String,
    email_error: Option<String>,
    email_password_error: Option<String>,
    min_password: usize,
    identities: Vec<IdentityRow>,
    /// Unlinking leaves a way in: a password, or another identity.
    can_unlink: bool,
    /// The profile form: what it holds and what is wrong with it.
    name_input: String,
    time_zone: String,
    time_zones: [&'static str; 24],
    profile_errors: accounts::ProfileErrors,
}

/// A provider identity as the account page lists it.
struct IdentityRow {
    id: Uuid,
    provider: String,
    email: String,
    linked: When,
    last_used: When,
}

async fn account_page(
    state: &AppState,
    current: &CurrentUser,
    current_error: Option<String>,
    new_error: Option<String>,
) -> AppResult<AccountPage> {
    let user = &current.user;
    let linked = identities::list_for_user(&state.pool, user.app_user_id).await?;
    let clock = Clock::of(user);
    let can_unlink = user.password_hash.is_some() || linked.len() > 1;
    let identities = linked
        .into_iter()
        .map(|identity| IdentityRow {
            id: identity.user_identity_id,
            provider: provider_display(state, &identity.issuer, &identity.provider),
            email: identity.email.unwrap_or_default(),
            linked: clock.day(identity.created_at),
            last_used: clock.at(identity.last_used_at),
        })
        .collect();
    Ok(AccountPage {
        layout: current.layout().await?,
        email: user.email.clone(),
        email_wrapped: Address(user.email.clone()),
        verified: user.is_verified(),
        expiry_reminders: user.expiry_reminders,
        display_name: user.display_name.clone(),
        member_since: clock.day(user.created_at),
        password_changed: user.password_changed_at.map(|at| clock.day(at)),
        has_password: user.password_hash.is_some(),
        current_error,
        new_error,
        new_email: String::new(),
        email_error: None,
        email_password_error: None,
        min_password: NewPassword::MIN_CHARS,
        identities,
        can_unlink,
        name_input: user.display_name.clone(),
        time_zone: user.time_zone.clone(),
        time_zones: accounts::TIME_ZONES,
        profile_errors: accounts::ProfileErrors::default(),
    })
}

#[derive(Deserialize)]
struct ProfileForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    time_zone: String,
}

/// The display name and time zone; a refusal shows the form again with what was typed.
async fn update_profile(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<ProfileForm>,
) -> AppResult<Response> {
    let updated = accounts::update_profile(
        &state.pool,
        &current.user,
        &form.display_name,
        &form.time_zone,
    )
    .await?;
    match updated {
        Ok(()) => {
            session::flash(&current.session, "Your profile is saved.").await?;
            Ok(Redirect::to("/account").into_response())
        }
        Err(errors) => {
            let mut page = account_page(&state, &current, None, None).await?;
            page.name_input = form.display_name;
            page.profile_errors = errors;
            html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

async fn show_account(State(state): State<AppState>, current: CurrentUser) -> AppResult<Response> {
    html(&account_page(&state, &current, None, None).await?)
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
        &state.config.public_url,
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
    let page = account_page(&state, &current, current_error, new_error).await?;
    html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

async fn unlink_identity(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user_identity_id): Path<Uuid>,
) -> AppResult<Response> {
    let outcome =
        crate::domain::identities::unlink(&state.pool, &current.user, user_identity_id).await?;
    match outcome {
        Unlink::Unlinked(identity) => {
            let provider = provider_display(&state, &identity.issuer, &identity.provider);
            tracing::info!(user.id = %current.user.app_user_id, oidc.provider = %identity.provider,
                "SSO identity unlinked");
            session::flash(
                &current.session,
                format!("{provider} is no longer linked to your account."),
            )
            .await?;
            Ok(Redirect::to("/account").into_response())
        }
        Unlink::NotFound => Err(AppError::NotFound),
        Unlink::LastWayIn => Err(AppError::Forbidden(
            "This is the only way you sign in, so it cannot be unlinked.".into(),
        )),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

/// The link mailed to prove an address: works without being signed in.
async fn verify_email(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<TokenQuery>,
) -> AppResult<Response> {
    let outcome = email_links::verify_email(&state.pool, &query.token).await?;
    let message = match outcome {
        Verified::Address => "Thank you: your email address is confirmed.",
        Verified::Changed => {
            "Your email address is changed and confirmed. We told the old address."
        }
        Verified::BadLink => {
            "That confirmation link cannot be used: it was used already, has expired (links last \
             24 hours), or is not complete. Ask for a new one on your account page."
        }
        Verified::Taken => "Another account uses that address now, so yours was not changed.",
    };
    session::flash(&visitor.session, message).await?;
    let to = if visitor.user.is_some() {
        "/account"
    } else {
        "/signin"
    };
    Ok(Redirect::to(to).into_response())
}

async fn resend_verification(
    State(state): State<AppState>,
    current: CurrentUser,
) -> AppResult<Response> {
    if current.user.is_verified() {
        return Ok(Redirect::to("/account").into_response());
    }
    let message = match email_links::resend_verification(
        &state.pool,
        &state.config.public_url,
        &current.user,
    )
    .await?
    {
        Ok(()) => format!(
            "We have mailed a new confirmation link to {}.",
            current.user.email
        ),
        Err(wait) => format!(
            "We have sent several links already. Please wait {} minutes and check your spam folder.",
            (wait + 59) / 60
        ),
    };
    session::flash(&current.session, message).await?;
    Ok(Redirect::to("/account").into_response())
}

#[derive(Deserialize)]
struct ChangeEmailForm {
    new_email: String,
    password: String,
}

/// Starts an email change: the new address gets a link; the switch happens when it is followed.
async fn change_email(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<ChangeEmailForm>,
) -> AppResult<Response> {
    let outcome = email_links::request_email_change(
        &state.pool,
        &state.passwords,
        &state.config.public_url,
        &current.user,
        &form.password,
        &form.new_email,
    )
    .await?;
    let mut page = account_page(&state, &current, None, None).await?;
    match outcome {
        Ok(new_email) => {
            tracing::info!(user.id = %current.user.app_user_id, "email change started");
            session::flash(
                &current.session,
                format!(
                    "We have mailed a link to {new_email}. Your address changes when you follow it."
                ),
            )
            .await?;
            return Ok(Redirect::to("/account").into_response());
        }
        Err(EmailChangeRefused::WrongPassword) => {
            page.email_password_error = Some("That is not your password.".into());
        }
        Err(EmailChangeRefused::BadEmail(why)) => page.email_error = Some(why),
    }
    page.new_email = form.new_email;
    html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Deserialize)]
struct RemindersForm {
    /// Present (a checked box) to get reminders.
    expiry_reminders: Option<String>,
}

/// Key-expiry reminders on or off (security notices cannot be turned off).
async fn set_reminders(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<RemindersForm>,
) -> AppResult<Response> {
    let wanted = form.expiry_reminders.is_some();
    accounts::set_expiry_reminders(&state.pool, &current.user, wanted).await?;
    let message = if wanted {
        "You will get key-expiry reminders."
    } else {
        "You will no longer get key-expiry reminders. Security notices still come."
    };
    session::flash(&current.session, message).await?;
    Ok(Redirect::to("/account").into_response())
}
