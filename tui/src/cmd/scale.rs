//! `corral scale NAME --workers W`: grow or shrink a running cluster through its backend. A
//! local cluster starts more worker processes, or drains its newest ones and stops them. On
//! SLURM, growing submits a worker job that joins the same coordinator; shrinking drains the
//! newest worker jobs (their partitions move to the other workers) and then cancels them.

use std::process::ExitCode;

use anyhow::bail;
use corral_core::backend::{Backends, Cluster};

use crate::progress::Printer;

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The cluster.
    pub name: String,
    /// The number of workers wanted.
    #[arg(long, value_name = "W")]
    pub workers: u32,
}

pub async fn run(args: ScaleArgs, backends: &Backends) -> anyhow::Result<ExitCode> {
    if args.workers == 0 {
        bail!(
            "--workers must be at least 1; to stop the cluster use `corral down {}`",
            args.name
        );
    }
    let mut cluster = Cluster::open(&args.name)?;
    if let Some(st) = &cluster.record.stopped {
        bail!(
            "cluster {} has ended ({}); start a new one with `corral up`",
            args.name,
            st.how
        );
    }
    let backend = backends.for_record(&cluster.record);
    let printer = Printer::start("", false);
    let want = args.workers;
    let said = backend
        .scale(&mut cluster, &|_| want, printer.events())
        .await;
    printer.finish().await;
    println!("cluster {}: {}", args.name, said?);
    Ok(ExitCode::SUCCESS)
}
