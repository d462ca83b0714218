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
