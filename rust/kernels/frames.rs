//! Shapes of frame batches and the sample types kernels accept.
//!
//! A batch is `n` frames of `h` rows by `w` pixels, RGB interleaved, C order:
//! the layout of a contiguous numpy array of shape `(n, h, w, 3)`.

use super::error::{KernelError, Result};

/// Shape of a batch of RGB frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub const fn new(n: usize, h: usize, w: usize) -> Self {
        Self { n, h, w }
    }

    /// Pixels in one frame.
    pub const fn frame_pixels(&self) -> usize {
        self.h * self.w
    }

    /// Samples (pixels times three channels) in one frame.
    pub const fn frame_len(&self) -> usize {
        self.h * self.w * 3
    }

    /// Samples in the whole batch.
    pub const fn len(&self) -> usize {
        self.n * self.frame_len()
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check that `buf_len` samples make this batch, and that it is not empty.
    pub fn check(&self, arg: &'static str, buf_len: usize) -> Result<()> {
        if self.n == 0 || self.h == 0 || self.w == 0 {
            return Err(KernelError::shape(
                arg,
                "a non-empty batch of frames",
                format!("shape ({}, {}, {}, 3)", self.n, self.h, self.w),
            ));
        }
        if buf_len != self.len() {
            return Err(KernelError::shape(
                arg,
                format!(
                    "{} samples for shape ({}, {}, {}, 3)",
                    self.len(),
                    self.n,
                    self.h,
                    self.w
                ),
                format!("{buf_len} samples"),
            ));
        }
        Ok(())
    }

    /// Check that `other` (e.g. a reference) has either one frame or one per frame of `self`.
    pub fn check_one_or_per_frame(&self, arg: &'static str, other: &Dims) -> Result<()> {
        if other.n != 1 && other.n != self.n {
            return Err(KernelError::shape(
                arg,
                format!("1 frame or {} frames (one per frame)", self.n),
                format!("{} frames", other.n),
            ));
        }
        Ok(())
    }
}

/// The checks shared by the kernels that take frames, a reference (one frame or
/// one per frame, named `ref_arg`), an output batch and one gamma per frame.
pub fn check_frames_and_reference<T: Sample>(
    src: &[T],
    dims: Dims,
    ref_arg: &'static str,
    reference: &[T],
    rdims: Dims,
    out: &[T],
    gammas_out: &[f64],
) -> Result<()> {
    dims.check("frames", src.len())?;
    rdims.check(ref_arg, reference.len())?;
    dims.check_one_or_per_frame(ref_arg, &rdims)?;
    check_frames_and_out(src, dims, out, gammas_out)?;
    check_finite(ref_arg, reference)
}

/// The checks of [`check_frames_and_reference`] but the reference's: the frames,
/// the output batch and one gamma per frame.
pub fn check_frames_and_out<T: Sample>(
    src: &[T],
    dims: Dims,
    out: &[T],
    gammas_out: &[f64],
) -> Result<()> {
    dims.check("frames", src.len())?;
    dims.check("out", out.len())?;
    if gammas_out.len() != dims.n {
        return Err(KernelError::shape(
            "gammas_out",
            format!("{} values", dims.n),
            format!("{}", gammas_out.len()),
        ));
    }
    check_finite("frames", src)
}

/// The larger of `a` and `b`; `b` if either is NaN. One `maxps` per vector:
/// `f32::max` returns whichever operand is not NaN, which takes a compare and
/// a blend besides the max in every lane of the hot loops.
#[inline(always)]
pub fn max_or(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The smaller of `a` and `b`; `b` if either is NaN. One `minps` per vector.
#[inline(always)]
pub fn min_or(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// Clamp to [0, 1], mapping NaN to 0 (`f32::clamp` would keep NaN, which
/// would then reach the unchecked casts that follow).
#[inline(always)]
pub fn clamp01(v: f32) -> f32 {
    min_or(max_or(v, 0.0), 1.0)
}

/// A sample type frames may hold: `u8` in 0..=255 or `f32` in [0, 1].
pub trait Sample: Copy + Send + Sync + 'static {
    /// Whether values of this type can be NaN or infinite.
    const FLOAT: bool;
    /// The value as a fraction of full scale. Floats are clamped to [0, 1].
    fn to_unit(self) -> f32;
    /// A fraction of full scale (clamped to [0, 1]) as this type; `u8` rounds to nearest.
    fn from_unit(v: f32) -> Self;
    /// A finite check for floats; always true for integers.
    fn is_finite(self) -> bool;
    /// The raw value as f32 (0..=255 for `u8`), not clamped.
    fn raw(self) -> f32;
    /// The value as a table index: the code for `u8`, 0 for floats.
    fn code(self) -> usize;
    /// A raw value back to this type: `u8` truncates toward zero after clamping to
    /// 0..=255, as numpy's float-to-uint8 cast does for in-range values.
    fn from_raw_trunc(v: f64) -> Self;
    /// A raw value back to this type: `u8` rounds half up after clamping.
    fn from_raw_round(v: f32) -> Self;
    /// The samples as bytes when this type is `u8` (for the AVX2 staging of 8-bit frames).
    fn bytes(s: &[Self]) -> Option<&[u8]> {
        let _ = s;
        None
    }
    /// [`Sample::bytes`], mutable.
    fn bytes_mut(s: &mut [Self]) -> Option<&mut [u8]> {
        let _ = s;
        None
    }
}

impl Sample for u8 {
    const FLOAT: bool = false;
    #[inline(always)]
    fn to_unit(self) -> f32 {
        self as f32 * (1.0 / 255.0)
    }
    #[inline(always)]
    fn from_unit(v: f32) -> Self {
        // max/min (not clamp) so NaN maps to 0; then round half up
        let x = clamp01(v) * 255.0 + 0.5;
        // SAFETY: x is in [0.5, 255.5], so the truncation fits u8; the unchecked
        // cast vectorises where `as` needs a saturating sequence per lane.
        unsafe { x.to_int_unchecked::<u8>() }
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        true
    }
    #[inline(always)]
    fn raw(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn code(self) -> usize {
        self as usize
    }
    #[inline(always)]
    fn from_raw_trunc(v: f64) -> Self {
        v.clamp(0.0, 255.0) as u8
    }
    #[inline(always)]
    fn from_raw_round(v: f32) -> Self {
        // max/min (NaN -> 0, as the saturating cast gave), then round half up
        let x = min_or(max_or(v, 0.0), 255.0) + 0.5;
        // SAFETY: x is in [0.5, 255.5], so the truncation fits u8; the unchecked
        // cast vectorises where `as` needs a saturating sequence per lane.
        unsafe { x.to_int_unchecked::<u8>() }
    }
    #[inline(always)]
    fn bytes(s: &[Self]) -> Option<&[u8]> {
        Some(s)
    }
    #[inline(always)]
    fn bytes_mut(s: &mut [Self]) -> Option<&mut [u8]> {
        Some(s)
    }
}

impl Sample for f32 {
    const FLOAT: bool = true;
    #[inline(always)]
    fn to_unit(self) -> f32 {
        self.clamp(0.0, 1.0)
    }
    #[inline(always)]
    fn from_unit(v: f32) -> Self {
        clamp01(v)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline(always)]
    fn raw(self) -> f32 {
        self
    }
    #[inline(always)]
    fn code(self) -> usize {
        0
    }
    #[inline(always)]
    fn from_raw_trunc(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn from_raw_round(v: f32) -> Self {
        v
    }
}

/// Fail with [`KernelError::NonFinite`] if a float buffer holds NaN or an infinity.
pub fn check_finite<T: Sample>(arg: &'static str, data: &[T]) -> Result<()> {
    if !T::FLOAT {
        return Ok(());
    }
    let ok = super::parallel::all_chunks(data, 1 << 16, |chunk| {
        // fold without early exit so the loop vectorises
        chunk.iter().fold(true, |acc, v| acc & v.is_finite())
    });
    if ok {
        Ok(())
    } else {
        Err(KernelError::NonFinite { arg })
    }
}
