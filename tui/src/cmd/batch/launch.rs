//! Getting the cluster `corral batch` runs CMD on: which backend and what to ask for, then
//! starting it and waiting for its workers — with SIGINT, SIGTERM and SIGHUP caught from the
//! first submit on, so a signal releases what was started instead of killing corral.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use corral_core::backend::{AgentExe, Backend, Backends, Ready};
use corral_core::config::Config;
use corral_core::model::{ClusterSpec, JobId, Walltime};
use corral_core::slurm::lifecycle;
use rustix::process::Signal;
use tokio::signal::unix::{SignalKind, signal};

use super::{BatchArgs, Held, min_workers};
use crate::cmd::up::{local_spec, spec_from_flags};
use crate::progress::Printer;

/// What to start, on which backend, and how many workers CMD waits for.
pub(super) struct Plan {
    backend: Arc<dyn Backend>,
    spec: ClusterSpec,
    want: u32,
    /// How long the workers may take when `--timeout` is not given (None: the backend's own).
    default_wait: Option<Duration>,
    /// Said once the cluster is started.
    intro: String,
}

/// The request of `--here`: the enclosing job's tasks and CPUs.
fn here_spec(name: &str) -> anyhow::Result<(JobId, ClusterSpec)> {
    let Ok(job) = std::env::var("SLURM_JOB_ID") else {
        bail!(
            "--here runs inside a SLURM allocation, and SLURM_JOB_ID is not set; use it in a job, e.g. \
             sbatch -n 32 -c 2 --time=1-0 --wrap 'corral batch --here -- ./job.sh' (or drop --here to \
             have corral batch allocate)"
        );
    };
    let job: JobId = job
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("SLURM_JOB_ID={job:?} is not a job id"))?;
    let env_u32 = |var: &str| -> anyhow::Result<u32> {
        match std::env::var(var) {
            Ok(v) => v
                .trim()
                .parse::<u32>()
                .map(|n| n.max(1))
                .with_context(|| format!("{var}={v:?} is not a number")),
            Err(_) => Ok(1),
        }
    };
    let spec = ClusterSpec {
        name: name.to_string(),
        workers: env_u32("SLURM_NTASKS")?,
        cores_per_worker: env_u32("SLURM_CPUS_PER_TASK")?,
        mem_per_worker_mb: None,
        walltime: Walltime::from_days(1),
        partition: None,
        account: None,
        supervise: Default::default(),
        dask: None,
    };
    Ok((job, spec))
}

/// `srun`, from the configured SLURM directory or `PATH`.
fn srun_program(config: &Config) -> std::path::PathBuf {
    if config.slurm.bin_dir.is_empty() {
        "srun".into()
    } else {
        std::path::Path::new(&config.slurm.bin_dir).join("srun")
    }
}

/// Checks the request and picks the backend; nothing is started yet. A SLURM request that
/// does not fit is refused here, with the nearest one that does.
pub(super) async fn plan(
    args: &BatchArgs,
    config: &Config,
    backends: &Backends,
    name: &str,
) -> anyhow::Result<Plan> {
    let dask = args.dask.spec(config).await?;
    if args.here {
        let (job, mut spec) = here_spec(name)?;
        spec.dask = dask;
        let want = min_workers(args.min_workers, spec.workers)?;
        return Ok(Plan {
            backend: backends.in_allocation(srun_program(config), job),
            intro: format!(
                "cluster {name} in job {job}: coordinator on this node, {} × {} via srun; \
                 CMD runs once {want} are connected",
                corral_core::text::count(spec.workers, "worker"),
                corral_core::text::count(spec.cores_per_worker, "core")
            ),
            spec,
            want,
            default_wait: None,
        });
    }
    if args.local {
        let mut spec = local_spec(name, &args.size, config)?;
        spec.dask = dask;
        // A local cluster starts every worker; --min-workers is checked for sense only.
        min_workers(args.min_workers, spec.workers)?;
        return Ok(Plan {
            backend: backends.local(),
            intro: format!(
                "local cluster {name}: {} × {}{}",
                corral_core::text::count(spec.workers, "worker"),
                corral_core::text::count(spec.cores_per_worker, "core"),
                crate::cmd::up::local_fit_warning(&spec)
                    .map(|w| format!("\ncorral batch: warning: {w}"))
                    .unwrap_or_default()
            ),
            want: spec.workers,
            spec,
            default_wait: None,
        });
    }
    let mut spec = spec_from_flags(name, &args.size, config)?;
    spec.dask = dask;
    let want = min_workers(args.min_workers, spec.workers)?;
    let agent = AgentExe::find()?;
    let dir_path = corral_core::paths::clusters_dir().join(name);
    let checked = lifecycle::check(
        backends.slurm_client().as_ref(),
        &spec,
        &dir_path,
        &agent.words(),
    )
    .await?;
    if !checked.verdict.is_clean() {
        let mut msg = String::from("the request does not fit, nothing was submitted:");
        for p in &checked.verdict.problems {
            msg.push_str(&format!(
                "\n  ✗ {}: {}",
                format!("{:?}", p.field).to_lowercase(),
                p.message
            ));
        }
        if let Some(n) = &checked.verdict.nearest {
            msg.push_str(&format!(
                "\n  nearest request that fits: --workers {} --cores {} --time {}{}",
                n.workers,
                n.cores_per_worker,
                n.walltime.to_sbatch(),
                n.partition
                    .as_ref()
                    .map(|p| format!(" --partition {p}"))
                    .unwrap_or_default()
            ));
        }
        bail!(msg);
    }
    eprintln!(
        "{}",
        corral_core::backend::slurm::security_notice(name, &dir_path)
    );
    Ok(Plan {
        backend: backends.slurm(agent),
        intro: format!(
            "cluster {name} (corral-{name}): {} worker{} × {} core{} for {}; CMD runs once {want} {} connected",
            spec.workers,
            if spec.workers == 1 { "" } else { "s" },
            spec.cores_per_worker,
            if spec.cores_per_worker == 1 { "" } else { "s" },
            spec.walltime,
            if want == 1 { "is" } else { "are" }
        ),
        spec,
        want,
        default_wait: None,
    })
}

/// SIGINT, SIGTERM and SIGHUP, caught: they no longer kill corral.
pub(super) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn catch() -> anyhow::Result<Signals> {
        let catch = |kind| signal(kind).context("cannot catch signals");
        Ok(Signals {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
            hup: catch(SignalKind::hangup())?,
        })
    }

    pub(super) async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::INT,
            _ = self.term.recv() => Signal::TERM,
            _ = self.hup.recv() => Signal::HUP,
        }
    }
}

/// Starts the cluster. The start is always waited for — it is what knows what to stop — and
/// a signal that came meanwhile is returned, to be acted on right after.
pub(super) async fn start(
    plan: &Plan,
    signals: &mut Signals,
) -> anyhow::Result<(Held, Option<Signal>)> {
    let printer = Printer::start("corral batch: ", false);
    let mut signalled = None;
    let started = {
        let starting = plan.backend.start(&plan.spec, printer.events());
        tokio::pin!(starting);
        loop {
            tokio::select! {
                r = &mut starting => break r,
                s = signals.recv() => { signalled.get_or_insert(s); }
            }
        }
    };
    printer.finish().await;
    let cluster = started?;
    eprintln!("corral batch: {}", plan.intro);
    Ok((
        Held {
            backend: Arc::clone(&plan.backend),
            cluster,
        },
        signalled,
    ))
}

/// How waiting for the workers ended.
pub(super) enum Waited {
    Ready {
        workers: u32,
        cores: u32,
    },
    Signal(Signal),
    /// No cluster for CMD: `why` for the record, `message` for the user.
    NotReady {
        why: &'static str,
        message: String,
    },
}

/// Follows the started cluster until `want` workers are connected, a signal, or `timeout`.
pub(super) async fn wait(
    plan: &Plan,
    held: &Held,
    timeout: Option<Duration>,
    signals: &mut Signals,
) -> Waited {
    let name = held.cluster.name().to_string();
    let printer = Printer::start("corral batch: ", false);
    let limit = timeout.or(plan.default_wait);
    let followed = tokio::select! {
        r = plan.backend.follow(&held.cluster, plan.want, limit, printer.events()) => r,
        s = signals.recv() => {
            printer.finish().await;
            return Waited::Signal(s);
        }
    };
    printer.finish().await;
    match followed {
        Ok(Ready::Up { workers, cores, .. }) => Waited::Ready { workers, cores },
        Ok(Ready::NotYet { .. }) => Waited::NotReady {
            why: "the workers were not connected in time",
            message: format!(
                "cluster {name} was not ready within {}; CMD did not run",
                limit.map_or_else(|| "the timeout".into(), |t| format!("{t:?}"))
            ),
        },
        Ok(Ready::NeverStarts { job, reason }) => Waited::NotReady {
            why: "the job could never start",
            message: format!(
                "job {job} of cluster {name} could never start as submitted ({reason}); CMD did not run"
            ),
        },
        Err(e) => Waited::NotReady {
            why: "the cluster failed to start",
            message: format!("{e}\nCMD did not run"),
        },
    }
}
