//! The coordinator's task scheduling for one query, as a pure state machine (no I/O, no
//! clocks), so its rules can be tested exhaustively in-process.
//!
//! Rules:
//! - Workers pull: each reports free slots and gets up to that many tasks, so fast workers take
//!   more.
//! - Every assignment carries an attempt id; a result for an attempt that is no longer current
//!   (the task was re-assigned after its worker was presumed lost) is dropped as stale.
//! - A lost worker's running tasks go back to the front of the queue (they are the oldest work).
//! - A task that failed on [`MAX_DISTINCT_FAILURES`] different workers fails the query: the data
//!   is bad, not the workers.
//! - A draining worker gets nothing new; its running tasks finish normally.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// Distinct workers a task may fail on before the whole query fails.
pub const MAX_DISTINCT_FAILURES: usize = 3;

/// Identifies a worker connection for the life of the coordinator.
pub type WorkerId = u64;

/// One unit of work handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assignment {
    pub task: usize,
    pub attempt: u32,
}

/// What happened to a reported result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The result counts; merge it.
    Accepted,
    /// An old attempt or an unknown task: drop it.
    Stale,
}

/// What a failure report led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The task will be tried again, on another worker if one exists.
    Retry,
    /// The task failed on enough different workers: the query fails with this task's error.
    QueryFailed {
        task: usize,
        error: String,
    },
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    Queued,
    Running { worker: WorkerId, attempt: u32 },
    Done,
}

/// Counts for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    /// Failed attempts so far (the task itself may have succeeded on a retry).
    pub failed: u64,
    /// Attempts started again because their worker was lost or a result was stale.
    pub rerun: u64,
}

/// Scheduling state of one query.
#[derive(Debug)]
pub struct Scheduler {
    state: Vec<TaskState>,
    attempts: Vec<u32>,
    queue: VecDeque<usize>,
    failed_on: HashMap<usize, BTreeSet<WorkerId>>,
    draining: BTreeSet<WorkerId>,
    counts: Counts,
    /// Set once a task failed on too many workers: nothing more is handed out.
    gave_up: bool,
}

impl Scheduler {
    pub fn new(tasks: usize) -> Scheduler {
        Scheduler {
            state: vec![TaskState::Queued; tasks],
            attempts: vec![0; tasks],
            queue: (0..tasks).collect(),
            failed_on: HashMap::new(),
            draining: BTreeSet::new(),
            gave_up: false,
            counts: Counts {
                queued: tasks as u64,
                ..Counts::default()
            },
        }
    }

    /// Hands `worker` up to `slots` tasks, preferring ones it has not failed before.
    pub fn assign(&mut self, worker: WorkerId, slots: usize) -> Vec<Assignment> {
        let mut out = Vec::new();
        if self.gave_up || self.draining.contains(&worker) {
            return out;
        }
        let mut skipped = VecDeque::new();
        while out.len() < slots {
            let Some(task) = self.queue.pop_front() else {
                break;
            };
            if self
                .failed_on
                .get(&task)
                .is_some_and(|w| w.contains(&worker))
            {
                skipped.push_back(task);
                continue;
            }
            self.attempts[task] += 1;
            let attempt = self.attempts[task];
            self.state[task] = TaskState::Running { worker, attempt };
            self.counts.queued -= 1;
            self.counts.running += 1;
            out.push(Assignment { task, attempt });
        }
        // Tasks this worker already failed stay first in line for someone else.
        while let Some(t) = skipped.pop_back() {
            self.queue.push_front(t);
        }
        out
    }

    /// Marks a queued task done without assigning it: its result was kept by a coordinator
    /// this one took over from. Returns false when the task was not queued.
    pub fn restore_done(&mut self, task: usize) -> bool {
        if self.state.get(task) != Some(&TaskState::Queued) {
            return false;
        }
        self.queue.retain(|t| *t != task);
        self.state[task] = TaskState::Done;
        self.counts.queued -= 1;
        self.counts.done += 1;
        true
    }

    /// Records a finished attempt.
    pub fn complete(&mut self, worker: WorkerId, a: Assignment) -> Outcome {
        match self.state.get(a.task) {
            Some(TaskState::Running { worker: w, attempt })
                if *w == worker && *attempt == a.attempt =>
            {
                self.state[a.task] = TaskState::Done;
                self.counts.running -= 1;
                self.counts.done += 1;
                Outcome::Accepted
            }
            _ => Outcome::Stale,
        }
    }

    /// Records a failed attempt (the worker could not compute the task).
    pub fn fail(&mut self, worker: WorkerId, a: Assignment, error: String) -> FailureOutcome {
        match self.state.get(a.task) {
            Some(TaskState::Running { worker: w, attempt })
                if *w == worker && *attempt == a.attempt =>
            {
                self.counts.running -= 1;
                self.counts.failed += 1;
                let failed = self.failed_on.entry(a.task).or_default();
                failed.insert(worker);
                if failed.len() >= MAX_DISTINCT_FAILURES {
                    self.state[a.task] = TaskState::Done;
                    self.gave_up = true;
                    return FailureOutcome::QueryFailed {
                        task: a.task,
                        error,
                    };
                }
                self.requeue(a.task);
                FailureOutcome::Retry
            }
            _ => FailureOutcome::Stale,
        }
    }

    /// A worker is gone: its running tasks go back to the front of the queue.
    /// Returns the tasks that will be re-run.
    pub fn worker_lost(&mut self, worker: WorkerId) -> Vec<usize> {
        let lost: Vec<usize> = self
            .state
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, TaskState::Running { worker: w, .. } if *w == worker))
            .map(|(i, _)| i)
            .collect();
        for &t in lost.iter().rev() {
            self.counts.running -= 1;
            self.counts.rerun += 1;
            self.requeue(t);
        }
        self.draining.remove(&worker);
        lost
    }

    /// Stops giving `worker` new tasks (scale-down drains before scancel).
    pub fn drain(&mut self, worker: WorkerId) {
        self.draining.insert(worker);
    }

    /// Whether the query is over: every task done, or one failed for good.
    pub fn finished(&self) -> bool {
        self.gave_up || self.counts.done as usize == self.state.len()
    }

    /// Tasks a worker could still be given (to tell whether asking is worth it).
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Puts a completed task back in the queue (its result had to be discarded, e.g. it was
    /// computed under a wrong assumption); counts as a re-run.
    pub fn redo(&mut self, task: usize) {
        if matches!(self.state.get(task), Some(TaskState::Done)) {
            self.counts.done -= 1;
            self.counts.rerun += 1;
            self.requeue(task);
        }
    }

    fn requeue(&mut self, task: usize) {
        self.state[task] = TaskState::Queued;
        self.counts.queued += 1;
        self.queue.push_front(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_workers_take_more_and_everything_finishes_once() {
        let mut s = Scheduler::new(10);
        let a = s.assign(1, 3);
        let b = s.assign(2, 1);
        assert_eq!((a.len(), b.len()), (3, 1));
        for x in a {
            assert_eq!(s.complete(1, x), Outcome::Accepted);
        }
        let more = s.assign(1, 3);
        assert_eq!(more.len(), 3);
        assert_eq!(s.counts().done, 3);
        assert!(!s.finished());
    }

    #[test]
    fn a_lost_workers_tasks_rerun_and_its_late_results_are_stale() {
        let mut s = Scheduler::new(4);
        let a = s.assign(1, 2);
        let lost = s.worker_lost(1);
        assert_eq!(lost.len(), 2);
        assert_eq!(s.counts().rerun, 2);
        let b = s.assign(2, 4);
        assert_eq!(b.len(), 4);
        // The old attempt comes back after all: dropped.
        assert_eq!(s.complete(1, a[0]), Outcome::Stale);
        for x in b {
            assert_eq!(s.complete(2, x), Outcome::Accepted);
        }
        assert!(s.finished());
        assert_eq!(s.counts().done, 4);
    }

    #[test]
    fn three_distinct_failures_fail_the_query() {
        let mut s = Scheduler::new(1);
        for w in 1..=2 {
            let a = s.assign(w, 1);
            assert_eq!(s.fail(w, a[0], "bad".into()), FailureOutcome::Retry);
        }
        // Worker 1 already failed it: it is not handed back to worker 1.
        assert!(s.assign(1, 1).is_empty());
        let a = s.assign(3, 1);
        assert_eq!(
            s.fail(3, a[0], "bad bytes 0..64".into()),
            FailureOutcome::QueryFailed {
                task: 0,
                error: "bad bytes 0..64".into()
            }
        );
        assert!(s.finished());
    }

    #[test]
    fn draining_workers_get_nothing_new() {
        let mut s = Scheduler::new(3);
        s.drain(7);
        assert!(s.assign(7, 3).is_empty());
        assert_eq!(s.assign(8, 3).len(), 3);
    }

    #[test]
    fn redo_puts_a_done_task_back() {
        let mut s = Scheduler::new(2);
        let a = s.assign(1, 2);
        for x in &a {
            s.complete(1, *x);
        }
        s.redo(a[1].task);
        assert!(!s.finished());
        let again = s.assign(2, 1);
        assert_eq!(again[0].task, a[1].task);
        assert_eq!(again[0].attempt, 2);
    }
}
