//! The real `renkei` binary: a simulation whose host fails under it (here: its spill files
//! cannot grow) stops with an error naming the file and the cause, instead of crashing a
//! simulated node and reporting the consequences as the federation's.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const SMOKE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../simnet/scenarios/smoke.toml"
);

#[test]
fn a_spill_file_that_cannot_grow_stops_the_run_without_a_verdict() {
    let dir = std::env::temp_dir().join(format!("renkei-host-failure-{}", std::process::id()));
    let spill = dir.join("spill");
    std::fs::create_dir_all(&spill).unwrap();
    // The smoke scenario with enough traffic to write a spill file past its first MiB.
    let scenario = std::fs::read_to_string(SMOKE)
        .unwrap()
        .replace("envelopes = 60", "envelopes = 400")
        .replace("offices = 40", "offices = 60");
    assert!(
        scenario.contains("envelopes = 400"),
        "smoke.toml changed shape"
    );
    let toml = dir.join("big-smoke.toml");
    std::fs::write(&toml, scenario).unwrap();

    // Files this process writes may not exceed 1 KiB (SIGXFSZ ignored, so a write past it
    // fails with EFBIG): the first flush of a spill file fails, as on a full disk.
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f 1; exec "$@""#)
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_renkei"))
        .args(["simnet", "run"])
        .arg(&toml)
        .args(["--seed", "1", "--spill-dir"])
        .arg(&spill)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("seed 1 could not finish, so it has no verdict")
            && stderr.contains("spill file")
            && stderr.contains("File too large")
            && stderr.contains("replay with: renkei simnet run"),
        "{stderr}"
    );
    assert!(stdout.contains("STOPPED: the store of node"), "{stdout}");
    assert!(stdout.contains("checkers: not run"), "{stdout}");
    // No checker verdict is claimed, in either direction.
    assert!(!stdout.contains("lost  "), "{stdout}");
    assert!(!stdout.contains("FAILED; replay"), "{stdout}");
    // The spill files were unlinked at creation: nothing is left behind.
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
