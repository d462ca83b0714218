//! Dask's own view of a Dask cluster — its workers and the task totals — read from the
//! scheduler's HTTP routes through the dashboard proxy with reqwest:
//!
//! - `/json/identity.json`: every worker, with the metrics of its last heartbeat (memory, task
//!   counts by state);
//! - `/json/counts.json`: the scheduler's tasks by state;
//! - `/metrics` (Prometheus text; only when `prometheus_client` is installed beside the
//!   scheduler): tasks finished and erred per task prefix, and their compute time — the totals
//!   of Dask's task stream. Without it the view says so and shows the rest.
//!
//! The decoders are tolerant: a field a Dask version does not send is zero or empty, never an
//! error (they are tested on documents recorded from distributed 2026.8).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long one request to the scheduler may take (through the tunnel).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One Dask worker as the scheduler last heard of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DaskWorker {
    /// Its address (`tls://host:port`) or name.
    pub name: String,
    pub host: String,
    pub nthreads: u32,
    pub memory_bytes: u64,
    pub memory_limit: u64,
    /// Tasks assigned to it and not finished (executing, ready, waiting for dependencies).
    pub processing: u64,
    /// Results it holds.
    pub in_memory: u64,
    pub erred: u64,
    /// `running`, `paused`, `closing_gracefully` (retiring), …
    pub status: String,
}

/// The scheduler's tasks by state, now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DaskCounts {
    pub processing: u64,
    pub in_memory: u64,
    pub erred: u64,
    pub waiting: u64,
    pub released: u64,
    pub clients: u64,
    /// Bytes of the results in memory.
    pub bytes: u64,
}

/// The task stream's totals for one task prefix (`read-csv`, `value-counts-chunk`, …) since the
/// scheduler started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PrefixTotals {
    pub prefix: String,
    /// Tasks that finished (reached memory).
    pub done: u64,
    pub erred: u64,
    /// Time spent computing them, summed over workers.
    pub compute_seconds: f64,
}

/// Everything the TUI's Dask panel shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DaskView {
    pub workers: Vec<DaskWorker>,
    pub counts: DaskCounts,
    /// By prefix, the most compute time first; empty when `/metrics` is not served.
    pub prefixes: Vec<PrefixTotals>,
    /// Why `prefixes` is empty, when it is for a reason (no `prometheus_client`).
    pub metrics_missing: Option<String>,
}

impl DaskView {
    /// Totals over every prefix.
    pub fn task_totals(&self) -> PrefixTotals {
        let mut t = PrefixTotals {
            prefix: "all".into(),
            ..PrefixTotals::default()
        };
        for p in &self.prefixes {
            t.done += p.done;
            t.erred += p.erred;
            t.compute_seconds += p.compute_seconds;
        }
        t
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IdentityDoc {
    workers: BTreeMap<String, WorkerDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WorkerDoc {
    id: serde_json::Value,
    host: String,
    nthreads: u32,
    memory_limit: u64,
    status: String,
    metrics: MetricsDoc,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetricsDoc {
    memory: f64,
    task_counts: BTreeMap<String, f64>,
    // Older versions: no task_counts, these instead.
    executing: f64,
    ready: f64,
    in_memory: f64,
}

/// Worker task states that count as "processing" (assigned, not finished).
const PROCESSING_STATES: [&str; 5] = [
    "executing",
    "long-running",
    "ready",
    "constrained",
    "waiting",
];

/// Decodes `/json/identity.json`: the workers, in the scheduler's (address) order.
pub fn parse_identity(text: &str) -> Result<Vec<DaskWorker>, String> {
    let doc: IdentityDoc = serde_json::from_str(text).map_err(|e| format!("identity.json: {e}"))?;
    Ok(doc
        .workers
        .into_iter()
        .map(|(addr, w)| {
            let m = &w.metrics;
            let count = |k: &str| m.task_counts.get(k).copied().unwrap_or(0.0).max(0.0) as u64;
            let (processing, in_memory) = if m.task_counts.is_empty() {
                (
                    (m.executing + m.ready).max(0.0) as u64,
                    m.in_memory.max(0.0) as u64,
                )
            } else {
                (
                    PROCESSING_STATES.iter().map(|s| count(s)).sum(),
                    count("memory"),
                )
            };
            let name = match &w.id {
                serde_json::Value::String(s) if !s.is_empty() => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => addr.clone(),
            };
            DaskWorker {
                name,
                host: w.host,
                nthreads: w.nthreads,
                memory_bytes: m.memory.max(0.0) as u64,
                memory_limit: w.memory_limit,
                processing,
                in_memory,
                erred: count("error"),
                status: w.status,
            }
        })
        .collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CountsDoc {
    processing: u64,
    memory: u64,
    erred: u64,
    waiting: u64,
    released: u64,
    clients: u64,
    bytes: u64,
}

/// Decodes `/json/counts.json`.
pub fn parse_counts(text: &str) -> Result<DaskCounts, String> {
    let d: CountsDoc = serde_json::from_str(text).map_err(|e| format!("counts.json: {e}"))?;
    Ok(DaskCounts {
        processing: d.processing,
        in_memory: d.memory,
        erred: d.erred,
        waiting: d.waiting,
        released: d.released,
        clients: d.clients,
        bytes: d.bytes,
    })
}

/// A sample's labels: `(name, value)` pairs.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// One sample line of the Prometheus text format: name, labels, value.
fn sample(line: &str) -> Option<(&str, Labels<'_>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((n, rest)) => {
            let body = rest.strip_suffix('}')?;
            // Label values here are prefix and state names: no commas or quotes inside.
            let labels = body
                .split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.trim(), v.trim().trim_matches('"')))
                })
                .collect();
            (n, labels)
        }
        None => (series, Vec::new()),
    };
    Some((name, labels, value))
}

/// Decodes the scheduler's `/metrics`: the task stream's totals per prefix, the most compute
/// time first.
pub fn parse_metrics(text: &str) -> Vec<PrefixTotals> {
    let mut by: BTreeMap<String, PrefixTotals> = BTreeMap::new();
    for line in text.lines() {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        let label = |k: &str| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let Some(prefix) = label("task_prefix_name") else {
            continue;
        };
        let entry = || PrefixTotals {
            prefix: prefix.to_owned(),
            ..PrefixTotals::default()
        };
        match name {
            // The counter is `…_total` in prometheus_client's text (its own suffix added).
            "dask_scheduler_prefix_state_totals_total" | "dask_scheduler_prefix_state_totals" => {
                let e = by.entry(prefix.to_owned()).or_insert_with(entry);
                match label("state") {
                    Some("memory") => e.done = value.max(0.0) as u64,
                    Some("erred") => e.erred = value.max(0.0) as u64,
                    _ => {}
                }
            }
            "dask_scheduler_tasks_compute_seconds_total"
            | "dask_scheduler_tasks_compute_seconds" => {
                by.entry(prefix.to_owned())
                    .or_insert_with(entry)
                    .compute_seconds = value.max(0.0);
            }
            _ => {}
        }
    }
    let mut v: Vec<PrefixTotals> = by.into_values().collect();
    v.sort_by(|a, b| {
        b.compute_seconds
            .total_cmp(&a.compute_seconds)
            .then_with(|| a.prefix.cmp(&b.prefix))
    });
    v
}

/// Reads the Dask view through a dashboard proxy at `base` (`http://127.0.0.1:PORT`), with the
/// proxy's session cookie.
pub struct DaskReader {
    http: reqwest::Client,
    base: String,
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    // Plain HTTP to the loopback; reqwest still wants a TLS configuration: corral's provider
    // and no roots (nothing here is ever fetched over TLS).
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

impl DaskReader {
    pub fn new(base: &str, cookie: &str) -> Result<DaskReader, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        let value =
            reqwest::header::HeaderValue::from_str(cookie).map_err(|e| format!("cookie: {e}"))?;
        headers.insert(reqwest::header::COOKIE, value);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .user_agent(concat!("corral/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(DaskReader {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {}", innermost(&e)))?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|e| format!("GET {path}: {}", innermost(&e)))?;
        Ok((status, text))
    }

    async fn get_ok(&self, path: &str) -> Result<String, String> {
        let (status, text) = self.get(path).await?;
        if status != 200 {
            let first = crate::text::terminal_safe(text.lines().next().unwrap_or_default());
            return Err(format!("GET {path}: HTTP {status}: {first}"));
        }
        Ok(text)
    }

    /// The workers, the counts and (when served) the per-prefix totals, read concurrently.
    pub async fn read(&self) -> Result<DaskView, String> {
        let (identity, counts, metrics) = tokio::join!(
            self.get_ok("/json/identity.json"),
            self.get_ok("/json/counts.json"),
            self.get("/metrics"),
        );
        let mut view = DaskView {
            workers: parse_identity(&identity?)?,
            counts: parse_counts(&counts?)?,
            ..DaskView::default()
        };
        match metrics {
            Ok((200, text)) => view.prefixes = parse_metrics(&text),
            Ok((status, _)) => {
                view.metrics_missing = Some(format!(
                    "the scheduler serves no /metrics (HTTP {status}): install prometheus_client \
                     beside dask for the per-prefix totals"
                ))
            }
            Err(e) => view.metrics_missing = Some(e),
        }
        Ok(view)
    }
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from distributed 2026.8.0: one worker, 19 results in memory, one erred task.
    const IDENTITY: &str = r#"{"type": "Scheduler", "id": "Scheduler-9cfd", "address": "tcp://127.0.0.1:37271", "services": {"dashboard": 18787}, "started": 1796117026.2, "n_workers": 1, "total_threads": 2, "total_memory": 25275990016, "workers": {"tcp://127.0.0.1:45555": {"type": "Worker", "id": "tcp://127.0.0.1:45555", "host": "127.0.0.1", "resources": {}, "local_directory": "/tmp/dask-scratch-space/worker-f73fa8r7", "name": "tcp://127.0.0.1:45555", "nthreads": 2, "memory_limit": 25275990016, "last_seen": 1796117047.69, "services": {"dashboard": 45929}, "metrics": {"task_counts": {"memory": 19, "error": 1, "executing": 2, "ready": 3}, "bandwidth": {"total": 100000000, "workers": {}, "types": {}}, "managed_bytes": 532, "spilled_bytes": {"memory": 0, "disk": 0}, "event_loop_interval": 0.0199, "cpu": 4.0, "memory": 84799488, "time": 1796117047.18, "num_fds": 21}, "status": "running", "nanny": "tcp://127.0.0.1:46615"}}}"#;
    const COUNTS: &str = r#"{"bytes": 532, "clients": 2, "cores": 2, "erred": 1, "hosts": 1, "idle": 1, "memory": 19, "processing": 0, "released": 0, "saturated": 0, "tasks": 20, "unrunnable": 0, "waiting": 0, "waiting_data": 0, "workers": 1, "desired_workers": 1}"#;
    const METRICS: &str = "# HELP dask_scheduler_tasks Number of tasks known by scheduler\n\
dask_scheduler_tasks{state=\"memory\"} 19.0\n\
dask_scheduler_tasks_compute_seconds_total{task_prefix_name=\"inc\"} 0.000844\n\
dask_scheduler_tasks_compute_seconds_total{task_prefix_name=\"sum\"} 5.2e-05\n\
dask_scheduler_prefix_state_totals_total{state=\"waiting\",task_prefix_name=\"inc\"} 20.0\n\
dask_scheduler_prefix_state_totals_total{state=\"memory\",task_prefix_name=\"inc\"} 19.0\n\
dask_scheduler_prefix_state_totals_total{state=\"erred\",task_prefix_name=\"inc\"} 1.0\n\
dask_scheduler_prefix_state_totals_total{state=\"memory\",task_prefix_name=\"sum\"} 1.0\n\
python_info{implementation=\"CPython\",major=\"3\"} 1.0\n";

    #[test]
    fn recorded_documents_decode_to_what_the_dashboard_shows() {
        let w = parse_identity(IDENTITY).expect("identity");
        assert_eq!(
            w,
            vec![DaskWorker {
                name: "tcp://127.0.0.1:45555".into(),
                host: "127.0.0.1".into(),
                nthreads: 2,
                memory_bytes: 84_799_488,
                memory_limit: 25_275_990_016,
                processing: 5,
                in_memory: 19,
                erred: 1,
                status: "running".into(),
            }]
        );
        let c = parse_counts(COUNTS).expect("counts");
        assert_eq!((c.in_memory, c.erred, c.clients, c.bytes), (19, 1, 2, 532));
        let p = parse_metrics(METRICS);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].prefix.as_str(), p[0].done, p[0].erred),
            ("inc", 19, 1)
        );
        assert_eq!((p[1].prefix.as_str(), p[1].done), ("sum", 1));
        let view = DaskView {
            prefixes: p,
            ..DaskView::default()
        };
        let t = view.task_totals();
        assert_eq!((t.done, t.erred), (20, 1));
        assert!((t.compute_seconds - 0.000_896).abs() < 1e-9);
    }

    #[test]
    fn missing_fields_are_zero_and_garbage_is_an_error() {
        let w = parse_identity(r#"{"workers": {"tls://n1:1": {"metrics": {}}}}"#).expect("sparse");
        assert_eq!(w[0].name, "tls://n1:1");
        assert_eq!((w[0].processing, w[0].memory_bytes), (0, 0));
        assert!(
            parse_identity(r#"{"workers": {}}"#)
                .expect("none")
                .is_empty()
        );
        assert!(parse_identity("<html>").is_err());
        assert!(parse_counts("\"busy\"").is_err());
        assert!(parse_metrics("no metrics here\n{{{ 1\n").is_empty());
    }
}
