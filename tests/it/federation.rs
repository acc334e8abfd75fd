//! Federation over libp2p with real `renkei run` processes on loopback: a relay and three
//! operators (a, b, c) that reach each other only through it.

use std::time::{Duration, Instant};

use renkei_tests::{
    Federation, NodeProc, Office, Running, TempDir, fixture_files, operator_id, renkei,
    wait_reachable,
};

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

fn fed(tag: &str) -> Fed {
    let mut f = Federation::start(tag, &["a", "b", "c"], &[]);
    let c = f.nodes.pop().unwrap();
    let b = f.nodes.pop().unwrap();
    let a = f.nodes.pop().unwrap();
    Fed {
        auth: f.auth,
        authority: f.authority,
        relay: f.relay,
        a,
        b,
        c,
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
    let cm = Office::new(
        &f.a.url,
        &f.a.add_office_named(CM, "43", "ひばり居宅介護支援事業所"),
    );
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
        // The receiving office, at another operator, sees the sender's name from its
        // binding (the one office registered with a name).
        let entry = to.json("/v1/inbox?limit=1");
        assert_eq!(entry[0]["id"], id.as_str());
        let from_name = entry[0]["from_name"].as_str();
        if std::ptr::eq(from, &cm) {
            assert_eq!(from_name, Some("ひばり居宅介護支援事業所"), "{dir}");
        } else {
            assert_eq!(from_name, None, "{dir}");
        }
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
            } else if p.is_file() {
                // (not the admin socket)
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
    // Before: one unit of c's is delivered; its proof holds c's signature.
    let (st, body) = yobo.submit(&with_stamp(
        &fixture_files("valid/d5_yobo_plan"),
        "20250425093000",
        "20250425090000",
    ));
    assert_eq!(st, 202, "{body}");
    let before = body["id"].as_str().unwrap().to_owned();
    yobo.wait_status(&before, &["delivered"]);
    let (s, proof) = yobo.get(&format!("/v1/sent/{before}/proof"));
    assert_eq!(s, 200);
    let proof_path = f.auth.0.join("before-revocation.proof");
    std::fs::write(&proof_path, proof).unwrap();
    // c is revoked in the roster; the relay learns it, and spreads it by directory sync.
    let ad = f.auth.0.to_str().unwrap();
    let out = renkei(&["federation", "remove-operator", "--dir", ad, "c"]);
    assert!(out.contains("revoked at"), "{out}");
    // Revoked, not deleted: the proof made before still verifies under the new roster.
    let verified = renkei(&[
        "verify",
        proof_path.to_str().unwrap(),
        "--roster",
        f.auth.0.join("roster.cbor").to_str().unwrap(),
    ]);
    assert!(
        verified.contains("VALID proof") && !verified.contains("INVALID"),
        "{verified}"
    );
    let shown = renkei(&[
        "federation",
        "show",
        f.auth.0.join("roster.cbor").to_str().unwrap(),
    ]);
    assert!(shown.contains("REVOKED at"), "{shown}");
    renkei(&[
        "roster-install",
        "--dir",
        f.relay.dir_str(),
        f.auth.0.join("roster.cbor").to_str().unwrap(),
    ]);
    let c_id = operator_id(f.c.dir_str());
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
    assert_eq!(
        yobo_svc.json("/v1/inbox").as_array().unwrap().len(),
        1,
        "a revoked operator's unit was delivered"
    );
}

/// A node started with only the authority key (no roster) learns the roster from the first
/// peer that connects to it: its connection gate admits peers until it has a roster, the
/// node asks that peer for its directory, and installs the roster the authority signed.
/// Then units flow to its offices. (Before, the gate of a node without a roster denied
/// every peer, forever.)
#[test]
fn a_node_without_a_roster_learns_it_from_a_peer() {
    let mut f = Federation::init("noroster", &["a"]);
    let b_addr = format!("/ip4/127.0.0.1/tcp/{}", renkei_tests::free_port());
    let mut b = NodeProc::init(
        "noroster-b",
        &["--listen", &b_addr, "--authority", &f.authority],
    );
    b.edit_config("sync_interval_ms = 30000", "sync_interval_ms = 1000");
    let ad = f.auth.0.to_str().unwrap().to_owned();
    renkei(&[
        "federation",
        "add-operator",
        "--dir",
        &ad,
        "--name",
        "b",
        "--node-dir",
        b.dir_str(),
        "--addr",
        &b_addr,
    ]);
    // The new roster goes to the relay and a only; the relay keeps b connected.
    for n in std::iter::once(&f.relay).chain(&f.nodes) {
        renkei(&[
            "roster-install",
            "--dir",
            n.dir_str(),
            f.roster().to_str().unwrap(),
        ]);
    }
    let b_id = operator_id(b.dir_str());
    f.relay.edit_config(
        "peers = []",
        &format!("peers = [{{ id = \"{b_id}\", addrs = [\"{b_addr}\"] }}]"),
    );
    f.relay.run();
    for n in &mut f.nodes {
        n.run();
    }
    b.run();
    let cm = Office::new(&f.nodes[0].url, &f.nodes[0].add_office(CM, "43"));
    let svc = Office::new(&b.url, &b.add_office(SVC, "11"));
    wait_reachable(&cm, SVC);
    let (st, body) = cm.submit(&fixture_files("valid/d2_kyo_riyohyo"));
    assert_eq!(st, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    cm.wait_status(&id, &["delivered"]);
    let inbox = svc.json("/v1/inbox");
    assert_eq!(inbox[0]["id"], id.as_str(), "{inbox}");
}

/// docs/FEDERATION.md's walkthrough, run as written: every command of its `sh` block, in
/// order, with its placeholders (keys, tokens) filled from the outputs before them and
/// its ports replaced by free ones. A command changed in the document changes here.
#[test]
fn the_federation_walkthrough_works_as_written() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/FEDERATION.md"
    ))
    .unwrap();
    let section = doc
        .split("## Walkthrough")
        .nth(1)
        .expect("a Walkthrough section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its sh block");
    let base = TempDir::new("walkthrough");
    let unit = std::path::Path::new(renkei_tests::FIXTURES).join("valid/d2_kyo_riyohyo");
    let copy = base.0.join("d2_kyo_riyohyo");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(&unit).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    // The document's ports, each replaced by a free one.
    let ports: Vec<(&str, u16)> = ["8081", "8082", "7001", "7002"]
        .into_iter()
        .map(|p| (p, renkei_tests::free_port()))
        .collect();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut runs: Vec<Running> = Vec::new();
    let mut ran = 0;
    for line in block.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut line = line.to_owned();
        for (p, free) in &ports {
            line = line
                .replace(&format!(":{p}"), &format!(":{free}"))
                .replace(&format!("/tcp/{p}"), &format!("/tcp/{free}"));
        }
        for (k, v) in &vars {
            line = line.replace(k.as_str(), v);
        }
        let args = split_args(&line);
        assert_eq!(args[0], "renkei", "{line}");
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        ran += 1;
        if args[0] == "run" {
            let child = std::process::Command::new(renkei_tests::renkei_bin())
                .args(&args)
                .current_dir(&base.0)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            runs.push(Running(child));
            continue;
        }
        // `directory` and `sent` answer what the nodes know so far: asked until they tell
        // what the document says they will.
        let want = match args[0] {
            "directory" => Some("can receive electronically"),
            "sent" => Some("DELIVERED"),
            "office" | "inbox" => Some(""),
            _ => None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let out = loop {
            let out = std::process::Command::new(renkei_tests::renkei_bin())
                .args(&args)
                .current_dir(&base.0)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let ok = out.status.success() && want.is_none_or(|w| text.contains(w));
            if ok {
                break text;
            }
            assert!(
                want.is_some() && Instant::now() < deadline,
                "`{line}` failed:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let grab = |prefix: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .map(|v| v.trim().to_owned())
        };
        if let Some(k) = grab("federation authority key:") {
            vars.push(("AUTHORITY_KEY".into(), k));
        }
        if args[..2] == ["key", "show"] {
            let who = args[3].to_uppercase();
            vars.push((format!("{who}_ID"), grab("operator id:").unwrap()));
            vars.push((format!("{who}_SEAL"), grab("sealing key:").unwrap()));
        }
        if args[..2] == ["office", "add"] {
            let name = if args.contains(&"east") {
                "CM_TOKEN"
            } else {
                "SVC_TOKEN"
            };
            vars.push((name.into(), grab("token:").unwrap()));
        }
        if args[0] == "inbox" {
            assert!(
                out.contains("4074478647"),
                "the unit is in west's inbox:\n{out}"
            );
        }
    }
    assert_eq!(ran, 18, "the walkthrough's commands");
}

/// Splits a command line on spaces, keeping double-quoted words whole.
fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        args.push(cur);
    }
    args
}
