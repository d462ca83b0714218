//! `corral-agent coordinator`: opens the cluster directory (refusing an insecure one), binds,
//! serves until SIGTERM/SIGINT or a client's shutdown; SIGUSR1 marks the walltime ending. In
//! Dask mode it also runs the Dask scheduler, and stops it last.

use std::process::ExitCode;

use anyhow::Context;
use corral_core::cluster_dir::ClusterDir;
use corral_core::coordinator::{Control, Coordinator, CoordinatorOptions};
use corral_core::tasks::AbortOnDrop;
use tokio::sync::mpsc;
use tracing::info;

use crate::cli::CoordinatorArgs;
use crate::signals::{self, Sig};

pub fn run(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let dir = ClusterDir::open_path(&args.cluster)?;
    let dask = crate::dask::spec_of(&dir);
    let bind = match args.bind {
        Some(b) => b,
        None => corral_core::netaddr::listen_address()?,
    };
    let mut opts = CoordinatorOptions::new(bind);
    if let Some(p) = args.partition_bytes {
        opts.partition_bytes = p.max(1);
    }
    opts.dashboard = args.dashboard;
    // Two threads: connection tasks and the state task; merging and planning use blocking
    // threads of their own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        if let Some(what) = corral_core::coordinator::take_over(&dir).await {
            info!("{what}");
        }
        let coordinator = Coordinator::bind(dir.clone(), opts)?;
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        // Dask mode: the scheduler listens on the coordinator's address, once it does.
        let scheduler = dask
            .as_ref()
            .map(|spec| crate::dask::Scheduler::start(&dir, spec, bind, ctl_tx.clone()));
        let (sig_tx, mut sig_rx) = mpsc::channel(8);
        let _signals = AbortOnDrop::spawn(signals::forward(sig_tx));
        let _relay = AbortOnDrop::spawn(async move {
            while let Some(s) = sig_rx.recv().await {
                let c = match s {
                    Sig::Term => Control::Shutdown {
                        reason: "SIGTERM".into(),
                    },
                    Sig::Int => Control::Shutdown {
                        reason: "SIGINT".into(),
                    },
                    Sig::Usr1 => Control::WalltimeEnding,
                };
                if ctl_tx.send(c).await.is_err() {
                    return;
                }
            }
        });
        let served = coordinator.run(ctl_rx).await;
        // The workers were told to stop theirs; the scheduler goes last.
        if let Some(s) = scheduler {
            s.stop().await;
        }
        served?;
        info!("bye");
        Ok(ExitCode::SUCCESS)
    })
}
