//! The effects of the Pending screen and the dashboard's `+` and `c` on a SLURM cluster, run
//! through the backend interface over the in-memory SLURM (`corral_core::slurm::fake`): what
//! reaches SLURM, and the messages the app gets back.

use std::sync::Arc;
use std::time::Duration;

use corral_core::backend::{AgentExe, Backends};
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend as RecordBackend, ClusterRecord};
use corral_core::model::{ClusterSpec, JobId, Walltime};
use corral_core::slurm::fake::FakeSlurm;
use corral_core::slurm::lifecycle;
use corral_core::slurm::template::JobRole;
use tokio::sync::mpsc;

use crate::app::effects::Effects;
use crate::app::msg::{Cmd, Msg};

/// A SLURM cluster `name` of 4 workers whose head job (100) `fake` holds.
async fn slurm_cluster(clusters: &std::path::Path, fake: &FakeSlurm, name: &str) {
    let dir = ClusterDir::create_in(clusters, name).expect("cluster dir");
    let agent = AgentExe {
        program: "/opt/corral-agent".into(),
        prefix: Vec::new(),
    };
    let spec = ClusterSpec {
        name: name.into(),
        workers: 4,
        cores_per_worker: 2,
        mem_per_worker_mb: None,
        walltime: Walltime::from_days(1),
        partition: None,
        account: None,
        supervise: Default::default(),
        dask: None,
    };
    ClusterRecord {
        name: name.into(),
        workers: 4,
        cores_per_worker: 2,
        created_at_unix: 0,
        backend: RecordBackend::Slurm {
            agent: agent.words(),
            spec: spec.clone(),
        },
        stopped: None,
        dask: None,
    }
    .save(&dir)
    .expect("spec.json");
    lifecycle::submit(fake, &spec, JobRole::Head, 4, &dir, &agent.words())
        .await
        .expect("submit");
}

/// The next message `pick` accepts (others are skipped), within 10 s.
async fn next<T>(rx: &mut mpsc::Receiver<Msg>, mut pick: impl FnMut(Msg) -> Option<T>) -> T {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = rx.recv().await {
            if let Some(t) = pick(m) {
                return Some(t);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .expect("the expected message within 10 s")
}

#[tokio::test]
async fn pending_then_scale_then_cancel_reach_slurm_through_the_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clusters = tmp.path().join("clusters");
    let fake = Arc::new(FakeSlurm::new("PENDING", "Priority"));
    slurm_cluster(&clusters, &fake, "taxi").await;
    let (tx, mut rx) = mpsc::channel(64);
    let mut fx = Effects::with(
        tx,
        Backends::new(fake.clone()),
        clusters.clone(),
        tmp.path().into(),
    );

    // Attached while it pends: the Pending screen gets the job and its reason in words.
    fx.execute(Cmd::Attach {
        name: "taxi".into(),
    });
    let status = next(&mut rx, |m| match m {
        Msg::JobStatus { name, status } if name == "taxi" => Some(status),
        _ => None,
    })
    .await;
    assert_eq!(status.job_id, 100);
    assert_eq!(status.state, "PENDING");
    assert!(!status.never_starts);
    assert!(
        status.reason.to_lowercase().contains("priority"),
        "{}",
        status.reason
    );
    fx.execute(Cmd::Detach {
        name: "taxi".into(),
    });

    // `+` twice on the dashboard: one worker job of 2 more workers.
    fake.set_state(JobId(100), "RUNNING", "None");
    fx.execute(Cmd::Scale {
        name: "taxi".into(),
        delta: 2,
    });
    let scaled = next(&mut rx, |m| match m {
        Msg::Scaled { result, .. } => Some(result),
        _ => None,
    })
    .await
    .expect("scaled");
    assert!(
        scaled.contains("submitted worker job 101 with 2 workers (4 → 6)"),
        "{scaled}"
    );

    // `c` `y`: every job cancelled, the end recorded.
    fx.execute(Cmd::Cancel {
        name: "taxi".into(),
    });
    let report = next(&mut rx, |m| match m {
        Msg::Cancelled { result, .. } => Some(result),
        _ => None,
    })
    .await
    .expect("cancelled");
    assert_eq!(report.how, "cancelled");
    let mut cancelled = fake.cancelled();
    cancelled.sort();
    assert_eq!(cancelled, vec![JobId(100), JobId(101)]);
    let record =
        ClusterRecord::load(&ClusterDir::open_in(&clusters, "taxi").expect("dir")).expect("spec");
    assert!(
        record
            .stopped
            .is_some_and(|s| s.how.starts_with("corral TUI: cancelled jobs 100, 101")),
    );
    fx.shutdown().await;
}

#[tokio::test]
async fn a_job_that_can_never_start_is_said_so_on_the_pending_screen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clusters = tmp.path().join("clusters");
    let fake = Arc::new(FakeSlurm::new("PENDING", "PartitionConfig"));
    slurm_cluster(&clusters, &fake, "never").await;
    let (tx, mut rx) = mpsc::channel(64);
    let mut fx = Effects::with(tx, Backends::new(fake.clone()), clusters, tmp.path().into());
    fx.execute(Cmd::Attach {
        name: "never".into(),
    });
    let status = next(&mut rx, |m| match m {
        Msg::JobStatus { status, .. } => Some(status),
        _ => None,
    })
    .await;
    assert!(status.never_starts, "{status:?}");
    // Watching never cancels anything by itself.
    assert!(fake.cancelled().is_empty());
    fx.shutdown().await;
}
