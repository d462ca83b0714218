//! The effects executor: each `Cmd` becomes a tokio task (file work on the blocking pool) that
//! posts its outcome back as a `Msg`. Every task is owned here — one-shot ones in a `JoinSet`,
//! watches by cluster name — and all are aborted on shutdown.
//!
//! Wired to: the backends (`corral_core::backend`: start, follow, scale, stop and observe a
//! cluster, whichever way it runs), SLURM's limits and start estimates for the wizard
//! (`corral_core::slurm`), the cluster client (`corral_core::client`: snapshot subscription,
//! queries with progress, restrictions for the sweep), and the cluster directory (`spec.json`,
//! `jobs.json`, `coordinator.json`, logs, ledger).
//!
//! Map (one module per screen's effects; a new screen or panel puts its effects in a module of
//! its own here and adds its `Cmd` arm to `Effects::execute`):
//! - this module: `Effects` (task ownership, `Cmd` → task) and what every effect shares;
//! - `home`: the cluster list with each running cluster's connected workers;
//! - `start`: the wizard's start estimate and submitting a cluster;
//! - `watch`: following an attached cluster (its jobs, then its coordinator's snapshots);
//! - `seen`: one look at a cluster's records, backend and coordinator (Home and watch share it);
//! - `query`: queries, sweeps and the ledger's history;
//! - `lifecycle`: scale and cancel through the cluster's backend;
//! - `logs`: the cluster's log files;
//! - `notices`: notifications and adaptive-scaling decisions of the attached cluster;
//! - `dask`: a Dask cluster's own view, read through the dashboard tunnel while watched.

mod dask;
mod home;
mod lifecycle;
mod logs;
mod notices;
mod query;
mod seen;
mod start;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use corral_core::backend::{AgentExe, Backends, Cluster};
use corral_core::cluster_dir::ClusterDir;
use corral_core::config::Config;
use corral_core::paths;

use super::msg::{Cmd, Msg};
use super::view::Limits;
use home::{fill_connected, list_clusters};
use lifecycle::{cancel, scale};
use logs::read_logs;
use query::{ledger_points, run_query, sweep};
use start::{estimate, submit};
use watch::watch;

/// What every effect may use.
struct Ctx {
    backends: Backends,
    /// Where the clusters' directories are.
    clusters: PathBuf,
    /// Where relative query inputs are resolved from (the directory corral started in).
    cwd: PathBuf,
    /// `[notify]`: whether notices reach this terminal, and the walltime warning's lead.
    notify: corral_core::config::NotifyConfig,
}

impl Ctx {
    fn dir(&self, name: &str) -> Result<ClusterDir, String> {
        ClusterDir::open_in(&self.clusters, name).map_err(|e| e.to_string())
    }

    fn cluster(&self, name: &str) -> Result<Cluster, String> {
        Cluster::load(self.dir(name)?).map_err(|e| e.to_string())
    }
}

pub struct Effects {
    tx: mpsc::Sender<Msg>,
    ctx: Arc<Ctx>,
    tasks: JoinSet<()>,
    watches: HashMap<String, AbortHandle>,
}

/// How often an attached cluster's jobs are looked at (one `squeue` per look).
const WATCH_EVERY: Duration = Duration::from_secs(2);

impl Effects {
    pub fn new(tx: mpsc::Sender<Msg>, config: Config) -> Effects {
        let mut e = Effects::with(
            tx,
            crate::progress::backends(&config),
            paths::clusters_dir(),
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        );
        if let Some(ctx) = Arc::get_mut(&mut e.ctx) {
            ctx.notify = config.notify.clone();
        }
        e
    }

    /// Effects over these backends and clusters' directory (tests use a fake SLURM).
    pub(super) fn with(
        tx: mpsc::Sender<Msg>,
        backends: Backends,
        clusters: PathBuf,
        cwd: PathBuf,
    ) -> Effects {
        Effects {
            tx,
            ctx: Arc::new(Ctx {
                backends,
                clusters,
                cwd,
                notify: Default::default(),
            }),
            tasks: JoinSet::new(),
            watches: HashMap::new(),
        }
    }

    /// Runs the future `f` makes as a task of its own and posts its message.
    fn spawn<F, Fut>(&mut self, f: F)
    where
        F: FnOnce(Arc<Ctx>) -> Fut,
        Fut: std::future::Future<Output = Msg> + Send + 'static,
    {
        let tx = self.tx.clone();
        let fut = f(Arc::clone(&self.ctx));
        self.tasks.spawn(async move {
            let _ = tx.send(fut.await).await;
        });
    }

    /// Runs `f` on the blocking pool (file work) and posts its message.
    fn blocking<F>(&mut self, f: F)
    where
        F: FnOnce(&Ctx) -> Msg + Send + 'static,
    {
        let tx = self.tx.clone();
        let ctx = Arc::clone(&self.ctx);
        self.tasks.spawn(async move {
            let msg = match tokio::task::spawn_blocking(move || f(&ctx)).await {
                Ok(m) => m,
                Err(e) => Msg::Error(format!("internal error in an effect: {e}")),
            };
            let _ = tx.send(msg).await;
        });
    }

    pub fn execute(&mut self, cmd: Cmd) {
        // Reap finished one-shot tasks so the set does not grow over a long session.
        while self.tasks.try_join_next().is_some() {}
        tracing::debug!(?cmd, "effect");
        match cmd {
            // The runtime writes alerts itself (it owns the terminal).
            Cmd::Quit | Cmd::Alert(_) => {}
            Cmd::ListClusters => {
                let tx = self.tx.clone();
                let ctx = Arc::clone(&self.ctx);
                self.tasks.spawn(async move {
                    let mut rows = list_clusters(&ctx).await;
                    if let Ok(rows) = &mut rows {
                        fill_connected(&ctx, rows).await;
                    }
                    let _ = tx.send(Msg::Clusters(rows)).await;
                });
            }
            Cmd::FetchLimits => self.spawn(|ctx| async move {
                let slurm = ctx.backends.slurm_client();
                let limits = async {
                    let partitions = slurm.partitions().await?;
                    let nodes = slurm.nodes().await?;
                    Ok::<_, corral_core::slurm::SlurmError>(Limits { partitions, nodes })
                };
                Msg::Limits(limits.await.map_err(|e| e.to_string()))
            }),
            Cmd::EstimateStart(spec) => self.spawn(|ctx| async move {
                let result = estimate(&ctx, &spec).await;
                Msg::StartEstimate { spec, result }
            }),
            Cmd::Submit { spec, backend } => self.spawn(move |ctx| async move {
                let result = submit(&ctx, &spec, backend).await.map(|()| backend);
                Msg::Submitted {
                    name: spec.name,
                    result,
                }
            }),
            Cmd::Attach { name } => self.attach(name),
            Cmd::Detach { name } => {
                if let Some(h) = self.watches.remove(&name) {
                    h.abort();
                }
            }
            Cmd::RunQuery { name, query } => {
                let tx = self.tx.clone();
                let ctx = Arc::clone(&self.ctx);
                self.tasks.spawn(async move {
                    let result = run_query(&ctx, &tx, &name, query).await;
                    let _ = tx.send(Msg::QueryDone { name, result }).await;
                });
            }
            Cmd::Scale { name, delta } => {
                let tx = self.tx.clone();
                let ctx = Arc::clone(&self.ctx);
                self.tasks.spawn(async move {
                    let result = scale(ctx, &name, delta).await;
                    let _ = tx.send(Msg::Scaled { name, result }).await;
                });
            }
            Cmd::Cancel { name } => {
                let tx = self.tx.clone();
                let ctx = Arc::clone(&self.ctx);
                self.tasks.spawn(async move {
                    let result = cancel(ctx, &name).await;
                    let _ = tx.send(Msg::Cancelled { name, result }).await;
                });
            }
            Cmd::Sweep { name, query, cores } => {
                let tx = self.tx.clone();
                let ctx = Arc::clone(&self.ctx);
                self.tasks.spawn(async move {
                    let result = sweep(&ctx, &tx, &name, query, &cores).await;
                    let _ = tx.send(Msg::SweepDone { name, result }).await;
                });
            }
            Cmd::LoadHistory { name, query } => self.blocking(move |ctx| {
                let points = ledger_points(ctx, &name, &query);
                Msg::History { name, points }
            }),
            Cmd::ReadLogs { name } => self.blocking(move |ctx| {
                let result = read_logs(ctx, &name);
                Msg::Logs { name, result }
            }),
        }
    }

    /// Watches `name` until detached: its jobs (for Pending), then the coordinator's snapshot
    /// stream once it listens; on a lost connection it goes back to looking and reconnects.
    fn attach(&mut self, name: String) {
        if let Some(h) = self.watches.remove(&name) {
            h.abort();
        }
        let tx = self.tx.clone();
        let ctx = Arc::clone(&self.ctx);
        let key = name.clone();
        let handle = self.tasks.spawn(async move {
            watch(ctx, tx, name).await;
        });
        self.watches.insert(key, handle);
    }

    /// Stops every task (watches included) and waits for them to go.
    pub async fn shutdown(&mut self) {
        self.watches.clear();
        self.tasks.shutdown().await;
    }
}

/// The agent the job script runs: `corral-agent`, or `corral agent` when only `corral` is
/// installed (the backends' own rule, `AgentExe::find`).
pub(super) fn agent() -> AgentExe {
    AgentExe::find().unwrap_or(AgentExe {
        program: "corral-agent".into(),
        prefix: Vec::new(),
    })
}
