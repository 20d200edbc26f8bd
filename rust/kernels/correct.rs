//! The seed's whole per-frame colour step fused into one pass pair:
//!
//! 1. CIELAB histogram matching of the frame to the target (per channel, on
//!    [`FLOAT_BINS`] bins over fixed ranges: L in [0, 100], a and b in
//!    [-112, 112], which hold the whole sRGB gamut; bin width 0.024 in L and
//!    0.055 in a and b);
//! 2. the LUMINOSITY blend: hue and saturation of the matched colour,
//!    luminance (Rec.601) of the frame itself;
//! 3. optionally, the gamma match of [`super::gamma`]: the gamma that brings the
//!    result's mean L* to the target's.
//!
//! Unlike the seed, nothing is rounded to 8 bits between the steps: the
//! matched Lab goes to RGB in f32 and into the blend directly. Pass one stores
//! each pixel's three bin indices (6 bytes per pixel), not its Lab value, since
//! the matched value depends on the bin alone.

use std::sync::Mutex;

use rayon::prelude::*;

use super::blend::{lum, set_lum_block};
use super::error::{try_zeroed, vec_with_room, KernelError, Result};
use super::frames::{
    check_finite, check_frames_and_out, check_frames_and_reference, clamp01, Dims, Sample,
};
use super::gamma::{
    gamma_table_u8, pow_unit, sampled_target, solve_gamma_on, to_f32_gamma, SampleGrid,
};
use super::histogram::{bin_mapping, Binning, Hist3, FLOAT_BINS};
use super::lab::{
    decode_block, encode_planes_oct, f_from_linear_block, linear_from_lab_block, LabConsts, Planes,
    BLOCK,
};
use super::parallel::{fold_min_len, install, CHUNK};
use super::simd::{prefetch_ahead, simd_dispatch};

/// The fixed Lab binning of the fused kernel.
pub fn lab_binning() -> [Binning; 3] {
    [
        Binning::range(0.0, 100.0, FLOAT_BINS),
        Binning::range(-112.0, 112.0, FLOAT_BINS),
        Binning::range(-112.0, 112.0, FLOAT_BINS),
    ]
}

/// What the correction needs of a target frame.
pub struct TargetStats {
    /// Lab histogram (counts; a bin stands for its centre).
    pub hist: Hist3,
    /// Mean L*.
    pub mean_l: f64,
}

/// The matched Lab value of each bin, per channel; a power-of-two length, so
/// an index masked to it needs no bounds check.
type Luts = [Box<[f32; FLOAT_BINS]>; 3];

const _: () = assert!(FLOAT_BINS.is_power_of_two());

/// Copies of each channel's counts: pixel `i` of a block counts into copy
/// `i % COPIES`, so runs of equal bins in smooth images do not serialise on one
/// counter (measured: 18.6 -> 17.7 ms per 1080p frame with four copies, not two).
const COPIES: usize = 4;

/// Counters from one copy to the next (copies of all three channels in one
/// array, channel-major): a bin's twelve counters sit 64 bytes apart beyond
/// multiples of 4 KiB, not exactly 16 KiB apart. Intel cores compare the low 12
/// address bits of a load with the stores still in flight, and an increment
/// of bin `b` right after one of the same bin in another copy (a run of equal
/// bins) would wait for that store ("4K aliasing").
const STRIDE: usize = FLOAT_BINS + 16;

/// Bin counts of a frame's Lab values, [`COPIES`] copies per channel, each of
/// [`STRIDE`] counters (the first [`FLOAT_BINS`] used).
struct Counts(Vec<u32>);

impl Counts {
    fn new() -> Self {
        Self(vec![0; 3 * COPIES * STRIDE])
    }

    fn merge(mut self, other: Self) -> Self {
        self.0.iter_mut().zip(&other.0).for_each(|(x, y)| *x += y);
        self
    }

    fn channel(&self, c: usize) -> Vec<u64> {
        let mut v = vec![0; FLOAT_BINS];
        self.channel_into(c, &mut v);
        v
    }

    /// [`Counts::channel`] into `v` ([`FLOAT_BINS`] values).
    fn channel_into(&self, c: usize, v: &mut [u64]) {
        let copies = &self.0[c * COPIES * STRIDE..(c + 1) * COPIES * STRIDE];
        for (b, x) in v.iter_mut().enumerate() {
            *x = (0..COPIES).map(|k| copies[k * STRIDE + b] as u64).sum();
        }
    }
}

/// The sum of the first `n` values of a block, in eight lanes so it vectorises.
#[inline(always)]
fn block_sum(v: &[f32; BLOCK], n: usize) -> f32 {
    if n < BLOCK {
        return v[..n].iter().sum();
    }
    let mut acc = [0.0f32; 8];
    for lanes in v.chunks_exact(8) {
        for (a, x) in acc.iter_mut().zip(lanes) {
            *a += x;
        }
    }
    acc.iter().sum()
}

/// Pass one over a chunk: Lab bins, their counts, the sum of the CIE f of Y
/// (L* = 116 fy - 16), and (unless `bins` is empty) each pixel's three bin
/// indices, planar per block: for a block of `n` pixels, `n` L bins, then `n`
/// a bins, then `n` b bins.
#[inline(always)]
fn bin_chunk_imp<T: Sample>(
    k: &LabConsts,
    binning: &[Binning; 3],
    hist: &mut [u32],
    sum_fy: &mut f64,
    s: &[T],
    bins: &mut [u16],
) {
    let nb = FLOAT_BINS;
    assert!(binning.iter().all(|b| b.bins() == nb) && hist.len() == 3 * COPIES * STRIDE);
    let (mut rgb, mut f): (Planes, Planes) = ([[0.0; BLOCK]; 3], [[0.0; BLOCK]; 3]);
    let mut idx = [[0u32; BLOCK]; 3];
    let fold = [
        binning[0].folded(116.0, -16.0),
        binning[1].folded(500.0, 0.0),
        binning[2].folded(200.0, 0.0),
    ];
    for (bi, sb) in s.chunks(3 * BLOCK).enumerate() {
        prefetch_ahead(sb);
        if !bins.is_empty() {
            prefetch_ahead(&bins[bi * 3 * BLOCK..bi * 3 * BLOCK + sb.len()]);
        }
        decode_block(sb, &mut rgb);
        f_from_linear_block(k, &rgb, &mut f);
        let n = sb.len() / 3;
        *sum_fy += block_sum(&f[1], n) as f64;
        // each bin straight from the f values: L* = 116 fy - 16, a* = 500 (fx - fy),
        // b* = 200 (fy - fz), each with its binning's offset and scale folded in
        // (a grey's fx - fy is exactly 0, so it lands on the a and b bins of 0)
        for i in 0..BLOCK {
            let [fx, fy, fz] = [f[0][i], f[1][i], f[2][i]];
            let t = [
                fy.mul_add(fold[0].0, fold[0].1),
                (fx - fy).mul_add(fold[1].0, fold[1].1),
                (fy - fz).mul_add(fold[2].0, fold[2].1),
            ];
            for c in 0..3 {
                idx[c][i] = binning[c].bin_of_scaled(t[c]) as u32;
            }
        }
        // the three channels' increments interleaved, twelve counters a step
        // (on the Xeon measured, with STRIDE: pass one 1.13x, each alone
        // 1.02-1.07x; color_correct 1.03-1.04x)
        let whole = n - n % COPIES;
        for q in (0..whole).step_by(COPIES) {
            for (c, ic) in idx.iter().enumerate() {
                for k in 0..COPIES {
                    // SAFETY: `Binning::bin` is below the binning's bin count, which
                    // is FLOAT_BINS (asserted on entry); c < 3 and k < COPIES, and
                    // q + k < n <= BLOCK
                    unsafe {
                        let b = *ic.get_unchecked(q + k) as usize;
                        *hist.get_unchecked_mut((c * COPIES + k) * STRIDE + b) += 1;
                    }
                }
            }
        }
        for (c, ic) in idx.iter().enumerate() {
            for (k, &b) in ic[whole..n].iter().enumerate() {
                hist[(c * COPIES + k) * STRIDE + b as usize] += 1;
            }
        }
        if !bins.is_empty() {
            let bb = &mut bins[bi * 3 * BLOCK..bi * 3 * BLOCK + sb.len()];
            for (c, plane) in bb.chunks_exact_mut(n).enumerate() {
                for (b, &i) in plane.iter_mut().zip(&idx[c]) {
                    *b = i as u16;
                }
            }
        }
    }
}

simd_dispatch!(fn bin_chunk<T: Sample>(k: &LabConsts, binning: &[Binning; 3], hist: &mut [u32], sum_fy: &mut f64, s: &[T], bins: &mut [u16]) = bin_chunk_imp);

/// Where pass one copies the gamma sample: each pick's samples and its three
/// bins, in pick order.
struct SampleOut<'a, T> {
    px: &'a mut [[T; 3]],
    bins: &'a mut [[u16; 3]],
}

impl<'a, T> SampleOut<'a, T> {
    fn empty() -> Self {
        Self {
            px: &mut [],
            bins: &mut [],
        }
    }

    /// One part per chunk of `chunk_px` pixels of a frame of `n_px`: a chunk's
    /// picks are consecutive.
    fn per_chunk(self, grid: &SampleGrid, n_px: usize, chunk_px: usize) -> Vec<Self> {
        let (mut px, mut bins, mut done) = (self.px, self.bins, 0);
        (0..n_px.div_ceil(chunk_px))
            .map(|i| {
                let end = grid.before(((i + 1) * chunk_px).min(n_px));
                let (part_px, rest_px) = std::mem::take(&mut px).split_at_mut(end - done);
                let (part_bins, rest_bins) = std::mem::take(&mut bins).split_at_mut(end - done);
                (px, bins, done) = (rest_px, rest_bins, end);
                Self {
                    px: part_px,
                    bins: part_bins,
                }
            })
            .collect()
    }
}

/// Copy the picks among a chunk's pixels (the chunk starting at pixel `p0`,
/// its bins planar per block as [`bin_chunk`] leaves them) into `out`.
fn take_sample<T: Sample>(grid: &SampleGrid, p0: usize, s: &[T], b: &[u16], out: SampleOut<'_, T>) {
    let n_px = s.len() / 3;
    let mut r = 0;
    for p in grid.within(p0, p0 + n_px) {
        let q = p - p0;
        let (block, at) = (q / BLOCK, q % BLOCK);
        let n = (n_px - block * BLOCK).min(BLOCK);
        let first = block * 3 * BLOCK + at;
        out.bins[r] = [b[first], b[first + n], b[first + 2 * n]];
        out.px[r] = [s[3 * q], s[3 * q + 1], s[3 * q + 2]];
        r += 1;
    }
    debug_assert_eq!(r, out.px.len());
}

/// Counts and fy sum (see [`bin_chunk`]) of a whole frame, storing bin indices
/// into `bins` unless empty, and the gamma sample into `sample` if given.
fn count_frame<T: Sample>(
    k: &LabConsts,
    binning: &[Binning; 3],
    src: &[T],
    bins: &mut [u16],
    sample: Option<(&SampleGrid, SampleOut<'_, T>)>,
) -> (Counts, f64) {
    let run = |(mut h, mut l): (Counts, f64), s: &[T], b: &mut [u16]| {
        bin_chunk(k, binning, &mut h.0, &mut l, s, b);
        (h, l)
    };
    let merge = |a: (Counts, f64), b: (Counts, f64)| (a.0.merge(b.0), a.1 + b.1);
    assert!(
        sample.is_none() || !bins.is_empty(),
        "the sample is taken with the bins"
    );
    install(|| {
        let min = fold_min_len(src.len(), CHUNK);
        if bins.is_empty() {
            return src
                .par_chunks(CHUNK)
                .with_min_len(min)
                .fold(|| (Counts::new(), 0.0), |acc, s| run(acc, s, &mut []))
                .reduce_with(merge);
        }
        let grid = sample.as_ref().map(|s| s.0);
        let parts = match sample {
            Some((g, out)) => out.per_chunk(g, src.len() / 3, CHUNK / 3),
            None => (0..src.len().div_ceil(CHUNK))
                .map(|_| SampleOut::empty())
                .collect(),
        };
        src.par_chunks(CHUNK)
            .zip(bins.par_chunks_mut(CHUNK))
            .zip(parts)
            .enumerate()
            .with_min_len(min)
            .fold(
                || (Counts::new(), 0.0),
                |acc, (i, ((s, b), part))| {
                    let acc = run(acc, s, b);
                    if let Some(g) = &grid {
                        take_sample(g, i * (CHUNK / 3), s, b, part);
                    }
                    acc
                },
            )
            .reduce_with(merge)
    })
    .expect("non-empty frame")
}

/// Lab histogram and mean lightness of one target frame; NoMemory (for
/// `target`) where its histogram's memory is not there.
pub fn target_stats<T: Sample>(target: &[T], binning: &[Binning; 3]) -> Result<TargetStats> {
    let (counts, sum_fy) = count_frame(&LabConsts::new(), binning, target, &mut [], None);
    Ok(TargetStats {
        hist: hist_of("target", |c, v| {
            counts.channel_into(c, v);
            Ok(())
        })?,
        mean_l: 116.0 * sum_fy / (target.len() / 3) as f64 - 16.0,
    })
}

/// A target's histogram of [`FLOAT_BINS`] counts a channel, each channel's allocated
/// fallibly (NoMemory for `arg`: a prepared target keeps them for good) and filled by
/// `fill(channel, counts)`.
fn hist_of(
    arg: &'static str,
    mut fill: impl FnMut(usize, &mut [u64]) -> Result<()>,
) -> Result<Hist3> {
    let mut counts: [Vec<u64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (c, v) in counts.iter_mut().enumerate() {
        *v = try_zeroed(FLOAT_BINS, arg)?;
        fill(c, v)?;
    }
    Ok(Hist3 {
        counts,
        knots: None,
    })
}

/// Bytes per target frame in [`stats_to_bytes`]: the three channels' counts as
/// little-endian `u64`, then the mean L* as a little-endian `f64`.
pub const STATS_BYTES: usize = (3 * FLOAT_BINS + 1) * 8;

/// Target statistics as plain bytes ([`STATS_BYTES`] a frame), for saving and
/// sending to other processes; [`stats_from_bytes`] reads them back. NoMemory (for
/// `target`) where the bytes' memory is not there.
pub fn stats_to_bytes(stats: &[TargetStats]) -> Result<Vec<u8>> {
    let mut out = vec_with_room::<u8>(stats.len().saturating_mul(STATS_BYTES), "target")?;
    for t in stats {
        for c in &t.hist.counts {
            c.iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        out.extend_from_slice(&t.mean_l.to_le_bytes());
    }
    Ok(out)
}

/// What [`stats_to_bytes`] wrote, checked as `arg`: a whole number of frames, each
/// channel counting `pixels` in all (what a target of that size gives), and a
/// finite mean L* in 0..100 (a hair outside it from f32 sums).
pub fn stats_from_bytes(bytes: &[u8], pixels: u64, arg: &'static str) -> Result<Vec<TargetStats>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(STATS_BYTES) {
        return Err(KernelError::shape(
            arg,
            format!("a multiple of {STATS_BYTES} bytes (one target frame's statistics)"),
            format!("{} bytes", bytes.len()),
        ));
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let mut stats = Vec::new();
    for (i, frame) in bytes.chunks_exact(STATS_BYTES).enumerate() {
        let hist = hist_of(arg, |c, v| {
            let words = frame[c * FLOAT_BINS * 8..(c + 1) * FLOAT_BINS * 8].chunks_exact(8);
            v.iter_mut().zip(words).for_each(|(x, b)| *x = word(b));
            let total = v.iter().try_fold(0u64, |a, &x| a.checked_add(x));
            if total != Some(pixels) {
                return Err(KernelError::value(
                    arg,
                    format!(
                        "target frame {i}'s channel {c} counts {} pixels, not the {pixels} of \
                         its size: the statistics are damaged",
                        total.map_or("more than 2^64".to_string(), |t| t.to_string())
                    ),
                ));
            }
            Ok(())
        })?;
        let mean_l = f64::from_bits(word(&frame[3 * FLOAT_BINS * 8..]));
        if !(-1.0..=101.0).contains(&mean_l) {
            return Err(KernelError::value(
                arg,
                format!("target frame {i}'s mean L* is {mean_l}, outside 0..100: the statistics are damaged"),
            ));
        }
        stats.push(TargetStats { hist, mean_l });
    }
    Ok(stats)
}

/// How pass two finishes each sample: the gamma table of an 8-bit frame, or a
/// float power, exactly as `adjust_gamma` does to the quantised sample (the
/// power is raised on the planes, before interleaving, so it vectorises).
struct GammaOut {
    table: [u8; 256],
    power: f32,
}

impl GammaOut {
    fn new(g: f64) -> Self {
        Self {
            table: gamma_table_u8(g),
            power: to_f32_gamma(g),
        }
    }

    /// The table's value for an 8-bit sample.
    #[inline(always)]
    fn table_of<T: Sample>(&self, q: T) -> T {
        T::from_raw_round(self.table[q.code()] as f32)
    }
}

/// Pass two over a chunk: matched Lab from the bins, to RGB, then the
/// luminosity blend with the frame's own pixels, then the gamma if given.
#[inline(always)]
fn blend_chunk_imp<T: Sample>(
    k: &LabConsts,
    luts: &Luts,
    gamma: Option<&GammaOut>,
    s: &[T],
    bins: &[u16],
    o: &mut [T],
) {
    let (mut lab, mut rgb, mut own): (Planes, Planes, Planes) =
        ([[0.0; BLOCK]; 3], [[0.0; BLOCK]; 3], [[0.0; BLOCK]; 3]);
    for ((sb, bb), ob) in s
        .chunks(3 * BLOCK)
        .zip(bins.chunks(3 * BLOCK))
        .zip(o.chunks_mut(3 * BLOCK))
    {
        let n = sb.len() / 3;
        prefetch_ahead(sb);
        prefetch_ahead(bb);
        prefetch_ahead(ob);
        for c in 0..3 {
            let lut = &*luts[c];
            for (l, &b) in lab[c].iter_mut().zip(&bb[c * n..(c + 1) * n]) {
                *l = lut[b as usize & (FLOAT_BINS - 1)];
            }
        }
        linear_from_lab_block(k, &lab, &mut rgb);
        encode_planes_oct(&mut rgb);
        if !unit(sb, &mut own) {
            for (i, p) in sb.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    own[c][i] = p[c].to_unit();
                }
            }
        }
        // the blend, planar so it vectorises
        let l: [f32; BLOCK] = std::array::from_fn(|i| lum([own[0][i], own[1][i], own[2][i]]));
        set_lum_block(&mut rgb, &l);
        if let (true, Some(g)) = (T::FLOAT, gamma) {
            for plane in rgb.iter_mut() {
                for v in plane.iter_mut() {
                    *v = pow_unit(clamp01(*v), g.power);
                }
            }
        }
        if !store(&rgb, ob, gamma) {
            for (i, q) in ob.chunks_exact_mut(3).enumerate() {
                for c in 0..3 {
                    let v = T::from_unit(rgb[c][i]);
                    q[c] = match gamma {
                        Some(g) if !T::FLOAT => g.table_of(v),
                        _ => v,
                    };
                }
            }
        }
    }
}

#[inline(always)]
fn unit<T: Sample>(s: &[T], own: &mut Planes) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = T::bytes(s) {
        return super::x86::unit_u8(b, own);
    }
    false
}

#[inline(always)]
fn store<T: Sample>(rgb: &Planes, o: &mut [T], gamma: Option<&GammaOut>) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = T::bytes_mut(o) {
        return super::x86::encode_u8(rgb, b, gamma.map(|g| &g.table));
    }
    false
}

simd_dispatch!(fn blend_chunk<T: Sample>(k: &LabConsts, luts: &Luts, gamma: Option<&GammaOut>, s: &[T], bins: &[u16], o: &mut [T]) = blend_chunk_imp);

/// Pass two on the pixels the gamma is solved on (with their bins, as pass
/// one copied them out), then the gamma from them.
fn gamma_from_sample<T: Sample>(
    k: &LabConsts,
    luts: &Luts,
    px: &[[T; 3]],
    bins: &[[u16; 3]],
    target_l: f64,
    work: &mut SampleWork<T>,
) -> f64 {
    let s = px.as_flattened();
    // the bins planar per block, as blend_chunk reads them (every entry is
    // written below, and every pixel of `out` by blend_chunk)
    let (b, out) = (&mut work.planar_bins, &mut work.blended);
    b.resize(3 * bins.len(), 0);
    out.resize(px.len(), px[0]);
    for (blk, out) in bins.chunks(BLOCK).zip(b.chunks_mut(3 * BLOCK)) {
        for (i, pb) in blk.iter().enumerate() {
            for c in 0..3 {
                out[c * blk.len() + i] = pb[c];
            }
        }
    }
    blend_chunk(k, luts, None, s, b, out.as_flattened_mut());
    solve_gamma_on(out, target_l)
}

/// [`gamma_from_sample`]'s buffers: the sample's bins planar per block, and
/// its pixels corrected.
struct SampleWork<T> {
    planar_bins: Vec<u16>,
    blended: Vec<[T; 3]>,
}

/// A frame's working buffers: its bins (6 bytes a pixel), the gamma sample's
/// pixels and bins, and the gamma solve's (about 0.6 MB at 1080p, reused
/// rather than allocated, faulted in and zeroed for every frame).
struct Scratch<T> {
    bins: Vec<u16>,
    px: Vec<[T; 3]>,
    sample_bins: Vec<[u16; 3]>,
    work: SampleWork<T>,
}

/// Buffers handed from frame to frame within one call, so a batch allocates,
/// and the OS zeroes pages for, about one set per thread rather than one per
/// frame.
type Spare<T> = Mutex<Vec<Scratch<T>>>;

/// Correct one frame toward a target's statistics; returns the gamma applied (1 if none).
/// Fails only for want of memory for its bins.
fn correct_frame<T: Sample>(
    src: &[T],
    h: usize,
    w: usize,
    target: &TargetStats,
    gamma: bool,
    out: &mut [T],
    spare: &Spare<T>,
) -> Result<f64> {
    let binning = lab_binning();
    let k = LabConsts::new();
    let grid = SampleGrid::shared(h, w);
    let spared = spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
    // new buffers come zeroed from the allocator (fresh pages, no memset)
    let mut buf = match spared {
        Some(b) => b,
        None => Scratch {
            bins: try_zeroed(src.len(), "frames")?,
            px: Vec::new(),
            sample_bins: Vec::new(),
            work: SampleWork {
                planar_bins: Vec::new(),
                blended: Vec::new(),
            },
        },
    };
    buf.bins.resize(src.len(), 0);
    let n_sample = if gamma { grid.count() } else { 0 };
    buf.px.resize(n_sample, [src[0]; 3]);
    buf.sample_bins.resize(n_sample, [0; 3]);
    let Scratch {
        bins,
        px,
        sample_bins,
        work,
    } = &mut buf;
    let sink = gamma.then_some((
        &*grid,
        SampleOut {
            px: &mut px[..],
            bins: &mut sample_bins[..],
        },
    ));
    let (counts, sum_fy) = count_frame(&k, &binning, src, bins, sink);
    // the matched Lab value of every bin
    let luts: Luts = std::array::from_fn(|c| {
        let (tq, tv) = target.hist.quantiles(c, |b| binning[c].center(b));
        let m = bin_mapping(&counts.channel(c), &tq, &tv);
        Box::new(std::array::from_fn(|b| m[b] as f32))
    });
    // the gamma first, on a sample of the corrected pixels, so pass two applies it
    let g = if gamma {
        // the sample's error in mean L* taken from the frame as it comes (its exact
        // mean from pass one): the correction moves sample and frame alike
        let mut want = target.mean_l;
        if px.len() < h * w {
            let exact = 116.0 * sum_fy / (h * w) as f64 - 16.0;
            want = sampled_target(want, exact, px);
        }
        gamma_from_sample(&k, &luts, px, sample_bins, want, work)
    } else {
        1.0
    };
    let finish = (g != 1.0).then(|| GammaOut::new(g));
    install(|| {
        src.par_chunks(CHUNK)
            .zip(bins.par_chunks(CHUNK))
            .zip(out.par_chunks_mut(CHUNK))
            .for_each(|((s, b), o)| blend_chunk(&k, &luts, finish.as_ref(), s, b, o))
    });
    spare.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
    Ok(g)
}

/// Where each frame's target statistics come from.
enum Targets<'a, T> {
    /// One for every frame.
    Shared(&'a TargetStats),
    /// One per frame, worked out already.
    Each(&'a [TargetStats]),
    /// One per frame, from these frames (worked out as each frame is corrected).
    Frames(&'a [T], usize),
}

/// Colour-correct each frame toward its target (one shared target or one per
/// frame; targets may have another size than the frames). The gamma applied
/// to each frame is written to `gammas_out` (1 where `gamma` is false).
pub fn color_correct<T: Sample>(
    src: &[T],
    dims: Dims,
    target: &[T],
    tdims: Dims,
    gamma: bool,
    out: &mut [T],
    gammas_out: &mut [f64],
) -> Result<()> {
    check_frames_and_reference(src, dims, "target", target, tdims, out, gammas_out)?;
    if tdims.n == 1 {
        let shared = target_stats(target, &lab_binning())?;
        correct_frames(src, dims, Targets::Shared(&shared), gamma, out, gammas_out)
    } else {
        let tl = tdims.frame_len();
        correct_frames(
            src,
            dims,
            Targets::Frames(target, tl),
            gamma,
            out,
            gammas_out,
        )
    }
}

/// The statistics [`color_correct`] works out of each target frame, for
/// [`color_correct_prepared`]: one per frame of `target`.
pub fn prepare_targets<T: Sample>(target: &[T], tdims: Dims) -> Result<Vec<TargetStats>> {
    tdims.check("target", target.len())?;
    check_finite("target", target)?;
    // kept for good, about 96 KiB a target frame however small: where the memory is not
    // there, a NoMemory error (MemoryError), not an abort (1x1 targets by the thousand)
    let binning = lab_binning();
    let mut stats = vec_with_room(tdims.n, "target")?;
    for t in target.chunks(tdims.frame_len()) {
        stats.push(target_stats(t, &binning)?);
    }
    Ok(stats)
}

/// [`color_correct`] toward targets whose statistics [`prepare_targets`] has
/// worked out (one for every frame, or one per frame): the same output.
pub fn color_correct_prepared<T: Sample>(
    src: &[T],
    dims: Dims,
    targets: &[TargetStats],
    gamma: bool,
    out: &mut [T],
    gammas_out: &mut [f64],
) -> Result<()> {
    // check_frames_and_reference's checks, of the target its count only
    dims.check("frames", src.len())?;
    dims.check_one_or_per_frame("target", &Dims::new(targets.len(), 1, 1))?;
    check_frames_and_out(src, dims, out, gammas_out)?;
    let t = match targets {
        [one] => Targets::Shared(one),
        each => Targets::Each(each),
    };
    correct_frames(src, dims, t, gamma, out, gammas_out)
}

fn correct_frames<T: Sample>(
    src: &[T],
    dims: Dims,
    targets: Targets<'_, T>,
    gamma: bool,
    out: &mut [T],
    gammas_out: &mut [f64],
) -> Result<()> {
    let binning = lab_binning();
    let fl = dims.frame_len();
    let spare = Spare::default();
    let gammas: Vec<f64> = install(|| {
        src.par_chunks(fl)
            .zip(out.par_chunks_mut(fl))
            .enumerate()
            .map(|(i, (s, o))| {
                let (h, w) = (dims.h, dims.w);
                match &targets {
                    Targets::Shared(t) => correct_frame(s, h, w, t, gamma, o, &spare),
                    Targets::Each(ts) => correct_frame(s, h, w, &ts[i], gamma, o, &spare),
                    Targets::Frames(ts, tl) => {
                        let t = target_stats(&ts[i * tl..(i + 1) * tl], &binning)?;
                        correct_frame(s, h, w, &t, gamma, o, &spare)
                    }
                }
            })
            .collect::<Result<_>>()
    })?;
    gammas_out.copy_from_slice(&gammas);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::blend::set_lum_f64;
    use crate::kernels::histogram::interp_sorted;
    use crate::kernels::lab::{lab_from_linear_f64, linear_from_lab_f64};
    use crate::kernels::srgb::{decode_f64, encode_f64};

    fn image(dims: Dims, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..dims.len())
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // smooth gradient plus noise, so histograms are spread
                (((i / 3) % dims.w * 200 / dims.w) as u64 + (s >> 60) + (i % 3) as u64 * 20) as u8
            })
            .collect()
    }

    /// The whole step (without gamma) in f64, with exact (sort-based) histogram matching.
    fn reference(src: &[u8], target: &[u8]) -> Vec<f64> {
        let lab = |d: &[u8]| -> Vec<[f64; 3]> {
            d.chunks(3)
                .map(|p| {
                    lab_from_linear_f64([p[0], p[1], p[2]].map(|v| decode_f64(v as f64 / 255.0)))
                })
                .collect()
        };
        let (ls, lt) = (lab(src), lab(target));
        let mut matched = ls.clone();
        for c in 0..3 {
            let mut tv: Vec<f64> = lt.iter().map(|p| p[c]).collect();
            tv.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let n = tv.len() as f64;
            let tq: Vec<f64> = (1..=tv.len()).map(|i| i as f64 / n).collect();
            let mut sv: Vec<f64> = ls.iter().map(|p| p[c]).collect();
            sv.sort_by(|a, b| a.partial_cmp(b).unwrap());
            for (i, p) in ls.iter().enumerate() {
                let q = sv.partition_point(|&x| x <= p[c]) as f64 / sv.len() as f64;
                interp_sorted(std::iter::once(q), &tq, &tv, |v| matched[i][c] = v);
            }
        }
        let mut out = Vec::new();
        for (m, p) in matched.iter().zip(src.chunks(3)) {
            let rgb = linear_from_lab_f64(*m).map(|v| encode_f64(v.clamp(0.0, 1.0)));
            let o = [p[0], p[1], p[2]].map(|v| v as f64 / 255.0);
            let res = set_lum_f64(rgb, 0.299 * o[0] + 0.587 * o[1] + 0.114 * o[2]);
            out.extend(res.map(|v| v.clamp(0.0, 1.0) * 255.0));
        }
        out
    }

    #[test]
    fn matches_f64_reference_at_odd_widths() {
        let (mut rounded_alike, mut samples) = (0, 0);
        for &w in &[1usize, 7, 9, 17, 33, 65] {
            let dims = Dims::new(1, 6, w);
            let src = image(dims, w as u64);
            let target: Vec<u8> = image(dims, 77).iter().map(|&v| v / 2 + 100).collect();
            let mut out = vec![0u8; dims.len()];
            let mut g = [0.0];
            color_correct(&src, dims, &target, dims, false, &mut out, &mut g).unwrap();
            let want = reference(&src, &target);
            let worst = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            let mean = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (*a as f64 - b).abs())
                .sum::<f64>()
                / want.len() as f64;
            // rounding to 8 bits alone is 0.25 levels on average; measured 0.24-0.26 and
            // at most 0.81 from 7 pixels a row, 0.41 and 1.5 for the six pixels of w = 1
            // (values sharing a bin share an output)
            let (most, average) = if w == 1 { (2.0, 0.5) } else { (1.0, 0.3) };
            assert!(worst <= most, "w={w}: worst difference {worst} levels");
            assert!(mean < average, "w={w}: mean difference {mean} levels");
            assert_eq!(g[0], 1.0);
            if w > 1 {
                let alike = out
                    .iter()
                    .zip(&want)
                    .filter(|(a, b)| **a as f64 == b.round());
                rounded_alike += alike.count();
                samples += want.len();
            }
        }
        // the exact step rounded: 96% of the samples (a target bin's value off by half a
        // bin or one bin, 91%)
        let share = rounded_alike as f64 / samples as f64;
        assert!(
            share > 0.94,
            "{share} of the samples are the exact step rounded"
        );
    }

    /// Mean CIE L* of 8-bit pixels in f64, apart from the kernels' own f32 paths.
    fn mean_l_f64(d: &[u8]) -> f64 {
        let l = |p: &[u8]| {
            lab_from_linear_f64([p[0], p[1], p[2]].map(|v| decode_f64(v as f64 / 255.0)))[0]
        };
        d.chunks(3).map(l).sum::<f64>() / (d.len() / 3) as f64
    }

    /// Toward another target, the gamma brings the result's mean L* (in f64) to the
    /// target's, and it is applied as the 8-bit gamma table to the result without it,
    /// sample by sample; on a frame over 65,536 pixels too (the solve on a sample).
    #[test]
    fn gamma_reaches_another_targets_lightness_through_the_8_bit_table() {
        for (h, w, bound) in [(40, 37, 0.01), (300, 301, 0.05)] {
            let d = Dims::new(1, h, w);
            let src = image(d, 3);
            let target: Vec<u8> = image(d, 9).iter().map(|&v| v / 2 + 90).collect();
            let (mut with, mut without) = (vec![0u8; d.len()], vec![0u8; d.len()]);
            let (mut g, mut g1) = ([0.0], [0.0]);
            color_correct(&src, d, &target, d, true, &mut with, &mut g).unwrap();
            color_correct(&src, d, &target, d, false, &mut without, &mut g1).unwrap();
            assert!(g[0] < 0.95 && g1[0] == 1.0, "gamma {}", g[0]);
            let table = gamma_table_u8(g[0]);
            assert!(with
                .iter()
                .zip(&without)
                .all(|(a, b)| *a == table[*b as usize]));
            let (got, want) = (mean_l_f64(&with), mean_l_f64(&target));
            assert!(
                (got - want).abs() < bound,
                "{h}x{w}: mean L* {got}, target {want}"
            );
            assert!((mean_l_f64(&without) - want).abs() > 1.0); // the gamma had work to do
        }
    }

    #[test]
    fn correcting_toward_itself_changes_little() {
        // whole, and over 65,536 pixels, where the gamma is solved on a sample of the
        // corrected pixels (which must be the sample's own: a sample blended with its
        // neighbours' bins got 1.0053 at 300x301; measured 1 exactly, and no change)
        for (h, w, most, tol) in [(32, 33, 2, 0.01), (300, 301, 1, 1e-3)] {
            let dims = Dims::new(1, h, w);
            let src = image(dims, 5);
            let mut out = vec![0u8; dims.len()];
            let mut g = [0.0];
            color_correct(&src, dims, &src, dims, true, &mut out, &mut g).unwrap();
            let worst = src
                .iter()
                .zip(&out)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap();
            assert!(worst <= most, "{h}x{w}: worst {worst}");
            assert!((g[0] - 1.0).abs() < tol, "{h}x{w}: gamma {}", g[0]);
        }
    }

    /// Every grey, 8-bit or float, has a* = b* = 0 exactly, so a crowd of greys
    /// fills the one a and b bin whose lower edge is 0, not two at random.
    #[test]
    fn greys_fall_in_the_bin_of_zero_chroma() {
        let (k, binning) = (LabConsts::new(), lab_binning());
        let zero = [1, 2].map(|c| binning[c].bin(0.0) as u16);
        assert_eq!(zero, [FLOAT_BINS as u16 / 2; 2]);
        let check = |s: &[f32], u: &[u8]| {
            let mut hist = vec![0; 3 * COPIES * STRIDE];
            let mut bins = vec![0u16; s.len()];
            bin_chunk(&k, &binning, &mut hist, &mut 0.0, s, &mut bins);
            let mut bins8 = vec![0u16; u.len()];
            bin_chunk(&k, &binning, &mut hist, &mut 0.0, u, &mut bins8);
            for b in [bins, bins8] {
                for blk in b.chunks(3 * BLOCK) {
                    let n = blk.len() / 3;
                    assert!(blk[n..].iter().all(|&x| x == zero[0]), "{blk:?}");
                }
            }
        };
        let u: Vec<u8> = (0..=255u8).flat_map(|v| [v; 3]).collect();
        let f: Vec<f32> = (0..=1000).flat_map(|i| [i as f32 / 1000.0; 3]).collect();
        check(&f, &u);
    }

    /// The counts (twelve interleaved counters per bin, a remainder loop for
    /// the last pixels of a block) equal a plain histogram of the stored bins,
    /// at every length around the block and copy sizes.
    #[test]
    fn counts_equal_a_plain_histogram_of_the_bins() {
        let (k, binning) = (LabConsts::new(), lab_binning());
        for n_px in (1..=9).chain(60..=70).chain([127, 128, 129, 200]) {
            let src = image(Dims::new(1, 1, n_px), n_px as u64);
            let mut counts = Counts::new();
            let mut bins = vec![0u16; src.len()];
            bin_chunk(&k, &binning, &mut counts.0, &mut 0.0, &src, &mut bins);
            let mut want = vec![vec![0u64; FLOAT_BINS]; 3];
            for blk in bins.chunks(3 * BLOCK) {
                let n = blk.len() / 3;
                for (c, plane) in blk.chunks(n).enumerate() {
                    plane.iter().for_each(|&b| want[c][b as usize] += 1);
                }
            }
            for (c, w) in want.iter().enumerate() {
                assert_eq!(&counts.channel(c), w, "{n_px} pixels, channel {c}");
            }
            // and the padding counters past each copy's bins stay at zero
            for copy in counts.0.chunks(STRIDE) {
                assert!(copy[FLOAT_BINS..].iter().all(|&x| x == 0));
            }
        }
    }

    #[test]
    fn per_frame_targets_and_bad_counts() {
        let dims = Dims::new(2, 4, 4);
        let src = image(dims, 1);
        let mut out = vec![0u8; dims.len()];
        let mut g = [0.0; 2];
        color_correct(&src, dims, &src, dims, true, &mut out, &mut g).unwrap();
        let t3 = Dims::new(3, 4, 4);
        let err = color_correct(&src, dims, &image(t3, 2), t3, true, &mut out, &mut g).unwrap_err();
        assert_eq!(err.arg(), "target");
    }

    #[test]
    fn stats_survive_their_bytes_and_damage_is_refused() {
        let d = Dims::new(2, 9, 17);
        let target = image(d, 5);
        let stats = prepare_targets(&target, d).unwrap();
        let bytes = stats_to_bytes(&stats).unwrap();
        assert_eq!(bytes.len(), 2 * STATS_BYTES);
        let back = stats_from_bytes(&bytes, 9 * 17, "state").unwrap();
        for (a, b) in stats.iter().zip(&back) {
            assert_eq!(a.hist.counts, b.hist.counts);
            assert_eq!(a.mean_l.to_bits(), b.mean_l.to_bits());
        }
        let fd = Dims::new(2, 7, 33);
        let frames = image(fd, 8);
        let run = |t: &[TargetStats]| {
            let (mut out, mut g) = (vec![0u8; frames.len()], vec![0.0; 2]);
            color_correct_prepared(&frames, fd, t, true, &mut out, &mut g).unwrap();
            (out, g)
        };
        assert_eq!(run(&stats), run(&back));
        let err = |b: &[u8], px| match stats_from_bytes(b, px, "state") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("damaged statistics accepted"),
        };
        assert!(err(&bytes[1..], 153).contains("multiple of"));
        assert!(err(&[], 153).contains("multiple of"));
        assert!(err(&bytes, 152).contains("channel 0 counts 153 pixels, not the 152"));
        let mut one_more = bytes.clone();
        one_more[STATS_BYTES + 8 * FLOAT_BINS] += 1; // frame 1, channel 1, bin 0
        assert!(err(&one_more, 153).contains("target frame 1's channel 1 counts 154"));
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(&huge, 153).contains("more than 2^64"));
        let mut nan = bytes.clone();
        nan[STATS_BYTES - 8..STATS_BYTES].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(err(&nan, 153).contains("mean L* is NaN"));
    }

    #[test]
    fn prepared_targets_give_the_same_output() {
        for &w in &[1usize, 7, 33, 65] {
            let dims = Dims::new(3, 5, w);
            let src = image(dims, w as u64);
            for tdims in [Dims::new(1, 4, 9), Dims::new(3, 5, w)] {
                let target = image(tdims, w as u64 + 1);
                let prepared = prepare_targets(&target, tdims).unwrap();
                assert_eq!(prepared.len(), tdims.n);
                for gamma in [true, false] {
                    let (mut want, mut got) = (vec![0u8; dims.len()], vec![1u8; dims.len()]);
                    let (mut wg, mut gg) = ([0.0; 3], [0.0; 3]);
                    color_correct(&src, dims, &target, tdims, gamma, &mut want, &mut wg).unwrap();
                    color_correct_prepared(&src, dims, &prepared, gamma, &mut got, &mut gg)
                        .unwrap();
                    assert_eq!(got, want, "w {w} targets {} gamma {gamma}", tdims.n);
                    assert_eq!(gg, wg);
                }
            }
        }
        let dims = Dims::new(2, 4, 4);
        let (src, mut out, mut g) = (image(dims, 1), vec![0u8; dims.len()], [0.0; 2]);
        let three = prepare_targets(&image(Dims::new(3, 4, 4), 2), Dims::new(3, 4, 4)).unwrap();
        let err = color_correct_prepared(&src, dims, &three, true, &mut out, &mut g).unwrap_err();
        assert_eq!(err.arg(), "target");
        let err = color_correct_prepared(&src, dims, &three[..1], true, &mut out, &mut g[..1])
            .unwrap_err();
        assert_eq!(err.arg(), "gammas_out");
        let nan = [0.5, f32::NAN, 0.5];
        let err = prepare_targets(&nan, Dims::new(1, 1, 1)).err().unwrap();
        assert_eq!(err.arg(), "target");
    }
}
