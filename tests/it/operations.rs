//! `/healthz`, `/readyz`, static assets.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::TestApp;

#[sqlx::test]
async fn healthz_and_readyz_answer_while_the_database_is_up(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.client();
    let alive = app.get(&client, "/healthz").await;
    assert_eq!(alive.status(), StatusCode::OK);
    assert_eq!(
        alive.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    let ready = app.get(&client, "/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
}

#[sqlx::test]
async fn readyz_fails_when_the_database_cannot_answer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.pool.close().await;
    let client = app.client();
    let ready = app.get(&client, "/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    // Still alive: the process itself is fine.
    assert_eq!(app.get(&client, "/healthz").await.status(), StatusCode::OK);
}

#[sqlx::test]
async fn assets_are_served_under_hashed_names_and_cached(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.client();
    let html = app.get_html(&client, "/").await;
    let start = html.find("/static/app.").unwrap();
    let end = html[start..].find('"').unwrap() + start;
    let css = app.get(&client, &html[start..end]).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(
        app.get(&client, "/static/app.000000000000.css")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
