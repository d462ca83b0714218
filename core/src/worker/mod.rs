//! The worker: what `corral-agent worker` runs, once per SLURM task (or per local process).
//!
//! It connects to the coordinator of its cluster directory (retrying with jittered backoff
//! while the coordinator is starting or busy), registers (node, SLURM ids, cores, pid),
//! reports every second, grants slot credits (one per core plus one queued), checks each
//! query's files before computing any of it, computes partitions on a pool of `cores` threads
//! ([`pool`]) — never on the async runtime — and streams partial results back.
//!
//! It never listens. It exits when the coordinator says so (or closes with `Shutdown`), on
//! [`Control::Terminate`] (SIGTERM in the binary: nothing new is started, the coordinator is
//! told, the process exits), and by itself when the coordinator has been unreachable for
//! [`ORPHAN_TIMEOUT`], so no orphan holds an allocation.

mod pool;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quinn::VarInt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::aggregate::Plan;
use crate::cluster_dir::{ClusterDir, ClusterDirError};
use crate::procstat::{self, CpuMeter};
use crate::protocol::{
    CloseCode, FileProblem, QueryId, Registration, Role, SlurmIds, TaskFailure, TaskResult,
    ToWorker, WorkerMsg, WorkerReport,
};
use crate::tasks::AbortOnDrop;
use crate::transport::{
    AuthedConnection, Backoff, ConnectError, FrameError, recv_frame, send_frame,
};

/// A worker that cannot reach its coordinator for this long exits.
pub const ORPHAN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a worker reports.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How to run a worker.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Compute threads (and the cores the coordinator counts for this worker).
    pub cores: NonZeroUsize,
    pub orphan_timeout: Duration,
    pub report_interval: Duration,
    /// Tests only: a pause after each partition, so a test can act mid-query.
    pub test_delay: Option<Duration>,
    /// The Dask worker this agent runs (Dask mode): its state is reported to the
    /// coordinator, and a drain retires it through the scheduler.
    pub dask: Option<crate::dask::child::Handle>,
}

impl WorkerOptions {
    pub fn new(cores: NonZeroUsize) -> Self {
        WorkerOptions {
            cores,
            orphan_timeout: ORPHAN_TIMEOUT,
            report_interval: REPORT_INTERVAL,
            test_delay: None,
            dask: None,
        }
    }
}

/// Asks a running worker to stop (the binary forwards SIGTERM here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Terminate {
        reason: String,
    },
    /// The job ends soon (SLURM's `--signal`, SIGUSR1 in the binary): take nothing new,
    /// finish what is held, then leave. Outside a connection it is the same as terminating.
    Drain {
        reason: String,
    },
}

/// How a worker ended without error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The coordinator told it to.
    Shutdown { reason: String },
    /// [`Control::Terminate`].
    Terminated { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "the coordinator of {} has been unreachable for {secs} s (last: {last}); exiting so \
         that no orphan worker holds the allocation", dir.display()
    )]
    Orphaned {
        dir: PathBuf,
        secs: u64,
        last: String,
    },
    #[error("the coordinator refused this worker: {0}")]
    Refused(ConnectError),
    #[error(transparent)]
    ClusterDir(#[from] ClusterDirError),
    #[error("cannot start the compute threads: {0}")]
    Threads(std::io::Error),
}

/// Runs a worker for the cluster in `dir` until it is told to stop or is orphaned.
pub async fn run(
    dir: ClusterDir,
    opts: WorkerOptions,
    mut control: mpsc::Receiver<Control>,
) -> Result<Exit, WorkerError> {
    let pool = pool::Pool::start(opts.cores, opts.test_delay).map_err(WorkerError::Threads)?;
    let mut w = Worker {
        dir,
        opts,
        pool,
        cpu: CpuMeter::new(None),
        draining: None,
    };
    let mut last_contact = Instant::now();
    let mut last_error = String::from("not connected yet");
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        // A drained worker that lost its coordinator holds nothing: it is done.
        if let Some(reason) = w.draining.take() {
            return Ok(Exit::Terminated { reason });
        }
        let left = w.opts.orphan_timeout.saturating_sub(last_contact.elapsed());
        if left.is_zero() {
            return Err(WorkerError::Orphaned {
                dir: w.dir.path().to_owned(),
                secs: w.opts.orphan_timeout.as_secs(),
                last: last_error,
            });
        }
        let attempt = tokio::time::timeout(
            left,
            crate::transport::connect_cluster(&w.dir, Role::Worker),
        );
        let connected = tokio::select! {
            r = attempt => r,
            c = control.recv() => return Ok(terminated(c)),
        };
        match connected {
            Ok(Ok(conn)) => {
                backoff.reset();
                info!(coordinator = %conn.remote_address(), "connected");
                match w.session(conn, &mut control).await {
                    End::Exit(e) => return Ok(e),
                    End::Lost { why, last_heard } => {
                        warn!("lost the coordinator: {why}; reconnecting");
                        last_error = why;
                        last_contact = last_heard;
                    }
                }
            }
            Ok(Err(e)) if e.is_permanent() => return Err(WorkerError::Refused(e)),
            Ok(Err(e)) => {
                debug!("cannot connect yet: {e}");
                last_error = e.to_string();
                let pause = backoff.pause();
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    c = control.recv() => return Ok(terminated(c)),
                }
            }
            Err(_) => last_error = "connecting timed out".into(),
        }
    }
}

fn terminated(c: Option<Control>) -> Exit {
    let reason = match c {
        Some(Control::Terminate { reason }) | Some(Control::Drain { reason }) => reason,
        None => "the control channel closed".into(),
    };
    Exit::Terminated { reason }
}

enum End {
    Exit(Exit),
    Lost { why: String, last_heard: Instant },
}

struct Worker {
    dir: ClusterDir,
    opts: WorkerOptions,
    pool: pool::Pool,
    cpu: CpuMeter,
    /// Why it drains (its job ends soon); it leaves once it holds nothing.
    draining: Option<String>,
}

/// The query this worker holds a plan for.
struct Current {
    query: QueryId,
    plan: Arc<Plan>,
    cancel: Arc<AtomicBool>,
}

/// Checks every planned file is readable here and is the file the coordinator planned.
fn check_files(plan: &Plan) -> Vec<FileProblem> {
    plan.files
        .iter()
        .filter_map(|f| {
            // Opened non-blocking and checked on the descriptor: a planned file swapped for
            // a FIFO must not block this check (and with it the worker's heartbeats).
            let problem = crate::aggregate::open_planned(f)
                .err()
                .map(|e| e.to_string());
            problem.map(|error| FileProblem {
                path: f.path.clone(),
                error,
            })
        })
        .collect()
}

/// Encodes a task's outcome. A result too large for one message fails the task with the
/// reason instead of vanishing (the coordinator would wait for it forever).
fn encode_outcome(m: &WorkerMsg) -> Vec<u8> {
    match crate::transport::encode_frame(m) {
        Ok(f) => f,
        Err(e) => {
            let WorkerMsg::Result(r) = m else {
                warn!("cannot encode a message: {e}");
                return Vec::new();
            };
            let size = match &e {
                FrameError::Oversize { len, max } => format!(
                    "{:.0} MiB, over the {} MiB one message may carry",
                    *len as f64 / f64::from(1 << 20),
                    max >> 20
                ),
                other => format!("not encodable ({other})"),
            };
            let error = format!(
                "the partition's result is {size}: too many distinct groups ({} in this \
                 partition); group by fewer or coarser columns",
                r.partial.groups.len()
            );
            warn!(task = r.task, "{error}");
            let failed = WorkerMsg::Failed(TaskFailure {
                query: r.query,
                task: r.task,
                attempt: r.attempt,
                error,
                path: None,
            });
            crate::transport::encode_frame(&failed).unwrap_or_default()
        }
    }
}

impl Worker {
    fn registration(&self) -> Registration {
        Registration {
            node: crate::cluster_dir::node_name(),
            pid: std::process::id(),
            cores: self.opts.cores.get() as u32,
            slurm: SlurmIds::from_env(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    fn report(&mut self, in_hand: u32) -> WorkerReport {
        let c = &self.pool.counters;
        let running = c.running.load(Ordering::Relaxed);
        WorkerReport {
            cpu_busy_pct: self.cpu.sample(self.opts.cores.get() as u32),
            rss_bytes: procstat::rss_bytes(None).unwrap_or(0),
            load_avg: procstat::load_avg().unwrap_or_default(),
            tasks_running: running,
            tasks_queued: in_hand.saturating_sub(running),
            tasks_done: c.done.load(Ordering::Relaxed),
            tasks_failed: c.failed.load(Ordering::Relaxed),
            bytes_processed: c.bytes.load(Ordering::Relaxed),
            rows_processed: c.rows.load(Ordering::Relaxed),
        }
    }

    /// One connection's life.
    async fn session(&mut self, c: AuthedConnection, control: &mut mpsc::Receiver<Control>) -> End {
        let AuthedConnection {
            connection,
            mut send,
            mut recv,
            ..
        } = c;
        let generation = self.pool.new_generation();
        let capacity = self.opts.cores.get() as u32 + 1;
        let mut in_hand: u32 = 0;
        let mut current: Option<Current> = None;
        let mut last_heard = Instant::now();
        let lost = |why: String, last_heard: Instant| End::Lost { why, last_heard };

        // Reading frames is not cancel-safe, so it gets its own task (owned here).
        let (in_tx, mut incoming) = mpsc::channel::<Result<ToWorker, FrameError>>(64);
        let _reader = AbortOnDrop::spawn(async move {
            loop {
                let r = recv_frame::<_, ToWorker>(&mut recv).await;
                let end = !matches!(r, Ok(Some(_)));
                let item = match r {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => Err(FrameError::Truncated),
                    Err(e) => Err(e),
                };
                if in_tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });

        let hello = [
            WorkerMsg::Register(self.registration()),
            WorkerMsg::Report(self.report(0)),
            WorkerMsg::Slots { free: capacity },
        ];
        for m in &hello {
            if let Err(e) = send_frame(&mut send, m).await {
                return lost(format!("cannot register: {e}"), last_heard);
            }
        }
        if let Some(slurm) = std::env::var("SLURM_CPUS_PER_TASK")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            && slurm < self.opts.cores.get()
        {
            let message = format!(
                "computing on {} threads but SLURM allocated {slurm} cores per task: the node is oversubscribed",
                self.opts.cores
            );
            warn!("{message}");
            let _ = send_frame(&mut send, &WorkerMsg::Warning { message }).await;
        }

        // The Dask worker's state: sent now, and again whenever it changes.
        let mut dask = self.opts.dask.as_ref().map(|h| h.status());
        if let Some(d) = dask.as_mut() {
            let state = d.borrow_and_update().state.clone();
            if let Err(e) = send_frame(&mut send, &WorkerMsg::Dask(state)).await {
                return lost(format!("cannot register: {e}"), last_heard);
            }
        }

        let mut ticks = tokio::time::interval(self.opts.report_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen_datagrams = connection.stats().udp_rx.datagrams;
        loop {
            tokio::select! {
                m = incoming.recv() => {
                    let msg = match m {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) => {
                            let why = match connection.close_reason() {
                                Some(quinn::ConnectionError::ApplicationClosed(a))
                                    if CloseCode::from_code(a.error_code.into_inner()) == CloseCode::Shutdown =>
                                {
                                    return End::Exit(Exit::Shutdown {
                                        reason: "the coordinator shut down".into(),
                                    });
                                }
                                Some(r) => r.to_string(),
                                None => e.to_string(),
                            };
                            return lost(why, last_heard);
                        }
                        None => return lost("the reader stopped".into(), last_heard),
                    };
                    last_heard = Instant::now();
                    match msg {
                        ToWorker::Welcome { worker } => info!(worker, "registered"),
                        ToWorker::Plan { query, plan } => {
                            if let Some(old) = current.take() {
                                old.cancel.store(true, Ordering::Relaxed);
                            }
                            let plan: Arc<Plan> = Arc::from(plan);
                            let checked = {
                                let plan = plan.clone();
                                // A few stat/open calls, but on a network filesystem they can
                                // block: off the runtime.
                                tokio::task::spawn_blocking(move || check_files(&plan)).await
                            };
                            let unreadable = checked.unwrap_or_else(|_| vec![]);
                            for p in &unreadable {
                                warn!(path = %p.path.display(), error = %p.error, "cannot read a file of query {query}");
                            }
                            current = Some(Current {
                                query,
                                plan,
                                cancel: Arc::new(AtomicBool::new(false)),
                            });
                            if let Err(e) = send_frame(&mut send, &WorkerMsg::PlanChecked { query, unreadable }).await {
                                return lost(e.to_string(), last_heard);
                            }
                        }
                        ToWorker::Assign { query, tasks } => {
                            let mut refused = 0u32;
                            for t in tasks {
                                let Some(cur) = current.as_ref().filter(|c| c.query == query) else {
                                    refused += 1;
                                    continue;
                                };
                                let job = pool::Job {
                                    generation,
                                    query,
                                    plan: cur.plan.clone(),
                                    cancel: cur.cancel.clone(),
                                    task: t.task,
                                    attempt: t.attempt,
                                    partition: t.partition,
                                };
                                match self.pool.submit(job) {
                                    Ok(()) => in_hand += 1,
                                    Err(job) => {
                                        let f = WorkerMsg::Failed(TaskFailure {
                                            query,
                                            task: job.task,
                                            attempt: job.attempt,
                                            error: "the worker's queue is full (more tasks than slots were assigned)".into(),
                                            path: None,
                                        });
                                        if let Err(e) = send_frame(&mut send, &f).await {
                                            return lost(e.to_string(), last_heard);
                                        }
                                    }
                                }
                            }
                            if refused > 0 {
                                debug!(query, refused, "assignment for a query without plan; returned");
                                if let Err(e) = send_frame(&mut send, &WorkerMsg::Slots { free: refused }).await {
                                    return lost(e.to_string(), last_heard);
                                }
                            }
                        }
                        ToWorker::Cancel { query } => {
                            if let Some(cur) = current.take_if(|c| c.query == query) {
                                cur.cancel.store(true, Ordering::Relaxed);
                                info!(query, "query cancelled");
                            }
                        }
                        ToWorker::Drain => {
                            info!("drained: no new tasks will come");
                            if let Some(h) = &self.opts.dask {
                                info!("retiring the Dask worker through the scheduler");
                                h.retire();
                            }
                        }
                        ToWorker::Shutdown { reason } => {
                            info!(%reason, "the coordinator says shut down");
                            self.pool.new_generation();
                            connection.close(VarInt::from_u32(CloseCode::Done.code()), b"");
                            return End::Exit(Exit::Shutdown { reason });
                        }
                    }
                }
                Some(done) = self.pool.results.recv() => {
                    if done.generation != generation {
                        continue;
                    }
                    in_hand = in_hand.saturating_sub(1);
                    let msg = match done.outcome {
                        pool::Outcome::Done { partial, seconds } => Some(WorkerMsg::Result(Box::new(TaskResult {
                            query: done.query,
                            task: done.task,
                            attempt: done.attempt,
                            partial,
                            seconds,
                        }))),
                        pool::Outcome::Failed { error, path } => {
                            warn!(task = done.task, %error, "task failed");
                            Some(WorkerMsg::Failed(TaskFailure {
                                query: done.query,
                                task: done.task,
                                attempt: done.attempt,
                                error,
                                path,
                            }))
                        }
                        pool::Outcome::Skipped => None,
                    };
                    let mut out = crate::transport::encode_frame(&WorkerMsg::Slots { free: 1 }).unwrap_or_default();
                    if let Some(m) = msg {
                        let mut f = encode_outcome(&m);
                        f.extend_from_slice(&out);
                        out = f;
                    }
                    if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut send, &out).await {
                        return lost(e.to_string(), last_heard);
                    }
                    if in_hand == 0 && let Some(reason) = self.draining.clone() {
                        info!("drained: everything held is reported; leaving");
                        let _ = send_frame(&mut send, &WorkerMsg::Leaving { reason: format!("{reason}; drained") }).await;
                        let _ = send.finish();
                        let _ = tokio::time::timeout(Duration::from_millis(500), send.stopped()).await;
                        connection.close(VarInt::from_u32(CloseCode::Done.code()), b"");
                        self.draining = None;
                        return End::Exit(Exit::Terminated { reason: format!("{reason}; drained") });
                    }
                }
                changed = async { match dask.as_mut() { Some(d) => d.changed().await, None => std::future::pending().await } } => {
                    let Some(d) = dask.as_mut() else { continue };
                    if changed.is_err() {
                        // Its supervisor is gone; its last state was sent.
                        dask = None;
                        continue;
                    }
                    let state = d.borrow_and_update().state.clone();
                    if let Err(e) = send_frame(&mut send, &WorkerMsg::Dask(state)).await {
                        return lost(e.to_string(), last_heard);
                    }
                }
                _ = ticks.tick() => {
                    // Any packet from the coordinator (QUIC acknowledges our reports) means it
                    // is alive; the connection's idle timeout would take longer to say so.
                    let n = connection.stats().udp_rx.datagrams;
                    if n != seen_datagrams {
                        seen_datagrams = n;
                        last_heard = Instant::now();
                    } else if last_heard.elapsed() > self.opts.orphan_timeout {
                        return lost("no packet from the coordinator".into(), last_heard);
                    }
                    let r = self.report(in_hand);
                    if let Err(e) = send_frame(&mut send, &WorkerMsg::Report(r)).await {
                        return lost(e.to_string(), last_heard);
                    }
                }
                c = control.recv() => {
                    if let Some(Control::Drain { reason }) = &c {
                        info!(%reason, held = in_hand, "draining: finishing what is held, taking nothing new");
                        let _ = send_frame(&mut send, &WorkerMsg::Draining { reason: reason.clone() }).await;
                        self.draining = Some(reason.clone());
                        if in_hand > 0 {
                            continue;
                        }
                    }
                    let exit = terminated(c);
                    let reason = match &exit { Exit::Terminated { reason } | Exit::Shutdown { reason } => reason.clone() };
                    info!(%reason, "stopping: nothing new is started");
                    // Queued jobs are skipped; the coordinator re-runs what this worker held.
                    self.pool.new_generation();
                    let r = self.report(0);
                    let _ = send_frame(&mut send, &WorkerMsg::Leaving { reason }).await;
                    let _ = send_frame(&mut send, &WorkerMsg::Report(r)).await;
                    let _ = send.finish();
                    // Let the goodbye reach the coordinator before the connection closes.
                    let _ = tokio::time::timeout(Duration::from_millis(500), send.stopped()).await;
                    connection.close(VarInt::from_u32(CloseCode::Done.code()), b"");
                    return End::Exit(exit);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Group, Partial};
    use crate::transport::decode_payload;

    #[test]
    fn a_result_too_large_to_send_fails_its_task_with_the_reason() {
        // 300,000 groups with 64-byte keys: about 20 MB encoded, over the 16 MiB limit.
        let groups = (0..300_000u32)
            .map(|i| Group {
                key: vec![format!("{i:064}").into_bytes()],
                rows: 1,
                aggs: vec![],
            })
            .collect();
        let m = WorkerMsg::Result(Box::new(TaskResult {
            query: 4,
            task: 9,
            attempt: 2,
            partial: Partial {
                groups,
                ..Partial::default()
            },
            seconds: 0.1,
        }));
        let f = encode_outcome(&m);
        let back: WorkerMsg = decode_payload(&f[4..]).expect("a frame");
        let WorkerMsg::Failed(failure) = back else {
            panic!("expected a failure, got {back:?}");
        };
        assert_eq!((failure.query, failure.task, failure.attempt), (4, 9, 2));
        assert!(
            failure.error.contains("too many distinct groups (300000")
                && failure.error.contains("over the 16 MiB"),
            "{}",
            failure.error
        );
    }
}
