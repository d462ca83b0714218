//! One way to run a cluster: the [`Backend`] trait, called alike by the CLI and the TUI, with
//! three implementations:
//!
//! - [`local::Local`]: agent processes on this machine (`corral up --local`, `corral demo`).
//! - [`slurm::SlurmBackend`]: SLURM jobs, over the [`crate::slurm::Slurm`] trait (so a second
//!   SLURM client — slurmrestd — plugs in beneath it without touching the callers).
//! - [`in_allocation::InAllocation`]: `corral batch --here`, inside a job the user submitted:
//!   a coordinator on this node and `srun` workers; it never cancels the enclosing job.
//!
//! Progress is data ([`events`]): backends send typed events; only the CLI and the TUI print.
//! A cluster's record (`spec.json`) names its backend; [`Backends::for_record`] is the one place
//! that matches on it.
//!
//! Modules: [`events`] (progress), [`agent`] (which program runs the agent roles),
//! [`local_fit`] (whether a local cluster fits this machine's cores), `procs`
//! (detached agent processes), `link` (talking to the coordinator on a backend's behalf).

pub mod agent;
pub mod events;
pub mod in_allocation;
mod link;
pub mod local;
pub mod local_fit;
pub(crate) mod procs;
pub mod slurm;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use agent::AgentExe;
pub use events::{Event, Events};
pub use link::ask_shutdown;
pub use procs::{Stopped as ProcessesStopped, log_tail};

use crate::cluster_dir::{ClusterDir, ClusterDirError};
use crate::cluster_record::{self, ClusterRecord};
use crate::model::{ClusterSpec, JobId};
use crate::slurm::lifecycle::{JobView, LifecycleError};
use crate::slurm::{Slurm, SlurmError};

/// What went wrong while running a cluster. Each variant's text is a sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Dir(#[from] ClusterDirError),
    /// Anything else, said in words (what failed, and where to look).
    #[error("{0}")]
    Failed(String),
}

/// Which kind of backend runs a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Local,
    Slurm,
    InAllocation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Slurm => "slurm",
            Kind::InAllocation => "in_allocation",
        }
    }
}

/// A cluster as its directory records it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub dir: ClusterDir,
    pub record: ClusterRecord,
}

impl Cluster {
    /// The cluster called `name` (its directory and `spec.json`).
    pub fn open(name: &str) -> Result<Cluster, BackendError> {
        Cluster::load(ClusterDir::open(name)?)
    }

    /// Creates the directory of a new cluster (0700, its secret 0600) and its `spec.json`:
    /// how every backend's clusters come to exist.
    /// An ended cluster of the same name is moved aside first (its record stays for
    /// `history`); one that has not ended keeps its name.
    pub(crate) fn create(record: ClusterRecord) -> Result<Cluster, BackendError> {
        crate::ended::free_name(&crate::paths::clusters_dir(), &record.name)?;
        let dir = ClusterDir::create(&record.name)?;
        dir.create_secret()?;
        if record.dask.is_some() {
            // Before anything can start: the Dask processes refuse to run without them.
            crate::dask::certs::create(&crate::dask::DaskFiles::of(&dir))
                .map_err(|e| BackendError::Failed(e.to_string()))?;
        }
        record.save(&dir)?;
        Ok(Cluster { dir, record })
    }

    pub fn load(dir: ClusterDir) -> Result<Cluster, BackendError> {
        let record = ClusterRecord::load(&dir)?;
        Ok(Cluster { dir, record })
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Reads `spec.json` again (another process may have recorded a change).
    pub fn reload(&mut self) -> Result<(), BackendError> {
        self.record = ClusterRecord::load(&self.dir)?;
        Ok(())
    }
}

/// How following a cluster until it is ready ended (a job that ended or a coordinator that
/// failed is an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// The workers asked for are connected.
    Up {
        workers: u32,
        cores: u32,
        after: Duration,
    },
    /// The timeout passed first; the job stays queued. `state` is SLURM's (lower case).
    NotYet { state: String },
    /// The job can never start as submitted (`reason`, SLURM's code). It is left queued:
    /// the caller decides whether to stop it.
    NeverStarts { job: JobId, reason: String },
}

/// Where a cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Submitted, waiting in SLURM's queue.
    Pending,
    Running,
    /// Stopped, cancelled, or its job ended.
    Ended,
    /// Nothing can be said (SLURM unreachable, records missing).
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Ended => "ended",
            State::Unknown => "unknown",
        }
    }
}

/// One look at a cluster, as `status`, `ls` and the TUI show it.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    pub state: State,
    /// In plain words: the pending reason, where it runs, or how it ended.
    pub detail: String,
    /// Workers asked for now (scale changes included).
    pub asked_workers: u32,
    /// Walltime left, when SLURM knows it.
    pub left_secs: Option<u64>,
    /// The cluster's SLURM jobs (none for a local cluster).
    pub jobs: Vec<JobView>,
    /// Core-hours used so far (or in all, once ended).
    pub core_hours: f64,
}

/// What stopping a cluster did.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    /// How it ended, in words (also recorded in `spec.json` and the ledger).
    pub how: String,
    pub core_hours: f64,
    /// SLURM jobs cancelled (none for local clusters).
    pub jobs: Vec<JobId>,
    /// What happened to processes this machine started (none for SLURM clusters).
    pub processes: Option<ProcessesStopped>,
}

/// The target worker count of a scale, from the count now (absolute for `corral scale`,
/// now ± n for the TUI's `+`/`-`).
pub type Target<'a> = &'a (dyn Fn(u32) -> u32 + Send + Sync);

/// A way to run clusters.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    fn kind(&self) -> Kind;

    /// Creates the cluster (directory 0700, secret 0600, `spec.json`) and starts it: agent
    /// processes, or a submitted job. Returns once it is started, not once it is ready.
    async fn start(&self, spec: &ClusterSpec, events: &Events) -> Result<Cluster, BackendError>;

    /// Follows a started cluster until `want` workers are connected, it fails (an error that
    /// says why; it is then recorded as ended), or `timeout` passes.
    async fn follow(
        &self,
        cluster: &Cluster,
        want: u32,
        timeout: Option<Duration>,
        events: &Events,
    ) -> Result<Ready, BackendError>;

    /// Scales a running cluster to `target(now)` workers; returns what was done, in words.
    async fn scale(
        &self,
        cluster: &mut Cluster,
        target: Target<'_>,
        events: &Events,
    ) -> Result<String, BackendError>;

    /// Stops everything of the cluster (drained first) and records how it ended; `who`
    /// names the stopper in that record (e.g. "corral down").
    async fn stop(
        &self,
        cluster: &mut Cluster,
        who: &str,
        events: &Events,
    ) -> Result<StopReport, BackendError>;

    /// Where the cluster is now. A cluster found ended (by scancel, its walltime, a crash) is
    /// recorded as ended by the first look that sees it.
    async fn observe(&self, cluster: &mut Cluster) -> Result<Observed, BackendError>;
}

/// The backends of this process: the site's SLURM (made when first needed) and the local
/// ones. Cheap to clone.
#[derive(Clone)]
pub struct Backends {
    slurm: Arc<dyn Slurm>,
    local: Arc<local::Local>,
    /// One `squeue` answer shared by every SLURM cluster looked at within a second.
    squeue: slurm::SharedSqueue,
}

impl Backends {
    /// `slurm`: the SLURM client every SLURM cluster is driven through.
    pub fn new(slurm: Arc<dyn Slurm>) -> Backends {
        Backends {
            slurm,
            local: Arc::new(local::Local::default()),
            squeue: slurm::SharedSqueue::default(),
        }
    }

    /// The same, with extra environment for local agents (tests' knobs).
    pub fn with_local_env(mut self, env: Vec<(String, String)>) -> Backends {
        self.local = Arc::new(local::Local::with_env(env));
        self
    }

    pub fn slurm_client(&self) -> &Arc<dyn Slurm> {
        &self.slurm
    }

    pub fn local(&self) -> Arc<dyn Backend> {
        self.local.clone()
    }

    /// The SLURM backend; `agent` is the agent command its job scripts run.
    pub fn slurm(&self, agent: AgentExe) -> Arc<dyn Backend> {
        Arc::new(slurm::SlurmBackend::sharing(
            Arc::clone(&self.slurm),
            agent,
            Arc::clone(&self.squeue),
        ))
    }

    /// `batch --here` inside job `job` (SLURM_JOB_ID) with `srun` starting the workers.
    pub fn in_allocation(&self, srun: std::path::PathBuf, job: JobId) -> Arc<dyn Backend> {
        Arc::new(in_allocation::InAllocation::new(Arc::clone(&self.slurm), srun).in_job(job))
    }

    /// The backend that runs a recorded cluster: the one place the record's variant is
    /// matched.
    pub fn for_record(&self, record: &ClusterRecord) -> Arc<dyn Backend> {
        match &record.backend {
            cluster_record::Backend::Local { .. } => self.local(),
            cluster_record::Backend::Slurm { agent, .. } => {
                let exe = match agent.split_first() {
                    Some((program, prefix)) => AgentExe {
                        program: program.into(),
                        prefix: prefix.to_vec(),
                    },
                    None => AgentExe {
                        program: "corral-agent".into(),
                        prefix: Vec::new(),
                    },
                };
                self.slurm(exe)
            }
            cluster_record::Backend::InAllocation { job, .. } => {
                self.in_allocation("srun".into(), *job)
            }
        }
    }
}

/// Records how a cluster ended, once: `stopped` in `spec.json` and a `down` line in the
/// ledger (what `corral history` shows). A later stop keeps this first account unless
/// `replace` (a stopper that knows better why, e.g. `corral batch` saying CMD exited).
pub(crate) fn record_end(
    cluster: &mut Cluster,
    how: &str,
    by: &str,
    jobs: &[JobId],
    core_hours: f64,
    replace: bool,
) -> Result<(), BackendError> {
    if cluster.record.stopped.is_some() && !replace {
        return Ok(());
    }
    let at_unix = cluster
        .record
        .stopped
        .as_ref()
        .map_or_else(crate::slurm::lifecycle::now_unix, |s| s.at_unix);
    let first = cluster.record.stopped.is_none();
    cluster.record.stopped = Some(cluster_record::Stopped {
        at_unix,
        how: how.to_string(),
    });
    cluster.record.save(&cluster.dir)?;
    // A coordinator that was killed could not remove it; a stale one misleads everyone.
    let _ = cluster.dir.remove_coordinator();
    if first {
        crate::coordinator::ledger::append(
            &cluster.dir.ledger_file(),
            &serde_json::json!({
                "event": "down",
                "cluster": cluster.record.name,
                "backend": cluster.record.backend.kind(),
                "by": by,
                "how": how,
                "jobs": jobs,
                "core_hours": core_hours,
                "at": crate::coordinator::ledger::rfc3339(crate::slurm::lifecycle::now_unix() * 1000),
            }),
        )
        .map_err(|e| {
            BackendError::Failed(format!(
                "cannot append to {}: {e}",
                cluster.dir.ledger_file().display()
            ))
        })?;
    }
    Ok(())
}
