//! The local backend: a cluster of processes on this machine (no SLURM) — one coordinator
//! bound to 127.0.0.1 and W workers, started detached so closing the terminal does not stop
//! them. `spec.json` records the pids; stopping asks the coordinator to shut down, then makes
//! sure every recorded pid is gone (SIGTERM, then SIGKILL), signalling a pid only while its
//! command line still names the cluster directory.

use std::time::{Duration, Instant};

use super::events::{Event, Events};
use super::link::{self, WorkerCount};
use super::procs::{self, log_path, log_tail};
use super::{
    AgentExe, Backend, BackendError, Cluster, Kind, Observed, Ready, State, StopReport, Target,
    record_end,
};
use crate::cluster_dir::ClusterDir;
use crate::cluster_record::{self, ClusterRecord};
use crate::model::ClusterSpec;
use crate::procstat;
use crate::slurm::lifecycle::now_unix;

/// How long the coordinator may take to publish `coordinator.json`.
const COORDINATOR_START: Duration = Duration::from_secs(15);
/// How long the workers may take to connect when no timeout is given.
const WORKERS_CONNECT: Duration = Duration::from_secs(30);
/// The same in Dask mode: Python starts the scheduler, then every Dask worker joins it.
const DASK_CONNECT: Duration = Duration::from_secs(120);
/// How often the coordinator is asked how many workers are connected while starting: local
/// workers connect within milliseconds, and `up` returns as soon as they have.
const WORKER_POLL: Duration = Duration::from_millis(5);

/// Processes on this machine.
#[derive(Debug, Default)]
pub struct Local {
    /// Extra environment for the agents (tests' knobs).
    env: Vec<(String, String)>,
}

impl Local {
    pub fn with_env(env: Vec<(String, String)>) -> Local {
        Local { env }
    }

    fn agent_of(record: &ClusterRecord) -> Result<AgentExe, BackendError> {
        match &record.backend {
            cluster_record::Backend::Local { agent, .. } => Ok(AgentExe::recorded(agent)),
            _ => Err(BackendError::Failed(format!(
                "cluster {} is not a local cluster",
                record.name
            ))),
        }
    }

    fn worker_args(dir: &ClusterDir, cores: u32) -> Vec<String> {
        vec![
            "worker".into(),
            "--cluster".into(),
            dir.path().to_string_lossy().into_owned(),
            "--cores".into(),
            cores.to_string(),
        ]
    }

    /// Starts `add` worker processes; their pids are in `spec.json` before they connect, so
    /// `corral down` finds them whatever happens next.
    async fn add_workers(&self, cluster: &mut Cluster, add: u32) -> Result<(), BackendError> {
        let agent = Local::agent_of(&cluster.record)?;
        let args = Local::worker_args(&cluster.dir, cluster.record.cores_per_worker);
        let mut pids = Vec::new();
        let mut index = 0;
        let mut failed = None;
        for _ in 0..add {
            let (i, log) = procs::next_worker_log(&cluster.dir, index);
            index = i + 1;
            let mut words = agent.prefix.clone();
            words.extend(args.iter().cloned());
            match procs::spawn(&agent.program, &words, &cluster.dir, &log, &self.env) {
                Ok(c) => pids.extend(c.id()),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // Those started are recorded (and stopped with the cluster) even when one failed.
        if let cluster_record::Backend::Local { worker_pids, .. } = &mut cluster.record.backend {
            worker_pids.extend(&pids);
        }
        cluster.record.workers = cluster
            .record
            .workers
            .saturating_add(u32::try_from(pids.len()).unwrap_or(u32::MAX));
        cluster.record.save(&cluster.dir)?;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops the newest `remove` live workers: the coordinator drains them (nothing new is
    /// given to them, what they hold is finished and reported), then each gets SIGTERM
    /// (SIGKILL if it lingers). Returns (drained, stopped, killed).
    async fn remove_workers(
        &self,
        cluster: &mut Cluster,
        remove: u32,
        events: &Events,
    ) -> Result<(usize, usize, usize), BackendError> {
        let live = live_workers(&cluster.dir, &cluster.record);
        if remove as usize >= live.len() {
            return Err(BackendError::Failed(format!(
                "cluster {} has {} live; it keeps at least 1 (`corral down {0}` stops it)",
                cluster.record.name,
                crate::text::count(live.len() as u64, "worker")
            )));
        }
        let victims: Vec<u32> = live[live.len() - remove as usize..].to_vec();
        let drained = link::drain_pids(&cluster.dir, &victims, events).await;
        let path = cluster.dir.path().to_owned();
        procs::signal_live(&victims, &path, rustix::process::Signal::TERM);
        let still = procs::wait_gone(&victims, &path, Duration::from_secs(10)).await;
        procs::signal_live(&still, &path, rustix::process::Signal::KILL);
        let left = procs::wait_gone(&still, &path, Duration::from_secs(2)).await;
        if let cluster_record::Backend::Local { worker_pids, .. } = &mut cluster.record.backend {
            worker_pids.retain(|p| !victims.contains(p) || left.contains(p));
        }
        cluster.record.workers =
            u32::try_from(live.len() - victims.len() + left.len()).unwrap_or(0);
        cluster.record.save(&cluster.dir)?;
        if !left.is_empty() {
            return Err(BackendError::Failed(format!(
                "workers {left:?} still run after SIGKILL"
            )));
        }
        Ok((drained, victims.len() - still.len(), still.len()))
    }
}

/// The recorded worker pids that still run for this cluster, oldest first.
pub fn live_workers(dir: &ClusterDir, record: &ClusterRecord) -> Vec<u32> {
    match &record.backend {
        cluster_record::Backend::Local { worker_pids, .. } => worker_pids
            .iter()
            .copied()
            .filter(|p| procstat::runs_for(*p, dir.path()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Core-hours of processes holding `workers × cores` from the cluster's start to `to`.
fn held_core_hours(record: &ClusterRecord, to: u64) -> f64 {
    let cores = u64::from(record.workers) * u64::from(record.cores_per_worker);
    crate::slurm::validate::core_hours(cores, to.saturating_sub(record.created_at_unix))
}

/// Waits until `want` workers are connected, failing when one of `pids` (named by `what`)
/// exits first or `limit` passes. Shared by the local and the in-allocation backends.
pub(crate) async fn wait_workers(
    cluster: &Cluster,
    want: u32,
    limit: Duration,
    watched: &[(u32, String)],
    events: &Events,
) -> Result<Ready, BackendError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let dir = &cluster.dir;
    let mut count = WorkerCount::of(&cluster.record);
    let mut seen = None;
    let mut every = tokio::time::interval(WORKER_POLL);
    loop {
        every.tick().await;
        if let Some((n, cores)) = count.get(dir).await? {
            if seen != Some(n) {
                events
                    .emit(Event::Workers {
                        connected: n,
                        asked: want,
                    })
                    .await;
                seen = Some(n);
            }
            if n >= want {
                return Ok(Ready::Up {
                    workers: n,
                    cores,
                    after: started.elapsed(),
                });
            }
        }
        if let Some((pid, log)) = watched
            .iter()
            .find(|(p, _)| !procstat::runs_for(*p, dir.path()))
        {
            return Err(BackendError::Failed(format!(
                "process {pid} of the cluster exited before {} connected ({} did):\n{}",
                crate::text::count(want, "worker"),
                seen.unwrap_or(0),
                log_tail(&log_path(dir, log), 10)
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BackendError::Failed(format!(
                "only {} of {} connected within {limit:?}; see {}",
                seen.unwrap_or(0),
                crate::text::count(want, "worker"),
                dir.logs_dir().display()
            )));
        }
    }
}

#[async_trait::async_trait]
impl Backend for Local {
    fn kind(&self) -> Kind {
        Kind::Local
    }

    async fn start(&self, spec: &ClusterSpec, events: &Events) -> Result<Cluster, BackendError> {
        let agent = AgentExe::find()?;
        let mut cluster = Cluster::create(ClusterRecord {
            name: spec.name.clone(),
            workers: 0,
            cores_per_worker: spec.cores_per_worker,
            created_at_unix: now_unix(),
            backend: cluster_record::Backend::Local {
                agent: agent.program.clone(),
                coordinator_pid: 0,
                worker_pids: Vec::new(),
            },
            stopped: None,
            dask: spec.dask.clone(),
        })?;
        let started = async {
            let mut words = agent.prefix.clone();
            words.extend([
                "coordinator".into(),
                "--cluster".into(),
                cluster.dir.path().to_string_lossy().into_owned(),
                "--bind".into(),
                "127.0.0.1".into(),
            ]);
            let mut coordinator = procs::spawn(
                &agent.program,
                &words,
                &cluster.dir,
                "coordinator.log",
                &self.env,
            )?;
            if let cluster_record::Backend::Local {
                coordinator_pid, ..
            } = &mut cluster.record.backend
            {
                *coordinator_pid = coordinator.id().unwrap_or(0);
            }
            cluster.record.save(&cluster.dir)?;
            let log = log_path(&cluster.dir, "coordinator.log");
            procs::wait_listening(&cluster.dir, &mut coordinator, &log, COORDINATOR_START).await?;
            if let Ok(info) = cluster.dir.read_coordinator() {
                events
                    .emit(Event::Listening {
                        address: info.socket_addr().to_string(),
                    })
                    .await;
            }
            self.add_workers(&mut cluster, spec.workers).await?;
            events
                .emit(Event::Started {
                    processes: 1 + spec.workers as usize,
                })
                .await;
            Ok::<(), BackendError>(())
        };
        if let Err(e) = started.await {
            procs::abandon_start(&mut cluster, &e, "corral").await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn follow(
        &self,
        cluster: &Cluster,
        want: u32,
        timeout: Option<Duration>,
        events: &Events,
    ) -> Result<Ready, BackendError> {
        let mut watched = Vec::new();
        if let cluster_record::Backend::Local {
            coordinator_pid,
            worker_pids,
            ..
        } = &cluster.record.backend
        {
            watched.push((*coordinator_pid, "coordinator.log".to_string()));
            // Worker i logs to worker-i.log (the first start numbers them in order).
            for (i, p) in worker_pids.iter().enumerate() {
                watched.push((*p, format!("worker-{i}.log")));
            }
        }
        let limit = timeout.unwrap_or(if cluster.record.dask.is_some() {
            DASK_CONNECT
        } else {
            WORKERS_CONNECT
        });
        wait_workers(cluster, want, limit, &watched, events).await
    }

    async fn scale(
        &self,
        cluster: &mut Cluster,
        target: Target<'_>,
        events: &Events,
    ) -> Result<String, BackendError> {
        let name = cluster.record.name.clone();
        if let Some(s) = &cluster.record.stopped {
            return Err(BackendError::Failed(format!(
                "cluster {name} has ended ({})",
                s.how
            )));
        }
        if !cluster.dir.coordinator_file().exists() {
            return Err(BackendError::Failed(format!(
                "cluster {name} has no running coordinator"
            )));
        }
        let now =
            u32::try_from(live_workers(&cluster.dir, &cluster.record).len()).unwrap_or(u32::MAX);
        let want = target(now);
        if want == 0 {
            return Err(BackendError::Failed(format!(
                "a cluster needs at least 1 worker; to stop it use `corral down {name}`"
            )));
        }
        if want == now {
            return Ok(format!("cluster {name} already has {now} workers"));
        }
        if want > now {
            let before = match &cluster.record.backend {
                cluster_record::Backend::Local { worker_pids, .. } => worker_pids.len(),
                _ => 0,
            };
            self.add_workers(cluster, want - now).await?;
            let added: Vec<(u32, String)> = match &cluster.record.backend {
                cluster_record::Backend::Local { worker_pids, .. } => worker_pids[before..]
                    .iter()
                    .map(|p| (*p, "coordinator.log".to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            let limit = if cluster.record.dask.is_some() {
                DASK_CONNECT
            } else {
                WORKERS_CONNECT
            };
            wait_workers(cluster, want, limit, &added, events).await?;
            return Ok(format!(
                "started {}, all connected ({now} → {want})",
                crate::text::count(want - now, "worker")
            ));
        }
        let (drained, stopped, killed) = self.remove_workers(cluster, now - want, events).await?;
        Ok(format!(
            "stopped {} ({drained} drained first{}) ({now} → {want})",
            crate::text::count(stopped as u64, "worker"),
            if killed > 0 {
                format!(", {killed} had to be killed")
            } else {
                String::new()
            }
        ))
    }

    async fn stop(
        &self,
        cluster: &mut Cluster,
        who: &str,
        events: &Events,
    ) -> Result<StopReport, BackendError> {
        let pids = cluster.record.live_pids(cluster.dir.path());
        let asked = link::ask_shutdown(&cluster.dir).await;
        if asked {
            events
                .emit(Event::Step {
                    words: "the coordinator is stopping its workers".into(),
                })
                .await;
        }
        let report = procs::stop_all(&pids, cluster.dir.path(), Duration::from_secs(5)).await;
        let how = format!(
            "{who}: {} exited when asked, {} after SIGTERM, {} killed{}",
            report.exited,
            report.terminated,
            report.killed,
            if report.left.is_empty() {
                String::new()
            } else {
                format!(", {} still running", report.left.len())
            }
        );
        let core_hours = held_core_hours(&cluster.record, now_unix());
        record_end(cluster, &how, who, &[], core_hours, false)?;
        let _ = cluster.dir.remove_coordinator();
        events.emit(Event::Ended { how: how.clone() }).await;
        Ok(StopReport {
            how,
            core_hours,
            jobs: Vec::new(),
            processes: Some(report),
        })
    }

    async fn observe(&self, cluster: &mut Cluster) -> Result<Observed, BackendError> {
        let live = !cluster.record.live_pids(cluster.dir.path()).is_empty();
        let (state, detail, until) = match (&cluster.record.stopped, live) {
            (Some(s), _) => (State::Ended, s.how.clone(), s.at_unix),
            (None, true) => (State::Running, "on this machine".into(), now_unix()),
            // Gone without `corral down` (killed, the machine rebooted). Not recorded here: a
            // cluster being started has no pids yet and must not be taken for ended.
            (None, false) => (
                State::Ended,
                "its processes are gone (ended outside corral)".into(),
                now_unix(),
            ),
        };
        Ok(Observed {
            state,
            detail,
            asked_workers: cluster.record.workers,
            left_secs: None,
            jobs: Vec::new(),
            core_hours: held_core_hours(&cluster.record, until),
        })
    }
}
