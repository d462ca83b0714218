//! Stopping queries that nobody wants any more or that take too long: an explicit cancel, a
//! submitter that went away, a `--timeout` that passed, planning that does not finish (a
//! file system not answering). Each ends the query like a failure, with the reason, and the
//! next query starts at once.

use std::time::Instant;

use tracing::info;

use crate::protocol::{QueryFailure, QueryId, TaskFailure, ToClient, WorkerId};

use super::State;
use super::run::Phase;

impl State {
    /// Cancels query `query`, queued or running; false when it is neither.
    pub(super) fn cancel(&mut self, query: QueryId, reason: &str) -> bool {
        if self.run.as_ref().is_some_and(|r| r.id == query) {
            info!(query, reason, "query cancelled");
            self.fail_query(format!("cancelled: {reason}"), vec![]);
            return true;
        }
        let Some(i) = self.queue.iter().position(|p| p.id == query) else {
            return false;
        };
        if let Some(p) = self.queue.remove(i) {
            info!(query, reason, "queued query cancelled");
            self.queries_failed += 1;
            let _ = p.done.send(ToClient::Failed(QueryFailure {
                query,
                error: format!("cancelled before it ran: {reason}"),
                files: vec![],
                seconds: 0.0,
            }));
        }
        true
    }

    /// Once a second: cancels queries whose submitter is gone or whose time is up, and fails
    /// a planning that took too long.
    pub(super) fn expire(&mut self, now: Instant) {
        let mut stop = Vec::new();
        for p in &self.queue {
            let timeout = p.options.timeout_ms.map(std::time::Duration::from_millis);
            if p.done.is_closed() {
                stop.push((p.id, "the client that submitted it went away".to_owned()));
            } else if let Some(t) = timeout
                && now.duration_since(p.accepted) >= t
            {
                stop.push((p.id, timeout_reason(t)));
            }
        }
        if let Some(run) = &self.run {
            if run.done.as_ref().is_some_and(|d| d.is_closed()) {
                stop.push((run.id, "the client that submitted it went away".to_owned()));
            } else if let Some(t) = run.timeout
                && now.duration_since(run.accepted) >= t
            {
                stop.push((run.id, timeout_reason(t)));
            } else if matches!(run.phase, Phase::Planning)
                && now.duration_since(run.started) >= self.cfg.plan_timeout
            {
                let secs = self.cfg.plan_timeout.as_secs();
                self.fail_query(
                    format!(
                        "planning (reading every file's size and header) took longer than \
                         {secs} s: a file system is not answering, or an input is not a \
                         regular file"
                    ),
                    vec![],
                );
            }
        }
        for (id, why) in stop {
            self.cancel(id, &why);
        }
        self.stalled(now);
    }

    /// A task without a result long after it was assigned fails on its worker (and goes to
    /// another): a worker stuck in a file system that does not answer must not hold the query
    /// forever. Its late result, if it ever comes, is stale and dropped.
    fn stalled(&mut self, now: Instant) {
        let Some(run) = &self.run else { return };
        if !matches!(run.phase, Phase::Running) {
            return;
        }
        let limit = self.cfg.task_stall;
        let query = run.id;
        let late: Vec<(usize, WorkerId, u32)> = run
            .assigned_at
            .iter()
            .filter(|(_, (_, _, at))| now.duration_since(*at) >= limit)
            .map(|(task, (w, attempt, _))| (*task, *w, *attempt))
            .collect();
        for (task, worker, attempt) in late {
            if let Some(run) = &mut self.run {
                run.assigned_at.remove(&task);
            }
            let error = format!(
                "no result {} after it was assigned (the worker may be stuck reading the file)",
                human_secs(limit)
            );
            self.failed(
                worker,
                TaskFailure {
                    query,
                    task: task as u32,
                    attempt,
                    error,
                    path: None,
                },
            );
        }
    }
}

fn timeout_reason(t: std::time::Duration) -> String {
    format!("it ran longer than its timeout of {}", human_secs(t))
}

fn human_secs(t: std::time::Duration) -> String {
    let s = t.as_secs_f64();
    if s >= 1.0 && s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}
