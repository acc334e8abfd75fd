#![allow(clippy::unwrap_used)]
//! The smoke scenario runs clean, delivers everything, and is deterministic.

use renkei_simnet::{RunOptions, Scenario, run};

fn scenario(name: &str) -> Scenario {
    let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    Scenario::load(std::path::Path::new(&path)).unwrap()
}

#[test]
fn smoke_delivers_everything() {
    let s = scenario("smoke");
    let r = run(&s, 1, RunOptions::default());
    println!("{}", r.text());
    assert!(r.passed(), "{}", r.text());
    assert_eq!(r.counts.submitted, 60);
    assert_eq!(r.counts.accepted, 60, "{}", r.text());
    assert_eq!(r.counts.delivered, 60);
    assert_eq!(r.counts.inbox_entries, 60);
    assert!(r.latency.p50_ms > 0);
}

#[test]
fn the_report_says_where_the_wall_time_went() {
    let s = scenario("smoke");
    let r = run(&s, 2, RunOptions::default());
    let p = &r.phases;
    let sum = p.setup_ms + p.traffic_ms + p.settle_ms + p.check_ms;
    // The phases cover the run: their sum is the wall time, give or take the
    // millisecond each rounding drops.
    assert!(
        sum <= r.wall_ms && r.wall_ms - sum <= 4,
        "{p:?} vs {}",
        r.wall_ms
    );
    assert!(p.traffic_ms > 0, "the workload takes time: {p:?}");
    assert!(r.text().contains("wall: setup "), "{}", r.text());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["phases"]["traffic_ms"], p.traffic_ms);
}
