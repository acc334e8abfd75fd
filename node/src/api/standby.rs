//! What a standby node answers while another node of its operator is active (PostgreSQL
//! store): `/healthz` says the process lives, everything else — `/readyz` included — is
//! `503 standby` naming the active node, so a load balancer or proxy sends traffic to the
//! active one and care software retries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Serves the standby answers until `shutdown` resolves. `active` holds the name of the
/// node that holds the lease.
pub async fn serve(
    listener: tokio::net::TcpListener,
    active: Arc<Mutex<String>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(move || {
            let active = active.lock().map(|a| a.clone()).unwrap_or_default();
            async move { standby(&active) }
        });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

fn standby(active: &str) -> Response {
    let mut r = super::error::json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "standby",
        format!(
            "this node is the standby; the active node of this operator is {active:?} \
             (this one takes over if it stops)"
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r.into_response()
}
