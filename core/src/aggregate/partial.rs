//! Partial results: what one partition (or several, merged) computed, and the sink that builds
//! one from the walker's records.
//!
//! A [`Partial`] carries, besides its groups, one [`SpanStats`] per byte range it covers: the
//! quote parity that range was computed under, and its counts of quotes and newlines. Those are
//! what lets the merger check parities and turn span-relative line numbers into file lines.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::badrows::{BadExample, BadReason, BadRows, EXCERPT_BYTES};
use super::num::{self, Num, Parsed, SumAcc};
use super::plan::{Parity, Partition, Plan};
use super::query::AggOp;
use super::scan::Sink;

/// The state of one aggregate in one group.
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
    Min(Option<Num>),
    Max(Option<Num>),
}

impl AggState {
    fn new(op: AggOp, has_column: bool) -> AggState {
        match op {
            AggOp::Count if has_column => AggState::Count(0),
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
        }
    }

    #[inline]
    fn add(&mut self, v: Num) {
        match self {
            AggState::Rows => {}
            AggState::Count(n) => *n += 1,
            AggState::Sum { sum, n } | AggState::Mean { sum, n } => {
                sum.add(v);
                *n += 1;
            }
            AggState::Min(m) => {
                if m.is_none_or(|x| v.num_cmp(&x).is_lt()) {
                    *m = Some(v);
                }
            }
            AggState::Max(m) => {
                if m.is_none_or(|x| v.num_cmp(&x).is_gt()) {
                    *m = Some(v);
                }
            }
        }
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
                if a.is_none_or(|x| b.num_cmp(&x).is_lt()) =>
            {
                *a = Some(*b);
            }
            (AggState::Max(a), AggState::Max(Some(b)))
                if a.is_none_or(|x| b.num_cmp(&x).is_gt()) =>
            {
                *a = Some(*b);
            }
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
        self.blank_lines += other.blank_lines;
        self.bad.merge(other.bad);
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

/// What the sink needs from the plan, precomputed.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub field_count: u64,
    pub events: Vec<u64>,
    group: Vec<FieldRef>,
    aggs: Vec<(AggOp, Option<FieldRef>)>,
    strict: bool,
}

impl Spec {
    pub fn new(plan: &Plan) -> Spec {
        let f = plan.field_count as u64;
        let mut cols: Vec<usize> = plan.group_cols.clone();
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
        let group = plan.group_cols.iter().map(|&c| fref(c)).collect();
        let aggs = plan
            .aggregates
            .iter()
            .map(|a| (a.op, a.column.map(fref)))
            .collect();
        Spec {
            field_count: f,
            events,
            group,
            aggs,
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
    vals: Vec<Option<Num>>,
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
            vals: vec![None; spec.aggs.len()],
        }
    }

    /// Whether bad-row examples still need line numbers.
    pub fn wants_lines(&self) -> bool {
        self.bad.wants_example()
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
        }
    }

    fn new_group(&mut self, key: Vec<Vec<u8>>) -> u32 {
        let g = self.keys.len() as u32;
        self.keys.push(key);
        self.rows.push(0);
        for (op, col) in &self.spec.aggs {
            self.aggs.push(AggState::new(*op, col.is_some()));
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
        let mut parts = Vec::new();
        for &f in &spec.group {
            let key = unquote(field_of(self.data, self.base, f, rs, re, ev), &mut scratch);
            composite.extend_from_slice(&(key.len() as u32).to_le_bytes());
            composite.extend_from_slice(key);
            parts.push(key.to_vec());
        }
        let g = match self.acc.map.get(&composite[..]) {
            Some(&g) => g,
            None => {
                let g = self.acc.new_group(parts);
                self.acc.map.insert(composite[..].into(), g);
                g
            }
        };
        self.acc.composite = composite;
        self.acc.scratch = scratch;
        g
    }
}

impl Sink for AccSink<'_, '_> {
    #[inline(always)]
    fn record(&mut self, rs: u64, re: u64, ev: &[u64]) -> bool {
        let spec = self.acc.spec;
        // Parse every aggregated value first: a non-numeric one makes the whole row bad.
        if spec.aggs.iter().any(|(_, c)| c.is_some()) {
            let mut scratch = std::mem::take(&mut self.acc.scratch);
            let mut invalid = false;
            for (j, (_, col)) in spec.aggs.iter().enumerate() {
                self.acc.vals[j] = None;
                if let Some(f) = col {
                    match num::parse(unquote(
                        field_of(self.data, self.base, *f, rs, re, ev),
                        &mut scratch,
                    )) {
                        Parsed::Value(v) => self.acc.vals[j] = Some(v),
                        Parsed::Missing => {}
                        Parsed::Invalid => invalid = true,
                    }
                }
            }
            self.acc.scratch = scratch;
            if invalid {
                return self.bad(BadReason::NonNumeric, rs, re);
            }
        }
        let g = self.group_id(rs, re, ev) as usize;
        self.acc.rows[g] += 1;
        self.acc.good += 1;
        let nagg = spec.aggs.len();
        for (j, (_, col)) in spec.aggs.iter().enumerate() {
            if col.is_some() {
                match self.acc.vals[j] {
                    Some(v) => self.acc.aggs[g * nagg + j].add(v),
                    None => self.acc.missing[j] += 1,
                }
            }
        }
        true
    }

    fn bad(&mut self, reason: BadReason, rs: u64, re: u64) -> bool {
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

    fn blank(&mut self) {
        self.acc.blank += 1;
    }
}
