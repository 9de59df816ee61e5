//! `/auth/oidc/link`: linking a provider to an account that signs in with a password.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::{assert_signed_out, users};
use crate::support::app::{PASSWORD, assert_redirect};
use crate::support::identity_providers::{DISPLAY_NAME, app_with_provider, sso_sign_in, start_sso};

#[sqlx::test]
async fn a_password_account_is_linked_only_with_its_password(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    app.signed_in_user("ada@example.test", "Ada Lovelace").await;
    let client = app.client();
    let authorize = start_sso(&app, &client, "/auth/oidc/corp?next=%2Faccount").await;
    let callback = provider
        .authorize(&client, &authorize, "ada", &app.base)
        .await;
    let response = client.get(callback).send().await.unwrap();
    assert_redirect(&response, "/auth/oidc/link");
    // Not signed in until the password is given.
    assert_signed_out(&app, &client).await;
    let page = app.get_html(&client, "/auth/oidc/link").await;
    assert!(page.contains(&format!("Link {DISPLAY_NAME} to your account")));
    assert!(page.contains("ada@example.test"));

    let wrong = app
        .submit(
            &client,
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", "not the right password")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("That is not the password of this account.")
    );
    assert_signed_out(&app, &client).await;

    let right = app
        .submit(
            &client,
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", PASSWORD)],
        )
        .await;
    assert_redirect(&right, "/account");
    let account = app.get_html(&client, "/account").await;
    assert!(account.contains("is now linked to your account"));
    assert!(account.contains("Unlink"));
    assert_eq!(users(&app).await, 1);

    // Asked once: the next SSO sign-in goes straight in.
    let (again, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_redirect(&response, "/");
    assert_eq!(app.get(&again, "/account").await.status(), StatusCode::OK);
}

#[sqlx::test]
async fn a_provider_verified_email_takes_the_address_from_an_unverified_password_account(
    pool: PgPool,
) {
    let (app, provider) = app_with_provider(pool).await;
    // A squatter signed up with Ada's address before she did, and never confirmed it.
    let squatter = app
        .signed_in_unverified_user("ada@example.test", "IT Support")
        .await;
    let (ada, response) = sso_sign_in(&app, &provider, "ada").await;
    assert!(response.status().is_redirection());
    assert_ne!(
        crate::support::app::location(&response),
        "/auth/oidc/link",
        "not asked for the squatter's password"
    );
    let account = app.get_html(&ada, "/account").await;
    assert!(account.contains("its password no longer works"));
    assert!(account.contains(">verified<") && !account.contains("IT Support"));
    // The squatter's session and password are gone.
    assert_signed_out(&app, &squatter).await;
    let old = app
        .sign_in(&app.client(), "ada@example.test", PASSWORD)
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(users(&app).await, 1);
}

#[sqlx::test]
async fn linking_a_provider_mails_the_account_a_notice(pool: PgPool) {
    let sink = crate::support::smtp::MailSink::start();
    let smtp = sink.url();
    let (app, provider) =
        crate::support::identity_providers::app_with_provider_adjusted(pool, |config| {
            config.smtp_url = Some(secrecy::SecretString::from(smtp));
        })
        .await;
    // A verified password account (unlike the pre-hijacking case) is linked with its password.
    app.signed_in_user("ada@example.test", "Ada Lovelace").await;
    let (client, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_redirect(&response, "/auth/oidc/link");
    let linked = app
        .submit(
            &client,
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", PASSWORD)],
        )
        .await;
    assert!(linked.status().is_redirection());
    let notice = sink
        .mail("ada@example.test", &format!("{DISPLAY_NAME} was linked"))
        .await;
    assert!(notice.text.contains(&app.url("/account#identities")));
}
