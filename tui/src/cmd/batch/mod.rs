//! `corral batch [sizing | --local | --here] -- CMD ARGS…`: fhdask's batch mode, done properly.
//! A cluster lives exactly as long as CMD: it is started through its backend (validated and
//! submitted like `corral up`; local processes; or — `--here`, inside an sbatch script — a
//! coordinator on this node and `srun` workers in the job's own tasks), corral waits until its
//! workers (or `--min-workers`) are connected, runs CMD with the coordinator's address (the
//! rule is in `command`), releases the cluster when CMD ends — also when corral itself gets
//! Ctrl-C, SIGTERM or SIGHUP — and exits with CMD's exit status (128+n for a signal death).
//!
//! Exit statuses of corral's own, chosen as `env`, `timeout` and shells do, so a script can
//! tell them from CMD's: 125 the cluster could not be had (refused, timed out, failed to start;
//! CMD did not run), 126 CMD is not executable, 127 CMD was not found, 128+n corral was stopped
//! by signal n before CMD ran.
//!
//! - `launch`: which backend, the request, and starting and waiting with signals caught.
//! - `command`: CMD's arguments and environment, running it, passing signals on, its status.

mod command;
mod launch;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use corral_core::backend::{Backend, Backends, Cluster};
use corral_core::config::Config;
use rustix::process::Signal;

use crate::cmd::up::{SizeFlags, parse_timeout};
use crate::progress::Printer;

/// corral batch could not give CMD a cluster; CMD did not run.
const EXIT_NO_CLUSTER: u8 = 125;

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// Run the cluster as processes on this machine (no SLURM).
    #[arg(long, conflicts_with = "here")]
    pub local: bool,
    /// Inside an existing allocation (an sbatch script): start the coordinator on this node and
    /// one worker per task of the job with srun, e.g.
    /// `sbatch -n 32 -c 2 --time=1-0 --wrap 'corral batch --here -- ./job.sh {}'`.
    #[arg(long, conflicts_with_all = ["workers", "cores", "days", "time", "partition", "mem", "account"])]
    pub here: bool,
    /// The cluster's name (default: batch-<UTC time>-<random>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub size: SizeFlags,
    #[command(flatten)]
    pub dask: crate::cmd::dask::DaskFlags,
    /// Run CMD once this many workers are connected (default: all of them).
    #[arg(long, value_name = "K")]
    pub min_workers: Option<u32>,
    /// Give up waiting for the workers after T (SLURM's time format, e.g. `30:00`; includes the
    /// time in the queue), release the allocation and exit 125. Default: wait (`--here`: 5
    /// minutes; a local cluster starts within 30 s or fails).
    #[arg(long, value_name = "T")]
    pub timeout: Option<String>,
    /// The command to run and its arguments, after `--`. Every `{}` in its arguments becomes
    /// the coordinator's address (host:port) — with --dask the Dask scheduler's
    /// (tls://host:port) —; without any `{}` the address is added as the last argument.
    /// CORRAL_CLUSTER=<name> and CORRAL_COORDINATOR=<host:port> are always in its
    /// environment; with --dask also what `corral dask-env` prints.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

fn signal_name(s: Signal) -> &'static str {
    match s {
        Signal::INT => "SIGINT",
        Signal::TERM => "SIGTERM",
        Signal::HUP => "SIGHUP",
        _ => "a signal",
    }
}

/// 128 + the signal's number, as shells report a signal death.
fn signal_exit(n: i32) -> u8 {
    u8::try_from(128 + n.clamp(0, 127)).unwrap_or(255)
}

/// `batch-20260131-123456-3fa9c1`: the UTC time to the second, and 24 random bits so that
/// batches started in the same second (an array of sbatch jobs) do not collide.
fn generated_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let t = corral_core::coordinator::ledger::rfc3339(now.as_millis() as u64);
    let digits = |r: std::ops::Range<usize>| t.get(r).unwrap_or("0").to_string();
    let stamp = format!(
        "{}{}{}-{}{}{}",
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19)
    );
    let mut random = [0u8; 3];
    if getrandom::fill(&mut random).is_err() {
        // The pid and the time still make names differ between runs.
        random = (std::process::id() ^ now.subsec_nanos()).to_le_bytes()[..3]
            .try_into()
            .unwrap_or([0; 3]);
    }
    format!(
        "batch-{stamp}-{:02x}{:02x}{:02x}",
        random[0], random[1], random[2]
    )
}

/// A cluster batch started, and how to release it.
struct Held {
    backend: std::sync::Arc<dyn Backend>,
    cluster: Cluster,
}

impl Held {
    /// Stops the cluster, records `why` as how it ended and says how it went on stderr; a
    /// release that fails is reported loudly (it may leave an allocation burning core-hours)
    /// with the command that finishes the job.
    async fn release(&mut self, why: &str) {
        let name = self.cluster.name().to_string();
        let printer = Printer::start("corral batch: ", false);
        let who = format!("corral batch ({why})");
        let stopped = self
            .backend
            .stop(&mut self.cluster, &who, printer.events())
            .await;
        printer.finish().await;
        match stopped {
            Ok(r) => match &r.processes {
                Some(p) if !p.left.is_empty() => eprintln!(
                    "corral: error: processes {:?} of cluster {name} still run after SIGKILL",
                    p.left
                ),
                Some(p) => {
                    let n = p.exited + p.terminated + p.killed;
                    eprintln!(
                        "corral batch: cluster {name}: cluster stopped: {n} process{} exited",
                        if n == 1 { "" } else { "es" }
                    )
                }
                None => eprintln!(
                    "corral batch: cluster {name}: allocation released: every job cancelled and gone from the queue, {:.2} core-hours used",
                    r.core_hours
                ),
            },
            Err(e) => eprintln!(
                "corral: error: releasing cluster {name} failed: {e}\n  finish it with `corral down {name}`"
            ),
        }
    }
}

pub async fn run(
    args: BatchArgs,
    config: &Config,
    backends: &Backends,
) -> anyhow::Result<ExitCode> {
    match run_inner(args, config, backends).await {
        Ok(code) => Ok(code),
        Err(e) => {
            crate::report::error(&e);
            Ok(ExitCode::from(EXIT_NO_CLUSTER))
        }
    }
}

async fn run_inner(
    args: BatchArgs,
    config: &Config,
    backends: &Backends,
) -> anyhow::Result<ExitCode> {
    let name = args.name.clone().unwrap_or_else(generated_name);
    corral_core::cluster_dir::validate_name(&name)?;
    crate::cmd::up::name_is_free(&name)?;
    if args.min_workers == Some(0) {
        bail!("--min-workers must be at least 1");
    }
    let timeout = parse_timeout(args.timeout.as_deref())?;
    let plan = launch::plan(&args, config, backends, &name).await?;
    let mut signals = launch::Signals::catch()?;
    let (mut held, signalled) = match launch::start(&plan, &mut signals).await {
        Ok(started) => started,
        Err(e) => {
            return no_cluster(format!(
                "the cluster {name} did not start (whatever had started was stopped): {e}\nCMD did not run"
            ));
        }
    };
    if let Some(s) = signalled {
        return interrupted(&mut held, s).await;
    }
    match launch::wait(&plan, &held, timeout, &mut signals).await {
        launch::Waited::Ready { workers, cores } => {
            command::run(&args, held, &name, workers, cores, &mut signals).await
        }
        launch::Waited::Signal(s) => interrupted(&mut held, s).await,
        launch::Waited::NotReady { why, message } => {
            held.release(why).await;
            no_cluster(message)
        }
    }
}

/// corral was told to stop before CMD ran: release, and exit as the signal would have.
async fn interrupted(held: &mut Held, s: Signal) -> anyhow::Result<ExitCode> {
    eprintln!(
        "corral batch: {} before CMD ran; releasing the cluster",
        signal_name(s)
    );
    held.release(&format!("{} before CMD ran", signal_name(s)))
        .await;
    Ok(ExitCode::from(signal_exit(s.as_raw())))
}

fn no_cluster(msg: String) -> anyhow::Result<ExitCode> {
    eprintln!("corral: error: {msg}");
    Ok(ExitCode::from(EXIT_NO_CLUSTER))
}

fn min_workers(asked: Option<u32>, workers: u32) -> anyhow::Result<u32> {
    match asked {
        Some(k) if k > workers => {
            bail!("--min-workers {k} is more than the {workers} workers asked for")
        }
        Some(k) => Ok(k),
        None => Ok(workers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_and_differ() {
        let a = generated_name();
        let b = generated_name();
        assert!(corral_core::cluster_dir::validate_name(&a).is_ok(), "{a}");
        assert!(a.starts_with("batch-2"), "{a}");
        assert_eq!(a.len(), "batch-20260131-123456-3fa9c1".len(), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn signal_deaths_are_128_plus_n() {
        assert_eq!(signal_exit(2), 130);
        assert_eq!(signal_exit(15), 143);
        assert_eq!(signal_exit(9), 137);
    }

    #[test]
    fn min_workers_is_checked() {
        assert_eq!(min_workers(None, 4).ok(), Some(4));
        assert_eq!(min_workers(Some(2), 4).ok(), Some(2));
        assert!(min_workers(Some(5), 4).is_err());
    }
}
