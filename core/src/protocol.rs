//! Every message of corral's wire protocol is defined here.
//!
//! The wire is QUIC with ALPN [`ALPN`]; on a stream, every message is one frame: a `u32`
//! big-endian length, then that many bytes of postcard-encoded payload (see
//! [`crate::transport`] for the codec). This module holds the envelope every connection starts
//! with — the version handshake ([`Hello`]), the proof of the cluster secret ([`AuthProof`]),
//! the close codes, the size limits — and every message exchanged after it, so that one file
//! shows the whole protocol:
//!
//! - **worker ↔ coordinator**, on the control stream in both directions: the worker sends
//!   [`WorkerMsg`]s (registration, a report every second, slot credits, plan checks, partial
//!   results, failures, warnings, goodbye), the coordinator sends [`ToWorker`]s (welcome, the
//!   plan once per query, assignments, cancel, drain, shutdown).
//! - **client ↔ coordinator**: one bidirectional stream per request. The client sends one
//!   [`ClientRequest`] and finishes its side; the coordinator answers with [`ToClient`]s and
//!   finishes its side when the request is over (a subscription lasts until the client stops).
//!   The one exception is [`ClientRequest::Dashboard`]: once the coordinator answers
//!   [`ToClient::DashboardOpen`], the stream carries raw bytes both ways, a TCP connection to the
//!   dashboard the coordinator registered itself (a client never names where it leads).
//!
//! Flow control of work is by credits: a worker grants [`WorkerMsg::Slots`] (one per core plus
//! one queued at start, one more per finished task), and the coordinator never assigns more
//! tasks than it was granted, so fast workers take more.
//!
//! Compatibility rules (postcard is not self-describing, so these are what keep old and new
//! binaries from misreading each other):
//! - the first field of [`Hello`] is `protocol_version` and stays first, as a `u32`, forever,
//!   so that any version can read any other's version number;
//! - [`AuthProof`] is 32 raw bytes in every version;
//! - any other change of a message bumps [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};

/// The QUIC application protocol. A peer offering anything else fails the TLS handshake.
/// The `/1` names the framing and the handshake; [`PROTOCOL_VERSION`] names the message set.
pub const ALPN: &[u8] = b"corral/1";

/// Version of the message set. Peers with different versions refuse each other with
/// [`CloseCode::VersionMismatch`]; `coordinator.json` also records it so a client can tell
/// before it connects.
pub const PROTOCOL_VERSION: u32 = 3;

/// The largest payload of one frame. Big enough for a partial result of a wide group-by,
/// small enough that a bogus length prefix cannot make a peer allocate without bound.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest frame accepted before the peer is authenticated: the handshake frames are
/// tiny, and a stranger must not make the coordinator buffer megabytes.
pub const MAX_HANDSHAKE_FRAME_LEN: usize = 4 * 1024;

/// Dashboard streams ([`ClientRequest::Dashboard`]) a coordinator carries at once, over all its
/// clients: a browser opens about six connections per page plus a websocket, so this is room
/// for several tabs; one more is refused with a message, never queued.
pub const MAX_DASHBOARD_STREAMS: usize = 64;

/// Bytes a dashboard stream copies at a time, in each direction, on each side (the QUIC and TCP
/// flow control bound the rest): what is in flight per stream stays small and fixed.
pub const DASHBOARD_COPY_BUFFER: usize = 16 * 1024;

/// Who is speaking on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// `corral-agent worker`: pulls partitions and reports its resources.
    Worker,
    /// The TUI or a CLI subcommand: watches the cluster and submits queries.
    Client,
    /// `corral-agent coordinator`: the only side that listens.
    Coordinator,
}

/// The first frame in each direction of the control stream. The client sends it first (then
/// its [`AuthProof`]); the coordinator answers with its own only once the client is
/// authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must stay the first field, as a `u32` (see the module doc).
    pub protocol_version: u32,
    pub role: Role,
    /// The sender's corral version (`CARGO_PKG_VERSION`), for diagnostics only.
    pub software_version: String,
    /// The sender's host name, for diagnostics and the worker registry.
    pub node: String,
}

impl Hello {
    /// This process's hello in `role`.
    pub fn new(role: Role) -> Self {
        Self {
            protocol_version: PROTOCOL_VERSION,
            role,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            node: crate::cluster_dir::hostname(),
        }
    }
}

/// The client's second frame: HMAC-SHA256 keyed with the cluster secret over keying material
/// exported from this very TLS session (see [`crate::security::auth_proof`]).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProof {
    pub mac: [u8; 32],
}

impl std::fmt::Debug for AuthProof {
    // A proof is only good for its own connection, but there is no reason to print it either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthProof(<redacted>)")
    }
}

/// QUIC application close codes corral uses. Unknown codes (from a newer peer) map to
/// [`CloseCode::Unknown`] rather than failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// Orderly shutdown of an authenticated connection.
    Done,
    /// The proof of the cluster secret was wrong.
    AuthFailed,
    /// The handshake did not finish before the server's deadline.
    HandshakeTimeout,
    /// A frame was malformed, oversize, or not the message expected.
    ProtocolViolation,
    /// The peers speak different [`PROTOCOL_VERSION`]s.
    VersionMismatch,
    /// The coordinator is shutting down.
    Shutdown,
    /// A code this version does not know.
    Unknown(u32),
}

impl CloseCode {
    pub fn code(self) -> u32 {
        match self {
            CloseCode::Done => 0,
            CloseCode::AuthFailed => 1,
            CloseCode::HandshakeTimeout => 2,
            CloseCode::ProtocolViolation => 3,
            CloseCode::VersionMismatch => 4,
            CloseCode::Shutdown => 5,
            CloseCode::Unknown(c) => c,
        }
    }

    pub fn from_code(code: u64) -> Self {
        match code {
            0 => CloseCode::Done,
            1 => CloseCode::AuthFailed,
            2 => CloseCode::HandshakeTimeout,
            3 => CloseCode::ProtocolViolation,
            4 => CloseCode::VersionMismatch,
            5 => CloseCode::Shutdown,
            c => CloseCode::Unknown(u32::try_from(c).unwrap_or(u32::MAX)),
        }
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseCode::Done => f.write_str("closed"),
            CloseCode::AuthFailed => f.write_str("authentication failed (wrong cluster secret)"),
            CloseCode::HandshakeTimeout => f.write_str("handshake not finished in time"),
            CloseCode::ProtocolViolation => f.write_str("protocol violation"),
            CloseCode::VersionMismatch => f.write_str(
                "protocol version mismatch (the coordinator runs another corral version)",
            ),
            CloseCode::Shutdown => f.write_str("coordinator shutting down"),
            CloseCode::Unknown(c) => write!(f, "unknown close code {c}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// After the handshake

/// A query's number, unique for the life of one coordinator.
pub type QueryId = u64;
/// A worker connection's number, unique for the life of one coordinator
/// (the same as [`crate::schedule::WorkerId`]).
pub type WorkerId = u64;

/// `T` carried as JSON text inside a postcard frame. postcard is not self-describing, so it
/// cannot decode `#[serde(untagged)]` types such as the engine's result values; the final
/// result of a query is sent once per query, so the JSON detour costs nothing that matters.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text)
            .map(Json)
            .map_err(serde::de::Error::custom)
    }
}

/// The SLURM identity of a worker, from its environment (absent outside SLURM).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmIds {
    /// `SLURM_JOB_ID`: what scale-down drains and scancels.
    pub job_id: Option<u64>,
    /// `SLURM_STEP_ID` (text: the batch step is not a number).
    pub step_id: Option<String>,
    /// `SLURM_PROCID`: the task's rank in its step.
    pub proc_id: Option<u32>,
    /// `SLURMD_NODENAME`: SLURM's name of the node (may differ from the host name).
    pub node_name: Option<String>,
}

impl SlurmIds {
    /// The ids in this process's environment; `None` when not inside a SLURM job.
    pub fn from_env() -> Option<SlurmIds> {
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let ids = SlurmIds {
            job_id: var("SLURM_JOB_ID").and_then(|v| v.parse().ok()),
            step_id: var("SLURM_STEP_ID"),
            proc_id: var("SLURM_PROCID").and_then(|v| v.parse().ok()),
            node_name: var("SLURMD_NODENAME"),
        };
        (ids != SlurmIds::default()).then_some(ids)
    }
}

/// A worker's first message after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Host name.
    pub node: String,
    pub pid: u32,
    /// Cores it computes on (threads of its pool).
    pub cores: u32,
    pub slurm: Option<SlurmIds>,
    pub software_version: String,
}

/// What a worker reports every second (and once on connect).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// CPU time used over the last interval, as a share of its cores (0–100).
    pub cpu_busy_pct: f32,
    pub rss_bytes: u64,
    /// The node's 1, 5 and 15 minute load averages.
    pub load_avg: [f32; 3],
    pub tasks_running: u32,
    /// Assigned but not started yet.
    pub tasks_queued: u32,
    pub tasks_done: u64,
    pub tasks_failed: u64,
    /// Bytes and rows (good + bad) of the partitions it finished, since it started.
    pub bytes_processed: u64,
    pub rows_processed: u64,
}

/// A file a worker cannot read (or that is not what the coordinator planned).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProblem {
    pub path: std::path::PathBuf,
    pub error: String,
}

/// A computed partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub query: QueryId,
    pub task: u32,
    pub attempt: u32,
    pub partial: crate::aggregate::Partial,
    /// Time the worker spent computing it.
    pub seconds: f32,
}

/// A partition the worker could not compute, with the engine's error (which names the file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub query: QueryId,
    pub task: u32,
    pub attempt: u32,
    pub error: String,
    /// The file the error is about, when it is about one.
    pub path: Option<std::path::PathBuf>,
}

/// Worker → coordinator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// First message, exactly once.
    Register(Registration),
    /// Every second; a worker silent for ~5 s is presumed lost and its tasks re-run.
    Report(WorkerReport),
    /// `free` more tasks may be assigned (credits, see the module doc).
    Slots {
        free: u32,
    },
    /// Answer to [`ToWorker::Plan`]: every planned file this worker cannot open or that is not
    /// the file the coordinator planned. Empty: ready to compute.
    PlanChecked {
        query: QueryId,
        unreadable: Vec<FileProblem>,
    },
    Result(Box<TaskResult>),
    Failed(TaskFailure),
    /// A warning worth showing the user (workers log to stderr and forward these).
    Warning {
        message: String,
    },
    /// The worker stops (SIGTERM): it takes nothing new; its assigned tasks are to be re-run.
    Leaving {
        reason: String,
    },
    /// SLURM signalled the end of this worker's job (its walltime ends soon): it takes
    /// nothing new, finishes what it holds, then sends [`WorkerMsg::Leaving`].
    Draining {
        reason: String,
    },
    /// The state of the Dask worker this agent runs (Dask mode): sent when it changes.
    Dask(DaskState),
}

/// A Dask process (scheduler or worker) as the agent that owns it reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaskState {
    /// Started, not listening yet.
    Starting,
    /// Listening at `address` (`tls://host:port`), connected to the scheduler for a worker.
    Running { address: String },
    /// Being retired through the scheduler: its data moves to other workers, then it closes.
    Retiring,
    /// Ended when asked (retired, stopped with the cluster, closed by the scheduler).
    Stopped { why: String },
    /// Ended by itself and is being started again (a worker, a few times at most).
    Restarting { error: String },
    /// Ended by itself for good, or could not start; `error` says why (and what to install,
    /// when dask or distributed are missing).
    Failed { error: String },
}

impl DaskState {
    /// Not (or no longer) holding Dask work: what scale-down waits for before stopping.
    pub fn is_over(&self) -> bool {
        matches!(self, DaskState::Stopped { .. } | DaskState::Failed { .. })
    }
}

/// The Dask scheduler of a Dask cluster, in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskView {
    pub scheduler: DaskState,
    /// The dashboard: HTTP on 127.0.0.1 of the coordinator's node only.
    pub dashboard: Option<std::net::SocketAddr>,
}

/// One partition to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAssignment {
    pub task: u32,
    pub attempt: u32,
    pub partition: crate::aggregate::Partition,
}

/// Coordinator → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Answer to the registration: the worker's number.
    Welcome { worker: WorkerId },
    /// The plan of a query, once per query per worker, before any assignment of it. The worker
    /// answers [`WorkerMsg::PlanChecked`].
    Plan {
        query: QueryId,
        plan: Box<crate::aggregate::Plan>,
    },
    Assign {
        query: QueryId,
        tasks: Vec<TaskAssignment>,
    },
    /// Drop every task of this query not started yet; its results are no longer wanted.
    Cancel { query: QueryId },
    /// No new tasks will come (scale-down); finish the assigned ones.
    Drain,
    /// Exit now.
    Shutdown { reason: String },
}

/// Per-query options a client may set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryOptions {
    /// Partition size; `None`: the coordinator's (64 MiB by default). Tests use tiny ones.
    pub partition_bytes: Option<u64>,
    /// Cancel the query if it has not ended this long after it was accepted (queueing
    /// included); `None`: no limit.
    pub timeout_ms: Option<u64>,
}

/// Limits on what queries may use (the scaling sweep runs one query at 1, 2, 4, … cores).
/// `None`: no limit. Workers are taken in the order they joined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    pub max_workers: Option<u32>,
    pub max_cores: Option<u32>,
}

/// Client → coordinator: the one request of a stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// A [`ToClient::Snapshot`] now, then one whenever something changed, at most 4 a second.
    Subscribe,
    /// One [`ToClient::Snapshot`].
    Snapshot,
    /// Run a query: [`ToClient::Accepted`], [`ToClient::Progress`]…, then
    /// [`ToClient::Done`] or [`ToClient::Failed`]. Queries run one at a time, in order.
    Submit {
        query: crate::aggregate::Query,
        options: QueryOptions,
    },
    /// Stop giving work to the workers of this SLURM job (before it is scancelled).
    Drain { slurm_job_id: u64 },
    /// Scale below a job's size (SLURM cannot shrink a running job's tasks): drain the newest
    /// `count` workers of this SLURM job and tell each to exit once its assigned tasks are done.
    /// Answered with [`ToClient::Drained`].
    Retire { slurm_job_id: u64, count: u32 },
    /// Set the limits for the next assignments.
    Restrict(Restriction),
    /// Shut the cluster down: workers are told to exit, then the coordinator exits.
    Shutdown,
    /// Stop giving work to these workers (a local cluster's scale-down: no SLURM job to name
    /// them by), before their processes are stopped. Answered with [`ToClient::Drained`]
    /// (those of them that were connected).
    DrainWorkers { workers: Vec<WorkerId> },
    /// Follow a query submitted earlier (to this coordinator or to one it took over from):
    /// answered like [`ClientRequest::Submit`] from [`ToClient::Accepted`] on, or with its end
    /// when it finished already. Refused when the query is unknown or has a submitter.
    Attach { query: QueryId },
    /// A replacement coordinator takes over: this one stops serving without telling the
    /// workers to exit (they reconnect to the address the new one publishes) and keeps what
    /// it persisted. Answered with [`ToClient::HandingOver`].
    HandOver,
    /// Stop a queued or running query: every worker drops its tasks and the next query
    /// starts. Answered with [`ToClient::Cancelled`], or [`ToClient::Refused`] when the query
    /// is neither queued nor running; its submitter gets [`ToClient::Failed`].
    /// A submitter whose connection goes away has its query cancelled the same way.
    Cancel { query: QueryId },
    /// Open a TCP connection to the cluster's dashboard (the Dask scheduler's, on the head
    /// node's loopback) and carry it on this stream. The target is the address the coordinator
    /// registered, never one the client names. Answered with [`ToClient::DashboardOpen`], after
    /// which the stream is raw bytes in both directions until either side ends it, or with
    /// [`ToClient::Refused`] (no dashboard, too many streams open, the dashboard not answering).
    Dashboard,
}

/// A worker's state as the coordinator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerState {
    Alive,
    /// Gets no new tasks (scale-down).
    Draining,
    /// Connection lost or silent too long; listed for a while so the user sees it.
    Dead,
    /// Gone on purpose (drained by a scale-down, or it said it was leaving): listed for a
    /// while, but not an alarm.
    Left,
}

/// One worker in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub id: WorkerId,
    pub node: String,
    pub pid: u32,
    pub cores: u32,
    pub slurm: Option<SlurmIds>,
    pub state: WorkerState,
    /// Milliseconds since its last message (for a dead worker: since it was declared dead).
    pub heartbeat_age_ms: u64,
    pub connected_at_unix: u64,
    /// Tasks assigned to it and not reported yet.
    pub assigned: u32,
    pub report: WorkerReport,
    /// Its Dask worker (Dask mode), as its agent last reported it.
    pub dask: Option<DaskState>,
}

/// Task counts over the coordinator's life (queued and running: now).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTotals {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Attempts started again (lost worker, failure, wrong quote parity).
    pub rerun: u64,
}

/// Where a query is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryPhase {
    /// Waiting for an earlier query to finish.
    Queued,
    /// The coordinator reads headers and cuts partitions.
    Planning,
    /// Workers check they can read every file.
    Checking,
    Running,
    /// Partials are being merged into the result.
    Merging,
}

/// Progress of one query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryProgress {
    pub query: QueryId,
    pub phase: QueryPhase,
    pub tasks_total: u64,
    pub tasks: crate::schedule::Counts,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub rows_done: u64,
    pub elapsed_ms: u64,
    /// Workers and cores that computed at least one of its partitions so far.
    pub workers: u32,
    pub cores: u32,
}

/// The whole cluster at one moment, for dashboards (at most 4 a second).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub cluster: String,
    pub coordinator_node: String,
    pub coordinator_pid: u32,
    pub uptime_ms: u64,
    /// SLURM announced the end of the walltime (SIGUSR1): the cluster ends soon.
    pub walltime_ending: bool,
    /// Live workers first (in joining order), then recently dead ones.
    pub workers: Vec<WorkerView>,
    /// Cores of the live workers.
    pub cores: u32,
    pub tasks: TaskTotals,
    pub bytes_per_s: f64,
    pub rows_per_s: f64,
    /// The running query.
    pub query: Option<QueryProgress>,
    pub queued_queries: u32,
    pub restriction: Restriction,
    pub queries_done: u64,
    pub queries_failed: u64,
    /// The latest warnings workers forwarded (`node: message`), oldest first.
    pub warnings: Vec<String>,
    /// A dashboard is registered ([`ClientRequest::Dashboard`] reaches it): a Dask cluster
    /// whose scheduler is up.
    pub dashboard: bool,
    /// The Dask scheduler, for a Dask cluster.
    pub dask: Option<DaskView>,
}

impl Snapshot {
    /// Workers not dead.
    pub fn live_workers(&self) -> impl Iterator<Item = &WorkerView> {
        self.workers
            .iter()
            .filter(|w| !matches!(w.state, WorkerState::Dead | WorkerState::Left))
    }
}

/// Why a partition was computed again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RerunReason {
    /// Its worker was lost (connection gone or silent) before reporting it.
    WorkerLost { worker: WorkerId, node: String },
    /// A worker failed it; another tried.
    Failed { worker: WorkerId, error: String },
    /// Its split fell inside a quoted field: computed again from the right quote parity.
    WrongParity,
}

/// A re-run partition, for the query's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerunNote {
    pub path: std::path::PathBuf,
    pub start: u64,
    pub end: u64,
    pub reason: RerunReason,
}

/// A finished query: the result and how it was computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryReport {
    pub query: QueryId,
    pub result: Json<crate::aggregate::QueryResult>,
    /// Workers and cores that computed at least one partition.
    pub workers: u32,
    pub cores: u32,
    pub tasks: u32,
    pub partition_bytes: u64,
    pub reruns: Vec<RerunNote>,
    pub failed_attempts: u64,
    /// Partitions whose results a coordinator that took over found kept by the one before
    /// (not computed again); 0 when no takeover happened.
    pub resumed: u32,
    /// From submission accepted to result (queueing excluded).
    pub seconds: f64,
    pub started_at_unix_ms: u64,
    pub finished_at_unix_ms: u64,
}

/// A query that failed, with what it failed on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryFailure {
    pub query: QueryId,
    /// The whole story in one message (it names the files).
    pub error: String,
    /// The files the failure is about.
    pub files: Vec<std::path::PathBuf>,
    pub seconds: f64,
}

/// Coordinator → client, on the request's stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToClient {
    Snapshot(Box<Snapshot>),
    /// The query has a number; `queued_behind` queries run before it.
    Accepted {
        query: QueryId,
        queued_behind: u32,
    },
    Progress(QueryProgress),
    Done(Box<QueryReport>),
    Failed(QueryFailure),
    /// Answer to a drain: the workers that will get no new tasks.
    Drained {
        workers: Vec<WorkerId>,
    },
    /// Answer to a restriction: the limits now in force.
    Restricted(Restriction),
    ShuttingDown,
    /// Answer to a cancel: the query is stopped.
    Cancelled {
        query: QueryId,
    },
    /// Answer to [`ClientRequest::Dashboard`]: the coordinator is connected to the dashboard;
    /// from the next byte on, the stream is the TCP connection's bytes.
    DashboardOpen,
    /// Answer to a hand-over: this coordinator stops serving now.
    HandingOver,
    /// The request was not understood or not allowed.
    Refused {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
        let bytes = postcard::to_stdvec(v).expect("encode");
        let back: T = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(&back, v);
    }

    #[test]
    fn cluster_messages_round_trip_through_postcard() {
        use crate::aggregate::{Column, Query};
        let reg = WorkerMsg::Register(Registration {
            node: "n1".into(),
            pid: 7,
            cores: 2,
            slurm: Some(SlurmIds {
                job_id: Some(42),
                step_id: Some("0".into()),
                proc_id: Some(3),
                node_name: Some("c1".into()),
            }),
            software_version: "0.1.0".into(),
        });
        round_trip(&reg);
        round_trip(&WorkerMsg::Report(WorkerReport {
            cpu_busy_pct: 97.5,
            load_avg: [1.0, 0.5, 0.25],
            ..WorkerReport::default()
        }));
        round_trip(&WorkerMsg::Failed(TaskFailure {
            query: 1,
            task: 2,
            attempt: 3,
            error: "x".into(),
            path: Some("/d/a.csv".into()),
        }));
        let q = Query::value_counts(vec!["/d/*.csv".into()], Column::Name("payment_type".into()));
        round_trip(&ClientRequest::Submit {
            query: q,
            options: QueryOptions {
                partition_bytes: Some(1024),
                timeout_ms: Some(30_000),
            },
        });
        round_trip(&ClientRequest::Cancel { query: 9 });
        round_trip(&ClientRequest::Dashboard);
        round_trip(&ToClient::DashboardOpen);
        round_trip(&ToClient::Cancelled { query: 9 });
        round_trip(&ToClient::Failed(QueryFailure {
            query: 1,
            error: "e".into(),
            files: vec!["/a".into()],
            seconds: 0.5,
        }));
    }

    #[test]
    fn a_real_plan_partial_and_result_cross_the_wire() {
        use crate::aggregate::{self, Column, Query};
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "k,v\n1,2.5\n\"x,y\",3\n1,bad\n2\n").expect("write");
        let mut q = Query::value_counts(
            vec![path.to_string_lossy().into_owned()],
            Column::Name("k".into()),
        );
        q.aggregates.push(aggregate::Aggregate {
            op: aggregate::AggOp::Sum,
            column: Some(Column::Name("v".into())),
        });
        let plan = aggregate::plan(&q, 4).expect("plan");
        let msg = ToWorker::Plan {
            query: 1,
            plan: Box::new(plan.clone()),
        };
        round_trip(&msg);
        let partial = aggregate::run_partition(&plan, &plan.partitions[0]).expect("run");
        round_trip(&WorkerMsg::Result(Box::new(TaskResult {
            query: 1,
            task: 0,
            attempt: 1,
            partial,
            seconds: 0.1,
        })));
        let result = aggregate::execute(&plan, &aggregate::ExecOptions::default()).expect("exec");
        let report = QueryReport {
            query: 1,
            result: Json(result),
            workers: 1,
            cores: 1,
            tasks: 3,
            partition_bytes: 4,
            reruns: vec![RerunNote {
                path: path.clone(),
                start: 4,
                end: 8,
                reason: RerunReason::WrongParity,
            }],
            failed_attempts: 0,
            resumed: 0,
            seconds: 1.0,
            started_at_unix_ms: 1,
            finished_at_unix_ms: 2,
        };
        round_trip(&ToClient::Done(Box::new(report)));
    }

    #[test]
    fn garbage_never_panics_the_message_decoders() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..512usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = postcard::from_bytes::<WorkerMsg>(&bytes);
            let _ = postcard::from_bytes::<ToWorker>(&bytes);
            let _ = postcard::from_bytes::<ClientRequest>(&bytes);
            let _ = postcard::from_bytes::<ToClient>(&bytes);
        }
    }

    #[test]
    fn close_codes_round_trip() {
        for c in [
            CloseCode::Done,
            CloseCode::AuthFailed,
            CloseCode::HandshakeTimeout,
            CloseCode::ProtocolViolation,
            CloseCode::VersionMismatch,
            CloseCode::Shutdown,
            CloseCode::Unknown(77),
        ] {
            assert_eq!(CloseCode::from_code(u64::from(c.code())), c);
        }
    }

    #[test]
    fn version_is_readable_from_any_hello() {
        // The frozen-first-field rule: a bare u32 decodes from the front of a Hello.
        let bytes = postcard::to_stdvec(&Hello::new(Role::Worker)).expect("encode");
        let (v, _rest) = postcard::take_from_bytes::<u32>(&bytes).expect("decode");
        assert_eq!(v, PROTOCOL_VERSION);
    }

    #[test]
    fn auth_proof_is_32_raw_bytes() {
        let bytes = postcard::to_stdvec(&AuthProof { mac: [7; 32] }).expect("encode");
        assert_eq!(bytes, vec![7u8; 32]);
    }
}
