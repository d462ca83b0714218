use std::collections::HashMap;

use super::tests_support::{snapshot, worker};
use super::*;
use crate::slurm::lifecycle::JobRecord;
use crate::slurm::template::JobRole;

fn job(id: u64, role: JobRole, workers: u32, retired: u32) -> JobRecord {
    JobRecord {
        id: JobId(id),
        role,
        workers,
        retired,
        cores_per_worker: 2,
        submitted_unix: 0,
        replaces: None,
        replaced_by: None,
    }
}

fn view(id: u64, state: &str) -> (JobId, JobView) {
    (
        JobId(id),
        JobView {
            id: JobId(id),
            state: state.into(),
            reason: String::new(),
            elapsed_secs: 0,
            left_secs: None,
            cpus: 0,
            node_list: String::new(),
        },
    )
}

#[test]
fn pending_jobs_are_asked_for_but_not_connected_and_ended_ones_are_nothing() {
    let jobs = ClusterJobs {
        jobs: vec![
            job(10, JobRole::Head, 2, 1),
            job(11, JobRole::Workers, 3, 0),
            job(12, JobRole::Workers, 4, 0),
            job(13, JobRole::Workers, 5, 0),
        ],
    };
    let views: HashMap<_, _> = [
        view(10, "RUNNING"),
        view(11, "RUNNING"),
        view(12, "PENDING"),
        view(13, "CANCELLED"),
    ]
    .into();
    let s = snapshot(
        vec![
            worker(1, WorkerState::Alive),
            worker(2, WorkerState::Alive),
            worker(3, WorkerState::Draining),
            worker(4, WorkerState::Dead),
            worker(5, WorkerState::Alive),
        ],
        Some(7),
        1,
    );
    let o = observe(5, Some(&s), &jobs, &views, 2, Some(9));
    assert_eq!(
        o,
        Observation {
            at_ms: 5,
            query_running: true,
            queued_queries: 1,
            waiting_tasks: 7,
            connected: 3,
            asked: 1 + 3 + 4,
            pending: 4,
            cores_per_worker: 2,
            limit: Some(9),
        }
    );
}

#[test]
fn an_unreachable_coordinator_is_neither_busy_enough_to_grow_nor_idle() {
    let jobs = ClusterJobs {
        jobs: vec![job(10, JobRole::Head, 2, 0)],
    };
    let views: HashMap<_, _> = [view(10, "RUNNING")].into();
    let mut p = Policy::new(
        Range { min: 1, max: 8 },
        Tuning {
            up_after: std::time::Duration::ZERO,
            idle_after: std::time::Duration::ZERO,
            min_between: std::time::Duration::ZERO,
        },
    );
    for t in 0..100 {
        let o = observe(t * 1000, None, &jobs, &views, 2, None);
        assert_eq!(p.observe(&o), None);
    }
}

#[test]
fn a_max_beyond_the_partition_is_refused_with_the_range_that_fits() {
    let e =
        Setting::new(Range { min: 2, max: 40 }, Some(("debug".into(), 12)), 4).expect_err("over");
    assert_eq!(
        e.to_string(),
        "--adapt 2..40: partition debug holds at most 12 workers of 4 cores at once; use --adapt 2..12"
    );
    let s = Setting::new(Range { min: 2, max: 12 }, Some(("debug".into(), 12)), 4).expect("fits");
    assert_eq!(s.limit, Some(12));
    assert_eq!(
        Setting::new(Range { min: 1, max: 400 }, None, 4)
            .expect("local")
            .limit,
        None
    );
}

#[test]
fn applied_decisions_read_as_one_line() {
    let d = Decision {
        at_ms: 0,
        direction: Direction::Up,
        from: 2,
        to: 4,
        connected: 2,
        reason: "40 partitions waited 30 s with 2 workers connected".into(),
    };
    let ok = Applied {
        decision: d.clone(),
        outcome: Ok("submitted".into()),
    };
    assert_eq!(
        ok.words(),
        "up 2 → 4: 40 partitions waited 30 s with 2 workers connected"
    );
    let failed = Applied {
        decision: d,
        outcome: Err("sbatch: error: QOSMaxCpuPerUserLimit".into()),
    };
    assert!(failed.words().starts_with("up 2 → 4 failed: sbatch"));
    let json = serde_json::to_value(&ok).expect("json");
    assert_eq!(json["direction"], "up");
    assert_eq!(json["outcome"]["Ok"], "submitted");
}
