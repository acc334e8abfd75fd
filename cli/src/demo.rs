//! `renkei demo`: a local federation on loopback in temporary directories — a central
//! relay and two regional operators connected only through it — exchanging every kind of
//! send unit, with each step and each verified receipt printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use renkei_node::config::{ADMIN_TOKEN_FILE, NodeConfig};
use renkei_node::keyfile;
use renkei_node::runtime::{self, RunningNode};
use renkei_protocol::keys::{OperatorKeys, SigningIdentity};
use renkei_protocol::proof::Proof;
use renkei_protocol::roster::{OperatorEntry, Roster, SignedRoster};
use renkei_simnet::payload::UnitKind;
use reqwest::blocking::{Client, multipart};
use serde_json::{Value, json};

struct DemoNode {
    name: &'static str,
    dir: PathBuf,
    keys: OperatorKeys,
    running: Option<RunningNode>,
}

impl DemoNode {
    fn url(&self) -> String {
        self.running
            .as_ref()
            .map(|r| format!("http://{}", r.http))
            .unwrap_or_default()
    }
}

fn init_node(
    base: &Path,
    name: &'static str,
    relay: bool,
    authority: &SigningIdentity,
) -> Result<DemoNode> {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir)?;
    let keys = OperatorKeys::from_seeds(keyfile::random_seed()?, keyfile::random_seed()?);
    keyfile::create(&dir, &keys)?;
    let admin = renkei_node::api::new_token()?;
    renkei_node::keyfile::write_secret(&dir.join(ADMIN_TOKEN_FILE), &admin)?;
    let mut cfg = NodeConfig::new(name);
    cfg.http = "127.0.0.1:0".parse()?;
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    cfg.relay = relay;
    cfg.authority = Some(authority.id().to_string());
    cfg.roster = Some("roster.cbor".into());
    cfg.delivery.sync_interval_ms = 2_000;
    cfg.save(&dir)?;
    Ok(DemoNode {
        name,
        dir,
        keys,
        running: None,
    })
}

fn entry(n: &DemoNode, relay: bool, addrs: Vec<String>) -> OperatorEntry {
    OperatorEntry {
        name: n.name.into(),
        id: n.keys.id(),
        enc_key: n.keys.seal.public(),
        relay,
        addrs,
        valid_from_ms: runtime::now_ms().saturating_sub(60_000),
        valid_until_ms: None,
        old_keys: vec![],
    }
}

fn add_office(n: &DemoNode, office: &str, kind: &str, label: &str) -> Result<String> {
    let r = crate::admin_api::Admin::open(&n.dir)?
        .request(reqwest::Method::POST, "/admin/v1/offices")
        .json(&json!({"office": office, "kinds": [kind], "name": label}))
        .send()?;
    if !r.status().is_success() {
        bail!("adding office {office} at {}: {}", n.name, r.text()?);
    }
    let v: Value = r.json()?;
    Ok(v["token"].as_str().unwrap_or_default().to_owned())
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Office<'a> {
    number: &'static str,
    kind: &'static str,
    label: &'static str,
    node: &'a DemoNode,
    token: String,
}

/// Runs the demo; returns the process exit code.
pub fn run(keep: bool) -> Result<i32> {
    let base = std::env::temp_dir().join(format!("renkei-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = rt
        .block_on(async { Ok::<_, anyhow::Error>(()) })
        .and_then(|_| demo(&rt, &base, keep));
    if !keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    code
}

fn demo(rt: &tokio::runtime::Runtime, base: &Path, keep: bool) -> Result<i32> {
    println!(
        "Renkei demo: a local federation on 127.0.0.1 in {}",
        base.display()
    );
    let authority = SigningIdentity::from_seed(keyfile::random_seed()?);
    let mut relay = init_node(base, "central-relay", true, &authority)?;
    let mut shimane = init_node(base, "shimane", false, &authority)?;
    let mut kanamic = init_node(base, "kanamic-like", false, &authority)?;

    // The relay first: the roster must carry its actual address.
    relay.running = Some(rt.block_on(runtime::start(&relay.dir))?);
    let relay_addr = relay
        .running
        .as_ref()
        .map(|r| r.p2p.clone())
        .unwrap_or_default();
    let roster = Roster {
        serial: 1,
        issued_at_ms: runtime::now_ms(),
        authority: authority.id(),
        operators: vec![
            entry(&relay, true, relay_addr.clone()),
            entry(&shimane, false, vec![]),
            entry(&kanamic, false, vec![]),
        ],
    }
    .sign(&authority);
    let roster_bytes = roster.encode();
    for n in [&relay, &shimane, &kanamic] {
        std::fs::write(n.dir.join("roster.cbor"), &roster_bytes)?;
    }
    let c = Client::builder().timeout(Duration::from_secs(60)).build()?;
    let r = crate::admin_api::Admin::open(&relay.dir)?
        .request(reqwest::Method::PUT, "/admin/v1/roster")
        .body(roster_bytes.clone())
        .send()?;
    if !r.status().is_success() {
        bail!("relay refused the roster: {}", r.text()?);
    }
    shimane.running = Some(rt.block_on(runtime::start(&shimane.dir))?);
    kanamic.running = Some(rt.block_on(runtime::start(&kanamic.dir))?);
    println!("  federation authority {}", authority.id());
    for n in [&relay, &shimane, &kanamic] {
        println!(
            "  operator {:<13} {}  http {}  p2p {}",
            n.name,
            n.keys.id(),
            n.url(),
            n.running
                .as_ref()
                .map(|r| r.p2p.join(" "))
                .unwrap_or_default()
        );
    }
    println!("  shimane and kanamic-like are connected only through central-relay");

    let mut offices = vec![
        Office {
            number: "4074478647",
            kind: "43",
            label: "居宅介護支援 (care manager)",
            node: &shimane,
            token: String::new(),
        },
        Office {
            number: "4009242217",
            kind: "46",
            label: "介護予防支援 (support centre)",
            node: &shimane,
            token: String::new(),
        },
        Office {
            number: "4071481594",
            kind: "11",
            label: "訪問介護 (home help)",
            node: &kanamic,
            token: String::new(),
        },
        Office {
            number: "4070383858",
            kind: "63",
            label: "予防 service office",
            node: &kanamic,
            token: String::new(),
        },
    ];
    for o in &mut offices {
        o.token = add_office(o.node, o.number, o.kind, o.label)?;
        println!(
            "  office {} ({}) {} homed at {}",
            o.number, o.kind, o.label, o.node.name
        );
    }
    let find = |n: &str| offices.iter().find(|o| o.number == n).context("office");
    // Directory sync: every sender must see its recipient as reachable.
    for (from, to) in [
        ("4074478647", "4071481594"),
        ("4071481594", "4074478647"),
        ("4009242217", "4070383858"),
    ] {
        let (f, t) = (find(from)?, find(to)?);
        wait_for(
            &format!("the directory to show {to} at {from}'s node"),
            60,
            || {
                let v: Value = c
                    .get(format!("{}/v1/directory/{}", f.node.url(), t.number))
                    .bearer_auth(&f.token)
                    .send()?
                    .json()?;
                Ok((v["reachable"] == true).then_some(()))
            },
        )?;
        println!(
            "  directory: {} sees office {} at operator {}",
            f.node.name, t.number, t.node.name
        );
    }

    let units = [
        (
            UnitKind::Plan,
            "4074478647",
            "4071481594",
            "第1〜3表 + 補足 (D1)",
        ),
        (
            UnitKind::Riyohyo,
            "4074478647",
            "4071481594",
            "第6表 + 第7表 + 補足 (D2)",
        ),
        (UnitKind::Jisseki, "4071481594", "4074478647", "実績 (D3)"),
        (
            UnitKind::YoboKihon,
            "4009242217",
            "4070383858",
            "予防 利用者基本情報 + JPEG (D4)",
        ),
        (
            UnitKind::YoboPlan,
            "4009242217",
            "4070383858",
            "予防 サービス・支援計画書 (D5)",
        ),
    ];
    let mut failures = 0;
    for (i, (kind, from, to, label)) in units.iter().enumerate() {
        let (f, t) = (find(from)?, find(to)?);
        let stamp = format!("2025042516{:04}", 4600 + i);
        let files = kind.build(from, to, &stamp);
        println!(
            "\n[{}] {label}: office {from} @{} → office {to} @{}",
            i + 1,
            f.node.name,
            t.node.name
        );
        let mut form = multipart::Form::new();
        for (n, b) in &files {
            form = form.part(
                "file",
                multipart::Part::bytes(b.clone()).file_name(n.clone()),
            );
        }
        let r = c
            .post(format!("{}/v1/send-units", f.node.url()))
            .bearer_auth(&f.token)
            .multipart(form)
            .send()?;
        if r.status().as_u16() != 202 {
            println!("    REFUSED: {}", r.text()?);
            failures += 1;
            continue;
        }
        let v: Value = r.json()?;
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        println!("    submitted   id {id}, {} file(s)", files.len());
        let sent = wait_for("delivery", 60, || {
            let v: Value = c
                .get(format!("{}/v1/sent/{id}", f.node.url()))
                .bearer_auth(&f.token)
                .send()?
                .json()?;
            Ok(matches!(
                v["status"].as_str(),
                Some("delivered" | "retrieved" | "rejected")
            )
            .then_some(v))
        })?;
        for r in sent["receipts"].as_array().into_iter().flatten() {
            let step = match (r["kind"].as_str(), r["hop"].as_u64()) {
                (Some("accepted"), Some(0)) => "accepted  ",
                (Some("accepted"), _) => "relayed   ",
                (Some("delivered"), _) => "delivered ",
                (Some(k), _) => k,
                _ => "?",
            };
            println!(
                "    {step}  signed by {}",
                r["node_name"].as_str().unwrap_or("?")
            );
        }
        for (name, bytes) in &files {
            let got = c
                .get(format!("{}/v1/inbox/{id}/files/{name}", t.node.url()))
                .bearer_auth(&t.token)
                .send()?
                .bytes()?;
            if got.as_ref() != bytes.as_slice() {
                println!("    BYTES DIFFER for {name}");
                failures += 1;
            }
        }
        println!(
            "    retrieved   {} file(s) byte-identical at office {to}",
            files.len()
        );
        wait_for("the Retrieved receipt", 60, || {
            let v: Value = c
                .get(format!("{}/v1/sent/{id}", f.node.url()))
                .bearer_auth(&f.token)
                .send()?
                .json()?;
            Ok((v["status"] == "retrieved").then_some(()))
        })?;
        let proof = c
            .get(format!("{}/v1/sent/{id}/proof", f.node.url()))
            .bearer_auth(&f.token)
            .send()?
            .bytes()?;
        match Proof::decode(&proof)
            .map_err(|e| e.to_string())
            .and_then(|p| p.verify(roster.roster()).map_err(|e| e.to_string()))
        {
            Ok(lines) => {
                println!(
                    "    proof       VALID offline against roster serial {}:",
                    roster.roster().serial
                );
                for l in lines.iter().skip(1) {
                    println!("                  {l}");
                }
            }
            Err(e) => {
                println!("    proof       INVALID: {e}");
                failures += 1;
            }
        }
    }
    verify_roster(&roster, &authority)?;
    println!();
    if failures == 0 {
        println!(
            "demo OK: 5 send units crossed operators through the relay; every receipt verified"
        );
    } else {
        println!("demo FAILED: {failures} problem(s)");
    }
    if keep {
        println!("\nnodes keep running (Ctrl-C to stop):");
        for n in [&relay, &shimane, &kanamic] {
            println!("  {:<13} web page {}/", n.name, n.url());
        }
        for o in &offices {
            println!(
                "  office {} ({}) at {}: token {}",
                o.number, o.kind, o.node.name, o.token
            );
        }
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    for n in [&mut relay, &mut shimane, &mut kanamic] {
        if let Some(r) = n.running.take() {
            rt.block_on(r.stop())?;
        }
    }
    Ok(if failures == 0 { 0 } else { 1 })
}

fn verify_roster(r: &SignedRoster, authority: &SigningIdentity) -> Result<()> {
    r.verify(&authority.id())
        .context("the demo roster does not verify")
}
