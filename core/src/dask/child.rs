//! One Dask process (the scheduler, or one worker), owned by the agent that starts it.
//!
//! [`Supervisor::start`] runs the launcher with the cluster's Python and watches it: its
//! stdout lines become [`DaskState`]s (published on a watch channel the agent forwards to the
//! coordinator), its stderr (Dask's logs) goes where the agent's goes. A worker that dies by
//! itself is started again a few times; a scheduler is not (its workers know its address).
//!
//! Ownership: the child's stdin is a pipe only this task holds, and the launcher exits when it
//! closes — so the Dask process ends with its agent even when the agent is SIGKILLed — and
//! dropping the supervisor kills the child (`kill_on_drop`). [`Supervisor::finish`] ends it
//! in order: `Retire` (SIGTERM: retired through the scheduler, its data moved off, then it
//! closes) or `Stop` (SIGINT: closes now), each bounded, then SIGKILL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::DaskFiles;
use super::certs::Role;
use crate::protocol::DaskState;
use crate::tasks::AbortOnDrop;

/// How long a stopped (SIGINT) Dask process may take to close before SIGKILL.
pub const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How long a retiring worker may take to hand its data over before SIGKILL.
pub const RETIRE_WITHIN: Duration = Duration::from_secs(60);
/// Times a worker that died by itself is started again.
const WORKER_RESTARTS: u32 = 3;
/// The pause before such a restart.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// What to run.
#[derive(Debug, Clone)]
pub enum Launch {
    /// The scheduler, listening on `host` (a kernel-chosen port).
    Scheduler { host: std::net::IpAddr },
    /// A worker of the scheduler that `dask/scheduler.json` names (waited for), listening on
    /// the address of this node that routes to the scheduler.
    Worker {
        /// The worker's name in Dask (the dashboard shows it).
        name: String,
        threads: u32,
        memory_bytes: u64,
    },
}

/// How often a worker looks for `dask/scheduler.json` while the scheduler starts.
const SCHEDULER_POLL: Duration = Duration::from_millis(100);

/// The scheduler's address once `dask/scheduler.json` names it, and the address of this node
/// that routes there (so the worker listens on that one address, not on every interface).
/// None when asked to end meanwhile.
async fn scheduler_address(
    files: &DaskFiles,
    asks: &mut mpsc::Receiver<Ask>,
) -> Option<(String, std::net::IpAddr)> {
    let mut every = tokio::time::interval(SCHEDULER_POLL);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = asks.recv() => return None,
        }
        let Ok(info) = files.read_scheduler() else {
            continue;
        };
        let host = info
            .address
            .trim_start_matches("tls://")
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .ok()?;
        let local = if host.is_loopback() {
            host
        } else {
            crate::netaddr::route_toward(host)?
        };
        return Some((info.address, local));
    }
}

/// A Dask process's state and, for the scheduler, its dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: DaskState,
    pub dashboard: Option<SocketAddr>,
}

/// How [`Supervisor::finish`] ends the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Retire through the scheduler (data moved off), then close.
    Retire,
    /// Close now: the whole cluster is going away.
    Stop,
}

/// Asks the supervisor to end its process (what [`Handle::retire`] and `finish` send).
#[derive(Debug, Clone, Copy)]
struct Ask(Finish);

/// What other tasks may hold of a supervisor: its status, and a way to start retiring it.
#[derive(Clone, Debug)]
pub struct Handle {
    status: watch::Receiver<Status>,
    asks: mpsc::Sender<Ask>,
}

impl Handle {
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Starts retiring the process (the worker agent is drained); does not wait.
    pub fn retire(&self) {
        let _ = self.asks.try_send(Ask(Finish::Retire));
    }
}

/// A running Dask process and the task that watches it.
pub struct Supervisor {
    handle: Handle,
    task: AbortOnDrop<()>,
}

impl Supervisor {
    /// Starts `launch` with `python` (the launcher is written into `files` first).
    pub fn start(python: PathBuf, files: DaskFiles, launch: Launch) -> Supervisor {
        let (tx, rx) = watch::channel(Status {
            state: DaskState::Starting,
            dashboard: None,
        });
        let (ask_tx, ask_rx) = mpsc::channel(4);
        let task = AbortOnDrop::spawn(supervise(python, files, launch, tx, ask_rx));
        Supervisor {
            handle: Handle {
                status: rx,
                asks: ask_tx,
            },
            task,
        }
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Ends the process as `how` says and waits for it (bounded: SIGKILL after
    /// [`RETIRE_WITHIN`] or [`STOP_WITHIN`]); returns its last state.
    pub async fn finish(mut self, how: Finish) -> DaskState {
        let _ = self.handle.asks.send(Ask(how)).await;
        let _ = (&mut self.task.0).await;
        self.handle.status.borrow().state.clone()
    }
}

/// `scheduler`: the scheduler's address and this node's address toward it (workers only).
fn role_args(
    files: &DaskFiles,
    launch: &Launch,
    scheduler: Option<&(String, std::net::IpAddr)>,
) -> Vec<String> {
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    match launch {
        Launch::Scheduler { host } => vec![
            "scheduler".into(),
            host.to_string(),
            s(files.ca()),
            s(files.cert(Role::Scheduler)),
            s(files.key(Role::Scheduler)),
        ],
        Launch::Worker {
            name,
            threads,
            memory_bytes,
        } => {
            let mut v = vec![
                "worker".into(),
                scheduler.map(|s| s.0.clone()).unwrap_or_default(),
                name.clone(),
                threads.to_string(),
                memory_bytes.to_string(),
                s(files.ca()),
                s(files.cert(Role::Worker)),
                s(files.key(Role::Worker)),
            ];
            if let Some((_, h)) = scheduler {
                v.push(h.to_string());
            }
            v
        }
    }
}

fn spawn(
    python: &PathBuf,
    files: &DaskFiles,
    launch: &Launch,
    scheduler: Option<&(String, std::net::IpAddr)>,
) -> Result<Child, String> {
    let launcher = files
        .write_launcher()
        .map_err(|e| format!("cannot write {}: {e}", files.launcher().display()))?;
    Command::new(python)
        .arg(&launcher)
        .args(role_args(files, launch, scheduler))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Dask's own output is unbuffered, so its logs and ours interleave in order.
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// How one run of the process ended.
enum Ended {
    /// It ended because it was asked to.
    Asked(String),
    /// It cannot run here (dask missing): starting it again would not help.
    Hopeless(String),
    /// It ended by itself.
    Died(String),
}

async fn supervise(
    python: PathBuf,
    files: DaskFiles,
    launch: Launch,
    status: watch::Sender<Status>,
    mut asks: mpsc::Receiver<Ask>,
) {
    let set = |state: DaskState| status.send_modify(|s| s.state = state);
    let mut restarts = match launch {
        Launch::Scheduler { .. } => 0,
        Launch::Worker { .. } => WORKER_RESTARTS,
    };
    loop {
        set(DaskState::Starting);
        let scheduler = match launch {
            Launch::Scheduler { .. } => None,
            Launch::Worker { .. } => match scheduler_address(&files, &mut asks).await {
                Some(s) => Some(s),
                None => {
                    set(DaskState::Stopped {
                        why: "stopped before the scheduler was up".into(),
                    });
                    return;
                }
            },
        };
        let ended = match spawn(&python, &files, &launch, scheduler.as_ref()) {
            Ok(child) => run_once(child, &status, &mut asks, &python).await,
            Err(e) => Ended::Hopeless(e),
        };
        match ended {
            Ended::Asked(why) => {
                info!(why, "the Dask process ended");
                set(DaskState::Stopped { why });
                return;
            }
            Ended::Hopeless(error) => {
                warn!("{error}");
                set(DaskState::Failed { error });
                break;
            }
            Ended::Died(error) if restarts == 0 => {
                warn!("{error}");
                set(DaskState::Failed { error });
                break;
            }
            Ended::Died(error) => {
                restarts -= 1;
                warn!("{error}; starting it again ({restarts} more times at most)");
                set(DaskState::Restarting { error });
                tokio::select! {
                    _ = tokio::time::sleep(RESTART_PAUSE) => {}
                    a = asks.recv() => {
                        set(DaskState::Stopped { why: match a { Some(Ask(Finish::Retire)) => "retired".into(), _ => "stopped".into() } });
                        return;
                    }
                }
            }
        }
    }
    // Failed for good: nothing to end; the state stays as it is until the owner finishes.
    let _ = asks.recv().await;
}

/// Watches one child until it exits.
async fn run_once(
    mut child: Child,
    status: &watch::Sender<Status>,
    asks: &mut mpsc::Receiver<Ask>,
    python: &std::path::Path,
) -> Ended {
    // Held until this function returns; its closing tells the launcher to exit.
    let _stdin = child.stdin.take();
    let mut lines = child.stdout.take().map(|o| BufReader::new(o).lines());
    let mut asked: Option<Finish> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut said_closed: Option<String> = None;
    let mut said_failed: Option<String> = None;
    let mut missing: Option<String> = None;
    let mut asks_open = true;
    let set = |state: DaskState| status.send_modify(|s| s.state = state);
    let exit = loop {
        let kill_at = deadline;
        tokio::select! {
            line = async { match lines.as_mut() { Some(l) => l.next_line().await, None => std::future::pending().await } } => {
                match line {
                    Ok(Some(line)) => {
                        let (word, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                        let rest = crate::text::terminal_safe(rest.trim()).into_owned();
                        match word {
                            "ready" => set(DaskState::Running { address: rest }),
                            "dashboard" => status.send_modify(|s| s.dashboard = rest.parse().ok()),
                            "retiring" => set(DaskState::Retiring),
                            "closed" => said_closed = Some(rest),
                            "failed" => said_failed = Some(rest),
                            "missing" => missing = Some(rest),
                            _ => {}
                        }
                    }
                    // stdout closed: the exit comes next.
                    _ => lines = None,
                }
            }
            st = child.wait() => break st,
            a = asks.recv(), if asks_open => {
                // The owner gone (nothing will ask again) is a stop.
                asks_open = a.is_some();
                let how = a.map_or(Finish::Stop, |Ask(h)| h);
                match how {
                    Finish::Retire if asked.is_none() => {
                        signal(&child, rustix::process::Signal::TERM);
                        set(DaskState::Retiring);
                        deadline = Some(tokio::time::Instant::now() + RETIRE_WITHIN);
                    }
                    Finish::Retire => {}
                    Finish::Stop => {
                        signal(&child, rustix::process::Signal::INT);
                        let at = tokio::time::Instant::now() + STOP_WITHIN;
                        deadline = Some(deadline.map_or(at, |d| d.min(at)));
                    }
                }
                if asked != Some(Finish::Stop) {
                    asked = Some(how);
                }
            }
            _ = async { match kill_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                warn!("the Dask process did not end in time; killing it");
                let _ = child.start_kill();
                deadline = None;
            }
        }
    };
    let how = match &exit {
        Ok(s) => s.to_string(),
        Err(e) => format!("cannot wait for it: {e}"),
    };
    if let Some(m) = missing {
        return Ended::Hopeless(super::python::missing_line(python, &m));
    }
    match asked {
        Some(Finish::Retire) => Ended::Asked(said_closed.unwrap_or_else(|| "retired".into())),
        Some(Finish::Stop) => Ended::Asked("stopped with the cluster".into()),
        None if exit.as_ref().is_ok_and(|s| s.success()) => {
            Ended::Asked(said_closed.unwrap_or_else(|| "closed".into()))
        }
        None => Ended::Died(match said_failed {
            Some(f) => format!("the Dask process failed ({how}): {f}"),
            None => format!("the Dask process exited ({how})"),
        }),
    }
}
