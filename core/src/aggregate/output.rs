//! After the exact merge: aggregate states become values, and a SQL query's select list,
//! HAVING, ORDER BY and LIMIT are evaluated over the merged groups. Everything here is a
//! function of the merged groups alone, so every way of computing them prints the same table.

use std::borrow::Cow;

use super::expr::{self, ColType, Ctx, Expr, Val, ValueReason};
use super::num::{self, Num, Parsed, SumAcc};
use super::partial::{AggState, Group};
use super::plan::Plan;
use super::query::{Column, Select};
use super::result::{Table, Value};

/// A value as results carry it.
pub fn value(v: &Val<'_>) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Num(Num::Dec { m, scale: 0 }) if *m >= 0 && *m <= i128::from(u64::MAX) => {
            Value::Int(*m as u64)
        }
        Val::Num(Num::Dec { m, scale }) => Value::Decimal(num::dec_text(*m, *scale)),
        Val::Num(Num::Float(x)) => Value::Float(*x),
        other => Value::Text(other.to_text()),
    }
}

fn val_of(v: &Value) -> Val<'static> {
    match v {
        Value::Null => Val::Null,
        Value::Int(n) => Val::Num(Num::Dec {
            m: i128::from(*n),
            scale: 0,
        }),
        Value::Decimal(t) => match num::parse(t.as_bytes()) {
            Parsed::Value(n) => Val::Num(n),
            _ => Val::Text(Cow::Owned(t.clone().into_bytes())),
        },
        Value::Float(x) => Val::Num(Num::Float(*x)),
        Value::Text(t) => Val::Text(Cow::Owned(t.clone().into_bytes())),
    }
}

/// Sample standard deviation from exact Σx and Σx²: exact in i128 while it fits.
fn stddev(n: u64, sum: &SumAcc, sumsq: &SumAcc) -> Value {
    if n < 2 {
        return Value::Null;
    }
    let nn = i128::from(n);
    if sum.is_exact() && sumsq.is_exact() && sumsq.scale == sum.scale.saturating_mul(2) {
        // n·Σx² − (Σx)², both at scale 2s.
        if let (Some(a), Some(b)) = (nn.checked_mul(sumsq.m), sum.m.checked_mul(sum.m))
            && let Some(d) = a.checked_sub(b)
        {
            let var = d as f64 / 10f64.powi(i32::from(sumsq.scale)) / (n as f64 * (n - 1) as f64);
            return Value::Float(var.max(0.0).sqrt());
        }
    }
    let (s, q) = (sum.to_f64(), sumsq.to_f64());
    let var = (q - s * s / n as f64) / (n - 1) as f64;
    Value::Float(var.max(0.0).sqrt())
}

/// The value of one aggregate of a group (`q`: the quantile of a sketch). `sql`: a sum of no
/// values is NULL (SQL) rather than 0 (pandas).
pub fn agg_value(a: &AggState, rows: u64, q: Option<f64>, sql: bool) -> Value {
    match a {
        AggState::Rows => Value::Int(rows),
        AggState::Count(n) => Value::Int(*n),
        AggState::Sum { sum, n } => {
            if *n == 0 && sql {
                return Value::Null;
            }
            match sum.exact_text() {
                Some(t) => Value::Decimal(t),
                None => Value::Float(sum.to_f64()),
            }
        }
        AggState::Mean { sum, n } => {
            if *n == 0 {
                Value::Null
            } else {
                Value::Float(sum.to_f64() / *n as f64)
            }
        }
        AggState::Min(m) | AggState::Max(m) => match m {
            Some(v) => value(&v.val()),
            None => Value::Null,
        },
        AggState::Distinct(set) => Value::Int(set.len() as u64),
        AggState::Stddev { n, sum, sumsq } => stddev(*n, sum, sumsq),
        AggState::Quantile(s) => match s.quantile(q.unwrap_or(0.5)) {
            Some(x) => Value::Float(x),
            None => Value::Null,
        },
    }
}

/// The typed value of key `i` of a group: raw bytes of a plain-column key, read as its
/// column's type; the decoded value of an expression key.
pub fn key_val(plan: &Plan, plain: bool, i: usize, bytes: &[u8]) -> Val<'static> {
    if !plain {
        return Val::decode(bytes).map_or(Val::Null, |(v, _)| v);
    }
    let t = bytes.trim_ascii();
    if t.is_empty() || num::is_na(t) {
        return Val::Null;
    }
    let ty = match plan.keys.get(i) {
        Some(Expr::Col(Column::Index(c))) => plan.col_types.get(*c).copied(),
        _ => None,
    };
    match ty {
        Some(ColType::Number) => {
            if let Parsed::Value(n) = num::parse(t) {
                return Val::Num(n);
            }
        }
        Some(ColType::Timestamp) => {
            if let Some(ts) = expr::parse_ts(t) {
                return Val::Ts(ts);
            }
        }
        _ => {}
    }
    Val::Text(Cow::Owned(bytes.to_vec()))
}

struct GroupCtx {
    keys: Vec<Val<'static>>,
    aggs: Vec<Val<'static>>,
}

impl<'a> Ctx<'a> for GroupCtx {
    fn field(&mut self, _col: usize) -> Cow<'a, [u8]> {
        Cow::Borrowed(b"")
    }
    fn col_type(&self, _col: usize) -> ColType {
        ColType::Unknown
    }
    fn problem(&mut self, _col: usize, _reason: ValueReason) {}
    fn key(&mut self, i: usize) -> Val<'a> {
        self.keys.get(i).cloned().unwrap_or(Val::Null)
    }
    fn agg(&mut self, j: usize) -> Val<'a> {
        self.aggs.get(j).cloned().unwrap_or(Val::Null)
    }
}

/// The SQL result table of the merged `groups`.
pub fn sql_table(plan: &Plan, sel: &Select, groups: &[Group]) -> Table {
    let plain = plan.keys.iter().all(|k| k.as_column().is_some());
    // (order keys, group keys as values, output row)
    let mut rows: Vec<(Vec<Val<'static>>, Vec<Val<'static>>, Vec<Value>)> = Vec::new();
    for g in groups {
        let keys: Vec<Val<'static>> = g
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| key_val(plan, plain, i, k))
            .collect();
        let aggs: Vec<Val<'static>> = g
            .aggs
            .iter()
            .zip(&plan.aggregates)
            .map(|(a, r)| val_of(&agg_value(a, g.rows, r.q, true)))
            .collect();
        let mut ctx = GroupCtx { keys, aggs };
        if let Some(h) = &sel.having
            && !matches!(expr::eval(h, &mut ctx), Val::Bool(true))
        {
            continue;
        }
        let out: Vec<Value> = sel
            .output
            .iter()
            .map(|(_, e)| value(&expr::eval(e, &mut ctx)))
            .collect();
        let order: Vec<Val<'static>> = sel
            .order_by
            .iter()
            .map(|(e, _)| expr::eval(e, &mut ctx).into_owned())
            .collect();
        rows.push((order, ctx.keys, out));
    }
    rows.sort_by(|a, b| {
        for (i, (_, desc)) in sel.order_by.iter().enumerate() {
            let o = a.0[i].order(&b.0[i]);
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        // Then by the group keys: a fixed order whatever the merge order was.
        for (x, y) in a.1.iter().zip(&b.1) {
            let o = x.order(y);
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let limit = sel.limit.map_or(usize::MAX, |l| l as usize);
    Table {
        columns: sel.output.iter().map(|(n, _)| n.clone()).collect(),
        rows: rows.into_iter().take(limit).map(|(_, _, r)| r).collect(),
    }
}

/// The group a global aggregate (no GROUP BY) has when no row reached it.
pub fn empty_group(plan: &Plan) -> Group {
    Group {
        key: Vec::new(),
        rows: 0,
        aggs: plan
            .aggregates
            .iter()
            .map(|a| AggState::new(a.op, a.column.is_some() || a.arg.is_some()))
            .collect(),
    }
}
