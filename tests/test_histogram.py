"""match_histograms against skimage.exposure.match_histograms(channel_axis=-1)."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from conftest import (
    PHOTO_NAMES,
    check_shared_by_threads,
    drift,
    float_photo,
    hard_cases,
    photo,
    run_in_1536_mb,
    to_float,
)
from skimage.exposure import match_histograms as sk_match

import loopwave as lw

BINS = 4096


def bin_width(*arrays: np.ndarray) -> np.ndarray:
    """Per channel: the value range of a frame and its reference over 4096 bins (the
    documented bin)."""
    lo = np.min([a.reshape(-1, 3).min(0) for a in arrays], 0)
    hi = np.max([a.reshape(-1, 3).max(0) for a in arrays], 0)
    return (hi - lo).astype(np.float64) / BINS


def test_uint8_equals_skimage_on_all_photo_pairs(photos):
    for a, b in itertools.product(PHOTO_NAMES, repeat=2):
        got = lw.match_histograms(photos[a], photos[b])
        want = sk_match(photos[a], photos[b], channel_axis=-1)
        assert got.dtype == np.uint8 and got.shape == photos[a].shape
        # the brief expects 1 level; the docstring promises scikit-image's result exactly
        np.testing.assert_array_equal(got, want, err_msg=f"{a} -> {b}")


def test_uint8_equals_skimage_on_drifted_256px_photos(photos256):
    for name in PHOTO_NAMES:
        frame = drift(photos256[name])
        want = sk_match(frame, photos256[name], channel_axis=-1)
        np.testing.assert_array_equal(lw.match_histograms(frame, photos256[name]), want)


def test_uint8_hard_cases_equal_skimage(hard, photos):
    ref = photos["astronaut"]
    for x, r in ((hard, ref), (ref, hard), (hard, hard[::-1, ::-1])):
        want = sk_match(x, r, channel_axis=-1)
        np.testing.assert_array_equal(lw.match_histograms(x, r), want)


def test_uint8_random_small_images_equal_skimage():
    rng = np.random.default_rng(12)
    for _ in range(40):
        a = rng.integers(0, 256, (*rng.integers(1, 24, 2), 3), dtype=np.uint8)
        b = rng.integers(0, 256, (*rng.integers(1, 24, 2), 3), dtype=np.uint8)
        if rng.random() < 0.5:  # few distinct levels: ties and plateaus
            a //= 64
            b = b // 32 * 32
        np.testing.assert_array_equal(lw.match_histograms(a, b), sk_match(a, b, channel_axis=-1))


def test_reference_one_frame_per_frame_and_other_size(photos):
    frames = np.stack([photos["coffee"], photos["chelsea"], photos["astronaut"]])
    refs = np.stack([photos["rocket"], photos["astronaut"], photos["coffee"]])
    got = lw.match_histograms(frames, refs)
    assert got.shape == frames.shape
    for i in range(3):
        np.testing.assert_array_equal(got[i], sk_match(frames[i], refs[i], channel_axis=-1))
    shared = lw.match_histograms(frames, refs[0])
    for i in range(3):
        np.testing.assert_array_equal(shared[i], sk_match(frames[i], refs[0], channel_axis=-1))
    small = photos["rocket"][::3, ::2]  # 43x64: another size and aspect
    got = lw.match_histograms(frames, small)
    for i in range(3):
        np.testing.assert_array_equal(got[i], sk_match(frames[i], small, channel_axis=-1))
    one_ref_batch = lw.match_histograms(frames, small[None])
    np.testing.assert_array_equal(one_ref_batch, got)
    # one per frame, of another size than the frames: larger and smaller (each frame's
    # own reference, read at the references' size, not the frames')
    big = np.stack([photo(n, 160)[:150] for n in ("rocket", "astronaut", "coffee")])
    for refs in (big, big[:, ::3, ::2]):
        got = lw.match_histograms(frames, refs)
        for i in range(3):
            np.testing.assert_array_equal(got[i], sk_match(frames[i], refs[i], channel_axis=-1))


def test_single_frame_in_single_frame_out(photos):
    out = lw.match_histograms(photos["coffee"], photos["rocket"][None])
    assert out.shape == photos["coffee"].shape


def test_matching_a_frame_to_itself_is_identity(photos, hard):
    for img in (*photos.values(), hard):
        np.testing.assert_array_equal(lw.match_histograms(img, img), img)
        f = to_float(img)
        np.testing.assert_array_equal(lw.match_histograms(f, f), f)


def test_self_match_of_continuous_floats_moves_values_less_than_a_bin():
    # all values in a bin share one output, which lies in that bin
    x = np.random.default_rng(6).random((96, 80, 3), dtype=np.float32)
    err = np.abs(lw.match_histograms(x, x) - x)
    assert (err <= bin_width(x) * 1.001).all()


def test_float_from_uint8_equals_skimage(photos):
    for a, b in itertools.permutations(PHOTO_NAMES, 2):
        x, r = to_float(photos[a]), to_float(drift(photos[b]))
        got = lw.match_histograms(x, r)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, sk_match(x, r, channel_axis=-1), rtol=0, atol=1e-6)


def test_float_from_uint8_hard_cases_equal_skimage(hard, photos):
    h, p = to_float(hard), to_float(photos["chelsea"])
    for x, r in ((h, p), (p, h)):
        np.testing.assert_allclose(
            lw.match_histograms(x, r), sk_match(x, r, channel_axis=-1), rtol=0, atol=1e-6
        )


def test_float_equals_skimage_where_no_bin_holds_two_values():
    # values at least 3 bins apart, any offset and scale (floats are not clipped)
    rng = np.random.default_rng(13)
    for _ in range(60):
        lo, span = rng.uniform(-100, 100), 10 ** rng.uniform(-3, 3)
        k = int(rng.integers(1, 60))
        grid = np.sort(rng.choice(np.arange(0, BINS, 3), k, replace=False))
        values = np.unique((lo + span * grid / (BINS - 1)).astype(np.float32))
        a = rng.choice(values, (*rng.integers(1, 30, 2), 3)).astype(np.float32)
        b = rng.choice(values, (*rng.integers(1, 30, 2), 3)).astype(np.float32)
        want = sk_match(a, b, channel_axis=-1)
        np.testing.assert_allclose(lw.match_histograms(a, b), want, rtol=1e-6, atol=1e-6 * span)


def test_float_continuous_dense_images_within_a_few_bins():
    rng = np.random.default_rng(5)
    a = rng.random((256, 256, 3), dtype=np.float32)
    b = rng.random((256, 256, 3), dtype=np.float32) ** 3
    got = lw.match_histograms(a, b)
    want = sk_match(a, b, channel_axis=-1)
    err = np.abs(got - want) / bin_width(a, b)
    assert np.median(err) < 1
    assert np.quantile(err, 0.99) < 4
    assert err.max() < 10


def test_float_values_are_not_clipped_and_stay_in_the_reference_range():
    rng = np.random.default_rng(10)
    a = rng.random((30, 30, 3), dtype=np.float32) * 5 - 2
    r = 2 + rng.random((20, 40, 3), dtype=np.float32)
    out = lw.match_histograms(a, r)
    assert out.min() >= r.min() and out.max() <= r.max()
    assert out.max() > 2.9  # reaches above 1: nothing clipped to [0, 1]


def test_lab_values_of_photos(photos):
    # the seed matches histograms in Lab: negative floats work, results are close
    lab = lw.rgb_to_lab(drift(photos["coffee"]))
    ref = lw.rgb_to_lab(photos["rocket"])
    got = lw.match_histograms(lab, ref)
    want = sk_match(lab, ref, channel_axis=-1)
    err = np.abs(got - want) / bin_width(lab, ref)
    assert np.median(err) < 1
    assert np.quantile(err, 0.9) < 4


def _spread_over_source_bin(a: np.ndarray, b: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per sample: max - min of the exact result over the samples sharing its 4096-bin bin."""
    out = np.zeros(a.shape)
    for c in range(3):
        lo = min(a[..., c].min(), b[..., c].min())
        hi = max(a[..., c].max(), b[..., c].max())
        k = np.minimum(((a[..., c] - lo) * (4096 / (hi - lo))).astype(np.int64), 4095).ravel()
        w = want[..., c].ravel().astype(np.float64)
        top, bottom = np.full(4096, -np.inf), np.full(4096, np.inf)
        np.maximum.at(top, k, w)
        np.minimum.at(bottom, k, w)
        out[..., c] = (top - bottom)[k].reshape(a.shape[:-1])
    return out


@pytest.mark.parametrize(("src", "ref"), [("coffee", "rocket"), ("rocket", "astronaut")])
def test_float_photographs_within_the_documented_bound(src, ref):
    # Documented: values in one bin share one output, off by at most the spread of
    # the exact outputs over that bin; under a bin width for most pixels. Real float
    # photographs (512 px) have crowded highlight bins where that spread is large.
    a, b = float_photo(src, 512), float_photo(ref, 512)
    got = lw.match_histograms(a, b)
    want = sk_match(a, b, channel_axis=-1)
    width = bin_width(a, b)
    err = np.abs(got - want)
    assert np.median(err / width) < 1  # most pixels are fine
    # the reference side is exact at each bin's least and greatest value, and under a
    # bin width off between them
    assert (err <= _spread_over_source_bin(a, b, want) + width * 1.001).all()


@pytest.mark.parametrize(("src", "ref"), [("astronaut", "coffee"), ("coffee", "rocket")])
def test_lab_photographs_within_the_documented_bound(photos, src, ref):
    """From a review: Lab astronaut matched to Lab coffee was up to 1.02 Lab units beyond
    the documented bound (the reference's bins kept only their mean)."""
    a, b = lw.rgb_to_lab(photos[src]), lw.rgb_to_lab(photos[ref])
    got = lw.match_histograms(a, b)
    want = sk_match(a.astype(np.float64), b.astype(np.float64), channel_axis=-1)
    err = np.abs(got - want)
    assert (err <= _spread_over_source_bin(a, b, want) + bin_width(a, b) * 1.001).all()


def test_a_crowded_reference_bin_after_a_gap():
    """1000 reference values within 1e-4 (one bin) between two far ones: scikit-image
    reaches the crowd within one pixel's share; keeping the bin's mean alone gave a slope
    from 0 over the crowd's whole mass (0.133 and 0.267 for 0.40003 and 0.40007)."""
    ref = np.concatenate([[0.0], np.linspace(0.4, 0.4001, 1000), [1.0]]).astype(np.float32)
    ref = np.repeat(ref[:, None], 3, 1)[None]
    frame = np.float32([[[0.1] * 3, [0.5] * 3, [0.9] * 3]])
    got = lw.match_histograms(frame, ref)
    want = sk_match(frame.astype(np.float64), ref.astype(np.float64), channel_axis=-1)
    np.testing.assert_allclose(got, want, atol=1 / 4096)
    # random crowds after gaps, against scikit-image
    rng = np.random.default_rng(3)
    for _ in range(20):
        parts = [rng.random(rng.integers(1, 4)) for _ in range(3)]
        parts += [c + 1e-5 * rng.random(rng.integers(50, 500)) for c in rng.random(3)]
        r = np.concatenate(parts).astype(np.float32)
        r = np.stack([r, r[::-1], np.roll(r, 7)], -1)[None]
        f = rng.random((1, 300, 3), dtype=np.float32)
        got = lw.match_histograms(f, r)
        want = sk_match(f.astype(np.float64), r.astype(np.float64), channel_axis=-1)
        bound = _spread_over_source_bin(f, r, want) + bin_width(f, r) * 1.001
        assert (np.abs(got - want) <= bound).all()


def test_hard_cases_do_not_leak_between_frames():
    cases = [c for c in hard_cases().values() if c.shape == (5, 5, 3)]
    batch = np.stack(cases)  # black and white in one batch
    out = lw.match_histograms(batch, batch[::-1])
    np.testing.assert_array_equal(out, batch[::-1])


def test_float_ranges_f32_bins_cannot_hold_are_refused():
    """A span beyond f32 (the bin width overflowed and every value fell in one bin) or
    below 1e-34 (the scale overflowed) is a ValueError, not a collapsed channel."""
    r = np.linspace(0, 1, 48, dtype=np.float32).reshape(4, 4, 3)
    wide = np.zeros((4, 4, 3), np.float32)
    wide[:2], wide[3] = -2e38, 2e38
    tiny = np.zeros((4, 4, 3), np.float32)
    tiny[:2], tiny[3] = 1e-40, 2e-40
    for frames, ref in ((wide, r), (r, wide), (tiny, tiny * 2)):
        with pytest.raises(ValueError, match="^frames: .*span"):
            lw.match_histograms(frames, ref)
    # the edges of what is accepted: a span of 3e38, and values 1e-30 apart
    ok = np.zeros((4, 4, 3), np.float32)
    ok[:2], ok[3] = -1.5e38, 1.5e38
    ref = np.linspace(-1e38, 1e38, 48, dtype=np.float32).reshape(4, 4, 3)
    got = lw.match_histograms(ok, ref)
    want = sk_match(ok, ref, channel_axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    small = np.zeros((4, 4, 3), np.float32)
    small[:2], small[3] = 1e-30, 2e-30
    np.testing.assert_array_equal(lw.match_histograms(small, small), small)


def test_float_result_of_a_frame_does_not_depend_on_its_batch(photos):
    """The float bins spanned the whole call's range: a batch-mate with one wide value
    coarsened every frame's bins (2308 distinct outputs alone, 42 in the batch), so
    results flickered with how a video was cut into batches."""
    rng = np.random.default_rng(13)
    b = rng.uniform(0.2, 0.8, (64, 64, 3)).astype(np.float32)
    r = rng.uniform(0.2, 0.8, (64, 64, 3)).astype(np.float32) ** 2
    a = b.copy()
    a[0, 0], a[0, 1] = 0.0, 60.0  # a wider range than b's and the reference's
    photo = to_float(photos["coffee"][:64, :64])
    # per-frame references with histograms of their own (rearrangements of one array
    # would pass with every frame matched to the first)
    for refs in (r, np.stack([r, r[::-1], r[:, ::-1]]), np.stack([r, np.sqrt(r), 1 - r])):
        batch = lw.match_histograms(np.stack([a, b, photo]), refs)
        for i, x in enumerate((a, b, photo)):
            alone = lw.match_histograms(x, refs if refs.ndim == 3 else refs[i])
            np.testing.assert_array_equal(batch[i], alone, err_msg=f"frame {i}")
        if refs.ndim == 4:  # and each frame toward its own reference, as skimage does it
            for i, x in enumerate((b, photo)):
                want = sk_match(x, refs[i + 1], channel_axis=-1)
                err = np.median(np.abs(batch[i + 1] - want).reshape(-1, 3), 0)
                assert (err <= bin_width(x, refs[i + 1])).all(), (i, err)
    alone = lw.match_histograms(b, r)
    assert len(np.unique(alone)) > 2000
    want = sk_match(b, r, channel_axis=-1)
    assert (np.median(np.abs(alone - want).reshape(-1, 3), 0) <= bin_width(b, r)).all()


# ------------------------------------------------------------ HistogramReference


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_histogram_reference_gives_the_same_output(photos, dtype):
    """match_histograms toward a HistogramReference is match_histograms toward its
    frames, byte for byte (so, for uint8, scikit-image's): one shared reference (of
    another size too), one per frame, a frame at a time; float frames whose values
    reach past the reference's range too (counted again over both ranges)."""
    frames = np.stack([photos["coffee"], photos["chelsea"], photos["astronaut"]])
    refs = np.stack([photos["rocket"], photos["astronaut"], photos["coffee"]])
    small = photos["rocket"][::3, ::2]
    if dtype == np.float32:
        frames, refs, small = to_float(frames), to_float(refs), to_float(small)
        frames[1] *= 1.5  # past the references' [0, 1]
        frames[2] -= 0.25
    for ref in (refs[0], small, refs, refs[1:2]):
        prepared = lw.HistogramReference(ref)
        want = lw.match_histograms(frames, ref)
        np.testing.assert_array_equal(lw.match_histograms(frames, prepared), want)
        if ref.ndim == 3 or len(ref) == 1:  # a frame at a time, as a video is read
            for f, w in zip(frames, want, strict=True):
                np.testing.assert_array_equal(lw.match_histograms(f, prepared), w)
    if dtype == np.uint8:
        got = lw.match_histograms(frames, lw.HistogramReference(refs))
        for i in range(3):
            np.testing.assert_array_equal(got[i], sk_match(frames[i], refs[i], channel_axis=-1))


def test_a_histogram_reference_keeps_counts_not_pixels(photos):
    img = photos["coffee"].copy()
    prepared = lw.HistogramReference(img)
    assert len(prepared) == 1 and prepared.dtype == np.uint8 and prepared.size == img.shape[:2]
    h, w = img.shape[:2]
    assert repr(prepared) == f"HistogramReference(1 frame of {w}x{h}, uint8)"
    assert len(pickle.dumps(prepared)) < 8000  # the counts (6 KB), not the pixels
    frame = photos["astronaut"]
    before = lw.match_histograms(frame, prepared)
    img[:] = 0  # the array changes; the reference made of it does not
    np.testing.assert_array_equal(lw.match_histograms(frame, prepared), before)
    f32 = to_float(photos["coffee"])
    made = lw.HistogramReference(f32)
    f32[:] = 0  # a float reference keeps a copy of its pixels
    np.testing.assert_array_equal(
        lw.match_histograms(to_float(frame) * 2, made),
        lw.match_histograms(to_float(frame) * 2, to_float(photos["coffee"])),
    )
    pair = lw.HistogramReference(np.stack([photos["coffee"], photos["coffee"][::-1]]))
    assert len(pair) == 2 and repr(pair).startswith("HistogramReference(2 frames of")


def _match_in_child(frames: np.ndarray, ref: lw.HistogramReference) -> np.ndarray:
    return lw.match_histograms(frames, ref)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_histogram_reference_pickles_to_the_same_reference(photos, dtype):
    import concurrent.futures
    import multiprocessing

    from loopwave.color import _histogram_reference_from_state

    two = np.stack([photos["chelsea"][:300, :400], photos["coffee"][:300, :400]])
    frames = np.stack([photos["astronaut"][:300, :400], photos["rocket"][:300, :400]])
    if dtype == np.float32:
        two, frames = to_float(two), to_float(frames) * 1.2
    for ref in (two[0], two):
        made = lw.HistogramReference(ref)
        back = pickle.loads(pickle.dumps(made))
        assert back is not made and repr(back) == repr(made)
        np.testing.assert_array_equal(
            lw.match_histograms(frames, back), lw.match_histograms(frames, ref)
        )
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        got = pool.submit(_match_in_child, frames, lw.HistogramReference(two)).result(timeout=120)
    np.testing.assert_array_equal(got, lw.match_histograms(frames, two))
    # damaged or foreign state
    _, (state, is_float, dims) = lw.HistogramReference(two).__reduce__()
    with pytest.raises(ValueError, match="^state: expected"):
        _histogram_reference_from_state(state[:-8], is_float, dims)
    with pytest.raises(ValueError, match="^state: expected"):
        _histogram_reference_from_state(state, is_float, (3, *dims[1:]))
    with pytest.raises(ValueError, match="^dims: expected"):
        _histogram_reference_from_state(state, is_float, (2, 0, 5))
    with pytest.raises(TypeError, match="^state: expected the statistics as bytes; got str"):
        _histogram_reference_from_state("x", is_float, dims)  # type: ignore[arg-type]
    if dtype == np.uint8:
        one_more = bytearray(state)
        one_more[8] += 1  # frame 0, channel 0, level 1
        with pytest.raises(ValueError, match="^state: reference frame 0's channel 0 counts do "):
            _histogram_reference_from_state(bytes(one_more), is_float, dims)
        # (from a review) counts that wrap around 2**64 to the frame's pixels were taken,
        # and every frame matched to them came out black
        wrap = np.zeros((2, 3, 256), np.uint64)
        wrap[..., :2] = 2**63
        wrap[..., 2] = dims[1] * dims[2]
        with pytest.raises(ValueError, match="^state: reference frame 0's channel 0 counts do "):
            _histogram_reference_from_state(wrap.tobytes(), is_float, dims)
    else:
        nan = bytearray(state)
        nan[:4] = np.array([np.nan], np.float32).tobytes()
        with pytest.raises(ValueError, match="^state: contains NaN"):
            _histogram_reference_from_state(bytes(nan), is_float, dims)
    # (from a review) a height times width times 3 that wraps around 2**64 made a
    # reference of no whole pixel, and matching with it panicked
    for bad in ((1, 2, (2**64 + 2) // 3), (2, -1, 5), (1, 2, 2**64), (1.0, 2, 2), [1, 2, 2]):
        with pytest.raises(ValueError, match="^dims: expected"):
            _histogram_reference_from_state(b"\0" * 8, is_float, bad)  # type: ignore[arg-type]


def test_a_histogram_reference_refuses_what_match_histograms_refuses(photos):
    import copy

    from loopwave import _native

    img = photos["coffee"]
    for bad, err in (
        (None, TypeError),
        (img.astype(np.int16), TypeError),
        (img[..., :2], ValueError),
        (np.zeros((0, 4, 4, 3), np.uint8), ValueError),
    ):
        with pytest.raises(err, match="reference"):
            lw.HistogramReference(bad)  # type: ignore[arg-type]
    nan = to_float(img)
    nan[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="reference"):
        lw.HistogramReference(nan)
    # (from a review) a span f32 bins cannot hold was blamed on frames, none given
    wide = np.zeros((2, 2, 3), np.float32)
    wide[0, 0, 0], wide[1, 1, 0] = -3e38, 3e38
    with pytest.raises(ValueError, match=r"^reference: the values of channel 0 in the reference"):
        lw.HistogramReference(wide)
    prepared = lw.HistogramReference(img)
    with pytest.raises(TypeError, match="reference must have the dtype of frames"):
        lw.match_histograms(to_float(img), prepared)
    pair = lw.HistogramReference(np.stack([img, img]))
    with pytest.raises(ValueError, match=r"one per frame \(3\); got a HistogramReference of 2"):
        lw.match_histograms(np.stack([img] * 3), pair)
    with pytest.raises(ValueError, match="frames"):
        lw.match_histograms(img[..., :2], prepared)
    assert copy.copy(prepared) is prepared and copy.deepcopy([prepared])[0] is prepared
    with pytest.raises(TypeError, match="made once"):
        prepared.__init__(to_float(img))  # type: ignore[misc]
    assert prepared.dtype == np.uint8
    # the native call checks too, as a direct caller may skip the wrapper
    with pytest.raises(ValueError, match="reference"):
        _native.match_histograms_prepared(np.stack([img] * 3), pair._native)
    with pytest.raises(TypeError, match="reference"):
        _native.match_histograms_prepared(to_float(img)[None], prepared._native)
    with pytest.raises(TypeError, match="PreparedReference"):
        _native.match_histograms_prepared(img[None], prepared)  # type: ignore[arg-type]


def test_a_histogram_reference_shared_by_threads(photos):
    ref = photos["coffee"]
    check_shared_by_threads(lw.match_histograms, ref, lw.HistogramReference(ref), photos)


def test_a_histogram_reference_too_large_for_memory_is_a_memory_error():
    """As ColorTarget's: a float reference keeps about 300 KB of histograms a frame
    however small (a channel whose values differ); 30,000 frames of two pixels (9 GB)
    raise MemoryError, not abort the process. 1x1 frames (constant channels, one bin
    each: from a review, they were refused for want of 9 GB they would never take)
    are made, and pickled and unpickled where the room is short: MemoryError too."""
    out = run_in_1536_mb("""
import pickle
import numpy as np, loopwave as lw
two = np.zeros((30000, 1, 2, 3), np.float32)
two[:, 0, 1] = 1
try:
    lw.HistogramReference(two)
    print("made")
except MemoryError as e:
    print("MemoryError", e)
lw.HistogramReference(np.zeros((30000, 1, 1, 3), np.float32))  # one bin a channel
big = lw.HistogramReference(np.zeros((50000, 1, 1, 3), np.uint8))  # 300 MB of counts
s = pickle.dumps(big)
for mb in (700, 500, 300, 100):  # less and less room left
    try:
        ballast = bytearray(mb << 20)
    except MemoryError:
        continue
    for step in ("unpickle", "pickle"):
        try:
            pickle.loads(s) if step == "unpickle" else pickle.dumps(big)
            print(mb, step, "done")
        except MemoryError:
            print(mb, step, "MemoryError")
    del ballast
""")
    lines = out.splitlines()
    assert lines[0].startswith("MemoryError reference: no memory"), out
    # the room ran short in some of them, and none aborted the process (they did)
    assert any(line.endswith("MemoryError") for line in lines[1:]), out


def test_the_prepared_classes_take_their_arguments_by_their_documented_names(photos):
    """From a review of their shared base: ``HistogramReference(reference=...)`` and
    ``ColorTarget(target=...)`` raised TypeError, naming the base's parameter."""
    img = photos["coffee"]
    assert len(lw.HistogramReference(reference=img)) == 1
    assert len(lw.ColorTarget(target=img)) == 1
    with pytest.raises(TypeError, match="reference"):
        lw.HistogramReference(reference=None)  # type: ignore[arg-type]
