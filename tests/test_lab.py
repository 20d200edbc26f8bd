"""rgb_to_lab / lab_to_rgb against a float64 reference and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import to_float
from reference import lab_from_linear, srgb_to_linear
from reference import lab_to_rgb as ref_rgb
from reference import rgb_to_lab as ref_lab
from skimage.color import lab2rgb, rgb2lab

import loopwave as lw

# the docstring promises 0.002; the brief for this suite asks for at least 0.05
DOC_BOUND = 0.002


def _all_colours() -> np.ndarray:
    v = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], -1).astype(np.uint8)
    return rgb.reshape(1, 4096, 4096, 3)


def test_uint8_photos_within_bound_of_float64(photos):
    for img in photos.values():
        got = lw.rgb_to_lab(img)
        assert got.dtype == np.float32 and got.shape == img.shape
        assert np.abs(got - ref_lab(img / 255.0)).max() < DOC_BOUND


def test_float32_photos_within_bound_of_float64(photos):
    for img in photos.values():
        f = to_float(img)
        assert np.abs(lw.rgb_to_lab(f) - ref_lab(f)).max() < DOC_BOUND


def test_uint8_random_colours_within_bound_of_float64():
    x = np.random.default_rng(11).integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    assert np.abs(lw.rgb_to_lab(x) - ref_lab(x / 255.0)).max() < DOC_BOUND
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, -1)
    lab = lw.rgb_to_lab(grey)
    assert np.abs(lab - ref_lab(grey / 255.0)).max() < DOC_BOUND
    assert np.abs(lab[..., 1:]).max() < DOC_BOUND  # greys are neutral
    assert (np.diff(lab[0, :, 0]) > 0).all()  # and lightness rises with the level


@pytest.mark.parametrize("scale", [1.0, 0.05, 0.002])  # 0.002: the linear toe of sRGB and of f
def test_continuous_float_input(scale):
    x = np.random.default_rng(1).random((2, 64, 48, 3), dtype=np.float32) * np.float32(scale)
    got = lw.rgb_to_lab(x)
    assert got.shape == x.shape
    assert np.abs(got - ref_lab(x)).max() < DOC_BOUND


def test_hard_cases_against_reference_and_skimage(hard):
    got = lw.rgb_to_lab(hard)
    assert got.dtype == np.float32 and got.shape == hard.shape
    assert np.abs(got - ref_lab(hard / 255.0)).max() < DOC_BOUND
    assert np.abs(got - rgb2lab(hard)).max() < 0.05


def test_photos_against_skimage(photos):
    for img in photos.values():
        assert np.abs(lw.rgb_to_lab(img) - rgb2lab(img)).max() < 0.05
        f = to_float(img)
        assert np.abs(lw.rgb_to_lab(f) - rgb2lab(f)).max() < 0.05


def test_greys_have_exactly_zero_chroma():
    # a* = b* = 0 exactly, not f32 noise of either sign: color_correct bins a
    # crowd of greys on one side of 0 (skimage's float64 gives noise ~1e-3 here)
    greys = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(1, 256, 3)
    ramp = np.repeat(np.linspace(0, 1, 999, dtype=np.float32), 3).reshape(1, 999, 3)
    for x in (greys, to_float(greys), ramp):
        assert (lw.rgb_to_lab(x)[..., 1:] == 0).all()
    assert np.allclose(lw.rgb_to_lab(greys)[..., 0], rgb2lab(greys)[..., 0], atol=0.01)


def test_lightness_stays_in_0_100():
    # black is L* = 0 exactly (an FMA once gave -6e-8, which fell out of [0, 100]
    # histograms downstream), white 100; nothing in between leaves the range
    greys = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(1, 256, 3)
    cube = np.stack(np.meshgrid(*[np.arange(0, 256, 5, dtype=np.uint8)] * 3), -1).reshape(1, -1, 3)
    for x in (greys, to_float(greys), cube, to_float(cube)):
        lab = lw.rgb_to_lab(x)
        assert lab[0, 0, 0] == 0 and lab[..., 0].min() == 0
        assert lab[..., 0].max() <= 100
    assert lw.rgb_to_lab(greys)[0, -1, 0] == 100


def test_known_colours():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    lab = lw.rgb_to_lab(rgb)
    want = [
        [100, 0, 0],
        [0, 0, 0],
        [53.2408, 80.0925, 67.2032],  # the textbook sRGB primaries (D65)
        [87.7347, -86.1827, 83.1793],
        [32.2970, 79.1875, -107.8602],
    ]
    np.testing.assert_allclose(lab[0], want, atol=2e-3)


def test_float_input_outside_unit_range_is_clipped():
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 2, (40, 40, 3)).astype(np.float32)
    np.testing.assert_array_equal(lw.rgb_to_lab(x), lw.rgb_to_lab(np.clip(x, 0, 1)))


def test_batch_and_single():
    x = np.random.default_rng(2).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    batch = lw.rgb_to_lab(x)
    assert batch.shape == (3, 5, 7, 3)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], lw.rgb_to_lab(x[i]))


def test_all_2_24_colours_within_bound_of_float64():
    x = _all_colours()
    lab = lw.rgb_to_lab(x)[0]
    linear = srgb_to_linear(np.arange(256) / 255.0)  # the reference, tabulated per level
    worst = 0.0
    for i in range(0, 4096, 256):
        rgb = x[0, i : i + 256].reshape(-1, 3)
        want = lab_from_linear(linear[rgb])
        worst = max(worst, float(np.abs(lab[i : i + 256].reshape(-1, 3) - want).max()))
    assert worst < DOC_BOUND


def test_all_2_24_colours_round_trip():
    x = _all_colours()
    back = lw.lab_to_rgb(lw.rgb_to_lab(x))
    assert back.dtype == np.uint8 and back.shape == x.shape
    bad = np.flatnonzero((back != x).any(-1).ravel())
    assert bad.size == 0, f"{bad.size} colours do not round-trip, e.g. {x.reshape(-1, 3)[bad[:5]]}"


def test_photos_round_trip(photos, hard):
    for img in (*photos.values(), hard):
        np.testing.assert_array_equal(lw.lab_to_rgb(lw.rgb_to_lab(img)), img)


def test_float_round_trip():
    x = np.random.default_rng(8).random((64, 64, 3), dtype=np.float32)
    back = lw.lab_to_rgb(lw.rgb_to_lab(x), dtype=np.float32)
    assert back.dtype == np.float32
    assert np.abs(back - x).max() < 1e-4


def test_lab_to_rgb_against_float64_reference_including_out_of_gamut():
    rng = np.random.default_rng(9)
    n = 200_000
    lab = np.stack(
        [rng.uniform(-10, 110, n), rng.uniform(-150, 150, n), rng.uniform(-150, 150, n)], -1
    ).astype(np.float32)
    lab = lab.reshape(1, 400, 500, 3)
    want = ref_rgb(lab)
    got = lw.lab_to_rgb(lab, dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == lab.shape
    assert np.abs(got - want).max() < 5e-5
    u8 = lw.lab_to_rgb(lab)
    assert u8.dtype == np.uint8
    err = np.abs(u8 - want * 255)
    assert err.max() <= 0.5 + 1e-3  # rounded to nearest (to within table error at ties)
    assert (u8 == np.floor(want * 255 + 0.5)).mean() > 0.9999


def test_lab_to_rgb_in_gamut_against_skimage(photos):
    for img in photos.values():
        lab = ref_lab(img / 255.0)
        got = lw.lab_to_rgb(lab.astype(np.float32), dtype=np.float32)
        assert np.abs(got - lab2rgb(lab)).max() < 1e-4


def test_float64_and_float16_lab_accepted(photos):
    img = photos["coffee"]
    lab64 = ref_lab(img / 255.0)
    back = lw.lab_to_rgb(lab64, dtype=np.float32)
    assert back.dtype == np.float32 and back.shape == img.shape
    assert np.abs(back - img / 255.0).max() < 1e-4
    np.testing.assert_array_equal(lw.lab_to_rgb(lab64), img)
    np.testing.assert_array_equal(lw.lab_to_rgb(lab64), lw.lab_to_rgb(lab64.astype(np.float32)))
    lab16 = lab64.astype(np.float16)
    np.testing.assert_array_equal(lw.lab_to_rgb(lab16), lw.lab_to_rgb(lab16.astype(np.float32)))


def test_out_of_gamut_is_clipped_per_channel_in_linear_rgb():
    lab = np.array(
        [[[50, 120, -120], [100, 0, 0], [-5, 0, 0], [120, 0, 0], [60, -200, 200], [0, 100, 0]]],
        np.float32,
    )
    out = lw.lab_to_rgb(lab)
    assert out.dtype == np.uint8
    assert out[0, 1].tolist() == [255, 255, 255]
    assert out[0, 2].tolist() == [0, 0, 0]
    assert out[0, 3].tolist() == [255, 255, 255]
    want = np.floor(ref_rgb(lab) * 255 + 0.5)
    assert np.abs(out.astype(int) - want).max() <= 1
    f = lw.lab_to_rgb(lab, dtype=np.float32)
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    np.testing.assert_allclose(f, ref_rgb(lab), atol=5e-5)


def test_huge_lab_values_clip_instead_of_overflowing():
    # L = 1e15 came out black (f^3 overflowed and the matrix made NaN of inf - inf)
    lab = np.array([[[1e15, 0, 0], [3e38, 0, 0], [-3e38, 0, 0], [1e6, 0, 0]]], np.float32)
    assert lw.lab_to_rgb(lab).tolist() == [[[255] * 3, [255] * 3, [0] * 3, [255] * 3]]
    # a huge chroma at mid lightness still clips to a corner like a large one does
    for a, b in ((1e30, 0), (0, -1e30), (-1e30, 1e30)):
        huge = lw.lab_to_rgb(np.array([[[50, a, b]]], np.float32))
        large = lw.lab_to_rgb(np.array([[[50, np.sign(a) * 1e5, np.sign(b) * 1e5]]], np.float32))
        np.testing.assert_array_equal(huge, large)


def test_lab_values_far_out_clip_as_the_exact_conversion_does():
    """From a review: values past 1e6 were each held at 1e6 on their own, which turned
    the colour (L 2e7 with b 1e6 came out yellow, not white: half of all colours at 1e7
    and beyond came out otherwise than the float64 clip). They are now computed as they
    are up to 1e12 and scaled down together beyond."""
    rng = np.random.default_rng(5)
    d = rng.normal(size=(20000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    for lo, hi in ((1e3, 1e6), (1e6, 1e12), (1e12, 1e30)):
        lab = (d * np.exp(rng.uniform(np.log(lo), np.log(hi), (len(d), 1)))).astype(np.float32)
        with np.errstate(all="ignore"):
            want = np.floor(ref_rgb(lab.astype(np.float64)) * 255 + 0.5)
        off = np.abs(lw.lab_to_rgb(lab[None])[0].astype(int) - want).max(-1)
        assert (off > 1).sum() == 0, (lo, hi, lab[off > 1][:3])
    assert lw.lab_to_rgb(np.array([[[2e7, 0, 1e6]]], np.float32)).tolist() == [[[255] * 3]]


def test_lab_to_rgb_batch_and_single():
    lab = lw.rgb_to_lab(np.random.default_rng(3).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8))
    out = lw.lab_to_rgb(lab)
    assert out.shape == (2, 4, 6, 3)
    np.testing.assert_array_equal(out[1], lw.lab_to_rgb(lab[1]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0, 0, 0), (1, 1, 2, 2)])
def test_lab_non_finite_is_refused(bad, where):
    lab = np.zeros((2, 2, 3, 3), np.float32)
    lab[where] = bad
    with pytest.raises(ValueError, match="lab"):
        lw.lab_to_rgb(lab)
    with pytest.raises(ValueError, match="lab"):
        lw.lab_to_rgb(lab.astype(np.float64), dtype=np.float32)
