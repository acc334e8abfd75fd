//! The real `renkei` binary: exit codes of `renkei csv check` (0 clean, 1 errors, 2 usage).
#![allow(clippy::unwrap_used)]

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

fn renkei(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_renkei"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn csv_check_exit_codes() {
    let ok = renkei(&["csv", "check", &format!("{FIXTURES}/valid")]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = renkei(&["csv", "check", &format!("{FIXTURES}/invalid/bad_date")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("date.calendar"));
    let usage = renkei(&["csv", "check", "/nonexistent/renkei"]);
    assert_eq!(usage.status.code(), Some(2));
}
