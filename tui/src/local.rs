//! The local backend: a cluster of processes on this machine (no SLURM) — one coordinator bound
//! to 127.0.0.1 and W workers, started detached (own process group, stdio to the cluster's
//! `logs/`), so closing the terminal does not stop them. `spec.json` records the pids; stopping
//! asks the coordinator to shut down, then makes sure every recorded pid is gone (SIGTERM, then
//! SIGKILL), signalling a pid only while its command line still names the cluster directory.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord, Stopped};
use corral_core::procstat;

/// How long the coordinator may take to publish `coordinator.json`.
const COORDINATOR_START: Duration = Duration::from_secs(15);
/// How long the workers may take to connect.
const WORKERS_CONNECT: Duration = Duration::from_secs(30);

/// How to start an agent role.
#[derive(Debug, Clone)]
pub struct AgentExe {
    pub program: PathBuf,
    /// Arguments before the role (`agent` when `corral` hosts the roles itself).
    pub prefix: Vec<String>,
}

impl AgentExe {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.prefix).args(args);
        c
    }
}

/// The `corral-agent` binary: next to this executable, else on `PATH`. When neither exists
/// (`cargo run -- demo` builds only `corral`), this executable itself, which hosts the same
/// roles behind the hidden `corral agent` subcommand.
pub fn find_agent() -> anyhow::Result<AgentExe> {
    let me = std::env::current_exe().context("cannot locate the corral executable")?;
    let name = format!("corral-agent{}", std::env::consts::EXE_SUFFIX);
    let beside = me.parent().map(|d| d.join(&name));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(&name));
    if let Some(found) = beside.into_iter().chain(on_path).find(|p| p.is_file()) {
        return Ok(AgentExe {
            program: found,
            prefix: Vec::new(),
        });
    }
    Ok(AgentExe {
        program: me,
        prefix: vec!["agent".into()],
    })
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn log_file(dir: &ClusterDir, name: &str) -> anyhow::Result<File> {
    let path = dir.logs_dir().join(name);
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open the log {}", path.display()))
}

/// The last lines of a log, to explain why an agent died.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn spawn(
    agent: &AgentExe,
    dir: &ClusterDir,
    args: &[&str],
    log: &str,
    env: &[(String, String)],
) -> anyhow::Result<Child> {
    let out = log_file(dir, log)?;
    let err = out
        .try_clone()
        .context("cannot duplicate a log file handle")?;
    let mut c = agent.command(args);
    c.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C or a closed terminal does not reach it.
        .process_group(0)
        .envs(env.iter().map(|(k, v)| (k, v)));
    c.spawn()
        .with_context(|| format!("cannot start {}", agent.program.display()))
}

/// A started local cluster.
pub struct Started {
    pub dir: ClusterDir,
    pub record: ClusterRecord,
    /// The processes, so a caller that outlives them (`corral demo`) can reap them.
    pub children: Vec<Child>,
    /// From the first process started to every worker connected.
    pub ready_after: Duration,
}

/// What to start.
pub struct LocalSpec {
    pub name: String,
    pub workers: u32,
    pub cores: u32,
    /// Extra environment for the agents (tests' knobs).
    pub env: Vec<(String, String)>,
}

/// Creates the cluster directory and starts the coordinator and the workers; returns once
/// every worker is connected. On failure, whatever was started is stopped again.
pub async fn start(spec: &LocalSpec) -> anyhow::Result<Started> {
    let dir = ClusterDir::create(&spec.name)?;
    dir.create_secret()?;
    let agent = find_agent()?;
    let mut record = ClusterRecord {
        name: spec.name.clone(),
        workers: spec.workers,
        cores_per_worker: spec.cores,
        created_at_unix: now_unix(),
        backend: Backend::Local {
            agent: agent.program.clone(),
            coordinator_pid: 0,
            worker_pids: Vec::new(),
        },
        stopped: None,
    };
    record.save(&dir)?;
    let mut children = Vec::new();
    let t0 = Instant::now();
    let result = start_processes(spec, &dir, &agent, &mut record, &mut children).await;
    match result {
        Ok(()) => Ok(Started {
            dir,
            record,
            children,
            ready_after: t0.elapsed(),
        }),
        Err(e) => {
            for c in &mut children {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = dir.remove_coordinator();
            record.stopped = Some(Stopped {
                at_unix: now_unix(),
                how: format!("failed to start: {e:#}"),
            });
            let _ = record.save(&dir);
            Err(e)
        }
    }
}

async fn start_processes(
    spec: &LocalSpec,
    dir: &ClusterDir,
    agent: &AgentExe,
    record: &mut ClusterRecord,
    children: &mut Vec<Child>,
) -> anyhow::Result<()> {
    let path = dir.path().to_string_lossy().into_owned();
    let coordinator = spawn(
        agent,
        dir,
        &["coordinator", "--cluster", &path, "--bind", "127.0.0.1"],
        "coordinator.log",
        &spec.env,
    )?;
    let coordinator_pid = coordinator.id();
    children.push(coordinator);
    let coordinator_log = dir.logs_dir().join("coordinator.log");
    // The workers would retry until it listens, but they start faster once it does.
    let deadline = Instant::now() + COORDINATOR_START;
    while !dir.coordinator_file().exists() {
        if let Some(status) = children[0].try_wait()? {
            bail!(
                "the coordinator exited ({status}) before it listened:\n{}",
                log_tail(&coordinator_log, 10)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the coordinator did not listen within {COORDINATOR_START:?}; see {}",
                coordinator_log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cores = spec.cores.to_string();
    let mut worker_pids = Vec::new();
    for i in 0..spec.workers {
        let c = spawn(
            agent,
            dir,
            &["worker", "--cluster", &path, "--cores", &cores],
            &format!("worker-{i}.log"),
            &spec.env,
        )?;
        worker_pids.push(c.id());
        children.push(c);
    }
    record.backend = Backend::Local {
        agent: agent.program.clone(),
        coordinator_pid,
        worker_pids,
    };
    record.save(dir)?;
    let client = ClusterClient::connect(dir)
        .await
        .context("cannot connect to the new coordinator")?;
    // One-shot snapshots, not the 4 Hz subscription: `up` returns as soon as they are in.
    let deadline = tokio::time::Instant::now() + WORKERS_CONNECT;
    loop {
        let snap = match tokio::time::timeout_at(deadline, client.snapshot()).await {
            Ok(s) => s?,
            Err(_) => bail!(
                "not every worker connected within {WORKERS_CONNECT:?}; see {}",
                dir.logs_dir().display()
            ),
        };
        if snap.live_workers().count() >= spec.workers as usize {
            return Ok(());
        }
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(status) = c.try_wait()? {
                let log = if i == 0 {
                    coordinator_log.clone()
                } else {
                    dir.logs_dir().join(format!("worker-{}.log", i - 1))
                };
                bail!(
                    "{} exited ({status}) during start-up:\n{}",
                    if i == 0 {
                        "the coordinator".to_owned()
                    } else {
                        format!("worker {}", i - 1)
                    },
                    log_tail(&log, 10)
                );
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "not every worker connected within {WORKERS_CONNECT:?}; see {}",
                dir.logs_dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What stopping did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StopReport {
    /// The coordinator acknowledged the shutdown request.
    pub asked: bool,
    /// Processes that exited by themselves after the request.
    pub exited: usize,
    /// Processes that needed SIGTERM, and SIGKILL.
    pub terminated: usize,
    pub killed: usize,
    /// Processes still there after everything (should be 0).
    pub left: Vec<u32>,
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // Gone already is fine: that is what we want.
    let _ = rustix::process::kill_process(p, sig);
}

async fn wait_gone(pids: &[u32], dir: &Path, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let live: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| procstat::runs_for(*p, dir))
            .collect();
        if live.is_empty() || Instant::now() >= deadline {
            return live;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops a local cluster: asks the coordinator (which tells the workers), then makes sure
/// every recorded process is gone, and records how it went in `spec.json` and the ledger.
pub async fn stop(dir: &ClusterDir, record: &mut ClusterRecord) -> anyhow::Result<StopReport> {
    let path = dir.path().to_owned();
    let pids = record.live_pids(&path);
    let mut report = StopReport::default();
    if dir.coordinator_file().exists() {
        let ask = async {
            let c = ClusterClient::connect(dir).await?;
            c.shutdown().await
        };
        report.asked = matches!(
            tokio::time::timeout(Duration::from_secs(5), ask).await,
            Ok(Ok(()))
        );
    }
    let left = wait_gone(&pids, &path, Duration::from_secs(5)).await;
    report.exited = pids.len() - left.len();
    if !left.is_empty() {
        report.terminated = left.len();
        for p in &left {
            signal(*p, rustix::process::Signal::TERM);
        }
        let still = wait_gone(&left, &path, Duration::from_secs(3)).await;
        report.terminated -= still.len();
        for p in &still {
            signal(*p, rustix::process::Signal::KILL);
        }
        report.killed = still.len();
        report.left = wait_gone(&still, &path, Duration::from_secs(2)).await;
    }
    // A coordinator that was killed could not remove it; a stale one misleads everyone.
    dir.remove_coordinator()?;
    let how = format!(
        "corral down: {} exited when asked, {} after SIGTERM, {} killed{}",
        report.exited,
        report.terminated,
        report.killed,
        if report.left.is_empty() {
            String::new()
        } else {
            format!(", {} still running", report.left.len())
        }
    );
    record.stopped = Some(Stopped {
        at_unix: now_unix(),
        how: how.clone(),
    });
    record.save(dir)?;
    let line = serde_json::json!({
        "event": "down",
        "cluster": record.name,
        "at": corral_core::coordinator::ledger::rfc3339(now_unix() * 1000),
        "how": how,
        "exited": report.exited,
        "terminated": report.terminated,
        "killed": report.killed,
        "left": report.left,
    });
    corral_core::coordinator::ledger::append(&dir.ledger_file(), &line)
        .with_context(|| format!("cannot append to {}", dir.ledger_file().display()))?;
    Ok(report)
}

/// Whether a cluster runs: its coordinator (for the local backend, any recorded process).
pub fn is_running(dir: &ClusterDir, record: &ClusterRecord) -> bool {
    !record.live_pids(dir.path()).is_empty()
}

/// Runs `f` on a small async runtime (the CLI's commands are short I/O-bound sessions).
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

/// How long a drained worker may take to report the partitions it holds before it is
/// signalled anyway (what it still held is then re-run elsewhere, so results stay exact).
const DRAIN_WAIT: Duration = Duration::from_secs(60);

/// The agent a recorded local cluster runs: the recorded program; `corral` itself hosts the
/// roles behind `corral agent`.
fn recorded_agent(program: &Path) -> AgentExe {
    let agent_name = format!("corral-agent{}", std::env::consts::EXE_SUFFIX);
    let prefix = if program
        .file_name()
        .is_some_and(|n| n == agent_name.as_str())
    {
        Vec::new()
    } else {
        vec!["agent".into()]
    };
    AgentExe {
        program: program.to_path_buf(),
        prefix,
    }
}

/// The recorded worker pids that still run for this cluster, oldest first.
pub fn live_workers(dir: &ClusterDir, record: &ClusterRecord) -> Vec<u32> {
    match &record.backend {
        Backend::Local { worker_pids, .. } => worker_pids
            .iter()
            .copied()
            .filter(|p| procstat::runs_for(*p, dir.path()))
            .collect(),
        Backend::Slurm { .. } => Vec::new(),
    }
}

/// A first `worker-<i>.log` name not used yet, so a new worker's log starts clean.
fn next_log_index(dir: &ClusterDir, from: usize) -> usize {
    (from..)
        .find(|i| !dir.logs_dir().join(format!("worker-{i}.log")).exists())
        .unwrap_or(from)
}

/// What scaling a local cluster did.
pub struct Scaled {
    /// In words, for the TUI's flash line and `corral scale`.
    pub message: String,
    /// Workers started, so a caller that outlives them (the TUI) can reap them.
    pub children: Vec<Child>,
}

/// Scales a running local cluster to `target(now)` workers (`now`: its live workers): up starts
/// more worker processes, down stops the newest ones (drained first, so the partitions they
/// hold are reported, then SIGTERM). `spec.json` records the change.
pub async fn scale(
    dir: &ClusterDir,
    record: &mut ClusterRecord,
    target: impl FnOnce(u32) -> u32,
) -> anyhow::Result<Scaled> {
    if !matches!(record.backend, Backend::Local { .. }) {
        bail!("cluster {} is not a local cluster", record.name);
    }
    if let Some(s) = &record.stopped {
        bail!("cluster {} has ended ({})", record.name, s.how);
    }
    if !dir.coordinator_file().exists() {
        bail!("cluster {} has no running coordinator", record.name);
    }
    let now = u32::try_from(live_workers(dir, record).len()).unwrap_or(u32::MAX);
    let want = target(now);
    if want == 0 {
        bail!(
            "a cluster needs at least 1 worker; to stop it use `corral down {}`",
            record.name
        );
    }
    if want == now {
        return Ok(Scaled {
            message: format!("cluster {} already has {now} workers", record.name),
            children: Vec::new(),
        });
    }
    if want > now {
        let children = add_workers(dir, record, want - now).await?;
        return Ok(Scaled {
            message: format!(
                "started {} worker(s), all connected ({now} → {want})",
                want - now
            ),
            children,
        });
    }
    let r = remove_workers(dir, record, now - want).await?;
    Ok(Scaled {
        message: format!(
            "stopped {} worker(s) ({} drained first{}) ({now} → {want})",
            r.stopped,
            r.drained,
            if r.killed > 0 {
                format!(", {} had to be killed", r.killed)
            } else {
                String::new()
            }
        ),
        children: Vec::new(),
    })
}

/// Starts `add` more workers for a running local cluster and returns once the coordinator
/// sees them all. Their pids are in `spec.json` before they connect, so `corral down` finds
/// them whatever happens next.
pub async fn add_workers(
    dir: &ClusterDir,
    record: &mut ClusterRecord,
    add: u32,
) -> anyhow::Result<Vec<Child>> {
    let Backend::Local { agent, .. } = &record.backend else {
        bail!("cluster {} is not a local cluster", record.name);
    };
    let agent = recorded_agent(agent);
    let client = tokio::time::timeout(Duration::from_secs(5), ClusterClient::connect(dir))
        .await
        .context("the coordinator did not answer within 5 s")?
        .context("cannot connect to the coordinator")?;
    let before = client.snapshot().await?.live_workers().count();
    let path = dir.path().to_string_lossy().into_owned();
    let cores = record.cores_per_worker.to_string();
    let mut children = Vec::new();
    let mut logs = Vec::new();
    let mut index = 0;
    for _ in 0..add {
        index = next_log_index(dir, index);
        let log = format!("worker-{index}.log");
        index += 1;
        match spawn(
            &agent,
            dir,
            &["worker", "--cluster", &path, "--cores", &cores],
            &log,
            &[],
        ) {
            Ok(c) => {
                children.push(c);
                logs.push(log);
            }
            Err(e) => {
                // Those already started are recorded below and stopped with the cluster.
                record_added(dir, record, &children)?;
                return Err(e);
            }
        }
    }
    record_added(dir, record, &children)?;
    let want = before + add as usize;
    let deadline = tokio::time::Instant::now() + WORKERS_CONNECT;
    loop {
        let snap = match tokio::time::timeout_at(deadline, client.snapshot()).await {
            Ok(s) => s?,
            Err(_) => bail!(
                "the new workers did not all connect within {WORKERS_CONNECT:?}; see {}",
                dir.logs_dir().display()
            ),
        };
        if snap.live_workers().count() >= want {
            return Ok(children);
        }
        for (c, log) in children.iter_mut().zip(&logs) {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "a new worker exited ({status}) during start-up:\n{}",
                    log_tail(&dir.logs_dir().join(log), 10)
                );
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the new workers did not all connect within {WORKERS_CONNECT:?}; see {}",
                dir.logs_dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Appends the children's pids to `spec.json`'s workers.
fn record_added(
    dir: &ClusterDir,
    record: &mut ClusterRecord,
    children: &[Child],
) -> anyhow::Result<()> {
    if let Backend::Local { worker_pids, .. } = &mut record.backend {
        worker_pids.extend(children.iter().map(Child::id));
        record.workers = record
            .workers
            .saturating_add(u32::try_from(children.len()).unwrap_or(u32::MAX));
    }
    record.save(dir)?;
    Ok(())
}

/// What stopping workers did.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// Workers the coordinator drained (0 when it could not be reached).
    pub drained: usize,
    /// Workers gone after SIGTERM, and those that needed SIGKILL.
    pub stopped: usize,
    pub killed: usize,
}

/// Stops the newest `remove` live workers of a local cluster: the coordinator drains them
/// (nothing new is given to them, what they hold is finished and reported), then each gets
/// SIGTERM (SIGKILL if it lingers), checked by command line before any signal.
pub async fn remove_workers(
    dir: &ClusterDir,
    record: &mut ClusterRecord,
    remove: u32,
) -> anyhow::Result<Removed> {
    let live = live_workers(dir, record);
    if remove as usize >= live.len() {
        bail!(
            "cluster {} has {} live worker(s); it keeps at least 1 (`corral down {0}` stops it)",
            record.name,
            live.len()
        );
    }
    let victims: Vec<u32> = live[live.len() - remove as usize..].to_vec();
    let mut report = Removed {
        drained: drain_pids(dir, &victims).await,
        ..Removed::default()
    };
    for p in &victims {
        if procstat::runs_for(*p, dir.path()) {
            signal(*p, rustix::process::Signal::TERM);
        }
    }
    let still = wait_gone(&victims, dir.path(), Duration::from_secs(10)).await;
    for p in &still {
        signal(*p, rustix::process::Signal::KILL);
    }
    report.killed = still.len();
    report.stopped = victims.len() - still.len();
    let left = wait_gone(&still, dir.path(), Duration::from_secs(2)).await;
    if let Backend::Local { worker_pids, .. } = &mut record.backend {
        worker_pids.retain(|p| !victims.contains(p) || left.contains(p));
        record.workers = u32::try_from(live.len() - victims.len() + left.len()).unwrap_or(0);
    }
    record.save(dir)?;
    if !left.is_empty() {
        bail!("workers {left:?} still run after SIGKILL");
    }
    Ok(report)
}

/// Drains the workers with these pids and waits (at most [`DRAIN_WAIT`]) until none holds a
/// task; returns how many were drained. Best effort: without a coordinator there is nothing
/// to drain, and what a worker still holds when signalled is re-run elsewhere.
async fn drain_pids(dir: &ClusterDir, pids: &[u32]) -> usize {
    let Ok(Ok(client)) =
        tokio::time::timeout(Duration::from_secs(5), ClusterClient::connect(dir)).await
    else {
        return 0;
    };
    let Ok(snap) = client.snapshot().await else {
        return 0;
    };
    let ids: Vec<_> = snap
        .live_workers()
        .filter(|w| pids.contains(&w.pid))
        .map(|w| w.id)
        .collect();
    if ids.is_empty() {
        return 0;
    }
    let drained = match client.drain_workers(&ids).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("cannot drain workers {ids:?}: {e}");
            return 0;
        }
    };
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    while tokio::time::Instant::now() < deadline {
        let Ok(snap) = client.snapshot().await else {
            break;
        };
        let busy = snap
            .workers
            .iter()
            .any(|w| drained.contains(&w.id) && w.assigned > 0);
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drained.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_agent_runs_the_roles_it_hosts() {
        let a = recorded_agent(Path::new("/opt/bin/corral-agent"));
        assert!(a.prefix.is_empty());
        // `corral` itself hosts the roles behind `corral agent`.
        let c = recorded_agent(Path::new("/opt/bin/corral"));
        assert_eq!(c.prefix, vec!["agent".to_string()]);
        assert_eq!(c.program, PathBuf::from("/opt/bin/corral"));
    }
}
