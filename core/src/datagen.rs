//! The NYC-taxi CSV generator behind `corral gen taxi` and `corral demo`.
//!
//! [`generate`] writes `files` CSVs named `yellow_tripdata_YYYY-MM.csv` (file 0 is 2015-01, file
//! 12 is 2016-01, …) with the 2015 yellow-taxi header ([`HEADER`], 19 columns, `\n` line ends)
//! and `rows_per_file` data records each, plus `expected.json` ([`Expected`]) with the exact
//! answers an aggregation over them must give.
//!
//! Output is a pure function of (seed, files, rows_per_file, dirty_rate): rows are made in
//! chunks of [`CHUNK_ROWS`], each from its own PRNG stream seeded by (seed, file, chunk), on any
//! number of threads, and written in order. Changing [`CHUNK_ROWS`] or the PRNG changes the data.
//!
//! # `expected.json` semantics
//!
//! - `generator` (`"corral gen taxi"`), `format` (1; bumped when a meaning below changes),
//!   `seed`, `dirty_rate`, `rows_per_file`: what produced the files.
//! - `rows`: every data record written, good and bad (the header is not a record). A record is
//!   what an RFC 4180 parser returns: a quoted field may span lines, so records ≠ lines.
//! - `bytes`: total size of the CSV files, headers included; `files[i].bytes` per file.
//! - `payment_type`: per payment_type value, the number of records with exactly 19 fields — what
//!   a correct RFC 4180 parser counts as good rows for a count-only group-by on payment_type.
//!   Keys are the field's text after unquoting (`"2"` counts as `2`); only values that occur are
//!   listed (a group-by never yields a zero count). `files[i].payment_type` is the same per file.
//! - `fare_amount_sum_cents`: per payment_type, the exact sum in cents of `fare_amount` over
//!   records with 19 fields whose fare_amount is numeric. Same keys as `payment_type` (0 when
//!   every such record had a non-numeric fare).
//! - Numeric means matching `-?[0-9]+(\.[0-9]{1,2})?`. A `non_numeric_amount` record has a
//!   fare_amount that does not match: one of `N/A`, the empty field, `12.5.1`, `$12.50`. Such a
//!   record still has 19 fields and counts in `payment_type`; it is only left out of the sums.
//! - `bad_rows.wrong_field_count` = `defects.too_few_fields + defects.too_many_fields`: records
//!   with fewer (2–18) or more (20–22) fields. They are in `rows` and nowhere else.
//! - `defects`: how many records got each defect. A dirty record gets exactly one defect, so the
//!   sum of `defects` is the number of dirty records (≈ `rows × dirty_rate`):
//!   - `quoted_comma`: store_and_fwd_flag is a quoted field containing commas (19 fields kept);
//!   - `doubled_quote`: store_and_fwd_flag is quoted and contains `""`;
//!   - `embedded_newline`: store_and_fwd_flag is quoted and contains `\n` (sometimes `\r\n`);
//!   - `crlf`: the record ends in `\r\n` instead of `\n`;
//!   - `too_few_fields`, `too_many_fields`: see `bad_rows`;
//!   - `non_numeric_amount`: see above;
//!   - `quoted_payment_type`: payment_type is written quoted, `"2"`.
//!
//!   Every record is a well-formed RFC 4180 record (quotes balanced); the only records a strict
//!   19-column reader must reject are the wrong-field-count ones. pandas' `read_csv` differs on
//!   dirty files: it pads short rows with NaN (and counts their payment_type if present) and
//!   stops at long ones unless `on_bad_lines` is set; on clean files every reader agrees.
//!
//! Files appear only complete: each CSV is written as `.NAME.partial`, flushed to stable storage
//! and renamed when done; `expected.json` is removed first and written (also via a temporary
//! name) after all CSVs. A failed run removes its partial files and leaves no `expected.json`.

mod fmt;
mod rng;
mod rows;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError, mpsc};

use serde::{Deserialize, Serialize};

use rows::{ChunkStats, Month};

/// The 2015 yellow-taxi header, with its line end.
pub const HEADER: &str = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,\
trip_distance,pickup_longitude,pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,\
dropoff_latitude,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,\
improvement_surcharge,total_amount\n";
pub const COLUMNS: usize = 19;
pub const PAYMENT_TYPE_COLUMN: usize = 11;
pub const FARE_AMOUNT_COLUMN: usize = 12;
pub const EXPECTED_FILE: &str = "expected.json";
pub const GENERATOR: &str = "corral gen taxi";
pub const FORMAT: u32 = 1;
/// Rows per PRNG chunk; part of the output's definition (see the module doc).
pub const CHUNK_ROWS: u64 = 8192;
/// payment_type 1..5 counts in the 2015–16 data the grabdask training used: the weights.
pub const REAL_PAYMENT_TYPE_COUNTS: [u64; 5] = [137_641_498, 76_840_558, 773_472, 263_929, 34];
/// File 0 is 2015-01; the last 4-digit year ends the series.
pub const MAX_FILES: usize = (9999 - 2015 + 1) * 12;

/// What to generate.
#[derive(Clone, Debug)]
pub struct TaxiSpec {
    pub out: PathBuf,
    pub files: usize,
    pub rows_per_file: u64,
    pub seed: u64,
    /// Probability per record of one defect, 0..=1.
    pub dirty_rate: f64,
    /// Generator threads; the output does not depend on it.
    pub threads: NonZeroUsize,
}

impl TaxiSpec {
    /// The CLI's defaults: 1 file of 100 000 rows, seed 42, clean, all allowed CPUs.
    pub fn new(out: impl Into<PathBuf>) -> TaxiSpec {
        TaxiSpec {
            out: out.into(),
            files: 1,
            rows_per_file: 100_000,
            seed: 42,
            dirty_rate: 0.0,
            threads: crate::threads::cpu_threads(None),
        }
    }

    pub fn validate(&self) -> Result<(), GenError> {
        if self.files == 0 {
            return Err(GenError::InvalidSpec("files must be at least 1".into()));
        }
        if self.files > MAX_FILES {
            return Err(GenError::InvalidSpec(format!(
                "files must be at most {MAX_FILES} (the months 2015-01 to 9999-12)"
            )));
        }
        if !(0.0..=1.0).contains(&self.dirty_rate) {
            return Err(GenError::InvalidSpec(format!(
                "dirty rate must be between 0 and 1, got {}",
                self.dirty_rate
            )));
        }
        Ok(())
    }
}

/// `yellow_tripdata_YYYY-MM.csv` for file `index` (0 = 2015-01).
pub fn file_name(index: usize) -> String {
    format!("yellow_tripdata_{}.csv", Month::of_file(index).label())
}

/// Reported after every chunk written, from the thread that called [`generate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Index of the file being written (or just finished).
    pub file: usize,
    pub files_done: usize,
    pub files_total: usize,
    pub rows_done: u64,
    pub rows_total: u64,
    pub bytes_done: u64,
}

/// `expected.json`. Field meanings: see the module doc.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    pub generator: String,
    pub format: u32,
    pub seed: u64,
    pub dirty_rate: f64,
    pub rows_per_file: u64,
    pub files: Vec<FileEntry>,
    pub rows: u64,
    pub bytes: u64,
    pub payment_type: BTreeMap<String, u64>,
    pub fare_amount_sum_cents: BTreeMap<String, i64>,
    pub bad_rows: BadRows,
    pub defects: Defects,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub payment_type: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRows {
    pub wrong_field_count: u64,
}

/// Records per defect kind; one defect per dirty record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defects {
    pub quoted_comma: u64,
    pub doubled_quote: u64,
    pub embedded_newline: u64,
    pub crlf: u64,
    pub too_few_fields: u64,
    pub too_many_fields: u64,
    pub non_numeric_amount: u64,
    pub quoted_payment_type: u64,
}

impl Defects {
    fn add(&mut self, o: &Defects) {
        self.quoted_comma += o.quoted_comma;
        self.doubled_quote += o.doubled_quote;
        self.embedded_newline += o.embedded_newline;
        self.crlf += o.crlf;
        self.too_few_fields += o.too_few_fields;
        self.too_many_fields += o.too_many_fields;
        self.non_numeric_amount += o.non_numeric_amount;
        self.quoted_payment_type += o.quoted_payment_type;
    }

    pub fn total(&self) -> u64 {
        self.quoted_comma
            + self.doubled_quote
            + self.embedded_newline
            + self.crlf
            + self.too_few_fields
            + self.too_many_fields
            + self.non_numeric_amount
            + self.quoted_payment_type
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{0}")]
    InvalidSpec(String),
    #[error("output path {path} exists and is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot create output directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot rename {from} to {to}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove the stale {path}")]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a generator thread stopped before finishing its chunks")]
    WorkerLost,
    /// Another thread failed; its error is the one [`generate`] returns.
    #[error("generation stopped after an error")]
    Stopped,
}

/// Keys `"1"`..`"5"` for the payment types that occur (a group-by never yields a zero count).
fn payment_map<T: Copy>(counts: &[u64; 5], values: &[T; 5]) -> BTreeMap<String, T> {
    (0..5)
        .filter(|&i| counts[i] > 0)
        .map(|i| ((i + 1).to_string(), values[i]))
        .collect()
}

/// Writes the CSVs and `expected.json` into `spec.out` (created if missing); see the module doc.
pub fn generate(spec: &TaxiSpec, progress: &dyn Fn(Progress)) -> Result<Expected, GenError> {
    spec.validate()?;
    prepare_dir(&spec.out)?;
    // An old expected.json must not vouch for files this run is about to replace.
    let expected_path = spec.out.join(EXPECTED_FILE);
    match fs::remove_file(&expected_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(GenError::RemoveStale {
                path: expected_path,
                source,
            });
        }
    }

    let chunks_per_file = spec.rows_per_file.div_ceil(CHUNK_ROWS).max(1);
    let total_chunks = spec.files as u64 * chunks_per_file;
    let threads = spec.threads.get().min(total_chunks as usize).max(1);
    let shared = Shared {
        next_claim: AtomicU64::new(0),
        gate: Mutex::new(Gate {
            next_write: 0,
            abort: false,
        }),
        gate_cv: Condvar::new(),
        pool: Mutex::new(Vec::new()),
        // Enough chunks in flight to keep every thread busy while the writer catches up, few
        // enough that memory stays bounded (~1.3 MB each) when the disk is slow.
        window: 2 * threads as u64 + 2,
    };
    let months: Vec<Month> = (0..spec.files).map(Month::of_file).collect();

    let files = std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<Done>();
        for _ in 0..threads {
            let tx = tx.clone();
            let shared = &shared;
            let months = &months;
            s.spawn(move || worker(spec, shared, months, chunks_per_file, total_chunks, tx));
        }
        drop(tx);
        let (finish_tx, finish_rx) = mpsc::channel::<OpenFile>();
        let finisher = {
            let shared = &shared;
            s.spawn(move || finisher(&spec.out, shared, finish_rx))
        };
        let mut w = Writer {
            spec,
            shared: &shared,
            chunks_per_file,
            open: None,
            finisher: finish_tx,
            files_written: 0,
            rows_done: 0,
            bytes_done: 0,
        };
        let written = w.run(rx, total_chunks, progress);
        if written.is_err() {
            shared.abort();
            if let Some(open) = w.open.take() {
                drop(open.file);
                // Best effort: the run already failed with the error that matters.
                let _ = fs::remove_file(&open.partial);
            }
        }
        // Closes the finisher's queue so it returns once the files handed over are done.
        drop(w);
        let finished = match finisher.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match (written, finished) {
            // The finisher's error is the cause when the writer only stopped because of it.
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(files)) => Ok(files),
        }
    })?;

    let mut total = ChunkStats::default();
    let mut bytes = 0;
    let mut entries = Vec::with_capacity(files.len());
    for f in files {
        total.add(&f.stats);
        bytes += f.bytes;
        entries.push(FileEntry {
            payment_type: payment_map(&f.stats.payment, &f.stats.payment),
            name: f.name,
            rows: f.stats.rows,
            bytes: f.bytes,
        });
    }
    let expected = Expected {
        generator: GENERATOR.to_string(),
        format: FORMAT,
        seed: spec.seed,
        dirty_rate: spec.dirty_rate,
        rows_per_file: spec.rows_per_file,
        files: entries,
        rows: total.rows,
        bytes,
        payment_type: payment_map(&total.payment, &total.payment),
        fare_amount_sum_cents: payment_map(&total.payment, &total.fare_cents),
        bad_rows: BadRows {
            wrong_field_count: total.defects.too_few_fields + total.defects.too_many_fields,
        },
        defects: total.defects,
    };
    let mut json = serde_json::to_vec_pretty(&expected).map_err(|e| GenError::Write {
        path: expected_path.clone(),
        source: e.into(),
    })?;
    json.push(b'\n');
    write_atomically(&spec.out, EXPECTED_FILE, &json)?;
    Ok(expected)
}

fn prepare_dir(dir: &Path) -> Result<(), GenError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(GenError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(_) => fs::create_dir_all(dir).map_err(|source| GenError::CreateDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.partial"))
}

/// Creates a `.partial` file afresh: a leftover of ours is removed first, and the new one is
/// created exclusively and without following a symlink, so a link planted under that name in
/// a shared output directory cannot make us write somewhere else.
fn create_partial(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn write_atomically(dir: &Path, name: &str, data: &[u8]) -> Result<(), GenError> {
    let partial = partial_path(dir, name);
    let write = || -> std::io::Result<()> {
        let mut f = create_partial(&partial)?;
        f.write_all(data)?;
        f.sync_all()
    };
    if let Err(source) = write() {
        let _ = fs::remove_file(&partial);
        return Err(GenError::Write {
            path: partial,
            source,
        });
    }
    let to = dir.join(name);
    fs::rename(&partial, &to).map_err(|source| GenError::Rename {
        from: partial,
        to,
        source,
    })
}

struct Gate {
    /// Chunks below this are written.
    next_write: u64,
    abort: bool,
}

struct Shared {
    next_claim: AtomicU64,
    gate: Mutex<Gate>,
    gate_cv: Condvar,
    /// Written chunk buffers, reused so steady state allocates (and page-faults) nothing.
    pool: Mutex<Vec<Vec<u8>>>,
    window: u64,
}

impl Shared {
    fn abort(&self) {
        self.gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort = true;
        self.gate_cv.notify_all();
    }
}

struct Done {
    index: u64,
    buf: Vec<u8>,
    stats: ChunkStats,
}

fn worker(
    spec: &TaxiSpec,
    shared: &Shared,
    months: &[Month],
    chunks_per_file: u64,
    total_chunks: u64,
    tx: mpsc::Sender<Done>,
) {
    loop {
        let index = shared.next_claim.fetch_add(1, Ordering::Relaxed);
        if index >= total_chunks {
            return;
        }
        {
            let mut g = shared.gate.lock().unwrap_or_else(PoisonError::into_inner);
            while !g.abort && index >= g.next_write + shared.window {
                g = shared
                    .gate_cv
                    .wait(g)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if g.abort {
                return;
            }
        }
        let file = (index / chunks_per_file) as usize;
        let chunk = index % chunks_per_file;
        let rows = (spec.rows_per_file - chunk * CHUNK_ROWS).min(CHUNK_ROWS);
        let mut buf = shared
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        buf.clear();
        buf.reserve(rows as usize * 170);
        let stats = rows::fill_chunk(
            &mut buf,
            &months[file],
            spec.seed,
            file,
            chunk,
            rows,
            spec.dirty_rate,
        );
        if tx.send(Done { index, buf, stats }).is_err() {
            return;
        }
    }
}

struct OpenFile {
    file: File,
    partial: PathBuf,
    name: String,
    bytes: u64,
    stats: ChunkStats,
}

struct FileDone {
    name: String,
    bytes: u64,
    stats: ChunkStats,
}

struct Writer<'a> {
    spec: &'a TaxiSpec,
    shared: &'a Shared,
    chunks_per_file: u64,
    open: Option<OpenFile>,
    /// Completed files go here to be flushed and renamed while the next one is written.
    finisher: mpsc::Sender<OpenFile>,
    files_written: usize,
    rows_done: u64,
    bytes_done: u64,
}

impl Writer<'_> {
    fn run(
        &mut self,
        rx: mpsc::Receiver<Done>,
        total_chunks: u64,
        progress: &dyn Fn(Progress),
    ) -> Result<(), GenError> {
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next = 0u64;
        for done in rx {
            pending.insert(done.index, done);
            while let Some(done) = pending.remove(&next) {
                self.write_chunk(done)?;
                next += 1;
                {
                    let mut g = self
                        .shared
                        .gate
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if g.abort {
                        return Err(GenError::Stopped);
                    }
                    g.next_write = next;
                }
                self.shared.gate_cv.notify_all();
                let file = ((next - 1) / self.chunks_per_file) as usize;
                progress(Progress {
                    file,
                    files_done: self.files_written,
                    files_total: self.spec.files,
                    rows_done: self.rows_done,
                    rows_total: self.spec.rows_per_file * self.spec.files as u64,
                    bytes_done: self.bytes_done,
                });
            }
        }
        if next == total_chunks {
            Ok(())
        } else {
            Err(GenError::WorkerLost)
        }
    }

    fn write_chunk(&mut self, done: Done) -> Result<(), GenError> {
        let file_index = (done.index / self.chunks_per_file) as usize;
        let last_chunk = done.index % self.chunks_per_file == self.chunks_per_file - 1;
        let open = match self.open.take() {
            Some(open) => self.open.insert(open),
            None => {
                let name = file_name(file_index);
                let partial = partial_path(&self.spec.out, &name);
                let file = create_partial(&partial).map_err(|source| GenError::Write {
                    path: partial.clone(),
                    source,
                })?;
                self.open.insert(OpenFile {
                    file,
                    partial,
                    name,
                    bytes: 0,
                    stats: ChunkStats::default(),
                })
            }
        };
        let header: &[u8] = if open.bytes == 0 {
            HEADER.as_bytes()
        } else {
            b""
        };
        open.file
            .write_all(header)
            .and_then(|()| open.file.write_all(&done.buf))
            .map_err(|source| GenError::Write {
                path: open.partial.clone(),
                source,
            })?;
        open.bytes += header.len() as u64;
        self.bytes_done += header.len() as u64;
        open.bytes += done.buf.len() as u64;
        open.stats.add(&done.stats);
        self.bytes_done += done.buf.len() as u64;
        self.rows_done += done.stats.rows;
        self.shared
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(done.buf);
        if last_chunk && let Some(open) = self.open.take() {
            self.files_written += 1;
            if let Err(mpsc::SendError(open)) = self.finisher.send(open) {
                // The finisher only hangs up after failing; its error is reported.
                drop(open.file);
                let _ = fs::remove_file(&open.partial);
                return Err(GenError::Stopped);
            }
        }
        Ok(())
    }
}

/// Flushes each completed file to stable storage and renames it into place, in order.
///
/// Network filesystems (NFS home directories, quotas) may report ENOSPC/EDQUOT only on flush,
/// so a file is not given its final name before the data is on the server. Doing it here, not
/// in the writer, overlaps the wait for the disk with generating the next file.
fn finisher(
    dir: &Path,
    shared: &Shared,
    rx: mpsc::Receiver<OpenFile>,
) -> Result<Vec<FileDone>, GenError> {
    let mut done = Vec::new();
    let mut failed = None;
    for open in rx {
        if failed.is_some() {
            drop(open.file);
            let _ = fs::remove_file(&open.partial);
            continue;
        }
        let to = dir.join(&open.name);
        let result = match open.file.sync_data() {
            Err(source) => Err(GenError::Write {
                path: open.partial.clone(),
                source,
            }),
            Ok(()) => fs::rename(&open.partial, &to).map_err(|source| GenError::Rename {
                from: open.partial.clone(),
                to,
                source,
            }),
        };
        match result {
            Ok(()) => done.push(FileDone {
                name: open.name,
                bytes: open.bytes,
                stats: open.stats,
            }),
            Err(e) => {
                drop(open.file);
                let _ = fs::remove_file(&open.partial);
                shared.abort();
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_planted_as_the_partial_file_is_not_followed() {
        let d = tempfile::tempdir().expect("tmp");
        let victim = d.path().join("victim");
        fs::write(&victim, "precious").expect("write");
        let partial = partial_path(d.path(), "x.csv");
        std::os::unix::fs::symlink(&victim, &partial).expect("symlink");
        let mut f = create_partial(&partial).expect("create");
        f.write_all(b"generated").expect("write");
        assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");
        assert_eq!(fs::read_to_string(&partial).expect("read"), "generated");
        assert!(
            !fs::symlink_metadata(&partial)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
    }

    fn spec(dir: &Path, files: usize, rows: u64, dirty: f64, threads: usize) -> TaxiSpec {
        TaxiSpec {
            out: dir.to_path_buf(),
            files,
            rows_per_file: rows,
            seed: 42,
            dirty_rate: dirty,
            threads: NonZeroUsize::new(threads).unwrap_or(NonZeroUsize::MIN),
        }
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    fn read_expected(dir: &Path) -> Expected {
        let text = fs::read(dir.join(EXPECTED_FILE)).expect("expected.json");
        serde_json::from_slice(&text).expect("expected.json parses")
    }

    /// `-?[0-9]+(\.[0-9]{1,2})?` in cents, as the module doc defines "numeric".
    fn cents(text: &[u8]) -> Option<i64> {
        let (neg, t) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let (int, frac) = match t.iter().position(|&b| b == b'.') {
            Some(p) => (&t[..p], Some(&t[p + 1..])),
            None => (t, None),
        };
        if int.is_empty() || !int.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut c: i64 = std::str::from_utf8(int).ok()?.parse::<i64>().ok()? * 100;
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 2 || !f.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v: i64 = std::str::from_utf8(f).ok()?.parse().ok()?;
            c += if f.len() == 1 { v * 10 } else { v };
        }
        Some(if neg { -c } else { c })
    }

    /// What an RFC 4180 parser (the `csv` crate) finds in the files, in expected.json's terms.
    #[derive(Debug, Default)]
    struct Oracle {
        rows: u64,
        payment: BTreeMap<String, u64>,
        fare: BTreeMap<String, i64>,
        too_few: u64,
        too_many: u64,
        non_numeric: u64,
        commas: u64,
        quotes: u64,
        newlines: u64,
        crlf_lines: u64,
        quoted_payment: u64,
    }

    fn oracle(dir: &Path, exp: &Expected) -> Oracle {
        let mut o = Oracle::default();
        for f in &exp.files {
            let raw = fs::read(dir.join(&f.name)).expect("csv file");
            assert_eq!(raw.len() as u64, f.bytes, "{}", f.name);
            assert!(raw.starts_with(HEADER.as_bytes()));
            let mut embedded_crlf = 0;
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_reader(raw.as_slice());
            let mut file_rows = 0;
            for rec in rdr.byte_records() {
                let rec = rec.expect("every record is well-formed RFC 4180");
                file_rows += 1;
                match rec.len() {
                    n if n < COLUMNS => o.too_few += 1,
                    n if n > COLUMNS => o.too_many += 1,
                    _ => {
                        let key = String::from_utf8_lossy(&rec[PAYMENT_TYPE_COLUMN]).into_owned();
                        *o.payment.entry(key.clone()).or_default() += 1;
                        let fare = o.fare.entry(key).or_default();
                        match cents(&rec[FARE_AMOUNT_COLUMN]) {
                            Some(c) => *fare += c,
                            None => o.non_numeric += 1,
                        }
                        let flag = &rec[8];
                        if flag.contains(&b',') {
                            o.commas += 1;
                        }
                        if flag.contains(&b'"') {
                            o.quotes += 1;
                        }
                        if flag.contains(&b'\n') {
                            o.newlines += 1;
                        }
                        if flag.contains(&b'\r') {
                            embedded_crlf += 1;
                        }
                    }
                }
            }
            assert_eq!(file_rows, f.rows, "{}", f.name);
            o.rows += file_rows;
            let crlf_total = raw.windows(2).filter(|w| w == b"\r\n").count() as u64;
            o.crlf_lines += crlf_total - embedded_crlf;
            for d in b'1'..=b'5' {
                let pat = [b',', b'"', d, b'"', b','];
                o.quoted_payment += raw.windows(5).filter(|w| *w == pat).count() as u64;
            }
        }
        o
    }

    #[test]
    fn dirty_files_agree_with_an_rfc4180_parser() {
        let dir = tempdir();
        // 10 000 rows: one full chunk and one partial one per file.
        let exp = generate(&spec(dir.path(), 2, 10_000, 0.2, 2), &|_| {}).expect("generate");
        assert_eq!(exp, read_expected(dir.path()));
        let o = oracle(dir.path(), &exp);
        assert_eq!(o.rows, exp.rows);
        assert_eq!(exp.rows, 20_000);
        assert_eq!(o.payment, exp.payment_type);
        assert_eq!(o.fare, exp.fare_amount_sum_cents);
        let d = &exp.defects;
        assert_eq!(o.too_few, d.too_few_fields);
        assert_eq!(o.too_many, d.too_many_fields);
        assert_eq!(exp.bad_rows.wrong_field_count, o.too_few + o.too_many);
        assert_eq!(o.non_numeric, d.non_numeric_amount);
        assert_eq!(o.commas, d.quoted_comma);
        assert_eq!(o.quotes, d.doubled_quote);
        assert_eq!(o.newlines, d.embedded_newline);
        assert_eq!(o.crlf_lines, d.crlf);
        assert_eq!(o.quoted_payment, d.quoted_payment_type);
        // One defect per dirty row, each kind used, at about the asked rate.
        let dirty = d.total();
        assert!((3_400..4_600).contains(&dirty), "{d:?}");
        for n in [
            d.quoted_comma,
            d.doubled_quote,
            d.embedded_newline,
            d.crlf,
            d.too_few_fields,
            d.too_many_fields,
            d.non_numeric_amount,
            d.quoted_payment_type,
        ] {
            assert!(n > 300, "{d:?}");
        }
        let good: u64 = exp.payment_type.values().sum();
        assert_eq!(good + exp.bad_rows.wrong_field_count, exp.rows);
        let per_file: u64 = exp.files.iter().flat_map(|f| f.payment_type.values()).sum();
        assert_eq!(per_file, good);
        // No temporary files left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn clean_files_agree_with_an_rfc4180_parser() {
        let dir = tempdir();
        let exp = generate(&spec(dir.path(), 1, 20_000, 0.0, 2), &|_| {}).expect("generate");
        let o = oracle(dir.path(), &exp);
        assert_eq!(o.payment, exp.payment_type);
        assert_eq!(o.fare, exp.fare_amount_sum_cents);
        assert_eq!(exp.defects, Defects::default());
        assert_eq!(exp.bad_rows.wrong_field_count, 0);
        assert_eq!(o.crlf_lines, 0);
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let (a, b) = (tempdir(), tempdir());
        let ea = generate(&spec(a.path(), 3, 20_000, 0.05, 1), &|_| {}).expect("generate");
        let eb = generate(&spec(b.path(), 3, 20_000, 0.05, 5), &|_| {}).expect("generate");
        assert_eq!(ea, eb);
        for f in &ea.files {
            let x = fs::read(a.path().join(&f.name)).expect("a");
            let y = fs::read(b.path().join(&f.name)).expect("b");
            assert!(x == y, "{} differs", f.name);
        }
        assert_eq!(
            fs::read(a.path().join(EXPECTED_FILE)).expect("a"),
            fs::read(b.path().join(EXPECTED_FILE)).expect("b")
        );
    }

    /// Pins the bytes: a change here changes every dataset users and tests have generated.
    #[test]
    fn seed_42_is_pinned() {
        let dir = tempdir();
        let exp = generate(&spec(dir.path(), 1, 1000, 0.1, 2), &|_| {}).expect("generate");
        let raw = fs::read(dir.path().join("yellow_tripdata_2015-01.csv")).expect("csv");
        // FNV-1a, 64 bit.
        let hash = raw.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        assert_eq!((exp.bytes, hash), (PINNED_BYTES, PINNED_HASH));
    }
    const PINNED_BYTES: u64 = 153_718;
    const PINNED_HASH: u64 = 6_150_149_013_202_754_629;

    #[test]
    fn values_look_like_the_2015_files() {
        let dir = tempdir();
        let rows = 100_000u64;
        let exp = generate(&spec(dir.path(), 14, rows / 14, 0.0, 2), &|_| {}).expect("generate");
        let data_bytes: u64 = exp.bytes - 14 * HEADER.len() as u64;
        let per_row = data_bytes as f64 / exp.rows as f64;
        assert!((150.0..156.0).contains(&per_row), "{per_row} bytes per row");

        let share =
            |k: &str| exp.payment_type.get(k).copied().unwrap_or(0) as f64 / exp.rows as f64;
        assert!((share("1") - 0.6386).abs() < 0.01, "{:?}", exp.payment_type);
        assert!((share("2") - 0.3565).abs() < 0.01, "{:?}", exp.payment_type);
        assert!(
            share("3") > 0.001 && share("3") < 0.007,
            "{:?}",
            exp.payment_type
        );

        // File 13 is February 2016, a leap month.
        let f = &exp.files[13];
        assert_eq!(f.name, "yellow_tripdata_2016-02.csv");
        let raw = fs::read_to_string(dir.path().join(&f.name)).expect("csv");
        let mut zero_coords = 0;
        let mut lines = 0;
        for line in raw.lines().skip(1) {
            lines += 1;
            let v: Vec<&str> = line.split(',').collect();
            assert_eq!(v.len(), COLUMNS, "{line}");
            assert!(v[0] == "1" || v[0] == "2", "{line}");
            let (p, d) = (v[1], v[2]);
            assert!(
                p.starts_with("2016-02-") && d.starts_with("2016-02-"),
                "{line}"
            );
            assert_eq!(p.len(), 19);
            assert!(p[8..10] <= *"29" && d > p, "{line}");
            assert!(("1"..="6").contains(&v[3]), "{line}");
            let dist = v[4].split_once('.').expect("two decimals");
            assert_eq!(dist.1.len(), 2, "{line}");
            for c in [v[5], v[6], v[9], v[10]] {
                if c == "0" {
                    zero_coords += 1;
                    continue;
                }
                let (_, decimals) = c.split_once('.').unwrap_or((c, ""));
                assert!(decimals.len() <= 15, "{line}");
            }
            assert!(v[8] == "N" || v[8] == "Y", "{line}");
            let parts: Vec<i64> = v[12..19]
                .iter()
                .map(|a| cents(a.as_bytes()).expect("amount"))
                .collect();
            for a in &v[12..19] {
                assert!(!(a.contains('.') && a.ends_with('0')), "{line}");
            }
            assert_eq!(parts[..6].iter().sum::<i64>(), parts[6], "{line}");
        }
        assert_eq!(lines, f.rows);
        let zero_share = zero_coords as f64 / (4.0 * lines as f64);
        assert!((0.01..0.03).contains(&zero_share), "{zero_share}");
    }

    #[test]
    fn bad_specs_and_paths_are_refused() {
        let dir = tempdir();
        assert!(matches!(
            generate(&spec(dir.path(), 0, 10, 0.0, 1), &|_| {}),
            Err(GenError::InvalidSpec(_))
        ));
        assert!(matches!(
            generate(&spec(dir.path(), 1, 10, 1.5, 1), &|_| {}),
            Err(GenError::InvalidSpec(_))
        ));
        assert!(matches!(
            generate(&spec(dir.path(), 1, 10, f64::NAN, 1), &|_| {}),
            Err(GenError::InvalidSpec(_))
        ));
        let file = dir.path().join("plain");
        fs::write(&file, b"x").expect("write");
        assert!(matches!(
            generate(&spec(&file, 1, 10, 0.0, 1), &|_| {}),
            Err(GenError::NotADirectory { .. })
        ));
        assert!(matches!(
            generate(&spec(&file.join("sub"), 1, 10, 0.0, 1), &|_| {}),
            Err(GenError::CreateDir { .. })
        ));
    }

    /// A file that cannot be put in place (its name is taken by a directory) stops the run,
    /// and nothing half-written or unvouched-for is left behind.
    #[test]
    fn a_failure_while_finishing_a_file_stops_the_run_cleanly() {
        let dir = tempdir();
        let blocker = dir.path().join("yellow_tripdata_2015-02.csv");
        fs::create_dir(&blocker).expect("mkdir");
        fs::write(blocker.join("keep"), b"x").expect("write");
        let r = generate(&spec(dir.path(), 4, 20_000, 0.0, 2), &|_| {});
        assert!(matches!(r, Err(GenError::Rename { .. })), "{r:?}");
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
        assert!(!names.iter().any(|n| n == EXPECTED_FILE), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("2015-04")), "{names:?}");
    }

    #[test]
    fn zero_rows_give_header_only_files_and_progress_ends_at_the_total() {
        let dir = tempdir();
        let last = std::cell::Cell::new(None);
        let exp = generate(&spec(&dir.path().join("new/sub"), 2, 0, 0.0, 2), &|p| {
            last.set(Some(p))
        })
        .expect("generate");
        assert_eq!(exp.rows, 0);
        assert!(exp.payment_type.is_empty());
        assert_eq!(exp.bytes, 2 * HEADER.len() as u64);
        let raw = fs::read(dir.path().join("new/sub/yellow_tripdata_2015-02.csv")).expect("csv");
        assert_eq!(raw, HEADER.as_bytes());
        let p = last.get().expect("progress was reported");
        assert_eq!((p.files_done, p.rows_done, p.bytes_done), (2, 0, exp.bytes));
    }

    #[test]
    fn file_names_run_through_the_years() {
        assert_eq!(file_name(0), "yellow_tripdata_2015-01.csv");
        assert_eq!(file_name(11), "yellow_tripdata_2015-12.csv");
        assert_eq!(file_name(12), "yellow_tripdata_2016-01.csv");
        assert_eq!(file_name(MAX_FILES - 1), "yellow_tripdata_9999-12.csv");
    }
}
