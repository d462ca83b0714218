//! Partial results: what one partition (or several, merged) computed, and the sink that builds
//! one from the walker's records.
//!
//! A [`Partial`] carries, besides its groups, one [`SpanStats`] per byte range it covers: the
//! quote parity that range was computed under, and its counts of quotes and newlines. Those are
//! what lets the merger check parities and turn span-relative line numbers into file lines.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::badrows::{
    BadExample, BadReason, BadRows, BadValue, EXCERPT_BYTES, ValueExample, merge_bad_values,
};
use super::expr::{self, ColType, Ctx, Expr, Val, ValueReason};
use super::num::{Num, SumAcc};
use super::plan::{Parity, Partition, Plan};
use super::query::{AggOp, Column};
use super::scan::Sink;
use super::sketch::QuantileSketch;

/// An owned value of `min`/`max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SVal {
    Num(Num),
    Text(Vec<u8>),
    Ts(i64),
    Date(i64),
    Bool(bool),
}

impl SVal {
    pub fn of(v: &Val<'_>) -> Option<SVal> {
        Some(match v {
            Val::Null => return None,
            Val::Num(n) => SVal::Num(*n),
            Val::Text(t) => SVal::Text(t.to_vec()),
            Val::Ts(t) => SVal::Ts(*t),
            Val::Date(d) => SVal::Date(*d),
            Val::Bool(b) => SVal::Bool(*b),
        })
    }
    pub fn val(&self) -> Val<'_> {
        match self {
            SVal::Num(n) => Val::Num(*n),
            SVal::Text(t) => Val::Text(Cow::Borrowed(t)),
            SVal::Ts(t) => Val::Ts(*t),
            SVal::Date(d) => Val::Date(*d),
            SVal::Bool(b) => Val::Bool(*b),
        }
    }
}

/// The state of one aggregate in one group. Every merge is exact and order-independent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggState {
    /// `count` without a column: the group's rows (kept in [`Group::rows`]).
    Rows,
    /// `count(col)`: non-missing values.
    Count(u64),
    Sum {
        sum: SumAcc,
        n: u64,
    },
    Mean {
        sum: SumAcc,
        n: u64,
    },
    Min(Option<SVal>),
    Max(Option<SVal>),
    /// `count(DISTINCT x)`: the values' canonical encodings.
    Distinct(BTreeSet<Vec<u8>>),
    Stddev {
        n: u64,
        sum: SumAcc,
        sumsq: SumAcc,
    },
    Quantile(QuantileSketch),
}

fn num_of(v: &Val<'_>) -> Option<Num> {
    match v {
        Val::Num(n) => Some(*n),
        Val::Bool(b) => Some(Num::Dec {
            m: i128::from(*b),
            scale: 0,
        }),
        _ => None,
    }
}

impl AggState {
    pub(crate) fn new(op: AggOp, has_arg: bool) -> AggState {
        match op {
            AggOp::Count if has_arg => AggState::Count(0),
            AggOp::Count => AggState::Rows,
            AggOp::Sum => AggState::Sum {
                sum: SumAcc::default(),
                n: 0,
            },
            AggOp::Mean => AggState::Mean {
                sum: SumAcc::default(),
                n: 0,
            },
            AggOp::Min => AggState::Min(None),
            AggOp::Max => AggState::Max(None),
            AggOp::CountDistinct => AggState::Distinct(BTreeSet::new()),
            AggOp::Stddev => AggState::Stddev {
                n: 0,
                sum: SumAcc::default(),
                sumsq: SumAcc::default(),
            },
            AggOp::Quantile => AggState::Quantile(QuantileSketch::default()),
        }
    }

    /// Adds a non-NULL value. False: the value is not of a kind this aggregate uses (text in
    /// a sum): it is left out and counted as missing.
    #[inline]
    fn add(&mut self, v: &Val<'_>, scratch: &mut Vec<u8>) -> bool {
        match self {
            AggState::Rows => {}
            AggState::Count(n) => *n += 1,
            AggState::Sum { sum, n } | AggState::Mean { sum, n } => {
                let Some(x) = num_of(v) else { return false };
                sum.add(x);
                *n += 1;
            }
            AggState::Min(m) => {
                if m.as_ref().is_none_or(|x| v.order(&x.val()).is_lt()) {
                    *m = SVal::of(v);
                }
            }
            AggState::Max(m) => {
                if m.as_ref().is_none_or(|x| v.order(&x.val()).is_gt()) {
                    *m = SVal::of(v);
                }
            }
            AggState::Distinct(set) => {
                scratch.clear();
                v.encode(scratch);
                if !set.contains(scratch.as_slice()) {
                    set.insert(scratch.clone());
                }
            }
            AggState::Stddev { n, sum, sumsq } => {
                let Some(x) = num_of(v) else { return false };
                sum.add(x);
                match expr::arith(super::expr::BinOp::Mul, x, x) {
                    Some(sq) => sumsq.add(sq),
                    None => return false,
                }
                *n += 1;
            }
            AggState::Quantile(q) => {
                let Some(x) = num_of(v) else { return false };
                q.add(x.to_f64());
            }
        }
        true
    }

    pub fn merge(&mut self, o: &AggState) {
        match (self, o) {
            (AggState::Count(a), AggState::Count(b)) => *a += b,
            (AggState::Sum { sum: a, n: x }, AggState::Sum { sum: b, n: y })
            | (AggState::Mean { sum: a, n: x }, AggState::Mean { sum: b, n: y }) => {
                a.merge(b);
                *x += y;
            }
            (AggState::Min(a), AggState::Min(Some(b)))
                if a.as_ref().is_none_or(|x| b.val().order(&x.val()).is_lt()) =>
            {
                *a = Some(b.clone());
            }
            (AggState::Max(a), AggState::Max(Some(b)))
                if a.as_ref().is_none_or(|x| b.val().order(&x.val()).is_gt()) =>
            {
                *a = Some(b.clone());
            }
            (AggState::Distinct(a), AggState::Distinct(b)) => {
                a.extend(b.iter().cloned());
            }
            (
                AggState::Stddev { n, sum, sumsq },
                AggState::Stddev {
                    n: m,
                    sum: s2,
                    sumsq: q2,
                },
            ) => {
                *n += m;
                sum.merge(s2);
                sumsq.merge(q2);
            }
            (AggState::Quantile(a), AggState::Quantile(b)) => a.merge(b),
            _ => {}
        }
    }
}

/// One group: its key (one byte string per group-by column, unquoted) and aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub key: Vec<Vec<u8>>,
    pub rows: u64,
    pub aggs: Vec<AggState>,
}

impl Group {
    pub fn merge(&mut self, o: &Group) {
        self.rows += o.rows;
        for (a, b) in self.aggs.iter_mut().zip(&o.aggs) {
            a.merge(b);
        }
    }
}

/// What one computed byte range contributes to the parity and line-number bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanStats {
    pub file: usize,
    pub start: u64,
    pub end: u64,
    /// The quoting state assumed at `start` when this range was computed.
    pub parity: Parity,
    /// The quoting state at `end` that followed from it (true only if `parity` was).
    pub end_parity: Parity,
    /// `\n` bytes in `[start, end)`, quoted or not (physical lines).
    pub newlines: u64,
}

impl SpanStats {
    pub fn partition(&self) -> Partition {
        Partition {
            file: self.file,
            start: self.start,
            end: self.end,
            parity: self.parity,
        }
    }
}

/// A mergeable partial result. `merge` is associative and exact (see `num` for sums).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub groups: Vec<Group>,
    /// Good rows (counted in groups).
    pub rows: u64,
    pub blank_lines: u64,
    pub bad: BadRows,
    /// Missing values per aggregate (empty or NA), skipped like pandas skips NaN.
    pub missing: Vec<u64>,
    pub spans: Vec<SpanStats>,
    /// Good rows the WHERE clause left out (counted in `rows`, in no group).
    #[serde(default)]
    pub filtered: u64,
    /// Values expressions could not use, by column and reason.
    #[serde(default)]
    pub bad_values: Vec<BadValue>,
}

impl Partial {
    pub fn bytes(&self) -> u64 {
        self.spans.iter().map(|s| s.end - s.start).sum()
    }

    pub fn merge(&mut self, other: Partial) {
        if *self == Partial::default() {
            *self = other;
            return;
        }
        let mut index: HashMap<Vec<Vec<u8>>, usize> = HashMap::new();
        if !other.groups.is_empty() {
            index = self
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| (g.key.clone(), i))
                .collect();
        }
        for g in other.groups {
            match index.get(&g.key) {
                Some(&i) => self.groups[i].merge(&g),
                None => {
                    index.insert(g.key.clone(), self.groups.len());
                    self.groups.push(g);
                }
            }
        }
        self.rows += other.rows;
        self.filtered += other.filtered;
        self.blank_lines += other.blank_lines;
        self.bad.merge(other.bad);
        merge_bad_values(&mut self.bad_values, other.bad_values);
        if self.missing.len() < other.missing.len() {
            self.missing.resize(other.missing.len(), 0);
        }
        for (a, b) in self.missing.iter_mut().zip(&other.missing) {
            *a += b;
        }
        self.spans.extend(other.spans);
        self.spans.sort_by_key(|s| (s.file, s.start));
    }
}

/// Where a wanted field starts and ends, in terms of the walker's located commas.
#[derive(Debug, Clone, Copy)]
struct FieldRef {
    /// Index into the located commas; None = the record start.
    start: Option<usize>,
    /// None = the record end (minus a `\r`).
    end: Option<usize>,
}

/// One aggregate as the sink computes it.
#[derive(Debug, Clone)]
struct AggSpec {
    op: AggOp,
    /// The argument is this column (read typed, on the fast path).
    col: Option<usize>,
    arg: Option<Expr>,
    /// Neither: `count(*)`.
    star: bool,
}

/// What the sink needs from the plan, precomputed.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub field_count: u64,
    pub events: Vec<u64>,
    /// Where each needed column's field is (by column index).
    frefs: Vec<Option<FieldRef>>,
    /// Every key is a plain column: keys are raw field bytes (`group`).
    plain_keys: bool,
    group: Vec<FieldRef>,
    keys: Vec<Expr>,
    aggs: Vec<AggSpec>,
    filter: Option<Expr>,
    col_types: Vec<ColType>,
    /// Some consumer reads values that may be unusable (bad values are possible).
    values: bool,
    strict: bool,
}

impl Spec {
    pub fn new(plan: &Plan) -> Spec {
        let f = plan.field_count as u64;
        let mut cols: Vec<usize> = Vec::new();
        let mut refs = Vec::new();
        for k in &plan.keys {
            k.columns(&mut refs);
        }
        if let Some(w) = &plan.filter {
            w.columns(&mut refs);
        }
        for a in &plan.aggregates {
            if let Some(e) = &a.arg {
                e.columns(&mut refs);
            }
        }
        cols.extend(refs.iter().filter_map(|c| match c {
            Column::Index(i) => Some(*i),
            Column::Name(_) => None,
        }));
        cols.extend(plan.aggregates.iter().filter_map(|a| a.column));
        let mut events: Vec<u64> = Vec::new();
        for &c in &cols {
            let c = c as u64;
            if c > 0 {
                events.push(c);
            }
            if c + 1 < f {
                events.push(c + 1);
            }
        }
        events.sort_unstable();
        events.dedup();
        let fref = |c: usize| {
            let c = c as u64;
            FieldRef {
                start: if c == 0 {
                    None
                } else {
                    events.iter().position(|&e| e == c)
                },
                end: if c + 1 >= f {
                    None
                } else {
                    events.iter().position(|&e| e == c + 1)
                },
            }
        };
        let width = cols.iter().max().map_or(0, |m| m + 1);
        let mut frefs = vec![None; width];
        for &c in &cols {
            frefs[c] = Some(fref(c));
        }
        let plain: Vec<usize> = plan
            .keys
            .iter()
            .filter_map(|k| match k {
                Expr::Col(Column::Index(i)) => Some(*i),
                _ => None,
            })
            .collect();
        let plain_keys = plain.len() == plan.keys.len();
        let aggs: Vec<AggSpec> = plan
            .aggregates
            .iter()
            .map(|a| AggSpec {
                op: a.op,
                col: a.column,
                arg: a.arg.clone(),
                star: a.column.is_none() && a.arg.is_none(),
            })
            .collect();
        let values = plan.filter.is_some() || !plain_keys || aggs.iter().any(|a| !a.star);
        let group = if plain_keys {
            plain.iter().map(|&c| fref(c)).collect()
        } else {
            Vec::new()
        };
        Spec {
            field_count: f,
            events,
            frefs,
            plain_keys,
            group,
            keys: plan.keys.clone(),
            aggs,
            filter: plan.filter.clone(),
            col_types: plan.col_types.clone(),
            values,
            strict: plan.query.strict,
        }
    }
}

/// FxHash: keys are short byte strings; SipHash's DoS resistance buys nothing here.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

const NONE: u32 = u32::MAX;

/// Accumulates one span's records (or several consecutive calls of the walker on one span).
pub(crate) struct Acc<'s> {
    spec: &'s Spec,
    file: usize,
    span_start: u64,
    /// Group ids of one-byte keys (single group-by column): a direct index, no hashing.
    byte_slot: Box<[u32; 256]>,
    empty_slot: u32,
    map: HashMap<Box<[u8]>, u32, BuildHasherDefault<FxHasher>>,
    keys: Vec<Vec<Vec<u8>>>,
    rows: Vec<u64>,
    aggs: Vec<AggState>,
    good: u64,
    blank: u64,
    bad: BadRows,
    missing: Vec<u64>,
    /// Newlines counted so far from `span_start` up to `line_pos` (for bad-row lines).
    line_pos: u64,
    line_count: u64,
    scratch: Vec<u8>,
    composite: Vec<u8>,
    filtered: u64,
    bad_values: Vec<BadValue>,
    /// Problems of the current row: (column, reason, consumer).
    problems: Vec<(usize, ValueReason, u32)>,
}

impl<'s> Acc<'s> {
    pub fn new(spec: &'s Spec, file: usize, span_start: u64) -> Acc<'s> {
        Acc {
            spec,
            file,
            span_start,
            byte_slot: Box::new([NONE; 256]),
            empty_slot: NONE,
            map: HashMap::default(),
            keys: Vec::new(),
            rows: Vec::new(),
            aggs: Vec::new(),
            good: 0,
            blank: 0,
            bad: BadRows::default(),
            missing: vec![0; spec.aggs.len()],
            line_pos: span_start,
            line_count: 0,
            scratch: Vec::new(),
            composite: Vec::new(),
            filtered: 0,
            bad_values: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Whether bad-row examples still need line numbers.
    pub fn wants_lines(&self) -> bool {
        self.bad.wants_example() || self.spec.values
    }

    /// Counts newlines of `data` (bytes `[base, ..)`) up to `to`, for bad-row line numbers.
    /// The fallback reader calls it before dropping a buffer.
    pub fn advance_lines(&mut self, data: &[u8], base: u64, to: u64) {
        if to <= self.line_pos || self.line_pos < base {
            return;
        }
        let lo = (self.line_pos - base) as usize;
        let hi = ((to - base) as usize).min(data.len());
        if lo < hi {
            self.line_count += memchr::memchr_iter(b'\n', &data[lo..hi]).count() as u64;
        }
        self.line_pos = to;
    }

    pub fn into_partial(self, stats: SpanStats) -> Partial {
        let nagg = self.spec.aggs.len();
        let groups = self
            .keys
            .into_iter()
            .enumerate()
            .map(|(g, key)| Group {
                key,
                rows: self.rows[g],
                aggs: self.aggs[g * nagg..(g + 1) * nagg].to_vec(),
            })
            .collect();
        Partial {
            groups,
            rows: self.good,
            blank_lines: self.blank,
            bad: self.bad,
            missing: self.missing,
            spans: vec![stats],
            filtered: self.filtered,
            bad_values: self.bad_values,
        }
    }

    fn new_group(&mut self, key: Vec<Vec<u8>>) -> u32 {
        let g = self.keys.len() as u32;
        self.keys.push(key);
        self.rows.push(0);
        for a in &self.spec.aggs {
            self.aggs.push(AggState::new(a.op, !a.star));
        }
        g
    }
}

/// A field's value as Python's csv reads it: `"a""b"` → `a"b`, `"ab"c` → `abc`; a field
/// that does not start with a quote is taken as it is (its quotes are literal).
#[inline]
fn unquote<'a>(raw: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if raw.first() != Some(&b'"') {
        return raw;
    }
    if raw.len() >= 2
        && raw[raw.len() - 1] == b'"'
        && memchr::memchr(b'"', &raw[1..raw.len() - 1]).is_none()
    {
        return &raw[1..raw.len() - 1];
    }
    scratch.clear();
    let mut inside = true;
    let mut i = 1;
    while i < raw.len() {
        let b = raw[i];
        if inside && b == b'"' {
            if raw.get(i + 1) == Some(&b'"') {
                scratch.push(b'"');
                i += 1;
            } else {
                inside = false;
            }
        } else {
            scratch.push(b);
        }
        i += 1;
    }
    scratch
}

/// The walker's view of an [`Acc`] over one buffer of file bytes.
pub(crate) struct AccSink<'a, 's> {
    pub acc: &'a mut Acc<'s>,
    pub data: &'a [u8],
    pub base: u64,
}

/// The bytes of a wanted field of the record `[rs, re)` (a line-ending `\r` removed).
#[inline(always)]
fn field_of<'d>(data: &'d [u8], base: u64, f: FieldRef, rs: u64, re: u64, ev: &[u64]) -> &'d [u8] {
    let s = match f.start {
        Some(i) => ev[i] + 1,
        None => rs,
    };
    let mut e = match f.end {
        Some(i) => ev[i],
        None => re,
    };
    if f.end.is_none() && e > s && data.get((e - 1 - base) as usize) == Some(&b'\r') {
        e -= 1;
    }
    let s = (s - base) as usize;
    let e = ((e - base) as usize).max(s);
    &data[s..e]
}

impl AccSink<'_, '_> {
    /// The group of a record. One-byte keys of a single group-by column (payment_type) index
    /// an array: no hashing, no allocation, inlined into the walker.
    #[inline(always)]
    fn group_id(&mut self, rs: u64, re: u64, ev: &[u64]) -> u32 {
        // No GROUP BY: one group (created by the slow path on the first row).
        if self.acc.spec.group.is_empty() && self.acc.empty_slot != NONE {
            return self.acc.empty_slot;
        }
        if let [f] = self.acc.spec.group[..] {
            let raw = field_of(self.data, self.base, f, rs, re, ev);
            if let [b] = raw {
                let g = self.acc.byte_slot[usize::from(*b)];
                if g != NONE {
                    return g;
                }
            }
        }
        self.group_id_slow(rs, re, ev)
    }

    #[inline(never)]
    fn group_id_slow(&mut self, rs: u64, re: u64, ev: &[u64]) -> u32 {
        let spec = self.acc.spec;
        if let [f] = spec.group[..] {
            let raw = field_of(self.data, self.base, f, rs, re, ev);
            let mut scratch = std::mem::take(&mut self.acc.scratch);
            let key = unquote(raw, &mut scratch);
            let g = if key.is_empty() {
                if self.acc.empty_slot == NONE {
                    self.acc.empty_slot = self.acc.new_group(vec![Vec::new()]);
                }
                self.acc.empty_slot
            } else if key.len() == 1 {
                let b = key[0];
                let g = self.acc.byte_slot[usize::from(b)];
                if g != NONE {
                    g
                } else {
                    let g = self.acc.new_group(vec![vec![b]]);
                    self.acc.byte_slot[usize::from(b)] = g;
                    g
                }
            } else if let Some(&g) = self.acc.map.get(key) {
                g
            } else {
                let g = self.acc.new_group(vec![key.to_vec()]);
                self.acc.map.insert(key.into(), g);
                g
            };
            self.acc.scratch = scratch;
            return g;
        }
        // Several columns: one composite key of length-prefixed parts.
        let mut composite = std::mem::take(&mut self.acc.composite);
        let mut scratch = std::mem::take(&mut self.acc.scratch);
        composite.clear();
        for &f in &spec.group {
            let key = unquote(field_of(self.data, self.base, f, rs, re, ev), &mut scratch);
            composite.extend_from_slice(&(key.len() as u32).to_le_bytes());
            composite.extend_from_slice(key);
        }
        let g = match self.acc.map.get(&composite[..]) {
            Some(&g) => g,
            None => {
                // A new group: its keys from the length-prefixed parts.
                let mut parts = Vec::with_capacity(spec.group.len());
                let mut rest = &composite[..];
                while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                    let n = (u32::from_le_bytes(*len) as usize).min(tail.len());
                    parts.push(tail[..n].to_vec());
                    rest = &tail[n..];
                }
                let g = self.acc.new_group(parts);
                self.acc.map.insert(composite[..].into(), g);
                if spec.group.is_empty() {
                    self.acc.empty_slot = g;
                }
                g
            }
        };
        self.acc.composite = composite;
        self.acc.scratch = scratch;
        g
    }
}

/// One record as expressions see it.
struct RowCtx<'a, 'p> {
    data: &'a [u8],
    base: u64,
    rs: u64,
    re: u64,
    ev: &'p [u64],
    spec: &'a Spec,
    problems: &'p mut Vec<(usize, ValueReason, u32)>,
    consumer: u32,
}

impl<'a> Ctx<'a> for RowCtx<'a, '_> {
    #[inline]
    fn field(&mut self, col: usize) -> Cow<'a, [u8]> {
        let Some(Some(f)) = self.spec.frefs.get(col) else {
            return Cow::Borrowed(b"");
        };
        let raw = field_of(self.data, self.base, *f, self.rs, self.re, self.ev);
        if raw.first() == Some(&b'"') {
            let mut s = Vec::new();
            Cow::Owned(unquote(raw, &mut s).to_vec())
        } else {
            Cow::Borrowed(raw)
        }
    }
    #[inline]
    fn col_type(&self, col: usize) -> ColType {
        self.spec
            .col_types
            .get(col)
            .copied()
            .unwrap_or(ColType::Unknown)
    }
    fn problem(&mut self, col: usize, reason: ValueReason) {
        self.problems.push((col, reason, self.consumer));
    }
}

impl<'a> AccSink<'a, '_> {
    fn ctx<'p>(
        spec: &'a Spec,
        data: &'a [u8],
        base: u64,
        (rs, re, ev): (u64, u64, &'p [u64]),
        problems: &'p mut Vec<(usize, ValueReason, u32)>,
        consumer: u32,
    ) -> RowCtx<'a, 'p> {
        RowCtx {
            data,
            base,
            rs,
            re,
            ev,
            spec,
            problems,
            consumer,
        }
    }

    /// The group of a record whose keys are expressions: their values' canonical encodings.
    fn group_id_expr(&mut self, rs: u64, re: u64, ev: &[u64]) -> u32 {
        let spec: &'a Spec = self.acc.spec;
        let mut composite = std::mem::take(&mut self.acc.composite);
        composite.clear();
        let mut problems = std::mem::take(&mut self.acc.problems);
        for (i, k) in spec.keys.iter().enumerate() {
            let mut ctx = Self::ctx(
                spec,
                self.data,
                self.base,
                (rs, re, ev),
                &mut problems,
                (1 + i as u32).min(63),
            );
            expr::eval(k, &mut ctx).encode(&mut composite);
        }
        self.acc.problems = problems;
        let g = match self.acc.map.get(&composite[..]) {
            Some(&g) => g,
            None => {
                // A new group: split the composite into its keys' encodings.
                let mut parts = Vec::with_capacity(spec.keys.len());
                let mut rest = &composite[..];
                while let Some((_, r)) = Val::decode(rest) {
                    parts.push(rest[..rest.len() - r.len()].to_vec());
                    rest = r;
                }
                let g = self.acc.new_group(parts);
                self.acc.map.insert(composite[..].into(), g);
                g
            }
        };
        self.acc.composite = composite;
        g
    }

    /// Counts the current row's unusable values once per (column, reason).
    #[cold]
    fn flush_problems(&mut self, rs: u64, re: u64, ev: &[u64]) {
        let mut problems = std::mem::take(&mut self.acc.problems);
        problems.sort_unstable();
        let mut i = 0;
        while i < problems.len() {
            let (col, reason, _) = problems[i];
            let mut consumers = 0u64;
            while i < problems.len() && problems[i].0 == col && problems[i].1 == reason {
                consumers |= 1u64 << problems[i].2;
                i += 1;
            }
            match self
                .acc
                .bad_values
                .iter_mut()
                .find(|b| b.column == col && b.reason == reason)
            {
                Some(b) => {
                    b.rows += 1;
                    b.consumers |= consumers;
                }
                None => {
                    self.acc.advance_lines(self.data, self.base, rs);
                    let value = match self.acc.spec.frefs.get(col) {
                        Some(Some(f)) => {
                            let raw = field_of(self.data, self.base, *f, rs, re, ev);
                            let raw = &raw[..raw.len().min(EXCERPT_BYTES)];
                            String::from_utf8_lossy(raw).into_owned()
                        }
                        _ => String::new(),
                    };
                    self.acc.bad_values.push(BadValue {
                        column: col,
                        reason,
                        rows: 1,
                        consumers,
                        example: ValueExample {
                            file: self.acc.file,
                            offset: rs,
                            span_start: self.acc.span_start,
                            rel_line: self.acc.line_count,
                            line: 0,
                            path: None,
                            value,
                        },
                    });
                }
            }
        }
        problems.clear();
        self.acc.problems = problems;
    }
}

impl Sink for AccSink<'_, '_> {
    #[inline(always)]
    fn record(&mut self, rs: u64, re: u64, ev: &[u64]) -> bool {
        let spec = self.acc.spec;
        if !spec.values {
            // Counting rows of plain keys: the hot loop of `value_counts()`.
            let g = self.group_id(rs, re, ev) as usize;
            self.acc.rows[g] += 1;
            self.acc.good += 1;
            return true;
        }
        self.record_values(rs, re, ev)
    }

    fn bad(&mut self, reason: BadReason, rs: u64, re: u64) -> bool {
        self.bad_row(reason, rs, re)
    }

    fn blank(&mut self) {
        self.acc.blank += 1;
    }
}

impl AccSink<'_, '_> {
    /// A record whose filter, keys or aggregates read values.
    #[inline(never)]
    fn record_values(&mut self, rs: u64, re: u64, ev: &[u64]) -> bool {
        let spec = self.acc.spec;
        self.acc.good += 1;
        let mut problems = std::mem::take(&mut self.acc.problems);
        if let Some(f) = &spec.filter {
            let mut ctx = Self::ctx(spec, self.data, self.base, (rs, re, ev), &mut problems, 0);
            let keep = matches!(expr::eval(f, &mut ctx), Val::Bool(true));
            if !keep {
                self.acc.filtered += 1;
                self.acc.problems = problems;
                if !self.acc.problems.is_empty() {
                    self.flush_problems(rs, re, ev);
                }
                return true;
            }
        }
        self.acc.problems = problems;
        let g = if spec.plain_keys {
            self.group_id(rs, re, ev)
        } else {
            self.group_id_expr(rs, re, ev)
        } as usize;
        self.acc.rows[g] += 1;
        let nagg = spec.aggs.len();
        let nkeys = spec.keys.len() as u32;
        let mut problems = std::mem::take(&mut self.acc.problems);
        let mut scratch = std::mem::take(&mut self.acc.scratch);
        for (j, a) in spec.aggs.iter().enumerate() {
            if a.star {
                continue;
            }
            let mut ctx = Self::ctx(
                spec,
                self.data,
                self.base,
                (rs, re, ev),
                &mut problems,
                (1 + nkeys + j as u32).min(63),
            );
            let before = ctx.problems.len();
            let v = match (a.col, &a.arg) {
                (Some(c), _) => expr::column(&mut ctx, c),
                (None, Some(e)) => expr::eval(e, &mut ctx),
                (None, None) => Val::Null,
            };
            // NULL from an unusable value is a bad value (counted there), not a missing one.
            let bad = problems.len() > before;
            if (v.is_null() || !self.acc.aggs[g * nagg + j].add(&v, &mut scratch)) && !bad {
                self.acc.missing[j] += 1;
            }
        }
        self.acc.scratch = scratch;
        self.acc.problems = problems;
        if !self.acc.problems.is_empty() {
            self.flush_problems(rs, re, ev);
        }
        true
    }

    fn bad_row(&mut self, reason: BadReason, rs: u64, re: u64) -> bool {
        self.acc.bad.count(reason);
        if self.acc.bad.wants_example() {
            self.acc.advance_lines(self.data, self.base, rs);
            let lo = (rs - self.base) as usize;
            let hi = ((re - self.base) as usize)
                .min(lo + EXCERPT_BYTES)
                .min(self.data.len());
            let mut bytes = &self.data[lo..hi.max(lo)];
            if let [rest @ .., b'\r'] = bytes {
                bytes = rest;
            }
            self.acc.bad.examples.push(BadExample {
                reason,
                file: self.acc.file,
                offset: rs,
                span_start: self.acc.span_start,
                rel_line: self.acc.line_count,
                line: 0,
                path: None,
                excerpt: String::from_utf8_lossy(bytes).into_owned(),
            });
        }
        !self.acc.spec.strict
    }
}
