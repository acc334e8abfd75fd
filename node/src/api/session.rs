//! Staff sign-in for the page: user ID and password (argon2id) and, once enrolled, a TOTP
//! code; a session in an HttpOnly, SameSite=Strict cookie (`Secure` when configured), with
//! a CSRF token for every request that changes something; staff management by the
//! office's administrators. Hashing and verifying run on the blocking pool, never on the
//! core's thread; the core keeps the accounts, counts failures and holds the sessions
//! (`renkei_core::staff`). Care software keeps using API tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_protocol::envelope::sha256;
use renkei_protocol::ids::OfficeNumber;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{json_error, unexpected};
use crate::core::{ApiCommand, ApiReply, Auth};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "renkei_session";
/// The header carrying the CSRF token on every cookie-authenticated change.
pub(crate) const CSRF_HEADER: &str = "x-renkei-csrf";
/// Shortest password accepted.
pub const PASSWORD_MIN: usize = 10;
/// Longest password accepted (characters).
const PASSWORD_MAX: usize = 128;
/// TOTP: RFC 6238 defaults every authenticator app uses (SHA-1, 6 digits, 30 s), one step
/// of clock skew either way.
const TOTP_DIGITS: usize = 6;
const TOTP_STEP: u64 = 30;
/// Bytes of a new TOTP secret (160 bits, as RFC 4226 recommends).
const TOTP_SECRET_LEN: usize = 20;

/// The session token in the request's cookie, if any.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The CSRF token of a session: derived from its secret cookie, which another site's page
/// can neither read nor guess.
pub(crate) fn csrf_for(token: &str) -> String {
    hex::encode(sha256(format!("renkei-csrf\0{token}").as_bytes()))
}

/// Middleware: a request that changes something and authenticates by the session cookie
/// (not by an `Authorization` header) must carry the session's CSRF token.
pub(crate) async fn csrf_guard(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = req.headers();
    if !safe
        && !headers.contains_key(header::AUTHORIZATION)
        && let Some(token) = cookie_token(headers)
    {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let ok = sent.is_some_and(|s| {
            subtle::ConstantTimeEq::ct_eq(s.as_bytes(), csrf_for(&token).as_bytes()).into()
        });
        if !ok {
            return json_error(
                StatusCode::FORBIDDEN,
                "csrf",
                format!("a signed-in change needs the session's {CSRF_HEADER} header"),
            );
        }
    }
    next.run(req).await
}

fn cookie(state: &AppState, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if state.session_cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("renkei_session=; Max-Age=0"))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], Response> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("getrandom: {e}"),
        )
    })?;
    Ok(b)
}

fn bad(message: &str) -> Response {
    json_error(StatusCode::BAD_REQUEST, "bad_request", message.into())
}

fn not_signed_in() -> Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "not signed in".into(),
    )
}

/// The staff member the request's session cookie signs in (a token is no session).
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Auth, crate::core::views::SessionView), Response> {
    let auth = session_auth(headers).ok_or_else(not_signed_in)?;
    match state.core.call(auth.clone(), ApiCommand::WhoAmI).await {
        ApiReply::Office(v) => v.staff.map(|s| (auth, s)).ok_or_else(not_signed_in),
        ApiReply::Unauthorized => Err(not_signed_in()),
        other => Err(unexpected(other)),
    }
}

/// A new password, checked against the rules and hashed.
async fn new_password(password: String) -> Result<String, Response> {
    password_ok(&password)?;
    hash_password(password).await
}

fn password_ok(p: &str) -> Result<(), Response> {
    let chars = p.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&chars) {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "weak_password",
            format!("a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters long"),
        ));
    }
    Ok(())
}

/// argon2id (the crate's defaults: 19 MiB, 2 passes) with a fresh salt, on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, Response> {
    let salt = random_bytes::<16>()?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| {
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("password hash: {e}"),
        )
    })
}

/// A hash of nothing anyone knows, checked when the user does not exist, so that an
/// unknown user costs the same time as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // (Sixteen bytes always encode as a salt; were it ever refused, an empty decoy is
    // refused at once, costing less time but still answering "invalid".)
    DECOY.get_or_init(|| {
        SaltString::encode_b64(b"renkei-no-user!!")
            .ok()
            .and_then(|salt| {
                argon2::Argon2::default()
                    .hash_password(b"no such user", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

fn totp(secret: Vec<u8>) -> Option<totp_rs::TOTP> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, TOTP_DIGITS, 1, TOTP_STEP, secret).ok()
}

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Body of `POST /v1/session`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignInBody {
    office: String,
    user: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
}

/// Why a sign-in fails, once the password was checked.
enum Verdict {
    Ok,
    Wrong,
    CodeNeeded,
}

/// `POST /v1/session`: signs a staff member in.
pub(super) async fn sign_in(State(state): State<AppState>, Json(b): Json<SignInBody>) -> Response {
    if b.password.chars().count() > PASSWORD_MAX {
        return bad("password too long");
    }
    // An office that is no office number, or a malformed user ID, is just wrong credentials.
    let Ok(office) = b.office.trim().parse::<OfficeNumber>() else {
        return invalid();
    };
    if !crate::core::staff::user_id_ok(&b.user) {
        return invalid();
    }
    let creds = match state
        .core
        .call(
            Auth::Operator,
            ApiCommand::StaffCredentials {
                office: office.clone(),
                user: b.user.clone(),
            },
        )
        .await
    {
        ApiReply::StaffCredentials(c) => Some(c),
        ApiReply::NotFound(_) => None,
        other => return unexpected(other),
    };
    let (phc, secret) = match &creds {
        Some(c) => (c.password.clone(), c.totp.clone()),
        None => (decoy().to_owned(), Vec::new()),
    };
    let (password, code) = (b.password, b.code);
    let verdict = tokio::task::spawn_blocking(move || {
        let right = PasswordHash::new(&phc).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        if !right {
            return Verdict::Wrong;
        }
        if secret.is_empty() {
            return Verdict::Ok;
        }
        match (code, totp(secret)) {
            (None, _) => Verdict::CodeNeeded,
            (Some(c), Some(t)) if t.check(c.trim(), unix_s()) => Verdict::Ok,
            _ => Verdict::Wrong,
        }
    })
    .await
    .unwrap_or(Verdict::Wrong);
    if creds.is_none() {
        return invalid();
    }
    if matches!(verdict, Verdict::CodeNeeded) {
        // The password was right: the page asks for the code (no failure counted).
        return json_error(
            StatusCode::UNAUTHORIZED,
            "code_required",
            "enter the code from the authenticator app".into(),
        );
    }
    let token = match random_bytes::<32>() {
        Ok(b) => hex::encode(b),
        Err(r) => return r,
    };
    match state
        .core
        .call(
            Auth::Operator,
            ApiCommand::SignIn {
                office,
                user: b.user,
                ok: matches!(verdict, Verdict::Ok),
                session_hash: sha256(token.as_bytes()),
            },
        )
        .await
    {
        ApiReply::SignedIn(v) => {
            let max_age = v.expires_at_ms.saturating_sub(crate::runtime::now_ms()) / 1000;
            let mut r = Json(json!({
                "office": v.office,
                "user": v.user,
                "admin": v.admin,
                "expires_at_ms": v.expires_at_ms,
                "must_enrol": v.must_enrol,
                "csrf": csrf_for(&token),
            }))
            .into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, cookie(&state, &token, max_age.max(1)));
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        ApiReply::SignInRefused { locked_until_ms } if locked_until_ms > 0 => {
            let secs = locked_until_ms.saturating_sub(crate::runtime::now_ms()) / 1000 + 1;
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "account_locked",
                format!("too many failed sign-ins for this account; try again in {secs}s"),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        ApiReply::SignInRefused { .. } => invalid(),
        other => unexpected(other),
    }
}

fn invalid() -> Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong office number, user ID, password or code".into(),
    )
}

fn session_auth(headers: &HeaderMap) -> Option<Auth> {
    cookie_token(headers).map(|t| Auth::Office(sha256(t.as_bytes())))
}

async fn sign_out_with(state: &AppState, headers: &HeaderMap, everywhere: bool) -> Response {
    let Some(auth) = session_auth(headers) else {
        return not_signed_in();
    };
    match state
        .core
        .call(auth, ApiCommand::SignOut { everywhere })
        .await
    {
        ApiReply::Done | ApiReply::Unauthorized => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, cookie(state, "", 0));
            r
        }
        other => unexpected(other),
    }
}

/// `DELETE /v1/session`: signs this session out.
pub(super) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_out_with(&state, &headers, false).await
}

/// `DELETE /v1/sessions`: signs the account out everywhere.
pub(super) async fn sign_out_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    sign_out_with(&state, &headers, true).await
}

fn caller(headers: &HeaderMap) -> Result<Auth, Response> {
    super::office_auth(headers).ok_or_else(|| {
        json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in, or send Authorization: Bearer <office token>".into(),
        )
    })
}

fn staff_reply(reply: ApiReply, created: bool) -> Response {
    match reply {
        ApiReply::Staff(v) if created => (StatusCode::CREATED, Json(v)).into_response(),
        ApiReply::Staff(v) => Json(v).into_response(),
        ApiReply::Done => StatusCode::NO_CONTENT.into_response(),
        other => unexpected(other),
    }
}

/// `GET /v1/staff`: the office's staff (administrators and the office's token).
pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    staff_reply(
        state
            .core
            .call(auth, ApiCommand::StaffList { office: None })
            .await,
        false,
    )
}

/// Body of `POST /v1/staff`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddBody {
    user: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /v1/staff`: adds a staff account to the caller's office.
pub(super) async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<AddBody>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let password = match new_password(b.password).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cmd = ApiCommand::StaffAdd {
        office: None,
        user: b.user,
        password,
        admin: b.admin,
    };
    staff_reply(state.core.call(auth, cmd).await, true)
}

/// `DELETE /v1/staff/{user}`.
pub(super) async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cmd = ApiCommand::StaffRemove { office: None, user };
    staff_reply(state.core.call(auth, cmd).await, false)
}

/// Body of `POST /v1/staff/{user}/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    password: String,
}

/// `POST /v1/staff/{user}/password`: a new password (administrators for anyone, staff for
/// themselves).
pub(super) async fn set_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Json(b): Json<PasswordBody>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let password = match new_password(b.password).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cmd = ApiCommand::StaffPassword {
        office: None,
        user,
        password,
    };
    staff_reply(state.core.call(auth, cmd).await, false)
}

/// `DELETE /v1/staff/{user}/totp`: removes a second factor (a lost phone).
pub(super) async fn remove_totp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cmd = ApiCommand::StaffTotp {
        user: Some(user),
        secret: Vec::new(),
    };
    staff_reply(state.core.call(auth, cmd).await, false)
}

/// `GET /v1/totp`: a fresh secret to enrol (nothing is stored until it is confirmed).
pub(super) async fn new_totp(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let staff = match signed_in(&state, &headers).await {
        Ok((_, s)) => s,
        Err(r) => return r,
    };
    let secret = match random_bytes::<TOTP_SECRET_LEN>() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let b32 = data_encoding::BASE32_NOPAD.encode(&secret);
    let label = format!("Renkei:{}-{}", staff.office, staff.user);
    let uri = format!(
        "otpauth://totp/{}?secret={b32}&issuer=Renkei&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP}",
        label.replace(' ', "%20")
    );
    let mut r = Json(json!({ "secret": b32, "uri": uri })).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Body of `POST /v1/totp`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnrolBody {
    secret: String,
    code: String,
}

/// `POST /v1/totp`: enrols the secret once a code from it proves the app holds it.
pub(super) async fn enrol_totp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<EnrolBody>,
) -> Response {
    // Signed in first: a code is checked for a live session only.
    let auth = match signed_in(&state, &headers).await {
        Ok((a, _)) => a,
        Err(r) => return r,
    };
    let Some(secret) = data_encoding::BASE32_NOPAD
        .decode(b.secret.trim().to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|s| s.len() == TOTP_SECRET_LEN)
    else {
        return bad("secret must be the base32 secret given by GET /v1/totp");
    };
    if !totp(secret.clone()).is_some_and(|t| t.check(b.code.trim(), unix_s())) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "wrong_code",
            "the code does not match the secret: check the app and the device's clock".into(),
        );
    }
    let cmd = ApiCommand::StaffTotp { user: None, secret };
    staff_reply(state.core.call(auth, cmd).await, false)
}

/// Body of `POST /admin/v1/offices/{office}/staff`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminAddBody {
    user: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    admin: bool,
}

/// `POST /admin/v1/offices/{office}/staff`: the operator adds a staff account (the
/// office's first administrator); without a password one is made and returned once.
pub(super) async fn admin_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(office): Path<String>,
    Json(b): Json<AdminAddBody>,
) -> Response {
    if let Err(r) = super::admin::check(&state, &headers) {
        return r;
    }
    let Ok(office) = office.parse::<OfficeNumber>() else {
        return bad("office must be a 10-digit office number");
    };
    let made = b.password.is_none();
    let password = match b.password {
        Some(p) => p,
        None => match random_bytes::<12>() {
            Ok(r) => data_encoding::BASE32_NOPAD.encode(&r).to_ascii_lowercase(),
            Err(r) => return r,
        },
    };
    let phc = match new_password(password.clone()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cmd = ApiCommand::StaffAdd {
        office: Some(office.clone()),
        user: b.user.clone(),
        password: phc,
        admin: b.admin,
    };
    match state.core.call(Auth::Operator, cmd).await {
        ApiReply::Staff(_) => (
            StatusCode::CREATED,
            Json(json!({
                "office": office,
                "user": b.user,
                "admin": b.admin,
                "password": made.then_some(password),
            })),
        )
            .into_response(),
        other => unexpected(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_csrf_depends_on_it() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; renkei_session=abc123; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("abc123"));
        assert_ne!(csrf_for("abc123"), csrf_for("abc124"));
        h.insert(header::COOKIE, HeaderValue::from_static("renkei_session="));
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn a_password_hash_verifies_its_password_only() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let phc = rt
            .block_on(hash_password("correct horse".into()))
            .unwrap_or_else(|_| panic!("hash"));
        assert!(phc.starts_with("$argon2id$"));
        let h = PasswordHash::new(&phc).unwrap_or_else(|e| panic!("{e}"));
        let a = argon2::Argon2::default();
        assert!(a.verify_password(b"correct horse", &h).is_ok());
        assert!(a.verify_password(b"correct horsf", &h).is_err());
        assert!(PasswordHash::new(decoy()).is_ok());
    }
}

/// Body of `PUT /v1/notify`: `email` is required, a string or `null`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifyBody {
    #[serde(deserialize_with = "present")]
    email: Option<String>,
}

/// A field that must be there, though it may be `null` (serde takes a missing
/// `Option` as `None` otherwise).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// `PUT /v1/notify` `{"email": "..." | null}`: the address told of new arrivals (the
/// office's administrators).
pub(super) async fn set_notify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<NotifyBody>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match state
        .core
        .call(auth, ApiCommand::SetNotify { email: b.email })
        .await
    {
        ApiReply::Office(v) => Json(v).into_response(),
        other => unexpected(other),
    }
}

/// Body of `PUT /v1/policy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyBody {
    totp_required: bool,
}

/// `PUT /v1/policy` `{"totp_required": true}`: whether the office's staff must enrol a
/// second factor (the office's administrators); from their next sign-in, an account
/// without one may only enrol one.
pub(super) async fn set_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<PolicyBody>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cmd = ApiCommand::SetTotpRequired {
        required: b.totp_required,
    };
    match state.core.call(auth, cmd).await {
        ApiReply::Office(v) => Json(v).into_response(),
        other => unexpected(other),
    }
}

/// Body of `POST /v1/grants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantBody {
    office: String,
    user: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /v1/grants` `{"office","user","admin"}`: lets a staff member of another office
/// homed here (a corporation's) act for the caller's office (its administrators).
pub(super) async fn grant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<GrantBody>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(home) = b.office.parse::<OfficeNumber>() else {
        return bad("office must be a 10-digit office number");
    };
    let cmd = ApiCommand::StaffGrant {
        home,
        user: b.user,
        admin: Some(b.admin),
    };
    staff_reply(state.core.call(auth, cmd).await, true)
}

/// `DELETE /v1/grants/{office}/{user}`: revokes a grant (the sessions acting on it end).
pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((office, user)): Path<(String, String)>,
) -> Response {
    let auth = match caller(&headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(home) = office.parse::<OfficeNumber>() else {
        return bad("office must be a 10-digit office number");
    };
    if !crate::core::staff::user_id_ok(&user) {
        return bad("a user ID is 1 to 64 characters of A-Z a-z 0-9 . _ - @");
    }
    let cmd = ApiCommand::StaffGrant {
        home,
        user,
        admin: None,
    };
    staff_reply(state.core.call(auth, cmd).await, false)
}

/// Body of `POST /v1/session/office`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SwitchBody {
    office: String,
}

/// `POST /v1/session/office` `{"office"}`: this session acts for another office its
/// account was granted, or for its own again.
pub(super) async fn switch_office(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<SwitchBody>,
) -> Response {
    let Some(auth) = session_auth(&headers) else {
        return not_signed_in();
    };
    let Ok(office) = b.office.parse::<OfficeNumber>() else {
        return bad("office must be a 10-digit office number");
    };
    match state
        .core
        .call(auth, ApiCommand::SwitchOffice { office })
        .await
    {
        ApiReply::Office(v) => Json(v).into_response(),
        other => unexpected(other),
    }
}
