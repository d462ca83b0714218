use super::*;
use crate::adapt::tests_support::{snapshot, worker};
use crate::model::JobId;
use crate::slurm::lifecycle::JobView;

fn observed(state: State, asked: u32, left: Option<u64>, jobs: Vec<(u64, &str, &str)>) -> Observed {
    Observed {
        state,
        detail: String::new(),
        asked_workers: asked,
        left_secs: left,
        jobs: jobs
            .into_iter()
            .map(|(id, st, reason)| JobView {
                id: JobId(id),
                state: st.into(),
                reason: reason.into(),
                elapsed_secs: 0,
                left_secs: None,
                cpus: 0,
                node_list: String::new(),
            })
            .collect(),
        core_hours: 0.0,
    }
}

fn kinds(v: &[Notice]) -> Vec<Kind> {
    v.iter().map(|n| n.kind).collect()
}

#[test]
fn ready_only_once_every_asked_worker_is_connected() {
    let mut d = Detector::new(10);
    let o = observed(State::Running, 2, Some(3600), vec![(5, "RUNNING", "None")]);
    let one = snapshot(vec![worker(1, WorkerState::Alive)], None, 0);
    assert!(d.detect("c", Some(&o), Some(&one)).is_empty());
    let two = snapshot(
        vec![worker(1, WorkerState::Alive), worker(2, WorkerState::Alive)],
        None,
        0,
    );
    let got = d.detect("c", Some(&o), Some(&two));
    assert_eq!(kinds(&got), [Kind::Ready]);
    assert_eq!(got[0].title, "corral: cluster c is ready");
    assert_eq!(got[0].key, "ready:n0:1");
}

#[test]
fn a_job_that_can_never_start_and_one_that_only_waits() {
    let mut d = Detector::new(10);
    let o = observed(
        State::Pending,
        2,
        None,
        vec![
            (5, "PENDING", "PartitionConfig"),
            (6, "PENDING", "Resources"),
        ],
    );
    let got = d.detect("c", Some(&o), None);
    assert_eq!(kinds(&got), [Kind::NeverStarts]);
    assert_eq!(got[0].key, "never-starts:5");
    assert!(
        got[0].body.starts_with("PartitionConfig — "),
        "{}",
        got[0].body
    );
}

#[test]
fn walltime_warning_inside_the_lead_time_only() {
    let mut d = Detector::new(10);
    let far = observed(State::Running, 1, Some(601), vec![(5, "RUNNING", "None")]);
    assert!(d.detect("c", Some(&far), None).is_empty());
    let near = observed(State::Running, 1, Some(599), vec![(5, "RUNNING", "None")]);
    let got = d.detect("c", Some(&near), None);
    assert_eq!(kinds(&got), [Kind::WalltimeEnding]);
    assert_eq!(got[0].title, "corral: cluster c ends in 10 minutes");
    assert_eq!(got[0].key, "walltime:5");
}

#[test]
fn queries_finished_since_the_first_look_and_lost_workers() {
    let mut d = Detector::new(10);
    let mut s = snapshot(vec![worker(1, WorkerState::Alive)], None, 0);
    s.queries_done = 4;
    // Four queries before this watcher started: not news.
    assert_eq!(kinds(&d.detect("c", None, Some(&s))), [Kind::Ready]);
    s.queries_done = 6;
    s.queries_failed = 1;
    s.workers.push(worker(2, WorkerState::Dead));
    let got = d.detect("c", None, Some(&s));
    assert_eq!(
        kinds(&got),
        [
            Kind::Ready,
            Kind::NodeLost,
            Kind::QueryFinished,
            Kind::QueryFinished,
            Kind::QueryFailed
        ]
    );
    assert_eq!(got[1].key, "lost:n0:1:2");
    assert_eq!(got[2].key, "query:n0:1:5");
    assert_eq!(got[3].key, "query:n0:1:6");
    // A new coordinator (another pid) starts counting again without announcing.
    s.coordinator_pid = 2;
    s.queries_done = 0;
    s.queries_failed = 0;
    s.workers.pop();
    assert_eq!(kinds(&d.detect("c", None, Some(&s))), [Kind::Ready]);
}

#[test]
fn a_notice_is_claimed_once_per_channel_even_by_another_detector() {
    let dir = tempfile::tempdir().expect("tmp");
    let n = Notice {
        key: "lost:node/1:2:3".into(),
        kind: Kind::NodeLost,
        cluster: "c".into(),
        title: "t".into(),
        body: "b".into(),
    };
    assert!(claim(dir.path(), Channel::Terminal, &n).expect("claim"));
    assert!(!claim(dir.path(), Channel::Terminal, &n).expect("again"));
    assert!(claim(dir.path(), Channel::Mail, &n).expect("other channel"));
    let file = dir.path().join("notified/terminal/lost:node_1:2:3");
    let saved: Notice =
        serde_json::from_str(&std::fs::read_to_string(file).expect("file")).expect("json");
    assert_eq!(saved, n);
}
