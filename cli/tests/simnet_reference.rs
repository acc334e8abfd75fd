//! The real `renkei` binary: a single-seed simnet run prints, beside its report, how long an
//! Ed25519 signature took on its thread before and after (the machine's speed then).
#![allow(clippy::unwrap_used)]

use std::process::Command;

const SMOKE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../simnet/scenarios/smoke.toml"
);

#[test]
fn a_single_seed_run_prints_the_machine_reference_beside_its_report() {
    let out = Command::new(env!("CARGO_BIN_EXE_renkei"))
        .args(["simnet", "run", SMOKE, "--seed", "3", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // On stderr, so that --json's stdout stays one JSON object.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("[simnet] machine reference: an Ed25519 signature took "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let figures: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .collect();
    assert_eq!(figures.len(), 2, "{line}");
    assert!(figures.iter().all(|us| *us > 0.0), "{line}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["seed"], 3, "{stdout}");
}
