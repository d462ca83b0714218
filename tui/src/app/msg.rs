//! The TUI's inputs (`Msg`) and effects (`Cmd`): the whole boundary between the pure app and
//! the world. `App::update` turns a `Msg` into state changes and `Cmd`s; the effects executor
//! turns each `Cmd` into real calls and posts what happened back as `Msg`s.

use corral_core::aggregate::Query;
use corral_core::model::ClusterSpec;
use corral_core::scaling::Point;
use crossterm::event::{KeyEvent, MouseEvent};

use super::view::{
    AdaptView, Backend, CancelReport, ClusterRow, ClusterSnapshot, JobStatusView, Limits,
    QueryProgress, ResultView,
};

/// Something that happened: a key, a timer, or the answer to a `Cmd`.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// The terminal changed size (the next draw uses the new size; nothing else to do).
    Resize(u16, u16),
    /// Something animates (see `App::tick_interval`); time has moved on.
    Tick,
    /// The user's clusters, for Home.
    Clusters(Result<Vec<ClusterRow>, String>),
    /// Partitions and nodes from SLURM, for the wizard's verdict and picker.
    Limits(Result<Limits, String>),
    /// `sbatch --test-only`'s answer for `spec`.
    StartEstimate {
        spec: ClusterSpec,
        result: Result<String, String>,
    },
    /// The cluster was created and its first job submitted (or its processes started).
    Submitted {
        name: String,
        result: Result<Backend, String>,
    },
    /// Where the attached cluster's head job is.
    JobStatus {
        name: String,
        status: JobStatusView,
    },
    /// A fresh view of the attached cluster.
    Snapshot(ClusterSnapshot),
    /// The subscription to `name` ended (connection lost, cluster gone).
    Detached {
        name: String,
        reason: String,
    },
    QueryProgress {
        name: String,
        progress: QueryProgress,
    },
    QueryDone {
        name: String,
        result: Result<ResultView, String>,
    },
    Scaled {
        name: String,
        result: Result<String, String>,
    },
    Cancelled {
        name: String,
        result: Result<CancelReport, String>,
    },
    /// One run of a running sweep.
    SweepPoint {
        name: String,
        step: crate::sweep::Step,
    },
    SweepDone {
        name: String,
        result: Result<(), String>,
    },
    /// Earlier runs of the same query (from the ledger).
    History {
        name: String,
        points: Vec<Point>,
    },
    Logs {
        name: String,
        result: Result<Vec<String>, String>,
    },
    /// Adaptive scaling of `name`: its range and latest decision (from the supervisor's
    /// decisions log), or `None` when it does not adapt.
    Adapt {
        name: String,
        adapt: Option<AdaptView>,
    },
    /// Something the user should know even when not looking (ready, never starts, walltime
    /// ending, query finished, node lost), claimed for this terminal: shown in the flash line,
    /// and `alert` (a bell and OSC 9/777) written to the terminal.
    Notice {
        name: String,
        title: String,
        body: String,
        alert: String,
    },
    /// Dask's view of the attached Dask cluster, read through the dashboard tunnel (every
    /// couple of seconds while attached and the cluster has a dashboard).
    Dask {
        name: String,
        result: Result<Box<super::view::DaskView>, String>,
    },
    /// An effect failed outside any of the above (e.g. "not available yet: …").
    Error(String),
}

/// Something the app wants done. None of these run inside `update`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    ListClusters,
    /// Partitions and nodes (`scontrol show partition|node -o`).
    FetchLimits,
    /// `sbatch --test-only` for a clean request: when would it start?
    EstimateStart(ClusterSpec),
    Submit {
        spec: ClusterSpec,
        backend: Backend,
    },
    /// Watch `name`: job state until it runs, then the coordinator's snapshot stream.
    Attach {
        name: String,
    },
    /// Stop watching `name` (the cluster keeps running).
    Detach {
        name: String,
    },
    RunQuery {
        name: String,
        query: Query,
    },
    /// Add (`delta > 0`) or remove workers.
    Scale {
        name: String,
        delta: i32,
    },
    Cancel {
        name: String,
    },
    /// Run `query` once per core count, restricting the workers used.
    Sweep {
        name: String,
        query: Query,
        cores: Vec<u32>,
    },
    /// Earlier runtimes of `query` from the cluster's ledger.
    LoadHistory {
        name: String,
        query: Query,
    },
    ReadLogs {
        name: String,
    },
    /// Write these bytes to the terminal between frames (a notice's bell and escapes; the
    /// runtime does it, since it owns the terminal).
    Alert(String),
    /// Leave the TUI (clusters keep running).
    Quit,
}
