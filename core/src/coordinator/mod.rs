//! The coordinator: what `corral-agent coordinator` runs, once per cluster.
//!
//! It listens (QUIC, authenticated, see [`crate::transport`]) on a real address of its node,
//! publishes `coordinator.json`, keeps the registry of workers, runs queries one at a time
//! (planning, a file check by every worker before any work starts, scheduling with
//! [`crate::schedule::Scheduler`], quote-parity confirmation and merging with the engine),
//! appends a ledger line per query, and streams snapshots to clients.
//!
//! Shape: one state task owns everything ([`state::State`]); one task per connection moves
//! frames between the network and the state task ([`conn`]); CPU work (planning, merging)
//! runs on blocking threads. Every channel is bounded, and every task is owned: connection
//! tasks by the run loop's `JoinSet`s, request handlers by their connection's.
//!
//! It stops on [`Control::Shutdown`] (SIGTERM in the binary) or a client's shutdown request:
//! workers are told to exit, `coordinator.json` is removed, connections are closed.

mod conn;
pub mod dashboard;
pub mod ledger;
mod persist;
mod state;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::cluster_dir::{ClusterDir, ClusterDirError, CoordinatorInfo};
use crate::protocol::{CloseCode, Role};
use crate::security::SecurityError;
use crate::transport::{Server, ServerOptions, TransportError};

/// A worker silent this long is presumed lost; its tasks are re-run elsewhere.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the workers get to check a new query's files before work starts without the
/// ones that did not answer.
pub const PLAN_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Planning (a stat and a header read per file) that takes longer fails the query: a file
/// system that does not answer must not hold the cluster.
pub const PLAN_TIMEOUT: Duration = Duration::from_secs(60);
/// A task without a result this long after it was assigned is failed on its worker and
/// re-run elsewhere (a 64 MiB partition takes about a second; a stuck file system forever).
pub const TASK_STALL: Duration = Duration::from_secs(300);
/// Events waiting for the state task; connection tasks wait when it is full.
const EVENT_QUEUE: usize = 4096;

/// How to run a coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorOptions {
    /// The address to listen on: a real address of this node (clients connect to what
    /// `coordinator.json` says), 127.0.0.1 for a local cluster.
    pub bind: IpAddr,
    /// Partition size of queries that do not ask for another.
    pub partition_bytes: u64,
    pub heartbeat_timeout: Duration,
    pub plan_check_timeout: Duration,
    pub plan_timeout: Duration,
    pub task_stall: Duration,
    pub server: ServerOptions,
    /// The dashboard `corral dashboard` reaches through this coordinator (the Dask
    /// scheduler's, on this node's loopback); `None` until one is registered with
    /// [`Control::Dashboard`].
    pub dashboard: Option<SocketAddr>,
}

impl CoordinatorOptions {
    pub fn new(bind: IpAddr) -> Self {
        CoordinatorOptions {
            bind,
            partition_bytes: crate::aggregate::DEFAULT_PARTITION_BYTES,
            heartbeat_timeout: HEARTBEAT_TIMEOUT,
            plan_check_timeout: PLAN_CHECK_TIMEOUT,
            plan_timeout: PLAN_TIMEOUT,
            task_stall: TASK_STALL,
            server: ServerOptions::default(),
            dashboard: None,
        }
    }
}

/// Why a coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    ClusterDir(#[from] ClusterDirError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(
        "{0} is a wildcard address: bind one real address of this node (clients and workers \
         connect to the address written in coordinator.json), e.g. --bind 127.0.0.1 locally"
    )]
    WildcardBind(IpAddr),
    #[error("cannot read the bound address: {0}")]
    LocalAddr(std::io::Error),
    #[error("dashboard address refused: {0}")]
    Dashboard(String),
}

/// Asks a running coordinator to do something (the binary forwards signals here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Tell workers to exit, remove `coordinator.json`, exit.
    Shutdown { reason: String },
    /// SLURM's walltime warning: snapshots say the cluster ends soon.
    WalltimeEnding,
    /// The dashboard (the Dask scheduler's, on this node's loopback) is up at this address,
    /// or gone (`None`). Only this process registers it, never a client; a non-loopback
    /// address is refused (logged, the old registration stays).
    Dashboard(Option<SocketAddr>),
    /// The Dask scheduler this coordinator's agent runs changed state (Dask mode).
    Dask(crate::protocol::DaskView),
}

/// Before a new coordinator publishes itself: when `coordinator.json` names one that still
/// answers (a replacement head job starting while the old one runs), that one is asked to
/// hand over — it stops serving and keeps its state for us; one that is gone (killed, its node
/// failed) is simply replaced. Returns what happened, in words, if there was a predecessor.
pub async fn take_over(dir: &ClusterDir) -> Option<String> {
    let info = dir.read_coordinator().ok()?;
    let here = crate::cluster_dir::hostname();
    if info.hostname == here && !std::path::Path::new(&format!("/proc/{}", info.pid)).exists() {
        return Some(format!(
            "the coordinator before (pid {} on {here}) is gone",
            info.pid
        ));
    }
    let ask = async {
        let c = crate::client::ClusterClient::connect(dir).await.ok()?;
        c.hand_over().await.ok()
    };
    match tokio::time::timeout(Duration::from_secs(10), ask).await {
        Ok(Some(())) => {
            // Let it close its endpoint before the workers are pointed here.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some(format!(
                "the coordinator on {} ({}) handed over",
                info.node,
                info.socket_addr()
            ))
        }
        _ => Some(format!(
            "the coordinator on {} ({}) does not answer; taking over",
            info.node,
            info.socket_addr()
        )),
    }
}

/// A bound coordinator, `coordinator.json` written; [`Coordinator::run`] serves.
pub struct Coordinator {
    dir: ClusterDir,
    server: Server,
    addr: SocketAddr,
    opts: CoordinatorOptions,
}

impl Coordinator {
    /// Binds a kernel-chosen UDP port on `opts.bind` with a fresh certificate and publishes
    /// `coordinator.json` atomically. Must be called inside a tokio runtime.
    pub fn bind(dir: ClusterDir, opts: CoordinatorOptions) -> Result<Self, CoordinatorError> {
        if opts.bind.is_unspecified() {
            return Err(CoordinatorError::WildcardBind(opts.bind));
        }
        if let Some(d) = opts.dashboard {
            dashboard::check_address(d).map_err(CoordinatorError::Dashboard)?;
        }
        let secret = dir.load_secret()?;
        // The certificate a cluster's first coordinator made: a coordinator taking over
        // presents what workers and clients pinned.
        let identity = persist::identity(&dir)?;
        let server = Server::bind(
            SocketAddr::new(opts.bind, 0),
            &identity,
            Arc::new(secret),
            opts.server.clone(),
        )?;
        let addr = server.local_addr().map_err(CoordinatorError::LocalAddr)?;
        dir.write_coordinator(&CoordinatorInfo::for_this_process(
            addr,
            server.fingerprint(),
        ))?;
        info!(%addr, dir = %dir.path().display(), "coordinator listening");
        Ok(Coordinator {
            dir,
            server,
            addr,
            opts,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until told to stop; then removes `coordinator.json`.
    pub async fn run(self, mut control: mpsc::Receiver<Control>) -> Result<(), CoordinatorError> {
        let Coordinator {
            dir,
            mut server,
            opts,
            ..
        } = self;
        let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
        let (snap_tx, snap_rx) = watch::channel(None);
        let (dash_tx, dash_rx) = watch::channel(opts.dashboard);
        let mut st = state::State::new(
            state::Config {
                cluster: dir.name(),
                partition_bytes: opts.partition_bytes,
                heartbeat_timeout: opts.heartbeat_timeout,
                plan_check_timeout: opts.plan_check_timeout,
                plan_timeout: opts.plan_timeout,
                task_stall: opts.task_stall,
                ledger: Some(dir.ledger_file()),
            },
            events_tx.clone(),
            snap_tx,
        )
        .keeping(persist::Keeper::start(Some(&dir)));
        if let Some(found) = persist::load(&dir) {
            st.resume(found);
        }
        st.set_dashboard(opts.dashboard.is_some());
        let ctx = conn::Ctx {
            events: events_tx,
            next_worker: Arc::new(AtomicU64::new(1)),
            snapshots: snap_rx,
            subscribers: Arc::new(AtomicUsize::new(0)),
            dashboards: dashboard::Dashboards::new(dash_rx),
        };
        let mut workers = JoinSet::new();
        let mut clients = JoinSet::new();
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut snaps = tokio::time::interval(conn::SNAPSHOT_INTERVAL);
        snaps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut control_open = true;
        let reason = loop {
            tokio::select! {
                c = server.accept() => match c {
                    Some(c) => match c.peer.role {
                        Role::Worker => { workers.spawn(conn::worker(c, ctx.clone())); }
                        Role::Client => { clients.spawn(conn::client(c, ctx.clone())); }
                        // The transport refuses coordinators already; nothing to serve.
                        Role::Coordinator => {}
                    },
                    None => break "the listener closed".to_owned(),
                },
                Some(ev) = events.recv() => st.handle(ev),
                Some(_) = workers.join_next(), if !workers.is_empty() => {}
                Some(_) = clients.join_next(), if !clients.is_empty() => {}
                _ = ticks.tick() => st.tick(tokio::time::Instant::now().into_std()),
                _ = snaps.tick() => {
                    if ctx.subscribers.load(Ordering::Relaxed) > 0 {
                        st.publish_snapshot();
                    }
                }
                c = control.recv(), if control_open => match c {
                    Some(Control::Shutdown { reason }) => break reason,
                    Some(Control::WalltimeEnding) => st.set_walltime_ending(),
                    Some(Control::Dashboard(addr)) => match addr.map(dashboard::check_address).transpose() {
                        Ok(addr) => {
                            info!(?addr, "dashboard registered");
                            dash_tx.send_replace(addr);
                            st.set_dashboard(addr.is_some());
                        }
                        Err(e) => warn!("dashboard address refused: {e}"),
                    },
                    Some(Control::Dask(view)) => st.set_dask(view),
                    None => control_open = false,
                },
            }
            if let Some(r) = st.exit_requested() {
                break r.to_owned();
            }
        };
        if st.handed_over() {
            // The new coordinator publishes its own coordinator.json and serves the workers,
            // which reconnect when this endpoint closes; the running query stays kept.
            info!(reason, "handing over");
            drop(st);
            server.close_with(CloseCode::Done, b"handed over");
            let _ =
                tokio::time::timeout(Duration::from_secs(1), server.endpoint().wait_idle()).await;
            workers.abort_all();
            clients.abort_all();
            return Ok(());
        }
        info!(reason, "coordinator shutting down");
        // First, so nobody new tries to reach a coordinator that is going away.
        if let Err(e) = dir.remove_coordinator() {
            warn!("cannot remove coordinator.json: {e}");
        }
        st.shutdown(&reason);
        // The state may still owe answers (a shutdown request's, failed queries'): a moment
        // for the connection tasks to send them and for workers to take their goodbye.
        let flush = async { while workers.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_millis(1500), flush).await;
        drop(st);
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), server.endpoint().wait_idle()).await;
        workers.abort_all();
        clients.abort_all();
        info!("coordinator stopped");
        Ok(())
    }
}
