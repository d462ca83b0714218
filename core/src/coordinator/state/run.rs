//! What a query is while it waits and while it runs: its phase, its tasks and their results
//! on the way to the merge thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::aggregate::{self, AggError, Parity, Partial, Partition, Plan, Query};
use crate::protocol::{
    FileProblem, QueryId, QueryOptions, QueryPhase, QueryProgress, RerunNote, RerunReason,
    ToClient, WorkerId,
};
use crate::schedule::Scheduler;

use super::{Event, Frame};

pub(super) struct Pending {
    pub(super) id: QueryId,
    pub(super) query: Query,
    pub(super) options: QueryOptions,
    pub(super) progress: mpsc::Sender<ToClient>,
    pub(super) done: oneshot::Sender<ToClient>,
    pub(super) accepted: Instant,
}

pub(super) enum Phase {
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
pub(super) struct MergeThread {
    pub(super) tx: mpsc::Sender<MergeCmd>,
}

pub(super) enum MergeCmd {
    Add(Partial),
    Finish,
}

impl MergeThread {
    pub(super) fn spawn(
        query: QueryId,
        plan: Arc<Plan>,
        tasks: usize,
        events: mpsc::Sender<Event>,
    ) -> Self {
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

    pub(super) fn send(&self, cmd: MergeCmd) -> bool {
        self.tx.try_send(cmd).is_ok()
    }
}

pub(super) struct Run {
    pub(super) id: QueryId,
    pub(super) query: Query,
    pub(super) progress: mpsc::Sender<ToClient>,
    pub(super) done: Option<oneshot::Sender<ToClient>>,
    pub(super) started: Instant,
    /// When it was submitted, and how long it may take from then (`--timeout`).
    pub(super) accepted: Instant,
    pub(super) timeout: Option<Duration>,
    pub(super) options: QueryOptions,
    pub(super) started_unix_ms: u64,
    pub(super) partition_bytes: u64,
    pub(super) phase: Phase,
    pub(super) plan: Option<Arc<Plan>>,
    pub(super) plan_frame: Option<Frame>,
    pub(super) tasks: Vec<Partition>,
    pub(super) sched: Scheduler,
    /// Results accepted but not confirmed yet (their file's earlier partitions are missing).
    pub(super) results: Vec<Option<Partial>>,
    /// Per file: its tasks (plan partitions are in file order), the first unconfirmed one,
    /// and the true quote parity at that one's start.
    pub(super) file_tasks: Vec<Range<usize>>,
    pub(super) cursor: Vec<usize>,
    pub(super) parity: Vec<Parity>,
    pub(super) merger: Option<MergeThread>,
    pub(super) failed_on: HashMap<usize, BTreeSet<WorkerId>>,
    /// Per task: the worker, attempt and time of its latest assignment (stall deadlines).
    pub(super) assigned_at: HashMap<usize, (WorkerId, u32, Instant)>,
    pub(super) contributors: BTreeMap<WorkerId, u32>,
    pub(super) reruns: Vec<RerunNote>,
    /// Partitions whose results an earlier coordinator kept (not computed again).
    pub(super) restored: u32,
    pub(super) bytes_done: u64,
    pub(super) rows_done: u64,
    pub(super) last_progress: Instant,
}

impl Run {
    pub(super) fn path_of(&self, task: usize) -> PathBuf {
        self.tasks
            .get(task)
            .and_then(|p| self.plan.as_ref()?.files.get(p.file))
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    pub(super) fn note_rerun(&mut self, task: usize, reason: RerunReason) {
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

    pub(super) fn progress(&self) -> QueryProgress {
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

/// The file an engine error is about, if it names one.
pub(super) fn error_path(e: &AggError) -> Option<PathBuf> {
    match e {
        AggError::NotFound { path }
        | AggError::IsDirectory { path }
        | AggError::NotRegularFile { path }
        | AggError::Unreadable { path, .. }
        | AggError::HeaderMismatch { path, .. }
        | AggError::BadHeader { path }
        | AggError::NotCsv { path, .. }
        | AggError::HeaderTooLong { path, .. }
        | AggError::FileChanged { path, .. }
        | AggError::BadRow { path, .. }
        | AggError::Coverage { path, .. } => Some(path.clone()),
        _ => None,
    }
}
