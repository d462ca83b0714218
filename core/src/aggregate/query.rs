//! The query model: what to read, what to group by, what to compute. It travels over the wire to
//! the agents, so every type here is serde and changes only by adding defaulted fields.

use serde::{Deserialize, Serialize};

use super::expr::Expr;

/// A column, named by its header or by its 0-based position (`--no-header`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    Name(String),
    Index(usize),
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Name(n) => f.write_str(n),
            Column::Index(i) => write!(f, "{i}"),
        }
    }
}

/// The operation of one aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggOp {
    /// Rows of the group (no column), or non-missing values of a column.
    Count,
    Sum,
    Mean,
    Min,
    Max,
    /// `count(DISTINCT x)`: exact (a set of the values, merged by union).
    CountDistinct,
    /// Sample standard deviation (`stddev`, `stddev_samp`).
    Stddev,
    /// `approx_quantile(x, q)`, `median(x)`: from the mergeable sketch of `super::sketch`.
    Quantile,
}

impl AggOp {
    pub fn name(self) -> &'static str {
        match self {
            AggOp::Count => "count",
            AggOp::Sum => "sum",
            AggOp::Mean => "mean",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::CountDistinct => "count_distinct",
            AggOp::Stddev => "stddev",
            AggOp::Quantile => "approx_quantile",
        }
    }
}

/// One aggregate: `count` (column optional) or `sum|mean|min|max` of a numeric column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Aggregate {
    pub op: AggOp,
    #[serde(default)]
    pub column: Option<Column>,
}

impl Aggregate {
    /// `count`, `sum(fare_amount)`: the label used in tables and JSON.
    pub fn label(&self) -> String {
        match &self.column {
            None => self.op.name().to_string(),
            Some(c) => format!("{}({c})", self.op.name()),
        }
    }
}

/// One aggregate call of a SQL query: `op(arg)` with its label (the SQL text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggCall {
    pub op: AggOp,
    /// None: `count(*)`.
    pub arg: Option<Expr>,
    /// The quantile of [`AggOp::Quantile`] (0.5 for `median`).
    #[serde(default)]
    pub q: Option<f64>,
    pub label: String,
}

/// A SQL query compiled to what the scanner computes per record (filter, group keys,
/// aggregates) and what is computed after the exact merge (output columns, HAVING, ORDER BY,
/// LIMIT). Expressions after the merge read group keys as [`Expr::Key`] and aggregates as
/// [`Expr::Agg`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Select {
    /// The SQL text it came from (for history and messages).
    pub sql: String,
    pub filter: Option<Expr>,
    pub keys: Vec<Expr>,
    pub key_names: Vec<String>,
    pub aggs: Vec<AggCall>,
    /// The select list: (column name, expression over keys and aggregates).
    pub output: Vec<(String, Expr)>,
    pub having: Option<Expr>,
    /// (expression over keys and aggregates, descending).
    pub order_by: Vec<(Expr, bool)>,
    pub limit: Option<u64>,
}

/// A group-by query over CSV files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Paths or glob patterns, in the order given; matches of one glob are sorted.
    pub inputs: Vec<String>,
    pub group_by: Vec<Column>,
    pub aggregates: Vec<Aggregate>,
    /// Every file starts with a header line (checked equal across files).
    #[serde(default = "default_true")]
    pub has_header: bool,
    /// The first bad row fails the query instead of being counted.
    #[serde(default)]
    pub strict: bool,
    /// A SQL query (`--sql`): when set, it replaces `group_by` and `aggregates`.
    #[serde(default)]
    pub select: Option<Box<Select>>,
}

fn default_true() -> bool {
    true
}

impl Query {
    /// `value_counts()` of one column: the training workload.
    pub fn value_counts(inputs: Vec<String>, column: Column) -> Query {
        Query {
            inputs,
            group_by: vec![column],
            aggregates: vec![Aggregate {
                op: AggOp::Count,
                column: None,
            }],
            has_header: true,
            strict: false,
            select: None,
        }
    }
}
