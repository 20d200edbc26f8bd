//! The LUMINOSITY blend mode: hue and saturation of one image, luminance of
//! another, as the `blendmodes` library (and the W3C compositing spec's
//! SetLum/ClipColor) computes it with Rec.601 weights.

use super::error::Result;
use super::frames::{check_finite, Dims, Sample};
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
    let d = l - lum(c);
    let c = c.map(|v| v + d);
    let l = lum(c);
    let n = c[0].min(c[1]).min(c[2]);
    let x = c[0].max(c[1]).max(c[2]);
    // ClipColor scales the offsets from l by l / (l - n) when n < 0, then by
    // (1 - l) / (x - l) when x > 1; both at once is one scale by the product,
    // taken with a single division (the slow instruction on wide vectors).
    // Both denominators are >= 0; the max() only guards the all-equal case,
    // where the numerator is 0 as well.
    let (lo, hi) = (n < 0.0, x > 1.0);
    let (num_lo, den_lo) = if lo {
        (l, (l - n).max(1e-12))
    } else {
        (1.0, 1.0)
    };
    let (num_hi, den_hi) = if hi {
        (1.0 - l, (x - l).max(1e-12))
    } else {
        (1.0, 1.0)
    };
    let s = (num_lo * num_hi) / (den_lo * den_hi);
    c.map(|v| if lo || hi { l + (v - l) * s } else { v })
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
        for i in 0..SPAN {
            let rgb = set_lum([c[0][i], c[1][i], c[2][i]], l[i]);
            for k in 0..3 {
                c[k][i] = rgb[k];
            }
        }
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
