//! In-process tests of the coordinator: the state machine driven event by event with
//! simulated workers (scheduling, parity re-runs, lost workers, failures, merging), and the
//! whole stack — coordinator, two workers, a client — over loopback QUIC.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::state::{Config, Event, Frame, State};
use super::*;
use crate::aggregate::{self, Column, Query};
use crate::client::ClusterClient;
use crate::protocol::{
    QueryOptions, Registration, RerunReason, TaskFailure, TaskResult, ToClient, ToWorker, WorkerMsg,
};
use crate::transport::decode_payload;

fn decode(f: &Frame) -> ToWorker {
    decode_payload(&f[4..]).expect("a frame the coordinator encoded")
}

/// CSV whose every row has a quoted field with a newline, so tiny partitions split inside
/// quotes and need parity re-runs.
fn write_quoted(path: &Path, rows: usize) {
    let mut s = String::from("id,note,payment_type\n");
    for i in 0..rows {
        s.push_str(&format!("{i},\"a, \"\"b\"\"\nc{i}\",{}\n", i % 3 + 1));
    }
    std::fs::write(path, s).expect("write");
}

fn reg(node: &str) -> Registration {
    Registration {
        node: node.into(),
        pid: 1,
        cores: 1,
        slurm: None,
        software_version: "t".into(),
    }
}

struct Harness {
    st: State,
    events: mpsc::Receiver<Event>,
    outboxes: BTreeMap<u64, mpsc::Receiver<Frame>>,
    plans: BTreeMap<u64, std::sync::Arc<aggregate::Plan>>,
}

impl Harness {
    fn new() -> Harness {
        let (tx, events) = mpsc::channel(1024);
        let (snap, _) = watch::channel(None);
        let st = State::new(
            Config {
                cluster: "t".into(),
                partition_bytes: 64,
                heartbeat_timeout: Duration::from_secs(5),
                plan_check_timeout: Duration::from_secs(5),
                plan_timeout: Duration::from_secs(60),
                // Shorter than the heartbeat timeout, so a test can pass it with a tick.
                task_stall: Duration::from_secs(3),
                ledger: None,
            },
            tx,
            snap,
        );
        Harness {
            st,
            events,
            outboxes: BTreeMap::new(),
            plans: BTreeMap::new(),
        }
    }

    fn join(&mut self, id: u64) {
        let (out, rx) = mpsc::channel(1024);
        self.st.handle(Event::WorkerJoined {
            id,
            reg: reg(&format!("n{id}")),
            out,
            conn: None,
        });
        self.outboxes.insert(id, rx);
        self.st.handle(Event::FromWorker {
            id,
            msg: WorkerMsg::Slots { free: 2 },
        });
    }

    /// Feeds planning/merge events back until `done` has an answer.
    async fn pump(&mut self, done: &mut oneshot::Receiver<ToClient>) -> Option<ToClient> {
        loop {
            if let Ok(m) = done.try_recv() {
                return Some(m);
            }
            match tokio::time::timeout(Duration::from_millis(20), self.events.recv()).await {
                Ok(Some(ev)) => self.st.handle(ev),
                Ok(None) => return None,
                Err(_) => return None,
            }
        }
    }

    /// What worker `id` was sent since last time.
    fn inbox(&mut self, id: u64) -> Vec<ToWorker> {
        let mut v = Vec::new();
        if let Some(rx) = self.outboxes.get_mut(&id) {
            while let Ok(f) = rx.try_recv() {
                v.push(decode(&f));
            }
        }
        v
    }

    /// Worker `id` acts on its inbox: checks plans, computes assignments (at most `limit`).
    fn work(&mut self, id: u64, limit: usize) -> usize {
        let mut computed = 0;
        for m in self.inbox(id) {
            match m {
                ToWorker::Plan { query, plan } => {
                    self.plans.insert(id, std::sync::Arc::from(plan));
                    self.st.handle(Event::FromWorker {
                        id,
                        msg: WorkerMsg::PlanChecked {
                            query,
                            unreadable: vec![],
                        },
                    });
                }
                ToWorker::Assign { query, tasks } => {
                    for t in tasks {
                        if computed >= limit {
                            continue;
                        }
                        computed += 1;
                        let plan = self.plans[&id].clone();
                        let partial = aggregate::run_partition(&plan, &t.partition).expect("run");
                        self.st.handle(Event::FromWorker {
                            id,
                            msg: WorkerMsg::Result(Box::new(TaskResult {
                                query,
                                task: t.task,
                                attempt: t.attempt,
                                partial,
                                seconds: 0.0,
                            })),
                        });
                        self.st.handle(Event::FromWorker {
                            id,
                            msg: WorkerMsg::Slots { free: 1 },
                        });
                    }
                }
                _ => {}
            }
        }
        computed
    }
}

fn submit(h: &mut Harness, q: Query) -> oneshot::Receiver<ToClient> {
    let (ptx, _prx) = mpsc::channel(64);
    let (dtx, drx) = oneshot::channel();
    h.st.handle(Event::Submit {
        query: q,
        options: QueryOptions::default(),
        progress: ptx,
        done: dtx,
    });
    drx
}

fn expected(q: &Query) -> aggregate::QueryResult {
    let plan = aggregate::plan(q, 1 << 20).expect("plan");
    aggregate::execute(&plan, &aggregate::ExecOptions::default()).expect("execute")
}

#[tokio::test]
async fn parity_reruns_and_a_lost_worker_still_give_the_exact_result() {
    let d = tempfile::tempdir().expect("tmp");
    let path = d.path().join("q.csv");
    write_quoted(&path, 200);
    let q = Query::value_counts(
        vec![path.to_string_lossy().into_owned()],
        Column::Name("payment_type".into()),
    );
    let mut h = Harness::new();
    h.join(1);
    h.join(2);
    let mut done = submit(&mut h, q.clone());
    let mut answer = h.pump(&mut done).await;
    let mut rounds = 0;
    let mut lost = false;
    while answer.is_none() {
        rounds += 1;
        assert!(rounds < 10_000, "the query does not finish");
        // Worker 2 vanishes with its tasks after a few rounds; worker 1 does the rest.
        if rounds == 5 && !lost {
            h.inbox(2);
            h.st.handle(Event::WorkerLeft {
                id: 2,
                why: "test".into(),
            });
            lost = true;
        }
        h.work(1, usize::MAX);
        if !lost {
            h.work(2, usize::MAX);
        }
        answer = h.pump(&mut done).await;
    }
    let Some(ToClient::Done(report)) = answer else {
        panic!("query failed: {answer:?}");
    };
    assert_eq!(report.result.0, expected(&q));
    let parity = report
        .reruns
        .iter()
        .filter(|r| r.reason == RerunReason::WrongParity)
        .count();
    assert!(
        parity > 0,
        "64-byte partitions of quoted rows must need parity re-runs"
    );
    assert!(
        report
            .reruns
            .iter()
            .any(|r| matches!(r.reason, RerunReason::WorkerLost { worker: 2, .. })),
        "{:?}",
        report.reruns
    );
    assert_eq!(h.st.live_workers(), 1);
}

#[tokio::test]
async fn stale_results_are_dropped_and_failures_on_every_worker_fail_the_query() {
    let d = tempfile::tempdir().expect("tmp");
    let path = d.path().join("a.csv");
    std::fs::write(&path, "k\n1\n2\n2\n").expect("write");
    let q = Query::value_counts(
        vec![path.to_string_lossy().into_owned()],
        Column::Name("k".into()),
    );
    let mut h = Harness::new();
    h.join(1);
    h.join(2);
    let mut done = submit(&mut h, q);
    assert!(h.pump(&mut done).await.is_none());
    h.work(1, 0);
    h.work(2, 0);
    assert!(h.pump(&mut done).await.is_none());
    // Whatever a worker is assigned, it fails (and reports it twice: the second is stale).
    // With two workers both failing the task, no one is left to try it: the query fails.
    let mut failures = 0;
    let mut answer = None;
    for _ in 0..10 {
        for id in [1u64, 2] {
            for m in h.inbox(id) {
                let ToWorker::Assign { query, tasks } = m else {
                    continue;
                };
                for t in tasks {
                    failures += 1;
                    for error in [
                        format!("{}: cannot read: gone", path.display()),
                        "stale".into(),
                    ] {
                        h.st.handle(Event::FromWorker {
                            id,
                            msg: WorkerMsg::Failed(TaskFailure {
                                query,
                                task: t.task,
                                attempt: t.attempt,
                                error,
                                path: Some(path.clone()),
                            }),
                        });
                    }
                }
            }
        }
        answer = h.pump(&mut done).await;
        if answer.is_some() {
            break;
        }
    }
    assert_eq!(failures, 2, "one failure per worker");
    let answer = answer.expect("an answer");
    let ToClient::Failed(f) = answer else {
        panic!("expected a failure, got {answer:?}");
    };
    assert!(f.error.contains("a.csv"), "{}", f.error);
    assert_eq!(f.files, vec![path]);
}

#[tokio::test]
async fn unreadable_files_are_named_before_any_work() {
    let d = tempfile::tempdir().expect("tmp");
    let a = d.path().join("a.csv");
    let b = d.path().join("b.csv");
    std::fs::write(&a, "k\n1\n").expect("write");
    std::fs::write(&b, "k\n2\n").expect("write");
    let q = Query::value_counts(
        vec![
            a.to_string_lossy().into_owned(),
            b.to_string_lossy().into_owned(),
        ],
        Column::Name("k".into()),
    );
    let mut h = Harness::new();
    h.join(1);
    h.join(2);
    let mut done = submit(&mut h, q);
    assert!(h.pump(&mut done).await.is_none());
    for id in [1u64, 2] {
        for m in h.inbox(id) {
            if let ToWorker::Plan { query, .. } = m {
                let unreadable = if id == 1 {
                    vec![crate::protocol::FileProblem {
                        path: b.clone(),
                        error: "Permission denied".into(),
                    }]
                } else {
                    vec![]
                };
                h.st.handle(Event::FromWorker {
                    id,
                    msg: WorkerMsg::PlanChecked { query, unreadable },
                });
            }
        }
    }
    let answer = h.pump(&mut done).await.expect("an answer");
    let ToClient::Failed(f) = answer else {
        panic!("expected a failure, got {answer:?}");
    };
    assert!(
        f.error.contains("b.csv") && f.error.contains("n1"),
        "{}",
        f.error
    );
    // No worker got an assignment.
    for id in [1u64, 2] {
        assert!(
            !h.inbox(id)
                .iter()
                .any(|m| matches!(m, ToWorker::Assign { .. }))
        );
    }
}

fn submit_with(h: &mut Harness, q: Query, options: QueryOptions) -> oneshot::Receiver<ToClient> {
    let (ptx, _prx) = mpsc::channel(64);
    let (dtx, drx) = oneshot::channel();
    h.st.handle(Event::Submit {
        query: q,
        options,
        progress: ptx,
        done: dtx,
    });
    drx
}

fn one_file_query(d: &Path) -> Query {
    let path = d.join("c.csv");
    write_quoted(&path, 50);
    Query::value_counts(
        vec![path.to_string_lossy().into_owned()],
        Column::Name("payment_type".into()),
    )
}

fn cancel(h: &mut Harness, query: u64) -> bool {
    let (tx, mut rx) = oneshot::channel();
    h.st.handle(Event::Cancel {
        query,
        reason: "a client asked".into(),
        reply: Some(tx),
    });
    rx.try_recv().expect("answered at once")
}

#[tokio::test]
async fn a_cancelled_query_stops_on_every_worker_and_the_next_one_starts() {
    let d = tempfile::tempdir().expect("tmp");
    let q = one_file_query(d.path());
    let mut h = Harness::new();
    h.join(1);
    h.join(2);
    let mut first = submit(&mut h, q.clone());
    let mut second = submit(&mut h, q.clone());
    let mut third = submit(&mut h, q.clone());
    assert!(h.pump(&mut first).await.is_none());
    // Both workers check the plan and get work; nobody computes anything.
    h.work(1, 0);
    h.work(2, 0);
    assert!(cancel(&mut h, 1));
    let Some(ToClient::Failed(f)) = h.pump(&mut first).await else {
        panic!("the cancelled query must fail");
    };
    assert!(f.error.contains("cancelled"), "{}", f.error);
    // A queued query can be cancelled too; one that ended cannot.
    assert!(cancel(&mut h, 3));
    let Ok(ToClient::Failed(f)) = third.try_recv() else {
        panic!("the cancelled queued query must fail");
    };
    assert!(f.error.contains("cancelled before it ran"), "{}", f.error);
    assert!(!cancel(&mut h, 1));
    // Every worker was told to drop query 1, and query 2 is being planned already.
    assert!(h.pump(&mut second).await.is_none());
    for id in [1u64, 2] {
        let inbox = h.inbox(id);
        assert!(
            inbox.contains(&ToWorker::Cancel { query: 1 }),
            "worker {id}: {inbox:?}"
        );
        assert!(
            inbox
                .iter()
                .any(|m| matches!(m, ToWorker::Plan { query: 2, .. })),
            "worker {id}: {inbox:?}"
        );
        self_check(&mut h, id, 2);
        // Its skipped tasks of query 1 give the worker its slots back.
        h.st.handle(Event::FromWorker {
            id,
            msg: WorkerMsg::Slots { free: 2 },
        });
    }
    let mut answer = h.pump(&mut second).await;
    for _ in 0..1_000 {
        if answer.is_some() {
            break;
        }
        h.work(1, usize::MAX);
        h.work(2, usize::MAX);
        answer = h.pump(&mut second).await;
    }
    let Some(ToClient::Done(report)) = answer else {
        panic!("the next query must run: {answer:?}");
    };
    assert_eq!(report.result.0, expected(&q));
}

/// Worker `id` answers the plan check of `query` (its inbox was read already).
fn self_check(h: &mut Harness, id: u64, query: u64) {
    h.st.handle(Event::FromWorker {
        id,
        msg: WorkerMsg::PlanChecked {
            query,
            unreadable: vec![],
        },
    });
}

#[tokio::test]
async fn a_gone_submitter_or_a_timeout_cancels_the_query() {
    let d = tempfile::tempdir().expect("tmp");
    let q = one_file_query(d.path());
    let mut h = Harness::new();
    h.join(1);
    // The submitter goes away while its query runs: the next tick cancels it.
    let gone = submit(&mut h, q.clone());
    let mut waiting = submit_with(
        &mut h,
        q.clone(),
        QueryOptions {
            timeout_ms: Some(1_000),
            ..QueryOptions::default()
        },
    );
    drop(gone);
    h.st.tick(std::time::Instant::now());
    assert!(
        h.inbox(1).contains(&ToWorker::Cancel { query: 1 }),
        "query 1 is cancelled on the workers"
    );
    // Query 2 runs next, and its time is up two seconds later.
    assert!(h.pump(&mut waiting).await.is_none());
    h.st.tick(std::time::Instant::now() + Duration::from_secs(2));
    let Some(ToClient::Failed(f)) = h.pump(&mut waiting).await else {
        panic!("a query past its timeout fails");
    };
    assert!(f.error.contains("timeout of 1 s"), "{}", f.error);
    assert!(h.inbox(1).contains(&ToWorker::Cancel { query: 2 }));
}

#[tokio::test]
async fn a_task_stuck_on_its_worker_is_given_to_another_and_its_late_result_dropped() {
    let d = tempfile::tempdir().expect("tmp");
    let path = d.path().join("s.csv");
    std::fs::write(&path, "k\n1\n2\n1\n").expect("write");
    let q = Query::value_counts(
        vec![path.to_string_lossy().into_owned()],
        Column::Name("k".into()),
    );
    let mut h = Harness::new();
    h.join(1);
    let mut done = submit(&mut h, q.clone());
    assert!(h.pump(&mut done).await.is_none());
    // Worker 1 checks the plan, takes the one task and never answers for it.
    let mut stuck = None;
    for m in h.inbox(1) {
        match m {
            ToWorker::Plan { query, .. } => self_check(&mut h, 1, query),
            ToWorker::Assign { tasks, .. } => stuck = tasks.first().copied(),
            _ => {}
        }
    }
    for m in h.inbox(1) {
        if let ToWorker::Assign { tasks, .. } = m {
            stuck = tasks.first().copied();
        }
    }
    let stuck = stuck.expect("an assignment");
    h.join(2);
    // Past the stall deadline the task fails on worker 1 and goes to worker 2.
    h.st.tick(std::time::Instant::now() + Duration::from_secs(4));
    let mut answer = h.pump(&mut done).await;
    for _ in 0..100 {
        if answer.is_some() {
            break;
        }
        h.work(2, usize::MAX);
        answer = h.pump(&mut done).await;
    }
    let Some(ToClient::Done(report)) = answer else {
        panic!("the stuck task must be re-run: {answer:?}");
    };
    assert_eq!(report.result.0, expected(&q));
    assert!(
        report.reruns.iter().any(|r| matches!(
            &r.reason,
            RerunReason::Failed { worker: 1, error } if error.contains("no result 3 s after")
        )),
        "{:?}",
        report.reruns
    );
    // Its late result, when it finally comes, changes nothing.
    let plan = aggregate::plan(&q, 64).expect("plan");
    let partial = aggregate::run_partition(&plan, &stuck.partition).expect("run");
    h.st.handle(Event::FromWorker {
        id: 1,
        msg: WorkerMsg::Result(Box::new(TaskResult {
            query: 1,
            task: stuck.task,
            attempt: stuck.attempt,
            partial,
            seconds: 0.0,
        })),
    });
}

/// The whole stack in one process: coordinator, two workers, a client, over loopback QUIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_workers_and_client_over_quic() {
    let t = tempfile::tempdir().expect("tmp");
    let dir = ClusterDir::create_in(t.path(), "c").expect("cluster dir");
    dir.create_secret().expect("secret");
    let data = t.path().join("q.csv");
    write_quoted(&data, 500);
    let mut opts = CoordinatorOptions::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    opts.partition_bytes = 512;
    let coordinator = Coordinator::bind(dir.clone(), opts).expect("bind");
    let (ctl, ctl_rx) = mpsc::channel(1);
    let server = tokio::spawn(coordinator.run(ctl_rx));
    let mut workers = Vec::new();
    let mut worker_ctls = Vec::new();
    for _ in 0..2 {
        let (wtx, wrx) = mpsc::channel(1);
        let mut wo = crate::worker::WorkerOptions::new(NonZeroUsize::MIN);
        wo.orphan_timeout = Duration::from_secs(5);
        workers.push(tokio::spawn(crate::worker::run(dir.clone(), wo, wrx)));
        worker_ctls.push(wtx);
    }
    let client = ClusterClient::connect(&dir).await.expect("client");
    let mut sub = client.subscribe().await.expect("subscribe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = tokio::time::timeout_at(deadline, sub.next())
            .await
            .expect("two workers in time")
            .expect("snapshot")
            .expect("snapshot ok");
        if s.live_workers().count() == 2 {
            assert_eq!(s.cores, 2);
            break;
        }
    }
    let q = Query::value_counts(
        vec![data.to_string_lossy().into_owned()],
        Column::Name("payment_type".into()),
    );
    let report = client
        .submit(q.clone(), QueryOptions::default())
        .await
        .expect("submit")
        .wait()
        .await
        .expect("query");
    assert_eq!(report.result(), &expected(&q));
    assert!(report.workers >= 1);
    let ledger = std::fs::read_to_string(dir.ledger_file()).unwrap_or_default();
    // The ledger is written in the background; give it a moment.
    let mut ledger = ledger;
    for _ in 0..50 {
        if !ledger.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        ledger = std::fs::read_to_string(dir.ledger_file()).unwrap_or_default();
    }
    assert!(ledger.contains("\"ok\":true"), "{ledger}");
    client.shutdown().await.expect("shutdown");
    for w in workers {
        let exit = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("worker exits")
            .expect("join");
        assert!(exit.is_ok(), "{exit:?}");
    }
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("coordinator exits")
        .expect("join")
        .expect("ok");
    assert!(!dir.coordinator_file().exists());
    drop(ctl);
    drop(worker_ctls);
}

/// A result too large for one message reaches the client as a failure that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_large_to_send_is_a_failure_that_says_why() {
    let t = tempfile::tempdir().expect("tmp");
    let dir = ClusterDir::create_in(t.path(), "big").expect("cluster dir");
    dir.create_secret().expect("secret");
    // 200,000 distinct 90-byte keys: each 1 MiB partition's partial fits in a message, the
    // merged result does not.
    let data = t.path().join("keys.csv");
    let mut s = String::from("k\n");
    for i in 0..200_000u32 {
        s.push_str(&format!("{i:090}\n"));
    }
    std::fs::write(&data, s).expect("write");
    let mut opts = CoordinatorOptions::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    opts.partition_bytes = 1 << 20;
    let coordinator = Coordinator::bind(dir.clone(), opts).expect("bind");
    let (ctl, ctl_rx) = mpsc::channel(1);
    let server = tokio::spawn(coordinator.run(ctl_rx));
    let (wtx, wrx) = mpsc::channel(1);
    let worker = tokio::spawn(crate::worker::run(
        dir.clone(),
        crate::worker::WorkerOptions::new(NonZeroUsize::MIN),
        wrx,
    ));
    let client = ClusterClient::connect(&dir).await.expect("client");
    let q = Query::value_counts(
        vec![data.to_string_lossy().into_owned()],
        Column::Name("k".into()),
    );
    let err = client
        .submit(q, QueryOptions::default())
        .await
        .expect("submit")
        .wait()
        .await
        .expect_err("too large to send");
    let msg = err.to_string();
    assert!(
        msg.contains("too many groups (200000)") && msg.contains("over the 16 MiB"),
        "{msg}"
    );
    client.shutdown().await.expect("shutdown");
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    drop((ctl, wtx));
}

#[tokio::test]
async fn a_worker_cut_off_and_back_is_a_new_worker_and_the_user_is_told() {
    let mut h = Harness::new();
    h.join(1);
    h.join(2);
    // Worker 2 (n2, pid 1) goes silent and is declared lost.
    h.st.handle(Event::WorkerLeft {
        id: 2,
        why: "heartbeat timeout".into(),
    });
    assert!(h.st.snapshot().warnings.is_empty());
    // The same process connects again once the partition heals.
    let (out, rx) = mpsc::channel(1024);
    h.st.handle(Event::WorkerJoined {
        id: 3,
        reg: reg("n2"),
        out,
        conn: None,
    });
    h.outboxes.insert(3, rx);
    let s = h.st.snapshot();
    assert_eq!(h.st.live_workers(), 2);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.starts_with("n2: worker 2 (pid 1) was declared lost")
                && w.ends_with("it rejoined as worker 3")),
        "{:?}",
        s.warnings
    );
    // Another process on that node is just a new worker.
    let (out, rx) = mpsc::channel(1024);
    h.st.handle(Event::WorkerJoined {
        id: 4,
        reg: Registration {
            pid: 2,
            ..reg("n2")
        },
        out,
        conn: None,
    });
    h.outboxes.insert(4, rx);
    assert_eq!(h.st.snapshot().warnings.len(), 1);
}
