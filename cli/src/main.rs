//! The `renkei` command: the binary edge of Renkei (operators, offices, developers).

use anyhow::Result;
use clap::{Parser, Subcommand};

mod simnet_cmd;

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
    /// Deterministic simulated federation (scenarios, faults, checkers).
    Simnet(simnet_cmd::SimnetArgs),
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
        Command::Simnet(args) => {
            let code = simnet_cmd::main(args)?;
            if code != 0 {
                std::process::exit(code);
            }
        }
    }
    Ok(())
}
