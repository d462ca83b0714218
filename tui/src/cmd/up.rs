//! `corral up`: start a cluster. Without `--local` it is a SLURM allocation: validated
//! against the partition's limits, shown (script, security notice, start estimate), confirmed,
//! submitted, and followed until the workers connect (the backend's progress events, printed);
//! `--local` runs it as processes on this machine. Both through `corral_core::backend`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use corral_core::backend::slurm::security_notice;
use corral_core::backend::{AgentExe, Backends, Cluster, Events, Ready, State};
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::Backend;
use corral_core::model::{ClusterSpec, Walltime, parse_duration, parse_mem_mb};
use corral_core::slurm::lifecycle;
use corral_core::slurm::template::{self, JobRole};
use corral_core::slurm::validate::Field;

use crate::progress::Printer;

/// Exit status of `corral up --timeout` when the cluster was not ready in time (EX_TEMPFAIL):
/// the job stays queued, so scripts can tell this apart from a failure.
pub const EXIT_NOT_READY: u8 = 75;

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
    #[command(flatten)]
    pub keep: KeepAliveFlags,
    /// Adaptive scaling within MIN..MAX workers: grows while queries wait for workers,
    /// shrinks to MIN after an idle time (a supervisor process on this login node decides and
    /// logs why; `corral down` stops it). Starts with MIN workers unless --workers says.
    #[arg(long, value_name = "MIN..MAX", value_parser = super::adapt::parse)]
    pub adapt: Option<super::adapt::AdaptArg>,
    #[command(flatten)]
    pub dask: crate::cmd::dask::DaskFlags,
    /// Submit without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the whole job script before asking (instead of a summary of the request).
    #[arg(long)]
    pub show_script: bool,
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
    #[command(flatten)]
    pub ui: crate::app::runtime::UiFlags,
}

impl UpArgs {
    /// Whether `corral up` hands over to the terminal UI once the cluster is submitted.
    pub fn opens_tui(&self) -> bool {
        !self.no_tui && !self.json && !self.no_wait && crate::app::runtime::has_terminal()
    }
}

pub async fn run(
    args: UpArgs,
    ui: crate::app::runtime::Ui,
    backends: &Backends,
) -> anyhow::Result<ExitCode> {
    if args.local {
        run_local(args, ui, backends).await
    } else {
        run_slurm(args, ui, backends).await
    }
}

/// `corral up` on SLURM.
async fn run_slurm(
    args: UpArgs,
    ui: crate::app::runtime::Ui,
    backends: &Backends,
) -> anyhow::Result<ExitCode> {
    let config = corral_core::config::Config::load()?;
    let mut spec = spec_from_flags(&args.name, &args.size, &config)?;
    spec.supervise = args.keep.supervise(&spec)?;
    let adapt_range = match args.adapt {
        None => None,
        Some(super::adapt::AdaptArg::Off) => {
            bail!(
                "--adapt off is for `corral scale NAME --adapt off`; to start without adapting leave --adapt out"
            )
        }
        Some(super::adapt::AdaptArg::On(r)) => {
            spec.workers = super::adapt::start_workers(r, args.size.workers)?;
            Some(r)
        }
    };
    // The supervisor mails what happens while nobody watches.
    spec.supervise.mail = !config.notify.mail.trim().is_empty();
    let timeout = parse_timeout(args.timeout.as_deref())?;
    name_is_free(&spec.name)?;
    spec.dask = args.dask.spec(&config).await?;
    let basic = corral_core::slurm::validate::basic_problems(&spec);
    if !basic.is_empty() {
        eprintln!("corral: the request cannot work, nothing was submitted:");
        for p in &basic {
            eprintln!("  ✗ {}: {}", field_name(p.field), p.message);
        }
        return Ok(ExitCode::from(2));
    }
    let agent = AgentExe::find()?;
    let dir_path = corral_core::paths::clusters_dir().join(&spec.name);
    let slurm = backends.slurm_client().as_ref();
    let checked = lifecycle::check(slurm, &spec, &dir_path, &agent.words()).await?;
    let verdict = &checked.verdict;
    if !verdict.is_clean() {
        eprintln!("corral: the request does not fit, nothing was submitted:");
        for p in &verdict.problems {
            eprintln!("  ✗ {}: {}", field_name(p.field), p.message);
        }
        if let Some(n) = &verdict.nearest {
            eprintln!("  nearest request that fits: {}", up_command(n));
        }
        return Ok(ExitCode::from(2));
    }
    if let Some(r) = adapt_range {
        match super::adapt::setting(slurm, &spec, r).await {
            Ok(s) => spec.supervise.adapt = Some(s),
            Err(e) => {
                eprintln!("corral: {e}; nothing was submitted");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let partition = verdict.partition.clone().unwrap_or_default();
    let script = template::render(
        &spec,
        JobRole::Head,
        spec.workers,
        &dir_path,
        &agent.words(),
    )?;
    // With --json, stdout carries one JSON object at the end; everything a person reads goes
    // to stderr.
    let say = |text: String| {
        if args.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    let width = crate::human::text_width();
    if args.show_script {
        say("The job script corral will submit:\n".into());
        for line in script.lines() {
            say(format!("    {line}"));
        }
        say(String::new());
    } else {
        say(crate::human::wrap(
            &request_summary(&spec, &partition, &dir_path),
            width,
            "  ",
        ));
    }
    say(crate::human::wrap(
        &security_notice(&spec.name, &dir_path),
        width,
        "",
    ));
    say(match &checked.estimate {
        Some(e) => format!(
            "SLURM estimates it starts at {} on {} ({}, partition {}).",
            e.start,
            e.nodes,
            corral_core::text::count(e.processors, "CPU"),
            e.partition
        ),
        None => "SLURM gave no start estimate.".into(),
    });
    if !args.yes
        && !confirm(&format!(
            "Submit {} × {} for {} on partition {partition}?",
            corral_core::text::count(spec.workers, "worker"),
            corral_core::text::count(spec.cores_per_worker, "core"),
            spec.walltime
        ))?
    {
        say("Not submitted.".into());
        return Ok(ExitCode::SUCCESS);
    }
    let backend = backends.slurm(agent);
    let printer = Printer::start("", false);
    let mut cluster = backend.start(&spec, printer.events()).await?;
    let job = lifecycle::ClusterJobs::load(&cluster.dir)?
        .head()
        .map_or(0, |h| h.id.0);
    let dir = cluster.dir.clone();
    let summary = |state: &str, workers: u32, cores: u32, ready: Option<f64>| {
        serde_json::json!({
            "name": spec.name,
            "backend": "slurm",
            "state": state,
            "job": job,
            "partition": partition,
            "workers": workers,
            "cores": cores,
            "asked_workers": spec.workers,
            "cores_per_worker": spec.cores_per_worker,
            "time": spec.walltime.to_sbatch(),
            "coordinator": dir.read_coordinator().ok().map(|i| i.socket_addr().to_string()),
            "ready_seconds": ready,
            "dir": dir.path().display().to_string(),
        })
    };
    if args.opens_tui() {
        printer.finish().await;
        crate::app::run(ui.options(crate::app::Start::Attach(args.name.clone()))).await?;
        // Left on the pending screen, the job still waits in the queue: say so, and how to
        // cancel it, as a Ctrl-C would.
        let state = backend
            .observe(&mut cluster)
            .await
            .map_or(State::Unknown, |o| o.state);
        match state {
            State::Ended => println!("Cluster {} has ended.", spec.name),
            State::Pending => println!(
                "Cluster {0}: {1} `corral attach {0}` shows it again.",
                spec.name,
                stays_queued(job, &spec.name, state).trim_start_matches("corral: ")
            ),
            _ => println!(
                "Cluster {0} keeps running: `corral attach {0}` shows it again, `corral down {0}` stops it.",
                spec.name
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.no_wait {
        printer.finish().await;
        if args.json {
            println!("{}", summary("submitted", 0, 0, None));
        }
        say(format!(
            "Follow it with `corral status {0}`; stop it with `corral down {0}`.",
            spec.name
        ));
        return Ok(ExitCode::SUCCESS);
    }
    // Ctrl-C while following must not leave a job queued without a word: it starts later and
    // burns the allocation.
    let followed = tokio::select! {
        r = backend.follow(&cluster, spec.workers, timeout, printer.events()) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(ready) = followed else {
        printer.finish().await;
        return interrupted(backend.as_ref(), &mut cluster, job).await;
    };
    let ready = match ready {
        Ok(Ready::NeverStarts { job, reason }) => {
            if args.yes
                || confirm(&format!(
                    "Job {job} can never start as submitted. Cancel it?"
                ))?
            {
                let who = format!("corral up (could never start: {reason})");
                backend.stop(&mut cluster, &who, printer.events()).await?;
                printer.finish().await;
                eprintln!("corral: job {job} cancelled; nothing is left queued.");
            } else {
                printer.finish().await;
                eprintln!(
                    "corral: job {job} stays queued; `corral down {}` removes it.",
                    spec.name
                );
            }
            if args.json {
                println!("{}", summary("never_starts", 0, 0, None));
            }
            return Ok(ExitCode::FAILURE);
        }
        other => {
            printer.finish().await;
            other?
        }
    };
    match ready {
        Ready::Up {
            workers,
            cores,
            after,
        } => {
            if args.json {
                println!(
                    "{}",
                    summary("running", workers, cores, Some(after.as_secs_f64()))
                );
            }
            let info = cluster.dir.read_coordinator()?;
            say(format!(
                "cluster {} is up: workers={workers} cores={cores}, coordinator {} (authenticated), ready after {:.1} s",
                spec.name,
                info.socket_addr(),
                after.as_secs_f64()
            ));
            say(format!(
                "  query:  corral query {} --by payment_type FILES…",
                spec.name
            ));
            say(format!("  scale:  corral scale {} --workers N", spec.name));
            say(format!("  stop:   corral down {}", spec.name));
            Ok(ExitCode::SUCCESS)
        }
        Ready::NotYet { state } => {
            if args.json {
                println!("{}", summary("pending", 0, 0, None));
            }
            eprintln!(
                "corral: the cluster is not ready after {:?} (job {job} is {state}); the job stays queued. \
                 Follow it with `corral status {name}`, stop it with `corral down {name}`.",
                timeout.unwrap_or_default(),
                name = spec.name
            );
            Ok(ExitCode::from(EXIT_NOT_READY))
        }
        Ready::NeverStarts { .. } => Ok(ExitCode::FAILURE),
    }
}

/// What `corral up` asks SLURM for, in a few lines (the whole job script with --show-script).
pub fn request_summary(spec: &ClusterSpec, partition: &str, dir: &std::path::Path) -> String {
    let cpus = u64::from(spec.workers) * u64::from(spec.cores_per_worker);
    format!(
        "corral will submit one job, corral-{name}, to partition {partition}: {} × {} ({}) for \
         {}, memory {}, account {}. It runs the coordinator and the workers (corral-agent); \
         logs go to {}/logs. The whole job script: --show-script.",
        corral_core::text::count(spec.workers, "worker"),
        corral_core::text::count(spec.cores_per_worker, "core"),
        corral_core::text::count(cpus, "CPU"),
        spec.walltime,
        spec.mem_per_worker_mb
            .map_or("the partition's default".into(), |m| format!(
                "{m} MiB per worker"
            )),
        spec.account.as_deref().unwrap_or("yours (the default)"),
        dir.display(),
        name = spec.name,
    )
}

/// Refuses a name a cluster that has not ended still uses (an ended one's name is free again).
pub fn name_is_free(name: &str) -> anyhow::Result<()> {
    if let Ok(dir) = ClusterDir::open(name)
        && corral_core::cluster_record::ClusterRecord::load(&dir)
            .map_or(true, |r| r.stopped.is_none())
    {
        bail!(
            "a cluster named {name:?} is still running or queued; choose another --name, or \
             `corral down {name}` first (see `corral ls`)"
        );
    }
    Ok(())
}

/// Exit status after Ctrl-C (128 + SIGINT), whether or not the job was cancelled.
const EXIT_INTERRUPTED: u8 = 130;

/// Ctrl-C while `corral up` follows its job: in a terminal, asks whether to cancel it; without
/// one (or on a second Ctrl-C), says that it stays queued and how to cancel it.
async fn interrupted(
    backend: &dyn corral_core::backend::Backend,
    cluster: &mut Cluster,
    job: u64,
) -> anyhow::Result<ExitCode> {
    let name = cluster.record.name.clone();
    let state = match backend.observe(cluster).await {
        Ok(o) => o.state,
        Err(_) => State::Unknown,
    };
    eprintln!();
    if state == State::Ended {
        eprintln!("corral: interrupted; cluster {name} has already ended.");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let what = match state {
        State::Running => "is running",
        _ => "is still queued",
    };
    let cancel = std::io::stdin().is_terminal()
        && ask_async(&format!(
            "Interrupted: job {job} of cluster {name} {what}. Cancel it?"
        ))
        .await;
    if cancel {
        let report = backend
            .stop(cluster, "corral up (interrupted)", &Events::none())
            .await?;
        eprintln!(
            "corral: job {job} cancelled; nothing of cluster {name} is left queued ({}).",
            report.how
        );
    } else {
        eprintln!("{}", stays_queued(job, &name, state));
    }
    Ok(ExitCode::from(EXIT_INTERRUPTED))
}

/// What is said when a followed job is left behind on purpose.
pub fn stays_queued(job: u64, name: &str, state: State) -> String {
    match state {
        State::Running => format!(
            "corral: job {job} keeps running (its CPUs stay allocated); `corral down {name}` stops it."
        ),
        _ => format!(
            "corral: job {job} stays queued and will start later, holding its CPUs; `corral down {name}` cancels it."
        ),
    }
}

/// Asks yes/no on the terminal; a second Ctrl-C or end of input is no. The answer is read on a
/// thread of its own, so an unanswered question never keeps the process alive.
async fn ask_async(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let read = std::io::stdin().read_line(&mut answer).map(|_| answer);
        let _ = tx.send(read);
    });
    tokio::select! {
        answer = rx => matches!(answer, Ok(Ok(a)) if matches!(a.trim(), "y" | "Y" | "yes")),
        _ = tokio::signal::ctrl_c() => {
            eprintln!();
            false
        }
    }
}

fn field_name(f: Field) -> &'static str {
    match f {
        Field::Name => "name",
        Field::Workers => "workers",
        Field::Cores => "cores",
        Field::Memory => "memory",
        Field::Walltime => "time",
        Field::Partition => "partition",
    }
}

/// The `corral up` command line of a request.
pub fn up_command(s: &ClusterSpec) -> String {
    let mut c = format!(
        "corral up --name {} --workers {} --cores {} --time {}",
        s.name,
        s.workers,
        s.cores_per_worker,
        s.walltime.to_sbatch()
    );
    if let Some(p) = &s.partition {
        c.push_str(&format!(" --partition {p}"));
    }
    if let Some(m) = s.mem_per_worker_mb {
        c.push_str(&format!(" --mem {m}M"));
    }
    c
}

/// Asks on the terminal; refuses to guess when there is none.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "{question} — not answered: stdin is not a terminal; add --yes to go ahead without asking"
        );
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `--keep-alive` and its lead times.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeepAliveFlags {
    /// Keep the cluster past its walltime: every job is replaced by a new one before it ends
    /// (a supervisor process on this login node submits them; `corral down` stops it), and
    /// the old job's workers drain before they leave.
    #[arg(long)]
    pub keep_alive: bool,
    /// With --keep-alive: SLURM signals a job this many seconds before its end, and its
    /// workers drain (default 300).
    #[arg(long, value_name = "SECS", requires = "keep_alive")]
    pub signal_lead: Option<u64>,
    /// With --keep-alive: a job's replacement is submitted this many seconds before its end
    /// (default twice the signal lead).
    #[arg(long, value_name = "SECS", requires = "keep_alive")]
    pub replace_lead: Option<u64>,
}

impl KeepAliveFlags {
    /// What the supervisor is to do for `spec`, checked against its walltime.
    pub fn supervise(&self, spec: &ClusterSpec) -> anyhow::Result<corral_core::model::Supervise> {
        let s = corral_core::model::Supervise {
            keep_alive: self.keep_alive,
            signal_lead_secs: self.signal_lead,
            replace_lead_secs: self.replace_lead,
            ..Default::default()
        };
        if let Some(r) = self.replace_lead
            && r < s.signal_lead_secs()
        {
            bail!(
                "--replace-lead {r} is shorter than the signal lead {} s: the old workers would drain before their replacement is even asked for",
                s.signal_lead_secs()
            );
        }
        let walltime = spec.walltime.minutes * 60;
        if s.keep_alive && s.replace_lead_secs() >= walltime {
            bail!(
                "--keep-alive replaces a job {} s before its end, but the walltime is only {} s: ask a longer --time or a shorter --replace-lead/--signal-lead",
                s.replace_lead_secs(),
                walltime
            );
        }
        Ok(s)
    }
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
        supervise: Default::default(),
        dask: None,
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

/// The request of a local cluster: workers × cores from the flags or the config's defaults.
pub fn local_spec(
    name: &str,
    flags: &SizeFlags,
    config: &corral_core::config::Config,
) -> anyhow::Result<ClusterSpec> {
    let workers = flags.workers.unwrap_or(config.defaults.workers);
    let cores = flags.cores.unwrap_or(config.defaults.cores);
    if workers == 0 || cores == 0 {
        bail!("--workers and --cores must be at least 1");
    }
    Ok(ClusterSpec {
        name: name.to_string(),
        workers,
        cores_per_worker: cores,
        mem_per_worker_mb: None,
        walltime: Walltime::from_days(1),
        partition: None,
        account: None,
        supervise: Default::default(),
        dask: None,
    })
}

/// What to say when a local cluster asks for more cores than this machine has.
pub fn local_fit_warning(spec: &ClusterSpec) -> Option<String> {
    use corral_core::backend::local_fit::{local_fit, machine_cores};
    let fit = local_fit(spec.workers, spec.cores_per_worker, machine_cores());
    (!fit.fits()).then(|| fit.words())
}

/// Starts a local cluster and follows it until every worker is connected; on failure what
/// was started is stopped again. Returns the cluster and how long it took.
pub async fn start_local(
    backends: &Backends,
    spec: &ClusterSpec,
    events: &Events,
) -> anyhow::Result<(Cluster, Duration)> {
    let backend = backends.local();
    let t0 = Instant::now();
    let mut cluster = backend.start(spec, events).await?;
    match backend.follow(&cluster, spec.workers, None, events).await {
        Ok(Ready::Up { .. }) => Ok((cluster, t0.elapsed())),
        Ok(other) => {
            let _ = backend
                .stop(&mut cluster, "corral (start failed)", &Events::none())
                .await;
            bail!("the local cluster did not become ready: {other:?}")
        }
        Err(e) => {
            let _ = backend
                .stop(&mut cluster, "corral (start failed)", &Events::none())
                .await;
            Err(e.into())
        }
    }
}

async fn run_local(
    args: UpArgs,
    ui: crate::app::runtime::Ui,
    backends: &Backends,
) -> anyhow::Result<ExitCode> {
    let config = corral_core::config::Config::load()?;
    if args.keep.keep_alive {
        bail!(
            "--keep-alive replaces SLURM jobs before their walltime; a local cluster has none (drop --local or --keep-alive)"
        );
    }
    if args.adapt.is_some() {
        bail!(
            "--adapt scales by SLURM jobs (a supervisor submits and cancels them); a local cluster has none: drop --local or --adapt, or scale by hand with `corral scale NAME --workers W`"
        );
    }
    let mut spec = local_spec(&args.name, &args.size, &config)?;
    spec.dask = args.dask.spec(&config).await?;
    if let Some(w) = local_fit_warning(&spec) {
        eprintln!("corral: warning: {w}");
    }
    let (workers, cores) = (spec.workers, spec.cores_per_worker);
    let (cluster, ready_after) = start_local(backends, &spec, &Events::none()).await?;
    let info = cluster.dir.read_coordinator()?;
    let Backend::Local {
        coordinator_pid,
        worker_pids,
        ..
    } = &cluster.record.backend
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
        ready_seconds: ready_after.as_secs_f64(),
        dir: cluster.dir.path().display().to_string(),
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
        if let Ok(d) = corral_core::dask::DaskFiles::of(&cluster.dir).read_scheduler() {
            println!(
                "  dask:   scheduler {} (TLS, client certificates only); eval \"$(corral dask-env {})\"",
                d.address, args.name
            );
        }
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
        crate::app::run(ui.options(crate::app::Start::Attach(args.name.clone()))).await?;
    }
    Ok(ExitCode::SUCCESS)
}
