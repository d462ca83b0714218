//! `corral history [NAME]`: what ran, from the ledgers (`ledger.jsonl` of every cluster, or of
//! one): each finished query (when, what in words, files, bytes, rows, bad rows, workers,
//! cores, seconds, GB/s) and each finished cluster (core-hours, how it ended). It reads files
//! only — no SLURM, no coordinator — so it works on a login node long after the clusters ended.
//!
//! The ledger reader here is also `corral plot`'s: lines of another shape (an older or newer
//! corral) are skipped, never fatal — history is not worth failing over.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use corral_core::aggregate::Query;
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord};
use corral_core::coordinator::ledger::{Line, rfc3339};

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this cluster (default: every cluster in the state directory).
    pub name: Option<String>,
    /// Print one JSON object: `{"queries": […], "clusters": […]}`.
    #[arg(long)]
    pub json: bool,
}

/// What one cluster's ledger holds.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Query lines, in the order written (= the order they finished).
    pub queries: Vec<Line>,
    /// `"event": "down"` lines, as written (their fields differ by backend).
    pub downs: Vec<serde_json::Value>,
}

/// Reads a ledger; a missing file is an empty ledger.
pub(crate) fn read_ledger(path: &Path) -> anyhow::Result<Ledger> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ledger::default()),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let mut ledger = Ledger::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v.get("event").and_then(|e| e.as_str()) {
            Some("query") => {
                if let Ok(q) = serde_json::from_value::<Line>(v) {
                    ledger.queries.push(q);
                }
            }
            Some("down") => ledger.downs.push(v),
            _ => {}
        }
    }
    Ok(ledger)
}

/// A query in words: `count, sum(fare_amount) by payment_type over 12 files in /data/taxi`.
pub(crate) fn describe(q: &Query, files: &[PathBuf]) -> String {
    if let Some(sel) = &q.select {
        return sel.sql.clone();
    }
    let aggs = q
        .aggregates
        .iter()
        .map(|a| a.label())
        .collect::<Vec<_>>()
        .join(", ");
    let by = q
        .group_by
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let inputs: Vec<PathBuf> = if files.is_empty() {
        q.inputs.iter().map(PathBuf::from).collect()
    } else {
        files.to_vec()
    };
    let n = inputs.len();
    let mut s = format!(
        "{aggs} by {by} over {n} file{}",
        if n == 1 { "" } else { "s" }
    );
    if let Some(dir) = common_dir(&inputs) {
        s.push_str(&format!(" in {}", dir.display()));
    }
    if q.strict {
        s.push_str(" (strict)");
    }
    // Column and directory names come from data files and other users.
    corral_core::text::terminal_safe(&s).into_owned()
}

/// The directory every path is in (their longest common parent), if they share one.
fn common_dir(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut common = paths.first()?.parent()?.to_path_buf();
    for p in &paths[1..] {
        while !p.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    (common.as_os_str().len() > 1).then_some(common)
}

/// One finished query, as history shows it.
#[derive(Debug, serde::Serialize)]
struct QueryEntry {
    cluster: String,
    query_id: u64,
    /// When it finished (RFC 3339, UTC).
    when: String,
    started_at: String,
    /// The query in words.
    query: String,
    /// The query itself (as the coordinator ran it: inputs are absolute).
    query_spec: Query,
    files: usize,
    bytes: u64,
    rows: u64,
    bad_rows: u64,
    workers: u32,
    cores: u32,
    seconds: f64,
    gb_per_s: f64,
    ok: bool,
    error: Option<String>,
}

/// One finished cluster.
#[derive(Debug, serde::Serialize)]
struct ClusterEntry {
    name: String,
    backend: String,
    workers: u32,
    cores_per_worker: u32,
    created_at: String,
    ended_at: String,
    /// How it ended, in words.
    how: String,
    /// SLURM: what SLURM accounted for its jobs; local: cores × wall time. `None` when the
    /// ledger does not say (a SLURM cluster that ended without `corral down`).
    core_hours: Option<f64>,
}

#[derive(Debug, Default, serde::Serialize)]
struct History {
    queries: Vec<QueryEntry>,
    clusters: Vec<ClusterEntry>,
}

fn gb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e9 / seconds
    } else {
        0.0
    }
}

fn query_entry(cluster: &str, l: &Line) -> QueryEntry {
    QueryEntry {
        cluster: cluster.to_string(),
        query_id: l.query_id,
        when: l.finished_at.clone(),
        started_at: l.started_at.clone(),
        query: describe(&l.query, &l.files),
        query_spec: l.query.clone(),
        files: l.files.len(),
        bytes: l.bytes,
        rows: l.rows,
        bad_rows: l.bad_rows,
        workers: l.workers,
        cores: l.cores,
        seconds: l.seconds,
        gb_per_s: gb_per_s(l.bytes, l.seconds),
        ok: l.ok,
        error: l.error.clone(),
    }
}

/// The finished-cluster entry of a record, if it has ended.
fn cluster_entry(record: &ClusterRecord, ledger: &Ledger) -> Option<ClusterEntry> {
    let down = ledger.downs.last();
    let stopped = record.stopped.as_ref();
    let ended_unix = stopped.map(|s| s.at_unix);
    let ended_at = match (ended_unix, down.and_then(|d| d.get("at")?.as_str())) {
        (Some(t), _) => rfc3339(t * 1000),
        (None, Some(at)) => at.to_string(),
        (None, None) => return None,
    };
    let how = stopped.map(|s| s.how.clone()).or_else(|| {
        down.and_then(|d| d.get("how").or_else(|| d.get("by")))
            .and_then(|h| h.as_str())
            .map(str::to_string)
    });
    // The ledger's `down` line says what the cluster used; a SLURM cluster that never
    // started used nothing; processes on this machine held their cores from start to end.
    let core_hours = down
        .and_then(|d| d.get("core_hours")?.as_f64())
        .or_else(|| {
            stopped
                .filter(|s| s.how.contains("could never start"))
                .map(|_| 0.0)
        })
        .or_else(|| match &record.backend {
            Backend::Slurm { .. } => None,
            Backend::Local { .. } | Backend::InAllocation { .. } => ended_unix.map(|end| {
                let cores = u64::from(record.workers) * u64::from(record.cores_per_worker);
                corral_core::slurm::validate::core_hours(
                    cores,
                    end.saturating_sub(record.created_at_unix),
                )
            }),
        });
    Some(ClusterEntry {
        name: record.name.clone(),
        backend: record.backend.kind().to_string(),
        workers: record.workers,
        cores_per_worker: record.cores_per_worker,
        created_at: rfc3339(record.created_at_unix * 1000),
        ended_at,
        how: how.unwrap_or_else(|| "ended".into()),
        core_hours,
    })
}

/// The clusters to look at: one, or every one in the state directory (unreadable ones are
/// skipped with a note on stderr, so one broken directory does not hide the rest).
/// Earlier ended clusters of the same name (moved aside when the name was reused) come first.
pub(crate) fn clusters(name: Option<&str>) -> anyhow::Result<Vec<ClusterDir>> {
    let parent = corral_core::paths::clusters_dir();
    let mut dirs = corral_core::ended::earlier(&parent, name)?;
    if let Some(n) = name {
        match ClusterDir::open(n) {
            Ok(d) => dirs.push(d),
            Err(_) if !dirs.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(dirs);
    }
    for n in ClusterDir::list_in(&corral_core::paths::clusters_dir())? {
        match ClusterDir::open(&n) {
            Ok(d) => dirs.push(d),
            Err(e) => eprintln!("corral: skipping cluster {n}: {e}"),
        }
    }
    Ok(dirs)
}

fn collect(name: Option<&str>) -> anyhow::Result<History> {
    let mut h = History::default();
    for dir in clusters(name)? {
        let ledger = read_ledger(&dir.ledger_file())?;
        let record = ClusterRecord::load(&dir).ok();
        // An earlier cluster's directory is named `NAME@WHEN`; its record says NAME.
        let cluster = record
            .as_ref()
            .map_or_else(|| dir.name(), |r| r.name.clone());
        h.queries
            .extend(ledger.queries.iter().map(|l| query_entry(&cluster, l)));
        if let Some(record) = &record
            && let Some(e) = cluster_entry(record, &ledger)
        {
            h.clusters.push(e);
        }
    }
    // RFC 3339 UTC strings of one width sort by time.
    h.queries.sort_by(|a, b| a.when.cmp(&b.when));
    h.clusters.sort_by(|a, b| a.ended_at.cmp(&b.ended_at));
    Ok(h)
}

/// `2026-01-31T12:34:56.789Z` → `2026-01-31 12:34:56`.
fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

pub fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let h = collect(args.name.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string(&h)?);
        return Ok(ExitCode::SUCCESS);
    }
    if h.queries.is_empty() && h.clusters.is_empty() {
        println!("no finished queries or clusters yet");
        return Ok(ExitCode::SUCCESS);
    }
    if !h.queries.is_empty() {
        println!("finished queries (UTC):");
        println!(
            "  {:<19}  {:<16} {:>5} {:>10} {:>12} {:>8} {:>4} {:>5} {:>9} {:>6}  QUERY",
            "WHEN", "CLUSTER", "FILES", "BYTES", "ROWS", "BAD", "W", "CORES", "SECONDS", "GB/s"
        );
        for q in &h.queries {
            let what = match (&q.error, q.ok) {
                (Some(e), false) => format!("{} — failed: {e}", q.query),
                _ => q.query.clone(),
            };
            println!(
                "  {:<19}  {:<16} {:>5} {:>10} {:>12} {:>8} {:>4} {:>5} {:>9.3} {:>6.2}  {what}",
                short_time(&q.when),
                q.cluster,
                q.files,
                crate::human::bytes(q.bytes),
                q.rows,
                q.bad_rows,
                q.workers,
                q.cores,
                q.seconds,
                q.gb_per_s,
            );
        }
    }
    if !h.clusters.is_empty() {
        if !h.queries.is_empty() {
            println!();
        }
        println!("finished clusters (UTC):");
        println!(
            "  {:<19}  {:<24} {:<6} {:>7} {:>10}  HOW IT ENDED",
            "ENDED", "NAME", "KIND", "W×C", "CORE-HOURS"
        );
        for c in &h.clusters {
            println!(
                "  {:<19}  {:<24} {:<6} {:>7} {:>10}  {}",
                short_time(&c.ended_at),
                c.name,
                c.backend,
                format!("{}×{}", c.workers, c.cores_per_worker),
                c.core_hours
                    .map_or_else(|| "?".to_string(), |h| format!("{h:.3}")),
                c.how
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::aggregate::Column;

    #[test]
    fn queries_in_words() {
        let q = Query::value_counts(
            vec!["/d/taxi/a.csv".into(), "/d/taxi/b.csv".into()],
            Column::Name("payment_type".into()),
        );
        assert_eq!(
            describe(&q, &[]),
            "count by payment_type over 2 files in /d/taxi"
        );
        let files = vec![PathBuf::from("/d/x/a.csv"), PathBuf::from("/d/y/b.csv")];
        assert_eq!(
            describe(&q, &files),
            "count by payment_type over 2 files in /d"
        );
        assert_eq!(
            describe(&q, &[PathBuf::from("/a.csv")]),
            "count by payment_type over 1 file"
        );
    }

    #[test]
    fn ledgers_skip_lines_of_other_shapes() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("ledger.jsonl");
        std::fs::write(
            &p,
            "not json\n{\"event\":\"query\",\"query_id\":1}\n{\"event\":\"down\",\"core_hours\":1.5}\n{\"other\":1}\n",
        )
        .expect("write");
        let l = read_ledger(&p).expect("read");
        assert!(l.queries.is_empty());
        assert_eq!(l.downs.len(), 1);
        assert!(
            read_ledger(&d.path().join("missing"))
                .expect("missing is empty")
                .downs
                .is_empty()
        );
    }

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(
            short_time("2026-01-31T12:34:56.789Z"),
            "2026-01-31 12:34:56"
        );
        assert_eq!(crate::human::bytes(999), "999 B");
        assert_eq!(crate::human::bytes(3_100_000), "3.1 MB");
        assert_eq!(crate::human::bytes(2_500_000_000), "2.50 GB");
    }
}
