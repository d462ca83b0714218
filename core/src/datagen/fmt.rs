//! Number formatting straight into the output buffer.
//!
//! The generator writes ~1 million rows a second per thread; `format!`/`write!` per field would
//! cost more than generating the values, so the few shapes the taxi CSV needs are done by hand.

const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Two digits, zero-padded; `n < 100`.
#[inline]
pub(crate) fn two(n: u32) -> [u8; 2] {
    let i = (n as usize % 100) * 2;
    [DIGITS2[i], DIGITS2[i + 1]]
}

#[inline]
pub(crate) fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        buf.push(b'0' + n as u8);
        return;
    }
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while n >= 100 {
        let d = two((n % 100) as u32);
        n /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&d);
    }
    if n >= 10 {
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&two(n as u32));
    } else {
        i -= 1;
        tmp[i] = b'0' + n as u8;
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// An amount in cents in its shortest decimal form: `12`, `0.5`, `3.25`, `-2.5`.
#[inline]
pub(crate) fn push_cents(buf: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        buf.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_u64(buf, c / 100);
    let frac = (c % 100) as u32;
    if frac != 0 {
        let d = two(frac);
        buf.push(b'.');
        buf.push(d[0]);
        if d[1] != b'0' {
            buf.push(d[1]);
        }
    }
}

/// Hundredths always with two decimals, as the 2015 files print trip_distance: `1.59`, `0.50`.
#[inline]
pub(crate) fn push_hundredths(buf: &mut Vec<u8>, h: u64) {
    push_u64(buf, h / 100);
    buf.push(b'.');
    buf.extend_from_slice(&two((h % 100) as u32));
}

/// A float32 value the way the 2015 export printed coordinates: the exact value of the
/// float32, rounded to 17 significant digits (`%.17g`), trailing zeros dropped —
/// `-73.993896484375`, `40.750110626220703`.
///
/// Exact for every finite float32 with 1 <= |x| < 2^24 (all plausible coordinates): such a value
/// is m / 2^k with m < 2^24 and k <= 23, whose decimal digits fall out of integer arithmetic.
/// Anything else (never produced by the generator) falls back to Rust's shortest form.
pub(crate) fn push_f32_17g(buf: &mut Vec<u8>, x: f32) {
    if x == 0.0 {
        buf.push(b'0');
        return;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32;
    if !(127..=150).contains(&exp) {
        buf.extend_from_slice(f64::from(x).to_string().as_bytes());
        return;
    }
    if bits >> 31 == 1 {
        buf.push(b'-');
    }
    let k = (150 - exp) as u32;
    let m = u64::from((bits & 0x7f_ffff) | 0x80_0000);
    let mask = (1u64 << k) - 1;
    let mut int = m >> k;
    let mut frac = m & mask;
    let int_digits = if int >= 10_000_000 {
        8
    } else {
        let mut d = 1;
        let mut p = 10;
        while int >= p {
            d += 1;
            p *= 10;
        }
        d
    };
    let n = 17 - int_digits;
    let mut digits = [0u8; 16];
    for d in digits.iter_mut().take(n) {
        frac *= 10;
        *d = (frac >> k) as u8;
        frac &= mask;
    }
    if k > 0 {
        // Round half to even on the exact remainder, as printf does.
        let half = 1u64 << (k - 1);
        let last_odd = if n > 0 {
            digits[n - 1] & 1 == 1
        } else {
            int & 1 == 1
        };
        if frac > half || (frac == half && last_odd) {
            let mut i = n;
            loop {
                if i == 0 {
                    int += 1;
                    break;
                }
                i -= 1;
                if digits[i] == 9 {
                    digits[i] = 0;
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
    }
    push_u64(buf, int);
    let mut end = n;
    while end > 0 && digits[end - 1] == 0 {
        end -= 1;
    }
    if end > 0 {
        buf.push(b'.');
        for &d in &digits[..end] {
            buf.push(b'0' + d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut b = Vec::new();
        f(&mut b);
        String::from_utf8(b).unwrap_or_default()
    }

    #[test]
    fn integers() {
        for n in [0u64, 7, 10, 99, 100, 12345, 1_000_000, u64::MAX] {
            assert_eq!(s(|b| push_u64(b, n)), n.to_string());
        }
    }

    #[test]
    fn cents_are_shortest() {
        assert_eq!(s(|b| push_cents(b, 1200)), "12");
        assert_eq!(s(|b| push_cents(b, 50)), "0.5");
        assert_eq!(s(|b| push_cents(b, 325)), "3.25");
        assert_eq!(s(|b| push_cents(b, 1705)), "17.05");
        assert_eq!(s(|b| push_cents(b, 0)), "0");
        assert_eq!(s(|b| push_cents(b, -250)), "-2.5");
        assert_eq!(s(|b| push_hundredths(b, 159)), "1.59");
        assert_eq!(s(|b| push_hundredths(b, 50)), "0.50");
        assert_eq!(s(|b| push_hundredths(b, 1200)), "12.00");
    }

    fn f(text: &str) -> f32 {
        text.parse().unwrap_or(f32::NAN)
    }

    #[test]
    fn coordinates_match_the_2015_export() {
        // Values seen in yellow_tripdata_2015-01.csv.
        assert_eq!(
            s(|b| push_f32_17g(b, f("-73.993896484375"))),
            "-73.993896484375"
        );
        assert_eq!(
            s(|b| push_f32_17g(b, f("40.750110626220703"))),
            "40.750110626220703"
        );
        assert_eq!(
            s(|b| push_f32_17g(b, f("-73.974784851074219"))),
            "-73.974784851074219"
        );
        assert_eq!(s(|b| push_f32_17g(b, 0.0)), "0");
        assert_eq!(s(|b| push_f32_17g(b, 1.0)), "1");
        assert_eq!(s(|b| push_f32_17g(b, -74.5)), "-74.5");
    }

    /// Against Rust's exact formatter: same digits at 17 significant digits, ties to even.
    #[test]
    fn coordinates_agree_with_exact_formatting() {
        let mut rng = super::super::rng::Rng::from_parts(&[9]);
        for i in 0..200_000u32 {
            let x = if i % 2 == 0 {
                // The generator's range, densely.
                -74.3 + 0.6 * rng.unit() as f32
            } else {
                // Any float32 in [1, 2^24).
                let bits =
                    (127u32 + rng.below(24) as u32) << 23 | (rng.next_u64() as u32 & 0x7f_ffff);
                f32::from_bits(bits)
            };
            let v = f64::from(x);
            let int_digits = (v.abs().trunc() as u64).to_string().len();
            let want = format!("{:.*}", 17 - int_digits, v);
            let want = if want.contains('.') {
                want.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                want
            };
            assert_eq!(s(|b| push_f32_17g(b, x)), want, "x = {x:e}");
        }
    }
}
