//! A deadline on receiving a request body (slow-body / slowloris uploads). The body is read
//! in full within the deadline, then handed to the handler; a client that stops sending is
//! answered `408` and its connection closed, and nothing reaches the core. Only the body
//! is timed: once the core has a unit, its answer is always awaited (a `202` promises
//! durability; cutting it off would invite a duplicate resubmission).
//!
//! The deadline is `RENKEI_REQUEST_TIMEOUT_MS` milliseconds (default 30 000).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::json_error;

/// Environment variable setting the body deadline in milliseconds.
pub const TIMEOUT_ENV: &str = "RENKEI_REQUEST_TIMEOUT_MS";
/// Default body deadline.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Room for multipart framing on top of the upload limit.
const FRAMING_BYTES: usize = 1024 * 1024;

/// The configured deadline.
pub fn request_timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(TIMEOUT_DEFAULT, Duration::from_millis)
}

/// Middleware: reads the body (at most `upload_max` plus framing) within the deadline.
pub async fn read_body_in_time(
    State(upload_max): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let limit = upload_max.saturating_add(FRAMING_BYTES);
    let deadline = request_timeout();
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            // axum reports the limit as a `LengthLimitError` somewhere in the chain.
            let mut too_large = false;
            let mut cur: Option<&dyn std::error::Error> = Some(&e);
            while let Some(err) = cur {
                too_large |= err.to_string().contains("length limit");
                cur = err.source();
            }
            if too_large {
                json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the upload is over the limit of {upload_max} bytes"),
                )
            } else {
                json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("reading the request body failed: {e}"),
                )
            }
        }
        Err(_) => {
            let mut r = json_error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    deadline.as_millis()
                ),
            );
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            r.into_response()
        }
    }
}
