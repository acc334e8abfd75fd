//! `GET /admin/v1/audit-export?office=OFFICE&month=YYYYMM`: an office's audit export (運営指導)
//! as canonical CBOR (`renkei_protocol::export`). On the admin listener, with the admin token.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{json_error, unexpected};
use crate::core::{ApiCommand, ApiReply, Auth};

/// Query of the audit export.
#[derive(Deserialize)]
pub(super) struct ExportQuery {
    office: String,
    month: String,
}

pub(super) async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> Response {
    if let Err(r) = super::admin::check(&state, &headers) {
        return r;
    }
    let office = match q.office.parse() {
        Ok(o) => o,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "bad_request", format!("{e}")),
    };
    let cmd = ApiCommand::AuditExport {
        office,
        month: q.month,
    };
    match state.core.call(Auth::Operator, cmd).await {
        ApiReply::AuditExport(bytes) => {
            ([(header::CONTENT_TYPE, "application/cbor")], bytes).into_response()
        }
        other => unexpected(other),
    }
}
