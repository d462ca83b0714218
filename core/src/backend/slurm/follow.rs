//! Following a SLURM cluster until it is ready: pending (the reason in plain words, what
//! would fit now) → running → the coordinator listens → workers k/N. One `squeue --me` per
//! [`POLL`] for the head job; the coordinator itself is asked for the worker count, since it
//! knows the moment it listens, often before squeue says RUNNING.

use std::time::{Duration, Instant};

use super::{SlurmBackend, with_retry};
use crate::backend::events::{Event, Events};
use crate::backend::link::WorkerCount;
use crate::backend::procs::log_tail;
use crate::backend::{BackendError, Cluster, Ready, record_end};
use crate::cluster_record;
use crate::slurm::lifecycle::{self, ClusterJobs, JobView};
use crate::slurm::reason;

/// How often SLURM is asked about the job being followed.
pub const POLL: Duration = Duration::from_secs(2);
/// How often the coordinator is asked how many workers are connected.
const WORKER_POLL: Duration = Duration::from_millis(250);
/// How long cancelling a job that cannot work may take.
const CANCEL_WITHIN: Duration = Duration::from_secs(60);

/// Emits `event` unless it is the same as the last one of its kind.
struct Dedup {
    last: Vec<Event>,
}

impl Dedup {
    async fn emit(&mut self, events: &Events, event: Event) {
        let same_kind = |e: &Event| std::mem::discriminant(e) == std::mem::discriminant(&event);
        if self.last.contains(&event) {
            return;
        }
        self.last.retain(|e| !same_kind(e));
        self.last.push(event.clone());
        events.emit(event).await;
    }
}

pub(super) async fn follow(
    backend: &SlurmBackend,
    cluster: &Cluster,
    want: u32,
    timeout: Option<Duration>,
    events: &Events,
) -> Result<Ready, BackendError> {
    let slurm = backend.client();
    let dir = &cluster.dir;
    let cluster_record::Backend::Slurm { spec, .. } = &cluster.record.backend else {
        return Err(BackendError::Failed(format!(
            "cluster {} is not a SLURM cluster",
            cluster.record.name
        )));
    };
    let jobs = ClusterJobs::load(dir)?;
    let Some(head) = jobs.head().map(|h| h.id) else {
        return Err(BackendError::Failed(format!(
            "cluster {} has no head job recorded",
            cluster.record.name
        )));
    };
    let started = Instant::now();
    let mut said = Dedup { last: Vec::new() };
    let mut next_slurm = Instant::now();
    let mut view: Option<JobView> = None;
    let mut partitions = Vec::new();
    let mut counter = WorkerCount::of(&cluster.record);
    let mut every = tokio::time::interval(WORKER_POLL);
    loop {
        every.tick().await;
        if let Some(t) = timeout
            && started.elapsed() > t
        {
            let state = view
                .as_ref()
                .map_or("PENDING", |v| v.state.as_str())
                .to_lowercase();
            return Ok(Ready::NotYet { state });
        }
        if dir.coordinator_file().exists()
            && let Some((n, cores)) = counter.get(dir).await?
        {
            if let Ok(info) = dir.read_coordinator() {
                said.emit(
                    events,
                    Event::Listening {
                        address: info.socket_addr().to_string(),
                    },
                )
                .await;
            }
            said.emit(
                events,
                Event::Workers {
                    connected: n,
                    asked: want,
                },
            )
            .await;
            if n >= want {
                return Ok(Ready::Up {
                    workers: n,
                    cores,
                    after: started.elapsed(),
                });
            }
        }
        if Instant::now() < next_slurm {
            continue;
        }
        next_slurm = Instant::now() + POLL;
        let ids = [head];
        let views = with_retry("squeue", events, || lifecycle::job_views(slurm, &ids)).await?;
        view = views.get(&head).cloned();
        let Some(v) = view.clone() else {
            continue;
        };
        match v.state.as_str() {
            "PENDING" => {
                // The nodes only when CPUs are what it waits for: what would fit now depends
                // on them.
                if partitions.is_empty() {
                    partitions = slurm.partitions().await.unwrap_or_default();
                }
                let nodes = if v.reason == "Resources" {
                    slurm.nodes().await.unwrap_or_default()
                } else {
                    Vec::new()
                };
                let part = partitions.iter().find(|p| {
                    Some(&p.name) == spec.partition.as_ref()
                        || (spec.partition.is_none() && p.is_default)
                });
                let never_starts = reason::explain(&v.reason).never_starts;
                said.emit(
                    events,
                    Event::Pending {
                        job: head,
                        reason: v.reason.clone(),
                        words: lifecycle::pending_message(&v.reason, spec, part, &nodes),
                        never_starts,
                    },
                )
                .await;
                if never_starts {
                    return Ok(Ready::NeverStarts {
                        job: head,
                        reason: v.reason,
                    });
                }
            }
            "RUNNING" | "CONFIGURING" => {
                said.emit(
                    events,
                    Event::Running {
                        job: Some(head),
                        nodes: v.node_list.clone(),
                    },
                )
                .await;
                if !dir.coordinator_file().exists() {
                    said.emit(
                        events,
                        Event::Waiting {
                            what: "the coordinator to listen".into(),
                        },
                    )
                    .await;
                    // A coordinator that cannot start says why in the job's error file;
                    // waiting on would only burn the allocation.
                    let err = dir.logs_dir().join(format!("head-{head}.err"));
                    if let Some(line) = std::fs::read_to_string(&err).ok().and_then(|t| {
                        t.lines()
                            .find(|l| l.starts_with("corral-agent: error:"))
                            .map(String::from)
                    }) {
                        lifecycle::cancel_and_wait(slurm, &[head], CANCEL_WITHIN).await?;
                        let mut c = cluster.clone();
                        let how = format!("the coordinator failed to start: {line}");
                        record_end(&mut c, &how, "corral", &[head], 0.0, false)?;
                        events.emit(Event::Ended { how }).await;
                        return Err(BackendError::Failed(format!(
                            "the coordinator could not start, so job {head} was cancelled: {line}\n(full log: {})",
                            err.display()
                        )));
                    }
                }
            }
            state => {
                let err_tail = log_tail(&dir.logs_dir().join(format!("head-{head}.err")), 10);
                let mut c = cluster.clone();
                let how = format!("job {head} ended before the cluster was ready: {state}");
                record_end(&mut c, &how, "corral", &[head], 0.0, false)?;
                events.emit(Event::Ended { how }).await;
                return Err(BackendError::Failed(format!(
                    "job {head} ended ({state}{}) before all workers connected{}",
                    if v.reason.is_empty() || v.reason == "None" {
                        String::new()
                    } else {
                        format!(", {}", v.reason)
                    },
                    if err_tail.trim().is_empty() {
                        String::new()
                    } else {
                        format!("; its error output ends with:\n{err_tail}")
                    }
                )));
            }
        }
    }
}
