//! The conformance kit (`renkei conformance`) against a real node process over libp2p on
//! loopback: a correct node passes every check; a misconfigured one fails and the kit
//! exits non-zero.

use std::process::Command;

use renkei_tests::{FIXTURES, Federation, renkei, renkei_bin};

/// Receiving office (居宅介護支援, kind 43) of the test unit.
const CM: &str = "4074478647";
/// The test unit: one 実績 file from 4071481594 (11) to CM.
const UNIT: &str = "valid/d3_jisseki";

const CHECKS: [&str; 11] = [
    "directory-sync",
    "delivery",
    "receipt-signature",
    "dedup",
    "refuse-garbage",
    "refuse-forged-signature",
    "refuse-unknown-origin",
    "refuse-outsider-peer",
    "refuse-oversize",
    "refuse-home-capture",
    "refuse-forged-sender",
];

/// A roster of a relay, a `target` and a `tester`; only the target runs.
fn target_and_tester(tag: &str) -> Federation {
    let mut f = Federation::init(tag, &["target", "tester"]);
    f.nodes[0].run();
    f
}

/// Runs `renkei conformance` from the tester against the target: (exit code, stdout).
fn conformance(f: &Federation) -> (i32, String) {
    let unit = std::path::Path::new(FIXTURES).join(UNIT);
    let out = Command::new(renkei_bin())
        .args([
            "conformance",
            "--dir",
            f.nodes[1].dir_str(),
            "--target",
            &renkei_tests::p2p_addr(&f.nodes[0]),
            "--roster",
            f.roster().to_str().unwrap(),
            "--unit",
            unit.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

fn verdict(out: &str, check: &str) -> String {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no line for {check}:\n{out}"))
        .to_owned()
}

#[test]
fn conformance_kit_passes_a_correct_node() {
    let f = target_and_tester("conf-ok");
    f.nodes[0].add_office(CM, "43");
    let (code, out) = conformance(&f);
    for check in CHECKS {
        assert_eq!(verdict(&out, check), "PASS", "{check}:\n{out}");
    }
    assert!(out.contains("11 checks: 11 passed, 0 failed"), "{out}");
    assert_eq!(code, 0, "{out}");
    // The target delivered the unit once and is still serving its office.
    let status = renkei(&["status", "--dir", f.nodes[0].dir_str()]);
    assert!(status.contains("\"delivered\": 1,"), "{status}");
    assert!(status.contains("\"duplicates\": 1,"), "{status}");
}

#[test]
fn conformance_kit_fails_a_node_that_does_not_home_the_office() {
    // The target's operator forgot to register the office: delivery is rejected, so the
    // checks that need a delivery fail and the kit exits non-zero; the refusals still pass.
    let f = target_and_tester("conf-bad");
    let (code, out) = conformance(&f);
    assert_eq!(code, 1, "{out}");
    assert_eq!(verdict(&out, "delivery"), "FAIL", "{out}");
    assert!(out.contains("unknown_office"), "{out}");
    for check in ["receipt-signature", "dedup"] {
        assert_eq!(verdict(&out, check), "FAIL", "{check}:\n{out}");
    }
    for check in &CHECKS[4..9] {
        assert_eq!(verdict(&out, check), "PASS", "{check}:\n{out}");
    }
    // A node that does not home the office has no home to defend: the rival claim is the
    // only binding it knows, and the kit says so.
    assert_eq!(verdict(&out, "refuse-home-capture"), "FAIL", "{out}");
    // Nor a sender to defend: the kit's unit "from" that office, signed by the tester, is
    // not refused as a forged sender (the tester's claim is all the target knows of it).
    assert_eq!(verdict(&out, "refuse-forged-sender"), "FAIL", "{out}");
}
