//! `corral sweep NAME --by COL [aggregates] FILES…`: the TUI's scaling sweep without the TUI.
//! The query runs at 1, 2, 4, … cores up to all the cluster's live cores (the coordinator is
//! told to use no more than that many for each run: `crate::sweep`), then prints cores,
//! seconds, speedup and efficiency and the knee in words (`corral_core::scaling`). Every run is
//! an ordinary query, so it lands in the ledger and `corral plot NAME` can draw it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use corral_core::client::{ClusterClient, resolve_inputs};
use corral_core::cluster_dir::ClusterDir;
use corral_core::protocol::QueryOptions;
use corral_core::scaling::{self, Analysis, Point};

use crate::cmd::query::QueryArgs;
use crate::sweep::{self, Step};

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Stop at this many cores (default: every live core of the cluster).
    #[arg(long, value_name = "N")]
    pub max_cores: Option<u32>,
}

#[derive(serde::Serialize)]
struct JsonOut<'a> {
    cluster: &'a str,
    query: String,
    runs: Vec<JsonRun>,
    #[serde(flatten)]
    analysis: &'a Analysis,
}

#[derive(serde::Serialize)]
struct JsonRun {
    asked_cores: u32,
    cores: u32,
    workers: u32,
    /// Partitions the query was cut into.
    tasks: u32,
    seconds: f64,
    rows: u64,
    bytes: u64,
}

/// The live cores of the cluster now.
async fn live_cores(dir: &ClusterDir) -> anyhow::Result<u32> {
    let client = tokio::time::timeout(Duration::from_secs(10), ClusterClient::connect(dir))
        .await
        .map_err(|_| anyhow::anyhow!("the coordinator of {} did not answer", dir.name()))?
        .with_context(|| format!("cannot reach the cluster {}", dir.name()))?;
    Ok(client.snapshot().await?.cores)
}

/// What ended the sweep.
enum End {
    Done(anyhow::Result<Vec<Point>>),
    Interrupted,
}

pub async fn run(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let qa = &args.query;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let inputs = resolve_inputs(&qa.query.inputs, &cwd)?;
    let q = qa.query.query(inputs)?;
    let dir = ClusterDir::open(&qa.name)?;
    let options = QueryOptions {
        partition_bytes: qa.partition_bytes,
        // Each query of the sweep gets the whole limit.
        timeout_ms: qa.timeout.map(|t| t.as_millis() as u64),
    };
    let words = crate::cmd::history::describe(&q, &[]);
    let json = qa.json;

    let mut steps: Vec<Step> = Vec::new();
    let end = async {
        let cores = match live_cores(&dir).await {
            Ok(c) => c,
            Err(e) => return Ok::<_, anyhow::Error>(End::Done(Err(e))),
        };
        let max = args.max_cores.map_or(cores, |m| m.min(cores));
        let plan = scaling::sweep_cores(max);
        if plan.is_empty() {
            bail!(
                "cluster {} has no live workers to sweep over (see `corral status {}`)",
                qa.name,
                qa.name
            );
        }
        eprintln!(
            "sweeping {words} over {} core counts: {}",
            plan.len(),
            plan.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut first: Option<f64> = None;
        let on_step = |s: Step| {
            let base = *first.get_or_insert(s.point.seconds);
            eprintln!(
                "  {:>5} cores: {:>9.3} s  ({:.2}× the first run)",
                s.point.cores,
                s.point.seconds,
                base / s.point.seconds.max(1e-9)
            );
            steps.push(s);
            std::future::ready(true)
        };
        // Ctrl-C mid-sweep: stop, and lift the restriction so the cluster is whole again.
        tokio::select! {
            r = sweep::run(&dir, &q, &plan, options, on_step) => Ok(End::Done(r)),
            _ = tokio::signal::ctrl_c() => {
                if let Err(e) = sweep::lift_restriction(&dir).await {
                    eprintln!("corral: could not lift the sweep's core limit: {e:#}");
                }
                Ok(End::Interrupted)
            }
        }
    }
    .await?;
    let points = match end {
        End::Interrupted => {
            eprintln!("corral: sweep interrupted; the runs finished so far are in the ledger");
            return Ok(ExitCode::from(130));
        }
        End::Done(r) => r?,
    };
    let mut analysis = scaling::analyze(&points, scaling::DEFAULT_THRESHOLD);
    analysis.recommendation = sweep::recommendation(&analysis, sweep::shortfall(&steps).as_deref());
    if json {
        let out = JsonOut {
            cluster: &qa.name,
            query: words,
            runs: steps
                .iter()
                .map(|s| JsonRun {
                    asked_cores: s.asked,
                    cores: s.point.cores,
                    workers: s.workers,
                    tasks: s.tasks,
                    seconds: s.point.seconds,
                    rows: s.rows,
                    bytes: s.bytes,
                })
                .collect(),
            analysis: &analysis,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", table(&analysis));
        println!("{}", analysis.recommendation);
        println!("plot it: corral plot {} --out runtimes.svg", qa.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// The sweep as a table: cores, seconds, speedup, efficiency.
fn table(a: &Analysis) -> String {
    let mut s = format!(
        "{:>6} {:>10} {:>8} {:>10}\n",
        "CORES", "SECONDS", "SPEEDUP", "EFFICIENCY"
    );
    for p in &a.points {
        let knee = if a.knee == Some(p.cores) {
            "  ← knee"
        } else {
            ""
        };
        s.push_str(&format!(
            "{:>6} {:>10.3} {:>7.2}× {:>9.0} %{knee}\n",
            p.cores,
            p.seconds,
            p.speedup,
            p.efficiency * 100.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_the_knee() {
        let a = scaling::analyze(
            &[
                Point {
                    cores: 1,
                    seconds: 8.0,
                },
                Point {
                    cores: 2,
                    seconds: 4.0,
                },
                Point {
                    cores: 4,
                    seconds: 3.9,
                },
            ],
            scaling::DEFAULT_THRESHOLD,
        );
        let t = table(&a);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(
            lines[2].contains("2.00×") && lines[2].ends_with("← knee"),
            "{t}"
        );
        assert!(lines[1].contains("100 %"), "{t}");
    }
}
