//! Planning: resolve the inputs (globs, missing files, directories), read and compare headers,
//! resolve column names, record each file's identity (to notice a change while reading), and
//! split each file's data bytes into partitions.
//!
//! A partition is a byte range `[start, end)` of one file. It owns the records that START in
//! that range (see the parent module for the exact rule), so partitions never need to be aligned
//! to records when they are cut, and each one is computable on its own.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::AggError;
use super::expr::{BinOp, ColType, Expr, Func};
use super::open::{FileId, check_same, open_input};
use super::query::{AggCall, AggOp, Column, Query};

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
    /// Modification and status-change times in nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub ctime_ns: i128,
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
        let meta = std::fs::metadata(&self.path).map_err(|_| AggError::FileChanged {
            path: self.path.clone(),
            truncated: false,
        })?;
        check_same(self, &meta)
    }
}

/// An aggregate with its columns resolved to indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedAggregate {
    pub op: AggOp,
    /// The argument when it is just a column (read on the scanner's fast path).
    pub column: Option<usize>,
    /// The argument when it is an expression.
    #[serde(default)]
    pub arg: Option<Expr>,
    #[serde(default)]
    pub q: Option<f64>,
    pub label: String,
}

/// A query made concrete: files, header, column indices and partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub query: Query,
    pub files: Vec<PlannedFile>,
    /// The header shared by all files (None with `has_header: false` or when all are empty).
    pub header: Option<Vec<String>>,
    /// Fields per record; a record with another count is a bad row.
    pub field_count: usize,
    /// Names of the group-by columns (the header's, or the index as text).
    pub group_names: Vec<String>,
    /// Group keys with columns resolved to indices (`Expr::Col(Column::Index)` for a plain
    /// column, whose raw bytes are the key).
    pub keys: Vec<Expr>,
    pub aggregates: Vec<ResolvedAggregate>,
    /// WHERE, resolved.
    #[serde(default)]
    pub filter: Option<Expr>,
    /// Each column's type, inferred from a sample of the first records.
    #[serde(default)]
    pub col_types: Vec<ColType>,
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
    if query.group_by.is_empty() && query.select.is_none() {
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
        // Opened first and checked on the descriptor: a path swapped for a FIFO between a
        // stat and an open must not block planning.
        let (mut f, meta) = match open_input(&path) {
            Ok(o) => (o.file, o.meta),
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let id = FileId::of(&meta);
        // The same file named twice (a glob and an explicit path) is read once.
        if !seen.insert((id.dev, id.inode)) {
            continue;
        }
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
            ctime_ns: id.ctime_ns,
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
    let col_types = sample_types(&files, field_count);
    let col = |c: &Column| -> Result<Column, AggError> { Ok(Column::Index(resolve(c)?.0)) };
    let mut keys = Vec::new();
    let mut group_names = Vec::new();
    let mut aggregates = Vec::new();
    let mut filter = None;
    match &query.select {
        None => {
            for c in &query.group_by {
                let (i, name) = resolve(c)?;
                keys.push(Expr::Col(Column::Index(i)));
                group_names.push(name);
            }
            for a in &query.aggregates {
                let column = match &a.column {
                    Some(c) => Some(resolve(c)?.0),
                    None if a.op == AggOp::Count => None,
                    None => return Err(AggError::MissingColumn { op: a.op.name() }),
                };
                aggregates.push(ResolvedAggregate {
                    op: a.op,
                    column,
                    arg: None,
                    q: None,
                    label: a.label(),
                });
            }
            if aggregates.is_empty() {
                aggregates.push(ResolvedAggregate {
                    op: AggOp::Count,
                    column: None,
                    arg: None,
                    q: None,
                    label: "count".into(),
                });
            }
        }
        Some(sel) => {
            for (k, name) in sel.keys.iter().zip(&sel.key_names) {
                keys.push(k.map_columns(&mut |c| col(c))?);
                group_names.push(name.clone());
            }
            filter = sel
                .filter
                .as_ref()
                .map(|f| f.map_columns(&mut |c| col(c)))
                .transpose()?;
            for a in &sel.aggs {
                aggregates.push(resolve_call(a, &mut |c| col(c))?);
            }
        }
    }
    let names = |i: usize| {
        header
            .as_ref()
            .and_then(|h| h.get(i).cloned())
            .unwrap_or_else(|| i.to_string())
    };
    for a in &aggregates {
        let numeric = matches!(
            a.op,
            AggOp::Sum | AggOp::Mean | AggOp::Stddev | AggOp::Quantile
        );
        if let (true, Some(c)) = (numeric, a.column)
            && col_types.get(c) == Some(&ColType::Text)
        {
            return Err(AggError::TextColumn {
                column: names(c),
                what: format!("{}()", a.op.name()),
            });
        }
        if let Some(e) = &a.arg {
            check_numeric(e, numeric, &col_types, &names)?;
        }
    }
    for k in &keys {
        check_numeric(k, false, &col_types, &names)?;
    }
    if let Some(f) = &filter {
        check_numeric(f, false, &col_types, &names)?;
    }
    let partition_bytes = partition_bytes.max(1);
    let partitions = partitions_for(&files, partition_bytes);
    Ok(Plan {
        query: query.clone(),
        files,
        header,
        field_count,
        group_names,
        keys,
        aggregates,
        filter,
        col_types,
        partitions,
        partition_bytes,
    })
}

fn resolve_call(
    a: &AggCall,
    col: &mut impl FnMut(&Column) -> Result<Column, AggError>,
) -> Result<ResolvedAggregate, AggError> {
    let arg = a.arg.as_ref().map(|e| e.map_columns(col)).transpose()?;
    let column = match &arg {
        Some(Expr::Col(Column::Index(i))) => Some(*i),
        _ => None,
    };
    Ok(ResolvedAggregate {
        op: a.op,
        column,
        arg: if column.is_some() { None } else { arg },
        q: a.q,
        label: a.label.clone(),
    })
}

/// Refuses arithmetic on a text column (and, with `numeric`, a text column as the whole
/// argument of a numeric aggregate), naming the column.
fn check_numeric(
    e: &Expr,
    numeric: bool,
    types: &[ColType],
    names: &dyn Fn(usize) -> String,
) -> Result<(), AggError> {
    let text_col = |x: &Expr| match x {
        Expr::Col(Column::Index(i)) if types.get(*i) == Some(&ColType::Text) => Some(*i),
        _ => None,
    };
    let fail = |i: usize, what: &str| {
        Err(AggError::TextColumn {
            column: names(i),
            what: what.to_string(),
        })
    };
    if numeric && let Some(i) = text_col(e) {
        return fail(i, "a numeric aggregate");
    }
    match e {
        Expr::Bin(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod, a, b) => {
            for x in [a, b] {
                if let Some(i) = text_col(x) {
                    return fail(i, "arithmetic");
                }
            }
        }
        Expr::Neg(a) => {
            if let Some(i) = text_col(a) {
                return fail(i, "arithmetic");
            }
        }
        Expr::Func(Func::Abs | Func::Round, args) => {
            if let Some(i) = args.first().and_then(text_col) {
                return fail(i, "abs()/round()");
            }
        }
        _ => {}
    }
    let mut sub = Vec::new();
    match e {
        Expr::Bin(_, a, b) => {
            sub.push(a.as_ref());
            sub.push(b.as_ref());
        }
        Expr::Not(a) | Expr::Neg(a) | Expr::IsNull(a, _) | Expr::Like { e: a, .. } => {
            sub.push(a.as_ref())
        }
        Expr::Between { e, lo, hi, .. } => sub.extend([e.as_ref(), lo.as_ref(), hi.as_ref()]),
        Expr::InList { e, list, .. } => {
            sub.push(e.as_ref());
            sub.extend(list.iter());
        }
        Expr::Case {
            operand,
            whens,
            otherwise,
        } => {
            sub.extend(operand.as_deref());
            for (w, t) in whens {
                sub.push(w);
                sub.push(t);
            }
            sub.extend(otherwise.as_deref());
        }
        Expr::Func(_, args) => sub.extend(args.iter()),
        _ => {}
    }
    for x in sub {
        check_numeric(x, false, types, names)?;
    }
    Ok(())
}

/// Records read to infer column types, and the bytes read for them at most.
const SAMPLE_RECORDS: usize = 2000;
const SAMPLE_BYTES: u64 = 1 << 20;

/// Infers each column's type from the first records of the first file that has any: a
/// column whose non-empty, non-NA values are mostly (at least half) numbers is a number column,
/// mostly timestamps a timestamp column, else text. Dirty values in a number column stay a
/// minority; they are counted as bad values when read.
fn sample_types(files: &[PlannedFile], field_count: usize) -> Vec<ColType> {
    let mut types = vec![ColType::Unknown; field_count];
    let Some(f) = files.iter().find(|f| f.size > f.data_start) else {
        return types;
    };
    // The planned file, checked unchanged (never a FIFO swapped in: that would block).
    let Ok(file) = super::open::open_planned(f) else {
        return types;
    };
    let mut buf = Vec::new();
    let want = (f.size - f.data_start).min(SAMPLE_BYTES);
    if std::io::Read::read_to_end(
        &mut std::io::Read::take(
            {
                let mut file = file;
                if std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(f.data_start)).is_err() {
                    return types;
                }
                file
            },
            want,
        ),
        &mut buf,
    )
    .is_err()
    {
        return types;
    }
    let eof = f.data_start + want == f.size;
    // (values, numbers, timestamps) per column.
    let mut tally = vec![(0u32, 0u32, 0u32); field_count];
    let mut pos = 0;
    let mut records = 0;
    while pos < buf.len() && records < SAMPLE_RECORDS {
        let Some(Ok(r)) = FirstRecordParser::default().feed(&buf[pos..], eof) else {
            break;
        };
        pos += r.end as usize;
        let Some(fields) = r.fields else { break };
        if fields.len() != field_count {
            continue;
        }
        records += 1;
        for (t, v) in tally.iter_mut().zip(&fields) {
            let v = v.trim().as_bytes();
            if v.is_empty() || super::num::is_na(v) {
                continue;
            }
            t.0 += 1;
            if matches!(super::num::parse(v), super::num::Parsed::Value(_)) {
                t.1 += 1;
            } else if super::expr::parse_ts(v).is_some() {
                t.2 += 1;
            }
        }
    }
    for (ty, (n, num, ts)) in types.iter_mut().zip(tally) {
        *ty = if n == 0 {
            ColType::Unknown
        } else if num * 2 >= n {
            ColType::Number
        } else if ts * 2 >= n {
            ColType::Timestamp
        } else {
            ColType::Text
        };
    }
    types
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

/// The one rule for inputs: an argument with a glob character (`*`, `?`, `[`) is a pattern,
/// always — even when a file of that very name exists, so that a file named `*.csv` planted
/// in a shared directory cannot stand in for the user's glob (the pattern matches it too, as
/// one file among the others). To name such a file literally, bracket its special
/// characters: `[*].csv`.
pub fn is_glob_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Paths in the order given; the matches of one glob sorted (as `glob` yields them). Inputs
/// that name nothing are added to `problems`.
fn expand_inputs(inputs: &[String], problems: &mut Vec<AggError>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for input in inputs {
        if !is_glob_pattern(input) {
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

/// The longest first record (the header) planning reads: a "header" that does not end
/// within it is not a CSV file corral can read, and must not make the coordinator read a
/// whole huge file.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

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

/// Why a first record is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// A quote left open at the end of the file.
    UnterminatedQuote,
    /// A NUL byte at this offset: binary data, not text.
    Binary(u64),
}

/// Reads and parses the first record (the header, or the first data row with `--no-header`):
/// at most [`MAX_HEADER_BYTES`], each byte parsed once.
fn read_first_record(f: &mut File, path: &Path) -> Result<FirstRecord, AggError> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut parser = FirstRecordParser::default();
    loop {
        let room = MAX_HEADER_BYTES + 1 - buf.len();
        let want = chunk.len().min(room);
        let n = f
            .read(&mut chunk[..want])
            .map_err(|e| AggError::Unreadable {
                path: path.to_path_buf(),
                source: e,
            })?;
        buf.extend_from_slice(&chunk[..n]);
        let eof = n == 0;
        match parser.feed(&buf, eof) {
            Some(Ok(r)) => return Ok(r),
            Some(Err(HeaderProblem::UnterminatedQuote)) => {
                return Err(AggError::BadHeader {
                    path: path.to_path_buf(),
                });
            }
            Some(Err(HeaderProblem::Binary(offset))) => {
                return Err(AggError::NotCsv {
                    path: path.to_path_buf(),
                    offset,
                });
            }
            None if buf.len() > MAX_HEADER_BYTES => {
                return Err(AggError::HeaderTooLong {
                    path: path.to_path_buf(),
                    limit: MAX_HEADER_BYTES,
                });
            }
            None => {}
        }
    }
}

/// Parses the first record of `buf`. Outer None: more bytes needed (not `eof`).
#[cfg(test)]
pub(crate) fn parse_first_record(
    buf: &[u8],
    eof: bool,
) -> Option<Result<FirstRecord, HeaderProblem>> {
    FirstRecordParser::default().feed(buf, eof)
}

/// The first-record parser, resumable: fed a buffer that grows between calls (the same bytes
/// first), it continues where it stopped instead of starting over.
#[derive(Default)]
pub(crate) struct FirstRecordParser {
    bom: Option<usize>,
    /// Where to continue.
    pos: usize,
    fields: Vec<String>,
    field: Vec<u8>,
    in_quotes: bool,
    was_quoted: bool,
    newlines: u64,
}

impl FirstRecordParser {
    pub(crate) fn feed(
        &mut self,
        buf: &[u8],
        eof: bool,
    ) -> Option<Result<FirstRecord, HeaderProblem>> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let bom = match self.bom {
            Some(b) => b,
            None => {
                let b = if buf.starts_with(BOM) {
                    3
                } else if !eof && BOM.starts_with(buf) {
                    return None;
                } else {
                    0
                };
                self.bom = Some(b);
                self.pos = b;
                b
            }
        };
        let mut i = self.pos;
        while i < buf.len() {
            let b = buf[i];
            if b == 0 {
                return Some(Err(HeaderProblem::Binary(i as u64)));
            }
            if self.in_quotes {
                if b == b'"' {
                    if i + 1 >= buf.len() && !eof {
                        // Is it `""`? The next read tells.
                        self.pos = i;
                        return None;
                    }
                    if buf.get(i + 1) == Some(&b'"') {
                        self.field.push(b'"');
                        i += 2;
                        continue;
                    }
                    self.in_quotes = false;
                } else {
                    if b == b'\n' {
                        self.newlines += 1;
                    }
                    self.field.push(b);
                }
            } else {
                match b {
                    b'"' if self.field.is_empty() && !self.was_quoted => {
                        self.in_quotes = true;
                        self.was_quoted = true;
                    }
                    b',' => {
                        self.fields
                            .push(String::from_utf8_lossy(&self.field).into_owned());
                        self.field.clear();
                        self.was_quoted = false;
                    }
                    b'\n' => {
                        if !self.was_quoted && self.field.last() == Some(&b'\r') {
                            self.field.pop();
                        }
                        // Leading blank lines are skipped like everywhere else.
                        if self.fields.is_empty() && self.field.is_empty() && !self.was_quoted {
                            self.newlines += 1;
                            i += 1;
                            continue;
                        }
                        let mut fields = std::mem::take(&mut self.fields);
                        fields.push(String::from_utf8_lossy(&self.field).into_owned());
                        return Some(Ok(FirstRecord {
                            bom: bom as u64,
                            end: i as u64 + 1,
                            newlines: self.newlines + 1,
                            fields: Some(fields),
                        }));
                    }
                    _ => self.field.push(b),
                }
            }
            i += 1;
        }
        self.pos = i;
        if !eof {
            return None;
        }
        if self.in_quotes {
            return Some(Err(HeaderProblem::UnterminatedQuote));
        }
        if !self.was_quoted && self.field.last() == Some(&b'\r') {
            self.field.pop();
        }
        let empty = self.fields.is_empty() && self.field.is_empty() && !self.was_quoted;
        let mut fields = std::mem::take(&mut self.fields);
        if !empty {
            fields.push(String::from_utf8_lossy(&self.field).into_owned());
        }
        Some(Ok(FirstRecord {
            bom: bom as u64,
            end: buf.len() as u64,
            newlines: self.newlines,
            fields: if empty { None } else { Some(fields) },
        }))
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;
    use proptest::prelude::*;

    fn plan_one(path: &Path) -> Result<Plan, AggError> {
        let q = crate::aggregate::Query::value_counts(
            vec![path.to_string_lossy().into_owned()],
            Column::Index(0),
        );
        plan(&q, 1 << 20)
    }

    #[test]
    fn a_first_line_with_no_end_is_refused_after_the_cap() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("endless.csv");
        std::fs::write(&path, vec![b'a'; 3 * MAX_HEADER_BYTES]).expect("write");
        let err = plan_one(&path).expect_err("no header end");
        assert!(matches!(err, AggError::HeaderTooLong { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("endless.csv") && msg.contains("1 MiB"),
            "{msg}"
        );
        // Just under the cap is still a header.
        std::fs::write(
            &path,
            [vec![b'a'; MAX_HEADER_BYTES - 1], b"\n1\n".to_vec()].concat(),
        )
        .expect("write");
        assert!(plan_one(&path).is_ok());
    }

    #[test]
    fn binary_data_is_not_a_csv_file() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("ls");
        std::fs::write(&path, b"\x7fELF\x02\x01\x01\x00\x00\x00\x00").expect("write");
        let err = plan_one(&path).expect_err("binary");
        assert_eq!(
            err.to_string(),
            format!("{}: not a CSV file (binary data at byte 7)", path.display())
        );
    }

    /// The record as a comparable value.
    fn outcome(r: Option<Result<FirstRecord, HeaderProblem>>) -> String {
        match r {
            None => "more".into(),
            Some(Err(p)) => format!("{p:?}"),
            Some(Ok(r)) => format!("{} {} {} {:?}", r.bom, r.end, r.newlines, r.fields),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Fed in arbitrary pieces, the resumable parser says what one pass over the whole
        /// buffer says (and never panics).
        #[test]
        fn pieces_parse_like_the_whole(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(b'a'),
                            Just(0xEFu8), Just(0xBB), Just(0xBF), Just(0u8)],
                0..64,
            ),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let whole = outcome(parse_first_record(&bytes, true));
            let mut ends: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            ends.sort_unstable();
            let mut p = FirstRecordParser::default();
            let mut got = None;
            for e in ends {
                if let Some(r) = p.feed(&bytes[..e], false) {
                    got = Some(outcome(Some(r)));
                    break;
                }
            }
            let got = got.unwrap_or_else(|| outcome(p.feed(&bytes, true)));
            prop_assert_eq!(got, whole);
        }
    }
}

#[cfg(test)]
mod glob_rule_tests {
    use super::*;

    #[test]
    fn a_file_named_like_the_glob_does_not_replace_it() {
        let d = tempfile::tempdir().expect("tmp");
        for (n, body) in [
            ("a.csv", "k\n1\n"),
            ("b.csv", "k\n2\n"),
            ("*.csv", "k\n9\n"),
        ] {
            std::fs::write(d.path().join(n), body).expect("write");
        }
        let names = |input: &str| -> Vec<String> {
            let q = Query::value_counts(
                vec![d.path().join(input).to_string_lossy().into_owned()],
                Column::Name("k".into()),
            );
            plan(&q, 1 << 20)
                .expect("plan")
                .files
                .iter()
                .map(|f| {
                    f.path
                        .file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        assert_eq!(names("*.csv"), ["*.csv", "a.csv", "b.csv"]);
        assert_eq!(names("[*].csv"), ["*.csv"]);
        assert_eq!(names("a.csv"), ["a.csv"]);
    }
}
