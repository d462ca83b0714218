//! The effects executor: each `Cmd` becomes a tokio task (blocking SLURM and file work on the
//! blocking pool) that posts its outcome back as a `Msg`. Every task is owned here — one-shot
//! ones in a `JoinSet`, watches by cluster name — and all are aborted on shutdown.
//!
//! Wired to: `corral_core::slurm` (partitions, nodes, `sbatch --test-only`, submit through
//! `slurm::lifecycle`, `job_views`, `cancel_and_wait`), the cluster directory (spec, secret,
//! `jobs.json`, `coordinator.json`, logs, ledger). What is not wired yet answers with a
//! "not available yet: …" message rather than made-up data.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use corral_core::aggregate::Query;
use corral_core::cluster_dir::{self, ClusterDir, CoordinatorInfo};
use corral_core::config::Config;
use corral_core::model::{ClusterSpec, JobId};
use corral_core::paths;
use corral_core::scaling::Point;
use corral_core::slurm::lifecycle::{self, ClusterJobs, Ended};
use corral_core::slurm::template::{self, JobRole};
use corral_core::slurm::{Slurm, SlurmCli, SubmitOptions};

use super::convert;
use super::msg::{Cmd, Msg};
use super::runtime::now_unix;
use super::view::{Backend, CancelReport, ClusterRow, ClusterSnapshot, ClusterState, Limits};

/// What every effect may use.
struct Ctx {
    slurm: SlurmCli,
}

pub struct Effects {
    tx: mpsc::Sender<Msg>,
    ctx: Arc<Ctx>,
    tasks: JoinSet<()>,
    watches: HashMap<String, AbortHandle>,
}

/// How often an attached cluster's jobs are looked at (one `squeue` per look).
const WATCH_EVERY: Duration = Duration::from_secs(2);

fn not_yet(what: &str) -> String {
    format!("not available yet: {what}")
}

impl Effects {
    pub fn new(tx: mpsc::Sender<Msg>, config: Config) -> Effects {
        Effects {
            tx,
            ctx: Arc::new(Ctx {
                slurm: SlurmCli::new(&config.slurm),
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

    fn post(&mut self, msg: Msg) {
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let _ = tx.send(msg).await;
        });
    }

    pub fn execute(&mut self, cmd: Cmd) {
        // Reap finished one-shot tasks so the set does not grow over a long session.
        while self.tasks.try_join_next().is_some() {}
        tracing::debug!(?cmd, "effect");
        match cmd {
            Cmd::Quit => {}
            Cmd::ListClusters => self.blocking(|ctx| Msg::Clusters(list_clusters(ctx))),
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
                Backend::Local => self.post(Msg::Submitted {
                    name: spec.name,
                    result: Err(not_yet(
                        "local clusters from the TUI (the local backend has not landed)",
                    )),
                }),
            },
            Cmd::Attach { name } => self.attach(name),
            Cmd::Detach { name } => {
                if let Some(h) = self.watches.remove(&name) {
                    h.abort();
                }
            }
            Cmd::RunQuery { name, .. } => self.post(Msg::QueryDone {
                name,
                result: Err(not_yet(
                    "queries from the TUI (the cluster client has not landed)",
                )),
            }),
            Cmd::Scale { name, delta } if delta > 0 => self.blocking(move |ctx| {
                let result = scale_up(ctx, &name, delta.unsigned_abs());
                Msg::Scaled { name, result }
            }),
            Cmd::Scale { name, .. } => self.post(Msg::Scaled {
                name,
                result: Err(not_yet(
                    "scaling down (draining workers needs the cluster client)",
                )),
            }),
            Cmd::Cancel { name } => self.blocking(move |ctx| {
                let result = cancel(ctx, &name);
                Msg::Cancelled { name, result }
            }),
            Cmd::Sweep { name, .. } => self.post(Msg::SweepDone {
                name,
                result: Err(not_yet(
                    "scaling sweeps (the cluster client has not landed)",
                )),
            }),
            Cmd::LoadHistory { name, query } => self.blocking(move |_| {
                let points = ledger_points(&name, &query);
                Msg::History { name, points }
            }),
            Cmd::ReadLogs { name } => self.blocking(move |_| {
                let result = read_logs(&name);
                Msg::Logs { name, result }
            }),
        }
    }

    /// Watches `name` until detached: its jobs' states (for Pending) and what can be known of
    /// it without a coordinator connection (for the dashboard).
    fn attach(&mut self, name: String) {
        if let Some(h) = self.watches.remove(&name) {
            h.abort();
        }
        let tx = self.tx.clone();
        let ctx = Arc::clone(&self.ctx);
        let key = name.clone();
        let handle = self.tasks.spawn(async move {
            let mut last: Vec<Msg> = Vec::new();
            loop {
                let ctx2 = Arc::clone(&ctx);
                let n = name.clone();
                let msgs = tokio::task::spawn_blocking(move || look_at(&ctx2, &n))
                    .await
                    .unwrap_or_else(|e| vec![Msg::Error(format!("internal error: {e}"))]);
                // Post only what changed: an idle cluster must not cause redraws.
                if msgs != last {
                    for m in msgs.iter().cloned() {
                        if tx.send(m).await.is_err() {
                            return;
                        }
                    }
                    last = msgs;
                }
                tokio::time::sleep(WATCH_EVERY).await;
            }
        });
        self.watches.insert(key, handle);
    }

    /// Stops every task (watches included) and waits for them to go.
    pub async fn shutdown(&mut self) {
        self.watches.clear();
        self.tasks.shutdown().await;
    }
}

fn agent_path() -> PathBuf {
    // corral-agent is installed next to corral (cargo puts both in one directory).
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("corral-agent")))
        .unwrap_or_else(|| PathBuf::from("corral-agent"))
}

fn estimate(ctx: &Ctx, spec: &ClusterSpec) -> Result<String, String> {
    let dir = paths::clusters_dir().join(&spec.name);
    let script = template::render(spec, JobRole::Head, spec.workers, &dir, &agent_path())
        .map_err(|e| e.to_string())?;
    let est = ctx
        .slurm
        .estimate(&script, &SubmitOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(format!("{} on {}", est.start, est.nodes))
}

fn submit_slurm(ctx: &Ctx, spec: &ClusterSpec) -> Result<JobId, String> {
    let dir = ClusterDir::create(&spec.name).map_err(|e| e.to_string())?;
    dir.create_secret().map_err(|e| e.to_string())?;
    cluster_dir::write_json_atomic(&dir.spec_file(), spec).map_err(|e| e.to_string())?;
    let rec = lifecycle::submit(
        &ctx.slurm,
        spec,
        JobRole::Head,
        spec.workers,
        &dir,
        &agent_path(),
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(cluster = %spec.name, job = %rec.id, "submitted");
    Ok(rec.id)
}

fn scale_up(ctx: &Ctx, name: &str, workers: u32) -> Result<String, String> {
    let dir = ClusterDir::open(name).map_err(|e| e.to_string())?;
    let jobs = ClusterJobs::load(&dir).map_err(|e| e.to_string())?;
    if jobs.jobs.is_empty() {
        return Err(not_yet("scaling local clusters"));
    }
    let spec: ClusterSpec = cluster_dir::read_json(&dir.spec_file()).map_err(|e| e.to_string())?;
    let rec = lifecycle::submit(
        &ctx.slurm,
        &spec,
        JobRole::Workers,
        workers,
        &dir,
        &agent_path(),
    )
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "job {} submitted for {workers} more worker(s)",
        rec.id
    ))
}

fn cancel(ctx: &Ctx, name: &str) -> Result<CancelReport, String> {
    let dir = ClusterDir::open(name).map_err(|e| e.to_string())?;
    let mut jobs = ClusterJobs::load(&dir).map_err(|e| e.to_string())?;
    if jobs.jobs.is_empty() {
        return Err(not_yet("cancelling local clusters from the TUI"));
    }
    let views = lifecycle::cancel_and_wait(&ctx.slurm, &jobs.ids(), Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    let core_hours = lifecycle::core_hours(&views);
    jobs.ended = Some(Ended {
        at_unix: now_unix(),
        how: "cancelled from the corral TUI".into(),
        core_hours,
    });
    jobs.save(&dir).map_err(|e| e.to_string())?;
    Ok(CancelReport {
        core_hours,
        how: "cancelled".into(),
    })
}

fn coordinator(dir: &ClusterDir) -> Option<CoordinatorInfo> {
    dir.read_coordinator().ok()
}

/// Every cluster directory → a Home row, with one `squeue` for all SLURM jobs.
fn list_clusters(ctx: &Ctx) -> Result<Vec<ClusterRow>, String> {
    let names = ClusterDir::list_in(&paths::clusters_dir()).map_err(|e| e.to_string())?;
    let now = now_unix();
    let mut found = Vec::new();
    for name in names {
        let dir = match ClusterDir::open(&name) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(cluster = %name, "skipping: {e}");
                continue;
            }
        };
        let spec: Option<ClusterSpec> = cluster_dir::read_json(&dir.spec_file()).ok();
        let jobs = ClusterJobs::load(&dir).unwrap_or_default();
        found.push((name, dir, spec, jobs));
    }
    let all_ids: Vec<JobId> = found.iter().flat_map(|(_, _, _, j)| j.ids()).collect();
    let views = if all_ids.is_empty() {
        HashMap::new()
    } else {
        lifecycle::job_views(&ctx.slurm, &all_ids).unwrap_or_else(|e| {
            tracing::warn!("cannot ask SLURM about jobs: {e}");
            HashMap::new()
        })
    };
    let mut rows = Vec::new();
    for (name, dir, spec, jobs) in found {
        let coord = coordinator(&dir);
        let last_query_at = std::fs::metadata(dir.ledger_file())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let backend = if jobs.jobs.is_empty() {
            Backend::Local
        } else {
            Backend::Slurm
        };
        let head = jobs.head().and_then(|h| views.get(&h.id));
        let state = if jobs.ended.is_some() {
            ClusterState::Ended
        } else {
            match (backend, head) {
                (Backend::Slurm, Some(v)) => convert::cluster_state(&v.state, coord.is_some()),
                (Backend::Slurm, None) => ClusterState::Unknown,
                (Backend::Local, _) => {
                    if coord.is_some() {
                        ClusterState::Running
                    } else {
                        ClusterState::Unknown
                    }
                }
            }
        };
        let workers_asked = if jobs.jobs.is_empty() {
            spec.as_ref().map_or(0, |s| s.workers)
        } else {
            jobs.asked_workers()
        };
        let cores = match &spec {
            Some(s) => u64::from(workers_asked) * u64::from(s.cores_per_worker),
            None => 0,
        };
        rows.push(ClusterRow {
            name,
            backend,
            state,
            job_ids: jobs.ids().iter().map(|j| j.0).collect(),
            workers_connected: None,
            workers_asked,
            cores,
            walltime_end: head
                .filter(|v| v.state == "RUNNING")
                .and_then(|v| v.left_secs)
                .map(|l| now + l),
            last_query_at,
        });
    }
    Ok(rows)
}

/// One look at an attached cluster: its head job (for Pending) and a snapshot of what is
/// known without a coordinator connection.
fn look_at(ctx: &Ctx, name: &str) -> Vec<Msg> {
    let dir = match ClusterDir::open(name) {
        Ok(d) => d,
        Err(e) => {
            return vec![Msg::Detached {
                name: name.into(),
                reason: e.to_string(),
            }];
        }
    };
    let spec: Option<ClusterSpec> = cluster_dir::read_json(&dir.spec_file()).ok();
    let jobs = ClusterJobs::load(&dir).unwrap_or_default();
    let coord = coordinator(&dir);
    let mut out = Vec::new();
    let mut state = if coord.is_some() {
        ClusterState::Running
    } else {
        ClusterState::Unknown
    };
    let mut walltime_end = None;
    let mut core_hours = None;
    if !jobs.jobs.is_empty() {
        match lifecycle::job_views(&ctx.slurm, &jobs.ids()) {
            Ok(views) => {
                if let Some(h) = jobs.head()
                    && let Some(v) = views.get(&h.id)
                {
                    out.push(Msg::JobStatus {
                        name: name.into(),
                        status: convert::job_status(v, Some(h.submitted_unix)),
                    });
                    state = convert::cluster_state(&v.state, coord.is_some());
                    walltime_end = v
                        .left_secs
                        .filter(|_| v.state == "RUNNING")
                        .map(|l| now_unix() + l);
                }
                core_hours = Some(lifecycle::core_hours(&views));
            }
            Err(e) => out.push(Msg::Detached {
                name: name.into(),
                reason: format!("cannot ask SLURM: {e}"),
            }),
        }
    }
    if jobs.ended.is_some() {
        state = ClusterState::Ended;
    }
    // Only a cluster that got past pending has a dashboard to show.
    if !matches!(state, ClusterState::Pending | ClusterState::Unknown) || coord.is_some() {
        out.push(Msg::Snapshot(ClusterSnapshot {
            name: name.into(),
            backend: if jobs.jobs.is_empty() {
                Backend::Local
            } else {
                Backend::Slurm
            },
            state,
            address: coord.as_ref().map(|c| c.socket_addr().to_string()),
            authenticated: false,
            not_connected: Some(not_yet(
                "live worker reports (the cluster client has not landed)",
            )),
            walltime_end,
            job_ids: jobs.ids().iter().map(|j| j.0).collect(),
            workers_asked: if jobs.jobs.is_empty() {
                spec.as_ref().map_or(0, |s| s.workers)
            } else {
                jobs.asked_workers()
            },
            workers: Vec::new(),
            tasks: Default::default(),
            query: None,
            core_hours_used: core_hours,
        }));
    }
    out
}

/// Earlier runtimes of `query` from the cluster's ledger (`ledger.jsonl`: one JSON object per
/// finished query with at least `query`, `cores` and `seconds`). Lines of another shape are
/// skipped: the ledger is history, not a contract worth failing over.
fn ledger_points(name: &str, query: &Query) -> Vec<Point> {
    let Ok(dir) = ClusterDir::open(name) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(dir.ledger_file()) else {
        return Vec::new();
    };
    let Ok(want) = serde_json::to_value(query) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("query") == Some(&want))
        .filter_map(|v| {
            let cores = u32::try_from(v.get("cores")?.as_u64()?).ok()?;
            let seconds = v.get("seconds")?.as_f64()?;
            Some(Point { cores, seconds })
        })
        .collect()
}

/// The last lines of every log of the cluster (head job output/error, worker logs), newest
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
    files.sort_by(|a, b| b.0.cmp(&a.0));
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
