//! The SLURM backend of the cluster commands: `corral up` (validate, show the script and the
//! security notice, submit, follow: pending reason in plain words → running → workers k/N),
//! `corral scale`, and the SLURM half of `status`, `ls` and `down`.
//!
//! SLURM is only ever reached through [`corral_core::slurm::Slurm`]; the cluster's jobs are
//! recorded in its directory (`jobs.json`), so every later `corral` finds them. Polling costs
//! one `squeue --me` per [`POLL`] for all the jobs being followed.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord, Stopped};
use corral_core::config::Config;
use corral_core::model::{ClusterSpec, JobId};
use corral_core::slurm::lifecycle::{self, ClusterJobs, JobView};
use corral_core::slurm::template::{self, JobRole};
use corral_core::slurm::validate::Field;
use corral_core::slurm::{Slurm, SlurmCli, reason};

use crate::local::{self, AgentExe};

/// How often SLURM is asked about the jobs being followed.
pub const POLL: Duration = Duration::from_secs(2);
/// How often the coordinator is asked how many workers are connected.
const WORKER_POLL: Duration = Duration::from_millis(250);
/// Exit status of `corral up --timeout` when the cluster was not ready in time (EX_TEMPFAIL):
/// the job stays queued, so scripts can tell this apart from a failure.
pub const EXIT_NOT_READY: u8 = 75;

/// The site's SLURM as configured.
pub fn client(config: &Config) -> SlurmCli {
    SlurmCli::new(&config.slurm)
}

/// The agent command as a job script runs it (program and the words before the role).
pub fn agent_words(agent: &AgentExe) -> Vec<String> {
    std::iter::once(agent.program.display().to_string())
        .chain(agent.prefix.iter().cloned())
        .collect()
}

/// What `corral up` (without `--local`) was asked to do.
pub struct UpRequest {
    pub spec: ClusterSpec,
    pub yes: bool,
    pub no_wait: bool,
    pub timeout: Option<Duration>,
    /// Print one JSON object on stdout at the end (the rest goes to stderr).
    pub json: bool,
    /// Once submitted, hand over to the terminal UI (attached to the new cluster: pending,
    /// then the dashboard) instead of following the job here in print.
    pub tui: Option<crate::app::Options>,
}

/// `corral up` on SLURM.
pub fn up(req: UpRequest) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let slurm = client(&config);
    let spec = req.spec;
    if ClusterDir::open(&spec.name).is_ok() {
        bail!(
            "a cluster named {:?} already exists; choose another --name (see `corral ls`)",
            spec.name
        );
    }
    let basic = corral_core::slurm::validate::basic_problems(&spec);
    if !basic.is_empty() {
        eprintln!("corral: the request cannot work, nothing was submitted:");
        for p in &basic {
            eprintln!("  ✗ {}: {}", field_name(p.field), p.message);
        }
        return Ok(ExitCode::from(2));
    }
    let agent = agent_words(&local::find_agent()?);
    let dir_path = corral_core::paths::clusters_dir().join(&spec.name);
    let checked = lifecycle::check(&slurm, &spec, &dir_path, &agent)?;
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
    let partition = verdict.partition.clone().unwrap_or_default();
    let script = template::render(&spec, JobRole::Head, spec.workers, &dir_path, &agent)?;
    // With --json, stdout carries one JSON object at the end; everything a person reads goes
    // to stderr.
    let say = |text: String| {
        if req.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    say("The job script corral will submit:\n".into());
    for line in script.lines() {
        say(format!("    {line}"));
    }
    say(String::new());
    say(security_notice(&spec.name, &dir_path));
    say(match &checked.estimate {
        Some(e) => format!(
            "SLURM estimates it starts at {} on {} ({} CPUs, partition {}).",
            e.start, e.nodes, e.processors, e.partition
        ),
        None => "SLURM gave no start estimate.".into(),
    });
    if !req.yes
        && !confirm(&format!(
            "Submit {} workers × {} cores for {} on partition {partition}?",
            spec.workers, spec.cores_per_worker, spec.walltime
        ))?
    {
        say("Not submitted.".into());
        return Ok(ExitCode::SUCCESS);
    }

    let (dir, job) = create_and_submit(&slurm, &spec, &agent)?;
    say(format!("Submitted job {} (corral-{}).", job.id, spec.name));
    let summary = |state: &str, workers: u32, cores: u32, ready: Option<f64>| {
        serde_json::json!({
            "name": spec.name,
            "backend": "slurm",
            "state": state,
            "job": job.id,
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
    if let Some(opts) = req.tui {
        crate::app::run(opts)?;
        println!(
            "Cluster {0} keeps running: `corral attach {0}` shows it again, `corral down {0}` stops it.",
            spec.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    if req.no_wait {
        if req.json {
            println!("{}", summary("submitted", 0, 0, None));
        }
        say(format!(
            "Follow it with `corral status {0}`; stop it with `corral down {0}`.",
            spec.name
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let ready = wait_ready(
        &slurm,
        &dir,
        &spec,
        job.id,
        spec.workers,
        req.yes,
        req.timeout,
    )?;
    if req.json {
        let s = match &ready {
            Ready::Up {
                workers,
                cores,
                after,
            } => summary("running", *workers, *cores, Some(after.as_secs_f64())),
            Ready::NotYet => summary("pending", 0, 0, None),
            Ready::NeverStarts => summary("never_starts", 0, 0, None),
        };
        println!("{s}");
    }
    match ready {
        Ready::Up {
            workers,
            cores,
            after,
        } => {
            let info = dir.read_coordinator()?;
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
        Ready::NotYet => Ok(ExitCode::from(EXIT_NOT_READY)),
        Ready::NeverStarts => Ok(ExitCode::FAILURE),
    }
}

/// Creates the cluster directory (0700, secret 0600, `spec.json`) and submits the head job:
/// the one way a SLURM cluster comes to exist, for `corral up` and the TUI alike.
pub fn create_and_submit(
    slurm: &dyn Slurm,
    spec: &ClusterSpec,
    agent: &[String],
) -> anyhow::Result<(ClusterDir, lifecycle::JobRecord)> {
    let dir = ClusterDir::create(&spec.name)?;
    dir.create_secret()?;
    let record = ClusterRecord {
        name: spec.name.clone(),
        workers: spec.workers,
        cores_per_worker: spec.cores_per_worker,
        created_at_unix: lifecycle::now_unix(),
        backend: Backend::Slurm {
            agent: agent.to_vec(),
            spec: spec.clone(),
        },
        stopped: None,
    };
    record.save(&dir)?;
    let job = lifecycle::submit(slurm, spec, JobRole::Head, spec.workers, &dir, agent)?;
    Ok((dir, job))
}

/// How waiting for a cluster ended (a job that ended or a coordinator that failed is an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// `want` workers are connected.
    Up {
        workers: u32,
        cores: u32,
        after: Duration,
    },
    /// The timeout passed; the job stays queued.
    NotYet,
    /// The job could never start; it was cancelled (or left, if the user said so).
    NeverStarts,
}

/// Follows the head job, printing its progress, until all `want` workers are connected, the job
/// ends, or `timeout`.
pub fn wait_ready(
    slurm: &dyn Slurm,
    dir: &ClusterDir,
    spec: &ClusterSpec,
    head: JobId,
    want: u32,
    yes: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<Ready> {
    let started = Instant::now();
    let mut last_line = String::new();
    let mut say = |line: String| {
        if line != last_line {
            // Progress is diagnostics: stdout stays for what a script might read (batch
            // mode's command writes there too).
            eprintln!("{line}");
            last_line = line;
        }
    };
    let mut next_slurm = Instant::now();
    let mut view: Option<JobView> = None;
    let mut running_since: Option<Instant> = None;
    let mut partitions = Vec::new();
    let mut counter = WorkerCount::new()?;
    loop {
        if let Some(t) = timeout
            && started.elapsed() > t
        {
            let state = view
                .as_ref()
                .map_or("PENDING", |v| v.state.as_str())
                .to_lowercase();
            eprintln!(
                "corral: the cluster is not ready after {t:?} (job {head} is {state}); the job stays queued. \
                 Follow it with `corral status {0}`, stop it with `corral down {0}`.",
                spec.name
            );
            return Ok(Ready::NotYet);
        }
        // The coordinator writes coordinator.json the moment it listens, often before the next
        // squeue would say RUNNING: asking it directly saves up to a poll interval.
        if dir.coordinator_file().exists()
            && let Some((n, cores)) = counter.get(dir)
        {
            if running_since.is_none() {
                running_since = Some(Instant::now());
                eprintln!("running (job {head}); the coordinator listens");
            }
            say(format!("workers {n}/{want} connected"));
            if n >= want {
                return Ok(Ready::Up {
                    workers: n,
                    cores,
                    after: started.elapsed(),
                });
            }
        }
        let mut refreshed = false;
        if Instant::now() >= next_slurm {
            next_slurm = Instant::now() + POLL;
            let views = with_retry(|| lifecycle::job_views(slurm, &[head]))?;
            view = views.get(&head).cloned();
            refreshed = true;
        }
        let Some(v) = view.clone() else {
            std::thread::sleep(WORKER_POLL);
            continue;
        };
        match v.state.as_str() {
            "PENDING" if !refreshed => std::thread::sleep(WORKER_POLL),
            "PENDING" => {
                // Only with a fresh squeue answer (every POLL), and the nodes only when CPUs
                // are what it waits for: what would fit now depends on them.
                if partitions.is_empty() {
                    partitions = slurm.partitions().unwrap_or_default();
                }
                let nodes = if v.reason == "Resources" {
                    slurm.nodes().unwrap_or_default()
                } else {
                    Vec::new()
                };
                let part = partitions.iter().find(|p| {
                    Some(&p.name) == spec.partition.as_ref()
                        || (spec.partition.is_none() && p.is_default)
                });
                say(lifecycle::pending_message(&v.reason, spec, part, &nodes));
                if reason::explain(&v.reason).never_starts {
                    if yes
                        || confirm(&format!(
                            "Job {head} can never start as submitted. Cancel it?"
                        ))?
                    {
                        lifecycle::cancel_and_wait(slurm, &[head], Duration::from_secs(60))?;
                        mark_stopped(dir, &format!("cancelled: could never start ({})", v.reason))?;
                        eprintln!("corral: job {head} cancelled; nothing is left queued.");
                    } else {
                        eprintln!(
                            "corral: job {head} stays queued; `corral down {}` removes it.",
                            spec.name
                        );
                    }
                    return Ok(Ready::NeverStarts);
                }
                std::thread::sleep(WORKER_POLL);
            }
            "RUNNING" | "CONFIGURING" => {
                if running_since.is_none() {
                    running_since = Some(Instant::now());
                    eprintln!("running on {} (job {head})", v.node_list);
                }
                // Connected workers are counted above, once the coordinator listens.
                if !dir.coordinator_file().exists() {
                    say("waiting for the coordinator to listen".into());
                    // A coordinator that cannot start says why in the job's error file;
                    // waiting on would only burn the allocation.
                    let err = dir.logs_dir().join(format!("head-{head}.err"));
                    if let Some(line) = std::fs::read_to_string(&err).ok().and_then(|t| {
                        t.lines()
                            .find(|l| l.starts_with("corral-agent: error:"))
                            .map(String::from)
                    }) {
                        lifecycle::cancel_and_wait(slurm, &[head], Duration::from_secs(60))?;
                        mark_stopped(dir, &format!("the coordinator failed to start: {line}"))?;
                        bail!(
                            "the coordinator could not start, so job {head} was cancelled: {line}\n(full log: {})",
                            err.display()
                        );
                    }
                }
                std::thread::sleep(WORKER_POLL);
            }
            state => {
                let err_tail =
                    local::log_tail(&dir.logs_dir().join(format!("head-{head}.err")), 10);
                mark_stopped(
                    dir,
                    &format!("job {head} ended before the cluster was ready: {state}"),
                )?;
                bail!(
                    "job {head} ended ({state}{}) before all workers connected{}",
                    if v.reason.is_empty() || v.reason == "None" {
                        String::new()
                    } else {
                        format!(", {}", v.reason)
                    },
                    if err_tail.trim().is_empty() {
                        String::new()
                    } else {
                        format!("; its error output ends with:\n{err_tail}")
                    }
                );
            }
        }
    }
}

/// Live workers and their cores, when the coordinator answers.
/// Asks the coordinator how many workers are connected, over one connection kept for the
/// whole wait (opened once the coordinator listens, reopened if it drops).
struct WorkerCount {
    rt: tokio::runtime::Runtime,
    client: Option<ClusterClient>,
}

impl WorkerCount {
    fn new() -> anyhow::Result<WorkerCount> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(WorkerCount { rt, client: None })
    }

    /// Live workers and their cores, when the coordinator answers.
    fn get(&mut self, dir: &ClusterDir) -> Option<(u32, u32)> {
        let WorkerCount { rt, client } = self;
        rt.block_on(async {
            if client.is_none() {
                let c = tokio::time::timeout(Duration::from_secs(3), ClusterClient::connect(dir));
                *client = Some(c.await.ok()?.ok()?);
            }
            match client.as_ref()?.snapshot().await {
                Ok(snap) => Some((snap.live_workers().count() as u32, snap.cores)),
                Err(_) => {
                    *client = None;
                    None
                }
            }
        })
    }
}

/// Retries a SLURM call while the controller is unreachable (it may be restarting), with
/// backoff, for at most a minute; refusals are returned at once.
fn with_retry<T>(
    mut f: impl FnMut() -> Result<T, corral_core::slurm::SlurmError>,
) -> anyhow::Result<T> {
    let mut delay = Duration::from_millis(500);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                eprintln!("corral: {e}; retrying in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What listens where and who can connect, before anything is submitted.
pub fn security_notice(name: &str, dir: &std::path::Path) -> String {
    format!(
        "Security: the coordinator will listen on one UDP port (QUIC), chosen by the kernel, on the \
         first node of the job; workers listen nowhere. Only holders of this cluster's secret can \
         connect: {}/secret, 32 random bytes, mode 0600, readable by you alone (and by root on \
         nodes that mount your home). Every connection proves it holds the secret, bound to its \
         own TLS session, and pins the coordinator's certificate. Nothing about cluster {name} \
         is readable by other users.",
        dir.display()
    )
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

/// Records that a cluster ended before it was ready (see [`record_end`]).
fn mark_stopped(dir: &ClusterDir, how: &str) -> anyhow::Result<()> {
    let mut record = ClusterRecord::load(dir)?;
    let jobs = ClusterJobs::load(dir)?;
    record_end(
        dir,
        &mut record,
        how.to_string(),
        "corral up",
        &jobs.ids(),
        0.0,
    )
}

/// Where a SLURM cluster is, for `status` and `ls`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlurmState {
    /// `pending`, `running`, `ended`.
    pub state: String,
    /// In plain words: the pending reason, or how it ended.
    pub detail: String,
    pub jobs: Vec<JobView>,
    pub asked_workers: u32,
    pub left_secs: Option<u64>,
}

/// The state of a SLURM cluster's jobs (one squeue for all of them). A cluster whose head job
/// is gone or finished has ended, whoever ended it: corral down, scancel or the walltime; the
/// first look that sees it records how (see [`record_end`]).
pub fn state(
    slurm: &dyn Slurm,
    dir: &ClusterDir,
    record: &mut ClusterRecord,
) -> anyhow::Result<SlurmState> {
    let jobs = ClusterJobs::load(dir)?;
    let ids = if record.stopped.is_some() {
        Vec::new()
    } else {
        jobs.ids()
    };
    let views = lifecycle::job_views(slurm, &ids)?;
    state_from(&views, &jobs, dir, record)
}

/// [`state`] from job views already fetched (`corral ls` asks SLURM once for every cluster).
pub fn state_from(
    views: &HashMap<JobId, JobView>,
    jobs: &ClusterJobs,
    dir: &ClusterDir,
    record: &mut ClusterRecord,
) -> anyhow::Result<SlurmState> {
    let head = jobs.head().and_then(|h| views.get(&h.id)).cloned();
    let mut list: Vec<JobView> = jobs
        .ids()
        .iter()
        .filter_map(|id| views.get(id).cloned())
        .collect();
    list.sort_by_key(|v| v.id);
    if record.stopped.is_none()
        && let Some(h) = head.as_ref().filter(|h| !h.is_active())
    {
        let core_hours = lifecycle::core_hours(views);
        record_end(dir, record, ended_how(h), "slurm", &jobs.ids(), core_hours)?;
    }
    let (state, detail) = match (&record.stopped, &head) {
        (Some(s), _) => ("ended".to_string(), s.how.clone()),
        (None, Some(h)) if h.state == "PENDING" => {
            ("pending".into(), reason::explain(&h.reason).sentence())
        }
        (None, Some(h)) => ("running".into(), format!("on {}", h.node_list)),
        (None, None) => ("ended".into(), "no head job recorded".into()),
    };
    Ok(SlurmState {
        state,
        detail,
        asked_workers: jobs.asked_workers(),
        left_secs: head.as_ref().and_then(|h| h.left_secs),
        jobs: list,
    })
}

/// Records how a cluster ended, once: `stopped` in spec.json and a `down` line in the ledger
/// (what `corral history` shows). A later `corral down` keeps this first account.
fn record_end(
    dir: &ClusterDir,
    record: &mut ClusterRecord,
    how: String,
    by: &str,
    jobs: &[JobId],
    core_hours: f64,
) -> anyhow::Result<()> {
    if record.stopped.is_some() {
        return Ok(());
    }
    record.stopped = Some(Stopped {
        at_unix: lifecycle::now_unix(),
        how: how.clone(),
    });
    record.save(dir)?;
    let _ = dir.remove_coordinator();
    corral_core::coordinator::ledger::append(
        &dir.ledger_file(),
        &serde_json::json!({
            "event": "down",
            "backend": "slurm",
            "by": by,
            "how": how,
            "jobs": jobs,
            "core_hours": core_hours,
            "at": corral_core::coordinator::ledger::rfc3339(lifecycle::now_unix() * 1000),
        }),
    )
    .with_context(|| format!("cannot append to {}", dir.ledger_file().display()))
}

/// How a head job ended, in words.
pub fn ended_how(h: &JobView) -> String {
    match h.state.as_str() {
        "CANCELLED" => format!("job {} was cancelled outside corral (scancel)", h.id),
        "TIMEOUT" => format!("job {} reached its walltime", h.id),
        "GONE" => format!("job {} is no longer known to SLURM", h.id),
        s => format!("job {} ended: {s}", h.id),
    }
}

/// Asks the coordinator to stop its workers (best effort: one that is already gone has nothing
/// to stop).
pub async fn ask_shutdown(dir: &ClusterDir) {
    if let Ok(Ok(c)) =
        tokio::time::timeout(Duration::from_secs(3), ClusterClient::connect(dir)).await
    {
        let _ = c.shutdown().await;
    }
}

/// The SLURM half of `corral down`: scancel every job of the cluster, wait until SLURM lists
/// none as active, record it in `spec.json` and the ledger. Returns the core-hours used.
pub fn cancel_jobs(
    slurm: &dyn Slurm,
    dir: &ClusterDir,
    record: &mut ClusterRecord,
    who: &str,
) -> anyhow::Result<f64> {
    let jobs = ClusterJobs::load(dir)?;
    // A head job that already ended (scancel, walltime) is how the cluster ended, even if
    // nobody looked before this `down`; what is still queued (worker jobs) is cancelled anyway.
    let before = with_retry(|| lifecycle::job_views(slurm, &jobs.ids()))?;
    if let Some(h) = jobs
        .head()
        .and_then(|h| before.get(&h.id))
        .filter(|h| !h.is_active())
    {
        record_end(
            dir,
            record,
            ended_how(h),
            "slurm",
            &jobs.ids(),
            lifecycle::core_hours(&before),
        )?;
    }
    let views = with_retry(|| {
        lifecycle::cancel_and_wait(slurm, &jobs.ids(), Duration::from_secs(90)).map_err(|e| match e
        {
            lifecycle::LifecycleError::Slurm(s) => s,
            other => corral_core::slurm::SlurmError::Parse {
                command: "scancel".into(),
                output: other.to_string(),
            },
        })
    })?;
    let core_hours = lifecycle::core_hours(&views);
    let how = format!(
        "{who}: cancelled jobs {}, {core_hours:.2} core-hours",
        join_ids(&jobs.ids())
    );
    record_end(dir, record, how, who, &jobs.ids(), core_hours)?;
    Ok(core_hours)
}

/// `corral down` on SLURM: the coordinator stops its workers, then every job is cancelled.
pub fn down(
    slurm: &dyn Slurm,
    dir: &ClusterDir,
    record: &mut ClusterRecord,
) -> anyhow::Result<f64> {
    local::block_on(ask_shutdown(dir))?;
    cancel_jobs(slurm, dir, record, "corral down")
}

/// What reaching a worker count takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScalePlan {
    Same {
        now: u32,
    },
    /// Submit one worker job of `add` workers.
    Up {
        now: u32,
        add: u32,
    },
    /// Drain, then cancel these (newest) worker jobs; then, to go below the head job's size,
    /// retire that many of its workers.
    Down {
        now: u32,
        left: u32,
        remove: Vec<JobId>,
        retire: Option<(JobId, u32)>,
    },
}

/// Plans scaling to `target` workers: up submits one worker job for the difference; down
/// removes the newest worker jobs, whole, then retires workers of the head job for the rest
/// (SLURM cannot shrink a job's task count; the head job stays, the coordinator lives in it).
/// `target` maps the workers the running jobs hold now to the count wanted (absolute for
/// `corral scale`, now ± n for the TUI's `+`/`-`).
pub fn plan_scale(
    slurm: &dyn Slurm,
    dir: &ClusterDir,
    record: &ClusterRecord,
    target: impl FnOnce(u32) -> u32,
) -> anyhow::Result<ScalePlan> {
    if !matches!(record.backend, Backend::Slurm { .. }) {
        bail!("cluster {} is not a SLURM cluster", record.name);
    }
    let mut jobs = ClusterJobs::load(dir)?;
    let views = lifecycle::job_views(slurm, &jobs.ids())?;
    // Jobs that ended (e.g. scancelled from outside) no longer count.
    jobs.jobs
        .retain(|j| views.get(&j.id).is_some_and(|v| v.is_active()));
    let Some(head_workers) = jobs.head().map(|h| h.workers) else {
        bail!(
            "cluster {} has no running head job; start a new cluster instead",
            record.name
        );
    };
    let now = jobs.asked_workers();
    let target = target(now);
    if target == 0 {
        bail!(
            "a cluster needs at least 1 worker; to stop it use `corral down {}`",
            record.name
        );
    }
    if target == now {
        return Ok(ScalePlan::Same { now });
    }
    if target > now {
        return Ok(ScalePlan::Up {
            now,
            add: target - now,
        });
    }
    // Newest worker jobs go whole first; what is still too many comes out of the head job,
    // whose workers are retired one by one (the coordinator lives in it, so it stays).
    let mut remove = Vec::new();
    let mut left = now;
    for j in jobs
        .jobs
        .iter()
        .rev()
        .filter(|j| j.role == JobRole::Workers)
    {
        if left - (j.workers - j.retired) < target {
            break;
        }
        left -= j.workers - j.retired;
        remove.push(j.id);
    }
    let retire = if left > target {
        match jobs.head() {
            Some(h) if left - target < h.workers - h.retired => {
                let n = left - target;
                left = target;
                Some((h.id, n))
            }
            _ => bail!(
                "cannot reach {target} workers: the newest worker jobs hold {:?} workers and only whole jobs or \
                 head-job workers can go; choose {left}",
                jobs.jobs
                    .iter()
                    .filter(|j| j.role == JobRole::Workers)
                    .map(|j| j.workers)
                    .collect::<Vec<_>>()
            ),
        }
    } else {
        None
    };
    let _ = head_workers;
    Ok(ScalePlan::Down {
        now,
        left,
        remove,
        retire,
    })
}

/// Submits a worker job of `add` workers that joins the cluster's coordinator.
pub fn scale_up(
    slurm: &dyn Slurm,
    dir: &ClusterDir,
    record: &ClusterRecord,
    add: u32,
) -> anyhow::Result<lifecycle::JobRecord> {
    let Backend::Slurm { agent, spec } = &record.backend else {
        bail!("cluster {} is not a SLURM cluster", record.name);
    };
    Ok(lifecycle::submit(
        slurm,
        spec,
        JobRole::Workers,
        add,
        dir,
        agent,
    )?)
}

/// Tells the coordinator to give these jobs' workers nothing new and move their partitions
/// elsewhere; returns how many workers it drained.
pub async fn drain(dir: &ClusterDir, jobs: &[JobId]) -> usize {
    let mut n = 0;
    if let Ok(Ok(c)) =
        tokio::time::timeout(Duration::from_secs(5), ClusterClient::connect(dir)).await
    {
        for id in jobs {
            n += c.drain(id.0).await.map(|w| w.len()).unwrap_or(0);
        }
    }
    n
}

/// Retires `n` workers of job `job` (they finish their tasks, then exit) and records it in
/// `jobs.json`. Returns how many the coordinator retired.
pub async fn retire_workers(dir: &ClusterDir, job: JobId, n: u32) -> anyhow::Result<u32> {
    let c = tokio::time::timeout(Duration::from_secs(5), ClusterClient::connect(dir))
        .await
        .map_err(|_| anyhow::anyhow!("the coordinator did not answer within 5 s"))??;
    let ids = c.retire(job.0, n).await?;
    let mut jobs = ClusterJobs::load(dir)?;
    if let Some(j) = jobs.jobs.iter_mut().find(|j| j.id == job) {
        j.retired = (j.retired + ids.len() as u32).min(j.workers);
    }
    jobs.save(dir)?;
    Ok(ids.len() as u32)
}

/// Scales a SLURM cluster, start to end (`corral scale`, the TUI's `+`/`-`); `target` as for
/// [`plan_scale`]. Blocks: call it off the async runtime.
pub fn scale(
    slurm: &dyn Slurm,
    dir: &ClusterDir,
    record: &ClusterRecord,
    target: impl FnOnce(u32) -> u32,
) -> anyhow::Result<String> {
    match plan_scale(slurm, dir, record, target)? {
        ScalePlan::Same { now } => Ok(format!("cluster {} already has {now} workers", record.name)),
        ScalePlan::Up { now, add } => {
            let job = scale_up(slurm, dir, record, add)?;
            Ok(format!(
                "submitted worker job {} with {add} workers ({now} → {}); they join as SLURM starts them",
                job.id,
                now + add
            ))
        }
        ScalePlan::Down {
            now,
            left,
            remove,
            retire,
        } => {
            let drained = local::block_on(drain(dir, &remove))?;
            if !remove.is_empty() {
                lifecycle::cancel_and_wait(slurm, &remove, Duration::from_secs(90))?;
            }
            let mut said = format!("drained {drained} workers");
            if !remove.is_empty() {
                said.push_str(&format!(" and cancelled jobs {}", join_ids(&remove)));
            }
            if let Some((head, n)) = retire {
                let retired = local::block_on(retire_workers(dir, head, n))??;
                said.push_str(&format!(
                    "; retired {retired} workers of head job {head} (their CPUs stay allocated until it ends: SLURM cannot shrink a running job)"
                ));
            }
            Ok(format!("{said} ({now} → {left} workers)"))
        }
    }
}

fn join_ids(ids: &[JobId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use corral_core::model::Walltime;
    use corral_core::slurm::{
        JobDetail, Node, Partition, QueuedJob, SlurmError, StartEstimate, SubmitOptions,
    };

    use super::*;

    /// A job that pends for a reason it can never get past, until it is cancelled.
    struct NeverStarts {
        cancelled: Mutex<Vec<JobId>>,
    }

    impl Slurm for NeverStarts {
        fn partitions(&self) -> Result<Vec<Partition>, SlurmError> {
            Ok(Vec::new())
        }
        fn nodes(&self) -> Result<Vec<Node>, SlurmError> {
            Ok(Vec::new())
        }
        fn submit(&self, _: &str, _: &SubmitOptions) -> Result<JobId, SlurmError> {
            Ok(JobId(7))
        }
        fn estimate(&self, _: &str, _: &SubmitOptions) -> Result<StartEstimate, SlurmError> {
            Err(SlurmError::Parse {
                command: "sbatch --test-only".into(),
                output: String::new(),
            })
        }
        fn my_jobs(&self) -> Result<Vec<QueuedJob>, SlurmError> {
            let cancelled = self.cancelled.lock().map(|c| !c.is_empty()).unwrap_or(true);
            Ok(if cancelled {
                Vec::new()
            } else {
                QueuedJob::from_line(
                    "7|PENDING|PartitionConfig|0:00|1-00:00:00|1-00:00:00|1|4|debug||corral-never",
                )
                .into_iter()
                .collect()
            })
        }
        fn job(&self, _: JobId) -> Result<Option<JobDetail>, SlurmError> {
            Ok(JobDetail::from_line(
                "JobId=7 JobName=corral-never JobState=CANCELLED Reason=None NumCPUs=4 RunTime=00:00:00",
            ))
        }
        fn cancel(&self, ids: &[JobId], _: Option<&str>) -> Result<(), SlurmError> {
            if let Ok(mut c) = self.cancelled.lock() {
                c.extend_from_slice(ids);
            }
            Ok(())
        }
    }

    #[test]
    fn a_job_that_can_never_start_is_cancelled_and_recorded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = ClusterDir::create_in(tmp.path(), "never").expect("cluster dir");
        let spec = ClusterSpec {
            name: "never".into(),
            workers: 2,
            cores_per_worker: 2,
            mem_per_worker_mb: None,
            walltime: Walltime::from_days(1),
            partition: None,
            account: None,
        };
        ClusterRecord {
            name: spec.name.clone(),
            workers: 2,
            cores_per_worker: 2,
            created_at_unix: 0,
            backend: Backend::Slurm {
                agent: vec!["corral-agent".into()],
                spec: spec.clone(),
            },
            stopped: None,
        }
        .save(&dir)
        .expect("spec.json");
        let slurm = NeverStarts {
            cancelled: Mutex::new(Vec::new()),
        };
        let ready = wait_ready(
            &slurm,
            &dir,
            &spec,
            JobId(7),
            2,
            true,
            Some(Duration::from_secs(30)),
        )
        .expect("waits");
        assert_eq!(ready, Ready::NeverStarts);
        assert_eq!(*slurm.cancelled.lock().expect("lock"), vec![JobId(7)]);
        let record = ClusterRecord::load(&dir).expect("spec.json");
        let how = record.stopped.expect("recorded as ended").how;
        assert!(how.contains("could never start (PartitionConfig)"), "{how}");
    }
}
