//! Mapping core replies to HTTP status codes and JSON error bodies.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::core::ApiReply;

/// `{"error": code, "message": text}` with a status.
pub(crate) fn json_error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

/// The error responses shared by every endpoint; `None` for success replies.
pub(crate) fn error_response(reply: &ApiReply) -> Option<Response> {
    Some(match reply {
        ApiReply::Unauthorized => {
            json_error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or unknown bearer token".into())
        }
        ApiReply::Forbidden(m) => json_error(StatusCode::FORBIDDEN, "forbidden", m.clone()),
        ApiReply::NotFound(m) => json_error(StatusCode::NOT_FOUND, "not_found", m.clone()),
        ApiReply::Conflict(m) => json_error(StatusCode::CONFLICT, "conflict", m.clone()),
        ApiReply::BadRequest(m) => json_error(StatusCode::BAD_REQUEST, "bad_request", m.clone()),
        ApiReply::Unroutable(m) => json_error(StatusCode::UNPROCESSABLE_ENTITY, "unroutable", m.clone()),
        ApiReply::Internal(m) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", m.clone()),
        ApiReply::Invalid(findings) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "invalid",
                "message": format!("the send unit fails the standard-spec checks ({} finding(s))", findings.len()),
                "findings": findings,
            })),
        )
            .into_response(),
        _ => return None,
    })
}

/// Any reply not expected by the endpoint.
pub(crate) fn unexpected(reply: ApiReply) -> Response {
    error_response(&reply).unwrap_or_else(|| {
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("unexpected reply {reply:?}"),
        )
    })
}

/// The error code of a status the framework answers by itself.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Error texts kept from the framework's own answers (an extractor's rejection names the
/// parameter that was wrong); longer ones are cut.
const FRAMEWORK_MESSAGE_MAX: usize = 1024;

/// Middleware over every route: an error answered by the framework itself (an extractor's
/// rejection in `text/plain`, an empty 405, a body over the limit) leaves as the documented
/// JSON error `{"error", "message"}` with the same status and headers.
pub(crate) async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, FRAMEWORK_MESSAGE_MAX * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let mut message: String = text.chars().take(FRAMEWORK_MESSAGE_MAX).collect();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_lowercase();
    }
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let fresh = json_error(status, code_of(status), message);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.extend(fresh_parts.headers);
    Response::from_parts(parts, body)
}
