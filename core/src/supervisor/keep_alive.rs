//! `--keep-alive`: every job of the cluster is replaced before its walltime ends.
//!
//! A running job whose time left falls under the replacement lead gets one replacement: a new
//! job of the same role and size (a head job's replacement brings a coordinator that takes
//! over from the old one, see [`crate::coordinator`]). The old job keeps working until SLURM
//! signals it, `signal lead` seconds before its end; its workers then drain (finish what they
//! hold, take nothing new) and leave. So capacity drops only if SLURM cannot start the
//! replacement within `replace lead - signal lead`; replacements of jobs that end together
//! are submitted in the same tick.
//!
//! The coordinator's node failing is the other end a head job can meet: when the coordinator
//! does not answer and no running head job holds its node, a replacement head job is
//! submitted at once (its coordinator takes over from what the cluster directory holds).

use super::{Policy, Tick};
use crate::backend::BackendError;
use crate::model::Supervise;
use crate::slurm::lifecycle::{self, ClusterJobs, JobRecord};
use crate::slurm::template::JobRole;

pub struct KeepAlive {
    replace_lead: u64,
}

impl KeepAlive {
    pub fn new(s: &Supervise) -> KeepAlive {
        KeepAlive {
            replace_lead: s.replace_lead_secs(),
        }
    }

    /// Submits a job like `old` and records the pair in `jobs.json`.
    async fn replace(
        &self,
        t: &mut Tick<'_>,
        old: &JobRecord,
        why: String,
    ) -> Result<(), BackendError> {
        // A head job always keeps at least one task: its batch step runs the coordinator and
        // its srun needs a task.
        let workers = (old.workers - old.retired.min(old.workers)).max(1);
        let new = lifecycle::submit(
            t.slurm.as_ref(),
            &t.spec,
            old.role,
            workers,
            &t.cluster.dir,
            &t.agent,
        )
        .await?;
        let mut jobs = ClusterJobs::load(&t.cluster.dir)?;
        for j in jobs.jobs.iter_mut() {
            if j.id == old.id {
                j.replaced_by = Some(new.id);
            }
            if j.id == new.id {
                j.replaces = Some(old.id);
            }
        }
        jobs.save(&t.cluster.dir)?;
        t.jobs = jobs;
        t.decide(
            format!(
                "submitted {} job {} with {} to replace job {}",
                old.role.as_str(),
                new.id,
                crate::text::count(workers, "worker"),
                old.id
            ),
            why,
        );
        Ok(())
    }
}

#[async_trait::async_trait]
impl Policy for KeepAlive {
    fn name(&self) -> &'static str {
        "keep-alive"
    }

    async fn tick(&mut self, t: &mut Tick<'_>) -> Result<(), BackendError> {
        let due: Vec<(JobRecord, u64)> = t
            .jobs
            .jobs
            .iter()
            .filter(|j| j.replaced_by.is_none())
            .filter(|j| j.role == JobRole::Head || j.retired < j.workers)
            .filter_map(|j| {
                let v = t.views.get(&j.id)?;
                let left = v.left_secs?;
                (v.state == "RUNNING" && left <= self.replace_lead).then(|| (j.clone(), left))
            })
            .collect();
        for (old, left) in due {
            let why = format!(
                "job {} ends in {left} s (replaced {} s ahead)",
                old.id, self.replace_lead
            );
            self.replace(t, &old, why).await?;
        }
        // The coordinator's node is gone: no running head job holds it any more.
        if t.snapshot.is_none()
            && let Ok(info) = t.cluster.dir.read_coordinator()
            && !info.node.is_empty()
        {
            let heads: Vec<&JobRecord> = t
                .jobs
                .jobs
                .iter()
                .filter(|j| j.role == JobRole::Head)
                .collect();
            let holds = heads.iter().any(|h| {
                t.views.get(&h.id).is_some_and(|v| {
                    v.state == "RUNNING"
                        && crate::slurm::parse::hostlist_contains(&v.node_list, &info.node)
                })
            });
            let coming = heads.iter().any(|h| {
                h.replaced_by.is_none()
                    && t.views.get(&h.id).is_some_and(|v| {
                        v.is_active()
                            && !crate::slurm::parse::hostlist_contains(&v.node_list, &info.node)
                    })
            });
            if !holds
                && !coming
                && let Some(old) = t.jobs.current_head(&t.views).cloned()
                && old.replaced_by.is_none()
            {
                let why = format!(
                    "the coordinator on node {} does not answer and no running head job holds that node",
                    info.node
                );
                self.replace(t, &old, why).await?;
            }
        }
        Ok(())
    }
}
