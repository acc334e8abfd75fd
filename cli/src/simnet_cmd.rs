//! `renkei simnet run SCENARIO.toml [--seed N | --seeds A..B [--jobs N]] [--json]
//! [--trace FILE] [--plot FILE] [--scale F]`: runs a simnet scenario and reports; exits 1 when a checker
//! fails, printing the command that replays the failing seed.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use renkei_simnet::SharedValues;
use renkei_simnet::{Report, RunOptions, Scenario, run};

/// `renkei simnet …`.
#[derive(Args, Debug)]
pub struct SimnetArgs {
    #[command(subcommand)]
    command: SimnetCommand,
}

#[derive(Subcommand, Debug)]
enum SimnetCommand {
    /// Run a scenario for one seed or a range of seeds.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Scenario file (TOML; see docs/SIMNET.md).
    scenario: PathBuf,
    /// The seed (default: drawn from the clock, and printed).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long)]
    seeds: Option<String>,
    /// Print the report as JSON (one object per seed, one per line).
    #[arg(long)]
    json: bool,
    /// Write the event log to this file (single seed only).
    #[arg(long, conflicts_with = "seeds")]
    trace: Option<PathBuf>,
    /// Write an SVG of delivery latency over simulated time (single seed only).
    #[arg(long, conflicts_with = "seeds")]
    plot: Option<PathBuf>,
    /// Multiply the scenario's offices and envelopes by this factor.
    #[arg(long)]
    scale: Option<f64>,
    /// Seeds run at once with `--seeds` (default: one per core, as many as fit in memory).
    /// Reports still come in seed order, and each seed's run is the same as alone.
    #[arg(long, requires = "seeds")]
    jobs: Option<usize>,
    /// Keep the simulated stores' bulky values (envelopes, files, audit records) in
    /// unlinked files in DIR instead of memory (single seed only). Without it, a run whose
    /// memory estimate exceeds what is available spills to the temporary directory.
    #[arg(long, conflicts_with_all = ["seeds", "no_spill"])]
    spill_dir: Option<PathBuf>,
    /// Never spill store values to a file (single seed only).
    #[arg(long, conflicts_with = "seeds")]
    no_spill: bool,
}

/// Runs the subcommand; returns the process exit code.
pub fn main(args: SimnetArgs) -> Result<i32> {
    match args.command {
        SimnetCommand::Run(a) => run_cmd(a),
    }
}

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>> {
    let (a, b) = s.split_once("..").context("--seeds must look like A..B")?;
    let (a, b): (u64, u64) = (
        a.trim().parse().context("--seeds start")?,
        b.trim().parse().context("--seeds end")?,
    );
    if b <= a {
        bail!("--seeds {a}..{b} is empty");
    }
    Ok(a..b)
}

/// Seeds run at once by default: one per core, as many as fit in the available memory.
fn default_jobs(cores: usize, available: Option<u64>, estimate: u64) -> usize {
    let by_memory = available.map_or(cores, |m| (m / estimate.max(1)) as usize);
    cores.min(by_memory).max(1)
}

/// Runs every seed of `seeds`, `jobs` at a time (each run is a pure function of its seed
/// and owns its thread), and hands the reports to `each` in seed order.
fn run_seeds(
    scenario: &Scenario,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    each: &mut dyn FnMut(Report) -> Result<()>,
) -> Result<()> {
    let next = AtomicU64::new(seeds.start);
    let end = seeds.end;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<Report>();
        for _ in 0..jobs {
            let (tx, next) = (tx.clone(), &next);
            s.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end || tx.send(run(scenario, seed, RunOptions::default())).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut want = seeds.start;
        for r in rx {
            waiting.insert(r.seed, r);
            while let Some(r) = waiting.remove(&want) {
                each(r)?;
                want += 1;
            }
        }
        Ok(())
    })
}

/// Memory the system can give a new process (Linux `MemAvailable`), in bytes.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A warning when a run is likely to need more memory than is available, with the scale
/// that would fit (runs are linear in envelopes: docs/PERFORMANCE.md, "simnet").
fn memory_warning(estimate: u64, available: u64, scale: f64) -> Option<String> {
    if estimate <= available {
        return None;
    }
    let fits = scale * available as f64 / estimate as f64 * 0.9;
    Some(format!(
        "warning: this run needs about {:.1} GB of memory, and \
         {:.1} GB is available: it may be killed for lack of memory; --scale {:.2} would fit",
        estimate as f64 / 1e9,
        available as f64 / 1e9,
        fits
    ))
}

/// Where a single-seed run spills its store values: `--spill-dir`, or the temporary
/// directory when the in-memory estimate exceeds three quarters of what is available, or
/// nowhere.
fn spill_dir(a: &RunArgs, scenario: &Scenario, available: Option<u64>) -> Option<PathBuf> {
    if a.no_spill {
        return None;
    }
    if let Some(d) = &a.spill_dir {
        return Some(d.clone());
    }
    let too_big = available.is_some_and(|m| scenario.memory_estimate_bytes(false) > m / 4 * 3);
    too_big.then(std::env::temp_dir)
}

/// Refuses to start a run whose spill files would not fit in `dir` (a run that fills the
/// disk half way would crash its simulated nodes one after another and report nonsense).
fn check_spill_room(dir: &std::path::Path, need: u64, free: Option<u64>) -> Result<()> {
    match free {
        Some(free) if free < need => bail!(
            "this run spills about {:.1} GB of store values to {} and only {:.1} GB is free \
             there: give --spill-dir a directory with room, or a smaller --scale",
            need as f64 / 1e9,
            dir.display(),
            free as f64 / 1e9
        ),
        Some(_) => Ok(()),
        None => bail!(
            "cannot spill to {}: not a directory we can read",
            dir.display()
        ),
    }
}

fn run_cmd(a: RunArgs) -> Result<i32> {
    let mut scenario = Scenario::load(&a.scenario)?;
    if let Some(f) = a.scale {
        if f.is_nan() || f <= 0.0 {
            bail!("--scale must be positive");
        }
        scenario = scenario.scaled(f);
    }
    let spill = if a.seeds.is_some() {
        None
    } else {
        spill_dir(&a, &scenario, available_memory())
    };
    let estimate = scenario.memory_estimate_bytes(spill.is_some());
    if let Some(w) =
        available_memory().and_then(|avail| memory_warning(estimate, avail, a.scale.unwrap_or(1.0)))
    {
        eprintln!("{w}");
    }
    if let Some(d) = &spill {
        check_spill_room(
            d,
            scenario.spill_estimate_bytes(),
            fs2::available_space(d).ok(),
        )?;
        eprintln!(
            "[simnet] keeping store values in a spill file in {} (about {:.1} GB in memory)",
            d.display(),
            estimate as f64 / 1e9
        );
    }
    let seeds = match (&a.seeds, a.seed) {
        (Some(s), _) => parse_seeds(s)?,
        (None, Some(n)) => n..n + 1,
        (None, None) => {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            n..n + 1
        }
    };
    let replay = |seed: u64| {
        let scale = a.scale.map(|f| format!(" --scale {f}")).unwrap_or_default();
        format!(
            "renkei simnet run {} --seed {seed}{scale}",
            a.scenario.display()
        )
    };
    let multi = seeds.end - seeds.start > 1;
    let mut failed = Vec::new();
    let mut report_one = |report: Report| -> Result<()> {
        print_report(&report, a.json, multi)?;
        if let Some(why) = &report.stopped {
            anyhow::bail!(
                "seed {} could not finish, so it has no verdict: {why}; once that is fixed, replay with: {}",
                report.seed,
                replay(report.seed)
            );
        }
        if !report.passed() {
            failed.push(report.seed);
            if !a.json {
                println!("FAILED; replay with: {}", replay(report.seed));
            }
        }
        Ok(())
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if multi {
        let jobs = a.jobs.unwrap_or_else(|| {
            default_jobs(
                cores,
                available_memory(),
                scenario.memory_estimate_bytes(false),
            )
        });
        run_seeds(&scenario, seeds, jobs.max(1), &mut report_one)?;
    } else {
        let seed = seeds.start;
        let mut opts = RunOptions {
            // The command ends with this run.
            leave_to_exit: true,
            ..RunOptions::default()
        };
        if let Some(dir) = &spill {
            opts.values = Some(
                SharedValues::spilling_to(dir)
                    .with_context(|| format!("cannot create a spill file in {}", dir.display()))?,
            );
        }
        if let Some(p) = &a.trace {
            let f = std::fs::File::create(p)
                .with_context(|| format!("cannot create trace file {}", p.display()))?;
            opts.trace = Some(Box::new(std::io::BufWriter::new(f)));
        }
        if std::io::stderr().is_terminal() {
            opts.progress = Some(Box::new(move |done, total| {
                eprint!("\r[simnet] seed {seed}: {done}/{total} submissions");
                if done == total {
                    eprintln!();
                }
            }));
        }
        let before_us = sign_reference_us();
        let report = run(&scenario, seed, opts);
        eprintln!(
            "[simnet] machine reference: an Ed25519 signature took {before_us:.1} µs on this \
             thread before the run, {:.1} µs after (this VM's speed changes by the hour: \
             compare wall times of different sittings by it)",
            sign_reference_us()
        );
        if let Some(p) = &a.plot {
            std::fs::write(p, report.svg())
                .with_context(|| format!("cannot write plot {}", p.display()))?;
        }
        report_one(report)?;
    }
    if failed.is_empty() {
        return Ok(0);
    }
    eprintln!(
        "{} seed(s) failed; replay the first with: {}",
        failed.len(),
        replay(failed[0])
    );
    Ok(1)
}

/// Microseconds per Ed25519 signature on this thread now (1,000 of them):
/// a yardstick of the machine's speed at the time of a run, printed beside its wall time.
fn sign_reference_us() -> f64 {
    let id = renkei_protocol::keys::SigningIdentity::from_seed([0x5a; 32]);
    let mut acc = 0u8;
    // Warm up (the basepoint table's first touch, the core's clock).
    for i in 1000u32..1200 {
        acc ^= id.sign(b"renkei/machine-reference", &i.to_le_bytes())[0];
    }
    let start = std::time::Instant::now();
    for i in 0u32..1000 {
        acc ^= id.sign(b"renkei/machine-reference", &i.to_le_bytes())[0];
    }
    std::hint::black_box(acc);
    start.elapsed().as_secs_f64() * 1e6 / 1000.0
}

fn print_report(r: &Report, json: bool, multi: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else if multi {
        let verdict = if r.passed() { "ok" } else { "FAIL" };
        let failing: Vec<String> = r
            .checks
            .all()
            .iter()
            .filter(|(_, c)| c.count > 0)
            .map(|(n, c)| format!("{n}={}", c.count))
            .collect();
        println!(
            "seed {:>6} {verdict:<4} submitted {} delivered {} expired {} p99 {} ms faults {} events {} wall {} ms hash {} {}",
            r.seed,
            r.counts.submitted,
            r.counts.delivered,
            r.counts.expired,
            r.latency.p99_ms,
            r.plan.faults.len(),
            r.events,
            r.wall_ms,
            &r.event_log_hash[..16],
            failing.join(" ")
        );
    } else {
        print!("{}", r.text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run_in_parallel_report_in_seed_order_as_alone() {
        let Ok(sc) = Scenario::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../simnet/scenarios/smoke.toml"
        ))) else {
            panic!("smoke scenario loads");
        };
        let mut got = Vec::new();
        let mut each = |r: Report| -> Result<()> {
            got.push((r.seed, r.event_log_hash));
            Ok(())
        };
        run_seeds(&sc, 5..9, 3, &mut each).unwrap_or_else(|e| panic!("{e}"));
        let seeds: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(seeds, vec![5, 6, 7, 8]);
        // Each seed's run is the one it gives alone.
        for (seed, hash) in &got {
            assert_eq!(*hash, run(&sc, *seed, RunOptions::default()).event_log_hash);
        }
    }

    #[test]
    fn a_spill_without_room_is_refused_naming_the_directory() {
        let dir = std::path::Path::new("/some/dir");
        let e = check_spill_room(dir, 22_000_000_000, Some(5_000_000_000)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("22.0 GB") && msg.contains("/some/dir") && msg.contains("5.0 GB"),
            "{msg}"
        );
        assert!(check_spill_room(dir, 1, Some(2)).is_ok());
        assert!(check_spill_room(dir, 1, None).is_err());
    }

    #[test]
    fn default_jobs_fit_cores_and_memory() {
        assert_eq!(default_jobs(2, Some(100), 10), 2);
        assert_eq!(default_jobs(8, Some(30), 10), 3);
        assert_eq!(default_jobs(8, Some(5), 10), 1);
        assert_eq!(default_jobs(4, None, 10), 4);
    }

    #[test]
    fn a_run_larger_than_memory_is_warned_with_a_scale_that_fits() {
        assert_eq!(memory_warning(10, 20, 1.0), None);
        let Some(w) = memory_warning(40_000_000_000, 20_000_000_000, 1.0) else {
            panic!("no warning for a run twice the memory");
        };
        assert!(w.contains("40.0 GB"), "{w}");
        assert!(w.contains("--scale 0.45"), "{w}");
        // Relative to the scale asked for.
        let Some(w) = memory_warning(40_000_000_000, 20_000_000_000, 0.5) else {
            panic!("no warning");
        };
        assert!(w.contains("--scale 0.23"), "{w}");
    }
}
