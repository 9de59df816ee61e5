//! ID tokens a real provider never issues, signed by the test issuer: each one refused at the
//! callback.

use reqwest::{Client, Response, StatusCode};
use sqlx::PgPool;

use super::{assert_token_refused, users};
use crate::support::app::{TestApp, location};
use crate::support::identity_providers::{Forgery, TestIssuer, provider_env, start_sso};

/// Runs one SSO sign-in against the test issuer with `forgery` in the ID token.
async fn sign_in_with_forged_token(pool: PgPool, forgery: Forgery) -> (TestApp, Client, Response) {
    let issuer = TestIssuer::start().await;
    issuer.forge(forgery);
    let env = provider_env(&issuer.issuer);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(pool, &env, |_| {}).await;
    let client = app.client();
    let authorize = start_sso(&app, &client, "/auth/oidc/corp").await;
    let callback = client.get(authorize).send().await.unwrap();
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    let response = client.get(location(&callback)).send().await.unwrap();
    // Keep the issuer alive until the callback has been answered.
    drop(issuer);
    (app, client, response)
}

async fn assert_forgery_refused(pool: PgPool, forgery: Forgery) {
    let (app, client, response) = sign_in_with_forged_token(pool, forgery).await;
    assert_token_refused(&app, &client, response).await;
    assert_eq!(users(&app).await, 0, "{forgery:?} created a user");
}

#[sqlx::test]
async fn the_test_issuers_honest_token_signs_in(pool: PgPool) {
    // The control: the refusals below are due to their forgeries alone.
    let (app, client, response) = sign_in_with_forged_token(pool, Forgery::Nothing).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&client, "/account").await.status(), StatusCode::OK);
    assert_eq!(users(&app).await, 1);
}

#[sqlx::test]
async fn a_token_for_another_audience_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongAudience).await;
}

#[sqlx::test]
async fn a_token_with_an_untrusted_extra_audience_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::ExtraAudience).await;
}

#[sqlx::test]
async fn a_token_authorized_for_another_party_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongAuthorizedParty).await;
}

#[sqlx::test]
async fn a_token_from_another_issuer_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongIssuer).await;
}

#[sqlx::test]
async fn an_expired_token_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::Expired).await;
}

#[sqlx::test]
async fn a_token_issued_in_the_future_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::IssuedInTheFuture).await;
}

#[sqlx::test]
async fn a_token_issued_long_ago_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::IssuedLongAgo).await;
}

#[sqlx::test]
async fn an_unsigned_alg_none_token_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::AlgNone).await;
}

#[sqlx::test]
async fn a_token_with_a_bad_signature_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::BadSignature).await;
}

#[sqlx::test]
async fn a_token_signed_with_an_unknown_key_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::UnknownKeyId).await;
}

#[sqlx::test]
async fn a_token_signed_with_the_client_secret_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::SignedWithClientSecret).await;
}

#[sqlx::test]
async fn a_token_without_the_nonce_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::MissingNonce).await;
}

#[sqlx::test]
async fn a_token_with_another_nonce_is_refused(pool: PgPool) {
    assert_forgery_refused(pool, Forgery::WrongNonce).await;
}
