//! `corral scale NAME --workers W`: grow or shrink a running cluster through its backend. A
//! local cluster starts more worker processes, or drains its newest ones and stops them. On
//! SLURM, growing submits a worker job that joins the same coordinator; shrinking drains the
//! newest worker jobs (their partitions move to the other workers) and then cancels them.
//! `corral scale NAME --adapt MIN..MAX|off` hands the count to adaptive scaling (or takes it
//! back), see `super::adapt`.

use std::process::ExitCode;

use anyhow::bail;
use corral_core::backend::{Backends, Cluster};

use crate::progress::Printer;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["workers", "adapt"])))]
pub struct ScaleArgs {
    /// The cluster.
    pub name: String,
    /// The number of workers wanted.
    #[arg(long, value_name = "W")]
    pub workers: Option<u32>,
    /// Adaptive scaling within MIN..MAX workers from now on (grows while queries wait,
    /// shrinks to MIN after an idle time), or `off` to keep the count as it is.
    #[arg(long, value_name = "MIN..MAX|off", value_parser = super::adapt::parse)]
    pub adapt: Option<super::adapt::AdaptArg>,
}

pub async fn run(args: ScaleArgs, backends: &Backends) -> anyhow::Result<ExitCode> {
    if args.workers == Some(0) {
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
    if let Some(arg) = args.adapt {
        let said = super::adapt::set(backends.slurm_client().as_ref(), &mut cluster, arg).await?;
        println!("{said}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(want) = args.workers else {
        bail!("say --workers W or --adapt MIN..MAX|off");
    };
    if let corral_core::cluster_record::Backend::Slurm { spec, .. } = &cluster.record.backend
        && let Some(a) = spec.supervise.adapt
    {
        bail!(
            "cluster {} adapts within {} workers; turn that off first (`corral scale {} --adapt off`) or give a new range",
            args.name,
            a.range,
            args.name
        );
    }
    let backend = backends.for_record(&cluster.record);
    let printer = Printer::start("", false);
    let said = backend
        .scale(&mut cluster, &|_| want, printer.events())
        .await;
    printer.finish().await;
    println!("cluster {}: {}", args.name, said?);
    Ok(ExitCode::SUCCESS)
}
