//! The error page: what a person sees for 404, 403, 500 and the rest.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use super::Layout;
use crate::error::ErrorReport;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: &'a str,
    request_id: &'a str,
}

pub fn error_page(report: &ErrorReport, request_id: &str) -> Response {
    let page = ErrorPage {
        layout: Layout::bare(),
        status: report.status.as_u16(),
        title: report.status.canonical_reason().unwrap_or("Error"),
        message: &report.message,
        request_id,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "error page failed to render");
            report.message.clone().into_response()
        }
    }
}
