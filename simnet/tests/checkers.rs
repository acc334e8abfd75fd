#![allow(clippy::unwrap_used)]
//! The checkers can fail: a deliberately broken driver and a relay that holds plaintext are
//! caught; and a run is a pure function of its seed.

use renkei_core::store::SharedValues;
use renkei_core::{ApiCommand, ApiReply, Auth, PreparedUnit};
use renkei_protocol::envelope::sha256;
use renkei_simnet::checker;
use renkei_simnet::history::{History, Outcome, Submission, unit_key};
use renkei_simnet::payload::{UnitKind, office_number};
use renkei_simnet::sim::{Broken, Sim};
use renkei_simnet::workload::{Office, Role, Workload};
use renkei_simnet::{RunOptions, Scenario, run};

fn scenario(name: &str) -> Scenario {
    let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    Scenario::load(std::path::Path::new(&path)).unwrap()
}

#[test]
fn releasing_effects_before_commit_is_caught() {
    // The driver releases a batch's replies and hop acknowledgements before committing and
    // then crashes the node: "accepted" escapes without the data behind it.
    let mut s = scenario("smoke");
    s.workload.offices = 24;
    s.workload.envelopes = 30;
    let mut caught = 0;
    for seed in 0..3 {
        let opts = RunOptions {
            broken: Some(Broken {
                probability: 0.3,
                relays: true,
            }),
            ..RunOptions::default()
        };
        let r = run(&s, seed, opts);
        assert!(
            r.stats.broken_releases > 0,
            "seed {seed}: the broken driver never triggered"
        );
        assert!(
            !r.passed(),
            "seed {seed}: a broken driver went unnoticed\n{}",
            r.text()
        );
        caught += r.checks.lost.count + r.checks.wrong_receipt.count;
    }
    assert!(
        caught > 0,
        "neither lost nor wrong_receipt flagged the broken driver"
    );
    // The same scenario with the correct driver passes.
    let r = run(&s, 0, RunOptions::default());
    assert!(r.passed(), "{}", r.text());
}

#[test]
fn plaintext_at_a_relay_is_caught() {
    // A relay that also homes an office opens units for it: its store then holds plaintext,
    // and the checker must say so.
    let mut sim = Sim::builder()
        .seed(5)
        .relay("national")
        .operator("east")
        .link(0, 1)
        .build();
    let offices = vec![
        Office {
            number: office_number(1),
            role: Role::Care,
            home: 1,
            partners: vec![1],
        },
        Office {
            number: office_number(2),
            role: Role::Provider,
            home: 0,
            partners: vec![],
        },
    ];
    for o in &offices {
        let cmd = ApiCommand::AddOffice {
            office: o.number.parse().unwrap(),
            kinds: o.role.kinds().iter().map(|k| k.parse().unwrap()).collect(),
            name: o.number.clone(),
            token_hash: o.token_hash(),
        };
        assert!(matches!(
            sim.call(o.home, Auth::Operator, cmd),
            Some(ApiReply::Office(_))
        ));
    }
    sim.run_for(120_000);
    let stamp = "20250430120000";
    let files = UnitKind::Riyohyo.build(&offices[0].number, &offices[1].number, stamp);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let key = unit_key(&names);
    let auth = Auth::Office(sha256(offices[0].number.as_bytes()));
    let at = sim.now();
    let reply = sim.call(
        1,
        auth,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files),
            supersedes: None,
        },
    );
    let Some(ApiReply::Accepted(v)) = reply else {
        panic!("{reply:?}")
    };
    sim.run_for(60_000);
    let mut history = History::default();
    history.submitted(
        1,
        Submission {
            at,
            kind: UnitKind::Riyohyo,
            from: 0,
            to: 1,
            origin: 1,
            stamp: stamp.into(),
            key,
            supersedes: None,
            outcome: Outcome::Accepted(v.id.parse().unwrap()),
        },
    );
    let workload = Workload {
        offices,
        planned: vec![],
    };
    let (f, tally, _) = checker::check(&sim, &history, &workload, true, &[]);
    assert_eq!(tally.delivered, 1, "{f:?}");
    assert!(f.plaintext_at_relay.count > 0, "{f:?}");
    assert_eq!(
        f.lost.count + f.duplicated.count + f.unexpected.count + f.wrong_receipt.count,
        0,
        "{f:?}"
    );
}

#[test]
fn same_seed_same_event_log() {
    let s = scenario("partition-heal");
    let mut s = s.scaled(0.5);
    s.workload.envelopes = 20;
    let a = run(&s, 42, RunOptions::default());
    let b = run(&s, 42, RunOptions::default());
    let c = run(&s, 43, RunOptions::default());
    assert_eq!(a.event_log_hash, b.event_log_hash);
    assert_eq!(a.events, b.events);
    assert_eq!(a.latency.p99_ms, b.latency.p99_ms);
    assert_ne!(a.event_log_hash, c.event_log_hash);
}

#[test]
fn spilling_store_values_to_a_file_changes_nothing_but_memory() {
    // A run that crashes a relay (undo of spilled writes) and checks plaintext at relays
    // (reads every spilled value back): the same events, counts and verdicts either way.
    let mut s = scenario("relay-crash-restart");
    s.workload.envelopes = 60;
    let heap = run(&s, 5, RunOptions::default());
    let opts = RunOptions {
        values: Some(SharedValues::spilling_to(&std::env::temp_dir()).unwrap()),
        ..RunOptions::default()
    };
    let spilled = run(&s, 5, opts);
    assert!(
        spilled.spilled_bytes > 60 * 1000,
        "{}",
        spilled.spilled_bytes
    );
    assert_eq!(heap.spilled_bytes, 0);
    assert_eq!(heap.event_log_hash, spilled.event_log_hash);
    assert_eq!(heap.counts.delivered, spilled.counts.delivered);
    assert_eq!(heap.counts.receipts, spilled.counts.receipts);
    assert!(
        heap.stats.crashes > 0 && spilled.passed(),
        "{}",
        spilled.text()
    );
}

#[test]
fn trace_is_written_and_plot_is_svg() {
    let mut s = scenario("smoke");
    s.workload.envelopes = 10;
    let path = std::env::temp_dir().join(format!("simnet-trace-{}.log", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    let r = run(
        &s,
        9,
        RunOptions {
            trace: Some(Box::new(std::io::BufWriter::new(f))),
            ..RunOptions::default()
        },
    );
    let trace = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        trace.contains(" api ") && trace.contains(" send ") && trace.contains("# traffic starts"),
        "{}",
        &trace[..200.min(trace.len())]
    );
    let svg = r.svg();
    assert!(
        svg.starts_with("<svg") && svg.contains("<circle") && svg.trim_end().ends_with("</svg>")
    );
}

#[test]
fn batches_side_by_side_change_nothing_but_the_wall_time() {
    // The directory's spread over fifty operators: answers of hundreds of bindings each,
    // many of them within a millisecond or two of another node's.
    let mut s = scenario("national-density");
    s.workload.offices = 4_000;
    s.workload.envelopes = 200;
    s.workload.duration_ms = 600_000;
    let alone = run(
        &s,
        3,
        RunOptions {
            one_at_a_time: true,
            ..RunOptions::default()
        },
    );
    let paired = run(&s, 3, RunOptions::default());
    assert_eq!(alone.stats.side_by_side, 0);
    assert!(
        paired.stats.side_by_side >= 10,
        "{} batches side by side",
        paired.stats.side_by_side
    );
    assert_eq!(alone.event_log_hash, paired.event_log_hash);
    assert_eq!(alone.events, paired.events);
    assert_eq!(alone.stats.batches, paired.stats.batches);
    assert_eq!(alone.counts.delivered, paired.counts.delivered);
    assert!(paired.passed(), "{}", paired.text());
}

#[test]
fn grouping_every_batch_of_ordinary_traffic_changes_nothing() {
    // Every independent batch grouped, not only the directory's heavy ones: API calls the
    // run queues as it reaches their time, faults, a relay crash, a partition. A group must
    // not take an event past the time the run has reached (the submission queued at that
    // time would then land behind it and the run would change).
    let mut s = scenario("national-density");
    s.workload.offices = 1_000;
    s.workload.envelopes = 3_000;
    s.workload.duration_ms = 900_000;
    s.faults.window_start_ms = 300_000;
    s.faults.window_end_ms = 600_000;
    s.faults.partition_ms = renkei_simnet::scenario::Span::Range([60_000.0, 120_000.0]);
    s.faults.crash_down_ms = renkei_simnet::scenario::Span::Range([30_000.0, 60_000.0]);
    s.check.liveness_ms = 1_800_000;
    let alone = run(
        &s,
        5,
        RunOptions {
            one_at_a_time: true,
            ..RunOptions::default()
        },
    );
    let grouped = run(
        &s,
        5,
        RunOptions {
            side_by_side_always: true,
            ..RunOptions::default()
        },
    );
    assert!(
        grouped.stats.side_by_side >= 1_000,
        "{} batches side by side",
        grouped.stats.side_by_side
    );
    assert_eq!(alone.event_log_hash, grouped.event_log_hash);
    assert_eq!(alone.events, grouped.events);
    assert_eq!(alone.stats.batches, grouped.stats.batches);
    assert_eq!(alone.counts.delivered, grouped.counts.delivered);
    assert!(grouped.passed(), "{}", grouped.text());
}
