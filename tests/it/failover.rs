//! Active/standby on PostgreSQL, with real processes: operator `a` runs two nodes (`a-1`,
//! `a-2`: one directory copied, the same keys, one database); `b` and the relay run on the
//! local store. Care software sends units from an office at `a` to an office at `b` through
//! whichever `a` node is active, while the active one is killed with SIGKILL (and, every
//! third time, paused with SIGSTOP until the other has taken over, then resumed: it must
//! notice it was deposed and stop without committing). Each time the standby must take over
//! within 10 s and the old one comes back as the standby. Afterwards every accepted unit is
//! delivered and retrieved exactly once, every proof verifies and the audit chains hold.
//!
//! `RENKEI_HA_UNITS` (default [`UNITS_DEFAULT`]) and `RENKEI_HA_KILLS` (default
//! [`KILLS_DEFAULT`]) make the long run of docs/OPERATIONS.md (5,000 units, 10 kills).
//! Needs `RENKEI_TEST_PG` (skipped without it; CI sets it and `RENKEI_REQUIRE_PG`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use renkei_protocol::export::AuditExport;
use renkei_protocol::receipt::ReceiptKind;
use renkei_protocol::roster::SignedRoster;
use renkei_tests::{
    Federation, NodeProc, Office, PgPair, fixture_files, free_port, pg_admin_url, pg_database,
    renkei, wait_reachable,
};

use crate::crash_loop::{
    CM, FIXTURE, SUBJECT_MONTH, SVC, admin_get, fetch_new, reader, submitters,
};

const UNITS_DEFAULT: usize = 400;
const KILLS_DEFAULT: usize = 4;
/// The lease: a standby takes over about this long after the active node stops renewing.
const LEASE_MS: u64 = 2_000;
/// The promise: the standby serves within this long of the active node's death.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);
const SUBMIT_WINDOW: Duration = Duration::from_secs(25);
const LIVENESS_BOUND: Duration = Duration::from_secs(180);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Which of the two nodes is active (answers `/readyz`), waiting up to `within`; panics if
/// both are.
fn active(pair: &[NodeProc], within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    loop {
        let ready: Vec<usize> = (0..pair.len()).filter(|&i| pair[i].is_ready()).collect();
        assert!(ready.len() <= 1, "both nodes of operator a are active");
        if let Some(&i) = ready.first() {
            return Some(i);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills (or pauses) the active node `kills` times; returns the takeover times.
fn chaos(pair: &mut [NodeProc; 2], kills: usize, done: &AtomicBool) -> Vec<Duration> {
    let mut takeovers = Vec::new();
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(3000 + 700 * (k as u64 % 3)));
        let i = active(pair, Duration::from_secs(30)).expect("no active node of operator a");
        let other = 1 - i;
        let t = Instant::now();
        let how = if k % 3 == 2 { "SIGSTOP" } else { "SIGKILL" };
        if how == "SIGSTOP" {
            let pid = pair[i].pid().unwrap().to_string();
            assert!(
                std::process::Command::new("kill")
                    .args(["-STOP", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            let took = active(&pair[other..=other], TAKEOVER_BOUND);
            takeovers.push(t.elapsed());
            assert!(
                took.is_some(),
                "the standby did not take over a paused node within {TAKEOVER_BOUND:?}"
            );
            assert!(
                std::process::Command::new("kill")
                    .args(["-CONT", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            // Resumed, it finds the lease carries another fencing number and stops.
            let code = pair[i].wait_exit(Duration::from_secs(15));
            assert!(
                code.is_some_and(|c| c != 0),
                "a deposed node went on running (exit {code:?}); log:\n{}",
                pair[i].log()
            );
            assert!(pair[i].log().contains("deposed"), "{}", pair[i].log());
        } else {
            pair[i].signal("-KILL");
            let took = active(&pair[other..=other], TAKEOVER_BOUND);
            takeovers.push(t.elapsed());
            assert!(
                took.is_some(),
                "the standby did not take over within {TAKEOVER_BOUND:?}"
            );
        }
        println!(
            "failover: {how} {} ({}/{kills}), {} took over in {:.1} s",
            ["a-1", "a-2"][i],
            k + 1,
            ["a-1", "a-2"][other],
            t.elapsed().as_secs_f64()
        );
        // Back as the standby.
        pair[i].run();
        assert!(
            !pair[i].is_ready(),
            "a restarted node must wait as the standby"
        );
    }
    done.store(true, Ordering::SeqCst);
    takeovers
}

#[test]
fn the_standby_takes_over_a_killed_or_paused_active_node_and_nothing_is_lost_or_doubled() {
    let Some(db) = pg_database("failover") else {
        return;
    };
    let (units, kills) = (
        env_usize("RENKEI_HA_UNITS", UNITS_DEFAULT),
        env_usize("RENKEI_HA_KILLS", KILLS_DEFAULT),
    );
    active_standby_run(&db, units, kills, Reach::ThroughRelay);
}

/// The other addressing of docs/OPERATIONS.md: both nodes' addresses in `a`'s roster entry
/// and no relay running, so `b` reaches `a` only by dialling those addresses (it keeps
/// every operator with an address connected) and `a` reaches `b` only over `b`'s
/// connection. After each takeover `b` must find the new active node at the other address.
#[test]
fn peers_find_the_active_node_at_either_address_in_the_roster() {
    let Some(db) = pg_database("failover_addr") else {
        return;
    };
    active_standby_run(&db, 120, 2, Reach::ByAddress);
}

/// How `b` and `a` reach each other in [`active_standby_run`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reach {
    /// Both dial out to the relay (the nodes of `a` listen on ephemeral ports).
    ThroughRelay,
    /// `a`'s roster entry lists both its nodes' addresses; the relay never runs.
    ByAddress,
}

fn active_standby_run(db: &str, units: usize, kills: usize, reach: Reach) {
    println!("failover ({reach:?}): {units} units, {kills} kills or pauses of the active node");
    let mut f = Federation::init("ha", &["a", "b"]);
    for n in std::iter::once(&f.relay).chain(&f.nodes) {
        n.edit_config("retry_max_ms = 300000", "retry_max_ms = 2000");
        n.edit_config("retry_base_ms = 500", "retry_base_ms = 200");
    }
    let roster_path = f.roster();
    let (a1, mut b) = (f.nodes.remove(0), f.nodes.remove(0));
    let listen = [0, 1].map(|_| format!("/ip4/127.0.0.1/tcp/{}", free_port()));
    if reach == Reach::ByAddress {
        a1.edit_config("/ip4/127.0.0.1/tcp/0", &listen[0]);
        renkei(&[
            "federation",
            "add-operator",
            "--dir",
            f.auth.0.to_str().unwrap(),
            "--name",
            "a",
            "--node-dir",
            a1.dir_str(),
            "--addr",
            &listen[0],
            "--addr",
            &listen[1],
        ]);
        renkei(&[
            "roster-install",
            "--dir",
            b.dir_str(),
            roster_path.to_str().unwrap(),
        ]);
    }
    a1.use_postgres(db, "a-1", LEASE_MS);
    // The roster goes into the store, which is now the database.
    renkei(&[
        "roster-install",
        "--dir",
        a1.dir_str(),
        roster_path.to_str().unwrap(),
    ]);
    let svc_token = a1.add_office(SVC, "11");
    let cm = Office::new(&b.url, &b.add_office(CM, "43"));
    let a2 = a1.standby_copy("a-2");
    if reach == Reach::ByAddress {
        a2.edit_config(&listen[0], &listen[1]);
    }
    let mut pair = [a1, a2];
    if reach == Reach::ThroughRelay {
        f.relay.run();
    }
    b.run();
    pair[0].run();
    // a-2 starts once a-1 holds the lease: started together, either could take it first
    // (a flaky CI run on 2026-12-07 saw a-2 win).
    assert_eq!(
        active(&pair[..1], Duration::from_secs(10)),
        Some(0),
        "a-1 is active, a-2 the standby"
    );
    pair[1].run();
    assert_eq!(
        active(&pair, Duration::from_secs(10)),
        Some(0),
        "a-1 is active, a-2 the standby"
    );
    let offices = [
        Office::new(&pair[0].url, &svc_token),
        Office::new(&pair[1].url, &svc_token),
    ];
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_reachable(&offices[0], CM)
    }))
    .is_err()
    {
        panic!(
            "a-1 never saw {CM}; a-1's log:\n{}\nrelay's log:\n{}",
            pair[0].log(),
            f.relay.log()
        );
    }
    let base = fixture_files(FIXTURE);
    let fixture = base[0].1.clone();

    let done = AtomicBool::new(false);
    let (submitted, takeovers, mut fetched) = std::thread::scope(|s| {
        let chaos = s.spawn(|| chaos(&mut pair, kills, &done));
        let reader = s.spawn(|| reader(&cm, &fixture, &done));
        let submitted = submitters(&[&offices[0], &offices[1]], SUBMIT_WINDOW, &base, units);
        let takeovers = chaos.join().unwrap();
        (submitted, takeovers, reader.join().unwrap())
    });
    println!(
        "failover: {} accepted, {} answers from the standby, {} ambiguous attempts; takeovers {:?}",
        submitted.accepted.len(),
        submitted.standby_answers,
        submitted.ambiguous.values().sum::<usize>(),
        takeovers
            .iter()
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    assert_eq!(submitted.accepted.len(), units);
    assert!(takeovers.iter().all(|d| *d < TAKEOVER_BOUND));

    // Liveness through whichever node is active now.
    let t_live = Instant::now();
    let dl = reqwest::blocking::Client::new();
    let sent = loop {
        fetch_new(&dl, &cm, &fixture, &mut fetched);
        let i = active(&pair, Duration::from_secs(30)).expect("an active node");
        let list = offices[i].json("/v1/sent?limit=10000");
        let list = list.as_array().unwrap().clone();
        let pending = list.iter().filter(|u| u["status"] != "retrieved").count();
        if pending == 0 && list.len() >= units {
            break list;
        }
        assert!(
            t_live.elapsed() < LIVENESS_BOUND,
            "{pending} of {} units not delivered and retrieved {} s after the faults",
            list.len(),
            LIVENESS_BOUND.as_secs()
        );
        std::thread::sleep(Duration::from_secs(1));
    };

    // Exactly once at the origin (whichever node answered) and at the destination.
    let mut by_id: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for u in &sent {
        let id = u["id"].as_str().unwrap().to_owned();
        assert!(by_id.insert(id.clone(), u).is_none(), "{id} listed twice");
        for kind in ["delivered", "retrieved"] {
            let n = u["receipts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] == kind)
                .count();
            assert_eq!(n, 1, "{id} has {n} {kind} receipts: {u}");
        }
    }
    let accepted: BTreeSet<&String> = submitted.accepted.values().collect();
    for (st, id) in &submitted.accepted {
        let u = by_id
            .get(id)
            .unwrap_or_else(|| panic!("accepted unit {id} ({st}) lost at the origin"));
        assert_eq!(u["stamp"], st.as_str());
    }
    for id in by_id.keys() {
        assert!(
            accepted.contains(id),
            "unit {id} at the origin was never answered to the office"
        );
    }
    let inbox = cm.json("/v1/inbox?limit=10000");
    let got: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let got_set: BTreeSet<&str> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "a unit is twice in the inbox");
    assert_eq!(
        got_set,
        by_id.keys().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert_eq!(fetched.len(), units);

    // The active node says so in its metrics, with the fencing number it commits under.
    let i = active(&pair, Duration::from_secs(30)).unwrap();
    let token = std::fs::read_to_string(pair[i].dir.0.join("metrics.token")).unwrap();
    let m = reqwest::blocking::Client::new()
        .get(format!("{}/metrics", pair[i].url))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .text()
        .unwrap();
    let name = ["a-1", "a-2"][i];
    assert!(
        m.contains(&format!("renkei_active{{node=\"{name}\"}} 1")),
        "{m}"
    );
    assert!(m.contains("store=\"postgres\""), "{m}");
    // And in its status.
    let status: serde_json::Value = serde_json::from_str(&renkei(&[
        "status",
        "--dir",
        pair[i].dir.0.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(status["active_node"], name, "{status}");
    assert_eq!(status["store"], "postgres", "{status}");
    let fence: i64 = m
        .lines()
        .find_map(|l| l.strip_prefix("renkei_lease_fence "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        fence > kills as i64,
        "fence {fence} after {kills} takeovers"
    );
    let store_bytes: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("renkei_store_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        store_bytes > 1e5,
        "the table holds the units: {store_bytes}"
    );

    // Every proof verifies, from the active node of a and from b.
    let signed = SignedRoster::decode(&std::fs::read(&roster_path).unwrap()).unwrap();
    let i = active(&pair, Duration::from_secs(30)).unwrap();
    for (node, office) in [(&pair[i], SVC), (&b, CM)] {
        let bytes = admin_get(
            node,
            &format!("/admin/v1/audit-export?office={office}&month={SUBJECT_MONTH}"),
        );
        let export = AuditExport::decode(&bytes).unwrap();
        assert_eq!(export.entries.len(), units, "export of {office}");
        for (entry, result) in export.entries.iter().zip(export.verify(signed.roster())) {
            let id = entry.proof.header().id.to_string();
            result.unwrap_or_else(|e| panic!("proof of {id} in the export of {office}: {e}"));
            let delivered = entry
                .proof
                .receipts
                .iter()
                .filter(|r| r.receipt().kind == ReceiptKind::Delivered)
                .count();
            assert_eq!(delivered, 1, "{id} in the export of {office}");
        }
    }

    // The audit chains hold: a's in the database (read with the lease, once both a nodes
    // are stopped), b's on its disk.
    // The standby first: stopped after the active one, it would take over.
    let i = active(&pair, Duration::from_secs(30)).unwrap();
    pair[1 - i].signal("-TERM");
    for n in [&mut pair[i], &mut b] {
        n.signal("-TERM");
    }
    for dir in [pair[0].dir_str(), b.dir_str()] {
        let out = renkei(&["audit", "verify", "--dir", dir]);
        assert!(out.starts_with("audit chain OK"), "{dir}: {out}");
        println!("failover: {dir}: {}", out.trim());
    }
}

/// The database fails over under a running node: PostgreSQL with a synchronous streaming
/// replica; mid-run the primary is stopped in `immediate` mode (a crash) and the replica
/// promoted. The node, whose connection string names both servers with
/// `target_session_attrs=read-write`, stops at its first failed commit; restarted (as
/// systemd would), it waits for a writable server and goes on with the promoted replica.
/// Every unit the node acknowledged before the crash is there after it, delivered once.
#[test]
fn a_node_follows_its_database_to_the_promoted_replica_and_loses_no_acknowledged_unit() {
    if pg_admin_url().is_none() {
        return;
    }
    let units = env_usize("RENKEI_HA_DB_UNITS", 200);
    let pair = PgPair::start();
    let mut n = NodeProc::init("dbfail", &[]);
    n.use_postgres(&pair.url(), "only", LEASE_MS);
    let svc = n.add_office(SVC, "11");
    let cm = Office::new(&n.url, &n.add_office(CM, "43"));
    n.run();
    let offices = [Office::new(&n.url, &svc), Office::new(&n.url, &svc)];
    let base = fixture_files(FIXTURE);

    let accepted_before = Mutex::new(BTreeSet::new());
    let submitted = std::thread::scope(|s| {
        let faults = s.spawn(|| {
            std::thread::sleep(SUBMIT_WINDOW / 3);
            // What the node acknowledged up to here must survive the crash.
            let sent = offices[0].json("/v1/sent?limit=10000");
            *accepted_before.lock().unwrap() = sent
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned())
                .collect();
            pair.run("stop-primary");
            pair.run("promote");
            let code = n.wait_exit(Duration::from_secs(30));
            assert!(
                code.is_some_and(|c| c != 0),
                "the node went on without its database (exit {code:?}); log:\n{}",
                n.log()
            );
            println!("failover-db: primary crashed, replica promoted, node stopped; restarting it");
            n.run();
        });
        let submitted = submitters(&[&offices[0], &offices[1]], SUBMIT_WINDOW, &base, units);
        faults.join().unwrap();
        submitted
    });
    let before = accepted_before.into_inner().unwrap();
    println!(
        "failover-db: {} acknowledged before the crash, {} accepted in all, {} ambiguous attempts",
        before.len(),
        submitted.accepted.len(),
        submitted.ambiguous.values().sum::<usize>()
    );
    assert!(!before.is_empty(), "the crash came before any unit");
    assert_eq!(submitted.accepted.len(), units);

    let deadline = Instant::now() + LIVENESS_BOUND;
    let sent = loop {
        let list = offices[0].json("/v1/sent?limit=10000");
        let list = list.as_array().unwrap().clone();
        if list.iter().all(|u| u["status"] == "delivered") && list.len() >= units {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "units not delivered after the failover"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let ids: BTreeSet<String> = sent
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), sent.len(), "a unit is listed twice");
    for id in &before {
        assert!(
            ids.contains(id),
            "{id}, acknowledged before the crash, is gone"
        );
    }
    let accepted: BTreeSet<String> = submitted.accepted.values().cloned().collect();
    assert_eq!(
        ids, accepted,
        "the node holds units nobody was told of, or lost some"
    );
    let inbox = cm.json("/v1/inbox?limit=10000");
    let got: Vec<String> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got.len(), units, "each unit once in the inbox");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), accepted);
    n.signal("-TERM");
    let out = renkei(&["audit", "verify", "--dir", n.dir_str()]);
    assert!(out.starts_with("audit chain OK"), "{out}");
}
