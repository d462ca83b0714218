//! `corral agg`: a group-by over CSV files in this process, on all the cores it may use.
//!
//! Data goes to stdout (the pandas-like table, or with `--json` one JSON object holding
//! everything); diagnostics go to stderr (rows, bad rows by reason with examples, bytes,
//! seconds, GB/s, rows/s, memory).

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use corral_core::aggregate::{self, ExecOptions, Query, QueryResult};

use crate::query_flags::QueryFlags;

#[derive(Debug, clap::Args)]
pub struct AggArgs {
    #[command(flatten)]
    pub query: QueryFlags,
    /// Threads (default: SLURM_CPUS_PER_TASK, else the cores this process may use).
    #[arg(long, value_name = "N")]
    pub threads: Option<NonZeroUsize>,
    /// Print one JSON object on stdout (result, bad rows, timing) and nothing on stderr.
    #[arg(long)]
    pub json: bool,
    /// Read with plain reads instead of memory maps.
    #[arg(long, hide = true)]
    pub no_mmap: bool,
    /// Partition size in bytes (default 8 MiB).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub partition_bytes: Option<u64>,
}

/// `--json`: the result plus how it was computed.
#[derive(serde::Serialize)]
struct JsonOut<'a> {
    query: &'a Query,
    #[serde(flatten)]
    result: &'a QueryResult,
    threads: usize,
    seconds: f64,
    gb_per_s: f64,
    rows_per_s: f64,
    memory: Memory,
}

/// Memory of this process at the end, from /proc/self/status (kB → bytes). `rss_anon` is the
/// memory besides mapped file pages (heap, stacks); `peak_rss` includes the file pages that
/// were mapped at the worst moment (the engine drops them after each partition).
#[derive(serde::Serialize, Default)]
struct Memory {
    rss_anon_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
}

fn memory() -> Memory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Memory::default();
    };
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.trim().strip_suffix("kB")?;
            rest.trim().parse::<u64>().ok().map(|kb| kb * 1024)
        })
    };
    Memory {
        rss_anon_bytes: field("RssAnon:"),
        peak_rss_bytes: field("VmHWM:"),
    }
}

pub fn run(args: AggArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let q = args.query.query(args.query.inputs.clone())?;
    let part = args
        .partition_bytes
        .unwrap_or(aggregate::LOCAL_PARTITION_BYTES);
    let plan = aggregate::plan(&q, part)?;
    let threads = corral_core::threads::cpu_threads(args.threads);
    // Test hook: a pause after each partition, so a test can change a file mid-query.
    let delay = std::env::var("CORRAL_AGG_TEST_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    // Benchmark hook: force the scanner's instruction set (portable, sse2, avx2).
    let isa = std::env::var("CORRAL_AGG_ISA")
        .ok()
        .and_then(|v| corral_core::mmap::Isa::from_name(&v));
    let opts = ExecOptions {
        threads,
        isa,
        mmap: !args.no_mmap,
        delay,
    };
    let result = aggregate::execute(&plan, &opts)?;
    let seconds = t0.elapsed().as_secs_f64().max(1e-9);
    let gb_per_s = result.bytes as f64 / 1e9 / seconds;
    let rows_per_s = (result.rows + result.bad_rows.total) as f64 / seconds;
    let mem = memory();

    if args.json {
        let out = JsonOut {
            query: &q,
            result: &result,
            threads: threads.get(),
            seconds,
            gb_per_s,
            rows_per_s,
            memory: mem,
        };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(ExitCode::SUCCESS);
    }

    print!("{}", result.to_table());
    eprint!(
        "{}",
        summary(&result, threads.get(), seconds, gb_per_s, rows_per_s, &mem)
    );
    Ok(ExitCode::SUCCESS)
}

fn summary(
    r: &QueryResult,
    threads: usize,
    seconds: f64,
    gbs: f64,
    rps: f64,
    mem: &Memory,
) -> String {
    let mut s = crate::report::result_details(r);
    s.push_str(&format!(
        "read {} files, {:.3} GB in {seconds:.3} s: {gbs:.2} GB/s, {:.1} M rows/s on {threads} thread{}\n",
        r.files,
        r.bytes as f64 / 1e9,
        rps / 1e6,
        if threads == 1 { "" } else { "s" }
    ));
    if let Some(anon) = mem.rss_anon_bytes {
        s.push_str(&format!(
            "memory: {:.1} MB anonymous (besides mapped file pages), peak RSS {:.1} MB\n",
            anon as f64 / 1e6,
            mem.peak_rss_bytes.unwrap_or(0) as f64 / 1e6
        ));
    }
    s
}
