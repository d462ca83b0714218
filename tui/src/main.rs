//! `corral`: what the user types on the login node. It never does heavy work itself beyond the
//! single-process tools (`gen`, `agg`); clusters are driven through SLURM and the coordinator.
//!
//! Map of the modules:
//! - `app`: the terminal UI (`corral`, `corral attach NAME`): Elm-shaped app, screens, effects.
//! - `cli`: the command line (one clap definition for every subcommand) and its dispatch.
//! - `cmd::gen_taxi`: `corral gen taxi`, the NYC-taxi data generator.
//! - `cmd::agg`: `corral agg`, a single-process group-by over CSV files.
//! - `cmd::up`, `cmd::query`, `cmd::status`, `cmd::down`, `cmd::ls`: clusters — start, query,
//!   watch, stop, list; `cmd::forget`: remove an ended cluster's records; `cmd::demo`: `corral demo`, the one-command showcase.
//! - `cmd::batch`: `corral batch -- CMD`, a cluster for the life of one command;
//!   `cmd::history`, `cmd::sweep`, `cmd::plot`: finished queries and clusters, the scaling sweep,
//!   and its plot (`chart`: the runtime plot as SVG and PNG).
//! - `human`: byte sizes and durations for people, one format everywhere.
//! - `progress`: how the CLI prints a backend's progress events, and where it gets its
//!   backends (`corral_core::backend`: local, SLURM, inside an allocation).
//! - `query_flags`: the query flags (`--by`, aggregates, files) shared by agg, query and sweep.
//! - `report`: how CLI output is printed (human tables on stdout, `--json`, errors on stderr).
//! - `sweep`: the scaling sweep (one query at 1, 2, 4, … cores), shared by the TUI and `corral sweep`.

mod app;
mod chart;
mod cli;
mod cmd;
mod human;
mod progress;
mod query_flags;
mod report;
mod sweep;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    // `corral agent` is an agent process, which builds its own runtime: nothing else runs.
    if let Some(code) = cli::run_agent(&cli) {
        return code;
    }
    // The one async runtime of this process, for every command and the TUI.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("corral")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report::error(&anyhow::anyhow!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = cli::run(cli, &rt);
    // Effects still waiting on SLURM commands get a moment, not forever (they are killed
    // with their tasks).
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            report::error(&e);
            ExitCode::FAILURE
        }
    }
}
