//! One look at a cluster: its records, what its backend observes, its coordinator.

use corral_core::backend::{Cluster, Kind, Observed, State};
use corral_core::cluster_dir::{ClusterDir, CoordinatorInfo};
use corral_core::slurm::lifecycle::{ClusterJobs, JobView};

use super::super::convert;
use super::super::view::{Backend, ClusterState, Unix};
use super::Ctx;

fn coordinator(dir: &ClusterDir) -> Option<CoordinatorInfo> {
    dir.read_coordinator().ok()
}

/// A cluster as the TUI shows it: its records, what its backend sees, its coordinator.
pub(super) struct Seen {
    pub(super) cluster: Cluster,
    pub(super) kind: Kind,
    pub(super) observed: Result<Observed, String>,
    pub(super) jobs: ClusterJobs,
    pub(super) coord: Option<CoordinatorInfo>,
}

impl Seen {
    pub(super) async fn of(ctx: &Ctx, mut cluster: Cluster) -> Seen {
        let backend = ctx.backends.for_record(&cluster.record);
        let observed = backend
            .observe(&mut cluster)
            .await
            .map_err(|e| e.to_string());
        let jobs = ClusterJobs::load(&cluster.dir).unwrap_or_default();
        let coord = coordinator(&cluster.dir);
        Seen {
            kind: backend.kind(),
            cluster,
            observed,
            jobs,
            coord,
        }
    }

    pub(super) fn backend(&self) -> Backend {
        match self.kind {
            Kind::Local => Backend::Local,
            Kind::Slurm | Kind::InAllocation => Backend::Slurm,
        }
    }

    /// The job the cluster lives in: the head job, or the enclosing job of `batch --here`.
    pub(super) fn head(&self) -> Option<&JobView> {
        let jobs = &self.observed.as_ref().ok()?.jobs;
        match self.jobs.head() {
            Some(h) => jobs.iter().find(|v| v.id == h.id),
            None => jobs.first(),
        }
    }

    pub(super) fn head_submitted(&self) -> Option<Unix> {
        self.jobs.head().map(|h| h.submitted_unix)
    }

    pub(super) fn workers_asked(&self) -> u32 {
        match &self.observed {
            Ok(o) => o.asked_workers,
            Err(_) => self.cluster.record.workers,
        }
    }

    pub(super) fn state(&self) -> ClusterState {
        let Ok(o) = &self.observed else {
            return ClusterState::Unknown;
        };
        match (o.state, self.head()) {
            (State::Ended, _) => ClusterState::Ended,
            (_, Some(h)) => convert::cluster_state(&h.state, self.coord.is_some()),
            (State::Running, None) => ClusterState::Running,
            (State::Pending, None) => ClusterState::Pending,
            (State::Unknown, None) => ClusterState::Unknown,
        }
    }

    /// When the walltime ends, for a running job that knows.
    pub(super) fn walltime_end(&self, now: Unix) -> Option<Unix> {
        self.head()
            .filter(|v| v.state == "RUNNING")
            .and_then(|v| v.left_secs)
            .map(|l| now + l)
    }
}
