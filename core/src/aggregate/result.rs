//! The final result and how it prints: like pandas' `value_counts()` for a count-only query,
//! an aligned table otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::badrows::{BadExample, ValueExample};

/// One aggregate's value. Exact decimals (sums, min, max) are text so no digit is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(u64),
    Decimal(String),
    Float(f64),
    Null,
    /// Text, timestamps and dates of SQL results.
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Decimal(s) => f.write_str(s),
            Value::Float(x) => write!(f, "{x}"),
            Value::Null => f.write_str("NaN"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    /// One string per group-by column: the field's bytes after CSV unquoting (lossy UTF-8).
    pub key: Vec<String>,
    /// Good rows in the group.
    pub count: u64,
    /// One per aggregate, in query order.
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BadRowsReport {
    pub total: u64,
    pub by_reason: BTreeMap<String, u64>,
    /// The first few, in file order, with file line numbers.
    pub examples: Vec<BadExample>,
}

/// Values of one column an expression could not use: counted (rows), with which consumers
/// (WHERE, GROUP BY keys, aggregates) saw NULL instead, and the first example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadValueReport {
    pub column: String,
    pub reason: String,
    pub rows: u64,
    pub left_out_of: Vec<String>,
    pub example: ValueExample,
}

/// A SQL query's result: its select list's columns, rows in ORDER BY order, after LIMIT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub group_by: Vec<String>,
    pub aggregates: Vec<String>,
    /// Count descending, then key ascending (bytes).
    pub groups: Vec<GroupRow>,
    /// Good rows (the sum of the group counts).
    pub rows: u64,
    /// Empty lines, skipped (not rows, not bad rows).
    pub blank_lines: u64,
    pub bad_rows: BadRowsReport,
    /// Missing values (empty or NA) per aggregate label, when any.
    pub missing: BTreeMap<String, u64>,
    pub files: usize,
    pub bytes: u64,
    /// False if some sum needed floating point (see `num`).
    pub exact: bool,
    /// Good rows left out by WHERE (in `rows`, in no group).
    #[serde(default)]
    pub filtered: u64,
    /// Values expressions could not use, by column and reason.
    #[serde(default)]
    pub bad_values: Vec<BadValueReport>,
    /// The SQL result (queries given as SQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
}

/// A key as the table shows it: `""` for the empty key, escapes for control characters (a
/// key from a data file must not drive the terminal).
fn shown_key(k: &str) -> std::borrow::Cow<'_, str> {
    if k.is_empty() {
        "\"\"".into()
    } else {
        crate::text::terminal_safe(k)
    }
}

impl QueryResult {
    /// The human table (stdout of `corral agg`).
    pub fn to_table(&self) -> String {
        if let Some(t) = &self.table {
            return t.to_text();
        }
        let mut out = String::new();
        let count_only = self.group_by.len() == 1 && self.aggregates == ["count"];
        if count_only {
            // pandas: index name alone, then key left-aligned, 4 spaces, count right-aligned.
            let name = crate::text::terminal_safe(self.group_by.first().map_or("", String::as_str));
            let kw = self
                .groups
                .iter()
                .map(|g| shown_key(&g.key[0]).chars().count())
                .max()
                .unwrap_or(0);
            let vw = self
                .groups
                .iter()
                .map(|g| g.count.to_string().len())
                .max()
                .unwrap_or(0);
            out.push_str(&name);
            out.push('\n');
            for g in &self.groups {
                let k = shown_key(&g.key[0]);
                let pad = kw.saturating_sub(k.chars().count());
                out.push_str(&format!("{k}{}    {:>vw$}\n", " ".repeat(pad), g.count));
            }
            out.push_str("Name: count, dtype: int64\n");
            return out;
        }
        let mut cols: Vec<Vec<String>> = Vec::new();
        for (i, name) in self.group_by.iter().enumerate() {
            let mut c = vec![crate::text::terminal_safe(name).into_owned()];
            c.extend(
                self.groups
                    .iter()
                    .map(|g| shown_key(&g.key[i]).into_owned()),
            );
            cols.push(c);
        }
        for (j, name) in self.aggregates.iter().enumerate() {
            let mut c = vec![crate::text::terminal_safe(name).into_owned()];
            c.extend(
                self.groups
                    .iter()
                    .map(|g| g.values.get(j).map(|v| v.to_string()).unwrap_or_default()),
            );
            cols.push(c);
        }
        let widths: Vec<usize> = cols
            .iter()
            .map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(0))
            .collect();
        let nkeys = self.group_by.len();
        for r in 0..=self.groups.len() {
            let mut line = String::new();
            for (ci, c) in cols.iter().enumerate() {
                if ci > 0 {
                    line.push_str("  ");
                }
                let s = &c[r];
                let pad = widths[ci].saturating_sub(s.chars().count());
                if ci < nkeys {
                    line.push_str(s);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(s);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

impl Table {
    /// Aligned columns: text left, numbers right; NULL as `NULL`.
    pub fn to_text(&self) -> String {
        let cell = |v: &Value| match v {
            Value::Null => "NULL".to_string(),
            v => v.to_string(),
        };
        let mut cols: Vec<Vec<String>> = self.columns.iter().map(|c| vec![c.clone()]).collect();
        let mut numeric = vec![true; self.columns.len()];
        for r in &self.rows {
            for (i, v) in r.iter().enumerate() {
                if let Some(c) = cols.get_mut(i) {
                    c.push(cell(v));
                }
                if matches!(v, Value::Text(_)) {
                    numeric[i] = false;
                }
            }
        }
        let widths: Vec<usize> = cols
            .iter()
            .map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in 0..=self.rows.len() {
            let mut line = String::new();
            for (ci, c) in cols.iter().enumerate() {
                if ci > 0 {
                    line.push_str("  ");
                }
                let s = c.get(r).map_or("", String::as_str);
                let pad = " ".repeat(widths[ci].saturating_sub(s.chars().count()));
                if numeric[ci] {
                    line.push_str(&pad);
                    line.push_str(s);
                } else {
                    line.push_str(s);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}
