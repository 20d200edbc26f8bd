"""blend_luminosity against the blendmodes library the seed uses, and a float64 SetLum."""

from __future__ import annotations

import itertools

import numpy as np
from blendmodes.blend import BlendType, blendLayers
from conftest import PHOTO_NAMES, drift, hard_cases, to_float
from PIL import Image
from reference import REC601
from reference import blend_luminosity as ref_blend

import loopwave as lw


def blendmodes_luminosity(color: np.ndarray, luma: np.ndarray) -> np.ndarray:
    out = blendLayers(Image.fromarray(color), Image.fromarray(luma), BlendType.LUMINOSITY)
    return np.asarray(out.convert("RGB"))


def level_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


def test_photos_within_one_level_of_blendmodes(photos):
    for a, b in itertools.permutations(PHOTO_NAMES, 2):
        got = lw.blend_luminosity(photos[a], photos[b])
        want = blendmodes_luminosity(photos[a], photos[b])
        assert got.dtype == np.uint8 and got.shape == photos[a].shape
        d = level_diff(got, want)
        assert d.max() <= 1, f"{a} / {b}"
        assert (d == 0).mean() > 0.995  # off by one only at rounding ties


def test_drifted_photos_within_one_level(photos):
    for img in photos.values():
        for c, lu in ((img, drift(img)), (drift(img), img)):
            assert level_diff(lw.blend_luminosity(c, lu), blendmodes_luminosity(c, lu)).max() <= 1


def test_hard_cases_within_one_level(hard, photos):
    other = drift(np.resize(photos["rocket"], hard.shape))
    for c, lu in ((hard, other), (other, hard), (hard, hard[::-1, ::-1].copy())):
        want = blendmodes_luminosity(c, lu)
        assert level_diff(lw.blend_luminosity(c, lu), want).max() <= 1


def test_all_pairs_of_hard_cases_within_one_level():
    cases = list(hard_cases().values())
    for c, lu in itertools.product(cases, repeat=2):
        lu = np.resize(lu, c.shape)
        assert level_diff(lw.blend_luminosity(c, lu), blendmodes_luminosity(c, lu)).max() <= 1


def test_random_noise_within_one_level():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (200, 150, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (200, 150, 3), dtype=np.uint8)
    assert level_diff(lw.blend_luminosity(a, b), blendmodes_luminosity(a, b)).max() <= 1


def test_float32_against_float64_setlum(photos):
    rng = np.random.default_rng(2)
    cases = [
        (rng.random((64, 64, 3), dtype=np.float32), rng.random((64, 64, 3), dtype=np.float32)),
        (to_float(photos["astronaut"]), to_float(photos["rocket"])),
        (to_float(photos["chelsea"]), to_float(drift(photos["coffee"]))),
    ]
    for c, lu in cases:
        got = lw.blend_luminosity(c, lu)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref_blend(c, lu), rtol=0, atol=2e-6)


def test_float32_matches_uint8_path(photos):
    c, lu = photos["astronaut"], photos["rocket"]
    f = lw.blend_luminosity(to_float(c), to_float(lu))
    assert np.abs(f * 255 - lw.blend_luminosity(c, lu)).max() <= 0.5 + 1e-3


def test_float_input_outside_unit_range_is_clipped():
    rng = np.random.default_rng(3)
    c = rng.uniform(-0.5, 1.5, (20, 20, 3)).astype(np.float32)
    lu = rng.uniform(-0.5, 1.5, (20, 20, 3)).astype(np.float32)
    got = lw.blend_luminosity(c, lu)
    np.testing.assert_array_equal(got, lw.blend_luminosity(np.clip(c, 0, 1), np.clip(lu, 0, 1)))
    assert got.min() >= 0 and got.max() <= 1


def test_keeps_luminance_of_luma(photos):
    c, lu = to_float(photos["coffee"]), to_float(photos["chelsea"])
    out = lw.blend_luminosity(c, lu).astype(np.float64)
    # exact wherever ClipColor leaves the colour alone (it keeps Lum anyway)
    np.testing.assert_allclose(out @ REC601, lu @ REC601, atol=1e-5)


def test_keeps_hue_of_color_for_greys():
    # a grey colour stays grey at any luminance
    grey = np.full((4, 4, 3), 90, np.uint8)
    luma = np.random.default_rng(4).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    out = lw.blend_luminosity(grey, luma).astype(int)
    assert (out.max(-1) - out.min(-1)).max() <= 1
    np.testing.assert_allclose(out[..., 0], luma @ REC601, atol=1)


def test_blend_with_itself_is_identity(photos, hard):
    for img in (*photos.values(), hard):
        assert level_diff(lw.blend_luminosity(img, img), img).max() <= 1
        f = to_float(img)
        np.testing.assert_allclose(lw.blend_luminosity(f, f), f, atol=2e-6)


def test_batch_equals_single(photos):
    c = np.stack([photos["astronaut"], photos["coffee"]])
    lu = np.stack([photos["rocket"], photos["chelsea"]])
    out = lw.blend_luminosity(c, lu)
    assert out.shape == c.shape
    for i in range(2):
        np.testing.assert_array_equal(out[i], lw.blend_luminosity(c[i], lu[i]))


def test_the_float64_reference_is_blendmodes_before_rounding():
    # checks the oracle used for the float path against the library itself
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    want = ref_blend(a / 255, b / 255) * 255
    assert np.abs(blendmodes_luminosity(a, b) - want).max() <= 0.5 + 1e-9
