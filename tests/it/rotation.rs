//! Key rotation with real `renkei run` processes on loopback: operator b rotates its key
//! while a unit sealed and addressed to its old key waits at the relay; the authority
//! publishes the new roster; the old unit is still opened, proofs made before the rotation
//! still verify, and units sent after go to (and are proven by) the new key.

use std::process::Command;
use std::time::{Duration, Instant};

use renkei_tests::{NodeProc, Office, TempDir, fixture_files, free_port, renkei, renkei_bin};

const CM: &str = "4074478647"; // at a (43)
const SVC: &str = "4071481594"; // at b (11)

fn line_value(out: &str, prefix: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
        .trim()
        .to_owned()
}

/// `renkei verify PROOF --roster ROSTER --authority KEY`: (success, stdout).
fn verify(proof: &std::path::Path, roster: &std::path::Path, authority: &str) -> (bool, String) {
    let out = Command::new(renkei_bin())
        .args([
            "verify",
            proof.to_str().unwrap(),
            "--roster",
            roster.to_str().unwrap(),
            "--authority",
            authority,
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn save_proof(office: &Office, id: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let (s, proof) = office.get(&format!("/v1/sent/{id}/proof"));
    assert_eq!(s, 200);
    let p = dir.join(format!("{id}.proof"));
    std::fs::write(&p, proof).unwrap();
    p
}

fn with_stamp(files: &[(String, Vec<u8>)], new: &str) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(n, b)| (n.replace("20250425164608", new), b.clone()))
        .collect()
}

fn directory_operator(from: &Office, office: &str) -> Option<String> {
    from.json(&format!("/v1/directory/{office}"))["operator"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn rotated_operator_keeps_old_units_and_proofs_and_receives_under_its_new_key() {
    // The federation: a relay, a (care manager office) and b (service office).
    let auth = TempDir::new("rot-auth");
    let ad = auth.0.to_str().unwrap().to_owned();
    let out = renkei(&["federation", "init", "--dir", &ad]);
    let authority = line_value(&out, "federation authority key: ");
    let relay_addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let mut relay = NodeProc::init(
        "rot-relay",
        &[
            "--listen",
            &relay_addr,
            "--relay",
            "--authority",
            &authority,
        ],
    );
    let mk = |n: &str| {
        NodeProc::init(
            n,
            &[
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--authority",
                &authority,
            ],
        )
    };
    let (mut a, mut b) = (mk("rot-a"), mk("rot-b"));
    renkei(&[
        "federation",
        "add-operator",
        "--dir",
        &ad,
        "--name",
        "central-relay",
        "--node-dir",
        relay.dir_str(),
        "--relay",
        "--addr",
        &relay_addr,
    ]);
    for (name, n) in [("a", &a), ("b", &b)] {
        renkei(&[
            "federation",
            "add-operator",
            "--dir",
            &ad,
            "--name",
            name,
            "--node-dir",
            n.dir_str(),
        ]);
    }
    let roster = auth.0.join("roster.cbor");
    let old_roster = auth.0.join("roster-before-rotation.cbor");
    std::fs::copy(&roster, &old_roster).unwrap();
    for n in [&relay, &a, &b] {
        renkei(&[
            "roster-install",
            "--dir",
            n.dir_str(),
            roster.to_str().unwrap(),
        ]);
        n.edit_config("sync_interval_ms = 30000", "sync_interval_ms = 1000");
    }
    for n in [&mut relay, &mut a, &mut b] {
        n.run();
    }
    let cm = Office::new(&a.url, &a.add_office(CM, "43"));
    let svc = Office::new(&b.url, &b.add_office(SVC, "11"));
    let b_old = line_value(
        &renkei(&["key", "show", "--dir", b.dir_str()]),
        "operator id:",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while directory_operator(&cm, SVC).as_deref() != Some(b_old.as_str()) {
        assert!(Instant::now() < deadline, "a never learnt where {SVC} is");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. A unit before the rotation, delivered, with its proof kept.
    let base = fixture_files("valid/d2_kyo_riyohyo");
    let (st, body) = cm.submit(&base);
    assert_eq!(st, 202, "{body}");
    let u1 = body["id"].as_str().unwrap().to_owned();
    cm.wait_status(&u1, &["delivered"]);
    let p1 = save_proof(&cm, &u1, &auth.0);
    let (ok, v) = verify(&p1, &roster, &authority);
    assert!(ok && v.contains("delivered by operator b"), "{v}");

    // 2. Rotation is refused while the node runs, and the key is left alone.
    let out = Command::new(renkei_bin())
        .args(["key", "rotate", "--dir", b.dir_str()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "key rotate ran on a running node");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Even when its API is not where the config says, the store lock gives it away.
    let b_http = b.url.trim_start_matches("http://").to_owned();
    let elsewhere = format!("127.0.0.1:{}", free_port());
    b.edit_config(&b_http, &elsewhere);
    let out = Command::new(renkei_bin())
        .args(["key", "rotate", "--dir", b.dir_str()])
        .output()
        .unwrap();
    b.edit_config(&elsewhere, &b_http);
    assert!(!out.status.success(), "key rotate ran on a locked store");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot lock the store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        line_value(
            &renkei(&["key", "show", "--dir", b.dir_str()]),
            "operator id:"
        ),
        b_old
    );

    // 3. b stops. A unit sealed and addressed to b's old key waits at the relay.
    b.signal("-TERM");
    let u2_files = with_stamp(&base, "20250425170000");
    let (st, body) = cm.submit(&u2_files);
    assert_eq!(st, 202, "{body}");
    let u2 = body["id"].as_str().unwrap().to_owned();
    cm.wait_status(&u2, &["relayed"]);

    // 4. b rotates; the authority rotates b's roster entry; the roster goes everywhere.
    let out = renkei(&["key", "rotate", "--dir", b.dir_str()]);
    assert_eq!(line_value(&out, "old operator id:"), b_old);
    let b_new = line_value(&out, "operator id:");
    let b_seal = line_value(&out, "sealing key:");
    assert_ne!(b_new, b_old);
    let shown = renkei(&["key", "show", "--dir", b.dir_str()]);
    assert_eq!(line_value(&shown, "operator id:"), b_new);
    assert_eq!(line_value(&shown, "retired id:"), b_old);
    let out = renkei(&[
        "federation",
        "rotate-operator",
        "--dir",
        &ad,
        "--operator",
        "b",
        "--key",
        &b_new,
        "--seal-key",
        &b_seal,
        "--overlap-days",
        "30",
    ]);
    assert!(out.contains("operator b rotated"), "{out}");
    let show = renkei(&["federation", "show", roster.to_str().unwrap()]);
    assert!(
        show.contains(&b_new) && show.contains(&format!("retired {b_old}")),
        "{show}"
    );
    for n in [&relay, &a, &b] {
        renkei(&[
            "roster-install",
            "--dir",
            n.dir_str(),
            roster.to_str().unwrap(),
        ]);
    }
    b.run();

    // 5. The unit sealed to the old key is delivered to b under its new id and opened.
    let sent = cm.wait_status(&u2, &["delivered"]);
    let delivered_by: Vec<&str> = sent["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "delivered")
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(delivered_by, [b_new.as_str()]);
    for (name, bytes) in &u2_files {
        let (s, got) = svc.get(&format!("/v1/inbox/{u2}/files/{name}"));
        assert_eq!(s, 200, "{name}");
        assert_eq!(&got, bytes, "{name} changed");
    }
    let p2 = save_proof(&cm, &u2, &auth.0);
    let (ok, v) = verify(&p2, &roster, &authority);
    assert!(ok && v.contains("delivered by operator b"), "{v}");
    // The roster before the rotation does not know the key that signed Delivered.
    let (ok, v) = verify(&p2, &old_roster, &authority);
    assert!(!ok && v.starts_with("INVALID"), "{v}");

    // 6. The proof made before the rotation (old key) verifies with the new roster, both
    //    as kept and as downloaded again.
    let (ok, v) = verify(&p1, &roster, &authority);
    assert!(ok && v.contains("delivered by operator b"), "{v}");
    let p1_again = save_proof(&cm, &u1, &auth.0);
    assert!(verify(&p1_again, &roster, &authority).0);

    // 7. b re-signed its office binding under the new key and a learnt it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while directory_operator(&cm, SVC).as_deref() != Some(b_new.as_str()) {
        assert!(
            Instant::now() < deadline,
            "a still routes {SVC} to {:?}",
            directory_operator(&cm, SVC)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 8. A unit after the rotation goes to the new key; its proof verifies with it.
    let (st, body) = cm.submit(&with_stamp(&base, "20250425180000"));
    assert_eq!(st, 202, "{body}");
    let u3 = body["id"].as_str().unwrap().to_owned();
    cm.wait_status(&u3, &["delivered"]);
    let p3 = save_proof(&cm, &u3, &auth.0);
    let (ok, v) = verify(&p3, &roster, &authority);
    assert!(ok && v.contains("delivered by operator b"), "{v}");
    assert!(!verify(&p3, &old_roster, &authority).0);
    let inbox = svc.json("/v1/inbox");
    let ids: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for id in [&u1, &u2, &u3] {
        assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "{id}: {ids:?}");
    }
}
