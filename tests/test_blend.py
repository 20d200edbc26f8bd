"""blend_luminosity against the blendmodes library the seed uses."""

from __future__ import annotations

import numpy as np
from blendmodes.blend import BlendType, blendLayers
from conftest import drift
from PIL import Image

import loopwave as lw


def blendmodes_luminosity(color: np.ndarray, luma: np.ndarray) -> np.ndarray:
    out = blendLayers(Image.fromarray(color), Image.fromarray(luma), BlendType.LUMINOSITY)
    return np.asarray(out.convert("RGB"))


def test_photos_within_one_level(photos):
    names = sorted(photos)
    for a, b in zip(names, names[1:] + names[:1], strict=True):
        got = lw.blend_luminosity(photos[a], photos[b])
        want = blendmodes_luminosity(photos[a], photos[b])
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_hard_cases_within_one_level(hard, photos):
    other = drift(np.resize(photos["rocket"], hard.shape))
    for c, lu in ((hard, other), (other, hard)):
        want = blendmodes_luminosity(c, lu)
        assert np.abs(lw.blend_luminosity(c, lu).astype(int) - want.astype(int)).max() <= 1


def test_keeps_luminance_of_luma(photos):
    c, lu = photos["coffee"], photos["chelsea"]
    out = lw.blend_luminosity(c, lu).astype(float)
    w = np.array([0.299, 0.587, 0.114])
    # exact except where ClipColor had to pull a colour into gamut
    assert np.median(np.abs(out @ w - lu.astype(float) @ w)) < 0.6


def test_float32_matches_uint8_path(photos):
    c, lu = photos["astronaut"], photos["rocket"]
    f = lw.blend_luminosity(c.astype(np.float32) / 255, lu.astype(np.float32) / 255)
    assert f.dtype == np.float32
    assert np.abs(f * 255 - lw.blend_luminosity(c, lu)).max() <= 0.5 + 1e-3


def test_batch_equals_single(photos):
    c = np.stack([photos["astronaut"], photos["coffee"]])
    lu = np.stack([photos["rocket"], photos["chelsea"]])
    out = lw.blend_luminosity(c, lu)
    for i in range(2):
        np.testing.assert_array_equal(out[i], lw.blend_luminosity(c[i], lu[i]))
