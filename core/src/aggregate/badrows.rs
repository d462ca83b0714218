//! Bad rows: never dropped silently. Counted by reason, with the first few examples.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::expr::ValueReason;

/// Examples kept per result (the earliest by file and byte offset).
pub const MAX_EXAMPLES: usize = 5;
/// Bytes of a bad row shown in an example.
pub const EXCERPT_BYTES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReason {
    /// More or fewer fields than the header (or the first record with `--no-header`).
    WrongFieldCount,
    /// A quote opened and never closed before the end of the file.
    UnterminatedQuote,
}

impl BadReason {
    pub fn name(self) -> &'static str {
        match self {
            BadReason::WrongFieldCount => "wrong_field_count",
            BadReason::UnterminatedQuote => "unterminated_quote",
        }
    }
}

impl std::fmt::Display for BadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One bad row as found by a partition. `line` is filled in when partials are finished
/// (it needs the newline counts of every earlier partition of the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadExample {
    pub reason: BadReason,
    pub file: usize,
    /// Byte offset of the row in the file.
    pub offset: u64,
    /// Start of the span (partition) that found it, and newlines from there to the row.
    pub span_start: u64,
    pub rel_line: u64,
    /// 1-based physical line of the row's first byte (0 until resolved).
    #[serde(default)]
    pub line: u64,
    /// Filled in by `finish`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The first `EXCERPT_BYTES` bytes of the row (lossy UTF-8).
    pub excerpt: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRows {
    pub counts: BTreeMap<BadReason, u64>,
    pub examples: Vec<BadExample>,
}

impl BadRows {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&mut self, reason: BadReason) {
        *self.counts.entry(reason).or_default() += 1;
    }

    /// Whether another example would be kept (examples arrive in file order per partition).
    pub fn wants_example(&self) -> bool {
        self.examples.len() < MAX_EXAMPLES
    }

    pub fn merge(&mut self, other: BadRows) {
        for (r, n) in other.counts {
            *self.counts.entry(r).or_default() += n;
        }
        self.examples.extend(other.examples);
        self.examples.sort_by_key(|e| (e.file, e.offset));
        self.examples.truncate(MAX_EXAMPLES);
    }
}

/// Where a value an expression could not use was found (the first one, by file and offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueExample {
    pub file: usize,
    pub offset: u64,
    pub span_start: u64,
    pub rel_line: u64,
    /// 1-based physical line of the row (0 until resolved by `finish`).
    #[serde(default)]
    pub line: u64,
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The field as written (first `EXCERPT_BYTES` bytes).
    pub value: String,
}

/// Rows whose field of `column` an expression could not use, for one reason. The row itself
/// is counted; only the consumers in `consumers` (bit 0: WHERE, then the group keys, then
/// the aggregates) saw NULL instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadValue {
    pub column: usize,
    pub reason: ValueReason,
    pub rows: u64,
    pub consumers: u64,
    pub example: ValueExample,
}

/// Merges `other` into `mine`: counts add, the earliest example wins, entries stay sorted by
/// (column, reason) — the same result in any merge order.
pub fn merge_bad_values(mine: &mut Vec<BadValue>, other: Vec<BadValue>) {
    for b in other {
        match mine
            .iter_mut()
            .find(|x| x.column == b.column && x.reason == b.reason)
        {
            Some(x) => {
                x.rows += b.rows;
                x.consumers |= b.consumers;
                if (b.example.file, b.example.offset) < (x.example.file, x.example.offset) {
                    x.example = b.example;
                }
            }
            None => mine.push(b),
        }
    }
    mine.sort_by_key(|x| (x.column, x.reason));
}
