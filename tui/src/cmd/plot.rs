//! `corral plot NAME --out runtimes.svg|png`: runtime against cores for one query of a
//! cluster's ledger — the points a sweep recorded — with the ideal (linear) curve and the knee
//! (`corral_core::scaling`), drawn by `crate::chart`. The training's hand-made
//! `nyc-taxi-runtimes.png`, generated from measurements.
//!
//! Which query: `--query` picks one by its id (`corral history --json` lists them) or by words
//! of its description; by default it is the most recent query shape (same files, same
//! group-by and aggregates) that ran at two or more core counts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use corral_core::aggregate::Query;
use corral_core::cluster_dir::ClusterDir;
use corral_core::coordinator::ledger::Line;
use corral_core::scaling::{self, Point};

use crate::chart;
use crate::cmd::history::{describe, read_ledger};

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// The cluster whose ledger to plot.
    pub name: String,
    /// The file to write: `.svg` or `.png`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Which query: a query id, or words of its description (`count by payment_type`).
    /// Default: the most recent query run at two or more core counts.
    #[arg(long, value_name = "ID_OR_WORDS")]
    pub query: Option<String>,
    /// Print what was plotted (points, speedup, efficiency, knee) as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Svg,
    Png,
}

fn format_of(out: &Path) -> anyhow::Result<Format> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => bail!(
            "--out {}: the file name must end in .svg or .png (the format is chosen by it)",
            out.display()
        ),
    }
}

/// The runs of one query shape.
struct Series {
    query: Query,
    files: Vec<PathBuf>,
    runs: Vec<Line>,
}

impl Series {
    fn distinct_cores(&self) -> usize {
        let mut c: Vec<u32> = self.runs.iter().map(|r| r.cores).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    }

    fn words(&self) -> String {
        describe(&self.query, &self.files)
    }

    /// When its latest run finished (RFC 3339 strings sort by time).
    fn last(&self) -> &str {
        self.runs.last().map_or("", |r| r.finished_at.as_str())
    }
}

/// Groups successful runs by query shape, in ledger order.
fn series(lines: Vec<Line>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for l in lines.into_iter().filter(|l| l.ok && l.cores > 0) {
        match out.iter_mut().find(|s| s.query == l.query) {
            Some(s) => {
                if s.files.is_empty() {
                    s.files = l.files.clone();
                }
                s.runs.push(l);
            }
            None => out.push(Series {
                query: l.query.clone(),
                files: l.files.clone(),
                runs: vec![l],
            }),
        }
    }
    out
}

fn choose(mut all: Vec<Series>, which: Option<&str>, name: &str) -> anyhow::Result<Series> {
    if all.is_empty() {
        bail!(
            "cluster {name} has no finished queries in its ledger; run `corral sweep {name} --by COL FILES…` first"
        );
    }
    let listing = |all: &[Series]| {
        all.iter()
            .map(|s| {
                format!(
                    "  {} (query ids {}; {} core count{})",
                    s.words(),
                    s.runs
                        .iter()
                        .map(|r| r.query_id.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    s.distinct_cores(),
                    if s.distinct_cores() == 1 { "" } else { "s" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    all.sort_by(|a, b| a.last().cmp(b.last()));
    let picked = match which {
        Some(w) => {
            let by_id = w.trim().parse::<u64>().ok();
            let w_low = w.to_lowercase();
            let pos = all.iter().rposition(|s| match by_id {
                Some(id) => s.runs.iter().any(|r| r.query_id == id),
                None => s.words().to_lowercase().contains(&w_low),
            });
            match pos {
                Some(i) => all.swap_remove(i),
                None => bail!(
                    "no query of cluster {name} matches --query {w:?}; its queries:\n{}",
                    listing(&all)
                ),
            }
        }
        None => match all.iter().rposition(|s| s.distinct_cores() >= 2) {
            Some(i) => all.swap_remove(i),
            None => bail!(
                "no query of cluster {name} ran at two or more core counts, so there is no scaling to plot; \
                 run `corral sweep {name} --by COL FILES…` (its queries:\n{})",
                listing(&all)
            ),
        },
    };
    if picked.distinct_cores() < 2 {
        bail!(
            "that query ran at one core count only ({}), so there is no scaling to plot; \
             run `corral sweep {name} …` with it",
            corral_core::text::count(picked.runs.first().map_or(0, |r| r.cores), "core")
        );
    }
    Ok(picked)
}

#[derive(serde::Serialize)]
struct JsonOut<'a> {
    cluster: &'a str,
    out: String,
    query: String,
    query_ids: Vec<u64>,
    runs: &'a [Point],
    #[serde(flatten)]
    analysis: &'a scaling::Analysis,
}

pub fn run(args: PlotArgs) -> anyhow::Result<ExitCode> {
    // Checked first: a typo must not cost reading every ledger.
    let format = format_of(&args.out)?;
    let dir = ClusterDir::open(&args.name)?;
    let ledger = read_ledger(&dir.ledger_file())?;
    let s = choose(series(ledger.queries), args.query.as_deref(), &args.name)?;
    let runs: Vec<Point> = s
        .runs
        .iter()
        .map(|r| Point {
            cores: r.cores,
            seconds: r.seconds,
        })
        .collect();
    let analysis = scaling::analyze(&runs, scaling::DEFAULT_THRESHOLD);
    let words = s.words();
    let title = format!("{}: {words}", args.name);
    let scene = chart::runtime_scene(&chart::RuntimePlot {
        title: &title,
        runs: &runs,
        analysis: &analysis,
    });
    let bytes = match format {
        Format::Svg => chart::svg::render(&scene).into_bytes(),
        Format::Png => chart::raster::render_png(&scene).context("cannot encode the PNG")?,
    };
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write the plot to {}", args.out.display()))?;
    if args.json {
        let out = JsonOut {
            cluster: &args.name,
            out: args.out.display().to_string(),
            query: words,
            query_ids: s.runs.iter().map(|r| r.query_id).collect(),
            runs: &runs,
            analysis: &analysis,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let (lo, hi) = (
            analysis.points.first().map_or(0, |p| p.cores),
            analysis.points.last().map_or(0, |p| p.cores),
        );
        println!(
            "wrote {}: {} run{} of {words} at {lo}–{hi} cores",
            args.out.display(),
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
        );
        println!("{}", analysis.recommendation);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::aggregate::Column;

    fn line(id: u64, q: &Query, cores: u32, seconds: f64, at: &str) -> Line {
        Line {
            event: "query".into(),
            query_id: id,
            query: q.clone(),
            files: Vec::new(),
            bytes: 1,
            rows: 1,
            bad_rows: 0,
            workers: 1,
            cores,
            tasks: 1,
            reruns: 0,
            seconds,
            started_at: at.into(),
            finished_at: at.into(),
            ok: true,
            error: None,
        }
    }

    #[test]
    fn the_default_is_the_latest_shape_with_two_core_counts() {
        let a = Query::value_counts(vec!["/a.csv".into()], Column::Name("x".into()));
        let b = Query::value_counts(vec!["/data/b/x.csv".into()], Column::Name("x".into()));
        let lines = vec![
            line(1, &a, 1, 2.0, "2026-01-01T00:00:01.000Z"),
            line(2, &a, 2, 1.0, "2026-01-01T00:00:02.000Z"),
            // Newer, but at one core count only: not a sweep.
            line(3, &b, 4, 1.0, "2026-01-01T00:00:03.000Z"),
        ];
        let s = choose(series(lines.clone()), None, "c").expect("a sweep");
        assert_eq!(s.query, a);
        assert!(choose(series(lines.clone()), Some("3"), "c").is_err());
        let by_words = choose(series(lines), Some("DATA/B"), "c");
        assert!(
            by_words.is_err_and(|e| e.to_string().contains("one core count")),
            "found by words, refused for one core count"
        );
        assert!(choose(Vec::new(), None, "c").is_err());
    }

    #[test]
    fn out_must_say_its_format() {
        assert_eq!(format_of(Path::new("r.SVG")).ok(), Some(Format::Svg));
        assert_eq!(format_of(Path::new("r.png")).ok(), Some(Format::Png));
        assert!(format_of(Path::new("r.jpg")).is_err());
        assert!(format_of(Path::new("runtimes")).is_err());
    }
}
