//! `corral ls`: every cluster of this user (the cluster directories, with one `squeue` for all
//! SLURM clusters together): backend, state, job ids, workers connected/asked, cores, walltime
//! left. Running clusters are asked for their connected workers over a short-lived connection.

use std::process::ExitCode;
use std::time::Duration;

use corral_core::client::ClusterClient;
use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord};
use corral_core::slurm::lifecycle::{self, ClusterJobs};

use crate::local;

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
    /// `running`, `pending`, `ended`, `down`, or `unknown` (spec.json unreadable).
    state: String,
    created_at: Option<String>,
    dir: String,
    /// SLURM clusters: their job ids, and the pending reason or how they ended.
    jobs: Vec<u64>,
    detail: Option<String>,
    walltime_left_secs: Option<u64>,
    problem: Option<String>,
}

pub fn run(args: LsArgs) -> anyhow::Result<ExitCode> {
    let parent = corral_core::paths::clusters_dir();
    let config = corral_core::config::Config::load()?;
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
        match ClusterDir::open_path(&path).map(|d| (ClusterRecord::load(&d), d)) {
            Ok((Ok(r), d)) => {
                e.backend = Some(r.backend.kind().into());
                e.workers = Some(r.workers);
                e.cores_per_worker = Some(r.cores_per_worker);
                e.created_at = Some(corral_core::coordinator::ledger::rfc3339(
                    r.created_at_unix * 1000,
                ));
                found.push((entries.len(), d, r));
            }
            Ok((Err(err), _)) => e.problem = Some(err.to_string()),
            Err(err) => e.problem = Some(err.to_string()),
        }
        entries.push(e);
    }

    // One squeue for every SLURM cluster still going.
    let jobs_of: Vec<Option<ClusterJobs>> = found
        .iter()
        .map(|(_, d, r)| match r.backend {
            Backend::Slurm { .. } => ClusterJobs::load(d).ok(),
            Backend::Local { .. } => None,
        })
        .collect();
    let ids: Vec<_> = found
        .iter()
        .zip(&jobs_of)
        .filter(|((_, _, r), _)| r.stopped.is_none())
        .filter_map(|(_, j)| j.as_ref())
        .flat_map(|j| j.ids())
        .collect();
    let slurm = crate::slurm_backend::client(&config);
    let views = if ids.is_empty() {
        Ok(Default::default())
    } else {
        lifecycle::job_views(&slurm, &ids)
    };
    for ((i, d, r), jobs) in found.iter_mut().zip(&jobs_of) {
        let e = &mut entries[*i];
        e.state = match (jobs, &views) {
            (Some(jobs), Ok(views)) => match crate::slurm_backend::state_from(views, jobs, d, r) {
                Ok(st) => {
                    e.jobs = st.jobs.iter().map(|j| j.id.0).collect();
                    e.detail = Some(st.detail);
                    e.walltime_left_secs = st.left_secs;
                    e.workers = Some(st.asked_workers);
                    st.state
                }
                Err(err) => {
                    e.problem = Some(format!("{err:#}"));
                    "unknown".into()
                }
            },
            (Some(_), Err(err)) => {
                e.problem = Some(err.to_string());
                "unknown".into()
            }
            (None, _) if local::is_running(d, r) => "running".into(),
            (None, _) => "down".into(),
        };
        e.cores = e.workers.zip(e.cores_per_worker).map(|(w, c)| w * c);
    }

    // Connected workers of the running clusters, asked all at once with a short timeout.
    let running: Vec<(usize, ClusterDir)> = found
        .into_iter()
        .filter(|(i, _, _)| entries[*i].state == "running")
        .map(|(i, d, _)| (i, d))
        .collect();
    let answers = local::block_on(async {
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
    })?;
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
            e.backend.as_deref().unwrap_or("?"),
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
