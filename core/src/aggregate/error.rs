//! `AggError`: every way a query fails, each naming what it failed on (path, line, byte range).

use std::path::PathBuf;

use super::badrows::BadReason;

#[derive(Debug, thiserror::Error)]
pub enum AggError {
    #[error("no input files given")]
    NoInputs,
    #[error("the query has no group-by column")]
    NoGroupBy,
    #[error("invalid glob pattern {pattern:?}: {message}")]
    BadGlob { pattern: String, message: String },
    #[error("glob {pattern:?} matches no file")]
    GlobNoMatch { pattern: String },
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("{} inputs cannot be read: {}", problems.len(), problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Inputs { problems: Vec<AggError> },
    #[error("{}: is a directory, not a CSV file", path.display())]
    IsDirectory { path: PathBuf },
    #[error("{}: not a regular file (pipes and devices cannot be split into partitions)", path.display())]
    NotRegularFile { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: header differs from {}: expected {expected:?}, found {found:?}", path.display(), first.display())]
    HeaderMismatch {
        path: PathBuf,
        first: PathBuf,
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error("{}: the header line has an unterminated quote", path.display())]
    BadHeader { path: PathBuf },
    #[error("{}: not a CSV file (binary data at byte {offset})", path.display())]
    NotCsv { path: PathBuf, offset: u64 },
    #[error(
        "{}: the first line does not end within {} MiB: not a CSV file corral can read (a \
         header must fit in {} MiB)", path.display(), limit >> 20, limit >> 20
    )]
    HeaderTooLong { path: PathBuf, limit: usize },
    #[error("unknown column {name:?}; the header has: {}", available.join(", "))]
    UnknownColumn {
        name: String,
        available: Vec<String>,
    },
    #[error("column index {index} is out of range: the files have {fields} fields")]
    ColumnOutOfRange { index: usize, fields: usize },
    #[error("{} needs a column", op)]
    MissingColumn { op: &'static str },
    #[error("{}: changed while reading (size, modification time or inode differ from when the query started{})", path.display(), if *truncated { "; it was truncated" } else { "" })]
    FileChanged { path: PathBuf, truncated: bool },
    #[error("{}:{line}: bad row ({reason}): {excerpt:?}", path.display())]
    BadRow {
        path: PathBuf,
        line: u64,
        reason: BadReason,
        excerpt: String,
    },
    #[error("partition {file}:{start}..{end} does not belong to this plan")]
    UnknownPartition { file: usize, start: u64, end: u64 },
    #[error("{}: bytes {start}..{end} have no result (a partition is missing or overlaps another)", path.display())]
    Coverage { path: PathBuf, start: u64, end: u64 },
    #[error(
        "{} partition(s) were computed from the wrong quote parity and must be re-run first",
        count
    )]
    ParityNotResolved { count: usize },
    #[error("a worker thread panicked")]
    WorkerPanicked,
}
