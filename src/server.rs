//! The router with its shared layers, error rendering, serving and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_sessions::ExpiredDeletion;

use crate::api::error::ApiError;
use crate::app::{AppState, MAX_BODY_BYTES};
use crate::db;
use crate::domain::access_tokens;
use crate::domain::key_cache;
use crate::domain::metering;
use crate::domain::outbox::{self, Couriers, SenderPolicy};
use crate::domain::reminders;
use crate::domain::request_log;
use crate::error::{AppError, ErrorReport};
use crate::web::page::ErrorFrame;
use crate::{api, web};

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// The whole service: portal and key API behind the shared layers.
pub fn router(state: AppState) -> Router {
    let hsts = state
        .config
        .public_url
        .is_https()
        .then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    let request_id = HeaderName::from_static("x-request-id");

    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", id, method = %request.method(), route = logged_route(request))
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            hsts,
        ))
        // Everything Gatehouse serves is private or per-user unless a handler says otherwise
        // (static assets do).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(middleware::from_fn_with_state(state.clone(), render_errors))
        .layer(middleware::from_fn(refuse_unreadable_address))
        .layer(middleware::from_fn(limit_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));

    let portal = Router::new()
        .merge(web::router(
            state.clone(),
            api::manage::openapi::document_json(),
        ))
        .merge(api::router(state.clone()))
        .fallback(|| async { AppError::NotFound })
        .layer(layers);
    Router::new()
        .merge(key_api_router())
        .merge(portal)
        .with_state(state)
}

/// The key API's hot routes under a stack of their own: what a JSON answer to a server needs
/// (`Cache-Control: no-store`, `nosniff`) and nothing per request that a page needs (request ids,
/// a log span, page headers, error pages, the address check; a key and a query never reach the
/// database as text). Its handlers bound their own body and answer their own errors as JSON.
fn key_api_router() -> Router<AppState> {
    api::key_api_router()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            api::NO_STORE.clone(),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            api::NOSNIFF.clone(),
        ))
}

/// One connection's service: the key API's hot routes answered at once ([`api::HotRoute`]),
/// everything else through the router with the peer's address as `ConnectInfo`, as
/// `into_make_service_with_connect_info` would give it.
#[derive(Clone)]
struct Connection {
    state: AppState,
    router: Router,
    peer: SocketAddr,
}

impl tower::Service<Request> for Connection {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match api::HotRoute::of(request.method(), request.uri().path()) {
            Some(route) => Box::pin(route.answer(self.state.clone(), self.peer.ip(), request)),
            None => {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(self.peer));
                Box::pin(tower::ServiceExt::oneshot(self.router.clone(), request))
            }
        }
    }
}

/// Gives every error response a body: JSON for the key API and operations endpoints, the error
/// page for the portal. Also covers errors raised by layers (413, 408, 405) that carry no report.
/// A 500 while the database does not answer is the outage it is: 503 with `Retry-After`.
async fn render_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let json = is_api_path(request.uri().path());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    // The portal's error pages show the signed-in user's header: its session is read again here.
    let cookies: Vec<HeaderValue> = if json {
        Vec::new()
    } else {
        request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .cloned()
            .collect()
    };
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if status == StatusCode::INTERNAL_SERVER_ERROR && !db::answers(&state.pool).await {
        tracing::warn!("the database does not answer; answering 503");
        return finish_error(
            AppError::Unavailable.into_response(),
            &AppError::Unavailable.report(),
            json,
            &request_id,
            ErrorFrame::default(),
        );
    }
    let report = match response.extensions().get::<ErrorReport>() {
        Some(report) => report.clone(),
        None if response.headers().contains_key(header::CONTENT_TYPE)
            && !is_plain_text(&response) =>
        {
            // A handler already rendered its own error body (a form shown again with a message).
            return response;
        }
        None => generic_report(status),
    };
    // A visitor's (or an outage's) page needs no lookup; a member's 403 or 404 keeps its header.
    let user = if json || cookies.is_empty() || status.is_server_error() {
        None
    } else {
        web::user_from_cookie(&cookies, &state).await
    };
    // Inside a tenant the person belongs to, its tabs too (never a tenant they do not belong to).
    let tenant = match &user {
        Some((user, _)) => web::tenants::nav_for_error(&state, &path, user).await,
        None => None,
    };
    let frame = ErrorFrame {
        user: user.as_ref(),
        tenant,
    };
    finish_error(response, &report, json, &request_id, frame)
}

/// `response` with the body `report` renders for its surface.
fn finish_error(
    response: Response,
    report: &ErrorReport,
    json: bool,
    request_id: &str,
    frame: ErrorFrame<'_>,
) -> Response {
    let (mut parts, _) = response.into_parts();
    let written = if json {
        ApiError::from(report).into_response()
    } else {
        web::page::error_page(report, request_id, frame).into_response()
    };
    let (written_parts, body) = written.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        written_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("text/plain")),
    );
    // The writer's `Retry-After` and `WWW-Authenticate`, unless the response has its own.
    for (name, value) in &written_parts.headers {
        parts.headers.entry(name).or_insert_with(|| value.clone());
    }
    Response::from_parts(parts, body)
}

/// What a log line says of a request's address: the route it matched (`/v1/authorize/{*path}`),
/// never the raw path, which may hold a key (`/v1/authorize/api/<key>`) or a token.
fn logged_route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
}

/// Refuses a path or query parameter that holds a NUL byte or broken UTF-8 once decoded, before
/// any handler sees it: PostgreSQL cannot store NUL in text, and no page has a use for either.
async fn refuse_unreadable_address(request: Request, next: Next) -> Response {
    match readable_address(request.uri()) {
        Ok(()) => next.run(request).await,
        Err(why) => AppError::BadRequest(why).into_response(),
    }
}

fn readable_address(uri: &Uri) -> Result<(), String> {
    fn decoded(raw: &str) -> Result<String, String> {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        match String::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => Ok(text),
            Ok(text) => Err(text.replace('\0', "")),
            Err(err) => Err(String::from_utf8_lossy(err.as_bytes()).replace('\0', "")),
        }
    }
    const UNREADABLE: &str = "holds a character Gatehouse cannot read (a NUL byte or broken UTF-8)";
    if decoded(uri.path()).is_err() {
        return Err(format!(
            "The address {UNREADABLE}. Check the link and try again."
        ));
    }
    for pair in uri.query().unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let shown = decoded(name).unwrap_or_else(|lossy| lossy);
        if decoded(name).is_err() || decoded(value).is_err() {
            return Err(format!(
                "The query parameter {shown:?} {UNREADABLE}. Remove it and try again."
            ));
        }
    }
    Ok(())
}

fn is_plain_text(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/plain"))
}

fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/oauth/")
        || path.starts_with("/.well-known/")
        || path == "/healthz"
        || path == "/readyz"
}

fn generic_report(status: StatusCode) -> ErrorReport {
    let message = match status {
        StatusCode::NOT_FOUND => "There is nothing here.",
        StatusCode::METHOD_NOT_ALLOWED => "That action is not available here.",
        StatusCode::PAYLOAD_TOO_LARGE => "The request was too large.",
        StatusCode::REQUEST_TIMEOUT => "The request took too long. Please try again.",
        StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::BAD_REQUEST => {
            "The request was incomplete or malformed. Please go back and try again."
        }
        status if status.is_server_error() => {
            "Something went wrong on our side. It has been logged."
        }
        _ => "The request could not be completed.",
    };
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::REQUEST_TIMEOUT => "TIMEOUT",
        status if status.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    };
    ErrorReport {
        status,
        code,
        message: message.to_owned(),
    }
}

/// Serves until `shutdown` completes, then drains in-flight requests and writes the last usage
/// counters. Background tasks end with it (also when this future is dropped).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sessions = state.sessions.clone();
    let _cleanup = AbortOnDrop(tokio::spawn(async move {
        if let Err(err) = sessions
            .continuously_delete_expired(Duration::from_secs(300))
            .await
        {
            tracing::warn!(error = %err, "expired-session cleanup stopped");
        }
    }));
    let _key_changes = AbortOnDrop(tokio::spawn(key_cache::listen_for_changes(
        state.pool.clone(),
        state.verifier.cache.clone(),
        state.signing_keys.clone(),
    )));
    let (stop_metering, stopped) = tokio::sync::watch::channel(false);
    let mut metering = AbortOnDrop(tokio::spawn(metering::run_flusher(
        state.pool.clone(),
        state.verifier.meter.clone(),
        state.verifier.limits.clone(),
        state.config.usage_flush_interval,
        stopped,
    )));
    let (stop_request_log, request_log_stopped) = tokio::sync::watch::channel(false);
    let mut request_log_writer = AbortOnDrop(tokio::spawn(request_log::run_writer(
        state.pool.clone(),
        state.request_log.clone(),
        state.config.request_log_days,
        state.config.request_log_flush_interval,
        request_log_stopped,
    )));
    let _signing_keys = state.signing_keys.clone().map(|keys| {
        AbortOnDrop(tokio::spawn(access_tokens::signing_keys::keep_schedule(
            state.pool.clone(),
            keys,
            state.config.token_key_rotation,
        )))
    });
    let _discovery = AbortOnDrop(tokio::spawn(state.oidc.clone().keep_discovering()));
    // The management API's windows (per token, per client address) are forgotten when they end.
    let management_limits = state.management_limits.clone();
    let _management_sweep = AbortOnDrop(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(60));
        loop {
            ticker.tick().await;
            management_limits.sweep(time::OffsetDateTime::now_utc());
        }
    }));
    announce_mail(&state);
    let (stop_sender, sender_stopped) = tokio::sync::watch::channel(false);
    let mut outbox_sender = AbortOnDrop(tokio::spawn(outbox::run_sender(
        state.pool.clone(),
        Couriers::new(vec![state.mailer.clone(), state.webhooks.clone()]),
        SenderPolicy {
            poll: state.config.outbox_poll,
            first_retry: state.config.outbox_first_retry,
            lease: state.config.outbox_lease,
        },
        sender_stopped.clone(),
    )));
    let _reminders = AbortOnDrop(tokio::spawn(reminders::run(
        state.pool.clone(),
        state.config.public_url.clone(),
        state.config.expiry_reminder_interval,
        sender_stopped,
    )));
    let _metrics = match state.config.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address).await?;
            tracing::info!(%address, "metrics are served at /metrics (GATEHOUSE_METRICS_LISTEN)");
            let metrics = api::metrics::router(state.clone());
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, metrics).await {
                    tracing::error!(error = %err, "the metrics listener failed");
                }
            })))
        }
        None => None,
    };
    let router = router(state.clone());
    let connection = |peer| Connection {
        state: state.clone(),
        router: router.clone(),
        peer,
    };
    crate::serving::serve(listener, connection, shutdown).await;
    // Every request has been answered: the counters are complete. Write them. The sender
    // finishes the message in hand; whatever is still due waits in the outbox for any instance.
    let _ = stop_metering.send(true);
    let _ = stop_sender.send(true);
    if let Err(err) = (&mut outbox_sender.0).await {
        tracing::error!(error = %err, "the outbox sender failed");
    }
    if let Err(err) = (&mut metering.0).await {
        tracing::error!(error = %err, "the usage flusher failed");
    }
    let _ = stop_request_log.send(true);
    if let Err(err) = (&mut request_log_writer.0).await {
        tracing::error!(error = %err, "the request log writer failed");
    }
    Ok(())
}

/// Says where mail goes; warns when a public deployment would only log it.
fn announce_mail(state: &AppState) {
    let destination = state.mailer.destination();
    if !state.mailer.sends() && state.config.public_url.is_https() {
        tracing::warn!(%destination, "mail is not sent: set GATEHOUSE_SMTP_URL so people get \
            their verification, password reset and invitation mails");
    } else {
        tracing::info!(%destination, "mail goes to {destination}");
    }
}

/// Ends a background task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Request bodies are at most [`MAX_BODY_BYTES`], except where a route needs more
/// ([`api::manage::body_limit`]): a longer `Content-Length` is refused at once, a longer body when
/// it is read.
async fn limit_body(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let limit = api::manage::body_limit(path)
        .or_else(|| api::leaks::body_limit(path))
        .unwrap_or(MAX_BODY_BYTES);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    next.run(request.map(|body| Body::new(http_body_util::Limited::new(body, limit))))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_and_broken_utf8_in_the_address_are_refused_by_name() {
        let check = |uri: &str| readable_address(&uri.parse::<Uri>().unwrap());
        assert!(check("/t/acme/keys?q=%25_%0D%0A%F0%9F%94%91&page=2").is_ok());
        assert!(check("/t/acme/keys?q=%00").unwrap_err().contains("\"q\""));
        assert!(
            check("/t/acme/audit?action=a%ED%A0%80")
                .unwrap_err()
                .contains("\"action\"")
        );
        assert!(check("/t/%00/keys").unwrap_err().contains("The address"));
        assert!(check("/?%00x=1").is_err());
    }
}
