//! Gamma adjustment (scikit-image's `adjust_gamma` semantics) and gamma matching.
//!
//! `match_gamma` picks, per frame, the gamma `g` for which the frame's mean CIE
//! lightness after `adjust_gamma(frame, g)` equals the reference's mean
//! lightness. Mean L* falls monotonically as `g` grows, so the root is found by
//! the Illinois method on `ln g` in [1/32, 32]. Frames above [`MAX_SAMPLE`]
//! pixels are evaluated on one pixel of each of at most that many cells, at a
//! fixed pseudo-random place in the cell ([`SampleGrid`]), toward the target
//! less the sample's own error at gamma 1 ([`sampled_target`]); the
//! reference's mean is exact.
//! Special cases: a frame whose lightness gamma cannot change (all black and
//! white) gets 1; a target out of reach gets the nearest end of the range.

use super::error::{KernelError, Result};
use super::frames::{check_finite, check_frames_and_reference, max_or, min_or, Dims, Sample};
use super::lab::{lightness_block, RGB_TO_XYZ};
use super::parallel::{install, zip_chunks, CHUNK};
use super::srgb::{decode_poly, decode_table_u8};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

use super::simd::simd_dispatch;

/// Pixels the gamma solver looks at per frame, at most.
pub const MAX_SAMPLE: usize = 1 << 16;
/// Range of gammas `match_gamma` returns.
pub const GAMMA_RANGE: (f64, f64) = (1.0 / 32.0, 32.0);

/// Check a gamma list: one value or one per frame, each finite and positive.
pub fn check_gammas(arg: &'static str, gammas: &[f64], n: usize) -> Result<()> {
    if gammas.len() != 1 && gammas.len() != n {
        return Err(KernelError::shape(
            arg,
            format!("1 value or {n} values (one per frame)"),
            format!("{} values", gammas.len()),
        ));
    }
    if let Some(g) = gammas.iter().find(|g| !(g.is_finite() && **g > 0.0)) {
        return Err(KernelError::value(
            arg,
            format!("must be finite and > 0, got {g}"),
        ));
    }
    Ok(())
}

/// scikit-image's uint8 table: `min(rint(255 * (i/255)^g), 255)`.
pub fn gamma_table_u8(g: f64) -> [u8; 256] {
    std::array::from_fn(|i| {
        (255.0 * (i as f64 / 255.0).powf(g))
            .round_ties_even()
            .min(255.0) as u8
    })
}

/// `2^f` on [0, 1): fit of degree 6 (relative error 8e-8, f32 rounding included).
const EXP2: [f32; 7] = [
    1.0,
    0.693_146_94,
    0.240_230_5,
    0.055_480_43,
    0.009_684_58,
    0.001_238_782_2,
    0.000_218_775_05,
];
/// `2^y` for `y <= 0` in straight-line code that vectorises: `y` split into an integer,
/// put into the exponent bits, and [`EXP2`] of the fraction (relative error 8e-8 for
/// an exact `y`). Below -127 (and for -inf and NaN) `y` is taken as -127, and results
/// under 2^-126 come out 0; above 0 it is taken as 0 (a result of 1), so any `y` is
/// safe input.
#[inline(always)]
pub(crate) fn exp2_nonpositive(y: f32) -> f32 {
    // (the clamp to 0 leaves every y <= 0 as it is; one instruction a vector)
    let y = min_or(max_or(y, -127.0), 0.0);
    // y + 128 is in [1, 128], so truncation is floor. SAFETY: inside i32.
    let n = unsafe { (y + 128.0).to_int_unchecked::<i32>() } - 128;
    let f = y - n as f32;
    let c = &EXP2;
    let p = f.mul_add(
        f.mul_add(
            f.mul_add(
                f.mul_add(f.mul_add(f.mul_add(c[6], c[5]), c[4]), c[3]),
                c[2],
            ),
            c[1],
        ),
        c[0],
    );
    // n >= -127: 2^n as exponent bits (0 for -127, so those lanes give 0)
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// `2 / ln 2 / (2k + 1)`, k = 0..5: the series of `log2 m = (2 / ln 2) atanh(s)`.
const ATANH_LOG2: [f32; 5] = [2.885_39, 0.961_796_7, 0.577_078, 0.412_198_57, 0.320_598_9];

/// `x^g` for `x` in [0, 1] and `g` > 0 in straight-line code that vectorises, where
/// libm's `powf` is a call per sample (it was half the time of a float
/// `color_correct`). `2^(g log2 x)`: `x = 2^k m` with `m` in [√½, √2), `log2 m` from
/// the series of `(2 / ln 2) atanh(s)`, `s = (m - 1) / (m + 1)`, to five terms
/// (|s| <= 0.172: truncation 4e-10), then the power of two by [`exp2_nonpositive`].
/// Within 2e-7 of the exact power (absolute, 7e-8 measured over x and g); 0 and 1
/// map to themselves, and `g = 1` gives `x` exactly; subnormal `x` are scaled up
/// first. Results below 2^-126 come out 0.
#[inline(always)]
pub fn pow_unit(x: f32, g: f32) -> f32 {
    let tiny = x < f32::MIN_POSITIVE;
    let xs = if tiny {
        x * 18_446_744_073_709_551_616.0
    } else {
        x
    }; // 2^64
       // a floor keeps the lanes of x = 0 (and NaN) finite; they are replaced at the end
    let bits = max_or(xs, f32::MIN_POSITIVE).to_bits() as i32;
    // k such that m = xs / 2^k is in [√½, √2): exponent bits measured from √½'s
    let k = (bits - 0x3f35_04f3) >> 23;
    let m = f32::from_bits((bits - (k << 23)) as u32);
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let c = &ATANH_LOG2;
    let series = s2.mul_add(
        s2.mul_add(s2.mul_add(s2.mul_add(c[4], c[3]), c[2]), c[1]),
        c[0],
    );
    let e = (k - if tiny { 64 } else { 0 }) as f32;
    // g log2 x <= 0 for x <= 1 (results under 2^-126 come out 0: see exp2_nonpositive)
    let r = exp2_nonpositive(g * s.mul_add(series, e));
    if g == 1.0 {
        x // exactly (frames a gamma cannot move get 1, and must come back unchanged)
    } else if x > 0.0 {
        r
    } else {
        0.0
    }
}

/// A gamma as the `f32` the float paths raise samples to: never 0 (a gamma
/// below the smallest normal `f32`, 1e-50 say, rounded to 0 and turned black,
/// 0^0, into white) nor infinite.
pub fn to_f32_gamma(g: f64) -> f32 {
    (g as f32).clamp(f32::MIN_POSITIVE, f32::MAX)
}

/// `o = s^g` for float samples (clamped to [0, 1] first).
#[inline(always)]
fn pow_chunk_imp<T: Sample>(s: &[T], o: &mut [T], g: f32) {
    for (a, b) in s.iter().zip(o.iter_mut()) {
        *b = T::from_unit(pow_unit(a.to_unit(), g));
    }
}

simd_dispatch!(fn pow_chunk<T: Sample>(s: &[T], o: &mut [T], g: f32) = pow_chunk_imp);

/// Apply one gamma to interleaved samples, in place or from `src` to `out`.
fn apply<T: Sample>(src: &[T], out: &mut [T], g: f64) {
    if T::FLOAT {
        let g = to_f32_gamma(g);
        zip_chunks(src, 1, out, 1, CHUNK, |s, o| pow_chunk(s, o, g));
    } else {
        let lut = gamma_table_u8(g);
        zip_chunks(src, 1, out, 1, CHUNK, |s, o| {
            match (T::bytes(s), T::bytes_mut(o)) {
                // the table's byte itself, not a round trip through f32
                (Some(s), Some(o)) => {
                    #[cfg(target_arch = "x86_64")]
                    if super::x86::lut_bytes(s, o, &lut) {
                        return;
                    }
                    for (a, b) in s.iter().zip(o.iter_mut()) {
                        *b = lut[*a as usize];
                    }
                }
                _ => {
                    for (a, b) in s.iter().zip(o.iter_mut()) {
                        *b = T::from_raw_round(lut[a.code()] as f32);
                    }
                }
            }
        });
    }
}

/// `out = frames ** gamma` per frame (values as fractions of full scale).
pub fn adjust_gamma<T: Sample>(src: &[T], dims: Dims, gammas: &[f64], out: &mut [T]) -> Result<()> {
    dims.check("frames", src.len())?;
    dims.check("out", out.len())?;
    check_gammas("gamma", gammas, dims.n)?;
    check_finite("frames", src)?;
    let fl = dims.frame_len();
    for (i, (s, o)) in src.chunks(fl).zip(out.chunks_mut(fl)).enumerate() {
        apply(s, o, gammas[if gammas.len() == 1 { 0 } else { i }]);
    }
    Ok(())
}

/// Weights of linear R, G, B in relative luminance Y.
fn y_weights() -> [f32; 3] {
    RGB_TO_XYZ[1].map(|v| v as f32)
}

/// Mean CIE L* of each frame, over every pixel: [`mean_lightness_after`] at
/// gamma 1 (the solver's own evaluation) on pieces of the frame in parallel.
pub fn mean_lightness<T: Sample>(src: &[T], dims: Dims) -> Vec<f64> {
    src.chunks(dims.frame_len())
        .map(|frame| {
            let (px, _) = frame.as_chunks::<3>();
            let sum = |part: &[[T; 3]]| mean_lightness_after(part, 1.0) * part.len() as f64;
            let total = if px.len() <= CHUNK / 3 {
                sum(px)
            } else {
                install(|| px.par_chunks(CHUNK / 3).map(sum).sum::<f64>())
            };
            total / dims.frame_pixels() as f64
        })
        .collect()
}

/// The pixels the gamma is solved on: every pixel of a frame of at most
/// [`MAX_SAMPLE`] pixels; above that, the frame is cut into `s` x `s` cells (the
/// smallest `s` leaving at most [`MAX_SAMPLE`] cells; those on the right and
/// bottom edges may be smaller) and one pixel is picked in each, at a position
/// drawn from a fixed hash of the cell: the same picks for every frame of a
/// size, in no regular pattern. A regular grid (every `s`-th pixel of every
/// `s`-th row) read only one phase of a pattern of period `s` (scanlines,
/// dithering, halftone): a 512x512 frame whose odd rows were dark was seen at
/// the lightness of its even rows, and its gamma moved it away from the target
/// (18 L* below it). Picks are held sorted, in row-major order.
#[derive(Clone, Debug)]
pub struct SampleGrid {
    picks: Vec<usize>,
}

/// [`SampleGrid::shared`]'s cache: the last frame size's picks.
type LastGrid = Mutex<Option<(usize, usize, Arc<SampleGrid>)>>;
static LAST: LastGrid = Mutex::new(None);

/// A 64-bit mix of `x` (splitmix64's finaliser): the cell's draw.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `r` (32 random bits) scaled to `0..n` without a division.
fn below(r: u64, n: usize) -> usize {
    (((r & 0xFFFF_FFFF) * n as u64) >> 32) as usize
}

impl SampleGrid {
    pub fn new(h: usize, w: usize) -> Self {
        if h * w <= MAX_SAMPLE {
            return Self {
                picks: (0..h * w).collect(),
            };
        }
        let mut s = ((h * w) as f64 / MAX_SAMPLE as f64).sqrt().ceil().max(1.0) as usize;
        // a thin frame's rounding up can leave many more cells (1x300000 had 100000)
        while h.div_ceil(s) * w.div_ceil(s) > MAX_SAMPLE {
            s += 1;
        }
        let nx = w.div_ceil(s);
        let mut picks = Vec::with_capacity(h.div_ceil(s) * nx);
        let mut band: Vec<(usize, usize)> = Vec::with_capacity(nx);
        for (cy, y0) in (0..h).step_by(s).enumerate() {
            let bh = s.min(h - y0);
            band.clear();
            for (cx, x0) in (0..w).step_by(s).enumerate() {
                let r = mix((cy * nx + cx) as u64);
                band.push((below(r, bh), x0 + below(r >> 32, s.min(w - x0))));
            }
            // the band's picks row by row, left to right (already left to right)
            band.sort_by_key(|&(dy, _)| dy);
            picks.extend(band.iter().map(|&(dy, x)| (y0 + dy) * w + x));
        }
        Self { picks }
    }

    /// [`SampleGrid::new`], kept for the last frame size asked for: a video's
    /// frames are all one size, and drawing 65536 picks took 4% of a 1080p
    /// `color_correct`. The cache is only ever tried, never waited on, and not
    /// held while picks are drawn: a child forked while another thread held it
    /// would have waited forever (it draws its own picks instead).
    pub fn shared(h: usize, w: usize) -> Arc<Self> {
        if let Ok(last) = LAST.try_lock() {
            if let Some((lh, lw, g)) = &*last {
                if (*lh, *lw) == (h, w) {
                    return g.clone();
                }
            }
        }
        let g = Arc::new(Self::new(h, w));
        if let Ok(mut last) = LAST.try_lock() {
            *last = Some((h, w, g.clone()));
        }
        g
    }

    /// How many picks there are.
    pub fn count(&self) -> usize {
        self.picks.len()
    }

    /// How many picks come before pixel `p` (`p` up to the frame's pixel count).
    pub fn before(&self, p: usize) -> usize {
        self.picks.partition_point(|&q| q < p)
    }

    /// The picks among pixels `p0..p1`, in order.
    pub fn within(&self, p0: usize, p1: usize) -> impl Iterator<Item = usize> + '_ {
        self.picks[self.before(p0)..self.before(p1)].iter().copied()
    }

    /// All picks, in order.
    pub fn pixels(&self) -> impl Iterator<Item = usize> + '_ {
        self.picks.iter().copied()
    }
}

fn sample<T: Sample>(frame: &[T], h: usize, w: usize) -> Vec<[T; 3]> {
    SampleGrid::shared(h, w)
        .pixels()
        .map(|p| [frame[3 * p], frame[3 * p + 1], frame[3 * p + 2]])
        .collect()
}

const SAMPLE_BLOCK: usize = super::lab::BLOCK;

/// Mean L* of `pixels` after gamma `g`, computed as `adjust_gamma` then decodes:
/// 8-bit samples by table lookups, float ones by the power and the decode
/// polynomial over planar blocks; L* of each block of luminances is
/// straight-line code that vectorises. Float samples land within 3e-4 L* of
/// an f64 evaluation (2.6e-4 measured, on flat frames just above the knee).
#[inline(always)]
fn mean_lightness_after_imp<T: Sample>(pixels: &[[T; 3]], g: f64) -> f64 {
    let w = y_weights();
    let mut ys = [0.0f32; SAMPLE_BLOCK];
    // L* summed in eight f64 lanes across blocks: one running sum is a chain of
    // dependent additions, four cycles a pixel, which was most of an evaluation
    let mut lanes = [0.0f64; 8];
    let mut add_block = |ys: &[f32; SAMPLE_BLOCK], n: usize| {
        let mut ls = [0.0f32; SAMPLE_BLOCK];
        lightness_block(ys, &mut ls);
        let mut eights = ls[..n].chunks_exact(8);
        for e in &mut eights {
            for (a, &v) in lanes.iter_mut().zip(e) {
                *a += v as f64;
            }
        }
        for (a, &v) in lanes.iter_mut().zip(eights.remainder()) {
            *a += v as f64;
        }
    };
    if T::FLOAT {
        // the power as adjust_gamma raises it, then the sRGB decode, each in
        // straight-line code over a planar block, so both vectorise (an
        // interpolated table of the composite, read a sample at a time, took
        // 3 ns a sample and 1,025 f64 powers to build at each evaluation)
        let g32 = to_f32_gamma(g);
        let mut planes: super::lab::Planes = [[0.0; SAMPLE_BLOCK]; 3];
        for block in pixels.chunks(SAMPLE_BLOCK) {
            for (i, p) in block.iter().enumerate() {
                for (plane, v) in planes.iter_mut().zip(p) {
                    plane[i] = v.to_unit();
                }
            }
            for plane in planes.iter_mut() {
                if g32 != 1.0 {
                    for v in plane.iter_mut() {
                        *v = pow_unit(*v, g32);
                    }
                }
                for v in plane.iter_mut() {
                    *v = decode_poly(*v);
                }
            }
            for (i, y) in ys.iter_mut().enumerate() {
                *y = w[0] * planes[0][i] + w[1] * planes[1][i] + w[2] * planes[2][i];
            }
            add_block(&ys, block.len());
        }
    } else {
        let adj = gamma_table_u8(g);
        let dec = decode_table_u8();
        let after: [f32; 256] = std::array::from_fn(|i| dec[adj[i] as usize]);
        let lin: [[f32; 256]; 3] = std::array::from_fn(|c| after.map(|v| w[c] * v));
        #[cfg(target_arch = "x86_64")]
        let (table, mut planes): (_, super::lab::Planes) =
            (super::x86::ByteTable::new(&after), [[0.0; SAMPLE_BLOCK]; 3]);
        for block in pixels.chunks(SAMPLE_BLOCK) {
            // the same products and sums as the tables' below, 64 pixels a step
            #[cfg(target_arch = "x86_64")]
            if let Some(b) = T::bytes(block.as_flattened()) {
                if super::x86::planes_via_table(b, &table, &mut planes) {
                    for (i, y) in ys.iter_mut().enumerate() {
                        *y = w[0] * planes[0][i] + w[1] * planes[1][i] + w[2] * planes[2][i];
                    }
                    add_block(&ys, block.len());
                    continue;
                }
            }
            for (y, p) in ys.iter_mut().zip(block) {
                *y = lin[0][p[0].code()] + lin[1][p[1].code()] + lin[2][p[2].code()];
            }
            add_block(&ys, block.len());
        }
    }
    lanes.iter().sum::<f64>() / pixels.len() as f64
}

simd_dispatch!(fn mean_lightness_after<T: Sample>(pixels: &[[T; 3]], g: f64) -> f64 = mean_lightness_after_imp);

/// `exp(u)` kept inside [`GAMMA_RANGE`] (exp(ln 32) rounds to 32.000000000000014).
fn to_gamma(u: f64) -> f64 {
    u.exp().clamp(GAMMA_RANGE.0, GAMMA_RANGE.1)
}

/// The gamma that brings one frame's mean L* to `target` (see the module docs).
///
/// Secant steps from gamma 1 until the mean is within 0.005 L* of the target
/// or the root is bracketed, then the Illinois method; typically 3 to 6
/// evaluations (4.25 on average on the benchmark's photographs, where
/// stepping at least twice as far as the last move took 5.75; counted once
/// with a throwaway counter).
pub fn solve_gamma<T: Sample>(frame: &[T], h: usize, w: usize, target: f64) -> f64 {
    let px = sample(frame, h, w);
    if px.len() == h * w {
        return solve_gamma_on(&px, target);
    }
    let exact = mean_lightness(frame, Dims::new(1, h, w))[0];
    solve_gamma_on(&px, sampled_target(target, exact, &px))
}

/// The target a sample's mean L* is solved toward, so that the whole frame's
/// lands on `target`: `target` less the sample's error at gamma 1 (`exact`,
/// the whole frame's mean L*, less the sample's). A sample of 65,536 pixels
/// reads a 1080p photograph's mean 0.02-0.05 L* off, which is above the
/// solver's tolerance: matched to itself, such a frame got a gamma of 0.995,
/// which changed a third of its pixels and took its mean 0.05 L* away from the
/// target. Gamma moves the sample and the frame alike, so the error at gamma 1
/// holds near it.
pub fn sampled_target<T: Sample>(target: f64, exact: f64, px: &[[T; 3]]) -> f64 {
    target - (exact - mean_lightness_after(px, 1.0))
}

/// [`solve_gamma`] on the pixels a [`SampleGrid`] picks, already gathered.
pub fn solve_gamma_on<T: Sample>(px: &[[T; 3]], target: f64) -> f64 {
    // 0.005 L* is far below a visible step; 1e-4 in ln(gamma) is a 0.01% gamma.
    const TOL: f64 = 5e-3;
    let f = |u: f64| mean_lightness_after(px, u.exp()) - target;
    let (lo, hi) = (GAMMA_RANGE.0.ln(), GAMMA_RANGE.1.ln());
    let f0 = f(0.0);
    let (mut a, mut fa) = (0.0, f0);
    if fa.abs() < TOL {
        return 1.0;
    }
    // A frame gamma cannot move (only 0 and full-scale values) keeps gamma 1,
    // even when the target differs. Mean L* falls monotonically with gamma, so
    // such a frame never brackets the target: the search below walks to an end
    // of the range and returns 1 there, with no evaluations spent up front. (A
    // frame that gamma moves by less than TOL in all, but not by nothing, can
    // get a gamma whose mean lands within TOL of the target instead of 1; both
    // satisfy the rule.)
    // mean L* falls by roughly 40 per unit of ln(gamma) on mid-tone images
    let mut b = (fa / 40.0).clamp(lo, hi);
    let mut fb = f(b);
    let mut tries = 0;
    while fa * fb > 0.0 {
        if fb.abs() < TOL {
            return to_gamma(b);
        }
        tries += 1;
        let step = if fb != fa {
            -fb * (b - a) / (fb - fa)
        } else {
            0.0
        };
        // the secant's root where it lies ahead (it lands within TOL, or past the
        // root and brackets it tightly, or short of it, closer); where the secant
        // points back or nowhere, twice as far as the last move
        let next = b + if step * (b - a) > 0.0 {
            step
        } else {
            2.0 * (b - a)
        };
        let next = next.clamp(lo, hi);
        if next == b || tries > 30 {
            // at an end of the range without reaching the target: either gamma
            // cannot move this frame's lightness, or the target is out of reach
            return if (fb - f0).abs() < TOL {
                1.0
            } else {
                to_gamma(b)
            };
        }
        (a, fa, b, fb) = (b, fb, next, f(next));
    }
    // bracketed: Illinois
    let (mut a, mut fa, mut b, mut fb) = if a < b {
        (a, fa, b, fb)
    } else {
        (b, fb, a, fa)
    };
    let mut side = 0i8;
    for _ in 0..100 {
        let c = (a * fb - b * fa) / (fb - fa);
        let fc = f(c);
        if fc.abs() < TOL || (b - a) < 1e-4 {
            return to_gamma(c);
        }
        if fc > 0.0 {
            (a, fa) = (c, fc);
            if side == 1 {
                fb *= 0.5;
            }
            side = 1;
        } else {
            (b, fb) = (c, fc);
            if side == -1 {
                fa *= 0.5;
            }
            side = -1;
        }
    }
    to_gamma(0.5 * (a + b))
}

/// Per frame, the gamma that matches the frame's mean L* to the reference's,
/// applied; the gammas are written to `gammas_out`.
pub fn match_gamma<T: Sample>(
    src: &[T],
    dims: Dims,
    reference: &[T],
    rdims: Dims,
    out: &mut [T],
    gammas_out: &mut [f64],
) -> Result<()> {
    check_frames_and_reference(src, dims, "reference", reference, rdims, out, gammas_out)?;
    let targets = mean_lightness(reference, rdims);
    let fl = dims.frame_len();
    let solved: Vec<f64> = install(|| {
        src.par_chunks(fl)
            .enumerate()
            .map(|(i, frame)| {
                solve_gamma(
                    frame,
                    dims.h,
                    dims.w,
                    targets[if targets.len() == 1 { 0 } else { i }],
                )
            })
            .collect()
    });
    gammas_out.copy_from_slice(&solved);
    adjust_gamma(src, dims, &solved, out)
}

/// Apply `g` to a frame in place (used by the fused correction).
pub fn apply_in_place<T: Sample>(frame: &mut [T], g: f64) {
    if g == 1.0 {
        return;
    }
    let lut = (!T::FLOAT).then(|| gamma_table_u8(g));
    let gf = to_f32_gamma(g);
    let one = |chunk: &mut [T]| match &lut {
        Some(lut) => chunk
            .iter_mut()
            .for_each(|v| *v = T::from_raw_round(lut[v.code()] as f32)),
        None => chunk
            .iter_mut()
            .for_each(|v| *v = T::from_unit(pow_unit(v.to_unit(), gf))),
    };
    if frame.len() <= CHUNK {
        one(frame);
    } else {
        install(|| frame.par_chunks_mut(CHUNK).for_each(one));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::lab::lightness_oct;
    use crate::kernels::srgb::decode_f64;

    fn frame(dims: Dims, seed: usize) -> Vec<u8> {
        (0..dims.len())
            .map(|i| ((i * 31 + seed * 7) % 200 + 20) as u8)
            .collect()
    }

    #[test]
    fn pow_unit_is_within_2e7_of_the_exact_power() {
        let mut xs: Vec<f32> = vec![0.0, 1e-45, 1e-40, 1.1754942e-38, 1e-30, 1e-9, 0.5, 1.0];
        let mut x = 1e-7f32;
        while x < 1.0 {
            xs.push(x);
            xs.push(1.0 - x);
            x *= 1.013;
        }
        let gs = [1e-3, 1.0 / 32.0, 0.1, 0.45, 1.0, 2.2, 7.0, 32.0, 100.0];
        let (mut worst_abs, mut worst_rel) = (0.0f64, 0.0f64);
        for &g in &gs {
            for &x in &xs {
                let got = pow_unit(x, g as f32) as f64;
                let want = (x as f64).powf(g as f32 as f64);
                worst_abs = worst_abs.max((got - want).abs());
                if want > 1e-30 {
                    worst_rel = worst_rel.max((got - want).abs() / want);
                }
            }
        }
        assert!(worst_abs < 2e-7, "absolute error {worst_abs}");
        assert!(worst_rel < 2e-5, "relative error {worst_rel}");
        assert_eq!(pow_unit(0.0, 0.5), 0.0);
        assert_eq!(pow_unit(1.0, 0.5), 1.0);
        assert_eq!(pow_unit(1.0, 32.0), 1.0);
        assert!(xs.iter().all(|&x| pow_unit(x, 1.0) == x));
    }

    /// Any input is safe (from a review: `y` past about 2^31 was an unchecked float to
    /// int conversion out of range, and 128..2^31 gave garbage): above 0 it is 2^0.
    #[test]
    fn exp2_nonpositive_takes_any_input() {
        for y in [
            1e-30,
            0.5,
            127.5,
            128.0,
            129.0,
            200.0,
            1e9,
            3e9,
            f32::MAX,
            f32::INFINITY,
        ] {
            assert_eq!(exp2_nonpositive(y), 1.0, "{y}");
        }
        assert_eq!(exp2_nonpositive(0.0), 1.0);
        assert_eq!(exp2_nonpositive(-0.0), 1.0);
        assert_eq!(exp2_nonpositive(-1.0), 0.5);
        for y in [-126.5, -127.0, -1e9, f32::NEG_INFINITY, f32::NAN] {
            assert_eq!(exp2_nonpositive(y), 0.0, "{y}");
        }
    }

    #[test]
    fn table_matches_formula() {
        let t = gamma_table_u8(2.2);
        assert_eq!(t[0], 0);
        assert_eq!(t[255], 255);
        assert_eq!(t[128], (255.0 * (128.0f64 / 255.0).powf(2.2)).round() as u8);
    }

    #[test]
    fn adjust_at_odd_widths_matches_reference() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(2, 3, w);
            let src = frame(dims, w);
            let mut out = vec![0u8; dims.len()];
            adjust_gamma(&src, dims, &[0.7, 1.6], &mut out).unwrap();
            for (i, (a, b)) in src.iter().zip(&out).enumerate() {
                let g = if i < dims.frame_len() { 0.7 } else { 1.6 };
                let want = 255.0 * (*a as f64 / 255.0).powf(g);
                assert!((*b as f64 - want).abs() <= 0.5 + 1e-9);
            }
            let srcf: Vec<f32> = src.iter().map(|&v| v as f32 / 255.0).collect();
            let mut outf = vec![0f32; dims.len()];
            adjust_gamma(&srcf, dims, &[0.7], &mut outf).unwrap();
            for (a, b) in srcf.iter().zip(&outf) {
                assert!((*b as f64 - (*a as f64).powf(0.7)).abs() < 1e-6);
            }
        }
    }

    /// Mean L* of float pixels after gamma `g` in f64: the power of the f32 value
    /// to `g` as f32, the sRGB decode, Y, L*.
    fn mean_lightness_after_f64(px: &[[f32; 3]], g: f64) -> f64 {
        let g = to_f32_gamma(g) as f64;
        let sum: f64 = px
            .iter()
            .map(|p| {
                let y: f64 = (0..3)
                    .map(|c| RGB_TO_XYZ[1][c] * decode_f64((p[c].clamp(0.0, 1.0) as f64).powf(g)))
                    .sum();
                if y > 216.0 / 24389.0 {
                    116.0 * y.cbrt() - 16.0
                } else {
                    y * 24389.0 / 27.0
                }
            })
            .sum();
        sum / px.len() as f64
    }

    #[test]
    fn float_mean_lightness_after_matches_f64_reference() {
        // every decade from 1e-9 up, the sRGB decode's linear segment and its knee,
        // out-of-range values (clamped), at sizes that leave partial blocks
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32
        };
        for n in [1usize, 7, 63, 64, 65, 1000] {
            let px: Vec<[f32; 3]> = (0..n)
                .map(|i| match i % 4 {
                    0 => [next(), next(), next()],
                    1 => [next() * 0.05, next() * 0.05, next() * 0.05],
                    2 => [10f32.powi(-((i % 10) as i32)), 0.040_45, 1.5],
                    _ => [-0.25, next().powi(8), next()],
                })
                .collect();
            for g in [1.0 / 32.0, 0.3, 0.8, 1.0, 1.25, 2.2, 32.0] {
                let got = mean_lightness_after(&px, g);
                let want = mean_lightness_after_f64(&px, g);
                assert!((got - want).abs() < 3e-4, "n {n} g {g}: {got} vs {want}");
            }
        }
    }

    /// The match measured apart from the kernel's own f32 lightness: the f64 mean L*
    /// of the output reaches the reference's, on a frame solved whole and on one over
    /// 65,536 pixels (solved on a sample), and the output is the gamma's 8-bit table.
    #[test]
    fn match_reaches_the_target_lightness() {
        let mean_l_f64 = |d: &[u8]| {
            let l = |p: &[u8]| {
                let rgb = [p[0], p[1], p[2]].map(|v| decode_f64(v as f64 / 255.0));
                crate::kernels::lab::lab_from_linear_f64(rgb)[0]
            };
            d.chunks(3).map(l).sum::<f64>() / (d.len() / 3) as f64
        };
        for (h, w, bound) in [(64, 48, 0.01), (300, 301, 0.05)] {
            let dims = Dims::new(1, h, w);
            let src = frame(dims, 1);
            let darker: Vec<u8> = src.iter().map(|&v| (v as f64 * 0.6) as u8).collect();
            let mut out = vec![0u8; dims.len()];
            let mut g = [0.0];
            match_gamma(&src, dims, &darker, dims, &mut out, &mut g).unwrap();
            assert!(g[0] > 1.0);
            let table = gamma_table_u8(g[0]);
            assert!(out.iter().zip(&src).all(|(o, s)| *o == table[*s as usize]));
            let (got, want) = (mean_l_f64(&out), mean_l_f64(&darker));
            assert!((got - want).abs() < bound, "{h}x{w}: {got} vs {want}");
        }
    }

    #[test]
    fn match_to_itself_is_gamma_one() {
        let dims = Dims::new(1, 16, 16);
        let src = frame(dims, 3);
        let mut out = vec![0u8; dims.len()];
        let mut g = [0.0];
        match_gamma(&src, dims, &src, dims, &mut out, &mut g).unwrap();
        assert_eq!(g[0], 1.0);
        assert_eq!(src, out);
    }

    #[test]
    fn flat_black_frame_gets_one() {
        let dims = Dims::new(1, 4, 4);
        let src = vec![0u8; dims.len()];
        let reference = vec![128u8; dims.len()];
        let mut out = vec![0u8; dims.len()];
        let mut g = [0.0];
        match_gamma(&src, dims, &reference, dims, &mut out, &mut g).unwrap();
        assert_eq!(g[0], 1.0);
    }

    #[test]
    fn refuses_bad_gamma() {
        let dims = Dims::new(1, 1, 1);
        let mut out = [0u8; 3];
        for g in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                adjust_gamma(&[1u8, 2, 3], dims, &[g], &mut out)
                    .unwrap_err()
                    .arg(),
                "gamma"
            );
        }
    }

    /// `within` over any split into ranges yields the picks of `pixels` in
    /// order, and `before` counts them: what lets color_correct's pass one copy
    /// each chunk's picks into its own consecutive part of the sample.
    #[test]
    fn sample_grid_splits_into_consecutive_parts() {
        for (h, w) in [
            (1, 1),
            (3, 7),
            (300, 301),
            (720, 1280),
            (1080, 1920),
            (2000, 33),
            (1, 300_000), // one row: 100000 picks before
            (70_000, 1),
            (257, 255),
        ] {
            let g = SampleGrid::new(h, w);
            let all: Vec<usize> = g.pixels().collect();
            assert_eq!(all.len(), g.count());
            assert!(g.count() <= MAX_SAMPLE, "{h}x{w}: {}", g.count());
            assert!(all.windows(2).all(|p| p[0] < p[1]), "{h}x{w}: not in order");
            assert!(all.last().is_some_and(|&p| p < h * w));
            if h * w <= MAX_SAMPLE {
                assert_eq!(all, (0..h * w).collect::<Vec<_>>());
            } else {
                // one pick in each cell of the smallest side s with at most MAX_SAMPLE cells
                let s = (1..)
                    .find(|s| h.div_ceil(*s) * w.div_ceil(*s) <= MAX_SAMPLE)
                    .unwrap();
                let mut cells: Vec<usize> = all
                    .iter()
                    .map(|p| p / w / s * w.div_ceil(s) + p % w / s)
                    .collect();
                cells.sort_unstable();
                assert_eq!(
                    cells,
                    (0..h.div_ceil(s) * w.div_ceil(s)).collect::<Vec<_>>(),
                    "{h}x{w}"
                );
                // and not all at one place in their cells: every row and column offset is
                // taken by some pick where the cells are whole
                if s > 1 && h >= s && w >= s {
                    for axis in [0, 1] {
                        let offsets: std::collections::BTreeSet<usize> = all
                            .iter()
                            .map(|p| if axis == 0 { p / w % s } else { p % w % s })
                            .collect();
                        assert_eq!(offsets.len(), s, "{h}x{w}, axis {axis}");
                    }
                }
                assert_eq!(
                    SampleGrid::new(h, w).picks,
                    g.picks,
                    "the same picks every time"
                );
            }
            for step in [1, 5, 64, 16384, 100_003] {
                let mut got = Vec::new();
                for p0 in (0..h * w).step_by(step) {
                    let p1 = (p0 + step).min(h * w);
                    let part: Vec<usize> = g.within(p0, p1).collect();
                    assert_eq!(part.len(), g.before(p1) - g.before(p0), "{h}x{w} at {p0}");
                    got.extend(part);
                }
                assert_eq!(got, all, "{h}x{w} in steps of {step}");
            }
        }
    }

    /// The cache of picks is never waited on: a child forked while another
    /// thread held it would have waited forever (from a review: 1 child in
    /// 15-40 hung). Here the cache is held by this thread meanwhile.
    #[test]
    fn shared_picks_never_wait_for_their_cache() {
        let held = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send(SampleGrid::shared(300, 301).count()).ok();
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(20));
        drop(held);
        assert_eq!(
            got.expect("waited for the cache"),
            SampleGrid::new(300, 301).count()
        );
        // and with the cache free, the same picks (other tests may change it meanwhile)
        assert_eq!(
            SampleGrid::shared(300, 301).picks,
            SampleGrid::new(300, 301).picks
        );
    }

    /// The 8-bit mean L* (byte-plane lookups where the CPU has AVX-512 VBMI)
    /// equals the plain per-pixel table sums bit for bit, at every length
    /// around the 64-pixel steps.
    #[test]
    fn mean_lightness_u8_matches_plain_tables() {
        let mut r = 12345u64;
        let mut next = || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 56) as u8
        };
        let px: Vec<[u8; 3]> = (0..70_001).map(|_| [next(), next(), next()]).collect();
        let (w, dec) = (y_weights(), decode_table_u8());
        for g in [1.0 / 32.0, 0.4, 1.0, 1.7, 32.0] {
            let adj = gamma_table_u8(g);
            let lin = |v: u8, c: usize| w[c] * dec[adj[v as usize] as usize];
            for n in [1, 2, 63, 64, 65, 127, 128, 129, 1000, 70_001] {
                let mut sum = 0.0f64;
                for p in &px[..n] {
                    sum += lightness_oct(lin(p[0], 0) + lin(p[1], 1) + lin(p[2], 2)) as f64;
                }
                let got = mean_lightness_after(&px[..n], g);
                assert_eq!(
                    got.to_bits(),
                    (sum / n as f64).to_bits(),
                    "gamma {g}, {n} pixels"
                );
            }
        }
    }
}
