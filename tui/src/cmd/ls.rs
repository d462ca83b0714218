//! `corral ls`: every cluster of this user (the cluster directories, with one `squeue` for all
//! SLURM clusters together): backend, state, job ids, workers connected/asked, cores, walltime
//! left. Running clusters are asked for their connected workers over a short-lived connection.

use std::process::ExitCode;
use std::time::Duration;

use corral_core::backend::{Backends, Cluster};
use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;

/// How long one running cluster may take to say how many workers it has.
const ASK_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Entry {
    name: String,
    backend: Option<String>,
    /// Workers asked for (SLURM: what the cluster's running jobs hold).
    workers: Option<u32>,
    /// Workers connected to the coordinator now (running clusters that answered).
    connected: Option<u32>,
    cores_per_worker: Option<u32>,
    /// Cores of the connected workers (else of the asked ones).
    cores: Option<u32>,
    /// `running`, `pending`, `ended`, or `unknown` (spec.json unreadable, SLURM unreachable).
    state: String,
    created_at: Option<String>,
    dir: String,
    /// SLURM clusters: their job ids, and the pending reason or how they ended.
    jobs: Vec<u64>,
    detail: Option<String>,
    walltime_left_secs: Option<u64>,
    problem: Option<String>,
}

pub async fn run(args: LsArgs, backends: &Backends) -> anyhow::Result<ExitCode> {
    let parent = corral_core::paths::clusters_dir();
    let mut found = Vec::new();
    let mut entries = Vec::new();
    for name in ClusterDir::list_in(&parent)? {
        let path = parent.join(&name);
        let mut e = Entry {
            name: name.clone(),
            backend: None,
            workers: None,
            connected: None,
            cores_per_worker: None,
            cores: None,
            state: "unknown".into(),
            created_at: None,
            dir: path.display().to_string(),
            jobs: Vec::new(),
            detail: None,
            walltime_left_secs: None,
            problem: None,
        };
        match ClusterDir::open_path(&path).map(Cluster::load) {
            Ok(Ok(c)) => {
                e.backend = Some(c.record.backend.kind().into());
                e.workers = Some(c.record.workers);
                e.cores_per_worker = Some(c.record.cores_per_worker);
                e.created_at = Some(corral_core::coordinator::ledger::rfc3339(
                    c.record.created_at_unix * 1000,
                ));
                found.push((entries.len(), c));
            }
            Ok(Err(err)) => e.problem = Some(err.to_string()),
            Err(err) => e.problem = Some(err.to_string()),
        }
        entries.push(e);
    }

    // Every SLURM cluster looked at within a second shares one squeue answer.
    for (i, c) in found.iter_mut() {
        let e = &mut entries[*i];
        match backends.for_record(&c.record).observe(c).await {
            Ok(seen) => {
                e.state = seen.state.as_str().into();
                e.jobs = seen.jobs.iter().map(|j| j.id.0).collect();
                e.detail = Some(seen.detail);
                e.walltime_left_secs = seen.left_secs;
                e.workers = Some(seen.asked_workers);
            }
            Err(err) => e.problem = Some(err.to_string()),
        }
        e.cores = e.workers.zip(e.cores_per_worker).map(|(w, c)| w * c);
    }

    // Connected workers of the running clusters, asked all at once with a short timeout.
    let running: Vec<(usize, ClusterDir)> = found
        .into_iter()
        .filter(|(i, _)| entries[*i].state == "running")
        .map(|(i, c)| (i, c.dir))
        .collect();
    let answers = {
        let mut set = tokio::task::JoinSet::new();
        for (i, d) in running {
            set.spawn(async move {
                let ask = async {
                    let c = ClusterClient::connect(&d).await.ok()?;
                    let s = c.snapshot().await.ok()?;
                    Some((s.live_workers().count() as u32, s.cores))
                };
                (
                    i,
                    tokio::time::timeout(ASK_TIMEOUT, ask).await.ok().flatten(),
                )
            });
        }
        set.join_all().await
    };
    for (i, answer) in answers {
        if let Some((workers, cores)) = answer {
            entries[i].connected = Some(workers);
            entries[i].cores = Some(cores);
        }
    }

    if args.json {
        println!("{}", serde_json::to_string(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!(
            "no clusters (start one with `corral up --name NAME`, `corral up --local --name NAME` or `corral demo`)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$} {:<7} {:<8} {:>9} {:>5} {:>8} {:<20} DETAIL",
        "NAME", "BACKEND", "STATE", "WORKERS", "CORES", "LEFT", "CREATED"
    );
    for e in &entries {
        let workers = match (e.connected, e.workers) {
            (Some(c), Some(w)) => format!("{c}/{w}"),
            (None, Some(w)) => format!("-/{w}"),
            _ => "?".into(),
        };
        let detail = match (&e.detail, e.jobs.is_empty()) {
            (Some(d), false) => format!(
                "jobs {}: {d}",
                e.jobs
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => String::new(),
        };
        println!(
            "{:<width$} {:<7} {:<8} {:>9} {:>5} {:>8} {:<20} {}{}",
            e.name,
            // `batch --here` clusters, in 7 columns.
            match e.backend.as_deref() {
                Some("in_allocation") => "here",
                Some(b) => b,
                None => "?",
            },
            e.state,
            workers,
            e.cores.map_or("?".into(), |c| c.to_string()),
            e.walltime_left_secs
                .map_or("-".into(), crate::human::duration),
            e.created_at.as_deref().unwrap_or("?"),
            detail,
            e.problem
                .as_deref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
