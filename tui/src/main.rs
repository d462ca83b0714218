//! `corral`: what the user types on the login node. It never does heavy work itself beyond the
//! single-process tools (`gen`, `agg`); clusters are driven through SLURM and the coordinator.
//!
//! Map of the modules:
//! - `app`: the terminal UI (`corral`, `corral attach NAME`): Elm-shaped app, screens, effects.
//! - `cli`: the command line (one clap definition for every subcommand) and its dispatch.
//! - `cmd::gen_taxi`: `corral gen taxi`, the NYC-taxi data generator.
//! - `cmd::agg`: `corral agg`, a single-process group-by over CSV files.
//! - `cmd::up`, `cmd::query`, `cmd::status`, `cmd::down`, `cmd::ls`: clusters — start, query,
//!   watch, stop, list; `cmd::demo`: `corral demo`, the one-command showcase.
//! - `cmd::batch`: `corral batch -- CMD`, a cluster for the life of one command;
//!   `cmd::history`, `cmd::sweep`, `cmd::plot`: finished queries and clusters, the scaling sweep,
//!   and its plot (`chart`: the runtime plot as SVG and PNG).
//! - `human`: byte sizes and durations for people, one format everywhere.
//! - `local`: the local backend (agents as detached processes on this machine).
//! - `slurm_backend`: the SLURM backend (validate, submit, follow, scale, cancel via `jobs.json`).
//! - `query_flags`: the query flags (`--by`, aggregates, files) shared by agg, query and sweep.
//! - `report`: how CLI output is printed (human tables on stdout, `--json`, errors on stderr).
//! - `sweep`: the scaling sweep (one query at 1, 2, 4, … cores), shared by the TUI and `corral sweep`.

mod app;
mod chart;
mod cli;
mod cmd;
mod human;
mod local;
mod query_flags;
mod report;
mod slurm_backend;
mod sweep;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            report::error(&e);
            ExitCode::FAILURE
        }
    }
}
