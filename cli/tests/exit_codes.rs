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

#[test]
fn a_closed_stdout_ends_quietly_without_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    // Read one byte of the report, then close the pipe while it is still being written.
    // The report must be far larger than a pipe's buffer (64 KiB), so that the writer is
    // still writing when the pipe closes. The command reads each file once whatever the
    // number of times a path names it, so the invalid fixtures are named 17 different ways
    // (`invalid/a/..`, which `Path` keeps apart): ~280 KB. (Naming the same directory 300
    // times gave one 16 KB report, which could fit in the buffer: the command finished
    // first and exited 1, about 1 run in 30 under load.)
    let invalid = format!("{FIXTURES}/invalid");
    let subdirs: Vec<String> = std::fs::read_dir(&invalid)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let spellings: Vec<String> = std::iter::once(invalid.clone())
        .chain(subdirs.iter().map(|d| format!("{invalid}/{d}/..")))
        .take(20)
        .collect();
    assert!(spellings.len() >= 10, "{spellings:?}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_renkei"))
        .args(["csv", "check"])
        .args(&spellings)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    out.read_exact(&mut one).unwrap();
    drop(out);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(141), "{err}");
}
