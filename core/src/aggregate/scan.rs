//! The record walker: one pass over 64-byte blocks that finds record boundaries and the
//! positions of the commas the query needs, without visiting every field.
//!
//! Per block: the classifier gives bitmaps of quotes, commas and newlines; a prefix XOR of the
//! quote bitmap (carrying the state across blocks) marks the bytes inside quotes, which are
//! masked out. Then, per record, `count_ones` of the comma bitmap up to the next newline says
//! how many fields went by, and `select` jumps straight to the k-th comma when it is one the
//! query needs (the boundary of a wanted field). Blocks inside a record cost one popcount.
//!
//! Quoting follows Python's csv module (and pandas, polars, the `csv` crate): a quote opens a
//! quoted field only at the start of a field (after a delimiter, a line start, or the closing
//! quote of `""`); inside quotes every quote closes (a `""` is a close and a re-open); a quote
//! anywhere else is a literal byte. Per block, the quote bitmap is first reduced to the quotes
//! that toggle: when every opening quote sits at a field start (always, on well-formed data)
//! that is all of them, checked with a few bit operations; otherwise a short loop over the
//! block's quotes decides each one. A prefix XOR of the toggles marks the bytes inside quotes.
//!
//! The scan body is one macro expanded three times (portable, SSE2, AVX2) because SIMD
//! intrinsics are only safe inside functions compiled for their CPU features; `crate::mmap`
//! picks one at run time.

use super::badrows::BadReason;
#[allow(unused_imports)]
use super::classify::*;
use super::plan::Parity;

/// Receives what the walker finds. Each method returns false to stop record processing
/// (`strict`); the walk then only counts quotes and newlines up to the range end.
pub trait Sink {
    /// A record `[rec_start, rec_end)` (`rec_end` = its `\n`, or EOF) with the expected field
    /// count and clean quoting; `ev[i]` is the absolute position of comma number `events[i]`.
    fn record(&mut self, rec_start: u64, rec_end: u64, ev: &[u64]) -> bool;
    fn bad(&mut self, reason: BadReason, rec_start: u64, rec_end: u64) -> bool;
    fn blank(&mut self);
}

/// How the walk begins at `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// `from` is the first byte of a record (outside quotes by definition).
    AtRecord,
    /// Skip to just after the first unquoted newline at or after `from`. `open_ok`: a quote
    /// at `from` (outside quotes) would open a quoted field.
    Seek { in_quote: bool, open_ok: bool },
    /// Only count newlines and follow the quoting (after a strict stop).
    StatsOnly { in_quote: bool, open_ok: bool },
}

pub struct ScanArgs<'a> {
    /// Bytes `[base, base + data.len())` of the file.
    pub data: &'a [u8],
    pub base: u64,
    /// `data` reaches the end of the file.
    pub eof: bool,
    pub from: u64,
    pub mode: Resume,
    /// Records starting at or after `end` are not ours.
    pub end: u64,
    /// Newlines are counted for the bytes in `[stats_from, end)`.
    pub stats_from: u64,
    pub field_count: u64,
    /// Comma ordinals (1-based, ascending) whose positions the sink needs.
    pub events: &'a [u64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOut {
    pub newlines: u64,
    /// The quoting state at `end` (None if this call did not reach byte `end - 1`).
    pub end_parity: Option<Parity>,
    /// None: done. Some: `data` ended before the range was complete (and not at EOF); call
    /// again with more bytes from this position and mode, and `stats_from` = the old data end.
    pub next: Option<(u64, Resume)>,
}

/// Bits `i` of a block at `pos` with `pos + i` in `[lo, hi)`.
#[inline(always)]
fn range_mask(pos: u64, lo: u64, hi: u64) -> u64 {
    let lo = lo.max(pos);
    let hi = hi.min(pos + 64);
    if hi <= lo {
        return 0;
    }
    let a = lo - pos;
    let b = hi - pos;
    let upper = if b >= 64 { !0 } else { (1u64 << b) - 1 };
    upper & !((1u64 << a) - 1)
}

/// The quotes of a block that toggle "inside quotes", one at a time (blocks with a quote
/// that does not open a field: see the module doc). `prev_edge` bit i: byte i - 1 ends a
/// field or line. Returns (toggles, closing quotes).
#[cold]
#[inline(never)]
fn resolve_quotes(q: u64, prev_edge: u64, mut in_quote: bool) -> (u64, u64) {
    let (mut toggles, mut closes) = (0u64, 0u64);
    let mut x = q;
    while x != 0 {
        let bit = x & x.wrapping_neg();
        x &= x - 1;
        if in_quote {
            toggles |= bit;
            closes |= bit;
            in_quote = false;
        } else if (prev_edge | (closes << 1)) & bit != 0 {
            toggles |= bit;
            in_quote = true;
        }
    }
    (toggles, closes)
}

macro_rules! define_scan {
    ($(#[$attr:meta])* $name:ident, $classify:path, $pxor:path, $select:path) => {
        $(#[$attr])*
        pub fn $name<S: Sink>(a: &ScanArgs<'_>, sink: &mut S) -> ScanOut {
            const SEEK: u8 = 0;
            const RECORD: u8 = 1;
            const STATS: u8 = 2;
            let data = a.data;
            let base = a.base;
            let data_end = base + data.len() as u64;
            let end = a.end;
            let events = a.events;
            let nev = events.len();
            let mut ev_pos = vec![0u64; nev];
            let mut newlines = 0u64;
            let mut end_parity = None;
            // `open_ok`: whether a quote right at `pos` (outside quotes) would open a field.
            let (mut in_quote, mut open_ok, mut state) = match a.mode {
                Resume::AtRecord => (false, true, RECORD),
                Resume::Seek { in_quote, open_ok } => (in_quote, open_ok, SEEK),
                Resume::StatsOnly { in_quote, open_ok } => (in_quote, open_ok, STATS),
            };
            let mut rec_start = a.from;
            let mut commas = 0u64;
            let mut ev = 0usize;
            let mut stopped = false;
            let mut pos = a.from;
            let mut tmp = [0u8; 64];

            // Ends the record [rs, re): blank line, bad row or good record. False = stop.
            macro_rules! finish {
                ($rs:expr, $re:expr) => {{
                    let rs: u64 = $rs;
                    let re: u64 = $re;
                    let len = re - rs;
                    if commas == 0
                        && (len == 0 || (len == 1 && data.get((rs - base) as usize) == Some(&b'\r')))
                    {
                        sink.blank();
                        true
                    } else if commas + 1 != a.field_count {
                        sink.bad(BadReason::WrongFieldCount, rs, re)
                    } else {
                        sink.record(rs, re, &ev_pos)
                    }
                }};
            }
            // Consumes the commas `cm` (of the current record, in this block).
            macro_rules! take {
                ($cm:expr) => {{
                    let cm: u64 = $cm;
                    if cm != 0 {
                        let hi = commas + u64::from(cm.count_ones());
                        while ev < nev && events[ev] <= hi {
                            let r = (events[ev] - commas - 1) as u32;
                            ev_pos[ev] = pos + u64::from($select(cm, r));
                            ev += 1;
                        }
                        commas = hi;
                    }
                }};
            }

            while pos < data_end {
                let off = (pos - base) as usize;
                let avail = data.len() - off;
                let (block, valid): (&[u8; 64], u64) = match data[off..].first_chunk::<64>() {
                    Some(b) => (b, !0),
                    None => {
                        tmp[..avail].copy_from_slice(&data[off..]);
                        (&tmp, (1u64 << avail) - 1)
                    }
                };
                let m = $classify(block);
                let q = m.quote & valid;
                let nl_all = m.newline & valid;
                let carry = if in_quote { !0u64 } else { 0 };
                let edges = (m.comma | m.newline) & valid;
                let (toggles, closes, inside) = if q == 0 {
                    (0, 0, carry)
                } else {
                    // Every quote toggles unless one that opens is not at a field start.
                    let prev_edge = (edges << 1) | u64::from(open_ok);
                    let inside = $pxor(q) ^ carry;
                    let closes = q & !inside;
                    if q & inside & !(prev_edge | (closes << 1)) == 0 {
                        (q, closes, inside)
                    } else {
                        let (t, c) = resolve_quotes(q, prev_edge, in_quote);
                        (t, c, if t == 0 { carry } else { $pxor(t) ^ carry })
                    }
                };
                let last = if avail >= 64 { 63 } else { avail as u32 - 1 };
                in_quote = (inside >> last) & 1 == 1;
                open_ok = ((edges | closes) >> last) & 1 == 1;
                if end > pos && end - 1 - pos < 64 && end - pos <= avail as u64 {
                    let bit = 1u64 << (end - 1 - pos);
                    end_parity = Some(if inside & bit != 0 {
                        Parity::Odd
                    } else if q & !toggles & bit != 0 {
                        Parity::AfterLiteralQuote
                    } else {
                        Parity::Even
                    });
                }
                let smask = if pos >= a.stats_from && pos + 64 <= end {
                    !0
                } else {
                    range_mask(pos, a.stats_from, end)
                };
                if smask != 0 {
                    newlines += u64::from((nl_all & smask).count_ones());
                }
                if state == STATS {
                    pos += 64;
                    if pos >= end {
                        stopped = true;
                        break;
                    }
                    continue;
                }
                let mut c = m.comma & valid & !inside;
                let mut n = nl_all & !inside;

                if state == SEEK {
                    if n == 0 {
                        pos += 64;
                        continue;
                    }
                    let p = n.trailing_zeros();
                    let cut = if p == 63 { !0 } else { (1u64 << (p + 1)) - 1 };
                    c &= !cut;
                    n &= !cut;
                    rec_start = pos + u64::from(p) + 1;
                    commas = 0;
                    ev = 0;
                    state = RECORD;
                    if rec_start >= end {
                        stopped = true;
                        break;
                    }
                }
                loop {
                    if n == 0 {
                        take!(c);
                        break;
                    }
                    let p = n.trailing_zeros();
                    let below = (1u64 << p) - 1;
                    take!(c & below);
                    let go_on = finish!(rec_start, pos + u64::from(p));
                    let cut = if p == 63 { !0 } else { (1u64 << (p + 1)) - 1 };
                    c &= !cut;
                    n &= n - 1;
                    rec_start = pos + u64::from(p) + 1;
                    commas = 0;
                    ev = 0;
                    if !go_on {
                        state = STATS;
                        break;
                    }
                    if rec_start >= end {
                        stopped = true;
                        break;
                    }
                }
                if stopped {
                    break;
                }
                pos += 64;
                if state == STATS && pos >= end {
                    stopped = true;
                    break;
                }
            }

            let next = if stopped {
                None
            } else if a.eof {
                if state == RECORD && rec_start < data_end {
                    if in_quote {
                        sink.bad(BadReason::UnterminatedQuote, rec_start, data_end);
                    } else {
                        finish!(rec_start, data_end);
                    }
                }
                None
            } else {
                match state {
                    RECORD => Some((rec_start, Resume::AtRecord)),
                    SEEK => Some((data_end, Resume::Seek { in_quote, open_ok })),
                    _ => Some((data_end, Resume::StatsOnly { in_quote, open_ok })),
                }
            };
            ScanOut { newlines, end_parity, next }
        }
    };
}

define_scan!(
    #[inline(never)]
    scan_portable,
    classify_portable,
    prefix_xor_portable,
    select_portable
);

#[cfg(target_arch = "x86_64")]
define_scan!(
    #[target_feature(enable = "sse2")]
    #[inline(never)]
    scan_sse2,
    classify_sse2,
    prefix_xor_portable,
    select_portable
);

#[cfg(target_arch = "x86_64")]
define_scan!(
    #[target_feature(enable = "avx2,bmi1,bmi2,popcnt,pclmulqdq")]
    #[inline(never)]
    scan_avx2,
    classify_avx2,
    prefix_xor_clmul,
    select_bmi2
);
