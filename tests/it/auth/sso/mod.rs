//! `/auth/oidc/...`: single sign-on against the real `oidc-provider`, and against a test issuer
//! for the tokens a real provider never issues.

mod callback;
mod id_tokens;
mod link;
mod sign_out;
mod start;

use reqwest::{Client, Response, StatusCode, Url};

use crate::support::app::{TestApp, location};

async fn users(app: &TestApp) -> i64 {
    app.count("app_user").await
}

async fn assert_signed_out(app: &TestApp, client: &Client) {
    let response = app.get(client, "/account").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "no session may exist"
    );
    assert!(location(&response).starts_with("/signin"));
}

/// What a refused callback must look like: the status, the reason on the sign-in page, and no
/// session.
async fn assert_refused(
    app: &TestApp,
    client: &Client,
    response: Response,
    status: StatusCode,
    says: &str,
) {
    assert_eq!(response.status(), status);
    let page = response.text().await.unwrap();
    assert!(page.contains(says), "expected {says:?} in:\n{page}");
    assert!(page.contains("<h1>Sign in</h1>"));
    assert_signed_out(app, client).await;
}

fn with_query(url: &str, name: &str, value: Option<&str>) -> String {
    let mut url: Url = url.parse().unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (key, v) in &pairs {
            query.append_pair(key, v);
        }
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    url.to_string()
}

fn query_value(url: &str, name: &str) -> String {
    let url: Url = url.parse().unwrap();
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A callback refused for its state or flow: "start again", and no session.
async fn assert_told_to_start_again(app: &TestApp, client: &Client, response: Response) {
    assert_refused(app, client, response, StatusCode::BAD_REQUEST, START_AGAIN).await;
}

/// A callback whose ID token is refused: "could not be verified", and no session.
async fn assert_token_refused(app: &TestApp, client: &Client, response: Response) {
    assert_refused(
        app,
        client,
        response,
        StatusCode::FORBIDDEN,
        "could not be verified",
    )
    .await;
}

const START_AGAIN: &str = "This sign-in cannot be completed";
