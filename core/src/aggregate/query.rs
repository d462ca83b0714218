//! The query model: what to read, what to group by, what to compute. It travels over the wire to
//! the agents, so every type here is serde and changes only by adding defaulted fields.

use serde::{Deserialize, Serialize};

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
}

impl AggOp {
    pub fn name(self) -> &'static str {
        match self {
            AggOp::Count => "count",
            AggOp::Sum => "sum",
            AggOp::Mean => "mean",
            AggOp::Min => "min",
            AggOp::Max => "max",
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

/// A group-by query over CSV files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }
}
