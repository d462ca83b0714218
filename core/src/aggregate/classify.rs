//! The block classifier: 64 input bytes → three bitmaps (bit i = byte i): quotes, commas,
//! newlines. Three implementations that must agree bit for bit (tested): portable SWAR, SSE2
//! and AVX2. The SIMD ones are `#[target_feature]` functions, safe to call only from code
//! compiled with the same features; `crate::mmap` holds the runtime dispatch.

/// The bitmaps of one 64-byte block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Masks {
    pub quote: u64,
    pub comma: u64,
    pub newline: u64,
}

const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;

/// High bit of each byte of `w` that equals `b` (exact: no false positives across bytes).
#[inline(always)]
fn eq_bytes(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * u64::from(b));
    !(((x & LO7) + LO7) | x | LO7)
}

/// Packs the high bits of the 8 bytes of `m` into 8 bits (byte 0 → bit 0).
#[inline(always)]
fn pack(m: u64) -> u64 {
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

#[inline(always)]
fn word(block: &[u8; 64], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&block[i * 8..i * 8 + 8]);
    u64::from_le_bytes(a)
}

/// Portable classifier (8 bytes at a time in a u64).
#[inline(always)]
pub fn classify_portable(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for i in 0..8 {
        let w = word(block, i);
        m.quote |= pack(eq_bytes(w, b'"')) << (8 * i);
        m.comma |= pack(eq_bytes(w, b',')) << (8 * i);
        m.newline |= pack(eq_bytes(w, b'\n')) << (8 * i);
    }
    m
}

/// Inclusive prefix XOR: bit i = XOR of bits 0..=i. Over the quote bitmap it marks the bytes
/// inside quotes (an opening quote is inside, its closing quote is not).
#[inline(always)]
pub fn prefix_xor_portable(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Position of the `r`-th (0-based) set bit of `x`; 64 if there are fewer.
#[inline(always)]
pub fn select_portable(mut x: u64, r: u32) -> u32 {
    for _ in 0..r {
        x &= x.wrapping_sub(1);
    }
    x.trailing_zeros()
}

#[cfg(target_arch = "x86_64")]
pub use x86::*;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Masks;
    use std::arch::x86_64::*;

    #[target_feature(enable = "sse2")]
    #[inline]
    pub fn classify_sse2(block: &[u8; 64]) -> Masks {
        let q = _mm_set1_epi8(b'"' as i8);
        let c = _mm_set1_epi8(b',' as i8);
        let n = _mm_set1_epi8(b'\n' as i8);
        let mut m = Masks::default();
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let mut a = [0u8; 16];
            a.copy_from_slice(chunk);
            let v = crate::mmap::load16(&a);
            let sh = 16 * i;
            m.quote |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, q)) as u16) << sh;
            m.comma |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, c)) as u16) << sh;
            m.newline |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, n)) as u16) << sh;
        }
        m
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    pub fn classify_avx2(block: &[u8; 64]) -> Masks {
        let q = _mm256_set1_epi8(b'"' as i8);
        let c = _mm256_set1_epi8(b',' as i8);
        let n = _mm256_set1_epi8(b'\n' as i8);
        let mut m = Masks::default();
        for (i, chunk) in block.chunks_exact(32).enumerate() {
            let mut a = [0u8; 32];
            a.copy_from_slice(chunk);
            let v = crate::mmap::load32(&a);
            let sh = 32 * i;
            m.quote |= u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, q)) as u32) << sh;
            m.comma |= u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, c)) as u32) << sh;
            m.newline |= u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, n)) as u32) << sh;
        }
        m
    }

    /// Prefix XOR as one carry-less multiply by all-ones.
    #[target_feature(enable = "pclmulqdq,sse2")]
    #[inline]
    pub fn prefix_xor_clmul(x: u64) -> u64 {
        let v = _mm_set_epi64x(0, x as i64);
        let ones = _mm_set1_epi8(-1);
        _mm_cvtsi128_si64(_mm_clmulepi64_si128(v, ones, 0)) as u64
    }

    #[target_feature(enable = "bmi2")]
    #[inline]
    pub fn select_bmi2(x: u64, r: u32) -> u32 {
        if r >= 64 {
            return 64;
        }
        _pdep_u64(1u64 << r, x).trailing_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmap::{Isa, classify};
    use proptest::prelude::*;

    fn naive(block: &[u8; 64]) -> Masks {
        let mut m = Masks::default();
        for (i, &b) in block.iter().enumerate() {
            let bit = 1u64 << i;
            match b {
                b'"' => m.quote |= bit,
                b',' => m.comma |= bit,
                b'\n' => m.newline |= bit,
                _ => {}
            }
        }
        m
    }

    fn block_from(v: &[u8]) -> [u8; 64] {
        let mut b = [0u8; 64];
        for (i, x) in v.iter().take(64).enumerate() {
            b[i] = *x;
        }
        b
    }

    proptest! {
        #[test]
        fn all_isas_agree_on_random_bytes(v in proptest::collection::vec(any::<u8>(), 64)) {
            let b = block_from(&v);
            let want = naive(&b);
            for isa in Isa::available() {
                prop_assert_eq!(classify(isa, &b), want, "{:?}", isa);
            }
        }

        #[test]
        fn all_isas_agree_on_csvish_bytes(v in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(0x80u8), Just(0xffu8), Just(b'a')], 64)) {
            let b = block_from(&v);
            let want = naive(&b);
            for isa in Isa::available() {
                prop_assert_eq!(classify(isa, &b), want, "{:?}", isa);
            }
        }

        #[test]
        fn prefix_xor_and_select(x in any::<u64>(), r in 0u32..70) {
            let mut want = 0u64;
            let mut acc = false;
            for i in 0..64 {
                acc ^= (x >> i) & 1 == 1;
                if acc { want |= 1 << i; }
            }
            prop_assert_eq!(prefix_xor_portable(x), want);
            let mut pos = 64;
            let mut seen = 0;
            for i in 0..64 {
                if (x >> i) & 1 == 1 {
                    if seen == r { pos = i; break; }
                    seen += 1;
                }
            }
            prop_assert_eq!(select_portable(x, r), pos);
        }
    }
}
