//! `corral up`: start a cluster. `--local` runs it as processes on this machine; the SLURM
//! backend (`--days/--time/--partition/--mem/--account/--yes/--no-wait/--timeout`) comes next
//! to it.

use std::process::ExitCode;

use anyhow::bail;
use corral_core::cluster_record::Backend;

use crate::local::{self, LocalSpec};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Run the cluster as processes on this machine (no SLURM).
    #[arg(long)]
    pub local: bool,
    /// The cluster's name (letters, digits, '.', '_', '-'); its directory is
    /// ~/.local/state/corral/clusters/NAME.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Workers (default: `workers` in the config's [defaults], 8).
    #[arg(long, value_name = "W")]
    pub workers: Option<u32>,
    /// Cores per worker (default: `cores` in the config's [defaults], 2).
    #[arg(long, value_name = "C")]
    pub cores: Option<u32>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    if args.local {
        run_local(args)
    } else {
        run_slurm(args)
    }
}

fn run_slurm(_args: UpArgs) -> anyhow::Result<ExitCode> {
    bail!("the SLURM backend is not available yet; use --local to run the cluster on this machine")
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    name: &'a str,
    backend: &'static str,
    workers: u32,
    cores_per_worker: u32,
    cores: u32,
    coordinator: String,
    coordinator_pid: u32,
    worker_pids: &'a [u32],
    ready_seconds: f64,
    dir: String,
}

fn run_local(args: UpArgs) -> anyhow::Result<ExitCode> {
    let config = corral_core::config::Config::load()?;
    let workers = args.workers.unwrap_or(config.defaults.workers);
    let cores = args.cores.unwrap_or(config.defaults.cores);
    if workers == 0 || cores == 0 {
        bail!("--workers and --cores must be at least 1");
    }
    let spec = LocalSpec {
        name: args.name.clone(),
        workers,
        cores,
        env: Vec::new(),
    };
    let started = local::block_on(local::start(&spec))??;
    let info = started.dir.read_coordinator()?;
    let Backend::Local {
        coordinator_pid,
        worker_pids,
        ..
    } = &started.record.backend;
    let summary = Summary {
        name: &args.name,
        backend: "local",
        workers,
        cores_per_worker: cores,
        cores: workers * cores,
        coordinator: info.socket_addr().to_string(),
        coordinator_pid: *coordinator_pid,
        worker_pids,
        ready_seconds: started.ready_after.as_secs_f64(),
        dir: started.dir.path().display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "cluster {} is up (local): {workers} worker{} × {cores} core{} = {} cores, all connected in {:.2} s",
            args.name,
            if workers == 1 { "" } else { "s" },
            if cores == 1 { "" } else { "s" },
            workers * cores,
            summary.ready_seconds
        );
        println!(
            "  coordinator {} (pid {}), authenticated QUIC on loopback only",
            summary.coordinator, summary.coordinator_pid
        );
        println!("  logs:   {}/logs", summary.dir);
        println!(
            "  query:  corral query {} --by payment_type FILES…",
            args.name
        );
        println!("  watch:  corral status {}", args.name);
        println!("  stop:   corral down {}", args.name);
    }
    Ok(ExitCode::SUCCESS)
}
