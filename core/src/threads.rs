//! How many CPU threads this process may use.
//!
//! Inside a SLURM task the allocation says how many cores are ours (`SLURM_CPUS_PER_TASK`);
//! using `available_parallelism()` there would oversubscribe the node, because SLURM with
//! `task/none` does not pin us. Outside SLURM the machine (or cgroup/affinity) decides.

use std::num::NonZeroUsize;

/// Threads for CPU work: an explicit override, else `SLURM_CPUS_PER_TASK`, else the machine.
pub fn cpu_threads(override_threads: Option<NonZeroUsize>) -> NonZeroUsize {
    if let Some(n) = override_threads {
        return n;
    }
    if let Some(n) = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.trim().parse::<NonZeroUsize>().ok())
    {
        return n;
    }
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}
