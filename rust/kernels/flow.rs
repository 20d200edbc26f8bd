//! In-between frames from a bidirectional optical flow: the per-pixel work of
//! the flow interpolator once the flows are known (Python computes them with
//! OpenCV's DIS), fused in one pass per output frame.
//!
//! With `F01` the flow from frame `a` to frame `b` and `F10` back:
//!
//! 1. visibility: a pixel of `a` is trusted as far as the flows agree there,
//!    `vis0(x) = exp(-(|F01(x) + F10(x + F01(x))| / sigma)^2)`, and `vis1`
//!    the same way round for `b`;
//! 2. for each time `t`, the flows from the in-between frame back to each end
//!    (the Super SloMo approximation) `Ft0 = -(1-t) t F01 + t^2 F10` and
//!    `Ft1 = (1-t)^2 F01 - t (1-t) F10`;
//! 3. `out(x) = (w0 a(x + Ft0) + w1 b(x + Ft1)) / (w0 + w1)` with
//!    `w0 = (1-t) (vis0(x + Ft0) + 1e-4)` and `w1 = t (vis1(x + Ft1) + 1e-4)`,
//!    rounded half up to 8 bits. The floor is inside the time weight: where
//!    neither frame is trusted (both visibilities near 0, as across a large
//!    move or a missed cut) the mix falls back to a cross-fade at `t`, where a
//!    floor added after it made every in-between an even mix.
//!
//! Every lookup is bilinear with the edge replicated (OpenCV's `remap` with
//! `INTER_LINEAR` and `BORDER_REPLICATE`, but with exact fractions where
//! `remap` rounds them to 1/32 pixel). Arithmetic is f32.

use rayon::prelude::*;

use super::error::{try_zeroed, KernelError, Result};
use super::frames::{max_or, min_or, Sample};
use super::gamma::exp2_nonpositive;
use super::parallel::install;
use super::simd::simd_dispatch;
use super::warp::lerp;

/// The largest flow component accepted, in pixels: far past any frame, and small
/// enough that the lookups' arithmetic on it cannot overflow f32.
pub const MAX_FLOW: f32 = 1e18;

/// The longest side the interpolator takes: its pixel positions are f32, whole numbers
/// exact up to 2^24.
pub const MAX_SIDE: usize = 1 << 24;

/// What every row of the kernel reads.
struct Ctx<'a, T> {
    a: &'a [T],
    b: &'a [T],
    f01: &'a [f32],
    f10: &'a [f32],
    h: usize,
    w: usize,
}

impl<T> Ctx<'_, T> {
    /// The flow out of a frame and the one back into it: `a`'s (`forward`) or `b`'s.
    fn directions(&self, forward: bool) -> (&[f32], &[f32]) {
        if forward {
            (self.f01, self.f10)
        } else {
            (self.f10, self.f01)
        }
    }
}

/// Pixels one step of [`blend_row_imp`] stages.
const BLOCK: usize = 16;

/// Lane `j` of a block's taps at `(sx, sy)` in an `h` x `w` frame: the four neighbours'
/// indices and the fractions past the first, by `warp::Taps::at`'s clamp and floor in a
/// form that vectorises (the positions are finite: the flows are checked).
#[inline(always)]
fn put_taps(
    idx: &mut [[usize; BLOCK]; 4],
    frac: &mut [[f32; BLOCK]; 2],
    j: usize,
    (sx, sy): (f32, f32),
    w: usize,
    h: usize,
) {
    debug_assert!(w.max(h) <= MAX_SIDE && w.min(h) > 0);
    let sx = min_or(max_or(sx, 0.0), (w - 1) as f32);
    let sy = min_or(max_or(sy, 0.0), (h - 1) as f32);
    // SAFETY: the clamps give values in 0..=w-1 and 0..=h-1 (a NaN becomes 0), and
    // `flow_interpolate`, the only way in, refuses sides over MAX_SIDE (2^24), so each
    // fits a u32
    let (xa, ya) = unsafe {
        (
            sx.to_int_unchecked::<u32>() as usize,
            sy.to_int_unchecked::<u32>() as usize,
        )
    };
    let (xb, yb) = ((xa + 1).min(w - 1), (ya + 1).min(h - 1));
    frac[0][j] = sx - xa as f32;
    frac[1][j] = sy - ya as f32;
    idx[0][j] = ya * w + xa;
    idx[1][j] = ya * w + xb;
    idx[2][j] = yb * w + xa;
    idx[3][j] = yb * w + xb;
}

/// Lane `j`'s bilinear mix of its four samples `v`, as `warp::Taps::sample` mixes them.
#[inline(always)]
fn bilinear(v: &[[f32; BLOCK]; 4], frac: &[[f32; BLOCK]; 2], j: usize, float: bool) -> f32 {
    let top = lerp(v[0][j], v[1][j], frac[0][j], float);
    let bot = lerp(v[2][j], v[3][j], frac[0][j], float);
    lerp(top, bot, frac[1][j], float)
}

/// `e^x` for `x <= 0` (and -inf) in straight-line code that vectorises, where libm's
/// `expf` was a call per pixel (15% of a 1080p pair's native pass): the float gamma's
/// [`exp2_nonpositive`] of `x log2 e`. Relative error within 2e-7 + 1e-7 |x| (`log2 e`
/// and the product `x log2 e` are rounded: 4e-6 at -87); 0 gives 1 exactly; below about
/// -87.3 (2^-126) the result is 0, where libm gives subnormals. A visibility is used as
/// `v + 1e-4` in `f32`, in which anything under 4e-12 (`x` < -26) is already nothing.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    exp2_nonpositive(x * std::f32::consts::LOG2_E)
}

/// One row of `vis` for one direction: how well `fwd` at x and `back` at
/// x + fwd(x) cancel (`inv` = 1 / sigma). [`BLOCK`] pixels at a time, as
/// [`blend_row_imp`], with the operations of `warp::Taps` in their order.
#[inline(always)]
fn visibility_row_imp<T: Sample>(
    c: &Ctx<'_, T>,
    forward: bool,
    inv: f32,
    y: usize,
    row: &mut [f32],
) {
    let (fwd, back) = c.directions(forward);
    let (w, h) = (c.w, c.h);
    let yf = y as f32;
    let mut idx = [[0usize; BLOCK]; 4];
    let mut frac = [[0f32; BLOCK]; 2];
    let mut taps = [[[0f32; BLOCK]; 4]; 2];
    let mut moved = [[0f32; BLOCK]; 2];
    let mut e = [0f32; BLOCK];
    for x0 in (0..w).step_by(BLOCK) {
        let n = BLOCK.min(w - x0);
        let f = &fwd[2 * (y * w + x0)..2 * (y * w + x0 + n)];
        for j in 0..n {
            let (dx, dy) = (f[2 * j], f[2 * j + 1]);
            moved[0][j] = dx;
            moved[1][j] = dy;
            put_taps(
                &mut idx,
                &mut frac,
                j,
                ((x0 + j) as f32 + dx, yf + dy),
                w,
                h,
            );
        }
        for q in 0..4 {
            for j in 0..n {
                let i = idx[q][j];
                taps[0][q][j] = back[2 * i];
                taps[1][q][j] = back[2 * i + 1];
            }
        }
        for j in 0..BLOCK {
            let d = [0, 1].map(|k| (moved[k][j] + bilinear(&taps[k], &frac, j, true)) * inv);
            e[j] = -(d[0] * d[0] + d[1] * d[1]);
        }
        for (v, &e) in row[x0..x0 + n].iter_mut().zip(&e) {
            *v = exp_nonpositive(e);
        }
    }
}

simd_dispatch!(fn visibility_row<T: Sample>(c: &Ctx<'_, T>, forward: bool, inv: f32, y: usize, row: &mut [f32]) = visibility_row_imp);

/// One row `y` of the frame at time `t`, [`BLOCK`] pixels at a time: their taps are
/// worked out as vectors, their samples read into planes one pixel at a time, and the
/// mix is again vector arithmetic. Every value goes through the operations of
/// `warp::Taps::at` and `Taps::sample`, in their order, so the result is theirs.
#[inline(always)]
fn blend_row_imp<T: Sample>(c: &Ctx<'_, T>, vis: &[Vec<f32>; 2], t: f32, y: usize, o: &mut [T]) {
    let u = 1.0 - t;
    let (c0, c1) = (-u * t, t * t); // Ft0 = c0 F01 + c1 F10
    let (d0, d1) = (u * u, -t * u); // Ft1 = d0 F01 + d1 F10
    let (w, h) = (c.w, c.h);
    let yf = y as f32;
    // per tap (to `a` at Ft0, to `b` at Ft1): the four neighbours' indices, the fractions
    let mut idx = [[[0usize; BLOCK]; 4]; 2];
    let mut frac = [[[0f32; BLOCK]; 2]; 2];
    // the samples: the visibilities' four neighbours, and each channel's
    let mut vs = [[[0f32; BLOCK]; 4]; 2];
    let mut px = [[[[0f32; BLOCK]; 4]; 3]; 2];
    let mut mixed = [[0f32; BLOCK]; 3];
    for x0 in (0..w).step_by(BLOCK) {
        let n = BLOCK.min(w - x0);
        let at = y * w + x0;
        let (f01, f10) = (&c.f01[2 * at..2 * (at + n)], &c.f10[2 * at..2 * (at + n)]);
        for (k, (e0, e1)) in [(c0, c1), (d0, d1)].into_iter().enumerate() {
            for j in 0..n {
                let (ax, ay, bx, by) = (f01[2 * j], f01[2 * j + 1], f10[2 * j], f10[2 * j + 1]);
                let pos = ((x0 + j) as f32 + e0 * ax + e1 * bx, yf + e0 * ay + e1 * by);
                put_taps(&mut idx[k], &mut frac[k], j, pos, w, h);
            }
        }
        for (k, img) in [c.a, c.b].into_iter().enumerate() {
            for q in 0..4 {
                for j in 0..n {
                    let i = idx[k][q][j];
                    vs[k][q][j] = vis[k][i];
                    for ch in 0..3 {
                        px[k][ch][q][j] = img[3 * i + ch].raw();
                    }
                }
            }
        }
        for j in 0..BLOCK {
            let w0 = u * (bilinear(&vs[0], &frac[0], j, true) + 1e-4);
            let w1 = t * (bilinear(&vs[1], &frac[1], j, true) + 1e-4);
            let norm = 1.0 / (w0 + w1);
            for (ch, m) in mixed.iter_mut().enumerate() {
                let sa = bilinear(&px[0][ch], &frac[0], j, T::FLOAT);
                let sb = bilinear(&px[1][ch], &frac[1], j, T::FLOAT);
                m[j] = (w0 * sa + w1 * sb) * norm;
            }
        }
        for (j, q) in o[3 * x0..3 * (x0 + n)].chunks_exact_mut(3).enumerate() {
            for (ch, v) in q.iter_mut().enumerate() {
                *v = T::from_raw_round(mixed[ch][j]);
            }
        }
    }
}

simd_dispatch!(fn blend_row<T: Sample>(c: &Ctx<'_, T>, vis: &[Vec<f32>; 2], t: f32, y: usize, o: &mut [T]) = blend_row_imp);

/// Whether every value of `v` is within ±[`MAX_FLOW`] (so finite: NaN fails the
/// comparison). Branch-free within blocks of 4096 values, so it vectorises: the two
/// early-exit scans it replaces (`any`, one for non-finite values and one for the
/// bound) ran a value at a time, 12 ms of a 1080p pair's native pass, on one thread.
fn flows_within(v: &[f32]) -> bool {
    v.chunks(4096)
        .all(|c| c.iter().fold(true, |ok, x| ok & (x.abs() <= MAX_FLOW)))
}

/// Interpolate frames at `ts` between `a` and `b` (each `h * w * 3` samples)
/// from the flows `f01` and `f10` (each `h * w * 2`, x then y); `out` holds
/// `ts.len()` frames. 8-bit frames are rounded half up.
#[allow(clippy::too_many_arguments)]
pub fn flow_interpolate<T: Sample>(
    a: &[T],
    b: &[T],
    h: usize,
    w: usize,
    f01: &[f32],
    f10: &[f32],
    ts: &[f64],
    sigma: f64,
    out: &mut [T],
) -> Result<()> {
    let px = h * w;
    if px == 0 {
        return Err(KernelError::value("frames", "must not be empty"));
    }
    if h.max(w) > MAX_SIDE {
        // positions are f32, exact to 2^24: past it a pixel read its neighbour's colour,
        // or the row after's (and past the last row, a panic)
        return Err(KernelError::value(
            "frames",
            format!("the flow interpolator takes sides of at most {MAX_SIDE} pixels; got {h}x{w}"),
        ));
    }
    for (arg, len, want) in [
        ("a", a.len(), 3 * px),
        ("b", b.len(), 3 * px),
        ("flows", f01.len(), 2 * px),
        ("flows", f10.len(), 2 * px),
        ("out", out.len(), 3 * px * ts.len()),
    ] {
        if len != want {
            return Err(KernelError::shape(
                arg,
                format!("{want} values"),
                format!("{len}"),
            ));
        }
    }
    // a flow past any frame's size moves nothing further (the taps are clamped to the
    // frame), and two neighbours near f32::MAX overflowed the bilinear sample's
    // difference: NaN visibilities, black pixels
    if !(flows_within(f01) && flows_within(f10)) {
        if f01.iter().chain(f10).any(|v| !v.is_finite()) {
            return Err(KernelError::NonFinite { arg: "flows" });
        }
        return Err(KernelError::value(
            "flows",
            format!("must each be within ±{MAX_FLOW:e} pixels"),
        ));
    }
    if let Some(t) = ts.iter().find(|t| !(**t > 0.0 && **t < 1.0)) {
        return Err(KernelError::value(
            "timesteps",
            format!("must each be in (0, 1), got {t}"),
        ));
    }
    // its inverse is taken in f32: under about 3e-39 that is infinite, and every
    // visibility NaN (the frames came out black)
    if !(sigma.is_finite() && sigma > 0.0 && ((1.0 / sigma) as f32).is_finite()) {
        return Err(KernelError::value(
            "sigma",
            format!("must be a positive number of at least 1e-38, got {sigma}"),
        ));
    }
    let c = Ctx {
        a,
        b,
        f01,
        f10,
        h,
        w,
    };
    let inv = (1.0 / sigma) as f32;
    let mut vis = [
        try_zeroed::<f32>(px, "frames")?,
        try_zeroed::<f32>(px, "frames")?,
    ];
    install(|| {
        for (v, forward) in vis.iter_mut().zip([true, false]) {
            v.par_chunks_mut(w)
                .enumerate()
                .for_each(|(y, row)| visibility_row(&c, forward, inv, y, row));
        }
        out.par_chunks_mut(3 * w).enumerate().for_each(|(row, o)| {
            blend_row(&c, &vis, ts[row / h] as f32, row % h, o);
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::warp::Taps;
    use super::*;

    fn image(h: usize, w: usize, seed: usize) -> Vec<u8> {
        (0..h * w * 3)
            .map(|i| ((i * 37 + i / 7 + seed * 11) % 256) as u8)
            .collect()
    }

    /// The visibility's exp against f64's, over its whole range and its ends.
    #[test]
    fn exp_nonpositive_is_close_to_exp() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        for x in [f32::NEG_INFINITY, -1e30, -104.0, -88.0] {
            assert_eq!(exp_nonpositive(x), 0.0, "{x}");
        }
        let mut worst = (0.0f64, 0.0f32);
        let mut x = -87.0f32;
        while x < 0.0 {
            let want = (x as f64).exp();
            let rel = ((exp_nonpositive(x) as f64 - want) / want).abs();
            let bound = 2e-7 + 1e-7 * (x as f64).abs();
            assert!(
                rel < bound,
                "{x}: {} vs {want} ({rel:e})",
                exp_nonpositive(x)
            );
            if rel > worst.0 {
                worst = (rel, x);
            }
            x = f32::from_bits(x.to_bits() - 997); // about 900,000 values, toward 0
        }
        assert!(worst.0 > 0.0);
    }

    /// The whole computation in f64 with its own bilinear sampler.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        a: &[u8],
        b: &[u8],
        h: usize,
        w: usize,
        f01: &[f32],
        f10: &[f32],
        t: f64,
        sigma: f64,
    ) -> Vec<f64> {
        let bil = |img: &dyn Fn(usize, usize) -> f64, sx: f64, sy: f64| {
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let cx = |v: f64| v.clamp(0.0, w as f64 - 1.0) as usize;
            let cy = |v: f64| v.clamp(0.0, h as f64 - 1.0) as usize;
            let top = img(cy(y0), cx(x0)) * (1.0 - fx) + img(cy(y0), cx(x0 + 1.0)) * fx;
            let bot = img(cy(y0 + 1.0), cx(x0)) * (1.0 - fx) + img(cy(y0 + 1.0), cx(x0 + 1.0)) * fx;
            top * (1.0 - fy) + bot * fy
        };
        let vis = |fwd: &[f32], back: &[f32], y: usize, x: usize| {
            let (dx, dy) = (fwd[2 * (y * w + x)] as f64, fwd[2 * (y * w + x) + 1] as f64);
            let (sx, sy) = (x as f64 + dx, y as f64 + dy);
            let ex = dx + bil(&|yy, xx| back[2 * (yy * w + xx)] as f64, sx, sy);
            let ey = dy + bil(&|yy, xx| back[2 * (yy * w + xx) + 1] as f64, sx, sy);
            (-(ex * ex + ey * ey) / (sigma * sigma)).exp()
        };
        let mut out = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let (f0, f1) = (
                    [f01[2 * i] as f64, f01[2 * i + 1] as f64],
                    [f10[2 * i] as f64, f10[2 * i + 1] as f64],
                );
                let ft0 = [0, 1].map(|k| -(1.0 - t) * t * f0[k] + t * t * f1[k]);
                let ft1 = [0, 1].map(|k| (1.0 - t) * (1.0 - t) * f0[k] - t * (1.0 - t) * f1[k]);
                let (p0, p1) = (
                    (x as f64 + ft0[0], y as f64 + ft0[1]),
                    (x as f64 + ft1[0], y as f64 + ft1[1]),
                );
                let w0 = (1.0 - t) * (bil(&|yy, xx| vis(f01, f10, yy, xx), p0.0, p0.1) + 1e-4);
                let w1 = t * (bil(&|yy, xx| vis(f10, f01, yy, xx), p1.0, p1.1) + 1e-4);
                for c in 0..3 {
                    let va = bil(&|yy, xx| a[(yy * w + xx) * 3 + c] as f64, p0.0, p0.1);
                    let vb = bil(&|yy, xx| b[(yy * w + xx) * 3 + c] as f64, p1.0, p1.1);
                    out.push((w0 * va + w1 * vb) / (w0 + w1));
                }
            }
        }
        out
    }

    /// The kernel's row as it was written first, one pixel at a time through
    /// [`Taps`]: the blocked row must give the same bits.
    fn blend_row_pixelwise<T: Sample>(
        c: &Ctx<'_, T>,
        vis: &[Vec<f32>; 2],
        t: f32,
        y: usize,
        o: &mut [T],
    ) {
        let u = 1.0 - t;
        let (c0, c1) = (-u * t, t * t);
        let (d0, d1) = (u * u, -t * u);
        let yf = y as f32;
        for (x, q) in o.chunks_exact_mut(3).enumerate() {
            let i = y * c.w + x;
            let (ax, ay) = (c.f01[2 * i], c.f01[2 * i + 1]);
            let (bx, by) = (c.f10[2 * i], c.f10[2 * i + 1]);
            let xf = x as f32;
            let t0 = Taps::at(xf + c0 * ax + c1 * bx, yf + c0 * ay + c1 * by, c.h, c.w);
            let t1 = Taps::at(xf + d0 * ax + d1 * bx, yf + d0 * ay + d1 * by, c.h, c.w);
            let w0 = u * (t0.sample::<f32, 1>(&vis[0], 0) + 1e-4);
            let w1 = t * (t1.sample::<f32, 1>(&vis[1], 0) + 1e-4);
            let norm = 1.0 / (w0 + w1);
            for (ch, v) in q.iter_mut().enumerate() {
                let mix =
                    (w0 * t0.sample::<T, 3>(c.a, ch) + w1 * t1.sample::<T, 3>(c.b, ch)) * norm;
                *v = T::from_raw_round(mix);
            }
        }
    }

    /// [`visibility_row_imp`] as it was written first, one pixel at a time, for the
    /// flow `fwd` out of a frame and `back` into it.
    fn visibility_row_pixelwise<T: Sample>(
        c: &Ctx<'_, T>,
        flows: [&[f32]; 2],
        inv: f32,
        y: usize,
        row: &mut [f32],
    ) {
        let [fwd, back] = flows;
        for (x, v) in row.iter_mut().enumerate() {
            let i = y * c.w + x;
            let (dx, dy) = (fwd[2 * i], fwd[2 * i + 1]);
            let t = Taps::at(x as f32 + dx, y as f32 + dy, c.h, c.w);
            let (ex, ey) = (
                (dx + t.sample::<f32, 2>(back, 0)) * inv,
                (dy + t.sample::<f32, 2>(back, 1)) * inv,
            );
            *v = exp_nonpositive(-(ex * ex + ey * ey));
        }
    }

    fn same_as_pixelwise<T: Sample + PartialEq + std::fmt::Debug>(
        a: &[T],
        b: &[T],
        h: usize,
        w: usize,
        flows: (&[f32], &[f32]),
    ) {
        let c = Ctx {
            a,
            b,
            f01: flows.0,
            f10: flows.1,
            h,
            w,
        };
        let vis: [Vec<f32>; 2] = [0.37f32, 0.71].map(|k| {
            (0..h * w)
                .map(|i| (i as f32 * k).sin() * 0.5 + 0.5)
                .collect()
        });
        for y in 0..h {
            for (forward, inv) in [(true, 0.7f32), (false, 1.3)] {
                let mut got = vec![0f32; w];
                let mut want = got.clone();
                visibility_row(&c, forward, inv, y, &mut got);
                let flows = if forward {
                    [flows.0, flows.1]
                } else {
                    [flows.1, flows.0]
                };
                visibility_row_pixelwise(&c, flows, inv, y, &mut want);
                assert_eq!(got, want, "h={h} w={w} y={y} forward={forward}");
            }
        }
        for t in [0.013f32, 0.25, 0.5, 0.9] {
            for y in 0..h {
                let mut got = vec![a[0]; 3 * w];
                let mut want = got.clone();
                blend_row(&c, &vis, t, y, &mut got);
                blend_row_pixelwise(&c, &vis, t, y, &mut want);
                assert_eq!(got, want, "h={h} w={w} t={t} y={y}");
            }
        }
    }

    #[test]
    fn blocked_rows_give_the_pixelwise_bits() {
        for &w in &[1usize, 7, 9, 15, 16, 17, 33, 65] {
            let h = 5;
            let (a, b) = (image(h, w, 1), image(h, w, 2));
            let af: Vec<f32> = a.iter().map(|&v| v as f32 / 255.0 - 0.1).collect();
            let bf: Vec<f32> = b.iter().map(|&v| v as f32 * 1e30).collect();
            let f01: Vec<f32> = (0..h * w * 2)
                .map(|i| ((i * 7919 % 97) as f32 - 48.0) * 0.173)
                .collect();
            let f10: Vec<f32> = (0..h * w * 2)
                .map(|i| ((i * 104729 % 89) as f32 - 44.0) * 0.311)
                .collect();
            let wild: Vec<f32> = (0..h * w * 2)
                .map(|i| {
                    if i % 3 == 0 {
                        MAX_FLOW
                    } else {
                        -MAX_FLOW * 0.7
                    }
                })
                .collect();
            for flows in [(&f01[..], &f10[..]), (&wild[..], &f01[..])] {
                same_as_pixelwise(&a, &b, h, w, flows);
                same_as_pixelwise(&af, &bf, h, w, flows);
            }
        }
    }

    #[test]
    fn matches_f64_reference_at_odd_widths() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let h = 6;
            let (a, b) = (image(h, w, 1), image(h, w, 2));
            // smooth flows with some disagreement, reaching past the edges
            let f01: Vec<f32> = (0..h * w * 2)
                .map(|i| ((i % 13) as f32 - 6.0) * 0.37)
                .collect();
            let f10: Vec<f32> = f01
                .iter()
                .enumerate()
                .map(|(i, v)| -v + (i % 3) as f32 * 0.2)
                .collect();
            let ts = [0.25, 0.5, 0.8];
            let mut out = vec![0u8; ts.len() * h * w * 3];
            flow_interpolate(&a, &b, h, w, &f01, &f10, &ts, 1.5, &mut out).unwrap();
            for (k, &t) in ts.iter().enumerate() {
                let want = reference(&a, &b, h, w, &f01, &f10, t, 1.5);
                let got = &out[k * h * w * 3..(k + 1) * h * w * 3];
                for (g, r) in got.iter().zip(&want) {
                    assert!(
                        (*g as f64 - r).abs() <= 0.5 + 0.02,
                        "w={w} t={t}: got {g}, want {r}"
                    );
                }
            }
        }
    }

    /// Flows that never cancel (both visibilities 0): a cross-fade at `t`, not an even
    /// mix at every `t` (a review: the floor was added after the time weight).
    #[test]
    fn untrusted_flows_fall_back_to_a_cross_fade() {
        let (h, w) = (8, 8);
        let (a, b) = (vec![0u8; h * w * 3], vec![240u8; h * w * 3]);
        let fl = vec![5f32; h * w * 2];
        let ts = [0.1, 0.5, 0.9];
        let mut out = vec![0u8; ts.len() * h * w * 3];
        flow_interpolate(&a, &b, h, w, &fl, &fl, &ts, 1.5, &mut out).unwrap();
        for (k, &t) in ts.iter().enumerate() {
            let want = (240.0 * t).round() as u8;
            assert!(
                out[k * h * w * 3..(k + 1) * h * w * 3]
                    .iter()
                    .all(|&v| v == want),
                "t={t}"
            );
        }
    }

    #[test]
    fn zero_flow_is_a_cross_fade() {
        let (h, w) = (4, 5);
        let (a, b) = (image(h, w, 3), image(h, w, 4));
        let zero = vec![0f32; h * w * 2];
        let mut out = vec![0u8; h * w * 3];
        flow_interpolate(&a, &b, h, w, &zero, &zero, &[0.3], 1.0, &mut out).unwrap();
        for ((o, x), y) in out.iter().zip(&a).zip(&b) {
            let want = 0.7 * *x as f64 + 0.3 * *y as f64;
            assert!((*o as f64 - want).abs() <= 0.5 + 1e-3);
        }
    }

    #[test]
    fn huge_flows_blend_within_the_frames() {
        // neighbours of opposite sign, as large as allowed: every blend of a flat 100
        // and a flat 200 lies between them
        let (h, w) = (4, 5);
        let (a, b) = (vec![100u8; h * w * 3], vec![200u8; h * w * 3]);
        let zero = vec![0f32; h * w * 2];
        let wild: Vec<f32> = (0..h * w * 2)
            .map(|i| if i % 4 < 2 { MAX_FLOW } else { -MAX_FLOW })
            .collect();
        let mut out = vec![0u8; h * w * 3];
        for t in [0.25, 0.5, 0.75] {
            flow_interpolate(&a, &b, h, w, &zero, &wild, &[t], 1.0, &mut out).unwrap();
            assert!(
                out.iter().all(|&v| (100..=200).contains(&v)),
                "{t}: {out:?}"
            );
        }
        let over = vec![3e38f32; h * w * 2];
        let err = flow_interpolate(&a, &b, h, w, &zero, &over, &[0.5], 1.0, &mut out);
        assert_eq!(err.unwrap_err().arg(), "flows");
    }

    #[test]
    fn refuses_bad_arguments() {
        let (h, w) = (2, 3);
        let img = vec![0u8; h * w * 3];
        let fl = vec![0f32; h * w * 2];
        let nan = vec![f32::NAN; h * w * 2];
        // (b, f01, ts, sigma) -> the argument named
        type Case<'a> = (&'a [u8], &'a [f32], &'a [f64], f64, &'a str);
        let cases: [Case; 7] = [
            (&img, &fl, &[1.0], 1.0, "timesteps"),
            (&img, &fl, &[0.5], 0.0, "sigma"),
            (&img, &fl, &[0.5], 1e-39, "sigma"),
            (&img, &fl[1..], &[0.5], 1.0, "flows"),
            (&img, &nan, &[0.5], 1.0, "flows"),
            (&img[1..], &fl, &[0.5], 1.0, "b"),
            (&img, &fl, &[0.5, 0.6], 1.0, "out"),
        ];
        for (b, f01, ts, sigma, arg) in cases {
            let mut out = vec![0u8; h * w * 3];
            let err = flow_interpolate(&img, b, h, w, f01, &fl, ts, sigma, &mut out).unwrap_err();
            assert_eq!(err.arg(), arg);
        }
    }
}
