//! The registry of workers: who joined, what each holds, draining and retiring, losing a
//! worker (its tasks go back to the queue) and what the user sees of each.

use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::protocol::{
    CloseCode, DaskState, QueryId, Registration, RerunReason, ToWorker, WorkerId, WorkerMsg,
    WorkerReport, WorkerState, WorkerView,
};

use super::run::Phase;
use super::{Frame, State, frame, unix_ms};

/// Dead workers kept in snapshots so the user sees them.
const DEAD_KEPT: usize = 64;
/// Forwarded warnings kept in snapshots.
const WARNINGS_KEPT: usize = 16;
/// Credits a worker may hold at most (a bogus worker cannot make us hand it everything).
const MAX_CREDITS: u32 = 4096;

pub(super) struct Worker {
    pub(super) reg: Registration,
    pub(super) out: mpsc::Sender<Frame>,
    pub(super) conn: Option<quinn::Connection>,
    pub(super) last_seen: Instant,
    pub(super) connected_at_unix: u64,
    pub(super) report: WorkerReport,
    pub(super) credits: u32,
    pub(super) assigned: u32,
    pub(super) draining: bool,
    /// Draining in order to exit (scale-down below a job's size): told to shut down once idle.
    pub(super) retiring: bool,
    /// It said it is leaving (SIGTERM, shutdown): its end is not a loss.
    pub(super) leaving: bool,
    /// The query whose plan it was sent / whose files it checked fine.
    pub(super) plan_sent: Option<QueryId>,
    pub(super) ready: Option<QueryId>,
    /// Its Dask worker, as last reported (Dask mode).
    pub(super) dask: Option<DaskState>,
}

impl State {
    pub(super) fn joined(
        &mut self,
        id: WorkerId,
        reg: Registration,
        out: mpsc::Sender<Frame>,
        conn: Option<quinn::Connection>,
    ) {
        info!(worker = id, node = %reg.node, pid = reg.pid, cores = reg.cores, slurm = ?reg.slurm, "worker joined");
        self.note_rejoin(id, &reg);
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
            dask: None,
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
    pub(super) fn send_to(&mut self, id: WorkerId, f: Frame) -> bool {
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

    pub(super) fn on_worker_msg(&mut self, id: WorkerId, msg: WorkerMsg) {
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
                self.warn_user(line);
            }
            WorkerMsg::Draining { reason } => {
                info!(worker = id, node = %w.reg.node, %reason, "draining before its job ends");
                self.drain_workers(&[id]);
            }
            WorkerMsg::Dask(state) => {
                info!(worker = id, node = %w.reg.node, ?state, "Dask worker");
                w.dask = Some(state);
                // A retiring worker's Dask worker has handed its data over: it may go now.
                self.release_retired();
            }
            WorkerMsg::Leaving { reason } => {
                let why = format!("left: {reason}");
                w.leaving = true;
                self.lose(id, &why);
            }
        }
    }

    /// A process this coordinator declared lost (same node, same pid) that connects again was
    /// cut off, not dead — a partition longer than the heartbeat timeout. It joins as a new
    /// worker (what it held was re-run; a late result of its old attempts is dropped), and the
    /// user is told, in the snapshot's warnings, that it came back and as whom.
    fn note_rejoin(&mut self, id: WorkerId, reg: &Registration) {
        let Some((old, lost_at)) =
            self.dead.iter().rev().find(|(v, _)| {
                v.state == WorkerState::Dead && v.node == reg.node && v.pid == reg.pid
            })
        else {
            return;
        };
        let line = format!(
            "{}: worker {} (pid {}) was declared lost {} s ago and is back: it rejoined as worker {id}",
            reg.node,
            old.id,
            reg.pid,
            lost_at.elapsed().as_secs()
        );
        info!(worker = id, was = old.id, "{line}");
        self.warn_user(line);
    }

    fn warn_user(&mut self, line: String) {
        self.warnings.push_back(line);
        while self.warnings.len() > WARNINGS_KEPT {
            self.warnings.pop_front();
        }
    }

    /// A worker is gone: remember it as dead, re-run its tasks.
    pub(super) fn lose(&mut self, id: WorkerId, why: &str) {
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
    pub(super) fn drain(&mut self, job: u64, count: Option<usize>) -> Vec<WorkerId> {
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
    /// have all been reported, so nothing is re-run. In Dask mode their Dask worker must have
    /// been retired through the scheduler first (its data moved to other workers).
    pub(super) fn release_retired(&mut self) {
        let done: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring && w.assigned == 0)
            .filter(|(_, w)| w.dask.as_ref().is_none_or(DaskState::is_over))
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
    pub(super) fn drain_workers(&mut self, workers: &[WorkerId]) -> Vec<WorkerId> {
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

    pub(super) fn view(id: WorkerId, w: &Worker, now: Instant) -> WorkerView {
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
            dask: w.dask.clone(),
        }
    }
}
