//! RGB → planar YUV 4:2:0 (I420), the layout `av.VideoFrame.from_ndarray(...,
//! format="yuv420p")` takes: a `(h * 3 / 2, w)` array holding the Y plane, then
//! U, then V, each chroma plane `(h/2, w/2)` stored row after row.
//!
//! Y'CbCr from gamma-encoded RGB with the matrix's Kr/Kb (BT.601, BT.709,
//! BT.2020 non-constant luminance). Limited range: Y in 16..=235, chroma in
//! 16..=240; full range: 0..=255 for all. Chroma is the mean of each 2x2 block
//! (centre-sited). Results are rounded to nearest.
//!
//! And back: [`yuv420p_to_rgb`] decodes such planes to 8-bit RGB.

use super::error::{KernelError, Result};
use super::frames::{check_finite, max_or, min_or, Dims, Sample};
use super::lab::{Planes, BLOCK};
use super::parallel::install;
use rayon::prelude::*;

use super::simd::simd_dispatch;

/// The colour matrices `rgb_to_yuv420p` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    Bt601,
    Bt709,
    Bt2020,
}

impl Matrix {
    pub fn parse(name: &str) -> Result<Self> {
        // the names, any case, and the spellings FFmpeg and the standards use; not
        // any string that reads as one once punctuation is dropped ("_b.t-7_0.9")
        match name.to_ascii_lowercase().as_str() {
            "bt601" | "bt.601" | "601" | "smpte170m" => Ok(Self::Bt601),
            "bt709" | "bt.709" | "709" => Ok(Self::Bt709),
            "bt2020" | "bt.2020" | "2020" | "bt2020nc" => Ok(Self::Bt2020),
            _ => Err(KernelError::value(
                "matrix",
                format!(
                    "unknown matrix {name:?}; expected one of \"bt601\", \"bt709\", \"bt2020\" \
                     (any case; also written \"bt.601\", \"601\", \"smpte170m\", \"bt.709\", \
                     \"709\", \"bt.2020\", \"2020\", \"bt2020nc\")"
                ),
            )),
        }
    }

    /// The code spans of luma and chroma and the luma offset: 219, 224 and 16
    /// in limited range, 255, 255 and 0 in full range (the same for every matrix).
    pub fn scales(self, full_range: bool) -> (f64, f64, f32) {
        if full_range {
            (255.0, 255.0, 0.0)
        } else {
            (219.0, 224.0, 16.0)
        }
    }

    /// (Kr, Kb).
    pub fn k(self) -> (f64, f64) {
        match self {
            Self::Bt601 => (0.299, 0.114),
            Self::Bt709 => (0.2126, 0.0722),
            Self::Bt2020 => (0.2627, 0.0593),
        }
    }
}

/// Coefficients mapping RGB in 0..=255 to output codes: Y, Cb, Cr rows plus offsets.
#[derive(Debug, Clone, Copy)]
pub struct YuvCoeffs {
    pub y: [f32; 3],
    pub u: [f32; 3],
    pub v: [f32; 3],
    pub y_off: f32,
    pub c_off: f32,
}

impl YuvCoeffs {
    pub fn new(m: Matrix, full_range: bool) -> Self {
        let (kr, kb) = m.k();
        let kg = 1.0 - kr - kb;
        let (ys, cs, y_off) = m.scales(full_range);
        // Y' = kr R + kg G + kb B;  Pb = (B - Y') / (2 (1 - kb));  Pr = (R - Y') / (2 (1 - kr))
        let y = [kr, kg, kb];
        let pb = [-kr / (2.0 * (1.0 - kb)), -kg / (2.0 * (1.0 - kb)), 0.5];
        let pr = [0.5, -kg / (2.0 * (1.0 - kr)), -kb / (2.0 * (1.0 - kr))];
        let scale = |row: [f64; 3], s: f64| row.map(|v| (v * s / 255.0) as f32);
        Self {
            y: scale(y, ys),
            u: scale(pb, cs),
            v: scale(pr, cs),
            y_off,
            c_off: 128.0,
        }
    }
}

#[inline(always)]
fn dot(k: [f32; 3], p: [f32; 3]) -> f32 {
    k[0] * p[0] + k[1] * p[1] + k[2] * p[2]
}

#[inline(always)]
fn code(v: f32) -> u8 {
    // NaN to 0 by construction (the input was checked finite, but another Python thread
    // may write the array while the kernel runs, and f32::clamp lets NaN through)
    let x = min_or(max_or(v + 0.5, 0.0), 255.0);
    // SAFETY: x is in 0..=255, not NaN
    unsafe { x.to_int_unchecked::<u8>() }
}

const SPAN: usize = 64;

/// One pair of rows: two luma rows and one row of each chroma plane, in spans
/// of 64 pixels staged as planes so the arithmetic vectorises.
#[inline(always)]
fn row_pair_imp<T: Sample>(
    k: &YuvCoeffs,
    rows: &[T],
    w: usize,
    yrows: &mut [u8],
    urow: &mut [u8],
    vrow: &mut [u8],
) {
    let mut planes = [[[0.0f32; SPAN]; 3]; 2];
    let mut ys = [0.0f32; SPAN];
    for x0 in (0..w).step_by(SPAN) {
        let n = SPAN.min(w - x0);
        for (r, plane) in planes.iter_mut().enumerate() {
            let src = &rows[(r * w + x0) * 3..(r * w + x0 + n) * 3];
            for (i, px) in src.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    plane[c][i] = px[c].to_unit() * 255.0;
                }
            }
            for i in 0..SPAN {
                ys[i] = dot(k.y, [plane[0][i], plane[1][i], plane[2][i]]) + k.y_off;
            }
            for (o, &y) in yrows[r * w + x0..r * w + x0 + n].iter_mut().zip(&ys) {
                *o = code(y);
            }
        }
        let [top, bot] = &planes;
        for j in 0..n / 2 {
            let m: [f32; 3] = std::array::from_fn(|c| {
                0.25 * (top[c][2 * j] + top[c][2 * j + 1] + bot[c][2 * j] + bot[c][2 * j + 1])
            });
            urow[x0 / 2 + j] = code(dot(k.u, m) + k.c_off);
            vrow[x0 / 2 + j] = code(dot(k.v, m) + k.c_off);
        }
    }
}

simd_dispatch!(fn row_pair_f32<T: Sample>(k: &YuvCoeffs, rows: &[T], w: usize, yrows: &mut [u8], urow: &mut [u8], vrow: &mut [u8]) = row_pair_imp);

/// Pixels `x0..w` of a pair of rows, one 2x2 block at a time: the arithmetic of
/// [`row_pair_imp`] (same operations, same order), for the columns the AVX2
/// path leaves over.
pub(super) fn row_pair_tail<T: Sample>(
    k: &YuvCoeffs,
    rows: &[T],
    w: usize,
    x0: usize,
    yrows: &mut [u8],
    urow: &mut [u8],
    vrow: &mut [u8],
) {
    let px = |i: usize| -> [f32; 3] { std::array::from_fn(|c| rows[3 * i + c].to_unit() * 255.0) };
    for x in (x0..w).step_by(2) {
        let q = [px(x), px(x + 1), px(w + x), px(w + x + 1)];
        for (i, p) in [x, x + 1, w + x, w + x + 1].into_iter().zip(&q) {
            yrows[i] = code(dot(k.y, *p) + k.y_off);
        }
        let m: [f32; 3] = std::array::from_fn(|c| 0.25 * (q[0][c] + q[1][c] + q[2][c] + q[3][c]));
        urow[x / 2] = code(dot(k.u, m) + k.c_off);
        vrow[x / 2] = code(dot(k.v, m) + k.c_off);
    }
}

/// One pair of rows: 8-bit frames through the AVX2 kernel in `x86` (16 pixels
/// a step, the rest here), everything else through [`row_pair_imp`].
fn row_pair<T: Sample>(
    k: &YuvCoeffs,
    rows: &[T],
    w: usize,
    yrows: &mut [u8],
    urow: &mut [u8],
    vrow: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = T::bytes(rows) {
        if let Some(done) = super::x86::yuv_u8(k, b, w, yrows, urow, vrow) {
            row_pair_tail(k, rows, w, done, yrows, urow, vrow);
            return;
        }
    }
    row_pair_f32(k, rows, w, yrows, urow, vrow)
}

/// Convert frames to I420. `out` holds `n * h * 3/2 * w` bytes; `h` and `w` must be even.
pub fn rgb_to_yuv420p<T: Sample>(
    src: &[T],
    dims: Dims,
    matrix: Matrix,
    full_range: bool,
    out: &mut [u8],
) -> Result<()> {
    dims.check("frames", src.len())?;
    if !dims.h.is_multiple_of(2) || !dims.w.is_multiple_of(2) {
        return Err(KernelError::shape(
            "frames",
            "an even height and width for 4:2:0 chroma (pad or crop the frames first)",
            format!("{}x{} (height x width)", dims.h, dims.w),
        ));
    }
    let (h, w) = (dims.h, dims.w);
    let plane = h * w;
    let frame_out = plane * 3 / 2;
    if out.len() != dims.n * frame_out {
        return Err(KernelError::shape(
            "out",
            format!("{} bytes", dims.n * frame_out),
            format!("{}", out.len()),
        ));
    }
    check_finite("frames", src)?;
    let k = YuvCoeffs::new(matrix, full_range);
    install(|| {
        src.par_chunks(dims.frame_len())
            .zip(out.par_chunks_mut(frame_out))
            .for_each(|(s, o)| {
                let (yp, c) = o.split_at_mut(plane);
                let (up, vp) = c.split_at_mut(plane / 4);
                s.par_chunks(2 * w * 3)
                    .zip(yp.par_chunks_mut(2 * w))
                    .zip(up.par_chunks_mut(w / 2))
                    .zip(vp.par_chunks_mut(w / 2))
                    .with_min_len(16)
                    .for_each(|(((rows, yrows), urow), vrow)| {
                        row_pair(&k, rows, w, yrows, urow, vrow)
                    })
            })
    });
    Ok(())
}

/// Coefficients mapping decoded codes back to RGB in 0..=1: luma scale and
/// offset, chroma scale, and the four chroma terms of R' = Y' + rv Cr,
/// G' = Y' + gu Cb + gv Cr, B' = Y' + bu Cb (Cb, Cr centred on zero).
#[derive(Debug, Clone, Copy)]
pub struct RgbCoeffs {
    pub y_scale: f32,
    pub y_off: f32,
    pub c_scale: f32,
    pub rv: f32,
    pub gu: f32,
    pub gv: f32,
    pub bu: f32,
}

impl RgbCoeffs {
    pub fn new(m: Matrix, full_range: bool) -> Self {
        let (kr, kb) = m.k();
        let kg = 1.0 - kr - kb;
        let (ys, cs, y_off) = m.scales(full_range);
        Self {
            y_scale: (1.0 / ys) as f32,
            y_off,
            c_scale: (1.0 / cs) as f32,
            rv: (2.0 * (1.0 - kr)) as f32,
            gu: (-2.0 * kb * (1.0 - kb) / kg) as f32,
            gv: (-2.0 * kr * (1.0 - kr) / kg) as f32,
            bu: (2.0 * (1.0 - kb)) as f32,
        }
    }
}

/// One output row of [`yuv420p_to_rgb`], a block of [`BLOCK`] pixels at a
/// time staged as planes so the arithmetic vectorises: `chroma` holds the U
/// and V rows nearest the row and the ones next nearest, `buf` room for
/// `w + 4` values.
// (`T` unused: simd_dispatch! builds its copies of generic functions only)
#[allow(clippy::extra_unused_type_parameters)]
#[inline(always)]
fn rgb_row_imp<T: Sample>(
    k: &RgbCoeffs,
    yrow: &[u8],
    chroma: [(&[u8], &[u8]); 2],
    buf: &mut [f32],
    out: &mut [u8],
) {
    let w = yrow.len();
    let (cu, cv) = buf.split_at_mut(w / 2 + 2);
    chroma_row(k, chroma[0].0, chroma[0].1, cu);
    chroma_row(k, chroma[1].0, chroma[1].1, cv);
    let (cu, cv) = (&*cu, &*cv);
    let half = BLOCK / 2;
    let (mut even, mut odd) = ([[0.0f32; BLOCK / 2]; 2], [[0.0f32; BLOCK / 2]; 2]);
    let mut uv = [[0.0f32; BLOCK]; 2];
    let mut rgb: Planes = [[0.0f32; BLOCK]; 3];
    for x0 in (0..w).step_by(BLOCK) {
        let n = BLOCK.min(w - x0);
        // centre-sited chroma (as rgb_to_yuv420p writes it): luma pixel 2j sits a
        // quarter of a chroma sample left of sample j, 2j + 1 a quarter right
        for (p, c) in [cu, cv].into_iter().enumerate() {
            let c = &c[x0 / 2..x0 / 2 + n / 2 + 2];
            for j in 0..n / 2 {
                even[p][j] = 0.75 * c[j + 1] + 0.25 * c[j];
                odd[p][j] = 0.75 * c[j + 1] + 0.25 * c[j + 2];
            }
            for j in 0..half {
                uv[p][2 * j] = even[p][j];
                uv[p][2 * j + 1] = odd[p][j];
            }
        }
        let ys = &yrow[x0..x0 + n];
        for i in 0..n {
            let y = (ys[i] as f32 - k.y_off) * k.y_scale;
            rgb[0][i] = y + k.rv * uv[1][i];
            rgb[1][i] = y + k.gu * uv[0][i] + k.gv * uv[1][i];
            rgb[2][i] = y + k.bu * uv[0][i];
        }
        let o = &mut out[3 * x0..3 * (x0 + n)];
        if !store_u8(&rgb, o) {
            for (i, px) in o.chunks_exact_mut(3).enumerate() {
                for c in 0..3 {
                    px[c] = u8::from_unit(rgb[c][i]);
                }
            }
        }
    }
}

/// `o[3 i + c] = u8::from_unit(rgb[c][i])` by the x86 kernels, where they run.
#[inline(always)]
fn store_u8(rgb: &Planes, o: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::x86::encode_u8(rgb, o, None);
    #[cfg(not(target_arch = "x86_64"))]
    false
}

simd_dispatch!(fn rgb_row<T: Sample>(k: &RgbCoeffs, yrow: &[u8], chroma: [(&[u8], &[u8]); 2], buf: &mut [f32], out: &mut [u8]) = rgb_row_imp);

/// Chroma row `near`, interpolated vertically toward row `far` (3:1),
/// centred, scaled, and padded by one repeated sample at each end, into `dst`.
#[inline(always)]
fn chroma_row(k: &RgbCoeffs, near: &[u8], far: &[u8], dst: &mut [f32]) {
    let hw = near.len();
    for (d, (&a, &b)) in dst[1..=hw].iter_mut().zip(near.iter().zip(far)) {
        *d = (0.75 * a as f32 + 0.25 * b as f32 - 128.0) * k.c_scale;
    }
    dst[0] = dst[1];
    dst[hw + 1] = dst[hw];
}

/// Convert I420 frames (each `(h * 3/2, w)` bytes: the Y plane, then U, then V,
/// as [`rgb_to_yuv420p`] writes them) to interleaved 8-bit RGB. Chroma is
/// taken as centre-sited and upsampled bilinearly (weights 9:3:3:1, the edge
/// samples repeated); each value is rounded to nearest and clamped to 0..=255.
/// `out` holds `n * h * w * 3` bytes; `h` and `w` must be even.
pub fn yuv420p_to_rgb(
    src: &[u8],
    dims: Dims,
    matrix: Matrix,
    full_range: bool,
    out: &mut [u8],
) -> Result<()> {
    let (h, w) = (dims.h, dims.w);
    if h == 0 || w == 0 || dims.n == 0 || !h.is_multiple_of(2) || !w.is_multiple_of(2) {
        return Err(KernelError::shape(
            "planes",
            "a non-empty frame of even height and width (h * 3/2 rows of w bytes)",
            format!("{}x{} (height x width) x {} frames", h, w, dims.n),
        ));
    }
    let plane = h * w;
    let frame_in = plane * 3 / 2;
    if src.len() != dims.n * frame_in {
        return Err(KernelError::shape(
            "planes",
            format!("{} bytes", dims.n * frame_in),
            format!("{}", src.len()),
        ));
    }
    if out.len() != dims.len() {
        return Err(KernelError::shape(
            "out",
            format!("{} bytes", dims.len()),
            format!("{}", out.len()),
        ));
    }
    let k = RgbCoeffs::new(matrix, full_range);
    let (hh, hw) = (h / 2, w / 2);
    install(|| {
        src.par_chunks(frame_in)
            .zip(out.par_chunks_mut(dims.frame_len()))
            .for_each(|(s, o)| {
                let (yp, c) = s.split_at(plane);
                let (up, vp) = c.split_at(plane / 4);
                o.par_chunks_mut(2 * w * 3)
                    .enumerate()
                    .with_min_len(16)
                    .for_each_init(
                        || vec![0.0f32; 2 * (hw + 2)],
                        |buf, (i, rows)| {
                            // output row 2i leans on chroma row i - 1, row 2i + 1 on i + 1
                            for (r, nb) in [(0, i.saturating_sub(1)), (1, (i + 1).min(hh - 1))] {
                                let chroma = [
                                    (&up[i * hw..][..hw], &up[nb * hw..][..hw]),
                                    (&vp[i * hw..][..hw], &vp[nb * hw..][..hw]),
                                ];
                                let y = &yp[(2 * i + r) * w..(2 * i + r + 1) * w];
                                let o = &mut rows[r * w * 3..(r + 1) * w * 3];
                                rgb_row::<u8>(&k, y, chroma, buf, o);
                            }
                        },
                    )
            })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::lcg_bytes;

    /// A NaN (written by another thread after the finiteness check) codes as 0, as
    /// the SIMD paths give, not as an unchecked cast of NaN.
    #[test]
    fn codes_are_in_range_for_any_value() {
        assert_eq!(code(f32::NAN), 0);
        assert_eq!(code(-f32::NAN), 0);
        assert_eq!(code(f32::INFINITY), 255);
        assert_eq!(code(f32::NEG_INFINITY), 0);
        assert_eq!(code(254.6), 255);
        assert_eq!(code(-0.6), 0);
        assert_eq!(code(16.49), 16);
    }

    #[test]
    fn white_black_grey_limited_and_full() {
        for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            let dims = Dims::new(1, 2, 2);
            for (v, lim, full) in [(255u8, 235u8, 255u8), (0, 16, 0)] {
                let src = vec![v; 12];
                let mut out = vec![0u8; 6];
                rgb_to_yuv420p(&src, dims, m, false, &mut out).unwrap();
                assert_eq!(out, vec![lim, lim, lim, lim, 128, 128]);
                rgb_to_yuv420p(&src, dims, m, true, &mut out).unwrap();
                assert_eq!(out, vec![full, full, full, full, 128, 128]);
            }
        }
    }

    /// f64 reference per pixel at odd half-widths (frame widths 2 * w).
    #[test]
    fn matches_reference() {
        for &hw in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(1, 4, 2 * hw);
            let src: Vec<u8> = (0..dims.len())
                .map(|i| ((i * 89 + 5) % 256) as u8)
                .collect();
            let mut out = vec![0u8; dims.len() / 2];
            rgb_to_yuv420p(&src, dims, Matrix::Bt709, false, &mut out).unwrap();
            let (kr, kb) = Matrix::Bt709.k();
            let w = dims.w;
            for i in 0..dims.frame_pixels() {
                let p = &src[3 * i..3 * i + 3];
                let y = kr * p[0] as f64 + (1.0 - kr - kb) * p[1] as f64 + kb * p[2] as f64;
                let want = 16.0 + 219.0 * y / 255.0;
                assert!(
                    (out[i] as f64 - want).abs() <= 0.5 + 1e-4,
                    "{} vs {want}",
                    out[i]
                );
            }
            let plane = dims.frame_pixels();
            for cy in 0..2 {
                for cx in 0..hw {
                    let idx = |yy: usize, xx: usize| 3 * (yy * w + xx);
                    let mut m = [0.0f64; 3];
                    for (yy, xx) in [
                        (2 * cy, 2 * cx),
                        (2 * cy, 2 * cx + 1),
                        (2 * cy + 1, 2 * cx),
                        (2 * cy + 1, 2 * cx + 1),
                    ] {
                        for c in 0..3 {
                            m[c] += src[idx(yy, xx) + c] as f64 / 4.0;
                        }
                    }
                    let y = kr * m[0] + (1.0 - kr - kb) * m[1] + kb * m[2];
                    let u = 128.0 + 224.0 * (m[2] - y) / (2.0 * (1.0 - kb)) / 255.0;
                    let got = out[plane + cy * hw + cx] as f64;
                    assert!((got - u).abs() <= 0.5 + 1e-4, "{got} vs {u}");
                }
            }
        }
    }

    /// The whole batch through [`row_pair_imp`] alone: the portable path as it
    /// was before the AVX2 kernel, built for the x86-64 baseline here.
    fn portable(src: &[u8], dims: Dims, m: Matrix, full: bool) -> Vec<u8> {
        let (h, w) = (dims.h, dims.w);
        let k = YuvCoeffs::new(m, full);
        let mut out = vec![0u8; dims.len() / 2];
        for (s, o) in src
            .chunks(dims.frame_len())
            .zip(out.chunks_mut(h * w * 3 / 2))
        {
            let (yp, c) = o.split_at_mut(h * w);
            let (up, vp) = c.split_at_mut(h * w / 4);
            for r in 0..h / 2 {
                let cr = r * w / 2..(r + 1) * w / 2;
                row_pair_imp(
                    &k,
                    &s[r * 6 * w..(r + 1) * 6 * w],
                    w,
                    &mut yp[r * 2 * w..(r + 1) * 2 * w],
                    &mut up[cr.clone()],
                    &mut vp[cr],
                );
            }
        }
        out
    }

    fn assert_same(src: &[u8], dims: Dims, what: &str) {
        for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for full in [false, true] {
                let mut got = vec![0u8; dims.len() / 2];
                rgb_to_yuv420p(src, dims, m, full, &mut got).unwrap();
                let want = portable(src, dims, m, full);
                if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                    panic!(
                        "{what} {dims:?} {m:?} full={full}: byte {i} is {} not {}",
                        got[i], want[i]
                    );
                }
            }
        }
    }

    /// The 8-bit fast path (AVX2 where the CPU has it) gives exactly the bytes
    /// of the portable f32 path, at widths around and between its 16-pixel
    /// steps and odd numbers of row pairs.
    #[test]
    fn fast_path_matches_portable_path() {
        let half_widths = [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 24, 33, 65, 255];
        for (j, &hw) in half_widths.iter().enumerate() {
            for hh in [1usize, 3, 5] {
                let dims = Dims::new(2, 2 * hh, 2 * hw);
                let seed = (j * 8 + hh) as u64;
                assert_same(&lcg_bytes(dims.len(), seed), dims, "random");
                // flat 2x2 blocks of extreme colours (chroma at its limits,
                // where full range clamps)
                let pal = lcg_bytes(dims.len() / 4, seed + 100)
                    .iter()
                    .map(|&v| [0u8, 1, 254, 255][v as usize % 4])
                    .collect::<Vec<_>>();
                let (h, w) = (dims.h, dims.w);
                let flat: Vec<u8> = (0..dims.len())
                    .map(|i| {
                        let (f, c) = (i / dims.frame_len(), i % 3);
                        let (y, x) = ((i / 3) / w % h, (i / 3) % w);
                        pal[((f * (h / 2) + y / 2) * (w / 2) + x / 2) * 3 + c]
                    })
                    .collect();
                assert_same(&flat, dims, "extremes");
            }
        }
    }

    /// Every one of the 2^24 colours, as a 4096 x 4096 frame (release builds only).
    #[test]
    #[cfg_attr(debug_assertions, ignore = "slow without optimisation")]
    fn fast_path_matches_portable_path_on_every_colour() {
        let dims = Dims::new(1, 4096, 4096);
        let src: Vec<u8> = (0..1u32 << 24)
            .flat_map(|i| [(i >> 16) as u8, (i >> 8) as u8, i as u8])
            .collect();
        assert_same(&src, dims, "every colour");
    }

    /// The AVX2 kernel's `d + (off + 0.5)`, clamped and truncated, is
    /// `code(d + off)` for every f32 `d`, at each offset a matrix uses (0 and 16
    /// for luma, 128 for chroma). Both are non-decreasing step functions of `d`
    /// (rounding, adding a constant, clamping and truncating all are), so they
    /// are equal iff each step, to code `c`, happens at the same `d`. Both steps
    /// to `c` lie within 0.01 of `c - off - 0.5` (asserted at the ends), so every
    /// f32 in that window is compared. (Also checked exhaustively once: every
    /// f32 with |d| < 2^20, about 2.5e9 per offset, none differ.)
    #[test]
    fn offset_and_half_fold() {
        let folded = |d: f32, off: f32| (d + (off + 0.5)).clamp(0.0, 255.0) as u8;
        // the next f32 up, for finite non-zero d
        let next_up = |d: f32| match d {
            d if d > 0.0 => f32::from_bits(d.to_bits() + 1),
            d => f32::from_bits(d.to_bits() - 1),
        };
        for off in [0.0f32, 16.0, 128.0] {
            for c in 1..=255u8 {
                let step = c as f32 - off - 0.5;
                let (lo, hi) = (step - 0.01, step + 0.01);
                assert!(code(lo + off) < c && folded(lo, off) < c);
                assert!(code(hi + off) >= c && folded(hi, off) >= c);
                let mut d = lo;
                while d <= hi {
                    assert_eq!(code(d + off), folded(d, off), "d = {d:e}, off = {off}");
                    d = next_up(d);
                }
            }
        }
    }

    #[test]
    fn refuses_odd_sizes_and_unknown_matrix() {
        let dims = Dims::new(1, 3, 2);
        let mut out = vec![0u8; 9];
        assert_eq!(
            rgb_to_yuv420p(&[0u8; 18], dims, Matrix::Bt709, false, &mut out)
                .unwrap_err()
                .arg(),
            "frames"
        );
        assert_eq!(Matrix::parse("rec9").unwrap_err().arg(), "matrix");
        assert_eq!(Matrix::parse("BT.709").unwrap(), Matrix::Bt709);
        assert_eq!(Matrix::parse("SMPTE170M").unwrap(), Matrix::Bt601);
        for mangled in ["_b.t-7_0.9", "bt-709", "b.t709", "7.0.9", "bt2020-nc"] {
            assert_eq!(
                Matrix::parse(mangled).unwrap_err().arg(),
                "matrix",
                "{mangled}"
            );
        }
    }

    /// The f64 decode of one pixel of I420 planes: centre-sited chroma, 9:3:3:1.
    fn decode_ref(
        src: &[u8],
        h: usize,
        w: usize,
        m: Matrix,
        full: bool,
        y: usize,
        x: usize,
    ) -> [f64; 3] {
        let (hh, hw) = (h / 2, w / 2);
        let chroma = |plane: usize| {
            // position of the pixel in chroma samples, centre-sited
            let cy = (y as f64 - 0.5) / 2.0;
            let cx = (x as f64 - 0.5) / 2.0;
            let (y0, x0) = (cy.floor(), cx.floor());
            let (fy, fx) = (cy - y0, cx - x0);
            let at = |yy: f64, xx: f64| {
                let yy = (yy.max(0.0) as usize).min(hh - 1);
                let xx = (xx.max(0.0) as usize).min(hw - 1);
                src[h * w + plane * hh * hw + yy * hw + xx] as f64
            };
            (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1.0))
                + fy * ((1.0 - fx) * at(y0 + 1.0, x0) + fx * at(y0 + 1.0, x0 + 1.0))
        };
        let (kr, kb) = m.k();
        let kg = 1.0 - kr - kb;
        let (ys, cs, yo) = if full {
            (255.0, 255.0, 0.0)
        } else {
            (219.0, 224.0, 16.0)
        };
        let yy = (src[y * w + x] as f64 - yo) / ys;
        let (pb, pr) = ((chroma(0) - 128.0) / cs, (chroma(1) - 128.0) / cs);
        let r = yy + 2.0 * (1.0 - kr) * pr;
        let b = yy + 2.0 * (1.0 - kb) * pb;
        let g = (yy - kr * r - kb * b) / kg;
        [r * 255.0, g * 255.0, b * 255.0]
    }

    /// Against the f64 reference at odd half-widths and heights, every matrix and
    /// range, on random planes (most of them far outside the RGB gamut, so the
    /// clamp is tested too): within half a level before rounding.
    #[test]
    fn decode_matches_reference() {
        for &hw in &[1usize, 7, 9, 17, 33, 65] {
            for &hh in &[1usize, 3] {
                let (h, w) = (2 * hh, 2 * hw);
                let src = lcg_bytes(h * w * 3 / 2, (hw * 31 + hh) as u64);
                for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
                    for full in [false, true] {
                        let mut out = vec![0u8; h * w * 3];
                        yuv420p_to_rgb(&src, Dims::new(1, h, w), m, full, &mut out).unwrap();
                        for y in 0..h {
                            for x in 0..w {
                                let want = decode_ref(&src, h, w, m, full, y, x);
                                for c in 0..3 {
                                    let got = out[3 * (y * w + x) + c] as f64;
                                    let want = want[c].clamp(0.0, 255.0);
                                    assert!(
                                        (got - want).abs() <= 0.5 + 1e-3,
                                        "{m:?} full {full} {h}x{w} ({y}, {x}) channel {c}: {got} vs {want}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Flat colours come back from their own planes to within a level, and a
    /// batch decodes each frame as alone.
    #[test]
    fn decode_inverts_encode_on_flat_colours_and_batches() {
        let dims = Dims::new(2, 4, 6);
        let mut src = vec![0u8; dims.len()];
        for (i, px) in src.chunks_exact_mut(3).enumerate() {
            let f = i / dims.frame_pixels();
            px.copy_from_slice(&[[200, 50, 100], [16, 240, 128]][f]);
        }
        for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for full in [false, true] {
                let mut yuv = vec![0u8; dims.len() / 2];
                rgb_to_yuv420p(&src, dims, m, full, &mut yuv).unwrap();
                let mut back = vec![0u8; dims.len()];
                yuv420p_to_rgb(&yuv, dims, m, full, &mut back).unwrap();
                for (a, b) in src.iter().zip(&back) {
                    assert!(
                        (*a as i32 - *b as i32).abs() <= 1,
                        "{m:?} {full}: {a} vs {b}"
                    );
                }
                let mut one = vec![0u8; dims.len() / 2];
                yuv420p_to_rgb(&yuv[yuv.len() / 2..], Dims::new(1, 4, 6), m, full, &mut one)
                    .unwrap();
                assert_eq!(one, back[back.len() / 2..]);
            }
        }
    }

    #[test]
    fn decode_refuses_odd_empty_and_mismatched() {
        let mut out = vec![0u8; 18];
        for (dims, len) in [
            (Dims::new(1, 3, 2), 9),
            (Dims::new(1, 2, 3), 9),
            (Dims::new(1, 0, 2), 0),
        ] {
            let e =
                yuv420p_to_rgb(&vec![0u8; len], dims, Matrix::Bt709, false, &mut out).unwrap_err();
            assert_eq!(e.arg(), "planes");
        }
        let e = yuv420p_to_rgb(
            &[0u8; 5],
            Dims::new(1, 2, 2),
            Matrix::Bt709,
            false,
            &mut out[..12],
        )
        .unwrap_err();
        assert_eq!(e.arg(), "planes");
        let e = yuv420p_to_rgb(
            &[0u8; 6],
            Dims::new(1, 2, 2),
            Matrix::Bt709,
            false,
            &mut out,
        )
        .unwrap_err();
        assert_eq!(e.arg(), "out");
    }
}
