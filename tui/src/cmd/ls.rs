//! `corral ls`: every cluster of this user (the cluster directories, with one `squeue` for all
//! SLURM clusters together): backend, state, job ids, workers connected/asked, cores, walltime
//! left. Running clusters are asked for their connected workers over a short-lived connection.
//! Clusters that ended more than a day ago are left out unless `--all`.

use std::io::IsTerminal;
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
    /// Every cluster, also those that ended more than a day ago.
    #[arg(long, short = 'a')]
    pub all: bool,
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
    let now = crate::app::runtime::now_unix();
    let old: Vec<usize> = found
        .iter()
        .filter(|(_, c)| corral_core::ended::ended_long_ago(&c.record, now))
        .map(|(i, _)| *i)
        .collect();
    let hidden = if args.all { 0 } else { old.len() };

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
    if !args.all {
        let mut i = 0;
        entries.retain(|_| {
            i += 1;
            !old.contains(&(i - 1))
        });
    }

    if args.json {
        println!("{}", serde_json::to_string(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = std::io::stdout()
        .is_terminal()
        .then(|| {
            crossterm::terminal::size()
                .ok()
                .map(|(w, _)| usize::from(w))
        })
        .flatten();
    print!("{}", table(&entries, hidden, width));
    Ok(ExitCode::SUCCESS)
}

/// The table `corral ls` prints. Names and numbers are never cut; with a terminal `width`, the
/// DETAIL column is shortened to fit the line.
fn table(entries: &[Entry], hidden: usize, width: Option<usize>) -> String {
    let mut out = String::new();
    let hidden_note = (hidden > 0).then(|| {
        format!(
            "({} ended more than a day ago; `corral ls --all` lists {})\n",
            corral_core::text::count(hidden as u64, "cluster"),
            if hidden == 1 { "it" } else { "them" }
        )
    });
    if entries.is_empty() {
        out.push_str(
            "no clusters (start one with `corral up --name NAME`, `corral up --local --name NAME` or `corral demo`)\n",
        );
        out.push_str(hidden_note.as_deref().unwrap_or(""));
        return out;
    }
    let name_w = entries
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let fit = |line: String| -> String {
        match width {
            Some(w) if line.chars().count() > w => {
                // At a space or comma, so no word or number is cut in two.
                let mut cut: String = line.chars().take(w.saturating_sub(1)).collect();
                let boundary = line
                    .chars()
                    .nth(cut.chars().count())
                    .is_some_and(|c| c == ' ' || c == ',');
                if !boundary && let Some(at) = cut.rfind([' ', ',']) {
                    cut.truncate(at + 1);
                }
                cut.push('…');
                cut
            }
            _ => line,
        }
    };
    // The columns before DETAIL, without CREATED; CREATED goes first when a long name leaves
    // too little room.
    let fixed = name_w + 1 + 8 + 8 + 8 + 6 + 8;
    let created_w = if width.is_some_and(|w| fixed + 12 + "DETAIL".len() > w) {
        0
    } else {
        12
    };
    let col = |text: &str| {
        if created_w == 0 {
            String::new()
        } else {
            format!("{text:<11} ")
        }
    };
    out.push_str(&fit(format!(
        "{:<name_w$} {:<7} {:<7} {:>7} {:>5} {:>7} {}DETAIL",
        "NAME",
        "BACKEND",
        "STATE",
        "WORKERS",
        "CORES",
        "LEFT",
        col("CREATED")
    )));
    out.push('\n');
    for e in entries {
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
        // `2026-01-31T12:34:56.789Z` → `01-31 12:34` (the year is this one or the JSON's).
        let created = e
            .created_at
            .as_deref()
            .and_then(|c| c.get(5..16))
            .map_or("?".into(), |c| c.replace('T', " "));
        let head = format!(
            "{:<name_w$} {:<7} {:<7} {:>7} {:>5} {:>7} {}",
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
            col(&created),
        );
        let rest = format!(
            "{detail}{}",
            e.problem
                .as_deref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
        out.push_str(fit(format!("{head}{rest}")).trim_end());
        out.push('\n');
    }
    out.push_str(hidden_note.as_deref().unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, state: &str, detail: &str) -> Entry {
        Entry {
            name: name.into(),
            backend: Some("slurm".into()),
            workers: Some(12),
            connected: Some(12),
            cores_per_worker: Some(2),
            cores: Some(24),
            state: state.into(),
            created_at: Some("2026-12-01T06:44:17.000Z".into()),
            dir: "/x".into(),
            jobs: vec![1234, 1235],
            detail: Some(detail.into()),
            walltime_left_secs: Some(86_000),
            problem: None,
        }
    }

    #[test]
    fn at_80_columns_names_and_numbers_are_whole_and_lines_fit() {
        let long = "taxi-sweep-2026-december-first";
        let entries = vec![
            entry(
                long,
                "running",
                "running on n[1-4] since 2026-12-01 06:44 with every worker connected",
            ),
            entry(
                "lab",
                "ended",
                "corral down: 2 jobs cancelled, 0.41 core-hours",
            ),
        ];
        let t = table(&entries, 2, Some(80));
        for line in t.lines() {
            assert!(line.chars().count() <= 80, "{line:?} is wider than 80");
        }
        assert!(
            t.contains(&format!(
                "{long} slurm   running   12/12    24 23h 53m jobs 1234,…"
            )),
            "{t}"
        );
        // With room, the creation time too.
        let short = table(&[entry("lab", "running", "running")], 0, Some(80));
        assert!(
            short.contains("lab  slurm   running   12/12    24 23h 53m 12-01 06:44 jobs"),
            "{short}"
        );
        assert!(
            t.lines().nth(2).is_some_and(|l| l.starts_with("lab ")),
            "{t}"
        );
        assert!(
            t.contains("(2 clusters ended more than a day ago; `corral ls --all` lists them)"),
            "{t}"
        );
        // Without a terminal nothing is shortened.
        assert!(table(&entries, 0, None).contains("with every worker connected"));
    }
}
