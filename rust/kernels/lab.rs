//! CIELAB (D65 white, 2° observer) from sRGB and back.
//!
//! sRGB primaries → XYZ with the IEC 61966-2-1 matrix; the white point is the
//! matrix's row sums (X 0.950470, Z 1.088830), so sRGB white maps to L 100,
//! a 0, b 0. L is in [0, 100]. The CIE definition uses ε = 216/24389 and
//! κ = 24389/27, which keep f and its inverse continuous.
//!
//! The fast path works on blocks of [`BLOCK`] pixels: decode to planar linear
//! RGB (a table lookup), convert with straight-line f32 code the compiler
//! vectorises (cube root by bit trick + two Halley steps), and interleave.

use super::error::{KernelError, Result};
use super::frames::{check_finite, max_or, Dims, Sample};
use super::parallel::{zip_chunks, zip_chunks_all, CHUNK};
use super::simd::{prefetch_ahead, simd_dispatch};

/// sRGB linear → XYZ (D65).
pub const RGB_TO_XYZ: [[f64; 3]; 3] = [
    [0.412_456_4, 0.357_576_1, 0.180_437_5],
    [0.212_672_9, 0.715_152_2, 0.072_175_0],
    [0.019_333_9, 0.119_192_0, 0.950_304_1],
];
pub const EPSILON: f64 = 216.0 / 24389.0;
pub const KAPPA: f64 = 24389.0 / 27.0;

/// Pixels per block in the fast path.
pub const BLOCK: usize = 64;

/// The D65 white point: the row sums of [`RGB_TO_XYZ`].
pub fn white() -> [f64; 3] {
    RGB_TO_XYZ.map(|r| r[0] + r[1] + r[2])
}

fn inverse3(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c = |r: usize, s: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (s1, s2) = ((s + 1) % 3, (s + 2) % 3);
        m[r1][s1] * m[r2][s2] - m[r1][s2] * m[r2][s1]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    std::array::from_fn(|i| std::array::from_fn(|j| c(j, i) / det))
}

/// XYZ (D65) → sRGB linear.
pub fn xyz_to_rgb() -> [[f64; 3]; 3] {
    inverse3(RGB_TO_XYZ)
}

fn f_ref(t: f64) -> f64 {
    if t > EPSILON {
        t.cbrt()
    } else {
        (KAPPA * t + 16.0) / 116.0
    }
}

fn f_inv_ref(f: f64) -> f64 {
    let f3 = f * f * f;
    if f3 > EPSILON {
        f3
    } else {
        (116.0 * f - 16.0) / KAPPA
    }
}

/// Linear sRGB → Lab (f64 reference).
pub fn lab_from_linear_f64(rgb: [f64; 3]) -> [f64; 3] {
    let w = white();
    let xyz: [f64; 3] = std::array::from_fn(|i| {
        (RGB_TO_XYZ[i][0] * rgb[0] + RGB_TO_XYZ[i][1] * rgb[1] + RGB_TO_XYZ[i][2] * rgb[2]) / w[i]
    });
    let [fx, fy, fz] = xyz.map(f_ref);
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// Lab → linear sRGB, not clipped (f64 reference).
pub fn linear_from_lab_f64(lab: [f64; 3]) -> [f64; 3] {
    let w = white();
    let fy = (lab[0] + 16.0) / 116.0;
    let f = [fy + lab[1] / 500.0, fy, fy - lab[2] / 200.0];
    let xyz: [f64; 3] = std::array::from_fn(|i| w[i] * f_inv_ref(f[i]));
    let m = xyz_to_rgb();
    std::array::from_fn(|i| m[i][0] * xyz[0] + m[i][1] * xyz[1] + m[i][2] * xyz[2])
}

/// CIE lightness L* of a relative luminance Y in [0, 1] (f64 reference).
pub fn lightness_f64(y: f64) -> f64 {
    116.0 * f_ref(y) - 16.0
}

/// Cube root of a positive normal f32 in straight-line code that vectorises:
/// exponent/3 guess from the bit pattern (within 3.2%), then `STEPS` Halley
/// steps (cubic convergence: one gives 3e-5 relative, two give about 1 ulp).
#[inline(always)]
pub fn cbrt_steps<const STEPS: usize>(x: f32) -> f32 {
    let third = (x.to_bits() as i32 as f32) * (1.0 / 3.0);
    // SAFETY: for x > 0 the bit pattern is below 2^31, so a third of it is in
    // i32 range; the unchecked cast compiles to one packed instruction where
    // `as` would need a per-lane saturating sequence.
    let guess = unsafe { third.to_int_unchecked::<i32>() };
    let mut y = f32::from_bits((guess + 709_921_077) as u32);
    for _ in 0..STEPS {
        let y3 = y * y * y;
        y *= (y3 + 2.0 * x) / (2.0 * y3 + x);
    }
    y
}

/// Cube root to about 1 ulp (two Halley steps).
#[inline(always)]
pub fn cbrt_fast(x: f32) -> f32 {
    cbrt_steps::<2>(x)
}

const EPS32: f32 = EPSILON as f32;
const K116: f32 = (KAPPA / 116.0) as f32;
const C16: f32 = 16.0 / 116.0;

/// The CIE f function in f32 (`STEPS` Halley steps in the cube root).
#[inline(always)]
pub fn f_steps<const STEPS: usize>(t: f32) -> f32 {
    f_of(t, cbrt_steps::<STEPS>(max_or(t, EPS32)))
}

/// The CIE f of `t` given the cube root of `t` floored at EPS32: that root,
/// or the linear segment at and below EPS32.
#[inline(always)]
fn f_of(t: f32, root: f32) -> f32 {
    if t > EPS32 {
        root
    } else {
        t * K116 + C16
    }
}

/// The CIE f function in f32, full precision.
#[inline(always)]
pub fn f_fast(t: f32) -> f32 {
    f_steps::<2>(t)
}

/// L* of a relative luminance Y (f32 fast path).
#[inline(always)]
pub fn lightness_fast(y: f32) -> f32 {
    116.0 * f_fast(y) - 16.0
}

#[inline(always)]
fn f_inv_fast(f: f32) -> f32 {
    let f3 = f * f * f;
    if f3 > EPS32 {
        f3
    } else {
        f.mul_add(1.0 / K116, -C16 / K116)
    }
}

/// Constants of the f32 fast path, computed once per call.
#[derive(Clone, Copy)]
pub struct LabConsts {
    /// Y from linear RGB (the white point's Y is 1).
    y: [f32; 3],
    /// X/Xn - Y and Z/Zn - Y from (R - B, G - B). Each row of RGB→XYZ with the
    /// white point divided out sums to 1, so X/Xn - Y is d0 R + d1 G + d2 B
    /// with d2 = -(d0 + d1), that is d0 (R - B) + d1 (G - B): exactly 0 for a
    /// grey, which so gets a* = b* = 0 exactly rather than f32 rounding noise
    /// of either sign (on which side of 0 a crowd of greys falls decides
    /// which histogram bin it fills in `color_correct`).
    dx: [f32; 2],
    dz: [f32; 2],
    /// XYZ→RGB with the white point multiplied in.
    inv: [[f32; 3]; 3],
}

impl LabConsts {
    pub fn new() -> Self {
        let w = white();
        let inv = xyz_to_rgb();
        let fwd = |i: usize, j: usize| RGB_TO_XYZ[i][j] / w[i];
        Self {
            y: std::array::from_fn(|j| fwd(1, j) as f32),
            dx: std::array::from_fn(|j| (fwd(0, j) - fwd(1, j)) as f32),
            dz: std::array::from_fn(|j| (fwd(2, j) - fwd(1, j)) as f32),
            inv: std::array::from_fn(|i| std::array::from_fn(|j| (inv[i][j] * w[j]) as f32)),
        }
    }

    /// X/Xn, Y, Z/Zn of linear RGB; the first and last equal Y exactly for greys.
    #[inline(always)]
    fn xyz(&self, r: f32, g: f32, b: f32) -> [f32; 3] {
        let y = self.y[2].mul_add(b, self.y[1].mul_add(g, self.y[0] * r));
        let (rb, gb) = (r - b, g - b);
        let off = |d: &[f32; 2]| d[1].mul_add(gb, d[0].mul_add(rb, y));
        [off(&self.dx), y, off(&self.dz)]
    }
}

impl Default for LabConsts {
    fn default() -> Self {
        Self::new()
    }
}

/// Planar block of three channels.
pub type Planes = [[f32; BLOCK]; 3];

/// Planar linear RGB (in [0, 1]) → planar Lab, a whole block at once: the
/// CIE f's cube roots by [`cbrt_oct6`] (no division; L within 6e-5 and a, b
/// within 5e-4 of the exact f32 roots).
#[inline(always)]
pub fn lab_from_linear_block(k: &LabConsts, rgb: &Planes, lab: &mut Planes) {
    let mut f: Planes = [[0.0; BLOCK]; 3];
    f_from_linear_block(k, rgb, &mut f);
    for i in 0..BLOCK {
        let [fx, fy, fz] = [f[0][i], f[1][i], f[2][i]];
        // not fused: 116 * f32(16/116) rounds to exactly 16, so black gets L* = 0
        lab[0][i] = fy * 116.0 - 16.0;
        lab[1][i] = 500.0 * (fx - fy);
        lab[2][i] = 200.0 * (fy - fz);
    }
}

/// Planar linear RGB → the CIE f of X/Xn, Y and Z/Zn (the cube roots as in
/// [`lab_from_linear_block`]), from which L* = 116 fy - 16, a* = 500 (fx - fy)
/// and b* = 200 (fy - fz); fx = fy and fz = fy exactly for greys.
#[inline(always)]
pub fn f_from_linear_block(k: &LabConsts, rgb: &Planes, f: &mut Planes) {
    for i in 0..BLOCK {
        let xyz = k.xyz(rgb[0][i], rgb[1][i], rgb[2][i]);
        for c in 0..3 {
            f[c][i] = xyz[c];
        }
    }
    for plane in f.iter_mut() {
        f_octave_block(plane, &MANTISSA_CBRT6);
    }
}

/// Planar linear RGB → planar Lab with `STEPS` Halley steps in the cube roots
/// (two give about 1 ulp): the reference [`lab_from_linear_block`] is tested
/// against.
#[cfg(test)]
fn lab_from_linear_block_steps<const STEPS: usize>(k: &LabConsts, rgb: &Planes, lab: &mut Planes) {
    for i in 0..BLOCK {
        let [x, y, z] = k.xyz(rgb[0][i], rgb[1][i], rgb[2][i]);
        let (fx, fy, fz) = (
            f_steps::<STEPS>(x),
            f_steps::<STEPS>(y),
            f_steps::<STEPS>(z),
        );
        // not fused: 116 * f32(16/116) rounds to exactly 16, so black gets L* = 0, not
        // the -6e-8 an FMA gives (which fell out of L's [0, 100] range downstream)
        lab[0][i] = fy * 116.0 - 16.0;
        lab[1][i] = 500.0 * (fx - fy);
        lab[2][i] = 200.0 * (fy - fz);
    }
}

/// `(1 + u)^(1/3)` on [0, 1): degree 5, exactly 1 at 0 (so the root of a
/// power of two is the table's entry: white has L* = 100), otherwise minimax
/// (relative error 1.4e-6).
pub const MANTISSA_CBRT: [f32; 6] = [
    1.0,
    0.3332594,
    -0.109904334,
    0.055135496,
    -0.024079632,
    0.0055118706,
];

/// `2^((e - 127) / 3)` for the biased exponents `e` whose low four bits are
/// `i`: 120..=127 for `i` in 8..=15, 128..=135 for `i` in 0..=7, so values in
/// [2^-7, 2^9) (see [`OCTAVE_POW`] for why four bits).
pub const OCTAVE_CBRT: [f32; 16] = [
    1.2599211, 1.587401, 2.0, 2.5198421, 3.174802, 4.0, 5.0396843, 6.349604, 0.19842513, 0.25,
    0.31498027, 0.39685026, 0.5, 0.62996054, 0.7937005, 1.0,
];

/// `x = 2^e (1 + u)` split for the octave tables: `u` in [0, 1) and the
/// table index (the exponent field's low four bits).
#[inline(always)]
fn octave_split(x: f32) -> (f32, usize) {
    let bits = x.to_bits();
    let u = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000) - 1.0;
    (u, (bits >> 23) as usize & 15)
}

/// Cube root of `x` in [2^-7, 2^9) (the CIE f function's power segment starts
/// at 2^-6.8) within 2e-6 relative (f32 rounding included), with no division: the octave's root
/// from [`OCTAVE_CBRT`] times a polynomial of the mantissa.
/// [`super::x86::octave_values_avx512`] computes the same values 16 at a time.
#[inline(always)]
pub fn cbrt_oct(x: f32) -> f32 {
    cbrt_octave(x, &MANTISSA_CBRT)
}

/// The cube root of `x` from [`OCTAVE_CBRT`] and the mantissa polynomial `poly`.
#[inline(always)]
fn cbrt_octave<const N: usize>(x: f32, poly: &[f32; N]) -> f32 {
    let (u, i) = octave_split(x);
    horner(poly, u) * OCTAVE_CBRT[i]
}

/// The CIE f of each value of `t` in place, its cube roots by [`cbrt_octave`]
/// with `poly`, 16 at a time where the CPU has AVX-512.
#[inline(always)]
fn f_octave_block<const N: usize>(t: &mut [f32; BLOCK], poly: &[f32; N]) {
    let mut roots = t.map(|v| max_or(v, EPS32));
    #[cfg(target_arch = "x86_64")]
    let done = super::x86::octave_values_avx512(&mut roots, poly, &OCTAVE_CBRT);
    #[cfg(not(target_arch = "x86_64"))]
    let done = false;
    if !done {
        for v in roots.iter_mut() {
            *v = cbrt_octave(*v, poly);
        }
    }
    for (t, &root) in t.iter_mut().zip(&roots) {
        *t = f_of(*t, root);
    }
}

/// L* of a relative luminance in [0, 1] within 0.0005 of [`lightness_fast`],
/// with no division (the CIE f's cube root by [`cbrt_oct`]).
#[inline(always)]
pub fn lightness_oct(y: f32) -> f32 {
    // 116 f - 16 not fused, as lightness_fast, so black is 0
    116.0 * f_of(y, cbrt_oct(max_or(y, EPS32))) - 16.0
}

/// [`lightness_oct`] of a block of luminances, the cube roots 16 at a time
/// where the CPU has AVX-512.
#[inline(always)]
pub fn lightness_block(y: &[f32; BLOCK], l: &mut [f32; BLOCK]) {
    *l = *y;
    f_octave_block(l, &MANTISSA_CBRT);
    for v in l.iter_mut() {
        *v = 116.0 * *v - 16.0;
    }
}

/// [`MANTISSA_CBRT`] of degree 6 (relative error 2e-7).
pub const MANTISSA_CBRT6: [f32; 7] = [
    1.0,
    0.33331978,
    -0.110812895,
    0.0595029,
    -0.0331462,
    0.013995451,
    -0.0029382382,
];

/// [`cbrt_oct`] to 4e-7 relative (a degree-6 polynomial; f32 rounding included).
#[inline(always)]
pub fn cbrt_oct6(x: f32) -> f32 {
    cbrt_octave(x, &MANTISSA_CBRT6)
}

/// Planar Lab → planar linear RGB clipped to [0, 1], a whole block at once.
#[inline(always)]
pub fn linear_from_lab_block(k: &LabConsts, lab: &Planes, rgb: &mut Planes) {
    let m = &k.inv;
    for i in 0..BLOCK {
        let fy = lab[0][i].mul_add(1.0 / 116.0, 16.0 / 116.0);
        let x = f_inv_fast(lab[1][i].mul_add(1.0 / 500.0, fy));
        let y = f_inv_fast(fy);
        let z = f_inv_fast(lab[2][i].mul_add(-1.0 / 200.0, fy));
        for c in 0..3 {
            rgb[c][i] = m[c][2]
                .mul_add(z, m[c][1].mul_add(y, m[c][0] * x))
                .clamp(0.0, 1.0);
        }
    }
}

/// Interleaved sRGB samples (up to BLOCK pixels) → planar linear RGB.
#[inline(always)]
pub fn decode_block<T: Sample>(src: &[T], rgb: &mut Planes) {
    // fetch the table once per block, not once per sample
    if T::FLOAT {
        for (i, px) in src.chunks_exact(3).enumerate() {
            for c in 0..3 {
                rgb[c][i] = px[c].raw();
            }
        }
        for plane in rgb.iter_mut() {
            for v in plane.iter_mut() {
                *v = super::srgb::decode_poly(*v);
            }
        }
    } else {
        let t = super::srgb::decode_table_u8();
        #[cfg(target_arch = "x86_64")]
        if let Some(b) = T::bytes(src) {
            static PLANES: std::sync::OnceLock<super::x86::ByteTable> = std::sync::OnceLock::new();
            let planes = PLANES.get_or_init(|| super::x86::ByteTable::new(t));
            if super::x86::planes_via_table(b, planes, rgb) {
                return;
            }
        }
        for (i, px) in src.chunks_exact(3).enumerate() {
            for c in 0..3 {
                rgb[c][i] = t[px[c].code()];
            }
        }
    }
}

/// Encode planar linear RGB in place to sRGB in [0, 1] with `encode`.
#[inline(always)]
pub fn encode_planes(rgb: &mut Planes, encode: impl Fn(f32) -> f32) {
    for plane in rgb.iter_mut() {
        for v in plane.iter_mut() {
            *v = encode(*v);
        }
    }
}

/// `1.055 (1 + u)^(5/12)` on [0, 1): degree 5, exact at 0 (so 1 encodes as
/// 0.99999994, not above 1), otherwise minimax (relative error 1.4e-6).
pub const MANTISSA_POW: [f32; 6] = [
    1.055,
    0.43950862,
    -0.12697288,
    0.060858708,
    -0.026049785,
    0.005913356,
];

/// `2^(5 (i - 15) / 12)` for the low four bits `i` of an `f32`'s exponent
/// field: values in [2^-9, 1] have biased exponents 118..=127, which those
/// four bits tell apart (6..=15), so the power of each octave comes from a
/// 16-entry table: one register, looked up by one `vpermps` in
/// [`super::x86::encode_planes_avx512`].
pub const OCTAVE_POW: [f32; 16] = [
    0.013139007,
    0.01753847,
    0.023411049,
    0.03125,
    0.041713744,
    0.05568117,
    0.07432544,
    0.099212565,
    0.1324329,
    0.17677669,
    0.23596857,
    0.31498027,
    0.4204482,
    0.561231,
    0.74915355,
    1.0,
];

#[inline(always)]
fn horner<const N: usize>(c: &[f32; N], x: f32) -> f32 {
    let mut p = c[N - 1];
    for &ck in c[..N - 1].iter().rev() {
        p = x.mul_add(p, ck);
    }
    p
}

/// Below it the sRGB curve's power segment is not used: values there take
/// the linear segment; the floor keeps their discarded power lanes in the
/// table's octaves.
pub const ENCODE_FLOOR: f32 = 0.003;
/// The end of the sRGB curve's linear segment.
pub const ENCODE_KNEE: f32 = 0.003_130_8;

/// The sRGB encoding of linear light `v` in [0, 1] within 2e-6 (0.0005 of a
/// `u8` level) with no division or square root: for `v = 2^e (1 + u)`,
/// `1.055 v^(5/12) - 0.055` is `2^(5e/12)` (a table of the octaves, see
/// [`OCTAVE_POW`]) times a polynomial in `u`, minus 0.055. It does not
/// clamp: callers pass values already in [0, 1] (such as
/// [`linear_from_lab_block`]'s; above 1 the octave table is wrong).
/// [`super::x86::encode_planes_avx512`] computes the same values 16 at a time.
#[inline(always)]
pub fn encode_oct(v: f32) -> f32 {
    let (u, i) = octave_split(max_or(v, ENCODE_FLOOR));
    let p = horner(&MANTISSA_POW, u).mul_add(OCTAVE_POW[i], -0.055);
    if v <= ENCODE_KNEE {
        12.92 * v
    } else {
        p
    }
}

/// [`encode_oct`] on planar linear RGB in place.
#[inline(always)]
pub fn encode_planes_oct(rgb: &mut Planes) {
    #[cfg(target_arch = "x86_64")]
    if super::x86::encode_planes_avx512(rgb) {
        return;
    }
    encode_planes(rgb, encode_oct);
}

/// Planar linear RGB in [0, 1] → interleaved sRGB samples (up to BLOCK pixels).
#[inline(always)]
pub fn encode_block<T: Sample>(rgb: &mut Planes, dst: &mut [T]) {
    encode_planes_oct(rgb);
    for (i, px) in dst.chunks_exact_mut(3).enumerate() {
        for c in 0..3 {
            px[c] = T::from_unit(rgb[c][i]);
        }
    }
}

#[inline(always)]
fn deinterleave(src: &[f32], planes: &mut Planes) {
    for (i, px) in src.chunks_exact(3).enumerate() {
        for c in 0..3 {
            planes[c][i] = px[c];
        }
    }
}

#[inline(always)]
fn interleave(planes: &Planes, dst: &mut [f32]) {
    for (i, px) in dst.chunks_exact_mut(3).enumerate() {
        for c in 0..3 {
            px[c] = planes[c][i];
        }
    }
}

/// Convert a chunk; false if it held NaN or infinity (checked here, in the
/// same pass, rather than in a pass of its own over the input).
#[inline(always)]
fn rgb_to_lab_chunk_imp<T: Sample>(k: &LabConsts, s: &[T], o: &mut [f32]) -> bool {
    let (mut rgb, mut lab) = ([[0.0; BLOCK]; 3], [[0.0; BLOCK]; 3]);
    let mut finite = true;
    for (sb, ob) in s.chunks(3 * BLOCK).zip(o.chunks_mut(3 * BLOCK)) {
        prefetch_ahead(sb);
        prefetch_ahead(ob);
        if T::FLOAT {
            finite &= sb.iter().fold(true, |acc, v| acc & v.is_finite());
        }
        decode_block(sb, &mut rgb);
        lab_from_linear_block(k, &rgb, &mut lab);
        interleave(&lab, ob);
    }
    finite
}

simd_dispatch!(fn rgb_to_lab_chunk<T: Sample>(k: &LabConsts, s: &[T], o: &mut [f32]) -> bool = rgb_to_lab_chunk_imp);

/// The largest |L|, |a| or |b| `lab_to_rgb` computes with: a colour with a value
/// past it is scaled down, all three values alike, until none is (colours there
/// are far outside the gamut and clip to the edges of the RGB cube). Below it no
/// f32 overflows: |f| <= 1e12 (1/116 + 1/500) ~ 1.1e10, f^3 ~ 1.3e30, and the
/// matrix's sums stay under 1e32. (It was 1e6, each value held on its own.)
const LAB_LIMIT: f32 = 1e12;

#[inline(always)]
fn lab_to_rgb_chunk_imp<T: Sample>(k: &LabConsts, s: &[f32], o: &mut [T]) {
    let (mut labp, mut rgb) = ([[0.0; BLOCK]; 3], [[0.0; BLOCK]; 3]);
    for (sb, ob) in s.chunks(3 * BLOCK).zip(o.chunks_mut(3 * BLOCK)) {
        prefetch_ahead(sb);
        prefetch_ahead(ob);
        deinterleave(sb, &mut labp);
        // scaled, all three alike, to at most LAB_LIMIT so f^3 cannot overflow (L =
        // 1e15 came out black: the matrix made inf - inf = NaN of it); one factor
        // keeps the colour's direction, which decides how it clips (each held on its
        // own, L 2e7 with b 1e6 came out yellow, not white)
        let [l, a, b] = &mut labp;
        for ((l, a), b) in l.iter_mut().zip(a.iter_mut()).zip(b.iter_mut()) {
            let scale = LAB_LIMIT / l.abs().max(a.abs()).max(b.abs()).max(LAB_LIMIT);
            (*l, *a, *b) = (*l * scale, *a * scale, *b * scale);
        }
        linear_from_lab_block(k, &labp, &mut rgb);
        encode_block(&mut rgb, ob);
    }
}

simd_dispatch!(fn lab_to_rgb_chunk<T: Sample>(k: &LabConsts, s: &[f32], o: &mut [T]) = lab_to_rgb_chunk_imp);

/// sRGB frames (`u8` or `f32` in [0, 1]; floats clamped) → Lab `f32`.
pub fn rgb_to_lab<T: Sample>(src: &[T], dims: Dims, out: &mut [f32]) -> Result<()> {
    dims.check("frames", src.len())?;
    dims.check("out", out.len())?;
    let k = LabConsts::new();
    if zip_chunks_all(src, 3, out, 3, CHUNK / 3, |s, o| rgb_to_lab_chunk(&k, s, o)) {
        Ok(())
    } else {
        Err(KernelError::NonFinite { arg: "frames" })
    }
}

/// Lab `f32` → sRGB frames (`u8` rounded to nearest, or `f32`), out-of-gamut
/// colours clipped per channel in linear RGB. NaN or infinity is refused.
pub fn lab_to_rgb<T: Sample>(lab: &[f32], dims: Dims, out: &mut [T]) -> Result<()> {
    dims.check("lab", lab.len())?;
    dims.check("out", out.len())?;
    check_finite("lab", lab)?;
    let k = LabConsts::new();
    zip_chunks(lab, 3, out, 3, CHUNK / 3, |s, o| lab_to_rgb_chunk(&k, s, o));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ref_lab<T: Sample>(px: [T; 3]) -> [f64; 3] {
        lab_from_linear_f64(px.map(|v| super::super::srgb::decode_f64(v.to_unit() as f64)))
    }

    #[test]
    fn cbrt_is_accurate() {
        let mut worst = 0.0f64;
        let mut t = EPSILON as f32;
        while t < 1.2 {
            let e = ((cbrt_fast(t) as f64) - (t as f64).cbrt()).abs() / (t as f64).cbrt();
            worst = worst.max(e);
            t *= 1.0001;
        }
        assert!(worst < 3e-7, "relative error {worst}");
    }

    /// Every fourth f32 in [0, 1] (2.7e8 values, in parallel; the test binary
    /// calls the C library's `fmaf`, so all of them would take a minute), and
    /// every f32 within 2^16 steps of the curve's segment boundary and of 1.
    #[test]
    fn encode_oct_is_within_2e6_everywhere() {
        use rayon::prelude::*;
        let err = |b: u32| {
            let x = f32::from_bits(b);
            (encode_oct(x) as f64 - super::super::srgb::encode_f64(x as f64)).abs()
        };
        let (knee, one) = (0.003_130_8f32.to_bits(), 1.0f32.to_bits());
        let worst = (0..=one / 4)
            .into_par_iter()
            .map(|q| 4 * q)
            .chain(knee - (1 << 16)..knee + (1 << 16))
            .chain(one - (1 << 16)..=one)
            .map(err)
            .reduce(|| 0.0, f64::max);
        assert!(worst < 2.5e-6, "encode error {worst}");
        assert_eq!(encode_oct(0.0), 0.0);
        assert_eq!(encode_oct(1.0), 1.0 - f32::EPSILON / 2.0);
    }

    #[test]
    fn octave_lab_is_close_to_exact_roots() {
        let k = LabConsts::new();
        let worst = |f: &dyn Fn(&Planes, &mut Planes)| {
            let (mut l, mut ab) = (0.0f32, 0.0f32);
            for m in [1usize, 7, 13, 29, 31, 37] {
                // every level of each channel somewhere, black, white and greys
                let rgb: Planes = [m, 3 * m + 1, 5 * m + 2]
                    .map(|s| std::array::from_fn(|i| ((i * s) % 64) as f32 / 63.0));
                let (mut a, mut b): (Planes, Planes) = ([[0.0; BLOCK]; 3], [[0.0; BLOCK]; 3]);
                lab_from_linear_block_steps::<2>(&k, &rgb, &mut a);
                f(&rgb, &mut b);
                for i in 0..BLOCK {
                    l = l.max((a[0][i] - b[0][i]).abs());
                    ab = ab.max((a[1][i] - b[1][i]).abs().max((a[2][i] - b[2][i]).abs()));
                }
            }
            (l, ab)
        };
        let (l, ab) = worst(&|rgb, lab| lab_from_linear_block(&k, rgb, lab));
        assert!(l < 6e-5 && ab < 5e-4, "octave: L {l}, a/b {ab}");
    }

    /// Both octave cube roots over their range [2^-7, 2^9), f32 rounding included.
    #[test]
    fn octave_cube_roots_are_accurate_over_their_range() {
        for (root, bound) in [(cbrt_oct as fn(f32) -> f32, 2e-6), (cbrt_oct6, 4e-7)] {
            let mut worst = 0.0f64;
            let mut t = 2.0f32.powi(-7);
            while t < 2.0f32.powi(9) {
                let e = ((root(t) as f64) - (t as f64).cbrt()).abs() / (t as f64).cbrt();
                worst = worst.max(e);
                t *= 1.00003;
            }
            assert!(worst < bound, "relative error {worst}, bound {bound}");
        }
    }

    #[test]
    fn lightness_block_is_close_to_lightness_fast() {
        // luminances from 0 through the linear segment's end to 1
        let ys: Vec<f32> = (0..=64 * 40).map(|i| (i as f32 / 2560.0).powi(3)).collect();
        let mut worst = 0.0f32;
        for chunk in ys.chunks(BLOCK) {
            let mut y = [0.0f32; BLOCK];
            y[..chunk.len()].copy_from_slice(chunk);
            let mut l = [0.0f32; BLOCK];
            lightness_block(&y, &mut l);
            for (y, l) in y.iter().zip(&l) {
                worst = worst.max((l - lightness_fast(*y)).abs());
                assert_eq!(l.to_bits(), lightness_oct(*y).to_bits());
            }
        }
        assert!(worst < 5e-4, "worst {worst}");
        let mut black = [0.0f32; BLOCK];
        lightness_block(&[0.0; BLOCK], &mut black);
        assert_eq!(black, [0.0; BLOCK]);
    }

    #[test]
    fn white_and_black() {
        let lab = lab_from_linear_f64([1.0, 1.0, 1.0]);
        assert!((lab[0] - 100.0).abs() < 1e-9 && lab[1].abs() < 1e-9 && lab[2].abs() < 1e-9);
        assert_eq!(lab_from_linear_f64([0.0; 3]), [0.0; 3]);
    }

    #[test]
    fn reference_round_trips() {
        for &c in &[[0.2, 0.5, 0.9], [1.0, 0.0, 0.0], [0.001, 0.002, 0.0]] {
            let back = linear_from_lab_f64(lab_from_linear_f64(c));
            for i in 0..3 {
                assert!((back[i] - c[i]).abs() < 1e-12);
            }
        }
    }

    /// Fast path vs the f64 reference at odd widths, so partial blocks are hit.
    #[test]
    fn fast_matches_reference_at_odd_widths() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(2, 3, w);
            let src: Vec<u8> = (0..dims.len())
                .map(|i| ((i * 97 + 13) % 256) as u8)
                .collect();
            let mut out = vec![0.0f32; dims.len()];
            rgb_to_lab(&src, dims, &mut out).unwrap();
            for (px, lab) in src.chunks(3).zip(out.chunks(3)) {
                let r = ref_lab([px[0], px[1], px[2]]);
                for c in 0..3 {
                    assert!(
                        (lab[c] as f64 - r[c]).abs() < 2e-3,
                        "w={w} {px:?}: {lab:?} vs {r:?}"
                    );
                }
            }
            let srcf: Vec<f32> = src.iter().map(|&v| v as f32 / 255.0 + 0.001).collect();
            rgb_to_lab(&srcf, dims, &mut out).unwrap();
            for (px, lab) in srcf.chunks(3).zip(out.chunks(3)) {
                let r = ref_lab([px[0], px[1], px[2]]);
                for c in 0..3 {
                    assert!(
                        (lab[c] as f64 - r[c]).abs() < 2e-3,
                        "w={w}: {lab:?} vs {r:?}"
                    );
                }
            }
            // and back, from these Lab values (f32, as rgb_to_lab made them): against
            // the f64 inverse, clipped in linear RGB as documented
            let mut back = vec![0u8; dims.len()];
            lab_to_rgb(&out, dims, &mut back).unwrap();
            let mut backf = vec![0.0f32; dims.len()];
            lab_to_rgb(&out, dims, &mut backf).unwrap();
            for ((lab, b8), bf) in out.chunks(3).zip(back.chunks(3)).zip(backf.chunks(3)) {
                let lin = linear_from_lab_f64([lab[0] as f64, lab[1] as f64, lab[2] as f64]);
                for c in 0..3 {
                    let want = super::super::srgb::encode_f64(lin[c].clamp(0.0, 1.0));
                    assert!(
                        (bf[c] as f64 - want).abs() < 1e-5,
                        "w={w} {lab:?}: {bf:?} vs {want}"
                    );
                    assert!(
                        (b8[c] as f64 - 255.0 * want).abs() <= 0.5 + 1e-3,
                        "w={w} {lab:?}: {b8:?} vs {}",
                        255.0 * want
                    );
                }
            }
        }
    }

    #[test]
    fn every_u8_colour_round_trips() {
        // all 2^24 colours as one 4096 x 4096 frame
        let dims = Dims::new(1, 4096, 4096);
        let src: Vec<u8> = (0..1u32 << 24)
            .flat_map(|c| [(c >> 16) as u8, (c >> 8) as u8, c as u8])
            .collect();
        let mut lab = vec![0.0f32; dims.len()];
        rgb_to_lab(&src, dims, &mut lab).unwrap();
        let mut back = vec![0u8; dims.len()];
        lab_to_rgb(&lab, dims, &mut back).unwrap();
        let bad = src.iter().zip(&back).filter(|(a, b)| a != b).count();
        assert_eq!(bad, 0, "{bad} samples differ after the round trip");
    }

    #[test]
    fn refuses_nan_and_bad_lengths() {
        let dims = Dims::new(1, 1, 2);
        let mut out = vec![0.0f32; 6];
        let src = [0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(
            rgb_to_lab(&src, dims, &mut out),
            Err(KernelError::NonFinite { arg: "frames" })
        );
        assert!(rgb_to_lab(&[0u8; 5], dims, &mut out).is_err());
        let mut o8 = [0u8; 6];
        assert!(lab_to_rgb(&[50.0, f32::INFINITY, 0.0, 0.0, 0.0, 0.0], dims, &mut o8).is_err());
    }

    #[test]
    fn out_of_gamut_is_clipped() {
        let dims = Dims::new(1, 1, 2);
        let lab = [100.0, 127.0, -127.0, -10.0, 0.0, 0.0];
        let mut o8 = [0u8; 6];
        lab_to_rgb(&lab, dims, &mut o8).unwrap();
        assert_eq!(&o8[3..], &[0, 0, 0]);
        assert_eq!(o8[0], 255);
    }
}
