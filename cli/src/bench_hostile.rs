//! `renkei bench hostile`: one office uploads worst-case 6 MB files while another office
//! works; prints the other office's latencies (`GET /v1/me`, a valid send) without and
//! with the hostile uploads, and how long each hostile upload takes to be refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use renkei_node::keyfile;
use renkei_protocol::keys::SigningIdentity;
use reqwest::blocking::{Client, multipart};
use serde_json::Value;

use crate::bench::{add_office, make, percentile, proc_stats, stamp, start};
use crate::bench_csv::{CLASSES, NAME};

/// The hostile office (the sender in [`NAME`]).
const CM: &str = "4074478647";
/// The other office: sends 実績 (UPJSK) to CM.
const SVC: &str = "4071481594";
/// The valid unit the other office sends.
const UPJSK: &[u8] = include_bytes!(
    "../../fixtures/valid/d3_jisseki/UPJSK_202504_4071481594_11_4074478647_43_20250428164608.CSV"
);

/// Arguments of `renkei bench hostile`.
#[derive(clap::Args, Debug, Clone)]
pub struct HostileArgs {
    /// Worst-case class of the hostile file (see `renkei bench csv`).
    #[arg(long, default_value = "malformed_ms932")]
    pub class: String,
    /// Size of the hostile file, bytes.
    #[arg(long, default_value_t = 6_000_000)]
    pub size: usize,
    /// Hostile uploads in flight at once (the office's byte allowance admits two).
    #[arg(long, default_value_t = 2)]
    pub hostile_clients: usize,
    /// Requests of each kind the other office makes per phase.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
}

/// Latencies of the other office in one phase, in milliseconds, sorted.
struct Phase {
    me: Vec<f64>,
    send: Vec<f64>,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn upload(c: &Client, url: &str, token: &str, name: &str, bytes: Vec<u8>) -> Result<(u16, Value)> {
    let part = multipart::Part::bytes(bytes).file_name(name.to_owned());
    let r = c
        .post(format!("{url}/v1/send-units"))
        .bearer_auth(token)
        .multipart(multipart::Form::new().part("file", part))
        .send()?;
    let status = r.status().as_u16();
    Ok((status, r.json().unwrap_or(Value::Null)))
}

/// The other office: alternately `GET /v1/me` and a valid send, `samples` of each.
fn phase(c: &Client, url: &str, token: &str, samples: usize, first_stamp: usize) -> Result<Phase> {
    let mut p = Phase {
        me: Vec::with_capacity(samples),
        send: Vec::with_capacity(samples),
    };
    for i in 0..samples {
        let t = Instant::now();
        let r = c.get(format!("{url}/v1/me")).bearer_auth(token).send()?;
        if !r.status().is_success() {
            bail!("/v1/me answered {}", r.status());
        }
        p.me.push(ms(t));
        let name = format!(
            "UPJSK_202504_{SVC}_11_{CM}_43_{}.CSV",
            stamp(first_stamp + i)
        );
        let t = Instant::now();
        let (status, body) = upload(c, url, token, &name, UPJSK.to_vec())?;
        if status != 202 {
            bail!("a valid send answered {status}: {body}");
        }
        p.send.push(ms(t));
        std::thread::sleep(Duration::from_millis(5));
    }
    p.me.sort_by(f64::total_cmp);
    p.send.sort_by(f64::total_cmp);
    Ok(p)
}

fn line(what: &str, v: &[f64]) -> String {
    format!(
        "{what:<28} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        percentile(v, 0.5),
        percentile(v, 0.99),
        v.last().copied().unwrap_or(0.0)
    )
}

/// Runs the benchmark.
pub fn run(args: HostileArgs) -> Result<i32> {
    let Some((_, make_file)) = CLASSES.iter().find(|(c, _)| *c == args.class) else {
        let names: Vec<&str> = CLASSES.iter().map(|(c, _)| *c).collect();
        bail!(
            "unknown class {:?}; one of {}",
            args.class,
            names.join(", ")
        );
    };
    let hostile_file = make_file(args.size);
    let base = std::env::temp_dir().join(format!("renkei-bench-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let result = (|| -> Result<i32> {
        let authority = SigningIdentity::from_seed(keyfile::random_seed()?);
        let mut node = make(&base, "node", false, &authority)?;
        start(&mut node)?;
        let c = Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?;
        let add = |office: &str, kind: &str| add_office(&node, office, kind);
        let hostile_token = add(CM, "43")?;
        let token = add(SVC, "11")?;
        println!(
            "renkei bench hostile: one office uploads {} files of {} bytes ({} at a time) while another office works; {} samples per phase",
            args.class,
            hostile_file.len(),
            args.hostile_clients,
            args.samples
        );
        let baseline = phase(&c, &node.http, &token, args.samples, 0)?;

        let stop = Arc::new(AtomicBool::new(false));
        let mut hostile = Vec::new();
        for _ in 0..args.hostile_clients.max(1) {
            let (stop, url, tok, file) = (
                stop.clone(),
                node.http.clone(),
                hostile_token.clone(),
                hostile_file.clone(),
            );
            let hc = c.clone();
            hostile.push(std::thread::spawn(
                move || -> Result<Vec<(f64, u16, usize)>> {
                    let mut done = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let (status, body) = upload(&hc, &url, &tok, NAME, file.clone())?;
                        let findings = body["findings"].as_array().map_or(0, Vec::len);
                        done.push((ms(t), status, findings));
                    }
                    Ok(done)
                },
            ));
        }
        // Let the hostile uploads get going.
        std::thread::sleep(Duration::from_millis(200));
        let loaded = phase(&c, &node.http, &token, args.samples, 10_000)?;
        stop.store(true, Ordering::Relaxed);
        let mut refused = Vec::new();
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        let mut findings = 0;
        for h in hostile {
            let done = h
                .join()
                .map_err(|_| anyhow::anyhow!("a hostile client panicked"))??;
            for (t, status, n) in done {
                *statuses.entry(status).or_default() += 1;
                if status == 422 {
                    refused.push(t);
                    findings = n;
                }
            }
        }
        refused.sort_by(f64::total_cmp);
        let (rss_kb, cpu) = proc_stats(&node.child);
        println!("other office, no hostile upload:");
        println!("  {}", line("GET /v1/me", &baseline.me));
        println!("  {}", line("valid send (202)", &baseline.send));
        println!("other office, during hostile uploads:");
        println!("  {}", line("GET /v1/me", &loaded.me));
        println!("  {}", line("valid send (202)", &loaded.send));
        println!(
            "hostile uploads: {} answered ({statuses:?}); refused with {findings} findings in",
            statuses.values().sum::<usize>()
        );
        println!("  {}", line("time to 422", &refused));
        println!("node: peak RSS {} MiB, CPU {cpu:.1} s", rss_kb / 1024);
        Ok(0)
    })();
    let _ = std::fs::remove_dir_all(&base);
    result
}
