//! The data the screens show, in the TUI's own terms.
//!
//! Everything that arrives from SLURM, the cluster directory or a coordinator is converted into
//! these types in one place (`convert`), so a change of the wire protocol touches that module
//! and not every screen. Times are Unix seconds carried as data: the screens compute ages and
//! time left from `App::now`, never from the clock, which keeps rendering pure and snapshots
//! stable.

/// Seconds since the Unix epoch.
pub type Unix = u64;

/// Where a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Processes on this machine (no SLURM).
    Local,
    Slurm,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Slurm => "SLURM",
        }
    }
}

/// A cluster's state as the user thinks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClusterState {
    Pending,
    Starting,
    Running,
    Ending,
    Ended,
    Failed,
    Unknown,
}

impl ClusterState {
    pub fn label(self) -> &'static str {
        match self {
            ClusterState::Pending => "pending",
            ClusterState::Starting => "starting",
            ClusterState::Running => "running",
            ClusterState::Ending => "ending",
            ClusterState::Ended => "ended",
            ClusterState::Failed => "failed",
            ClusterState::Unknown => "unknown",
        }
    }

    /// A symbol that carries the state without colour (`NO_COLOR`, `--color never`).
    pub fn symbol(self) -> &'static str {
        match self {
            ClusterState::Pending => "◌",
            ClusterState::Starting => "◐",
            ClusterState::Running => "●",
            ClusterState::Ending => "◑",
            ClusterState::Ended => "○",
            ClusterState::Failed => "✗",
            ClusterState::Unknown => "?",
        }
    }

    /// Still holding (or about to hold) resources: worth a cancel.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ClusterState::Pending
                | ClusterState::Starting
                | ClusterState::Running
                | ClusterState::Ending
        )
    }
}

/// One line of the Home screen.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRow {
    pub name: String,
    pub backend: Backend,
    pub state: ClusterState,
    pub job_ids: Vec<u64>,
    pub workers_connected: Option<u32>,
    pub workers_asked: u32,
    pub cores: u64,
    /// When the walltime runs out (`None`: no limit known, or local).
    pub walltime_end: Option<Unix>,
    pub last_query_at: Option<Unix>,
}

/// One worker as the coordinator last reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub node: String,
    /// SLURM task id (`SLURM_PROCID`) when the worker runs under srun.
    pub task: Option<u32>,
    pub cores: u32,
    pub cpu_pct: f32,
    pub rss_bytes: u64,
    pub tasks_done: u64,
    pub bytes_per_s: f64,
    pub last_heartbeat: Unix,
    /// False once the coordinator has given up on it; dead workers stay listed, marked.
    pub alive: bool,
    /// Not alive because it left on purpose (scale-down), not because it was lost.
    pub left: bool,
}

/// The coordinator's task counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
}

/// The running query, as far as it got.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryProgress {
    pub label: String,
    pub partitions_done: u64,
    pub partitions_total: u64,
    pub rows: u64,
    pub bytes: u64,
    pub rows_per_s: f64,
    pub bytes_per_s: f64,
}

impl QueryProgress {
    pub fn ratio(&self) -> f64 {
        if self.partitions_total == 0 {
            0.0
        } else {
            (self.partitions_done as f64 / self.partitions_total as f64).clamp(0.0, 1.0)
        }
    }
}

/// What the dashboard shows of a live cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSnapshot {
    pub name: String,
    pub backend: Backend,
    pub state: ClusterState,
    /// `host:port` of the coordinator, once it listens.
    pub address: Option<String>,
    /// This TUI holds an authenticated connection to the coordinator.
    pub authenticated: bool,
    /// Why there is no live connection, when there is none.
    pub not_connected: Option<String>,
    pub walltime_end: Option<Unix>,
    pub job_ids: Vec<u64>,
    pub workers_asked: u32,
    pub workers: Vec<WorkerView>,
    pub tasks: TaskCounts,
    pub query: Option<QueryProgress>,
    pub core_hours_used: Option<f64>,
    /// The coordinator has a dashboard registered: a Dask cluster whose scheduler is up (the
    /// Dask panel reads it through the tunnel).
    pub dashboard: bool,
}

/// Dask's own view of a Dask cluster — its workers, tasks by state, the task stream's totals —
/// as read from the scheduler through the dashboard tunnel. Core's type is already the TUI's
/// terms (no wire format behind it), so it is used as it is.
pub use corral_core::dashboard::dask::{DaskView, DaskWorker};

impl ClusterSnapshot {
    pub fn live_workers(&self) -> u32 {
        self.workers.iter().filter(|w| w.alive).count() as u32
    }

    pub fn live_cores(&self) -> u64 {
        self.workers
            .iter()
            .filter(|w| w.alive)
            .map(|w| u64::from(w.cores))
            .sum()
    }

    pub fn bytes_per_s(&self) -> f64 {
        self.workers
            .iter()
            .filter(|w| w.alive)
            .map(|w| w.bytes_per_s)
            .sum()
    }
}

/// A SLURM job of the attached cluster, with its reason in plain words.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatusView {
    pub job_id: u64,
    /// SLURM's state word (`PENDING`, `RUNNING`, …, `GONE`).
    pub state: String,
    pub reason_code: String,
    /// The reason in plain words, with the suggested change (`reason::explain`).
    pub reason: String,
    pub never_starts: bool,
    pub submitted_at: Option<Unix>,
}

/// A finished query's result, ready for a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultView {
    /// Header: group-by columns, then aggregates.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub good_rows: u64,
    pub bad_rows: Vec<(String, u64)>,
    pub files: usize,
    pub bytes: u64,
    /// Partitions (tasks) the query was cut into.
    pub partitions: u64,
    pub seconds: f64,
    pub workers: u32,
    pub cores: u64,
}

impl ResultView {
    /// The finished query as the tasks gauge shows it: every partition done, with the result's
    /// rows (bad ones too, as progress counts them) and bytes over its runtime.
    pub fn final_progress(&self) -> QueryProgress {
        let rows = self.good_rows + self.bad_rows.iter().map(|(_, n)| n).sum::<u64>();
        let secs = self.seconds.max(0.001);
        QueryProgress {
            label: "query done".into(),
            partitions_done: self.partitions,
            partitions_total: self.partitions,
            rows,
            bytes: self.bytes,
            rows_per_s: rows as f64 / secs,
            bytes_per_s: self.bytes as f64 / secs,
        }
    }
}

/// How a cancel ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelReport {
    pub core_hours: f64,
    pub how: String,
}

/// What the wizard learnt from SLURM.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub partitions: Vec<corral_core::slurm::Partition>,
    pub nodes: Vec<corral_core::slurm::Node>,
}

/// Adaptive scaling of the attached cluster, for the dashboard's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptView {
    /// `1..8`.
    pub range: String,
    /// Decisions so far.
    pub decisions: usize,
    /// The latest: when, and what and why in words.
    pub last: Option<(Unix, String)>,
}
