//! Test data shared by the tests of `adapt` and `notify`: coordinator snapshots.

use crate::protocol::{QueryPhase, QueryProgress, Snapshot, WorkerReport, WorkerState, WorkerView};

pub(crate) fn worker(id: u64, state: WorkerState) -> WorkerView {
    WorkerView {
        id,
        node: format!("n{id}"),
        pid: 1,
        cores: 2,
        slurm: None,
        state,
        heartbeat_age_ms: 0,
        connected_at_unix: 0,
        assigned: 0,
        report: WorkerReport::default(),
        dask: None,
    }
}

/// A coordinator's snapshot with these workers, a running query with `queued` partitions
/// not handed out (None: no query), and `queued_queries` behind it.
pub(crate) fn snapshot(
    workers: Vec<WorkerView>,
    queued: Option<u64>,
    queued_queries: u32,
) -> Snapshot {
    Snapshot {
        cluster: "c".into(),
        coordinator_node: "n0".into(),
        coordinator_pid: 1,
        uptime_ms: 0,
        walltime_ending: false,
        workers,
        cores: 0,
        tasks: Default::default(),
        bytes_per_s: 0.0,
        rows_per_s: 0.0,
        query: queued.map(|q| QueryProgress {
            query: 1,
            phase: QueryPhase::Running,
            tasks_total: 100,
            tasks: crate::schedule::Counts {
                queued: q,
                ..Default::default()
            },
            bytes_total: 0,
            bytes_done: 0,
            rows_done: 0,
            elapsed_ms: 0,
            workers: 0,
            cores: 0,
        }),
        queued_queries,
        restriction: Default::default(),
        queries_done: 0,
        queries_failed: 0,
        warnings: Vec::new(),
        dashboard: false,
        dask: None,
    }
}
