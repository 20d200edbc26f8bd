//! Per-channel histogram matching with the semantics of
//! `skimage.exposure.match_histograms(image, reference, channel_axis=-1)`.
//!
//! For each channel, every source value `v` is sent to
//! `interp(F_src(v), F_ref(u_k), u_k)`, where `F(v)` is the fraction of pixels
//! `<= v`, `u_k` are the reference's values and `interp` is numpy's.
//!
//! * `u8`: one bin per level, so the mapping is exactly scikit-image's; the
//!   float result is truncated to `u8` like scikit-image's cast into a `uint8`
//!   array.
//! * `f32`: [`FLOAT_BINS`] bins per channel spanning the channel's range over
//!   the frame and its reference, so a frame's result does not depend on the
//!   other frames of the batch. A reference bin keeps its least value, how
//!   many pixels hold it, and its greatest value: the two points of
//!   scikit-image's reference curve that they give are exact, and between them
//!   (inside the bin) the curve is off by under a bin width. Before, a bin kept
//!   the mean of its values alone, and a crowded bin after a gap in the
//!   reference was reached by a slope over the bin's whole mass: frame values
//!   there came out up to a quarter of the range off. Where no bin holds more
//!   than two distinct values (e.g. float frames made from `u8` ones) the
//!   result equals scikit-image's to f32 rounding. All source values in one bin
//!   map to one output, so the result is off from the exact per-value one by at
//!   most the spread of the exact outputs over the source value's bin, plus a
//!   reference bin width: under a bin width for most pixels, but hundreds of bin
//!   widths where a crowded source bin (e.g. highlights) meets a sparse stretch
//!   of the reference.

use rayon::prelude::*;

use super::error::{vec_with_room, KernelError, Result};
use super::frames::{check_finite, max_or, min_or, Dims, Sample};
use super::parallel::{fold_min_len, install, CHUNK};

/// Bins per channel for float input.
pub const FLOAT_BINS: usize = 4096;

/// How the values of one channel map to histogram bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Binning {
    lo: f32,
    scale: f32,
    bins: usize,
}

impl Binning {
    /// One bin per `u8` level.
    pub const U8: Self = Self {
        lo: 0.0,
        scale: 1.0,
        bins: 256,
    };

    /// `bins` equal bins spanning [lo, hi]; a zero-width range gets one bin.
    pub fn range(lo: f32, hi: f32, bins: usize) -> Self {
        if hi > lo {
            Self {
                lo,
                scale: bins as f32 / (hi - lo),
                bins,
            }
        } else {
            Self {
                lo,
                scale: 0.0,
                bins: 1,
            }
        }
    }

    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The value at the centre of bin `k`.
    pub fn center(&self, k: usize) -> f64 {
        if self.scale == 0.0 {
            return self.lo as f64;
        }
        self.lo as f64 + (k as f64 + 0.5) / self.scale as f64
    }

    /// Bin of a value; values outside the range (and NaN) fall in the end bins.
    #[inline(always)]
    pub fn bin(&self, x: f32) -> usize {
        self.bin_of_scaled((x - self.lo) * self.scale)
    }

    /// `(m, c)` such that the bin of `mul * v + add` is, up to f32 rounding,
    /// `bin_of_scaled(v * m + c)`: one multiply-add a value where `bin` after
    /// the affine map takes four operations.
    pub fn folded(&self, mul: f64, add: f64) -> (f32, f32) {
        let s = self.scale as f64;
        ((mul * s) as f32, ((add - self.lo as f64) * s) as f32)
    }

    /// Bin of a value already in bin units (`(x - lo) * scale`), clamped to the
    /// bins (NaN to the first).
    #[inline(always)]
    pub fn bin_of_scaled(&self, t: f32) -> usize {
        let t = min_or(max_or(t, 0.0), (self.bins - 1) as f32);
        // SAFETY: t is in [0, bins - 1] (max/min also map NaN to 0), and bins
        // fits u32; the unchecked cast vectorises where `as` would not.
        unsafe { t.to_int_unchecked::<u32>() as usize }
    }
}

/// What a float reference's bin keeps of its values: the least, how many pixels
/// hold it, and the greatest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knots {
    lo: f32,
    hi: f32,
    at_lo: u64,
}

impl Knots {
    const EMPTY: Self = Self {
        lo: f32::INFINITY,
        hi: f32::NEG_INFINITY,
        at_lo: 0,
    };

    /// Branch-free (a value's place among the bin's is unpredictable); `v` is
    /// finite.
    #[inline(always)]
    fn add(&mut self, v: f32) {
        let (below, same) = (v < self.lo, v == self.lo);
        self.at_lo = (self.at_lo & !(below as u64).wrapping_neg()) + (below | same) as u64;
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
    }

    fn merge(self, o: Self) -> Self {
        let (lo, at_lo) = if self.lo < o.lo {
            (self.lo, self.at_lo)
        } else if o.lo < self.lo {
            (o.lo, o.at_lo)
        } else {
            (self.lo, self.at_lo + o.at_lo)
        };
        Self {
            lo,
            at_lo,
            hi: self.hi.max(o.hi),
        }
    }
}

/// Counts (and optionally each bin's [`Knots`]) per bin for three channels.
#[derive(Debug, Clone)]
pub struct Hist3 {
    pub counts: [Vec<u64>; 3],
    pub knots: Option<[Vec<Knots>; 3]>,
}

impl Hist3 {
    pub fn new(binning: &[Binning; 3], with_knots: bool) -> Self {
        Self {
            counts: std::array::from_fn(|c| vec![0; binning[c].bins()]),
            knots: with_knots
                .then(|| std::array::from_fn(|c| vec![Knots::EMPTY; binning[c].bins()])),
        }
    }

    #[inline(always)]
    pub fn add(&mut self, c: usize, bin: usize, value: f32) {
        self.counts[c][bin] += 1;
        if let Some(k) = self.knots.as_mut() {
            k[c][bin].add(value);
        }
    }

    pub fn merge(mut self, other: Self) -> Self {
        for c in 0..3 {
            for (a, b) in self.counts[c].iter_mut().zip(&other.counts[c]) {
                *a += b;
            }
            if let (Some(s), Some(o)) = (self.knots.as_mut(), other.knots.as_ref()) {
                for (a, b) in s[c].iter_mut().zip(&o[c]) {
                    *a = a.merge(*b);
                }
            }
        }
        self
    }

    /// The reference side of a match for channel `c`: points (quantile, value)
    /// of scikit-image's reference curve, increasing in both. With knots, a
    /// bin gives its least value at the fraction of pixels up to it, then its
    /// greatest at the fraction up to the bin's end (one point where they are
    /// one value): both exact. Without, a bin gives `bin_value` of itself at
    /// the bin's end.
    pub fn quantiles(&self, c: usize, bin_value: impl Fn(usize) -> f64) -> (Vec<f64>, Vec<f64>) {
        let counts = &self.counts[c];
        let total: u64 = counts.iter().sum();
        let (mut q, mut v) = (Vec::new(), Vec::new());
        let mut cum = 0u64;
        for (k, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let value = match &self.knots {
                Some(kn) => {
                    let b = kn[c][k];
                    if b.lo < b.hi {
                        q.push((cum + b.at_lo) as f64 / total as f64);
                        v.push(b.lo as f64);
                    }
                    b.hi as f64
                }
                None => bin_value(k),
            };
            cum += n;
            q.push(cum as f64 / total as f64);
            v.push(value);
        }
        (q, v)
    }
}

/// Histogram of interleaved RGB samples, in parallel over chunks.
pub fn histogram<T: Sample>(data: &[T], binning: &[Binning; 3], with_knots: bool) -> Hist3 {
    let add = |mut h: Hist3, chunk: &[T]| {
        if !T::FLOAT && !with_knots {
            // u8: the code is the bin
            let [r, g, b] = &mut h.counts;
            for px in chunk.chunks_exact(3) {
                r[px[0].code()] += 1;
                g[px[1].code()] += 1;
                b[px[2].code()] += 1;
            }
            return h;
        }
        for px in chunk.chunks_exact(3) {
            for c in 0..3 {
                let v = px[c].raw();
                h.add(c, binning[c].bin(v), v);
            }
        }
        h
    };
    let empty = || Hist3::new(binning, with_knots);
    if data.len() <= 2 * CHUNK {
        return add(empty(), data);
    }
    install(|| {
        data.par_chunks(CHUNK)
            .with_min_len(fold_min_len(data.len(), CHUNK))
            .fold(empty, add)
            .reduce_with(Hist3::merge)
            .expect("at least one chunk")
    })
}

/// numpy's `interp(x, xp, fp)` for increasing `xs`, walking `xp` once.
/// Follows numpy's arithmetic so results agree bit for bit.
pub fn interp_sorted(
    xs: impl Iterator<Item = f64>,
    xp: &[f64],
    fp: &[f64],
    mut out: impl FnMut(f64),
) {
    let last = xp.len() - 1;
    let mut j = 0usize;
    for x in xs {
        if x <= xp[0] {
            // numpy: x < xp[0] gives fp[0]; x == xp[0] gives fp[0] too
            out(fp[0]);
            continue;
        }
        if x >= xp[last] {
            out(fp[last]);
            continue;
        }
        while xp[j + 1] <= x {
            j += 1;
        }
        if xp[j] == x {
            out(fp[j]);
        } else {
            let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
            out(slope * (x - xp[j]) + fp[j]);
        }
    }
}

/// The matched value of every source bin (0 for empty bins, which no pixel uses).
pub fn bin_mapping(src_counts: &[u64], tq: &[f64], tv: &[f64]) -> Vec<f64> {
    let total: u64 = src_counts.iter().sum();
    let mut out = vec![0.0; src_counts.len()];
    let used: Vec<usize> = (0..src_counts.len())
        .filter(|&k| src_counts[k] > 0)
        .collect();
    let mut cum = 0u64;
    let qs = used.iter().map(|&k| {
        cum += src_counts[k];
        cum as f64 / total as f64
    });
    let mut it = used.iter();
    interp_sorted(qs, tq, tv, |v| out[*it.next().expect("one per bin")] = v);
    out
}

/// Per-channel min and max of interleaved RGB samples.
fn channel_range<T: Sample>(data: &[T]) -> [(f32, f32); 3] {
    let one = |chunk: &[T]| {
        let mut r = [(f32::INFINITY, f32::NEG_INFINITY); 3];
        for px in chunk.chunks_exact(3) {
            for c in 0..3 {
                let v = px[c].raw();
                r[c] = (r[c].0.min(v), r[c].1.max(v));
            }
        }
        r
    };
    let merge = |a: [(f32, f32); 3], b: [(f32, f32); 3]| -> [(f32, f32); 3] {
        std::array::from_fn(|c| (a[c].0.min(b[c].0), a[c].1.max(b[c].1)))
    };
    install(|| {
        data.par_chunks(2 * CHUNK)
            .map(one)
            .reduce(|| one(&[]), merge)
    })
}

/// Binning of float values over the joint range of two sets of channel ranges
/// (a frame's and its reference's).
///
/// A float channel whose values span more than `f32::MAX` (the width overflows)
/// or, where they differ, less than `FLOAT_BINS / f32::MAX` (the scale
/// overflows) cannot be binned in f32 and is refused.
fn binning_over(a: [(f32, f32); 3], b: [(f32, f32); 3], blame: Blame) -> Result<[Binning; 3]> {
    let mut out = [Binning::U8; 3];
    for c in 0..3 {
        let (lo, hi) = (a[c].0.min(b[c].0), a[c].1.max(b[c].1));
        let scale = FLOAT_BINS as f32 / (hi - lo);
        if hi > lo && !((hi - lo).is_finite() && scale.is_finite()) {
            return Err(KernelError::value(
                blame.arg,
                format!(
                    "the values of channel {c} in {} span [{lo:e}, {hi:e}]; \
                     float histograms need a span below 3.4e38 and above 1e-34 (rescale first)",
                    blame.what
                ),
            ));
        }
        out[c] = Binning::range(lo, hi, FLOAT_BINS);
    }
    Ok(out)
}

/// Who a float span that cannot be binned is blamed on: the argument named, and the
/// values' owner in the message.
#[derive(Debug, Clone, Copy)]
struct Blame {
    arg: &'static str,
    what: &'static str,
}

/// In a match: the frame's values and its reference's together.
const IN_A_MATCH: Blame = Blame {
    arg: "frames",
    what: "a frame and its reference",
};

/// A channel's value range in every channel: float samples only (8-bit ones have one
/// fixed binning, which needs none).
fn range_of<T: Sample>(d: &[T]) -> [(f32, f32); 3] {
    if T::FLOAT {
        channel_range(d)
    } else {
        [(0.0, 0.0); 3]
    }
}

/// The binning of a frame matched to a reference: 8-bit one fixed binning; float
/// each frame's own, over its range and its reference's, so that a frame's result is
/// the same alone or in any batch.
fn binning_of<T: Sample>(
    a: [(f32, f32); 3],
    b: [(f32, f32); 3],
    blame: Blame,
) -> Result<[Binning; 3]> {
    if T::FLOAT {
        binning_over(a, b, blame)
    } else {
        Ok([Binning::U8; 3])
    }
}

/// What a match needs of one reference frame: its value range, the binning over that
/// range alone, and its histogram on it (with knots for float samples).
#[derive(Debug, Clone)]
pub struct RefFrame {
    range: [(f32, f32); 3],
    binning: [Binning; 3],
    hist: Hist3,
}

impl RefFrame {
    /// Frame `r`'s, whose value range is `range`.
    fn of<T: Sample>(r: &[T], range: [(f32, f32); 3], blame: Blame) -> Result<Self> {
        let binning = binning_of::<T>(range, range, blame)?;
        let hist = histogram(r, &binning, T::FLOAT);
        Ok(Self {
            range,
            binning,
            hist,
        })
    }
}

/// A reference worked out once for many [`match_histograms_prepared`] calls: each
/// frame's [`RefFrame`], and for float references their pixels too, as a frame whose
/// values reach outside a reference's range is binned over both, and the reference
/// counted again on that binning. 8-bit references keep their counts only.
#[derive(Debug, Clone)]
pub struct PreparedReference<T> {
    frames: Vec<RefFrame>,
    pixels: Vec<T>,
    dims: Dims,
}

/// Bytes of an 8-bit reference frame's state: three channels' 256 counts, 8 bytes each.
const COUNT_BYTES: usize = 3 * 256 * 8;

impl<T: Sample> PreparedReference<T> {
    /// `reference`: one frame or several, each matched to the frame of its index;
    /// errors name `arg`. The memory it keeps is reserved first, so that where it is
    /// not there the error is [`KernelError::NoMemory`] (a MemoryError), not an abort:
    /// 6 KB of counts an 8-bit frame; a float frame's pixels, and 24 bytes a bin, 4096
    /// bins a channel (one where the channel is constant), so up to 300 KB however
    /// small the frame.
    pub fn new(reference: &[T], rdims: Dims, arg: &'static str) -> Result<Self> {
        rdims.check(arg, reference.len())?;
        check_finite(arg, reference)?;
        let fl = rdims.frame_len();
        let mut ranges = vec_with_room(rdims.n, arg)?;
        ranges.extend(reference.chunks_exact(fl).map(range_of::<T>));
        let bins: usize = ranges
            .iter()
            .flatten()
            .map(|&(lo, hi)| match (T::FLOAT, hi > lo) {
                (false, _) => 256,
                (true, true) => FLOAT_BINS,
                (true, false) => 1,
            })
            .sum();
        let per_bin = 8 + if T::FLOAT {
            std::mem::size_of::<Knots>()
        } else {
            0
        };
        let kept = bins
            .saturating_mul(per_bin)
            .saturating_add(rdims.n.saturating_mul(std::mem::size_of::<RefFrame>()));
        drop(vec_with_room::<u8>(kept, arg)?); // a probe: the histograms are made infallibly
        let mut pixels = Vec::new();
        if T::FLOAT {
            pixels = vec_with_room(reference.len(), arg)?;
            pixels.extend_from_slice(reference);
        }
        let mut frames = vec_with_room(rdims.n, arg)?;
        let blame = Blame {
            arg,
            what: "the reference",
        };
        for (r, range) in reference.chunks_exact(fl).zip(ranges) {
            frames.push(RefFrame::of(r, range, blame)?);
        }
        Ok(Self {
            frames,
            pixels,
            dims: rdims,
        })
    }

    /// How many reference frames, and their (height, width).
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// The length of [`Self::write_state`]'s bytes.
    pub fn state_len(&self) -> usize {
        if T::FLOAT {
            self.pixels.len() * 4
        } else {
            self.frames.len() * COUNT_BYTES
        }
    }

    /// The state to send elsewhere (pickling) into `out`, [`Self::state_len`] bytes: an
    /// 8-bit reference's counts, frame by frame, channel by channel (little-endian
    /// u64); a float one's pixels (little-endian f32), whose statistics are worked out
    /// again when read back.
    pub fn write_state(&self, out: &mut [u8]) {
        if T::FLOAT {
            for (b, v) in out.chunks_exact_mut(4).zip(&self.pixels) {
                b.copy_from_slice(&v.raw().to_le_bytes());
            }
            return;
        }
        let counts = self
            .frames
            .iter()
            .flat_map(|f| f.hist.counts.iter().flatten());
        for (b, &n) in out.chunks_exact_mut(8).zip(counts) {
            b.copy_from_slice(&n.to_le_bytes());
        }
    }

    /// 8-bit references from [`Self::write_state`]'s bytes: each channel's counts
    /// must sum to the frame's pixels (checked, naming `arg`, as is the length).
    pub fn from_count_bytes(state: &[u8], rdims: Dims, arg: &'static str) -> Result<Self> {
        let pixels = rdims.h.checked_mul(rdims.w).map(|p| p as u64);
        let want = rdims.n.checked_mul(COUNT_BYTES);
        if T::FLOAT || rdims.n == 0 || pixels.is_none() || Some(state.len()) != want {
            return Err(KernelError::value(
                arg,
                format!(
                    "expected the 8-bit counts of {} reference frames of {}x{} ({} bytes); got {}",
                    rdims.n,
                    rdims.w,
                    rdims.h,
                    want.map_or("too many".into(), |b| b.to_string()),
                    state.len()
                ),
            ));
        }
        let mut frames = vec_with_room(rdims.n, arg)?;
        for f in state.chunks_exact(COUNT_BYTES) {
            let mut counts: [Vec<u64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
            for (c, bytes) in f.chunks_exact(COUNT_BYTES / 3).enumerate() {
                let mut ch = vec_with_room(256, arg)?;
                ch.extend(
                    bytes
                        .chunks_exact(8)
                        .map(|b| u64::from_le_bytes(std::array::from_fn(|k| b[k]))),
                );
                // checked: counts that wrap around u64 summed to the pixels, and every
                // frame matched to them came out black
                if ch.iter().try_fold(0u64, |a, &n| a.checked_add(n)) != pixels {
                    return Err(KernelError::value(
                        arg,
                        format!(
                            "reference frame {}'s channel {c} counts do not sum to its {} pixels",
                            frames.len(),
                            rdims.h * rdims.w
                        ),
                    ));
                }
                counts[c] = ch;
            }
            frames.push(RefFrame {
                range: [(0.0, 0.0); 3],
                binning: [Binning::U8; 3],
                hist: Hist3 {
                    counts,
                    knots: None,
                },
            });
        }
        Ok(Self {
            frames,
            pixels: Vec::new(),
            dims: rdims,
        })
    }
}

/// Match each frame's per-channel histogram to its reference's.
///
/// `reference` holds one frame (shared) or one per frame; its frames may have
/// another size than `src`'s.
pub fn match_histograms<T: Sample>(
    src: &[T],
    dims: Dims,
    reference: &[T],
    rdims: Dims,
    out: &mut [T],
) -> Result<()> {
    dims.check("frames", src.len())?;
    rdims.check("reference", reference.len())?;
    dims.check("out", out.len())?;
    dims.check_one_or_per_frame("reference", &rdims)?;
    check_finite("frames", src)?;
    check_finite("reference", reference)?;
    // a shared reference is counted once, over its own range (which serves every
    // frame whose values lie within it); one per frame as its frame is matched
    let shared = if rdims.n == 1 {
        Some(RefFrame::of(reference, range_of(reference), IN_A_MATCH)?)
    } else {
        None
    };
    let prepared = match &shared {
        Some(r) => vec![Some(r)],
        None => vec![None; rdims.n],
    };
    match_with(src, dims, &prepared, reference, rdims, out)
}

/// [`match_histograms`] toward a reference worked out before.
pub fn match_histograms_prepared<T: Sample>(
    src: &[T],
    dims: Dims,
    reference: &PreparedReference<T>,
    out: &mut [T],
) -> Result<()> {
    dims.check("frames", src.len())?;
    dims.check("out", out.len())?;
    dims.check_one_or_per_frame("reference", &reference.dims)?;
    check_finite("frames", src)?;
    let prepared: Vec<Option<&RefFrame>> = reference.frames.iter().map(Some).collect();
    match_with(src, dims, &prepared, &reference.pixels, reference.dims, out)
}

/// The match, each reference frame's statistics taken from `prepared` (one, shared, or
/// one per frame) where there, else counted from `reference`'s pixels (which may be
/// empty for 8-bit references, whose binning never changes).
fn match_with<T: Sample>(
    src: &[T],
    dims: Dims,
    prepared: &[Option<&RefFrame>],
    reference: &[T],
    rdims: Dims,
    out: &mut [T],
) -> Result<()> {
    let rf = rdims.frame_len();
    let ref_frame = |k: usize| {
        reference.get(k * rf..(k + 1) * rf).ok_or_else(|| {
            KernelError::value("reference", "its pixels are needed and were not kept")
        })
    };
    super::parallel::per_frame(src, dims.frame_len(), out, dims.frame_len(), |i, s, o| {
        let k = if prepared.len() == 1 { 0 } else { i };
        let own;
        let own_range = range_of(s);
        let (binning, rh) = match prepared[k] {
            Some(p) => {
                let binning = binning_of::<T>(own_range, p.range, IN_A_MATCH)?;
                if binning == p.binning {
                    (binning, &p.hist)
                } else {
                    own = histogram(ref_frame(k)?, &binning, T::FLOAT);
                    (binning, &own)
                }
            }
            None => {
                let r = ref_frame(k)?;
                let binning = binning_of::<T>(own_range, range_of(r), IN_A_MATCH)?;
                own = histogram(r, &binning, T::FLOAT);
                (binning, &own)
            }
        };
        let sh = histogram(s, &binning, false);
        let luts: [Vec<T>; 3] = std::array::from_fn(|c| {
            let (tq, tv) = rh.quantiles(c, |k| k as f64);
            bin_mapping(&sh.counts[c], &tq, &tv)
                .into_iter()
                .map(T::from_raw_trunc)
                .collect()
        });
        // 8-bit frames: the tables as bytes, for the vector lookup
        let bytes: Option<[[u8; 256]; 3]> = (!T::FLOAT)
            .then(|| std::array::from_fn(|c| std::array::from_fn(|k| luts[c][k].code() as u8)));
        super::parallel::zip_chunks(s, 3, o, 3, CHUNK / 3, |sc, oc| {
            if T::FLOAT {
                for (p, q) in sc.chunks_exact(3).zip(oc.chunks_exact_mut(3)) {
                    for c in 0..3 {
                        q[c] = luts[c][binning[c].bin(p[c].raw())];
                    }
                }
            } else {
                #[cfg(target_arch = "x86_64")]
                if let (Some(sb), Some(ob), Some(t)) = (T::bytes(sc), T::bytes_mut(oc), &bytes) {
                    if super::x86::lut3_bytes(sb, ob, t) {
                        return;
                    }
                }
                for (p, q) in sc.chunks_exact(3).zip(oc.chunks_exact_mut(3)) {
                    for c in 0..3 {
                        q[c] = luts[c][p[c].code()];
                    }
                }
            }
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::lcg_bytes;

    /// f64 reference: scikit-image's algorithm on one channel, written plainly.
    fn reference_channel(src: &[f64], tmpl: &[f64]) -> Vec<f64> {
        let mut sv: Vec<f64> = src.to_vec();
        sv.sort_by(|a, b| a.partial_cmp(b).unwrap());
        sv.dedup();
        let mut tv: Vec<f64> = tmpl.to_vec();
        tv.sort_by(|a, b| a.partial_cmp(b).unwrap());
        tv.dedup();
        let cdf = |data: &[f64], v: f64| {
            data.iter().filter(|&&x| x <= v).count() as f64 / data.len() as f64
        };
        let tq: Vec<f64> = tv.iter().map(|&v| cdf(tmpl, v)).collect();
        src.iter()
            .map(|&x| {
                let q = cdf(src, x);
                let mut res = 0.0;
                interp_sorted(std::iter::once(q), &tq, &tv, |v| res = v);
                res
            })
            .collect()
    }

    fn pseudo(len: usize, seed: u64) -> Vec<u8> {
        // skewed distribution so histograms differ
        lcg_bytes(len, seed)
            .into_iter()
            .map(|v| (v as u32 * v as u32 / 256) as u8)
            .collect()
    }

    #[test]
    fn u8_matches_reference_at_odd_widths() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(2, 5, w);
            let rdims = Dims::new(1, 3, 11);
            let src = pseudo(dims.len(), w as u64);
            let reference: Vec<u8> = pseudo(rdims.len(), 99)
                .iter()
                .map(|v| 255 - v / 2)
                .collect();
            let mut out = vec![0u8; dims.len()];
            match_histograms(&src, dims, &reference, rdims, &mut out).unwrap();
            for f in 0..2 {
                let fl = dims.frame_len();
                for c in 0..3 {
                    let s: Vec<f64> = src[f * fl..(f + 1) * fl]
                        .iter()
                        .skip(c)
                        .step_by(3)
                        .map(|&v| v as f64)
                        .collect();
                    let t: Vec<f64> = reference
                        .iter()
                        .skip(c)
                        .step_by(3)
                        .map(|&v| v as f64)
                        .collect();
                    let want = reference_channel(&s, &t);
                    let got: Vec<u8> = out[f * fl..(f + 1) * fl]
                        .iter()
                        .skip(c)
                        .step_by(3)
                        .copied()
                        .collect();
                    for (g, wv) in got.iter().zip(&want) {
                        assert_eq!(*g, *wv as u8, "w={w}");
                    }
                }
            }
        }
    }

    #[test]
    fn f32_matches_reference_on_distinct_levels() {
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(1, 4, w);
            let src: Vec<f32> = pseudo(dims.len(), 5 + w as u64)
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect();
            let reference: Vec<f32> = pseudo(dims.len(), 7)
                .iter()
                .map(|&v| v as f32 / 300.0 + 0.1)
                .collect();
            let mut out = vec![0f32; dims.len()];
            match_histograms(&src, dims, &reference, dims, &mut out).unwrap();
            for c in 0..3 {
                let s: Vec<f64> = src.iter().skip(c).step_by(3).map(|&v| v as f64).collect();
                let t: Vec<f64> = reference
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&v| v as f64)
                    .collect();
                let want = reference_channel(&s, &t);
                for (g, wv) in out.iter().skip(c).step_by(3).zip(&want) {
                    assert!((*g as f64 - wv).abs() < 1e-6, "w={w}: {g} vs {wv}");
                }
            }
        }
    }

    /// A crowded reference bin after a gap: its least value is reached within
    /// one pixel's share of the curve, as in scikit-image. Keeping only the
    /// bin's mean made the frame's middle values a slope from the value before
    /// the gap (0.133 and 0.267 where scikit-image gives 0.40003 and 0.40007).
    #[test]
    fn f32_crowded_reference_bin_after_a_gap() {
        let mut tmpl = vec![0.0f64];
        tmpl.extend((0..1000).map(|i| 0.4 + 1e-4 * i as f64 / 999.0));
        tmpl.push(1.0);
        let src = [0.1f64, 0.5, 0.9];
        let to_rgb = |v: &[f64]| -> Vec<f32> { v.iter().flat_map(|&x| [x as f32; 3]).collect() };
        let (s, t) = (to_rgb(&src), to_rgb(&tmpl));
        let mut out = vec![0f32; s.len()];
        let (dims, rdims) = (Dims::new(1, 1, src.len()), Dims::new(1, 1, tmpl.len()));
        match_histograms(&s, dims, &t, rdims, &mut out).unwrap();
        let s64: Vec<f64> = s.iter().step_by(3).map(|&v| v as f64).collect();
        let t64: Vec<f64> = t.iter().step_by(3).map(|&v| v as f64).collect();
        let want = reference_channel(&s64, &t64);
        let bin = 1.0 / FLOAT_BINS as f64; // the range is [0, 1]
        for (g, w) in out.iter().step_by(3).zip(&want) {
            assert!((*g as f64 - w).abs() <= bin, "{g} vs {w}");
        }
    }

    #[test]
    fn knots_merge_in_any_order() {
        let vals = [0.5f32, 0.25, 0.25, 0.75, 0.25, 0.5];
        let mut whole = Knots::EMPTY;
        vals.iter().for_each(|&v| whole.add(v));
        assert_eq!((whole.lo, whole.at_lo, whole.hi), (0.25, 3, 0.75));
        for split in 0..=vals.len() {
            let (mut a, mut b) = (Knots::EMPTY, Knots::EMPTY);
            vals[..split].iter().for_each(|&v| a.add(v));
            vals[split..].iter().for_each(|&v| b.add(v));
            assert_eq!(a.merge(b), whole);
            assert_eq!(b.merge(a), whole);
        }
    }

    #[test]
    fn matching_to_itself_is_identity() {
        let dims = Dims::new(1, 9, 17);
        let src = pseudo(dims.len(), 3);
        let mut out = vec![0u8; dims.len()];
        match_histograms(&src, dims, &src, dims, &mut out).unwrap();
        assert_eq!(src, out);
    }

    #[test]
    fn constant_images() {
        let dims = Dims::new(1, 2, 3);
        let src = vec![10u8; dims.len()];
        let reference = vec![200u8; dims.len()];
        let mut out = vec![0u8; dims.len()];
        match_histograms(&src, dims, &reference, dims, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 200));
        let srcf = vec![0.5f32; dims.len()];
        let mut outf = vec![0f32; dims.len()];
        match_histograms(&srcf, dims, &srcf, dims, &mut outf).unwrap();
        assert!(outf.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn refuses_wrong_reference_count() {
        let dims = Dims::new(3, 2, 2);
        let rdims = Dims::new(2, 2, 2);
        let mut out = vec![0u8; dims.len()];
        let err = match_histograms(
            &vec![0u8; dims.len()],
            dims,
            &vec![0u8; rdims.len()],
            rdims,
            &mut out,
        );
        assert_eq!(err.unwrap_err().arg(), "reference");
    }

    #[test]
    fn prepared_reference_matches_as_the_reference_itself() {
        let dims = Dims::new(3, 9, 17);
        for n_ref in [1usize, 3] {
            let rdims = Dims::new(n_ref, 5, 7);
            let src = pseudo(dims.len(), 5);
            let reference = pseudo(rdims.len(), 77 + n_ref as u64);
            let (mut a, mut b) = (vec![0u8; dims.len()], vec![0u8; dims.len()]);
            match_histograms(&src, dims, &reference, rdims, &mut a).unwrap();
            let p = PreparedReference::new(&reference, rdims, "reference").unwrap();
            match_histograms_prepared(&src, dims, &p, &mut b).unwrap();
            assert_eq!(a, b);
            // from its counts, as unpickled
            let mut state = vec![0u8; p.state_len()];
            p.write_state(&mut state);
            let q = PreparedReference::<u8>::from_count_bytes(&state, rdims, "state").unwrap();
            match_histograms_prepared(&src, dims, &q, &mut b).unwrap();
            assert_eq!(a, b);
            // float: frames inside the reference's range and reaching past it (counted
            // again from the pixels it keeps, over both ranges)
            let fref: Vec<f32> = reference.iter().map(|&v| v as f32 / 255.0).collect();
            let p = PreparedReference::new(&fref, rdims, "reference").unwrap();
            for scale in [0.5f32, 1.0, 3.0] {
                let fsrc: Vec<f32> = src.iter().map(|&v| v as f32 / 255.0 * scale).collect();
                let (mut a, mut b) = (vec![0f32; dims.len()], vec![0f32; dims.len()]);
                match_histograms(&fsrc, dims, &fref, rdims, &mut a).unwrap();
                match_histograms_prepared(&fsrc, dims, &p, &mut b).unwrap();
                assert_eq!(a, b, "scale {scale}");
            }
        }
    }

    #[test]
    fn prepared_reference_refuses_what_does_not_fit() {
        let rdims = Dims::new(1, 2, 2);
        let p = PreparedReference::new(&pseudo(rdims.len(), 3), rdims, "reference").unwrap();
        let mut state = vec![0u8; p.state_len()];
        p.write_state(&mut state);
        assert_eq!(state.len(), 3 * 256 * 8);
        let from = |s: &[u8], d| PreparedReference::<u8>::from_count_bytes(s, d, "state");
        let mut bad = state.clone();
        bad[8] += 1; // a channel no longer sums to the frame's 4 pixels
        assert_eq!(from(&bad, rdims).unwrap_err().arg(), "state");
        // counts that wrap around u64 to the frame's 4 pixels
        let mut wrap = vec![0u8; state.len()];
        for c in 0..3 {
            let at = c * 2048;
            wrap[at..at + 8].copy_from_slice(&(1u64 << 63).to_le_bytes());
            wrap[at + 8..at + 16].copy_from_slice(&(1u64 << 63).to_le_bytes());
            wrap[at + 16..at + 24].copy_from_slice(&4u64.to_le_bytes());
        }
        assert!(from(&wrap, rdims).is_err());
        assert!(from(&state[..state.len() - 1], rdims).is_err());
        assert!(from(&state, Dims::new(2, 2, 2)).is_err());
        assert!(from(&state, Dims::new(1, usize::MAX, 3)).is_err());
        assert!(PreparedReference::<f32>::from_count_bytes(&state, rdims, "state").is_err());
        // two references for a batch of three frames
        let two = PreparedReference::new(&pseudo(8 * 3, 4), Dims::new(2, 2, 2), "reference");
        let dims = Dims::new(3, 2, 2);
        let mut out = vec![0u8; dims.len()];
        let e = match_histograms_prepared(&pseudo(dims.len(), 1), dims, &two.unwrap(), &mut out);
        assert_eq!(e.unwrap_err().arg(), "reference");
        let nan = [0.5f32, f32::NAN, 0.1].repeat(4);
        assert_eq!(
            PreparedReference::new(&nan, rdims, "state")
                .unwrap_err()
                .arg(),
            "state"
        );
        // a span f32 bins cannot hold is the reference's, not some frames'
        let wide = [-3e38f32, 0.0, 0.0, 3e38, 0.0, 0.0].repeat(2);
        let e = PreparedReference::new(&wide, rdims, "reference").unwrap_err();
        assert_eq!(e.arg(), "reference");
        assert!(e.to_string().contains("in the reference span"), "{e}");
    }
}
