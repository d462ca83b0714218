//! `ledger.jsonl`: one JSON line per finished query (and per cluster stop, written by
//! `corral down`), appended, so a user can see afterwards what ran, on what, how long.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Plan, Query};
use crate::protocol::{QueryFailure, QueryId, QueryReport};

/// One line of the ledger about a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// `"query"` (cluster stops are `"down"` lines).
    pub event: String,
    pub query_id: QueryId,
    pub query: Query,
    /// The files as planned (empty when planning failed).
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub rows: u64,
    pub bad_rows: u64,
    pub workers: u32,
    pub cores: u32,
    pub tasks: u32,
    pub reruns: usize,
    pub seconds: f64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl Line {
    pub fn of_report(query: &Query, plan: Option<&Plan>, r: &QueryReport) -> Line {
        let res = &r.result.0;
        Line {
            event: "query".into(),
            query_id: r.query,
            query: query.clone(),
            files: files(plan),
            bytes: res.bytes,
            rows: res.rows,
            bad_rows: res.bad_rows.total,
            workers: r.workers,
            cores: r.cores,
            tasks: r.tasks,
            reruns: r.reruns.len(),
            seconds: r.seconds,
            started_at: rfc3339(r.started_at_unix_ms),
            finished_at: rfc3339(r.finished_at_unix_ms),
            ok: true,
            error: None,
        }
    }

    pub fn of_failure(
        query: &Query,
        plan: Option<&Plan>,
        f: &QueryFailure,
        started_unix_ms: u64,
        workers: u32,
        cores: u32,
    ) -> Line {
        Line {
            event: "query".into(),
            query_id: f.query,
            query: query.clone(),
            files: files(plan),
            bytes: plan.map_or(0, Plan::total_bytes),
            rows: 0,
            bad_rows: 0,
            workers,
            cores,
            tasks: plan.map_or(0, |p| p.partitions.len() as u32),
            reruns: 0,
            seconds: f.seconds,
            started_at: rfc3339(started_unix_ms),
            finished_at: rfc3339(started_unix_ms + (f.seconds * 1000.0) as u64),
            ok: false,
            error: Some(f.error.clone()),
        }
    }
}

fn files(plan: Option<&Plan>) -> Vec<PathBuf> {
    plan.map(|p| p.files.iter().map(|f| f.path.clone()).collect())
        .unwrap_or_default()
}

/// Appends `line` as one JSON line to `path` (created 0600). One `write` per line, so
/// concurrent appenders (the coordinator and `corral down`) never interleave within a line.
pub fn append<T: Serialize>(path: &Path, line: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&bytes)
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-01-31T12:34:56.789Z`).
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = crate::aggregate::expr::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_767_225_599_123), "2025-12-31T23:59:59.123Z");
    }

    #[test]
    fn lines_append() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("ledger.jsonl");
        append(&p, &serde_json::json!({"a": 1})).expect("append");
        append(&p, &serde_json::json!({"a": 2})).expect("append");
        let text = std::fs::read_to_string(&p).expect("read");
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
    }
}
