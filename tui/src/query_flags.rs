//! The flags that describe a group-by query, one definition for every command that takes one
//! (`corral agg`, `corral query`, `corral sweep`), and the [`Query`] they describe.

use anyhow::Context;
use corral_core::aggregate::{AggOp, Aggregate, Column, Query, sql};

#[derive(Debug, Clone, clap::Args)]
pub struct QueryFlags {
    /// The query as SQL: `SELECT payment_type, count(*) FROM 'data/*.csv' GROUP BY 1`
    /// (the files may instead follow as arguments). Replaces --by and the aggregate flags.
    #[arg(long, value_name = "QUERY", conflicts_with_all = ["by", "count", "sum", "mean", "min", "max"])]
    pub sql: Option<String>,
    /// Column(s) to group by: repeat or comma-separate. Names from the header, or 0-based
    /// indices with --no-header.
    #[arg(
        long = "by",
        value_name = "COL",
        value_delimiter = ',',
        required_unless_present = "sql"
    )]
    pub by: Vec<String>,
    /// Count rows per group (the default when no other aggregate is asked for).
    #[arg(long)]
    pub count: bool,
    /// Sum of a numeric column (exact for plain decimals).
    #[arg(long, value_name = "COL")]
    pub sum: Vec<String>,
    /// Mean of a numeric column.
    #[arg(long, value_name = "COL")]
    pub mean: Vec<String>,
    /// Minimum of a numeric column.
    #[arg(long, value_name = "COL")]
    pub min: Vec<String>,
    /// Maximum of a numeric column.
    #[arg(long, value_name = "COL")]
    pub max: Vec<String>,
    /// Fail on the first bad row instead of counting it.
    #[arg(long)]
    pub strict: bool,
    /// The files have no header line; columns are 0-based indices.
    #[arg(long)]
    pub no_header: bool,
    /// CSV files or glob patterns (quote globs to let corral expand them).
    #[arg(required_unless_present = "sql", value_name = "FILES_OR_GLOBS")]
    pub inputs: Vec<String>,
}

impl QueryFlags {
    /// The query these flags describe, over `inputs` (the flags' own, or resolved ones).
    pub fn query(&self, inputs: Vec<String>) -> anyhow::Result<Query> {
        if let Some(text) = &self.sql {
            return Ok(sql::compile(text, inputs, !self.no_header, self.strict)?);
        }
        let col = |s: &String| column(s, self.no_header);
        let mut aggregates = Vec::new();
        let others = [
            (AggOp::Sum, &self.sum),
            (AggOp::Mean, &self.mean),
            (AggOp::Min, &self.min),
            (AggOp::Max, &self.max),
        ];
        if self.count || others.iter().all(|(_, v)| v.is_empty()) {
            aggregates.push(Aggregate {
                op: AggOp::Count,
                column: None,
            });
        }
        for (op, cols) in others {
            for c in cols {
                aggregates.push(Aggregate {
                    op,
                    column: Some(col(c)?),
                });
            }
        }
        Ok(Query {
            inputs,
            group_by: self.by.iter().map(col).collect::<anyhow::Result<_>>()?,
            aggregates,
            has_header: !self.no_header,
            strict: self.strict,
            select: None,
        })
    }
}

fn column(s: &str, no_header: bool) -> anyhow::Result<Column> {
    if no_header {
        let i = s
            .trim()
            .parse::<usize>()
            .with_context(|| format!("with --no-header columns are 0-based indices, not {s:?}"))?;
        Ok(Column::Index(i))
    } else {
        Ok(Column::Name(s.to_string()))
    }
}
