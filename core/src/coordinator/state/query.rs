//! A query's life: queued, planned (on a blocking thread), its files checked by every
//! worker, finished or failed; the submitter's progress and the ledger line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::aggregate::{self, AggError, Parity, Plan, Query, QueryResult};
use crate::protocol::{
    FileProblem, Json, QueryFailure, QueryId, QueryOptions, QueryReport, ToClient, ToWorker,
    WorkerId,
};
use crate::schedule::Scheduler;

use super::super::ledger;
use super::super::persist;
use super::run::{MergeThread, Pending, Phase, Run, error_path};
use super::{Event, FINISHED_KEPT, State, frame, unix_ms};

/// At most this often a submitter gets progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl State {
    pub(super) fn submit(
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
        self.keep();
        self.queue.push_back(Pending {
            id,
            query,
            options,
            progress,
            done,
            accepted: Instant::now(),
        });
        self.start_next();
    }

    pub(super) fn start_next(&mut self) {
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
        // Unless the client chose a size, partitions follow the cores that will compute them
        // and the bytes, not the files: 4 small files on 6 workers still use all 6.
        let cores: u32 = self
            .workers
            .values()
            .filter(|w| !w.draining)
            .map(|w| w.reg.cores.max(1))
            .sum::<u32>()
            .min(self.restriction.max_cores.unwrap_or(u32::MAX));
        let by_cores = p.options.partition_bytes.is_none();
        let now = Instant::now();
        self.run = Some(Run {
            id: p.id,
            query: p.query.clone(),
            progress: p.progress,
            done: Some(p.done),
            started: now,
            accepted: p.accepted,
            timeout: p.options.timeout_ms.map(Duration::from_millis),
            options: p.options.clone(),
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
            assigned_at: HashMap::new(),
            contributors: BTreeMap::new(),
            reruns: Vec::new(),
            restored: 0,
            bytes_done: 0,
            rows_done: 0,
            last_progress: now,
        });
        // Planning stats and reads every file's header: blocking I/O, off the event loop.
        let events = self.events.clone();
        let (query, id) = (p.query, p.id);
        self.background.spawn_blocking(move || {
            let plan = aggregate::plan(&query, partition_bytes).map(|plan| {
                if by_cores {
                    let bytes =
                        aggregate::partition_bytes_for(plan.data_bytes(), cores, partition_bytes);
                    plan.with_partition_bytes(bytes)
                } else {
                    plan
                }
            });
            let _ = events.blocking_send(Event::Planned { query: id, plan });
        });
    }

    pub(super) fn planned(&mut self, query: QueryId, plan: Result<Plan, AggError>) {
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
        run.partition_bytes = plan.partition_bytes;
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
        self.keep();
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

    pub(super) fn plan_checked(
        &mut self,
        id: WorkerId,
        query: QueryId,
        unreadable: Vec<FileProblem>,
    ) {
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
    pub(super) fn checks_over(&mut self) {
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

    pub(super) fn merged(&mut self, query: QueryId, result: Result<QueryResult, AggError>) {
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

    pub(super) fn finish_query(&mut self, result: QueryResult) {
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
            resumed: run.restored,
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
        let end = ToClient::Done(Box::new(report));
        self.remember_end(run.id, &end);
        if let Some(done) = run.done.take() {
            let _ = done.send(end);
        }
        self.start_next();
    }

    pub(super) fn fail_query(&mut self, error: String, files: Vec<PathBuf>) {
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
        let end = ToClient::Failed(failure);
        self.remember_end(run.id, &end);
        if let Some(done) = run.done.take() {
            let _ = done.send(end);
        }
        self.start_next();
    }

    /// Writes what a coordinator taking over needs: the next query number and the running
    /// query once it is planned.
    pub(super) fn keep(&mut self) {
        if !self.keeper.active() {
            return;
        }
        let running = self.run.as_ref().and_then(|r| {
            Some(persist::RunRecord {
                id: r.id,
                query: r.query.clone(),
                options: r.options.clone(),
                plan: (**r.plan.as_ref()?).clone(),
                started_unix_ms: r.started_unix_ms,
            })
        });
        self.keeper.keep(persist::Kept {
            next_query: self.next_query,
            running,
        });
    }

    /// A query's end, for a client that attaches after it.
    fn remember_end(&mut self, id: QueryId, end: &ToClient) {
        self.finished.push_back((id, end.clone()));
        while self.finished.len() > FINISHED_KEPT {
            self.finished.pop_front();
        }
    }

    /// A client follows query `query` again: the running query without a submitter (one
    /// taken over from an earlier coordinator, or whose client lost its stream), or one that
    /// ended (its end is sent at once).
    pub(super) fn attach(
        &mut self,
        query: QueryId,
        progress: mpsc::Sender<ToClient>,
        done: oneshot::Sender<ToClient>,
    ) {
        if let Some(run) = self.run.as_mut().filter(|r| r.id == query) {
            if run.done.as_ref().is_some_and(|d| !d.is_closed()) {
                let _ = done.send(ToClient::Refused {
                    message: format!("query {query} is followed by its submitter"),
                });
                return;
            }
            info!(query, "a client follows the query again");
            let _ = progress.try_send(ToClient::Accepted {
                query,
                queued_behind: 0,
            });
            run.progress = progress;
            run.done = Some(done);
            self.send_progress(true);
            return;
        }
        if let Some((_, end)) = self.finished.iter().find(|(id, _)| *id == query) {
            let _ = progress.try_send(ToClient::Accepted {
                query,
                queued_behind: 0,
            });
            let _ = done.send(end.clone());
            return;
        }
        let _ = done.send(ToClient::Refused {
            message: format!(
                "query {query} is neither running nor recently finished here (a query still queued when its coordinator stopped is not kept: submit it again)"
            ),
        });
    }

    /// Takes over what an earlier coordinator kept: the next query number, and the running
    /// query with its plan and accepted partials — nothing finished is computed again.
    pub(crate) fn resume(&mut self, found: persist::Found) {
        let persist::Found { kept, partials } = found;
        self.next_query = self.next_query.max(kept.next_query);
        let Some(rec) = kept.running else {
            return;
        };
        info!(
            query = rec.id,
            kept = partials.len(),
            tasks = rec.plan.partitions.len(),
            "resuming the query an earlier coordinator ran"
        );
        // Nobody follows it until a client attaches: its progress goes nowhere meanwhile.
        let (progress, _) = mpsc::channel(1);
        let now = Instant::now();
        self.run = Some(Run {
            id: rec.id,
            query: rec.query.clone(),
            progress,
            done: None,
            started: now,
            accepted: now,
            timeout: None,
            options: rec.options.clone(),
            started_unix_ms: rec.started_unix_ms,
            partition_bytes: rec.plan.partition_bytes,
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
            assigned_at: HashMap::new(),
            contributors: BTreeMap::new(),
            reruns: Vec::new(),
            restored: 0,
            bytes_done: 0,
            rows_done: 0,
            last_progress: now,
        });
        self.planned(rec.id, Ok(rec.plan));
        let mut files = BTreeSet::new();
        let Some(run) = &mut self.run else { return };
        for (task, parity, partial) in partials {
            let Some(part) = run.tasks.get_mut(task) else {
                continue;
            };
            if !run.sched.restore_done(task) {
                continue;
            }
            part.parity = parity;
            run.bytes_done += part.len();
            run.rows_done += partial.rows + partial.bad.total();
            files.insert(part.file);
            run.results[task] = Some(partial);
            run.restored += 1;
        }
        for f in files {
            self.confirm(f);
        }
        self.dispatch();
        self.maybe_merge();
    }

    pub(super) fn end_run(&mut self, run: &Run, ok: bool) {
        self.keeper.clear(run.id);
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
        self.keep();
    }

    pub(super) fn send_progress(&mut self, force: bool) {
        let Some(run) = &mut self.run else { return };
        if !force && run.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        run.last_progress = Instant::now();
        // Progress is advisory: a full channel means the client will see the next one.
        let _ = run.progress.try_send(ToClient::Progress(run.progress()));
    }

    pub(super) fn write_ledger(&mut self, line: ledger::Line) {
        let Some(path) = self.cfg.ledger.clone() else {
            return;
        };
        self.background.spawn_blocking(move || {
            if let Err(e) = ledger::append(&path, &line) {
                warn!("cannot append to the ledger {}: {e}", path.display());
            }
        });
    }
}
