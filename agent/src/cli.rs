//! The command line of the agent roles.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// corral's agents: the coordinator (once per cluster) and the workers (one per SLURM task).
#[derive(Debug, Parser)]
#[command(name = "corral-agent", version, about)]
pub struct AgentCli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the cluster's coordinator: listens (QUIC), schedules queries, merges results.
    Coordinator(CoordinatorArgs),
    /// Run a worker: connects to the coordinator and computes partitions.
    Worker(WorkerArgs),
    /// Load tool: open many authenticated worker connections that only heartbeat, and measure
    /// the coordinator's CPU and memory.
    #[command(hide = true)]
    Simulate(SimulateArgs),
    /// Supervise a SLURM cluster from the login side while nobody watches it (started by
    /// `corral up --keep-alive`; stopped by `corral down`).
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The cluster directory.
    #[arg(long, value_name = "DIR")]
    pub cluster: PathBuf,
    /// Seconds between looks (tests shorten it).
    #[arg(
        long,
        hide = true,
        value_name = "SECS",
        env = "CORRAL_SUPERVISOR_TICK_SECS",
        default_value = "5"
    )]
    pub tick: f64,
}

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// The cluster directory (holds the secret; must be yours and mode 0700).
    #[arg(long, value_name = "DIR")]
    pub cluster: PathBuf,
    /// Address to listen on (a UDP port is chosen by the kernel). Default: 127.0.0.1 outside
    /// SLURM, the node's address inside a SLURM job.
    #[arg(long, value_name = "IP")]
    pub bind: Option<IpAddr>,
    /// Partition size of queries that do not ask for another (default 64 MiB).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub partition_bytes: Option<u64>,
    /// The dashboard `corral dashboard` reaches through this coordinator: an HTTP server on
    /// this node's loopback (127.0.0.1:PORT), e.g. the Dask scheduler's. Clients never choose
    /// it; only a loopback address is accepted.
    #[arg(long, value_name = "127.0.0.1:PORT", env = "CORRAL_AGENT_DASHBOARD")]
    pub dashboard: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The cluster directory (holds the secret; must be yours and mode 0700).
    #[arg(long, value_name = "DIR")]
    pub cluster: PathBuf,
    /// Compute threads (default: SLURM_CPUS_PER_TASK, else the cores this process may use).
    #[arg(long, value_name = "N")]
    pub cores: Option<NonZeroUsize>,
    /// Seconds without the coordinator before the worker exits by itself (tests shorten it).
    #[arg(
        long,
        hide = true,
        value_name = "SECS",
        env = "CORRAL_WORKER_ORPHAN_TIMEOUT_SECS",
        default_value = "30"
    )]
    pub orphan_timeout: f64,
    /// Tests only: pause this long after each partition so a test can act mid-query.
    #[arg(
        long,
        hide = true,
        value_name = "MS",
        env = "CORRAL_WORKER_TEST_DELAY_MS"
    )]
    pub test_delay_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The cluster directory of a running coordinator.
    #[arg(long, value_name = "DIR")]
    pub cluster: PathBuf,
    /// Worker connections to open.
    #[arg(long, default_value = "1000")]
    pub workers: usize,
    /// Seconds to measure once every connection is up.
    #[arg(long, default_value = "20")]
    pub seconds: u64,
    /// Handshakes in flight at once (the coordinator caps unauthenticated connections).
    #[arg(long, default_value = "64")]
    pub concurrency: usize,
    /// Print the measurement as one JSON object.
    #[arg(long)]
    pub json: bool,
}
