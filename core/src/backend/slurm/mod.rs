//! The SLURM backend: a cluster is a head job (coordinator + workers) and any number of
//! worker jobs, recorded in `jobs.json` so every later `corral` finds them. SLURM is reached
//! only through the [`Slurm`] trait.
//!
//! - `follow`: pending (reason in words) → running → workers k/N, or why it never will be.
//! - `scale`: a worker job more, or the newest ones drained and cancelled, head-job workers
//!   retired for the rest.
//! - here: start (validate is the caller's, see [`crate::slurm::lifecycle::check`]), stop,
//!   observe, and the retry of transient SLURM failures.

mod follow;
mod scale;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use scale::ScalePlan;

use super::events::{Event, Events};
use super::{
    AgentExe, Backend, BackendError, Cluster, Kind, Observed, Ready, State, StopReport, Target,
    record_end,
};
use crate::cluster_record::{self, ClusterRecord};
use crate::model::{ClusterSpec, JobId};
use crate::slurm::lifecycle::{self, ClusterJobs, JobView, now_unix};
use crate::slurm::template::JobRole;
use crate::slurm::{QueuedJob, Slurm, SlurmError, reason};

/// How long one `squeue --me` answer serves observers (Home and `ls` look at every cluster
/// at once: one squeue for all of them).
const SQUEUE_SHARED_FOR: Duration = Duration::from_secs(1);
/// How long transient SLURM failures are retried before they are reported.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// The last `squeue --me` answer, shared by observers for [`SQUEUE_SHARED_FOR`].
pub type SharedSqueue = Arc<Mutex<Option<(Instant, Vec<QueuedJob>)>>>;

/// SLURM jobs.
pub struct SlurmBackend {
    slurm: Arc<dyn Slurm>,
    agent: AgentExe,
    squeue: SharedSqueue,
}

impl SlurmBackend {
    pub fn new(slurm: Arc<dyn Slurm>, agent: AgentExe) -> SlurmBackend {
        SlurmBackend::sharing(slurm, agent, SharedSqueue::default())
    }

    /// A backend whose observations share `squeue` with other backends of this process.
    pub fn sharing(slurm: Arc<dyn Slurm>, agent: AgentExe, squeue: SharedSqueue) -> SlurmBackend {
        SlurmBackend {
            slurm,
            agent,
            squeue,
        }
    }

    /// After a change (submit, cancel), observers ask SLURM afresh.
    fn forget_squeue(&self) {
        if let Ok(mut c) = self.squeue.lock() {
            *c = None;
        }
    }

    pub fn client(&self) -> &dyn Slurm {
        self.slurm.as_ref()
    }

    /// Job views for observers: one squeue answer shared for a second.
    async fn shared_views(&self, ids: &[JobId]) -> Result<HashMap<JobId, JobView>, SlurmError> {
        let cached = self.squeue.lock().ok().and_then(|c| {
            c.as_ref()
                .filter(|(at, _)| at.elapsed() < SQUEUE_SHARED_FOR)
                .map(|(_, q)| q.clone())
        });
        let queued = match cached {
            Some(q) => q,
            None => {
                let q = self.slurm.my_jobs().await?;
                if let Ok(mut c) = self.squeue.lock() {
                    *c = Some((Instant::now(), q.clone()));
                }
                q
            }
        };
        lifecycle::views_from(self.slurm.as_ref(), queued, ids).await
    }
}

/// Retries a SLURM call while the controller is unreachable (it may be restarting), with
/// backoff, for at most [`RETRY_FOR`]; each retry is an event. Refusals return at once.
pub(crate) async fn with_retry<T, F, Fut>(
    what: &str,
    events: &Events,
    mut f: F,
) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SlurmError>>,
{
    let mut delay = Duration::from_millis(500);
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                events
                    .emit(Event::Retrying {
                        what: what.to_string(),
                        error: e.to_string(),
                        after: delay,
                    })
                    .await;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How a head job ended, in words.
pub fn ended_how(h: &JobView) -> String {
    match h.state.as_str() {
        "CANCELLED" => format!("job {} was cancelled outside corral (scancel)", h.id),
        "TIMEOUT" => format!("job {} reached its walltime", h.id),
        "GONE" => format!("job {} is no longer known to SLURM", h.id),
        "NODE_FAIL" => format!(
            "job {} ended because a node it ran on failed (NODE_FAIL{})",
            h.id,
            if h.node_list.is_empty() {
                String::new()
            } else {
                format!(": {}", h.node_list)
            }
        ),
        "OUT_OF_MEMORY" => format!("job {} ran out of memory", h.id),
        "PREEMPTED" => format!("job {} was preempted by SLURM", h.id),
        s => format!("job {} ended: {s}", h.id),
    }
}

/// What listens where and who can connect, before anything is submitted.
pub fn security_notice(name: &str, dir: &std::path::Path) -> String {
    format!(
        "Security: the coordinator will listen on one UDP port (QUIC), chosen by the kernel, on the \
         first node of the job; workers listen nowhere. Only holders of this cluster's secret can \
         connect: {}/secret, 32 random bytes, mode 0600, readable by you alone (and by root on \
         nodes that mount your home). Every connection proves it holds the secret, bound to its \
         own TLS session, and pins the coordinator's certificate. Nothing about cluster {name} \
         is readable by other users.",
        dir.display()
    )
}

fn join_ids(ids: &[JobId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`SlurmBackend::observe`] from job views already fetched.
fn observed_from(
    views: &HashMap<JobId, JobView>,
    jobs: &ClusterJobs,
    cluster: &mut Cluster,
) -> Result<Observed, BackendError> {
    let head = jobs
        .current_head(views)
        .and_then(|h| views.get(&h.id))
        .cloned();
    let mut list: Vec<JobView> = jobs
        .ids()
        .iter()
        .filter_map(|id| views.get(id).cloned())
        .collect();
    list.sort_by_key(|v| v.id);
    if cluster.record.stopped.is_none()
        && let Some(h) = head.as_ref().filter(|h| !h.is_active())
    {
        let core_hours = lifecycle::core_hours(views);
        record_end(
            cluster,
            &ended_how(h),
            "slurm",
            &jobs.ids(),
            core_hours,
            false,
        )?;
    }
    let (state, detail) = match (&cluster.record.stopped, &head) {
        (Some(s), _) => (State::Ended, s.how.clone()),
        (None, Some(h)) if h.state == "PENDING" => {
            (State::Pending, reason::explain(&h.reason).sentence())
        }
        (None, Some(h)) => (State::Running, format!("on {}", h.node_list)),
        (None, None) => (State::Ended, "no head job recorded".into()),
    };
    Ok(Observed {
        state,
        detail,
        // The target `scale` just set: cancelled worker jobs no longer count.
        asked_workers: {
            let mut live = jobs.clone();
            live.retain_active(views);
            live.asked_workers()
        },
        left_secs: head.as_ref().and_then(|h| h.left_secs),
        core_hours: lifecycle::core_hours(views),
        jobs: list,
    })
}

#[async_trait::async_trait]
impl Backend for SlurmBackend {
    fn kind(&self) -> Kind {
        Kind::Slurm
    }

    /// Creates the cluster directory and submits the head job: the one way a SLURM cluster
    /// comes to exist, for `corral up`, `corral batch` and the TUI alike.
    async fn start(&self, spec: &ClusterSpec, events: &Events) -> Result<Cluster, BackendError> {
        let agent = self.agent.words();
        let mut cluster = Cluster::create(ClusterRecord {
            name: spec.name.clone(),
            workers: spec.workers,
            cores_per_worker: spec.cores_per_worker,
            created_at_unix: now_unix(),
            backend: cluster_record::Backend::Slurm {
                agent: agent.clone(),
                spec: spec.clone(),
            },
            stopped: None,
            dask: spec.dask.clone(),
        })?;
        match lifecycle::submit(
            self.slurm.as_ref(),
            spec,
            JobRole::Head,
            spec.workers,
            &cluster.dir,
            &agent,
        )
        .await
        {
            Ok(job) => {
                self.forget_squeue();
                if spec.supervise.needs_supervisor() {
                    crate::supervisor::ensure_running(&cluster, &self.agent)?;
                    events
                        .emit(Event::Step {
                            words: format!(
                                "a supervisor on this host keeps cluster {} alive (jobs replaced {} s before their end); its log: {}",
                                spec.name,
                                spec.supervise.replace_lead_secs(),
                                cluster.dir.logs_dir().join(crate::supervisor::LOG).display()
                            ),
                        })
                        .await;
                }
                events
                    .emit(Event::Submitted {
                        job: job.id,
                        workers: spec.workers,
                    })
                    .await;
                Ok(cluster)
            }
            Err(e) => {
                let how = format!("not submitted: {e}");
                let _ = record_end(&mut cluster, &how, "corral", &[], 0.0, false);
                Err(e.into())
            }
        }
    }

    async fn follow(
        &self,
        cluster: &Cluster,
        want: u32,
        timeout: Option<Duration>,
        events: &Events,
    ) -> Result<Ready, BackendError> {
        follow::follow(self, cluster, want, timeout, events).await
    }

    async fn scale(
        &self,
        cluster: &mut Cluster,
        target: Target<'_>,
        events: &Events,
    ) -> Result<String, BackendError> {
        let said = scale::scale(self, cluster, target, events).await;
        self.forget_squeue();
        said
    }

    /// The coordinator stops its workers, then every job is cancelled and SLURM is asked
    /// until it lists none as active.
    async fn stop(
        &self,
        cluster: &mut Cluster,
        who: &str,
        events: &Events,
    ) -> Result<StopReport, BackendError> {
        self.forget_squeue();
        // First, so that nothing new is submitted while the jobs are cancelled.
        if crate::supervisor::stop(&cluster.dir).await {
            events
                .emit(Event::Step {
                    words: "stopped the cluster's supervisor".into(),
                })
                .await;
        }
        if super::link::ask_shutdown(&cluster.dir).await {
            events
                .emit(Event::Step {
                    words: "the coordinator is stopping its workers".into(),
                })
                .await;
        }
        let jobs = ClusterJobs::load(&cluster.dir)?;
        let ids = jobs.ids();
        let slurm = self.slurm.as_ref();
        // A head job that already ended (scancel, walltime) is how the cluster ended, even if
        // nobody looked before this stop; what is still queued is cancelled anyway.
        let before = with_retry("squeue", events, || lifecycle::job_views(slurm, &ids)).await?;
        if let Some(h) = jobs
            .current_head(&before)
            .and_then(|h| before.get(&h.id))
            .filter(|h| !h.is_active())
        {
            record_end(
                cluster,
                &ended_how(h),
                "slurm",
                &ids,
                lifecycle::core_hours(&before),
                false,
            )?;
        }
        events
            .emit(Event::Step {
                words: format!("cancelling job(s) {}", join_ids(&ids)),
            })
            .await;
        let views = with_retry("scancel", events, || async {
            lifecycle::cancel_and_wait(slurm, &ids, Duration::from_secs(90))
                .await
                .map_err(|e| match e {
                    lifecycle::LifecycleError::Slurm(s) => s,
                    other => SlurmError::Parse {
                        command: "scancel".into(),
                        output: other.to_string(),
                    },
                })
        })
        .await?;
        let core_hours = lifecycle::core_hours(&views);
        let how = format!(
            "{who}: cancelled job{} {}, {core_hours:.2} core-hours",
            if ids.len() == 1 { "" } else { "s" },
            join_ids(&ids)
        );
        record_end(cluster, &how, who, &ids, core_hours, false)?;
        events.emit(Event::Ended { how: how.clone() }).await;
        Ok(StopReport {
            how,
            core_hours,
            jobs: ids,
            processes: None,
        })
    }

    /// One squeue (shared, see [`SQUEUE_SHARED_FOR`]) for the cluster's jobs. A cluster whose
    /// head job is gone or finished has ended, whoever ended it.
    async fn observe(&self, cluster: &mut Cluster) -> Result<Observed, BackendError> {
        let jobs = ClusterJobs::load(&cluster.dir)?;
        let ids = if cluster.record.stopped.is_some() {
            Vec::new()
        } else {
            jobs.ids()
        };
        let views = if ids.is_empty() {
            HashMap::new()
        } else {
            self.shared_views(&ids).await?
        };
        self.end_without_coordinator(&views, &jobs, cluster).await?;
        observed_from(&views, &jobs, cluster)
    }
}

impl SlurmBackend {
    /// A head job that SLURM keeps running after the coordinator's node failed (`--no-kill`
    /// keeps the allocation for the healthy nodes) is a cluster without a coordinator: its
    /// workers exit within their orphan timeout and nothing could use it again. It is ended
    /// here — its jobs cancelled, the reason recorded — instead of holding its CPUs until the
    /// walltime.
    async fn end_without_coordinator(
        &self,
        views: &HashMap<JobId, JobView>,
        jobs: &ClusterJobs,
        cluster: &mut Cluster,
    ) -> Result<(), BackendError> {
        let Some(head) = jobs.current_head(views).and_then(|h| views.get(&h.id)) else {
            return Ok(());
        };
        // A kept-alive cluster's supervisor submits a head job whose coordinator takes over.
        if let cluster_record::Backend::Slurm { spec, .. } = &cluster.record.backend
            && spec.supervise.keep_alive
        {
            return Ok(());
        }
        let Ok(info) = cluster.dir.read_coordinator() else {
            return Ok(());
        };
        let node = info.node.clone();
        if head.state != "RUNNING"
            || node.is_empty()
            || head.node_list.is_empty()
            || crate::slurm::parse::hostlist_contains(&head.node_list, &node)
        {
            return Ok(());
        }
        let ids = jobs.ids();
        self.forget_squeue();
        lifecycle::cancel_and_wait(self.slurm.as_ref(), &ids, Duration::from_secs(60)).await?;
        let how = format!(
            "the coordinator's node {node} failed; SLURM kept job {} running on {} without it, so corral cancelled job{} {}",
            head.id,
            head.node_list,
            if ids.len() == 1 { "" } else { "s" },
            join_ids(&ids)
        );
        record_end(
            cluster,
            &how,
            "corral",
            &ids,
            lifecycle::core_hours(views),
            false,
        )
    }
}

#[cfg(test)]
mod tests;
