//! `--adapt MIN..MAX`: the supervisor's side of adaptive scaling. Each tick the look it was
//! given (jobs, SLURM's view of them, the coordinator's snapshot) becomes an
//! [`Observation`](crate::adapt::Observation); a decision of the policy is applied through the
//! cluster's backend (a worker job submitted, or the newest drained and cancelled) and logged
//! with its reason in the decisions log.

use super::{Policy, Tick};
use crate::adapt::{self, Adapter, Setting};
use crate::backend::{BackendError, Events};

pub struct Adapt {
    adapter: Option<Adapter>,
    setting: Setting,
}

impl Adapt {
    pub fn new(setting: Setting) -> Adapt {
        Adapt {
            adapter: None,
            setting,
        }
    }
}

#[async_trait::async_trait]
impl Policy for Adapt {
    fn name(&self) -> &'static str {
        "adapt"
    }

    async fn tick(&mut self, t: &mut Tick<'_>) -> Result<(), BackendError> {
        let setting = self.setting;
        let adapter = self
            .adapter
            .get_or_insert_with(|| Adapter::new(&t.cluster.dir, &setting));
        let obs = adapt::observe(
            t.now_unix * 1000,
            t.snapshot.as_ref(),
            &t.jobs,
            &t.views,
            t.spec.cores_per_worker,
            setting.limit,
        );
        let backend = crate::backend::Backends::new(std::sync::Arc::clone(&t.slurm))
            .for_record(&t.cluster.record);
        let Some(applied) = adapter
            .tick(&obs, backend.as_ref(), t.cluster, &Events::none())
            .await
        else {
            return Ok(());
        };
        let d = &applied.decision;
        let what = match &applied.outcome {
            Ok(done) => format!("{} → {} workers: {done}", d.from, d.to),
            Err(e) => format!("{} → {} workers failed: {e}", d.from, d.to),
        };
        t.decide(what, d.reason.clone());
        t.reload_jobs()
    }
}
