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
