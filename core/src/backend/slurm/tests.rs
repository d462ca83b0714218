//! The SLURM backend over the in-memory fake: what follow, scale, stop and observe do to the
//! jobs and to the cluster's records, and which events they send.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cluster_dir::ClusterDir;
use crate::model::Walltime;
use crate::slurm::fake::FakeSlurm;

fn spec(name: &str, workers: u32) -> ClusterSpec {
    ClusterSpec {
        name: name.into(),
        workers,
        cores_per_worker: 2,
        mem_per_worker_mb: None,
        walltime: Walltime::from_days(1),
        partition: None,
        account: None,
        supervise: Default::default(),
        dask: None,
    }
}

fn agent() -> AgentExe {
    AgentExe {
        program: "/opt/corral-agent".into(),
        prefix: Vec::new(),
    }
}

/// A SLURM cluster in a temporary state directory, its head job submitted to `fake`.
async fn submitted(
    tmp: &tempfile::TempDir,
    fake: &Arc<FakeSlurm>,
    name: &str,
    workers: u32,
) -> (SlurmBackend, Cluster) {
    let dir = ClusterDir::create_in(tmp.path(), name).expect("cluster dir");
    let spec = spec(name, workers);
    let record = ClusterRecord {
        name: name.into(),
        workers,
        cores_per_worker: 2,
        created_at_unix: now_unix(),
        backend: cluster_record::Backend::Slurm {
            agent: agent().words(),
            spec: spec.clone(),
        },
        stopped: None,
        dask: None,
    };
    record.save(&dir).expect("spec.json");
    lifecycle::submit(
        fake.as_ref(),
        &spec,
        JobRole::Head,
        workers,
        &dir,
        &agent().words(),
    )
    .await
    .expect("submit");
    let backend = SlurmBackend::new(fake.clone(), agent());
    (backend, Cluster { dir, record })
}

async fn collect(mut rx: tokio::sync::mpsc::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = rx.recv().await {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn a_job_that_can_never_start_is_reported_not_cancelled_behind_the_users_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeSlurm::new("PENDING", "PartitionConfig"));
    let (backend, mut cluster) = submitted(&tmp, &fake, "never", 2).await;
    let (events, rx) = Events::channel(16);
    let ready = backend
        .follow(&cluster, 2, Some(Duration::from_secs(30)), &events)
        .await
        .expect("follows");
    drop(events);
    assert_eq!(
        ready,
        Ready::NeverStarts {
            job: JobId(100),
            reason: "PartitionConfig".into()
        }
    );
    assert!(fake.cancelled().is_empty(), "the caller decides");
    let said = collect(rx).await;
    assert!(
        said.iter().any(|e| matches!(e, Event::Pending { never_starts: true, words, .. } if words.contains("never start"))),
        "{said:?}"
    );
    // The caller's decision: stop it. Everything is cancelled and the end recorded once.
    let report = backend
        .stop(&mut cluster, "corral up", &Events::none())
        .await
        .expect("stops");
    assert_eq!(fake.cancelled(), vec![JobId(100)]);
    assert_eq!(report.jobs, vec![JobId(100)]);
    let record = ClusterRecord::load(&cluster.dir).expect("spec.json");
    assert!(
        record
            .stopped
            .expect("ended")
            .how
            .starts_with("corral up: cancelled job 100"),
    );
    let ledger = std::fs::read_to_string(cluster.dir.ledger_file()).expect("ledger");
    assert_eq!(ledger.lines().filter(|l| l.contains("\"down\"")).count(), 1);
}

#[tokio::test]
async fn following_reports_the_pending_reason_once_and_times_out_leaving_the_job_queued() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeSlurm::new("PENDING", "Priority"));
    let (backend, cluster) = submitted(&tmp, &fake, "queued", 2).await;
    let (events, rx) = Events::channel(64);
    let ready = backend
        .follow(&cluster, 2, Some(Duration::from_millis(2600)), &events)
        .await
        .expect("follows");
    drop(events);
    assert_eq!(
        ready,
        Ready::NotYet {
            state: "pending".into()
        }
    );
    let pending = collect(rx)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::Pending { .. }))
        .count();
    assert_eq!(pending, 1, "the same reason is said once, not every poll");
    assert!(fake.cancelled().is_empty());
    assert!(fake.squeue_calls() <= 2, "one squeue per 2 s");
}

#[tokio::test]
async fn an_unreachable_controller_is_retried_and_said_as_an_event() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeSlurm::new("PENDING", "Priority"));
    let (backend, mut cluster) = submitted(&tmp, &fake, "flaky", 1).await;
    fake.unreachable_for(1);
    let (events, rx) = Events::channel(64);
    backend
        .stop(&mut cluster, "corral down", &events)
        .await
        .expect("stops after a retry");
    drop(events);
    let said = collect(rx).await;
    assert!(
        said.iter()
            .any(|e| matches!(e, Event::Retrying { what, .. } if what == "squeue")),
        "{said:?}"
    );
    assert_eq!(fake.cancelled(), vec![JobId(100)]);
}

#[tokio::test]
async fn scaling_up_submits_a_worker_job_and_down_cancels_the_newest_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeSlurm::new("RUNNING", "None"));
    let (backend, mut cluster) = submitted(&tmp, &fake, "grow", 4).await;
    let said = backend
        .scale(&mut cluster, &|_| 6, &Events::none())
        .await
        .expect("scales up");
    assert!(
        said.contains("submitted worker job 101 with 2 workers (4 → 6)"),
        "{said}"
    );
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs[1].script.contains("#SBATCH --ntasks=2"),
        "{}",
        jobs[1].script
    );
    // Down to 4: the worker job goes whole (no coordinator here to drain: best effort).
    let said = backend
        .scale(&mut cluster, &|now| now - 2, &Events::none())
        .await
        .expect("scales down");
    assert!(said.contains("cancelled job 101 (6 → 4 workers)"), "{said}");
    assert_eq!(fake.cancelled(), vec![JobId(101)]);
    // The target the command said is what `ls` and the TUI read (issue 16 item 4: a
    // cancelled worker job still counted, `ls` said 4/6).
    let seen = backend.observe(&mut cluster).await.expect("observe");
    assert_eq!(seen.asked_workers, 4);
    // Below the head job's size, workers of the head job are retired (planned, not jobs).
    let plan = scale::plan(&backend, &cluster, &|_| 3).await.expect("plan");
    assert_eq!(
        plan,
        ScalePlan::Down {
            now: 4,
            left: 3,
            remove: Vec::new(),
            retire: Some((JobId(100), 1))
        }
    );
    let refused = scale::plan(&backend, &cluster, &|_| 0)
        .await
        .expect_err("zero");
    assert!(
        refused.to_string().contains("corral down grow"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_job_ended_outside_corral_is_observed_and_recorded_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeSlurm::new("RUNNING", "None"));
    let (backend, mut cluster) = submitted(&tmp, &fake, "late", 2).await;
    let seen = backend.observe(&mut cluster).await.expect("observe");
    assert_eq!(seen.state, State::Running);
    assert_eq!(seen.asked_workers, 2);
    fake.set_state(JobId(100), "TIMEOUT", "TimeLimit");
    // The squeue answer is shared for a second: a fresh backend looks again.
    let backend = SlurmBackend::new(fake.clone(), agent());
    let seen = backend.observe(&mut cluster).await.expect("observe");
    assert_eq!(seen.state, State::Ended);
    assert_eq!(seen.detail, "job 100 reached its walltime");
    backend.observe(&mut cluster).await.expect("observe again");
    let ledger = std::fs::read_to_string(cluster.dir.ledger_file()).expect("ledger");
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
}
