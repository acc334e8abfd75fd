//! Federation over libp2p with real `renkei run` processes on loopback: a relay and three
//! operators (a, b, c) that reach each other only through it.

use std::time::{Duration, Instant};

use renkei_tests::{NodeProc, Office, TempDir, fixture_files, free_port, renkei};

const CM: &str = "4074478647"; // at a (43)
const SVC: &str = "4071481594"; // at b (11)
const YOBO: &str = "4009242217"; // at c (46)
const YOBO_SVC: &str = "4070383858"; // at b (63)

struct Fed {
    auth: TempDir,
    authority: String,
    relay: NodeProc,
    a: NodeProc,
    b: NodeProc,
    c: NodeProc,
}

fn operator(dir: &str) -> String {
    let out = renkei(&["key", "show", "--dir", dir]);
    out.lines()
        .find_map(|l| l.strip_prefix("operator id:"))
        .unwrap()
        .trim()
        .to_owned()
}

fn fed(tag: &str) -> Fed {
    let auth = TempDir::new(&format!("{tag}-auth"));
    let ad = auth.0.to_str().unwrap().to_owned();
    let out = renkei(&["federation", "init", "--dir", &ad]);
    let authority = out
        .lines()
        .find_map(|l| l.strip_prefix("federation authority key: "))
        .unwrap()
        .trim()
        .to_owned();
    let relay_addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let relay = NodeProc::init(
        &format!("{tag}-relay"),
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
            &format!("{tag}-{n}"),
            &[
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--authority",
                &authority,
            ],
        )
    };
    let (a, b, c) = (mk("a"), mk("b"), mk("c"));
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
    for (name, n) in [("a", &a), ("b", &b), ("c", &c)] {
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
    for n in [&relay, &a, &b, &c] {
        renkei(&[
            "roster-install",
            "--dir",
            n.dir_str(),
            roster.to_str().unwrap(),
        ]);
        n.edit_config("sync_interval_ms = 30000", "sync_interval_ms = 1000");
    }
    let mut f = Fed {
        auth,
        authority,
        relay,
        a,
        b,
        c,
    };
    for n in [&mut f.relay, &mut f.a, &mut f.b, &mut f.c] {
        n.run();
    }
    f
}

fn wait_reachable(from: &Office, office: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = from.json(&format!("/v1/directory/{office}"));
        if v["reachable"] == true {
            return;
        }
        assert!(Instant::now() < deadline, "directory never showed {office}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn with_stamp(files: &[(String, Vec<u8>)], old: &str, new: &str) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(n, b)| (n.replace(old, new), b.clone()))
        .collect()
}

#[test]
fn units_cross_operators_through_the_relay_and_the_relay_never_sees_plaintext() {
    let f = fed("cross");
    let cm = Office::new(&f.a.url, &f.a.add_office(CM, "43"));
    let svc = Office::new(&f.b.url, &f.b.add_office(SVC, "11"));
    let yobo_svc = Office::new(&f.b.url, &f.b.add_office(YOBO_SVC, "63"));
    let yobo = Office::new(&f.c.url, &f.c.add_office(YOBO, "46"));
    wait_reachable(&cm, SVC);
    wait_reachable(&svc, CM);
    wait_reachable(&yobo, YOBO_SVC);
    let out = renkei(&["directory", "--node", &f.a.url, "--token", &cm.token, SVC]);
    assert!(
        out.contains("can receive electronically") && out.contains("operator b"),
        "{out}"
    );

    let roster = f.auth.0.join("roster.cbor");
    let units: [(&str, &Office, &Office); 5] = [
        ("valid/d1_kyo_plan", &cm, &svc),
        ("valid/d2_kyo_riyohyo", &cm, &svc),
        ("valid/d3_jisseki", &svc, &cm),
        ("valid/d4_yobo_kihon", &yobo, &yobo_svc),
        ("valid/d5_yobo_plan", &yobo, &yobo_svc),
    ];
    let mut plaintexts = Vec::new();
    for (dir, from, to) in units {
        let files = fixture_files(dir);
        let (st, body) = from.submit(&files);
        assert_eq!(st, 202, "{dir}: {body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let sent = from.wait_status(&id, &["delivered"]);
        let hops: Vec<(String, Option<u64>)> = sent["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["node_name"].as_str().unwrap_or("").to_owned(),
                    r["hop"].as_u64(),
                )
            })
            .collect();
        assert!(
            hops.iter()
                .any(|(n, h)| n == "central-relay" && *h == Some(1)),
            "{dir}: no relay hop in {hops:?}"
        );
        for (name, bytes) in &files {
            let (s, got) = to.get(&format!("/v1/inbox/{id}/files/{name}"));
            assert_eq!(s, 200);
            assert_eq!(&got, bytes, "{dir}/{name} changed");
            if bytes.len() > 100 {
                plaintexts.push(bytes[bytes.len() / 2..bytes.len() / 2 + 48].to_vec());
            }
        }
        from.wait_status(&id, &["retrieved"]);
        let (s, proof) = from.get(&format!("/v1/sent/{id}/proof"));
        assert_eq!(s, 200);
        let p = f.auth.0.join(format!("{id}.proof"));
        std::fs::write(&p, proof).unwrap();
        let v = renkei(&[
            "verify",
            p.to_str().unwrap(),
            "--roster",
            roster.to_str().unwrap(),
            "--authority",
            &f.authority,
        ]);
        assert!(
            v.starts_with("VALID") && v.contains("accepted by operator central-relay"),
            "{v}"
        );
    }
    // Nothing the relay wrote — store or log — holds a window of any plaintext file.
    let mut files = Vec::new();
    let mut stack = vec![f.relay.dir.0.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(p)
            }
        }
    }
    assert!(
        files.iter().any(|p| p.to_string_lossy().contains("store")),
        "relay has no store files?"
    );
    for p in files {
        let data = std::fs::read(&p).unwrap();
        for w in &plaintexts {
            assert!(
                !data.windows(w.len()).any(|x| x == w.as_slice()),
                "plaintext found in {}",
                p.display()
            );
        }
    }
}

#[test]
fn kill9_of_the_relay_mid_run_loses_nothing_and_duplicates_nothing() {
    let mut f = fed("kill9");
    let cm = Office::new(&f.a.url, &f.a.add_office(CM, "43"));
    let svc = Office::new(&f.b.url, &f.b.add_office(SVC, "11"));
    wait_reachable(&cm, SVC);
    let base = fixture_files("valid/d2_kyo_riyohyo");
    let mut ids = Vec::new();
    for i in 0..24u32 {
        if i == 8 {
            f.relay.signal("-KILL");
        }
        if i == 16 {
            f.relay.run();
        }
        let files = with_stamp(
            &base,
            "20250425164608",
            &format!("20250425{:06}", 170000 + i),
        );
        let (st, body) = cm.submit(&files);
        assert_eq!(st, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        cm.wait_status(id, &["delivered"]);
    }
    let inbox = svc.json("/v1/inbox");
    let got: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for id in &ids {
        assert_eq!(
            got.iter().filter(|g| *g == id).count(),
            1,
            "{id} not delivered exactly once"
        );
    }
    assert_eq!(got.len(), ids.len());
}

#[test]
fn operators_outside_the_roster_are_refused() {
    let f = fed("refuse");
    let cm = Office::new(&f.a.url, &f.a.add_office(CM, "43"));
    let _svc = Office::new(&f.b.url, &f.b.add_office(SVC, "11"));
    let yobo_svc = Office::new(&f.b.url, &f.b.add_office(YOBO_SVC, "63"));
    let yobo = Office::new(&f.c.url, &f.c.add_office(YOBO, "46"));
    wait_reachable(&yobo, YOBO_SVC);
    wait_reachable(&cm, SVC);
    // c is removed from the roster; the relay learns it, and spreads it by directory sync.
    let ad = f.auth.0.to_str().unwrap();
    renkei(&["federation", "remove-operator", "--dir", ad, "c"]);
    renkei(&[
        "roster-install",
        "--dir",
        f.relay.dir_str(),
        f.auth.0.join("roster.cbor").to_str().unwrap(),
    ]);
    let c_id = operator(f.c.dir_str());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = renkei(&["status", "--dir", f.b.dir_str()]);
        if s.contains("\"roster_serial\": 6") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "roster serial 6 never reached b: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let relay_status = renkei(&["status", "--dir", f.relay.dir_str()]);
    assert!(
        !relay_status.contains(&c_id),
        "relay still lists c as a connected peer: {relay_status}"
    );
    // c's unit is never delivered; a's still is.
    let (st, body) = yobo.submit(&fixture_files("valid/d5_yobo_plan"));
    assert_eq!(st, 202, "{body}");
    let c_unit = body["id"].as_str().unwrap().to_owned();
    let (st, body) = cm.submit(&fixture_files("valid/d2_kyo_riyohyo"));
    assert_eq!(st, 202, "{body}");
    cm.wait_status(body["id"].as_str().unwrap(), &["delivered"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        yobo.json(&format!("/v1/sent/{c_unit}"))["status"],
        "accepted"
    );
    assert!(
        yobo_svc.json("/v1/inbox").as_array().unwrap().is_empty(),
        "a removed operator's unit was delivered"
    );
}
