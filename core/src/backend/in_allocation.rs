//! `corral batch --here`: a cluster inside a job the user submitted themselves. The
//! coordinator runs on this node (as a child of `corral batch`), the workers are one `srun`
//! step over the job's own tasks. The allocation is the user's: corral stops its processes
//! and never cancels the job. From anywhere else (the login node) the cluster is observed
//! through SLURM: it runs while its job runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::events::{Event, Events};
use super::local::wait_workers;
use super::procs::{self, log_path};
use super::slurm::ended_how;
use super::{
    AgentExe, Backend, BackendError, Cluster, Kind, Observed, Ready, State, StopReport, Target,
    record_end,
};
use crate::cluster_record::{self, ClusterRecord};
use crate::model::{ClusterSpec, JobId};
use crate::slurm::Slurm;
use crate::slurm::lifecycle::{self, now_unix};

/// How long the coordinator may take to listen.
const COORDINATOR_START: Duration = Duration::from_secs(30);
/// How long the workers may take to connect when no timeout is given.
const WORKERS_DEFAULT: Duration = Duration::from_secs(300);

/// Inside the enclosing job `job` (from `SLURM_JOB_ID`; only needed to start).
pub struct InAllocation {
    slurm: Arc<dyn Slurm>,
    srun: PathBuf,
    job: Option<JobId>,
}

impl InAllocation {
    pub fn new(slurm: Arc<dyn Slurm>, srun: PathBuf) -> InAllocation {
        InAllocation {
            slurm,
            srun,
            job: None,
        }
    }

    /// The backend that starts a cluster in job `job`.
    pub fn in_job(mut self, job: JobId) -> InAllocation {
        self.job = Some(job);
        self
    }

    async fn start_processes(
        &self,
        cluster: &mut Cluster,
        agent: &AgentExe,
        spec: &ClusterSpec,
        events: &Events,
    ) -> Result<(), BackendError> {
        let path = cluster.dir.path().to_string_lossy().into_owned();
        let mut words = agent.prefix.clone();
        words.extend(["coordinator".into(), "--cluster".into(), path.clone()]);
        let mut coordinator =
            procs::spawn(&agent.program, &words, &cluster.dir, "coordinator.log", &[])?;
        set_pids(&mut cluster.record, coordinator.id(), None);
        cluster.record.save(&cluster.dir)?;
        let log = log_path(&cluster.dir, "coordinator.log");
        procs::wait_listening(&cluster.dir, &mut coordinator, &log, COORDINATOR_START).await?;
        if let Ok(info) = cluster.dir.read_coordinator() {
            events
                .emit(Event::Listening {
                    address: info.socket_addr().to_string(),
                })
                .await;
        }
        // `-c` explicit: srun in SLURM 22.05 ignores SLURM_CPUS_PER_TASK.
        let mut args = vec![
            format!("--ntasks={}", spec.workers),
            format!("--cpus-per-task={}", spec.cores_per_worker),
            "--kill-on-bad-exit=0".into(),
            "--no-kill".into(),
        ];
        args.extend(agent.words());
        args.extend(["worker".into(), "--cluster".into(), path]);
        let srun = procs::spawn(&self.srun, &args, &cluster.dir, "workers.log", &[])
            .map_err(|e| BackendError::Failed(format!("{e} (srun starts the workers)")))?;
        set_pids(&mut cluster.record, None, srun.id());
        cluster.record.save(&cluster.dir)?;
        events.emit(Event::Started { processes: 2 }).await;
        Ok(())
    }
}

fn set_pids(record: &mut ClusterRecord, coordinator: Option<u32>, srun: Option<u32>) {
    if let cluster_record::Backend::InAllocation {
        coordinator_pid,
        srun_pid,
        ..
    } = &mut record.backend
    {
        if let Some(p) = coordinator {
            *coordinator_pid = p;
        }
        if let Some(p) = srun {
            *srun_pid = p;
        }
    }
}

fn job_of(record: &ClusterRecord) -> Option<JobId> {
    match &record.backend {
        cluster_record::Backend::InAllocation { job, .. } => Some(*job),
        _ => None,
    }
}

fn core_hours(record: &ClusterRecord, to: u64) -> f64 {
    let cores = u64::from(record.workers) * u64::from(record.cores_per_worker);
    crate::slurm::validate::core_hours(cores, to.saturating_sub(record.created_at_unix))
}

#[async_trait::async_trait]
impl Backend for InAllocation {
    fn kind(&self) -> Kind {
        Kind::InAllocation
    }

    async fn start(&self, spec: &ClusterSpec, events: &Events) -> Result<Cluster, BackendError> {
        let Some(job) = self.job else {
            return Err(BackendError::Failed(
                "--here runs inside a SLURM allocation, and SLURM_JOB_ID is not set".into(),
            ));
        };
        let agent = AgentExe::find()?;
        let mut cluster = Cluster::create(ClusterRecord {
            name: spec.name.clone(),
            workers: spec.workers,
            cores_per_worker: spec.cores_per_worker,
            created_at_unix: now_unix(),
            backend: cluster_record::Backend::InAllocation {
                agent: agent.program.clone(),
                job,
                node: crate::cluster_dir::node_name(),
                coordinator_pid: 0,
                srun_pid: 0,
            },
            stopped: None,
            dask: spec.dask.clone(),
        })?;
        if let Err(e) = self
            .start_processes(&mut cluster, &agent, spec, events)
            .await
        {
            procs::abandon_start(&mut cluster, &e, "corral batch").await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn follow(
        &self,
        cluster: &Cluster,
        want: u32,
        timeout: Option<Duration>,
        events: &Events,
    ) -> Result<Ready, BackendError> {
        let watched: Vec<(u32, String)> = match &cluster.record.backend {
            cluster_record::Backend::InAllocation {
                coordinator_pid,
                srun_pid,
                ..
            } => vec![
                (*coordinator_pid, "coordinator.log".into()),
                (*srun_pid, "workers.log".into()),
            ],
            _ => Vec::new(),
        };
        let limit = timeout.unwrap_or(WORKERS_DEFAULT);
        wait_workers(cluster, want, limit, &watched, events).await
    }

    async fn scale(
        &self,
        cluster: &mut Cluster,
        _target: Target<'_>,
        _events: &Events,
    ) -> Result<String, BackendError> {
        Err(BackendError::Failed(format!(
            "cluster {} runs inside job {} and has exactly that job's tasks; it cannot be scaled \
             (submit the job with more tasks, or use `corral batch` without --here)",
            cluster.record.name,
            job_of(&cluster.record).map_or_else(|| "?".into(), |j| j.to_string())
        )))
    }

    /// Stops the coordinator and the srun step; the enclosing job is the user's and goes on.
    async fn stop(
        &self,
        cluster: &mut Cluster,
        who: &str,
        events: &Events,
    ) -> Result<StopReport, BackendError> {
        let pids = cluster.record.live_pids(cluster.dir.path());
        if super::link::ask_shutdown(&cluster.dir).await {
            events
                .emit(Event::Step {
                    words: "the coordinator is stopping its workers".into(),
                })
                .await;
        }
        let report = procs::stop_all(&pids, cluster.dir.path(), Duration::from_secs(5)).await;
        let how = format!(
            "{who}: {} process(es) exited when asked, {} after SIGTERM, {} killed; job {} goes on",
            report.exited,
            report.terminated,
            report.killed,
            job_of(&cluster.record).map_or_else(|| "?".into(), |j| j.to_string())
        );
        let core_hours = core_hours(&cluster.record, now_unix());
        record_end(cluster, &how, who, &[], core_hours, false)?;
        events.emit(Event::Ended { how: how.clone() }).await;
        Ok(StopReport {
            how,
            core_hours,
            jobs: Vec::new(),
            processes: Some(report),
        })
    }

    async fn observe(&self, cluster: &mut Cluster) -> Result<Observed, BackendError> {
        let job = job_of(&cluster.record);
        let mut observed = Observed {
            state: State::Unknown,
            detail: String::new(),
            asked_workers: cluster.record.workers,
            left_secs: None,
            jobs: Vec::new(),
            core_hours: core_hours(&cluster.record, now_unix()),
        };
        if let Some(s) = &cluster.record.stopped {
            observed.state = State::Ended;
            observed.detail = s.how.clone();
            observed.core_hours = core_hours(&cluster.record, s.at_unix);
            return Ok(observed);
        }
        let views = match job {
            Some(j) => lifecycle::job_views(self.slurm.as_ref(), &[j]).await.ok(),
            None => None,
        };
        match views.as_ref().and_then(|v| job.and_then(|j| v.get(&j))) {
            Some(v) if v.is_active() => {
                observed.state = State::Running;
                observed.detail = format!("inside job {} on {}", v.id, v.node_list);
                observed.left_secs = v.left_secs;
                observed.jobs = vec![v.clone()];
            }
            Some(v) => {
                // The enclosing job ended (walltime, scancel) without `corral batch` saying so.
                let how = ended_how(v);
                let hours = core_hours(&cluster.record, now_unix());
                record_end(cluster, &how, "slurm", &[], hours, false)?;
                observed.state = State::Ended;
                observed.detail = how;
                observed.jobs = vec![v.clone()];
            }
            // SLURM is not reachable from here: the processes say what they can.
            None if !cluster.record.live_pids(cluster.dir.path()).is_empty() => {
                observed.state = State::Running;
                observed.detail = "on this node (SLURM not reachable)".into();
            }
            None => {
                observed.detail = "SLURM is not reachable to ask about its job".into();
            }
        }
        Ok(observed)
    }
}
