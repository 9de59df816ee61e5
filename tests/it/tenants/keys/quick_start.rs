//! The quick start: a new tenant's overview leads to the first key; every key page says how to
//! call the platform with it; "Test this key" asks the key API and says the verdict in words.

use reqwest::Client;
use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::{TestApp, field_value};
use crate::support::fixtures::{World, create_key, revealed, submit_key};

/// Posts the test form of key `id` with `key` in it, and loads the page it redirects to (Post/
/// Redirect/Get: the verdict is on the key's page, and a reload posts nothing again).
async fn test_key(app: &TestApp, client: &Client, id: Uuid, key: &str) -> reqwest::Response {
    let page = format!("/t/acme/keys/{id}");
    let posted = app
        .submit(client, &page, &format!("{page}/test"), &[("key", key)])
        .await;
    follow(app, client, posted).await
}

/// The page a test's 303 leads to.
async fn follow(app: &TestApp, client: &Client, posted: reqwest::Response) -> reqwest::Response {
    assert_eq!(
        posted.status(),
        StatusCode::SEE_OTHER,
        "a test answers with a redirect"
    );
    let location = posted.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("#test-result"), "{location}");
    app.get(client, &location).await
}

/// The reveal page of a new full-access test key `CI` made by `client` in acme.
async fn reveal_page(app: &TestApp, client: &Client) -> String {
    let fields = [
        ("name", "CI"),
        ("environment", "test"),
        ("access", "full"),
        ("expiry", "never"),
    ];
    let response = submit_key(app, client, "acme", &fields).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Verifications of `key` counted with `outcome` once the meter has flushed (waits up to 10 s).
async fn counted(pool: &PgPool, key: Uuid, outcome: &str) -> i64 {
    for _ in 0..50 {
        let count: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(count), 0)::bigint FROM key_usage_minute
             WHERE api_key_id = $1 AND outcome = $2",
        )
        .bind(key)
        .bind(outcome)
        .fetch_one(pool)
        .await
        .unwrap();
        if count > 0 {
            return count;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    0
}

#[sqlx::test]
async fn a_new_tenants_overview_leads_to_the_first_key_and_stops_once_there_is_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let overview = app.get_html(&world.admin, "/t/acme").await;
    assert!(overview.contains("Make your first API key"));
    assert!(overview.contains(r#"href="/t/acme/keys/new">Create your first key"#));
    // A viewer cannot create keys: the card says whom to ask instead of offering a button.
    let for_viewer = app.get_html(&world.viewer, "/t/acme").await;
    assert!(for_viewer.contains("Make your first API key"));
    assert!(!for_viewer.contains("Create your first key"));
    assert!(for_viewer.contains("ask a developer or admin"));

    create_key(&app, &world.admin, "acme", "First", "test").await;
    let overview = app.get_html(&world.admin, "/t/acme").await;
    assert!(!overview.contains("Make your first API key"));
}

#[sqlx::test]
async fn key_pages_show_the_header_this_deployment_reads_and_a_curl_line_against_the_api(
    pool: PgPool,
) {
    let app = TestApp::spawn_with(
        pool,
        &[
            ("GATEHOUSE_API_BASE_URL", "https://api.example.com/v1/"),
            ("GATEHOUSE_KEY_HEADERS", "X-Api-Key,Authorization"),
        ],
        |_| {},
    )
    .await;
    let world = World::build(&app).await;
    let reveal = reveal_page(&app, &world.admin).await;
    let curl = r#"curl -H "X-Api-Key: $API_KEY" https://api.example.com/v1/"#;
    let escaped = curl.replace('"', "&#34;");
    assert!(
        reveal.contains(&escaped) || reveal.contains(curl),
        "{reveal}"
    );
    assert!(!reveal.contains("YOUR-API-HOST"));
    let id = crate::support::fixtures::key_link(&reveal, "acme").unwrap();
    let page = app
        .get_html(&world.viewer, &format!("/t/acme/keys/{id}"))
        .await;
    assert!(page.contains(&escaped) || page.contains(curl));
    assert!(page.contains("Test this key"));
}

#[sqlx::test]
async fn without_an_api_base_url_the_curl_line_holds_a_marked_placeholder(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, id) = create_key(&app, &world.admin, "acme", "CI", "test").await;
    let page = app
        .get_html(&world.admin, &format!("/t/acme/keys/{id}"))
        .await;
    assert!(page.contains("https://YOUR-API-HOST/"));
    assert!(page.contains("Placeholder:") && page.contains("GATEHOUSE_API_BASE_URL"));
    // The default header list reads Authorization first, as a bearer token.
    assert!(page.contains("Authorization: Bearer $API_KEY"));
}

#[sqlx::test]
async fn testing_a_key_from_its_reveal_page_says_it_is_accepted_and_counts_as_a_call(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let reveal = reveal_page(&app, &world.developer).await;
    let secret = revealed(&reveal).unwrap();
    let id = crate::support::fixtures::key_link(&reveal, "acme").unwrap();
    // The reveal page's form carries the key itself, with the page's CSRF token.
    assert_eq!(
        field_value(&reveal, "key").as_deref(),
        Some(secret.as_str())
    );
    let token = field_value(&reveal, "csrf_token").unwrap();
    let tested = world
        .developer
        .post(app.url(&format!("/t/acme/keys/{id}/test")))
        .form(&[("csrf_token", token.as_str()), ("key", secret.as_str())])
        .send()
        .await
        .unwrap();
    let tested = follow(&app, &world.developer, tested).await;
    assert_eq!(tested.status(), StatusCode::OK);
    assert_eq!(tested.headers()["cache-control"], "no-store");
    let html = tested.text().await.unwrap();
    assert!(html.contains("Accepted.") && html.contains("answered VALID"));
    // The key is never shown back, only masked.
    assert!(!html.contains(&secret[8..]));
    assert!(html.contains(&format!("ak_test_••••{}", &secret[secret.len() - 4..])));
    // Reloading the page asks nothing again and shows no stale verdict.
    let again = app
        .get_html(&world.developer, &format!("/t/acme/keys/{id}"))
        .await;
    assert!(!again.contains("Accepted."));
    assert_eq!(counted(&app.pool, id, "VALID").await, 1);
}

#[sqlx::test]
async fn a_pasted_revoked_key_is_refused_in_words(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (secret, id) = create_key(&app, &world.admin, "acme", "Old", "live").await;
    let revoke = format!("/t/acme/keys/{id}/revoke");
    let response = app.submit(&world.admin, &revoke, &revoke, &[]).await;
    assert!(response.status().is_redirection() || response.status().is_success());

    let tested = test_key(&app, &world.viewer, id, &format!("  {secret}\n")).await;
    assert_eq!(tested.status(), StatusCode::OK);
    let html = tested.text().await.unwrap();
    assert!(
        html.contains("Refused.") && html.contains("answered REVOKED"),
        "{html}"
    );
    assert!(html.contains("The API key has been revoked."));
    assert!(!html.contains(&secret[8..]));
    assert_eq!(counted(&app.pool, id, "REVOKED").await, 1);
}

#[sqlx::test]
async fn only_the_pages_own_key_is_judged_and_nothing_else_is_counted(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let (_, id) = create_key(&app, &world.admin, "acme", "This", "test").await;
    let (other, other_id) = create_key(&app, &world.admin, "acme", "Other", "test").await;

    let html = test_key(&app, &world.admin, id, &other).await;
    assert_eq!(html.status(), StatusCode::OK);
    let html = html.text().await.unwrap();
    assert!(html.contains("A different key.") && html.contains("That is not this key"));
    assert!(!html.contains(&other[8..]));

    let html = test_key(&app, &world.admin, id, "hello").await;
    assert_eq!(html.status(), StatusCode::OK);
    assert!(
        html.text()
            .await
            .unwrap()
            .contains("is not an API key of this service")
    );

    let html = test_key(&app, &world.admin, id, "   ").await;
    assert_eq!(html.status(), StatusCode::OK);
    assert!(html.text().await.unwrap().contains("Paste the key"));

    // Another tenant's member cannot reach the form at all.
    let token = app.csrf_token(&world.outsider, "/account").await;
    let outsider = world
        .outsider
        .post(app.url(&format!("/t/acme/keys/{id}/test")))
        .form(&[("csrf_token", token.as_str()), ("key", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(outsider.status(), StatusCode::NOT_FOUND);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let all: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(count), 0)::bigint FROM key_usage_minute")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(all, 0, "{other_id}");
}
