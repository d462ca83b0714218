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
    #[error("unknown column {name:?}{}; the header has: {}", closest_hint(name, available), available.join(", "))]
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
    #[error(
        "column {column:?} holds text, not numbers, so it cannot be used in {what}; count({column}) or count(DISTINCT {column}) work on text"
    )]
    TextColumn { column: String, what: String },
    #[error("the input has no rows: {} hold{} nothing after the header", if *files == 1 { "the file".to_string() } else { format!("the {files} files") }, if *files == 1 { "s" } else { "" })]
    EmptyInput { files: usize },
    #[error("{0}")]
    Sql(String),
}

/// `; did you mean "x"?` for the known name closest to `name` (by edit distance, ignoring
/// case), when one is close enough to be a likely typo.
fn closest_hint(name: &str, available: &[String]) -> String {
    match closest(name, available) {
        Some(c) => format!("; did you mean {c:?}?"),
        None => String::new(),
    }
}

/// The known name closest to `name`, if any is within a third of its length (at least 2).
pub fn closest<'a>(name: &str, available: &'a [String]) -> Option<&'a String> {
    let n = name.to_lowercase();
    available
        .iter()
        .map(|a| (edit_distance(&n, &a.to_lowercase()), a))
        .filter(|(d, _)| *d <= (name.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
