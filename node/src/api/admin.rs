//! Operator endpoints, on the admin listener, for a client holding the node's admin token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use renkei_protocol::envelope::sha256;
use renkei_protocol::ids::{OfficeNumber, ServiceKind};
use serde::Deserialize;
use serde_json::json;

use super::error::{json_error, unexpected};
use super::{AppState, bearer};
use crate::core::{ApiCommand, ApiReply, Auth};

pub(super) fn check(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    // Served on the admin listener only (a Unix socket in the node directory, mode 0600,
    // or a configured address), never on the office listener: the token is the one check.
    match bearer(headers) {
        Some(h) if crate::api::constant_time_eq(&h, &state.admin_hash) => Ok(()),
        _ => Err(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "operator endpoints need the admin token".into(),
        )),
    }
}

/// Body of `POST /admin/v1/offices`.
#[derive(Deserialize)]
pub(super) struct NewOffice {
    office: String,
    kinds: Vec<String>,
    #[serde(default)]
    name: String,
}

/// A fresh office token: 32 random bytes as 64 hex digits.
pub fn new_token() -> Result<String, crate::keyfile::KeyFileError> {
    Ok(hex::encode(crate::keyfile::random_seed()?))
}

/// Builds the AddOffice command and the token that goes with it.
pub fn add_office_command(
    office: &str,
    kinds: &[String],
    name: &str,
) -> Result<(ApiCommand, String), String> {
    let office: OfficeNumber = office.parse().map_err(|e| format!("{e}"))?;
    let kinds = kinds
        .iter()
        .map(|k| k.trim().parse::<ServiceKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{e}"))?;
    if kinds.is_empty() {
        return Err("at least one service kind is needed (e.g. 43)".into());
    }
    let token = new_token().map_err(|e| e.to_string())?;
    let cmd = ApiCommand::AddOffice {
        office,
        kinds,
        name: name.to_owned(),
        token_hash: sha256(token.as_bytes()),
    };
    Ok((cmd, token))
}

pub(super) async fn add_office(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<NewOffice>,
) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    issue_token(
        &state,
        add_office_command(&body.office, &body.kinds, &body.name),
        StatusCode::CREATED,
    )
    .await
}

/// Runs a command that gives an office a token, and answers `{office, token}` (the token
/// shown this once) with `status`.
async fn issue_token(
    state: &AppState,
    command: Result<(ApiCommand, String), String>,
    status: StatusCode,
) -> Response {
    let (cmd, token) = match command {
        Ok(x) => x,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    match state.core.call(Auth::Operator, cmd).await {
        ApiReply::Office(v) => {
            (status, Json(json!({ "office": v, "token": token }))).into_response()
        }
        other => unexpected(other),
    }
}

/// `POST /admin/v1/offices/{office}/token`: a new API token for the office (the old one is
/// revoked at once), shown once.
pub(super) async fn rotate_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(office): Path<String>,
) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    issue_token(&state, rotate_token_command(&office), StatusCode::OK).await
}

/// The command that gives `office` a new token, and that token.
pub fn rotate_token_command(office: &str) -> Result<(ApiCommand, String), String> {
    let office: OfficeNumber = office.parse().map_err(|e| format!("{e}"))?;
    let token = new_token().map_err(|e| e.to_string())?;
    let cmd = ApiCommand::RotateToken {
        office,
        token_hash: sha256(token.as_bytes()),
    };
    Ok((cmd, token))
}

pub(super) async fn list_offices(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    match state
        .core
        .call(Auth::Operator, ApiCommand::ListOffices)
        .await
    {
        ApiReply::Offices(v) => Json(v).into_response(),
        other => unexpected(other),
    }
}

pub(super) async fn remove_office(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(office): Path<String>,
) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    let office = match office.parse() {
        Ok(o) => o,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "bad_request", format!("{e}")),
    };
    match state
        .core
        .call(Auth::Operator, ApiCommand::RemoveOffice { office })
        .await
    {
        ApiReply::Done => StatusCode::NO_CONTENT.into_response(),
        other => unexpected(other),
    }
}

pub(super) async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    match state.core.call(Auth::Operator, ApiCommand::Status).await {
        ApiReply::Status(v) => {
            // The core's view, and what only the process knows: its version, its store
            // and, on PostgreSQL, that it is the active node (a standby answers 503).
            let mut j = serde_json::to_value(v).unwrap_or_default();
            if let Some(o) = j.as_object_mut() {
                let info = &state.info;
                o.insert("version".into(), info.version.into());
                o.insert("store".into(), info.store.into());
                if let Some((node, fence)) = &info.lease {
                    o.insert("active_node".into(), node.as_str().into());
                    o.insert("lease_fence".into(), (*fence).into());
                }
            }
            Json(j).into_response()
        }
        other => unexpected(other),
    }
}

/// `POST /admin/v1/assignments` `{"assignment": HEX}`: installs the federation
/// authority's assignment of an office homed here (`renkei office assign`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignmentBody {
    assignment: String,
}

pub(super) async fn assign_office(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<AssignmentBody>,
) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    let Ok(assignment) = hex::decode(body.assignment.trim()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "assignment must be hex".into(),
        );
    };
    match state
        .core
        .call(Auth::Operator, ApiCommand::AssignOffice { assignment })
        .await
    {
        ApiReply::Done => StatusCode::NO_CONTENT.into_response(),
        other => unexpected(other),
    }
}

pub(super) async fn set_roster(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    match state
        .core
        .call(
            Auth::Operator,
            ApiCommand::SetRoster {
                roster: body.to_vec(),
            },
        )
        .await
    {
        ApiReply::Done => StatusCode::NO_CONTENT.into_response(),
        other => unexpected(other),
    }
}

/// Body of `POST /admin/v1/backup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackupBody {
    /// Where the node writes the backup: an absolute path on its machine, not existing yet.
    path: String,
}

/// `POST /admin/v1/backup` `{"path": "/abs/file"}`: a consistent copy of the store, written
/// by the node between two batches (`renkei backup`; [`crate::backup`]). The file appears
/// under its name only once complete (written as `FILE.partial`, synced, renamed).
pub(super) async fn backup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<BackupBody>,
) -> Response {
    if let Err(r) = check(&state, &headers) {
        return r;
    }
    let path = std::path::PathBuf::from(&body.path);
    if !path.is_absolute() || path.exists() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "{}: give an absolute path that does not exist yet",
                body.path
            ),
        );
    }
    let started = std::time::Instant::now();
    let done = state
        .core
        .with_store(move |store| crate::backup::dump_to_file(store, &path))
        .await;
    match done {
        Some(Ok(summary)) => Json(json!({
            "pairs": summary.pairs,
            "bytes": summary.bytes,
            "sha256": summary.sha256,
            "seconds": started.elapsed().as_secs_f64(),
        }))
        .into_response(),
        Some(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the core has stopped".into(),
        ),
    }
}
