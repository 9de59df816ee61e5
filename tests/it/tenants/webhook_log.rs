//! `/t/{slug}/webhooks/{id}`: the delivery log shows the body each delivery sent, keeps only the
//! failed ones on request (across its pages), and a receiver URL's query string is for admins.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::webhooks::{post_action, register, wait_for_page, webhook_app};
use crate::support::fixtures::{TenantAdmin, World};
use crate::support::webhooks::Receiver;

/// The text of every `<pre class="response">` inside a `<details class="payload">`, unescaped.
fn bodies_shown(html: &str) -> Vec<String> {
    html.split(r#"<details class="payload">"#)
        .skip(1)
        .filter_map(|part| {
            let start = part.find(r#"<pre class="response" tabindex="0">"#)?
                + r#"<pre class="response" tabindex="0">"#.len();
            let end = part[start..].find("</pre>")? + start;
            Some(unescape(&part[start..end]))
        })
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// The `href` of the pager's link labelled `label` ("Older →", "← Newer").
fn pager_link(html: &str, label: &str) -> Option<String> {
    let end = html.find(&format!(r#"">{label}</a>"#))?;
    let start = html[..end].rfind(r#"href=""#)? + 6;
    Some(unescape(&html[start..end]))
}

#[sqlx::test]
async fn the_delivery_log_shows_the_json_body_that_was_sent(pool: PgPool) {
    let app = webhook_app(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let receiver = Receiver::start().await;
    let (id, _) = register(&app, &admin, &receiver.url, &[]).await;
    post_action(&app, &admin, id, "test").await;
    let delivery = receiver.event("webhook.test").await;
    let page = wait_for_page(&app, &admin, &format!("/t/acme/webhooks/{id}"), " ms</td>").await;
    assert!(page.contains("<summary>Body sent</summary>"), "{page}");
    let shown = bodies_shown(&page);
    assert_eq!(shown.len(), 1, "one body per delivery");
    // The same JSON the receiver got, pretty-printed.
    let parsed: Value = serde_json::from_str(&shown[0]).expect("the body shown is JSON");
    assert_eq!(parsed, delivery.json());
    assert!(
        shown[0].contains("\n  \"type\": \"webhook.test\""),
        "{}",
        shown[0]
    );
}

/// Puts `failed` failed attempts, then `ok` successful ones (the newest), into the endpoint's log.
async fn log_attempts(pool: &PgPool, endpoint: Uuid, failed: i32, ok: i32) {
    sqlx::query(
        "INSERT INTO webhook_event (webhook_event_id, tenant_id, event_type, payload)
         SELECT 'evt_log_' || n, tenant_id, 'webhook.test', jsonb_build_object('n', n)
         FROM webhook_endpoint, generate_series(1, $2 + $3) AS n
         WHERE webhook_endpoint_id = $1",
    )
    .bind(endpoint)
    .bind(failed)
    .bind(ok)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhook_attempt (webhook_endpoint_id, webhook_event_id, outbox_message_id,
                                      attempted_at, status, duration_ms, error, request_headers)
         SELECT $1, 'evt_log_' || n, gen_random_uuid(), now() - interval '1 hour' + n * interval '1 second',
                CASE WHEN n <= $2 THEN 500 ELSE 200 END, 12,
                CASE WHEN n <= $2 THEN 'HTTP 500' END, '{}'
         FROM generate_series(1, $2 + $3) AS n",
    )
    .bind(endpoint)
    .bind(failed)
    .bind(ok)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test]
async fn failed_only_keeps_the_failed_deliveries_on_every_page(pool: PgPool) {
    let app = webhook_app(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (id, _) = register(&app, &admin, "http://127.0.0.1:9/in", &[]).await;
    log_attempts(&app.pool, id, 55, 5).await;
    let path = format!("/t/acme/webhooks/{id}");

    let all = app.get_html(&admin, &path).await;
    assert_eq!(
        all.matches(">200</span>").count(),
        5,
        "the newest are the good ones"
    );
    assert!(all.contains(&format!(
        r#"href="{path}?failed=1#deliveries">Failed only</a>"#
    )));

    let failed = app.get_html(&admin, &format!("{path}?failed=1")).await;
    assert_eq!(
        failed.matches(">200</span>").count(),
        0,
        "no success among them"
    );
    assert_eq!(failed.matches(">500</span>").count(), 50, "a page of 50");
    assert!(failed.contains(r#"<strong aria-current="page">Failed only</strong>"#));
    let older = pager_link(&failed, "Older →").expect("a second page");
    assert_eq!(
        older,
        format!("{path}?page=2&failed=1"),
        "the filter is kept"
    );

    let second = app.get_html(&admin, &older).await;
    assert_eq!(second.matches(">500</span>").count(), 5);
    assert_eq!(second.matches(">200</span>").count(), 0);
    assert_eq!(
        pager_link(&second, "← Newer").as_deref(),
        Some(format!("{path}?page=1&failed=1").as_str())
    );
    assert!(pager_link(&second, "Older →").is_none());
}

#[sqlx::test]
async fn only_admins_read_a_receiver_urls_query_string(pool: PgPool) {
    let app = webhook_app(pool).await;
    let world = World::build(&app).await;
    let url = "http://127.0.0.1:9/in?token=s3cr3t-in-the-query";
    let (id, _) = register(&app, &world.admin, url, &[]).await;
    for page in [
        "/t/acme/webhooks".to_owned(),
        format!("/t/acme/webhooks/{id}"),
    ] {
        let admin_sees = app.get_html(&world.admin, &page).await;
        assert!(admin_sees.contains(url), "{page}: the admin sees it whole");
        for (who, client) in [("developer", &world.developer), ("viewer", &world.viewer)] {
            let response = app.get(client, &page).await;
            assert_eq!(response.status(), StatusCode::OK);
            let html = response.text().await.unwrap();
            assert!(
                !html.contains("s3cr3t"),
                "{page}: the {who} does not see the token"
            );
            assert!(
                html.contains("http://127.0.0.1:9/in?••••"),
                "{page}: the {who} sees that there is a query"
            );
        }
    }
}
