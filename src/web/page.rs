//! The page frame every portal page shares: Layout, render, dates, error page, confirm page, pager.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use tower_sessions::Session;

use super::assets::{CSS_PATH, JS_PATH};
pub use super::clock::{Clock, When};
use super::session;
use super::tenants::TenantNav;
use crate::db::users::User;
use crate::error::{AppError, AppResult, ErrorReport};

/// What every page's frame needs: who is signed in, the CSRF token for its forms, a flash message.
pub struct Layout {
    pub user_name: Option<String>,
    pub user_email: Option<String>,
    pub csrf_token: String,
    pub flash: Option<String>,
    /// The zone the page's times are in, named in the footer (signed-in pages only).
    pub time_zone: Option<String>,
    pub css: &'static str,
    pub js: &'static str,
}

impl Layout {
    pub async fn build(
        session: &Session,
        user: Option<&User>,
        with_token: bool,
    ) -> AppResult<Self> {
        let flash = session::take_flash(session).await?;
        Ok(Self {
            user_name: user.map(|user| user.display_name.clone()),
            user_email: user.map(|user| user.email.clone()),
            csrf_token: if with_token {
                session::csrf_token(session).await?
            } else {
                String::new()
            },
            flash,
            time_zone: user.map(|user| user.time_zone.clone()),
            css: CSS_PATH.as_str(),
            js: JS_PATH.as_str(),
        })
    }

    /// For pages rendered outside the session layer (error pages): the signed-in user's header,
    /// when there is one, with its session's form token but not its flash.
    pub fn outside_session(user: Option<&(User, String)>) -> Self {
        Self {
            user_name: user.map(|(user, _)| user.display_name.clone()),
            user_email: user.map(|(user, _)| user.email.clone()),
            csrf_token: user.map(|(_, token)| token.clone()).unwrap_or_default(),
            flash: None,
            time_zone: user.map(|(user, _)| user.time_zone.clone()),
            css: CSS_PATH.as_str(),
            js: JS_PATH.as_str(),
        }
    }
}

/// Renders a page; a template error becomes a logged 500, never a panic.
pub fn render(page: &impl Template) -> AppResult<Html<String>> {
    page.render().map(Html).map_err(AppError::unexpected)
}

/// A page as the whole answer (200).
pub fn html(page: &impl Template) -> AppResult<Response> {
    Ok(render(page)?.into_response())
}

/// A page as the whole answer with `status`: a form shown again with its problems (422, 409).
pub fn html_with_status(status: StatusCode, page: &impl Template) -> AppResult<Response> {
    Ok((status, render(page)?).into_response())
}

/// An email address that wraps before its dots and at-sign (and after hyphens), never mid-word.
pub struct Address(pub String);

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use askama::filters::{Escaper, Html};
        for part in self.0.split_inclusive(['@', '.']) {
            // Each break opportunity goes before the separator that ends the part before it.
            let (text, separator) = match part.strip_suffix(['@', '.']) {
                Some(text) => (text, &part[text.len()..]),
                None => (part, ""),
            };
            Html.write_escaped_str(&mut *f, text)?;
            if !separator.is_empty() {
                f.write_str("<wbr>")?;
                Html.write_escaped_str(&mut *f, separator)?;
            }
        }
        Ok(())
    }
}

/// Written as markup: `Display` escapes every part and adds only `<wbr>`.
impl askama::filters::HtmlSafe for Address {}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    tenant: Option<TenantNav>,
    status: u16,
    title: &'static str,
    message: &'a str,
    request_id: &'a str,
}

/// What frames an error page: the signed-in user (with their session's form token), and the
/// tenant of the path when they are a member of it.
#[derive(Default)]
pub struct ErrorFrame<'a> {
    pub user: Option<&'a (User, String)>,
    pub tenant: Option<TenantNav>,
}

/// The error page: what a person sees for 404, 403, 500 and the rest, with the signed-in user's
/// header when there is one (a member must not look signed out on a 403), and inside a tenant they
/// belong to, its tabs.
pub fn error_page(report: &ErrorReport, request_id: &str, frame: ErrorFrame<'_>) -> Response {
    let page = ErrorPage {
        layout: Layout::outside_session(frame.user),
        tenant: frame.tenant,
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

/// "Are you sure?" before anything destructive. Without an `action`, only the way back is offered.
#[derive(Template)]
#[template(path = "tenants/confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub tenant: TenantNav,
    pub title: String,
    pub message: String,
    pub action: String,
    pub button: &'static str,
    pub cancel: String,
}

/// Which page of a newest-first list is asked for (`?page=`, from 1).
pub struct Paging {
    page: i64,
    size: i64,
}

impl Paging {
    pub fn new(page: Option<u32>, size: i64) -> Self {
        Self {
            page: i64::from(page.unwrap_or(1).max(1)),
            size,
        }
    }

    /// Rows to fetch: one more than a page, to tell whether an older page exists.
    pub fn limit(&self) -> i64 {
        self.size + 1
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.size
    }

    /// Cuts `rows` (fetched with `limit` and `offset`) to the page and links its neighbours:
    /// `{base}?page=N` followed by the filters that are set.
    pub fn pager<T>(
        &self,
        rows: &mut Vec<T>,
        base: &str,
        filters: &[(&str, Option<&str>)],
    ) -> Pager {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        let has_older = rows.len() > size;
        rows.truncate(size);
        let link = |page: i64| {
            let mut url = format!("{base}?page={page}");
            for (name, value) in filters {
                if let Some(value) = value {
                    url.push_str(&format!("&{name}={}", session::encode(value)));
                }
            }
            url
        };
        Pager {
            newer: (self.page > 1).then(|| link(self.page - 1)),
            older: has_older.then(|| link(self.page + 1)),
        }
    }
}

/// The links to the newer and older pages, drawn by the `pager` macro in macros.html.
pub struct Pager {
    pub newer: Option<String>,
    pub older: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Paging;

    #[test]
    fn an_address_wraps_before_its_dots_and_at_sign_and_stays_escaped() {
        let address = super::Address("ada.l<b>@x.example".to_owned());
        assert_eq!(
            address.to_string(),
            "ada<wbr>.l&#60;b&#62;<wbr>@x<wbr>.example"
        );
    }

    #[test]
    fn pager_links_neighbours_and_keeps_filters() {
        let paging = Paging::new(Some(2), 2);
        assert_eq!((paging.limit(), paging.offset()), (3, 2));
        let mut rows = vec![1, 2, 3];
        let pager = paging.pager(
            &mut rows,
            "/t/acme/audit",
            &[("action", Some("key created")), ("q", None)],
        );
        assert_eq!(rows, [1, 2]);
        assert_eq!(
            pager.newer.as_deref(),
            Some("/t/acme/audit?page=1&action=key+created")
        );
        assert_eq!(
            pager.older.as_deref(),
            Some("/t/acme/audit?page=3&action=key+created")
        );
    }

    #[test]
    fn first_and_last_pages_have_one_neighbour_or_none() {
        let mut rows = vec![1];
        let pager = Paging::new(None, 2).pager(&mut rows, "/x", &[]);
        assert!(pager.newer.is_none() && pager.older.is_none());
        let pager = Paging::new(Some(0), 2).pager(&mut vec![1, 2, 3], "/x", &[]);
        assert_eq!(
            (pager.newer, pager.older.as_deref()),
            (None, Some("/x?page=2"))
        );
    }
}
