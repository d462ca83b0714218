//! `corral status NAME`: the cluster now — workers (dead ones marked), cores, tasks, throughput,
//! the running query — from one coordinator snapshot; or, when it is not running, what
//! `spec.json` says about how it ended.

use std::process::ExitCode;
use std::time::Duration;

use corral_core::backend::{Backends, Cluster, Observed, State};
use corral_core::client::ClusterClient;
use corral_core::cluster_record::ClusterRecord;
use corral_core::protocol::{Snapshot, WorkerState};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The cluster.
    pub name: String,
    /// Print one JSON object (the record and the coordinator's snapshot).
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct JsonOut<'a> {
    name: &'a str,
    /// `running`, `pending`, `ended`, `unknown` or `unreachable`.
    state: &'a str,
    record: Option<&'a ClusterRecord>,
    /// What its backend says: state, detail in words, jobs as SLURM sees them.
    observed: Option<&'a Observed>,
    snapshot: Option<&'a Snapshot>,
    error: Option<String>,
    /// How SLURM is reached (the tools, or slurmrestd and its API version); SLURM jobs only.
    slurm_api: Option<String>,
}

/// The snapshot as a few lines and a table of workers.
pub(crate) fn render(s: &Snapshot, backend: &str) -> String {
    let mut out = String::new();
    let live = s.live_workers().count();
    let left = s
        .workers
        .iter()
        .filter(|w| w.state == WorkerState::Left)
        .count();
    let dead = s.workers.len() - live - left;
    out.push_str(&format!(
        "cluster {} ({backend}) — running for {}, coordinator on {} (pid {})\n",
        s.cluster,
        crate::human::duration(s.uptime_ms / 1000),
        s.coordinator_node,
        s.coordinator_pid
    ));
    if s.walltime_ending {
        out.push_str("WARNING: SLURM announced the end of the walltime; the cluster stops soon\n");
    }
    if s.dashboard {
        out.push_str(&format!(
            "dashboard: the Dask scheduler's, on the coordinator's loopback — `corral dashboard {}` serves it here\n",
            s.cluster
        ));
    }
    out.push_str(&format!(
        "workers: {live} live{}{}; cores: {}\n",
        if dead > 0 {
            format!(", {dead} dead")
        } else {
            String::new()
        },
        if left > 0 {
            format!(", {left} left")
        } else {
            String::new()
        },
        s.cores
    ));
    let t = s.tasks;
    out.push_str(&format!(
        "tasks: {} queued, {} running, {} done, {} failed, {} re-run; queries: {} done, {} failed, {} waiting\n",
        t.queued, t.running, t.done, t.failed, t.rerun, s.queries_done, s.queries_failed, s.queued_queries
    ));
    out.push_str(&format!(
        "throughput: {:.1} MB/s, {:.2} M rows/s\n",
        s.bytes_per_s / 1e6,
        s.rows_per_s / 1e6
    ));
    if let Some(q) = &s.query {
        out.push_str(&format!(
            "query {}: {:?}, {}/{} partitions, {:.2}/{:.2} GB, {}, {}\n",
            q.query,
            q.phase,
            q.tasks.done,
            q.tasks_total,
            q.bytes_done as f64 / 1e9,
            q.bytes_total as f64 / 1e9,
            corral_core::text::count(q.workers, "worker"),
            crate::human::duration(q.elapsed_ms / 1000)
        ));
    }
    if s.restriction.max_workers.is_some() || s.restriction.max_cores.is_some() {
        out.push_str(&format!(
            "restricted to {} workers, {} cores\n",
            s.restriction
                .max_workers
                .map_or("all".into(), |n| n.to_string()),
            s.restriction
                .max_cores
                .map_or("all".into(), |n| n.to_string())
        ));
    }
    for w in &s.warnings {
        let w = corral_core::text::terminal_safe(w);
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push_str(&format!(
        "{:>4}  {:<16} {:>8} {:>5}  {:<8} {:>9} {:>6} {:>9} {:>11} {:>12}\n",
        "ID", "NODE", "PID", "CORES", "STATE", "HEARTBEAT", "CPU%", "RSS", "RUN/Q/DONE", "ROWS"
    ));
    for w in &s.workers {
        let state = match w.state {
            WorkerState::Alive => "alive",
            WorkerState::Draining => "draining",
            WorkerState::Dead => "DEAD",
            WorkerState::Left => "left",
        };
        let hb = if matches!(w.state, WorkerState::Dead | WorkerState::Left) {
            format!("{} ago", crate::human::duration(w.heartbeat_age_ms / 1000))
        } else {
            format!("{:.1}s", w.heartbeat_age_ms as f64 / 1000.0)
        };
        let r = &w.report;
        out.push_str(&format!(
            "{:>4}  {:<16} {:>8} {:>5}  {:<8} {:>9} {:>6.1} {:>9} {:>11} {:>12}\n",
            w.id,
            w.node,
            w.pid,
            w.cores,
            state,
            hb,
            r.cpu_busy_pct,
            crate::human::bytes(r.rss_bytes),
            format!("{}/{}/{}", r.tasks_running, r.tasks_queued, r.tasks_done),
            r.rows_processed
        ));
    }
    out
}

pub async fn run(args: StatusArgs, backends: &Backends) -> anyhow::Result<ExitCode> {
    let mut cluster = Cluster::open(&args.name)?;
    let backend = backends.for_record(&cluster.record);
    let kind = cluster.record.backend.kind().to_string();
    // A cluster is first what its backend says: pending, or ended (by corral down, scancel,
    // the walltime) whatever a stale coordinator.json may suggest.
    let observed = backend.observe(&mut cluster).await?;
    let slurm_api = (!observed.jobs.is_empty()).then(|| backends.slurm_client().describe());
    if observed.state != State::Running {
        if args.json {
            let out = JsonOut {
                name: &args.name,
                state: observed.state.as_str(),
                record: Some(&cluster.record),
                observed: Some(&observed),
                snapshot: None,
                error: None,
                slurm_api: slurm_api.clone(),
            };
            println!("{}", serde_json::to_string(&out)?);
        } else {
            let ids: Vec<String> = observed
                .jobs
                .iter()
                .map(|j| format!("{} {}", j.id, j.state))
                .collect();
            let when = cluster
                .record
                .stopped
                .as_ref()
                .map(|s| {
                    format!(
                        " (since {})",
                        corral_core::coordinator::ledger::rfc3339(s.at_unix * 1000)
                    )
                })
                .unwrap_or_default();
            println!(
                "cluster {} {}{when}: {}{}",
                args.name,
                match observed.state {
                    State::Ended => "has ended",
                    State::Pending => "is pending",
                    _ => "is in an unknown state",
                },
                observed.detail,
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(" (jobs: {})", ids.join(", "))
                }
            );
        }
        return Ok(if observed.state == State::Pending {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    let snap = if cluster.dir.coordinator_file().exists() {
        let get = async {
            let c = ClusterClient::connect(&cluster.dir).await?;
            c.snapshot().await
        };
        match tokio::time::timeout(Duration::from_secs(10), get).await {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("the coordinator did not answer in 10 s")),
        }
    } else {
        Err(anyhow::anyhow!(
            "the coordinator is not listening yet (no coordinator.json)"
        ))
    };
    let (state, error) = match &snap {
        Ok(_) => ("running", None),
        Err(e) => ("unreachable", Some(format!("{e:#}"))),
    };
    if args.json {
        let out = JsonOut {
            name: &args.name,
            state,
            record: Some(&cluster.record),
            observed: Some(&observed),
            snapshot: snap.as_ref().ok(),
            error,
            slurm_api: slurm_api.clone(),
        };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(if state == "running" {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    match snap {
        Ok(s) => {
            print!("{}", render(&s, &kind));
            if !observed.jobs.is_empty() {
                let jobs: Vec<String> = observed
                    .jobs
                    .iter()
                    .map(|j| format!("{} {}", j.id, j.state))
                    .collect();
                println!(
                    "jobs: {}; walltime left: {}; SLURM through {}",
                    jobs.join(", "),
                    observed
                        .left_secs
                        .map_or("unknown".into(), crate::human::duration),
                    slurm_api.as_deref().unwrap_or_default()
                );
            }
            if let corral_core::cluster_record::Backend::Slurm { spec, .. } =
                &cluster.record.backend
                && let Some(a) = spec.supervise.adapt
            {
                // The latest decision (all of them: supervisor.jsonl in the cluster directory).
                let last = corral_core::supervisor::decisions(&cluster.dir, 1000)
                    .into_iter()
                    .rfind(|d| d.policy == "adapt");
                match last {
                    Some(d) => println!(
                        "adapts {}; latest decision at {}: {} ({})",
                        a.range,
                        corral_core::coordinator::ledger::rfc3339(d.at_unix * 1000),
                        d.what,
                        d.why
                    ),
                    None => println!("adapts {}; no decision yet", a.range),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("cluster {} is {state}: {e:#}", args.name);
            // The backend says it runs, the coordinator does not answer: a network between here
            // and its node (or the coordinator itself) is the suspect; say what still works.
            if !observed.jobs.is_empty() {
                println!(
                    "SLURM says it is running ({}); the coordinator's node may be cut off from \
                     here. Retry `corral status {name}` (the TUI reconnects by itself), or end it \
                     with `corral down {name}`.",
                    observed.detail,
                    name = args.name
                );
            }
            Ok(ExitCode::from(3))
        }
    }
}
