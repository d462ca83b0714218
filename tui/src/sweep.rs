//! The scaling sweep: one query run at 1, 2, 4, … cores on a live cluster, restricting the cores
//! the coordinator may hand work to for each run. One function for the TUI's scaling screen and
//! `corral sweep`, so both measure the same way; each run is an ordinary query, so the
//! coordinator records it in the ledger (`corral plot` draws from there).
//!
//! A sweep only measures scaling if the query has work for every core of its largest run: with
//! the coordinator's 64 MiB partitions, a few MB of CSV is one or two tasks and every run would
//! compute on the same cores. Unless the caller chose a partition size, the sweep cuts the
//! query finer ([`partition_bytes_for`]), and when a run still used fewer cores than asked it
//! says why in plain words ([`shortfall`]).

use std::future::Future;

use anyhow::Context;
use corral_core::aggregate::{self, DEFAULT_PARTITION_BYTES, Query};
use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;
use corral_core::protocol::{QueryOptions, Restriction};
use corral_core::scaling::{Analysis, Point};

/// One finished run of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The runtime at the cores that really computed (a worker's granularity may round the
    /// limit asked for).
    pub point: Point,
    /// The core limit asked for.
    pub asked: u32,
    pub workers: u32,
    /// Partitions (tasks) the query was cut into: it can use at most this many workers' cores.
    pub tasks: u32,
    pub rows: u64,
    pub bytes: u64,
}

/// The partition size that gives `data_bytes` of input a few partitions per core of a run on
/// `max_cores` (the coordinator's own rule, with its default as the cap).
pub fn partition_bytes_for(data_bytes: u64, max_cores: u32) -> u64 {
    aggregate::partition_bytes_for(data_bytes, max_cores, DEFAULT_PARTITION_BYTES)
}

/// `options` with a partition size fit for sweeping `query` over `cores`, unless the caller
/// chose one. The query is planned here (headers and sizes only) to learn its bytes; if that
/// fails, the coordinator's default stands and the coordinator reports the problem itself.
async fn sized(query: &Query, cores: &[u32], mut options: QueryOptions) -> QueryOptions {
    let Some(&max) = cores.iter().max() else {
        return options;
    };
    if options.partition_bytes.is_some() {
        return options;
    }
    let q = query.clone();
    let planned =
        tokio::task::spawn_blocking(move || aggregate::plan(&q, DEFAULT_PARTITION_BYTES)).await;
    match planned {
        Ok(Ok(plan)) => options.partition_bytes = Some(partition_bytes_for(plan.data_bytes(), max)),
        Ok(Err(e)) => tracing::debug!("cannot plan the sweep's query here: {e}"),
        Err(e) => tracing::warn!("planning the sweep's query failed: {e}"),
    }
    options
}

/// Why a run computed on fewer cores than it asked for, in plain words (the largest such run
/// of `steps`), or `None` when every run got the cores it asked for.
pub fn shortfall(steps: &[Step]) -> Option<String> {
    let s = steps
        .iter()
        .filter(|s| s.point.cores < s.asked)
        .max_by_key(|s| s.asked)?;
    let plural = |n: u32, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    Some(if s.tasks < s.asked {
        format!(
            "this query has only {}; it cannot use more than {}",
            plural(s.tasks, "partition"),
            plural(s.tasks, "core")
        )
    } else {
        format!(
            "the run asked for {} computed on {}: its {} were taken before the other workers \
             asked for work",
            plural(s.asked, "core"),
            plural(s.point.cores, "core"),
            plural(s.tasks, "partition")
        )
    })
}

/// The sweep's advice: the analysis's, with `shortfall`'s words. When the runs measured a
/// single core count, the shortfall IS the answer (not "run a sweep": this was one).
pub fn recommendation(analysis: &Analysis, shortfall: Option<&str>) -> String {
    match shortfall {
        None => analysis.recommendation.clone(),
        Some(why) if analysis.points.len() < 2 => why.to_string(),
        Some(why) => format!("{}; {why}", analysis.recommendation),
    }
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
    let options = sized(query, cores, options).await;
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
            tasks: r.tasks,
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

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::scaling::{self, DEFAULT_THRESHOLD};

    fn step(asked: u32, cores: u32, tasks: u32) -> Step {
        Step {
            point: Point {
                cores,
                seconds: 1.0,
            },
            asked,
            workers: cores,
            tasks,
            rows: 10,
            bytes: 100,
        }
    }

    #[test]
    fn the_partition_size_gives_every_core_of_the_largest_run_work() {
        // Two 3 MB files over 4 cores: 16 partitions' worth, not the default's 2.
        let b = partition_bytes_for(6_000_000, 4);
        assert_eq!(b, 375_000);
        assert!(6_000_000 / b >= 4 * 4);
        // Tiny inputs stop at the floor; big ones keep the coordinator's default.
        assert_eq!(
            partition_bytes_for(100_000, 64),
            aggregate::MIN_PARTITION_BYTES
        );
        assert_eq!(partition_bytes_for(1 << 40, 4), DEFAULT_PARTITION_BYTES);
        assert_eq!(partition_bytes_for(0, 0), aggregate::MIN_PARTITION_BYTES);
    }

    #[test]
    fn a_run_short_of_cores_says_the_query_has_too_few_partitions() {
        assert_eq!(shortfall(&[step(1, 1, 8), step(2, 2, 8)]), None);
        // Granularity gave more cores than asked: not a shortfall.
        assert_eq!(shortfall(&[step(1, 2, 8)]), None);
        let steps = [step(1, 2, 2), step(2, 2, 2), step(4, 2, 2)];
        let why = shortfall(&steps);
        assert_eq!(
            why.as_deref(),
            Some("this query has only 2 partitions; it cannot use more than 2 cores")
        );
        assert_eq!(
            shortfall(&[step(2, 1, 1)]).as_deref(),
            Some("this query has only 1 partition; it cannot use more than 1 core")
        );
        // Enough partitions, yet fewer cores: said as it is.
        let other = shortfall(&[step(4, 2, 16)]).unwrap_or_default();
        assert!(
            other.starts_with("the run asked for 4 cores computed on 2 cores"),
            "{other}"
        );

        // One core count measured: the shortfall replaces "run a sweep".
        let points: Vec<Point> = steps.iter().map(|s| s.point).collect();
        let one = scaling::analyze(&points, DEFAULT_THRESHOLD);
        assert!(one.recommendation.contains("run a sweep"), "{one:?}");
        let r = recommendation(&one, why.as_deref());
        assert_eq!(
            r,
            "this query has only 2 partitions; it cannot use more than 2 cores"
        );
        // Several: the analysis, then why the last runs did not get their cores.
        let two = scaling::analyze(
            &[
                Point {
                    cores: 1,
                    seconds: 2.0,
                },
                Point {
                    cores: 2,
                    seconds: 1.0,
                },
            ],
            DEFAULT_THRESHOLD,
        );
        let r = recommendation(&two, why.as_deref());
        assert!(
            r.starts_with(&two.recommendation) && r.ends_with("more than 2 cores"),
            "{r}"
        );
        assert_eq!(recommendation(&two, None), two.recommendation);
    }
}
