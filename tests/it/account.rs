//! `/account`, `/account/password` and `/account/identities/{id}/unlink`.

use reqwest::{Client, Response, StatusCode};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{PASSWORD, TestApp, assert_redirect, location};
use crate::support::identity_providers::{DISPLAY_NAME, app_with_provider, sso_sign_in};

const NEW_PASSWORD: &str = "a different and longer passphrase";

/// Posts the change-password form of the account page.
async fn change_password(app: &TestApp, client: &Client, current: &str, new: &str) -> Response {
    app.submit(
        client,
        "/account",
        "/account/password",
        &[("current_password", current), ("new_password", new)],
    )
    .await
}

#[sqlx::test]
async fn the_account_page_needs_a_sign_in(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app.get(&app.client(), "/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/signin"));
}

#[sqlx::test]
async fn changing_the_password_needs_the_current_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = change_password(&app, &client, "not my password at all", NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("That is not your current password.")
    );
    // Nothing changed: the old password still signs in.
    let response = app
        .sign_in(&app.client(), "ada@example.com", PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn a_new_password_must_meet_the_policy(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = change_password(&app, &client, PASSWORD, "qwertyuiopasdfgh").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("too easy to guess"));
}

#[sqlx::test]
async fn changing_the_password_ends_every_other_session(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let laptop = app.signed_in_user("ada@example.com", "Ada").await;
    let phone = app.client();
    assert_eq!(
        app.sign_in(&phone, "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.get(&phone, "/account").await.status(), StatusCode::OK);

    let response = change_password(&app, &laptop, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // The session that changed it stays signed in and says what happened.
    let page = app.get(&laptop, "/account").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Every other session of yours has been signed out")
    );
    // The other one is signed out on its very next request.
    let response = app.get(&phone, "/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Old password refused, new one accepted.
    let fresh = app.client();
    assert_eq!(
        app.sign_in(&fresh, "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in(&fresh, "ada@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

/// The id of the one linked identity.
async fn the_identity(app: &TestApp) -> Uuid {
    sqlx::query_scalar("SELECT user_identity_id FROM user_identity")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Unlinks an identity through the account page.
async fn unlink(app: &TestApp, client: &Client, id: Uuid) -> Response {
    app.submit(
        client,
        "/account",
        &format!("/account/identities/{id}/unlink"),
        &[],
    )
    .await
}

#[sqlx::test]
async fn a_user_with_a_password_may_unlink_an_identity(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    app.signed_in_user("ada@example.test", "Ada").await;
    let (client, _) = sso_sign_in(&app, &provider, "ada").await;
    let linked = app
        .submit(
            &client,
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(linked.status(), StatusCode::SEE_OTHER);
    let id = the_identity(&app).await;
    let response = unlink(&app, &client, id).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let account = app.get_html(&client, "/account").await;
    assert!(account.contains(&format!(
        "{DISPLAY_NAME} is no longer linked to your account."
    )));
    assert!(account.contains("No identity provider is linked"));
    // Signing in through the provider asks for the password again.
    let (_, response) = sso_sign_in(&app, &provider, "ada").await;
    assert_redirect(&response, "/auth/oidc/link");
}

#[sqlx::test]
async fn an_sso_only_user_cannot_unlink_the_only_way_in(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    let (client, _) = sso_sign_in(&app, &provider, "ada").await;
    let page = app.get_html(&client, "/account").await;
    assert!(!page.contains("Unlink"));
    assert!(page.contains("cannot be unlinked"));
    let id = the_identity(&app).await;
    let response = unlink(&app, &client, id).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let identities: i64 = app.count("user_identity").await;
    assert_eq!(identities, 1);
}

#[sqlx::test]
async fn another_users_identity_cannot_be_unlinked(pool: PgPool) {
    let (app, provider) = app_with_provider(pool).await;
    sso_sign_in(&app, &provider, "ada").await;
    let id = the_identity(&app).await;
    let mallory = app.signed_in_user("mallory@example.com", "Mallory").await;
    let response = unlink(&app, &mallory, id).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// Sends the account page's profile form.
async fn save_profile(app: &TestApp, client: &Client, name: &str, zone: &str) -> Response {
    let fields = [("display_name", name), ("time_zone", zone)];
    app.submit(client, "/account", "/account/profile", &fields)
        .await
}

#[sqlx::test]
async fn a_person_changes_their_display_name_and_time_zone(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let page = app.get_html(&client, "/account").await;
    assert!(page.contains(r#"<option value="UTC" selected>"#));

    let response = save_profile(&app, &client, " Ada Lovelace ", "Europe/London").await;
    assert_redirect(&response, "/account");
    let page = app.get_html(&client, "/account").await;
    assert!(page.contains("Your profile is saved."));
    assert!(page.contains(r#"value="Ada Lovelace""#));
    assert!(page.contains(r#"<option value="Europe/London" selected>"#));
}

#[sqlx::test]
async fn an_unknown_time_zone_or_empty_name_is_refused_and_nothing_changes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.signed_in_user("ada@example.com", "Ada").await;
    let response = save_profile(&app, &client, "Ada L.", "Mars/Olympus_Mons").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Choose a time zone from the list.") && page.contains(r#"value="Ada L.""#)
    );

    let response = save_profile(&app, &client, "   ", "Asia/Tokyo").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Enter a display name.")
    );

    let (name, zone): (String, String) =
        sqlx::query_as("SELECT display_name, time_zone FROM app_user")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((name.as_str(), zone.as_str()), ("Ada", "UTC"));
}

mod verification {
    //! `/account/verify` and `/account/verify/resend`: proving the address, and what an unproven
    //! one may not do.

    use reqwest::StatusCode;
    use sqlx::PgPool;

    use crate::support::app::{PASSWORD, TestApp, location};
    use crate::support::fixtures::{TenantAdmin, accept, invite, submit_key};
    use crate::support::smtp::MailSink;

    async fn app_with_mail(pool: PgPool, sink: &MailSink) -> TestApp {
        TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await
    }

    #[sqlx::test]
    async fn the_mailed_link_confirms_the_address_once(pool: PgPool) {
        let sink = MailSink::start();
        let app = app_with_mail(pool, &sink).await;
        let client = app
            .signed_in_unverified_user("ada@example.com", "Ada")
            .await;
        let page = app.get_html(&client, "/account").await;
        assert!(page.contains("unverified") && page.contains("Send the link again"));

        let mail = sink
            .mail("ada@example.com", "Confirm your email address")
            .await;
        let link = mail.link(&app.url("/account/verify?token="));
        let path = &link[app.base.len()..];
        let response = app.get(&client, path).await;
        assert_eq!(location(&response), "/account");
        let page = app.get_html(&client, "/account").await;
        assert!(page.contains("your email address is confirmed"));
        assert!(page.contains(">verified<") && !page.contains("Send the link again"));

        // Once only; also without a session.
        let stranger = app.client();
        let response = app.get(&stranger, path).await;
        assert_eq!(location(&response), "/signin");
        let page = app.get_html(&stranger, "/signin").await;
        assert!(page.contains("cannot be used"));
    }

    #[sqlx::test]
    async fn sending_the_link_again_is_throttled(pool: PgPool) {
        let sink = MailSink::start();
        let app = app_with_mail(pool, &sink).await;
        let client = app
            .signed_in_unverified_user("ada@example.com", "Ada")
            .await;
        for _ in 0..3 {
            let response = app
                .submit(&client, "/account", "/account/verify/resend", &[])
                .await;
            assert_eq!(location(&response), "/account");
            assert!(
                app.get_html(&client, "/account")
                    .await
                    .contains("We have mailed a new")
            );
        }
        app.submit(&client, "/account", "/account/verify/resend", &[])
            .await;
        assert!(
            app.get_html(&client, "/account")
                .await
                .contains("Please wait")
        );
        sink.wait_for("ada@example.com", 4).await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(
            sink.received().len(),
            4,
            "the sign-up's mail and three more"
        );
    }

    #[sqlx::test]
    async fn an_unverified_account_creates_test_keys_but_not_live_ones(pool: PgPool) {
        let sink = MailSink::start();
        let app = app_with_mail(pool, &sink).await;
        let admin = TenantAdmin::acme(&app).await;
        sqlx::query("UPDATE app_user SET email_verified_at = NULL")
            .execute(&app.pool)
            .await
            .unwrap();
        let fields = |environment| {
            [
                ("name", "ci"),
                ("environment", environment),
                ("scopes", "read"),
                ("expiry", "never"),
            ]
        };
        let live = submit_key(&app, &admin.client, "acme", &fields("live")).await;
        assert_eq!(live.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            live.text()
                .await
                .unwrap()
                .contains("Live keys need a confirmed email address")
        );
        assert_eq!(app.count("api_key").await, 0);
        let test = submit_key(&app, &admin.client, "acme", &fields("test")).await;
        assert_eq!(test.status(), StatusCode::OK);
        assert_eq!(app.count("api_key").await, 1);
    }

    #[sqlx::test]
    async fn an_unverified_account_cannot_accept_an_invitation(pool: PgPool) {
        let sink = MailSink::start();
        let app = app_with_mail(pool, &sink).await;
        let admin = TenantAdmin::acme(&app).await;
        let link = invite(&app, &admin.client, "acme", "bob@example.com", "developer").await;
        let bob = app
            .signed_in_unverified_user("bob@example.com", "Bob")
            .await;
        let page = app.get_html(&bob, &link).await;
        assert!(page.contains("Confirm your email address first"));
        let response = accept(&app, &bob, &link).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let members: i64 = sqlx::query_scalar("SELECT count(*) FROM membership")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(members, 1, "only the admin");

        let mail = sink.mail("bob@example.com", "Confirm your email").await;
        let confirm = mail.link(&app.url("/account/verify?token="));
        app.get(&bob, &confirm[app.base.len()..]).await;
        assert_eq!(
            accept(&app, &bob, &link).await.status(),
            StatusCode::SEE_OTHER
        );
    }

    #[sqlx::test]
    async fn an_email_change_needs_the_password_and_switches_only_when_the_new_address_confirms(
        pool: PgPool,
    ) {
        let sink = MailSink::start();
        let app = app_with_mail(pool, &sink).await;
        let client = app.signed_in_user("ada@example.com", "Ada").await;
        let change = |password: &'static str, email: &'static str| {
            let (app, client) = (&app, &client);
            async move {
                app.submit(
                    client,
                    "/account",
                    "/account/email",
                    &[("new_email", email), ("password", password)],
                )
                .await
            }
        };
        let wrong = change("not my password at all", "ada@new.example").await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = wrong.text().await.unwrap();
        assert!(page.contains("That is not your password") && page.contains("ada@new.example"));
        let bad = change(PASSWORD, "not-an-address").await;
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

        let started = change(PASSWORD, "Ada@New.Example").await;
        assert_eq!(location(&started), "/account");
        // Nothing switches yet.
        assert!(
            app.get_html(&client, "/account")
                .await
                .contains("ada@example.com")
        );
        let mail = sink
            .mail("ada@new.example", "Confirm your email address")
            .await;
        let link = mail.link(&app.url("/account/verify?token="));
        app.get(&client, &link[app.base.len()..]).await;
        let page = app.get_html(&client, "/account").await;
        assert!(page.contains("Your email address is changed"), "{page}");
        assert!(page.contains("ada@new.example"));
        let notice = sink
            .mail("ada@example.com", "email address was changed")
            .await;
        assert!(notice.text.contains("ada@new.example"));
        let signed_in = app
            .sign_in(&app.client(), "ada@new.example", PASSWORD)
            .await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    }

    #[sqlx::test]
    async fn an_email_change_to_an_address_taken_meanwhile_is_refused(pool: PgPool) {
        let sink = MailSink::start();
        let app = app_with_mail(pool, &sink).await;
        let client = app.signed_in_user("ada@example.com", "Ada").await;
        app.submit(
            &client,
            "/account",
            "/account/email",
            &[("new_email", "bob@example.com"), ("password", PASSWORD)],
        )
        .await;
        let mail = sink.mail("bob@example.com", "Confirm your email").await;
        app.signed_in_user("bob@example.com", "Bob").await;
        let link = mail.link(&app.url("/account/verify?token="));
        app.get(&client, &link[app.base.len()..]).await;
        let page = app.get_html(&client, "/account").await;
        assert!(page.contains("Another account uses that address"));
        assert!(page.contains("ada@example.com"));
    }

    #[sqlx::test]
    async fn changing_the_password_mails_a_notice(pool: PgPool) {
        let sink = MailSink::start();
        let app = app_with_mail(pool, &sink).await;
        let client = app.signed_in_user("ada@example.com", "Ada").await;
        let response = app
            .submit(
                &client,
                "/account",
                "/account/password",
                &[
                    ("current_password", PASSWORD),
                    ("new_password", "another long passphrase here"),
                ],
            )
            .await;
        assert_eq!(location(&response), "/account");
        let notice = sink.mail("ada@example.com", "password was changed").await;
        assert!(notice.text.contains(&app.url("/password/forgot")));
    }
}
