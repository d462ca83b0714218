//! The coordinator's state, owned by one task and changed only through [`State::handle`] and
//! [`State::tick`]: the worker registry, the query queue, the running query (scheduling with
//! [`Scheduler`], quote-parity confirmation, merging on a thread), snapshots and the ledger.
//!
//! Nothing here awaits: messages to workers go into each worker's bounded outbox (a worker
//! whose outbox is full is not reading and is dropped), answers to clients into bounded
//! channels or oneshots. CPU work (planning, merging) runs on blocking threads and comes back
//! as [`Event`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::aggregate::{self, AggError, Parity, Partial, Partition, Plan, Query, QueryResult};
use crate::protocol::{
    CloseCode, FileProblem, Json, QueryFailure, QueryId, QueryOptions, QueryPhase, QueryProgress,
    QueryReport, Registration, RerunNote, RerunReason, Restriction, Snapshot, TaskAssignment,
    TaskFailure, TaskResult, TaskTotals, ToClient, ToWorker, WorkerId, WorkerMsg, WorkerReport,
    WorkerState, WorkerView,
};
use crate::schedule::{Assignment, FailureOutcome, Outcome, Scheduler};

use super::ledger;

/// An encoded frame (length prefix included), shared by every outbox it goes to.
pub(crate) type Frame = Arc<[u8]>;

/// Dead workers kept in snapshots so the user sees them.
const DEAD_KEPT: usize = 64;
/// Forwarded warnings kept in snapshots.
const WARNINGS_KEPT: usize = 16;
/// The throughput window.
const RATE_WINDOW: Duration = Duration::from_secs(3);
/// At most this often a submitter gets progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Credits a worker may hold at most (a bogus worker cannot make us hand it everything).
const MAX_CREDITS: u32 = 4096;

/// Everything that changes the coordinator's state.
pub(crate) enum Event {
    WorkerJoined {
        id: WorkerId,
        reg: Registration,
        out: mpsc::Sender<Frame>,
        conn: Option<quinn::Connection>,
    },
    FromWorker {
        id: WorkerId,
        msg: WorkerMsg,
    },
    WorkerLeft {
        id: WorkerId,
        why: String,
    },
    Submit {
        query: Query,
        options: QueryOptions,
        progress: mpsc::Sender<ToClient>,
        done: oneshot::Sender<ToClient>,
    },
    Drain {
        slurm_job_id: u64,
        reply: oneshot::Sender<Vec<WorkerId>>,
    },
    Retire {
        slurm_job_id: u64,
        count: u32,
        reply: oneshot::Sender<Vec<WorkerId>>,
    },
    Restrict {
        restriction: Restriction,
        reply: oneshot::Sender<Restriction>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    SnapshotNow {
        reply: oneshot::Sender<Frame>,
    },
    DrainWorkers {
        workers: Vec<WorkerId>,
        reply: oneshot::Sender<Vec<WorkerId>>,
    },
    Planned {
        query: QueryId,
        plan: Result<Plan, AggError>,
    },
    Merged {
        query: QueryId,
        result: Result<QueryResult, AggError>,
    },
}

/// The knobs of the state machine.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub cluster: String,
    pub partition_bytes: u64,
    pub heartbeat_timeout: Duration,
    pub plan_check_timeout: Duration,
    pub ledger: Option<PathBuf>,
}

struct Worker {
    reg: Registration,
    out: mpsc::Sender<Frame>,
    conn: Option<quinn::Connection>,
    last_seen: Instant,
    connected_at_unix: u64,
    report: WorkerReport,
    credits: u32,
    assigned: u32,
    draining: bool,
    /// Draining in order to exit (scale-down below a job's size): told to shut down once idle.
    retiring: bool,
    /// It said it is leaving (SIGTERM, shutdown): its end is not a loss.
    leaving: bool,
    /// The query whose plan it was sent / whose files it checked fine.
    plan_sent: Option<QueryId>,
    ready: Option<QueryId>,
}

struct Pending {
    id: QueryId,
    query: Query,
    options: QueryOptions,
    progress: mpsc::Sender<ToClient>,
    done: oneshot::Sender<ToClient>,
}

enum Phase {
    Planning,
    Checking {
        waiting: BTreeSet<WorkerId>,
        deadline: Instant,
        problems: Vec<(String, FileProblem)>,
    },
    Running,
    Merging,
}

/// The merge thread of a query: partials confirmed exact go in, the result comes back as
/// [`Event::Merged`]. Dropping it closes its channel, which ends the thread.
struct MergeThread {
    tx: mpsc::Sender<MergeCmd>,
}

enum MergeCmd {
    Add(Partial),
    Finish,
}

impl MergeThread {
    fn spawn(query: QueryId, plan: Arc<Plan>, tasks: usize, events: mpsc::Sender<Event>) -> Self {
        // Capacity for every task's partial plus Finish: `try_send` then never finds it full,
        // because a partial is confirmed (sent) at most once per task.
        let (tx, mut rx) = mpsc::channel(tasks + 2);
        let spawned = std::thread::Builder::new()
            .name(format!("merge-q{query}"))
            .spawn(move || {
                let mut merger = aggregate::Merger::default();
                while let Some(cmd) = rx.blocking_recv() {
                    match cmd {
                        MergeCmd::Add(p) => merger.add(p),
                        MergeCmd::Finish => {
                            let merged = std::mem::take(&mut merger).into_partial();
                            let result = aggregate::finish(&plan, vec![merged]);
                            let _ = events.blocking_send(Event::Merged { query, result });
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // Without a thread the query cannot finish; the run notices the closed channel.
            warn!("cannot start a merge thread: {e}");
        }
        MergeThread { tx }
    }

    fn send(&self, cmd: MergeCmd) -> bool {
        self.tx.try_send(cmd).is_ok()
    }
}

struct Run {
    id: QueryId,
    query: Query,
    progress: mpsc::Sender<ToClient>,
    done: Option<oneshot::Sender<ToClient>>,
    started: Instant,
    started_unix_ms: u64,
    partition_bytes: u64,
    phase: Phase,
    plan: Option<Arc<Plan>>,
    plan_frame: Option<Frame>,
    tasks: Vec<Partition>,
    sched: Scheduler,
    /// Results accepted but not confirmed yet (their file's earlier partitions are missing).
    results: Vec<Option<Partial>>,
    /// Per file: its tasks (plan partitions are in file order), the first unconfirmed one,
    /// and the true quote parity at that one's start.
    file_tasks: Vec<Range<usize>>,
    cursor: Vec<usize>,
    parity: Vec<Parity>,
    merger: Option<MergeThread>,
    failed_on: HashMap<usize, BTreeSet<WorkerId>>,
    contributors: BTreeMap<WorkerId, u32>,
    reruns: Vec<RerunNote>,
    bytes_done: u64,
    rows_done: u64,
    last_progress: Instant,
}

impl Run {
    fn path_of(&self, task: usize) -> PathBuf {
        self.tasks
            .get(task)
            .and_then(|p| self.plan.as_ref()?.files.get(p.file))
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    fn note_rerun(&mut self, task: usize, reason: RerunReason) {
        if let Some(p) = self.tasks.get(task) {
            let note = RerunNote {
                path: self.path_of(task),
                start: p.start,
                end: p.end,
                reason,
            };
            self.reruns.push(note);
        }
    }

    fn progress(&self) -> QueryProgress {
        QueryProgress {
            query: self.id,
            phase: match self.phase {
                Phase::Planning => QueryPhase::Planning,
                Phase::Checking { .. } => QueryPhase::Checking,
                Phase::Running => QueryPhase::Running,
                Phase::Merging => QueryPhase::Merging,
            },
            tasks_total: self.tasks.len() as u64,
            tasks: self.sched.counts(),
            bytes_total: self.plan.as_ref().map_or(0, |p| p.data_bytes()),
            bytes_done: self.bytes_done,
            rows_done: self.rows_done,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            workers: self.contributors.len() as u32,
            cores: self.contributors.values().sum(),
        }
    }
}

/// The coordinator's whole state.
pub(crate) struct State {
    cfg: Config,
    started: Instant,
    events: mpsc::Sender<Event>,
    snapshots: watch::Sender<Option<Frame>>,
    workers: BTreeMap<WorkerId, Worker>,
    dead: VecDeque<(WorkerView, Instant)>,
    warnings: VecDeque<String>,
    queue: VecDeque<Pending>,
    run: Option<Run>,
    next_query: QueryId,
    restriction: Restriction,
    walltime_ending: bool,
    exit: Option<String>,
    past: TaskTotals,
    queries_done: u64,
    queries_failed: u64,
    bytes_total: u64,
    rows_total: u64,
    rate_samples: VecDeque<(Instant, u64, u64)>,
    rates: (f64, f64),
    /// Ledger writes and planning: blocking work this state owns.
    background: JoinSet<()>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Encodes a message as a shareable frame.
pub(crate) fn frame<T: serde::Serialize>(msg: &T) -> Result<Frame, crate::transport::FrameError> {
    crate::transport::encode_frame(msg).map(Frame::from)
}

/// The file an engine error is about, if it names one.
fn error_path(e: &AggError) -> Option<PathBuf> {
    match e {
        AggError::NotFound { path }
        | AggError::IsDirectory { path }
        | AggError::NotRegularFile { path }
        | AggError::Unreadable { path, .. }
        | AggError::HeaderMismatch { path, .. }
        | AggError::BadHeader { path }
        | AggError::FileChanged { path, .. }
        | AggError::BadRow { path, .. }
        | AggError::Coverage { path, .. } => Some(path.clone()),
        _ => None,
    }
}

impl State {
    pub fn new(
        cfg: Config,
        events: mpsc::Sender<Event>,
        snapshots: watch::Sender<Option<Frame>>,
    ) -> State {
        State {
            cfg,
            started: Instant::now(),
            events,
            snapshots,
            workers: BTreeMap::new(),
            dead: VecDeque::new(),
            warnings: VecDeque::new(),
            queue: VecDeque::new(),
            run: None,
            next_query: 1,
            restriction: Restriction::default(),
            walltime_ending: false,
            exit: None,
            past: TaskTotals::default(),
            queries_done: 0,
            queries_failed: 0,
            bytes_total: 0,
            rows_total: 0,
            rate_samples: VecDeque::new(),
            rates: (0.0, 0.0),
            background: JoinSet::new(),
        }
    }

    /// Set once a client asked the cluster to shut down.
    pub fn exit_requested(&self) -> Option<&str> {
        self.exit.as_deref()
    }

    pub fn set_walltime_ending(&mut self) {
        if !self.walltime_ending {
            warn!("SLURM announced the end of the walltime (SIGUSR1)");
        }
        self.walltime_ending = true;
    }

    pub fn handle(&mut self, ev: Event) {
        match ev {
            Event::WorkerJoined { id, reg, out, conn } => self.joined(id, reg, out, conn),
            Event::FromWorker { id, msg } => self.on_worker_msg(id, msg),
            Event::WorkerLeft { id, why } => self.lose(id, &why),
            Event::Submit {
                query,
                options,
                progress,
                done,
            } => self.submit(query, options, progress, done),
            Event::Drain {
                slurm_job_id,
                reply,
            } => {
                let ids = self.drain(slurm_job_id, None);
                let _ = reply.send(ids);
            }
            Event::Retire {
                slurm_job_id,
                count,
                reply,
            } => {
                let ids = self.drain(slurm_job_id, Some(count as usize));
                for id in &ids {
                    if let Some(w) = self.workers.get_mut(id) {
                        w.retiring = true;
                    }
                }
                self.release_retired();
                let _ = reply.send(ids);
            }
            Event::Restrict { restriction, reply } => {
                info!(?restriction, "restriction set");
                self.restriction = restriction;
                let _ = reply.send(restriction);
                self.dispatch();
            }
            Event::Shutdown { reply } => {
                self.exit = Some("a client asked the cluster to shut down".into());
                let _ = reply.send(());
            }
            Event::SnapshotNow { reply } => {
                if let Some(f) = self.snapshot_frame() {
                    let _ = reply.send(f);
                }
            }
            Event::DrainWorkers { workers, reply } => {
                let ids = self.drain_workers(&workers);
                let _ = reply.send(ids);
            }
            Event::Planned { query, plan } => self.planned(query, plan),
            Event::Merged { query, result } => self.merged(query, result),
        }
    }

    /// Once a second: heartbeats, deadlines, throughput, progress, background reaping.
    pub fn tick(&mut self, now: Instant) {
        self.release_retired();
        let silent: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| now.duration_since(w.last_seen) > self.cfg.heartbeat_timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            let why = format!(
                "no heartbeat for {} s",
                self.cfg.heartbeat_timeout.as_secs_f32()
            );
            self.lose(id, &why);
        }
        if let Some(run) = &self.run
            && let Phase::Checking { deadline, .. } = &run.phase
            && now >= *deadline
        {
            self.checks_over();
        }
        self.rate_samples
            .push_back((now, self.bytes_total, self.rows_total));
        while self
            .rate_samples
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.rate_samples.pop_front();
        }
        if let (Some(a), Some(b)) = (self.rate_samples.front(), self.rate_samples.back()) {
            let dt = b.0.duration_since(a.0).as_secs_f64();
            self.rates = if dt > 0.0 {
                ((b.1 - a.1) as f64 / dt, (b.2 - a.2) as f64 / dt)
            } else {
                (0.0, 0.0)
            };
        }
        self.send_progress(false);
        while self.background.try_join_next().is_some() {}
    }

    // -----------------------------------------------------------------------------------------
    // Workers

    fn joined(
        &mut self,
        id: WorkerId,
        reg: Registration,
        out: mpsc::Sender<Frame>,
        conn: Option<quinn::Connection>,
    ) {
        info!(worker = id, node = %reg.node, pid = reg.pid, cores = reg.cores, slurm = ?reg.slurm, "worker joined");
        let w = Worker {
            reg,
            out,
            conn,
            last_seen: Instant::now(),
            connected_at_unix: unix_ms() / 1000,
            report: WorkerReport::default(),
            credits: 0,
            assigned: 0,
            draining: false,
            retiring: false,
            leaving: false,
            plan_sent: None,
            ready: None,
        };
        self.workers.insert(id, w);
        if let Ok(f) = frame(&ToWorker::Welcome { worker: id }) {
            self.send_to(id, f);
        }
        // A worker joining a running query checks its files like the others did.
        if let Some(run) = &self.run
            && let Some(f) = run.plan_frame.clone()
        {
            let q = run.id;
            if self.send_to(id, f)
                && let Some(w) = self.workers.get_mut(&id)
            {
                w.plan_sent = Some(q);
            }
        }
    }

    /// Queues `f` to worker `id`; a worker whose outbox is full or closed is lost.
    fn send_to(&mut self, id: WorkerId, f: Frame) -> bool {
        let Some(w) = self.workers.get(&id) else {
            return false;
        };
        match w.out.try_send(f) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lose(id, "not reading its messages (outbox full)");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.lose(id, "connection closed");
                false
            }
        }
    }

    fn on_worker_msg(&mut self, id: WorkerId, msg: WorkerMsg) {
        let Some(w) = self.workers.get_mut(&id) else {
            // A late message of a worker already declared lost: its results were re-run.
            return;
        };
        w.last_seen = Instant::now();
        match msg {
            WorkerMsg::Register(_) => debug!(worker = id, "second registration ignored"),
            WorkerMsg::Report(r) => w.report = r,
            WorkerMsg::Slots { free } => {
                w.credits = w.credits.saturating_add(free).min(MAX_CREDITS);
                self.dispatch();
            }
            WorkerMsg::PlanChecked { query, unreadable } => {
                self.plan_checked(id, query, unreadable)
            }
            WorkerMsg::Result(r) => {
                w.assigned = w.assigned.saturating_sub(1);
                self.result(id, *r);
            }
            WorkerMsg::Failed(f) => {
                w.assigned = w.assigned.saturating_sub(1);
                self.failed(id, f);
            }
            WorkerMsg::Warning { message } => {
                let line = format!("{}: {message}", w.reg.node);
                warn!(worker = id, "{line}");
                self.warnings.push_back(line);
                while self.warnings.len() > WARNINGS_KEPT {
                    self.warnings.pop_front();
                }
            }
            WorkerMsg::Leaving { reason } => {
                let why = format!("left: {reason}");
                w.leaving = true;
                self.lose(id, &why);
            }
        }
    }

    /// A worker is gone: remember it as dead, re-run its tasks.
    fn lose(&mut self, id: WorkerId, why: &str) {
        let Some(w) = self.workers.remove(&id) else {
            return;
        };
        info!(worker = id, node = %w.reg.node, why, "worker lost");
        if let Some(c) = &w.conn {
            c.close(
                quinn::VarInt::from_u32(CloseCode::Done.code()),
                why.as_bytes(),
            );
        }
        let mut view = Self::view(id, &w, Instant::now());
        // A worker that was drained or said it was leaving went on purpose; anything else is
        // a loss the user should see as one.
        view.state = if w.draining || w.leaving {
            WorkerState::Left
        } else {
            WorkerState::Dead
        };
        view.heartbeat_age_ms = 0;
        self.dead.push_back((view, Instant::now()));
        while self.dead.len() > DEAD_KEPT {
            self.dead.pop_front();
        }
        let Some(run) = &mut self.run else {
            return;
        };
        match &mut run.phase {
            Phase::Checking { waiting, .. } => {
                waiting.remove(&id);
                if waiting.is_empty() {
                    self.checks_over();
                }
            }
            Phase::Running => {
                let lost = run.sched.worker_lost(id);
                for t in lost {
                    run.note_rerun(
                        t,
                        RerunReason::WorkerLost {
                            worker: id,
                            node: w.reg.node.clone(),
                        },
                    );
                }
                self.dispatch();
            }
            Phase::Planning | Phase::Merging => {}
        }
    }

    /// Drains the workers of SLURM job `job`: all of them, or the newest `count` not yet
    /// draining.
    fn drain(&mut self, job: u64, count: Option<usize>) -> Vec<WorkerId> {
        let mut ids: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.reg.slurm.as_ref().and_then(|s| s.job_id) == Some(job))
            .filter(|(_, w)| count.is_none() || !w.draining)
            .map(|(id, _)| *id)
            .collect();
        if let Some(n) = count {
            // Worker ids grow as workers join: the newest go first.
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.truncate(n);
        }
        for id in &ids {
            if let Some(w) = self.workers.get_mut(id) {
                w.draining = true;
            }
            if let Some(run) = &mut self.run {
                run.sched.drain(*id);
            }
            if let Ok(f) = frame(&ToWorker::Drain) {
                self.send_to(*id, f);
            }
        }
        info!(job, workers = ?ids, "drained");
        ids
    }

    /// Retiring workers with nothing assigned any more are told to exit; their partitions
    /// have all been reported, so nothing is re-run.
    fn release_retired(&mut self) {
        let done: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring && w.assigned == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Ok(f) = frame(&ToWorker::Shutdown {
                reason: "retired: the cluster was scaled down".into(),
            }) {
                self.send_to(id, f);
            }
            if let Some(w) = self.workers.get_mut(&id) {
                // Told once; the worker leaves and is reaped like any other.
                w.retiring = false;
            }
        }
    }

    /// Drains these workers (by id, as a local cluster's scale-down names them): nothing new
    /// is assigned to them and they are told so. Returns those that are connected.
    fn drain_workers(&mut self, workers: &[WorkerId]) -> Vec<WorkerId> {
        let ids: Vec<WorkerId> = workers
            .iter()
            .copied()
            .filter(|id| self.workers.contains_key(id))
            .collect();
        for id in &ids {
            if let Some(w) = self.workers.get_mut(id) {
                w.draining = true;
            }
            if let Some(run) = &mut self.run {
                run.sched.drain(*id);
            }
            if let Ok(f) = frame(&ToWorker::Drain) {
                self.send_to(*id, f);
            }
        }
        info!(workers = ?ids, "drained by id");
        ids
    }

    fn view(id: WorkerId, w: &Worker, now: Instant) -> WorkerView {
        WorkerView {
            id,
            node: w.reg.node.clone(),
            pid: w.reg.pid,
            cores: w.reg.cores,
            slurm: w.reg.slurm.clone(),
            state: if w.draining {
                WorkerState::Draining
            } else {
                WorkerState::Alive
            },
            heartbeat_age_ms: now.duration_since(w.last_seen).as_millis() as u64,
            connected_at_unix: w.connected_at_unix,
            assigned: w.assigned,
            report: w.report.clone(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Queries

    fn submit(
        &mut self,
        query: Query,
        options: QueryOptions,
        progress: mpsc::Sender<ToClient>,
        done: oneshot::Sender<ToClient>,
    ) {
        let id = self.next_query;
        self.next_query += 1;
        let behind = self.queue.len() as u32 + u32::from(self.run.is_some());
        let _ = progress.try_send(ToClient::Accepted {
            query: id,
            queued_behind: behind,
        });
        info!(query = id, inputs = ?query.inputs, "query submitted");
        self.queue.push_back(Pending {
            id,
            query,
            options,
            progress,
            done,
        });
        self.start_next();
    }

    fn start_next(&mut self) {
        if self.run.is_some() {
            return;
        }
        let Some(p) = self.queue.pop_front() else {
            return;
        };
        let partition_bytes = p
            .options
            .partition_bytes
            .unwrap_or(self.cfg.partition_bytes)
            .max(1);
        let now = Instant::now();
        self.run = Some(Run {
            id: p.id,
            query: p.query.clone(),
            progress: p.progress,
            done: Some(p.done),
            started: now,
            started_unix_ms: unix_ms(),
            partition_bytes,
            phase: Phase::Planning,
            plan: None,
            plan_frame: None,
            tasks: Vec::new(),
            sched: Scheduler::new(0),
            results: Vec::new(),
            file_tasks: Vec::new(),
            cursor: Vec::new(),
            parity: Vec::new(),
            merger: None,
            failed_on: HashMap::new(),
            contributors: BTreeMap::new(),
            reruns: Vec::new(),
            bytes_done: 0,
            rows_done: 0,
            last_progress: now,
        });
        // Planning stats and reads every file's header: blocking I/O, off the event loop.
        let events = self.events.clone();
        let (query, id) = (p.query, p.id);
        self.background.spawn_blocking(move || {
            let plan = aggregate::plan(&query, partition_bytes);
            let _ = events.blocking_send(Event::Planned { query: id, plan });
        });
    }

    fn planned(&mut self, query: QueryId, plan: Result<Plan, AggError>) {
        let Some(run) = &mut self.run else { return };
        if run.id != query {
            return;
        }
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                let files = error_path(&e).into_iter().collect();
                self.fail_query(e.to_string(), files);
                return;
            }
        };
        let plan_frame = match frame(&ToWorker::Plan {
            query,
            plan: Box::new(plan.clone()),
        }) {
            Ok(f) => f,
            Err(e) => {
                self.fail_query(
                    format!("the query plan cannot be sent to workers: {e}"),
                    vec![],
                );
                return;
            }
        };
        let n = plan.partitions.len();
        let mut file_tasks = vec![0..0; plan.files.len()];
        for (i, p) in plan.partitions.iter().enumerate() {
            if let Some(r) = file_tasks.get_mut(p.file) {
                if r.start == r.end {
                    *r = i..i + 1;
                } else {
                    r.end = i + 1;
                }
            }
        }
        info!(
            query,
            files = plan.files.len(),
            bytes = plan.total_bytes(),
            tasks = n,
            "planned"
        );
        let plan = Arc::new(plan);
        run.tasks = plan.partitions.clone();
        run.sched = Scheduler::new(n);
        run.results = vec![None; n];
        run.cursor = file_tasks.iter().map(|r| r.start).collect();
        run.parity = vec![Parity::Even; plan.files.len()];
        run.file_tasks = file_tasks;
        run.merger = Some(MergeThread::spawn(
            query,
            plan.clone(),
            n,
            self.events.clone(),
        ));
        run.plan = Some(plan);
        run.plan_frame = Some(plan_frame.clone());
        let mut waiting = BTreeSet::new();
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            if self.send_to(id, plan_frame.clone())
                && let Some(w) = self.workers.get_mut(&id)
            {
                w.plan_sent = Some(query);
                waiting.insert(id);
            }
        }
        let Some(run) = &mut self.run else { return };
        run.phase = Phase::Checking {
            waiting,
            deadline: Instant::now() + self.cfg.plan_check_timeout,
            problems: Vec::new(),
        };
        if matches!(&run.phase, Phase::Checking { waiting, .. } if waiting.is_empty()) {
            self.checks_over();
        }
    }

    fn plan_checked(&mut self, id: WorkerId, query: QueryId, unreadable: Vec<FileProblem>) {
        let Some(run) = &mut self.run else { return };
        if run.id != query {
            return;
        }
        let node = self
            .workers
            .get(&id)
            .map(|w| w.reg.node.clone())
            .unwrap_or_default();
        let ok = unreadable.is_empty();
        match &mut run.phase {
            Phase::Checking {
                waiting, problems, ..
            } => {
                waiting.remove(&id);
                problems.extend(unreadable.into_iter().map(|p| (node.clone(), p)));
                let over = waiting.is_empty();
                if ok && let Some(w) = self.workers.get_mut(&id) {
                    w.ready = Some(query);
                }
                if over {
                    self.checks_over();
                }
            }
            Phase::Running => {
                // A worker that joined mid-query and cannot read the files is left out of it.
                if ok {
                    if let Some(w) = self.workers.get_mut(&id) {
                        w.ready = Some(query);
                    }
                    self.dispatch();
                } else {
                    let files: Vec<String> = unreadable
                        .iter()
                        .map(|p| format!("{} ({})", p.path.display(), p.error))
                        .collect();
                    let line = format!(
                        "{node}: cannot read {}; it gets no work of query {query}",
                        files.join(", ")
                    );
                    warn!("{line}");
                    self.warnings.push_back(line);
                }
            }
            Phase::Planning | Phase::Merging => {}
        }
    }

    /// Every worker answered the plan check (or the deadline passed): fail naming every
    /// unreadable file, or start handing out work.
    fn checks_over(&mut self) {
        let Some(run) = &mut self.run else { return };
        let Phase::Checking {
            waiting, problems, ..
        } = std::mem::replace(&mut run.phase, Phase::Running)
        else {
            return;
        };
        if !waiting.is_empty() {
            warn!(query = run.id, workers = ?waiting, "workers did not check the plan in time; they get work once they do");
        }
        if !problems.is_empty() {
            let mut by_file: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
            for (node, p) in problems {
                by_file
                    .entry(p.path)
                    .or_default()
                    .push(format!("{node}: {}", p.error));
            }
            let files: Vec<PathBuf> = by_file.keys().cloned().collect();
            let detail: Vec<String> = by_file
                .iter()
                .map(|(path, why)| format!("{} ({})", path.display(), why.join("; ")))
                .collect();
            let msg = format!(
                "workers cannot read {} file{}: {}",
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                detail.join(", ")
            );
            self.fail_query(msg, files);
            return;
        }
        info!(query = run.id, "plan checked by the workers; running");
        self.dispatch();
        self.maybe_merge();
    }

    /// Hands queued tasks to workers with credits, within the restriction. Workers are taken
    /// in joining order, so a restriction to N workers always means the same N.
    fn dispatch(&mut self) {
        let Some(run) = &mut self.run else { return };
        if !matches!(run.phase, Phase::Running) || !run.sched.has_queued() {
            return;
        }
        let mut workers_left = self.restriction.max_workers.unwrap_or(u32::MAX);
        let mut cores_left = self.restriction.max_cores.unwrap_or(u32::MAX);
        let mut sends: Vec<(WorkerId, Frame)> = Vec::new();
        for (&id, w) in self.workers.iter_mut() {
            if workers_left == 0 || cores_left == 0 || !run.sched.has_queued() {
                break;
            }
            if w.draining {
                continue;
            }
            let cores = w.reg.cores.max(1);
            let use_cores = cores.min(cores_left);
            workers_left -= 1;
            cores_left -= use_cores;
            // One task per core plus one queued; a worker cut down by a core limit gets no
            // queued extra, or its idle core would pick it up.
            let cap = if use_cores < cores {
                use_cores
            } else {
                cores + 1
            };
            let room = cap.saturating_sub(w.assigned).min(w.credits);
            if room == 0 || w.ready != Some(run.id) {
                continue;
            }
            let got = run.sched.assign(id, room as usize);
            if got.is_empty() {
                continue;
            }
            w.credits -= got.len() as u32;
            w.assigned += got.len() as u32;
            let tasks: Vec<TaskAssignment> = got
                .iter()
                .map(|a| TaskAssignment {
                    task: a.task as u32,
                    attempt: a.attempt,
                    partition: run.tasks[a.task],
                })
                .collect();
            match frame(&ToWorker::Assign {
                query: run.id,
                tasks,
            }) {
                Ok(f) => sends.push((id, f)),
                Err(e) => warn!("cannot encode an assignment: {e}"),
            }
        }
        for (id, f) in sends {
            self.send_to(id, f);
        }
    }

    fn result(&mut self, id: WorkerId, r: TaskResult) {
        let Some(run) = &mut self.run else { return };
        if run.id != r.query || !matches!(run.phase, Phase::Running) {
            return;
        }
        let task = r.task as usize;
        let Some(part) = run.tasks.get(task).copied() else {
            return;
        };
        let a = Assignment {
            task,
            attempt: r.attempt,
        };
        if run.sched.complete(id, a) == Outcome::Stale {
            debug!(
                query = run.id,
                task,
                attempt = r.attempt,
                "stale result dropped"
            );
            return;
        }
        let p = r.partial;
        // The partial must cover exactly the partition, computed from the parity assigned.
        let covers = p.bytes() == part.len()
            && p.spans.iter().all(|s| s.file == part.file)
            && p.spans.iter().map(|s| s.start).min() == Some(part.start)
            && p.spans
                .iter()
                .find(|s| s.start == part.start)
                .is_some_and(|s| s.parity == part.parity);
        if !covers && !part.is_empty() {
            warn!(
                worker = id,
                task, "a result does not match its partition; re-running it"
            );
            run.sched.redo(task);
            self.dispatch();
            return;
        }
        let rows = p.rows + p.bad.total();
        run.bytes_done += part.len();
        run.rows_done += rows;
        self.bytes_total += part.len();
        self.rows_total += rows;
        let cores = self.workers.get(&id).map_or(1, |w| w.reg.cores);
        run.contributors.insert(id, cores);
        run.results[task] = Some(p);
        self.confirm(part.file);
        self.dispatch();
        self.maybe_merge();
        self.send_progress(false);
    }

    /// Walks file `f`'s results in order from its first unconfirmed one: a result computed
    /// from the true parity goes to the merger; one computed from the wrong parity is redone
    /// with the right one (only possible when a split fell inside a quoted field).
    fn confirm(&mut self, f: usize) {
        let Some(run) = &mut self.run else { return };
        let Some(range) = run.file_tasks.get(f).cloned() else {
            return;
        };
        while run.cursor[f] < range.end {
            let t = run.cursor[f];
            let Some(p) = run.results[t].take() else {
                break;
            };
            let truth = run.parity[f];
            if run.tasks[t].parity != truth {
                debug!(query = run.id, task = t, "wrong quote parity; re-running");
                run.tasks[t].parity = truth;
                let len = run.tasks[t].len();
                run.bytes_done = run.bytes_done.saturating_sub(len);
                run.rows_done = run.rows_done.saturating_sub(p.rows + p.bad.total());
                run.sched.redo(t);
                run.note_rerun(t, RerunReason::WrongParity);
                break;
            }
            let quotes: u64 = p.spans.iter().map(|s| s.quotes).sum();
            run.parity[f] = truth.advance(quotes);
            run.cursor[f] += 1;
            let sent = run
                .merger
                .as_ref()
                .is_some_and(|m| m.send(MergeCmd::Add(p)));
            if !sent {
                self.fail_query("the merge thread stopped".into(), vec![]);
                return;
            }
        }
    }

    /// Every task done and confirmed: the merge thread finishes the result.
    fn maybe_merge(&mut self) {
        let Some(run) = &mut self.run else { return };
        if !matches!(run.phase, Phase::Running) || !run.sched.finished() {
            return;
        }
        let confirmed = run
            .file_tasks
            .iter()
            .zip(&run.cursor)
            .all(|(r, c)| *c >= r.end);
        if !confirmed {
            return;
        }
        run.phase = Phase::Merging;
        let sent = run
            .merger
            .as_ref()
            .is_some_and(|m| m.send(MergeCmd::Finish));
        if !sent {
            self.fail_query("the merge thread stopped".into(), vec![]);
        }
    }

    fn failed(&mut self, id: WorkerId, f: TaskFailure) {
        let Some(run) = &mut self.run else { return };
        if run.id != f.query || !matches!(run.phase, Phase::Running) {
            return;
        }
        let task = f.task as usize;
        let a = Assignment {
            task,
            attempt: f.attempt,
        };
        let node = self
            .workers
            .get(&id)
            .map(|w| w.reg.node.clone())
            .unwrap_or_default();
        warn!(worker = id, %node, task, error = %f.error, "task failed");
        let outcome = run.sched.fail(id, a, f.error.clone());
        let failed_on = run.failed_on.entry(task).or_default();
        failed_on.insert(id);
        let tried: Vec<WorkerId> = failed_on.iter().copied().collect();
        let path = f.path.clone().unwrap_or_else(|| run.path_of(task));
        let part = run.tasks.get(task).copied();
        let message = |n: usize| match part {
            Some(p) => format!(
                "partition {}..{} of {} failed on {n} worker{}: {}",
                p.start,
                p.end,
                path.display(),
                if n == 1 { "" } else { "s" },
                f.error
            ),
            None => f.error.clone(),
        };
        match outcome {
            FailureOutcome::Stale => {}
            FailureOutcome::QueryFailed { .. } => {
                let msg = message(tried.len());
                self.fail_query(msg, vec![path]);
            }
            FailureOutcome::Retry => {
                run.note_rerun(
                    task,
                    RerunReason::Failed {
                        worker: id,
                        error: f.error.clone(),
                    },
                );
                // With fewer workers than the failure limit, a task every worker failed
                // would wait forever: that is a failed query too.
                let others = self
                    .workers
                    .iter()
                    .any(|(w, x)| !x.draining && !tried.contains(w));
                if !others {
                    let msg = message(tried.len());
                    self.fail_query(msg, vec![path]);
                } else {
                    self.dispatch();
                }
            }
        }
    }

    fn merged(&mut self, query: QueryId, result: Result<QueryResult, AggError>) {
        let Some(run) = &self.run else { return };
        if run.id != query {
            return;
        }
        match result {
            Ok(r) => self.finish_query(r),
            Err(e) => {
                let files = error_path(&e).into_iter().collect();
                self.fail_query(e.to_string(), files);
            }
        }
    }

    fn finish_query(&mut self, result: QueryResult) {
        let Some(mut run) = self.run.take() else {
            return;
        };
        let counts = run.sched.counts();
        let seconds = run.started.elapsed().as_secs_f64();
        let finished = unix_ms();
        info!(
            query = run.id,
            seconds,
            rows = result.rows,
            workers = run.contributors.len(),
            reruns = run.reruns.len(),
            "query done"
        );
        let plan = run.plan.clone();
        let report = QueryReport {
            query: run.id,
            result: Json(result),
            workers: run.contributors.len() as u32,
            cores: run.contributors.values().sum(),
            tasks: run.tasks.len() as u32,
            partition_bytes: run.partition_bytes,
            reruns: std::mem::take(&mut run.reruns),
            failed_attempts: counts.failed,
            seconds,
            started_at_unix_ms: run.started_unix_ms,
            finished_at_unix_ms: finished,
        };
        self.write_ledger(ledger::Line::of_report(
            &run.query,
            plan.as_deref(),
            &report,
        ));
        self.end_run(&run, true);
        if let Some(done) = run.done.take() {
            let _ = done.send(ToClient::Done(Box::new(report)));
        }
        self.start_next();
    }

    fn fail_query(&mut self, error: String, files: Vec<PathBuf>) {
        let Some(mut run) = self.run.take() else {
            return;
        };
        let seconds = run.started.elapsed().as_secs_f64();
        warn!(query = run.id, error = %error, "query failed");
        let failure = QueryFailure {
            query: run.id,
            error,
            files,
            seconds,
        };
        self.write_ledger(ledger::Line::of_failure(
            &run.query,
            run.plan.as_deref(),
            &failure,
            run.started_unix_ms,
            run.contributors.len() as u32,
            run.contributors.values().sum(),
        ));
        // Workers drop what they hold of it.
        if let Ok(f) = frame(&ToWorker::Cancel { query: run.id }) {
            let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
            for id in ids {
                self.send_to(id, f.clone());
            }
        }
        self.end_run(&run, false);
        if let Some(done) = run.done.take() {
            let _ = done.send(ToClient::Failed(failure));
        }
        self.start_next();
    }

    fn end_run(&mut self, run: &Run, ok: bool) {
        let c = run.sched.counts();
        self.past.done += c.done;
        self.past.failed += c.failed;
        self.past.rerun += c.rerun;
        if ok {
            self.queries_done += 1;
        } else {
            self.queries_failed += 1;
        }
        for w in self.workers.values_mut() {
            w.assigned = 0;
            w.ready = None;
            w.plan_sent = None;
        }
    }

    fn send_progress(&mut self, force: bool) {
        let Some(run) = &mut self.run else { return };
        if !force && run.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        run.last_progress = Instant::now();
        // Progress is advisory: a full channel means the client will see the next one.
        let _ = run.progress.try_send(ToClient::Progress(run.progress()));
    }

    fn write_ledger(&mut self, line: ledger::Line) {
        let Some(path) = self.cfg.ledger.clone() else {
            return;
        };
        self.background.spawn_blocking(move || {
            if let Err(e) = ledger::append(&path, &line) {
                warn!("cannot append to the ledger {}: {e}", path.display());
            }
        });
    }

    // -----------------------------------------------------------------------------------------
    // Snapshots and shutdown

    pub fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let mut workers: Vec<WorkerView> = self
            .workers
            .iter()
            .map(|(id, w)| Self::view(*id, w, now))
            .collect();
        workers.extend(self.dead.iter().map(|(v, died)| WorkerView {
            heartbeat_age_ms: now.duration_since(*died).as_millis() as u64,
            ..v.clone()
        }));
        let current = self
            .run
            .as_ref()
            .map(|r| r.sched.counts())
            .unwrap_or_default();
        Snapshot {
            cluster: self.cfg.cluster.clone(),
            coordinator_node: crate::cluster_dir::node_name(),
            coordinator_pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            walltime_ending: self.walltime_ending,
            cores: self.workers.values().map(|w| w.reg.cores).sum(),
            workers,
            tasks: TaskTotals {
                queued: current.queued,
                running: current.running,
                done: self.past.done + current.done,
                failed: self.past.failed + current.failed,
                rerun: self.past.rerun + current.rerun,
            },
            bytes_per_s: self.rates.0,
            rows_per_s: self.rates.1,
            query: self.run.as_ref().map(Run::progress),
            queued_queries: self.queue.len() as u32,
            restriction: self.restriction,
            queries_done: self.queries_done,
            queries_failed: self.queries_failed,
            warnings: self.warnings.iter().cloned().collect(),
        }
    }

    fn snapshot_frame(&self) -> Option<Frame> {
        match frame(&ToClient::Snapshot(Box::new(self.snapshot()))) {
            Ok(f) => Some(f),
            Err(e) => {
                warn!("cannot encode a snapshot: {e}");
                None
            }
        }
    }

    /// Publishes a snapshot to the subscribers (called at most 4 times a second).
    pub fn publish_snapshot(&self) {
        if let Some(f) = self.snapshot_frame() {
            self.snapshots.send_replace(Some(f));
        }
    }

    /// Tells every worker to exit and lets go of them; queued and running queries fail.
    pub fn shutdown(&mut self, reason: &str) {
        if self.run.is_some() {
            self.fail_query(format!("the cluster shut down: {reason}"), vec![]);
        }
        while let Some(p) = self.queue.pop_front() {
            let _ = p.done.send(ToClient::Failed(QueryFailure {
                query: p.id,
                error: format!("the cluster shut down before the query ran: {reason}"),
                files: vec![],
                seconds: 0.0,
            }));
        }
        if let Ok(f) = frame(&ToWorker::Shutdown {
            reason: reason.to_owned(),
        }) {
            for w in self.workers.values() {
                let _ = w.out.try_send(f.clone());
            }
        }
        // Dropping the outboxes ends the connection tasks once they have sent the goodbye.
        self.workers.clear();
    }

    #[cfg(test)]
    pub fn live_workers(&self) -> usize {
        self.workers.len()
    }
}
