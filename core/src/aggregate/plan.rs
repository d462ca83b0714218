//! Planning: resolve the inputs (globs, missing files, directories), read and compare headers,
//! resolve column names, record each file's identity (to notice a change while reading), and
//! split each file's data bytes into partitions.
//!
//! A partition is a byte range `[start, end)` of one file. It owns the records that START in
//! that range (see the parent module for the exact rule), so partitions never need to be aligned
//! to records when they are cut, and each one is computable on its own.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::AggError;
use super::query::{AggOp, Column, Query};

/// Default size of a partition handed to an agent.
pub const DEFAULT_PARTITION_BYTES: u64 = 64 << 20;
/// Size of the pieces a single process splits its work into: small enough that two threads
/// finish together, large enough that per-piece costs (a `stat`, page-table work) vanish.
pub const LOCAL_PARTITION_BYTES: u64 = 8 << 20;

/// The smallest partition sized from cores: below it, per-task costs would dominate.
pub const MIN_PARTITION_BYTES: u64 = 64 << 10;
/// Partitions per core when sizing from cores: every core gets work, and the load evens out.
pub const PARTITIONS_PER_CORE: u64 = 4;

/// The partition size that cuts `data_bytes` into [`PARTITIONS_PER_CORE`] partitions per core
/// of `cores`, within [`MIN_PARTITION_BYTES`] and `max` (files do not limit it: a file is
/// split wherever it needs to be).
pub fn partition_bytes_for(data_bytes: u64, cores: u32, max: u64) -> u64 {
    let parts = PARTITIONS_PER_CORE * u64::from(cores.max(1));
    (data_bytes / parts)
        .max(MIN_PARTITION_BYTES)
        .min(max)
        .max(1)
}

/// The quoting state at a byte position, before that byte: outside quotes (`Even`), inside a
/// quoted field (`Odd`), or outside right after a literal quote of an unquoted field (then a
/// quote at this position is literal too, where after a closing quote it would re-open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    Even,
    Odd,
    AfterLiteralQuote,
}

impl Parity {
    pub fn is_odd(self) -> bool {
        self == Parity::Odd
    }
}

/// One unit of work: the records starting in `[start, end)` of `files[file]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Partition {
    pub file: usize,
    pub start: u64,
    pub end: u64,
    /// The quote parity assumed at `start`. Even unless a first run showed otherwise (a split
    /// that fell inside a quoted field); see [`super::check_parities`].
    #[serde(default)]
    pub parity: Parity,
}

impl Partition {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// Cuts this partition into pieces of about `bytes` (for the threads of one agent). The
    /// first piece keeps this partition's parity; the others assume even until checked.
    pub fn split(&self, bytes: u64) -> Vec<Partition> {
        let bytes = bytes.max(1);
        let mut out = Vec::new();
        let mut s = self.start;
        while s < self.end {
            let e = self.end.min(s.saturating_add(bytes));
            let parity = if s == self.start {
                self.parity
            } else {
                Parity::Even
            };
            out.push(Partition {
                file: self.file,
                start: s,
                end: e,
                parity,
            });
            s = e;
        }
        out
    }
}

/// A file of the query, as it was when planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub inode: u64,
    pub dev: u64,
    /// First byte after the BOM and the header: where records begin.
    pub data_start: u64,
    /// Line number (1-based, physical lines) of `data_start`.
    pub data_start_line: u64,
}

impl PlannedFile {
    /// Whether the file at `path` still is the file that was planned.
    pub fn check_unchanged(&self) -> Result<(), AggError> {
        let changed = |truncated| AggError::FileChanged {
            path: self.path.clone(),
            truncated,
        };
        let meta = std::fs::metadata(&self.path).map_err(|_| changed(false))?;
        let id = FileId::of(&meta);
        if id.size < self.size {
            return Err(changed(true));
        }
        if id.size != self.size
            || id.mtime_ns != self.mtime_ns
            || id.inode != self.inode
            || id.dev != self.dev
        {
            return Err(changed(false));
        }
        Ok(())
    }
}

struct FileId {
    size: u64,
    mtime_ns: i128,
    inode: u64,
    dev: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// An aggregate with its column resolved to an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedAggregate {
    pub op: AggOp,
    pub column: Option<usize>,
    pub label: String,
}

/// A query made concrete: files, header, column indices and partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub query: Query,
    pub files: Vec<PlannedFile>,
    /// The header shared by all files (None with `has_header: false` or when all are empty).
    pub header: Option<Vec<String>>,
    /// Fields per record; a record with another count is a bad row.
    pub field_count: usize,
    /// Names of the group-by columns (the header's, or the index as text).
    pub group_names: Vec<String>,
    pub group_cols: Vec<usize>,
    pub aggregates: Vec<ResolvedAggregate>,
    pub partitions: Vec<Partition>,
    pub partition_bytes: u64,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
    /// Bytes that partitions cover (files minus BOMs and headers).
    pub fn data_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size - f.data_start).sum()
    }
    /// The partitions of this plan re-cut at `bytes` (a single process uses small pieces).
    pub fn with_partition_bytes(mut self, bytes: u64) -> Plan {
        self.partitions = partitions_for(&self.files, bytes);
        self.partition_bytes = bytes.max(1);
        self
    }
}

/// Plans `query`: see the module doc. `partition_bytes` is the target partition size.
pub fn plan(query: &Query, partition_bytes: u64) -> Result<Plan, AggError> {
    if query.inputs.is_empty() {
        return Err(AggError::NoInputs);
    }
    if query.group_by.is_empty() {
        return Err(AggError::NoGroupBy);
    }
    // Every input that cannot be read is named at once, not one per attempt.
    let mut problems = Vec::new();
    let paths = expand_inputs(&query.inputs, &mut problems);
    let mut files = Vec::with_capacity(paths.len());
    let mut seen = std::collections::HashSet::new();
    // (file index, header fields) of the first file that has a first record.
    let mut first: Option<(usize, Vec<String>)> = None;
    for path in paths {
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                problems.push(open_error(&path, e));
                continue;
            }
        };
        if meta.is_dir() {
            problems.push(AggError::IsDirectory { path });
            continue;
        }
        if !meta.file_type().is_file() {
            problems.push(AggError::NotRegularFile { path });
            continue;
        }
        let id = FileId::of(&meta);
        // The same file named twice (a glob and an explicit path) is read once.
        if !seen.insert((id.dev, id.inode)) {
            continue;
        }
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                problems.push(open_error(&path, e));
                continue;
            }
        };
        if !problems.is_empty() {
            // Already failing: only look for more unreadable inputs.
            continue;
        }
        let head = read_first_record(&mut f, &path)?;
        let data_start = if query.has_header { head.end } else { head.bom };
        let data_start_line = if query.has_header {
            1 + head.newlines
        } else {
            1
        };
        if let Some(fields) = head.fields {
            match &first {
                None => first = Some((files.len(), fields)),
                Some((i, expected)) => {
                    if query.has_header && *expected != fields {
                        let first_path: &PlannedFile = &files[*i];
                        return Err(AggError::HeaderMismatch {
                            path,
                            first: first_path.path.clone(),
                            expected: expected.clone(),
                            found: fields,
                        });
                    }
                }
            }
        }
        files.push(PlannedFile {
            path,
            size: id.size,
            mtime_ns: id.mtime_ns,
            inode: id.inode,
            dev: id.dev,
            data_start,
            data_start_line,
        });
    }

    match problems.len() {
        0 => {}
        1 => return Err(problems.remove(0)),
        _ => return Err(AggError::Inputs { problems }),
    }
    let first_fields = first.map(|(_, f)| f);
    let header = if query.has_header {
        first_fields.clone()
    } else {
        None
    };
    let field_count = first_fields.as_ref().map_or(0, Vec::len);
    let resolve = |c: &Column| -> Result<(usize, String), AggError> {
        match (c, &header) {
            (Column::Index(i), _) => {
                // With every file empty there is nothing to check the index against.
                if first_fields.is_some() && *i >= field_count {
                    return Err(AggError::ColumnOutOfRange {
                        index: *i,
                        fields: field_count,
                    });
                }
                let name = header
                    .as_ref()
                    .and_then(|h| h.get(*i).cloned())
                    .unwrap_or_else(|| i.to_string());
                Ok((*i, name))
            }
            (Column::Name(n), Some(h)) => match h.iter().position(|x| x == n) {
                Some(i) => Ok((i, n.clone())),
                None => Err(AggError::UnknownColumn {
                    name: n.clone(),
                    available: h.clone(),
                }),
            },
            // No header: a name that is a number is an index; an all-empty input resolves to 0.
            (Column::Name(n), None) => match n.parse::<usize>() {
                Ok(i) if first_fields.is_none() || i < field_count => Ok((i, n.clone())),
                Ok(i) => Err(AggError::ColumnOutOfRange {
                    index: i,
                    fields: field_count,
                }),
                Err(_) if first_fields.is_none() && query.has_header => Ok((0, n.clone())),
                Err(_) => Err(AggError::UnknownColumn {
                    name: n.clone(),
                    available: Vec::new(),
                }),
            },
        }
    };
    let mut group_cols = Vec::new();
    let mut group_names = Vec::new();
    for c in &query.group_by {
        let (i, name) = resolve(c)?;
        group_cols.push(i);
        group_names.push(name);
    }
    let mut aggregates = Vec::new();
    for a in &query.aggregates {
        let column = match &a.column {
            Some(c) => Some(resolve(c)?.0),
            None if a.op == AggOp::Count => None,
            None => return Err(AggError::MissingColumn { op: a.op.name() }),
        };
        aggregates.push(ResolvedAggregate {
            op: a.op,
            column,
            label: a.label(),
        });
    }
    if aggregates.is_empty() {
        aggregates.push(ResolvedAggregate {
            op: AggOp::Count,
            column: None,
            label: "count".into(),
        });
    }
    let partition_bytes = partition_bytes.max(1);
    let partitions = partitions_for(&files, partition_bytes);
    Ok(Plan {
        query: query.clone(),
        files,
        header,
        field_count,
        group_names,
        group_cols,
        aggregates,
        partitions,
        partition_bytes,
    })
}

fn partitions_for(files: &[PlannedFile], bytes: u64) -> Vec<Partition> {
    let whole: Vec<Partition> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Partition {
            file: i,
            start: f.data_start,
            end: f.size,
            parity: Parity::Even,
        })
        .collect();
    whole.iter().flat_map(|p| p.split(bytes)).collect()
}

fn open_error(path: &Path, e: std::io::Error) -> AggError {
    match e.kind() {
        std::io::ErrorKind::NotFound => AggError::NotFound {
            path: path.to_path_buf(),
        },
        _ => AggError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Paths in the order given; the matches of one glob sorted (as `glob` yields them). Inputs
/// that name nothing are added to `problems`.
fn expand_inputs(inputs: &[String], problems: &mut Vec<AggError>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for input in inputs {
        // A name that exists as written is a path even if it contains glob characters.
        if !is_glob(input) || Path::new(input).exists() {
            out.push(PathBuf::from(input));
            continue;
        }
        let paths = match glob::glob(input) {
            Ok(p) => p,
            Err(e) => {
                problems.push(AggError::BadGlob {
                    pattern: input.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut n = 0;
        for p in paths {
            match p {
                Ok(p) => out.push(p),
                Err(e) => problems.push(AggError::Unreadable {
                    path: e.path().to_path_buf(),
                    source: e.into(),
                }),
            }
            n += 1;
        }
        if n == 0 {
            problems.push(AggError::GlobNoMatch {
                pattern: input.clone(),
            });
        }
    }
    out
}

/// What the first record of a file says.
pub(crate) struct FirstRecord {
    /// Length of the UTF-8 BOM (0 or 3).
    pub bom: u64,
    /// Offset just past the first record's line end (or EOF).
    pub end: u64,
    /// Newlines inside the first record, including its terminator.
    pub newlines: u64,
    /// Its fields, unquoted; None for an empty file (or only a BOM, or only blank lines).
    pub fields: Option<Vec<String>>,
}

/// Reads and parses the first record (the header, or the first data row with `--no-header`).
fn read_first_record(f: &mut File, path: &Path) -> Result<FirstRecord, AggError> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut chunk).map_err(|e| AggError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        })?;
        buf.extend_from_slice(&chunk[..n]);
        let eof = n == 0;
        if let Some(r) = parse_first_record(&buf, eof) {
            return match r {
                Some(r) => Ok(r),
                None => Err(AggError::BadHeader {
                    path: path.to_path_buf(),
                }),
            };
        }
    }
}

/// Parses the first record of `buf`. Outer None: more bytes needed (not `eof`). Inner None: an
/// unterminated quote at EOF.
pub(crate) fn parse_first_record(buf: &[u8], eof: bool) -> Option<Option<FirstRecord>> {
    let bom = if buf.starts_with(b"\xEF\xBB\xBF") {
        3
    } else if !eof && b"\xEF\xBB\xBF".starts_with(buf) {
        return None;
    } else {
        0
    };
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut in_quotes = false;
    let mut was_quoted = false;
    let mut newlines = 0u64;
    let mut i = bom;
    while i < buf.len() {
        let b = buf[i];
        if in_quotes {
            if b == b'"' {
                if i + 1 >= buf.len() && !eof {
                    return None;
                }
                if buf.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 2;
                    continue;
                }
                in_quotes = false;
            } else {
                if b == b'\n' {
                    newlines += 1;
                }
                field.push(b);
            }
        } else {
            match b {
                b'"' if field.is_empty() && !was_quoted => {
                    in_quotes = true;
                    was_quoted = true;
                }
                b',' => {
                    fields.push(String::from_utf8_lossy(&field).into_owned());
                    field.clear();
                    was_quoted = false;
                }
                b'\n' => {
                    if !was_quoted && field.last() == Some(&b'\r') {
                        field.pop();
                    }
                    // Leading blank lines are skipped like everywhere else.
                    if fields.is_empty() && field.is_empty() && !was_quoted {
                        newlines += 1;
                        i += 1;
                        continue;
                    }
                    fields.push(String::from_utf8_lossy(&field).into_owned());
                    return Some(Some(FirstRecord {
                        bom: bom as u64,
                        end: i as u64 + 1,
                        newlines: newlines + 1,
                        fields: Some(fields),
                    }));
                }
                _ => field.push(b),
            }
        }
        i += 1;
    }
    if !eof {
        return None;
    }
    if in_quotes {
        return Some(None);
    }
    if !was_quoted && field.last() == Some(&b'\r') {
        field.pop();
    }
    let empty = fields.is_empty() && field.is_empty() && !was_quoted;
    if !empty {
        fields.push(String::from_utf8_lossy(&field).into_owned());
    }
    Some(Some(FirstRecord {
        bom: bom as u64,
        end: buf.len() as u64,
        newlines,
        fields: if empty { None } else { Some(fields) },
    }))
}
