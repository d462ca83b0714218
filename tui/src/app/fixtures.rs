//! Sample states of every screen, with a fixed clock and made-up hosts: what the snapshot
//! tests draw and what `corral bench-render` times. Nothing here is shown to a user.

use corral_core::aggregate::Column;
use corral_core::aggregate::Query;
use corral_core::config::Defaults;
use corral_core::scaling::Point;
use corral_core::slurm::{Node, Partition};

use super::state::{App, Attached, Screen};
use super::view::{
    Backend, ClusterRow, ClusterSnapshot, ClusterState, JobStatusView, Limits, QueryProgress,
    ResultView, TaskCounts, WorkerView,
};
use super::wizard::SlurmReach;

/// The fixed "now" of every fixture: 2026-01-01 00:00:00 UTC.
pub const NOW: u64 = 1_767_225_600;

pub fn app() -> App {
    let mut app = App::new(NOW, Defaults::default());
    app.home.loaded = true;
    // A small machine, as the one the local wizard was first tried on.
    app.machine_cores = 2;
    app
}

/// The project's SLURM test bed: `debug` (default, 4 nodes × 16 CPUs) and `small` (1 node,
/// 8 CPUs per node, 12 hours).
pub fn limits() -> Limits {
    let debug = Partition::from_line(
        "PartitionName=debug AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=n[1-4] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=64 TotalNodes=4 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED",
    );
    let small = Partition::from_line(
        "PartitionName=small AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=1 MaxTime=12:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=8 Nodes=n1 PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=16 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED",
    );
    let nodes = (1..=4)
        .map(|i| Node {
            name: format!("n{i}"),
            cpus: 16,
            alloc_cpus: 0,
            real_memory_mb: 4000,
            alloc_memory_mb: 0,
            state: "IDLE".into(),
            partitions: if i == 1 {
                vec!["debug".into(), "small".into()]
            } else {
                vec!["debug".into()]
            },
        })
        .collect();
    Limits {
        partitions: debug.into_iter().chain(small).collect(),
        nodes,
    }
}

pub fn cluster_rows() -> Vec<ClusterRow> {
    vec![
        ClusterRow {
            name: "taxi".into(),
            backend: Backend::Slurm,
            state: ClusterState::Running,
            job_ids: vec![1041, 1057],
            workers_connected: Some(9),
            workers_asked: 10,
            cores: 20,
            walltime_end: Some(NOW + 20 * 3600 + 5 * 60),
            last_query_at: Some(NOW - 125),
        },
        ClusterRow {
            name: "big-join".into(),
            backend: Backend::Slurm,
            state: ClusterState::Pending,
            job_ids: vec![1060],
            workers_connected: None,
            workers_asked: 32,
            cores: 128,
            walltime_end: None,
            last_query_at: None,
        },
        ClusterRow {
            name: "laptop".into(),
            backend: Backend::Local,
            state: ClusterState::Ended,
            job_ids: vec![],
            workers_connected: Some(0),
            workers_asked: 2,
            cores: 2,
            walltime_end: None,
            last_query_at: Some(NOW - 3 * 86_400),
        },
    ]
}

pub fn home() -> App {
    let mut app = app();
    app.home.clusters = cluster_rows();
    app.home.selected = 0;
    app
}

pub fn wizard() -> App {
    let mut app = home();
    app.limits = Some(limits());
    app.wizard = super::wizard::Wizard::new(&Defaults::default(), &app.cluster_names());
    app.wizard.slurm = SlurmReach::Ready;
    app.wizard.workers = "16".into();
    app.wizard.partition = Some("small".into());
    app.wizard.focus = 0;
    app.nav = vec![Screen::Home, Screen::Wizard];
    app
}

pub fn worker(i: usize, alive: bool) -> WorkerView {
    WorkerView {
        node: format!("n{}", i / 8 + 1),
        task: Some(i as u32),
        cores: 2,
        cpu_pct: 150.0 + (i % 7) as f32 * 7.0,
        rss_bytes: 180_000_000 + (i as u64 % 5) * 10_000_000,
        tasks_done: 40 + (i as u64 % 13),
        bytes_per_s: 420e6 + (i % 9) as f64 * 11e6,
        last_heartbeat: if alive { NOW - 1 } else { NOW - 42 },
        alive,
        left: false,
    }
}

pub fn snapshot(workers: usize) -> ClusterSnapshot {
    ClusterSnapshot {
        name: "taxi".into(),
        backend: Backend::Slurm,
        state: ClusterState::Running,
        address: Some("10.0.0.1:40123".into()),
        authenticated: true,
        not_connected: None,
        walltime_end: Some(NOW + 20 * 3600 + 5 * 60),
        job_ids: vec![1041],
        workers_asked: workers as u32,
        workers: (0..workers).map(|i| worker(i, i != 2)).collect(),
        tasks: TaskCounts {
            queued: 120,
            running: 16,
            done: 342,
            failed: 1,
        },
        query: Some(QueryProgress {
            label: "payment_type count".into(),
            partitions_done: 342,
            partitions_total: 478,
            rows: 21_400_000,
            bytes: 2_870_000_000,
            rows_per_s: 6_100_000.0,
            bytes_per_s: 820e6,
        }),
        core_hours_used: Some(12.5),
        dashboard: false,
    }
}

pub fn taxi_query() -> Query {
    Query::value_counts(
        vec!["/data/taxi/*.csv".into()],
        Column::Name("payment_type".into()),
    )
}

pub fn result() -> ResultView {
    ResultView {
        columns: vec!["payment_type".into(), "count".into()],
        rows: vec![
            vec!["1".into(), "1247831".into()],
            vec!["2".into(), "731905".into()],
            vec!["3".into(), "12022".into()],
            vec!["4".into(), "3841".into()],
            vec!["5".into(), "2".into()],
        ],
        good_rows: 1_995_601,
        bad_rows: vec![
            ("wrong_field_count".into(), 3),
            ("malformed_quote".into(), 1),
        ],
        files: 4,
        bytes: 287_000_000,
        partitions: 478,
        seconds: 0.41,
        workers: 9,
        cores: 18,
    }
}

pub fn dashboard(workers: usize) -> App {
    let mut app = home();
    let mut a = Attached::new("taxi".into(), Backend::Slurm, NOW - 600);
    let snap = snapshot(workers);
    a.progress = snap.query.clone();
    a.throughput = (0..120)
        .map(|i| 300_000_000 + (i % 17) * 40_000_000)
        .collect();
    a.snapshot = Some(snap);
    a.last_query = Some(taxi_query());
    a.query_running = true;
    a.result = Some(Ok(result()));
    app.attached = Some(a);
    app.nav = vec![Screen::Home, Screen::Dashboard];
    app
}

/// Dask's view of a Dask cluster: three Dask workers (one with an erred task) and the task
/// stream's totals of two prefixes.
#[cfg(test)]
pub fn dask_view() -> crate::app::view::DaskView {
    use crate::app::view::{DaskView, DaskWorker};
    use corral_core::dashboard::dask::{DaskCounts, PrefixTotals};
    let worker = |i: u64, erred: u64| DaskWorker {
        name: format!("tls://10.0.0.{i}:40{i:02}1"),
        host: format!("10.0.0.{i}"),
        nthreads: 2,
        memory_bytes: (300 + 40 * i) << 20,
        memory_limit: 4 << 30,
        processing: 2 + i,
        in_memory: 10 * i,
        erred,
        status: "running".into(),
    };
    DaskView {
        workers: vec![worker(1, 0), worker(2, 1), worker(3, 0)],
        counts: DaskCounts {
            processing: 9,
            in_memory: 60,
            erred: 1,
            waiting: 4,
            released: 0,
            clients: 1,
            bytes: 12 << 20,
        },
        prefixes: vec![
            PrefixTotals {
                prefix: "read-csv".into(),
                done: 48,
                erred: 1,
                compute_seconds: 31.5,
            },
            PrefixTotals {
                prefix: "value-counts-chunk".into(),
                done: 48,
                erred: 0,
                compute_seconds: 2.25,
            },
        ],
        metrics_missing: None,
    }
}

/// The dashboard of a Dask cluster (it has a dashboard; Dask's view was read).
#[cfg(test)]
pub fn dask_dashboard() -> App {
    let mut app = dashboard(3);
    if let Some(a) = app.attached.as_mut() {
        if let Some(s) = a.snapshot.as_mut() {
            s.dashboard = true;
        }
        a.dask = Some(Ok(Box::new(dask_view())));
    }
    app
}

/// What the watcher reports of a cluster that has ended: no coordinator, so no workers.
#[cfg(test)]
pub fn ended_snapshot() -> ClusterSnapshot {
    let mut s = snapshot(0);
    s.state = ClusterState::Ended;
    s.address = None;
    s.authenticated = false;
    s.not_connected = Some("the cluster has ended".into());
    s.walltime_end = None;
    s.workers_asked = 4;
    s.tasks = TaskCounts::default();
    s.query = None;
    s
}

pub fn pending() -> App {
    let mut app = home();
    let mut a = Attached::new("big-join".into(), Backend::Slurm, NOW - 200);
    a.job = Some(JobStatusView {
        job_id: 1060,
        state: "PENDING".into(),
        reason_code: "Resources".into(),
        reason: corral_core::slurm::reason::explain("Resources").sentence(),
        never_starts: false,
        submitted_at: Some(NOW - 194),
    });
    app.attached = Some(a);
    app.nav = vec![Screen::Home, Screen::Pending];
    app
}

pub fn scaling() -> App {
    let mut app = dashboard(9);
    if let Some(a) = app.attached.as_mut() {
        a.sweep.query = Some(taxi_query());
        a.sweep.planned = vec![1, 2, 4, 8, 16];
        a.sweep.points = [(1, 40.0), (2, 20.4), (4, 10.6), (8, 5.9), (16, 5.2)]
            .into_iter()
            .map(|(cores, seconds)| Point { cores, seconds })
            .collect();
    }
    app.nav.push(Screen::Scaling);
    app
}
