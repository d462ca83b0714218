//! The supervisor: what acts for a SLURM cluster while nobody watches it — a detached
//! process on the login side (`corral-agent supervise --cluster DIR`), one per cluster that
//! asks for one (`ClusterSpec.supervise`, see [`crate::model::Supervise`]).
//!
//! Why the login side: the coordinator's node may have no SLURM commands (and no route to
//! slurmrestd) on real sites, while the login node always has them; and the user's TUI may be
//! closed for days. The supervisor needs no connection to survive: everything it knows comes
//! from the cluster directory (`spec.json`, `jobs.json`), SLURM, and the coordinator's
//! snapshot when the coordinator answers.
//!
//! Shape: every [`TICK`] it reads the cluster (ending itself once the cluster ended), asks
//! SLURM about the cluster's jobs once, asks the coordinator for a snapshot, and hands that
//! to each [`Policy`] in turn. A policy acts (submits a job, scales, sends mail…) and says
//! why with [`Tick::decide`]: one JSON line in `supervisor.jsonl`, the decisions log that
//! `status` and the TUI can show. Policies keep their own state between ticks (timers,
//! hysteresis); they are made once from the spec by [`policies_for`] and made again when the
//! spec's `supervise` changes.
//!
//! Its pid is in `supervisor.json` (written by whoever starts it, so two starts never make
//! two supervisors); `down` stops it before cancelling anything ([`stop`]).
//!
//! Policies: [`keep_alive`] (jobs replaced before their walltime ends), [`adapt`] (adaptive
//! scaling), [`notify`] (mail notifications).

pub mod adapt;
pub mod keep_alive;
pub mod notify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::backend::{AgentExe, BackendError, Cluster};
use crate::cluster_dir::{self, ClusterDir};
use crate::cluster_record;
use crate::model::{ClusterSpec, JobId, Supervise};
use crate::protocol::Snapshot;
use crate::slurm::Slurm;
use crate::slurm::lifecycle::{self, ClusterJobs, JobView, now_unix};

/// How often the supervisor looks (one squeue and one snapshot per look).
pub const TICK: Duration = Duration::from_secs(5);
/// How long a snapshot may take before the coordinator counts as unreachable this tick.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);
const RECORD_FILE: &str = "supervisor.json";
const DECISIONS_FILE: &str = "supervisor.jsonl";
/// The supervisor's log in `logs/`.
pub const LOG: &str = "supervisor.log";

/// `supervisor.json`: which process supervises the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorRecord {
    pub pid: u32,
    pub host: String,
    pub started_at_unix: u64,
}

/// One decision of a policy, as `supervisor.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub at_unix: u64,
    /// The policy's name (`keep-alive`, …).
    pub policy: String,
    /// What was done, in words (`submitted job 42 to replace job 17`).
    pub what: String,
    /// Why, in words (`job 17 ends in 280 s`).
    pub why: String,
}

/// What a policy sees and may act through on one tick.
pub struct Tick<'a> {
    pub cluster: &'a mut Cluster,
    pub spec: ClusterSpec,
    /// The agent command job scripts run (for submitting jobs).
    pub agent: Vec<String>,
    pub slurm: Arc<dyn Slurm>,
    /// `jobs.json` as read at the start of the tick.
    pub jobs: ClusterJobs,
    /// SLURM's view of every job in `jobs` (one squeue, then scontrol for finished ones).
    pub views: HashMap<JobId, JobView>,
    /// The coordinator's snapshot; `None` when it did not answer this tick.
    pub snapshot: Option<Snapshot>,
    pub now_unix: u64,
    policy: &'static str,
    log: PathBuf,
}

impl Tick<'_> {
    /// Records a decision of the current policy (the decisions log and the supervisor's log).
    pub fn decide(&mut self, what: impl Into<String>, why: impl Into<String>) {
        let d = Decision {
            at_unix: now_unix(),
            policy: self.policy.to_string(),
            what: what.into(),
            why: why.into(),
        };
        info!(policy = %d.policy, what = %d.what, why = %d.why, "decision");
        if let Err(e) = crate::coordinator::ledger::append(&self.log, &d) {
            warn!("cannot append to {}: {e}", self.log.display());
        }
    }

    /// Reads `jobs.json` again (after submitting or cancelling).
    pub fn reload_jobs(&mut self) -> Result<(), BackendError> {
        self.jobs = ClusterJobs::load(&self.cluster.dir)?;
        Ok(())
    }
}

/// One thing the supervisor does for a cluster.
#[async_trait::async_trait]
pub trait Policy: Send {
    /// Its name in the decisions log.
    fn name(&self) -> &'static str;
    /// Looks at the cluster and acts. An error is logged and the next tick tries again.
    async fn tick(&mut self, t: &mut Tick<'_>) -> Result<(), BackendError>;
}

/// The policies a spec asks for.
pub fn policies_for(s: &Supervise) -> Vec<Box<dyn Policy>> {
    let mut out: Vec<Box<dyn Policy>> = Vec::new();
    if s.keep_alive {
        out.push(Box::new(keep_alive::KeepAlive::new(s)));
    }
    if let Some(a) = s.adapt {
        out.push(Box::new(adapt::Adapt::new(a)));
    }
    if s.mail {
        out.push(Box::new(notify::Notify::new()));
    }
    out
}

/// The decisions made for a cluster, oldest first (at most the last `n`).
pub fn decisions(dir: &ClusterDir, n: usize) -> Vec<Decision> {
    let text = std::fs::read_to_string(dir.path().join(DECISIONS_FILE)).unwrap_or_default();
    let all: Vec<Decision> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    all[all.len().saturating_sub(n)..].to_vec()
}

fn record_path(dir: &ClusterDir) -> PathBuf {
    dir.path().join(RECORD_FILE)
}

/// The supervisor recorded for `dir`, if that process still runs for it.
pub fn running(dir: &ClusterDir) -> Option<SupervisorRecord> {
    let r: SupervisorRecord = cluster_dir::read_json(&record_path(dir)).ok()?;
    crate::procstat::runs_for(r.pid, dir.path()).then_some(r)
}

/// Starts the cluster's supervisor unless one runs already; returns whether it started one.
/// Only on the host that started it can a supervisor be seen running (pids are per host).
pub fn ensure_running(cluster: &Cluster, agent: &AgentExe) -> Result<bool, BackendError> {
    if running(&cluster.dir).is_some() {
        return Ok(false);
    }
    let mut args = agent.prefix.clone();
    args.extend([
        "supervise".to_string(),
        "--cluster".to_string(),
        cluster.dir.path().display().to_string(),
    ]);
    let child = crate::backend::procs::spawn(&agent.program, &args, &cluster.dir, LOG, &[])?;
    let pid = child
        .id()
        .ok_or_else(|| BackendError::Failed("the supervisor exited at once".into()))?;
    cluster_dir::write_json_atomic(
        &record_path(&cluster.dir),
        &SupervisorRecord {
            pid,
            host: cluster_dir::hostname(),
            started_at_unix: now_unix(),
        },
    )?;
    info!(pid, cluster = %cluster.record.name, "supervisor started");
    Ok(true)
}

/// Stops the cluster's supervisor (SIGTERM, then SIGKILL after 5 s); returns whether one ran.
pub async fn stop(dir: &ClusterDir) -> bool {
    let Some(r) = running(dir) else {
        return false;
    };
    let pids = [r.pid];
    crate::backend::procs::signal_live(&pids, dir.path(), rustix::process::Signal::TERM);
    let left = crate::backend::procs::wait_gone(&pids, dir.path(), Duration::from_secs(5)).await;
    crate::backend::procs::signal_live(&left, dir.path(), rustix::process::Signal::KILL);
    let _ = std::fs::remove_file(record_path(dir));
    true
}

/// How a supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The cluster ended (`how`, as recorded).
    ClusterEnded(String),
    /// Told to stop (SIGTERM).
    Stopped,
    /// Another process supervises this cluster.
    Superseded(u32),
}

/// Supervises the cluster in `dir` until it ends or `stop` says so.
pub async fn run(
    dir: ClusterDir,
    slurm: Arc<dyn Slurm>,
    every: Duration,
    mut stop: mpsc::Receiver<()>,
) -> Result<Ended, BackendError> {
    let me = std::process::id();
    let path = record_path(&dir);
    match cluster_dir::read_json::<SupervisorRecord>(&path) {
        Ok(r) if r.pid != me && crate::procstat::runs_for(r.pid, dir.path()) => {
            return Ok(Ended::Superseded(r.pid));
        }
        Ok(r) if r.pid == me => {}
        _ => cluster_dir::write_json_atomic(
            &path,
            &SupervisorRecord {
                pid: me,
                host: cluster_dir::hostname(),
                started_at_unix: now_unix(),
            },
        )?,
    }
    let mut cluster = Cluster::load(dir.clone())?;
    let mut made_for: Option<Supervise> = None;
    let mut policies: Vec<Box<dyn Policy>> = Vec::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.recv() => break Ended::Stopped,
        }
        if let Err(e) = cluster.reload() {
            warn!("cannot read the cluster's record: {e}");
            continue;
        }
        if let Some(s) = &cluster.record.stopped {
            break Ended::ClusterEnded(s.how.clone());
        }
        let cluster_record::Backend::Slurm { agent, spec } = cluster.record.backend.clone() else {
            break Ended::ClusterEnded("not a SLURM cluster: nothing to supervise".into());
        };
        if made_for.as_ref() != Some(&spec.supervise) {
            policies = policies_for(&spec.supervise);
            made_for = Some(spec.supervise.clone());
            info!(policies = ?policies.iter().map(|p| p.name()).collect::<Vec<_>>(), "policies");
        }
        let jobs = match ClusterJobs::load(&dir) {
            Ok(j) => j,
            Err(e) => {
                warn!("cannot read jobs.json: {e}");
                continue;
            }
        };
        let views = match lifecycle::job_views(slurm.as_ref(), &jobs.ids()).await {
            Ok(v) => v,
            Err(e) => {
                warn!("cannot ask SLURM about the cluster's jobs: {e}");
                continue;
            }
        };
        if !jobs.jobs.is_empty() && !views.values().any(JobView::is_active) {
            // Every job ended (walltime, scancel): the next observer records how.
            break Ended::ClusterEnded("none of its jobs is queued or running".into());
        }
        let snapshot = snapshot(&dir).await;
        let mut t = Tick {
            cluster: &mut cluster,
            spec,
            agent,
            slurm: Arc::clone(&slurm),
            jobs,
            views,
            snapshot,
            now_unix: now_unix(),
            policy: "",
            log: dir.path().join(DECISIONS_FILE),
        };
        for p in policies.iter_mut() {
            t.policy = p.name();
            if let Err(e) = p.tick(&mut t).await {
                warn!(policy = p.name(), "{e}");
            }
        }
    };
    // Only our own record is removed: a newer supervisor's stays.
    if cluster_dir::read_json::<SupervisorRecord>(&path).is_ok_and(|r| r.pid == me) {
        let _ = std::fs::remove_file(&path);
    }
    Ok(ended)
}

async fn snapshot(dir: &ClusterDir) -> Option<Snapshot> {
    let ask = async {
        let c = crate::client::ClusterClient::connect(dir).await.ok()?;
        c.snapshot().await.ok()
    };
    tokio::time::timeout(SNAPSHOT_TIMEOUT, ask)
        .await
        .ok()
        .flatten()
}

/// `supervisor.jsonl` of `dir` (for tests and tools).
pub fn decisions_file(dir: &Path) -> PathBuf {
    dir.join(DECISIONS_FILE)
}
