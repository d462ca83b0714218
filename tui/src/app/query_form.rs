//! The query form (`r` on the dashboard): files or globs, then either SQL (with the session's
//! earlier SQL queries as history, ←/→) or group-by columns and aggregates. Parsing into a
//! `Query` is pure and names the part it could not read.

use corral_core::aggregate::{AggOp, Aggregate, Column, Query, sql};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QField {
    Files,
    Sql,
    GroupBy,
    Aggregates,
}

pub const QFIELDS: [QField; 4] = [
    QField::Files,
    QField::Sql,
    QField::GroupBy,
    QField::Aggregates,
];

/// SQL queries kept as history.
pub const HISTORY: usize = 20;

impl QField {
    pub fn label(self) -> &'static str {
        match self {
            QField::Files => "Files or globs",
            QField::Sql => "SQL",
            QField::GroupBy => "Group by",
            QField::Aggregates => "Aggregates",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            QField::Files => "space-separated, e.g. ~/taxi/*.csv",
            QField::Sql => "SELECT …; replaces group by/aggregates; ←/→: history",
            QField::GroupBy => "column name(s), comma-separated",
            QField::Aggregates => "count, sum(col), mean(col), min(col), max(col)",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryForm {
    pub focus: usize,
    pub files: String,
    pub sql: String,
    pub group_by: String,
    pub aggregates: String,
    pub error: Option<String>,
    /// Earlier SQL queries, newest last, and which one the SQL field shows (None: the text
    /// being typed).
    pub history: Vec<String>,
    pub hist_pos: Option<usize>,
}

impl Default for QueryForm {
    /// The training workload: `payment_type.value_counts()`.
    fn default() -> Self {
        QueryForm {
            focus: 0,
            files: String::new(),
            sql: String::new(),
            group_by: "payment_type".into(),
            aggregates: "count".into(),
            error: None,
            history: Vec::new(),
            hist_pos: None,
        }
    }
}

impl QueryForm {
    /// A form pre-filled from the last query run.
    pub fn from_query(q: &Query) -> QueryForm {
        if let Some(sel) = &q.select {
            // The SQL names its own files (FROM): the files field stays for extra ones.
            return QueryForm {
                focus: 1,
                sql: sel.sql.clone(),
                ..QueryForm::default()
            };
        }
        QueryForm {
            focus: 0,
            files: q.inputs.join(" "),
            sql: String::new(),
            history: Vec::new(),
            hist_pos: None,
            group_by: q
                .group_by
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            aggregates: q
                .aggregates
                .iter()
                .map(Aggregate::label)
                .collect::<Vec<_>>()
                .join(", "),
            error: None,
        }
    }

    pub fn field(&self) -> QField {
        QFIELDS[self.focus.min(QFIELDS.len() - 1)]
    }

    /// ←/→ on the SQL field: an earlier (`back`) or later query of the history.
    pub fn browse(&mut self, back: bool) {
        if self.field() != QField::Sql || self.history.is_empty() {
            return;
        }
        let n = self.history.len();
        self.hist_pos = match (self.hist_pos, back) {
            (None, true) => Some(n - 1),
            (None, false) => None,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i + 1 < n => Some(i + 1),
            (Some(_), false) => None,
        };
        if let Some(i) = self.hist_pos {
            self.sql = self.history[i].clone();
        }
        self.error = None;
    }

    pub fn text_mut(&mut self) -> &mut String {
        match self.field() {
            QField::Files => &mut self.files,
            QField::Sql => &mut self.sql,
            QField::GroupBy => &mut self.group_by,
            QField::Aggregates => &mut self.aggregates,
        }
    }

    pub fn value(&self, f: QField) -> &str {
        match f {
            QField::Files => &self.files,
            QField::Sql => &self.sql,
            QField::GroupBy => &self.group_by,
            QField::Aggregates => &self.aggregates,
        }
    }

    /// The query, or what is wrong with the form.
    pub fn parse(&self) -> Result<Query, String> {
        let inputs: Vec<String> = self.files.split_whitespace().map(String::from).collect();
        if !self.sql.trim().is_empty() {
            return sql::compile(&self.sql, inputs, true, false).map_err(|e| e.to_string());
        }
        if inputs.is_empty() {
            return Err("name at least one CSV file or glob".into());
        }
        let group_by: Vec<Column> = self
            .group_by
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Column::Name(s.to_string()))
            .collect();
        if group_by.is_empty() {
            return Err("name a column to group by".into());
        }
        let mut aggregates = Vec::new();
        for part in split_top_level(&self.aggregates) {
            aggregates.push(parse_aggregate(part)?);
        }
        if aggregates.is_empty() {
            aggregates.push(Aggregate {
                op: AggOp::Count,
                column: None,
            });
        }
        Ok(Query {
            inputs,
            group_by,
            aggregates,
            has_header: true,
            strict: false,
            select: None,
        })
    }
}

/// Splits `count, sum(a)` on commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|p| !p.is_empty());
    out
}

fn parse_aggregate(text: &str) -> Result<Aggregate, String> {
    let (name, column) = match text.split_once('(') {
        Some((op, rest)) => {
            let col = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("{text:?}: missing ')'"))?
                .trim();
            (
                op.trim(),
                (!col.is_empty()).then(|| Column::Name(col.to_string())),
            )
        }
        None => (text.trim(), None),
    };
    let op = match name.to_ascii_lowercase().as_str() {
        "count" => AggOp::Count,
        "sum" => AggOp::Sum,
        "mean" => AggOp::Mean,
        "min" => AggOp::Min,
        "max" => AggOp::Max,
        _ => {
            return Err(format!(
                "{text:?}: unknown aggregate; use count, sum(col), mean(col), min(col) or max(col)"
            ));
        }
    };
    if op != AggOp::Count && column.is_none() {
        return Err(format!(
            "{}: needs a column, e.g. {}(fare_amount)",
            op.name(),
            op.name()
        ));
    }
    Ok(Aggregate { op, column })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_training_query_and_names_mistakes() {
        let mut f = QueryForm {
            files: "/d/*.csv  /e/x.csv".into(),
            ..QueryForm::default()
        };
        let q = f.parse().expect("valid");
        assert_eq!(
            q,
            Query::value_counts(
                vec!["/d/*.csv".into(), "/e/x.csv".into()],
                Column::Name("payment_type".into())
            )
        );
        f.aggregates = "count, sum(fare_amount), mean(tip_amount)".into();
        let q = f.parse().expect("valid");
        assert_eq!(q.aggregates.len(), 3);
        assert_eq!(
            QueryForm::from_query(&q).aggregates,
            "count, sum(fare_amount), mean(tip_amount)"
        );
        f.aggregates = "median(x)".into();
        assert!(
            f.parse()
                .err()
                .unwrap_or_default()
                .contains("unknown aggregate")
        );
        f.aggregates = "sum".into();
        assert!(
            f.parse()
                .err()
                .unwrap_or_default()
                .contains("needs a column")
        );
        f.files.clear();
        assert!(f.parse().err().unwrap_or_default().contains("file"));
    }
}

#[cfg(test)]
mod sql_tests {
    use super::*;

    #[test]
    fn sql_replaces_the_fields_and_history_browses() {
        let mut f = QueryForm {
            sql: "SELECT payment_type, count(*) FROM '/d/*.csv' GROUP BY 1".into(),
            ..QueryForm::default()
        };
        let q = f.parse().expect("valid SQL");
        assert_eq!(q.inputs, vec!["/d/*.csv".to_string()]);
        assert!(q.select.is_some());
        assert_eq!(QueryForm::from_query(&q).sql, f.sql);
        f.sql = "SELECT k count(*) FROM 'x'".into();
        let e = f.parse().expect_err("syntax");
        assert!(e.contains("syntax error") && e.contains('^'), "{e}");

        f.history = vec!["SELECT 1st".into(), "SELECT 2nd".into()];
        f.focus = 1;
        f.browse(true);
        assert_eq!(f.sql, "SELECT 2nd");
        f.browse(true);
        f.browse(true);
        assert_eq!(f.sql, "SELECT 1st");
        f.browse(false);
        assert_eq!(f.sql, "SELECT 2nd");
        f.focus = 0;
        f.browse(true);
        assert_eq!(f.sql, "SELECT 2nd", "only the SQL field browses");
    }
}
