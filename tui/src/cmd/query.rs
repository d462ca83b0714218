//! `corral query NAME`: a group-by on a cluster, printed like `corral agg` (the pandas-like table
//! on stdout; rows, bad rows, workers, cores and timing on stderr; `--json` for everything).
//! Relative paths and globs are resolved here, so the coordinator and the workers see absolute
//! paths whatever their working directory.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use corral_core::aggregate::{Query, QueryResult};
use corral_core::client::{ClusterClient, QueryEvent, resolve_inputs};
use corral_core::cluster_dir::ClusterDir;
use corral_core::protocol::{QueryOptions, QueryReport, RerunNote, RerunReason};

use crate::query_flags::QueryFlags;

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The cluster to run on.
    pub name: String,
    #[command(flatten)]
    pub query: QueryFlags,
    /// Print one JSON object on stdout (result, workers, cores, timing, re-runs).
    #[arg(long)]
    pub json: bool,
    /// Cancel the query if it has not ended this long after it was submitted (e.g. 90s, 10m).
    #[arg(long, value_name = "DURATION", value_parser = corral_core::model::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Partition size in bytes (default: the coordinator's, 64 MiB).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub partition_bytes: Option<u64>,
}

/// `--json`: the result plus how the cluster computed it.
#[derive(serde::Serialize)]
struct JsonOut<'a> {
    cluster: &'a str,
    query_id: u64,
    query: &'a Query,
    #[serde(flatten)]
    result: &'a QueryResult,
    workers: u32,
    cores: u32,
    seconds: f64,
    gb_per_s: f64,
    rows_per_s: f64,
    tasks: u32,
    partition_bytes: u64,
    failed_attempts: u64,
    /// Partitions a coordinator that took over found already computed.
    resumed: u32,
    reruns: &'a [RerunNote],
}

fn rerun_reason(r: &RerunReason) -> String {
    match r {
        RerunReason::WorkerLost { worker, node } => format!("worker {worker} on {node} was lost"),
        RerunReason::Failed { worker, error } => format!(
            "worker {worker} failed it: {}",
            corral_core::text::terminal_safe(error)
        ),
        RerunReason::WrongParity => "its split fell inside a quoted field".into(),
    }
}

/// The human summary on stderr (besides the table on stdout).
pub(crate) fn summary(r: &QueryReport) -> String {
    let res = r.result();
    let secs = r.seconds.max(1e-9);
    let mut s = crate::report::result_details(res);
    s.push_str(&format!(
        "read {} files, {:.3} GB in {secs:.3} s: {:.2} GB/s, {:.1} M rows/s on {} worker{} / {} core{} ({} partitions)\n",
        res.files,
        res.bytes as f64 / 1e9,
        res.bytes as f64 / 1e9 / secs,
        (res.rows + res.bad_rows.total) as f64 / 1e6 / secs,
        r.workers,
        if r.workers == 1 { "" } else { "s" },
        r.cores,
        if r.cores == 1 { "" } else { "s" },
        r.tasks,
    ));
    if !r.reruns.is_empty() {
        s.push_str(&format!(
            "re-ran {} partition{} (the result is still exact):\n",
            r.reruns.len(),
            if r.reruns.len() == 1 { "" } else { "s" }
        ));
        for n in r.reruns.iter().take(10) {
            s.push_str(&format!(
                "  {} bytes {}..{}: {}\n",
                corral_core::text::path_safe(&n.path),
                n.start,
                n.end,
                rerun_reason(&n.reason)
            ));
        }
        if r.reruns.len() > 10 {
            s.push_str(&format!("  … and {} more\n", r.reruns.len() - 10));
        }
    }
    s
}

/// Submits `q` to the cluster in `dir`, drawing progress on stderr when it is a terminal.
pub(crate) async fn submit(
    dir: &ClusterDir,
    q: Query,
    options: QueryOptions,
    show_progress: bool,
) -> anyhow::Result<QueryReport> {
    let client = ClusterClient::connect(dir)
        .await
        .with_context(|| format!("cannot reach the cluster {}", dir.name()))?;
    let mut handle = client.submit(q, options).await?;
    if handle.queued_behind > 0 && show_progress {
        eprintln!("queued behind {} other queries", handle.queued_behind);
    }
    let mut drawn = false;
    let clear = |drawn: bool| {
        if drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    };
    loop {
        let ev = tokio::select! {
            ev = handle.next() => ev,
            _ = tokio::signal::ctrl_c() => {
                clear(drawn);
                // Cancelled explicitly rather than by the connection closing, so the workers
                // stop now, not after the coordinator notices the silence.
                let id = handle.id;
                let cancel = client.cancel(id);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), cancel).await;
                bail!("query {id} cancelled (Ctrl-C); the cluster is free for the next query");
            }
        };
        let Some(ev) = ev else { break };
        match ev {
            QueryEvent::Progress(p) => {
                if show_progress {
                    let _ = write!(
                        std::io::stderr(),
                        "\r\x1b[2Kquery {}: {:?}, {}/{} partitions, {:.2}/{:.2} GB, {} worker{} ({} re-run)",
                        p.query,
                        p.phase,
                        p.tasks.done,
                        p.tasks_total,
                        p.bytes_done as f64 / 1e9,
                        p.bytes_total as f64 / 1e9,
                        p.workers,
                        if p.workers == 1 { "" } else { "s" },
                        p.tasks.rerun,
                    );
                    let _ = std::io::stderr().flush();
                    drawn = true;
                }
            }
            QueryEvent::Done(r) => {
                clear(drawn);
                return Ok(*r);
            }
            QueryEvent::Failed(f) => {
                clear(drawn);
                bail!("query {} failed: {}", f.query, f.error);
            }
            QueryEvent::Lost(why) => {
                clear(drawn);
                bail!("lost the query: {why}");
            }
        }
    }
    bail!("the coordinator ended the query without an answer")
}

pub async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    // After compiling: `--sql "… FROM 'glob'"` names inputs too.
    let mut q = args.query.query(args.query.inputs.clone())?;
    q.inputs = resolve_inputs(&q.inputs, &cwd)?;
    let dir = ClusterDir::open(&args.name)?;
    let options = QueryOptions {
        partition_bytes: args.partition_bytes,
        timeout_ms: args.timeout.map(|t| t.as_millis() as u64),
    };
    let show = !args.json && std::io::stderr().is_terminal();
    let report = submit(&dir, q.clone(), options, show).await?;
    let res = report.result();
    if args.json {
        let secs = report.seconds.max(1e-9);
        let out = JsonOut {
            cluster: &args.name,
            query_id: report.query,
            query: &q,
            result: res,
            workers: report.workers,
            cores: report.cores,
            seconds: report.seconds,
            gb_per_s: res.bytes as f64 / 1e9 / secs,
            rows_per_s: (res.rows + res.bad_rows.total) as f64 / secs,
            tasks: report.tasks,
            partition_bytes: report.partition_bytes,
            failed_attempts: report.failed_attempts,
            resumed: report.resumed,
            reruns: &report.reruns,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", res.to_table());
        eprint!("{}", summary(&report));
    }
    Ok(ExitCode::SUCCESS)
}
