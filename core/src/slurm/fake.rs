//! An in-memory SLURM for unit tests of the backends and of the TUI's effects (feature
//! `testing`): jobs are numbered from 100, start in the state the test chooses, and every
//! call is recorded. End-to-end tests never use it; they run against the real test bed.

use std::sync::Mutex;

use super::parse::{JobDetail, Node, Partition, QueuedJob, StartEstimate};
use super::{Slurm, SlurmError, SubmitOptions};
use crate::model::JobId;

/// A job as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeJob {
    pub id: JobId,
    pub state: String,
    pub reason: String,
    pub cpus: u64,
    pub script: String,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: Vec<FakeJob>,
    cancelled: Vec<JobId>,
    /// Calls of `my_jobs` that fail as an unreachable controller before answering.
    unreachable_for: u32,
    squeue_calls: u32,
}

/// A scriptable SLURM.
#[derive(Debug)]
pub struct FakeSlurm {
    /// State and reason of newly submitted jobs (e.g. `PENDING`/`Priority`, `RUNNING`/`None`).
    start_as: (String, String),
    inner: Mutex<Inner>,
}

impl FakeSlurm {
    pub fn new(state: &str, reason: &str) -> FakeSlurm {
        FakeSlurm {
            start_as: (state.into(), reason.into()),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Every job submitted so far.
    pub fn jobs(&self) -> Vec<FakeJob> {
        self.with(|i| i.jobs.clone())
    }

    /// Every id `scancel` was given, in order.
    pub fn cancelled(&self) -> Vec<JobId> {
        self.with(|i| i.cancelled.clone())
    }

    pub fn squeue_calls(&self) -> u32 {
        self.with(|i| i.squeue_calls)
    }

    /// Sets a job's state (e.g. the walltime ends: `TIMEOUT`).
    pub fn set_state(&self, id: JobId, state: &str, reason: &str) {
        self.with(|i| {
            if let Some(j) = i.jobs.iter_mut().find(|j| j.id == id) {
                j.state = state.into();
                j.reason = reason.into();
            }
        });
    }

    /// The next `n` squeue calls fail as if the controller were restarting.
    pub fn unreachable_for(&self, n: u32) {
        self.with(|i| i.unreachable_for = n);
    }

    fn active(state: &str) -> bool {
        matches!(state, "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING")
    }
}

fn partition() -> Partition {
    Partition {
        name: "debug".into(),
        is_default: true,
        state: "UP".into(),
        max_time: None,
        max_nodes: None,
        max_cpus_per_node: None,
        def_mem_per_cpu_mb: None,
        def_mem_per_node_mb: None,
        max_mem_per_node_mb: None,
        nodes: "n[1-2]".into(),
        total_cpus: 32,
        total_nodes: 2,
    }
}

#[async_trait::async_trait]
impl Slurm for FakeSlurm {
    async fn partitions(&self) -> Result<Vec<Partition>, SlurmError> {
        Ok(vec![partition()])
    }

    async fn nodes(&self) -> Result<Vec<Node>, SlurmError> {
        Ok(["n1", "n2"]
            .iter()
            .map(|n| Node {
                name: (*n).into(),
                cpus: 16,
                alloc_cpus: 0,
                real_memory_mb: 4000,
                alloc_memory_mb: 0,
                state: "IDLE".into(),
                partitions: vec!["debug".into()],
            })
            .collect())
    }

    async fn submit(&self, script: &str, _: &SubmitOptions) -> Result<JobId, SlurmError> {
        let (state, reason) = self.start_as.clone();
        Ok(self.with(|i| {
            let id = JobId(100 + i.jobs.len() as u64);
            let tasks = script
                .lines()
                .find_map(|l| l.strip_prefix("#SBATCH --ntasks="))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(1);
            i.jobs.push(FakeJob {
                id,
                state,
                reason,
                cpus: tasks,
                script: script.into(),
            });
            id
        }))
    }

    async fn estimate(&self, _: &str, _: &SubmitOptions) -> Result<StartEstimate, SlurmError> {
        Err(SlurmError::Parse {
            command: "sbatch --test-only".into(),
            output: String::new(),
        })
    }

    async fn my_jobs(&self) -> Result<Vec<QueuedJob>, SlurmError> {
        self.with(|i| {
            i.squeue_calls += 1;
            if i.unreachable_for > 0 {
                i.unreachable_for -= 1;
                return Err(SlurmError::ControllerDown {
                    command: "squeue".into(),
                    stderr: "Unable to contact slurm controller".into(),
                });
            }
            Ok(i.jobs
                .iter()
                .filter(|j| FakeSlurm::active(&j.state))
                .filter_map(|j| {
                    QueuedJob::from_line(&format!(
                        "{}|{}|{}|0:00|23:59:00|1-00:00:00|1|{}|debug|{}|corral-x",
                        j.id,
                        j.state,
                        j.reason,
                        j.cpus,
                        if j.state == "RUNNING" { "n1" } else { "" }
                    ))
                })
                .collect())
        })
    }

    async fn job(&self, id: JobId) -> Result<Option<JobDetail>, SlurmError> {
        Ok(self.with(|i| {
            i.jobs.iter().find(|j| j.id == id).and_then(|j| {
                JobDetail::from_line(&format!(
                    "JobId={} JobName=corral-x JobState={} Reason={} NumCPUs={} RunTime=00:10:00",
                    j.id, j.state, j.reason, j.cpus
                ))
            })
        }))
    }

    async fn cancel(&self, ids: &[JobId], _: Option<&str>) -> Result<(), SlurmError> {
        self.with(|i| {
            for id in ids {
                i.cancelled.push(*id);
                if let Some(j) = i.jobs.iter_mut().find(|j| j.id == *id)
                    && FakeSlurm::active(&j.state)
                {
                    j.state = "CANCELLED".into();
                }
            }
        });
        Ok(())
    }
}
