//! Dask mode: a real Dask scheduler and workers inside a corral cluster, encrypted and
//! authenticated, owned by corral's agents.
//!
//! A Dask cluster is a corral cluster whose record has [`DaskSpec`]: the coordinator agent
//! also runs a Dask scheduler (tls:// on its own address, dashboard on 127.0.0.1 of its node
//! only), and every worker agent a Dask worker (threads = its cores, memory limit from the
//! allocation). Each is a child process of its agent, started through the launcher
//! (`launch.py`, written into the cluster's `dask/` directory), which exits when its agent's
//! end of its stdin closes — so no Dask process outlives the agent that owns it — and which
//! retires a worker through the scheduler (its data moved off first) on SIGTERM.
//!
//! Modules: [`certs`] (the per-cluster CA and the leaf certificates, files 0600), [`child`]
//! (starting, watching and stopping a Dask process; its state as the protocol carries it),
//! [`env`] (what a user's process needs in its environment to connect unchanged), [`python`]
//! (which interpreter, and whether it has dask and distributed).

pub mod certs;
pub mod child;
pub mod env;
pub mod python;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster_dir::{ClusterDir, ClusterDirError, read_json, write_json_atomic};

/// What makes a cluster a Dask cluster (in `spec.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskSpec {
    /// The Python that runs Dask on every node (it must have dask and distributed).
    pub python: PathBuf,
}

/// The launcher the agents run (see the module doc).
pub const LAUNCHER: &str = include_str!("launch.py");

/// The `dask/` directory of a cluster and the files in it.
#[derive(Debug, Clone)]
pub struct DaskFiles {
    dir: PathBuf,
}

impl DaskFiles {
    pub fn of(cluster: &ClusterDir) -> DaskFiles {
        DaskFiles {
            dir: cluster.path().join("dask"),
        }
    }

    /// The same layout in any directory (tests make a stranger's certificates with it).
    pub fn at(dir: PathBuf) -> DaskFiles {
        DaskFiles { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate every process trusts (its key is never written).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The certificate and key of `role` (`scheduler`, `worker`, `client`).
    pub fn cert(&self, role: certs::Role) -> PathBuf {
        self.dir.join(format!("{}.pem", role.as_str()))
    }

    pub fn key(&self, role: certs::Role) -> PathBuf {
        self.dir.join(format!("{}.key", role.as_str()))
    }

    pub fn launcher(&self) -> PathBuf {
        self.dir.join("launch.py")
    }

    /// Where the scheduler listens, once it does ([`SchedulerInfo`]).
    pub fn scheduler_file(&self) -> PathBuf {
        self.dir.join("scheduler.json")
    }

    /// Writes the launcher (0600) unless it is there already with this content: every agent
    /// of a cluster writes the one of its own version before it starts a Dask process.
    pub fn write_launcher(&self) -> std::io::Result<PathBuf> {
        let path = self.launcher();
        if std::fs::read_to_string(&path).is_ok_and(|t| t == LAUNCHER) {
            return Ok(path);
        }
        certs::write_private(&path, LAUNCHER.as_bytes())?;
        Ok(path)
    }

    pub fn read_scheduler(&self) -> Result<SchedulerInfo, ClusterDirError> {
        read_json(&self.scheduler_file())
    }

    pub fn write_scheduler(&self, info: &SchedulerInfo) -> Result<(), ClusterDirError> {
        write_json_atomic(&self.scheduler_file(), info)
    }

    pub fn remove_scheduler(&self) {
        let _ = std::fs::remove_file(self.scheduler_file());
    }
}

/// `dask/scheduler.json`: where a running cluster's Dask scheduler listens. Written by the
/// coordinator agent once the scheduler is ready, removed when it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerInfo {
    /// `tls://host:port`: what clients and workers connect to.
    pub address: String,
    /// The dashboard's HTTP address, on 127.0.0.1 of the coordinator's node only (reached
    /// from elsewhere through `corral dashboard`, never an open port).
    pub dashboard: Option<SocketAddr>,
}

/// The memory a Dask worker may use, in bytes: what the allocation gives its task
/// (`SLURM_MEM_PER_CPU` × cores, or `SLURM_MEM_PER_NODE` shared by the node's tasks), else
/// the worker's share of this machine's memory by cores. `env` reads one variable.
pub fn memory_limit(
    cores: u32,
    env: &dyn Fn(&str) -> Option<String>,
    machine_bytes: u64,
    machine_cores: u32,
) -> u64 {
    const MIB: u64 = 1 << 20;
    let num = |k: &str| env(k).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(per_cpu) = num("SLURM_MEM_PER_CPU").filter(|m| *m > 0) {
        return per_cpu * MIB * u64::from(cores.max(1));
    }
    if let Some(per_node) = num("SLURM_MEM_PER_NODE").filter(|m| *m > 0) {
        // SLURM_TASKS_PER_NODE looks like `2(x3),1`: the first count is this node's when the
        // node is the first; a plain share by the step's tasks on this node is close enough.
        let tasks = env("SLURM_TASKS_PER_NODE")
            .and_then(|v| {
                v.split([',', '('])
                    .next()
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .filter(|n| *n > 0)
            .unwrap_or(1);
        return per_node * MIB / tasks;
    }
    machine_bytes / u64::from(machine_cores.max(1)) * u64::from(cores.max(1))
}

/// This machine's memory in bytes (`MemTotal` of /proc/meminfo), when it can be read.
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn memory_comes_from_the_allocation_first() {
        let gib = 1u64 << 30;
        let per_cpu = env_of(&[("SLURM_MEM_PER_CPU", "1024")]);
        assert_eq!(memory_limit(2, &per_cpu, 64 * gib, 8), 2 * gib);
        let per_node = env_of(&[
            ("SLURM_MEM_PER_NODE", "4096"),
            ("SLURM_TASKS_PER_NODE", "2(x3),1"),
        ]);
        assert_eq!(memory_limit(2, &per_node, 64 * gib, 8), 2 * gib);
        let none = env_of(&[]);
        assert_eq!(memory_limit(2, &none, 64 * gib, 8), 16 * gib);
    }
}
