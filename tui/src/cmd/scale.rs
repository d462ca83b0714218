//! `corral scale NAME --workers W`: grow or shrink a running cluster. A local cluster starts
//! more worker processes, or drains its newest ones and stops them. On SLURM, growing submits
//! a worker job that joins the same coordinator; shrinking drains the newest worker jobs (their
//! partitions move to the other workers) and then cancels them.

use std::process::ExitCode;

use anyhow::bail;
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord};

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The cluster.
    pub name: String,
    /// The number of workers wanted.
    #[arg(long, value_name = "W")]
    pub workers: u32,
}

pub fn run(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    if args.workers == 0 {
        bail!(
            "--workers must be at least 1; to stop the cluster use `corral down {}`",
            args.name
        );
    }
    let dir = ClusterDir::open(&args.name)?;
    let record = ClusterRecord::load(&dir)?;
    if let Some(st) = &record.stopped {
        bail!(
            "cluster {} has ended ({}); start a new one with `corral up`",
            args.name,
            st.how
        );
    }
    match record.backend {
        Backend::Slurm { .. } => {
            let config = corral_core::config::Config::load()?;
            let slurm = crate::slurm_backend::client(&config);
            println!(
                "{}",
                crate::slurm_backend::scale(&slurm, &dir, &record, |_| args.workers)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Backend::Local { .. } => {
            let mut record = record;
            // The started workers are detached (own process group, logs in the cluster
            // directory); they outlive this command like the cluster's other processes.
            let scaled =
                crate::local::block_on(crate::local::scale(&dir, &mut record, |_| args.workers))??;
            println!("cluster {}: {}", args.name, scaled.message);
            Ok(ExitCode::SUCCESS)
        }
    }
}
