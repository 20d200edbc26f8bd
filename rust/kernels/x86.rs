//! Explicit AVX2 staging for 8-bit frames: moving interleaved `u8` RGB into
//! planar `f32` blocks and back, and the table lookups on the way.
//!
//! The block kernels' arithmetic is straight-line code the compiler vectorises
//! by itself ([`super::simd`]); the staging around it is not: interleaved
//! 3-byte pixels and per-sample table lookups compile to scalar loads and
//! inserts. Here eight pixels move at once: two loads and byte shuffles split
//! 24 bytes into three channels, and packs plus a shuffle interleave the
//! result again. (Table lookups stay scalar: AVX2 gathers were measured slower
//! than scalar loads on the AMD EPYC cores this project is benchmarked on.)
//!
//! Every function gives exactly the values of the scalar loop it replaces
//! (pure data movement, and the same `mul` then `add` rounding), handles the
//! last `n % 8` pixels of a block with that scalar loop, and is tested against
//! it below. Callers use the safe wrappers, which check for AVX2 once and
//! return `false` when the CPU lacks it so the caller runs its portable code.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::lab::Planes;

/// Whether this CPU can run the functions here (checked once, then cached by std).
#[inline(always)]
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// `pshufb` masks that pick channel `c` of 8 interleaved pixels: from the first
/// 16 bytes (`hi == false`) or from the 8 bytes after them (`hi == true`);
/// 0x80 zeroes a byte.
const fn pick(c: usize, hi: bool) -> [u8; 16] {
    let mut m = [0x80u8; 16];
    let mut k = 0;
    while k < 8 {
        let pos = 3 * k + c;
        if pos < 16 && !hi {
            m[k] = pos as u8;
        } else if pos >= 16 && hi {
            m[k] = (pos - 16) as u8;
        }
        k += 1;
    }
    m
}

const PICK: [[[u8; 16]; 2]; 3] = [
    [pick(0, false), pick(0, true)],
    [pick(1, false), pick(1, true)],
    [pick(2, false), pick(2, true)],
];

/// Per 128-bit lane, `r0..r3 g0..g3 b0..b3 0000` → `r0 g0 b0 r1 g1 b1 ... b3 0000`.
const WEAVE: [u8; 16] = [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 13, 14, 15];

/// The 8-bit codes of 8 interleaved RGB pixels (24 bytes at `p`) as three
/// vectors of eight `i32`.
///
/// # Safety
/// AVX2 must be available and `p..p + 24` readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load8(p: *const u8) -> [__m256i; 3] {
    let lo = _mm_loadu_si128(p as *const __m128i);
    let hi = _mm_loadl_epi64(p.add(16) as *const __m128i);
    let one = |c: usize| {
        let a = _mm_shuffle_epi8(lo, _mm_loadu_si128(PICK[c][0].as_ptr() as *const __m128i));
        let b = _mm_shuffle_epi8(hi, _mm_loadu_si128(PICK[c][1].as_ptr() as *const __m128i));
        _mm256_cvtepu8_epi32(_mm_or_si128(a, b))
    };
    [one(0), one(1), one(2)]
}

/// Eight pixels' codes (each `i32` in 0..=255) interleaved into 24 bytes at `p`.
///
/// # Safety
/// AVX2 must be available and `p..p + 24` writable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store8(p: *mut u8, r: __m256i, g: __m256i, b: __m256i) {
    let rg = _mm256_packus_epi32(r, g);
    let b0 = _mm256_packus_epi32(b, _mm256_setzero_si256());
    let bytes = _mm256_packus_epi16(rg, b0);
    let weave = _mm256_broadcastsi128_si256(_mm_loadu_si128(WEAVE.as_ptr() as *const __m128i));
    let v = _mm256_shuffle_epi8(bytes, weave);
    for (lane, at) in [
        (_mm256_castsi256_si128(v), 0),
        (_mm256_extracti128_si256::<1>(v), 12),
    ] {
        _mm_storel_epi64(p.add(at) as *mut __m128i, lane);
        let last = _mm_cvtsi128_si32(_mm_srli_si128::<8>(lane));
        std::ptr::write_unaligned(p.add(at + 8) as *mut i32, last);
    }
}

#[target_feature(enable = "avx2")]
unsafe fn unit_imp(src: &[u8], own: &mut Planes) {
    let n = src.len() / 3;
    let scale = _mm256_set1_ps(1.0 / 255.0);
    let mut i = 0;
    while i + 8 <= n {
        for (c, codes) in load8(src.as_ptr().add(3 * i)).into_iter().enumerate() {
            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(codes), scale);
            _mm256_storeu_ps(own[c].as_mut_ptr().add(i), v);
        }
        i += 8;
    }
    for j in i..n {
        for c in 0..3 {
            own[c][j] = src[3 * j + c] as f32 * (1.0 / 255.0);
        }
    }
}

/// `own[c][i] = src[3 i + c] / 255` (as `u8::to_unit`), at most a block of pixels.
pub fn unit_u8(src: &[u8], own: &mut Planes) -> bool {
    assert!(src.len() <= 3 * own[0].len());
    if !available() {
        return false;
    }
    // SAFETY: AVX2 checked above; loads inside `src`, stores inside the planes.
    unsafe { unit_imp(src, own) };
    true
}

#[target_feature(enable = "avx2")]
unsafe fn encode_imp(rgb: &Planes, dst: &mut [u8], table: Option<&[u8; 256]>) {
    let n = dst.len() / 3;
    let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
    let (k255, half) = (_mm256_set1_ps(255.0), _mm256_set1_ps(0.5));
    let code = |c: usize, i: usize| {
        let v = _mm256_loadu_ps(rgb[c].as_ptr().add(i));
        // as u8::from_unit: max then min (NaN -> 0), * 255 + 0.5, truncate
        let x = _mm256_min_ps(_mm256_max_ps(v, zero), one);
        _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(x, k255), half))
    };
    let mut i = 0;
    while i + 8 <= n {
        store8(
            dst.as_mut_ptr().add(3 * i),
            code(0, i),
            code(1, i),
            code(2, i),
        );
        i += 8;
    }
    if let Some(t) = table {
        // a gather here is slower than this byte loop on the AMD cores measured
        for v in dst[..3 * i].iter_mut() {
            *v = t[*v as usize];
        }
    }
    for j in i..n {
        for c in 0..3 {
            let q = <u8 as super::Sample>::from_unit(rgb[c][j]);
            dst[3 * j + c] = table.map_or(q, |t| t[q as usize]);
        }
    }
}

/// `dst[3 i + c] = u8::from_unit(rgb[c][i])`, then through `table` if given;
/// at most a block of pixels.
pub fn encode_u8(rgb: &Planes, dst: &mut [u8], table: Option<&[u8; 256]>) -> bool {
    assert!(dst.len() <= 3 * rgb[0].len());
    if !available() {
        return false;
    }
    // SAFETY: AVX2 checked above; codes are in 0..=255 (clamped before the
    // truncation), inside the 256-entry table; loads inside the planes, stores
    // inside `dst` (i + 8 <= n).
    unsafe { encode_imp(rgb, dst, table) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::lab::BLOCK;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    fn planes(seed: u64) -> Planes {
        let b = bytes(3 * BLOCK, seed);
        // values around and outside [0, 1], and exact level boundaries
        std::array::from_fn(|c| {
            std::array::from_fn(|i| match i % 7 {
                0 => -0.25,
                1 => 1.5,
                2 => (b[3 * i + c] as f32 + 0.5) / 255.0,
                3 => f32::NAN,
                _ => b[3 * i + c] as f32 / 255.0,
            })
        })
    }

    #[test]
    fn match_the_scalar_loops_at_every_length() {
        if !available() {
            return; // nothing to compare on this CPU
        }
        let gamma: [u8; 256] = std::array::from_fn(|i| 255 - i as u8);
        for n in [0, 1, 7, 8, 9, 17, 33, 63, 64] {
            let src = bytes(3 * n, n as u64);
            let mut own: Planes = [[0.0; BLOCK]; 3];
            assert!(unit_u8(&src, &mut own));
            for i in 0..n {
                for c in 0..3 {
                    assert_eq!(own[c][i], src[3 * i + c] as f32 * (1.0 / 255.0));
                }
            }
            let rgb = planes(n as u64);
            for t in [None, Some(&gamma)] {
                let mut out = vec![7u8; 3 * n + 5];
                assert!(encode_u8(&rgb, &mut out[..3 * n], t));
                for i in 0..n {
                    for c in 0..3 {
                        let q = <u8 as crate::kernels::Sample>::from_unit(rgb[c][i]);
                        let want = t.map_or(q, |t| t[q as usize]);
                        assert_eq!(out[3 * i + c], want, "n={n} i={i} c={c}");
                    }
                }
                assert!(out[3 * n..].iter().all(|&v| v == 7), "wrote past the end");
            }
        }
    }
}
