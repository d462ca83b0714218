//! `corral down NAME`: stop a cluster and leave nothing running: the coordinator is asked to
//! shut down (it tells the workers), then every recorded process still running is sent
//! SIGTERM, then SIGKILL; the stop is recorded in `spec.json` and the ledger.

use std::process::ExitCode;

use anyhow::Context;
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord};

use crate::local;

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The cluster.
    pub name: String,
    /// Print what happened as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DownArgs) -> anyhow::Result<ExitCode> {
    let dir = ClusterDir::open(&args.name)?;
    let mut record = ClusterRecord::load(&dir)
        .with_context(|| format!("cluster {}: cannot read its spec.json", args.name))?;
    if let Backend::Slurm { .. } = record.backend {
        let config = corral_core::config::Config::load()?;
        let slurm = crate::slurm_backend::client(&config);
        let core_hours = crate::slurm_backend::down(&slurm, &dir, &mut record)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"name": args.name, "backend": "slurm", "core_hours": core_hours, "stopped": record.stopped})
            );
        } else {
            println!(
                "cluster {} is down: every job cancelled and gone from the queue; {core_hours:.2} core-hours used",
                args.name
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = local::block_on(local::stop(&dir, &mut record))??;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.left.is_empty() {
        println!(
            "cluster {} is down: {} process{} exited when asked, {} after SIGTERM, {} killed",
            args.name,
            report.exited,
            if report.exited == 1 { "" } else { "es" },
            report.terminated,
            report.killed
        );
    }
    if !report.left.is_empty() {
        anyhow::bail!(
            "cluster {}: processes {:?} are still running after SIGKILL",
            args.name,
            report.left
        );
    }
    Ok(ExitCode::SUCCESS)
}
