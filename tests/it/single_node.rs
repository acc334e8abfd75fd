//! One `renkei run` process, two or more offices homed at it: the HTTP API end to end.

use std::time::Duration;

use renkei_tests::{NodeProc, Office, fixture_files, renkei};

const CM: &str = "4074478647"; // 居宅介護支援 (43)
const SVC: &str = "4071481594"; // 訪問介護 (11)
const YOBO: &str = "4009242217"; // 介護予防支援 (46)
const YOBO_SVC: &str = "4070383858"; // (63)

struct Setup {
    node: NodeProc,
    cm: Office,
    svc: Office,
    yobo: Office,
    yobo_svc: Office,
}

fn setup(name: &str) -> Setup {
    setup_with(NodeProc::start(name, &[]))
}

fn setup_with(node: NodeProc) -> Setup {
    let cm = Office::new(&node.url, &node.add_office(CM, "43"));
    let svc = Office::new(&node.url, &node.add_office(SVC, "11"));
    let yobo = Office::new(&node.url, &node.add_office(YOBO, "46"));
    let yobo_svc = Office::new(&node.url, &node.add_office(YOBO_SVC, "63"));
    Setup {
        node,
        cm,
        svc,
        yobo,
        yobo_svc,
    }
}

fn operator_id(node: &NodeProc) -> String {
    let out = renkei(&["key", "show", "--dir", node.dir_str()]);
    out.lines()
        .find_map(|l| l.strip_prefix("operator id:"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn every_fixture_unit_goes_through_byte_exact_with_verified_receipts() {
    let s = setup("exchange");
    let node_key = operator_id(&s.node);
    let units: &[(&str, &Office, &Office)] = &[
        ("valid/d1_kyo_plan", &s.cm, &s.svc),
        ("valid/d2_kyo_riyohyo", &s.cm, &s.svc),
        ("valid/d3_jisseki", &s.svc, &s.cm),
        ("valid/d4_yobo_kihon", &s.yobo, &s.yobo_svc),
        ("valid/d5_yobo_plan", &s.yobo, &s.yobo_svc),
    ];
    let deletes = fixture_files("valid/deletes");
    type Unit<'a> = (Vec<(String, Vec<u8>)>, &'a Office, &'a Office);
    let mut all: Vec<Unit> = units
        .iter()
        .map(|(d, from, to)| (fixture_files(d), *from, *to))
        .collect();
    for (name, bytes) in deletes {
        let (from, to) = if name.starts_with("DLTJSK") {
            (&s.svc, &s.cm)
        } else {
            (&s.cm, &s.svc)
        };
        all.push((vec![(name, bytes)], from, to));
    }
    for (files, from, to) in all {
        let (status, body) = from.submit(&files);
        assert_eq!(status, 202, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        from.wait_status(&id, &["delivered"]);
        for (name, bytes) in &files {
            let (st, got) = to.get(&format!("/v1/inbox/{id}/files/{name}"));
            assert_eq!(st, 200);
            assert_eq!(&got, bytes, "{name} changed in transit");
        }
        let sent = from.wait_status(&id, &["retrieved"]);
        let kinds: Vec<&str> = sent["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["accepted", "delivered", "retrieved"]);
        let (st, proof) = from.get(&format!("/v1/sent/{id}/proof"));
        assert_eq!(st, 200);
        let path = s.node.dir.0.join(format!("proof-{id}.cbor"));
        std::fs::write(&path, &proof).unwrap();
        let out = renkei(&["verify", path.to_str().unwrap(), "--node-key", &node_key]);
        assert!(out.starts_with("VALID"), "{out}");
        assert!(out.contains("retrieved by operator"), "{out}");
        // a tampered proof does not verify
        let mut bad = proof.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let o = std::process::Command::new(renkei_tests::renkei_bin())
            .args(["verify", path.to_str().unwrap(), "--node-key", &node_key])
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0), "tampered proof verified");
    }
    let inbox = s.svc.json("/v1/inbox");
    assert_eq!(inbox.as_array().unwrap().len(), 4, "{inbox}"); // d1, d2, DLT1KYO, DLTPLAN
}

#[test]
fn invalid_fixtures_get_422_with_the_named_finding() {
    let s = setup("invalid");
    let cases: &[(&str, &str)] = &[
        ("bad_date", "date.calendar"),
        ("bad_month", "format.yyyymm"),
        ("bom", "encoding.bom"),
        ("empty", "file.empty"),
        ("header", "csv.header_row"),
        ("insured_9digits", "insured.format"),
        ("insurer_check_digit", "insurer.check_digit"),
        ("mixed_versions", "version.mixed"),
        ("no_total", "sikyu.total_missing"),
        ("nondigit_office", "format.digits"),
        ("sender_mismatch", "name.sender_mismatch"),
        ("two_months", "month.multiple"),
        ("unknown_prefix", "name.prefix"),
        ("unterminated", "csv.unterminated_quote"),
        ("utf8", "encoding.utf8"),
        ("wrong_columns", "csv.column_count"),
    ];
    for (dir, rule) in cases {
        let files = fixture_files(&format!("invalid/{dir}"));
        let (status, body) = s.cm.submit(&files);
        assert_eq!(status, 422, "{dir}: {body}");
        assert_eq!(body["error"], "invalid", "{dir}: {body}");
        let rules: Vec<&str> = body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        assert!(rules.contains(rule), "{dir}: want {rule}, got {rules:?}");
    }
    // nothing was accepted
    assert_eq!(s.cm.json("/v1/sent").as_array().unwrap().len(), 0);
    assert_eq!(s.svc.json("/v1/inbox").as_array().unwrap().len(), 0);
}

#[test]
fn offices_see_only_their_own_data_and_errors_leak_nothing() {
    let s = setup("auth");
    let files = fixture_files("valid/d2_kyo_riyohyo");
    let (status, body) = s.cm.submit(&files);
    assert_eq!(status, 202);
    let id = body["id"].as_str().unwrap().to_owned();
    s.cm.wait_status(&id, &["delivered"]);
    let name = &files[0].0;

    // no token, wrong token → 401
    let anon = Office::new(&s.node.url, "");
    for path in ["/v1/inbox", "/v1/sent", &format!("/v1/sent/{id}")] {
        assert_eq!(anon.get(path).0, 401, "{path}");
        assert_eq!(
            Office::new(&s.node.url, "not-a-token").get(path).0,
            401,
            "{path}"
        );
    }
    // another office's token: not found, and the body names nothing of the unit
    for (who, path) in [
        (&s.yobo, format!("/v1/inbox/{id}/files/{name}")),
        (&s.yobo, format!("/v1/inbox/{id}/zip")),
        (&s.yobo, format!("/v1/sent/{id}")),
        (&s.yobo, format!("/v1/sent/{id}/proof")),
        (&s.svc, format!("/v1/sent/{id}")),
        (&s.cm, format!("/v1/inbox/{id}/files/{name}")),
    ] {
        let (st, b) = who.get(&path);
        assert!(st == 404 || st == 403, "{path}: {st}");
        let text = String::from_utf8_lossy(&b);
        assert!(
            !text.contains(SVC) && !text.contains("UPPLAN") && !text.contains("202505"),
            "{path} leaks: {text}"
        );
    }
    // a unit whose file names say it comes from another office → 403
    let (st, body) = s.svc.submit(&files);
    assert_eq!(st, 403, "{body}");
    // inbox of another office stays empty
    assert_eq!(s.yobo.json("/v1/inbox").as_array().unwrap().len(), 0);
    // the admin API refuses office tokens
    let r = s
        .node
        .admin_as(reqwest::Method::GET, "/admin/v1/status", &s.cm.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn oversize_upload_is_413_and_openapi_metrics_health_answer() {
    let mut node = NodeProc::init("limits", &[]);
    node.edit_config("upload_bytes_max = 6291456", "upload_bytes_max = 65536");
    node.run();
    let s = setup_with(node);
    let name = "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV";
    let status = renkei_tests::raw_upload_status(&s.node.url, &s.cm.token, name, 1024 * 1024);
    assert_eq!(status, Some(413));
    // just under the limit is read and judged on its content instead
    assert_eq!(
        renkei_tests::raw_upload_status(&s.node.url, &s.cm.token, name, 60 * 1024),
        Some(422)
    );
    // One unit delivered, for the delivery-time histogram.
    let (status, body) = s.svc.submit(&fixture_files("valid/d3_jisseki"));
    assert_eq!(status, 202, "{body}");
    s.svc
        .wait_status(body["id"].as_str().unwrap(), &["delivered"]);
    let c = reqwest::blocking::Client::new();
    let doc: serde_json::Value = c
        .get(format!("{}/openapi.json", s.node.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let metrics_token = std::fs::read_to_string(s.node.dir.0.join("metrics.token")).unwrap();
    let m = c
        .get(format!("{}/metrics", s.node.url))
        .bearer_auth(metrics_token.trim())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains("renkei_offices 4"), "{m}");
    // Prometheus conventions: build info, latency histograms in seconds, process figures.
    assert!(
        m.contains(&format!(
            "renkei_build_info{{version=\"{}\",store=\"local\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{m}"
    );
    let value = |name: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{m}"))
            .parse()
            .unwrap()
    };
    // The uploads above went through HTTP and were committed.
    assert!(
        value("renkei_http_request_duration_seconds_count") >= 2.0,
        "{m}"
    );
    assert!(value("renkei_commit_duration_seconds_count") >= 1.0, "{m}");
    assert!(
        m.contains("renkei_commit_duration_seconds_bucket{le=\"+Inf\"}"),
        "{m}"
    );
    assert!(value("process_resident_memory_bytes") > 1e6, "{m}");
    assert_eq!(value("renkei_delivery_duration_seconds_count"), 1.0, "{m}");
    assert_eq!(
        value("renkei_delivery_duration_seconds_bucket{le=\"3600\"}"),
        1.0,
        "{m}"
    );
    assert!(value("renkei_store_bytes") > 0.0, "{m}");
    assert!(value("process_open_fds") >= 3.0, "{m}");
    let started = value("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "{started} vs {now}"
    );
    assert!(value("process_cpu_seconds_total") > 0.0, "{m}");
    assert_eq!(
        c.get(format!("{}/healthz", s.node.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let page = c
        .get(format!("{}/", s.node.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("事業所ポータル") && !page.contains("http://") && !page.contains("https://")
    );
}

#[test]
fn the_node_runs_with_its_allocator_committing_on_demand() {
    // Without the setting mimalloc commits whole arenas and a node's RSS doubles
    // (docs/PERFORMANCE.md); the binary re-executes itself with it, keeping its pid.
    let node = NodeProc::start("alloc", &[]);
    let pid = node.pid().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|v| v == b"MIMALLOC_ARENA_EAGER_COMMIT=0"),
        "node {pid} runs without MIMALLOC_ARENA_EAGER_COMMIT=0"
    );
}

#[test]
fn sigterm_mid_load_then_restart_loses_nothing_accepted() {
    let mut s = setup("restart");
    let base = fixture_files("valid/d2_kyo_riyohyo");
    let url = s.node.url.clone();
    let token = s.cm.token.clone();
    let sender = std::thread::spawn(move || {
        let cm = Office::new(&url, &token);
        let mut accepted = Vec::new();
        for i in 0..400u32 {
            let stamp = format!("20250425{:06}", 100000 + i);
            let files: Vec<(String, Vec<u8>)> = base
                .iter()
                .map(|(n, b)| (n.replace("20250425164608", &stamp), b.clone()))
                .collect();
            let mut form = reqwest::blocking::multipart::Form::new();
            for (n, b) in &files {
                form = form.part(
                    "file",
                    reqwest::blocking::multipart::Part::bytes(b.clone()).file_name(n.clone()),
                );
            }
            match reqwest::blocking::Client::new()
                .post(format!("{}/v1/send-units", cm.url))
                .bearer_auth(&cm.token)
                .multipart(form)
                .send()
            {
                Ok(r) if r.status().as_u16() == 202 => {
                    let v: serde_json::Value = r.json().unwrap();
                    accepted.push(v["id"].as_str().unwrap().to_owned());
                }
                _ => break,
            }
        }
        accepted
    });
    std::thread::sleep(Duration::from_millis(1500));
    let code = s.node.signal("-TERM");
    assert_eq!(
        code,
        Some(0),
        "graceful stop exit code; log:\n{}",
        s.node.log()
    );
    let accepted = sender.join().unwrap();
    assert!(!accepted.is_empty(), "nothing was accepted before SIGTERM");
    s.node.run();
    let inbox = s.svc.json("/v1/inbox");
    let ids: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for id in &accepted {
        assert_eq!(
            ids.iter().filter(|x| *x == id).count(),
            1,
            "accepted {id} not in the inbox exactly once"
        );
        s.cm.wait_status(id, &["delivered"]);
    }
}

#[test]
fn the_inbox_pages_over_http_with_a_next_cursor_and_uploads_need_a_known_token_first() {
    let s = setup("inboxpages");
    let base = fixture_files("valid/d2_kyo_riyohyo");
    for i in 0..3 {
        let files: Vec<(String, Vec<u8>)> = base
            .iter()
            .map(|(n, b)| {
                (
                    n.replace("20250425164608", &format!("2025042516460{i}")),
                    b.clone(),
                )
            })
            .collect();
        let (st, body) = s.cm.submit(&files);
        assert_eq!(st, 202, "{body}");
        s.cm.wait_status(body["id"].as_str().unwrap(), &["delivered"]);
    }
    let c = reqwest::blocking::Client::new();
    let get = |q: &str| {
        c.get(format!("{}/v1/inbox{q}", s.node.url))
            .bearer_auth(&s.svc.token)
            .send()
            .unwrap()
    };
    let first = get("?limit=2");
    assert_eq!(first.status(), 200);
    let next = first
        .headers()
        .get("x-renkei-next-before")
        .expect("a next cursor: one unit is left")
        .to_str()
        .unwrap()
        .to_owned();
    let link = first
        .headers()
        .get("link")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        link.contains(&format!("before={next}")) && link.ends_with("rel=\"next\""),
        "{link}"
    );
    let page1: serde_json::Value = first.json().unwrap();
    assert_eq!(page1.as_array().unwrap().len(), 2);
    assert_eq!(page1[1]["id"], next.as_str());
    let second = get(&format!("?limit=2&before={next}"));
    assert!(second.headers().get("x-renkei-next-before").is_none());
    let page2: serde_json::Value = second.json().unwrap();
    assert_eq!(page2.as_array().unwrap().len(), 1);
    for bad in ["?limit=0", "?limit=10001", "?before=zz"] {
        let r = get(bad);
        assert_eq!(r.status(), 400, "{bad}");
    }

    // An unknown token is refused before the body is read: a 5 MB upload that is never
    // sent in full still gets its 401 at once.
    let mut sock = std::net::TcpStream::connect(s.node.url.trim_start_matches("http://")).unwrap();
    use std::io::{Read, Write};
    write!(
        sock,
        "POST /v1/send-units HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000000\r\n\r\n--b\r\n"
    )
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = [0u8; 64];
    let n = sock.read(&mut answer).unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

/// `office add` of an office that exists is refused (its token keeps working);
/// `office token rotate` issues a new token and revokes the old one; a number failing the
/// check digit needs `--force`.
#[test]
fn office_add_refuses_an_existing_office_and_tokens_rotate() {
    let node = NodeProc::start("office-cmds", &[]);
    let dir = node.dir_str().to_owned();
    let first = node.add_office(CM, "43");
    let me = |token: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{}/v1/me", node.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(me(&first), 200);
    let again = std::process::Command::new(renkei_tests::renkei_bin())
        .args(["office", "add", "--dir", &dir, CM, "--kinds", "43"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already registered here") && err.contains("office token rotate"),
        "{err}"
    );
    assert_eq!(me(&first), 200, "the existing token still works");

    let out = renkei(&["office", "token", "rotate", "--dir", &dir, CM]);
    let second = out
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(second, first);
    assert_eq!(me(&second), 200);
    assert_eq!(me(&first), 401, "the old token is revoked");

    // 4074478648: the check digit of 407447864 is 7.
    let bad = std::process::Command::new(renkei_tests::renkei_bin())
        .args([
            "office",
            "add",
            "--dir",
            &dir,
            "4074478648",
            "--kinds",
            "11",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("check digit"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let forced = renkei(&[
        "office",
        "add",
        "--dir",
        &dir,
        "4074478648",
        "--kinds",
        "11",
        "--force",
    ]);
    assert!(forced.contains("token: "), "{forced}");

    // A kind that is no サービス種類コード (a typo) is refused unless forced, too.
    let typo = std::process::Command::new(renkei_tests::renkei_bin())
        .args([
            "office",
            "add",
            "--dir",
            &dir,
            "4071481594",
            "--kinds",
            "99",
        ])
        .output()
        .unwrap();
    assert!(!typo.status.success());
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("サービス種類コード"),
        "{}",
        String::from_utf8_lossy(&typo.stderr)
    );
    let forced = renkei(&[
        "office",
        "add",
        "--dir",
        &dir,
        "4071481594",
        "--kinds",
        "99",
        "--force",
    ]);
    assert!(forced.contains("token: "), "{forced}");
}

/// One export folder with 1〜3表 (D1) and 6表/7表 (D2) of the same stamp: `renkei send`
/// sends two units (it used to merge them into one refused unit).
#[test]
fn send_splits_a_folder_into_its_send_units() {
    let node = NodeProc::start("send-split", &[]);
    let cm = node.add_office(CM, "43");
    node.add_office(SVC, "11");
    let folder = renkei_tests::TempDir::new("export");
    for unit in ["valid/d1_kyo_plan", "valid/d2_kyo_riyohyo"] {
        for (name, bytes) in fixture_files(unit) {
            std::fs::write(folder.0.join(name), bytes).unwrap();
        }
    }
    let out = renkei(&[
        "send",
        "--node",
        &node.url,
        "--token",
        &cm,
        folder.0.to_str().unwrap(),
    ]);
    let accepted: Vec<&str> = out.lines().filter(|l| l.contains("accepted")).collect();
    assert_eq!(accepted.len(), 2, "{out}");
    assert!(
        out.contains("(4 file(s))") && out.contains("(3 file(s))"),
        "{out}"
    );
    assert!(!out.contains("null"), "{out}");
}

#[test]
fn a_unit_downloaded_as_one_zip_is_byte_exact_and_retrieved_once() {
    let s = setup("zip");
    let files = fixture_files("valid/d2_kyo_riyohyo");
    let (status, body) = s.cm.submit(&files);
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    s.cm.wait_status(&id, &["delivered"]);
    // Several units in one ZIP: all received here, or none is fetched (nor retrieved).
    let several = |ids: &[&str]| {
        reqwest::blocking::Client::new()
            .post(format!("{}/v1/inbox/zip", s.node.url))
            .bearer_auth(&s.svc.token)
            .json(&serde_json::json!({ "ids": ids }))
            .send()
            .unwrap()
    };
    assert_eq!(
        several(&[&id, "00000000000000000000000000000000"])
            .status()
            .as_u16(),
        404
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(s.cm.json(&format!("/v1/sent/{id}"))["status"], "delivered");
    assert_eq!(several(&[&id]).status().as_u16(), 200);
    s.cm.wait_status(&id, &["retrieved"]);
    for round in 0..2 {
        let (st, zipped) = s.svc.get(&format!("/v1/inbox/{id}/zip"));
        assert_eq!(st, 200, "round {round}");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        assert_eq!(zip.len(), files.len());
        for (name, bytes) in &files {
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut got).unwrap();
            assert_eq!(&got, bytes, "{name} changed in the ZIP");
        }
    }
    // One download of the whole unit is what signs Retrieved; the second signs nothing.
    let sent = s.cm.wait_status(&id, &["retrieved"]);
    let kinds: Vec<&str> = sent["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["accepted", "delivered", "retrieved"]);
    let inbox = s.svc.json("/v1/inbox");
    let entry = &inbox.as_array().unwrap()[0];
    assert!(entry["retrieved_at_ms"].is_u64(), "{entry}");
    assert_eq!(entry["fetched"].as_array().unwrap().len(), files.len());
}

/// `RENKEI_LOG_FORMAT=json` (or `--log-format json`): every log line is one JSON object
/// with a timestamp, a level and the message, for a log collector; text logs carry no
/// terminal colour codes when stderr is a file.
#[test]
fn logs_are_json_lines_when_asked_and_plain_text_otherwise() {
    let mut node = NodeProc::init("jsonlog", &[]);
    node.run_env(&[("RENKEI_LOG_FORMAT", "json")]);
    node.signal("-TERM");
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{log}");
    let mut messages = Vec::new();
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        messages.push(v["fields"]["message"].as_str().unwrap_or("").to_owned());
    }
    assert!(messages.iter().any(|m| m == "node running"), "{messages:?}");
    node.run();
    node.signal("-TERM");
    let text = node.log();
    assert!(
        text.contains("node running") && !text.contains('\u{1b}'),
        "{text}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).is_err());
}

/// Under systemd (`Type=notify`), the node says READY=1 once its HTTP address answers, with
/// a status line: the datagram protocol of sd_notify(3), on a socket made here.
#[test]
fn the_node_tells_systemd_it_is_ready_once_it_serves() {
    use std::os::unix::net::UnixDatagram;
    let mut node = NodeProc::init("notify", &[]);
    let path = node.dir.0.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    node.run_env(&[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification from the node");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    let status = msg
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS in {msg}"));
    assert!(
        status.starts_with("active: serving on 127.0.0.1:"),
        "{status}"
    );
    // Ready means serving: the HTTP address answers.
    let url = format!(
        "http://{}/healthz",
        status.trim_start_matches("active: serving on ")
    );
    assert!(reqwest::blocking::get(url).unwrap().status().is_success());
}
