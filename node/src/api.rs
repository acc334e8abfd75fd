//! The HTTP API (axum) for care software and the web page for office staff.
//!
//! Offices authenticate with `Authorization: Bearer TOKEN`; the core sees only the SHA-256
//! of the token and answers with that office's data alone. Operator endpoints under
//! `/admin/v1` are served on their own listener (`admin_listen`: a Unix socket in the node
//! directory by default) and need the node's admin token. See `docs/API.md`.

mod admin;
mod audit;
pub(crate) mod body_timeout;
mod error;
mod metrics;
mod office;
mod ratelimit;
mod session;
pub mod standby;
pub mod uploads;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, header};
use axum::response::Html;
use axum::routing::{delete, get, post, put};
use renkei_protocol::envelope::sha256;

use crate::core::Auth;
use crate::runtime::CoreHandle;

/// The web page (one self-contained file, no external assets).
const PAGE: &str = include_str!("api/page.html");
/// The OpenAPI document.
const OPENAPI: &str = include_str!("api/openapi.json");

/// Shared state of the HTTP handlers: one allocation, so that the handlers' and
/// middlewares' copies (axum clones the state for each of them, on every request) cost one
/// reference count, not one per field (they were ≈ 1.5 % of a busy origin's CPU).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl AppState {
    /// The state the handlers share.
    pub fn new(shared: Shared) -> AppState {
        AppState(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// The core task.
    pub core: CoreHandle,
    /// SHA-256 of the admin token.
    pub admin_hash: [u8; 32],
    /// Largest accepted upload.
    pub upload_bytes_max: usize,
    /// Deadline for an upload's body.
    pub request_timeout: std::time::Duration,
    /// Per-office upload limits and the prepare pool.
    pub uploads: uploads::Uploads,
    /// `/readyz` answers 503 when the core has been on one batch longer than this.
    pub ready_stall: std::time::Duration,
    /// SHA-256 of the token `/metrics` needs (the admin token works too).
    pub metrics_hash: [u8; 32],
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: std::sync::Arc<Vec<std::net::IpAddr>>,
    /// Origins allowed to call the API from a browser (empty: no CORS headers).
    pub cors_allowed_origins: std::sync::Arc<Vec<axum::http::HeaderValue>>,
    /// What `/metrics` says about the node itself.
    pub info: std::sync::Arc<NodeInfo>,
    /// Every HTTP request's duration.
    pub requests: std::sync::Arc<crate::histogram::Histogram>,
    /// Mark the session cookie `Secure`.
    pub session_cookie_secure: bool,
    /// Failed authentications per client address within a minute before it is refused.
    pub failed_auth_max: usize,
}

/// The node's version, store and (on PostgreSQL) lease, for `/metrics`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The package version.
    pub version: &'static str,
    /// `local` or `postgres`.
    pub store: &'static str,
    /// On PostgreSQL: this node's name in the lease and its fencing number (it is active:
    /// a standby serves no metrics).
    pub lease: Option<(String, i64)>,
}

/// Times every request for `renkei_http_request_duration_seconds`.
async fn timed(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    state.requests.observe(started.elapsed());
    resp
}

/// The caller's credential: the SHA-256 of its bearer token or, without an
/// `Authorization` header, of its staff session cookie (the core looks both up alike).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<[u8; 32]> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return session::cookie_token(headers).map(|t| sha256(t.as_bytes()));
    };
    let token = v.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| sha256(token.as_bytes()))
}

pub(crate) fn office_auth(headers: &HeaderMap) -> Option<Auth> {
    bearer(headers).map(Auth::Office)
}

/// The router.
pub fn router(state: AppState) -> Router {
    let upload_max = state.upload_bytes_max;
    let deadline = state.request_timeout;
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/v1/me", get(office::me))
        .route(
            "/v1/send-units",
            post(office::submit)
                .layer(DefaultBodyLimit::max(upload_max))
                .layer(axum::middleware::from_fn_with_state(
                    (upload_max, deadline),
                    body_timeout::read_body_in_time,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    uploads::gate,
                )),
        )
        .route("/v1/send-units/groups", post(office::groups))
        .route("/v1/inbox", get(office::inbox))
        .route("/v1/inbox/{id}/files/{name}", get(office::fetch))
        .route("/v1/inbox/{id}/zip", get(office::fetch_unit))
        .route("/v1/inbox/zip", post(office::fetch_units))
        .route("/v1/sent", get(office::sent_list))
        .route("/v1/sent/{id}", get(office::sent_one))
        .route("/v1/sent/{id}/proof", get(office::proof))
        .route("/v1/directory/{office}", get(office::directory))
        .route("/v1/units/{id}/certificate", get(office::certificate))
        .route("/v1/audit-export", get(audit::own_export))
        .route("/v1/notify", put(session::set_notify))
        .route("/v1/policy", put(session::set_policy))
        .route(
            "/v1/session",
            post(session::sign_in).delete(session::sign_out),
        )
        .route("/v1/sessions", delete(session::sign_out_everywhere))
        .route("/v1/session/office", post(session::switch_office))
        .route("/v1/grants", post(session::grant))
        .route("/v1/grants/{office}/{user}", delete(session::revoke))
        .route("/v1/staff", get(session::list).post(session::add))
        .route("/v1/staff/{user}", delete(session::remove))
        .route("/v1/staff/{user}/password", post(session::set_password))
        .route("/v1/staff/{user}/totp", delete(session::remove_totp))
        .route("/v1/totp", get(session::new_totp).post(session::enrol_totp))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(session::csrf_guard))
        .layer(axum::middleware::from_fn_with_state(
            ratelimit::Guard::new(state.clone()),
            ratelimit::limit_failed_auth,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), timed))
        .layer(cors(&state.cors_allowed_origins))
        .with_state(state)
}

async fn not_found() -> axum::response::Response {
    error::json_error(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint".into(),
    )
}

/// The operator endpoints, served on the admin listener only ([`serve_admin`]): never on
/// the office listener, so neither a proxy in front of it nor a client on the same host
/// reaches them there.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/admin/v1/offices",
            post(admin::add_office).get(admin::list_offices),
        )
        .route("/admin/v1/offices/{office}", delete(admin::remove_office))
        .route(
            "/admin/v1/offices/{office}/token",
            post(admin::rotate_token),
        )
        .route("/admin/v1/offices/{office}/staff", post(session::admin_add))
        .route("/admin/v1/assignments", post(admin::assign_office))
        .route("/admin/v1/status", get(admin::status))
        .route("/admin/v1/backup", post(admin::backup))
        .route("/admin/v1/roster", put(admin::set_roster))
        .route("/admin/v1/audit-export", get(audit::export))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), timed))
        .with_state(state)
}

/// Where the admin listener is bound.
pub enum AdminListener {
    /// A Unix socket (the default: `admin.sock` in the node directory, mode 0600).
    Unix(tokio::net::UnixListener),
    /// A TCP address (`admin_listen = "127.0.0.1:8081"`).
    Tcp(tokio::net::TcpListener),
}

/// Serves the operator endpoints until `shutdown` resolves.
pub async fn serve_admin(
    listener: AdminListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = admin_router(state);
    match listener {
        AdminListener::Unix(l) => {
            axum::serve(l, app.into_make_service())
                .with_graceful_shutdown(shutdown)
                .await
        }
        AdminListener::Tcp(l) => {
            axum::serve(l, app.into_make_service())
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// CORS for the configured origins: the office API's methods and headers, and the paging
/// and retry headers exposed. With no origin configured the layer adds nothing, and
/// browsers keep refusing cross-origin calls.
fn cors(origins: &[axum::http::HeaderValue]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::LINK,
            header::RETRY_AFTER,
            HeaderName::from_static("x-renkei-next-before"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Readiness: `200 ready` while the core takes inputs; `503` when it has been on one batch
/// for longer than `limits.ready_stall_ms` (or has stopped). `/healthz` stays a liveness
/// check of the HTTP server alone.
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.core.stalled_for() {
        None => "ready\n".into_response(),
        Some(d) if d < state.ready_stall => "ready\n".into_response(),
        Some(d) => error::json_error(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!(
                "the core has been on one batch of inputs for {} ms (limit {} ms)",
                d.as_millis(),
                state.ready_stall.as_millis()
            ),
        ),
    }
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Compares two digests in constant time (token checks), with `subtle`.
pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, then the
/// nearest address its `X-Forwarded-For` (or `Forwarded: for=`) names that is not itself
/// a trusted proxy. Headers from anyone else are ignored (they are the client's to forge).
pub(crate) fn client_ip(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<std::net::IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        if let Ok(v) = v.to_str() {
            hops.extend(
                v.split(',')
                    .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok()),
            );
        }
    }
    if hops.is_empty() {
        for v in headers.get_all("forwarded") {
            if let Ok(v) = v.to_str() {
                hops.extend(v.split([',', ';']).filter_map(|p| {
                    let p = p.trim();
                    let a = p.strip_prefix("for=").or_else(|| p.strip_prefix("FOR="))?;
                    let a = a.trim_matches('"');
                    let a = a
                        .strip_prefix('[')
                        .map_or(a, |x| x.split(']').next().unwrap_or(x));
                    a.parse::<std::net::IpAddr>()
                        .ok()
                        .or_else(|| a.parse::<SocketAddr>().ok().map(|s| s.ip()))
                }));
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

pub use admin::{add_office_command, new_token, rotate_token_command};
pub use ratelimit::FAILURES_MAX as FAILED_AUTH_MAX;
pub use session::{PASSWORD_MIN, hash_password};

#[cfg(test)]
mod tests {
    /// Every route the router serves is documented in openapi.json, and vice versa.
    #[test]
    fn openapi_documents_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(super::OPENAPI).expect("openapi.json parses");
        let documented: std::collections::BTreeSet<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        let src = include_str!("api.rs")
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default();
        let served: std::collections::BTreeSet<String> = src
            .split(".route(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"'))
            .filter_map(|l| l.split('"').next())
            .map(str::to_owned)
            .collect();
        assert_eq!(served, documented);
    }
}
