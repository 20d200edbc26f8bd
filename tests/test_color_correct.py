"""color_correct against the seed's own pipeline (OpenCV LAB + skimage + blendmodes),
against the same step computed exactly in float64, and for what it is for: undoing drift."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from blendmodes.blend import BlendType, blendLayers
from conftest import PHOTO_NAMES, check_shared_by_threads, drift, photo, run_in_1536_mb, to_float
from PIL import Image
from reference import exact_color_step
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.exposure import match_histograms

import loopwave as lw


def seed_step(original: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The seed's apply_color_correction, in its own library calls (no gamma)."""
    base = cv2.cvtColor(original, cv2.COLOR_RGB2LAB)
    corr = cv2.cvtColor(target, cv2.COLOR_RGB2LAB)
    hist = match_histograms(base, corr, channel_axis=2)
    hist = cv2.cvtColor(hist, cv2.COLOR_LAB2RGB)
    img = blendLayers(
        Image.fromarray(hist.astype("uint8")), Image.fromarray(original), BlendType.LUMINOSITY
    )
    return np.asarray(img.convert("RGB"))


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 between two uint8 images (scikit-image)."""
    return float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean())


def mean_l(img: np.ndarray) -> float:
    return float(rgb2lab(img)[..., 0].mean())


@pytest.mark.parametrize("amount", [0.5, 1.0])
@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_within_a_few_levels_of_the_seed(photos, name, amount):
    target = photos[name]
    frame = drift(target, amount)
    got = lw.color_correct(frame, target, gamma=False)
    assert got.dtype == np.uint8 and got.shape == frame.shape
    diff = np.abs(got.astype(int) - seed_step(frame, target).astype(int))
    # Measured: mean 0.74-1.68, 99th percentile 3-5. The seed rounds Lab to 8
    # bits (L in 100/255 steps) between its steps and loopwave does not; on the
    # dark rocket photograph that alone puts the seed 1.7 levels (mean) from the
    # exact float64 result, while loopwave is 0.25 from it (next test). So the
    # mean bound here is 2, not 1.5: the excess is the seed's error, not ours.
    assert diff.mean() < 2.0
    assert np.quantile(diff, 0.99) <= 6


@pytest.mark.parametrize("amount", [0.5, 1.0])
@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_close_to_the_exact_float64_step_and_closer_than_the_seed(photos, name, amount):
    target = photos[name]
    frame = drift(target, amount)
    exact = exact_color_step(frame, target)
    ours = np.abs(lw.color_correct(frame, target, gamma=False) - exact)
    seed = np.abs(seed_step(frame, target) - exact)
    # measured: mean 0.21-0.25, 99th percentile 0.51-0.61, max 1.53
    assert ours.mean() < 0.3
    assert np.quantile(ours, 0.99) < 0.75
    assert ours.max() < 2.5
    assert ours.mean() < seed.mean()
    # the float path skips the final rounding, so it is closer still
    f = lw.color_correct(to_float(frame), to_float(target), gamma=False) * 255.0
    assert np.abs(f - exact).mean() < 0.06


def test_toward_another_photograph_close_to_the_exact_step(photos):
    """From the acceptance audit: the tests matched drifted copies of one photograph
    only. Toward an unlike photograph the seed's 8-bit Lab puts its own step tens of
    levels from the exact one (99th percentile up to 54 here), while loopwave stays
    near it: measured mean 0.22-0.58, 99th percentile 0.5-6.8 (a dark photograph
    toward a bright one, where crowds of dark colours share bins)."""
    import itertools

    for a, b in itertools.permutations(PHOTO_NAMES, 2):
        frame, target = photos[a], photos[b]
        exact = exact_color_step(frame, target)
        ours = np.abs(lw.color_correct(frame, target, gamma=False) - exact)
        seed = np.abs(seed_step(frame, target) - exact)
        assert ours.mean() < 0.75 and np.quantile(ours, 0.99) < 8, (a, b)
        assert ours.mean() < 0.5 * seed.mean(), (a, b)


def test_256px_photos_close_to_the_exact_step(photos256):
    for name in ("astronaut", "rocket"):
        target = photos256[name]
        frame = drift(target)
        d = np.abs(lw.color_correct(frame, target, gamma=False) - exact_color_step(frame, target))
        assert d.mean() < 0.3 and np.quantile(d, 0.99) < 0.75


@pytest.mark.parametrize("amount", [0.5, 1.0])
def test_correction_reduces_the_drift(photos, amount):
    for name, img in photos.items():
        frame = drift(img, amount)
        drifted = delta_e(frame, img)
        no_gamma = delta_e(lw.color_correct(frame, img, gamma=False), img)
        seed = delta_e(seed_step(frame, img), img)
        whole = delta_e(lw.color_correct(frame, img), img)
        assert no_gamma < drifted, name
        assert no_gamma < seed + 0.15, name  # the same step: never clearly worse than the seed
        # with the gamma match; a third remains on dark photographs (rocket),
        # whose shadows the drift crushed to black (measured ratio 0.38-0.67)
        assert whole < 0.7 * drifted, name


def test_gamma_brings_mean_lightness_to_the_target(photos, photos256):
    # frames of at most 65536 pixels are solved exactly (0.005 L* in the kernel's L*)
    for img in (*photos.values(), *photos256.values()):
        frame = drift(img)
        fixed, g = lw.color_correct(frame, img, return_gammas=True)
        assert isinstance(g, float) and 1 / 32 <= g <= 32
        assert abs(mean_l(fixed) - mean_l(img)) < 0.01  # measured at most 0.003
        plain, g1 = lw.color_correct(frame, img, gamma=False, return_gammas=True)
        assert g1 == 1.0
        # the gamma is adjust_gamma's, applied to the result without it, sample by sample
        np.testing.assert_array_equal(fixed, lw.adjust_gamma(plain, g))
        f, t = to_float(frame), to_float(img)
        fixed_f, gf = lw.color_correct(f, t, return_gammas=True)
        np.testing.assert_array_equal(
            fixed_f, lw.adjust_gamma(lw.color_correct(f, t, gamma=False), gf)
        )
    # without the gamma step the dark rocket photograph stays far too dark
    rocket = photos["rocket"]
    assert abs(mean_l(lw.color_correct(drift(rocket), rocket, gamma=False)) - mean_l(rocket)) > 3


def test_gamma_on_frames_over_65536_pixels():
    img = photo("astronaut", 384)
    fixed = lw.color_correct(drift(img), img)
    assert abs(mean_l(fixed) - mean_l(img)) < 0.25


def test_gamma_toward_a_darker_or_brighter_target(photos):
    img = photos["coffee"]
    for factor in (0.5, 0.8, 1.3):
        target = np.clip(img * factor, 0, 255).astype(np.uint8)
        fixed, g = lw.color_correct(img, target, return_gammas=True)
        assert (g > 1) == (factor < 1)
        assert abs(mean_l(fixed) - mean_l(target)) < 0.01


def test_correcting_a_frame_to_itself_changes_nothing(photos, hard):
    for img in (*photos.values(), hard):
        out, g = lw.color_correct(img, img, return_gammas=True)
        assert np.abs(out.astype(int) - img).max() <= 1
    for img in photos.values():
        assert lw.color_correct(img, img, return_gammas=True)[1] == pytest.approx(1.0, abs=0.01)


def test_batch_with_per_frame_targets_equals_single_calls(photos):
    targets = np.stack([photos[n] for n in PHOTO_NAMES])
    frames = np.stack([drift(t, 0.5 + 0.2 * i) for i, t in enumerate(targets)])
    for gamma in (True, False):
        out, gammas = lw.color_correct(frames, targets, gamma=gamma, return_gammas=True)
        assert out.shape == frames.shape and gammas.shape == (4,) and gammas.dtype == np.float64
        for i in range(4):
            single, g = lw.color_correct(frames[i], targets[i], gamma=gamma, return_gammas=True)
            np.testing.assert_array_equal(out[i], single)
            assert g == gammas[i]
    shared = lw.color_correct(frames, targets[0])
    for i in range(4):
        np.testing.assert_array_equal(shared[i], lw.color_correct(frames[i], targets[0]))
    np.testing.assert_array_equal(lw.color_correct(frames, targets[0][None]), shared)
    # one target per frame of another size than the frames, larger and smaller: each
    # frame toward its own (read at the targets' size, not the frames')
    big = np.stack([photo(n, 160)[:150] for n in PHOTO_NAMES])
    for other in (big, big[:, ::3, ::2]):
        for gamma in (True, False):
            out, gammas = lw.color_correct(frames, other, gamma=gamma, return_gammas=True)
            for i in range(4):
                single, g = lw.color_correct(frames[i], other[i], gamma=gamma, return_gammas=True)
                np.testing.assert_array_equal(out[i], single)
                assert g == gammas[i]
                if not gamma:
                    d = np.abs(out[i] - exact_color_step(frames[i], other[i]))
                    assert d.mean() < 0.3, i
        prepared = lw.ColorTarget(other)
        np.testing.assert_array_equal(
            lw.color_correct(frames, prepared), lw.color_correct(frames, other)
        )


def test_out_receives_the_result(photos):
    targets = np.stack([photos[n] for n in PHOTO_NAMES])
    frames = np.stack([drift(t, 0.7) for t in targets])
    want, gammas = lw.color_correct(frames, targets[0], return_gammas=True)
    out = np.full_like(frames, 17)
    got, g = lw.color_correct(frames, targets[0], out=out, return_gammas=True)
    assert got is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(g, gammas)
    # reused: every byte rewritten, per-frame targets too
    out[:] = 0
    lw.color_correct(frames, targets, out=out)
    np.testing.assert_array_equal(out, lw.color_correct(frames, targets))
    # one frame, and float32
    one = np.empty_like(frames[1])
    assert lw.color_correct(frames[1], targets[1], out=one) is one
    np.testing.assert_array_equal(one, lw.color_correct(frames[1], targets[1]))
    f = to_float(frames)
    fo = np.empty_like(f)
    lw.color_correct(f, to_float(targets[0]), out=fo)
    np.testing.assert_array_equal(fo, lw.color_correct(f, to_float(targets[0])))


def test_out_is_checked(photos):
    frames = np.stack([drift(photos["coffee"]), drift(photos["rocket"])])
    target = photos["coffee"]
    bad = {
        "a list": ([0] * 3, TypeError, "out must be a numpy array"),
        "float32 for uint8 frames": (frames.astype(np.float32), TypeError, "dtype"),
        "another shape": (np.empty_like(frames[:1]), ValueError, "shape"),
        "not contiguous": (np.empty((2, 128, 256, 3), np.uint8)[:, :, ::2], ValueError, "C-cont"),
        "the frames themselves": (frames, ValueError, "share memory"),
    }
    for what, (out, exc, msg) in bad.items():
        with pytest.raises(exc, match=msg):
            lw.color_correct(frames, target, out=out)
            pytest.fail(what)
    ro = np.empty_like(frames)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        lw.color_correct(frames, target, out=ro)
    # float32 at an odd byte offset: refused here, by name (it failed in the native
    # call with "The given array is not contiguous or is misaligned")
    ff = frames.astype(np.float32) / 255
    buf = np.empty(ff.nbytes + 1, np.uint8)
    odd = np.ndarray(ff.shape, np.float32, buf, offset=1)
    with pytest.raises(ValueError, match="^out must be C-contiguous, aligned"):
        lw.color_correct(ff, target.astype(np.float32) / 255, out=odd)
    both = np.empty((3, 128, 128, 3), np.uint8)
    both[1] = target
    with pytest.raises(ValueError, match="share memory"):
        lw.color_correct(frames, both[1], out=both[:2])
    lw.color_correct(frames, both[2], out=both[:2])  # beside it, not over it: fine
    # between the frames of a strided view, not over them (from a review: the ends of
    # the two spans were compared, and this was refused as shared)
    buf = np.empty((4, *frames.shape[1:]), np.uint8)
    buf[::3] = frames
    got = lw.color_correct(buf[::3], target, out=buf[1:3])
    assert got is not None
    np.testing.assert_array_equal(buf[1:3], lw.color_correct(frames, target))
    np.testing.assert_array_equal(buf[::3], frames)
    with pytest.raises(ValueError, match="share memory"):  # over one of them: refused
        lw.color_correct(buf[::2], target, out=buf[1:3])
    # the native call itself refuses an out that overlaps an input (its record of arrays in use)
    with pytest.raises(ValueError, match=r"^out: another call .* shares memory with the inputs"):
        lw._native.color_correct(frames, target[None], True, frames)


def test_target_of_another_size(photos):
    frame, target = drift(photos["coffee"]), photos["coffee"]
    small = target[::2, ::3]
    out = lw.color_correct(frame, small)
    assert out.shape == frame.shape
    assert delta_e(out, target) < 0.7 * delta_e(frame, target)
    d = np.abs(lw.color_correct(frame, small, gamma=False) - exact_color_step(frame, small))
    assert d.mean() < 0.3


def test_float_path(photos):
    frame, target = drift(photos["chelsea"]), photos["chelsea"]
    f, g = lw.color_correct(to_float(frame), to_float(target), return_gammas=True)
    assert f.dtype == np.float32 and f.shape == frame.shape
    assert f.min() >= 0 and f.max() <= 1
    u, gu = lw.color_correct(frame, target, return_gammas=True)
    assert np.abs(f * 255 - u).mean() < 0.6
    assert g == pytest.approx(gu, rel=0.01)


def test_hard_cases_stay_in_range(hard, photos):
    out = lw.color_correct(hard, photos["rocket"])
    assert out.dtype == np.uint8 and out.shape == hard.shape
    f = lw.color_correct(to_float(hard), to_float(photos["rocket"]))
    assert np.isfinite(f).all() and f.min() >= 0 and f.max() <= 1
    # and as the target
    out = lw.color_correct(photos["rocket"], hard)
    assert out.shape == photos["rocket"].shape


def test_hard_cases_close_to_the_exact_step(hard, photos):
    for frame, target in ((hard, photos["coffee"]), (hard, hard[::-1].copy())):
        d = np.abs(lw.color_correct(frame, target, gamma=False) - exact_color_step(frame, target))
        # tiny frames: source values sharing a Lab bin share one output (documented);
        # measured max 3.2 levels (the 16x16 gradient onto coffee), mean <= 0.27
        assert d.max() < 4 and d.mean() < 0.4


# ------------------------------------------------------------------ ColorTarget


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_color_target_gives_the_same_output(photos, dtype):
    """color_correct toward a ColorTarget is color_correct toward its frames, byte for
    byte: one shared target (of another size too), one per frame, with and without the
    gamma, into out=, and its gammas."""
    imgs = [photos[n] for n in ("astronaut", "coffee", "chelsea")]
    h = min(i.shape[0] for i in imgs)
    w = min(i.shape[1] for i in imgs)
    batch = np.stack([i[:h, :w] for i in imgs])
    small = photos["rocket"][:97, :131]
    if dtype == np.float32:
        batch, small = to_float(batch), to_float(small)
    frames = np.stack([drift(f) for f in batch]) if dtype == np.uint8 else batch[::-1].copy()
    targets = batch
    for target in (targets[0], small, targets, targets[1:2]):
        prepared = lw.ColorTarget(target)
        for gamma in (True, False):
            want, wg = lw.color_correct(frames, target, gamma=gamma, return_gammas=True)
            got, gg = lw.color_correct(frames, prepared, gamma=gamma, return_gammas=True)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(gg, wg)
        if target.ndim == 3 or len(target) == 1:  # a frame at a time, as a video is read
            for f in frames:
                np.testing.assert_array_equal(
                    lw.color_correct(f, prepared), lw.color_correct(f, target)
                )
        out = np.empty_like(frames)
        assert lw.color_correct(frames, prepared, out=out) is out
        np.testing.assert_array_equal(out, lw.color_correct(frames, target))


def test_a_color_target_keeps_statistics_not_pixels(photos):
    img = photos["coffee"].copy()
    prepared = lw.ColorTarget(img)
    assert len(prepared) == 1 and prepared.dtype == np.uint8
    assert prepared.size == img.shape[:2]
    assert repr(prepared) == f"ColorTarget(1 target of {img.shape[1]}x{img.shape[0]}, uint8)"
    assert prepared.mean_lightness.shape == (1,)
    assert abs(prepared.mean_lightness[0] - mean_l(img)) < 1e-3
    frame = photos["astronaut"]
    before = lw.color_correct(frame, prepared)
    img[:] = 0  # the array changes; the target made of it does not
    np.testing.assert_array_equal(lw.color_correct(frame, prepared), before)
    batch = lw.ColorTarget(np.stack([photos["coffee"], photos["coffee"][::-1]]))
    assert len(batch) == 2 and repr(batch).startswith("ColorTarget(2 targets of")
    assert lw.ColorTarget(np.zeros((2, 2, 3), np.uint8)).mean_lightness[0] == 0  # not -2e-6
    f32 = lw.ColorTarget(to_float(photos["coffee"]))
    assert f32.dtype == np.float32
    assert abs(f32.mean_lightness[0] - prepared.mean_lightness[0]) < 1e-3


def _correct_in_child(frames: np.ndarray, target: lw.ColorTarget) -> np.ndarray:
    return lw.color_correct(frames, target)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_color_target_pickles_to_the_same_target(photos, dtype):
    """A ColorTarget sent to another process (pickled: its statistics) corrects as the
    one it was made of, byte for byte; damaged statistics are refused when unpickled."""
    import concurrent.futures
    import multiprocessing
    import pickle

    from loopwave.color import _color_target_from_state

    one, two = (
        photos["coffee"],
        np.stack([photos["chelsea"][:300, :400], photos["coffee"][:300, :400]]),
    )
    frames = np.stack([photos["astronaut"][:300, :400], photos["rocket"][:300, :400]])
    if dtype == np.float32:
        one, two, frames = to_float(one), to_float(two), to_float(frames)
    for target in (one, two):
        made = lw.ColorTarget(target)
        back = pickle.loads(pickle.dumps(made))
        assert back is not made and repr(back) == repr(made) and back.size == made.size
        np.testing.assert_array_equal(back.mean_lightness, made.mean_lightness)
        want, wg = lw.color_correct(frames, made, return_gammas=True)
        got, gg = lw.color_correct(frames, back, return_gammas=True)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(gg, wg)
        np.testing.assert_array_equal(want, lw.color_correct(frames, target))
    # in a process of its own (spawned: a fresh interpreter)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        got = pool.submit(_correct_in_child, frames, lw.ColorTarget(two)).result(timeout=120)
    np.testing.assert_array_equal(got, lw.color_correct(frames, two))
    # damaged or foreign statistics
    _, (state, is_float, size) = lw.ColorTarget(two).__reduce__()
    with pytest.raises(ValueError, match="^state: expected a multiple of"):
        _color_target_from_state(state[:-8], is_float, size)
    px = size[0] * size[1]
    with pytest.raises(
        ValueError,
        match=f"^state: target frame 0's channel 0 counts {px} pixels, not the {px - 1} of",
    ):
        _color_target_from_state(state, is_float, (px - 1, 1))
    one_more = bytearray(state)
    one_more[len(state) // 2 + 8] += 1  # frame 1, first channel
    with pytest.raises(ValueError, match=f"^state: target frame 1's channel 0 counts {px + 1} "):
        _color_target_from_state(bytes(one_more), is_float, size)
    with pytest.raises(ValueError, match="^size: expected"):
        _color_target_from_state(state, is_float, (0, 5))
    # (from a review) each was an OverflowError or the binding's words, naming no argument
    for bad in [(-1, 7), (2**64, 1), (5,), (5.0, 7.0), [5, 7], (True, 5)]:
        with pytest.raises(ValueError, match=r"^size: expected \(height, width\) as ints"):
            _color_target_from_state(state, is_float, bad)  # type: ignore[arg-type]
    # (a later review) nor a bare "Exceeds the limit (4300 digits)" from the message's
    # repr of an int past Python's digit limit, in a tuple or a list
    big = 10**4400
    for bad, shown in [((big, 5), r"\(an int of 14617 bits, 5\)"), ([5, -big], r"\[5, -an int")]:
        with pytest.raises(ValueError, match=rf"^size: expected .* 2\*\*63 - 1; got {shown}"):
            _color_target_from_state(state, is_float, bad)  # type: ignore[arg-type]
    # (a review of that) nor a RecursionError for a size nested deep (the message's
    # repr opened every level)
    for depth in (500, 100_000):
        nested: object = 5
        for _ in range(depth):
            nested = (nested,)
        with pytest.raises(ValueError, match=r"^size: expected .* 2\*\*63 - 1; got "):
            _color_target_from_state(state, is_float, nested)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^state: expected the statistics as bytes; got str"):
        _color_target_from_state("not bytes", is_float, size)  # type: ignore[arg-type]


def test_a_color_target_refuses_what_color_correct_refuses(photos):
    img = photos["coffee"]
    with pytest.raises(TypeError, match="target"):
        lw.ColorTarget(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="target"):
        lw.ColorTarget(img.astype(np.int16))
    with pytest.raises(ValueError, match="target"):
        lw.ColorTarget(img[..., :2])
    with pytest.raises(ValueError, match="target"):
        lw.ColorTarget(np.zeros((0, 4, 4, 3), np.uint8))
    bad = to_float(img)
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="target"):
        lw.ColorTarget(bad)
    prepared = lw.ColorTarget(img)
    with pytest.raises(TypeError, match="target must have the dtype of frames"):
        lw.color_correct(to_float(img), prepared)
    pair = lw.ColorTarget(np.stack([img, img]))
    with pytest.raises(ValueError, match="one per frame \\(3\\); got a ColorTarget of 2"):
        lw.color_correct(np.stack([img] * 3), pair)
    with pytest.raises(ValueError, match="one per frame \\(1\\); got a ColorTarget of 2"):
        lw.color_correct(img, pair)
    import copy

    assert copy.copy(prepared) is prepared and copy.deepcopy({"t": prepared})["t"] is prepared
    # copies are the object itself, so it never changes
    with pytest.raises(TypeError, match="made once"):
        prepared.__init__(to_float(img))  # type: ignore[misc]
    assert len(prepared) == 1 and prepared.dtype == np.uint8
    # passing the wrapper to the native call says which class it wants
    from loopwave import _native as native

    with pytest.raises(TypeError, match="PreparedTarget"):
        native.color_correct_prepared(img[None], prepared, True)  # type: ignore[arg-type]
    # the native call checks too, as a direct caller may skip the wrapper
    from loopwave import _native

    with pytest.raises(ValueError, match="target"):
        _native.color_correct_prepared(np.stack([img] * 3), pair._native, True)
    with pytest.raises(TypeError, match="target"):
        _native.color_correct_prepared(to_float(img)[None], prepared._native, True)


def test_a_color_target_shared_by_threads(photos):
    ref = photos["coffee"]
    check_shared_by_threads(lw.color_correct, ref, lw.ColorTarget(ref), photos)


def test_the_colour_docstring_examples_run():
    import doctest

    import loopwave.color

    result = doctest.testmod(loopwave.color, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


def test_a_color_target_too_large_for_memory_is_a_memory_error():
    """From a review: the statistics of each target frame take about 96 KiB however small
    the frame, and a ColorTarget of 30,000 1x1 frames (3 GB of them) aborted the process
    where the memory was not there, instead of raising."""
    out = run_in_1536_mb(
        "import numpy as np, loopwave as lw\n"
        "try:\n"
        "    lw.ColorTarget(np.zeros((30000, 1, 1, 3), np.uint8))\n"
        "    print('made')\n"
        "except MemoryError as e:\n"
        "    print('MemoryError', e)\n"
    )
    assert out.startswith("MemoryError") and "target" in out, out
