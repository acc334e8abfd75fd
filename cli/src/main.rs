//! The `renkei` command: the binary edge of Renkei for operators (init, run, offices,
//! keys), offices (send, inbox, fetch, sent, proof), auditors (verify) and developers.

mod admin_api;
mod bench;
mod bench_csv;
mod bench_decode;
mod bench_hostile;
mod client;
mod node_cmd;
mod verify_cmd;

use std::path::PathBuf;

mod csv_cmd;
mod demo;
mod federation_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod simnet_cmd;

mod audit_cmd;
mod conformance_cmd;

/// mimalloc: less CPU in allocation than glibc's malloc on the node's many small,
/// short-lived buffers, and far less RSS growth from per-thread arena fragmentation
/// (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc by default commits whole arenas eagerly on Linux: a node's RSS jumped to
/// 110–200 MiB under load for memory it never touched. Committing on demand
/// (`MIMALLOC_ARENA_EAGER_COMMIT=0`) brought the benchmark's peak RSS to ~35 MiB at the
/// same throughput and CPU (docs/PERFORMANCE.md). mimalloc reads its options when the
/// process starts, before `main`, so without the variable the binary re-executes itself
/// once with it set. An operator's own value wins.
fn tune_allocator() {
    const VAR: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(VAR, "0")
        .exec();
    // Only reached if the exec failed: carry on with mimalloc's defaults.
    tracing::debug!(error = %err, "could not re-execute with {VAR}=0");
}

/// Renkei (連携): federated exchange node for standard-spec care plans.
#[derive(Parser, Debug)]
#[command(name = "renkei", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as text (default) or as one JSON object per line (for a log
    /// collector).
    #[arg(long, global = true, env = "RENKEI_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

/// Where an office client finds its node.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Base URL of the node's HTTP API.
    #[arg(long, env = "RENKEI_NODE", default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// The office's API token.
    #[arg(long, env = "RENKEI_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// End-to-end A → B (or A → relay → B) throughput and latency with real nodes.
    Relay(bench::RelayArgs),
    /// The standard-spec check's cost per byte on worst-case inputs against a valid file.
    Csv(bench_csv::CsvArgs),
    /// Another office's latency while one office uploads worst-case files.
    Hostile(bench_hostile::HostileArgs),
    /// The protocol decoders' cost per byte on worst-case inputs at their size limits.
    Decode(bench_decode::DecodeArgs),
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the protocol version and limits this build speaks.
    Version,
    /// Start a local federation (a relay and two regional operators on loopback), send
    /// every kind of send unit across operators and verify every receipt.
    Demo {
        /// Leave the nodes running and print the web page URLs and office tokens.
        #[arg(long)]
        keep: bool,
    },
    /// Create a node directory: operator keys, admin token and renkei.toml.
    Init {
        /// Node directory (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Operator display name.
        #[arg(long)]
        operator: String,
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
        /// libp2p listen address (repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// This node relays for other operators.
        #[arg(long)]
        relay: bool,
        /// Signed federation roster to join with (copied into the node directory).
        #[arg(long, requires = "authority")]
        roster: Option<PathBuf>,
        /// Federation authority key that signs rosters (base32 or hex).
        #[arg(long)]
        authority: Option<String>,
        /// Peer to keep connected, as OPERATOR_ID@MULTIADDR (repeatable).
        #[arg(long)]
        peer: Vec<String>,
    },
    /// Benchmarks that print figures (see docs/PERFORMANCE.md).
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Federation authority: keys and the signed operator roster.
    Federation {
        #[command(subcommand)]
        cmd: federation_cmd::FederationCmd,
    },
    /// Install a newer signed roster on a node (running or not).
    RosterInstall {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The signed roster file.
        roster: PathBuf,
    },
    /// Office: can that office receive electronically, and at which operator?
    Directory {
        #[command(flatten)]
        node: NodeArgs,
        /// 事業所番号 to look up.
        office: String,
    },
    /// Run the node in the foreground until SIGTERM or SIGINT.
    Run {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Give back the disk space of old store log segments (node stopped): rewrites the few
    /// values still in use from each oldest segment and deletes it.
    Compact {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Compact a segment only if at most this percentage of it is still in use.
        #[arg(long, default_value_t = 50)]
        max_live: u64,
    },
    /// A consistent copy of the node's store into FILE: made by the running node between
    /// two batches (its inputs wait meanwhile), or read directly from a stopped node's store.
    Backup {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The backup file to write (must not exist).
        file: PathBuf,
    },
    /// Restore a backup into the store of a node that is stopped and has never run (its
    /// store empty): the file is checked whole first. Copy the node's operator.key,
    /// renkei.toml and tokens beside it yourself (they are not in the backup).
    Restore {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The backup file.
        file: PathBuf,
    },
    /// Offices homed at this node.
    Office {
        #[command(subcommand)]
        cmd: node_cmd::OfficeCmd,
    },
    /// Node status (outbox, peers, counters, binding conflicts; version, store and, on
    /// PostgreSQL, the active node).
    Status {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Operator keys.
    Key {
        #[command(subcommand)]
        cmd: node_cmd::KeyCmd,
    },
    /// Office: send one or more send units (files grouped by sender, recipient and stamp).
    Send {
        #[command(flatten)]
        node: NodeArgs,
        /// Standard-spec files (or directories of them).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Envelope id this unit replaces.
        #[arg(long)]
        supersedes: Option<String>,
    },
    /// Office: list the inbox.
    Inbox {
        #[command(flatten)]
        node: NodeArgs,
        /// Only the latest entry per user and month.
        #[arg(long)]
        latest: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Office: download a received unit's files.
    Fetch {
        #[command(flatten)]
        node: NodeArgs,
        /// Envelope id.
        id: String,
        /// Output directory.
        #[arg(short = 'o', long, default_value = ".")]
        out: PathBuf,
    },
    /// Office: sent units and their receipts.
    Sent {
        #[command(flatten)]
        node: NodeArgs,
        /// One envelope id.
        id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Office: download the proof bundle of a unit.
    Proof {
        #[command(flatten)]
        node: NodeArgs,
        /// Envelope id.
        id: String,
        /// Output file.
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Verify a proof bundle or an audit export offline and print what it proves.
    Verify {
        /// The proof bundle or audit export file (CBOR).
        proof: PathBuf,
        /// The federation roster that was in force.
        #[arg(long, conflicts_with = "node_key")]
        roster: Option<PathBuf>,
        /// For a single-node setup: the node's operator key (base32 or hex).
        #[arg(long)]
        node_key: Option<String>,
        /// The federation authority key the roster must be signed by.
        #[arg(long)]
        authority: Option<String>,
    },
    /// Standard-spec CSV files (ケアプラン標準仕様): check them before sending.
    Csv {
        #[command(subcommand)]
        command: csv_cmd::CsvCommand,
    },
    /// Deterministic simulated federation (scenarios, faults, checkers).
    Simnet(simnet_cmd::SimnetArgs),
    /// Operator: check another operator's node over libp2p before federating with it
    /// (delivery, dedup, receipt signatures, refusal of bad input); exit code 1 on a FAIL.
    Conformance(conformance_cmd::ConformanceArgs),
    /// Audit: an office's monthly export for the auditor (運営指導), the node's audit chain.
    Audit {
        #[command(subcommand)]
        cmd: audit_cmd::AuditCmd,
    },
}

/// A closed stdout (`renkei csv check … | head`) ends the command quietly with the shell's
/// SIGPIPE status, as other Unix tools do, instead of a panic message: Rust ignores SIGPIPE,
/// so `println!` panics on a closed pipe.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> Result<()> {
    tune_allocator();
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let code = match cli.command {
        Command::Version => {
            println!(
                "renkei {} (envelope version {}, max envelope {} bytes)",
                env!("CARGO_PKG_VERSION"),
                renkei_protocol::ENVELOPE_VERSION,
                renkei_protocol::limits::ENVELOPE_BYTES_MAX
            );
            0
        }
        Command::Init {
            dir,
            operator,
            http,
            listen,
            relay,
            roster,
            authority,
            peer,
        } => node_cmd::init(
            &dir,
            &operator,
            http,
            listen,
            relay,
            roster.as_deref(),
            authority.as_deref(),
            &peer,
        )?,
        Command::Federation { cmd } => federation_cmd::run(cmd)?,
        Command::Demo { keep } => demo::run(keep)?,
        Command::Bench {
            cmd: BenchCmd::Relay(a),
        } => bench::relay(a)?,
        Command::Bench {
            cmd: BenchCmd::Csv(a),
        } => bench_csv::run(a)?,
        Command::Bench {
            cmd: BenchCmd::Hostile(a),
        } => bench_hostile::run(a)?,
        Command::Bench {
            cmd: BenchCmd::Decode(a),
        } => bench_decode::run(a)?,
        Command::RosterInstall { dir, roster } => node_cmd::roster_install(&dir, &roster)?,
        Command::Directory { node, office } => client::directory(&node, &office)?,
        Command::Run { dir } => node_cmd::run(&dir)?,
        Command::Compact { dir, max_live } => node_cmd::compact(&dir, max_live)?,
        Command::Backup { dir, file } => node_cmd::backup(&dir, &file)?,
        Command::Restore { dir, file } => node_cmd::restore(&dir, &file)?,
        Command::Office { cmd } => node_cmd::office(cmd)?,
        Command::Status { dir } => node_cmd::status(&dir)?,
        Command::Key { cmd } => node_cmd::key(cmd)?,
        Command::Send {
            node,
            files,
            supersedes,
        } => client::send(&node, &files, supersedes.as_deref())?,
        Command::Inbox { node, latest, json } => client::inbox(&node, latest, json)?,
        Command::Fetch { node, id, out } => client::fetch(&node, &id, &out)?,
        Command::Sent { node, id, json } => client::sent(&node, id.as_deref(), json)?,
        Command::Proof { node, id, out } => client::proof(&node, &id, &out)?,
        Command::Verify {
            proof,
            roster,
            node_key,
            authority,
        } => verify_cmd::verify(
            &proof,
            roster.as_deref(),
            node_key.as_deref(),
            authority.as_deref(),
        )?,
        Command::Csv { command } => csv_cmd::run(command)?,
        Command::Simnet(args) => simnet_cmd::main(args)?,
        Command::Audit { cmd } => audit_cmd::run(cmd)?,
        Command::Conformance(args) => conformance_cmd::run(args)?,
    };
    std::process::exit(code)
}
