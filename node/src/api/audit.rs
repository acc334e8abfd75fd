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

/// Query of the office's own audit export.
#[derive(Deserialize)]
pub(super) struct OwnExportQuery {
    month: String,
}

/// `GET /v1/audit-export?month=YYYYMM`: the caller's office's audit export, for its
/// administrators (an administrator's session or the office's token).
pub(super) async fn own_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OwnExportQuery>,
) -> Response {
    let Some(auth) = super::office_auth(&headers) else {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in, or send Authorization: Bearer <office token>".into(),
        );
    };
    let office = match state.core.call(auth.clone(), ApiCommand::WhoAmI).await {
        ApiReply::Office(v) => v.office,
        other => return unexpected(other),
    };
    let Ok(office) = office.parse() else {
        return unexpected(ApiReply::Unauthorized);
    };
    let month = q.month.clone();
    match state
        .core
        .call(
            auth,
            ApiCommand::AuditExport {
                office,
                month: q.month,
            },
        )
        .await
    {
        ApiReply::AuditExport(bytes) => (
            [
                (header::CONTENT_TYPE, "application/cbor".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"renkei-audit-{month}.cbor\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        ApiReply::Forbidden(_) => json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the audit export is for the office's administrators".into(),
        ),
        other => unexpected(other),
    }
}
