//! Signing up, out and in, and changing the password (`/signup`, `/signin`, `/account`), in Chromium.

use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::browser::Chrome;
use crate::support::smtp::MailSink;

const NEW_PASSWORD: &str = "another long passphrase for ada";

#[sqlx::test]
async fn a_person_signs_up_signs_out_signs_in_and_changes_the_password(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let chrome = Chrome::start().await;

    chrome.goto(&app.url("/")).await;
    chrome
        .expect_text("h1", "API keys your developers can trust")
        .await;
    chrome.screenshot("01-landing").await;

    chrome.click("a[href='/signup'].button").await;
    chrome.expect_text("h1", "Create your account").await;
    // A mistake first: the page says what is wrong and keeps what was typed.
    chrome.fill("#email", "ada@example.com").await;
    chrome.fill("#display_name", "Ada Lovelace").await;
    chrome.fill("#password", "too short").await;
    chrome.click("main form button[type=submit]").await;
    chrome
        .expect_text("#password-error", "at least 15 characters")
        .await;
    chrome.screenshot("02-signup-error").await;

    chrome.fill("#password", PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text("h1", "Welcome, Ada Lovelace").await;
    chrome.expect_text(".flash", "Your account is ready").await;
    chrome.screenshot("03-home").await;

    chrome.click("header form button").await;
    chrome.expect_text("h1", "Sign in").await;
    chrome.screenshot("04-signin").await;

    chrome.fill("#email", "ada@example.com").await;
    chrome.fill("#password", "wrong password typed here").await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text(".alert", "do not match").await;
    chrome.screenshot("05-signin-error").await;

    chrome.fill("#password", PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text("h1", "Welcome, Ada Lovelace").await;

    chrome.click("nav a[href='/account']").await;
    chrome.expect_text("h1", "Your account").await;
    chrome.screenshot("06-account").await;

    chrome.fill("#current_password", PASSWORD).await;
    chrome.fill("#new_password", NEW_PASSWORD).await;
    chrome
        .click("form[action='/account/password'] button")
        .await;
    chrome.expect_text(".flash", "Password changed").await;
    chrome.screenshot("07-password-changed").await;

    chrome.click("header form button").await;
    chrome.expect_text("h1", "Sign in").await;
    assert_eq!(chrome.path().await, "/signin?signed_out=1");
    // The new password works; the old one is gone.
    chrome.fill("#email", "ada@example.com").await;
    chrome.fill("#password", NEW_PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text("h1", "Welcome, Ada Lovelace").await;

    chrome.goto(&app.url("/no/such/page")).await;
    chrome.expect_text("h1", "Not Found").await;
    chrome.screenshot("08-not-found").await;

    chrome.close().await;
}

#[sqlx::test]
async fn a_person_who_forgot_the_password_gets_back_in_by_mail(pool: PgPool) {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(pool, &[("GATEHOUSE_SMTP_URL", &sink.url())], |_| {}).await;
    app.signed_in_user("ada@example.com", "Ada Lovelace").await;
    let chrome = Chrome::start().await;

    chrome.goto(&app.url("/signin")).await;
    chrome.click("a[href='/password/forgot']").await;
    chrome.expect_text("h1", "Forgot your password?").await;
    chrome.screenshot("20-forgot").await;
    chrome.fill("#email", "ada@example.com").await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text(".flash", "If an account uses").await;
    chrome.screenshot("21-forgot-sent").await;

    let mail = sink
        .mail("ada@example.com", "Reset your Gatehouse password")
        .await;
    let link = mail.link(&app.url("/password/reset?token="));
    chrome.goto(&link).await;
    chrome.expect_text("h1", "Choose a new password").await;
    // The token left the address bar.
    assert_eq!(chrome.path().await, "/password/reset");
    chrome.fill("#new_password", "short").await;
    chrome.click("main form button[type=submit]").await;
    chrome
        .expect_text("#new_password-error", "at least 15 characters")
        .await;
    chrome.screenshot("22-reset-error").await;
    chrome.fill("#new_password", NEW_PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome
        .expect_text(".flash", "Your password was changed")
        .await;
    chrome.screenshot("23-reset-done").await;

    chrome.fill("#email", "ada@example.com").await;
    chrome.fill("#password", NEW_PASSWORD).await;
    chrome.click("main form button[type=submit]").await;
    chrome.expect_text("h1", "Welcome, Ada Lovelace").await;
    sink.mail("ada@example.com", "Your Gatehouse password was changed")
        .await;
    // The reset verified the address; the account page says so, wide and narrow.
    chrome.goto(&app.url("/account")).await;
    chrome.expect_text(".badge", "verified").await;
    chrome.screenshot("25-account-wide").await;
    chrome.resize(390, 1600).await;
    chrome.screenshot("26-account-narrow").await;
    chrome.goto(&app.url("/password/forgot")).await;
    chrome.screenshot("27-forgot-narrow").await;
    chrome.resize(1280, 900).await;

    // The link worked once.
    chrome.goto(&link).await;
    chrome.expect_text(".alert", "cannot be used").await;
    chrome.screenshot("24-reset-used").await;
    chrome.close().await;
}
