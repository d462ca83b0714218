//! The CSV group-by engine: exact, quote-safe `value_counts()` and friends over many files.
//!
//! Map of the submodules:
//! - [`query`]: the query model (serde; it travels to the agents).
//! - [`plan`]: globs, headers, column resolution, file identity, byte-range partitions.
//! - `classify`: 64-byte blocks → bitmaps of quotes, commas, newlines (portable/SSE2/AVX2).
//! - `scan`: the record walker over those bitmaps (prefix-XOR quoting, popcount/select jumps).
//! - [`partial`]: per-partition results, the sink that builds them, `Partial::merge`.
//! - [`num`]: numbers of aggregated columns; exact fixed-point sums.
//! - [`badrows`]: bad rows by reason, with examples.
//! - [`merge`]: parity checks, line numbers, `finish` into a [`QueryResult`].
//! - [`result`]: the result and its pandas-like table.
//! - `open`: opening inputs non-blocking and checking the descriptor against the plan.
//! - [`run`]: files (memory maps or reads), change detection, threads, [`execute`].
//! - [`error`]: the error type, [`AggError`].
//!
//! # Records, partitions and quoting state
//!
//! Records are CSV as Python's csv module, pandas and polars read it: `,` between fields; a
//! field that STARTS with `"` is quoted (it may hold `,`, line breaks and `""` for a quote; text
//! after its closing quote is appended, `"ab"c` = `abc`); a `"` anywhere else is a literal
//! byte (`12,5" screen,7` has three fields). Lines end in `\n` or `\r\n` (a bare `\r` is data);
//! an optional UTF-8 BOM; a header per file (checked equal across files); the last line may
//! lack its newline; empty lines are skipped (and counted). A record starts at the file's data
//! start or right after a `\n` outside quotes.
//!
//! A partition `[start, end)` owns exactly the records that START in it; it reads past `end`
//! to finish its last record. Where records start depends on the quoting state at `start`
//! ([`Parity`]: outside, inside, or just after a literal quote), so a partition is computed
//! from an ASSUMED state (outside by default) and reports the state it reached at `end`.
//! Walking a file's partitions in order, each one computed from the true state gives the true
//! state of the next: [`check_parities`] lists the partition computed under a wrong state
//! (only possible when a split falls inside a quoted field), to be re-run; [`finish`] refuses
//! to merge until none is left. The partitions' newline counts turn a bad row's
//! span-relative line into its file line.
//!
//! A quote left open at the end of a file makes the rest of the file one bad row,
//! `unterminated_quote`. Tested against the csv crate, which reads quotes the same way.
//!
//! # Bad rows
//!
//! Never dropped silently: wrong field count, unterminated quote, a
//! non-numeric value in an aggregated column (empty and pandas' NA spellings are missing
//! values, skipped and counted, not bad). Counted by reason with the first five examples (file,
//! line, first 200 bytes); `strict` turns the first into an error naming file and line.

pub mod badrows;
pub(crate) mod classify;
pub mod error;
pub mod expr;
pub mod merge;
pub mod num;
pub(crate) mod open;
pub mod output;
pub mod partial;
pub mod plan;
pub mod query;
pub mod result;
pub mod run;
pub(crate) mod scan;
pub mod sketch;
pub mod sql;

pub use badrows::{BadExample, BadReason, BadRows};
pub use error::AggError;
pub use merge::{Merger, Rerun, check_parities, finish};
pub(crate) use open::open_planned;
pub use partial::{AggState, Group, Partial, SpanStats};
pub use plan::{
    DEFAULT_PARTITION_BYTES, LOCAL_PARTITION_BYTES, MIN_PARTITION_BYTES, PARTITIONS_PER_CORE,
    Parity, Partition, Plan, PlannedFile, is_glob_pattern, partition_bytes_for, plan,
};
pub use query::{AggCall, AggOp, Aggregate, Column, Query, Select};
pub use result::{GroupRow, QueryResult, Value};
pub use run::{ExecOptions, Inputs, execute, execute_with, run_partition};

#[cfg(test)]
mod tests;
