//! `corral up`: start a cluster. Without `--local` it is a SLURM allocation (validated against
//! the partition's limits, shown, confirmed, submitted and followed until the workers connect:
//! `crate::slurm_backend`); `--local` runs it as processes on this machine.

use std::process::ExitCode;

use anyhow::bail;
use corral_core::cluster_record::Backend;
use corral_core::model::{ClusterSpec, Walltime, parse_duration, parse_mem_mb};

use crate::local::{self, LocalSpec};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Run the cluster as processes on this machine (no SLURM).
    #[arg(long)]
    pub local: bool,
    /// The cluster's name (letters, digits, '.', '_', '-'); its directory is
    /// ~/.local/state/corral/clusters/NAME.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub size: SizeFlags,
    /// Submit without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Return right after submitting instead of following the job.
    #[arg(long)]
    pub no_wait: bool,
    /// Stop following after T (`90s`, `5m`, `10:00`); the job stays queued. Exit status 75.
    #[arg(long, value_name = "T")]
    pub timeout: Option<String>,
    /// Print the summary as one JSON object on stdout (what a person reads goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Follow the cluster here in print instead of handing over to the terminal UI (which
    /// happens only when stdin and stdout are a terminal, without --json or --no-wait).
    #[arg(long)]
    pub no_tui: bool,
}

impl UpArgs {
    /// Whether `corral up` hands over to the terminal UI once the cluster is submitted.
    pub fn opens_tui(&self) -> bool {
        !self.no_tui && !self.json && !self.no_wait && crate::app::runtime::has_terminal()
    }
}

pub fn run(args: UpArgs, ui: crate::app::runtime::Ui) -> anyhow::Result<ExitCode> {
    if args.local {
        run_local(args, ui)
    } else {
        run_slurm(args, ui)
    }
}

fn run_slurm(args: UpArgs, ui: crate::app::runtime::Ui) -> anyhow::Result<ExitCode> {
    let config = corral_core::config::Config::load()?;
    let flags = &args.size;
    let spec = spec_from_flags(&args.name, flags, &config)?;
    let timeout = parse_timeout(args.timeout.as_deref())?;
    crate::slurm_backend::up(crate::slurm_backend::UpRequest {
        spec,
        yes: args.yes,
        no_wait: args.no_wait,
        timeout,
        json: args.json,
        tui: args
            .opens_tui()
            .then(|| ui.options(crate::app::Start::Attach(args.name.clone()))),
    })
}

/// The sizing flags `corral up` and `corral batch` share, as given (`None`: not on the command
/// line, so the config's `[defaults]` decide).
#[derive(Debug, Clone, clap::Args)]
pub struct SizeFlags {
    /// Workers (default: `workers` in the config's [defaults], 8).
    #[arg(long, value_name = "W")]
    pub workers: Option<u32>,
    /// Cores per worker (default: `cores` in the config's [defaults], 2).
    #[arg(long, value_name = "C")]
    pub cores: Option<u32>,
    /// Days of walltime (default: `days` in the config's [defaults], 1); becomes `--time=D-0`.
    #[arg(long, value_name = "D", conflicts_with = "time")]
    pub days: Option<u64>,
    /// Walltime in SLURM's format instead of days: `MM`, `HH:MM:SS`, `D-HH`, `D-HH:MM:SS`.
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Partition (default: `partition` in the config, else SLURM's default partition).
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Memory per worker, e.g. `4G` (default: the partition's default).
    #[arg(long, value_name = "M")]
    pub mem: Option<String>,
    /// Account to charge (default: `account` in the config, else yours).
    #[arg(long, value_name = "A")]
    pub account: Option<String>,
}

/// The SLURM request of cluster `name` from flags, the config's defaults filling the rest. One
/// function for `corral up` and `corral batch`, so both ask SLURM for the same thing.
pub fn spec_from_flags(
    name: &str,
    flags: &SizeFlags,
    config: &corral_core::config::Config,
) -> anyhow::Result<ClusterSpec> {
    let d = &config.defaults;
    let walltime = match (flags.time.as_deref(), flags.days) {
        (Some(t), _) => t
            .parse::<Walltime>()
            .map_err(|e| anyhow::anyhow!("--time: {e}"))?,
        (None, Some(0)) => bail!("--days must be at least 1 (or use --time for less than a day)"),
        (None, days) => Walltime::from_days(days.unwrap_or(u64::from(d.days))),
    };
    let or_config = |flag: Option<&String>, conf: &str| {
        flag.cloned()
            .or_else(|| (!conf.is_empty()).then(|| conf.to_string()))
    };
    let mem = or_config(flags.mem.as_ref(), &d.mem)
        .map(|m| parse_mem_mb(&m).map_err(|e| anyhow::anyhow!("--mem: {e}")))
        .transpose()?;
    Ok(ClusterSpec {
        name: name.to_string(),
        workers: flags.workers.unwrap_or(d.workers),
        cores_per_worker: flags.cores.unwrap_or(d.cores),
        mem_per_worker_mb: mem,
        walltime,
        partition: or_config(flags.partition.as_ref(), &d.partition),
        account: or_config(flags.account.as_ref(), &d.account),
    })
}

/// `--timeout T` (`90s`, `5m`, `2h`, or SLURM's `10:00`) as a duration.
pub fn parse_timeout(t: Option<&str>) -> anyhow::Result<Option<std::time::Duration>> {
    t.map(|t| parse_duration(t).map_err(|e| anyhow::anyhow!("--timeout: {e}")))
        .transpose()
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    name: &'a str,
    backend: &'static str,
    workers: u32,
    cores_per_worker: u32,
    cores: u32,
    coordinator: String,
    coordinator_pid: u32,
    worker_pids: &'a [u32],
    ready_seconds: f64,
    dir: String,
}

fn run_local(args: UpArgs, ui: crate::app::runtime::Ui) -> anyhow::Result<ExitCode> {
    let config = corral_core::config::Config::load()?;
    let workers = args.size.workers.unwrap_or(config.defaults.workers);
    let cores = args.size.cores.unwrap_or(config.defaults.cores);
    if workers == 0 || cores == 0 {
        bail!("--workers and --cores must be at least 1");
    }
    let spec = LocalSpec {
        name: args.name.clone(),
        workers,
        cores,
        env: Vec::new(),
    };
    let started = local::block_on(local::start(&spec))??;
    let info = started.dir.read_coordinator()?;
    let Backend::Local {
        coordinator_pid,
        worker_pids,
        ..
    } = &started.record.backend
    else {
        bail!("internal: a local start recorded another backend");
    };
    let summary = Summary {
        name: &args.name,
        backend: "local",
        workers,
        cores_per_worker: cores,
        cores: workers * cores,
        coordinator: info.socket_addr().to_string(),
        coordinator_pid: *coordinator_pid,
        worker_pids,
        ready_seconds: started.ready_after.as_secs_f64(),
        dir: started.dir.path().display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "cluster {} is up (local): {workers} worker{} × {cores} core{} = {} cores, all connected in {:.2} s",
            args.name,
            if workers == 1 { "" } else { "s" },
            if cores == 1 { "" } else { "s" },
            workers * cores,
            summary.ready_seconds
        );
        println!(
            "  coordinator {} (pid {}), authenticated QUIC on loopback only",
            summary.coordinator, summary.coordinator_pid
        );
        println!("  logs:   {}/logs", summary.dir);
        println!(
            "  query:  corral query {} --by payment_type FILES…",
            args.name
        );
        println!("  watch:  corral status {}", args.name);
        println!("  stop:   corral down {}", args.name);
    }
    if args.opens_tui() {
        // The summary stays on the terminal under the TUI's screen; quitting leaves the
        // cluster running.
        crate::app::run(ui.options(crate::app::Start::Attach(args.name.clone())))?;
    }
    Ok(ExitCode::SUCCESS)
}
