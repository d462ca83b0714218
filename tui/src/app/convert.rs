//! Core, SLURM and wire types → the TUI's view types, in one place, so the screens never
//! depend on how data travels.

use corral_core::aggregate::QueryResult;
use corral_core::slurm::lifecycle::JobView;
use corral_core::slurm::reason;

use corral_core::protocol::{self, WorkerState};

use super::view::{
    Backend, ClusterSnapshot, ClusterState, JobStatusView, QueryProgress, ResultView, TaskCounts,
    Unix, WorkerView,
};

/// What the cluster directory and SLURM add to a coordinator's snapshot.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub backend: Option<Backend>,
    pub address: Option<String>,
    pub walltime_end: Option<Unix>,
    pub job_ids: Vec<u64>,
    pub workers_asked: u32,
    pub core_hours_used: Option<f64>,
    /// The cluster's state as SLURM sees it (`None`: local, the snapshot itself says running).
    pub slurm_state: Option<ClusterState>,
}

/// A coordinator's snapshot (received at `now`) → the dashboard's view.
pub fn snapshot(s: &protocol::Snapshot, ctx: &Context, now: Unix) -> ClusterSnapshot {
    let workers = s
        .workers
        .iter()
        .map(|w| WorkerView {
            node: w.node.clone(),
            task: w.slurm.as_ref().and_then(|ids| ids.proc_id),
            cores: w.cores,
            cpu_pct: w.report.cpu_busy_pct,
            rss_bytes: w.report.rss_bytes,
            tasks_done: w.report.tasks_done,
            // Per-worker rates are not reported; its share of the cluster's rate by the work
            // it did would be a guess, so the column shows its average since it joined.
            bytes_per_s: {
                let secs = now.saturating_sub(w.connected_at_unix).max(1);
                w.report.bytes_processed as f64 / secs as f64
            },
            last_heartbeat: now.saturating_sub(w.heartbeat_age_ms / 1000),
            alive: matches!(w.state, WorkerState::Alive | WorkerState::Draining),
            left: w.state == WorkerState::Left,
        })
        .collect();
    let query = s.query.as_ref().map(|q| QueryProgress {
        label: format!("query {:?}", q.phase).to_lowercase(),
        partitions_done: q.tasks.done,
        partitions_total: q.tasks_total,
        rows: q.rows_done,
        bytes: q.bytes_done,
        rows_per_s: s.rows_per_s,
        bytes_per_s: s.bytes_per_s,
    });
    let state = match ctx.slurm_state {
        Some(st) => st,
        None if s.walltime_ending => ClusterState::Ending,
        None => ClusterState::Running,
    };
    ClusterSnapshot {
        name: s.cluster.clone(),
        backend: ctx.backend.unwrap_or(Backend::Local),
        state,
        address: ctx.address.clone(),
        authenticated: true,
        not_connected: None,
        walltime_end: ctx.walltime_end,
        job_ids: ctx.job_ids.clone(),
        workers_asked: ctx.workers_asked,
        workers,
        tasks: TaskCounts {
            queued: s.tasks.queued,
            running: s.tasks.running,
            done: s.tasks.done,
            failed: s.tasks.failed,
        },
        query,
        core_hours_used: ctx.core_hours_used,
        dashboard: s.dashboard,
    }
}

/// A query's progress message → the gauge's view (rates from bytes and time so far).
pub fn progress(p: &protocol::QueryProgress) -> QueryProgress {
    let secs = (p.elapsed_ms as f64 / 1000.0).max(0.001);
    QueryProgress {
        label: format!("query {:?}", p.phase).to_lowercase(),
        partitions_done: p.tasks.done,
        partitions_total: p.tasks_total,
        rows: p.rows_done,
        bytes: p.bytes_done,
        rows_per_s: p.rows_done as f64 / secs,
        bytes_per_s: p.bytes_done as f64 / secs,
    }
}

/// A SLURM job state word → the cluster's state. `has_coordinator`: `coordinator.json`
/// exists, i.e. the coordinator listens (until then a running job is still starting).
pub fn cluster_state(slurm_state: &str, has_coordinator: bool) -> ClusterState {
    match slurm_state {
        "PENDING" | "REQUEUED" | "SUSPENDED" => ClusterState::Pending,
        "CONFIGURING" => ClusterState::Starting,
        "RUNNING" if has_coordinator => ClusterState::Running,
        "RUNNING" => ClusterState::Starting,
        "COMPLETING" => ClusterState::Ending,
        "COMPLETED" | "CANCELLED" | "TIMEOUT" | "GONE" | "PREEMPTED" => ClusterState::Ended,
        "FAILED" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE" => ClusterState::Failed,
        _ => ClusterState::Unknown,
    }
}

/// A job's state with its pending reason in plain words (`reason::explain`).
pub fn job_status(view: &JobView, submitted_at: Option<Unix>) -> JobStatusView {
    let explained = reason::explain(&view.reason);
    JobStatusView {
        job_id: view.id.0,
        state: view.state.clone(),
        reason_code: view.reason.clone(),
        reason: explained.sentence(),
        never_starts: explained.never_starts,
        submitted_at,
    }
}

/// A query result as rows of text: group keys, then the aggregates. `partitions`: the tasks
/// the query was cut into.
pub fn result_view(
    r: &QueryResult,
    partitions: u64,
    seconds: f64,
    workers: u32,
    cores: u64,
) -> ResultView {
    let mut columns = r.group_by.clone();
    columns.extend(r.aggregates.iter().cloned());
    let rows = r
        .groups
        .iter()
        .map(|g| {
            let mut row: Vec<String> = g
                .key
                .iter()
                .map(|k| {
                    if k.is_empty() {
                        "\"\"".into()
                    } else {
                        k.clone()
                    }
                })
                .collect();
            row.extend(g.values.iter().map(ToString::to_string));
            row
        })
        .collect();
    ResultView {
        columns,
        rows,
        good_rows: r.rows,
        bad_rows: r
            .bad_rows
            .by_reason
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        files: r.files,
        bytes: r.bytes,
        partitions,
        seconds,
        workers,
        cores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::model::JobId;

    #[test]
    fn states_and_reasons() {
        assert_eq!(cluster_state("RUNNING", false), ClusterState::Starting);
        assert_eq!(cluster_state("RUNNING", true), ClusterState::Running);
        assert_eq!(cluster_state("CANCELLED", true), ClusterState::Ended);
        assert_eq!(cluster_state("NODE_FAIL", true), ClusterState::Failed);
        let v = JobView {
            id: JobId(7),
            state: "PENDING".into(),
            reason: "PartitionConfig".into(),
            elapsed_secs: 0,
            left_secs: None,
            cpus: 4,
            node_list: String::new(),
        };
        let s = job_status(&v, Some(5));
        assert!(s.never_starts && s.reason.starts_with("PartitionConfig — "));
    }
}
