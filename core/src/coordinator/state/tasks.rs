//! Handing tasks to workers with credits and taking their results back: coverage checks,
//! quote-parity confirmation in file order, failures and re-runs.

use std::time::Instant;

use tracing::{debug, warn};

use crate::protocol::{RerunReason, TaskAssignment, TaskFailure, TaskResult, ToWorker, WorkerId};
use crate::schedule::{Assignment, FailureOutcome, Outcome};

use super::run::{MergeCmd, Phase};
use super::{Frame, State, frame};

impl State {
    /// Hands queued tasks to workers with credits, within the restriction. Workers are taken
    /// in joining order, so a restriction to N workers always means the same N.
    pub(super) fn dispatch(&mut self) {
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
            let now = Instant::now();
            for a in &got {
                run.assigned_at.insert(a.task, (id, a.attempt, now));
            }
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

    pub(super) fn result(&mut self, id: WorkerId, r: TaskResult) {
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
        if run
            .assigned_at
            .get(&task)
            .is_some_and(|(_, n, _)| *n == r.attempt)
        {
            run.assigned_at.remove(&task);
        }
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
        if self.keeper.active() {
            self.keeper.partial(run.id, task, part.parity, p.clone());
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
    pub(super) fn confirm(&mut self, f: usize) {
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
            run.parity[f] = p.spans.last().map_or(truth, |s| s.end_parity);
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
    pub(super) fn maybe_merge(&mut self) {
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

    pub(super) fn failed(&mut self, id: WorkerId, f: TaskFailure) {
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
        if run
            .assigned_at
            .get(&task)
            .is_some_and(|(_, n, _)| *n == f.attempt)
        {
            run.assigned_at.remove(&task);
        }
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
}
