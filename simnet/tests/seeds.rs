#![allow(clippy::unwrap_used)]
//! Many seeds across the fault scenarios (CI: 200 seeds in total). Any failure prints the
//! report and the command that replays it.

use renkei_simnet::{RunOptions, Scenario, run};

fn scenario(name: &str) -> Scenario {
    let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    Scenario::load(std::path::Path::new(&path)).unwrap()
}

/// Smaller than the shipped files, so 200 seeds stay within a few minutes in debug builds.
fn small(name: &str) -> Scenario {
    let mut s = scenario(name);
    s.workload.offices = 24;
    s.workload.envelopes = 24;
    s
}

/// Runs `seeds` of `name`; answers the requests damaged in transit over all of them.
fn sweep(name: &str, seeds: std::ops::Range<u64>) -> u64 {
    let s = small(name);
    let mut failed = Vec::new();
    let mut delivered = 0;
    let mut corrupted = 0;
    for seed in seeds.clone() {
        let r = run(&s, seed, RunOptions::default());
        delivered += r.counts.delivered;
        corrupted += r.stats.corrupted;
        if !r.passed() {
            eprintln!("{}", r.text());
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "{name}: seeds {failed:?} failed; replay: renkei simnet run simnet/scenarios/{name}.toml --seed N"
    );
    assert!(
        delivered > 0,
        "{name}: nothing was delivered over seeds {seeds:?}"
    );
    corrupted
}

#[test]
fn lossy_links_50_seeds() {
    // Its links also damage envelopes in transit (bit flips, truncation, swapped sealed
    // payloads): each must be refused and sent again, never end `rejected` or be lost.
    let corrupted = sweep("lossy-links", 0..50);
    assert!(
        corrupted >= 20,
        "only {corrupted} requests damaged over 50 seeds"
    );
}

#[test]
fn partition_heal_50_seeds() {
    sweep("partition-heal", 0..50);
}

#[test]
fn relay_crash_restart_50_seeds() {
    sweep("relay-crash-restart", 0..50);
}

#[test]
fn flapping_operator_50_seeds() {
    sweep("flapping-operator", 0..50);
}

#[test]
fn byzantine_member_50_seeds() {
    // A lying member attacks in every run; the honest-party checkers (forged, hijacked,
    // untrue status, unexpected, stale latest, lost, duplicated) stay at 0, and the attacks
    // were really made.
    let s = small("byzantine-member");
    let mut failed = Vec::new();
    let mut tried = renkei_simnet::adversary::Attacks::default();
    for seed in 0..50 {
        let r = run(&s, seed, RunOptions::default());
        if !r.passed() {
            eprintln!("{}", r.text());
            failed.push(seed);
        }
        let a = r.attacks.expect("a byzantine scenario reports its attacks");
        tried.forged += a.forged;
        tried.false_rejections += a.false_rejections;
        tried.stuffed += a.stuffed;
        tried.replays += a.replays;
        tried.corrupted += a.corrupted;
        tried.invalid += a.invalid;
        tried.unlike += a.unlike;
        tried.claims += a.claims;
        tried.dropped += a.dropped;
        for (k, v) in a.outcomes {
            *tried.outcomes.entry(k).or_default() += v;
        }
    }
    assert!(
        failed.is_empty(),
        "byzantine-member: seeds {failed:?} failed; replay: renkei simnet run simnet/scenarios/byzantine-member.toml --seed N"
    );
    println!("attacks over 50 seeds: {tried:?}");
    assert!(
        tried.forged > 0
            && tried.false_rejections > 0
            && tried.stuffed > 0
            && tried.replays > 0
            && tried.corrupted > 0
            && tried.invalid > 0
            && tried.unlike > 0
            && tried.claims > 0
            && tried.dropped > 0,
        "some attack was never made: {tried:?}"
    );
    // Refused inside the simulation by the checks production runs: the destination's
    // sender check, origin-signature check, standard-spec check, and the check of the
    // files against the header when opening.
    for code in [
        "sender_not_bound",
        "bad_signature",
        "invalid_csv",
        "cannot_open",
    ] {
        assert!(
            tried.outcomes.get(code).is_some_and(|n| *n > 0),
            "no delivery was refused {code}: {:?}",
            tried.outcomes
        );
    }
}

#[test]
fn expiry_50_seeds() {
    // Units reach their expiry window while their destination is cut off: origins sign
    // Expired (the run must reach it), and every checker stays at 0.
    let s = small("expiry");
    let mut failed = Vec::new();
    let mut expired = 0;
    for seed in 0..50 {
        let r = run(&s, seed, RunOptions::default());
        expired += r.counts.expired;
        if !r.passed() {
            eprintln!("{}", r.text());
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "expiry: seeds {failed:?} failed; replay: renkei simnet run simnet/scenarios/expiry.toml --seed N"
    );
    println!("expired over 50 seeds: {expired}");
    assert!(
        expired > 0,
        "no unit ever expired: the scenario does not reach expiry"
    );
}
