//! `corral ls`: the clusters in the state directory, with their backend, size and whether they
//! run.

use std::process::ExitCode;

use corral_core::cluster_dir::ClusterDir;
use corral_core::cluster_record::{Backend, ClusterRecord};

use crate::local;

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
    workers: Option<u32>,
    cores_per_worker: Option<u32>,
    /// `running`, `down`, or `unknown` (spec.json unreadable: another backend or version).
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
    let mut slurm = None;
    let mut entries = Vec::new();
    for name in ClusterDir::list_in(&parent)? {
        let path = parent.join(&name);
        let mut e = Entry {
            name: name.clone(),
            backend: None,
            workers: None,
            cores_per_worker: None,
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
                e.state = if let Backend::Slurm { .. } = r.backend {
                    match crate::slurm_backend::state(
                        slurm.get_or_insert_with(|| crate::slurm_backend::client(&config)),
                        &d,
                        &r,
                    ) {
                        Ok(st) => {
                            e.jobs = st.jobs.iter().map(|j| j.id.0).collect();
                            e.detail = Some(st.detail);
                            e.walltime_left_secs = st.left_secs;
                            st.state
                        }
                        Err(err) => {
                            e.problem = Some(format!("{err:#}"));
                            "unknown".into()
                        }
                    }
                } else if local::is_running(&d, &r) {
                    "running".into()
                } else {
                    "down".into()
                };
            }
            Ok((Err(err), _)) => e.problem = Some(err.to_string()),
            Err(err) => e.problem = Some(err.to_string()),
        }
        entries.push(e);
    }
    if args.json {
        println!("{}", serde_json::to_string(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no clusters (start one with `corral up --local --name NAME` or `corral demo`)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<8} {:>7} {:<8} CREATED",
        "NAME", "BACKEND", "W×C", "STATE"
    );
    for e in &entries {
        let size = match (e.workers, e.cores_per_worker) {
            (Some(w), Some(c)) => format!("{w}×{c}"),
            _ => "?".into(),
        };
        println!(
            "{:<24} {:<8} {:>7} {:<8} {}{}{}",
            e.name,
            e.backend.as_deref().unwrap_or("?"),
            size,
            e.state,
            e.created_at.as_deref().unwrap_or("?"),
            match (&e.detail, e.jobs.is_empty()) {
                (Some(d), false) => format!("  jobs {:?}: {d}", e.jobs),
                _ => String::new(),
            },
            e.problem
                .as_deref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
