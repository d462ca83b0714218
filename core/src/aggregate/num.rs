//! Numbers of aggregated columns: parsing, exact sums, comparison, printing.
//!
//! Sums are exact fixed-point: a value written as a plain decimal (`-12.50`) becomes an `i128`
//! mantissa with its decimal scale, and an accumulator keeps its own scale (the largest it has
//! seen), rescaling by powers of ten, so adding and merging in any order give the same digits.
//! Only values that do not fit (exponent notation, more than 38 significant digits, or an
//! accumulator that would overflow `i128`) go to a compensated (Neumaier) `f64` sum beside the
//! exact part; a result that used it is marked inexact.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Num {
    /// `m / 10^scale`.
    Dec {
        m: i128,
        scale: u8,
    },
    Float(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parsed {
    /// Empty, or one of pandas' default NA spellings: skipped like pandas skips NaN.
    Missing,
    Value(Num),
    Invalid,
}

/// pandas' default `na_values` (read_csv): these are missing values, not bad rows.
const NA: &[&[u8]] = &[
    b"#N/A",
    b"#N/A N/A",
    b"#NA",
    b"-1.#IND",
    b"-1.#QNAN",
    b"-NaN",
    b"-nan",
    b"1.#IND",
    b"1.#QNAN",
    b"<NA>",
    b"N/A",
    b"NA",
    b"NULL",
    b"NaN",
    b"None",
    b"n/a",
    b"nan",
    b"null",
];

const MAX_SCALE: u8 = 38;

/// One of pandas' NA spellings (a missing value, not a bad one).
pub fn is_na(b: &[u8]) -> bool {
    NA.contains(&b)
}

fn pow10(k: u32) -> Option<i128> {
    10i128.checked_pow(k)
}

pub fn parse(b: &[u8]) -> Parsed {
    let b = b.trim_ascii();
    if b.is_empty() {
        return Parsed::Missing;
    }
    let mut i = 0;
    let neg = match b[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut m: i128 = 0;
    let mut digits = 0u32;
    let mut scale = 0u32;
    let mut dot = false;
    let mut overflow = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            digits += 1;
            if dot {
                scale += 1;
            }
            match m
                .checked_mul(10)
                .and_then(|x| x.checked_add(i128::from(c - b'0')))
            {
                Some(x) => m = x,
                None => overflow = true,
            }
        } else if c == b'.' && !dot {
            dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return if NA.contains(&b) {
            Parsed::Missing
        } else {
            Parsed::Invalid
        };
    }
    if i == b.len() && !overflow && scale <= u32::from(MAX_SCALE) {
        return Parsed::Value(Num::Dec {
            m: if neg { -m } else { m },
            scale: scale as u8,
        });
    }
    // Exponent notation or too many digits: f64, if it is a finite number at all.
    match std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        Some(x)
            if x.is_finite() && b.iter().all(|c| c.is_ascii_digit() || b"+-.eE".contains(c)) =>
        {
            Parsed::Value(Num::Float(x))
        }
        _ => Parsed::Invalid,
    }
}

impl Num {
    pub fn to_f64(self) -> f64 {
        match self {
            Num::Dec { m, scale } => m as f64 / 10f64.powi(i32::from(scale)),
            Num::Float(x) => x,
        }
    }

    pub fn num_cmp(&self, other: &Num) -> Ordering {
        if let (Num::Dec { m: a, scale: sa }, Num::Dec { m: b, scale: sb }) = (*self, *other) {
            let (a2, b2) = if sa >= sb {
                (
                    Some(a),
                    pow10(u32::from(sa - sb)).and_then(|p| b.checked_mul(p)),
                )
            } else {
                (
                    pow10(u32::from(sb - sa)).and_then(|p| a.checked_mul(p)),
                    Some(b),
                )
            };
            if let (Some(x), Some(y)) = (a2, b2) {
                return x.cmp(&y);
            }
        }
        self.to_f64().total_cmp(&other.to_f64())
    }

    /// Exact decimal text for `Dec`, shortest round-trip text for `Float`.
    pub fn to_text(self) -> String {
        match self {
            Num::Dec { m, scale } => dec_text(m, scale),
            Num::Float(x) => format!("{x}"),
        }
    }
}

/// `m / 10^scale` as decimal text, every digit kept.
pub fn dec_text(m: i128, scale: u8) -> String {
    let neg = m < 0;
    let digits = m.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if scale == 0 {
        s.push_str(&digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        s.push_str(int);
        s.push('.');
        s.push_str(frac);
    } else {
        s.push_str("0.");
        s.push_str(&"0".repeat(scale - digits.len()));
        s.push_str(&digits);
    }
    s
}

/// An exact-where-possible sum (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SumAcc {
    pub m: i128,
    pub scale: u8,
    pub float: f64,
    pub comp: f64,
    /// Values (or merges) that went to the float part.
    pub inexact: u64,
}

impl SumAcc {
    pub fn add(&mut self, n: Num) {
        match n {
            Num::Dec { m, scale } => {
                if !self.add_dec(m, scale) {
                    self.add_float(n.to_f64());
                }
            }
            Num::Float(x) => self.add_float(x),
        }
    }

    fn add_dec(&mut self, m: i128, scale: u8) -> bool {
        if scale == self.scale {
            if let Some(s) = self.m.checked_add(m) {
                self.m = s;
                return true;
            }
            return false;
        }
        if scale < self.scale {
            if let Some(s) = pow10(u32::from(self.scale - scale))
                .and_then(|p| m.checked_mul(p))
                .and_then(|x| self.m.checked_add(x))
            {
                self.m = s;
                return true;
            }
            return false;
        }
        match pow10(u32::from(scale - self.scale))
            .and_then(|p| self.m.checked_mul(p))
            .and_then(|x| x.checked_add(m))
        {
            Some(s) => {
                self.m = s;
                self.scale = scale;
                true
            }
            None => false,
        }
    }

    fn add_float(&mut self, x: f64) {
        let t = self.float + x;
        if self.float.abs() >= x.abs() {
            self.comp += (self.float - t) + x;
        } else {
            self.comp += (x - t) + self.float;
        }
        self.float = t;
        self.inexact += 1;
    }

    pub fn merge(&mut self, o: &SumAcc) {
        if !self.add_dec(o.m, o.scale) {
            self.add_float(
                Num::Dec {
                    m: o.m,
                    scale: o.scale,
                }
                .to_f64(),
            );
        }
        if o.inexact > 0 {
            self.add_float(o.float);
            self.add_float(o.comp);
            // add_float counted two; the other side's count is what matters.
            self.inexact = self.inexact - 2 + o.inexact;
        }
    }

    pub fn is_exact(&self) -> bool {
        self.inexact == 0
    }

    pub fn to_f64(&self) -> f64 {
        Num::Dec {
            m: self.m,
            scale: self.scale,
        }
        .to_f64()
            + (self.float + self.comp)
    }

    /// Exact decimal text, or None if part of the sum is floating point.
    pub fn exact_text(&self) -> Option<String> {
        self.is_exact().then(|| dec_text(self.m, self.scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Num {
        match parse(s.as_bytes()) {
            Parsed::Value(n) => n,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(v("12.50"), Num::Dec { m: 1250, scale: 2 });
        assert_eq!(v("-0.5"), Num::Dec { m: -5, scale: 1 });
        assert_eq!(v(" 7 "), Num::Dec { m: 7, scale: 0 });
        assert_eq!(v(".5"), Num::Dec { m: 5, scale: 1 });
        assert_eq!(v("1e3"), Num::Float(1000.0));
        assert_eq!(parse(b""), Parsed::Missing);
        assert_eq!(parse(b"NaN"), Parsed::Missing);
        assert_eq!(parse(b"abc"), Parsed::Invalid);
        assert_eq!(parse(b"1.2.3"), Parsed::Invalid);
        assert_eq!(parse(b"inf"), Parsed::Invalid);
        assert_eq!(parse(b"-"), Parsed::Invalid);
        assert_eq!(parse(b"12x"), Parsed::Invalid);
    }

    #[test]
    fn sums_do_not_drift() {
        let mut s = SumAcc::default();
        for _ in 0..1_000_000 {
            s.add(v("0.1"));
        }
        assert_eq!(s.exact_text().as_deref(), Some("100000.0"));
        let mut a = SumAcc::default();
        a.add(v("1.25"));
        let mut b = SumAcc::default();
        b.add(v("3"));
        b.add(v("-0.125"));
        a.merge(&b);
        assert_eq!(a.exact_text().as_deref(), Some("4.125"));
        assert_eq!(dec_text(-5, 3), "-0.005");
    }

    #[test]
    fn compares_across_scales() {
        assert_eq!(v("1.5").num_cmp(&v("1.50")), Ordering::Equal);
        assert_eq!(v("-2").num_cmp(&v("1.5")), Ordering::Less);
        assert_eq!(v("1e1").num_cmp(&v("9.99")), Ordering::Greater);
    }
}
