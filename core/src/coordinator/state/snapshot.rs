//! What clients see of the cluster: the snapshot.

use std::time::Instant;

use tracing::warn;

use crate::protocol::{Snapshot, TaskTotals, ToClient, WorkerView};

use super::Run;
use super::{Frame, State, frame};

impl State {
    pub fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let mut workers: Vec<WorkerView> = self
            .workers
            .iter()
            .map(|(id, w)| Self::view(*id, w, now))
            .collect();
        workers.extend(self.dead.iter().map(|(v, died)| WorkerView {
            heartbeat_age_ms: now.duration_since(*died).as_millis() as u64,
            ..v.clone()
        }));
        let current = self
            .run
            .as_ref()
            .map(|r| r.sched.counts())
            .unwrap_or_default();
        Snapshot {
            cluster: self.cfg.cluster.clone(),
            coordinator_node: crate::cluster_dir::node_name(),
            coordinator_pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            walltime_ending: self.walltime_ending,
            cores: self.workers.values().map(|w| w.reg.cores).sum(),
            workers,
            tasks: TaskTotals {
                queued: current.queued,
                running: current.running,
                done: self.past.done + current.done,
                failed: self.past.failed + current.failed,
                rerun: self.past.rerun + current.rerun,
            },
            bytes_per_s: self.rates.0,
            rows_per_s: self.rates.1,
            query: self.run.as_ref().map(Run::progress),
            queued_queries: self.queue.len() as u32,
            restriction: self.restriction,
            queries_done: self.queries_done,
            queries_failed: self.queries_failed,
            warnings: self.warnings.iter().cloned().collect(),
            dashboard: self.dashboard,
            dask: self.dask.clone(),
        }
    }

    pub(super) fn snapshot_frame(&self) -> Option<Frame> {
        match frame(&ToClient::Snapshot(Box::new(self.snapshot()))) {
            Ok(f) => Some(f),
            Err(e) => {
                warn!("cannot encode a snapshot: {e}");
                None
            }
        }
    }

    /// Publishes a snapshot to the subscribers (called at most 4 times a second).
    pub fn publish_snapshot(&self) {
        if let Some(f) = self.snapshot_frame() {
            self.snapshots.send_replace(Some(f));
        }
    }
}
