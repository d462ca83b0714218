//! `corral-agent worker`: computes partitions for the coordinator of a cluster directory until
//! told to stop, SIGTERM/SIGINT, or the coordinator is gone for the orphan timeout. In Dask
//! mode it also runs a Dask worker and ends it before exiting.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use corral_core::cluster_dir::ClusterDir;
use corral_core::dask::child::{Finish, Supervisor};
use corral_core::protocol::DaskState;
use corral_core::tasks::AbortOnDrop;
use corral_core::worker::{self, Control, Exit, WorkerError, WorkerOptions};
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::cli::WorkerArgs;
use crate::signals::{self, Sig};

/// Exit status of a worker that gave up on a vanished coordinator.
const EXIT_ORPHANED: u8 = 3;

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let dir = ClusterDir::open_path(&args.cluster)?;
    let mut opts = WorkerOptions::new(corral_core::threads::cpu_threads(args.cores));
    if args.orphan_timeout.is_finite() && args.orphan_timeout > 0.0 {
        opts.orphan_timeout = Duration::from_secs_f64(args.orphan_timeout);
    }
    opts.test_delay = args.test_delay_ms.map(Duration::from_millis);
    let dask = crate::dask::spec_of(&dir);
    // One thread for I/O; the compute threads are the worker's own pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let (ctl_tx, ctl_rx) = mpsc::channel(4);
        let (sig_tx, mut sig_rx) = mpsc::channel(4);
        let _signals = AbortOnDrop::spawn(signals::forward(sig_tx));
        let _relay = AbortOnDrop::spawn(async move {
            while let Some(s) = sig_rx.recv().await {
                let c = match s {
                    Sig::Term => Control::Terminate {
                        reason: "SIGTERM".into(),
                    },
                    Sig::Int => Control::Terminate {
                        reason: "SIGINT".into(),
                    },
                    // SLURM's `--signal`: the job's walltime ends soon.
                    Sig::Usr1 => Control::Drain {
                        reason: "its job's walltime ends soon (SIGUSR1)".into(),
                    },
                };
                if ctl_tx.send(c).await.is_err() {
                    return;
                }
            }
            // Keep the control channel open: its closing would read as "terminate".
            std::future::pending::<()>().await;
        });
        info!(cores = opts.cores, "worker starting");
        // Dask mode: this agent's Dask worker, owned here and ended before the agent exits.
        let supervisor = dask.as_ref().map(|spec| {
            crate::dask::start_worker(&dir, spec, u32::try_from(opts.cores.get()).unwrap_or(1))
        });
        opts.dask = supervisor.as_ref().map(Supervisor::handle);
        let ended = worker::run(dir, opts, ctl_rx).await;
        if let Some(s) = supervisor {
            // Stopped (SIGTERM) or drained: retire it through the scheduler, its data moved
            // to the other workers first; the cluster shutting down: close it now.
            let retiring = matches!(s.handle().status().borrow().state, DaskState::Retiring);
            let how = match &ended {
                Ok(Exit::Terminated { .. }) => Finish::Retire,
                _ if retiring => Finish::Retire,
                _ => Finish::Stop,
            };
            let last = s.finish(how).await;
            info!(?last, "the Dask worker ended");
        }
        match ended {
            Ok(Exit::Shutdown { reason }) => {
                info!(%reason, "worker exits: the coordinator shut down");
                Ok(ExitCode::SUCCESS)
            }
            Ok(Exit::Terminated { reason }) => {
                info!(%reason, "worker exits");
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ WorkerError::Orphaned { .. }) => {
                error!("{e}");
                Ok(ExitCode::from(EXIT_ORPHANED))
            }
            Err(e) => Err(e.into()),
        }
    })
}
