"""adjust_gamma / match_gamma / lerp_frames / mean_frames against scikit-image, PIL, numpy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from reference import mean_lightness
from skimage.exposure import adjust_gamma as sk_gamma

import loopwave as lw


@pytest.mark.parametrize("gamma", [0.3, 0.8, 1.0, 1.7, 4.0])
def test_adjust_gamma_matches_skimage(photos, hard, gamma):
    for img in (*photos.values(), hard):
        got = lw.adjust_gamma(img, gamma)
        assert np.abs(got.astype(int) - sk_gamma(img, gamma).astype(int)).max() <= 1
        f = img.astype(np.float32) / 255
        np.testing.assert_allclose(lw.adjust_gamma(f, gamma), sk_gamma(f, gamma), atol=2e-6)


def test_adjust_gamma_per_frame(photos):
    batch = np.stack([photos["coffee"], photos["rocket"]])
    out = lw.adjust_gamma(batch, [0.5, 2.0])
    np.testing.assert_array_equal(out[0], lw.adjust_gamma(batch[0], 0.5))
    np.testing.assert_array_equal(out[1], lw.adjust_gamma(batch[1], 2.0))


@pytest.mark.parametrize("factor", [0.55, 0.8, 1.25])
def test_match_gamma_reaches_the_reference_lightness(photos, factor):
    for img in photos.values():
        ref = (np.clip(img * factor, 0, 255)).astype(np.uint8)
        out, g = lw.match_gamma(img, ref)
        assert isinstance(g, float)
        assert abs(mean_lightness(out) - mean_lightness(ref)) < 0.5
        assert (g > 1) == (factor < 1)
        np.testing.assert_array_equal(out, lw.adjust_gamma(img, g))


def test_match_gamma_batch_and_edge_cases(photos):
    img = photos["chelsea"]
    out, g = lw.match_gamma(img, img)
    assert g == 1.0
    np.testing.assert_array_equal(out, img)
    batch = np.stack([img, photos["coffee"], np.zeros_like(img)])
    out, gs = lw.match_gamma(batch, photos["rocket"])
    assert gs.shape == (3,) and gs[2] == 1.0  # black: gamma cannot change it
    f = img.astype(np.float32) / 255
    fo, fg = lw.match_gamma(f, (f * 0.7).astype(np.float32))
    assert abs(mean_lightness(fo * 255) - mean_lightness(f * 0.7 * 255)) < 0.5


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_lerp_matches_pil_blend(photos, alpha):
    a, b = photos["astronaut"], photos["coffee"]
    want = np.asarray(Image.blend(Image.fromarray(a), Image.fromarray(b), alpha))
    got = lw.lerp_frames(a, b, alpha)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    if alpha == 0.0:
        np.testing.assert_array_equal(got, a)
    if alpha == 1.0:
        np.testing.assert_array_equal(got, b)


def test_lerp_per_frame_alpha_and_float(photos):
    a = np.stack([photos["astronaut"], photos["rocket"]])
    b = np.stack([photos["coffee"], photos["chelsea"]])
    out = lw.lerp_frames(a, b, [0.2, 0.7])
    np.testing.assert_array_equal(out[1], lw.lerp_frames(a[1], b[1], 0.7))
    fa, fb = a.astype(np.float32) / 255, b.astype(np.float32) / 255
    np.testing.assert_allclose(lw.lerp_frames(fa, fb, 0.3), fa + 0.3 * (fb - fa), atol=1e-6)


def test_mean_frames(photos):
    frames = np.stack(list(photos.values()))
    want = np.floor(frames.astype(np.float64).mean(0) + 0.5)
    np.testing.assert_array_equal(lw.mean_frames(frames), want.astype(np.uint8))
    np.testing.assert_array_equal(lw.mean_frames(list(frames)), lw.mean_frames(frames))
    f = frames.astype(np.float32) / 255
    np.testing.assert_allclose(lw.mean_frames(f), f.mean(0), atol=1e-6)
