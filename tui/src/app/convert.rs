//! Core, SLURM and wire types → the TUI's view types, in one place, so the screens never
//! depend on how data travels.

use corral_core::aggregate::QueryResult;
use corral_core::slurm::lifecycle::JobView;
use corral_core::slurm::reason;

use super::view::{ClusterState, JobStatusView, ResultView, Unix};

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

/// A query result as rows of text: group keys, then the aggregates.
pub fn result_view(r: &QueryResult, seconds: f64, workers: u32, cores: u64) -> ResultView {
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
