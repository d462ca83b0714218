//! Scaling a SLURM cluster. Up: one worker job for the difference, joining the same
//! coordinator. Down: the newest worker jobs go whole (drained, then cancelled); what is
//! still too many comes out of the head job, whose workers are retired one by one (SLURM
//! cannot shrink a running job: their CPUs stay allocated until it ends; the coordinator
//! lives in it, so it stays).

use std::time::Duration;

use super::{SlurmBackend, join_ids};
use crate::backend::events::{Event, Events};
use crate::backend::link;
use crate::backend::{BackendError, Cluster, Target};
use crate::cluster_record;
use crate::model::JobId;
use crate::slurm::lifecycle::{self, ClusterJobs};
use crate::slurm::template::JobRole;

/// What reaching a worker count takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScalePlan {
    Same {
        now: u32,
    },
    /// Submit one worker job of `add` workers.
    Up {
        now: u32,
        add: u32,
    },
    /// Drain, then cancel these (newest) worker jobs; then retire that many workers of the
    /// head job.
    Down {
        now: u32,
        left: u32,
        remove: Vec<JobId>,
        retire: Option<(JobId, u32)>,
    },
}

/// Plans scaling to `target(now)` workers, `now` being what the running jobs hold.
pub async fn plan(
    backend: &SlurmBackend,
    cluster: &Cluster,
    target: Target<'_>,
) -> Result<ScalePlan, BackendError> {
    let name = &cluster.record.name;
    let mut jobs = ClusterJobs::load(&cluster.dir)?;
    let views = lifecycle::job_views(backend.client(), &jobs.ids()).await?;
    // Jobs that ended (e.g. scancelled from outside) no longer count.
    jobs.retain_active(&views);
    if jobs.current_head(&views).is_none() {
        return Err(BackendError::Failed(format!(
            "cluster {name} has no running head job; start a new cluster instead"
        )));
    }
    let now = jobs.asked_workers();
    let target = target(now);
    if target == 0 {
        return Err(BackendError::Failed(format!(
            "a cluster needs at least 1 worker; to stop it use `corral down {name}`"
        )));
    }
    if target == now {
        return Ok(ScalePlan::Same { now });
    }
    if target > now {
        return Ok(ScalePlan::Up {
            now,
            add: target - now,
        });
    }
    let mut remove = Vec::new();
    let mut left = now;
    for j in jobs
        .jobs
        .iter()
        .rev()
        .filter(|j| j.role == JobRole::Workers)
    {
        if left - (j.workers - j.retired) < target {
            break;
        }
        left -= j.workers - j.retired;
        remove.push(j.id);
    }
    let retire = if left > target {
        match jobs.current_head(&views) {
            Some(h) if left - target < h.workers - h.retired => {
                let n = left - target;
                left = target;
                Some((h.id, n))
            }
            _ => {
                return Err(BackendError::Failed(format!(
                    "cannot reach {target} workers: the newest worker jobs hold {:?} workers and only whole jobs or \
                     head-job workers can go; choose {left}",
                    jobs.jobs
                        .iter()
                        .filter(|j| j.role == JobRole::Workers)
                        .map(|j| j.workers)
                        .collect::<Vec<_>>()
                )));
            }
        }
    } else {
        None
    };
    Ok(ScalePlan::Down {
        now,
        left,
        remove,
        retire,
    })
}

/// Retires `n` workers of job `job` (they finish their tasks, then exit) and records it in
/// `jobs.json`. Returns how many the coordinator retired.
async fn retire_workers(cluster: &Cluster, job: JobId, n: u32) -> Result<u32, BackendError> {
    let c = link::connect(&cluster.dir).await?;
    let ids = c
        .retire(job.0, n)
        .await
        .map_err(|e| BackendError::Failed(format!("cannot retire workers of job {job}: {e}")))?;
    let retired = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    if !link::until_left(&c, &ids).await {
        tracing::warn!(
            job = job.0,
            "retired workers {ids:?} had not left after the drain wait"
        );
    }
    let mut jobs = ClusterJobs::load(&cluster.dir)?;
    if let Some(j) = jobs.jobs.iter_mut().find(|j| j.id == job) {
        j.retired = (j.retired + retired).min(j.workers);
    }
    jobs.save(&cluster.dir)?;
    Ok(retired)
}

pub(super) async fn scale(
    backend: &SlurmBackend,
    cluster: &mut Cluster,
    target: Target<'_>,
    events: &Events,
) -> Result<String, BackendError> {
    let name = cluster.record.name.clone();
    let cluster_record::Backend::Slurm { agent, spec } = &cluster.record.backend else {
        return Err(BackendError::Failed(format!(
            "cluster {name} is not a SLURM cluster"
        )));
    };
    match plan(backend, cluster, target).await? {
        ScalePlan::Same { now } => Ok(format!(
            "cluster {name} already has {}",
            crate::text::count(now, "worker")
        )),
        ScalePlan::Up { now, add } => {
            let job = lifecycle::submit(
                backend.client(),
                spec,
                JobRole::Workers,
                add,
                &cluster.dir,
                agent,
            )
            .await?;
            events
                .emit(Event::Submitted {
                    job: job.id,
                    workers: add,
                })
                .await;
            Ok(format!(
                "submitted worker job {} with {} ({now} → {}); they join as SLURM starts them",
                job.id,
                crate::text::count(add, "worker"),
                now + add
            ))
        }
        ScalePlan::Down {
            now,
            left,
            remove,
            retire,
        } => {
            let drained = link::drain_jobs(&cluster.dir, &remove).await;
            if !remove.is_empty() {
                events
                    .emit(Event::Step {
                        words: format!(
                            "drained {}; cancelling {} {}",
                            crate::text::count(drained as u64, "worker"),
                            if remove.len() == 1 { "job" } else { "jobs" },
                            join_ids(&remove)
                        ),
                    })
                    .await;
                lifecycle::cancel_and_wait(backend.client(), &remove, Duration::from_secs(90))
                    .await?;
            }
            let mut said = format!("drained {}", crate::text::count(drained as u64, "worker"));
            if !remove.is_empty() {
                said.push_str(&format!(
                    " and cancelled {} {}",
                    if remove.len() == 1 { "job" } else { "jobs" },
                    join_ids(&remove)
                ));
            }
            if let Some((head, n)) = retire {
                let retired = retire_workers(cluster, head, n).await?;
                said.push_str(&format!(
                    "; retired {} of head job {head} (their CPUs stay allocated until it ends: SLURM cannot shrink a running job)",
                    crate::text::count(retired, "worker")
                ));
            }
            Ok(format!(
                "{said} ({now} → {})",
                crate::text::count(left, "worker")
            ))
        }
    }
}
