//! corral-core: everything of corral that is not a terminal and not a `main`.
//!
//! Map of the modules:
//! - [`paths`]: where config, state (cluster directories) and cache live (XDG).
//! - [`config`]: layered configuration (site file, user file, `CORRAL_*` env), unknown keys
//!   rejected by name.
//! - [`logging`]: `tracing` setup shared by the binaries (file or stderr, never the TUI's screen).
//! - [`netaddr`]: the coordinator's listening address (the one other nodes reach it by).
//! - [`model`]: job ids, walltimes and what a user asks for (`ClusterSpec`).
//! - [`slurm`]: the SLURM client (trait; command-line tools or slurmrestd), limits validation,
//!   pending reasons.
//! - [`threads`]: how many CPU threads this process may use (SLURM allocation or the machine).
//! - [`dask`]: Dask mode — the per-cluster CA and certificates, the Dask processes the agents
//!   own (started through a Python launcher, retired through the scheduler), the client env.
//! - [`datagen`]: the NYC-taxi CSV generator behind `corral gen taxi` and `corral demo`.
//! - [`aggregate`]: the CSV group-by engine (query model, partitioning, scanner, merge).
//! - [`mmap`]: the one `unsafe` module: read-only memory maps with a plain-read fallback.
//! - [`cluster_dir`]: a cluster's directory (layout, permission checks, `coordinator.json`).
//! - [`schedule`]: the coordinator's task scheduling (pull, attempts, re-runs) as a pure state machine.
//! - [`security`]: the cluster secret, the coordinator's certificate and its pinning, the HMAC
//!   proof bound to the TLS session.
//! - [`transport`]: QUIC endpoints (ALPN `corral/1`), length-framed messages, the auth handshake.
//! - [`protocol`]: every message of the wire protocol (handshake, versions, close codes).
//! - [`coordinator`]: the coordinator (registry, queries, merging, ledger, snapshots) as a library.
//! - [`worker`]: the worker (connect, report, pull partitions, compute them on threads).
//! - [`client`]: the client API of the CLI and the TUI (snapshots, queries, drain, shutdown).
//! - [`dashboard`]: the Dask dashboard without an open port (the local proxy and its one-time
//!   link, the byte copying both ways, Dask's workers and task totals for the TUI).
//! - [`cluster_record`]: `spec.json`, what a cluster is and which backend runs it.
//! - [`ended`]: ended clusters — their names free again, their records kept for history,
//!   `forget`.
//! - [`backend`]: one way to run a cluster (`Backend`: local processes, SLURM jobs, inside a
//!   user's own allocation), progress as typed events; what the CLI and the TUI call.
//! - [`supervisor`]: the login-side process that acts for a cluster while nobody watches
//!   (jobs replaced before their walltime, `--keep-alive`), its policies and decisions log.
//! - [`procstat`]: CPU, memory, load and command lines from `/proc`.
//! - [`tasks`]: ownership of spawned tasks (abort on drop).
//! - [`scaling`]: runtimes at 1, 2, 4, … cores → speedup, efficiency and the knee, in words.
//! - [`adapt`]: adaptive scaling — the policy (pure, simulated time) and what applies it.
//! - [`notify`]: notifications (ready, never starts, walltime ending, query finished, node
//!   lost): detected, claimed once per channel, delivered by terminal escapes or mail.
//! - [`text`]: text from files and peers made safe to print on a terminal (escapes shown), and
//!   counts in words (`1 worker`, `2 workers`).
pub mod adapt;
pub mod aggregate;
pub mod backend;
pub mod client;
pub mod cluster_dir;
pub mod cluster_record;
pub mod config;
pub mod coordinator;
pub mod dashboard;
pub mod dask;
pub mod datagen;
pub mod ended;
pub mod logging;
pub mod mmap;
pub mod model;
pub mod netaddr;
pub mod notify;
pub mod paths;
pub mod procstat;
pub mod protocol;
pub mod scaling;
pub mod schedule;
pub mod security;
pub mod slurm;
pub mod supervisor;
pub mod tasks;
pub mod text;
pub mod threads;
pub mod transport;
pub mod worker;
