//! The worker's compute threads: `cores` OS threads taking partitions from a bounded queue and
//! computing them with the engine, never on the async runtime. Results go back through a
//! bounded tokio channel. A job of an old session or a cancelled query is skipped, not run.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::aggregate::{AggError, Inputs, Partial, Partition, Plan};
use crate::protocol::QueryId;

/// One partition to compute.
pub(crate) struct Job {
    pub generation: u64,
    pub query: QueryId,
    pub plan: Arc<Plan>,
    pub cancel: Arc<AtomicBool>,
    pub task: u32,
    pub attempt: u32,
    pub partition: Partition,
}

pub(crate) enum Outcome {
    Done {
        partial: Partial,
        seconds: f32,
    },
    Failed {
        error: String,
        path: Option<PathBuf>,
    },
    /// Cancelled or of an old session: nothing to report but the freed slot.
    Skipped,
}

pub(crate) struct JobDone {
    pub generation: u64,
    pub query: QueryId,
    pub task: u32,
    pub attempt: u32,
    pub outcome: Outcome,
}

/// Counters the worker reports.
#[derive(Default)]
pub(crate) struct Counters {
    pub running: AtomicU32,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    pub rows: AtomicU64,
}

pub(crate) struct Pool {
    jobs: std::sync::mpsc::SyncSender<Job>,
    pub results: mpsc::Receiver<JobDone>,
    generation: Arc<AtomicU64>,
    pub counters: Arc<Counters>,
}

fn error_path(e: &AggError) -> Option<PathBuf> {
    match e {
        AggError::NotFound { path }
        | AggError::Unreadable { path, .. }
        | AggError::FileChanged { path, .. }
        | AggError::BadRow { path, .. } => Some(path.clone()),
        _ => None,
    }
}

impl Pool {
    /// Starts `cores` threads. `delay` (tests only) pauses after each partition.
    pub fn start(cores: NonZeroUsize, delay: Option<Duration>) -> std::io::Result<Pool> {
        let capacity = 4 * (cores.get() + 1) + 16;
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let (done_tx, results) = mpsc::channel(capacity);
        let generation = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(Counters::default());
        for i in 0..cores.get() {
            let rx = rx.clone();
            let done_tx = done_tx.clone();
            let generation = generation.clone();
            let counters = counters.clone();
            // Detached: a thread ends when the queue's sender (the pool) is dropped; one in
            // the middle of a partition finishes it first (or dies with the process).
            std::thread::Builder::new()
                .name(format!("compute-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
                            guard.recv()
                        };
                        let Ok(job) = job else { return };
                        let outcome = if job.generation != generation.load(Ordering::Relaxed)
                            || job.cancel.load(Ordering::Relaxed)
                        {
                            Outcome::Skipped
                        } else {
                            compute(&job, delay, &counters)
                        };
                        let done = JobDone {
                            generation: job.generation,
                            query: job.query,
                            task: job.task,
                            attempt: job.attempt,
                            outcome,
                        };
                        if done_tx.blocking_send(done).is_err() {
                            return;
                        }
                    }
                })?;
        }
        Ok(Pool {
            jobs,
            results,
            generation,
            counters,
        })
    }

    /// A new session: every job handed out before is skipped (its results would be stale).
    pub fn new_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Queues a job; gives it back if the queue is full (a coordinator ignoring credits).
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        self.jobs.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(j)
            | std::sync::mpsc::TrySendError::Disconnected(j) => Box::new(j),
        })
    }
}

fn compute(job: &Job, delay: Option<Duration>, counters: &Counters) -> Outcome {
    counters.running.fetch_add(1, Ordering::Relaxed);
    let t0 = Instant::now();
    // A bug in the engine must cost one task, not the worker's thread.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Inputs::new(&job.plan)
            .with_delay(delay)
            .run_partition(&job.partition)
    }));
    counters.running.fetch_sub(1, Ordering::Relaxed);
    match r {
        Ok(Ok(partial)) => {
            counters.done.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes
                .fetch_add(job.partition.len(), Ordering::Relaxed);
            counters
                .rows
                .fetch_add(partial.rows + partial.bad.total(), Ordering::Relaxed);
            Outcome::Done {
                partial,
                seconds: t0.elapsed().as_secs_f32(),
            }
        }
        Ok(Err(e)) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            Outcome::Failed {
                path: error_path(&e),
                error: e.to_string(),
            }
        }
        Err(_) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            Outcome::Failed {
                error: "the engine panicked on this partition".into(),
                path: None,
            }
        }
    }
}
