//! `renkei bench relay`: end-to-end throughput and latency between real nodes (separate
//! processes, sled on disk, libp2p on loopback), driven through the HTTP API.

mod loadgen;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use renkei_node::config::{ADMIN_TOKEN_FILE, NodeConfig};
use renkei_node::keyfile;
use renkei_node::runtime::now_ms;
use renkei_protocol::keys::{OperatorKeys, SigningIdentity};
use renkei_protocol::roster::{OperatorEntry, Roster};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const CM: &str = "4074478647";
const SVC: &str = "4071481594";

/// Options of `renkei bench relay`.
#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    /// Send units to submit.
    #[arg(long, default_value_t = 2000)]
    pub envelopes: usize,
    /// Approximate size of each unit's file, bytes.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 20)]
    pub concurrency: usize,
    /// Route through a relay node (A → relay → B).
    #[arg(long)]
    pub via_relay: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Run the nodes on PostgreSQL instead of the local store: the URL of a server's
    /// maintenance database (`postgres://postgres@127.0.0.1:5432/postgres`); each node gets
    /// a fresh database there, dropped afterwards. The server's CPU time is reported too.
    #[arg(long)]
    pub postgres: Option<String>,
}

/// Fresh databases for the benchmark's nodes on a PostgreSQL server, dropped on drop.
struct PgDatabases {
    admin: String,
    names: Vec<String>,
}

impl PgDatabases {
    /// A new database; its connection URL.
    fn create(&mut self, node: &str) -> Result<String> {
        let name = format!("renkei_bench_{}_{node}", std::process::id());
        let mut c = postgres::Client::connect(&self.admin, postgres::NoTls)
            .with_context(|| format!("connecting to {}", self.admin))?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))?;
        self.names.push(name.clone());
        let (base, _) = self
            .admin
            .rsplit_once('/')
            .context("--postgres needs a URL ending in /DATABASE")?;
        Ok(format!("{base}/{name}"))
    }
}

impl Drop for PgDatabases {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            for n in &self.names {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {n}"));
            }
        }
    }
}

/// CPU seconds of every `postgres` process on this machine (the server's share of the
/// work when the nodes' stores are on PostgreSQL).
fn postgres_cpu() -> f64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    procs
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| {
            let (head, rest) = s.rsplit_once(')')?;
            if !head.ends_with("(postgres") {
                return None;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .sum()
}

pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) dir: PathBuf,
    keys: OperatorKeys,
    pub(crate) http: String,
    p2p: String,
    pub(crate) child: Option<Child>,
    pub(crate) admin: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn make(
    base: &Path,
    name: &'static str,
    relay: bool,
    authority: &SigningIdentity,
) -> Result<Proc> {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir)?;
    let keys = OperatorKeys::from_seeds(keyfile::random_seed()?, keyfile::random_seed()?);
    keyfile::create(&dir, &keys)?;
    let admin = renkei_node::api::new_token()?;
    keyfile::write_secret(&dir.join(ADMIN_TOKEN_FILE), &admin)?;
    let http = format!("127.0.0.1:{}", free_port()?);
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port()?);
    let mut cfg = NodeConfig::new(name);
    cfg.http = http.parse()?;
    cfg.listen = vec![p2p.clone()];
    cfg.relay = relay;
    cfg.authority = Some(authority.id().to_string());
    cfg.roster = Some("roster.cbor".into());
    cfg.delivery.sync_interval_ms = 1000;
    cfg.save(&dir)?;
    Ok(Proc {
        name,
        dir,
        keys,
        http: format!("http://{http}"),
        p2p,
        child: None,
        admin,
    })
}

pub(crate) fn start(p: &mut Proc) -> Result<()> {
    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(p.dir.join("node.log"))?;
    p.child = Some(
        Command::new(exe)
            .args(["run", "--dir", p.dir.to_str().unwrap_or_default()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let c = Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c
        .get(format!("{}/healthz", p.http))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            bail!(
                "node {} did not start; see {}",
                p.name,
                p.dir.join("node.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A 14-digit stamp `i` seconds after 2025-01-01 00:00:00.
pub(crate) fn stamp(i: usize) -> String {
    let (mut day, secs) = (i / 86_400, i % 86_400);
    let (mut y, mut m) = (2025u16, 1u8);
    loop {
        let dim = usize::from(renkei_protocol::ids::days_in_month(y, m));
        if day < dim {
            break;
        }
        day -= dim;
        m += 1;
        if m > 12 {
            m = 1;
            y += 1;
        }
    }
    format!(
        "{y:04}{m:02}{:02}{:02}{:02}{:02}",
        day + 1,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A valid UPPLAN of about `size` bytes (whole records of the fixture, repeated as needed).
fn payload(size: usize) -> Vec<u8> {
    crate::bench_csv::valid(size)
}

fn status(p: &Proc) -> Result<Value> {
    Ok(crate::admin_api::Admin::open(&p.dir)?
        .request(reqwest::Method::GET, "/admin/v1/status")
        .send()?
        .json()?)
}

/// The core's time deciding and committing, and its batches, from a node's `/metrics`.
pub(crate) fn core_load(p: &Proc) -> (f64, f64, f64) {
    let text = Client::new()
        .get(format!("{}/metrics", p.http))
        .bearer_auth(&p.admin)
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        get("renkei_core_handle_seconds_total "),
        get("renkei_core_commit_seconds_total "),
        get("renkei_core_batches_total "),
    )
}

pub(crate) fn proc_stats(child: &Option<Child>) -> (u64, f64) {
    let Some(c) = child else { return (0, 0.0) };
    let pid = c.id();
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let ut: f64 = rest.get(11)?.parse().ok()?;
            let st: f64 = rest.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(0.0);
    (rss_kb, cpu)
}

/// Registers `office` (service `kind`) at node `p` through its admin API; its token.
pub(crate) fn add_office(p: &Proc, office: &str, kind: &str) -> Result<String> {
    let v: Value = crate::admin_api::Admin::open(&p.dir)?
        .request(reqwest::Method::POST, "/admin/v1/offices")
        .json(&json!({"office": office, "kinds": [kind], "name": office}))
        .send()?
        .json()?;
    v["token"].as_str().map(str::to_owned).context("no token")
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn relay(args: RelayArgs) -> Result<i32> {
    let base = std::env::temp_dir().join(format!("renkei-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let result = run_relay(&base, &args);
    let _ = std::fs::remove_dir_all(&base);
    result
}

fn run_relay(base: &Path, args: &RelayArgs) -> Result<i32> {
    let authority = SigningIdentity::from_seed(keyfile::random_seed()?);
    let mut a = make(base, "a", false, &authority)?;
    let mut b = make(base, "b", false, &authority)?;
    let mut r = if args.via_relay {
        Some(make(base, "relay", true, &authority)?)
    } else {
        None
    };
    let entry = |p: &Proc, relay: bool, addrs: Vec<String>| OperatorEntry {
        name: p.name.into(),
        id: p.keys.id(),
        enc_key: p.keys.seal.public(),
        relay,
        addrs,
        valid_from_ms: now_ms().saturating_sub(60_000),
        valid_until_ms: None,
        old_keys: vec![],
    };
    // Direct: A dials B. Via relay: A and B know only the relay's address.
    let mut ops = vec![
        entry(&a, false, vec![]),
        entry(
            &b,
            false,
            if args.via_relay {
                vec![]
            } else {
                vec![b.p2p.clone()]
            },
        ),
    ];
    if let Some(rp) = &r {
        ops.push(entry(rp, true, vec![rp.p2p.clone()]));
    }
    let roster = Roster {
        serial: 1,
        issued_at_ms: now_ms(),
        authority: authority.id(),
        operators: ops,
    }
    .sign(&authority);
    for p in [Some(&a), Some(&b), r.as_ref()].into_iter().flatten() {
        std::fs::write(p.dir.join("roster.cbor"), roster.encode())?;
    }
    let mut dbs = PgDatabases {
        admin: args.postgres.clone().unwrap_or_default(),
        names: vec![],
    };
    if args.postgres.is_some() {
        for p in [Some(&a), Some(&b), r.as_ref()].into_iter().flatten() {
            let mut cfg = NodeConfig::load(&p.dir)?;
            cfg.store.kind = renkei_node::config::StoreKind::Postgres;
            cfg.store.url = Some(dbs.create(p.name)?);
            cfg.save(&p.dir)?;
        }
    }
    if let Some(rp) = r.as_mut() {
        start(rp)?;
    }
    start(&mut b)?;
    start(&mut a)?;
    let c = Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let add = |p: &Proc, office: &str, kind: &str| add_office(p, office, kind);
    let cm = add(&a, CM, "43")?;
    add(&b, SVC, "11")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = c
            .get(format!("{}/v1/directory/{SVC}", a.http))
            .bearer_auth(&cm)
            .send()?
            .json()?;
        if v["reachable"] == true {
            break;
        }
        if Instant::now() > deadline {
            bail!("directory sync did not complete");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = payload(args.size);
    eprintln!(
        "bench relay: {} units of {} bytes, {} clients, {}",
        args.envelopes,
        file.len(),
        args.concurrency,
        if args.via_relay {
            "A → relay → B"
        } else {
            "A → B"
        }
    );
    let next = Arc::new(Mutex::new(0usize));
    let submits: Arc<Mutex<Vec<(String, u64)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(args.envelopes)));
    let pg_cpu_before = postgres_cpu();
    let t0 = Instant::now();
    let t0_ms = now_ms();
    let mut handles = Vec::new();
    for _ in 0..args.concurrency {
        let (next, submits, url, cm, file, n) = (
            next.clone(),
            submits.clone(),
            a.http.clone(),
            cm.clone(),
            file.clone(),
            args.envelopes,
        );
        handles.push(std::thread::spawn(move || -> Result<()> {
            let mut conn = loadgen::Conn::new(&url, &cm)?;
            loop {
                let i = {
                    let mut g = next.lock().map_err(|_| anyhow::anyhow!("lock"))?;
                    if *g >= n {
                        return Ok(());
                    }
                    *g += 1;
                    *g - 1
                };
                let name = format!("UPPLAN_202505_{CM}_43_{SVC}_11_{}.CSV", stamp(i));
                let start = now_ms();
                let (status, body) = conn.submit(&name, &file)?;
                if status != 202 {
                    bail!(
                        "unit {i} refused: {status} {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                let v: Value = serde_json::from_slice(&body)?;
                submits
                    .lock()
                    .map_err(|_| anyhow::anyhow!("lock"))?
                    .push((v["id"].as_str().unwrap_or_default().to_owned(), start));
            }
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let accepted_s = t0.elapsed().as_secs_f64();
    // Wait until the origin holds a Delivered receipt for every unit.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let st = status(&a)?;
        if st["counters"]["sent_delivered"].as_u64().unwrap_or(0) >= args.envelopes as u64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("not every unit was delivered within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered_s = t0.elapsed().as_secs_f64();
    let pg_cpu = if args.postgres.is_some() {
        postgres_cpu() - pg_cpu_before
    } else {
        0.0
    };
    let (a_rss, a_cpu) = proc_stats(&a.child);
    let (b_rss, b_cpu) = proc_stats(&b.child);
    let (r_rss, r_cpu) = r.as_ref().map_or((0, 0.0), |p| proc_stats(&p.child));
    let loads: Vec<(&str, (f64, f64, f64))> = [Some(&a), r.as_ref(), Some(&b)]
        .into_iter()
        .flatten()
        .map(|p| (p.name, core_load(p)))
        .collect();
    // Outside the timed window: every unit's receipts, for latencies, paged newest first
    // through the list endpoint (10,000 units per request).
    let submits = submits.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone();
    let mut sent: Vec<Value> = Vec::with_capacity(submits.len());
    let mut before: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/sent?limit=10000", a.http);
        if let Some(b) = &before {
            url.push_str("&before=");
            url.push_str(b);
        }
        let page: Vec<Value> = c
            .get(url)
            .bearer_auth(&cm)
            .send()?
            .error_for_status()?
            .json()?;
        let Some(last) = page
            .last()
            .and_then(|v| v["id"].as_str())
            .map(str::to_owned)
        else {
            break;
        };
        sent.extend(page);
        before = Some(last);
    }
    let starts: std::collections::BTreeMap<String, u64> = submits.into_iter().collect();
    let mut lat: Vec<f64> = Vec::new();
    let mut last_delivery = t0_ms;
    for s in &sent {
        let Some(id) = s["id"].as_str() else { continue };
        let Some(start) = starts.get(id) else {
            continue;
        };
        if let Some(d) = s["receipts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["kind"] == "delivered")
        {
            let at = d["at_ms"].as_u64().unwrap_or(0);
            last_delivery = last_delivery.max(at);
            lat.push(at.saturating_sub(*start) as f64);
        }
    }
    lat.sort_by(f64::total_cmp);
    if lat.len() != args.envelopes {
        bail!(
            "{} of {} units show a Delivered receipt at the origin",
            lat.len(),
            args.envelopes
        );
    }
    let n = args.envelopes as f64;
    let report = json!({
        "envelopes": args.envelopes, "size": file.len(), "concurrency": args.concurrency, "via_relay": args.via_relay,
        "accepted_per_s": n / accepted_s,
        "delivered_per_s": n / delivered_s,
        "delivered_per_s_by_receipts": n / ((last_delivery.saturating_sub(t0_ms)).max(1) as f64 / 1000.0),
        "latency_ms": {"p50": percentile(&lat, 0.50), "p95": percentile(&lat, 0.95), "p99": percentile(&lat, 0.99), "max": lat.last().copied().unwrap_or(0.0)},
        "nodes": {
            "a": {"peak_rss_kib": a_rss, "cpu_s": a_cpu},
            "b": {"peak_rss_kib": b_rss, "cpu_s": b_cpu},
            "relay": {"peak_rss_kib": r_rss, "cpu_s": r_cpu},
        },
        "store": if args.postgres.is_some() { "postgres" } else { "local" },
        "postgres_cpu_s": pg_cpu,
        "cpu_ms_per_unit": 1000.0 * (a_cpu + b_cpu + r_cpu + pg_cpu) / n,
        "core": loads.iter().map(|(name, (h, c, b))| (name.to_string(), json!({"handle_s": h, "commit_s": c, "batches": b}))).collect::<serde_json::Map<_, _>>(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "renkei: accepted={:.0}/s delivered={:.0}/s (by receipt time {:.0}/s) latency p50={} p95={} p99={} ms  rss a={}KiB b={}KiB{} cpu a={:.1}s b={:.1}s{}  n={} size={} conc={}{}",
            n / accepted_s,
            n / delivered_s,
            report["delivered_per_s_by_receipts"]
                .as_f64()
                .unwrap_or(0.0),
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            percentile(&lat, 0.99),
            a_rss,
            b_rss,
            if args.via_relay {
                format!(" relay={r_rss}KiB")
            } else {
                String::new()
            },
            a_cpu,
            b_cpu,
            if args.via_relay {
                format!(" relay={r_cpu:.1}s")
            } else {
                String::new()
            },
            args.envelopes,
            file.len(),
            args.concurrency,
            if args.via_relay { " via-relay" } else { "" },
        );
        println!(
            "  store {}: cpu per unit {:.2} ms (nodes{}, from their start)",
            report["store"].as_str().unwrap_or(""),
            report["cpu_ms_per_unit"].as_f64().unwrap_or(0.0),
            if args.postgres.is_some() {
                format!(" + PostgreSQL server {pg_cpu:.1}s during the run")
            } else {
                String::new()
            }
        );
        for (name, (h, c, b)) in &loads {
            println!(
                "  core {name}: deciding {h:.2}s + committing {c:.2}s of {delivered_s:.2}s ({:.0}% busy), {b:.0} batches",
                100.0 * (h + c) / delivered_s
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_valid_and_distinct() {
        assert_eq!(stamp(0), "20250101000000");
        assert_eq!(stamp(86_400 * 31 + 3661), "20250201010101");
        for i in [0, 59, 86_399, 86_400 * 400] {
            assert!(
                stamp(i).parse::<renkei_protocol::ids::Stamp>().is_ok(),
                "{}",
                stamp(i)
            );
        }
    }

    #[test]
    fn payload_is_a_valid_upplan_of_the_size() {
        let p = payload(4096);
        assert!(p.len() >= 4096 && p.len() < 4096 + 400);
        let name = format!("UPPLAN_202505_{CM}_43_{SVC}_11_{}.CSV", stamp(5));
        let r = renkei_protocol::csv::check_file(&name, &p);
        assert!(!r.findings.iter().any(|f| f.is_error()), "{:?}", r.findings);
    }
}
