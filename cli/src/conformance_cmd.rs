//! `renkei conformance`: the conformance kit, black-box checks of another operator's node
//! over libp2p (see `renkei_node::conformance` and docs/FEDERATION.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use renkei_node::config::NodeConfig;
use renkei_node::conformance::{self, Options};
use renkei_node::keyfile;
use renkei_node::net::{Multiaddr, operator_of_multiaddr};
use renkei_protocol::ids::OperatorId;
use renkei_protocol::roster::SignedRoster;

/// `renkei conformance`
#[derive(clap::Args, Debug)]
pub struct ConformanceArgs {
    /// Your node directory: its operator key (which must be in the roster) signs the test
    /// envelopes. The node may be running or stopped.
    #[arg(long)]
    pub dir: PathBuf,
    /// The node to check: its libp2p address ending in /p2p/PEER_ID.
    #[arg(long)]
    pub target: String,
    /// A valid send unit (files, or a directory of them) for an office homed at the target,
    /// e.g. a test office its operator set up. It is delivered once.
    #[arg(long, required = true, num_args = 1..)]
    pub unit: Vec<PathBuf>,
    /// The signed federation roster (the one the target holds; it must list both operators).
    #[arg(long)]
    pub roster: PathBuf,
    /// Bound on each request, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

fn unit_files(paths: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            out.extend(unit_files(&entries)?);
        } else {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{}: not a file name", p.display()))?
                .to_owned();
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            out.push((name, bytes));
        }
    }
    Ok(out)
}

/// Runs the kit and prints one line per check; exit code 1 when any check fails.
pub fn run(args: ConformanceArgs) -> Result<i32> {
    let cfg = NodeConfig::load(&args.dir)?;
    let keys = keyfile::load(&args.dir)?;
    let roster_path = &args.roster;
    let signed = SignedRoster::decode(
        &std::fs::read(roster_path)
            .with_context(|| format!("reading {}", roster_path.display()))?,
    )
    .with_context(|| format!("{} is not a signed roster", roster_path.display()))?;
    if let Some(a) = &cfg.authority {
        let authority: OperatorId = a
            .parse()
            .map_err(|e| anyhow::anyhow!("authority in renkei.toml: {e}"))?;
        signed
            .verify(&authority)
            .context("the roster is not signed by this node's federation authority")?;
    }
    let roster = signed.roster().clone();
    let target: Multiaddr = args
        .target
        .parse()
        .map_err(|e| anyhow::anyhow!("--target {}: {e}", args.target))?;
    let name = |id: Option<OperatorId>| {
        id.and_then(|id| roster.operator(&id).map(|o| format!("{} ({id})", o.name)))
            .unwrap_or_else(|| "an unknown operator".to_owned())
    };
    println!(
        "conformance of {} at {}, as {}",
        name(operator_of_multiaddr(&target)),
        args.target,
        name(Some(keys.id()))
    );
    let opts = Options {
        keys,
        roster,
        target,
        unit: unit_files(&args.unit)?,
        request_timeout: Duration::from_secs(args.timeout_secs.max(1)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(conformance::run(&opts))?;
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in &results {
        let verdict = if r.passed { "PASS" } else { "FAIL" };
        println!("{verdict}  {:width$}  {}", r.name, r.detail);
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    println!(
        "{} checks: {} passed, {failed} failed",
        results.len(),
        results.len() - failed
    );
    Ok(i32::from(failed > 0))
}
