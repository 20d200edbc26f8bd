"""rgb_to_lab / lab_to_rgb against a float64 reference and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from reference import rgb_to_lab as ref_lab
from skimage.color import rgb2lab

import loopwave as lw


def test_photos_within_005_of_float64(photos):
    for img in photos.values():
        want = ref_lab(img / 255.0)
        assert np.abs(lw.rgb_to_lab(img) - want).max() < 0.05
        f = img.astype(np.float32) / 255
        assert np.abs(lw.rgb_to_lab(f) - ref_lab(f)).max() < 0.05


def test_hard_cases_and_skimage(hard):
    got = lw.rgb_to_lab(hard)
    assert got.dtype == np.float32 and got.shape == hard.shape
    assert np.abs(got - ref_lab(hard / 255.0)).max() < 0.05
    assert np.abs(got - rgb2lab(hard)).max() < 0.05


def test_continuous_float_input():
    x = np.random.default_rng(1).random((2, 31, 17, 3), dtype=np.float32)
    assert np.abs(lw.rgb_to_lab(x) - ref_lab(x)).max() < 0.05


def test_white_black():
    lab = lw.rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8))
    np.testing.assert_allclose(lab, [[[100, 0, 0], [0, 0, 0]]], atol=1e-3)


def test_uint8_round_trip_on_a_large_colour_sample(photos):
    # all 2^24 colours are checked by the Rust test suite; here a 2^21 sample plus photos
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 1024, 2048, 3), dtype=np.uint8)
    np.testing.assert_array_equal(lw.lab_to_rgb(lw.rgb_to_lab(x)), x)
    for img in photos.values():
        np.testing.assert_array_equal(lw.lab_to_rgb(lw.rgb_to_lab(img)), img)


def test_float_output_and_float64_lab(photos):
    img = photos["coffee"]
    back = lw.lab_to_rgb(ref_lab(img / 255.0), dtype=np.float32)  # float64 Lab accepted
    assert back.dtype == np.float32
    assert np.abs(back - img / 255.0).max() < 1e-4


def test_out_of_gamut_is_clipped():
    lab = np.array([[[50, 120, -120], [100, 0, 0], [-5, 0, 0], [120, 0, 0]]], np.float32)
    out = lw.lab_to_rgb(lab)
    assert out.dtype == np.uint8
    assert out[0, 1].tolist() == [255, 255, 255]
    assert out[0, 2].tolist() == [0, 0, 0]
    assert out[0, 3].tolist() == [255, 255, 255]
    f = lw.lab_to_rgb(lab, dtype=np.float32)
    assert f.min() >= 0 and f.max() <= 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_lab_non_finite_is_refused(bad):
    lab = np.zeros((2, 2, 3), np.float32)
    lab[1, 1, 2] = bad
    with pytest.raises(ValueError, match="lab"):
        lw.lab_to_rgb(lab)
