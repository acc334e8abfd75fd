//! Staff sign-in over real HTTP: the operator makes an office's first administrator with
//! the CLI; sign-in sets an HttpOnly SameSite cookie; changes need the CSRF header; the
//! administrator adds staff; failures lock an account; a TOTP second factor once enrolled;
//! sign-out everywhere; the idle timeout; one office's session sees nothing of another's.

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};

use renkei_tests::NodeProc;

const CM: &str = "4074478647";
const SVC: &str = "4071481594";

/// A signed-in page: the cookie and the CSRF token.
struct Session {
    url: String,
    cookie: String,
    csrf: String,
}

impl Session {
    fn get(&self, path: &str) -> Response {
        Client::new()
            .get(format!("{}{path}", self.url))
            .header(COOKIE, &self.cookie)
            .send()
            .unwrap()
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Value, csrf: bool) -> Response {
        let mut r = Client::new()
            .request(method, format!("{}{path}", self.url))
            .header(COOKIE, &self.cookie)
            .json(&body);
        if csrf {
            r = r.header("x-renkei-csrf", &self.csrf);
        }
        r.send().unwrap()
    }
}

fn sign_in(
    url: &str,
    office: &str,
    user: &str,
    password: &str,
    code: Option<&str>,
) -> Result<Session, (u16, Value)> {
    let mut body = json!({ "office": office, "user": user, "password": password });
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    let r = Client::new()
        .post(format!("{url}/v1/session"))
        .json(&body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let set = r
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let v: Value = r.json().unwrap();
    if status != 200 {
        return Err((status, v));
    }
    let set = set.expect("Set-Cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    Ok(Session {
        url: url.to_owned(),
        cookie: set.split(';').next().unwrap().to_owned(),
        csrf: v["csrf"].as_str().unwrap().to_owned(),
    })
}

fn code_now(secret_b32: &str) -> String {
    renkei_tests::totp_now(secret_b32)
}

#[test]
fn staff_sign_in_with_password_and_code_csrf_lockout_and_timeouts() {
    let mut node = NodeProc::init("staff", &[]);
    node.edit_config("session_idle_ms = 1800000", "session_idle_ms = 4000");
    node.run();
    let url = node.url.clone();
    node.add_office(CM, "43");
    let svc_token = node.add_office(SVC, "11");
    let password = node.staff_add(CM, "kanri", true);

    // Wrong password, unknown user, unknown office: the same answer.
    for (office, user, pw) in [
        (CM, "kanri", "wrong password!"),
        (CM, "nobody", password.as_str()),
        ("1234567890", "kanri", password.as_str()),
    ] {
        let (status, v) = sign_in(&url, office, user, pw, None).err().unwrap();
        assert_eq!(
            (status, v["error"].as_str().unwrap()),
            (401, "invalid_credentials")
        );
    }
    let admin = sign_in(&url, CM, "kanri", &password, None).unwrap();
    let me: Value = admin.get("/v1/me").json().unwrap();
    assert_eq!(me["office"], CM);
    assert_eq!(me["staff"]["user"], "kanri");
    assert_eq!(me["staff"]["admin"], true);
    // The session works like the office's token.
    assert_eq!(admin.get("/v1/inbox").status().as_u16(), 200);

    // A change without the CSRF header is refused; with it, the administrator adds staff.
    let add = json!({ "user": "tanaka", "password": "tanaka-pass-1" });
    let r = admin.send(reqwest::Method::POST, "/v1/staff", add.clone(), false);
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.json::<Value>().unwrap()["error"], "csrf");
    let r = admin.send(reqwest::Method::POST, "/v1/staff", add, true);
    assert_eq!(r.status().as_u16(), 201);
    let staff: Value = r.json().unwrap();
    assert_eq!(staff.as_array().unwrap().len(), 2);
    let weak = admin.send(
        reqwest::Method::POST,
        "/v1/staff",
        json!({ "user": "x", "password": "short" }),
        true,
    );
    assert_eq!(weak.status().as_u16(), 400);
    // Another office's token sees its own (empty) staff, never this office's.
    let other: Value = Client::new()
        .get(format!("{url}/v1/staff"))
        .bearer_auth(&svc_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(other, json!([]));

    // The administrator downloads the office's audit export (運営指導); a clerk may not.
    let month = renkei_protocol::export::month_of_ms(renkei_node::runtime::now_ms());
    let r = admin.get(&format!("/v1/audit-export?month={month}"));
    assert_eq!(r.status().as_u16(), 200);
    let export = renkei_protocol::export::AuditExport::decode(&r.bytes().unwrap()).unwrap();
    assert_eq!(export.office.to_string(), CM);
    assert_eq!(
        admin.get("/v1/audit-export?month=202513").status().as_u16(),
        400
    );

    // A clerk is no administrator.
    let clerk = sign_in(&url, CM, "tanaka", "tanaka-pass-1", None).unwrap();
    assert_eq!(
        clerk
            .get(&format!("/v1/audit-export?month={month}"))
            .status()
            .as_u16(),
        403
    );
    let r = clerk.send(
        reqwest::Method::POST,
        "/v1/staff",
        json!({ "user": "y", "password": "yyyyyyyyyyyy" }),
        true,
    );
    assert_eq!(r.status().as_u16(), 403);

    // Five wrong passwords lock the account; then even the right one is refused.
    for _ in 0..4 {
        assert_eq!(
            sign_in(&url, CM, "tanaka", "not the password", None)
                .err()
                .unwrap()
                .0,
            401
        );
    }
    let (status, v) = sign_in(&url, CM, "tanaka", "not the password", None)
        .err()
        .unwrap();
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (429, "account_locked")
    );
    assert_eq!(
        sign_in(&url, CM, "tanaka", "tanaka-pass-1", None)
            .err()
            .unwrap()
            .0,
        429
    );
    // The administrator resets the password, which unlocks it.
    let r = admin.send(
        reqwest::Method::POST,
        "/v1/staff/tanaka/password",
        json!({ "password": "tanaka-pass-2" }),
        true,
    );
    assert_eq!(r.status().as_u16(), 204);
    sign_in(&url, CM, "tanaka", "tanaka-pass-2", None).unwrap();

    // A second factor: enrolled with a code from the app, then asked at every sign-in.
    let fresh: Value = admin.get("/v1/totp").json().unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    assert!(
        fresh["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let r = admin.send(
        reqwest::Method::POST,
        "/v1/totp",
        json!({ "secret": secret, "code": "000000" }),
        true,
    );
    assert_eq!(r.status().as_u16(), 400, "a wrong code enrols nothing");
    let r = admin.send(
        reqwest::Method::POST,
        "/v1/totp",
        json!({ "secret": secret, "code": code_now(&secret) }),
        true,
    );
    assert_eq!(r.status().as_u16(), 204);
    let (status, v) = sign_in(&url, CM, "kanri", &password, None).err().unwrap();
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (401, "code_required")
    );
    assert_eq!(
        sign_in(&url, CM, "kanri", &password, Some("000000"))
            .err()
            .unwrap()
            .0,
        401
    );
    let second = sign_in(&url, CM, "kanri", &password, Some(&code_now(&secret))).unwrap();

    // Sign-out everywhere ends both of kanri's sessions, not tanaka's.
    let r = second.send(reqwest::Method::DELETE, "/v1/sessions", json!({}), true);
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(admin.get("/v1/me").status().as_u16(), 401);
    assert_eq!(second.get("/v1/me").status().as_u16(), 401);
    let tanaka = sign_in(&url, CM, "tanaka", "tanaka-pass-2", None).unwrap();
    assert_eq!(tanaka.get("/v1/me").status().as_u16(), 200);
    // Idle past the limit (4 s here), the session is over.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(tanaka.get("/v1/me").status().as_u16(), 401);
}

/// An office that requires a second factor: an account without one signs in only to enrol
/// one, then works as usual.
#[test]
fn a_required_second_factor_is_enrolled_before_anything_else() {
    let node = NodeProc::start("staff-required", &[]);
    let url = node.url.clone();
    node.add_office(CM, "43");
    let password = node.staff_add(CM, "kanri", true);
    let first = sign_in(&url, CM, "kanri", &password, None).unwrap();
    let r = first.send(
        reqwest::Method::PUT,
        "/v1/policy",
        json!({ "totp_required": true }),
        true,
    );
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().unwrap()["totp_required"], true);

    let r = Client::new()
        .post(format!("{url}/v1/session"))
        .json(&json!({ "office": CM, "user": "kanri", "password": password }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().unwrap()["must_enrol"], true);
    let s = sign_in(&url, CM, "kanri", &password, None).unwrap();
    assert_eq!(
        s.get("/v1/me").json::<Value>().unwrap()["staff"]["must_enrol"],
        true
    );
    assert_eq!(
        s.get("/v1/inbox").status().as_u16(),
        403,
        "only enrolment until enrolled"
    );
    let fresh: Value = s.get("/v1/totp").json().unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    let r = s.send(
        reqwest::Method::POST,
        "/v1/totp",
        json!({ "secret": secret, "code": code_now(&secret) }),
        true,
    );
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(s.get("/v1/inbox").status().as_u16(), 200);
}

/// A corporation's staff member granted another office of the same node switches to it,
/// sees that office's data (not its own), and loses it when the grant is revoked.
#[test]
fn a_corporation_account_switches_to_an_office_it_was_granted() {
    let node = NodeProc::start("staff-corp", &[]);
    let url = node.url.clone();
    let cm_token = node.add_office(CM, "43");
    let svc_token = node.add_office(SVC, "11");
    let honbu_pw = node.staff_add(CM, "honbu", false);
    // A unit for SVC, which honbu (of CM) will read once granted.
    let (st, body) = renkei_tests::Office::new(&url, &cm_token)
        .submit(&renkei_tests::fixture_files("valid/d2_kyo_riyohyo"));
    assert_eq!(st, 202, "{body}");
    let honbu = sign_in(&url, CM, "honbu", &honbu_pw, None).unwrap();
    let to_svc = json!({ "office": SVC });
    assert_eq!(
        honbu
            .send(
                reqwest::Method::POST,
                "/v1/session/office",
                to_svc.clone(),
                true
            )
            .status()
            .as_u16(),
        403,
        "not granted yet"
    );
    // SVC (its token: its administrators) grants CM's honbu.
    let r = Client::new()
        .post(format!("{url}/v1/grants"))
        .bearer_auth(&svc_token)
        .json(&json!({ "office": CM, "user": "honbu" }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let me: Value = honbu.get("/v1/me").json().unwrap();
    assert_eq!(me["staff"]["offices"], json!([CM, SVC]));
    let r = honbu.send(reqwest::Method::POST, "/v1/session/office", to_svc, true);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().unwrap()["office"], SVC);
    let inbox: Value = honbu.get("/v1/inbox").json().unwrap();
    assert_eq!(inbox.as_array().unwrap().len(), 1, "SVC's inbox: {inbox}");
    // Revoked: the session acting for SVC ends.
    let r = Client::new()
        .delete(format!("{url}/v1/grants/{CM}/honbu"))
        .bearer_auth(&svc_token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(honbu.get("/v1/inbox").status().as_u16(), 401);
}
