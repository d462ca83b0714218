//! The coordinator's state, owned by one task and changed only through [`State::handle`] and
//! [`State::tick`]. This module holds the state itself, its events and its clock; the rest
//! lives in submodules, each adding methods to [`State`]:
//!
//! - `registry`: the workers (joining, losing, draining, retiring, what each holds);
//! - `run`: a query while it waits and runs (phase, tasks, results, the merge thread);
//! - `query`: a query's life (queued, planned, files checked, finished or failed, ledger);
//! - `tasks`: handing out tasks (scheduling with [`crate::schedule::Scheduler`]) and taking
//!   results back (coverage, quote-parity confirmation, failures and re-runs);
//! - `snapshot`: what clients see of the cluster.
//!
//! Nothing here awaits: messages to workers go into each worker's bounded outbox (a worker
//! whose outbox is full is not reading and is dropped), answers to clients into bounded
//! channels or oneshots. CPU work (planning, merging) runs on blocking threads and comes back
//! as [`Event`]s.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::aggregate::{AggError, Plan, Query, QueryResult};
use crate::protocol::{
    QueryFailure, QueryId, QueryOptions, Registration, Restriction, TaskTotals, ToClient, ToWorker,
    WorkerId, WorkerMsg, WorkerView,
};

mod cancel;
mod query;
mod registry;
mod run;
mod snapshot;
mod tasks;

use registry::Worker;
use run::{Pending, Phase, Run};

/// An encoded frame (length prefix included), shared by every outbox it goes to.
pub(crate) type Frame = Arc<[u8]>;

/// The throughput window.
const RATE_WINDOW: Duration = Duration::from_secs(3);

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
    /// A client follows a query submitted earlier (a takeover broke its first stream).
    Attach {
        query: QueryId,
        progress: mpsc::Sender<ToClient>,
        done: oneshot::Sender<ToClient>,
    },
    /// A replacement coordinator takes over: stop serving, keep what is persisted.
    HandOver {
        reply: oneshot::Sender<()>,
    },
    /// Stop a queued or running query; `reply` says whether there was one to stop.
    Cancel {
        query: QueryId,
        reason: String,
        reply: Option<oneshot::Sender<bool>>,
    },
}

/// The knobs of the state machine.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub cluster: String,
    pub partition_bytes: u64,
    pub heartbeat_timeout: Duration,
    pub plan_check_timeout: Duration,
    /// Planning (stat and header of every file) longer than this fails the query.
    pub plan_timeout: Duration,
    /// A task without a result this long after its assignment fails on its worker.
    pub task_stall: Duration,
    pub ledger: Option<PathBuf>,
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
    /// A dashboard is registered (for the snapshot; the address itself is the tunnel's).
    dashboard: bool,
    /// The Dask scheduler, as the coordinator agent reports it (Dask mode).
    dask: Option<crate::protocol::DaskView>,
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
    /// What a coordinator taking over needs (the running query, its partials).
    keeper: super::persist::Keeper,
    /// The ends of the last queries, for clients that attach after the end.
    finished: VecDeque<(QueryId, ToClient)>,
    /// A replacement coordinator took over: workers are not told to exit.
    handed_over: bool,
}

/// Query ends kept for late attachers.
const FINISHED_KEPT: usize = 8;

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
            dashboard: false,
            dask: None,
            exit: None,
            past: TaskTotals::default(),
            queries_done: 0,
            queries_failed: 0,
            bytes_total: 0,
            rows_total: 0,
            rate_samples: VecDeque::new(),
            rates: (0.0, 0.0),
            background: JoinSet::new(),
            keeper: super::persist::Keeper::start(None),
            finished: VecDeque::new(),
            handed_over: false,
        }
    }

    /// Keeps what a coordinator taking over needs through `keeper`.
    pub fn keeping(mut self, keeper: super::persist::Keeper) -> State {
        self.keeper = keeper;
        self
    }

    /// Whether a replacement coordinator took over (then nothing is torn down).
    pub fn handed_over(&self) -> bool {
        self.handed_over
    }

    /// Set once a client asked the cluster to shut down.
    pub fn exit_requested(&self) -> Option<&str> {
        self.exit.as_deref()
    }

    pub fn set_dashboard(&mut self, registered: bool) {
        self.dashboard = registered;
    }

    /// The Dask scheduler's state changed (its agent's supervisor said so).
    pub fn set_dask(&mut self, view: crate::protocol::DaskView) {
        self.dask = Some(view);
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
            Event::Attach {
                query,
                progress,
                done,
            } => self.attach(query, progress, done),
            Event::HandOver { reply } => {
                self.exit = Some("a replacement coordinator took over".into());
                self.handed_over = true;
                let _ = reply.send(());
            }
            Event::Merged { query, result } => self.merged(query, result),
            Event::Cancel {
                query,
                reason,
                reply,
            } => {
                let found = self.cancel(query, &reason);
                if let Some(r) = reply {
                    let _ = r.send(found);
                }
            }
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
        self.expire(now);
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
