//! Cross-site request forgery defence: form bodies only, fetch metadata and `Origin` checks, then
//! the per-session token on every unsafe request. Applied to the whole portal, so no form can forget it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::app::{AppState, MAX_BODY_BYTES};
use crate::error::AppError;

/// The form field (or `X-CSRF-Token` header) that carries the token.
pub const FIELD: &str = "csrf_token";

pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    // The portal's forms send nothing else: any other body type is not one of its forms.
    if !is_form(request.headers()) {
        tracing::warn!("unsafe portal request without a form body refused");
        return AppError::UnsupportedMediaType(
            "Gatehouse accepts only its own forms here (application/x-www-form-urlencoded).".into(),
        )
        .into_response();
    }
    if let Err(why) = check_origin(request.headers(), state.config.public_url.origin()) {
        tracing::warn!(reason = %why, "cross-site request refused");
        return AppError::Forbidden(why).into_response();
    }
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return AppError::unexpected("CSRF check outside the session layer").into_response();
    };
    let expected = match session.get::<String>(super::session::CSRF).await {
        Ok(expected) => expected,
        Err(err) => return AppError::unexpected(err).into_response(),
    };

    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let presented = parts
        .headers
        .get("x-csrf-token")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            form_urlencoded::parse(&bytes)
                .find(|(name, _)| name == FIELD)
                .map(|(_, value)| value.into_owned())
        });
    let valid = matches!((&expected, &presented),
        (Some(expected), Some(presented)) if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())));
    if !valid {
        tracing::warn!(had_token = presented.is_some(), "CSRF token refused");
        return AppError::Forbidden(
            "This form has expired or did not come from this site. Go back, reload the page and try again."
                .into(),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Refuses requests a browser marks as cross-site. Requests without these headers (old browsers,
/// scripts) still need the token.
fn check_origin(headers: &HeaderMap, origin: &str) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err("This request came from another site and was refused.".into());
    }
    // A page served with `Referrer-Policy: no-referrer` (the password-reset form) makes the
    // browser send `Origin: null` on its own forms; the browser's `Sec-Fetch-Site: same-origin`
    // (which pages cannot set) still says where the form came from.
    let same_origin_fetch = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"same-origin");
    if let Some(sent) = headers.get(header::ORIGIN)
        && sent.as_bytes() != origin.as_bytes()
        && !(sent.as_bytes() == b"null" && same_origin_fetch)
    {
        return Err(format!(
            "This request came from another origin and was refused. Gatehouse accepts forms \
                 from {origin} (GATEHOUSE_PUBLIC_URL)."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn same_origin_and_header_less_requests_pass() {
        let origin = "https://portal.example";
        assert!(check_origin(&headers(&[]), origin).is_ok());
        assert!(
            check_origin(
                &headers(&[
                    ("origin", "https://portal.example"),
                    ("sec-fetch-site", "same-origin")
                ]),
                origin
            )
            .is_ok()
        );
    }

    #[test]
    fn only_url_encoded_form_bodies_are_forms() {
        assert!(is_form(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(is_form(&headers(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        )])));
        for other in [
            "text/plain",
            "application/json",
            "multipart/form-data; boundary=x",
        ] {
            assert!(!is_form(&headers(&[("content-type", other)])), "{other}");
        }
        assert!(!is_form(&headers(&[])));
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let origin = "https://portal.example";
        assert!(check_origin(&headers(&[("sec-fetch-site", "cross-site")]), origin).is_err());
        assert!(check_origin(&headers(&[("sec-fetch-site", "same-site")]), origin).is_err());
        assert!(check_origin(&headers(&[("origin", "https://evil.example")]), origin).is_err());
        assert!(check_origin(&headers(&[("origin", "null")]), origin).is_err());
        let null_cross_site = headers(&[("origin", "null"), ("sec-fetch-site", "cross-site")]);
        assert!(check_origin(&null_cross_site, origin).is_err());
    }

    #[test]
    fn a_no_referrer_page_posting_to_its_own_origin_passes() {
        let origin = "https://portal.example";
        let null_same_origin = headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]);
        assert!(check_origin(&null_same_origin, origin).is_ok());
    }
}
