//! Error pages keep the signed-in person's header: a member who meets a 403 or 404 (or a 400/415)
//! does not look signed out, and can sign out from there; inside a tenant they belong to, its tabs
//! stay too; a visitor sees the sign-in links.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::support::app::{TestApp, csrf_from};
use crate::support::fixtures::World;

fn signed_in_as(html: &str, name: &str) -> bool {
    html.contains(&format!(">{name}</a>"))
        && html.contains("Sign out")
        && !html.contains("Create account")
}

#[sqlx::test]
async fn a_members_error_pages_keep_their_header(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    // 403: a viewer on an admins' page; 404: no such tenant, and a path no route knows.
    for (path, status) in [
        ("/t/acme/audit", StatusCode::FORBIDDEN),
        ("/t/nowhere/keys", StatusCode::NOT_FOUND),
        ("/no/such/page", StatusCode::NOT_FOUND),
    ] {
        let response = app.get(&world.viewer, path).await;
        assert_eq!(response.status(), status, "{path}");
        let html = response.text().await.unwrap();
        assert!(signed_in_as(&html, "Vera Viewer"), "{path}: {html}");
        // The page's sign-out form carries the session's token: it works.
        let token = csrf_from(&html).expect("a form token");
        assert!(!token.is_empty(), "{path}");
    }
    // 415: a portal form sent as JSON.
    let token = app.csrf_token(&world.viewer, "/account").await;
    let response = world
        .viewer
        .post(app.url("/t/acme/leave"))
        .header("x-csrf-token", token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(signed_in_as(&response.text().await.unwrap(), "Vera Viewer"));

    // Signing out from an error page works.
    let html = app
        .get(&world.viewer, "/no/such/page")
        .await
        .text()
        .await
        .unwrap();
    let token = csrf_from(&html).unwrap();
    let signed_out = world
        .viewer
        .post(app.url("/signout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    let after = app
        .get(&world.viewer, "/no/such/page")
        .await
        .text()
        .await
        .unwrap();
    assert!(after.contains("Create account") && !after.contains("Sign out"));
}

/// The tenant tabs on a page, by their links (empty when the page has none).
fn tabs(html: &str) -> Vec<&str> {
    let Some(start) = html.find(r#"<nav class="tabs""#) else {
        return Vec::new();
    };
    let nav = &html[start..start + html[start..].find("</nav>").unwrap()];
    nav.split(r#"href=""#)
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect()
}

#[sqlx::test]
async fn a_members_error_page_inside_their_tenant_keeps_its_tabs(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let world = World::build(&app).await;
    let viewers_tabs = [
        "/t/acme",
        "/t/acme/keys",
        "/t/acme/usage",
        "/t/acme/logs",
        "/t/acme/webhooks",
        "/t/acme/members",
    ];
    let missing_key = format!("/t/acme/keys/{}", uuid::Uuid::new_v4());
    // 403: a viewer on an admins' page; 404: a key the tenant does not have, a page no route knows.
    for (path, status, current) in [
        (
            "/t/acme/audit",
            StatusCode::FORBIDDEN,
            Some("/t/acme/audit"),
        ),
        (
            missing_key.as_str(),
            StatusCode::NOT_FOUND,
            Some("/t/acme/keys"),
        ),
        ("/t/acme/no-such-page", StatusCode::NOT_FOUND, None),
    ] {
        let response = app.get(&world.viewer, path).await;
        assert_eq!(response.status(), status, "{path}");
        let html = response.text().await.unwrap();
        assert!(signed_in_as(&html, "Vera Viewer"), "{path}: {html}");
        assert_eq!(tabs(&html), viewers_tabs, "{path}: a viewer's tabs");
        assert!(html.contains("<h1>Acme</h1>"), "{path}: the tenant's name");
        if let Some(current) = current.filter(|tab| viewers_tabs.contains(tab)) {
            assert!(
                html.contains(&format!(r#"href="{current}" aria-current="page""#)),
                "{path}: its area's tab is marked"
            );
        }
    }
    // An admin's tabs are an admin's.
    let html = app
        .get(&world.admin, &missing_key)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(tabs(&html).len(), 9, "{html}");
    assert!(html.contains(r#"href="/t/acme/keys" aria-current="page""#));

    // Another tenant's pages, and a tenant that does not exist, answer the same bare 404: the
    // viewer learns nothing of "other".
    for path in ["/t/other/keys", "/t/other", "/t/nowhere/keys"] {
        let response = app.get(&world.viewer, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let html = response.text().await.unwrap();
        assert!(signed_in_as(&html, "Vera Viewer"), "{path}");
        assert!(tabs(&html).is_empty(), "{path}: {html}");
        assert!(
            !html.contains("Other") && !html.contains("/t/other"),
            "{path}"
        );
    }
}

#[sqlx::test]
async fn a_visitors_error_page_offers_to_sign_in(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app.get(&app.client(), "/no/such/page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let html = response.text().await.unwrap();
    assert!(html.contains("Sign in") && html.contains("Create account"));
}
