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
