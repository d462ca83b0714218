//! Talking to a cluster's coordinator on a backend's behalf: how many workers are connected,
//! drain, retire, shut down. Every call is bounded: a coordinator that does not answer is
//! reported (or, where best effort is right, skipped), never waited on forever.

use std::time::Duration;

use super::BackendError;
use super::events::{Event, Events};
use crate::client::ClusterClient;
use crate::cluster_dir::ClusterDir;
use crate::protocol::{DaskState, WorkerId};

/// How long connecting (QUIC handshake and the secret's proof) may take.
pub(crate) const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// How long a drained worker may take to report the partitions it holds before it is
/// stopped anyway (what it still held is then re-run elsewhere, so results stay exact).
pub(crate) const DRAIN_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn connect(dir: &ClusterDir) -> Result<ClusterClient, BackendError> {
    match tokio::time::timeout(CONNECT_WITHIN, ClusterClient::connect(dir)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(BackendError::Failed(format!(
            "cannot connect to the coordinator: {e}"
        ))),
        Err(_) => Err(BackendError::Failed(format!(
            "the coordinator did not answer within {CONNECT_WITHIN:?}"
        ))),
    }
}

/// Asks the coordinator to stop its workers and itself; true when it acknowledged. Best
/// effort: one that is already gone has nothing to stop.
pub async fn ask_shutdown(dir: &ClusterDir) -> bool {
    if !dir.coordinator_file().exists() {
        return false;
    }
    let ask = async {
        let c = ClusterClient::connect(dir).await?;
        c.shutdown().await
    };
    matches!(tokio::time::timeout(CONNECT_WITHIN, ask).await, Ok(Ok(())))
}

/// Counts connected workers over one connection kept for a whole wait (opened once the
/// coordinator listens, reopened when it drops). In Dask mode a worker counts once its Dask
/// worker runs too, and a Dask process that cannot run fails the wait with its reason.
#[derive(Default)]
pub(crate) struct WorkerCount {
    client: Option<ClusterClient>,
    dask: bool,
}

impl WorkerCount {
    /// For `record`'s cluster (Dask mode or not).
    pub(crate) fn of(record: &crate::cluster_record::ClusterRecord) -> WorkerCount {
        WorkerCount {
            client: None,
            dask: record.dask.is_some(),
        }
    }

    /// Live workers and their cores, when the coordinator answers; an error when a Dask
    /// process failed for good (e.g. dask missing on the node: the line says what to install).
    pub(crate) async fn get(
        &mut self,
        dir: &ClusterDir,
    ) -> Result<Option<(u32, u32)>, BackendError> {
        if self.client.is_none() {
            let c = tokio::time::timeout(Duration::from_secs(3), ClusterClient::connect(dir));
            let Ok(Ok(c)) = c.await else {
                return Ok(None);
            };
            self.client = Some(c);
        }
        let Some(client) = self.client.as_ref() else {
            return Ok(None);
        };
        let snap = match client.snapshot().await {
            Ok(s) => s,
            Err(_) => {
                self.client = None;
                return Ok(None);
            }
        };
        if !self.dask {
            return Ok(Some((
                u32::try_from(snap.live_workers().count()).unwrap_or(u32::MAX),
                snap.cores,
            )));
        }
        let failed = |what: &str, error: &str| {
            BackendError::Failed(format!("the Dask {what} failed: {error}"))
        };
        match snap.dask.as_ref().map(|d| &d.scheduler) {
            Some(DaskState::Failed { error }) => return Err(failed("scheduler", error)),
            Some(DaskState::Running { .. }) => {}
            _ => return Ok(Some((0, 0))),
        }
        let mut n = 0u32;
        let mut cores = 0u32;
        for w in snap.live_workers() {
            match &w.dask {
                Some(DaskState::Running { .. }) => {
                    n += 1;
                    cores += w.cores;
                }
                Some(DaskState::Failed { error }) => {
                    return Err(failed(&format!("worker on {}", w.node), error));
                }
                _ => {}
            }
        }
        Ok(Some((n, cores)))
    }
}

/// Whether a drained worker still holds anything: corral tasks, or a Dask worker not yet
/// retired through the scheduler (its data not yet moved off).
fn holds_work(w: &crate::protocol::WorkerView) -> bool {
    w.assigned > 0 || w.dask.as_ref().is_some_and(|d| !d.is_over())
}

/// Waits until none of `drained` holds a task or an unretired Dask worker (at most
/// [`DRAIN_WAIT`]).
async fn until_idle(client: &ClusterClient, drained: &[WorkerId]) {
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    while tokio::time::Instant::now() < deadline {
        every.tick().await;
        let Ok(snap) = client.snapshot().await else {
            return;
        };
        let busy = snap
            .workers
            .iter()
            .any(|w| drained.contains(&w.id) && holds_work(w));
        if !busy {
            return;
        }
    }
}

/// Waits until none of `ids` is live any more (retired workers finish what they hold, then
/// exit and are listed as left), at most [`DRAIN_WAIT`]; true when all have gone. So a
/// scale-down returns with the workers it retired already shown as left.
pub(crate) async fn until_left(client: &ClusterClient, ids: &[WorkerId]) -> bool {
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    while tokio::time::Instant::now() < deadline {
        every.tick().await;
        let Ok(snap) = client.snapshot().await else {
            return false;
        };
        if !snap.live_workers().any(|w| ids.contains(&w.id)) {
            return true;
        }
    }
    false
}

/// Drains the workers with these pids and waits until none holds a task; returns how many
/// were drained. Best effort: without a coordinator there is nothing to drain, and what a
/// worker still holds when stopped is re-run elsewhere.
pub(crate) async fn drain_pids(dir: &ClusterDir, pids: &[u32], events: &Events) -> usize {
    let Ok(client) = connect(dir).await else {
        return 0;
    };
    let Ok(snap) = client.snapshot().await else {
        return 0;
    };
    let ids: Vec<_> = snap
        .live_workers()
        .filter(|w| pids.contains(&w.pid))
        .map(|w| w.id)
        .collect();
    if ids.is_empty() {
        return 0;
    }
    let drained = match client.drain_workers(&ids).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("cannot drain workers {ids:?}: {e}");
            return 0;
        }
    };
    events
        .emit(Event::Step {
            words: format!(
                "draining {}",
                crate::text::count(drained.len() as u64, "worker")
            ),
        })
        .await;
    until_idle(&client, &drained).await;
    drained.len()
}

/// Tells the coordinator to give these SLURM jobs' workers nothing new and move their
/// partitions elsewhere, and waits until they hold none; returns how many it drained.
pub(crate) async fn drain_jobs(dir: &ClusterDir, jobs: &[crate::model::JobId]) -> usize {
    let Ok(c) = connect(dir).await else {
        return 0;
    };
    let mut drained = Vec::new();
    for id in jobs {
        drained.extend(c.drain(id.0).await.unwrap_or_default());
    }
    until_idle(&c, &drained).await;
    drained.len()
}
