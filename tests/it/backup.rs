//! `renkei backup` and `renkei restore` with real processes: a backup made by a running node
//! between two of its batches, restored into a fresh node directory (the same key and
//! config, an empty store), serves the same inbox, the same sent list and byte-identical
//! proofs, and its audit chain verifies; what was sent after the backup is not in it. A
//! stopped node's store is backed up directly; a restore refuses a store that holds data.

use std::collections::BTreeSet;
use std::process::Command;

use renkei_tests::{NodeProc, Office, TempDir, fixture_files, renkei, renkei_bin};

const CM: &str = "4074478647";
const SVC: &str = "4071481594";

/// A fresh node directory for the same operator: everything but the store, another port.
fn copy_without_store(from: &NodeProc, tag: &str) -> NodeProc {
    let to = NodeProc::init(tag, &[]);
    let _ = std::fs::remove_dir_all(&to.dir.0);
    std::fs::create_dir_all(&to.dir.0).unwrap();
    for e in std::fs::read_dir(&from.dir.0).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if e.file_type().unwrap().is_file() && name != "node.log" && name != "listen.addrs" {
            std::fs::copy(e.path(), to.dir.0.join(&name)).unwrap();
        }
    }
    to.edit_config(
        from.url.trim_start_matches("http://"),
        to.url.trim_start_matches("http://"),
    );
    to
}

fn sent_units(n: &NodeProc, svc: &Office, count: usize, first: usize) -> Vec<String> {
    let base = fixture_files("valid/d3_jisseki");
    (first..first + count)
        .map(|i| {
            let st = format!("202504281646{i:02}");
            let files: Vec<(String, Vec<u8>)> = base
                .iter()
                .map(|(name, b)| (name.replace("20250428164608", &st), b.clone()))
                .collect();
            let (status, body) = svc.submit(&files);
            assert_eq!(status, 202, "{body} ({})", n.url);
            let id = body["id"].as_str().unwrap().to_owned();
            svc.wait_status(&id, &["delivered"]);
            id
        })
        .collect()
}

fn ids(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_backup_of_a_running_node_restores_into_a_fresh_node_that_serves_the_same_units() {
    let mut a = NodeProc::start("bk-a", &[]);
    let (svc_token, cm_token) = (a.add_office(SVC, "11"), a.add_office(CM, "43"));
    let svc = Office::new(&a.url, &svc_token);
    let cm = Office::new(&a.url, &cm_token);
    let before = sent_units(&a, &svc, 3, 10);
    // One unit downloaded: its Retrieved receipt is in the backup too.
    let name = cm.json("/v1/inbox")[0]["files"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = cm.json("/v1/inbox")[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(cm.get(&format!("/v1/inbox/{first}/files/{name}")).0, 200);
    svc.wait_status(&first, &["retrieved"]);

    let files = TempDir::new("bk-files");
    let online = files.0.join("online.renkei-backup");
    let out = renkei(&["backup", "--dir", a.dir_str(), online.to_str().unwrap()]);
    assert!(out.contains("by the running node"), "{out}");
    // A second backup to the same file is refused, the first left as it is.
    let again = Command::new(renkei_bin())
        .args(["backup", "--dir", a.dir_str(), online.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let inbox_then = cm.json("/v1/inbox");
    let sent_then = svc.json("/v1/sent");
    let proofs: Vec<Vec<u8>> = before
        .iter()
        .map(|id| {
            let (st, p) = svc.get(&format!("/v1/sent/{id}/proof"));
            assert_eq!(st, 200);
            p
        })
        .collect();
    // Sent after the backup: not in it.
    let after = sent_units(&a, &svc, 1, 20);
    a.signal("-TERM");

    let mut b = copy_without_store(&a, "bk-b");
    let out = renkei(&["restore", "--dir", b.dir_str(), online.to_str().unwrap()]);
    assert!(out.starts_with("restored"), "{out}");
    b.run();
    let (svc_b, cm_b) = (
        Office::new(&b.url, &svc_token),
        Office::new(&b.url, &cm_token),
    );
    let inbox_b = cm_b.json("/v1/inbox");
    assert_eq!(ids(&inbox_b), ids(&inbox_then));
    assert_eq!(inbox_b, inbox_then, "the inbox, states included");
    assert_eq!(svc_b.json("/v1/sent"), sent_then);
    assert!(!ids(&inbox_b).contains(&after[0]));
    for (id, proof) in before.iter().zip(&proofs) {
        let (st, p) = svc_b.get(&format!("/v1/sent/{id}/proof"));
        assert_eq!(st, 200);
        assert_eq!(&p, proof, "the proof of {id} changed");
    }
    // The restored node goes on working.
    let next = sent_units(&b, &svc_b, 1, 30);
    assert!(ids(&cm_b.json("/v1/inbox")).contains(&next[0]));
    b.signal("-TERM");
    let out = renkei(&["audit", "verify", "--dir", b.dir_str()]);
    assert!(out.starts_with("audit chain OK"), "{out}");
    // A store that holds data is not restored into.
    let refused = Command::new(renkei_bin())
        .args(["restore", "--dir", b.dir_str(), online.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A stopped node is backed up from its store: the unit sent after the online backup is
    // in this one.
    let offline = files.0.join("offline.renkei-backup");
    let out = renkei(&["backup", "--dir", a.dir_str(), offline.to_str().unwrap()]);
    assert!(out.contains("from the stopped node's store"), "{out}");
    let mut c = copy_without_store(&a, "bk-c");
    renkei(&["restore", "--dir", c.dir_str(), offline.to_str().unwrap()]);
    c.run();
    let cm_c = Office::new(&c.url, &cm_token);
    assert!(ids(&cm_c.json("/v1/inbox")).contains(&after[0]));
}
