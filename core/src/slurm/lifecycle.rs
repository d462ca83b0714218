//! A cluster's life on SLURM, as far as SLURM is concerned: check a request against live
//! limits, submit its jobs, tell where they are (in plain words), cancel them and wait until
//! SLURM shows none. Which jobs belong to a cluster is recorded in its directory (`jobs.json`),
//! so any later `corral` process — after the terminal that started it was closed — finds them.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::parse::{Node, Partition, StartEstimate};
use super::reason;
use super::template::{self, JobRole, TemplateError};
use super::validate::{self, Capacity, Verdict};
use super::{Slurm, SlurmError, SubmitOptions};
use crate::cluster_dir::{self, ClusterDir, ClusterDirError};
use crate::model::{ClusterSpec, JobId};

const JOBS_FILE: &str = "jobs.json";
/// How often SLURM is asked whether cancelled jobs are gone.
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// What went wrong while driving a cluster's jobs.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    #[error(transparent)]
    Dir(#[from] ClusterDirError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the request does not fit: {0}")]
    Refused(String),
    #[error("SLURM still lists jobs {ids:?} of this cluster after {waited:?}; check `squeue --me`")]
    StillListed { ids: Vec<JobId>, waited: Duration },
}

/// One job of a cluster, as recorded when it was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub role: JobRole,
    pub workers: u32,
    /// Workers of this job retired by a scale-down (their CPUs stay allocated until the job
    /// ends: SLURM cannot shrink a running job's tasks).
    #[serde(default)]
    pub retired: u32,
    pub cores_per_worker: u32,
    pub submitted_unix: u64,
    /// The job this one was submitted to replace before its walltime (`--keep-alive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<JobId>,
    /// The job submitted to replace this one (set once, so it is replaced once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<JobId>,
}

/// `jobs.json`: every SLURM job of a cluster, newest last.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClusterJobs {
    pub jobs: Vec<JobRecord>,
}

impl ClusterJobs {
    pub fn load(dir: &ClusterDir) -> Result<ClusterJobs, ClusterDirError> {
        let path = dir.path().join(JOBS_FILE);
        if !path.exists() {
            return Ok(ClusterJobs::default());
        }
        cluster_dir::read_json(&path)
    }

    pub fn save(&self, dir: &ClusterDir) -> Result<(), ClusterDirError> {
        cluster_dir::write_json_atomic(&dir.path().join(JOBS_FILE), self)
    }

    pub fn ids(&self) -> Vec<JobId> {
        self.jobs.iter().map(|j| j.id).collect()
    }

    pub fn head(&self) -> Option<&JobRecord> {
        self.jobs.iter().find(|j| j.role == JobRole::Head)
    }

    /// The head job that runs the cluster now, given SLURM's view of the jobs: with
    /// `--keep-alive` a cluster has a head job and, near its end, its replacement. The newest
    /// running one; else the newest still queued; else the newest.
    pub fn current_head(&self, views: &HashMap<JobId, JobView>) -> Option<&JobRecord> {
        let heads = || self.jobs.iter().rev().filter(|j| j.role == JobRole::Head);
        let state = |j: &&JobRecord| views.get(&j.id).map(|v| v.state.as_str());
        heads()
            .find(|j| state(j) == Some("RUNNING"))
            .or_else(|| heads().find(|j| views.get(&j.id).is_some_and(JobView::is_active)))
            .or_else(|| heads().next())
    }

    /// Keeps only the jobs SLURM still has queued or running: a job cancelled by a
    /// scale-down (or ended from outside) holds no workers any more.
    pub fn retain_active(&mut self, views: &HashMap<JobId, JobView>) {
        self.jobs
            .retain(|j| views.get(&j.id).is_some_and(|v| v.is_active()));
    }

    /// Workers the cluster's jobs hold now (started minus retired); a job that has a
    /// replacement counts through it. Call it on jobs kept by [`ClusterJobs::retain_active`]
    /// for the cluster's target: `scale`, `ls` and the TUI all show that one number.
    pub fn asked_workers(&self) -> u32 {
        self.jobs
            .iter()
            .filter(|j| j.replaced_by.is_none())
            .map(|j| j.workers - j.retired.min(j.workers))
            .sum()
    }
}

/// The result of checking a request against the live cluster.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Verdict,
    /// When SLURM thinks the job would start (only asked for a clean verdict).
    pub estimate: Option<StartEstimate>,
    pub partitions: Vec<Partition>,
    pub nodes: Vec<Node>,
}

/// Validates `spec` against live limits and, when clean, asks `sbatch --test-only` when it
/// would start. Nothing is submitted.
pub async fn check(
    slurm: &dyn Slurm,
    spec: &ClusterSpec,
    dir_for_script: &Path,
    agent: &[String],
) -> Result<Checked, LifecycleError> {
    let partitions = slurm.partitions().await?;
    let nodes = slurm.nodes().await?;
    let verdict = validate::validate(spec, &partitions, &nodes);
    let estimate = if verdict.is_clean() {
        let script = template::render(spec, JobRole::Head, spec.workers, dir_for_script, agent)?;
        // An estimate is a nicety: a refusal here would have shown in the verdict, and a
        // flaky --test-only must not block a valid submit.
        slurm
            .estimate(&script, &SubmitOptions::default())
            .await
            .ok()
    } else {
        None
    };
    Ok(Checked {
        verdict,
        estimate,
        partitions,
        nodes,
    })
}

/// Submits a job of `workers` workers for the cluster in `dir` and records it in `jobs.json`.
pub async fn submit(
    slurm: &dyn Slurm,
    spec: &ClusterSpec,
    role: JobRole,
    workers: u32,
    dir: &ClusterDir,
    agent: &[String],
) -> Result<JobRecord, LifecycleError> {
    let script = template::render(spec, role, workers, dir.path(), agent)?;
    std::fs::create_dir_all(dir.logs_dir()).map_err(|source| ClusterDirError::Io {
        path: dir.logs_dir(),
        source,
    })?;
    let opts = SubmitOptions {
        args: Vec::new(),
        workdir: Some(dir.path().to_path_buf()),
    };
    let id = slurm.submit(&script, &opts).await?;
    let record = JobRecord {
        id,
        role,
        workers,
        retired: 0,
        cores_per_worker: spec.cores_per_worker,
        submitted_unix: now_unix(),
        replaces: None,
        replaced_by: None,
    };
    let mut jobs = ClusterJobs::load(dir)?;
    jobs.jobs.push(record.clone());
    jobs.save(dir)?;
    Ok(record)
}

/// Where a job is, in the terms the user cares about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: JobId,
    /// SLURM's state (`PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, `TIMEOUT`, …), or
    /// `GONE` once SLURM has forgotten the job.
    pub state: String,
    pub reason: String,
    pub elapsed_secs: u64,
    pub left_secs: Option<u64>,
    pub cpus: u64,
    pub node_list: String,
}

impl JobView {
    pub fn is_active(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "RESIZING"
        )
    }
}

/// The state of every job in `ids`: one `squeue --me` for all of them, then `scontrol show
/// job` only for those squeue no longer lists (finished within MinJobAge, or forgotten).
pub async fn job_views(
    slurm: &dyn Slurm,
    ids: &[JobId],
) -> Result<HashMap<JobId, JobView>, SlurmError> {
    let queued = slurm.my_jobs().await?;
    views_from(slurm, queued, ids).await
}

/// [`job_views`] from a `squeue --me` answer already had (observers share one).
pub async fn views_from(
    slurm: &dyn Slurm,
    queued: Vec<super::QueuedJob>,
    ids: &[JobId],
) -> Result<HashMap<JobId, JobView>, SlurmError> {
    let mut out = HashMap::new();
    for q in queued.into_iter().filter(|q| ids.contains(&q.id)) {
        out.insert(
            q.id,
            JobView {
                id: q.id,
                state: q.state,
                reason: q.reason,
                elapsed_secs: q.elapsed_secs,
                left_secs: q.left_secs,
                cpus: q.cpus,
                node_list: q.node_list,
            },
        );
    }
    let missing: Vec<JobId> = ids
        .iter()
        .copied()
        .filter(|id| !out.contains_key(id))
        .collect();
    for id in missing {
        let view = match slurm.job(id).await? {
            Some(d) => JobView {
                id,
                state: d.state,
                reason: d.reason,
                elapsed_secs: d.run_seconds,
                left_secs: None,
                cpus: d.num_cpus,
                node_list: d.node_list,
            },
            None => JobView {
                id,
                state: "GONE".into(),
                reason: String::new(),
                elapsed_secs: 0,
                left_secs: None,
                cpus: 0,
                node_list: String::new(),
            },
        };
        out.insert(id, view);
    }
    Ok(out)
}

/// `pending, reason: Resources — waiting for CPUs …; 8 workers would fit now`.
pub fn pending_message(
    reason_code: &str,
    spec: &ClusterSpec,
    partition: Option<&Partition>,
    nodes: &[Node],
) -> String {
    let explained = reason::explain(reason_code);
    let mut msg = format!("pending, reason: {}", explained.sentence());
    if reason_code == "Resources"
        && let Some(p) = partition
    {
        let free = Capacity::free_now(p, nodes).max_workers(u64::from(spec.cores_per_worker));
        if free == 0 {
            msg = format!(
                "pending, reason: Resources — all CPUs of partition {} are busy; it starts when other jobs end",
                p.name
            );
        } else if free < u64::from(spec.workers) {
            msg = format!(
                "pending, reason: Resources — partition {} is busy; {} would fit now (corral up --workers {free})",
                p.name,
                crate::text::count(free, "worker")
            );
        }
    }
    if explained.never_starts {
        msg.push_str(" — this job can never start as submitted");
    }
    msg
}

/// Cancels every job in `ids` and waits until SLURM lists none of them as active.
pub async fn cancel_and_wait(
    slurm: &dyn Slurm,
    ids: &[JobId],
    timeout: Duration,
) -> Result<HashMap<JobId, JobView>, LifecycleError> {
    slurm.cancel(ids, None).await?;
    let started = Instant::now();
    let mut every = tokio::time::interval(CANCEL_POLL);
    loop {
        every.tick().await;
        let views = job_views(slurm, ids).await?;
        let active: Vec<JobId> = views
            .values()
            .filter(|v| v.is_active())
            .map(|v| v.id)
            .collect();
        if active.is_empty() {
            return Ok(views);
        }
        if started.elapsed() > timeout {
            return Err(LifecycleError::StillListed {
                ids: active,
                waited: timeout,
            });
        }
    }
}

/// Core-hours a cluster's jobs used, from their elapsed times and CPU counts.
pub fn core_hours(views: &HashMap<JobId, JobView>) -> f64 {
    views
        .values()
        .map(|v| validate::core_hours(v.cpus, v.elapsed_secs))
        .sum()
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Walltime;

    #[test]
    fn pending_reasons_say_what_would_fit() {
        let p = Partition::from_line("PartitionName=debug Default=YES MaxNodes=UNLIMITED MaxTime=UNLIMITED MaxCPUsPerNode=UNLIMITED Nodes=n[1-2] State=UP TotalCPUs=32 TotalNodes=2").expect("partition");
        let node = |name: &str, alloc| Node {
            name: name.into(),
            cpus: 16,
            alloc_cpus: alloc,
            real_memory_mb: 4000,
            alloc_memory_mb: 0,
            state: "MIXED".into(),
            partitions: vec!["debug".into()],
        };
        let spec = ClusterSpec {
            name: "x".into(),
            workers: 12,
            cores_per_worker: 2,
            mem_per_worker_mb: None,
            walltime: Walltime::from_days(1),
            partition: None,
            account: None,
            supervise: Default::default(),
            dask: None,
        };
        let m = pending_message(
            "Resources",
            &spec,
            Some(&p),
            &[node("n1", 16), node("n2", 0)],
        );
        assert!(m.contains("8 workers would fit now"), "{m}");
        let m = pending_message(
            "Resources",
            &spec,
            Some(&p),
            &[node("n1", 16), node("n2", 16)],
        );
        assert!(m.contains("all CPUs of partition debug are busy"), "{m}");
        let m = pending_message("PartitionConfig", &spec, Some(&p), &[]);
        assert!(m.contains("never start"), "{m}");
        let m = pending_message("WeirdNewCode", &spec, Some(&p), &[]);
        assert_eq!(m, "pending, reason: WeirdNewCode");
    }
}
