//! Explicit AVX2 and AVX-512 staging for 8-bit frames: moving interleaved
//! `u8` RGB into planar `f32` blocks and back, and the table lookups on the way.
//!
//! The block kernels' arithmetic is straight-line code the compiler vectorises
//! by itself ([`super::simd`]); the staging around it is not: interleaved
//! 3-byte pixels and per-sample table lookups compile to scalar loads and
//! inserts. With AVX2, eight pixels move at once: two loads and byte shuffles
//! split 24 bytes into three channels, and packs plus a shuffle interleave the
//! result again; table lookups stay scalar (its gathers were measured slower
//! than scalar loads on AMD EPYC cores). With AVX-512 VBMI, byte permutes split
//! up to 64 pixels into channels and interleave 16 again, byte tables are
//! looked up 64 at a time, and so is the 8-bit sRGB table, one byte plane of
//! its `f32` entries at a time.
//!
//! Every function gives exactly the values of the scalar loop it replaces
//! (pure data movement, and the same `mul` then `add` rounding), handles the
//! last pixels of a block with that scalar loop or with masked loads and
//! stores, and is tested against it below. Callers use the safe wrappers,
//! which check the CPU (and the level `LOOPWAVE_SIMD` allows, see
//! [`super::simd`]) and return `false` when the instructions are missing, so
//! the caller runs its portable code.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::lab::{Planes, ENCODE_FLOOR, ENCODE_KNEE, MANTISSA_POW, OCTAVE_POW};
use super::yuv::YuvCoeffs;

/// Whether this CPU can run the functions here (checked once, then cached by std).
#[inline(always)]
pub fn available() -> bool {
    super::simd::level() >= super::simd::Level::Avx2
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
    assert!(src.len() <= 3 * own[0].len() && own[0].len() <= 64);
    if vbmi() {
        // SAFETY: VBMI checked; loads inside `src` (masked), stores inside the planes.
        unsafe { unit512_imp(src, own) };
        return true;
    }
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
        if !lut_bytes_in_place(&mut dst[..3 * i], t) {
            // a gather here is slower than this byte loop on the AMD cores measured
            for v in dst[..3 * i].iter_mut() {
                *v = t[*v as usize];
            }
        }
    }
    for j in i..n {
        for c in 0..3 {
            let q = <u8 as super::Sample>::from_unit(rgb[c][j]);
            dst[3 * j + c] = table.map_or(q, |t| t[q as usize]);
        }
    }
}

/// Whether the CPU has AVX-512 VBMI (`vpermi2b`: a 64-byte table lookup per
/// instruction) and the SIMD level allows AVX-512.
fn vbmi() -> bool {
    avx512() && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// `dst[i] = table[src[i]]` for `n` bytes, 64 at a time: two two-register
/// byte permutes look the byte up in each half of the table, its top bit
/// picks the half. The last partial vector uses masked loads and stores.
///
/// # Safety
/// AVX-512 VBMI must be available; `src..src + n` readable and `dst..dst + n`
/// writable (they may be the same bytes).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn lut_bytes_imp(src: *const u8, dst: *mut u8, n: usize, table: &[u8; 256]) {
    let t = table_regs(table);
    let mut i = 0;
    while i < n {
        let (m, idx) = load_step(src, i, n);
        _mm512_mask_storeu_epi8(dst.add(i) as *mut i8, m, look_bytes(&t, idx));
        i += 64;
    }
}

/// A 256-byte table in four registers.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn table_regs(table: &[u8; 256]) -> [__m512i; 4] {
    std::array::from_fn(|k| _mm512_loadu_si512(table[64 * k..].as_ptr() as *const _))
}

/// `t[idx]` for 64 byte codes: two two-register byte permutes look each code
/// up in each half of the table, its top bit picks the half.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn look_bytes(t: &[__m512i; 4], idx: __m512i) -> __m512i {
    let lo = _mm512_permutex2var_epi8(t[0], idx, t[1]);
    let hi = _mm512_permutex2var_epi8(t[2], idx, t[3]);
    _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi)
}

/// The 64-byte step at `i` of `n` bytes from `src` (masked past `n`, zero
/// there) and its mask; asks for the line 16 steps ahead (see
/// `simd::PREFETCH_BLOCKS`).
///
/// # Safety
/// `src..src + n` readable, `i < n`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn load_step(src: *const u8, i: usize, n: usize) -> (__mmask64, __m512i) {
    _mm_prefetch::<_MM_HINT_T0>(src.wrapping_add(i + 1024) as *const i8);
    let m = head_mask(n - i);
    (m, _mm512_maskz_loadu_epi8(m, src.add(i) as *const i8))
}

/// The mask of the first `left` bytes of a 64-byte vector (all of them from 64 on).
#[inline(always)]
fn head_mask(left: usize) -> __mmask64 {
    if left >= 64 {
        !0
    } else {
        (1u64 << left) - 1
    }
}

/// `dst[i] = tables[i % 3][src[i]]` for `n` bytes: interleaved RGB
/// samples through a table per channel, 64 bytes at a time (each vector
/// looked up in all three tables, then the channel of each byte picked).
///
/// # Safety
/// AVX-512 VBMI must be available; `src..src + n` readable and `dst..dst + n`
/// writable.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn lut3_bytes_imp(src: *const u8, dst: *mut u8, n: usize, tables: &[[u8; 256]; 3]) {
    let t: [[__m512i; 4]; 3] = std::array::from_fn(|c| table_regs(&tables[c]));
    // which bytes of a vector belong to channel c, for the three phases a
    // 64-byte step can start at (64 = 1 mod 3)
    let phase_mask = |phase: usize, c: usize| -> u64 {
        (0..64)
            .filter(|j| (phase + j) % 3 == c)
            .map(|j| 1u64 << j)
            .sum()
    };
    let masks: [[u64; 2]; 3] = std::array::from_fn(|p| [phase_mask(p, 1), phase_mask(p, 2)]);
    let mut i = 0;
    while i < n {
        let (m, idx) = load_step(src, i, n);
        let [m1, m2] = masks[i % 3];
        let v = _mm512_mask_blend_epi8(m1, look_bytes(&t[0], idx), look_bytes(&t[1], idx));
        let v = _mm512_mask_blend_epi8(m2, v, look_bytes(&t[2], idx));
        _mm512_mask_storeu_epi8(dst.add(i) as *mut i8, m, v);
        i += 64;
    }
}

/// `dst[i] = tables[i % 3][src[i]]` (8-bit RGB through one table per
/// channel); false (nothing written) without AVX-512 VBMI.
pub fn lut3_bytes(src: &[u8], dst: &mut [u8], tables: &[[u8; 256]; 3]) -> bool {
    assert_eq!(src.len(), dst.len());
    if !vbmi() {
        return false;
    }
    // SAFETY: VBMI checked above; both slices hold `len` bytes.
    unsafe { lut3_bytes_imp(src.as_ptr(), dst.as_mut_ptr(), src.len(), tables) };
    true
}

/// A 256-entry `f32` table as four byte planes (plane `p` holds byte `p` of
/// each entry's little-endian bits), the form [`planes_via_table`] looks up.
pub struct ByteTable([[u8; 256]; 4]);

impl ByteTable {
    pub fn new(table: &[f32; 256]) -> Self {
        Self(std::array::from_fn(|p| {
            std::array::from_fn(|i| table[i].to_le_bytes()[p])
        }))
    }
}

/// Where byte `j` of channel `c`'s 64 codes comes from in 64 interleaved
/// pixels (192 bytes, three registers): `(index into the first two registers,
/// index into the third, whether it is in the third)`. In pixel order, code
/// `j` is pixel `j`; in unpack order, code `j = 16 i + 4 m + k` (`i`, `m`, `k`
/// below 4) is pixel `16 m + 4 i + k`: the per-128-bit-lane byte and word
/// unpacks that assemble looked-up bytes into `f32`s then put pixels `16 m ..`
/// in order in the `m`-th result.
const fn split64(c: usize, unpack_order: bool) -> Split {
    let (mut lo, mut hi, mut third) = ([0u8; 64], [0u8; 64], 0u64);
    let mut j = 0;
    while j < 64 {
        let pixel = if unpack_order {
            16 * ((j / 4) % 4) + 4 * (j / 16) + j % 4
        } else {
            j
        };
        let s = 3 * pixel + c;
        if s < 128 {
            lo[j] = s as u8;
        } else {
            hi[j] = (s - 128) as u8;
            third |= 1 << j;
        }
        j += 1;
    }
    (lo, hi, third)
}

type Split = ([u8; 64], [u8; 64], u64);
const SPLIT_UNPACK: [Split; 3] = [split64(0, true), split64(1, true), split64(2, true)];
const SPLIT_PIXELS: [Split; 3] = [split64(0, false), split64(1, false), split64(2, false)];

/// Up to 64 interleaved pixels (`src.len() / 3 <= 64`) in three registers,
/// zero past their end.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn load_block(src: &[u8]) -> [__m512i; 3] {
    let len = 3 * (src.len() / 3);
    std::array::from_fn(|q| {
        let at = 64 * q;
        if len <= at {
            return _mm512_setzero_si512();
        }
        _mm512_maskz_loadu_epi8(head_mask(len - at), src.as_ptr().add(at) as *const i8)
    })
}

/// One channel's 64 codes from [`load_block`]'s registers, in `split`'s order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn channel_codes(v: &[__m512i; 3], split: &Split) -> __m512i {
    let (lo, hi, third) = split;
    let vec = |p: &[u8; 64]| _mm512_loadu_si512(p.as_ptr() as *const _);
    let codes = _mm512_permutex2var_epi8(v[0], vec(lo), v[1]);
    _mm512_mask_permutexvar_epi8(codes, *third, vec(hi), v[2])
}

/// The mask of the first `k` (at most 16) lanes.
#[inline(always)]
fn lanes(k: usize) -> __mmask16 {
    ((1u32 << k) - 1) as u16
}

/// # Safety
/// AVX-512 VBMI must be available; `src.len() / 3 <= BLOCK`.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn planes_via_table_imp(src: &[u8], table: &ByteTable, out: &mut Planes) {
    let n = src.len() / 3;
    let v = load_block(src);
    // each plane's 256 bytes in four registers
    let t: [[__m512i; 4]; 4] = std::array::from_fn(|p| table_regs(&table.0[p]));
    for (c, split) in SPLIT_UNPACK.iter().enumerate() {
        let codes = channel_codes(&v, split);
        let b: [__m512i; 4] = std::array::from_fn(|p| look_bytes(&t[p], codes));
        let (w01, w23) = (
            _mm512_unpacklo_epi8(b[0], b[1]),
            _mm512_unpacklo_epi8(b[2], b[3]),
        );
        let (x01, x23) = (
            _mm512_unpackhi_epi8(b[0], b[1]),
            _mm512_unpackhi_epi8(b[2], b[3]),
        );
        let words = [
            _mm512_unpacklo_epi16(w01, w23),
            _mm512_unpackhi_epi16(w01, w23),
            _mm512_unpacklo_epi16(x01, x23),
            _mm512_unpackhi_epi16(x01, x23),
        ];
        for (m, w) in words.into_iter().enumerate() {
            if n <= 16 * m {
                break;
            }
            let mask = lanes((n - 16 * m).min(16));
            _mm512_mask_storeu_ps(
                out[c].as_mut_ptr().add(16 * m),
                mask,
                _mm512_castsi512_ps(w),
            );
        }
    }
}

/// `out[c][i] = table[src[3 i + c]]` for up to a block of pixels: interleaved
/// 8-bit samples through a 256-entry table into planes, 64 pixels at a time:
/// byte permutes split the channels and look each byte of the entries up in
/// the table's byte planes, and unpacks put the bytes together again (16-lane
/// `f32` gathers, which this replaces, were the slowest part of reading an
/// 8-bit frame on the AMD EPYC cores measured). False (nothing written)
/// without AVX-512 VBMI.
pub fn planes_via_table(src: &[u8], table: &ByteTable, out: &mut Planes) -> bool {
    assert!(src.len() <= 3 * out[0].len() && out[0].len() <= 64);
    if !vbmi() {
        return false;
    }
    // SAFETY: VBMI checked above; loads inside `src` (masked), stores inside the planes.
    unsafe { planes_via_table_imp(src, table, out) };
    true
}

/// `dst[i] = table[src[i]]`; false (nothing written) without AVX-512 VBMI.
pub fn lut_bytes(src: &[u8], dst: &mut [u8], table: &[u8; 256]) -> bool {
    assert_eq!(src.len(), dst.len());
    if !vbmi() {
        return false;
    }
    // SAFETY: VBMI checked above; both slices hold `len` bytes.
    unsafe { lut_bytes_imp(src.as_ptr(), dst.as_mut_ptr(), src.len(), table) };
    true
}

/// `buf[i] = table[buf[i]]`; false (nothing written) without AVX-512 VBMI.
pub fn lut_bytes_in_place(buf: &mut [u8], table: &[u8; 256]) -> bool {
    if !vbmi() {
        return false;
    }
    let p = buf.as_mut_ptr();
    // SAFETY: VBMI checked above; each vector is loaded before it is stored.
    unsafe { lut_bytes_imp(p, p, buf.len(), table) };
    true
}

/// `dst[3 i + c] = u8::from_unit(rgb[c][i])`, then through `table` if given;
/// at most a block of pixels.
pub fn encode_u8(rgb: &Planes, dst: &mut [u8], table: Option<&[u8; 256]>) -> bool {
    assert!(dst.len() <= 3 * rgb[0].len() && rgb[0].len().is_multiple_of(16));
    if vbmi() {
        // SAFETY: VBMI checked; plane loads at i < n in whole 16-lane steps
        // (the planes' length is a multiple of 16), stores inside `dst` (masked).
        unsafe { encode512_imp(rgb, dst, table) };
        return true;
    }
    if !available() {
        return false;
    }
    // SAFETY: AVX2 checked above; codes are in 0..=255 (clamped before the
    // truncation), inside the 256-entry table; loads inside the planes, stores
    // inside `dst` (i + 8 <= n).
    unsafe { encode_imp(rgb, dst, table) };
    true
}

/// [`unit_u8`] with AVX-512 VBMI: byte permutes split up to 64 pixels into
/// channels, which are widened and scaled 16 at a time.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn unit512_imp(src: &[u8], own: &mut Planes) {
    let n = src.len() / 3;
    let v = load_block(src);
    let scale = _mm512_set1_ps(1.0 / 255.0);
    for (c, split) in SPLIT_PIXELS.iter().enumerate() {
        let codes = channel_codes(&v, split);
        let quarters = [
            _mm512_castsi512_si128(codes),
            _mm512_extracti32x4_epi32::<1>(codes),
            _mm512_extracti32x4_epi32::<2>(codes),
            _mm512_extracti32x4_epi32::<3>(codes),
        ];
        for (q, bytes) in quarters.into_iter().enumerate() {
            if n <= 16 * q {
                break;
            }
            let x = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes)), scale);
            let mask = lanes((n - 16 * q).min(16));
            _mm512_mask_storeu_ps(own[c].as_mut_ptr().add(16 * q), mask, x);
        }
    }
}

/// The octave split of `super::lab`'s `octave_split`, 16 lanes: `u` and the
/// table's entry for the bits of a value.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn octave_parts(bits: __m512i, table: __m512) -> (__m512, __m512) {
    let m = _mm512_or_si512(
        _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
        _mm512_set1_epi32(0x3f80_0000),
    );
    let u = _mm512_sub_ps(_mm512_castsi512_ps(m), _mm512_set1_ps(1.0));
    // the permute reads the low four bits of each lane's index
    (
        u,
        _mm512_permutexvar_ps(_mm512_srli_epi32::<23>(bits), table),
    )
}

/// Horner's rule with fused multiply-adds, as `super::lab`'s `horner`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn horner512<const N: usize>(c: &[__m512; N], u: __m512) -> __m512 {
    let mut p = c[N - 1];
    for ck in c[..N - 1].iter().rev() {
        p = _mm512_fmadd_ps(u, p, *ck);
    }
    p
}

/// Whether the level allows AVX-512 (AVX-512F is part of it).
#[inline(always)]
fn avx512() -> bool {
    super::simd::level() >= super::simd::Level::Avx512
}

/// `poly(u) * table[i]` for each value in place, with `u` and `i` from the
/// octave split (as [`super::lab::cbrt_oct`] with its tables), 16 at a time;
/// false (nothing written) below the AVX-512 level.
#[inline(always)]
pub fn octave_values_avx512<const N: usize>(
    v: &mut [f32; 64],
    poly: &[f32; N],
    table: &[f32; 16],
) -> bool {
    if !avx512() {
        return false;
    }
    // SAFETY: AVX-512F is part of the level checked above; loads and stores
    // in whole 16-lane steps inside the 64 values.
    unsafe { octave_values_imp(v, poly, table) };
    true
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn octave_values_imp<const N: usize>(v: &mut [f32; 64], poly: &[f32; N], table: &[f32; 16]) {
    let t = _mm512_loadu_ps(table.as_ptr());
    let c = poly.map(|x| _mm512_set1_ps(x));
    for i in (0..64).step_by(16) {
        let at = v.as_mut_ptr().add(i);
        let (u, octave) = octave_parts(_mm512_castps_si512(_mm512_loadu_ps(at)), t);
        _mm512_storeu_ps(at, _mm512_mul_ps(horner512(&c, u), octave));
    }
}

/// [`super::lab::encode_oct`] on planar linear RGB in place, 16 values a step;
/// false (nothing written) below the AVX-512 level.
#[inline(always)]
pub fn encode_planes_avx512(rgb: &mut Planes) -> bool {
    if !avx512() {
        return false;
    }
    // SAFETY: as in `octave_values_avx512`.
    unsafe { encode_planes_imp(rgb) };
    true
}

const _: () = assert!(super::lab::BLOCK.is_multiple_of(16));

/// The same operations as `encode_oct`, in the same order: a max, the octave
/// split, Horner's rule, one more fused multiply-add with the octave's power,
/// and the linear segment where `v <= ENCODE_KNEE`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn encode_planes_imp(rgb: &mut Planes) {
    let octaves = _mm512_loadu_ps(OCTAVE_POW.as_ptr());
    let c = MANTISSA_POW.map(|v| _mm512_set1_ps(v));
    let (floor, knee) = (_mm512_set1_ps(ENCODE_FLOOR), _mm512_set1_ps(ENCODE_KNEE));
    let (slope, offset) = (_mm512_set1_ps(12.92), _mm512_set1_ps(-0.055));
    for plane in rgb.iter_mut() {
        for i in (0..plane.len()).step_by(16) {
            let at = plane.as_mut_ptr().add(i);
            let v = _mm512_loadu_ps(at);
            // max_or(v, floor): v if v > floor, else floor (as maxps orders it)
            let bits = _mm512_castps_si512(_mm512_max_ps(v, floor));
            let (u, octave) = octave_parts(bits, octaves);
            let power = _mm512_fmadd_ps(horner512(&c, u), octave, offset);
            let linear = _mm512_mul_ps(v, slope);
            let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, knee);
            _mm512_storeu_ps(at, _mm512_mask_blend_ps(below, power, linear));
        }
    }
}

/// `vpermb` index interleaving three 16-byte channels (bytes 0-15 red, 16-31
/// green, 32-47 blue) into 16 RGB pixels.
const fn interleave48() -> [u8; 64] {
    let mut m = [0u8; 64];
    let mut j = 0;
    while j < 48 {
        m[j] = (16 * (j % 3) + j / 3) as u8;
        j += 1;
    }
    m
}

const INTERLEAVE48: [u8; 64] = interleave48();

/// [`encode_u8`] with AVX-512 VBMI: 16 pixels a step, each channel rounded
/// as `u8::from_unit` and narrowed, a byte permute interleaving the three and
/// looking the result up in `table` before one masked store.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn encode512_imp(rgb: &Planes, dst: &mut [u8], table: Option<&[u8; 256]>) {
    let n = dst.len() / 3;
    let zero = _mm512_setzero_ps();
    let (k255, half) = (_mm512_set1_ps(255.0), _mm512_set1_ps(0.5));
    let order = _mm512_loadu_si512(INTERLEAVE48.as_ptr() as *const _);
    let t = table.map(|t| table_regs(t));
    let mut i = 0;
    while i < n {
        let code = |c: usize| {
            let v = _mm512_loadu_ps(rgb[c].as_ptr().add(i));
            // as u8::from_unit: max (NaN -> 0), * 255 + 0.5, truncate, and values
            // above 1 to 255 by the unsigned saturation of the narrowing (from
            // 256 up, and from the 0x80000000 truncation gives beyond i32 or for
            // +inf) instead of a min
            let x = _mm512_max_ps(v, zero);
            _mm512_cvtusepi32_epi8(_mm512_cvttps_epi32(_mm512_add_ps(
                _mm512_mul_ps(x, k255),
                half,
            )))
        };
        let planes = _mm512_inserti32x4::<2>(
            _mm512_inserti32x4::<1>(_mm512_castsi128_si512(code(0)), code(1)),
            code(2),
        );
        let mut px = _mm512_permutexvar_epi8(order, planes);
        if let Some(t) = &t {
            px = look_bytes(t, px);
        }
        let k = (n - i).min(16);
        _mm512_mask_storeu_epi8(
            dst.as_mut_ptr().add(3 * i) as *mut i8,
            (1u64 << (3 * k)) - 1,
            px,
        );
        i += 16;
    }
}

/// Per 128-bit lane `vpshufb` masks taking channel `c` of four pixels to four
/// zero-extended `i32`: the low lane's pixels start at byte 0 of its 16 bytes,
/// the high lane's (loaded from 8 bytes further on) at byte 4.
const fn pick32(c: usize) -> [u8; 32] {
    let mut m = [0x80u8; 32];
    let mut k = 0;
    while k < 4 {
        m[4 * k] = (3 * k + c) as u8;
        m[16 + 4 * k] = (4 + 3 * k + c) as u8;
        k += 1;
    }
    m
}

const PICK32: [[u8; 32]; 3] = [pick32(0), pick32(1), pick32(2)];

/// Dword order putting two rows' luma back together after the packs in
/// [`yuv_imp`]: low 128 bits the top row, high 128 bits the bottom row.
const ROWS: [i32; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// [`YuvCoeffs`] as the vector kernels use them. The chroma coefficients are
/// times 0.25, the scalar path's `0.25 * sum`: scaling by a power of two is
/// exact, so `k * (0.25 * s)` and `(0.25 * k) * s` are the same real product
/// and round to the same f32. The offsets include the rounding half: `code(d
/// + off)` adds `off`, then 0.5, and one add of `off + 0.5` (exact) gives the
/// same code for every f32 `d` (see `yuv::tests::offset_and_half_fold`).
struct Folded {
    y: [f32; 3],
    u: [f32; 3],
    v: [f32; 3],
    y_off: f32,
    c_off: f32,
}

impl Folded {
    fn new(k: &YuvCoeffs) -> Self {
        Self {
            y: k.y,
            u: k.u.map(|c| 0.25 * c),
            v: k.v.map(|c| 0.25 * c),
            y_off: k.y_off + 0.5,
            c_off: k.c_off + 0.5,
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn yuv_imp(
    k: &YuvCoeffs,
    rows: &[u8],
    w: usize,
    yrows: &mut [u8],
    urow: &mut [u8],
    vrow: &mut [u8],
) -> usize {
    let n = w / 16 * 16;
    let set = |v: f32| _mm256_set1_ps(v);
    let (unit, k255) = (set(1.0 / 255.0), set(255.0));
    let f = Folded::new(k);
    let (ky, ku, kv) = (f.y.map(set), f.u.map(set), f.v.map(set));
    let (y_off, c_off) = (set(f.y_off), set(f.c_off));
    let masks = PICK32.map(|m| _mm256_loadu_si256(m.as_ptr() as *const __m256i));
    let order = _mm256_loadu_si256(ROWS.as_ptr() as *const __m256i);
    // Eight pixels at `p` as `u8::to_unit(v) * 255.0`, per channel.
    let load = |p: *const u8| {
        let lo = _mm_loadu_si128(p as *const __m128i);
        let hi = _mm_loadu_si128(p.add(8) as *const __m128i);
        let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
        masks.map(|m| {
            let v = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(both, m));
            _mm256_mul_ps(_mm256_mul_ps(v, unit), k255)
        })
    };
    // `code(dot(k, p) + off)` before the saturating packs: truncating then
    // saturating to 0..=255 equals the scalar clamp then truncation (`off`
    // includes the rounding half).
    let code = |k: &[__m256; 3], p: &[__m256; 3], off: __m256| {
        let d = _mm256_add_ps(
            _mm256_add_ps(_mm256_mul_ps(k[0], p[0]), _mm256_mul_ps(k[1], p[1])),
            _mm256_mul_ps(k[2], p[2]),
        );
        _mm256_cvttps_epi32(_mm256_add_ps(d, off))
    };
    let (top, bot) = rows.split_at(3 * w);
    let mut x = 0;
    while x < n {
        // one row: its 16 luma codes as words [0-3, 8-11 | 4-7, 12-15], and each
        // channel's left and right pixels of the 8 blocks, lanes [0, 1, 4, 5 |
        // 2, 3, 6, 7]
        let row = |src: &[u8]| {
            let p = [
                load(src.as_ptr().add(3 * x)),
                load(src.as_ptr().add(3 * x + 24)),
            ];
            let y = _mm256_packus_epi32(code(&ky, &p[0], y_off), code(&ky, &p[1], y_off));
            let even: [__m256; 3] =
                std::array::from_fn(|c| _mm256_shuffle_ps::<0x88>(p[0][c], p[1][c]));
            let odd: [__m256; 3] =
                std::array::from_fn(|c| _mm256_shuffle_ps::<0xDD>(p[0][c], p[1][c]));
            (y, even, odd)
        };
        // the next pair of rows (most often this thread's next task)
        super::simd::prefetch(rows, 6 * w + 3 * x, 48);
        super::simd::prefetch(rows, 9 * w + 3 * x, 48);
        let (yt, te, to) = row(top);
        let s: [__m256; 3] = std::array::from_fn(|c| _mm256_add_ps(te[c], to[c]));
        let (yb, be, bo) = row(bot);
        // the 2x2 sums in the scalar order: left + right, + bottom left, + bottom right
        let m: [__m256; 3] =
            std::array::from_fn(|c| _mm256_add_ps(_mm256_add_ps(s[c], be[c]), bo[c]));
        // luma: dwords of 4 codes, lanes [t 0-3, t 8-11, b 0-3, b 8-11 | the rest]
        let ys = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(yt, yb), order);
        _mm_storeu_si128(
            yrows.as_mut_ptr().add(x) as *mut __m128i,
            _mm256_castsi256_si128(ys),
        );
        _mm_storeu_si128(
            yrows.as_mut_ptr().add(w + x) as *mut __m128i,
            _mm256_extracti128_si256::<1>(ys),
        );
        // words [u01 u45 v01 v45 | u23 u67 v23 v67], then interleaved by lane
        let uv = _mm256_packus_epi32(code(&ku, &m, c_off), code(&kv, &m, c_off));
        let uv = _mm256_packus_epi16(uv, uv);
        let uv = _mm_unpacklo_epi16(
            _mm256_castsi256_si128(uv),
            _mm256_extracti128_si256::<1>(uv),
        );
        _mm_storel_epi64(urow.as_mut_ptr().add(x / 2) as *mut __m128i, uv);
        _mm_storel_epi64(
            vrow.as_mut_ptr().add(x / 2) as *mut __m128i,
            _mm_unpackhi_epi64(uv, uv),
        );
        x += 16;
    }
    n
}

/// `vpermb` index taking channel `c` of 32 interleaved pixels (96 bytes, two
/// registers) as their 16 even pixels, then their 16 odd ones.
const fn even_odd(c: usize) -> [u8; 64] {
    let mut m = [0u8; 64];
    let mut j = 0;
    while j < 32 {
        let pixel = if j < 16 { 2 * j } else { 2 * (j - 16) + 1 };
        m[j] = (3 * pixel + c) as u8;
        j += 1;
    }
    m
}

const EVEN_ODD: [[u8; 64]; 3] = [even_odd(0), even_odd(1), even_odd(2)];

/// [`yuv_imp`] with AVX-512 VBMI: 32 pixels of each row a step, the last
/// step masked, so it does whole rows. Byte permutes split each row's pixels
/// into channels, even pixels apart from odd ones, so the 2x2 sums need no
/// shuffles; the arithmetic is [`yuv_imp`]'s, 16 lanes wide.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn yuv512_imp(
    k: &YuvCoeffs,
    rows: &[u8],
    w: usize,
    yrows: &mut [u8],
    urow: &mut [u8],
    vrow: &mut [u8],
) {
    let set = |v: f32| _mm512_set1_ps(v);
    let (unit, k255) = (set(1.0 / 255.0), set(255.0));
    let f = Folded::new(k);
    let (ky, ku, kv) = (f.y.map(set), f.u.map(set), f.v.map(set));
    let (y_off, c_off) = (set(f.y_off), set(f.c_off));
    let split = EVEN_ODD.map(|m| _mm512_loadu_si512(m.as_ptr() as *const _));
    let zero = _mm512_setzero_si512();
    // `k` pixels from `p` as `u8::to_unit(v) * 255.0`: [even, odd] per channel
    let load = |p: *const u8, k: usize| -> [[__m512; 3]; 2] {
        let bytes = 3 * k;
        let v0 = _mm512_maskz_loadu_epi8(head_mask(bytes), p as *const i8);
        let v1 = if bytes > 64 {
            _mm512_maskz_loadu_epi8(head_mask(bytes - 64), p.add(64) as *const i8)
        } else {
            zero
        };
        let codes: [__m512i; 3] =
            std::array::from_fn(|c| _mm512_permutex2var_epi8(v0, split[c], v1));
        let widen = |b: __m128i| {
            _mm512_mul_ps(
                _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), unit),
                k255,
            )
        };
        [
            codes.map(|v| widen(_mm512_castsi512_si128(v))),
            codes.map(|v| widen(_mm512_extracti32x4_epi32::<1>(v))),
        ]
    };
    // `code(dot(k, p) + off)` as 16 bytes: truncation, then 0..=255 by a max
    // and an unsigned saturating narrow (the scalar clamp then truncation)
    let code = |k: &[__m512; 3], p: &[__m512; 3], off: __m512| {
        let d = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(k[0], p[0]), _mm512_mul_ps(k[1], p[1])),
            _mm512_mul_ps(k[2], p[2]),
        );
        let t = _mm512_cvttps_epi32(_mm512_add_ps(d, off));
        _mm512_cvtusepi32_epi8(_mm512_max_epi32(t, _mm512_setzero_si512()))
    };
    let mut x = 0;
    while x < w {
        let k = (w - x).min(32);
        // the next pair of rows (most often this thread's next task)
        super::simd::prefetch(rows, 6 * w + 3 * x, 96);
        super::simd::prefetch(rows, 9 * w + 3 * x, 96);
        let [te, to] = load(rows.as_ptr().add(3 * x), k);
        let [be, bo] = load(rows.as_ptr().add(3 * (w + x)), k);
        let luma_mask = if k == 32 {
            u32::MAX as u64
        } else {
            (1u64 << k) - 1
        };
        for (r, (e, o)) in [(&te, &to), (&be, &bo)].into_iter().enumerate() {
            let (ye, yo) = (code(&ky, e, y_off), code(&ky, o, y_off));
            // even and odd codes interleaved back into pixel order
            let y = _mm512_inserti32x4::<1>(
                _mm512_castsi128_si512(_mm_unpacklo_epi8(ye, yo)),
                _mm_unpackhi_epi8(ye, yo),
            );
            _mm512_mask_storeu_epi8(yrows.as_mut_ptr().add(r * w + x) as *mut i8, luma_mask, y);
        }
        // the 2x2 sums in the scalar order: left + right, + bottom left, + bottom right
        let m: [__m512; 3] = std::array::from_fn(|c| {
            _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(te[c], to[c]), be[c]), bo[c])
        });
        let chroma_mask = (1u64 << (k / 2)) - 1;
        for (plane, kc) in [(&mut *urow, &ku), (&mut *vrow, &kv)] {
            let v = _mm512_castsi128_si512(code(kc, &m, c_off));
            _mm512_mask_storeu_epi8(plane.as_mut_ptr().add(x / 2) as *mut i8, chroma_mask, v);
        }
        x += 32;
    }
}

/// Two rows of 8-bit RGB (`rows`, `2 * w` pixels) to I420, 16 pixels at a
/// time, with exactly the bytes of the portable `yuv::row_pair_imp`: its f32
/// operations in its order, 8 lanes wide, save two rewrites shown to give the
/// same codes (the chroma 0.25 in the coefficients; offset and rounding half
/// added at once); with AVX-512 VBMI, 32 pixels at a time, masked at the end.
/// Returns how many pixels of each row it did (all with VBMI, else a multiple
/// of 16; the caller does the rest), or `None` without AVX2. `w` is even.
pub fn yuv_u8(
    k: &YuvCoeffs,
    rows: &[u8],
    w: usize,
    yrows: &mut [u8],
    urow: &mut [u8],
    vrow: &mut [u8],
) -> Option<usize> {
    assert!(rows.len() == 6 * w && yrows.len() == 2 * w);
    assert!(urow.len() == w / 2 && vrow.len() == w / 2);
    if vbmi() {
        // SAFETY: VBMI checked; every step reads and writes only its first
        // `k <= w - x` pixels (masked), inside the slices checked above.
        unsafe { yuv512_imp(k, rows, w, yrows, urow, vrow) };
        return Some(w);
    }
    if !available() {
        return None;
    }
    // SAFETY: AVX2 checked above; for x + 16 <= w the loads read bytes
    // 3x..3x + 48 of each row and the stores write 16 luma bytes per row and
    // 8 bytes of each chroma row at x / 2, all inside the slices checked above.
    Some(unsafe { yuv_imp(k, rows, w, yrows, urow, vrow) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::lab::BLOCK;
    use crate::kernels::testutil::lcg_bytes;

    fn planes(seed: u64) -> Planes {
        let b = lcg_bytes(3 * BLOCK, seed);
        // values around and outside [0, 1] (infinities, and beyond i32 once
        // scaled to 255), and exact level boundaries
        std::array::from_fn(|c| {
            std::array::from_fn(|i| match i % 11 {
                0 => -0.25,
                1 => 1.5,
                2 => (b[3 * i + c] as f32 + 0.5) / 255.0,
                3 => f32::NAN,
                7 => [f32::INFINITY, f32::NEG_INFINITY, 3e9, 256.0 / 255.0][c + i % 2],
                _ => b[3 * i + c] as f32 / 255.0,
            })
        })
    }

    /// Every f32 in [0, 1] sampled a few thousand apart, and densely around
    /// the sRGB knee and floor, each octave's start and 1.
    fn unit_floats() -> Vec<f32> {
        let near = |x: f32| (x.to_bits() - 300..x.to_bits() + 300).map(f32::from_bits);
        let octaves = (1..=9).map(|k| 0.5f32.powi(k));
        let mut values: Vec<f32> = (0..=1.0f32.to_bits())
            .step_by(4099)
            .map(f32::from_bits)
            .chain(
                [ENCODE_KNEE, ENCODE_FLOOR]
                    .into_iter()
                    .chain(octaves)
                    .flat_map(near),
            )
            .chain((1.0f32.to_bits() - 300..=1.0f32.to_bits()).map(f32::from_bits))
            .chain([0.0, -0.0])
            .collect();
        values.resize(values.len().next_multiple_of(3 * BLOCK), 0.5);
        values
    }

    /// Whether this CPU, whatever `LOOPWAVE_SIMD` caps the kernels to, runs a
    /// build: the tests below call each build's `_imp` directly, so they check it
    /// in the capped `cargo test` pass too, and say so when the CPU lacks it.
    fn cpu_has(build: &str) -> bool {
        use std::arch::is_x86_feature_detected as has;
        let yes = match build {
            "avx2" => has!("avx2"),
            "avx512" => has!("avx512f"),
            "avx512vbmi" => has!("avx512f") && has!("avx512bw") && has!("avx512vbmi"),
            _ => unreachable!("{build}"),
        };
        if !yes {
            eprintln!("not tested: this CPU has no {build}");
        }
        yes
    }

    /// The AVX-512 sRGB encode gives the scalar `encode_oct`'s bits.
    #[test]
    fn encode_planes_equals_encode_oct() {
        use crate::kernels::lab::encode_oct;
        if !cpu_has("avx512") {
            return;
        }
        let values = unit_floats();
        let mut wrong = 0;
        for chunk in values.chunks(3 * BLOCK) {
            let mut rgb: Planes =
                std::array::from_fn(|c| std::array::from_fn(|i| chunk[c * BLOCK + i]));
            // SAFETY: the CPU has AVX-512 F (checked above)
            unsafe { encode_planes_imp(&mut rgb) };
            for (c, plane) in rgb.iter().enumerate() {
                for (i, got) in plane.iter().enumerate() {
                    let want = encode_oct(chunk[c * BLOCK + i]);
                    wrong += (got.to_bits() != want.to_bits()) as usize;
                }
            }
        }
        assert_eq!(wrong, 0, "{wrong} of {} values differ", values.len());
    }

    /// The AVX-512 octave cube roots give the scalar `cbrt_oct`'s and
    /// `cbrt_oct6`'s bits over their range [2^-7, 2^9).
    #[test]
    fn octave_values_equal_cbrt_oct() {
        use crate::kernels::lab::{
            cbrt_oct, cbrt_oct6, MANTISSA_CBRT, MANTISSA_CBRT6, OCTAVE_CBRT,
        };
        if !cpu_has("avx512") {
            return;
        }
        let values: Vec<f32> = unit_floats()
            .into_iter()
            .flat_map(|v| [v, 8.0 * v, 256.0 * v])
            .filter(|&v| (2.0f32.powi(-7)..2.0f32.powi(9)).contains(&v))
            .collect();
        let mut wrong = 0;
        for chunk in values.chunks(64) {
            let mut v = [1.0f32; 64];
            v[..chunk.len()].copy_from_slice(chunk);
            let (want, want6) = (v.map(cbrt_oct), v.map(cbrt_oct6));
            let mut v6 = v;
            // SAFETY: the CPU has AVX-512 F (checked above)
            unsafe {
                octave_values_imp(&mut v, &MANTISSA_CBRT, &OCTAVE_CBRT);
                octave_values_imp(&mut v6, &MANTISSA_CBRT6, &OCTAVE_CBRT);
            }
            for (got, want) in v.iter().zip(&want).chain(v6.iter().zip(&want6)) {
                wrong += (got.to_bits() != want.to_bits()) as usize;
            }
        }
        assert_eq!(wrong, 0, "{wrong} of {} values differ", values.len());
    }

    #[test]
    fn match_the_scalar_loops_at_every_length() {
        // both builds of the staging: AVX2, and AVX-512 VBMI where the CPU has it
        // (the public functions pick the latter there, so call each directly)
        type Unit = unsafe fn(&[u8], &mut Planes);
        type Encode = unsafe fn(&Planes, &mut [u8], Option<&[u8; 256]>);
        let mut builds: Vec<(&str, Unit, Encode)> = Vec::new();
        if cpu_has("avx2") {
            builds.push(("avx2", unit_imp, encode_imp));
        }
        if cpu_has("avx512vbmi") {
            builds.push(("avx512", unit512_imp, encode512_imp));
        }
        let gamma: [u8; 256] = std::array::from_fn(|i| 255 - i as u8);
        for (name, unit, encode) in builds {
            for n in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 49, 63, 64] {
                let src = lcg_bytes(3 * n, n as u64);
                let mut own: Planes = [[-1.0; BLOCK]; 3];
                // SAFETY: the CPU has the build's features (checked above)
                unsafe { unit(&src, &mut own) };
                for c in 0..3 {
                    for i in 0..BLOCK {
                        let want = if i < n {
                            src[3 * i + c] as f32 * (1.0 / 255.0)
                        } else {
                            -1.0
                        };
                        assert_eq!(own[c][i], want, "{name} n={n} i={i} c={c}");
                    }
                }
                let rgb = planes(n as u64);
                for t in [None, Some(&gamma)] {
                    let mut out = vec![7u8; 3 * n + 5];
                    // SAFETY: as above
                    unsafe { encode(&rgb, &mut out[..3 * n], t) };
                    for i in 0..n {
                        for c in 0..3 {
                            let q = <u8 as crate::kernels::Sample>::from_unit(rgb[c][i]);
                            let want = t.map_or(q, |t| t[q as usize]);
                            assert_eq!(out[3 * i + c], want, "{name} n={n} i={i} c={c}");
                        }
                    }
                    assert!(out[3 * n..].iter().all(|&v| v == 7), "wrote past the end");
                }
            }
        }
    }

    /// The AVX2 kernel (with the scalar columns after it) and the AVX-512 one
    /// give the same bytes; the public path, which picks the widest, is checked
    /// against the portable code in `yuv`'s tests, so this keeps the AVX2 one
    /// tested on CPUs that have both.
    #[test]
    fn yuv_builds_agree() {
        use crate::kernels::yuv::{row_pair_tail, Matrix};
        if !(cpu_has("avx2") && cpu_has("avx512vbmi")) {
            return; // one build at most on this CPU: nothing to compare
        }
        for (m, full) in [
            (Matrix::Bt601, true),
            (Matrix::Bt709, false),
            (Matrix::Bt2020, false),
        ] {
            let k = YuvCoeffs::new(m, full);
            for w in [2usize, 4, 14, 16, 18, 30, 32, 34, 46, 64, 66, 96, 510] {
                let rows = lcg_bytes(6 * w, w as u64);
                let run = |wide: bool| {
                    let (mut y, mut u, mut v) =
                        (vec![0u8; 2 * w], vec![0u8; w / 2], vec![0u8; w / 2]);
                    // SAFETY: both builds' features checked above; the slices
                    // have the sizes `yuv_u8` asserts
                    unsafe {
                        if wide {
                            yuv512_imp(&k, &rows, w, &mut y, &mut u, &mut v);
                        } else {
                            let done = yuv_imp(&k, &rows, w, &mut y, &mut u, &mut v);
                            row_pair_tail(&k, &rows, w, done, &mut y, &mut u, &mut v);
                        }
                    }
                    (y, u, v)
                };
                assert_eq!(run(true), run(false), "w={w}");
            }
        }
    }

    #[test]
    fn channel_tables_match_indexing_at_every_length() {
        let bits = lcg_bytes(768, 7);
        let tables: [[u8; 256]; 3] =
            std::array::from_fn(|c| std::array::from_fn(|i| bits[256 * c + i]));
        for n in [0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 192, 1000, 3 * 1024] {
            let src = lcg_bytes(n, n as u64 + 1);
            let mut out = vec![7u8; n + 5];
            if !cpu_has("avx512vbmi") {
                return;
            }
            // SAFETY: the CPU has VBMI (checked above); both hold `n` bytes
            unsafe { lut3_bytes_imp(src.as_ptr(), out.as_mut_ptr(), n, &tables) };
            for (i, &v) in src.iter().enumerate() {
                assert_eq!(out[i], tables[i % 3][v as usize], "n={n} i={i}");
            }
            assert!(out[n..].iter().all(|&v| v == 7), "wrote past the end");
        }
    }

    #[test]
    fn table_planes_match_indexing_at_every_length() {
        // every byte of every entry differs (arbitrary bit patterns, NaNs
        // included), so a byte taken from the wrong plane, entry or pixel shows
        let bits = lcg_bytes(1024, 99);
        let table: [f32; 256] = std::array::from_fn(|i| {
            f32::from_le_bytes([
                bits[4 * i],
                bits[4 * i + 1],
                bits[4 * i + 2],
                bits[4 * i + 3],
            ])
        });
        let planes = ByteTable::new(&table);
        // four blocks that together hold every code in every channel, then partial blocks
        let mut cases: Vec<Vec<u8>> = (0..4)
            .map(|k| {
                (0..3 * BLOCK)
                    .map(|j| (64 * k + (j / 3 + 21 * (j % 3)) % 64) as u8)
                    .collect()
            })
            .collect();
        for n in [0, 1, 5, 15, 16, 17, 31, 33, 48, 63, 64] {
            cases.push(lcg_bytes(3 * n, n as u64 + 5));
        }
        for src in cases {
            let n = src.len() / 3;
            let mut out: Planes = [[-9.0; BLOCK]; 3];
            if !planes_via_table(&src, &planes, &mut out) {
                return; // no AVX-512 VBMI on this CPU (or capped): nothing to compare
            }
            for c in 0..3 {
                for i in 0..BLOCK {
                    let want = if i < n {
                        table[src[3 * i + c] as usize]
                    } else {
                        -9.0
                    };
                    assert_eq!(out[c][i].to_bits(), want.to_bits(), "n={n} c={c} i={i}");
                }
            }
        }
    }

    #[test]
    fn byte_lookups_match_indexing_at_every_length() {
        let table: [u8; 256] = lcg_bytes(256, 99).try_into().unwrap();
        for n in [0, 1, 5, 63, 64, 65, 127, 128, 191, 200, 1000] {
            let src = lcg_bytes(n, n as u64 + 1);
            let want: Vec<u8> = src.iter().map(|&v| table[v as usize]).collect();
            let mut out = vec![7u8; n + 70];
            if !lut_bytes(&src, &mut out[..n], &table) {
                return; // no AVX-512 VBMI on this CPU (or capped): nothing to compare
            }
            assert_eq!(out[..n], want[..], "n={n}");
            assert!(out[n..].iter().all(|&v| v == 7), "wrote past the end");
            let mut buf = src.clone();
            assert!(lut_bytes_in_place(&mut buf, &table));
            assert_eq!(buf, want, "in place, n={n}");
        }
    }
}
