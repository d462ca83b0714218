//! The command line: one clap definition, one dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// Launch, watch, scale and cancel compute clusters on SLURM — and aggregate CSVs with them.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate test data.
    #[command(subcommand)]
    Gen(GenCommand),
    /// Group-by aggregation over CSV files in this process (no cluster needed).
    Agg(cmd::agg::AggArgs),
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// NYC yellow-taxi trip CSVs (2015 layout) with exact expected counts in `expected.json`.
    Taxi(cmd::gen_taxi::TaxiArgs),
}

pub fn parse() -> Cli {
    Cli::parse()
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    corral_core::logging::init(corral_core::logging::LogTarget::Stderr, "warn")?;
    // Broken config is reported before any work, naming the file and key.
    let _config = corral_core::config::Config::load()?;
    match cli.command {
        Some(Command::Gen(GenCommand::Taxi(args))) => cmd::gen_taxi::run(args),
        Some(Command::Agg(args)) => cmd::agg::run(args),
        None => {
            anyhow::bail!("the terminal UI is not built yet; try `corral --help`")
        }
    }
}
