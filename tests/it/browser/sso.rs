//! Single sign-on walked in real headless Chromium against the real `oidc-provider`, with a
//! screenshot of every page.

use std::time::Duration;

use fantoccini::Locator;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::identity_providers::{DISPLAY_NAME, app_with_provider};

/// On the provider's pages: signs in as `login` and consents when asked, until the browser is
/// back on Gatehouse. `shot` names the screenshots of the provider's pages.
async fn sign_in_at_provider(chrome: &Chrome, app: &TestApp, login: &str, shot: &str) {
    for _ in 0..50 {
        let url = chrome.client.current_url().await.unwrap();
        if url.as_str().starts_with(&app.base) {
            return;
        }
        let on_login = chrome
            .client
            .find(Locator::Css("input[name=login]"))
            .await
            .is_ok();
        let on_consent = !on_login
            && chrome
                .client
                .find(Locator::Css("input[name=prompt][value=consent]"))
                .await
                .is_ok();
        if on_login {
            chrome.fill("input[name=login]", login).await;
            chrome.fill("input[name=password]", "any password").await;
            chrome.screenshot(&format!("{shot}-provider-login")).await;
        } else if on_consent {
            chrome.screenshot(&format!("{shot}-provider-consent")).await;
        }
        if on_login || on_consent {
            chrome.click("button[type=submit]").await;
            // Wait for the next page before looking again.
            for _ in 0..50 {
                if chrome.client.current_url().await.unwrap() != url {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("the provider never sent the browser back to Gatehouse");
}

async fn users(app: &TestApp) -> i64 {
    app.count("app_user").await
}

#[sqlx::test]
async fn a_person_signs_in_with_sso_signs_out_everywhere_and_comes_back(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    let chrome = Chrome::start().await;

    chrome.goto(&app.url("/signin")).await;
    chrome
        .expect_text("main", &format!("Sign in with {DISPLAY_NAME}"))
        .await;
    chrome.screenshot("sso-01-signin").await;

    // New user.
    chrome.click("a[href='/auth/oidc/corp']").await;
    sign_in_at_provider(&chrome, &app, "ada", "sso-02").await;
    chrome.expect_text("h1", "Welcome, Ada").await;
    chrome.expect_text(".flash", "Your account is ready").await;
    chrome.screenshot("sso-03-home-new-user").await;

    chrome.click("nav a[href='/account']").await;
    chrome.expect_text("h1", "Your account").await;
    chrome.expect_text("#identities", DISPLAY_NAME).await;
    chrome
        .expect_text("#identities", "This is how you sign in")
        .await;
    chrome.screenshot("sso-04-account").await;

    // Sign-out ends the session here and, through the provider's own page, there.
    chrome.click("header form button").await;
    chrome.expect_text("body", "Do you want to sign-out").await;
    chrome.screenshot("sso-05-provider-sign-out").await;
    chrome.click("button[name=logout]").await;
    chrome.expect_text("h1", "Sign in").await;
    assert_eq!(chrome.path().await, "/signin");
    chrome.goto(&app.url("/account")).await;
    chrome.expect_text("h1", "Sign in").await;

    // Returning user: the provider asks again (its session ended too), same account, and the
    // page asked for before signing in.
    chrome
        .click("a[href='/auth/oidc/corp?next=%2Faccount']")
        .await;
    chrome.expect_text("body", "Sign-in").await;
    sign_in_at_provider(&chrome, &app, "ada", "sso-06").await;
    chrome.expect_text("h1", "Your account").await;
    assert_eq!(chrome.path().await, "/account");
    chrome.screenshot("sso-07-account-returning-user").await;
    let flash = chrome.client.find(Locator::Css(".flash")).await;
    assert!(flash.is_err(), "a returning user gets no welcome");
    assert_eq!(users(&app).await, 1);

    chrome.close().await;
}

#[sqlx::test]
async fn a_password_user_links_the_provider_with_their_password_in_a_browser(pool: PgPool) {
    let (app, _provider) = app_with_provider(pool).await;
    app.signed_in_user("ada@example.test", "Ada Lovelace").await;
    let chrome = Chrome::start().await;

    chrome.goto(&app.url("/account")).await;
    chrome.expect_text("h1", "Sign in").await;
    chrome.click("a[href^='/auth/oidc/corp']").await;
    sign_in_at_provider(&chrome, &app, "ada", "sso-link-01").await;
    chrome
        .expect_text("h1", &format!("Link {DISPLAY_NAME} to your account"))
        .await;
    chrome.screenshot("sso-link-02-link-page").await;

    chrome.fill("#password", "not the password at all").await;
    chrome.click("main form button[type=submit]").await;
    chrome
        .expect_text(".alert", "That is not the password of this account.")
        .await;
    chrome.screenshot("sso-link-03-wrong-password").await;

    chrome.fill("#password", PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text("h1", "Your account").await;
    chrome
        .expect_text(".flash", "is now linked to your account")
        .await;
    chrome.expect_text("#identities", DISPLAY_NAME).await;
    chrome.screenshot("sso-link-04-linked").await;

    chrome.click("#identities button").await;
    chrome.expect_text(".flash", "is no longer linked").await;
    chrome.screenshot("sso-link-05-unlinked").await;
    assert_eq!(users(&app).await, 1);

    chrome.close().await;
}
