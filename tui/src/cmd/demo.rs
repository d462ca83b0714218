//! `corral demo`: the whole product in one command, with no SLURM. Generates NYC-taxi demo data
//! into the cache directory (once; reused while its `expected.json` matches), starts a local
//! cluster of two workers, runs `payment_type.value_counts()` on it, prints the counts like
//! pandas with the workers, cores and timing, checks every count against `expected.json`, and
//! shuts the cluster down. In a terminal it opens the TUI's dashboard on that cluster instead,
//! with the query already running, and stops the cluster when the TUI quits; `--no-tui` (or no
//! terminal) keeps the printed form.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use corral_core::aggregate::{Column, Query, QueryResult};
use corral_core::backend::{Backends, Cluster, Events, ProcessesStopped};
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::ClusterRecord;
use corral_core::datagen::{self, Expected, TaxiSpec};
use corral_core::model::{ClusterSpec, Walltime};
use corral_core::protocol::QueryOptions;

use crate::cmd::query;
use crate::cmd::up::start_local;

/// The demo cluster's name.
const NAME: &str = "demo";
const FILES: usize = 4;
/// 4 × 500 000 = 2 M rows (~360 MB): big enough to be worth a cluster, quick to generate.
const ROWS_PER_FILE: u64 = 500_000;
const SEED: u64 = 42;
/// A little dirt (quoted fields, embedded newlines, wrong field counts) shows the engine
/// counting exactly anyway.
const DIRTY: f64 = 0.001;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Print the result instead of opening the terminal UI's dashboard (also what happens
    /// when stdout is not a terminal).
    #[arg(long)]
    pub no_tui: bool,
    /// Workers of the demo cluster.
    #[arg(long, default_value = "2", value_name = "W")]
    pub workers: u32,
    /// Rows per demo file (tests use fewer).
    #[arg(long, hide = true, default_value_t = ROWS_PER_FILE)]
    pub rows_per_file: u64,
    #[command(flatten)]
    pub ui: crate::app::runtime::UiFlags,
}

impl DemoArgs {
    /// Whether this demo shows the terminal UI (a terminal, and no `--no-tui`).
    pub fn opens_tui(&self) -> bool {
        !self.no_tui && crate::app::runtime::has_terminal()
    }
}

fn data_dir() -> PathBuf {
    corral_core::paths::cache_dir().join("demo")
}

/// The existing demo data, if it is exactly what this demo would generate.
fn existing(dir: &Path, spec: &TaxiSpec) -> Option<Expected> {
    let text = std::fs::read(dir.join(datagen::EXPECTED_FILE)).ok()?;
    let e: Expected = serde_json::from_slice(&text).ok()?;
    let same = e.generator == datagen::GENERATOR
        && e.format == datagen::FORMAT
        && e.seed == spec.seed
        && e.dirty_rate == spec.dirty_rate
        && e.rows_per_file == spec.rows_per_file
        && e.files.len() == spec.files
        && e.files
            .iter()
            .all(|f| std::fs::metadata(dir.join(&f.name)).is_ok_and(|m| m.len() == f.bytes));
    same.then_some(e)
}

fn generate(spec: &TaxiSpec) -> anyhow::Result<Expected> {
    let total = spec.files as u64 * spec.rows_per_file;
    let tty = std::io::stderr().is_terminal();
    eprintln!(
        "generating demo data: {} files, {:.1} M rows into {} (once)",
        spec.files,
        total as f64 / 1e6,
        spec.out.display()
    );
    let start = Instant::now();
    let last = std::cell::Cell::new(Instant::now() - Duration::from_secs(1));
    let result = datagen::generate(spec, &|p| {
        let now = Instant::now();
        if !tty || now.duration_since(last.get()) < Duration::from_millis(100) {
            return;
        }
        last.set(now);
        let pct = if p.rows_total == 0 {
            100.0
        } else {
            100.0 * p.rows_done as f64 / p.rows_total as f64
        };
        let width = 30;
        let filled = ((pct / 100.0) * width as f64) as usize;
        // Progress is a courtesy: a closed stderr must not fail the demo.
        let _ = write!(
            std::io::stderr(),
            "\r\x1b[2K[{}{}] {pct:5.1} %  {:.0} MB  {:.1} s",
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            p.bytes_done as f64 / 1e6,
            start.elapsed().as_secs_f64()
        );
        let _ = std::io::stderr().flush();
    });
    if tty {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
    Ok(result?)
}

/// Compares the result with `expected.json`: `Ok(summary)` when every count matches.
fn check(r: &QueryResult, e: &Expected) -> Result<String, Vec<String>> {
    let got: BTreeMap<String, u64> = r
        .groups
        .iter()
        .map(|g| (g.key.first().cloned().unwrap_or_default(), g.count))
        .collect();
    let mut diffs = Vec::new();
    for k in got
        .keys()
        .chain(e.payment_type.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (
            got.get(k).copied().unwrap_or(0),
            e.payment_type.get(k).copied().unwrap_or(0),
        );
        if a != b {
            diffs.push(format!("payment_type {k:?}: counted {a}, expected {b}"));
        }
    }
    if r.bad_rows.total != e.bad_rows.wrong_field_count {
        diffs.push(format!(
            "bad rows: counted {}, expected {}",
            r.bad_rows.total, e.bad_rows.wrong_field_count
        ));
    }
    if r.rows + r.bad_rows.total != e.rows {
        diffs.push(format!(
            "records: counted {}, expected {}",
            r.rows + r.bad_rows.total,
            e.rows
        ));
    }
    if diffs.is_empty() {
        Ok(format!(
            "exact: every count matches expected.json ({} good rows, {} bad rows counted apart)",
            r.rows, r.bad_rows.total
        ))
    } else {
        Err(diffs)
    }
}

/// Makes room for a new demo cluster: a stopped one is replaced, a running one is refused.
fn clear_old_cluster() -> anyhow::Result<()> {
    let path = corral_core::paths::clusters_dir().join(NAME);
    if !path.exists() {
        return Ok(());
    }
    let dir = ClusterDir::open_path(&path)?;
    if let Ok(r) = ClusterRecord::load(&dir)
        && !r.live_pids(dir.path()).is_empty()
    {
        bail!("a demo cluster is already running; stop it with `corral down {NAME}`");
    }
    std::fs::remove_dir_all(&path)
        .with_context(|| format!("cannot remove the old demo cluster {}", path.display()))
}

pub async fn run(
    args: DemoArgs,
    ui: crate::app::runtime::Ui,
    backends: &Backends,
) -> anyhow::Result<ExitCode> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let out = data_dir();
    let mut spec = TaxiSpec::new(&out);
    spec.files = FILES;
    spec.rows_per_file = args.rows_per_file;
    spec.seed = SEED;
    spec.dirty_rate = DIRTY;
    let expected = match existing(&out, &spec) {
        Some(e) => e,
        None => generate(&spec)?,
    };
    let files: Vec<String> = expected
        .files
        .iter()
        .map(|f| out.join(&f.name).to_string_lossy().into_owned())
        .collect();

    clear_old_cluster()?;
    let cores = (corral_core::threads::cpu_threads(None).get() as u32 / args.workers).max(1);
    let lspec = ClusterSpec {
        name: NAME.into(),
        workers: args.workers,
        cores_per_worker: cores,
        mem_per_worker_mb: None,
        walltime: Walltime::from_days(1),
        partition: None,
        account: None,
        supervise: Default::default(),
        dask: None,
    };
    println!(
        "corral demo: payment_type.value_counts() over {} NYC-taxi files ({:.1} M rows, {:.2} GB) on a local cluster of {} × {}",
        files.len(),
        expected.rows as f64 / 1e6,
        expected.bytes as f64 / 1e9,
        corral_core::text::count(args.workers, "worker"),
        corral_core::text::count(cores, "core")
    );
    if args.opens_tui() {
        return run_tui(&lspec, files, ui, backends).await;
    }
    {
        let (mut started, ready_after) = start_local(backends, &lspec, &Events::none()).await?;
        let q = Query::value_counts(files, Column::Name("payment_type".into()));
        let show = std::io::stderr().is_terminal();
        let outcome = query::submit(&started.dir, q, QueryOptions::default(), show).await;
        // Whatever happened, leave nothing running.
        let stop = stop_demo(backends, &mut started).await;
        let report = outcome?;
        let res = report.result();
        print!("{}", res.to_table());
        let secs = report.seconds.max(1e-9);
        println!(
            "computed by {} / {} in {:.2} s ({:.2} GB/s, {:.1} M rows/s); the cluster was up in {:.2} s",
            corral_core::text::count(report.workers, "worker"),
            corral_core::text::count(report.cores, "core"),
            report.seconds,
            res.bytes as f64 / 1e9 / secs,
            (res.rows + res.bad_rows.total) as f64 / 1e6 / secs,
            ready_after.as_secs_f64()
        );
        let verdict = check(res, &expected);
        match &verdict {
            Ok(line) => println!("{line}"),
            Err(diffs) => {
                println!("NOT EXACT: the cluster's counts differ from expected.json:");
                for d in diffs {
                    println!("  {d}");
                }
            }
        }
        match stop {
            Ok(s) => println!(
                "cluster {NAME} stopped ({} processes exited{})",
                s.exited,
                if s.killed + s.terminated > 0 {
                    format!(", {} had to be signalled", s.killed + s.terminated)
                } else {
                    String::new()
                }
            ),
            Err(e) => eprintln!("corral: warning: stopping the demo cluster: {e:#}"),
        }
        Ok(if verdict.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// Stops the demo's cluster (scaling in the TUI may have added workers: what spec.json lists
/// now is stopped).
async fn stop_demo(backends: &Backends, cluster: &mut Cluster) -> anyhow::Result<ProcessesStopped> {
    let _ = cluster.reload();
    let report = backends
        .local()
        .stop(cluster, "corral demo", &Events::none())
        .await?;
    Ok(report.processes.unwrap_or_default())
}

/// The dashboard form: the TUI on the demo cluster with the query already running; the
/// cluster is the demo's own, so it is stopped when the TUI quits, however it quits.
async fn run_tui(
    lspec: &ClusterSpec,
    files: Vec<String>,
    ui: crate::app::runtime::Ui,
    backends: &Backends,
) -> anyhow::Result<ExitCode> {
    let (mut started, _) = start_local(backends, lspec, &Events::none()).await?;
    let query = Query::value_counts(files, Column::Name("payment_type".into()));
    let shown = crate::app::run(ui.options(crate::app::Start::Demo {
        name: NAME.into(),
        query,
    }))
    .await;
    let _ = started.reload();
    if started.record.stopped.is_none() {
        match stop_demo(backends, &mut started).await {
            Ok(s) => println!(
                "cluster {NAME} stopped ({} processes exited{})",
                s.exited,
                if s.killed + s.terminated > 0 {
                    format!(", {} had to be signalled", s.killed + s.terminated)
                } else {
                    String::new()
                }
            ),
            Err(e) => eprintln!("corral: warning: stopping the demo cluster: {e:#}"),
        }
    } else {
        println!("cluster {NAME} was stopped from the dashboard");
    }
    shown?;
    Ok(ExitCode::SUCCESS)
}
