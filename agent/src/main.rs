//! `corral-agent`: what runs inside an allocation — the coordinator (once per cluster) and the
//! workers (one per SLURM task). The roles live in this package's library so that `corral`
//! can host them too.
//!
//! Map of the modules (in `lib.rs`):
//! - `cli`: the command line of the roles (`coordinator`, `worker`, hidden `simulate`).
//! - `coordinator`: opens the cluster directory, binds, runs `corral_core::coordinator`,
//!   forwards SIGTERM/SIGINT (shut down) and SIGUSR1 (walltime ending).
//! - `worker`: runs `corral_core::worker`, forwards SIGTERM/SIGINT (stop cleanly).
//! - `simulate`: the load tool of the 1,000-worker benchmark.
//! - `signals`: Unix signals as a channel.

fn main() -> std::process::ExitCode {
    corral_agent::main_with(std::env::args_os())
}
