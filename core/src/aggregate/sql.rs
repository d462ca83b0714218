//! SQL text → [`Query`]: parsed with the `sqlparser` crate (DuckDB's dialect), compiled to
//! what the scanner computes per record (WHERE, group keys, aggregate calls) and what is
//! computed after the exact merge (the select list, HAVING, ORDER BY, LIMIT).
//!
//! Supported: `SELECT` of group keys, aggregates (`count(*)`, `count(x)`,
//! `count(DISTINCT x)`, `sum`, `avg`/`mean`, `min`, `max`, `stddev`, `median`,
//! `approx_quantile(x, q)`) and expressions of them, with aliases; `FROM 'glob'` (or the files
//! given as arguments); `WHERE`; `GROUP BY` names, aliases, positions or expressions; `HAVING`;
//! `ORDER BY` names, aliases, positions or expressions, `ASC`/`DESC`; `LIMIT n`. Expressions:
//! see [`super::expr`]. Every error names what it is about; syntax errors and unsupported
//! constructs point at their place in the text with a caret.

use sqlparser::ast::{
    self, BinaryOperator, DateTimeField, Distinct, DuplicateTreatment, FunctionArg,
    FunctionArgExpr, FunctionArguments, GroupByExpr, LimitClause, OrderByKind, SelectItem, SetExpr,
    Spanned, Statement, TableFactor, UnaryOperator,
};
use sqlparser::dialect::DuckDbDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::error::AggError;
use super::expr::{BinOp, Expr, Func, Lit, parse_ts};
use super::num::{self, Parsed};
use super::query::{AggCall, AggOp, Column, Query, Select};

/// The table name `FROM 'glob'` is rewritten to before parsing.
const FILES: &str = "corral_files";

/// An error about `sql` at `loc` (1-based line and column; 0 = no place), with a caret line.
fn at(sql: &str, loc: Option<Location>, msg: impl Into<String>) -> AggError {
    let msg = msg.into();
    let Some(loc) = loc.filter(|l| l.line > 0) else {
        return AggError::Sql(format!("SQL: {msg}"));
    };
    let line = sql.lines().nth(loc.line as usize - 1).unwrap_or("");
    let col = (loc.column as usize).saturating_sub(1);
    let pad: String = line
        .chars()
        .take(col)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    AggError::Sql(format!("SQL: {msg}\n  {line}\n  {pad}^"))
}

fn at_expr(sql: &str, e: &impl Spanned, msg: impl Into<String>) -> AggError {
    at(sql, Some(e.span().start), msg)
}

/// A parser message's "at Line: L, Column: C" as a location, and the message without it.
fn split_location(msg: &str) -> (String, Option<Location>) {
    if let Some(i) = msg.rfind(" at Line: ") {
        let rest = &msg[i + " at Line: ".len()..];
        let mut it = rest.split(", Column: ");
        if let (Some(l), Some(c)) = (it.next(), it.next())
            && let (Ok(line), Ok(column)) = (l.trim().parse(), c.trim().parse())
        {
            return (msg[..i].to_string(), Some(Location { line, column }));
        }
    }
    (msg.to_string(), None)
}

/// Compiles `sql` into a query over `inputs` (plus the files its `FROM` names).
pub fn compile(
    sql: &str,
    mut inputs: Vec<String>,
    has_header: bool,
    strict: bool,
) -> Result<Query, AggError> {
    let dialect = DuckDbDialect {};
    let mut tokens: Vec<TokenWithSpan> = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| {
            let (m, loc) = split_location(&e.to_string());
            at(sql, loc, m)
        })?;
    // `FROM 'data/*.csv'`: a string where a table name goes. Files become inputs; the parser
    // sees a plain name.
    let mut after_from = false;
    let mut from_files = false;
    for t in tokens.iter_mut() {
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::Word(w) if w.keyword == sqlparser::keywords::Keyword::FROM => {
                after_from = true;
                continue;
            }
            Token::SingleQuotedString(s) if after_from => {
                inputs.push(s.clone());
                from_files = true;
                t.token = Token::make_word(FILES, None);
            }
            _ => {}
        }
        after_from = false;
    }
    let stmts = Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| {
            let (m, loc) = split_location(&e.to_string());
            let m = m
                .trim_start_matches("sql parser error: ")
                .replace(FILES, "'<files>'");
            at(sql, loc, format!("syntax error: {m}"))
        })?;
    let [Statement::Query(q)] = &stmts[..] else {
        return Err(at(
            sql,
            None,
            "give exactly one SELECT statement (corral runs SELECT … FROM 'files' …)",
        ));
    };
    if q.with.is_some() {
        return Err(at(sql, None, "WITH is not supported"));
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err(at_expr(
            sql,
            q.body.as_ref(),
            "only a plain SELECT is supported (no UNION, VALUES or subqueries)",
        ));
    };
    if let Some(Distinct::Distinct | Distinct::On(_)) = &s.distinct {
        return Err(at(
            sql,
            Some(s.select_token.0.span.start),
            "SELECT DISTINCT is not supported; use GROUP BY",
        ));
    }
    match &s.from[..] {
        [] => {}
        [t] if t.joins.is_empty() => match &t.relation {
            TableFactor::Table { name, .. } if name.to_string() == FILES => {}
            other => {
                return Err(at_expr(
                    sql,
                    other,
                    "FROM takes the files as a quoted path or glob: FROM 'data/*.csv' (or give them as arguments)",
                ));
            }
        },
        [t, ..] => {
            return Err(at_expr(
                sql,
                t,
                "one FROM 'glob' only (no joins or lists of tables)",
            ));
        }
    }
    if s.from.is_empty() && !from_files && inputs.is_empty() {
        return Err(at(
            sql,
            None,
            "no input files: add FROM 'data/*.csv' or give the files as arguments",
        ));
    }

    let mut c = Compiler {
        sql,
        aggs: Vec::new(),
        keys: Vec::new(),
    };
    // Select items: (name, sqlparser expression).
    let items: Vec<(String, &ast::Expr)> = s
        .projection
        .iter()
        .map(|it| match it {
            SelectItem::UnnamedExpr(e) => Ok((display_name(e), e)),
            SelectItem::ExprWithAlias { expr, alias } => Ok((alias.value.clone(), expr)),
            other => Err(at_expr(
                sql,
                other,
                "name the columns: SELECT * is not supported in an aggregation",
            )),
        })
        .collect::<Result<_, _>>()?;

    // GROUP BY: positions, select aliases, or expressions.
    let mut key_names = Vec::new();
    match &s.group_by {
        GroupByExpr::All(_) => {
            return Err(at(
                sql,
                None,
                "GROUP BY ALL is not supported; list the keys",
            ));
        }
        GroupByExpr::Expressions(exprs, _) => {
            for g in exprs {
                let (name, e) = match position(g) {
                    Some(n) => match items.get(n.wrapping_sub(1)) {
                        Some((name, e)) => (name.clone(), *e),
                        None => {
                            return Err(at_expr(
                                sql,
                                g,
                                format!(
                                    "GROUP BY {n}: the select list has {} columns",
                                    items.len()
                                ),
                            ));
                        }
                    },
                    None => match alias_of(g, &items) {
                        Some((name, e)) => (name, e),
                        None => (display_name(g), g),
                    },
                };
                let k = c.row(e)?;
                c.keys.push(k);
                key_names.push(name);
            }
        }
    }
    let filter = s.selection.as_ref().map(|w| c.row(w)).transpose()?;
    let mut output = Vec::new();
    for (name, e) in &items {
        output.push((name.clone(), c.post(e)?));
    }
    let having = s.having.as_ref().map(|h| c.post(h)).transpose()?;
    let mut order_by = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(list) = &ob.kind else {
            return Err(at(
                sql,
                None,
                "ORDER BY ALL is not supported; list the columns",
            ));
        };
        for o in list {
            let desc = o.options.asc == Some(false);
            let e = match position(&o.expr) {
                Some(n) => match output.get(n.wrapping_sub(1)) {
                    Some((_, e)) => e.clone(),
                    None => {
                        return Err(at_expr(
                            sql,
                            &o.expr,
                            format!("ORDER BY {n}: the select list has {} columns", items.len()),
                        ));
                    }
                },
                None => match alias_of(&o.expr, &items) {
                    Some((name, _)) => output
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, e)| e.clone())
                        .unwrap_or(Expr::Lit(Lit::Null)),
                    None => c.post(&o.expr)?,
                },
            };
            order_by.push((e, desc));
        }
    }
    let limit = match &q.limit_clause {
        None
        | Some(LimitClause::LimitOffset {
            limit: None,
            offset: None,
            ..
        }) => None,
        Some(LimitClause::LimitOffset {
            limit: Some(l),
            offset: None,
            ..
        }) => {
            Some(position(l).ok_or_else(|| at_expr(sql, l, "LIMIT takes a whole number"))? as u64)
        }
        Some(_) => return Err(at(sql, None, "OFFSET is not supported")),
    };
    if c.keys.is_empty() && c.aggs.is_empty() {
        return Err(at(
            sql,
            None,
            "corral computes aggregates: add one (count(*), sum(x), …) or a GROUP BY",
        ));
    }
    Ok(Query {
        inputs,
        group_by: Vec::new(),
        aggregates: Vec::new(),
        has_header,
        strict,
        select: Some(Box::new(Select {
            sql: sql.trim().to_string(),
            filter,
            keys: c.keys,
            key_names,
            aggs: c.aggs,
            output,
            having,
            order_by,
            limit,
        })),
    })
}

/// A select item's default name: a bare column's name, else the expression's text.
fn display_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => i.value.clone(),
        ast::Expr::CompoundIdentifier(v) => v.last().map(|i| i.value.clone()).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// `GROUP BY 2`: the number.
fn position(e: &ast::Expr) -> Option<usize> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// A bare name that is a select alias (and not also written as an expression).
fn alias_of<'a>(
    e: &ast::Expr,
    items: &[(String, &'a ast::Expr)],
) -> Option<(String, &'a ast::Expr)> {
    let ast::Expr::Identifier(i) = e else {
        return None;
    };
    items
        .iter()
        .find(|(name, x)| {
            *name == i.value && !matches!(x, ast::Expr::Identifier(y) if y.value == i.value)
        })
        .map(|(n, x)| (n.clone(), *x))
}

struct Compiler<'s> {
    sql: &'s str,
    aggs: Vec<AggCall>,
    keys: Vec<Expr>,
}

fn is_aggregate(name: &str) -> bool {
    matches!(
        name,
        "count"
            | "sum"
            | "avg"
            | "mean"
            | "min"
            | "max"
            | "stddev"
            | "stddev_samp"
            | "median"
            | "approx_quantile"
            | "quantile"
            | "quantile_cont"
    )
}

fn contains_aggregate(e: &ast::Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        if let ast::Expr::Function(f) = x
            && is_aggregate(&f.name.to_string().to_lowercase())
        {
            found = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

impl Compiler<'_> {
    fn err(&self, e: &impl Spanned, msg: impl Into<String>) -> AggError {
        at_expr(self.sql, e, msg)
    }

    /// An expression over one record (WHERE, group keys, aggregate arguments).
    fn row(&mut self, e: &ast::Expr) -> Result<Expr, AggError> {
        if contains_aggregate(e) {
            return Err(self.err(
                e,
                "aggregates belong in the select list or HAVING, not in WHERE or GROUP BY",
            ));
        }
        self.conv(e, false)
    }

    /// An expression over a merged group (select list, HAVING, ORDER BY).
    fn post(&mut self, e: &ast::Expr) -> Result<Expr, AggError> {
        if !contains_aggregate(e) {
            let r = self.conv(e, false)?;
            if let Some(i) = self.keys.iter().position(|k| *k == r) {
                return Ok(Expr::Key(i));
            }
            let mut cols = Vec::new();
            r.columns(&mut cols);
            if let Some(c) = cols.first() {
                return Err(self.err(
                    e,
                    format!(
                        "{c} is neither a GROUP BY key nor inside an aggregate: add it to GROUP BY or aggregate it"
                    ),
                ));
            }
            return Ok(r);
        }
        self.conv(e, true)
    }

    fn agg(&mut self, f: &ast::Function, name: &str) -> Result<Expr, AggError> {
        let label = ast::Expr::Function(f.clone()).to_string();
        let FunctionArguments::List(list) = &f.args else {
            return Err(self.err(f, format!("{name} needs an argument")));
        };
        let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
        let mut args = Vec::new();
        let mut star = false;
        for a in &list.args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                other => return Err(self.err(other, "unsupported argument")),
            }
        }
        let (op, q) = match name {
            "count" if distinct => (AggOp::CountDistinct, None),
            "count" => (AggOp::Count, None),
            _ if distinct => {
                return Err(self.err(
                    f,
                    format!("DISTINCT is supported in count() only, not {name}()"),
                ));
            }
            "sum" => (AggOp::Sum, None),
            "avg" | "mean" => (AggOp::Mean, None),
            "min" => (AggOp::Min, None),
            "max" => (AggOp::Max, None),
            "stddev" | "stddev_samp" => (AggOp::Stddev, None),
            "median" => (AggOp::Quantile, Some(0.5)),
            _ => {
                let Some(qe) = args.get(1) else {
                    return Err(self.err(f, format!("{name}(x, q) needs the quantile q, 0 to 1")));
                };
                let q = match self.conv(qe, false)? {
                    Expr::Lit(Lit::Num(n)) if (0.0..=1.0).contains(&n.to_f64()) => n.to_f64(),
                    _ => return Err(self.err(*qe, "the quantile must be a number from 0 to 1")),
                };
                args.truncate(1);
                (AggOp::Quantile, Some(q))
            }
        };
        let want = usize::from(!(op == AggOp::Count && star));
        if args.len() != want || (star && op != AggOp::Count) {
            return Err(self.err(
                f,
                format!(
                    "{name}() takes {}",
                    if want == 0 { "*" } else { "one argument" }
                ),
            ));
        }
        let arg = match args.first() {
            Some(a) => {
                if contains_aggregate(a) {
                    return Err(self.err(*a, "aggregates cannot be nested"));
                }
                Some(self.conv(a, false)?)
            }
            None => None,
        };
        let call = AggCall { op, arg, q, label };
        let j = match self.aggs.iter().position(|x| *x == call) {
            Some(j) => j,
            None => {
                self.aggs.push(call);
                self.aggs.len() - 1
            }
        };
        Ok(Expr::Agg(j))
    }

    /// Converts `e`; `post`: aggregates become [`Expr::Agg`], group keys [`Expr::Key`].
    fn conv(&mut self, e: &ast::Expr, post: bool) -> Result<Expr, AggError> {
        use ast::Expr as E;
        if post {
            if let E::Function(f) = e {
                let name = f.name.to_string().to_lowercase();
                if is_aggregate(&name) {
                    return self.agg(f, &name);
                }
            }
            if !contains_aggregate(e) {
                return self.post(e);
            }
        }
        let b = |x: Expr| Box::new(x);
        Ok(match e {
            E::Identifier(i) => Expr::Col(Column::Name(i.value.clone())),
            E::CompoundIdentifier(v) => {
                let last = v.last().ok_or_else(|| self.err(e, "empty name"))?;
                Expr::Col(Column::Name(last.value.clone()))
            }
            E::Nested(x) => self.conv(x, post)?,
            E::Value(v) => Expr::Lit(match &v.value {
                ast::Value::Number(n, _) => match num::parse(n.as_bytes()) {
                    Parsed::Value(x) => Lit::Num(x),
                    _ => return Err(self.err(e, format!("not a number: {n}"))),
                },
                ast::Value::SingleQuotedString(s) => Lit::Text(s.clone()),
                ast::Value::Boolean(x) => Lit::Bool(*x),
                ast::Value::Null => Lit::Null,
                _ => return Err(self.err(e, "unsupported literal")),
            }),
            E::TypedString(t) => {
                let text = t.value.value.to_string();
                let text = text.trim_matches('\'');
                match parse_ts(text.as_bytes()) {
                    Some(ts) => Expr::Lit(Lit::Ts(ts)),
                    None => {
                        return Err(self.err(
                            e,
                            format!("not a timestamp (YYYY-MM-DD HH:MM:SS): {text:?}"),
                        ));
                    }
                }
            }
            E::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => BinOp::Add,
                    BinaryOperator::Minus => BinOp::Sub,
                    BinaryOperator::Multiply => BinOp::Mul,
                    BinaryOperator::Divide => BinOp::Div,
                    BinaryOperator::Modulo => BinOp::Mod,
                    BinaryOperator::Eq => BinOp::Eq,
                    BinaryOperator::NotEq => BinOp::NotEq,
                    BinaryOperator::Lt => BinOp::Lt,
                    BinaryOperator::LtEq => BinOp::LtEq,
                    BinaryOperator::Gt => BinOp::Gt,
                    BinaryOperator::GtEq => BinOp::GtEq,
                    BinaryOperator::And => BinOp::And,
                    BinaryOperator::Or => BinOp::Or,
                    other => return Err(self.err(e, format!("operator {other} is not supported"))),
                };
                Expr::Bin(op, b(self.conv(left, post)?), b(self.conv(right, post)?))
            }
            E::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => Expr::Not(b(self.conv(expr, post)?)),
                UnaryOperator::Minus => Expr::Neg(b(self.conv(expr, post)?)),
                UnaryOperator::Plus => self.conv(expr, post)?,
                other => return Err(self.err(e, format!("operator {other} is not supported"))),
            },
            E::IsNull(x) => Expr::IsNull(b(self.conv(x, post)?), false),
            E::IsNotNull(x) => Expr::IsNull(b(self.conv(x, post)?), true),
            E::Between {
                expr,
                negated,
                low,
                high,
            } => Expr::Between {
                e: b(self.conv(expr, post)?),
                lo: b(self.conv(low, post)?),
                hi: b(self.conv(high, post)?),
                negated: *negated,
            },
            E::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                e: b(self.conv(expr, post)?),
                list: list
                    .iter()
                    .map(|x| self.conv(x, post))
                    .collect::<Result<_, _>>()?,
                negated: *negated,
            },
            E::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => {
                let pattern = match pattern.as_ref() {
                    E::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        _ => return Err(self.err(pattern.as_ref(), "LIKE takes a quoted pattern")),
                    },
                    _ => return Err(self.err(pattern.as_ref(), "LIKE takes a quoted pattern")),
                };
                Expr::Like {
                    e: b(self.conv(expr, post)?),
                    pattern,
                    negated: *negated,
                }
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => Expr::Case {
                operand: operand
                    .as_ref()
                    .map(|o| self.conv(o, post).map(b))
                    .transpose()?,
                whens: conditions
                    .iter()
                    .map(|w| Ok((self.conv(&w.condition, post)?, self.conv(&w.result, post)?)))
                    .collect::<Result<_, AggError>>()?,
                otherwise: else_result
                    .as_ref()
                    .map(|o| self.conv(o, post).map(b))
                    .transpose()?,
            },
            E::Extract { field, expr, .. } => {
                let f = match field {
                    DateTimeField::Hour => Func::Hour,
                    DateTimeField::Minute => Func::Minute,
                    DateTimeField::Day => Func::Day,
                    DateTimeField::DayOfWeek | DateTimeField::Dow => Func::DayOfWeek,
                    DateTimeField::Month => Func::Month,
                    DateTimeField::Year => Func::Year,
                    DateTimeField::Epoch => Func::Epoch,
                    other => return Err(self.err(e, format!("EXTRACT({other}) is not supported"))),
                };
                Expr::Func(f, vec![self.conv(expr, post)?])
            }
            E::Cast { expr, .. } => self.conv(expr, post)?,
            E::Function(f) => {
                let name = f.name.to_string().to_lowercase();
                if is_aggregate(&name) {
                    return Err(self.err(e, format!("{name}() is an aggregate: not allowed here")));
                }
                let FunctionArguments::List(list) = &f.args else {
                    return Err(self.err(e, format!("{name} needs arguments in parentheses")));
                };
                let mut args = Vec::new();
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => {
                            args.push(self.conv(x, post)?)
                        }
                        other => return Err(self.err(other, "unsupported argument")),
                    }
                }
                // date_diff('second', a, b) = b - a in seconds.
                if name == "date_diff" || name == "datediff" {
                    return match &args[..] {
                        [Expr::Lit(Lit::Text(u)), a, c] if u.eq_ignore_ascii_case("second") => {
                            Ok(Expr::Bin(BinOp::Sub, b(c.clone()), b(a.clone())))
                        }
                        _ => Err(self.err(e, "date_diff takes ('second', start, end)")),
                    };
                }
                let Some(func) = Func::from_name(&name) else {
                    return Err(self.err(
                        &f.name,
                        format!(
                            "unknown function {name}(); known: count, sum, avg, min, max, stddev, median, approx_quantile, \
                             nullif, coalesce, abs, round, lower, upper, hour, minute, dayofweek, day, date, month, year, epoch, date_trunc, date_diff"
                        ),
                    ));
                };
                let (lo, hi) = func.arity();
                if args.len() < lo || args.len() > hi {
                    return Err(self.err(
                        e,
                        format!(
                            "{name}() takes {lo}{} arguments",
                            if hi == lo {
                                String::new()
                            } else if hi == usize::MAX {
                                " or more".into()
                            } else {
                                format!(" to {hi}")
                            }
                        ),
                    ));
                }
                Expr::Func(func, args)
            }
            other => {
                return Err(self.err(other, format!("unsupported expression: {other}")));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(sql: &str) -> Select {
        compile(sql, vec![], true, false)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .select
            .map(|s| *s)
            .expect("select")
    }

    #[test]
    fn compiles_the_five_questions() {
        let s = sel("SELECT payment_type, count(*) FROM 'd/*.csv' GROUP BY 1");
        assert_eq!(s.keys, vec![Expr::Col(Column::Name("payment_type".into()))]);
        assert_eq!(s.aggs[0].op, AggOp::Count);
        assert_eq!(s.output[1].1, Expr::Agg(0));
        assert_eq!(s.output[0].1, Expr::Key(0));
        let s = sel(
            "SELECT hour(tpep_pickup_datetime) AS h, avg(tip_amount / total_amount) FROM 'x' \
             WHERE total_amount > 0 GROUP BY h ORDER BY h",
        );
        assert_eq!(s.key_names, vec!["h"]);
        assert!(matches!(s.keys[0], Expr::Func(Func::Hour, _)));
        assert!(s.filter.is_some());
        assert_eq!(s.order_by, vec![(Expr::Key(0), false)]);
        let s = sel("SELECT count(DISTINCT passenger_count), median(trip_distance) FROM 'x'");
        assert!(s.keys.is_empty());
        assert_eq!(s.aggs[0].op, AggOp::CountDistinct);
        assert_eq!(s.aggs[1].q, Some(0.5));
        let s = sel(
            "SELECT VendorID, payment_type, count(*), sum(total_amount) AS t FROM 'x' GROUP BY 1, 2 \
             HAVING count(*) > 10 ORDER BY t DESC LIMIT 3",
        );
        assert_eq!(s.keys.len(), 2);
        assert_eq!(s.limit, Some(3));
        assert_eq!(s.order_by, vec![(Expr::Agg(1), true)]);
    }

    #[test]
    fn errors_point_at_the_token() {
        let e = compile("SELECT k, count(*) FROM 'x' GROUP k", vec![], true, false)
            .expect_err("typo")
            .to_string();
        assert!(
            e.contains("syntax error: Expected: end of statement, found: GROUP"),
            "{e}"
        );
        let caret = e.lines().last().expect("caret line");
        let text = e.lines().nth(1).expect("sql line");
        let col = caret.find('^').expect("caret");
        assert_eq!(&text[col..], "GROUP k", "{e}");

        let e = compile("SELECT foo(x) FROM 'x'", vec![], true, false)
            .expect_err("unknown function")
            .to_string();
        assert!(e.contains("unknown function foo()"), "{e}");
        let col = e.lines().last().expect("caret").find('^').expect("caret");
        assert_eq!(&e.lines().nth(1).expect("line")[col..col + 3], "foo");

        let e = compile("SELECT a, count(*) FROM 'x'", vec![], true, false)
            .expect_err("ungrouped")
            .to_string();
        assert!(e.contains("neither a GROUP BY key"), "{e}");
        let e = compile("SELECT count(*)", vec![], true, false)
            .expect_err("no files")
            .to_string();
        assert!(e.contains("no input files"), "{e}");
    }
}
