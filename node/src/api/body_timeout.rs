//! A deadline on receiving a request body (slow-body / slowloris uploads). The body is read
//! in full within the deadline, then handed to the handler; a client that stops sending is
//! answered `408` and its connection closed, and nothing reaches the core. Only the body
//! is timed: once the core has a unit, its answer is always awaited (a `202` promises
//! durability; cutting it off would invite a duplicate resubmission).
//!
//! The deadline is the config key `limits.request_timeout_ms` (default 30 000); the
//! environment variable `RENKEI_REQUEST_TIMEOUT_MS` overrides it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::json_error;

/// Environment variable overriding the body deadline, in milliseconds.
pub const TIMEOUT_ENV: &str = "RENKEI_REQUEST_TIMEOUT_MS";
/// Room for multipart framing on top of the upload limit.
const FRAMING_BYTES: usize = 1024 * 1024;

/// The deadline: the environment override if set, else `configured_ms` (at least 1 ms).
pub fn request_timeout(configured_ms: u64) -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(
            Duration::from_millis(configured_ms.max(1)),
            Duration::from_millis,
        )
}

/// Middleware: reads the body (at most `upload_max` plus framing) within the deadline.
pub async fn read_body_in_time(
    State((upload_max, deadline)): State<(usize, Duration)>,
    req: Request,
    next: Next,
) -> Response {
    let limit = upload_max.saturating_add(FRAMING_BYTES);
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
