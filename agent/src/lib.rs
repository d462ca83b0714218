//! The agent roles as a library: the command line of `corral-agent` and what each role does.
//! The `corral-agent` binary is this library's [`main_with`]; `corral` embeds it too (a hidden
//! `corral agent …` subcommand), so a local cluster works even when only `corral` was built
//! (`cargo run --release -- demo` builds just the default package).
//!
//! Map of the modules:
//! - [`cli`]: the clap definition of the roles and their flags.
//! - `coordinator`: `corral-agent coordinator --cluster DIR [--bind IP]`.
//! - `worker`: `corral-agent worker --cluster DIR [--cores N]`.
//! - `supervise`: `corral-agent supervise --cluster DIR` (hidden): the login-side supervisor of
//!   a SLURM cluster (`corral_core::supervisor`), started detached by `corral up --keep-alive`.
//! - `simulate`: `corral-agent simulate --workers N --cluster DIR` (hidden): a load tool
//!   opening N authenticated worker connections that only heartbeat.
//! - `signals`: SIGTERM/SIGINT/SIGUSR1 forwarded to a role's control channel.
//! - `dask`: Dask mode — the scheduler the coordinator runs, the Dask worker each worker runs
//!   (child processes the agent owns and stops).

pub mod cli;
mod coordinator;
mod dask;
mod signals;
mod simulate;
mod supervise;
mod worker;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// Parses `args` (program name first) and runs the role; errors are printed on stderr.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::AgentCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("corral-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: cli::AgentCli) -> anyhow::Result<ExitCode> {
    // Agents log to stderr: srun labels it per task, the local backend sends it to logs/.
    corral_core::logging::init(corral_core::logging::LogTarget::Stderr, "info")?;
    match cli.command {
        cli::Command::Coordinator(a) => coordinator::run(a),
        cli::Command::Worker(a) => worker::run(a),
        cli::Command::Simulate(a) => simulate::run(a),
        cli::Command::Supervise(a) => supervise::run(a),
    }
}
