//! The tenant pages' forms say the right thing in the right place: the invite form, a key's
//! metadata, and what the last admin is (not) offered.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::membership_of;
use crate::support::app::TestApp;
use crate::support::fixtures::{TenantAdmin, create_key, member_client};

#[sqlx::test]
async fn the_invite_form_asks_for_the_invitees_address_and_says_what_is_wrong_by_the_field(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let response = app
        .submit(
            &admin,
            "/t/acme/members",
            "/t/acme/invitations",
            &[("email", ""), ("role", "developer")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(
        !page.contains("Enter your email address"),
        "it is not the admin's own address"
    );
    assert!(page.contains("Enter the email address of the person to invite."));
    // The message sits with the field it is about, before the form's button.
    let form = &page[page.find(r#"class="invite-form""#).unwrap()..];
    let error = form
        .find(r#"id="invite-error""#)
        .expect("the error is in the form");
    let field_ends = form.find(r#"<div class="field">"#).unwrap();
    let button = form.find("Create invitation link</button>").unwrap();
    assert!(
        error < field_ends && error < button,
        "by the email field, not under the button"
    );
}

#[sqlx::test]
async fn a_metadata_error_names_its_position_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let (_, id) = create_key(&app, &admin, "acme", "Billing", "test").await;
    let response = app
        .submit(
            &admin,
            &format!("/t/acme/keys/{id}"),
            &format!("/t/acme/keys/{id}/edit"),
            &[
                ("name", "Billing"),
                ("access", "full"),
                ("expiry", "keep"),
                ("meta", r#"{"plan": pro}"#),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    let start = page
        .find(r#"id="meta-error""#)
        .expect("the metadata's error");
    let error = &page[start..start + page[start..].find("</p>").unwrap()];
    assert_eq!(error.matches("line 1").count(), 1, "{error}");
    assert!(
        error.contains("not valid JSON at line 1, column 10: expected value."),
        "{error}"
    );
}

#[sqlx::test]
async fn the_last_admin_is_offered_neither_leaving_nor_a_role_change_and_is_told_why(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = TenantAdmin::acme(&app).await.client;
    let own = membership_of(&app, "ada@example.com").await;

    let members = app.get_html(&admin, "/t/acme/members").await;
    assert!(!members.contains(r#"href="/t/acme/leave""#), "no Leave");
    assert!(
        !members.contains(&format!(r#"id="role-{own}""#)),
        "no role to pick"
    );
    assert!(members.contains(
        "The only admin: make another member an admin first to change this role or to leave."
    ));
    let overview = app.get_html(&admin, "/t/acme").await;
    assert!(!overview.contains(r#"href="/t/acme/leave""#));
    assert!(overview.contains("only admin, so you cannot leave it"));
    let leave = app.get_html(&admin, "/t/acme/leave").await;
    assert!(leave.contains("You cannot leave Acme yet"));
    assert!(leave.contains("Every tenant needs at least one admin"));
    assert!(
        !leave.contains("Leave tenant</button>"),
        "no button that can only fail"
    );

    // With a second admin, both are offered again.
    member_client(&app, &admin, "acme", "bob@example.com", "Bob", "admin").await;
    let members = app.get_html(&admin, "/t/acme/members").await;
    assert!(members.contains(r#"href="/t/acme/leave""#));
    assert!(members.contains(&format!(r#"id="role-{own}""#)));
    assert!(!members.contains("The only admin"));
    let leave = app.get_html(&admin, "/t/acme/leave").await;
    assert!(leave.contains("Leave tenant</button>"));
}
