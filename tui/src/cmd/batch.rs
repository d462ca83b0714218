//! `corral batch [sizing | --local | --here] -- CMD ARGS…`: fhdask's batch mode, done properly.
//! A cluster lives exactly as long as CMD: it is started (validated and submitted like
//! `corral up`, or local processes, or — `--here`, inside an sbatch script — a coordinator in
//! this process's node and `srun` workers in the job's own tasks), corral waits until its
//! workers (or `--min-workers`) are connected, runs CMD with the coordinator's address as `$1`
//! and `CORRAL_CLUSTER=<name>` in its environment, streams CMD's output (CMD writes to corral's
//! own stdout and stderr), releases the cluster when CMD ends — also when corral itself gets
//! Ctrl-C, SIGTERM or SIGHUP — and exits with CMD's exit status (128+n for a signal death).
//!
//! Exit statuses of corral's own, chosen as `env`, `timeout` and shells do, so a script can
//! tell them from CMD's: 125 the cluster could not be had (refused, timed out, failed to start;
//! CMD did not run), 126 CMD is not executable, 127 CMD was not found, 128+n corral was stopped
//! by signal n before CMD ran.
//!
//! Signals: CMD runs in its own process group, so corral decides what reaches it: a signal to
//! corral is passed on to CMD's whole group, and CMD gets [`GRACE`] to exit before SIGKILL. When
//! CMD's stdin would be the terminal it gets /dev/null instead (a background process group
//! reading the terminal would be stopped).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord, Stopped};
use corral_core::config::Config;
use corral_core::slurm::SlurmCli;
use corral_core::slurm::lifecycle;
use rustix::process::Signal;

use crate::cmd::up::{SizeFlags, parse_timeout, spec_from_flags};
use crate::local::{self, AgentExe, LocalSpec};
use crate::slurm_backend::{self, Ready};

/// corral batch could not give CMD a cluster; CMD did not run.
const EXIT_NO_CLUSTER: u8 = 125;
/// CMD exists but cannot be executed.
const EXIT_NOT_EXECUTABLE: u8 = 126;
/// CMD was not found.
const EXIT_NOT_FOUND: u8 = 127;
/// How long CMD may take to exit after a signal was passed on, before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// `--here`: how long the coordinator may take to listen.
const COORDINATOR_START: Duration = Duration::from_secs(30);
/// `--here`: how long the workers may take to connect when no `--timeout` is given.
const HERE_WORKERS_DEFAULT: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// Run the cluster as processes on this machine (no SLURM).
    #[arg(long, conflicts_with = "here")]
    pub local: bool,
    /// Inside an existing allocation (an sbatch script): start the coordinator on this node and
    /// one worker per task of the job with srun, e.g.
    /// `sbatch -n 32 -c 2 --time=1-0 --wrap 'corral batch --here -- ./job.sh'`.
    #[arg(long, conflicts_with_all = ["workers", "cores", "days", "time", "partition", "mem", "account"])]
    pub here: bool,
    /// The cluster's name (default: batch-<UTC time>-<random>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub size: SizeFlags,
    /// Run CMD once this many workers are connected (default: all of them).
    #[arg(long, value_name = "K")]
    pub min_workers: Option<u32>,
    /// Give up waiting for the workers after T (SLURM's time format, e.g. `30:00`; includes the
    /// time in the queue), release the allocation and exit 125. Default: wait (`--here`: 5
    /// minutes; a local cluster starts within 30 s or fails).
    #[arg(long, value_name = "T")]
    pub timeout: Option<String>,
    /// The command to run and its arguments, after `--`. It gets the coordinator's address as
    /// its first argument and CORRAL_CLUSTER=<name> in its environment.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// What the main thread waits for.
enum Event {
    /// corral got this signal.
    Signal(Signal),
    /// The SLURM head job is ready (or waiting ended otherwise).
    SlurmReady(anyhow::Result<Ready>),
    /// The local cluster started (or failed to).
    LocalStarted(Box<anyhow::Result<local::Started>>),
    /// `--here`: the workers connected (or not).
    HereReady(anyhow::Result<(u32, u32)>),
    /// CMD ended.
    Exited(std::io::Result<ExitStatus>),
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

/// Catches SIGINT, SIGTERM and SIGHUP from now on (they no longer kill corral) and posts them
/// as events, from a thread of its own.
fn catch_signals(tx: Sender<Event>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    // Registered here, before this returns, so no signal slips through in between.
    let (mut int, mut term, mut hup) = rt
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ))
        })
        .context("cannot catch signals")?;
    std::thread::Builder::new()
        .name("corral-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    let s = tokio::select! {
                        _ = int.recv() => Signal::INT,
                        _ = term.recv() => Signal::TERM,
                        _ = hup.recv() => Signal::HUP,
                    };
                    if tx.send(Event::Signal(s)).is_err() {
                        return;
                    }
                }
            });
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Runs `f` on a thread of its own and posts its result as an event.
fn in_background<T: Send + 'static>(
    tx: &Sender<Event>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
    wrap: fn(T) -> Event,
) -> anyhow::Result<()> {
    let tx = tx.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(wrap(f()));
        })
        .with_context(|| format!("cannot start the {name} thread"))?;
    Ok(())
}

/// `batch-20260131-123456-3fa9c1`: the UTC time to the second, and 24 random bits so that
/// batches started in the same second (an array of sbatch jobs) do not collide.
fn generated_name() -> String {
    use std::hash::{BuildHasher, Hasher};
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
    // RandomState is seeded randomly per process; pid and time make it differ between runs.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(now.as_nanos());
    format!("batch-{stamp}-{:06x}", h.finish() & 0xff_ffff)
}

/// A cluster batch started, and how to release it.
enum Held {
    Slurm {
        slurm: SlurmCli,
        dir: ClusterDir,
    },
    /// Processes this corral started (local, or `--here`), reaped after stopping.
    Processes {
        dir: ClusterDir,
        children: Vec<Child>,
    },
}

impl Held {
    fn dir(&self) -> &ClusterDir {
        match self {
            Held::Slurm { dir, .. } | Held::Processes { dir, .. } => dir,
        }
    }

    /// Stops the cluster and records `why` as how it ended; returns a summary in words.
    fn release(&mut self, why: &str) -> anyhow::Result<String> {
        match self {
            Held::Slurm { slurm, dir } => {
                let mut record = ClusterRecord::load(dir)?;
                local::block_on(slurm_backend::ask_shutdown(dir))?;
                let who = format!("corral batch ({why})");
                let core_hours = slurm_backend::cancel_jobs(slurm, dir, &mut record, &who)?;
                let ids = lifecycle::ClusterJobs::load(dir)
                    .map(|j| j.ids())
                    .unwrap_or_default();
                // wait_ready may have recorded its own view of the end first; ours says why.
                restate(
                    dir,
                    &format!(
                        "{who}: cancelled job{} {}, {core_hours:.2} core-hours",
                        if ids.len() == 1 { "" } else { "s" },
                        ids.iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )?;
                Ok(format!(
                    "allocation released: every job cancelled and gone from the queue, {core_hours:.2} core-hours used"
                ))
            }
            Held::Processes { dir, children } => {
                let mut record = ClusterRecord::load(dir)?;
                let report = local::block_on(local::stop(dir, &mut record))??;
                for c in children.iter_mut() {
                    // Reap what exited; one still running (reported below) is not waited for.
                    let _ = c.try_wait();
                }
                restate(
                    dir,
                    &format!(
                        "corral batch ({why}): {} processes exited when asked, {} after SIGTERM, {} killed",
                        report.exited, report.terminated, report.killed
                    ),
                )?;
                if !report.left.is_empty() {
                    bail!(
                        "processes {:?} of cluster {} still run after SIGKILL",
                        report.left,
                        dir.name()
                    );
                }
                Ok(format!(
                    "cluster stopped: {} process{} exited",
                    report.exited + report.terminated + report.killed,
                    if report.exited + report.terminated + report.killed == 1 {
                        ""
                    } else {
                        "es"
                    }
                ))
            }
        }
    }
}

/// Records how a cluster ended in `spec.json`, replacing what the stop wrote in general words.
fn restate(dir: &ClusterDir, how: &str) -> anyhow::Result<()> {
    let mut record = ClusterRecord::load(dir)?;
    record.stopped = Some(Stopped {
        at_unix: record
            .stopped
            .as_ref()
            .map_or_else(lifecycle::now_unix, |s| s.at_unix),
        how: how.to_string(),
    });
    record.save(dir)?;
    Ok(())
}

/// Releases `held` and says how it went on stderr; a release that fails is reported loudly
/// (it may leave an allocation burning core-hours) with the command that finishes the job.
fn release_and_say(held: &mut Held, why: &str) {
    let name = held.dir().name().to_string();
    match held.release(why) {
        Ok(summary) => eprintln!("corral batch: cluster {name}: {summary}"),
        Err(e) => eprintln!(
            "corral: error: releasing cluster {name} failed: {e:#}\n  finish it with `corral down {name}`"
        ),
    }
}

pub fn run(args: BatchArgs) -> anyhow::Result<ExitCode> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            crate::report::error(&e);
            Ok(ExitCode::from(EXIT_NO_CLUSTER))
        }
    }
}

fn run_inner(args: BatchArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let name = args.name.clone().unwrap_or_else(generated_name);
    corral_core::cluster_dir::validate_name(&name)?;
    if ClusterDir::open(&name).is_ok() {
        bail!("a cluster named {name:?} already exists; choose another --name (see `corral ls`)");
    }
    if args.min_workers == Some(0) {
        bail!("--min-workers must be at least 1");
    }
    let timeout = parse_timeout(args.timeout.as_deref())?;
    let (tx, rx) = channel::<Event>();
    if args.here {
        return run_here(&args, &config, &name, timeout, tx, rx);
    }
    if args.local {
        return run_local(&args, &config, &name, timeout, tx, rx);
    }
    run_slurm(&args, &config, &name, timeout, tx, rx)
}

/// What a wait for the cluster ended with, before CMD runs.
enum Waited<T> {
    Ready(T),
    Signal(Signal),
}

fn run_slurm(
    args: &BatchArgs,
    config: &Config,
    name: &str,
    timeout: Option<Duration>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
) -> anyhow::Result<ExitCode> {
    let flags = &args.size;
    let spec = spec_from_flags(name, flags, config)?;
    let want = min_workers(args.min_workers, spec.workers)?;
    let slurm = slurm_backend::client(config);
    let agent = slurm_backend::agent_words(&local::find_agent()?);
    let dir_path = corral_core::paths::clusters_dir().join(name);
    let checked = lifecycle::check(&slurm, &spec, &dir_path, &agent)?;
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
    eprintln!("{}", slurm_backend::security_notice(name, &dir_path));
    // From here on a signal must release what was submitted instead of killing corral.
    catch_signals(tx.clone())?;
    let (dir, job) = slurm_backend::create_and_submit(&slurm, &spec, &agent)?;
    eprintln!(
        "corral batch: submitted job {} (corral-{name}): {} worker{} × {} core{} for {}; CMD runs once {want} {} connected",
        job.id,
        spec.workers,
        if spec.workers == 1 { "" } else { "s" },
        spec.cores_per_worker,
        if spec.cores_per_worker == 1 { "" } else { "s" },
        spec.walltime,
        if want == 1 { "is" } else { "are" }
    );
    let mut held = Held::Slurm {
        slurm: slurm.clone(),
        dir: dir.clone(),
    };
    let (wdir, wspec, head) = (dir.clone(), spec.clone(), job.id);
    let wslurm = slurm.clone();
    in_background(
        &tx,
        "corral-wait",
        move || slurm_backend::wait_ready(&wslurm, &wdir, &wspec, head, want, true, timeout),
        Event::SlurmReady,
    )?;
    let waited = loop {
        match rx.recv() {
            Ok(Event::SlurmReady(Ok(Ready::Up { workers, cores, .. }))) => {
                break Waited::Ready((workers, cores));
            }
            Ok(Event::SlurmReady(Ok(Ready::NotYet))) => {
                release_and_say(&mut held, "the workers were not connected in time");
                return no_cluster(format!(
                    "cluster {name} was not ready within {}; CMD did not run",
                    args.timeout.as_deref().unwrap_or("the timeout")
                ));
            }
            Ok(Event::SlurmReady(Ok(Ready::NeverStarts))) => {
                release_and_say(&mut held, "the job could never start");
                return no_cluster(format!(
                    "job {head} of cluster {name} could never start as submitted; CMD did not run"
                ));
            }
            Ok(Event::SlurmReady(Err(e))) => {
                release_and_say(&mut held, "the cluster failed to start");
                return no_cluster(format!("{e:#}\nCMD did not run"));
            }
            Ok(Event::Signal(s)) => break Waited::Signal(s),
            Ok(_) => {}
            Err(_) => bail!("internal: the waiting thread vanished"),
        }
    };
    let (workers, cores) = match waited {
        Waited::Ready(wc) => wc,
        Waited::Signal(s) => return interrupted(&mut held, s),
    };
    run_command(args, &mut held, name, workers, cores, &tx, &rx)
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

fn no_cluster(msg: String) -> anyhow::Result<ExitCode> {
    eprintln!("corral: error: {msg}");
    Ok(ExitCode::from(EXIT_NO_CLUSTER))
}

/// corral was told to stop before CMD ran: release and exit as the signal would have.
fn interrupted(held: &mut Held, s: Signal) -> anyhow::Result<ExitCode> {
    eprintln!(
        "corral batch: {} before CMD ran; releasing the cluster",
        signal_name(s)
    );
    release_and_say(held, &format!("{} before CMD ran", signal_name(s)));
    Ok(ExitCode::from(signal_exit(s.as_raw())))
}

fn run_local(
    args: &BatchArgs,
    config: &Config,
    name: &str,
    timeout: Option<Duration>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
) -> anyhow::Result<ExitCode> {
    let workers = args.size.workers.unwrap_or(config.defaults.workers);
    let cores = args.size.cores.unwrap_or(config.defaults.cores);
    if workers == 0 || cores == 0 {
        bail!("--workers and --cores must be at least 1");
    }
    // A local cluster starts every worker; --min-workers is checked for sense only.
    min_workers(args.min_workers, workers)?;
    catch_signals(tx.clone())?;
    let spec = LocalSpec {
        name: name.to_string(),
        workers,
        cores,
        env: Vec::new(),
    };
    let started_at = Instant::now();
    in_background(
        &tx,
        "corral-start",
        move || Box::new(local::block_on(local::start(&spec)).and_then(|r| r)),
        Event::LocalStarted,
    )?;
    // The start is always waited for — it is what knows the processes to stop — and a signal
    // that came meanwhile is acted on right after.
    let mut signalled = None;
    let started = loop {
        match rx.recv() {
            Ok(Event::LocalStarted(r)) => match *r {
                Ok(s) => break s,
                Err(e) => {
                    return no_cluster(format!(
                        "the local cluster {name} did not start (whatever had started was stopped): {e:#}"
                    ));
                }
            },
            Ok(Event::Signal(s)) => {
                signalled.get_or_insert(s);
            }
            Ok(_) => {}
            Err(_) => bail!("internal: the start thread vanished"),
        }
    };
    let mut held = Held::Processes {
        dir: started.dir,
        children: started.children,
    };
    if let Some(s) = signalled {
        return interrupted(&mut held, s);
    }
    if let Some(t) = timeout
        && started_at.elapsed() > t
    {
        release_and_say(&mut held, "the workers were not connected in time");
        return no_cluster(format!(
            "cluster {name} was not ready within {t:?}; CMD did not run"
        ));
    }
    run_command(args, &mut held, name, workers, workers * cores, &tx, &rx)
}

/// `srun`, from the configured SLURM directory or `PATH`.
fn srun_program(config: &Config) -> PathBuf {
    if config.slurm.bin_dir.is_empty() {
        PathBuf::from("srun")
    } else {
        Path::new(&config.slurm.bin_dir).join("srun")
    }
}

fn env_u32(var: &str) -> anyhow::Result<Option<u32>> {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .map(Some)
            .with_context(|| format!("{var}={v:?} is not a number")),
        Err(_) => Ok(None),
    }
}

/// Starts an agent role detached from the terminal, its output in the cluster's `logs/`.
fn spawn_agent(
    program: &Path,
    prefix: &[String],
    args: &[&str],
    dir: &ClusterDir,
    log: &str,
) -> anyhow::Result<Child> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.logs_dir().join(log);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open the log {}", path.display()))?;
    let err = out
        .try_clone()
        .context("cannot duplicate a log file handle")?;
    Command::new(program)
        .args(prefix)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C in the terminal reaches corral only, which stops
        // the cluster in order.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

fn run_here(
    args: &BatchArgs,
    config: &Config,
    name: &str,
    timeout: Option<Duration>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
) -> anyhow::Result<ExitCode> {
    let Ok(job) = std::env::var("SLURM_JOB_ID") else {
        bail!(
            "--here runs inside a SLURM allocation, and SLURM_JOB_ID is not set; use it in a job, e.g. \
             sbatch -n 32 -c 2 --time=1-0 --wrap 'corral batch --here -- ./job.sh' (or drop --here to \
             have corral batch allocate)"
        );
    };
    let tasks = env_u32("SLURM_NTASKS")?.unwrap_or(1).max(1);
    let cpus = env_u32("SLURM_CPUS_PER_TASK")?.unwrap_or(1).max(1);
    let want = min_workers(args.min_workers, tasks)?;
    let agent: AgentExe = local::find_agent()?;
    catch_signals(tx.clone())?;
    let dir = ClusterDir::create(name)?;
    dir.create_secret()?;
    let mut record = ClusterRecord {
        name: name.to_string(),
        workers: tasks,
        cores_per_worker: cpus,
        created_at_unix: lifecycle::now_unix(),
        // The processes are this corral's children, stopped like a local cluster's; the
        // allocation is the enclosing job's, never cancelled by corral.
        backend: Backend::Local {
            agent: agent.program.clone(),
            coordinator_pid: 0,
            worker_pids: Vec::new(),
        },
        stopped: None,
    };
    record.save(&dir)?;
    let mut held = Held::Processes {
        dir: dir.clone(),
        children: Vec::new(),
    };
    let started = start_here(
        &agent,
        &srun_program(config),
        &dir,
        &mut record,
        tasks,
        cpus,
        &mut held,
    );
    if let Err(e) = started {
        release_and_say(&mut held, "the cluster failed to start");
        return no_cluster(format!("{e:#}\nCMD did not run"));
    }
    eprintln!(
        "corral batch: cluster {name} in job {job}: coordinator on this node, {tasks} workers × {cpus} cores via srun; \
         CMD runs once {want} are connected"
    );
    let limit = timeout.unwrap_or(HERE_WORKERS_DEFAULT);
    let pids: Vec<u32> = record.pids();
    let wdir = dir.clone();
    in_background(
        &tx,
        "corral-wait",
        move || local::block_on(wait_workers(wdir, want, limit, pids)).and_then(|r| r),
        Event::HereReady,
    )?;
    let waited = loop {
        match rx.recv() {
            Ok(Event::HereReady(Ok(wc))) => break Waited::Ready(wc),
            Ok(Event::HereReady(Err(e))) => {
                release_and_say(&mut held, "the workers did not connect");
                return no_cluster(format!("{e:#}\nCMD did not run"));
            }
            Ok(Event::Signal(s)) => break Waited::Signal(s),
            Ok(_) => {}
            Err(_) => bail!("internal: the waiting thread vanished"),
        }
    };
    let (workers, cores) = match waited {
        Waited::Ready(wc) => wc,
        Waited::Signal(s) => return interrupted(&mut held, s),
    };
    run_command(args, &mut held, name, workers, cores, &tx, &rx)
}

/// `--here`: the coordinator in this process's node, then one worker per task of the job via
/// srun (`-c` explicit: srun in SLURM 22.05 ignores SLURM_CPUS_PER_TASK).
fn start_here(
    agent: &AgentExe,
    srun: &Path,
    dir: &ClusterDir,
    record: &mut ClusterRecord,
    tasks: u32,
    cpus: u32,
    held: &mut Held,
) -> anyhow::Result<()> {
    let Held::Processes { children, .. } = held else {
        bail!("internal: --here holds processes");
    };
    let path = dir.path().to_string_lossy().into_owned();
    let coordinator = spawn_agent(
        &agent.program,
        &agent.prefix,
        &["coordinator", "--cluster", &path],
        dir,
        "coordinator.log",
    )?;
    let coordinator_pid = coordinator.id();
    children.push(coordinator);
    record.backend = Backend::Local {
        agent: agent.program.clone(),
        coordinator_pid,
        worker_pids: Vec::new(),
    };
    record.save(dir)?;
    let log = dir.logs_dir().join("coordinator.log");
    let deadline = Instant::now() + COORDINATOR_START;
    while !dir.coordinator_file().exists() {
        if let Some(status) = children[0].try_wait()? {
            bail!(
                "the coordinator exited ({status}) before it listened:\n{}",
                local::log_tail(&log, 10)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the coordinator did not listen within {COORDINATOR_START:?}; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ntasks, cpt) = (
        format!("--ntasks={tasks}"),
        format!("--cpus-per-task={cpus}"),
    );
    let mut srun_args: Vec<String> = vec![ntasks, cpt, "--kill-on-bad-exit=0".into()];
    srun_args.push(agent.program.display().to_string());
    srun_args.extend(agent.prefix.iter().cloned());
    srun_args.extend(["worker".into(), "--cluster".into(), path.clone()]);
    let words: Vec<&str> = srun_args.iter().map(String::as_str).collect();
    let workers = spawn_agent(srun, &[], &words, dir, "workers.log")
        .with_context(|| format!("cannot run {} to start the workers", srun.display()))?;
    let srun_pid = workers.id();
    children.push(workers);
    record.backend = Backend::Local {
        agent: agent.program.clone(),
        coordinator_pid,
        worker_pids: vec![srun_pid],
    };
    record.save(dir)?;
    Ok(())
}

/// `--here`: waits until `want` workers are connected, failing when the coordinator or the
/// srun step ends first, or after `limit`. Returns the live workers and cores.
async fn wait_workers(
    dir: ClusterDir,
    want: u32,
    limit: Duration,
    pids: Vec<u32>,
) -> anyhow::Result<(u32, u32)> {
    let deadline = tokio::time::Instant::now() + limit;
    let client = tokio::time::timeout_at(deadline, ClusterClient::connect(&dir))
        .await
        .map_err(|_| anyhow::anyhow!("the coordinator did not answer within {limit:?}"))?
        .context("cannot connect to the coordinator")?;
    let mut seen = 0;
    loop {
        let snap = tokio::time::timeout_at(deadline, client.snapshot())
            .await
            .map_err(|_| anyhow::anyhow!("the coordinator did not answer within {limit:?}"))??;
        let live = snap.live_workers().count() as u32;
        if live != seen {
            eprintln!("corral batch: workers {live}/{want} connected");
            seen = live;
        }
        if live >= want {
            return Ok((live, snap.cores));
        }
        if let Some(gone) = pids
            .iter()
            .find(|p| !corral_core::procstat::runs_for(**p, dir.path()))
        {
            bail!(
                "process {gone} of the cluster ended before {want} workers connected ({live} did); see {}",
                dir.logs_dir().display()
            );
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "only {live} of {want} workers connected within {limit:?}; see {}",
                dir.logs_dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Shells: `sh -c STRING [NAME [ARGS…]]` gets the address as the string's `$1`, `sh FILE
/// [ARGS…]` as the file's.
const SHELLS: [&str; 7] = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"];
/// Interpreters: `python [OPTIONS] SCRIPT [ARGS…]` gets the address as the script's first
/// argument (also after `-c CODE`, `-m MODULE`, `-e CODE`).
const INTERPRETERS: [&str; 8] = [
    "python", "python3", "Rscript", "perl", "ruby", "node", "julia", "pypy3",
];

/// CMD's arguments with the coordinator's address as `$1` of what runs: `CMD ADDRESS ARGS…`
/// for a program or script; for a shell or an interpreter CMD, the first argument of the
/// script or code it is given (`sh -c STRING NAME ADDRESS ARGS…`, NAME defaulting to the
/// shell's name; `python job.py ADDRESS ARGS…`) — an address in front would be taken for the
/// script file to run.
fn arguments(program: &OsString, args: &[OsString], address: &str) -> Vec<OsString> {
    let addr = OsString::from(address);
    let base = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let insert_at = |at: usize| -> Vec<OsString> {
        let mut out = args.to_vec();
        out.insert(at.min(out.len()), addr.clone());
        out
    };
    if SHELLS.contains(&base) {
        return match shell_script(args) {
            Script::String(i) => {
                if args.len() <= i + 1 {
                    // `sh -c` without its string: the shell will say so.
                    return args.to_vec();
                }
                let mut out: Vec<OsString> = args[..=i + 1].to_vec();
                out.push(
                    args.get(i + 2)
                        .cloned()
                        .unwrap_or_else(|| OsString::from(base)),
                );
                out.push(addr);
                out.extend(args.iter().skip(i + 3).cloned());
                out
            }
            Script::File(i) => insert_at(i + 1),
            // Commands from stdin: `-s` makes the words after it the positional parameters.
            Script::Stdin => {
                let mut out = args.to_vec();
                out.extend([OsString::from("-s"), addr]);
                out
            }
        };
    }
    if INTERPRETERS.contains(&base) {
        return insert_at(interpreter_script_end(args));
    }
    insert_at(0)
}

/// What a shell's arguments make it run.
#[derive(Debug, PartialEq, Eq)]
enum Script {
    /// `-c` (alone or in a cluster like `-ec`) at this index; the string follows it.
    String(usize),
    /// A script file at this index.
    File(usize),
    /// Neither: commands from stdin.
    Stdin,
}

fn shell_script(args: &[OsString]) -> Script {
    let mut takes_value = false;
    for (i, a) in args.iter().enumerate() {
        if takes_value {
            takes_value = false;
            continue;
        }
        let a = a.to_string_lossy();
        if a == "--" {
            return if i + 1 < args.len() {
                Script::File(i + 1)
            } else {
                Script::Stdin
            };
        }
        let Some(flags) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) else {
            return Script::File(i);
        };
        if a.starts_with('-') && !flags.starts_with('-') && flags.contains('c') {
            return Script::String(i);
        }
        // `-o pipefail`, `-O extglob`: the next word is the option's value.
        takes_value = flags == "o" || flags == "O";
    }
    Script::Stdin
}

/// Where an interpreter's script (or `-c`/`-m`/`-e` code) ends: the address goes there.
fn interpreter_script_end(args: &[OsString]) -> usize {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let a = a.to_string_lossy();
        match a.as_ref() {
            "-c" | "-m" | "-e" | "-E" => return i + 2,
            // Options whose value is the next word.
            "-W" | "-X" | "-I" | "-r" => i += 2,
            _ if a.starts_with('-') => i += 1,
            _ => return i + 1,
        }
    }
    args.len()
}

/// When `corral` is not on `PATH` (run by its full path, or from a build directory), `PATH`
/// with this executable's directory appended, so CMD's `corral query "$CORRAL_CLUSTER"` works.
/// An installed corral is left alone (appending never shadows anything either).
fn path_with_corral() -> Option<OsString> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?.to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if dirs.iter().any(|d| d.join("corral").is_file()) {
        return None;
    }
    dirs.push(dir);
    std::env::join_paths(dirs).ok()
}

/// What the user's command line names.
fn describe_command(words: &[OsString]) -> String {
    words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs CMD on the ready cluster, releases the cluster when it ends, and returns its status.
fn run_command(
    args: &BatchArgs,
    held: &mut Held,
    name: &str,
    workers: u32,
    cores: u32,
    tx: &Sender<Event>,
    rx: &Receiver<Event>,
) -> anyhow::Result<ExitCode> {
    let dir = held.dir().clone();
    let address = match dir.read_coordinator() {
        Ok(info) => info.socket_addr().to_string(),
        Err(e) => {
            release_and_say(held, "the coordinator vanished");
            return no_cluster(format!("cannot read the coordinator's address: {e}"));
        }
    };
    let Some((program, rest)) = args.command.split_first() else {
        release_and_say(held, "no command was given");
        return no_cluster("no command after `--`".into());
    };
    let shown = describe_command(&args.command);
    eprintln!(
        "corral batch: cluster {name} is up ({workers} worker{}, {cores} core{}) at {address}; running {shown}",
        if workers == 1 { "" } else { "s" },
        if cores == 1 { "" } else { "s" },
    );
    let mut cmd = Command::new(program);
    cmd.args(arguments(program, rest, &address))
        .env("CORRAL_CLUSTER", name)
        .process_group(0);
    // The state directory CMD's `corral query "$CORRAL_CLUSTER"` must find: the one this
    // corral used, whatever set it.
    if let Some(state_home) = corral_core::paths::state_dir().parent() {
        cmd.env("XDG_STATE_HOME", state_home);
    }
    if let Some(path) = path_with_corral() {
        cmd.env("PATH", path);
    }
    if std::io::stdin().is_terminal() {
        cmd.stdin(Stdio::null());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (EXIT_NOT_FOUND, "command not found"),
                std::io::ErrorKind::PermissionDenied => {
                    (EXIT_NOT_EXECUTABLE, "permission denied (not executable)")
                }
                _ => (EXIT_NOT_EXECUTABLE, "cannot be run"),
            };
            eprintln!(
                "corral: error: cannot run {:?}: {what} ({e})",
                program.to_string_lossy()
            );
            release_and_say(held, &format!("CMD {what}"));
            return Ok(ExitCode::from(code));
        }
    };
    let pid = child.id();
    let group = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    let to_group = |s: Signal| {
        if let Some(g) = group {
            // Gone already is fine: nothing left to signal.
            let _ = rustix::process::kill_process_group(g, s);
        }
    };
    let wtx = tx.clone();
    std::thread::Builder::new()
        .name("corral-cmd".into())
        .spawn(move || {
            let _ = wtx.send(Event::Exited(child.wait()));
        })
        .context("cannot start the thread that waits for CMD")?;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        let ev = match kill_at {
            Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "corral batch: CMD did not exit within {GRACE:?} of the signal; killing it"
                    );
                    to_group(Signal::KILL);
                    kill_at = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => bail!("internal: the CMD thread vanished"),
            },
            None => rx
                .recv()
                .map_err(|_| anyhow::anyhow!("internal: the CMD thread vanished"))?,
        };
        match ev {
            Event::Exited(r) => break r,
            Event::Signal(s) => {
                eprintln!(
                    "corral batch: {} — passing it on to CMD, then releasing the cluster",
                    signal_name(s)
                );
                to_group(s);
                kill_at.get_or_insert(Instant::now() + GRACE);
            }
            _ => {}
        }
    };
    // CMD's background leftovers end with it, as a batch script's do when its job ends.
    to_group(Signal::TERM);
    let (code, how) = match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => (
                u8::try_from(c).unwrap_or(255),
                format!("CMD exited with {c}"),
            ),
            (None, Some(n)) => (signal_exit(n), format!("CMD was killed by signal {n}")),
            (None, None) => (255, format!("CMD ended: {st}")),
        },
        Err(e) => (255, format!("cannot wait for CMD: {e}")),
    };
    eprintln!("corral batch: {how}; releasing cluster {name}");
    release_and_say(held, &how);
    Ok(ExitCode::from(code))
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

    fn argv(words: &[&str]) -> Vec<String> {
        let all: Vec<OsString> = words.iter().map(OsString::from).collect();
        arguments(&all[0], &all[1..], "10.0.0.1:4242")
            .into_iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_address_is_dollar_one() {
        assert_eq!(argv(&["./job.sh"]), ["10.0.0.1:4242"]);
        assert_eq!(argv(&["./job.sh", "a", "b"]), ["10.0.0.1:4242", "a", "b"]);
        // A shell's command string gets it as its $1.
        assert_eq!(
            argv(&["sh", "-c", "echo $1"]),
            ["-c", "echo $1", "sh", "10.0.0.1:4242"]
        );
        assert_eq!(
            argv(&["/bin/bash", "-o", "pipefail", "-ec", "x", "me", "a"]),
            ["-o", "pipefail", "-ec", "x", "me", "10.0.0.1:4242", "a"]
        );
        // A shell or an interpreter running a script: the script's $1.
        assert_eq!(
            argv(&["bash", "-x", "job.sh", "a"]),
            ["-x", "job.sh", "10.0.0.1:4242", "a"]
        );
        assert_eq!(
            argv(&["python3", "-u", "taxi.py", "--n", "2"]),
            ["-u", "taxi.py", "10.0.0.1:4242", "--n", "2"]
        );
        assert_eq!(
            argv(&["python3", "-m", "taxi", "x"]),
            ["-m", "taxi", "10.0.0.1:4242", "x"]
        );
        assert_eq!(argv(&["sh", "-c"]), ["-c"]);
        assert_eq!(argv(&["sh", "-e"]), ["-e", "-s", "10.0.0.1:4242"]);
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
