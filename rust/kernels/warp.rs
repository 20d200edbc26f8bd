//! 2D affine warp of frames with bilinear sampling: the per-frame motion
//! (zoom, rotation, translation) applied to the loop's init image.
//!
//! `matrix` is the forward 2x3 transform in OpenCV's convention (as from
//! `cv2.getRotationMatrix2D`, pixel centres at integer coordinates); each
//! output pixel samples the source at the inverse transform of its position.
//! Outside the frame, `Border::Replicate` clamps to the edge and `Border::Wrap`
//! tiles the frame.

use rayon::prelude::*;

use super::error::{KernelError, Result};
use super::frames::{check_finite, Dims, Sample};
use super::parallel::install;

/// What lies outside the source frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    Replicate,
    Wrap,
}

impl Border {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "replicate" => Ok(Self::Replicate),
            "wrap" => Ok(Self::Wrap),
            _ => Err(KernelError::value(
                "border",
                format!("expected \"replicate\" or \"wrap\", got {name:?}"),
            )),
        }
    }

    #[inline(always)]
    fn index(self, i: i64, n: usize) -> usize {
        match self {
            Self::Replicate => i.clamp(0, n as i64 - 1) as usize,
            Self::Wrap => i.rem_euclid(n as i64) as usize,
        }
    }
}

/// The inverse of a forward 2x3 affine matrix, or an error if it is singular.
pub fn invert(m: &[f64]) -> Result<[f64; 6]> {
    let det = m[0] * m[4] - m[1] * m[3];
    if !det.is_finite() || det.abs() < 1e-12 {
        return Err(KernelError::value(
            "matrix",
            format!(
                "is not invertible (determinant {det:.3e}; its magnitude must be at least 1e-12)"
            ),
        ));
    }
    let (a, b, c, d) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    Ok([a, b, -(a * m[2] + b * m[5]), c, d, -(c * m[2] + d * m[5])])
}

/// The four neighbours of a sampling point and its fractional offsets.
#[derive(Clone, Copy)]
pub(super) struct Taps {
    i00: usize,
    i01: usize,
    i10: usize,
    i11: usize,
    fx: f32,
    fy: f32,
}

impl Taps {
    /// The taps of a point whose neighbours are columns `xa`, `xb` and rows
    /// `ya`, `yb` of a `w`-wide image, at fractions `fx`, `fy` past `xa`, `ya`.
    #[inline(always)]
    fn new(w: usize, (xa, xb): (usize, usize), (ya, yb): (usize, usize), fx: f32, fy: f32) -> Self {
        Self {
            i00: ya * w + xa,
            i01: ya * w + xb,
            i10: yb * w + xa,
            i11: yb * w + xb,
            fx,
            fy,
        }
    }

    /// Pixel indices (row-major) around `(sx, sy)` in an `h` x `w` image, edge replicated.
    /// (The flow kernel's rows work these out a block at a time; its tests hold them to
    /// this.)
    #[cfg(test)]
    pub(super) fn at(sx: f32, sy: f32, h: usize, w: usize) -> Self {
        // with the edge replicated, sampling outside the frame equals sampling at the
        // clamped point; clamped, the truncating cast is the floor (and a wild or NaN
        // coordinate cannot overflow it)
        let (sx, sy) = (sx.clamp(0.0, (w - 1) as f32), sy.clamp(0.0, (h - 1) as f32));
        let (xa, ya) = (sx as usize, sy as usize);
        let (xb, yb) = ((xa + 1).min(w - 1), (ya + 1).min(h - 1));
        Self::new(w, (xa, xb), (ya, yb), sx - xa as f32, sy - ya as f32)
    }

    /// Bilinear value of channel `c` of a `K`-channel image: finite for any finite
    /// samples (float frames are not clipped here, and `p01 - p00` of samples of
    /// opposite sign near `f32::MAX` overflowed, its infinity times a zero weight
    /// giving NaN where the exact value is finite).
    #[inline(always)]
    pub(super) fn sample<V: Sample, const K: usize>(&self, img: &[V], c: usize) -> f32 {
        let p = |i: usize| img[i * K + c].raw();
        let top = lerp(p(self.i00), p(self.i01), self.fx, V::FLOAT);
        let bot = lerp(p(self.i10), p(self.i11), self.fx, V::FLOAT);
        lerp(top, bot, self.fy, V::FLOAT)
    }
}

/// `a` to `b` at `t`, as [`Taps::sample`] mixes samples of a `float` type or 8-bit ones.
#[inline(always)]
pub(super) fn lerp(a: f32, b: f32, t: f32, float: bool) -> f32 {
    if float {
        // a convex mix cannot exceed its ends but by rounding, which the clamp takes back
        (a * (1.0 - t) + b * t).clamp(f32::MIN, f32::MAX)
    } else {
        a + (b - a) * t // (8-bit samples: nothing to overflow; as fast as before)
    }
}

/// Warp each frame by its matrix (`matrices` holds 6 values, or 6 per frame).
pub fn warp_affine<T: Sample>(
    src: &[T],
    dims: Dims,
    matrices: &[f64],
    border: Border,
    out: &mut [T],
) -> Result<()> {
    dims.check("frames", src.len())?;
    dims.check("out", out.len())?;
    if matrices.len() != 6 && matrices.len() != 6 * dims.n {
        return Err(KernelError::shape(
            "matrix",
            format!("one 2x3 matrix or {} (one per frame)", dims.n),
            format!("{} values", matrices.len()),
        ));
    }
    if matrices.iter().any(|v| !v.is_finite()) {
        return Err(KernelError::NonFinite { arg: "matrix" });
    }
    check_finite("frames", src)?;
    let inverses: Vec<[f64; 6]> = matrices.chunks(6).map(invert).collect::<Result<_>>()?;
    let (h, w) = (dims.h, dims.w);
    // the largest |source coordinate| over the frame, bounded term by term: finite, no
    // point's sum overflows (m = [[2e-312, 0, 0], [0, 1e300, 0]] inverts to 5e311,
    // whose inf * 0 gave NaN coordinates and frames of NaN)
    let reach = |r: &[f64]| r[0].abs() * (w - 1) as f64 + r[1].abs() * (h - 1) as f64 + r[2].abs();
    if inverses
        .iter()
        .any(|m| !(reach(&m[..3]).is_finite() && reach(&m[3..]).is_finite()))
    {
        return Err(KernelError::value(
            "matrix",
            "maps the frame from coordinates beyond float64's range (its inverse is too large)",
        ));
    }
    let fl = dims.frame_len();
    install(|| {
        out.par_chunks_mut(w * 3).enumerate().for_each(|(row, o)| {
            let f = row / h;
            let y = (row % h) as f64;
            let m = &inverses[if inverses.len() == 1 { 0 } else { f }];
            let frame = &src[f * fl..(f + 1) * fl];
            for (x, px) in o.chunks_exact_mut(3).enumerate() {
                let sx = m[0] * x as f64 + m[1] * y + m[2];
                let sy = m[3] * x as f64 + m[4] * y + m[5];
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
                // (a coordinate past 2^63 saturates to i64::MAX: + 1 would overflow)
                let (xi, yi) = (x0 as i64, y0 as i64);
                let cols = (border.index(xi, w), border.index(xi.saturating_add(1), w));
                let rows = (border.index(yi, h), border.index(yi.saturating_add(1), h));
                let taps = Taps::new(w, cols, rows, fx, fy);
                for (c, p) in px.iter_mut().enumerate() {
                    *p = T::from_raw_round(taps.sample::<T, 3>(frame, c));
                }
            }
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(d: Dims) -> Vec<u8> {
        (0..d.len())
            .map(|i| ((i * 37 + i / 7) % 256) as u8)
            .collect()
    }

    #[test]
    fn identity_and_integer_shift() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let d = Dims::new(1, 5, w);
            let src = frame(d);
            let mut out = vec![0u8; d.len()];
            warp_affine(
                &src,
                d,
                &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                Border::Replicate,
                &mut out,
            )
            .unwrap();
            assert_eq!(out, src);
            // shift right by one with wrap: out(x) = src(x - 1)
            warp_affine(
                &src,
                d,
                &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
                Border::Wrap,
                &mut out,
            )
            .unwrap();
            for y in 0..5 {
                for x in 0..w {
                    let sx = (x + w - 1) % w;
                    assert_eq!(
                        &out[(y * w + x) * 3..(y * w + x) * 3 + 3],
                        &src[(y * w + sx) * 3..(y * w + sx) * 3 + 3]
                    );
                }
            }
        }
    }

    #[test]
    fn bilinear_matches_f64_reference() {
        let d = Dims::new(1, 9, 17);
        let src = frame(d);
        let m = [0.9, 0.2, 1.3, -0.15, 1.1, -0.7];
        let mut out = vec![0u8; d.len()];
        warp_affine(&src, d, &m, Border::Replicate, &mut out).unwrap();
        let inv = invert(&m).unwrap();
        for y in 0..9 {
            for x in 0..17 {
                let sx = inv[0] * x as f64 + inv[1] * y as f64 + inv[2];
                let sy = inv[3] * x as f64 + inv[4] * y as f64 + inv[5];
                let (x0, y0) = (sx.floor(), sy.floor());
                let cl = |v: f64, n: usize| v.clamp(0.0, n as f64 - 1.0) as usize;
                for c in 0..3 {
                    let p = |yy: f64, xx: f64| src[(cl(yy, 9) * 17 + cl(xx, 17)) * 3 + c] as f64;
                    let (fx, fy) = (sx - x0, sy - y0);
                    let top = p(y0, x0) * (1.0 - fx) + p(y0, x0 + 1.0) * fx;
                    let bot = p(y0 + 1.0, x0) * (1.0 - fx) + p(y0 + 1.0, x0 + 1.0) * fx;
                    let want = top * (1.0 - fy) + bot * fy;
                    assert!((out[(y * 17 + x) * 3 + c] as f64 - want).abs() <= 0.5 + 1e-3);
                }
            }
        }
    }

    #[test]
    fn refuses_singular_and_bad_counts() {
        let d = Dims::new(2, 2, 2);
        let mut out = vec![0u8; d.len()];
        let src = vec![0u8; d.len()];
        assert_eq!(
            warp_affine(&src, d, &[0.0; 6], Border::Wrap, &mut out)
                .unwrap_err()
                .arg(),
            "matrix"
        );
        assert_eq!(
            warp_affine(&src, d, &[1.0; 12 + 6], Border::Wrap, &mut out)
                .unwrap_err()
                .arg(),
            "matrix"
        );
        assert_eq!(Border::parse("mirror").unwrap_err().arg(), "border");
    }
}
