//! `corral-agent supervise`: the login-side supervisor of one SLURM cluster
//! (`corral_core::supervisor`): it reads the config as `corral` does (the same SLURM client),
//! runs until the cluster ends, SIGTERM or SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use corral_core::cluster_dir::ClusterDir;
use corral_core::supervisor::{self, Ended};
use corral_core::tasks::AbortOnDrop;
use tokio::sync::mpsc;
use tracing::info;

use crate::cli::SuperviseArgs;
use crate::signals::{self, Sig};

pub fn run(args: SuperviseArgs) -> anyhow::Result<ExitCode> {
    let dir = ClusterDir::open_path(&args.cluster)?;
    let config = corral_core::config::Config::load()?;
    let every = if args.tick.is_finite() && args.tick > 0.0 {
        Duration::from_secs_f64(args.tick)
    } else {
        supervisor::TICK
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let slurm = corral_core::slurm::client::from_config(&config.slurm);
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let (sig_tx, mut sig_rx) = mpsc::channel(4);
        let _signals = AbortOnDrop::spawn(signals::forward(sig_tx));
        let _relay = AbortOnDrop::spawn(async move {
            while let Some(s) = sig_rx.recv().await {
                if matches!(s, Sig::Term | Sig::Int) && stop_tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        info!(cluster = %dir.path().display(), tick = ?every, "supervisor starting");
        match supervisor::run(dir, slurm, every, stop_rx).await? {
            Ended::ClusterEnded(how) => info!(%how, "the cluster ended; supervisor exits"),
            Ended::Stopped => info!("stopped"),
            Ended::Superseded(pid) => info!(pid, "another supervisor runs for this cluster"),
        }
        Ok(ExitCode::SUCCESS)
    })
}
