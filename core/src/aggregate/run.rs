//! Running partitions: opening files (memory map, or plain reads when mapping fails), the
//! walker over a partition, change detection, threads, and the whole-query driver.

use std::fs::File;
use std::num::NonZeroUsize;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::mmap::{self, Isa, MappedFile};

use super::error::AggError;
use super::merge::{check_parities, finish};
use super::partial::{Acc, AccSink, Partial, SpanStats, Spec};
use super::plan::{LOCAL_PARTITION_BYTES, Parity, Partition, Plan, PlannedFile};
use super::result::QueryResult;
use super::scan::{Resume, ScanArgs};

/// Bytes read at a time on the plain-read path.
const READ_CHUNK: u64 = 8 << 20;

enum Source {
    Mapped(MappedFile),
    Read(File),
}

/// The files of a plan, opened lazily and shared by the threads that compute its partitions.
pub struct Inputs<'p> {
    plan: &'p Plan,
    spec: Spec,
    isa: Isa,
    mmap: bool,
    /// Test hook: sleep after each partition (lets a test change a file mid-query).
    delay: Option<Duration>,
    read_chunk: u64,
    files: Vec<Mutex<Option<Arc<Source>>>>,
}

impl<'p> Inputs<'p> {
    pub fn new(plan: &'p Plan) -> Inputs<'p> {
        Inputs {
            plan,
            spec: Spec::new(plan),
            isa: Isa::best(),
            mmap: true,
            delay: None,
            read_chunk: READ_CHUNK,
            files: plan.files.iter().map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Use plain reads instead of memory maps.
    pub fn with_mmap(mut self, mmap: bool) -> Self {
        self.mmap = mmap;
        self
    }

    /// Use this instruction set (tests compare them); falls back if the CPU lacks it.
    pub fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    /// Bytes per read on the plain-read path (tests use tiny ones).
    pub fn with_read_chunk(mut self, bytes: u64) -> Self {
        self.read_chunk = bytes.max(1);
        self
    }

    #[doc(hidden)]
    pub fn with_delay(mut self, delay: Option<Duration>) -> Self {
        self.delay = delay;
        self
    }

    fn source(&self, f: usize) -> Result<Arc<Source>, AggError> {
        let mut slot = self.files[f].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = &*slot {
            return Ok(Arc::clone(s));
        }
        let pf = &self.plan.files[f];
        let changed = |truncated| AggError::FileChanged {
            path: pf.path.clone(),
            truncated,
        };
        // Non-blocking, and checked on the descriptor: a file swapped for a FIFO is an error
        // naming it, not a thread blocked forever.
        let file = super::open::open_planned(pf)?;
        let src = if self.mmap {
            match MappedFile::open(&file) {
                Ok(m) if m.bytes().len() as u64 == pf.size => Source::Mapped(m),
                Ok(_) => return Err(changed(false)),
                Err(e) => {
                    tracing::debug!("{}: not mapped ({e}); reading instead", pf.path.display());
                    Source::Read(file)
                }
            }
        } else {
            Source::Read(file)
        };
        let src = Arc::new(src);
        *slot = Some(Arc::clone(&src));
        Ok(src)
    }

    /// Computes one partition: the records starting in `[start, end)`, under its parity.
    pub fn run_partition(&self, part: &Partition) -> Result<Partial, AggError> {
        let bad = || AggError::UnknownPartition {
            file: part.file,
            start: part.start,
            end: part.end,
        };
        let pf = self.plan.files.get(part.file).ok_or_else(bad)?;
        if part.start < pf.data_start || part.end > pf.size || part.start > part.end {
            return Err(bad());
        }
        let mut acc = Acc::new(&self.spec, part.file, part.start);
        let (end_parity, newlines) = if part.is_empty() {
            (part.parity, 0)
        } else {
            let src = self.source(part.file)?;
            let counts = match &*src {
                Source::Mapped(m) => self.scan_mapped(m, pf, part, &mut acc),
                Source::Read(f) => self.scan_read(f, pf, part, &mut acc)?,
            };
            if let Source::Mapped(m) = &*src
                && m.changed()
            {
                return Err(AggError::FileChanged {
                    path: pf.path.clone(),
                    truncated: true,
                });
            }
            counts
        };
        pf.check_unchanged()?;
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        Ok(acc.into_partial(SpanStats {
            file: part.file,
            start: part.start,
            end: part.end,
            parity: part.parity,
            end_parity,
            newlines,
        }))
    }

    /// Where the walk starts: at the data start a record begins; elsewhere the walk looks at
    /// the byte before `start` too (a record starts at `start` if that byte is an unquoted
    /// newline). The assumed state is at `start`; the state before that byte differs from it
    /// only when that byte is a quote: it opened (`Odd`), closed (`Even`) or was literal.
    fn entry(&self, pf: &PlannedFile, part: &Partition, before: Option<u8>) -> (u64, Resume) {
        match before {
            Some(b) if part.start > pf.data_start => {
                let (in_quote, open_ok) = match (b == b'"', part.parity) {
                    (false, p) => (p.is_odd(), true),
                    (true, Parity::Odd) => (false, true),
                    (true, Parity::Even) => (true, true),
                    (true, Parity::AfterLiteralQuote) => (false, false),
                };
                (part.start - 1, Resume::Seek { in_quote, open_ok })
            }
            _ => (part.start, Resume::AtRecord),
        }
    }

    fn scan_mapped(
        &self,
        m: &MappedFile,
        pf: &PlannedFile,
        part: &Partition,
        acc: &mut Acc<'_>,
    ) -> (Parity, u64) {
        let data = m.bytes();
        let before = part
            .start
            .checked_sub(1)
            .and_then(|i| data.get(i as usize).copied());
        let (from, mode) = self.entry(pf, part, before);
        let args = ScanArgs {
            data,
            base: 0,
            eof: true,
            from,
            mode,
            end: part.end,
            stats_from: part.start,
            field_count: self.spec.field_count,
            events: &self.spec.events,
        };
        let out = mmap::scan(self.isa, &args, &mut AccSink { acc, data, base: 0 });
        m.release(part.start as usize, part.len() as usize);
        (out.end_parity.unwrap_or(part.parity), out.newlines)
    }

    fn scan_read(
        &self,
        f: &File,
        pf: &PlannedFile,
        part: &Partition,
        acc: &mut Acc<'_>,
    ) -> Result<(Parity, u64), AggError> {
        let mut chunk = self.read_chunk;
        let mut buf: Vec<u8> = Vec::new();
        let mut from = if part.start > pf.data_start {
            part.start - 1
        } else {
            part.start
        };
        let mut mode = None;
        let mut stats_from = part.start;
        let (mut end_parity, mut newlines) = (part.parity, 0);
        loop {
            let want = chunk.min(pf.size - from) as usize;
            buf.resize(want, 0);
            f.read_exact_at(&mut buf, from)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => AggError::FileChanged {
                        path: pf.path.clone(),
                        truncated: true,
                    },
                    _ => AggError::Unreadable {
                        path: pf.path.clone(),
                        source: e,
                    },
                })?;
            let mode_now = match mode {
                Some(m) => m,
                None => {
                    self.entry(
                        pf,
                        part,
                        if from < part.start {
                            buf.first().copied()
                        } else {
                            None
                        },
                    )
                    .1
                }
            };
            let args = ScanArgs {
                data: &buf,
                base: from,
                eof: from + want as u64 == pf.size,
                from,
                mode: mode_now,
                end: part.end,
                stats_from,
                field_count: self.spec.field_count,
                events: &self.spec.events,
            };
            let out = mmap::scan(
                self.isa,
                &args,
                &mut AccSink {
                    acc,
                    data: &buf,
                    base: from,
                },
            );
            if let Some(p) = out.end_parity {
                end_parity = p;
            }
            newlines += out.newlines;
            let Some((resume, next_mode)) = out.next else {
                break;
            };
            if acc.wants_lines() {
                acc.advance_lines(&buf, from, resume);
            }
            stats_from = from + want as u64;
            if resume == from {
                // One record longer than the buffer: read more of it at once.
                chunk = chunk.saturating_mul(2);
            }
            from = resume;
            mode = Some(next_mode);
        }
        Ok((end_parity, newlines))
    }

    /// Computes `parts` on `threads` threads (an atomic index hands them out in order), and
    /// returns their partials in the same order. The first failure stops the others.
    pub fn run_partitions(
        &self,
        parts: &[Partition],
        threads: NonZeroUsize,
    ) -> Result<Vec<Partial>, AggError> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Vec<Mutex<Option<Result<Partial, AggError>>>> =
            parts.iter().map(|_| Mutex::new(None)).collect();
        let n = threads.get().min(parts.len()).max(1);
        let worker = || {
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = parts.get(i) else { break };
                let r = self.run_partition(p);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            }
        };
        let panicked = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n).map(|_| s.spawn(worker)).collect();
            handles.into_iter().map(|h| h.join()).any(|r| r.is_err())
        });
        if panicked {
            return Err(AggError::WorkerPanicked);
        }
        let mut out = Vec::with_capacity(parts.len());
        let mut missing = false;
        for r in results {
            match r.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(Ok(p)) => out.push(p),
                Some(Err(e)) => return Err(e),
                None => missing = true,
            }
        }
        if missing {
            return Err(AggError::WorkerPanicked);
        }
        Ok(out)
    }

    /// Computes one (large) partition with all `threads`: cuts it into pieces of `piece_bytes`,
    /// fixes the pieces' parities relative to the partition's own, and merges them. The result
    /// carries one span per piece, all consistent with `part.parity` (what an agent does with
    /// a partition it is handed).
    pub fn run_partition_threads(
        &self,
        part: &Partition,
        threads: NonZeroUsize,
        piece_bytes: u64,
    ) -> Result<Partial, AggError> {
        let pieces = part.split(piece_bytes);
        let mut partials = self.run_partitions(&pieces, threads)?;
        // A piece's end state is only known once its start state is right, so the pieces are
        // confirmed in order; the (rare) wrong ones are re-run on the spot.
        let mut truth = part.parity;
        for p in partials.iter_mut() {
            let Some(s) = p.spans.first().copied() else {
                continue;
            };
            if s.parity != truth {
                *p = self.run_partition(&Partition {
                    parity: truth,
                    ..s.partition()
                })?;
            }
            truth = p.spans.first().map_or(truth, |s| s.end_parity);
        }
        let mut merger = super::merge::Merger::default();
        for p in partials {
            merger.add(p);
        }
        Ok(merger.into_partial())
    }
}

/// Computes one partition of `plan` (opening its file just for this).
pub fn run_partition(plan: &Plan, part: &Partition) -> Result<Partial, AggError> {
    Inputs::new(plan).run_partition(part)
}

/// How a single process runs a whole query.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub threads: NonZeroUsize,
    /// Memory-map files (else plain reads).
    pub mmap: bool,
    /// Instruction set of the scanner; None = the best this CPU has.
    pub isa: Option<Isa>,
    #[doc(hidden)]
    pub delay: Option<Duration>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            threads: crate::threads::cpu_threads(None),
            mmap: true,
            isa: None,
            delay: None,
        }
    }
}

/// Runs a whole plan in this process: every partition on `threads` threads, re-runs of the
/// (rare) partitions whose split fell inside a quoted field, then [`finish`].
pub fn execute(plan: &Plan, opts: &ExecOptions) -> Result<QueryResult, AggError> {
    let inputs = Inputs::new(plan)
        .with_mmap(opts.mmap)
        .with_delay(opts.delay);
    execute_with(plan, &inputs, opts.threads)
}

/// [`execute`] with prepared inputs (tests pick the instruction set or the read path).
pub fn execute_with(
    plan: &Plan,
    inputs: &Inputs<'_>,
    threads: NonZeroUsize,
) -> Result<QueryResult, AggError> {
    let mut partials = inputs.run_partitions(&plan.partitions, threads)?;
    // Each round confirms at least the first wrong partition of a file (the rest follow from it).
    loop {
        let reruns = check_parities(plan, &partials)?;
        if reruns.is_empty() {
            break;
        }
        let jobs: Vec<(usize, Partition)> = reruns
            .iter()
            .flat_map(|r| r.partitions.iter().map(move |p| (r.partial, *p)))
            .collect();
        let parts: Vec<Partition> = jobs.iter().map(|(_, p)| *p).collect();
        let redone = inputs.run_partitions(&parts, threads)?;
        let mut fresh: Vec<Option<Partial>> = vec![None; partials.len()];
        for ((i, _), p) in jobs.iter().zip(redone) {
            match &mut fresh[*i] {
                Some(acc) => acc.merge(p),
                slot => *slot = Some(p),
            }
        }
        for (i, p) in fresh.into_iter().enumerate() {
            if let Some(p) = p {
                partials[i] = p;
            }
        }
    }
    finish(plan, partials)
}

/// The partition size a single process should plan with.
pub fn local_partition_bytes() -> u64 {
    LOCAL_PARTITION_BYTES
}
