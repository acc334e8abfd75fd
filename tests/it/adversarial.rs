//! Hostile HTTP clients against a real `renkei run`: bad file names, huge headers, token
//! guessing, slow bodies. Each is refused clearly and stores nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use renkei_tests::{NodeProc, Office, Running, fixture_files, renkei_bin};

const CM: &str = "4074478647";
const SVC: &str = "4071481594";

/// One multipart upload with raw (unescaped) file names; returns (status, JSON body).
fn upload_raw(url: &str, token: &str, files: &[(Vec<u8>, Vec<u8>)]) -> (u16, serde_json::Value) {
    let boundary = "renkeiadv0b1";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"")
                .as_bytes(),
        );
        body.extend_from_slice(name);
        body.extend_from_slice(b"\"\r\nContent-Type: text/csv\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/send-units"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

#[test]
fn hostile_file_names_are_refused_and_nothing_is_stored() {
    let node = NodeProc::start("advnames", &[]);
    let cm = Office::new(&node.url, &node.add_office(CM, "43"));
    let svc = Office::new(&node.url, &node.add_office(SVC, "11"));
    let unit = fixture_files("valid/d2_kyo_riyohyo");
    let (first, bytes) = &unit[0];
    for (what, name) in [
        ("path traversal", format!("../{first}").into_bytes()),
        ("absolute path", format!("/etc/{first}").into_bytes()),
        ("NUL", {
            let mut n = first.clone().into_bytes();
            n.insert(6, 0);
            n
        }),
        ("control character", {
            let mut n = first.clone().into_bytes();
            n.insert(6, 0x1b);
            n
        }),
        ("newline", format!("{first}\nUPPLAN.CSV").into_bytes()),
    ] {
        let mut files: Vec<(Vec<u8>, Vec<u8>)> = unit
            .iter()
            .skip(1)
            .map(|(n, b)| (n.clone().into_bytes(), b.clone()))
            .collect();
        files.push((name, bytes.clone()));
        let (status, body) = upload_raw(&cm.url, &cm.token, &files);
        assert!(
            status == 422 || status == 400,
            "{what}: status {status}, {body}"
        );
        if status == 422 {
            let findings = body["findings"].as_array().expect("findings");
            assert!(
                findings
                    .iter()
                    .any(|f| f["rule"].as_str().is_some_and(|r| r.starts_with("name"))),
                "{what}: no finding names the file-name rule: {body}"
            );
        } else {
            assert!(body["message"].as_str().is_some(), "{what}: {body}");
        }
    }
    let sent: serde_json::Value = cm.json("/v1/sent");
    assert_eq!(sent.as_array().map(Vec::len), Some(0), "{sent}");
    let inbox: serde_json::Value = svc.json("/v1/inbox");
    assert_eq!(inbox.as_array().map(Vec::len), Some(0), "{inbox}");
    // The genuine unit still goes through.
    let (status, body) = cm.submit(&unit);
    assert_eq!(status, 202, "{body}");
}

/// Sends `request` over a raw socket; returns the status line's code, or None when the
/// server closed the connection without answering.
fn raw_status(url: &str, request: &[u8]) -> Option<u16> {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request);
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn huge_headers_are_refused() {
    let node = NodeProc::start("advheaders", &[]);
    let big = "a".repeat(1024 * 1024);
    let req = format!("GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Filler: {big}\r\n\r\n");
    let status = raw_status(&node.url, req.as_bytes());
    assert!(
        status.is_none_or(|s| s == 431 || s == 400),
        "a 1 MiB header got {status:?}"
    );
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!("GET /v1/me HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let status = raw_status(&node.url, req.as_bytes());
    assert!(
        status.is_none_or(|s| s == 431 || s == 400),
        "2000 headers got {status:?}"
    );
    // The node still serves.
    let ok = reqwest::blocking::get(format!("{}/healthz", node.url)).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[test]
fn token_guessing_is_rate_limited() {
    let node = NodeProc::start("advtokens", &[]);
    let token = node.add_office(CM, "43");
    let client = reqwest::blocking::Client::new();
    let me = |t: &str| {
        client
            .get(format!("{}/v1/me", node.url))
            .bearer_auth(t)
            .send()
            .unwrap()
    };
    assert_eq!(me(&token).status().as_u16(), 200);
    for i in 0..20 {
        let r = me(&format!("{:064x}", i + 1));
        assert_eq!(r.status().as_u16(), 401, "guess {i}");
    }
    let r = me("0000");
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too many failed authentications"),
        "{body}"
    );
    // While the address is blocked, wrong tokens stay refused but the right one goes
    // through: a mistyping neighbour behind the same address locks nobody out.
    assert_eq!(me(&token).status().as_u16(), 200);
    assert_eq!(me(&format!("{:064x}", 99)).status().as_u16(), 429);
}

#[test]
fn slow_body_is_cut_by_the_request_timeout() {
    let node = NodeProc::init("advslow", &[]);
    node.edit_config("request_timeout_ms = 30000", "request_timeout_ms = 1000");
    let log = std::fs::File::create(node.dir.0.join("node.log")).unwrap();
    let _run = Running(
        Command::new(renkei_bin())
            .args(["run", "--dir", node.dir_str()])
            .env_remove("RENKEI_REQUEST_TIMEOUT_MS")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{}/healthz", node.url)).is_err() {
        assert!(Instant::now() < deadline, "node did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cm = Office::new(&node.url, &node.add_office(CM, "43"));
    let addr = node.url.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let boundary = "slowb";
    let part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.CSV\"\r\n\r\n"
    );
    let head = format!(
        "POST /v1/send-units HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n{part}0123456789",
        cm.token
    );
    s.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = start.elapsed();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 1000 ms"), "{text}");
    assert!(
        waited < Duration::from_secs(10),
        "cut after {waited:?}, not ~1 s"
    );
    let sent: serde_json::Value = cm.json("/v1/sent");
    assert_eq!(sent.as_array().map(Vec::len), Some(0));
}

#[test]
fn audit_export_and_chain_verify_end_to_end() {
    let mut node = NodeProc::start("advaudit", &[]);
    let cm = Office::new(&node.url, &node.add_office(CM, "43"));
    let _svc = Office::new(&node.url, &node.add_office(SVC, "11"));
    let (status, body) = cm.submit(&fixture_files("valid/d2_kyo_riyohyo"));
    assert_eq!(status, 202, "{body}");
    cm.wait_status(body["id"].as_str().unwrap(), &["delivered"]);
    let key = renkei_tests::renkei(&["key", "show", "--dir", node.dir_str()])
        .lines()
        .find_map(|l| l.strip_prefix("operator id:").map(|k| k.trim().to_owned()))
        .unwrap();
    let out = node.dir.0.join("export-cm.cbor");
    let out_s = out.to_str().unwrap().to_owned();
    // Through the running node's admin endpoint.
    let wrote = renkei_tests::renkei(&[
        "audit",
        "export",
        "--dir",
        node.dir_str(),
        "--office",
        CM,
        "--month",
        "202505",
        "-o",
        &out_s,
    ]);
    assert!(wrote.contains("1 unit(s) (1 sent, 0 received)"), "{wrote}");
    let verified = renkei_tests::renkei(&["verify", &out_s, "--node-key", &key]);
    assert!(
        verified.contains("VALID audit export: 1 unit(s)"),
        "{verified}"
    );
    assert!(verified.contains("VALID   sent"), "{verified}");
    // A bundle with one byte changed does not verify.
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 70] ^= 1; // inside the last receipt's signature
    std::fs::write(&out, &bytes).unwrap();
    let bad = Command::new(renkei_bin())
        .args(["verify", &out_s, "--node-key", &key])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // Offline, on the stopped node's store: the receiving side, and the audit chain.
    assert_eq!(node.signal("-TERM"), Some(0));
    let wrote = renkei_tests::renkei(&[
        "audit",
        "export",
        "--dir",
        node.dir_str(),
        "--office",
        SVC,
        "--month",
        "202505",
        "-o",
        &out_s,
    ]);
    assert!(wrote.contains("(0 sent, 1 received)"), "{wrote}");
    let verified = renkei_tests::renkei(&["verify", &out_s, "--node-key", &key]);
    assert!(verified.contains("VALID   received"), "{verified}");
    let chain = renkei_tests::renkei(&["audit", "verify", "--dir", node.dir_str()]);
    assert!(chain.starts_with("audit chain OK: "), "{chain}");
}
