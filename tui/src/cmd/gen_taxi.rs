//! `corral gen taxi`: NYC yellow-taxi CSVs with exact expected answers (`expected.json`).
//!
//! Numbers are taken as text and checked here, so a bad value (`--rows -1`) gets one line naming
//! the flag rather than clap's multi-line usage dump.

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use corral_core::datagen::{self, Progress, TaxiSpec};

#[derive(Debug, clap::Args)]
pub struct TaxiArgs {
    /// Directory to write into (created if missing; same-named files are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of monthly files (2015-01, 2015-02, …).
    #[arg(
        long,
        value_name = "K",
        default_value = "1",
        allow_negative_numbers = true
    )]
    pub files: String,
    /// Data rows per file.
    #[arg(
        long,
        value_name = "N",
        default_value = "100000",
        allow_negative_numbers = true
    )]
    pub rows: String,
    /// PRNG seed; the same seed gives byte-identical files.
    #[arg(
        long,
        value_name = "S",
        default_value = "42",
        allow_negative_numbers = true
    )]
    pub seed: String,
    /// Share of rows (0..=1) given one defect a parser must survive.
    #[arg(
        long,
        value_name = "RATE",
        default_value = "0",
        allow_negative_numbers = true
    )]
    pub dirty: String,
    /// Generator threads (default: the allocation's or machine's CPUs); output is the same.
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub threads: Option<String>,
    /// No progress on stderr and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print expected.json's content on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

fn parse_whole<T: std::str::FromStr>(flag: &str, text: &str, what: &str) -> anyhow::Result<T> {
    text.trim()
        .parse::<T>()
        .ok()
        .with_context(|| format!("{flag}: expected {what}, got {text:?}"))
}

impl TaxiArgs {
    fn spec(&self) -> anyhow::Result<TaxiSpec> {
        let files: usize = parse_whole("--files", &self.files, "a whole number ≥ 1")?;
        if files == 0 {
            bail!("--files: expected a whole number ≥ 1, got {:?}", self.files);
        }
        if files > datagen::MAX_FILES {
            bail!(
                "--files: at most {} (months 2015-01 to 9999-12), got {files}",
                datagen::MAX_FILES
            );
        }
        let rows: u64 = parse_whole("--rows", &self.rows, "a whole number ≥ 0")?;
        let seed: u64 = parse_whole("--seed", &self.seed, "a whole number ≥ 0")?;
        let dirty: f64 = parse_whole("--dirty", &self.dirty, "a rate between 0 and 1")?;
        if !(0.0..=1.0).contains(&dirty) {
            bail!(
                "--dirty: expected a rate between 0 and 1, got {:?}",
                self.dirty
            );
        }
        let threads = match &self.threads {
            Some(t) => Some(parse_whole::<NonZeroUsize>(
                "--threads",
                t,
                "a whole number ≥ 1",
            )?),
            None => None,
        };
        Ok(TaxiSpec {
            out: self.out.clone(),
            files,
            rows_per_file: rows,
            seed,
            dirty_rate: dirty,
            threads: corral_core::threads::cpu_threads(threads),
        })
    }
}

/// Draws one `\r`-rewritten status line, at most ten times a second.
struct ProgressLine {
    start: Instant,
    last: std::cell::Cell<Option<Instant>>,
    drawn: std::cell::Cell<bool>,
}

impl ProgressLine {
    fn draw(&self, p: Progress) {
        let now = Instant::now();
        let done = p.rows_done == p.rows_total && p.files_done == p.files_total;
        if let Some(last) = self.last.get()
            && !done
            && now.duration_since(last) < Duration::from_millis(100)
        {
            return;
        }
        self.last.set(Some(now));
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-3);
        let pct = if p.rows_total == 0 {
            100.0
        } else {
            100.0 * p.rows_done as f64 / p.rows_total as f64
        };
        let mut err = std::io::stderr().lock();
        // Progress is a courtesy; a closed stderr must not fail the generation.
        let _ = write!(
            err,
            "\r\x1b[2K{} ({}/{})  {pct:5.1} %  {:.0} MB  {:.0} MB/s",
            datagen::file_name(p.file),
            p.files_done.min(p.files_total),
            p.files_total,
            p.bytes_done as f64 / 1e6,
            p.bytes_done as f64 / 1e6 / secs,
        );
        let _ = err.flush();
        self.drawn.set(true);
    }

    fn clear(&self) {
        if self.drawn.get() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

pub fn run(args: TaxiArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec()?;
    let start = Instant::now();
    let line = ProgressLine {
        start,
        last: std::cell::Cell::new(None),
        drawn: std::cell::Cell::new(false),
    };
    let show = !args.quiet && std::io::stderr().is_terminal();
    let result = datagen::generate(&spec, &|p| {
        if show {
            line.draw(p);
        }
    });
    line.clear();
    let expected = result?;
    let secs = start.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &expected)?;
        writeln!(out)?;
    } else if !args.quiet {
        writeln!(
            out,
            "wrote {} file{} ({} rows, {:.1} MB) to {} in {:.1} s ({:.0} MB/s, {} thread{}); counts in {}",
            expected.files.len(),
            if expected.files.len() == 1 { "" } else { "s" },
            expected.rows,
            expected.bytes as f64 / 1e6,
            spec.out.display(),
            secs,
            expected.bytes as f64 / 1e6 / secs.max(1e-3),
            spec.threads,
            if spec.threads.get() == 1 { "" } else { "s" },
            spec.out.join(datagen::EXPECTED_FILE).display(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
