//! Agent processes on this machine (the local backend, and the coordinator of `batch --here`):
//! started detached — their own process group, stdio to the cluster's `logs/` — so a Ctrl-C
//! or a closed terminal does not reach them; signalled only while their command line still
//! names the cluster directory (a recycled pid is never signalled).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{BackendError, Cluster, record_end};
use crate::cluster_dir::ClusterDir;
use crate::procstat;

/// How often a wait on processes or files looks again.
const LOOK_EVERY: Duration = Duration::from_millis(20);

fn log_file(dir: &ClusterDir, name: &str) -> Result<File, BackendError> {
    let path = dir.logs_dir().join(name);
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| BackendError::Failed(format!("cannot open the log {}: {e}", path.display())))
}

/// The last lines of a log, to explain why an agent died.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts `program args…` detached, its output appended to `logs/<log>`. The child is
/// returned so the caller can watch it while it starts; dropping it later neither kills nor
/// leaks it (tokio reaps what exits).
pub(crate) fn spawn(
    program: &Path,
    args: &[String],
    dir: &ClusterDir,
    log: &str,
    env: &[(String, String)],
) -> Result<Child, BackendError> {
    let out = log_file(dir, log)?;
    let err = out
        .try_clone()
        .map_err(|e| BackendError::Failed(format!("cannot duplicate a log file handle: {e}")))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .map_err(|e| BackendError::Failed(format!("cannot start {}: {e}", program.display())))
}

/// Sends `sig` to `pid`; one that is gone already is what we wanted anyway.
pub(crate) fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Sends `sig` to each pid that still runs for the cluster in `dir`.
pub(crate) fn signal_live(pids: &[u32], dir: &Path, sig: rustix::process::Signal) {
    for p in pids {
        if procstat::runs_for(*p, dir) {
            signal(*p, sig);
        }
    }
}

/// Waits (at most `within`) until none of `pids` runs for `dir`; returns those still running.
pub(crate) async fn wait_gone(pids: &[u32], dir: &Path, within: Duration) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + within;
    let mut every = tokio::time::interval(LOOK_EVERY);
    loop {
        every.tick().await;
        let live: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| procstat::runs_for(*p, dir))
            .collect();
        if live.is_empty() || tokio::time::Instant::now() >= deadline {
            return live;
        }
    }
}

/// What stopping processes did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stopped {
    /// Processes that exited by themselves (asked through the coordinator).
    pub exited: usize,
    /// Processes that needed SIGTERM, and SIGKILL.
    pub terminated: usize,
    pub killed: usize,
    /// Processes still there after everything (should be 0).
    pub left: Vec<u32>,
}

/// Makes sure every pid is gone: first `grace` for them to exit by themselves, then SIGTERM,
/// then SIGKILL.
pub(crate) async fn stop_all(pids: &[u32], dir: &Path, grace: Duration) -> Stopped {
    let left = wait_gone(pids, dir, grace).await;
    let mut report = Stopped {
        exited: pids.len() - left.len(),
        ..Stopped::default()
    };
    if left.is_empty() {
        return report;
    }
    signal_live(&left, dir, rustix::process::Signal::TERM);
    let still = wait_gone(&left, dir, Duration::from_secs(3)).await;
    report.terminated = left.len() - still.len();
    signal_live(&still, dir, rustix::process::Signal::KILL);
    report.killed = still.len();
    report.left = wait_gone(&still, dir, Duration::from_secs(2)).await;
    report
}

/// Waits until the coordinator started as `child` publishes `coordinator.json`; fails with
/// the end of its log when it exits first or takes longer than `within`.
pub(crate) async fn wait_listening(
    dir: &ClusterDir,
    child: &mut Child,
    log: &Path,
    within: Duration,
) -> Result<(), BackendError> {
    let deadline = tokio::time::Instant::now() + within;
    // The workers would retry until it listens, but they start faster once it does.
    let mut every = tokio::time::interval(Duration::from_millis(2));
    while !dir.coordinator_file().exists() {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| BackendError::Failed(format!("cannot watch the coordinator: {e}")))?
        {
            return Err(BackendError::Failed(format!(
                "the coordinator exited ({status}) before it listened:\n{}",
                log_tail(log, 10)
            )));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BackendError::Failed(format!(
                "the coordinator did not listen within {within:?}; see {}",
                log.display()
            )));
        }
        every.tick().await;
    }
    Ok(())
}

/// The log of worker process `i` (`worker-<i>.log`), the first such name not used yet at or
/// after `from`, so a new worker's log starts clean.
pub(crate) fn next_worker_log(dir: &ClusterDir, from: usize) -> (usize, String) {
    let i = (from..)
        .find(|i| !dir.logs_dir().join(format!("worker-{i}.log")).exists())
        .unwrap_or(from);
    (i, format!("worker-{i}.log"))
}

/// `logs/<name>`.
pub(crate) fn log_path(dir: &ClusterDir, name: &str) -> PathBuf {
    dir.logs_dir().join(name)
}

/// A start that failed: whatever was started is stopped again, and the record says why
/// (`by`: who started it).
pub(crate) async fn abandon_start(cluster: &mut Cluster, error: &BackendError, by: &str) {
    let pids = cluster.record.pids();
    stop_all(&pids, cluster.dir.path(), Duration::ZERO).await;
    let how = format!("failed to start: {error}");
    let _ = record_end(cluster, &how, by, &[], 0.0, false);
}
