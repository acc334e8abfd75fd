//! Crash loop: thousands of small send units through three real processes (operator `a`
//! → relay → operator `b`) while a random node is killed with SIGKILL every few seconds,
//! twenty times, and restarted; the destination office downloads units as they arrive.
//! Afterwards every accepted unit must be delivered and retrieved exactly once, every
//! receipt must verify and be backed by a stored envelope, and every node's audit chain
//! must verify. Each node's store memory table is tiny, so kills also land while sorted
//! runs are being written and merged.
//!
//! The victims and the timing come from a seed printed at the start; replay a failure with
//! `RENKEI_CRASH_SEED=N`. `RENKEI_CRASH_UNITS=N` changes the number of units (default
//! [`UNITS_DEFAULT`]); `RENKEI_CRASH_PROFILE=harsh` kills [`HARSH`]'s way instead of
//! [`DEFAULT`]'s (for runs by hand).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use renkei_protocol::export::{AuditExport, Direction};
use renkei_protocol::ids::OperatorId;
use renkei_protocol::receipt::ReceiptKind;
use renkei_protocol::roster::SignedRoster;
use renkei_tests::{
    Federation, NodeProc, Office, fixture_files, operator_id, renkei, wait_reachable,
};

/// Sender office (居宅サービス, kind 11) at operator `a`.
pub(crate) const SVC: &str = "4071481594";
/// Receiving office (居宅介護支援, kind 43) at operator `b`.
pub(crate) const CM: &str = "4074478647";
/// The smallest valid fixture unit: one 実績 file from SVC to CM, 対象年月 202504.
pub(crate) const FIXTURE: &str = "valid/d3_jisseki";
pub(crate) const FIXTURE_STAMP: &str = "20250428164608";
pub(crate) const SUBJECT_MONTH: &str = "202504";
/// Units sent by default.
const UNITS_DEFAULT: usize = 3000;
/// How often and how long nodes are down.
#[derive(Clone, Copy, Debug)]
struct Profile {
    /// SIGKILLs during the run.
    kills: usize,
    /// Time between kills, ms (uniform in lo..hi).
    between_ms: (u64, u64),
    /// Time a killed node stays down before its restart, ms (uniform in 0..max).
    down_ms_max: u64,
}

/// Twenty kills, one every 1.5–3.5 s, down up to 1 s.
const DEFAULT: Profile = Profile {
    kills: 20,
    between_ms: (1500, 3500),
    down_ms_max: 1000,
};

/// Sixty kills, one every 0.3–1.2 s, down up to 0.3 s.
const HARSH: Profile = Profile {
    kills: 60,
    between_ms: (300, 1200),
    down_ms_max: 300,
};
/// Concurrent HTTP submitters.
const SUBMITTERS: usize = 4;
/// The submissions are spread over this long, about the length of the fault phase, so that
/// units are in flight at every kill (a slow machine just submits later).
const SUBMIT_WINDOW: Duration = Duration::from_secs(55);
/// Bound on the liveness phase (faults stopped, everything must reach Retrieved).
const LIVENESS_BOUND: Duration = Duration::from_secs(180);

/// splitmix64: a tiny seeded generator, so that the victims and timing replay exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A distinct valid ファイル連番 for unit `i` (same day as the fixture, one second apart).
pub(crate) fn stamp(i: usize) -> String {
    assert!(i < 86_400, "at most one day of stamps");
    format!("20250428{:02}{:02}{:02}", i / 3600, (i / 60) % 60, i % 60)
}

/// What the submitters learnt.
#[derive(Default)]
pub(crate) struct Submitted {
    /// Stamp → envelope id, for units the origin answered 2xx.
    pub(crate) accepted: BTreeMap<String, String>,
    /// Stamps with at least one attempt that may have reached the origin without an
    /// answer (the origin may have taken the unit), and how many; the retry must get the
    /// same unit back.
    pub(crate) ambiguous: BTreeMap<String, usize>,
    /// Attempts refused at connect (the origin was down).
    pub(crate) refused: usize,
    /// The first few errors of ambiguous attempts, for the log.
    errors: Vec<String>,
    /// Attempts answered `503 standby` (active/standby: that node takes nothing).
    pub(crate) standby_answers: usize,
}

pub(crate) enum Attempt {
    Accepted(String),
    /// Nothing reached the node (connection refused).
    NotSent,
    /// Sent, no usable answer.
    Ambiguous(String),
}

pub(crate) fn submit(
    client: &reqwest::blocking::Client,
    office: &Office,
    files: &[(String, Vec<u8>)],
) -> Attempt {
    let mut form = reqwest::blocking::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
        );
    }
    let r = client
        .post(format!("{}/v1/send-units", office.url))
        .bearer_auth(&office.token)
        .multipart(form)
        .send();
    match r {
        Err(e) if e.is_connect() => Attempt::NotSent,
        Err(e) => Attempt::Ambiguous(e.to_string()),
        Ok(r) => {
            let status = r.status();
            let body: serde_json::Value = r.json().unwrap_or(serde_json::Value::Null);
            if status.is_success() {
                match body["id"].as_str() {
                    Some(id) => Attempt::Accepted(id.to_owned()),
                    None => panic!("{status} without an id: {body}"),
                }
            } else if status.is_server_error() {
                Attempt::Ambiguous(format!("{status}: {body}"))
            } else {
                panic!("the origin refused a valid unit: {status}: {body}")
            }
        }
    }
}

/// Care software sending `units` units spread over `window`, each retried until accepted;
/// with several addresses for the origin (active/standby), it tries the next one on a
/// refused connection, `503 standby` or an unanswered attempt.
pub(crate) fn submitters(
    offices: &[&Office],
    window: Duration,
    base: &[(String, Vec<u8>)],
    units: usize,
) -> Submitted {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Submitted::default());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..SUBMITTERS {
            s.spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut at = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= units {
                        return;
                    }
                    let due = start + window.mul_f64(i as f64 / units as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let st = stamp(i);
                    let files: Vec<(String, Vec<u8>)> = base
                        .iter()
                        .map(|(n, b)| (n.replace(FIXTURE_STAMP, &st), b.clone()))
                        .collect();
                    let started = Instant::now();
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(120),
                            "unit {st} not accepted within 120 s of retries"
                        );
                        match submit(&client, offices[at % offices.len()], &files) {
                            Attempt::Accepted(id) => {
                                out.lock().unwrap().accepted.insert(st, id);
                                break;
                            }
                            Attempt::NotSent => {
                                out.lock().unwrap().refused += 1;
                                at += 1;
                            }
                            Attempt::Ambiguous(e) if e.contains("\"standby\"") => {
                                out.lock().unwrap().standby_answers += 1;
                                at += 1;
                            }
                            Attempt::Ambiguous(e) => {
                                at += 1;
                                let mut out = out.lock().unwrap();
                                *out.ambiguous.entry(st.clone()).or_default() += 1;
                                if out.errors.len() < 5 {
                                    out.errors.push(e);
                                }
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            });
        }
    });
    out.into_inner().unwrap()
}

/// The destination office downloads every unit that has arrived and that it has not
/// downloaded yet (each first download issues a `Retrieved` receipt that travels back to
/// the origin through the relay), comparing the bytes with the fixture. Runs until `stop`;
/// errors (the destination is down) are retried on the next pass. Returns the ids fetched.
pub(crate) fn reader(cm: &Office, fixture: &[u8], stop: &AtomicBool) -> BTreeSet<String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut fetched = BTreeSet::new();
    while !stop.load(Ordering::SeqCst) {
        fetch_new(&client, cm, fixture, &mut fetched);
        std::thread::sleep(Duration::from_millis(200));
    }
    fetched
}

/// One pass of [`reader`]; stops at the first error.
pub(crate) fn fetch_new(
    client: &reqwest::blocking::Client,
    cm: &Office,
    fixture: &[u8],
    fetched: &mut BTreeSet<String>,
) {
    let get = |path: &str| {
        client
            .get(format!("{}{path}", cm.url))
            .bearer_auth(&cm.token)
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.bytes().ok())
    };
    let Some(list) = get("/v1/inbox?limit=10000") else {
        return;
    };
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    for e in list.as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        if fetched.contains(id) {
            continue;
        }
        let name = e["files"][0]["name"].as_str().unwrap();
        let Some(body) = get(&format!("/v1/inbox/{id}/files/{name}")) else {
            return;
        };
        assert_eq!(&body[..], fixture, "{id}/{name} changed");
        fetched.insert(id.to_owned());
    }
}

/// Kills a random node as `profile` says, restarting it each time; returns the victims'
/// names.
fn chaos(
    nodes: &mut [(&str, &mut NodeProc)],
    profile: Profile,
    seed: u64,
    done: &AtomicBool,
) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut log = Vec::new();
    let start = Instant::now();
    for k in 0..profile.kills {
        let (lo, hi) = profile.between_ms;
        std::thread::sleep(Duration::from_millis(rng.range(lo, hi)));
        let v = rng.range(0, nodes.len() as u64) as usize;
        let down = Duration::from_millis(rng.range(0, profile.down_ms_max));
        let (name, node) = &mut nodes[v];
        node.signal("-KILL");
        println!(
            "crash-loop: kill {}/{}: {name} at {:.1} s, down {} ms",
            k + 1,
            profile.kills,
            start.elapsed().as_secs_f64(),
            down.as_millis()
        );
        std::thread::sleep(down);
        // Every other restart, compact the killed node's store first (offline, as an
        // operator would), every closed segment whatever its live share, so every live
        // value is moved at least once: what it deletes must never be needed again.
        if k % 2 == 1 {
            let out = std::process::Command::new(renkei_tests::renkei_bin())
                .args(["compact", "--dir", node.dir_str(), "--max-live", "100"])
                .output()
                .expect("renkei compact runs");
            assert!(
                out.status.success(),
                "renkei compact failed on {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            println!(
                "crash-loop: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        node.run();
        log.push((*name).to_owned());
    }
    done.store(true, Ordering::SeqCst);
    log
}

fn profile() -> Profile {
    match std::env::var("RENKEI_CRASH_PROFILE").as_deref() {
        Ok("harsh") => HARSH,
        _ => DEFAULT,
    }
}

fn units() -> usize {
    std::env::var("RENKEI_CRASH_UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(UNITS_DEFAULT)
}

fn seed() -> u64 {
    std::env::var("RENKEI_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                ^ u64::from(std::process::id())
        })
}

pub(crate) fn admin_get(node: &NodeProc, path: &str) -> Vec<u8> {
    let r = node.admin(reqwest::Method::GET, path).send().unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.bytes().unwrap().to_vec()
}

#[test]
fn crash_loop_of_sigkills_loses_nothing_duplicates_nothing_and_keeps_every_proof() {
    let seed = seed();
    let units = units();
    let profile = profile();
    println!(
        "crash-loop seed: {seed} (replay with RENKEI_CRASH_SEED={seed}), {units} units, {profile:?}"
    );
    let t0 = Instant::now();
    let mut f = Federation::start(
        "crash",
        &["a", "b"],
        &[
            // Redeliveries after a crash should not wait minutes in a bounded test.
            ("retry_max_ms = 300000", "retry_max_ms = 2000"),
            ("retry_base_ms = 500", "retry_base_ms = 200"),
            // A tiny memory table: sorted runs are written and merged all the time, so
            // kills land mid-flush and mid-merge too.
            (
                "store_memtable_bytes = 8388608",
                "store_memtable_bytes = 16384",
            ),
            // Small log segments: `renkei compact` runs on a killed node's store before
            // its restart and deletes segments under load, mid-everything.
            (
                "store_segment_bytes = 268435456",
                "store_segment_bytes = 262144",
            ),
        ],
    );
    let (roster_path, auth_dir, authority) = (f.roster(), f.auth.0.clone(), f.authority.clone());
    let [a, b] = &mut f.nodes[..] else {
        unreachable!()
    };
    let svc = Office::new(&a.url, &a.add_office(SVC, "11"));
    let cm = Office::new(&b.url, &b.add_office(CM, "43"));
    wait_reachable(&svc, CM);
    let base = fixture_files(FIXTURE);

    // Fault phase: submitters and the chaos thread run together.
    let done = AtomicBool::new(false);
    let t_faults = Instant::now();
    let fixture = base[0].1.clone();
    let (submitted, victims, mut fetched) = std::thread::scope(|s| {
        let chaos = s.spawn(|| {
            let mut nodes = [("relay", &mut f.relay), ("a", &mut *a), ("b", &mut *b)];
            chaos(&mut nodes, profile, seed, &done)
        });
        let reader = s.spawn(|| reader(&cm, &fixture, &done));
        let submitted = submitters(&[&svc], SUBMIT_WINDOW, &base, units);
        let victims = chaos.join().unwrap();
        (submitted, victims, reader.join().unwrap())
    });
    println!(
        "crash-loop: {} downloaded by the destination during the faults",
        fetched.len()
    );
    println!(
        "crash-loop: {} accepted, {} attempts refused while the origin was down, {} ambiguous \
         attempts (e.g. {:?}), victims {victims:?}; fault phase {:.1} s (set-up {:.1} s)",
        submitted.accepted.len(),
        submitted.refused,
        submitted.ambiguous.values().sum::<usize>(),
        submitted.errors,
        t_faults.elapsed().as_secs_f64(),
        (t_faults - t0).as_secs_f64(),
    );
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(submitted.accepted.len(), units);

    // Liveness: with the faults over, every unit the origin holds reaches Delivered, is
    // downloaded, and its Retrieved receipt reaches the origin.
    let t_live = Instant::now();
    let dl = reqwest::blocking::Client::new();
    let sent = loop {
        fetch_new(&dl, &cm, &fixture, &mut fetched);
        let list = svc.json("/v1/sent");
        let list = list.as_array().unwrap().clone();
        let pending = list.iter().filter(|u| u["status"] != "retrieved").count();
        if pending == 0 && list.len() >= units {
            break list;
        }
        assert!(
            t_live.elapsed() < LIVENESS_BOUND,
            "seed {seed}: {pending} of {} units not delivered and retrieved {} s after the faults stopped",
            list.len(),
            LIVENESS_BOUND.as_secs()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    println!(
        "crash-loop: all delivered and retrieved {:.1} s after the faults stopped",
        t_live.elapsed().as_secs_f64()
    );

    // Exactly once at the origin: every accepted unit is there once, each with exactly one
    // Delivered and one Retrieved receipt; the only others are units whose submission got
    // no answer.
    let mut by_id: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for u in &sent {
        let id = u["id"].as_str().unwrap().to_owned();
        assert!(
            by_id.insert(id.clone(), u).is_none(),
            "seed {seed}: {id} listed twice"
        );
        for kind in ["delivered", "retrieved"] {
            let n = u["receipts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] == kind)
                .count();
            assert_eq!(n, 1, "seed {seed}: {id} has {n} {kind} receipts: {u}");
        }
    }
    for (st, id) in &submitted.accepted {
        let u = by_id
            .get(id)
            .unwrap_or_else(|| panic!("seed {seed}: accepted unit {id} ({st}) lost at the origin"));
        assert_eq!(u["stamp"], st.as_str());
    }
    // Nothing else: a submission whose answer was lost and was sent again got the unit
    // already sent (idempotent resubmission), not a second one.
    let accepted_ids: BTreeSet<&String> = submitted.accepted.values().collect();
    for (id, u) in &by_id {
        let st = u["stamp"].as_str().unwrap();
        assert!(
            accepted_ids.contains(id),
            "seed {seed}: unit {id} (stamp {st}) at the origin was never answered to the office \
             ({} unanswered attempts for that stamp): a resubmission made a second unit",
            submitted.ambiguous.get(st).copied().unwrap_or(0)
        );
    }
    assert_eq!(by_id.len(), units, "seed {seed}");

    // Exactly once at the destination: the inbox holds exactly the origin's units.
    let inbox = cm.json("/v1/inbox?limit=10000");
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for e in inbox.as_array().unwrap() {
        *got.entry(e["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    for (id, n) in &got {
        assert_eq!(*n, 1, "seed {seed}: {id} is {n} times in the inbox");
        assert!(
            by_id.contains_key(id),
            "seed {seed}: unexpected {id} in the inbox"
        );
    }
    assert_eq!(
        got.len(),
        by_id.len(),
        "seed {seed}: inbox and origin differ"
    );

    // Every receipt verifies and is backed by a stored envelope: the origin's and the
    // destination's audit exports are built from the envelopes each node stored, and carry
    // every receipt; each proof verifies against the roster.
    let signed = SignedRoster::decode(&std::fs::read(&roster_path).unwrap()).unwrap();
    let roster = signed.roster();
    let b_id: OperatorId = operator_id(b.dir_str()).parse().unwrap();
    for (node, office, direction) in [(&*a, SVC, Direction::Sent), (&*b, CM, Direction::Received)] {
        let bytes = admin_get(
            node,
            &format!("/admin/v1/audit-export?office={office}&month={SUBJECT_MONTH}"),
        );
        let export = AuditExport::decode(&bytes).unwrap();
        assert_eq!(
            export.entries.len(),
            by_id.len(),
            "seed {seed}: export of {office}"
        );
        let mut ids = BTreeSet::new();
        for (entry, result) in export.entries.iter().zip(export.verify(roster)) {
            let id = entry.proof.header().id.to_string();
            if let Err(e) = result {
                panic!("seed {seed}: proof of {id} in the export of {office}: {e}");
            }
            assert_eq!(entry.direction, direction);
            let delivered: Vec<_> = entry
                .proof
                .receipts
                .iter()
                .filter(|r| r.receipt().kind == ReceiptKind::Delivered)
                .collect();
            assert_eq!(
                delivered.len(),
                1,
                "seed {seed}: {id} in the export of {office}"
            );
            assert_eq!(delivered[0].receipt().node, b_id);
            // No statement twice (a redelivery after a crash is answered from dedup, and
            // the origin keeps one copy of each receipt).
            let mut statements = BTreeSet::new();
            for r in &entry.proof.receipts {
                let rc = r.receipt();
                let hop = match rc.kind {
                    ReceiptKind::Accepted { hop } => Some(hop),
                    _ => None,
                };
                assert!(
                    statements.insert((rc.kind.name(), rc.node, hop)),
                    "seed {seed}: {id} in the export of {office}: {} by {} twice",
                    rc.kind.name(),
                    rc.node
                );
            }
            ids.insert(id);
        }
        assert_eq!(ids.len(), by_id.len());
        assert!(ids.iter().all(|id| by_id.contains_key(id)));
        let path = auth_dir.join(format!("export-{office}.cbor"));
        std::fs::write(&path, &bytes).unwrap();
        renkei(&[
            "verify",
            path.to_str().unwrap(),
            "--roster",
            roster_path.to_str().unwrap(),
            "--authority",
            &authority,
        ]);
    }
    // Every unit's stored file was downloaded and was the submitted bytes.
    assert_eq!(
        fetched.len(),
        by_id.len(),
        "seed {seed}: not every unit was downloaded"
    );

    // The audit hash chains verify on every node (stopped: the store is locked while it runs).
    for (name, n) in [("relay", &mut f.relay), ("a", &mut *a), ("b", &mut *b)] {
        n.signal("-TERM");
        let out = renkei(&["audit", "verify", "--dir", n.dir_str()]);
        assert!(
            out.starts_with("audit chain OK"),
            "seed {seed}: {name}: {out}"
        );
        println!("crash-loop: {name}: {}", out.trim());
    }
    println!("crash-loop: total {:.1} s", t0.elapsed().as_secs_f64());
}
