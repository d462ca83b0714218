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
//! - [`run`]: files (memory maps or reads), change detection, threads, [`execute`].
//! - [`error`]: the error type, [`AggError`].
//!
//! # Records, partitions and quote parity
//!
//! Records are RFC 4180 as real exports write them: `,` between fields, `"` around fields that
//! contain `,`, `"` (doubled) or line breaks; lines end in `\n` or `\r\n` (a bare `\r` is data);
//! an optional UTF-8 BOM; a header per file (checked equal across files); the last line may
//! lack its newline; empty lines are skipped (and counted). A record starts at the file's data
//! start or right after an unquoted `\n`.
//!
//! A partition `[start, end)` owns exactly the records that START in it; it reads past `end`
//! to finish its last record. Whether a byte is inside quotes depends only on the parity of
//! the `"` bytes before it, so a partition is computed from an ASSUMED parity at `start`
//! ([`Partition::parity`], even by default) and reports, per span, how many quotes and
//! newlines `[start, end)` holds. Those counts do not depend on the assumption, so their
//! prefix sums give the true parity at every partition start: [`check_parities`] lists the
//! partitions computed under the wrong one (only possible when a split falls inside a quoted
//! field) with the right parity, to be re-run; [`finish`] refuses to merge until none is left.
//! The same prefix sums of newlines turn a bad row's span-relative line into its file line.
//!
//! # Malformed quoting
//!
//! Every `"` toggles "inside quotes", wherever it is; that is what lets the scanner work on
//! whole blocks. RFC 4180 puts quotes only at field edges, so a record with a quote elsewhere
//! (`ab"c`, `"ab"c`) is a bad row, reason `malformed_quote`; because its quote still toggled,
//! the record may extend to the next quote (over lines), and all of that is that one bad row.
//! A quote left open at the end of a file makes the rest of the file one bad row,
//! `unterminated_quote`. The csv crate instead reads a quote inside an unquoted field as a
//! literal; well-formed files give the same result either way (tested against it).
//!
//! # Bad rows
//!
//! Never dropped silently: wrong field count, unterminated quote, malformed quote, a
//! non-numeric value in an aggregated column (empty and pandas' NA spellings are missing
//! values, skipped and counted, not bad). Counted by reason with the first five examples (file,
//! line, first 200 bytes); `strict` turns the first into an error naming file and line.

pub mod badrows;
pub(crate) mod classify;
pub mod error;
pub mod merge;
pub mod num;
pub mod partial;
pub mod plan;
pub mod query;
pub mod result;
pub mod run;
pub(crate) mod scan;

pub use badrows::{BadExample, BadReason, BadRows};
pub use error::AggError;
pub use merge::{Merger, Rerun, chain_parities, check_parities, finish};
pub use partial::{AggState, Group, Partial, SpanStats};
pub use plan::{
    DEFAULT_PARTITION_BYTES, LOCAL_PARTITION_BYTES, Parity, Partition, Plan, PlannedFile, plan,
};
pub use query::{AggOp, Aggregate, Column, Query};
pub use result::{GroupRow, QueryResult, Value};
pub use run::{ExecOptions, Inputs, execute, execute_with, run_partition};

#[cfg(test)]
mod tests;
