//! The scaling sweep: one query run at 1, 2, 4, … cores on a live cluster, restricting the cores
//! the coordinator may hand work to for each run. One function for the TUI's scaling screen and
//! `corral sweep`, so both measure the same way; each run is an ordinary query, so the
//! coordinator records it in the ledger (`corral plot` draws from there).

use std::future::Future;

use anyhow::Context;
use corral_core::aggregate::Query;
use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;
use corral_core::protocol::{QueryOptions, Restriction};
use corral_core::scaling::Point;

/// One finished run of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The runtime at the cores that really computed (a worker's granularity may round the
    /// limit asked for).
    pub point: Point,
    /// The core limit asked for.
    pub asked: u32,
    pub workers: u32,
    pub rows: u64,
    pub bytes: u64,
}

/// Runs `query` (inputs already absolute: see `corral_core::client::resolve_inputs`) once per
/// core count of `cores`, in order, calling `on_step` after each run; `on_step` answering
/// `false` stops the sweep early (its receiver went away). The restriction is lifted at the
/// end, also after a failure. Returns the points measured.
pub async fn run<F, Fut>(
    dir: &ClusterDir,
    query: &Query,
    cores: &[u32],
    options: QueryOptions,
    mut on_step: F,
) -> anyhow::Result<Vec<Point>>
where
    F: FnMut(Step) -> Fut,
    Fut: Future<Output = bool>,
{
    let client = ClusterClient::connect(dir)
        .await
        .with_context(|| format!("cannot reach the cluster {}", dir.name()))?;
    let outcome = steps(&client, query, cores, options, &mut on_step).await;
    lift(&client, dir).await;
    outcome
}

async fn steps<F, Fut>(
    client: &ClusterClient,
    query: &Query,
    cores: &[u32],
    options: QueryOptions,
    on_step: &mut F,
) -> anyhow::Result<Vec<Point>>
where
    F: FnMut(Step) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut points = Vec::with_capacity(cores.len());
    for &c in cores {
        let step = async {
            client
                .restrict(Restriction {
                    max_workers: None,
                    max_cores: Some(c),
                })
                .await?;
            client
                .submit(query.clone(), options.clone())
                .await?
                .wait()
                .await
        };
        let r = step.await.with_context(|| format!("at {c} cores"))?;
        let res = r.result();
        let step = Step {
            point: Point {
                cores: if r.cores > 0 { r.cores } else { c },
                seconds: r.seconds,
            },
            asked: c,
            workers: r.workers,
            rows: res.rows,
            bytes: res.bytes,
        };
        points.push(step.point);
        if !on_step(step).await {
            break;
        }
    }
    Ok(points)
}

/// Lifts the sweep's restriction (best effort: a cluster that went away has nothing to lift).
async fn lift(client: &ClusterClient, dir: &ClusterDir) {
    if let Err(e) = client.restrict(Restriction::default()).await {
        tracing::warn!(
            cluster = dir.name(),
            "cannot lift the sweep's restriction: {e}"
        );
    }
}

/// Lifts any restriction on the cluster in `dir` over a fresh connection: for a sweep that was
/// interrupted (Ctrl-C) before it could lift its own.
pub async fn lift_restriction(dir: &ClusterDir) -> anyhow::Result<()> {
    let client = ClusterClient::connect(dir)
        .await
        .with_context(|| format!("cannot reach the cluster {}", dir.name()))?;
    client.restrict(Restriction::default()).await?;
    Ok(())
}
