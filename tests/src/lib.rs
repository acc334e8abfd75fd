//! # renkei-tests
//!
//! End-to-end tests of real `renkei` processes over loopback sockets live in `tests/it/`
//! (one integration binary with modules). This library holds what they share: starting and
//! stopping node processes in temporary directories, and the fixture send units.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository's fixtures directory.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// Path of the `renkei` binary built by `cargo test --workspace`.
pub fn renkei_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let bin = dir.join("renkei");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p renkei-cli` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// Runs `renkei ARGS` to completion; panics with its output on failure.
pub fn renkei(args: &[&str]) -> String {
    let out = Command::new(renkei_bin())
        .args(args)
        .output()
        .expect("run renkei");
    assert!(
        out.status.success(),
        "renkei {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free loopback TCP port for a node to listen on later.
///
/// Taken below the kernel's ephemeral range (Linux: 32768–60999), not from it: a port
/// the kernel handed out for `:0` is free again once checked, and until the node binds it
/// any outgoing connection of a parallel test may take it as its source port (seen in CI:
/// "cannot listen on 127.0.0.1:41211: Address already in use"). Below that range the
/// kernel never hands a port out by itself; ports are spread by process id and told apart
/// within the process by a counter, and each is checked free before it is returned.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let offset = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    /// A fresh directory.
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("renkei-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `renkei run` process on a temporary node directory.
pub struct NodeProc {
    /// Node directory.
    pub dir: TempDir,
    /// Base URL of the HTTP API.
    pub url: String,
    child: Option<Child>,
}

impl NodeProc {
    /// `renkei init` with a fresh HTTP port, extra init args, then `renkei run`.
    pub fn start(name: &str, extra: &[&str]) -> NodeProc {
        let mut n = NodeProc::init(name, extra);
        n.run();
        n
    }

    /// Replaces `from` by `to` in the node's renkei.toml (before `run`).
    pub fn edit_config(&self, from: &str, to: &str) {
        let path = self.dir.0.join("renkei.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "renkei.toml has no {from:?}:\n{text}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// `renkei init` only; call [`NodeProc::run`] to start it.
    pub fn init(name: &str, extra: &[&str]) -> NodeProc {
        let dir = TempDir::new(name);
        let port = free_port();
        let http = format!("127.0.0.1:{port}");
        let d = dir.0.to_str().unwrap().to_owned();
        let mut args = vec!["init", "--dir", &d, "--operator", name, "--http", &http];
        args.extend_from_slice(extra);
        renkei(&args);
        NodeProc {
            dir,
            url: format!("http://{http}"),
            child: None,
        }
    }

    /// Starts (or restarts) the node process and waits for `/healthz`.
    pub fn run(&mut self) {
        self.run_env(&[]);
    }

    /// [`NodeProc::run`] with extra environment variables.
    pub fn run_env(&mut self, env: &[(&str, &str)]) {
        if let Some(mut old) = self.child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let log = std::fs::File::create(self.dir.0.join("node.log")).unwrap();
        let child = Command::new(renkei_bin())
            .args(["run", "--dir", self.dir.0.to_str().unwrap()])
            .env("RUST_LOG", "info")
            // The binary sets it for itself (cli/src/main.rs): test that path.
            .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn renkei run");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if client
                .get(format!("{}/healthz", self.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node did not come up; log:\n{}", self.log());
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("node.log")).unwrap_or_default()
    }

    /// `renkei office add`; returns the token.
    pub fn add_office(&self, office: &str, kinds: &str) -> String {
        self.add_office_named(office, kinds, "")
    }

    /// [`NodeProc::add_office`] with the office's name (none when empty).
    pub fn add_office_named(&self, office: &str, kinds: &str, name: &str) -> String {
        let dir = self.dir.0.to_str().unwrap();
        let mut args = vec!["office", "add", "--dir", dir, office, "--kinds", kinds];
        if !name.is_empty() {
            args.extend(["--name", name]);
        }
        let out = renkei(&args);
        out.lines()
            .find_map(|l| l.strip_prefix("token: "))
            .expect("token line")
            .trim()
            .to_owned()
    }

    /// Sends a signal to the process and waits for it to exit; returns the exit code.
    pub fn signal(&mut self, sig: &str) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node ignored {sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `within` for the process to exit by itself; its exit code (`Some(-1)`
    /// for a signal), or `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A request to the node's operator endpoints on its admin socket (`DIR/admin.sock`),
    /// carrying the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let token = std::fs::read_to_string(self.dir.0.join("admin.token")).unwrap();
        self.admin_as(method, path, token.trim())
    }

    /// Like [`NodeProc::admin`] with another token.
    pub fn admin_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::blocking::RequestBuilder {
        reqwest::blocking::Client::builder()
            .unix_socket(self.dir.0.join("admin.sock"))
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap()
            .request(method, format!("http://admin{path}"))
            .bearer_auth(token)
    }

    /// `renkei office staff-add` for this node: the password it made (shown once).
    pub fn staff_add(&self, office: &str, user: &str, admin: bool) -> String {
        let mut args = vec!["office", "staff-add", "--dir", self.dir_str(), office, user];
        if admin {
            args.push("--admin");
        }
        let out = renkei(&args);
        out.lines()
            .find_map(|l| l.strip_prefix("password: "))
            .and_then(|l| l.split_whitespace().next())
            .expect("a made password")
            .to_owned()
    }

    /// The node directory as a string.
    pub fn dir_str(&self) -> &str {
        self.dir.0.to_str().unwrap()
    }

    /// A second node of the same operator (a standby): a copy of this node's directory
    /// (keys, tokens, config, roster) with its own HTTP port and `node = name` in the lease.
    /// Only meaningful for a node on PostgreSQL (see [`NodeProc::use_postgres`]).
    pub fn standby_copy(&self, name: &str) -> NodeProc {
        let dir = TempDir::new(name);
        let status = Command::new("cp")
            .args([
                "-a",
                &format!("{}/.", self.dir_str()),
                dir.0.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        for f in ["node.log", "listen.addrs"] {
            let _ = std::fs::remove_file(dir.0.join(f));
        }
        let http = format!("127.0.0.1:{}", free_port());
        let copy = NodeProc {
            dir,
            url: format!("http://{http}"),
            child: None,
        };
        copy.edit_config(self.url.trim_start_matches("http://"), &http);
        let path = copy.dir.0.join("renkei.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("node = ") {
                    format!("node = {name:?}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        copy
    }

    /// Moves the node's store to the PostgreSQL database `url`, as node `name` of its
    /// operator, with a lease of `lease_ms`.
    pub fn use_postgres(&self, url: &str, name: &str, lease_ms: u64) {
        self.edit_config(
            "[store]\nkind = \"local\"",
            &format!(
                "[store]\nkind = \"postgres\"\nurl = {url:?}\nnode = {name:?}\nlease_ttl_ms = {lease_ms}"
            ),
        );
    }

    /// Whether the node answers `/readyz` with 200 (it is the active node).
    pub fn is_ready(&self) -> bool {
        reqwest::blocking::Client::new()
            .get(format!("{}/readyz", self.url))
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok_and(|r| r.status().is_success())
    }
}

/// A fresh, empty database on the throwaway PostgreSQL cluster named by `RENKEI_TEST_PG`
/// (`eval "$(scripts/pg-throwaway start)"`). `None` without one — the test then says it was
/// skipped — unless `RENKEI_REQUIRE_PG=1` (CI), where a missing cluster fails the test.
pub fn pg_database(tag: &str) -> Option<String> {
    let admin = pg_admin_url()?;
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("renkei_it_{tag}_{}_{n}", std::process::id());
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Files of a fixture directory, sorted by name.
pub fn fixture_files(rel: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(Path::new(FIXTURES).join(rel))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".txt"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// An office-token HTTP client for one node.
pub struct Office {
    /// Base URL.
    pub url: String,
    /// Token.
    pub token: String,
    client: reqwest::blocking::Client,
}

impl Office {
    /// A client for `token` at `url`.
    pub fn new(url: &str, token: &str) -> Office {
        Office {
            url: url.to_owned(),
            token: token.to_owned(),
            client: reqwest::blocking::Client::new(),
        }
    }

    /// `POST /v1/send-units`; returns (status, JSON body).
    pub fn submit(&self, files: &[(String, Vec<u8>)]) -> (u16, serde_json::Value) {
        let mut form = reqwest::blocking::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::blocking::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
            );
        }
        let r = self
            .client
            .post(format!("{}/v1/send-units", self.url))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// `GET path` with the token; returns (status, body bytes).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }

    /// `GET path` parsed as JSON (panics unless 200).
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (s, b) = self.get(path);
        assert_eq!(s, 200, "GET {path}: {}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).unwrap()
    }

    /// Polls `GET /v1/sent/{id}` until its status is one of `want` (bounded).
    pub fn wait_status(&self, id: &str, want: &[&str]) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.json(&format!("/v1/sent/{id}"));
            if want.contains(&v["status"].as_str().unwrap_or("")) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "unit {id} stuck at {}",
                v["status"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Posts a multipart upload of one file of `size` bytes over a raw socket, reading the
/// response while still writing: a server that refuses early (413) closes the connection
/// mid-upload, which HTTP client libraries report as a send error instead of the status.
pub fn raw_upload_status(url: &str, token: &str, file_name: &str, size: usize) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let boundary = "renkeiboundary7d1";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let len = head.len() + size + tail.len();
    let request = format!(
        "POST /v1/send-units HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{head}"
    );
    let mut writer = stream.try_clone().ok()?;
    let w = std::thread::spawn(move || {
        let _ = writer.write_all(request.as_bytes());
        let chunk = vec![b'9'; 16 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
        let _ = writer.write_all(tail.as_bytes());
    });
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n") && buf.len() < 64 {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = w.join();
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The operator id printed by `renkei key show --dir DIR`.
pub fn operator_id(dir: &str) -> String {
    let out = renkei(&["key", "show", "--dir", dir]);
    out.lines()
        .find_map(|l| l.strip_prefix("operator id:"))
        .expect("operator id line")
        .trim()
        .to_owned()
}

/// A federation of real processes on loopback: an authority directory with the signed
/// roster, one relay (listening on a fixed port given in the roster) and regional operators
/// listening on ephemeral ports, which reach each other through the relay.
pub struct Federation {
    /// The federation authority's directory (`roster.cbor` inside).
    pub auth: TempDir,
    /// The authority public key.
    pub authority: String,
    /// The relay node.
    pub relay: NodeProc,
    /// The regional operators, in the order of their names.
    pub nodes: Vec<NodeProc>,
}

impl Federation {
    /// `renkei federation init`, one relay and one operator per name, all in the roster,
    /// each node's `renkei.toml` edited by `tune` (from, to) pairs, then every node run.
    pub fn start(tag: &str, names: &[&str], tune: &[(&str, &str)]) -> Federation {
        let mut f = Federation::init(tag, names);
        for n in std::iter::once(&f.relay).chain(&f.nodes) {
            for (from, to) in tune {
                n.edit_config(from, to);
            }
        }
        f.relay.run();
        for n in &mut f.nodes {
            n.run();
        }
        f
    }

    /// Like [`Federation::start`] without tuning and without running any node.
    pub fn init(tag: &str, names: &[&str]) -> Federation {
        let auth = TempDir::new(&format!("{tag}-auth"));
        let ad = auth.0.to_str().unwrap().to_owned();
        let out = renkei(&["federation", "init", "--dir", &ad]);
        let authority = out
            .lines()
            .find_map(|l| l.strip_prefix("federation authority key: "))
            .unwrap()
            .trim()
            .to_owned();
        let relay_addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
        let relay = NodeProc::init(
            &format!("{tag}-relay"),
            &[
                "--listen",
                &relay_addr,
                "--relay",
                "--authority",
                &authority,
            ],
        );
        renkei(&[
            "federation",
            "add-operator",
            "--dir",
            &ad,
            "--name",
            "central-relay",
            "--node-dir",
            relay.dir_str(),
            "--relay",
            "--addr",
            &relay_addr,
        ]);
        let mut nodes = Vec::new();
        for name in names {
            let n = NodeProc::init(
                &format!("{tag}-{name}"),
                &[
                    "--listen",
                    "/ip4/127.0.0.1/tcp/0",
                    "--authority",
                    &authority,
                ],
            );
            renkei(&[
                "federation",
                "add-operator",
                "--dir",
                &ad,
                "--name",
                name,
                "--node-dir",
                n.dir_str(),
            ]);
            nodes.push(n);
        }
        let f = Federation {
            auth,
            authority,
            relay,
            nodes,
        };
        let roster = f.roster();
        for n in std::iter::once(&f.relay).chain(&f.nodes) {
            renkei(&[
                "roster-install",
                "--dir",
                n.dir_str(),
                roster.to_str().unwrap(),
            ]);
            n.edit_config("sync_interval_ms = 30000", "sync_interval_ms = 1000");
        }
        f
    }

    /// Path of the signed roster.
    pub fn roster(&self) -> PathBuf {
        self.auth.0.join("roster.cbor")
    }
}

/// Waits until `from`'s directory shows `office` as reachable (bounded).
pub fn wait_reachable(from: &Office, office: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = from.json(&format!("/v1/directory/{office}"));
        if v["reachable"] == true {
            return;
        }
        assert!(Instant::now() < deadline, "directory never showed {office}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node's libp2p TCP address with its peer id (`…/p2p/PEER_ID`), once it listens.
pub fn p2p_addr(n: &NodeProc) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let listen = loop {
        if let Ok(text) = std::fs::read_to_string(n.dir.0.join("listen.addrs"))
            && let Some(first) = text.lines().find(|l| l.contains("/tcp/"))
        {
            break first.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no listen.addrs");
        std::thread::sleep(Duration::from_millis(50));
    };
    let show = renkei(&["key", "show", "--dir", n.dir_str()]);
    let peer = show
        .lines()
        .find_map(|l| l.strip_prefix("peer id:"))
        .unwrap()
        .trim()
        .to_owned();
    format!("{listen}/p2p/{peer}")
}

/// A child process killed (and reaped) when dropped: a test that fails midway leaves no
/// process behind.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `RENKEI_TEST_PG`, or `None` (after saying the test is skipped) without it; with
/// `RENKEI_REQUIRE_PG` set a missing cluster fails the test instead.
pub fn pg_admin_url() -> Option<String> {
    let Ok(admin) = std::env::var("RENKEI_TEST_PG") else {
        assert!(
            std::env::var("RENKEI_REQUIRE_PG").is_err(),
            "RENKEI_REQUIRE_PG is set but RENKEI_TEST_PG is not"
        );
        eprintln!("skipped: no RENKEI_TEST_PG (eval \"$(scripts/pg-throwaway start)\")");
        return None;
    };
    Some(admin)
}

/// A PostgreSQL primary with a synchronous streaming replica, both throwaway
/// (`scripts/pg-throwaway start-pair`); stopped and removed on drop.
pub struct PgPair {
    /// Their directory.
    pub dir: String,
    /// The primary's port.
    pub primary: u16,
    /// The replica's port.
    pub replica: u16,
}

const PG_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg-throwaway");

impl PgPair {
    /// Starts the pair (the replica is synchronous when this returns).
    pub fn start() -> PgPair {
        // Two free ports above the kernel's ephemeral range (see free_port).
        let port = (0..4_000u32)
            .map(|i| 61_000 + ((std::process::id() + i * 2) % 4_000) as u16)
            .find(|p| {
                TcpListener::bind(("127.0.0.1", *p)).is_ok()
                    && TcpListener::bind(("127.0.0.1", *p + 1)).is_ok()
            })
            .expect("two free ports for PostgreSQL");
        let out = Command::new(PG_SCRIPT)
            .arg("start-pair")
            .env("RENKEI_PG_PORT", port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg-throwaway start-pair: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap()
                .to_owned()
        };
        PgPair {
            dir: var("RENKEI_PAIR_DIR"),
            primary: var("RENKEI_PAIR_PRIMARY").parse().unwrap(),
            replica: var("RENKEI_PAIR_REPLICA").parse().unwrap(),
        }
    }

    /// A connection string naming both servers; only the writable one is used.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres \
             target_session_attrs=read-write",
            self.primary, self.replica
        )
    }

    /// `pg-throwaway stop-primary|promote DIR`.
    pub fn run(&self, what: &str) {
        let status = Command::new(PG_SCRIPT)
            .args([what, &self.dir])
            .status()
            .unwrap();
        assert!(status.success(), "pg-throwaway {what}");
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        let _ = Command::new(PG_SCRIPT)
            .args(["stop-pair", &self.dir])
            .status();
    }
}

/// The code an authenticator app shows now for a base32 TOTP secret (RFC 6238 defaults).
pub fn totp_now(secret_b32: &str) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret)
        .unwrap()
        .generate_current()
        .unwrap()
}

/// The bytes of a file a browser downloads, once it is there (bounded wait: Chromium
/// writes under another name first, then renames).
pub fn downloaded(path: &Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read(path) {
            Ok(b) if !b.is_empty() => return b,
            _ => {
                assert!(Instant::now() < deadline, "no {}", path.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
