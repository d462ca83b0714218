//! The effects executor: each `Cmd` becomes a tokio task (blocking SLURM and file work on the
//! blocking pool) that posts its outcome back as a `Msg`. Every task is owned here — one-shot
//! ones in a `JoinSet`, watches by cluster name — and all are aborted on shutdown.
//!
//! Wired to: `corral_core::slurm` (partitions, nodes, `sbatch --test-only`, submit through
//! `slurm::lifecycle`, `job_views`, `cancel_and_wait`), the local backend (`crate::local`:
//! start, scale and stop), the cluster client (`corral_core::client`: snapshot subscription,
//! queries with progress, restrictions for the sweep), and the cluster directory (`spec.json`,
//! `jobs.json`, `coordinator.json`, logs, ledger).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use corral_core::aggregate::Query;
use corral_core::client::{ClusterClient, QueryEvent, resolve_inputs};
use corral_core::cluster_dir::{ClusterDir, CoordinatorInfo};
use corral_core::cluster_record::ClusterRecord;
use corral_core::config::Config;
use corral_core::model::{ClusterSpec, JobId};
use corral_core::paths;
use corral_core::protocol::QueryOptions;
use corral_core::scaling::Point;
use corral_core::slurm::lifecycle::{self, ClusterJobs};
use corral_core::slurm::template::{self, JobRole};
use corral_core::slurm::{Slurm, SlurmCli, SubmitOptions};

use super::convert;
use super::msg::{Cmd, Msg};
use super::runtime::now_unix;
use super::view::{Backend, CancelReport, ClusterRow, ClusterSnapshot, ClusterState, Limits};

/// What every effect may use.
struct Ctx {
    slurm: SlurmCli,
    /// Where relative query inputs are resolved from (the directory corral started in).
    cwd: PathBuf,
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
        Effects {
            tx,
            ctx: Arc::new(Ctx {
                slurm: SlurmCli::new(&config.slurm),
                cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            }),
            tasks: JoinSet::new(),
            watches: HashMap::new(),
        }
    }

    /// Runs `f` on the blocking pool and posts its message.
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
                    let mut rows = on_blocking(&ctx, list_clusters).await;
                    if let Ok(rows) = &mut rows {
                        fill_connected(rows).await;
                    }
                    let _ = tx.send(Msg::Clusters(rows)).await;
                });
            }
            Cmd::FetchLimits => self.blocking(|ctx| {
                let r = ctx
                    .slurm
                    .partitions()
                    .and_then(|partitions| {
                        ctx.slurm.nodes().map(|nodes| Limits { partitions, nodes })
                    })
                    .map_err(|e| e.to_string());
                Msg::Limits(r)
            }),
            Cmd::EstimateStart(spec) => self.blocking(move |ctx| {
                let result = estimate(ctx, &spec);
                Msg::StartEstimate { spec, result }
            }),
            Cmd::Submit { spec, backend } => match backend {
                Backend::Slurm => self.blocking(move |ctx| {
                    let name = spec.name.clone();
                    let result = submit_slurm(ctx, &spec).map(|_| Backend::Slurm);
                    Msg::Submitted { name, result }
                }),
                Backend::Local => {
                    let tx = self.tx.clone();
                    self.tasks.spawn(async move {
                        let result = submit_local(&spec).await.map(|()| Backend::Local);
                        let _ = tx
                            .send(Msg::Submitted {
                                name: spec.name,
                                result,
                            })
                            .await;
                    });
                }
            },
            Cmd::Attach { name } => self.attach(name),
            Cmd::Detach { name } => {
                if let Some(h) = self.watches.remove(&name) {
                    h.abort();
                }
            }
            Cmd::RunQuery { name, query } => {
                let tx = self.tx.clone();
                let cwd = self.ctx.cwd.clone();
                self.tasks.spawn(async move {
                    let result = run_query(&tx, &name, query, &cwd).await;
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
                let cwd = self.ctx.cwd.clone();
                self.tasks.spawn(async move {
                    let result = sweep(&tx, &name, query, &cores, &cwd).await;
                    let _ = tx.send(Msg::SweepDone { name, result }).await;
                });
            }
            Cmd::LoadHistory { name, query } => {
                let cwd = self.ctx.cwd.clone();
                self.blocking(move |_| {
                    let points = ledger_points(&name, &query, &cwd);
                    Msg::History { name, points }
                })
            }
            Cmd::ReadLogs { name } => self.blocking(move |_| {
                let result = read_logs(&name);
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
    let ctx = Arc::clone(ctx);
    let n = name.to_string();
    tokio::task::spawn_blocking(move || look_at(&ctx, &n))
        .await
        .unwrap_or_else(|e| Look {
            msgs: vec![Msg::Error(format!("internal error: {e}"))],
            context: convert::Context::default(),
            has_coordinator: false,
        })
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
    let dir = ClusterDir::open(name).map_err(|e| e.to_string())?;
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

/// The agent command the job script runs: `corral-agent`, or `corral agent` when only
/// `corral` is installed (the local backend's own rule, `local::find_agent`).
fn agent_command() -> Vec<String> {
    match crate::local::find_agent() {
        Ok(a) => crate::slurm_backend::agent_words(&a),
        Err(_) => vec!["corral-agent".into()],
    }
}

fn estimate(ctx: &Ctx, spec: &ClusterSpec) -> Result<String, String> {
    let dir = paths::clusters_dir().join(&spec.name);
    let script = template::render(spec, JobRole::Head, spec.workers, &dir, &agent_command())
        .map_err(|e| e.to_string())?;
    let est = ctx
        .slurm
        .estimate(&script, &SubmitOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(format!("{} on {}", est.start, est.nodes))
}

fn submit_slurm(ctx: &Ctx, spec: &ClusterSpec) -> Result<JobId, String> {
    let (_, rec) = crate::slurm_backend::create_and_submit(&ctx.slurm, spec, &agent_command())
        .map_err(|e| format!("{e:#}"))?;
    tracing::info!(cluster = %spec.name, job = %rec.id, "submitted");
    Ok(rec.id)
}

/// Starts a local cluster (returns once every worker is connected).
async fn submit_local(spec: &ClusterSpec) -> Result<(), String> {
    let local = crate::local::LocalSpec {
        name: spec.name.clone(),
        workers: spec.workers,
        cores: spec.cores_per_worker,
        env: Vec::new(),
    };
    let started = crate::local::start(&local)
        .await
        .map_err(|e| format!("{e:#}"))?;
    reap(started.children);
    tracing::info!(cluster = %spec.name, "local cluster started");
    Ok(())
}

/// The agents are our children: reap them when they exit so none lingers as a zombie while
/// the TUI runs (they are detached otherwise and outlive the TUI).
fn reap(children: Vec<std::process::Child>) {
    if children.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("corral-reaper".into())
        .spawn(move || {
            for mut c in children {
                let _ = c.wait();
            }
        });
}

/// Scales a local cluster by `delta` workers: more processes, or the newest ones drained and
/// stopped (`crate::local::scale`).
async fn scale_local(
    dir: &ClusterDir,
    mut record: ClusterRecord,
    delta: i32,
) -> Result<String, String> {
    let target =
        |now: u32| (i64::from(now) + i64::from(delta)).clamp(0, i64::from(u32::MAX)) as u32;
    let scaled = crate::local::scale(dir, &mut record, target)
        .await
        .map_err(|e| format!("{e:#}"))?;
    reap(scaled.children);
    Ok(scaled.message)
}

/// Runs `query` on `name`, posting progress; the result as the result table wants it.
async fn run_query(
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut query: Query,
    cwd: &std::path::Path,
) -> Result<super::view::ResultView, String> {
    let dir = ClusterDir::open(name).map_err(|e| e.to_string())?;
    query.inputs = resolve_inputs(&query.inputs, cwd).map_err(|e| e.to_string())?;
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
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut query: Query,
    cores: &[u32],
    cwd: &std::path::Path,
) -> Result<(), String> {
    let dir = ClusterDir::open(name).map_err(|e| e.to_string())?;
    query.inputs = resolve_inputs(&query.inputs, cwd).map_err(|e| e.to_string())?;
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

/// Runs SLURM calls (blocking commands) off the runtime's threads.
async fn on_blocking<T: Send + 'static>(
    ctx: &Arc<Ctx>,
    f: impl FnOnce(&Ctx) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let ctx = Arc::clone(ctx);
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .map_err(|e| format!("internal error: {e}"))?
}

/// Scales a SLURM cluster by `delta` workers: up submits a worker job; down drains the newest
/// worker jobs, cancels them, and retires head-job workers for the rest (one shared path with
/// `corral scale`, run on a blocking thread).
async fn scale(ctx: Arc<Ctx>, name: &str, delta: i32) -> Result<String, String> {
    let info = load_info(name)?;
    let Some(record) = info.record.clone() else {
        return Err(format!("{name}: spec.json is missing or unreadable"));
    };
    if !matches!(
        record.backend,
        corral_core::cluster_record::Backend::Slurm { .. }
    ) {
        return scale_local(&info.dir, record, delta).await;
    }
    let dir = info.dir.path().to_path_buf();
    on_blocking(&ctx, move |ctx| {
        let dir = ClusterDir::open_path(&dir).map_err(|e| e.to_string())?;
        let target =
            |now: u32| (i64::from(now) + i64::from(delta)).clamp(0, i64::from(u32::MAX)) as u32;
        crate::slurm_backend::scale(&ctx.slurm, &dir, &record, target).map_err(|e| format!("{e:#}"))
    })
    .await
}

async fn cancel(ctx: Arc<Ctx>, name: &str) -> Result<CancelReport, String> {
    let info = load_info(name)?;
    if info
        .record
        .as_ref()
        .is_some_and(|r| r.backend.kind() == "slurm")
    {
        // The coordinator stops its workers first, then SLURM cancels the jobs.
        crate::slurm_backend::ask_shutdown(&info.dir).await;
        let n = name.to_string();
        return tokio::task::spawn_blocking(move || cancel_slurm(&ctx, &n))
            .await
            .map_err(|e| format!("internal error: {e}"))?;
    }
    if let Some(mut record) = info.record {
        let cores = u64::from(record.workers) * u64::from(record.cores_per_worker);
        let core_hours =
            validate_core_hours(cores, now_unix().saturating_sub(record.created_at_unix));
        let report = crate::local::stop(&info.dir, &mut record)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let how = if report.left.is_empty() {
            "stopped".to_string()
        } else {
            format!("stopped, but {} process(es) still run", report.left.len())
        };
        return Ok(CancelReport { core_hours, how });
    }
    Err(format!(
        "{name}: spec.json is missing or unreadable; nothing to cancel"
    ))
}

fn validate_core_hours(cores: u64, secs: u64) -> f64 {
    corral_core::slurm::validate::core_hours(cores, secs)
}

fn cancel_slurm(ctx: &Ctx, name: &str) -> Result<CancelReport, String> {
    let info = load_info(name)?;
    let mut record = info
        .record
        .ok_or_else(|| format!("{name}: spec.json is missing or unreadable"))?;
    let core_hours =
        crate::slurm_backend::cancel_jobs(&ctx.slurm, &info.dir, &mut record, "corral TUI")
            .map_err(|e| format!("{e:#}"))?;
    Ok(CancelReport {
        core_hours,
        how: "cancelled".into(),
    })
}

fn coordinator(dir: &ClusterDir) -> Option<CoordinatorInfo> {
    dir.read_coordinator().ok()
}

/// What a cluster directory says about its cluster: `spec.json` (a `ClusterRecord`, which
/// names the backend) and, for SLURM clusters, `jobs.json`.
struct Info {
    dir: ClusterDir,
    record: Option<ClusterRecord>,
    jobs: ClusterJobs,
}

impl Info {
    fn backend(&self) -> Backend {
        match self.record.as_ref().map(|r| &r.backend) {
            Some(corral_core::cluster_record::Backend::Slurm { .. }) => Backend::Slurm,
            _ => Backend::Local,
        }
    }

    fn workers_asked(&self) -> u32 {
        if !self.jobs.jobs.is_empty() {
            return self.jobs.asked_workers();
        }
        self.record.as_ref().map_or(0, |r| r.workers)
    }

    fn cores_per_worker(&self) -> u32 {
        self.record.as_ref().map_or(0, |r| r.cores_per_worker)
    }
}

fn load_info(name: &str) -> Result<Info, String> {
    let dir = ClusterDir::open(name).map_err(|e| e.to_string())?;
    Ok(info_of(dir))
}

fn info_of(dir: ClusterDir) -> Info {
    let record = ClusterRecord::load(&dir).ok();
    let jobs = ClusterJobs::load(&dir).unwrap_or_default();
    Info { dir, record, jobs }
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
async fn fill_connected(rows: &mut [ClusterRow]) {
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
            asking.spawn(async move {
                let n = tokio::time::timeout(CONNECTED_WITHIN, live_workers(&name)).await;
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
async fn live_workers(name: &str) -> Option<u32> {
    let dir = ClusterDir::open(name).ok()?;
    let client = ClusterClient::connect(&dir).await.ok()?;
    let snap = client.snapshot().await.ok()?;
    u32::try_from(snap.live_workers().count()).ok()
}

/// Every cluster directory → a Home row, with one `squeue` for all SLURM jobs.
fn list_clusters(ctx: &Ctx) -> Result<Vec<ClusterRow>, String> {
    let names = ClusterDir::list_in(&paths::clusters_dir()).map_err(|e| e.to_string())?;
    let now = now_unix();
    let mut found = Vec::new();
    for name in names {
        match ClusterDir::open(&name) {
            Ok(d) => found.push((name, info_of(d))),
            Err(e) => tracing::warn!(cluster = %name, "skipping: {e}"),
        }
    }
    let all_ids: Vec<JobId> = found.iter().flat_map(|(_, i)| i.jobs.ids()).collect();
    let views = if all_ids.is_empty() {
        HashMap::new()
    } else {
        lifecycle::job_views(&ctx.slurm, &all_ids).unwrap_or_else(|e| {
            tracing::warn!("cannot ask SLURM about jobs: {e}");
            HashMap::new()
        })
    };
    let mut rows = Vec::new();
    for (name, info) in found {
        let coord = coordinator(&info.dir);
        let last_query_at = std::fs::metadata(info.dir.ledger_file())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let backend = info.backend();
        let head = info.jobs.head().and_then(|h| views.get(&h.id));
        let state = local_or_slurm_state(&info, head.map(|v| v.state.as_str()), coord.is_some());
        let workers_asked = info.workers_asked();
        rows.push(ClusterRow {
            name,
            backend,
            state,
            job_ids: info.jobs.ids().iter().map(|j| j.0).collect(),
            workers_connected: None,
            workers_asked,
            cores: u64::from(workers_asked) * u64::from(info.cores_per_worker()),
            walltime_end: head
                .filter(|v| v.state == "RUNNING")
                .and_then(|v| v.left_secs)
                .map(|l| now + l),
            last_query_at,
        });
    }
    Ok(rows)
}

fn local_or_slurm_state(info: &Info, head_state: Option<&str>, has_coord: bool) -> ClusterState {
    if info.record.as_ref().is_some_and(|r| r.stopped.is_some()) {
        return ClusterState::Ended;
    }
    match (info.backend(), head_state) {
        (Backend::Slurm, Some(st)) => convert::cluster_state(st, has_coord),
        (Backend::Slurm, None) => ClusterState::Unknown,
        (Backend::Local, _) => match &info.record {
            Some(r) if crate::local::is_running(&info.dir, r) => ClusterState::Running,
            Some(_) => ClusterState::Ended,
            None if has_coord => ClusterState::Running,
            None => ClusterState::Unknown,
        },
    }
}

/// One look at an attached cluster.
struct Look {
    /// The head job's status, and a snapshot of what is known without a connection.
    msgs: Vec<Msg>,
    /// What the directory and SLURM add to the coordinator's snapshots.
    context: convert::Context,
    has_coordinator: bool,
}

fn look_at(ctx: &Ctx, name: &str) -> Look {
    let info = match load_info(name) {
        Ok(i) => i,
        Err(reason) => {
            return Look {
                msgs: vec![Msg::Detached {
                    name: name.into(),
                    reason,
                }],
                context: convert::Context::default(),
                has_coordinator: false,
            };
        }
    };
    let coord = coordinator(&info.dir);
    let now = now_unix();
    let mut msgs = Vec::new();
    let mut head_state = None;
    let mut walltime_end = None;
    let mut core_hours = None;
    if !info.jobs.jobs.is_empty() {
        match lifecycle::job_views(&ctx.slurm, &info.jobs.ids()) {
            Ok(views) => {
                if let Some(h) = info.jobs.head()
                    && let Some(v) = views.get(&h.id)
                {
                    msgs.push(Msg::JobStatus {
                        name: name.into(),
                        status: convert::job_status(v, Some(h.submitted_unix)),
                    });
                    head_state = Some(v.state.clone());
                    walltime_end = v
                        .left_secs
                        .filter(|_| v.state == "RUNNING")
                        .map(|l| now + l);
                }
                core_hours = Some(lifecycle::core_hours(&views));
            }
            Err(e) => msgs.push(Msg::Detached {
                name: name.into(),
                reason: format!("cannot ask SLURM: {e}"),
            }),
        }
    }
    if let Some(r) = &info.record {
        let cores = u64::from(r.workers) * u64::from(r.cores_per_worker);
        let until = r.stopped.as_ref().map_or(now, |s| s.at_unix);
        core_hours = Some(validate_core_hours(
            cores,
            until.saturating_sub(r.created_at_unix),
        ));
    }
    let state = local_or_slurm_state(&info, head_state.as_deref(), coord.is_some());
    let backend = info.backend();
    let context = convert::Context {
        backend: Some(backend),
        address: coord.as_ref().map(|c| c.socket_addr().to_string()),
        walltime_end,
        job_ids: info.jobs.ids().iter().map(|j| j.0).collect(),
        workers_asked: info.workers_asked(),
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
fn ledger_points(name: &str, query: &Query, cwd: &std::path::Path) -> Vec<Point> {
    let Ok(dir) = ClusterDir::open(name) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(dir.ledger_file()) else {
        return Vec::new();
    };
    let mut q = query.clone();
    if let Ok(inputs) = resolve_inputs(&q.inputs, cwd) {
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
fn read_logs(name: &str) -> Result<Vec<String>, String> {
    const TAIL: usize = 200;
    let dir = ClusterDir::open(name).map_err(|e| e.to_string())?;
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
