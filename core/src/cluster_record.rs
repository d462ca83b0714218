//! `spec.json`: what a cluster is (name, workers × cores) and which backend runs it, so that
//! `corral status`, `ls` and `down` work from any later process. The local backend records the
//! pids it started, the SLURM backend its agent and request (job ids in `jobs.json`), `batch --here`
//! its enclosing job and pids. [`crate::backend::Backends::for_record`] is where the variant is
//! matched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster_dir::{ClusterDir, ClusterDirError, read_json, write_json_atomic};

/// Which backend runs a cluster, and what it needs to stop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Backend {
    /// Processes on this machine, started detached by `corral up --local` / `corral demo`.
    Local {
        /// The `corral-agent` (or `corral`) executable that runs the agents.
        agent: PathBuf,
        coordinator_pid: u32,
        worker_pids: Vec<u32>,
    },
    /// SLURM jobs (their ids are in `jobs.json`, see [`crate::slurm::lifecycle::ClusterJobs`]).
    Slurm {
        /// The agent command the job scripts run (program and the words before the role).
        agent: Vec<String>,
        /// What was asked for, so scale-up jobs match the head job.
        spec: crate::model::ClusterSpec,
    },
    /// `corral batch --here`: a coordinator on the first node of a job the user submitted,
    /// and one worker per task of that job started with `srun`. corral never cancels the job.
    InAllocation {
        agent: PathBuf,
        /// The enclosing job.
        job: crate::model::JobId,
        /// The node the coordinator (and `corral batch`) run on.
        node: String,
        coordinator_pid: u32,
        /// The `srun` that runs the workers (0 until started).
        srun_pid: u32,
    },
}

impl Backend {
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Local { .. } => "local",
            Backend::Slurm { .. } => "slurm",
            Backend::InAllocation { .. } => "in_allocation",
        }
    }
}

/// How a cluster ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    pub at_unix: u64,
    /// What stopped it, in words (e.g. "corral down: 3 exited, 0 killed").
    pub how: String,
}

/// The content of `spec.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    pub workers: u32,
    pub cores_per_worker: u32,
    pub created_at_unix: u64,
    pub backend: Backend,
    #[serde(default)]
    pub stopped: Option<Stopped>,
    /// Dask mode (its certificates are in the directory's `dask/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask: Option<crate::dask::DaskSpec>,
}

impl ClusterRecord {
    pub fn path(dir: &ClusterDir) -> PathBuf {
        dir.spec_file()
    }

    pub fn load(dir: &ClusterDir) -> Result<ClusterRecord, ClusterDirError> {
        read_json(&dir.spec_file())
    }

    /// Writes `spec.json` atomically.
    pub fn save(&self, dir: &ClusterDir) -> Result<(), ClusterDirError> {
        write_json_atomic(&dir.spec_file(), self)
    }

    /// Every pid this record says belongs to the cluster (none for SLURM: its processes are
    /// SLURM's to start and stop).
    pub fn pids(&self) -> Vec<u32> {
        match &self.backend {
            Backend::Local {
                coordinator_pid,
                worker_pids,
                ..
            } => std::iter::once(*coordinator_pid)
                .chain(worker_pids.iter().copied())
                .collect(),
            Backend::InAllocation {
                coordinator_pid,
                srun_pid,
                ..
            } => [*coordinator_pid, *srun_pid]
                .into_iter()
                .filter(|p| *p != 0)
                .collect(),
            Backend::Slurm { .. } => Vec::new(),
        }
    }

    /// Pids of the record still running for `dir` (checked by command line, see
    /// [`crate::procstat::runs_for`]).
    pub fn live_pids(&self, dir: &Path) -> Vec<u32> {
        self.pids()
            .into_iter()
            .filter(|p| crate::procstat::runs_for(*p, dir))
            .collect()
    }
}
