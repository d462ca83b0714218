//! The query form (`r` on the dashboard): files or globs, group-by columns, aggregates. Parsing
//! into a `Query` is pure and names the part it could not read.

use corral_core::aggregate::{AggOp, Aggregate, Column, Query};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QField {
    Files,
    GroupBy,
    Aggregates,
}

pub const QFIELDS: [QField; 3] = [QField::Files, QField::GroupBy, QField::Aggregates];

impl QField {
    pub fn label(self) -> &'static str {
        match self {
            QField::Files => "Files or globs",
            QField::GroupBy => "Group by",
            QField::Aggregates => "Aggregates",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            QField::Files => "space-separated, e.g. ~/taxi/*.csv",
            QField::GroupBy => "column name(s), comma-separated",
            QField::Aggregates => "count, sum(col), mean(col), min(col), max(col)",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryForm {
    pub focus: usize,
    pub files: String,
    pub group_by: String,
    pub aggregates: String,
    pub error: Option<String>,
}

impl Default for QueryForm {
    /// The training workload: `payment_type.value_counts()`.
    fn default() -> Self {
        QueryForm {
            focus: 0,
            files: String::new(),
            group_by: "payment_type".into(),
            aggregates: "count".into(),
            error: None,
        }
    }
}

impl QueryForm {
    /// A form pre-filled from the last query run.
    pub fn from_query(q: &Query) -> QueryForm {
        QueryForm {
            focus: 0,
            files: q.inputs.join(" "),
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

    pub fn text_mut(&mut self) -> &mut String {
        match self.field() {
            QField::Files => &mut self.files,
            QField::GroupBy => &mut self.group_by,
            QField::Aggregates => &mut self.aggregates,
        }
    }

    pub fn value(&self, f: QField) -> &str {
        match f {
            QField::Files => &self.files,
            QField::GroupBy => &self.group_by,
            QField::Aggregates => &self.aggregates,
        }
    }

    /// The query, or what is wrong with the form.
    pub fn parse(&self) -> Result<Query, String> {
        let inputs: Vec<String> = self.files.split_whitespace().map(String::from).collect();
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
