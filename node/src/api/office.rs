//! Office endpoints: submit a send unit, inbox, downloads, sent items, proofs, directory.

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_protocol::ids::{EnvelopeId, OfficeNumber};
use serde::Deserialize;

use super::error::{json_error, unexpected};
use super::{AppState, office_auth};
use crate::core::{ApiCommand, ApiReply};

async fn call(
    state: &AppState,
    headers: &HeaderMap,
    cmd: ApiCommand,
) -> Result<ApiReply, Response> {
    let Some(auth) = office_auth(headers) else {
        return Err(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <office token>".into(),
        ));
    };
    Ok(state.core.call(auth, cmd).await)
}

fn parse_id(id: &str) -> Result<EnvelopeId, Response> {
    id.parse()
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, "bad_request", format!("{e}")))
}

pub(super) async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match call(&state, &headers, ApiCommand::WhoAmI).await {
        Ok(ApiReply::Office(v)) => Json(v).into_response(),
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

pub(super) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let Some(auth) = office_auth(&headers) else {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <office token>".into(),
        );
    };
    let mut files = Vec::new();
    let mut supersedes = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return multipart_error(e),
        };
        match field.name() {
            Some("file") => {
                let Some(name) = field.file_name().map(str::to_owned) else {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "each file part needs a filename".into(),
                    );
                };
                match field.bytes().await {
                    Ok(b) => files.push((name, b.to_vec())),
                    Err(e) => return multipart_error(e),
                }
            }
            Some("supersedes") => match field.text().await {
                Ok(t) if t.trim().is_empty() => {}
                Ok(t) => match parse_id(t.trim()) {
                    Ok(id) => supersedes = Some(id),
                    Err(r) => return r,
                },
                Err(e) => return multipart_error(e),
            },
            other => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "unknown form field {:?}; use `file` parts (and optional `supersedes`)",
                        other.unwrap_or("")
                    ),
                );
            }
        }
    }
    if files.is_empty() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "no `file` parts in the form".into(),
        );
    }
    // The check runs on the prepare pool, not on the core's thread.
    let Some(unit) = state.uploads.prepare(auth_key(&auth), files).await else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the node is shutting down".into(),
        );
    };
    match state
        .core
        .call(auth, ApiCommand::Submit { unit, supersedes })
        .await
    {
        ApiReply::Accepted(v) => (StatusCode::ACCEPTED, Json(v)).into_response(),
        other => unexpected(other),
    }
}

/// The token hash an office authenticates with (the upload bookkeeping's key).
fn auth_key(auth: &crate::core::Auth) -> [u8; 32] {
    match auth {
        crate::core::Auth::Office(k) => *k,
        crate::core::Auth::Operator => [0; 32],
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Response {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too_large"
    } else {
        "bad_request"
    };
    json_error(status, code, e.body_text())
}

#[derive(Deserialize)]
pub(super) struct InboxQuery {
    latest: Option<bool>,
    limit: Option<usize>,
    before: Option<String>,
}

/// A page of the inbox as a JSON array, newest received first. When older units remain,
/// `Link: <…?before=ID…>; rel="next"` and `X-Renkei-Next-Before: ID` say where the next
/// page starts: a long inbox is paged, never cut silently.
pub(super) async fn inbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<InboxQuery>,
) -> Response {
    let before = match q.before.as_deref().map(parse_id).transpose() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let latest = q.latest.unwrap_or(false);
    let limit = match page_limit(
        q.limit,
        crate::core::io::INBOX_PAGE_DEFAULT,
        crate::core::io::INBOX_PAGE_MAX,
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let cmd = ApiCommand::Inbox {
        latest_only: latest,
        before,
        limit,
    };
    match call(&state, &headers, cmd).await {
        Ok(ApiReply::InboxPage(page)) => {
            let mut r = Json(page.items).into_response();
            if let Some(next) = page.next {
                let link = format!(
                    "</v1/inbox?before={next}&limit={limit}&latest={latest}>; rel=\"next\""
                );
                for (name, value) in [("link", link), ("x-renkei-next-before", next.to_string())] {
                    if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                        r.headers_mut().insert(name, v);
                    }
                }
            }
            r
        }
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

pub(super) async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match call(&state, &headers, ApiCommand::Fetch { id, name }).await {
        Ok(ApiReply::File(f)) => {
            let ctype = if f.name.to_ascii_lowercase().ends_with(".jpg") {
                "image/jpeg"
            } else {
                "text/csv; charset=Shift_JIS"
            };
            let disposition = format!("attachment; filename=\"{}\"", f.name.replace('"', ""));
            (
                [
                    (header::CONTENT_TYPE, ctype.to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                f.bytes,
            )
                .into_response()
        }
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

/// `GET /v1/inbox/{id}/zip`: every file of a received unit in one ZIP (stored entries: the
/// bytes exactly as sent, under their original names). Marks the whole unit downloaded,
/// which signs `Retrieved`.
pub(super) async fn fetch_unit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match call(&state, &headers, ApiCommand::FetchUnit { id }).await {
        Ok(ApiReply::Files(files)) => zip_response(&files, &format!("renkei-{id}.zip")),
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

/// `files` as a ZIP download named `name`.
fn zip_response(files: &[crate::core::io::FileReply], name: &str) -> Response {
    match zip_of(files) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(name, error = %e, "building a ZIP failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("building the ZIP {name} failed: {e}"),
            )
        }
    }
}

/// A ZIP holding `files` as stored (uncompressed) entries, in order.
fn zip_of(files: &[crate::core::io::FileReply]) -> zip::result::ZipResult<Vec<u8>> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for f in files {
        w.start_file(f.name.as_str(), opts)?;
        w.write_all(&f.bytes)?;
    }
    Ok(w.finish()?.into_inner())
}

/// `GET /v1/sent?limit=N&before=ID`.
#[derive(Deserialize)]
pub(super) struct SentQuery {
    limit: Option<usize>,
    before: Option<String>,
}

/// A list's `limit`: `default` when absent, else 1..=`max` (400 outside, as documented).
fn page_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, Response> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("limit must be between 1 and {max}, got {limit}"),
        ))
    }
}

pub(super) async fn sent_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SentQuery>,
) -> Response {
    let before = match q.before.as_deref().map(parse_id).transpose() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let limit = match page_limit(
        q.limit,
        crate::core::io::SENT_PAGE_MAX,
        crate::core::io::SENT_PAGE_MAX,
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let cmd = ApiCommand::SentPage { before, limit };
    match call(&state, &headers, cmd).await {
        Ok(ApiReply::Sent(v)) => Json(v).into_response(),
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

pub(super) async fn sent_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match call(&state, &headers, ApiCommand::Sent { id: Some(id) }).await {
        Ok(ApiReply::Sent(mut v)) if !v.is_empty() => Json(v.remove(0)).into_response(),
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

/// `GET /v1/units/{id}/certificate`: the 送信・受信証明 of a unit the office sent or
/// received, with the proof's verification (the page prints it).
pub(super) async fn certificate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let parsed = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match call(&state, &headers, ApiCommand::Certificate { id: parsed }).await {
        Ok(ApiReply::Certificate(c)) => Json(*c).into_response(),
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

pub(super) async fn proof(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let parsed = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match call(&state, &headers, ApiCommand::Proof { id: parsed }).await {
        Ok(ApiReply::Proof(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/cbor".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"renkei-proof-{id}.cbor\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

pub(super) async fn directory(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(office): Path<String>,
) -> Response {
    let office: OfficeNumber = match office.parse() {
        Ok(o) => o,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "bad_request", format!("{e}")),
    };
    match call(&state, &headers, ApiCommand::Lookup { office }).await {
        Ok(ApiReply::Directory(v)) => Json(v).into_response(),
        Ok(other) => unexpected(other),
        Err(r) => r,
    }
}

/// Body of `POST /v1/send-units/groups`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupsBody {
    names: Vec<String>,
}

/// Most file names grouped at once.
const GROUP_NAMES_MAX: usize = 2000;

/// `POST /v1/send-units/groups` `{"names": [...]}`: how a folder of files splits into send
/// units — the rule `renkei send` uses (`renkei_protocol::csv::group_send_units`), by
/// sender, recipient, stamp and unit family, read from the names alone. The page sends
/// each group as one unit.
pub(super) async fn groups(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<GroupsBody>,
) -> Response {
    if let Err(r) = call(&state, &headers, ApiCommand::WhoAmI)
        .await
        .and_then(|r| match r {
            ApiReply::Office(_) => Ok(()),
            other => Err(unexpected(other)),
        })
    {
        return r;
    }
    if b.names.len() > GROUP_NAMES_MAX || b.names.iter().any(|n| n.chars().count() > 255) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("at most {GROUP_NAMES_MAX} names of up to 255 characters"),
        );
    }
    let files: Vec<(&str, &[u8])> = b.names.iter().map(|n| (n.as_str(), &[][..])).collect();
    let units: Vec<Vec<&str>> = renkei_protocol::csv::group_send_units(&files)
        .into_iter()
        .map(|g| g.into_iter().map(|(n, _)| n).collect())
        .collect();
    Json(serde_json::json!({ "units": units })).into_response()
}

/// Body of `POST /v1/inbox/zip`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ZipBody {
    ids: Vec<String>,
}

/// Units in one `POST /v1/inbox/zip`.
const ZIP_UNITS_MAX: usize = 50;

/// `POST /v1/inbox/zip` `{"ids": [...]}`: several received units in one ZIP, a folder per
/// unit (`STAMP_ID/` with the original names, bytes untouched). Every id is checked to be
/// a unit this office received before any is fetched, so `Retrieved` is signed for all of
/// them or for none.
pub(super) async fn fetch_units(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<ZipBody>,
) -> Response {
    if b.ids.is_empty() || b.ids.len() > ZIP_UNITS_MAX {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("ids: 1 to {ZIP_UNITS_MAX} unit ids"),
        );
    }
    let mut ids = Vec::new();
    for id in &b.ids {
        match parse_id(id) {
            Ok(i) if !ids.contains(&i) => ids.push(i),
            Ok(_) => {}
            Err(r) => return r,
        }
    }
    let mut folders = Vec::new();
    for id in &ids {
        match call(&state, &headers, ApiCommand::Certificate { id: *id }).await {
            Ok(ApiReply::Certificate(c)) if c.role == "received" => {
                folders.push(format!("{}_{}", c.stamp, &c.id[..8]));
            }
            Ok(ApiReply::Certificate(_)) => {
                return json_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{id} is not a unit this office received"),
                );
            }
            Ok(other) => return unexpected(other),
            Err(r) => return r,
        }
    }
    let mut all = Vec::new();
    for (id, folder) in ids.iter().zip(&folders) {
        match call(&state, &headers, ApiCommand::FetchUnit { id: *id }).await {
            Ok(ApiReply::Files(files)) => {
                all.extend(files.into_iter().map(|mut f| {
                    f.name = format!("{folder}/{}", f.name);
                    f
                }));
            }
            Ok(other) => return unexpected(other),
            Err(r) => return r,
        }
    }
    zip_response(&all, "renkei-units.zip")
}
