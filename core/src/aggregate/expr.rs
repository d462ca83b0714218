//! Expressions of SQL queries: the model (serde: it travels to the workers inside the query),
//! typed values, and evaluation over one CSV record or over one merged group.
//!
//! Values follow the column types inferred at planning ([`ColType`]): a numeric column's field
//! is an exact decimal when written as one ([`Num`]), a timestamp column's field is
//! microseconds since the epoch, a text column's field is its bytes. Empty fields and pandas'
//! NA spellings are NULL. A field an expression cannot use (text where a number is needed, a
//! malformed timestamp) is NULL for that expression and reported to the caller as a
//! [`ValueReason`] for its column, so it is counted, never silently dropped.
//!
//! Arithmetic on exact decimals stays exact (`+ - *`, until 38 digits); `/` gives a float (as
//! DuckDB's does); comparisons of decimals are exact. The difference of two timestamps is
//! their distance in seconds.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::num::{self, Num, Parsed};
use super::query::Column;

/// A column's type, inferred from a sample of the data at planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColType {
    /// Only empty or NA values in the sample: read as a number where one is needed, as text
    /// elsewhere.
    Unknown,
    Number,
    Timestamp,
    Text,
}

/// Why a field could not be used by an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueReason {
    /// Not a number in a number column (or where a number is needed).
    NonNumeric,
    /// Not a `YYYY-MM-DD HH:MM:SS` timestamp in a timestamp column.
    NotATimestamp,
}

impl ValueReason {
    pub fn name(self) -> &'static str {
        match self {
            ValueReason::NonNumeric => "non_numeric",
            ValueReason::NotATimestamp => "not_a_timestamp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

/// Scalar functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Func {
    Nullif,
    Coalesce,
    Abs,
    Round,
    Hour,
    Minute,
    DayOfWeek,
    Day,
    Date,
    Month,
    Year,
    Epoch,
    /// `date_trunc(unit, ts)`: the unit is the first argument (a text literal).
    DateTrunc,
    Lower,
    Upper,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "nullif" => Func::Nullif,
            "coalesce" => Func::Coalesce,
            "abs" => Func::Abs,
            "round" => Func::Round,
            "hour" => Func::Hour,
            "minute" => Func::Minute,
            "dayofweek" | "dow" => Func::DayOfWeek,
            "day" | "dayofmonth" => Func::Day,
            "date" => Func::Date,
            "month" => Func::Month,
            "year" => Func::Year,
            "epoch" => Func::Epoch,
            "date_trunc" => Func::DateTrunc,
            "lower" => Func::Lower,
            "upper" => Func::Upper,
            _ => return None,
        })
    }
    /// (min, max) arguments.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Nullif | Func::DateTrunc => (2, 2),
            Func::Coalesce => (1, usize::MAX),
            Func::Round => (1, 2),
            _ => (1, 1),
        }
    }
}

/// A literal of the query text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lit {
    Null,
    Num(Num),
    Text(String),
    Bool(bool),
    /// Microseconds since the epoch.
    Ts(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    Col(Column),
    Lit(Lit),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull(Box<Expr>, bool),
    Between {
        e: Box<Expr>,
        lo: Box<Expr>,
        hi: Box<Expr>,
        negated: bool,
    },
    InList {
        e: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        e: Box<Expr>,
        pattern: String,
        negated: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Func(Func, Vec<Expr>),
    /// After the merge: the i-th group key of the group.
    Key(usize),
    /// After the merge: the j-th aggregate of the group.
    Agg(usize),
}

impl Expr {
    /// Every column this expression reads.
    pub fn columns<'a>(&'a self, out: &mut Vec<&'a Column>) {
        match self {
            Expr::Col(c) => out.push(c),
            Expr::Lit(_) | Expr::Key(_) | Expr::Agg(_) => {}
            Expr::Bin(_, a, b) => {
                a.columns(out);
                b.columns(out);
            }
            Expr::Not(a) | Expr::Neg(a) | Expr::IsNull(a, _) => a.columns(out),
            Expr::Between { e, lo, hi, .. } => {
                e.columns(out);
                lo.columns(out);
                hi.columns(out);
            }
            Expr::InList { e, list, .. } => {
                e.columns(out);
                list.iter().for_each(|x| x.columns(out));
            }
            Expr::Like { e, .. } => e.columns(out),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.columns(out);
                }
                for (w, t) in whens {
                    w.columns(out);
                    t.columns(out);
                }
                if let Some(o) = otherwise {
                    o.columns(out);
                }
            }
            Expr::Func(_, args) => args.iter().for_each(|x| x.columns(out)),
        }
    }

    /// The same expression with every column replaced by `f(column)`.
    pub fn map_columns<E>(
        &self,
        f: &mut dyn FnMut(&Column) -> Result<Column, E>,
    ) -> Result<Expr, E> {
        let b = |e: &Expr,
                 f: &mut dyn FnMut(&Column) -> Result<Column, E>|
         -> Result<Box<Expr>, E> { Ok(Box::new(e.map_columns(f)?)) };
        Ok(match self {
            Expr::Col(c) => Expr::Col(f(c)?),
            Expr::Lit(_) | Expr::Key(_) | Expr::Agg(_) => self.clone(),
            Expr::Bin(op, a, c) => Expr::Bin(*op, b(a, f)?, b(c, f)?),
            Expr::Not(a) => Expr::Not(b(a, f)?),
            Expr::Neg(a) => Expr::Neg(b(a, f)?),
            Expr::IsNull(a, n) => Expr::IsNull(b(a, f)?, *n),
            Expr::Between { e, lo, hi, negated } => Expr::Between {
                e: b(e, f)?,
                lo: b(lo, f)?,
                hi: b(hi, f)?,
                negated: *negated,
            },
            Expr::InList { e, list, negated } => Expr::InList {
                e: b(e, f)?,
                list: list
                    .iter()
                    .map(|x| x.map_columns(f))
                    .collect::<Result<_, _>>()?,
                negated: *negated,
            },
            Expr::Like {
                e,
                pattern,
                negated,
            } => Expr::Like {
                e: b(e, f)?,
                pattern: pattern.clone(),
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => Expr::Case {
                operand: match operand {
                    Some(o) => Some(b(o, f)?),
                    None => None,
                },
                whens: whens
                    .iter()
                    .map(|(w, t)| Ok((w.map_columns(f)?, t.map_columns(f)?)))
                    .collect::<Result<_, E>>()?,
                otherwise: match otherwise {
                    Some(o) => Some(b(o, f)?),
                    None => None,
                },
            },
            Expr::Func(func, args) => Expr::Func(
                *func,
                args.iter()
                    .map(|x| x.map_columns(f))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The column, if this expression is just one.
    pub fn as_column(&self) -> Option<&Column> {
        match self {
            Expr::Col(c) => Some(c),
            _ => None,
        }
    }
}

/// A typed value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Num(Num),
    Text(Cow<'a, [u8]>),
    Bool(bool),
    /// Microseconds since the epoch.
    Ts(i64),
    /// Days since the epoch.
    Date(i64),
}

impl Val<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }
    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Text(t) => Val::Text(Cow::Owned(t.into_owned())),
            Val::Null => Val::Null,
            Val::Num(n) => Val::Num(n),
            Val::Bool(b) => Val::Bool(b),
            Val::Ts(t) => Val::Ts(t),
            Val::Date(d) => Val::Date(d),
        }
    }

    /// A canonical byte encoding (equal values, equal bytes): group keys and distinct sets.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Val::Null => out.push(0),
            Val::Num(n) => match canonical(*n) {
                Num::Dec { m, scale } => {
                    out.push(1);
                    out.extend_from_slice(&m.to_le_bytes());
                    out.push(scale);
                }
                Num::Float(x) => {
                    out.push(2);
                    out.extend_from_slice(&x.to_bits().to_le_bytes());
                }
            },
            Val::Text(t) => {
                out.push(3);
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t);
            }
            Val::Bool(b) => out.extend_from_slice(&[4, u8::from(*b)]),
            Val::Ts(t) => {
                out.push(5);
                out.extend_from_slice(&t.to_le_bytes());
            }
            Val::Date(d) => {
                out.push(6);
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
    }

    /// Decodes one value of [`Val::encode`] from the front of `b`; returns it and the rest.
    pub fn decode(b: &[u8]) -> Option<(Val<'static>, &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let take = |n: usize| (rest.len() >= n).then(|| rest.split_at(n));
        Some(match tag {
            0 => (Val::Null, rest),
            1 => {
                let (m, r) = take(17)?;
                let mut a = [0u8; 16];
                a.copy_from_slice(&m[..16]);
                (
                    Val::Num(Num::Dec {
                        m: i128::from_le_bytes(a),
                        scale: m[16],
                    }),
                    r,
                )
            }
            2 => {
                let (m, r) = take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(m);
                (
                    Val::Num(Num::Float(f64::from_bits(u64::from_le_bytes(a)))),
                    r,
                )
            }
            3 => {
                let (l, r) = take(4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(l);
                let n = u32::from_le_bytes(a) as usize;
                if r.len() < n {
                    return None;
                }
                let (t, r) = r.split_at(n);
                (Val::Text(Cow::Owned(t.to_vec())), r)
            }
            4 => {
                let (v, r) = take(1)?;
                (Val::Bool(v[0] != 0), r)
            }
            5 | 6 => {
                let (v, r) = take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(v);
                let x = i64::from_le_bytes(a);
                (if tag == 5 { Val::Ts(x) } else { Val::Date(x) }, r)
            }
            _ => return None,
        })
    }

    /// SQL-like ordering for ORDER BY: NULLs last, numbers by value, text by bytes.
    pub fn order(&self, o: &Val<'_>) -> Ordering {
        match (self, o) {
            (Val::Null, Val::Null) => Ordering::Equal,
            (Val::Null, _) => Ordering::Greater,
            (_, Val::Null) => Ordering::Less,
            (Val::Num(a), Val::Num(b)) => a.num_cmp(b),
            (Val::Text(a), Val::Text(b)) => a.cmp(b),
            (Val::Bool(a), Val::Bool(b)) => a.cmp(b),
            (Val::Ts(a), Val::Ts(b)) | (Val::Date(a), Val::Date(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(o)),
        }
    }

    /// Text as printed in tables and JSON.
    pub fn to_text(&self) -> String {
        match self {
            Val::Null => "NULL".into(),
            Val::Num(n) => n.to_text(),
            Val::Text(t) => String::from_utf8_lossy(t).into_owned(),
            Val::Bool(b) => b.to_string(),
            Val::Ts(t) => ts_text(*t),
            Val::Date(d) => date_text(*d),
        }
    }
}

fn rank(v: &Val<'_>) -> u8 {
    match v {
        Val::Bool(_) => 0,
        Val::Num(_) => 1,
        Val::Date(_) => 2,
        Val::Ts(_) => 3,
        Val::Text(_) => 4,
        Val::Null => 5,
    }
}

/// Decimals without trailing fractional zeros (`1.50` and `1.5` are one value).
pub fn canonical(n: Num) -> Num {
    match n {
        Num::Dec { mut m, mut scale } => {
            while scale > 0 && m % 10 == 0 {
                m /= 10;
                scale -= 1;
            }
            Num::Dec { m, scale }
        }
        // -0.0 and 0.0 are one value.
        Num::Float(0.0) => Num::Float(0.0),
        f => f,
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps

const MICROS: i64 = 1_000_000;
const DAY: i64 = 86_400 * MICROS;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` (or `T` between) → microseconds since the epoch.
pub fn parse_ts(b: &[u8]) -> Option<i64> {
    let b = b.trim_ascii();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut t = days_from_civil(y, m, d) * DAY;
    if b.len() == 10 {
        return Some(t);
    }
    if b.len() < 19 || !matches!(b[10], b' ' | b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    t += ((h * 60 + mi) * 60 + s) * MICROS;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() > 26 {
            return None;
        }
        let frac = &b[20..];
        let f = digits(frac)?;
        t += f * 10i64.pow(6 - frac.len() as u32);
    }
    Some(t)
}

pub fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn ts_text(t: i64) -> String {
    let days = t.div_euclid(DAY);
    let rem = t.rem_euclid(DAY);
    let secs = rem / MICROS;
    let mut s = format!(
        "{} {:02}:{:02}:{:02}",
        date_text(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if rem % MICROS != 0 {
        s.push_str(&format!(".{:06}", rem % MICROS));
    }
    s
}

fn int(n: i64) -> Val<'static> {
    Val::Num(Num::Dec {
        m: i128::from(n),
        scale: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Where an expression's columns, keys and aggregates come from.
pub trait Ctx<'a> {
    /// The raw (unquoted) bytes of column `col` of the current record.
    fn field(&mut self, col: usize) -> Cow<'a, [u8]>;
    fn col_type(&self, col: usize) -> ColType;
    /// A field of `col` could not be used.
    fn problem(&mut self, col: usize, reason: ValueReason);
    fn key(&mut self, _i: usize) -> Val<'a> {
        Val::Null
    }
    fn agg(&mut self, _j: usize) -> Val<'a> {
        Val::Null
    }
}

/// Reads column `col` as its type says.
pub fn column<'a, C: Ctx<'a>>(ctx: &mut C, col: usize) -> Val<'a> {
    let raw = ctx.field(col);
    let t = raw.trim_ascii();
    if t.is_empty() || num::is_na(t) {
        return Val::Null;
    }
    match ctx.col_type(col) {
        ColType::Number => match num::parse(t) {
            Parsed::Value(n) => Val::Num(n),
            Parsed::Missing => Val::Null,
            Parsed::Invalid => {
                ctx.problem(col, ValueReason::NonNumeric);
                Val::Null
            }
        },
        ColType::Timestamp => match parse_ts(t) {
            Some(ts) => Val::Ts(ts),
            None => {
                ctx.problem(col, ValueReason::NotATimestamp);
                Val::Null
            }
        },
        ColType::Text | ColType::Unknown => Val::Text(raw),
    }
}

/// A number from `v`; text is parsed (a column's text that is not a number is a problem of
/// that column).
fn to_num<'a, C: Ctx<'a>>(v: Val<'a>, e: &Expr, ctx: &mut C) -> Option<Num> {
    match v {
        Val::Num(n) => Some(n),
        Val::Bool(b) => Some(Num::Dec {
            m: i128::from(b),
            scale: 0,
        }),
        Val::Text(t) => match num::parse(&t) {
            Parsed::Value(n) => Some(n),
            _ => {
                if let Expr::Col(Column::Index(c)) = e {
                    ctx.problem(*c, ValueReason::NonNumeric);
                }
                None
            }
        },
        _ => None,
    }
}

fn to_ts<'a, C: Ctx<'a>>(v: Val<'a>, e: &Expr, ctx: &mut C) -> Option<i64> {
    match v {
        Val::Ts(t) => Some(t),
        Val::Date(d) => Some(d * DAY),
        Val::Text(t) => match parse_ts(&t) {
            Some(ts) => Some(ts),
            None => {
                if let Expr::Col(Column::Index(c)) = e {
                    ctx.problem(*c, ValueReason::NotATimestamp);
                }
                None
            }
        },
        _ => None,
    }
}

fn truth(v: &Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(*b),
        Val::Null => None,
        Val::Num(n) => Some(n.to_f64() != 0.0),
        _ => None,
    }
}

fn ten(k: u8) -> Option<i128> {
    10i128.checked_pow(u32::from(k))
}

/// Exact `a op b` for + - * on decimals when it fits; floats otherwise.
pub fn arith(op: BinOp, a: Num, b: Num) -> Option<Num> {
    if let (Num::Dec { m: x, scale: s }, Num::Dec { m: y, scale: t }) = (a, b) {
        let exact = match op {
            BinOp::Add | BinOp::Sub => {
                let sc = s.max(t);
                let xa = ten(sc - s).and_then(|p| x.checked_mul(p));
                let ya = ten(sc - t).and_then(|p| y.checked_mul(p));
                match (xa, ya) {
                    (Some(xa), Some(ya)) => if op == BinOp::Add {
                        xa.checked_add(ya)
                    } else {
                        xa.checked_sub(ya)
                    }
                    .map(|m| Num::Dec { m, scale: sc }),
                    _ => None,
                }
            }
            BinOp::Mul if s + t <= 38 => x.checked_mul(y).map(|m| Num::Dec { m, scale: s + t }),
            BinOp::Mod if s == 0 && t == 0 => {
                if y == 0 {
                    return None;
                }
                x.checked_rem(y).map(|m| Num::Dec { m, scale: 0 })
            }
            _ => None,
        };
        if exact.is_some() {
            return exact;
        }
    }
    let (x, y) = (a.to_f64(), b.to_f64());
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => {
            if y == 0.0 {
                return None;
            }
            x / y
        }
        BinOp::Mod => {
            if y == 0.0 {
                return None;
            }
            x % y
        }
        _ => return None,
    };
    r.is_finite().then_some(Num::Float(r))
}

/// Compares two values the way SQL does after implicit casts: numbers as numbers, text as
/// bytes, a text literal against a timestamp as a timestamp. None: NULL or not comparable.
fn compare<'a, C: Ctx<'a>>(
    a: Val<'a>,
    ea: &Expr,
    b: Val<'a>,
    eb: &Expr,
    ctx: &mut C,
) -> Option<Ordering> {
    match (a, b) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Num(x), Val::Num(y)) => Some(x.num_cmp(&y)),
        (Val::Text(x), Val::Text(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(&y)),
        (Val::Ts(x), Val::Ts(y)) | (Val::Date(x), Val::Date(y)) => Some(x.cmp(&y)),
        (Val::Ts(x), Val::Date(d)) => Some(x.cmp(&(d * DAY))),
        (Val::Date(d), Val::Ts(y)) => Some((d * DAY).cmp(&y)),
        (x @ Val::Num(_), t @ Val::Text(_)) => {
            let y = to_num(t, eb, ctx)?;
            let Val::Num(x) = x else { return None };
            Some(x.num_cmp(&y))
        }
        (t @ Val::Text(_), y @ Val::Num(_)) => {
            let x = to_num(t, ea, ctx)?;
            let Val::Num(y) = y else { return None };
            Some(x.num_cmp(&y))
        }
        (x @ (Val::Ts(_) | Val::Date(_)), t @ Val::Text(_)) => {
            let y = to_ts(t, eb, ctx)?;
            let x = to_ts(x, ea, ctx)?;
            Some(x.cmp(&y))
        }
        (t @ Val::Text(_), y @ (Val::Ts(_) | Val::Date(_))) => {
            let x = to_ts(t, ea, ctx)?;
            let y = to_ts(y, eb, ctx)?;
            Some(x.cmp(&y))
        }
        _ => None,
    }
}

/// SQL LIKE: `%` any run, `_` one byte.
pub fn like(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'_' || p[pi] == s[si]) && p[pi] != b'%' {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == b'%' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'%' {
        pi += 1;
    }
    pi == p.len()
}

fn round_num(n: Num, digits: i64) -> Num {
    match n {
        Num::Dec { m, scale } if digits >= 0 && i64::from(scale) > digits => {
            let drop = (i64::from(scale) - digits) as u32;
            let Some(p) = 10i128.checked_pow(drop) else {
                return Num::Dec { m: 0, scale: 0 };
            };
            // Half away from zero, as DuckDB rounds decimals.
            let q = m / p;
            let r = m % p;
            let q = if r.abs() * 2 >= p { q + m.signum() } else { q };
            Num::Dec {
                m: q,
                scale: digits as u8,
            }
        }
        Num::Dec { .. } if digits >= 0 => n,
        _ => {
            let x = n.to_f64();
            let f = 10f64.powi(digits as i32);
            Num::Float((x * f).round() / f)
        }
    }
}

fn trunc_ts(unit: &str, t: i64) -> Option<i64> {
    let floor = |u: i64| Some(t.div_euclid(u) * u);
    match unit {
        "second" => floor(MICROS),
        "minute" => floor(60 * MICROS),
        "hour" => floor(3600 * MICROS),
        "day" => floor(DAY),
        "month" | "year" => {
            let (y, m, _) = civil_from_days(t.div_euclid(DAY));
            let m = if unit == "year" { 1 } else { m };
            Some(days_from_civil(y, m, 1) * DAY)
        }
        _ => None,
    }
}

/// Evaluates `e` over the current record (or group) of `ctx`.
pub fn eval<'a, C: Ctx<'a>>(e: &'a Expr, ctx: &mut C) -> Val<'a> {
    match e {
        Expr::Col(Column::Index(c)) => column(ctx, *c),
        Expr::Col(Column::Name(_)) => Val::Null,
        Expr::Lit(l) => match l {
            Lit::Null => Val::Null,
            Lit::Num(n) => Val::Num(*n),
            Lit::Text(s) => Val::Text(Cow::Borrowed(s.as_bytes())),
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Ts(t) => Val::Ts(*t),
        },
        Expr::Key(i) => ctx.key(*i),
        Expr::Agg(j) => ctx.agg(*j),
        Expr::Bin(op, a, b) => match op {
            BinOp::And => {
                let x = truth(&eval(a, ctx));
                if x == Some(false) {
                    return Val::Bool(false);
                }
                match (x, truth(&eval(b, ctx))) {
                    (_, Some(false)) => Val::Bool(false),
                    (Some(true), Some(true)) => Val::Bool(true),
                    _ => Val::Null,
                }
            }
            BinOp::Or => {
                let x = truth(&eval(a, ctx));
                if x == Some(true) {
                    return Val::Bool(true);
                }
                match (x, truth(&eval(b, ctx))) {
                    (_, Some(true)) => Val::Bool(true),
                    (Some(false), Some(false)) => Val::Bool(false),
                    _ => Val::Null,
                }
            }
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
                let (x, y) = (eval(a, ctx), eval(b, ctx));
                match compare(x, a, y, b, ctx) {
                    None => Val::Null,
                    Some(o) => Val::Bool(match op {
                        BinOp::Eq => o.is_eq(),
                        BinOp::NotEq => o.is_ne(),
                        BinOp::Lt => o.is_lt(),
                        BinOp::LtEq => o.is_le(),
                        BinOp::Gt => o.is_gt(),
                        _ => o.is_ge(),
                    }),
                }
            }
            _ => {
                let (x, y) = (eval(a, ctx), eval(b, ctx));
                if x.is_null() || y.is_null() {
                    return Val::Null;
                }
                // Timestamp - timestamp: seconds between them.
                if *op == BinOp::Sub
                    && matches!(x, Val::Ts(_) | Val::Date(_))
                    && matches!(y, Val::Ts(_) | Val::Date(_) | Val::Text(_))
                {
                    return match (to_ts(x, a, ctx), to_ts(y, b, ctx)) {
                        (Some(p), Some(q)) => Val::Num(seconds(p - q)),
                        _ => Val::Null,
                    };
                }
                match (to_num(x, a, ctx), to_num(y, b, ctx)) {
                    (Some(p), Some(q)) => arith(*op, p, q).map_or(Val::Null, Val::Num),
                    _ => Val::Null,
                }
            }
        },
        Expr::Not(a) => match truth(&eval(a, ctx)) {
            Some(b) => Val::Bool(!b),
            None => Val::Null,
        },
        Expr::Neg(a) => {
            let v = eval(a, ctx);
            match to_num(v, a, ctx) {
                Some(Num::Dec { m, scale }) => Val::Num(Num::Dec { m: -m, scale }),
                Some(Num::Float(x)) => Val::Num(Num::Float(-x)),
                None => Val::Null,
            }
        }
        Expr::IsNull(a, negated) => Val::Bool(eval(a, ctx).is_null() != *negated),
        Expr::Between {
            e: x,
            lo,
            hi,
            negated,
        } => {
            let v = eval(x, ctx);
            let l = eval(lo, ctx);
            let h = eval(hi, ctx);
            let ge = compare(v.clone(), x, l, lo, ctx).map(Ordering::is_ge);
            let le = compare(v, x, h, hi, ctx).map(Ordering::is_le);
            match (ge, le) {
                (Some(a), Some(b)) => Val::Bool((a && b) != *negated),
                (Some(false), None) | (None, Some(false)) => Val::Bool(*negated),
                _ => Val::Null,
            }
        }
        Expr::InList {
            e: x,
            list,
            negated,
        } => {
            let v = eval(x, ctx);
            if v.is_null() {
                return Val::Null;
            }
            let mut saw_null = false;
            for item in list {
                let w = eval(item, ctx);
                match compare(v.clone(), x, w, item, ctx) {
                    Some(Ordering::Equal) => return Val::Bool(!*negated),
                    None => saw_null = true,
                    _ => {}
                }
            }
            if saw_null {
                Val::Null
            } else {
                Val::Bool(*negated)
            }
        }
        Expr::Like {
            e: x,
            pattern,
            negated,
        } => match eval(x, ctx) {
            Val::Null => Val::Null,
            Val::Text(t) => Val::Bool(like(&t, pattern.as_bytes()) != *negated),
            other => Val::Bool(like(other.to_text().as_bytes(), pattern.as_bytes()) != *negated),
        },
        Expr::Case {
            operand,
            whens,
            otherwise,
        } => {
            let base = operand.as_ref().map(|o| (eval(o, ctx), o));
            for (w, t) in whens {
                let hit = match &base {
                    Some((v, o)) => {
                        let wv = eval(w, ctx);
                        compare(v.clone(), o, wv, w, ctx) == Some(Ordering::Equal)
                    }
                    None => truth(&eval(w, ctx)) == Some(true),
                };
                if hit {
                    return eval(t, ctx);
                }
            }
            match otherwise {
                Some(o) => eval(o, ctx),
                None => Val::Null,
            }
        }
        Expr::Func(f, args) => eval_func(*f, args, ctx),
    }
}

fn seconds(micros: i64) -> Num {
    if micros % MICROS == 0 {
        Num::Dec {
            m: i128::from(micros / MICROS),
            scale: 0,
        }
    } else {
        Num::Dec {
            m: i128::from(micros),
            scale: 6,
        }
    }
}

fn eval_func<'a, C: Ctx<'a>>(f: Func, args: &'a [Expr], ctx: &mut C) -> Val<'a> {
    let arg = |i: usize| &args[i.min(args.len().saturating_sub(1))];
    match f {
        Func::Coalesce => {
            for a in args {
                let v = eval(a, ctx);
                if !v.is_null() {
                    return v;
                }
            }
            Val::Null
        }
        Func::Nullif => {
            let (a, b) = (arg(0), arg(1));
            let x = eval(a, ctx);
            let y = eval(b, ctx);
            if compare(x.clone(), a, y, b, ctx) == Some(Ordering::Equal) {
                Val::Null
            } else {
                x
            }
        }
        Func::Abs => {
            let v = eval(arg(0), ctx);
            match to_num(v, arg(0), ctx) {
                Some(Num::Dec { m, scale }) => Val::Num(Num::Dec { m: m.abs(), scale }),
                Some(Num::Float(x)) => Val::Num(Num::Float(x.abs())),
                None => Val::Null,
            }
        }
        Func::Round => {
            let v = eval(arg(0), ctx);
            let d = if args.len() > 1 {
                let dv = eval(arg(1), ctx);
                match to_num(dv, arg(1), ctx) {
                    Some(n) => n.to_f64() as i64,
                    None => return Val::Null,
                }
            } else {
                0
            };
            match to_num(v, arg(0), ctx) {
                Some(n) => Val::Num(round_num(n, d)),
                None => Val::Null,
            }
        }
        Func::Lower | Func::Upper => match eval(arg(0), ctx) {
            Val::Null => Val::Null,
            v => {
                let t = match v {
                    Val::Text(t) => t.into_owned(),
                    o => o.to_text().into_bytes(),
                };
                Val::Text(Cow::Owned(if f == Func::Lower {
                    t.to_ascii_lowercase()
                } else {
                    t.to_ascii_uppercase()
                }))
            }
        },
        Func::DateTrunc => {
            let unit = match eval(arg(0), ctx) {
                Val::Text(t) => String::from_utf8_lossy(&t).to_ascii_lowercase(),
                _ => return Val::Null,
            };
            let v = eval(arg(1), ctx);
            match to_ts(v, arg(1), ctx).and_then(|t| trunc_ts(&unit, t)) {
                Some(t) => Val::Ts(t),
                None => Val::Null,
            }
        }
        _ => {
            let v = eval(arg(0), ctx);
            let Some(t) = to_ts(v, arg(0), ctx) else {
                return Val::Null;
            };
            let days = t.div_euclid(DAY);
            let in_day = t.rem_euclid(DAY) / MICROS;
            match f {
                Func::Hour => int(in_day / 3600),
                Func::Minute => int(in_day / 60 % 60),
                // DuckDB: Sunday = 0 … Saturday = 6; 1970-01-01 was a Thursday.
                Func::DayOfWeek => int((days + 4).rem_euclid(7)),
                Func::Day => int(civil_from_days(days).2),
                Func::Month => int(civil_from_days(days).1),
                Func::Year => int(civil_from_days(days).0),
                Func::Date => Val::Date(days),
                Func::Epoch => Val::Num(seconds(t)),
                _ => Val::Null,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_split() {
        let t = parse_ts(b"2015-01-04 13:05:09").expect("ts");
        assert_eq!(ts_text(t), "2015-01-04 13:05:09");
        assert_eq!(t / MICROS, 1_420_376_709);
        assert_eq!(date_text(t.div_euclid(DAY)), "2015-01-04");
        // 2015-01-04 was a Sunday.
        assert_eq!((t.div_euclid(DAY) + 4).rem_euclid(7), 0);
        assert_eq!(parse_ts(b"2015-13-01 00:00:00"), None);
        assert_eq!(parse_ts(b"N"), None);
        assert_eq!(
            ts_text(trunc_ts("month", t).expect("trunc")),
            "2015-01-01 00:00:00"
        );
        for d in [-800_000i64, -1, 0, 1, 16_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn like_and_round() {
        assert!(like(b"credit card", b"cr%d"));
        assert!(like(b"abc", b"a_c"));
        assert!(!like(b"abc", b"a_"));
        assert!(like(b"", b"%"));
        assert_eq!(
            round_num(Num::Dec { m: 125, scale: 2 }, 1),
            Num::Dec { m: 13, scale: 1 }
        );
        assert_eq!(
            round_num(Num::Dec { m: -125, scale: 2 }, 1),
            Num::Dec { m: -13, scale: 1 }
        );
    }

    #[test]
    fn exact_decimal_arithmetic() {
        let a = Num::Dec { m: 1250, scale: 2 };
        let b = Num::Dec { m: 3, scale: 1 };
        assert_eq!(
            arith(BinOp::Add, a, b),
            Some(Num::Dec { m: 1280, scale: 2 })
        );
        assert_eq!(
            arith(BinOp::Mul, a, b),
            Some(Num::Dec { m: 3750, scale: 3 })
        );
        assert_eq!(arith(BinOp::Div, a, b), Some(Num::Float(12.5 / 0.3)));
        assert_eq!(arith(BinOp::Div, a, Num::Dec { m: 0, scale: 0 }), None);
    }
}
