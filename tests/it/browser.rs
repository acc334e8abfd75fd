//! The web page in a real browser (Debian's headless Chromium via chromedriver): sign in,
//! upload a fixture unit, see it in the other office's inbox, download it byte-exact, and see
//! the sender's receipt timeline. Screenshots of each page go to `target/screenshots/`
//! (and to `docs/screenshots/` with `RENKEI_SCREENSHOTS=docs`).

use std::path::PathBuf;

use sha2::Digest;
use std::time::{Duration, Instant};

use renkei_tests::webdriver::{self, Browser};
use renkei_tests::{FIXTURES, NodeProc, TempDir};

/// Whether the browser tests must be skipped (no chromium/chromedriver here); CI sets
/// `RENKEI_REQUIRE_BROWSER`, which turns a missing browser into a failure.
fn no_browser() -> bool {
    if webdriver::available() {
        return false;
    }
    assert!(
        std::env::var_os("RENKEI_REQUIRE_BROWSER").is_none(),
        "chromium/chromedriver missing but RENKEI_REQUIRE_BROWSER is set"
    );
    eprintln!(
        "SKIPPED: install Debian's chromium and chromium-driver to run the browser tests (.ci/run does)"
    );
    true
}

fn shots_dir() -> PathBuf {
    let d = if std::env::var("RENKEI_SCREENSHOTS").as_deref() == Ok("docs") {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/screenshots"))
    } else {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/screenshots"
        ))
    };
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sign_in(b: &Browser, url: &str, token: &str) {
    // Clear the session from a page of the same origin that runs no script: on the app
    // page a sign-in still in flight could store its token again after the clear.
    b.goto(&format!("{url}/healthz"));
    b.script("sessionStorage.clear()");
    b.goto(url);
    // The token sign-in is folded away under the staff sign-in.
    b.script("document.querySelector('#signin-card details').open = true");
    b.type_into("#token", token);
    b.click("#signin");
    b.wait_text("#whoami", "事業所");
}

#[test]
fn sign_in_upload_see_in_inbox_download() {
    if no_browser() {
        return;
    }
    let shots = shots_dir();
    let node = NodeProc::start("browser", &[]);
    let cm = node.add_office("4074478647", "43");
    let svc = node.add_office("4071481594", "11");
    let downloads = TempDir::new("downloads");
    let b = Browser::start(&downloads.0);

    // sign-in page
    b.goto(&node.url);
    b.find("#token");
    b.screenshot(&shots.join("1-signin.png"));

    // the care manager uploads the 6表/7表 unit
    sign_in(&b, &node.url, &cm);
    let unit = PathBuf::from(FIXTURES).join("valid/d2_kyo_riyohyo");
    let mut paths: Vec<String> = std::fs::read_dir(&unit)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    paths.sort();
    b.type_into("#file-input", &paths.join("\n"));
    b.wait_text("#picked", "3 件");
    b.click("#send-btn");
    let ok = b.wait_text("#send-result", "受け付けました");
    let id = ok
        .split("送信ID ")
        .nth(1)
        .unwrap()
        .split('（')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    b.screenshot(&shots.join("2-send-accepted.png"));

    // an invalid unit shows its findings inline
    let bad = PathBuf::from(FIXTURES)
        .join("invalid/bad_date/UP1KYO_4074478647_43_4071481594_11_20250425164608.CSV");
    b.type_into(
        "#file-input",
        &bad.canonicalize().unwrap().display().to_string(),
    );
    b.click("#send-btn");
    let t = b.wait_text("#send-result", "エラー");
    // In Japanese, the rule id only in the row's tooltip.
    let findings = b.text("#findings");
    assert!(findings.contains("存在しない日付です"), "{t}\n{findings}");
    assert!(!findings.contains("date.calendar"), "{t}\n{findings}");
    b.screenshot(&shots.join("3-send-findings.png"));

    // the service office sees it in its inbox and downloads a file
    sign_in(&b, &node.url, &svc);
    b.click("#tab-inbox");
    b.wait_text("#inbox-table", &id[..0]); // table rendered
    let row = format!("#inbox-table tr[data-id='{id}']");
    b.wait_text(&row, "新着");
    // The kind by name, not its code; the new arrival counted in the tab and the title.
    let text = b.text(&row);
    assert!(text.contains("サービス利用票（予定）・別表"), "{text}");
    assert!(
        b.text("#tab-inbox").contains("新着 1"),
        "{}",
        b.text("#tab-inbox")
    );
    let title = b.script("return document.title");
    assert!(
        title.as_str().unwrap_or_default().contains("新着 1"),
        "{title}"
    );
    // Filters: another kind hides it, its month and sender show it.
    let filter = |id: &str, value: &str| {
        b.script(&format!(
            "const e = document.getElementById('{id}'); e.value = '{value}'; e.dispatchEvent(new Event('input'));"
        ));
    };
    filter("f-kind", "D1");
    b.wait_text("#inbox-table", "条件に合う受信はありません");
    filter("f-kind", "D2");
    filter("f-subject", "202505");
    filter("f-from", "4074478647");
    b.wait_text(&row, "新着");
    filter("f-state", "done");
    b.wait_text("#inbox-table", "条件に合う受信はありません");
    filter("f-state", "");
    // 利用者: one of the unit's 被保険者番号 shows it, another number hides it.
    let entry = renkei_tests::Office::new(&node.url, &svc).json("/v1/inbox");
    let insured = entry[0]["insured"][0].as_str().unwrap().to_owned();
    filter("f-insured", &insured[2..]);
    b.wait_text(&row, "新着");
    filter("f-insured", "0000000001");
    b.wait_text("#inbox-table", "条件に合う受信はありません");
    // …or a user's name as the unit's 利用者補足情報 gives it (佐藤　勇, 田中　花子, 小林　トメ):
    // typed without the space, or in its フリガナ; a name not in the unit hides it.
    filter("f-insured", "田中花子");
    b.wait_text(&row, "新着");
    filter("f-insured", "ｺﾊﾞﾔｼ");
    b.wait_text(&row, "新着");
    filter("f-insured", "山田");
    b.wait_text("#inbox-table", "条件に合う受信はありません");
    filter("f-insured", "");
    let users = b.wait_text(&format!("{row} small.users"), "利用者");
    assert!(
        users.contains("小林　トメ") && users.contains("ほか1名"),
        "the row names its users: {users}"
    );
    for id in ["f-kind", "f-subject", "f-from", "f-state", "f-insured"] {
        filter(id, "");
    }
    b.screenshot(&shots.join("4-inbox.png"));
    // One file of three downloaded: the unit is partly retrieved; all three: retrieved.
    let mut names: Vec<String> = std::fs::read_dir(&unit)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for (k, name) in names.iter().enumerate() {
        b.click(&format!("{row} a.file[data-name='{name}']"));
        let target = downloads.0.join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !target.exists() {
            assert!(
                Instant::now() < deadline,
                "download of {name} never arrived"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            std::fs::read(&target).unwrap(),
            std::fs::read(unit.join(name)).unwrap(),
            "downloaded bytes differ"
        );
        if k == 0 {
            b.wait_text(&row, &format!("一部取得（1/{}）", names.len()));
        }
    }
    b.wait_text(&row, "取得済");
    // The whole unit as one ZIP: the original names, the bytes untouched.
    b.click(&format!("{row} button.zip"));
    let zip_path = downloads.0.join(format!("renkei-{id}.zip"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !zip_path.exists() {
        assert!(Instant::now() < deadline, "the ZIP never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut in_zip: Vec<String> = zip.file_names().map(str::to_owned).collect();
    in_zip.sort();
    assert_eq!(in_zip, names);
    for name in &names {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut bytes).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(unit.join(name)).unwrap(),
            "{name} differs in the ZIP"
        );
    }

    // the care manager sees delivered + retrieved receipts
    sign_in(&b, &node.url, &cm);
    b.click("#tab-sent");
    let sent_row = format!("#sent-table tr[data-id='{id}']");
    let text = b.wait_text(&sent_row, "取得済");
    assert!(text.contains("配達") && text.contains("取得"), "{text}");
    b.screenshot(&shots.join("5-sent-receipts.png"));

    // The printable certificate: parties, files with their SHA-256, receipts, verified.
    b.click(&format!("{sent_row} button.cert"));
    b.wait_text("#cert-verdict", "すべての署名を検証しました");
    let cert = b.text("#cert-body");
    let sha = hex::encode(sha2::Sha256::digest(
        std::fs::read(unit.join(&names[0])).unwrap(),
    ));
    assert!(
        cert.contains(&sha),
        "the file's SHA-256 is on the certificate:\n{cert}"
    );
    assert!(
        cert.contains("4071481594") && cert.contains("配達"),
        "{cert}"
    );
    assert_eq!(b.text("#cert-title"), "送信証明");
    b.screenshot(&shots.join("11-certificate.png"));
    // What the browser's print gives (the clerk's PDF for 運営指導): the certificate alone,
    // on one A4 page — the portal's header, tabs and buttons are not printed.
    b.cdp_call(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"media": "print"}),
    );
    let shown = b.script(
        "return ['header', '#app', '#cert-print', '#cert-close', '#cert', '#cert-body']           .map(s => document.querySelector(s).getClientRects().length > 0)",
    );
    assert_eq!(
        shown,
        serde_json::json!([false, false, false, false, true, true]),
        "in print, only the certificate shows"
    );
    b.screenshot(&shots.join("16-certificate-print.png"));
    b.cdp_call(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"media": ""}),
    );
    let pdf = b.print_pdf();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let text = String::from_utf8_lossy(&pdf);
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    assert_eq!(pages, 1, "the certificate prints on one page");
    // A4 in PDF points: 210 × 297 mm = 595.3 × 841.9.
    let media = text
        .split("/MediaBox [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse::<f64>().ok())
        .collect::<Vec<_>>();
    assert!(
        media.len() == 4 && (media[2] - 595.3).abs() < 1.5 && (media[3] - 841.9).abs() < 1.5,
        "an A4 page: {media:?}"
    );
    b.click("#cert-close");

    // Every control is labelled (screen readers, and what a clerk reads).
    let unlabelled = b.script(
        "return [...document.querySelectorAll('input, select, button')]\
           .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.textContent || '').trim())\
           .map(e => e.id || e.outerHTML.slice(0, 60))",
    );
    assert_eq!(
        unlabelled,
        serde_json::json!([]),
        "controls without a label"
    );
    // At a tablet's width (768 px) nothing makes the page itself scroll sideways.
    b.window_size(768, 1024);
    for tab in ["#tab-sent", "#tab-inbox", "#tab-send"] {
        b.click(tab);
        let wide = b.script("return document.documentElement.scrollWidth - window.innerWidth");
        assert!(
            wide.as_i64().unwrap() <= 0,
            "{tab} is {wide} px too wide at 768 px"
        );
    }
    b.click("#tab-inbox");
    b.screenshot(&shots.join("13-tablet-inbox.png"));
    b.window_size(1280, 900);
    b.click("#tab-sent");
    b.wait_text(&sent_row, "取得済");

    // Replacing a sent unit is chosen from the list, not typed.
    b.click(&format!("{sent_row} button.replace"));
    let chosen = b.script("return document.getElementById('supersedes').value");
    assert_eq!(chosen, serde_json::Value::String(id.clone()));
}

#[test]
fn a_changed_token_and_a_node_that_is_down_are_said() {
    if no_browser() {
        return;
    }
    let shots = shots_dir();
    let mut node = NodeProc::start("browser-states", &[]);
    let office = "4074478647";
    let token = node.add_office(office, "43");
    let downloads = TempDir::new("downloads-states");
    let b = Browser::start(&downloads.0);
    sign_in(&b, &node.url, &token);

    // The operator rotates the office's token: the next request goes back to sign-in,
    // saying why (before: an empty inbox).
    let out = renkei_tests::renkei(&["office", "token", "rotate", "--dir", node.dir_str(), office]);
    let new_token = out
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("token line")
        .trim()
        .to_owned();
    b.click("#tab-inbox");
    let said = b.wait_text("#signin-error", "もう一度サインイン");
    assert!(said.contains("トークンが変更されました"), "{said}");
    b.screenshot(&shots.join("6-session-expired.png"));
    sign_in(&b, &node.url, &new_token);

    // The node goes down: 更新 shows a banner (before: nothing happened); it comes back:
    // the banner goes by itself.
    node.signal("-TERM");
    b.click("#tab-inbox");
    b.wait_text("#offline", "接続できません");
    b.screenshot(&shots.join("7-node-unreachable.png"));
    node.run();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let hidden =
            b.script("return document.getElementById('offline').classList.contains('hidden')");
        if hidden == serde_json::Value::Bool(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the banner stayed after the node came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    b.click("#inbox-refresh");
    b.wait_text("#inbox-table", "受信した送信単位はありません");
}

/// A staff member's sign-in on the page: the operator's CLI makes the office's first
/// administrator; a wrong password is said in Japanese; the administrator adds a clerk and
/// sets up a second factor with a code from an authenticator (computed here); the next
/// sign-in asks for the code; an idle session goes back to sign-in, saying so.
#[test]
fn staff_sign_in_with_password_and_code_on_the_page() {
    if no_browser() {
        return;
    }
    let shots = shots_dir();
    let mut node = NodeProc::init("browser-staff", &[]);
    node.edit_config("session_idle_ms = 1800000", "session_idle_ms = 8000");
    node.run();
    let office = "4074478647";
    node.add_office(office, "43");
    let password = node.staff_add(office, "kanri", true);
    let downloads = TempDir::new("downloads-staff");
    let b = Browser::start(&downloads.0);
    let staff_sign_in = |pw: &str| {
        b.goto(&format!("{}/healthz", node.url));
        b.script("sessionStorage.clear()");
        b.goto(&node.url);
        b.type_into("#s-office", office);
        b.type_into("#s-user", "kanri");
        b.type_into("#s-password", pw);
        b.click("#staff-signin");
    };

    staff_sign_in("wrong password!!");
    b.wait_text("#signin-error", "正しくありません");
    b.screenshot(&shots.join("8-staff-signin-wrong.png"));
    staff_sign_in(&password);
    b.wait_text("#whoami", "kanri（管理者）");

    // The administrator adds a clerk.
    b.click("#tab-staff");
    b.wait_text("#staff-table", "kanri");
    b.type_into("#staff-user", "tanaka");
    b.type_into("#staff-password", "tanaka-pass-1");
    b.click("#staff-add");
    b.wait_text("#staff-msg", "追加しました");
    b.wait_text("#staff-table", "tanaka");

    // The month's audit export, downloaded from the page.
    let month = renkei_protocol::export::month_of_ms(renkei_node::runtime::now_ms());
    b.type_into("#audit-month", &month);
    b.click("#audit-download");
    b.wait_text("#staff-msg", "監査エクスポートをダウンロードしました");
    let file = downloads.0.join(format!("renkei-audit-{month}.cbor"));
    let bytes = renkei_tests::downloaded(&file);
    renkei_protocol::export::AuditExport::decode(&bytes).unwrap();

    // A second factor, set up with the code an authenticator app would show.
    b.click("#totp-start");
    // (The key is written before its box is shown.)
    b.wait_text("#totp-setup", "認証アプリ");
    let secret: String = b
        .text("#totp-secret")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(secret.len(), 32, "{secret}");
    let code = || renkei_tests::totp_now(&secret);
    b.type_into("#totp-code", &code());
    b.click("#totp-enable");
    b.wait_text("#staff-msg", "二段階認証を有効にしました");
    b.wait_text("#staff-table", "有効");
    b.screenshot(&shots.join("9-staff-and-second-factor.png"));

    // The administrator makes a second factor required: the clerk, who has none, signs in
    // to a page that only lets them set one up, then to the whole page.
    b.click("#totp-required");
    b.click("#policy-save");
    b.wait_text("#staff-msg", "必須にしました");
    b.click("#signout");
    b.wait_text("#signin-card", "サインイン");
    b.goto(&format!("{}/healthz", node.url));
    b.script("sessionStorage.clear()");
    b.goto(&node.url);
    b.type_into("#s-office", office);
    b.type_into("#s-user", "tanaka");
    b.type_into("#s-password", "tanaka-pass-1");
    b.click("#staff-signin");
    b.wait_text("#must-enrol", "二段階認証が必須です");
    let hidden = |sel: &str| {
        b.script(&format!(
            "return document.querySelector('{sel}').classList.contains('hidden')"
        ))
    };
    assert_eq!(hidden("#tab-inbox"), serde_json::json!(true));
    b.screenshot(&shots.join("14-second-factor-required.png"));
    b.click("#totp-start");
    b.wait_text("#totp-setup", "認証アプリ");
    let clerk_secret: String = b
        .text("#totp-secret")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let clerk_code = renkei_tests::totp_now(&clerk_secret);
    b.type_into("#totp-code", &clerk_code);
    b.click("#totp-enable");
    b.wait_text("#tab-inbox", "受信箱");
    assert_eq!(hidden("#tab-inbox"), serde_json::json!(false));

    // Signed out, the next sign-in asks for the code.
    b.click("#signout");
    b.wait_text("#signin-card", "サインイン");
    staff_sign_in(&password);
    b.wait_text("#signin-error", "確認コード");
    b.screenshot(&shots.join("10-staff-signin-code.png"));
    b.type_into("#s-code", &code());
    b.click("#staff-signin");
    b.wait_text("#whoami", "kanri");

    // Idle past the limit (8 s here): the next request goes back to sign-in, saying why.
    std::thread::sleep(Duration::from_secs(9));
    b.click("#tab-inbox");
    b.wait_text("#signin-error", "有効期限が切れた");
}

/// A whole export folder at once: the page groups the files into send units (the rule of
/// `renkei send`, run by the node), sends the valid ones and says which was not sent.
#[test]
fn a_folder_of_several_units_is_sent_unit_by_unit() {
    if no_browser() {
        return;
    }
    let shots = shots_dir();
    let node = NodeProc::start("browser-many", &[]);
    let cm = node.add_office("4074478647", "43");
    let svc = node.add_office("4071481594", "11");
    let downloads = TempDir::new("downloads-many");
    let b = Browser::start(&downloads.0);
    sign_in(&b, &node.url, &cm);
    // A whole export folder: three send units (1〜3表, a 削除 instruction, and a 6表 with
    // month 13); the page groups them, sends the two valid ones and says which was not.
    let folder = TempDir::new("export-folder");
    let mut many = Vec::new();
    for e in std::fs::read_dir(PathBuf::from(FIXTURES).join("valid/d1_kyo_plan")).unwrap() {
        many.push(e.unwrap().path());
    }
    many.push(
        PathBuf::from(FIXTURES)
            .join("valid/deletes/DLT1KYO_4074478647_43_4071481594_11_20250425164659.CSV"),
    );
    let month13 = folder
        .0
        .join("UPPLAN_202513_4074478647_43_4071481594_11_20250425170000.CSV");
    std::fs::copy(
        PathBuf::from(FIXTURES)
            .join("invalid/bad_month/UPPLAN_202513_4074478647_43_4071481594_11_20250425164608.CSV"),
        &month13,
    )
    .unwrap();
    many.push(month13);
    let many: Vec<String> = many
        .iter()
        .map(|p| p.canonicalize().unwrap().display().to_string())
        .collect();
    b.type_into("#file-input", &many.join("\n"));
    b.wait_text("#picked", "3 送信単位");
    b.click("#send-btn");
    let summary = b.wait_text("#send-summary", "送信しました");
    assert!(
        summary.contains("3 送信単位のうち 2 件を送信しました"),
        "{summary}\n{}",
        b.text("#units-result")
    );
    assert!(summary.contains("1 件は送信していません"), "{summary}");
    let refused = b.text("#units-result tr.unit-ng");
    assert!(refused.contains("UPPLAN_202513"), "{refused}");
    assert_eq!(
        b.script("return document.querySelectorAll('#units-result tr.unit-ok').length"),
        serde_json::json!(2)
    );
    b.wait_text("#picked", "UPPLAN_202513");
    b.screenshot(&shots.join("12-send-many.png"));

    // The recipient chooses both units and downloads them as one ZIP: a folder per unit,
    // the bytes untouched, both units retrieved.
    sign_in(&b, &node.url, &svc);
    b.click("#tab-inbox");
    b.wait_text("#inbox-table", "新着");
    b.click("#inbox-select-all");
    b.wait_text("#inbox-zip-selected", "選択した 2 件");
    b.click("#inbox-zip-selected");
    let file = downloads.0.join("renkei-units.zip");
    let bytes = renkei_tests::downloaded(&file);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let folders: std::collections::BTreeSet<&str> =
        names.iter().map(|n| n.split('/').next().unwrap()).collect();
    assert_eq!(folders.len(), 2, "{names:?}");
    let plan = names
        .iter()
        .find(|n| n.ends_with("/UP2KYO_4074478647_43_4071481594_11_20250425164608.CSV"))
        .unwrap()
        .clone();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&plan).unwrap(), &mut got).unwrap();
    assert_eq!(
        got,
        std::fs::read(
            PathBuf::from(FIXTURES)
                .join("valid/d1_kyo_plan/UP2KYO_4074478647_43_4071481594_11_20250425164608.CSV")
        )
        .unwrap()
    );
    b.wait_text("#inbox-table", "取得済");
    assert!(
        !b.text("#inbox-table").contains("新着"),
        "{}",
        b.text("#inbox-table")
    );
}

/// A corporation's staff member switches the page to another office it was granted.
#[test]
fn a_corporation_account_switches_offices_on_the_page() {
    if no_browser() {
        return;
    }
    let shots = shots_dir();
    let node = NodeProc::start("browser-corp", &[]);
    let (cm, svc) = ("4074478647", "4071481594");
    node.add_office(cm, "43");
    let svc_token = node.add_office(svc, "11");
    let password = node.staff_add(cm, "honbu", false);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/grants", node.url))
        .bearer_auth(&svc_token)
        .json(&serde_json::json!({ "office": cm, "user": "honbu" }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let downloads = TempDir::new("downloads-corp");
    let b = Browser::start(&downloads.0);
    b.goto(&node.url);
    b.type_into("#s-office", cm);
    b.type_into("#s-user", "honbu");
    b.type_into("#s-password", &password);
    b.click("#staff-signin");
    b.wait_text("#whoami", &format!("事業所 {cm}"));
    b.script(&format!(
        "const s = document.getElementById('switch-office'); s.value = '{svc}'; s.dispatchEvent(new Event('change'));"
    ));
    b.wait_text("#whoami", &format!("事業所 {svc}"));
    b.screenshot(&shots.join("15-corporation-switch.png"));
}
