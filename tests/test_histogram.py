"""match_histograms against skimage.exposure.match_histograms(channel_axis=-1)."""

from __future__ import annotations

import numpy as np
from conftest import drift
from skimage.exposure import match_histograms as sk_match

import loopwave as lw


def test_uint8_equals_skimage_on_photos(photos):
    names = sorted(photos)
    for a, b in zip(names, names[1:] + names[:1], strict=True):
        got = lw.match_histograms(photos[a], photos[b])
        want = sk_match(photos[a], photos[b], channel_axis=-1)
        assert got.dtype == np.uint8
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
        assert (got == want).mean() > 0.999


def test_hard_cases_match_skimage(hard, photos):
    ref = photos["astronaut"]
    for x, r in ((hard, ref), (ref, hard)):
        want = sk_match(x, r, channel_axis=-1)
        assert np.abs(lw.match_histograms(x, r).astype(int) - want.astype(int)).max() <= 1


def test_reference_one_per_frame_and_other_size(photos):
    frames = np.stack([photos["coffee"], photos["chelsea"]])
    refs = np.stack([photos["rocket"], photos["astronaut"]])
    got = lw.match_histograms(frames, refs)
    for i in range(2):
        np.testing.assert_array_equal(got[i], lw.match_histograms(frames[i], refs[i]))
    small = photos["rocket"][::3, ::2]
    got = lw.match_histograms(frames, small)
    want = sk_match(frames[1], small, channel_axis=-1)
    assert np.abs(got[1].astype(int) - want.astype(int)).max() <= 1


def test_float_from_uint8_equals_skimage(photos):
    a = photos["chelsea"].astype(np.float32) / 255
    b = drift(photos["astronaut"]).astype(np.float32) / 255
    got = lw.match_histograms(a, b)
    want = sk_match(a, b, channel_axis=-1)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-6


def test_continuous_float_within_a_few_bins_on_dense_images():
    # 4096 bins per channel: on images with many pixels per bin the binned CDF
    # is within a few bin widths of the exact (sort-based) one
    rng = np.random.default_rng(5)
    a = rng.random((256, 256, 3), dtype=np.float32)
    b = rng.random((256, 256, 3), dtype=np.float32) ** 3
    got = lw.match_histograms(a, b)
    want = sk_match(a, b, channel_axis=-1)
    bin_width = (max(a.max(), b.max()) - min(a.min(), b.min())) / 4096
    err = np.abs(got - want)
    assert np.median(err) < bin_width
    assert np.quantile(err, 0.99) < 4 * bin_width
    assert err.max() < 10 * bin_width


def test_lab_of_photos_matches_skimage_closely(photos):
    # float values outside [0, 1] work: the seed matches histograms in Lab
    lab = lw.rgb_to_lab(drift(photos["coffee"]))
    ref = lw.rgb_to_lab(photos["rocket"])
    got = lw.match_histograms(lab, ref)
    want = sk_match(lab, ref, channel_axis=-1)
    assert np.quantile(np.abs(got - want), 0.99) < 0.3
    assert np.median(np.abs(got - want)) < 0.02  # under one bin (0.024)
