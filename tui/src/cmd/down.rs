//! `corral down NAME`: stop a cluster and leave nothing running — through its backend: the
//! coordinator is asked to shut down (it tells the workers), then SLURM jobs are cancelled and
//! waited for, or processes signalled (SIGTERM, then SIGKILL); the stop is recorded in
//! `spec.json` and the ledger.

use std::process::ExitCode;

use corral_core::backend::{Backends, Cluster};

use crate::progress::Printer;

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The cluster.
    pub name: String,
    /// Print what happened as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: DownArgs, backends: &Backends) -> anyhow::Result<ExitCode> {
    let mut cluster = Cluster::open(&args.name)?;
    let backend = backends.for_record(&cluster.record);
    let printer = Printer::start("", args.json);
    let report = backend
        .stop(&mut cluster, "corral down", printer.events())
        .await;
    printer.finish().await;
    let report = report?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "name": args.name,
                "backend": backend.kind(),
                "how": report.how,
                "core_hours": report.core_hours,
                "jobs": report.jobs,
                "exited": report.processes.as_ref().map(|p| p.exited),
                "terminated": report.processes.as_ref().map(|p| p.terminated),
                "killed": report.processes.as_ref().map(|p| p.killed),
                "left": report.processes.as_ref().map(|p| p.left.clone()),
                "stopped": cluster.record.stopped,
            })
        );
    }
    match &report.processes {
        Some(p) if !p.left.is_empty() => anyhow::bail!(
            "cluster {}: processes {:?} are still running after SIGKILL",
            args.name,
            p.left
        ),
        _ if args.json => {}
        Some(p) => println!(
            "cluster {} is down: {} process{} exited when asked, {} after SIGTERM, {} killed",
            args.name,
            p.exited,
            if p.exited == 1 { "" } else { "es" },
            p.terminated,
            p.killed
        ),
        None => println!(
            "cluster {} is down: every job cancelled and gone from the queue; {:.2} core-hours used",
            args.name, report.core_hours
        ),
    }
    Ok(ExitCode::SUCCESS)
}
