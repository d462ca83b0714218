//! Dask mode in the agents: the coordinator agent runs the Dask scheduler, each worker agent
//! one Dask worker, both as children it owns ([`corral_core::dask::child`]). The scheduler's
//! state goes to the coordinator (snapshots show it) and into `dask/scheduler.json` once it
//! listens, which is how the workers (and `corral dask-env`) learn its address.

use std::net::IpAddr;

use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::ClusterRecord;
use corral_core::coordinator::Control;
use corral_core::dask::child::{Finish, Launch, Supervisor};
use corral_core::dask::{DaskFiles, DaskSpec, SchedulerInfo};
use corral_core::protocol::{DaskState, DaskView};
use corral_core::tasks::AbortOnDrop;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The cluster's Dask settings, when it is a Dask cluster.
pub fn spec_of(dir: &ClusterDir) -> Option<DaskSpec> {
    ClusterRecord::load(dir).ok().and_then(|r| r.dask)
}

/// The scheduler and the task that reports it.
pub struct Scheduler {
    supervisor: Supervisor,
    _report: AbortOnDrop<()>,
    files: DaskFiles,
}

impl Scheduler {
    /// Starts the scheduler on `host` (the coordinator's address) and reports its state to the
    /// coordinator through `control`.
    pub fn start(
        dir: &ClusterDir,
        spec: &DaskSpec,
        host: IpAddr,
        control: mpsc::Sender<Control>,
    ) -> Scheduler {
        let files = DaskFiles::of(dir);
        // A file left by a coordinator that was killed must not send workers to a dead port.
        files.remove_scheduler();
        let supervisor = Supervisor::start(
            spec.python.clone(),
            files.clone(),
            Launch::Scheduler { host },
        );
        let mut status = supervisor.handle().status();
        let report_files = files.clone();
        let report = AbortOnDrop::spawn(async move {
            loop {
                let s = status.borrow_and_update().clone();
                match &s.state {
                    DaskState::Running { address } => {
                        let info = SchedulerInfo {
                            address: address.clone(),
                            dashboard: s.dashboard,
                        };
                        match report_files.write_scheduler(&info) {
                            Ok(()) => {
                                info!(%address, dashboard = ?s.dashboard, "Dask scheduler listening")
                            }
                            Err(e) => warn!("cannot write the Dask scheduler's address: {e}"),
                        }
                    }
                    other if other.is_over() => report_files.remove_scheduler(),
                    _ => {}
                }
                // The dashboard is registered (for `corral dashboard`) while the scheduler runs.
                let dashboard = match &s.state {
                    DaskState::Running { .. } => s.dashboard,
                    _ => None,
                };
                let view = DaskView {
                    scheduler: s.state,
                    dashboard: s.dashboard,
                };
                if control.send(Control::Dask(view)).await.is_err()
                    || control.send(Control::Dashboard(dashboard)).await.is_err()
                    || status.changed().await.is_err()
                {
                    return;
                }
            }
        });
        Scheduler {
            supervisor,
            _report: report,
            files,
        }
    }

    /// Stops the scheduler (the cluster is going away) and removes its address file.
    pub async fn stop(self) {
        let last = self.supervisor.finish(Finish::Stop).await;
        self.files.remove_scheduler();
        info!(?last, "Dask scheduler stopped");
    }
}

/// Starts this worker agent's Dask worker: `cores` threads, the allocation's memory, named
/// after the node and the agent's pid (what the dashboard shows).
pub fn start_worker(dir: &ClusterDir, spec: &DaskSpec, cores: u32) -> Supervisor {
    let machine_cores = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let memory_bytes = corral_core::dask::memory_limit(
        cores,
        &|k| std::env::var(k).ok(),
        corral_core::dask::machine_memory().unwrap_or(1 << 32),
        machine_cores,
    );
    let name = format!(
        "{}-{}",
        corral_core::cluster_dir::node_name(),
        std::process::id()
    );
    info!(%name, cores, memory_bytes, "starting the Dask worker");
    Supervisor::start(
        spec.python.clone(),
        DaskFiles::of(dir),
        Launch::Worker {
            name,
            threads: cores,
            memory_bytes,
        },
    )
}
