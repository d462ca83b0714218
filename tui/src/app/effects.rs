//! The effects executor: each `Cmd` becomes a tokio task (file work on the blocking pool) that
//! posts its outcome back as a `Msg`. Every task is owned here — one-shot ones in a `JoinSet`,
//! watches by cluster name — and all are aborted on shutdown.
//!
//! Wired to: the backends (`corral_core::backend`: start, follow, scale, stop and observe a
//! cluster, whichever way it runs), SLURM's limits and start estimates for the wizard
//! (`corral_core::slurm`), the cluster client (`corral_core::client`: snapshot subscription,
//! queries with progress, restrictions for the sweep), and the cluster directory (`spec.json`,
//! `jobs.json`, `coordinator.json`, logs, ledger).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use corral_core::aggregate::Query;
use corral_core::backend::{AgentExe, Backends, Cluster, Events, Kind, Observed, State};
use corral_core::client::{ClusterClient, QueryEvent, resolve_inputs};
use corral_core::cluster_dir::{ClusterDir, CoordinatorInfo};
use corral_core::config::Config;
use corral_core::model::ClusterSpec;
use corral_core::paths;
use corral_core::protocol::QueryOptions;
use corral_core::scaling::Point;
use corral_core::slurm::SubmitOptions;
use corral_core::slurm::lifecycle::{ClusterJobs, JobView};
use corral_core::slurm::template::{self, JobRole};

use super::convert;
use super::msg::{Cmd, Msg};
use super::runtime::now_unix;
use super::view::Unix;
use super::view::{Backend, CancelReport, ClusterRow, ClusterSnapshot, ClusterState, Limits};

/// What every effect may use.
struct Ctx {
    backends: Backends,
    /// Where the clusters' directories are.
    clusters: PathBuf,
    /// Where relative query inputs are resolved from (the directory corral started in).
    cwd: PathBuf,
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
        Effects::with(
            tx,
            crate::progress::backends(&config),
            paths::clusters_dir(),
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        )
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
            Cmd::Quit => {}
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

async fn look(ctx: &Arc<Ctx>, name: &str) -> Look {
    look_at(ctx, name).await
}

async fn watch(ctx: Arc<Ctx>, tx: mpsc::Sender<Msg>, name: String) {
    let mut last: Vec<Msg> = Vec::new();
    let mut last_error = String::new();
    loop {
        let look = look(&ctx, &name).await;
        // Post only what changed: an idle cluster must not cause redraws.
        if look.msgs != last {
            for m in look.msgs.iter().cloned() {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
            last = look.msgs.clone();
        }
        if look.has_coordinator {
            match stream(&ctx, &tx, &name, look.context).await {
                Ok(()) => return,
                Err(e) => {
                    if e != last_error {
                        let reason = e.clone();
                        if tx
                            .send(Msg::Detached {
                                name: name.clone(),
                                reason,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        last_error = e;
                    }
                    last.clear();
                }
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// Connected: forwards snapshots (≤ 4 Hz, the coordinator's pace) and, every few seconds,
/// the SLURM side (job state, walltime). Returns `Ok` when the app went away, `Err` when the
/// connection did.
async fn stream(
    ctx: &Arc<Ctx>,
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut context: convert::Context,
) -> Result<(), String> {
    let dir = ctx.dir(name)?;
    let client = ClusterClient::connect(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let mut sub = client.subscribe().await.map_err(|e| e.to_string())?;
    let mut slurm_every = tokio::time::interval(WATCH_EVERY * 3);
    slurm_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    slurm_every.tick().await;
    let mut last_status: Option<Msg> = None;
    loop {
        tokio::select! {
            item = sub.receiver().recv() => match item {
                Some(Ok(s)) => {
                    let snap = convert::snapshot(&s, &context, now_unix());
                    if tx.send(Msg::Snapshot(snap)).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the coordinator ended the subscription".into()),
            },
            _ = slurm_every.tick() => {
                let look = look(ctx, name).await;
                context = look.context;
                let status = look.msgs.into_iter().find(|m| matches!(m, Msg::JobStatus { .. }));
                if status.is_some() && status != last_status {
                    if let Some(m) = status.clone()
                        && tx.send(m).await.is_err()
                    {
                        return Ok(());
                    }
                    last_status = status;
                }
            }
        }
    }
}

/// The agent the job script runs: `corral-agent`, or `corral agent` when only `corral` is
/// installed (the backends' own rule, `AgentExe::find`).
fn agent() -> AgentExe {
    AgentExe::find().unwrap_or(AgentExe {
        program: "corral-agent".into(),
        prefix: Vec::new(),
    })
}

async fn estimate(ctx: &Ctx, spec: &ClusterSpec) -> Result<String, String> {
    let dir = ctx.clusters.join(&spec.name);
    let script = template::render(spec, JobRole::Head, spec.workers, &dir, &agent().words())
        .map_err(|e| e.to_string())?;
    let est = ctx
        .backends
        .slurm_client()
        .estimate(&script, &SubmitOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{} on {}", est.start, est.nodes))
}

/// Starts a cluster: a SLURM cluster is submitted (its pending screen follows it), a local
/// one returns once every worker is connected.
async fn submit(ctx: &Ctx, spec: &ClusterSpec, backend: Backend) -> Result<(), String> {
    match backend {
        Backend::Slurm => {
            ctx.backends
                .slurm(agent())
                .start(spec, &Events::none())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(cluster = %spec.name, "submitted");
        }
        Backend::Local => {
            crate::cmd::up::start_local(&ctx.backends, spec, &Events::none())
                .await
                .map_err(|e| format!("{e:#}"))?;
            tracing::info!(cluster = %spec.name, "local cluster started");
        }
    }
    Ok(())
}

/// Runs `query` on `name`, posting progress; the result as the result table wants it.
async fn run_query(
    ctx: &Ctx,
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut query: Query,
) -> Result<super::view::ResultView, String> {
    let dir = ctx.dir(name)?;
    query.inputs = resolve_inputs(&query.inputs, &ctx.cwd).map_err(|e| e.to_string())?;
    let client = ClusterClient::connect(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let mut handle = client
        .submit(query, QueryOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    while let Some(ev) = handle.next().await {
        match ev {
            QueryEvent::Progress(p) => {
                let progress = convert::progress(&p);
                let _ = tx
                    .send(Msg::QueryProgress {
                        name: name.to_string(),
                        progress,
                    })
                    .await;
            }
            QueryEvent::Done(r) => {
                return Ok(convert::result_view(
                    r.result(),
                    u64::from(r.tasks),
                    r.seconds,
                    r.workers,
                    u64::from(r.cores),
                ));
            }
            QueryEvent::Failed(f) => return Err(f.error),
            QueryEvent::Lost(why) => return Err(why),
        }
    }
    Err("the query stream ended without a result".into())
}

/// Runs `query` once per core count (the shared sweep, `crate::sweep`), posting each runtime.
async fn sweep(
    ctx: &Ctx,
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut query: Query,
    cores: &[u32],
) -> Result<(), String> {
    let dir = ctx.dir(name)?;
    query.inputs = resolve_inputs(&query.inputs, &ctx.cwd).map_err(|e| e.to_string())?;
    let on_step = |step: crate::sweep::Step| {
        let msg = Msg::SweepPoint {
            name: name.to_string(),
            step,
        };
        async move { tx.send(msg).await.is_ok() }
    };
    crate::sweep::run(&dir, &query, cores, QueryOptions::default(), on_step)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// Scales a cluster by `delta` workers through its backend: a SLURM cluster submits a worker
/// job, or drains and cancels the newest ones (one shared path with `corral scale`); a local
/// one starts or stops processes.
async fn scale(ctx: Arc<Ctx>, name: &str, delta: i32) -> Result<String, String> {
    let mut cluster = ctx.cluster(name)?;
    let backend = ctx.backends.for_record(&cluster.record);
    let target =
        |now: u32| (i64::from(now) + i64::from(delta)).clamp(0, i64::from(u32::MAX)) as u32;
    backend
        .scale(&mut cluster, &target, &Events::none())
        .await
        .map_err(|e| e.to_string())
}

/// Stops a cluster through its backend: drained, its jobs cancelled or processes stopped.
async fn cancel(ctx: Arc<Ctx>, name: &str) -> Result<CancelReport, String> {
    let mut cluster = ctx
        .cluster(name)
        .map_err(|e| format!("{e}; nothing to cancel"))?;
    let backend = ctx.backends.for_record(&cluster.record);
    let report = backend
        .stop(&mut cluster, "corral TUI", &Events::none())
        .await
        .map_err(|e| e.to_string())?;
    let how = match &report.processes {
        None => "cancelled".to_string(),
        Some(p) if p.left.is_empty() => "stopped".to_string(),
        Some(p) => format!("stopped, but {} process(es) still run", p.left.len()),
    };
    Ok(CancelReport {
        core_hours: report.core_hours,
        how,
    })
}

fn coordinator(dir: &ClusterDir) -> Option<CoordinatorInfo> {
    dir.read_coordinator().ok()
}

/// A cluster as the TUI shows it: its records, what its backend sees, its coordinator.
struct Seen {
    cluster: Cluster,
    kind: Kind,
    observed: Result<Observed, String>,
    jobs: ClusterJobs,
    coord: Option<CoordinatorInfo>,
}

impl Seen {
    async fn of(ctx: &Ctx, mut cluster: Cluster) -> Seen {
        let backend = ctx.backends.for_record(&cluster.record);
        let observed = backend
            .observe(&mut cluster)
            .await
            .map_err(|e| e.to_string());
        let jobs = ClusterJobs::load(&cluster.dir).unwrap_or_default();
        let coord = coordinator(&cluster.dir);
        Seen {
            kind: backend.kind(),
            cluster,
            observed,
            jobs,
            coord,
        }
    }

    fn backend(&self) -> Backend {
        match self.kind {
            Kind::Local => Backend::Local,
            Kind::Slurm | Kind::InAllocation => Backend::Slurm,
        }
    }

    /// The job the cluster lives in: the head job, or the enclosing job of `batch --here`.
    fn head(&self) -> Option<&JobView> {
        let jobs = &self.observed.as_ref().ok()?.jobs;
        match self.jobs.head() {
            Some(h) => jobs.iter().find(|v| v.id == h.id),
            None => jobs.first(),
        }
    }

    fn head_submitted(&self) -> Option<Unix> {
        self.jobs.head().map(|h| h.submitted_unix)
    }

    fn workers_asked(&self) -> u32 {
        match &self.observed {
            Ok(o) => o.asked_workers,
            Err(_) => self.cluster.record.workers,
        }
    }

    fn state(&self) -> ClusterState {
        let Ok(o) = &self.observed else {
            return ClusterState::Unknown;
        };
        match (o.state, self.head()) {
            (State::Ended, _) => ClusterState::Ended,
            (_, Some(h)) => convert::cluster_state(&h.state, self.coord.is_some()),
            (State::Running, None) => ClusterState::Running,
            (State::Pending, None) => ClusterState::Pending,
            (State::Unknown, None) => ClusterState::Unknown,
        }
    }

    /// When the walltime ends, for a running job that knows.
    fn walltime_end(&self, now: Unix) -> Option<Unix> {
        self.head()
            .filter(|v| v.state == "RUNNING")
            .and_then(|v| v.left_secs)
            .map(|l| now + l)
    }
}

/// How long Home waits for one coordinator's worker count (connect, authenticate, one
/// snapshot); one that takes longer shows `?` until the next refresh.
const CONNECTED_WITHIN: Duration = Duration::from_millis(1500);
/// How many coordinators Home asks at once.
const CONNECTED_AT_ONCE: usize = 8;

/// Fills "workers connected" of the running clusters: a short-lived connection and one
/// snapshot each, at most [`CONNECTED_AT_ONCE`] at a time, each bounded by
/// [`CONNECTED_WITHIN`]. Home refreshes every few seconds only while it shows, so nothing is
/// held open in between (an open connection would keep the idle TUI waking for keep-alives).
async fn fill_connected(ctx: &Arc<Ctx>, rows: &mut [ClusterRow]) {
    for r in rows.iter_mut() {
        // No coordinator listens (yet, or any more): no worker is connected.
        if matches!(
            r.state,
            ClusterState::Pending
                | ClusterState::Starting
                | ClusterState::Ended
                | ClusterState::Failed
        ) {
            r.workers_connected = Some(0);
        }
    }
    let mut todo = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.state == ClusterState::Running)
        .map(|(i, r)| (i, r.name.clone()))
        .collect::<Vec<_>>()
        .into_iter();
    // Owned by this task: dropping it (the task aborted on shutdown) aborts the lookups.
    let mut asking = JoinSet::new();
    loop {
        while asking.len() < CONNECTED_AT_ONCE
            && let Some((i, name)) = todo.next()
        {
            let ctx = Arc::clone(ctx);
            asking.spawn(async move {
                let n = tokio::time::timeout(CONNECTED_WITHIN, live_workers(&ctx, &name)).await;
                (i, n.ok().flatten())
            });
        }
        match asking.join_next().await {
            Some(Ok((i, n))) => {
                if let Some(row) = rows.get_mut(i) {
                    row.workers_connected = n;
                }
            }
            Some(Err(e)) => tracing::warn!("a worker count lookup failed: {e}"),
            None => break,
        }
    }
}

/// The live workers of cluster `name`, from one snapshot of its coordinator.
async fn live_workers(ctx: &Ctx, name: &str) -> Option<u32> {
    let dir = ctx.dir(name).ok()?;
    let client = ClusterClient::connect(&dir).await.ok()?;
    let snap = client.snapshot().await.ok()?;
    u32::try_from(snap.live_workers().count()).ok()
}

/// Every cluster directory → a Home row (SLURM clusters share one `squeue` answer).
async fn list_clusters(ctx: &Ctx) -> Result<Vec<ClusterRow>, String> {
    let names = ClusterDir::list_in(&ctx.clusters).map_err(|e| e.to_string())?;
    let now = now_unix();
    let mut rows = Vec::new();
    for name in names {
        let cluster = match ctx.cluster(&name) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(cluster = %name, "skipping: {e}");
                continue;
            }
        };
        let seen = Seen::of(ctx, cluster).await;
        // Home keeps what runs and what ended lately; `corral ls --all` has the rest.
        if corral_core::ended::ended_long_ago(&seen.cluster.record, now) {
            continue;
        }
        let last_query_at = std::fs::metadata(seen.cluster.dir.ledger_file())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let workers_asked = seen.workers_asked();
        rows.push(ClusterRow {
            name,
            backend: seen.backend(),
            state: seen.state(),
            job_ids: seen.jobs.ids().iter().map(|j| j.0).collect(),
            workers_connected: None,
            workers_asked,
            cores: u64::from(workers_asked) * u64::from(seen.cluster.record.cores_per_worker),
            walltime_end: seen.walltime_end(now),
            last_query_at,
        });
    }
    Ok(rows)
}

/// One look at an attached cluster.
struct Look {
    /// The head job's status, and a snapshot of what is known without a connection.
    msgs: Vec<Msg>,
    /// What the directory and SLURM add to the coordinator's snapshots.
    context: convert::Context,
    has_coordinator: bool,
}

async fn look_at(ctx: &Ctx, name: &str) -> Look {
    let cluster = match ctx.cluster(name) {
        Ok(c) => c,
        Err(e) => {
            return Look {
                msgs: vec![Msg::Detached {
                    name: name.into(),
                    reason: e.to_string(),
                }],
                context: convert::Context::default(),
                has_coordinator: false,
            };
        }
    };
    let seen = Seen::of(ctx, cluster).await;
    let now = now_unix();
    let mut msgs = Vec::new();
    if let Some(v) = seen.head() {
        msgs.push(Msg::JobStatus {
            name: name.into(),
            status: convert::job_status(v, seen.head_submitted()),
        });
    }
    if let Err(e) = &seen.observed {
        msgs.push(Msg::Detached {
            name: name.into(),
            reason: format!("cannot ask SLURM: {e}"),
        });
    }
    let core_hours = seen.observed.as_ref().ok().map(|o| o.core_hours);
    let state = seen.state();
    let backend = seen.backend();
    let walltime_end = seen.walltime_end(now);
    let coord = seen.coord.as_ref();
    let context = convert::Context {
        backend: Some(backend),
        address: coord.map(|c| c.socket_addr().to_string()),
        walltime_end,
        job_ids: seen.jobs.ids().iter().map(|j| j.0).collect(),
        workers_asked: seen.workers_asked(),
        core_hours_used: core_hours,
        slurm_state: (backend == Backend::Slurm).then_some(state),
    };
    // Only a cluster past pending has a dashboard to show.
    if !matches!(state, ClusterState::Pending | ClusterState::Unknown) || coord.is_some() {
        msgs.push(Msg::Snapshot(ClusterSnapshot {
            name: name.into(),
            backend,
            state,
            address: context.address.clone(),
            authenticated: false,
            not_connected: Some(if coord.is_some() {
                "connecting…".into()
            } else if state == ClusterState::Ended {
                "the cluster has ended".into()
            } else {
                "the coordinator has not started yet".into()
            }),
            walltime_end,
            job_ids: context.job_ids.clone(),
            workers_asked: context.workers_asked,
            workers: Vec::new(),
            tasks: Default::default(),
            query: None,
            core_hours_used: core_hours,
        }));
    }
    Look {
        msgs,
        context,
        has_coordinator: coord.is_some() && state != ClusterState::Ended,
    }
}

/// Earlier runtimes of `query` from the cluster's ledger (`ledger.jsonl`, written by the
/// coordinator: one `"event": "query"` line per finished query with `query`, `cores`,
/// `seconds`, `ok`). The ledger records resolved inputs, so `query` is resolved the same way
/// first. Lines of another shape are skipped: history is not worth failing over.
fn ledger_points(ctx: &Ctx, name: &str, query: &Query) -> Vec<Point> {
    let Ok(dir) = ctx.dir(name) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(dir.ledger_file()) else {
        return Vec::new();
    };
    let mut q = query.clone();
    if let Ok(inputs) = resolve_inputs(&q.inputs, &ctx.cwd) {
        q.inputs = inputs;
    }
    let Ok(want) = serde_json::to_value(&q) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event").and_then(|e| e.as_str()) == Some("query"))
        .filter(|v| v.get("ok").and_then(serde_json::Value::as_bool) == Some(true))
        .filter(|v| v.get("query") == Some(&want))
        .filter_map(|v| {
            let cores = u32::try_from(v.get("cores")?.as_u64()?).ok()?;
            let seconds = v.get("seconds")?.as_f64()?;
            Some(Point { cores, seconds })
        })
        .collect()
}

/// The last lines of every log of the cluster (head job output/error, agents' logs), newest
/// file first.
fn read_logs(ctx: &Ctx, name: &str) -> Result<Vec<String>, String> {
    const TAIL: usize = 200;
    let dir = ctx.dir(name)?;
    let logs = dir.logs_dir();
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&logs)
        .map_err(|e| format!("{}: {e}", logs.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, e.path())
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut out = Vec::new();
    for (_, path) in files {
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        out.push(format!("── {} ──", path.display()));
        out.extend(
            lines[lines.len().saturating_sub(TAIL)..]
                .iter()
                .map(|l| (*l).to_string()),
        );
    }
    Ok(out)
}
