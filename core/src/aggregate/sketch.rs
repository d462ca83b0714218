//! Mergeable states whose merge must not depend on order: an exact sum of floats, and the
//! quantile sketch behind `approx_quantile` and `median`.
//!
//! # Exact float sums
//!
//! [`FloatSum`] adds every `f64` exactly into a fixed-point accumulator wide enough for any
//! finite double (32-bit digits from 2^-1074 up), so sums merged in any grouping and order are
//! the same number, and `avg(tip_amount / total_amount)` is identical whether one thread or
//! forty workers computed it. The final value is the exact sum rounded to a double.
//!
//! # Quantile sketch: error bound
//!
//! [`QuantileSketch`] counts values in buckets that are the doubles sharing their sign,
//! exponent and top [`MANTISSA_BITS`] mantissa bits: each bucket spans a relative width of at
//! most 2^-7, and a bucket is represented by its midpoint, so a represented value is within
//! **2^-8 ≈ 0.39 % relative** of every value in its bucket (zero is exact). The quantile `q` of
//! `n` values is the representative of the bucket holding the value of rank `q·(n−1)`
//! (0-based); when that rank falls between two values `x_lo ≤ x_hi` the result lies in
//! `[x_lo·(1−2^-8), x_hi·(1+2^-8)]` (for positive values; mirrored for negative). Merging adds
//! bucket counts, so it is exact and order-independent: the sketch of the whole data does not
//! depend on how it was partitioned.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::partial::FxHasher;

use serde::{Deserialize, Serialize};

/// Mantissa bits kept per bucket.
pub const MANTISSA_BITS: u32 = 7;
/// The documented relative error bound of a sketch quantile (see the module doc).
pub const RELATIVE_ERROR: f64 = 1.0 / 256.0;

const SHIFT: u32 = 52 - MANTISSA_BITS;
/// 32-bit digits covering 2^-1074 … 2^1024 with room for carries (2^64 additions).
const DIGITS: usize = 70;
const BIAS: i32 = 1074;

/// An exact sum of doubles (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FloatSum {
    /// Signed 32-bit digits, least significant first; empty until the first value. Digits may
    /// exceed 32 bits between normalisations.
    digits: Vec<i64>,
    /// Additions since the last carry propagation.
    pending: u32,
}

impl FloatSum {
    pub fn add(&mut self, x: f64) {
        if x == 0.0 || !x.is_finite() {
            return;
        }
        if self.digits.is_empty() {
            self.digits = vec![0; DIGITS];
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        let (mant, e) = if exp == 0 {
            (frac, 1 - 1075)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        // x = ±mant · 2^e, e ≥ -1074.
        let pos = (e + BIAS) as u32;
        let (d, r) = ((pos / 32) as usize, pos % 32);
        let wide = u128::from(mant) << r;
        let sign = if x < 0.0 { -1 } else { 1 };
        for k in 0..3 {
            let chunk = ((wide >> (32 * k)) & 0xffff_ffff) as i64;
            if chunk != 0 {
                self.digits[d + k] += sign * chunk;
            }
        }
        self.pending += 1;
        if self.pending >= 1 << 30 {
            self.normalize();
        }
    }

    /// Carries so every digit but the top is in `[0, 2^32)`: one representation per sum.
    fn normalize(&mut self) {
        let mut carry = 0i64;
        for d in self.digits.iter_mut() {
            let v = *d + carry;
            carry = v >> 32;
            *d = v & 0xffff_ffff;
        }
        if let Some(top) = self.digits.last_mut() {
            *top += carry << 32;
        }
        self.pending = 0;
    }

    pub fn merge(&mut self, o: &FloatSum) {
        if o.digits.is_empty() {
            return;
        }
        if self.digits.is_empty() {
            self.digits = vec![0; DIGITS];
        }
        self.normalize();
        let mut o = o.clone();
        o.normalize();
        for (a, b) in self.digits.iter_mut().zip(&o.digits) {
            *a += b;
        }
        self.normalize();
    }

    pub fn is_empty(&self) -> bool {
        self.digits.is_empty()
    }

    /// The sum as a double (deterministic: computed from the normalised digits).
    pub fn value(&self) -> f64 {
        if self.digits.is_empty() {
            return 0.0;
        }
        let mut s = self.clone();
        s.normalize();
        let neg = s.digits.last().is_some_and(|&t| t < 0);
        if neg {
            // Two's complement over the digits: negate and normalise.
            for d in s.digits.iter_mut() {
                *d = -*d;
            }
            s.normalize();
        }
        let Some(top) = s.digits.iter().rposition(|&d| d != 0) else {
            return 0.0;
        };
        // The top three digits hold ≥ 65 significant bits; the rest only decides rounding.
        let mut v = 0f64;
        let lo = top.saturating_sub(2);
        for i in (lo..=top).rev() {
            v += (s.digits[i] as f64) * 2f64.powi(32 * i as i32 - BIAS);
        }
        if lo > 0 && s.digits[..lo].iter().any(|&d| d != 0) {
            // Sticky bit: below the 65 bits kept, nudges ties the right way.
            v += 2f64.powi(32 * lo as i32 - BIAS) * 0.5;
        }
        if neg { -v } else { v }
    }
}

/// The mergeable quantile sketch (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QuantileSketch {
    /// Bucket (the top bits of the double) → count. A hash map: one probe per value (the
    /// order only matters when a quantile is read, and that sorts).
    buckets: HashMap<u64, u64, BuildHasherDefault<FxHasher>>,
}

impl QuantileSketch {
    #[inline]
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let x = if x == 0.0 { 0.0 } else { x };
        *self.buckets.entry(x.to_bits() >> SHIFT).or_default() += 1;
    }

    pub fn merge(&mut self, o: &QuantileSketch) {
        for (k, n) in &o.buckets {
            *self.buckets.entry(*k).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The bucket's representative: the midpoint of the doubles it holds.
    fn representative(key: u64) -> f64 {
        if key << SHIFT == 0 || key << SHIFT == 1 << 63 {
            return 0.0;
        }
        let lo = f64::from_bits(key << SHIFT);
        let hi = f64::from_bits(((key + 1) << SHIFT) - 1);
        lo / 2.0 + hi / 2.0
    }

    /// The value of rank `q·(n−1)` within the documented bound; None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let mut sorted: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .map(|(k, c)| (Self::representative(*k), *c))
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        let mut seen = 0;
        for (v, c) in sorted {
            seen += c;
            if seen > rank {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn float_sums_do_not_depend_on_order(xs in proptest::collection::vec(-1e12f64..1e12, 0..200), cut in 0usize..200) {
            let mut a = FloatSum::default();
            xs.iter().for_each(|x| a.add(*x));
            let cut = cut.min(xs.len());
            let (mut b, mut c) = (FloatSum::default(), FloatSum::default());
            xs[..cut].iter().rev().for_each(|x| b.add(*x));
            xs[cut..].iter().for_each(|x| c.add(*x));
            c.merge(&b);
            prop_assert_eq!(a.value().to_bits(), c.value().to_bits());
            // Close to a compensated sum of the same values.
            let naive: f64 = xs.iter().sum();
            prop_assert!((a.value() - naive).abs() <= 1e-3 * (1.0 + naive.abs()));
        }

        #[test]
        fn quantiles_stay_within_the_bound(xs in proptest::collection::vec(0.001f64..1e6, 1..300), q in 0.0f64..1.0) {
            let mut s = QuantileSketch::default();
            xs.iter().for_each(|x| s.add(*x));
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            let r = q * (sorted.len() - 1) as f64;
            let (lo, hi) = (sorted[r.floor() as usize], sorted[r.ceil() as usize]);
            let got = s.quantile(q).expect("non-empty");
            prop_assert!(got >= lo * (1.0 - RELATIVE_ERROR) && got <= hi * (1.0 + RELATIVE_ERROR), "{got} not near [{lo}, {hi}]");
        }
    }

    #[test]
    fn exact_where_doubles_are_not() {
        let mut s = FloatSum::default();
        for x in [1e20, 1.0, -1e20] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.0);
        let mut t = FloatSum::default();
        for _ in 0..10 {
            t.add(0.1);
        }
        assert_eq!(t.value(), 1.0);
        let mut neg = FloatSum::default();
        neg.add(-2.5);
        neg.add(0.25);
        assert_eq!(neg.value(), -2.25);
    }
}
