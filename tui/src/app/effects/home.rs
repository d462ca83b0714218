//! Home's cluster list, with the connected workers of each running cluster.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;

use super::super::runtime::now_unix;
use super::super::view::{ClusterRow, ClusterState};
use super::Ctx;
use super::seen::Seen;

/// How long Home waits for one coordinator's worker count (connect, authenticate, one
/// snapshot); one that takes longer shows `?` until the next refresh.
const CONNECTED_WITHIN: Duration = Duration::from_millis(1500);
/// How many coordinators Home asks at once.
const CONNECTED_AT_ONCE: usize = 8;

/// Fills "workers connected" of the running clusters: a short-lived connection and one
/// snapshot each, at most [`CONNECTED_AT_ONCE`] at a time, each bounded by
/// [`CONNECTED_WITHIN`]. Home refreshes every few seconds only while it shows, so nothing is
/// held open in between (an open connection would keep the idle TUI waking for keep-alives).
pub(super) async fn fill_connected(ctx: &Arc<Ctx>, rows: &mut [ClusterRow]) {
    for r in rows.iter_mut() {
        // No coordinator listens (yet, or any more): no worker is connected.
        if matches!(
            r.state,
            ClusterState::Pending
                | ClusterState::Starting
                | ClusterState::Ended
                | ClusterState::Failed
        ) {
            r.workers_connected = Some(0);
        }
    }
    let mut todo = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.state == ClusterState::Running)
        .map(|(i, r)| (i, r.name.clone()))
        .collect::<Vec<_>>()
        .into_iter();
    // Owned by this task: dropping it (the task aborted on shutdown) aborts the lookups.
    let mut asking = JoinSet::new();
    loop {
        while asking.len() < CONNECTED_AT_ONCE
            && let Some((i, name)) = todo.next()
        {
            let ctx = Arc::clone(ctx);
            asking.spawn(async move {
                let n = tokio::time::timeout(CONNECTED_WITHIN, live_workers(&ctx, &name)).await;
                (i, n.ok().flatten())
            });
        }
        match asking.join_next().await {
            Some(Ok((i, n))) => {
                if let Some(row) = rows.get_mut(i) {
                    row.workers_connected = n;
                }
            }
            Some(Err(e)) => tracing::warn!("a worker count lookup failed: {e}"),
            None => break,
        }
    }
}

/// The live workers of cluster `name`, from one snapshot of its coordinator.
async fn live_workers(ctx: &Ctx, name: &str) -> Option<u32> {
    let dir = ctx.dir(name).ok()?;
    let client = ClusterClient::connect(&dir).await.ok()?;
    let snap = client.snapshot().await.ok()?;
    u32::try_from(snap.live_workers().count()).ok()
}

/// Every cluster directory → a Home row (SLURM clusters share one `squeue` answer).
pub(super) async fn list_clusters(ctx: &Ctx) -> Result<Vec<ClusterRow>, String> {
    let names = ClusterDir::list_in(&ctx.clusters).map_err(|e| e.to_string())?;
    let now = now_unix();
    let mut rows = Vec::new();
    for name in names {
        let cluster = match ctx.cluster(&name) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(cluster = %name, "skipping: {e}");
                continue;
            }
        };
        let seen = Seen::of(ctx, cluster).await;
        // Home keeps what runs and what ended lately; `corral ls --all` has the rest.
        if corral_core::ended::ended_long_ago(&seen.cluster.record, now) {
            continue;
        }
        let last_query_at = std::fs::metadata(seen.cluster.dir.ledger_file())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let workers_asked = seen.workers_asked();
        rows.push(ClusterRow {
            name,
            backend: seen.backend(),
            state: seen.state(),
            job_ids: seen.jobs.ids().iter().map(|j| j.0).collect(),
            workers_connected: None,
            workers_asked,
            cores: u64::from(workers_asked) * u64::from(seen.cluster.record.cores_per_worker),
            walltime_end: seen.walltime_end(now),
            last_query_at,
        });
    }
    Ok(rows)
}
