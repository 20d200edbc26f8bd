//! The LUMINOSITY blend mode: hue and saturation of one image, luminance of
//! another, as the `blendmodes` library (and the W3C compositing spec's
//! SetLum/ClipColor) computes it with Rec.601 weights.

use super::error::Result;
use super::frames::{check_finite, max_or, min_or, Dims, Sample};
use super::parallel::{zip2_chunks, CHUNK};
use super::simd::{prefetch_ahead, simd_dispatch};

pub const LUM_WEIGHTS: [f32; 3] = [0.299, 0.587, 0.114];

#[inline(always)]
pub fn lum(c: [f32; 3]) -> f32 {
    LUM_WEIGHTS[2].mul_add(c[2], LUM_WEIGHTS[1].mul_add(c[1], LUM_WEIGHTS[0] * c[0]))
}

/// SetLum(c, l) with ClipColor, on values in [0, 1].
#[inline(always)]
pub fn set_lum(c: [f32; 3], l: f32) -> [f32; 3] {
    clip_color(shift_lum(c, l))
}

/// SetLum's first half: `c` moved by the difference of `l` and its luminance,
/// which can leave [0, 1].
#[inline(always)]
pub fn shift_lum(c: [f32; 3], l: f32) -> [f32; 3] {
    let d = l - lum(c);
    c.map(|v| v + d)
}

#[inline(always)]
fn min3(c: [f32; 3]) -> f32 {
    min_or(min_or(c[0], c[1]), c[2])
}

#[inline(always)]
fn max3(c: [f32; 3]) -> f32 {
    max_or(max_or(c[0], c[1]), c[2])
}

/// Whether [`clip_color`] changes `c` (it returns `c` itself otherwise).
#[inline(always)]
pub fn needs_clip(c: [f32; 3]) -> bool {
    min3(c) < 0.0 || max3(c) > 1.0
}

/// ClipColor: bring a colour back into [0, 1] keeping its luminance.
#[inline(always)]
pub fn clip_color(c: [f32; 3]) -> [f32; 3] {
    let l = lum(c);
    let (n, x) = (min3(c), max3(c));
    // ClipColor scales the offsets from l by l / (l - n) when n < 0, then by
    // (1 - l) / (x - l) when x > 1; both at once is one scale by the product,
    // taken with a single division (the slow instruction on wide vectors).
    // Both denominators are >= 0; the max() only guards the all-equal case,
    // where the numerator is 0 as well.
    let (lo, hi) = (n < 0.0, x > 1.0);
    let (num_lo, den_lo) = if lo {
        (l, max_or(l - n, 1e-12))
    } else {
        (1.0, 1.0)
    };
    let (num_hi, den_hi) = if hi {
        (1.0 - l, max_or(x - l, 1e-12))
    } else {
        (1.0, 1.0)
    };
    let s = (num_lo * num_hi) / (den_lo * den_hi);
    c.map(|v| if lo || hi { l + (v - l) * s } else { v })
}

/// [`set_lum`] on planar colours `c` toward the luminances `l`: the shift for
/// every pixel, then ClipColor (a division per pixel, the slow instruction on
/// wide vectors) only where some pixel of the block left [0, 1]. Same values
/// as [`set_lum`] pixel by pixel.
#[inline(always)]
pub fn set_lum_block<const N: usize>(c: &mut [[f32; N]; 3], l: &[f32; N]) {
    let mut clip = false;
    for i in 0..N {
        let res = shift_lum([c[0][i], c[1][i], c[2][i]], l[i]);
        clip |= needs_clip(res);
        for k in 0..3 {
            c[k][i] = res[k];
        }
    }
    if clip {
        let [r, g, b] = c;
        for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
            [*r, *g, *b] = clip_color([*r, *g, *b]);
        }
    }
}

/// f64 reference of [`set_lum`].
pub fn set_lum_f64(c: [f64; 3], l: f64) -> [f64; 3] {
    let w = LUM_WEIGHTS.map(|v| v as f64);
    let lum = |c: [f64; 3]| w[0] * c[0] + w[1] * c[1] + w[2] * c[2];
    let d = l - lum(c);
    let mut c = c.map(|v| v + d);
    let l = lum(c);
    let n = c[0].min(c[1]).min(c[2]);
    let x = c[0].max(c[1]).max(c[2]);
    if n < 0.0 && l > n {
        c = c.map(|v| l + (v - l) * l / (l - n));
    }
    if x > 1.0 && x > l {
        c = c.map(|v| l + (v - l) * (1.0 - l) / (x - l));
    }
    c
}

const SPAN: usize = 64;

/// Blend a chunk, staged through planes of 64 pixels so SetLum vectorises.
#[inline(always)]
fn blend_chunk_imp<T: Sample>(color: &[T], luma: &[T], out: &mut [T]) {
    let mut c = [[0.0f32; SPAN]; 3];
    let mut l = [0.0f32; SPAN];
    for ((cb, lb), ob) in color
        .chunks(3 * SPAN)
        .zip(luma.chunks(3 * SPAN))
        .zip(out.chunks_mut(3 * SPAN))
    {
        prefetch_ahead(cb);
        prefetch_ahead(lb);
        prefetch_ahead(ob);
        for (i, (pc, pl)) in cb.chunks_exact(3).zip(lb.chunks_exact(3)).enumerate() {
            for k in 0..3 {
                c[k][i] = pc[k].to_unit();
            }
            l[i] = lum([pl[0].to_unit(), pl[1].to_unit(), pl[2].to_unit()]);
        }
        set_lum_block(&mut c, &l);
        for (i, po) in ob.chunks_exact_mut(3).enumerate() {
            for k in 0..3 {
                po[k] = T::from_unit(c[k][i]);
            }
        }
    }
}

simd_dispatch!(fn blend_chunk<T: Sample>(color: &[T], luma: &[T], out: &mut [T]) = blend_chunk_imp);

/// Blend pixel by pixel: hue and saturation from `color`, luminance from `luma`.
pub fn blend_luminosity<T: Sample>(
    color: &[T],
    luma: &[T],
    dims: Dims,
    out: &mut [T],
) -> Result<()> {
    dims.check("color", color.len())?;
    dims.check("luma", luma.len())?;
    dims.check("out", out.len())?;
    check_finite("color", color)?;
    check_finite("luma", luma)?;
    zip2_chunks(color, luma, 3, out, 3, CHUNK / 3, blend_chunk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block form skips ClipColor for blocks that stay in range; every
    /// pixel must still get exactly `set_lum`'s value, in blocks that clip,
    /// blocks that do not, and blocks where a single pixel does.
    #[test]
    fn set_lum_block_equals_set_lum() {
        let mut s = 12345u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut clipped = [0usize; 2];
        for case in 0..300 {
            // narrow colours near mid-grey with nearby targets stay in range;
            // one pixel of some of those blocks is pushed out of it
            let spread = if case % 3 == 0 { 1.0 } else { 0.2 };
            let mut c = [[0.0f32; 64]; 3];
            let mut l = [0.0f32; 64];
            for i in 0..64 {
                for plane in c.iter_mut() {
                    plane[i] = 0.5 + spread * (next() - 0.5);
                }
                l[i] = 0.5 + spread * (next() - 0.5);
            }
            if case % 3 == 1 {
                let i = (next() * 64.0) as usize;
                (c[0][i], c[1][i], c[2][i], l[i]) = (1.0, 0.0, 0.0, 0.9);
            }
            let want: Vec<[f32; 3]> = (0..64)
                .map(|i| set_lum([c[0][i], c[1][i], c[2][i]], l[i]))
                .collect();
            let any = (0..64).any(|i| needs_clip(shift_lum([c[0][i], c[1][i], c[2][i]], l[i])));
            clipped[any as usize] += 1;
            set_lum_block(&mut c, &l);
            for (i, w) in want.iter().enumerate() {
                let got = [c[0][i], c[1][i], c[2][i]];
                assert_eq!(
                    got.map(f32::to_bits),
                    w.map(f32::to_bits),
                    "case {case} pixel {i}"
                );
            }
        }
        // both kinds of block were exercised
        assert!(clipped[0] > 50 && clipped[1] > 50, "{clipped:?}");
    }

    #[test]
    fn matches_reference_at_odd_widths() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(1, 3, w);
            let a: Vec<u8> = (0..dims.len())
                .map(|i| ((i * 61 + 7) % 256) as u8)
                .collect();
            let b: Vec<u8> = (0..dims.len())
                .map(|i| ((i * 211 + 3) % 256) as u8)
                .collect();
            let mut out = vec![0u8; dims.len()];
            blend_luminosity(&a, &b, dims, &mut out).unwrap();
            for ((pa, pb), po) in a.chunks(3).zip(b.chunks(3)).zip(out.chunks(3)) {
                let c = [pa[0], pa[1], pa[2]].map(|v| v as f64 / 255.0);
                let l = [pb[0], pb[1], pb[2]].map(|v| v as f64 / 255.0);
                let want = set_lum_f64(c, 0.299 * l[0] + 0.587 * l[1] + 0.114 * l[2]);
                for k in 0..3 {
                    let wv = (want[k].clamp(0.0, 1.0) * 255.0).round();
                    assert!(
                        (po[k] as f64 - wv).abs() <= 1.0,
                        "w={w}: {po:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn same_image_is_identity() {
        let dims = Dims::new(1, 4, 9);
        let a: Vec<u8> = (0..dims.len()).map(|i| ((i * 37) % 256) as u8).collect();
        let mut out = vec![0u8; dims.len()];
        blend_luminosity(&a, &a, dims, &mut out).unwrap();
        for (x, y) in a.iter().zip(&out) {
            assert!((*x as i32 - *y as i32).abs() <= 1);
        }
    }
}
