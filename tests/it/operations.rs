//! `/healthz`, `/readyz`, static assets.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::{PASSWORD, TestApp};
use crate::support::binary::Binary;
use crate::support::clusters::Cluster;

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
    assert_eq!(
        ready.headers()["retry-after"],
        gatehouse::error::RETRY_AFTER_SECONDS.to_string()
    );
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

#[sqlx::test]
async fn every_page_names_the_icon_and_browsers_asking_for_favicon_ico_get_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = app.client();
    let html = app.get_html(&client, "/signin").await;
    assert!(html.contains(r#"<link rel="icon" href="/favicon.svg" type="image/svg+xml">"#));
    for path in ["/favicon.svg", "/favicon.ico"] {
        let icon = app.get(&client, path).await;
        assert_eq!(icon.status(), StatusCode::OK, "{path}");
        assert_eq!(icon.headers()["content-type"], "image/svg+xml");
        assert!(icon.text().await.unwrap().starts_with("<svg"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_pages_answer_503_within_2_seconds_and_never_a_signed_in_page() {
    let cluster = Cluster::start_new();
    let pool = cluster.production_pool().await;
    let app = TestApp::spawn(pool).await;
    let ada = app.signed_in_user("ada@example.com", "Ada Lovelace").await;
    assert!(app.get_html(&ada, "/").await.contains("Ada Lovelace"));
    let visitor = app.client();
    let token = app.csrf_token(&visitor, "/signin").await;

    cluster.stop();
    for attempt in 0..2 {
        let requests = [
            ("home", ada.get(app.url("/"))),
            ("account", ada.get(app.url("/account"))),
            ("tenant", ada.get(app.url("/t/acme/keys"))),
            ("sign-in page", visitor.get(app.url("/signin"))),
            (
                "sign-in",
                visitor.post(app.url("/signin")).form(&[
                    ("csrf_token", token.as_str()),
                    ("email", "ada@example.com"),
                    ("password", PASSWORD),
                ]),
            ),
        ];
        for (what, request) in requests {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "{what} took {took:?} (attempt {attempt})"
            );
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
            assert_eq!(
                response.headers()["retry-after"],
                gatehouse::error::RETRY_AFTER_SECONDS.to_string(),
                "{what}"
            );
            let page = response.text().await.unwrap();
            assert!(page.contains("cannot answer right now"), "{what}: {page}");
            assert!(
                !page.contains("Ada Lovelace"),
                "{what} shows a signed-in page"
            );
        }
    }
}

#[sqlx::test]
async fn logs_carry_no_colour_codes_off_a_terminal_no_migration_notices_and_can_be_json(
    pool: PgPool,
) {
    // The second start finds every migration and the session table in place.
    Binary::start(&pool, &[]).await.stop().await;
    let again = Binary::start(&pool, &[]).await;
    assert_eq!(
        again
            .app
            .get(&again.app.client(), "/healthz")
            .await
            .status(),
        StatusCode::OK
    );
    let logs = again.stop().await;
    assert!(
        logs.contains("Gatehouse is serving"),
        "the log was captured: {logs}"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in a log file: {logs}"
    );
    assert!(
        !logs.contains("already exists") && !logs.contains("skipping"),
        "notices at start: {logs}"
    );

    let json = Binary::start(&pool, &[("GATEHOUSE_LOG_FORMAT", "json")]).await;
    assert_eq!(
        json.app.get(&json.app.client(), "/healthz").await.status(),
        StatusCode::OK
    );
    let logs = json.stop().await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["fields"]["message"] == "Gatehouse is serving"),
        "{logs}"
    );
}
