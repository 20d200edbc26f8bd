//! Linear interpolation between frames (PIL `Image.blend` semantics) and the
//! mean of several frames.

use rayon::prelude::*;

use super::error::{KernelError, Result};
use super::frames::{check_finite, Dims, Sample};
use super::parallel::{install, zip2_chunks, CHUNK};
use super::simd::prefetch_ahead;

/// `out = a + alpha * (b - a)`, per frame; `alphas` holds one value or one per
/// frame, each in [0, 1]. `u8` output is rounded half up (PIL truncates, so the
/// two differ by at most one level); `f32` is computed as `(1 - alpha) a + alpha b`,
/// exactly `a` and `b` at the ends.
pub fn lerp_frames<T: Sample>(
    a: &[T],
    b: &[T],
    dims: Dims,
    alphas: &[f64],
    out: &mut [T],
) -> Result<()> {
    dims.check("a", a.len())?;
    dims.check("b", b.len())?;
    dims.check("out", out.len())?;
    if alphas.len() != 1 && alphas.len() != dims.n {
        return Err(KernelError::shape(
            "alpha",
            format!("1 value or {} values (one per frame)", dims.n),
            format!("{} values", alphas.len()),
        ));
    }
    if let Some(x) = alphas.iter().find(|x| !(0.0..=1.0).contains(*x)) {
        return Err(KernelError::value(
            "alpha",
            format!("must be in [0, 1], got {x}"),
        ));
    }
    check_finite("a", a)?;
    check_finite("b", b)?;
    let fl = dims.frame_len();
    for (i, ((fa, fb), fo)) in a
        .chunks(fl)
        .zip(b.chunks(fl))
        .zip(out.chunks_mut(fl))
        .enumerate()
    {
        let t = alphas[if alphas.len() == 1 { 0 } else { i }] as f32;
        let s = 1.0 - t;
        zip2_chunks(fa, fb, 1, fo, 1, CHUNK, |x, y, o| {
            for ((x, y), o) in x.chunks(SPAN).zip(y.chunks(SPAN)).zip(o.chunks_mut(SPAN)) {
                prefetch_ahead(x);
                prefetch_ahead(y);
                prefetch_ahead(o);
                lerp_span(x, y, o, s, t);
            }
        });
    }
    Ok(())
}

/// Samples per step of the lerp loop, between prefetches.
const SPAN: usize = 256;

#[inline(always)]
fn lerp_span<T: Sample>(x: &[T], y: &[T], o: &mut [T], s: f32, t: f32) {
    for ((x, y), o) in x.iter().zip(y).zip(o.iter_mut()) {
        let (x, y) = (x.raw(), y.raw());
        *o = if T::FLOAT {
            // weighted sum: exactly `a` at alpha 0 and `b` at alpha 1 (a + t (b - a)
            // missed b by an ulp in 45% of samples), no overflow of b - a, and no
            // fused multiply-add (this loop is built for the baseline, where that
            // is a library call per sample); equal samples stay as they are
            T::from_raw_round(if x == y { x } else { x * s + y * t })
        } else {
            T::from_raw_round(x + t * (y - x))
        };
    }
}

/// The per-sample sum of 8-bit samples over `frames` (each `len` long); `A`
/// must hold 255 times their count.
fn sum_codes<'a, T: Sample + 'a, A: Copy + Default + std::ops::AddAssign + From<u8>>(
    frames: impl Iterator<Item = &'a [T]>,
    len: usize,
) -> Vec<A> {
    let mut acc = vec![A::default(); len];
    for s in frames {
        for (a, v) in acc.iter_mut().zip(s) {
            *a += A::from(v.code() as u8);
        }
    }
    acc
}

/// The per-sample mean of `dims.n` frames into one frame; `u8` rounds half up.
pub fn mean_frames<T: Sample>(src: &[T], dims: Dims, out: &mut [T]) -> Result<()> {
    dims.check("frames", src.len())?;
    let fl = dims.frame_len();
    if out.len() != fl {
        return Err(KernelError::shape(
            "out",
            format!("{fl} samples"),
            format!("{}", out.len()),
        ));
    }
    check_finite("frames", src)?;
    let n = dims.n;
    // 8-bit frames: an exact integer sum, its mean rounded half up from a table up to
    // 4096 frames, by an integer division beyond (f32 rounded 254.499995 up to 255)
    let rounded: Option<Vec<u8>> = (!T::FLOAT && n <= 4096).then(|| {
        let n = n as u32;
        (0..=255 * n)
            .map(|s| ((2 * s + n) / (2 * n)) as u8)
            .collect()
    });
    install(|| {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, o)| {
            let start = ci * CHUNK;
            if let Some(o) = T::bytes_mut(o) {
                let frames = (0..n).map(|f| &src[f * fl + start..f * fl + start + o.len()]);
                match &rounded {
                    Some(round) => {
                        let acc: Vec<u32> = sum_codes(frames, o.len());
                        o.iter_mut()
                            .zip(&acc)
                            .for_each(|(o, &a)| *o = round[a as usize]);
                    }
                    None => {
                        let (acc, n): (Vec<u64>, u64) = (sum_codes(frames, o.len()), n as u64);
                        o.iter_mut()
                            .zip(&acc)
                            .for_each(|(o, &a)| *o = ((2 * a + n) / (2 * n)) as u8);
                    }
                }
                return;
            }
            let mut acc = vec![0.0f64; o.len()];
            for f in 0..n {
                let s = &src[f * fl + start..f * fl + start + o.len()];
                for (a, v) in acc.iter_mut().zip(s) {
                    *a += v.raw() as f64;
                }
            }
            for (o, a) in o.iter_mut().zip(&acc) {
                *o = T::from_raw_round((a / n as f64) as f32);
            }
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lerp_at_odd_widths() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(2, 2, w);
            let a: Vec<u8> = (0..dims.len()).map(|i| (i % 256) as u8).collect();
            let b: Vec<u8> = (0..dims.len()).map(|i| (255 - i % 256) as u8).collect();
            let mut out = vec![0u8; dims.len()];
            lerp_frames(&a, &b, dims, &[0.25, 1.0], &mut out).unwrap();
            let fl = dims.frame_len();
            for i in 0..dims.len() {
                let t = if i < fl { 0.25 } else { 1.0 };
                let want = a[i] as f64 + t * (b[i] as f64 - a[i] as f64);
                assert!((out[i] as f64 - want).abs() <= 0.5 + 1e-6);
            }
            assert_eq!(&out[fl..], &b[fl..]);
        }
    }

    #[test]
    fn lerp_refuses_alpha_out_of_range() {
        let dims = Dims::new(1, 1, 1);
        let mut out = [0u8; 3];
        for t in [-0.1, 1.5, f64::NAN] {
            assert_eq!(
                lerp_frames(&[0; 3], &[1; 3], dims, &[t], &mut out)
                    .unwrap_err()
                    .arg(),
                "alpha"
            );
        }
    }

    #[test]
    fn mean_at_odd_widths() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(3, 2, w);
            let src: Vec<u8> = (0..dims.len()).map(|i| ((i * 13) % 256) as u8).collect();
            let mut out = vec![0u8; dims.frame_len()];
            mean_frames(&src, dims, &mut out).unwrap();
            let fl = dims.frame_len();
            for i in 0..fl {
                let want = (src[i] as f64 + src[fl + i] as f64 + src[2 * fl + i] as f64) / 3.0;
                assert!((out[i] as f64 - want).abs() <= 0.5 + 1e-6);
            }
        }
    }
}
