//! The `renkei` command: the binary edge of Renkei (operators, offices, developers).

mod csv_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Renkei (連携): federated exchange node for standard-spec care plans.
#[derive(Parser, Debug)]
#[command(name = "renkei", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the protocol version and limits this build speaks.
    Version,
    /// Standard-spec CSV files (ケアプラン標準仕様): check them before sending.
    Csv {
        #[command(subcommand)]
        command: csv_cmd::CsvCommand,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!(
                "renkei {} (envelope version {})",
                env!("CARGO_PKG_VERSION"),
                renkei_protocol::ENVELOPE_VERSION
            );
        }
        Command::Csv { command } => std::process::exit(csv_cmd::run(command)?),
    }
    Ok(())
}
