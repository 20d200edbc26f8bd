"""Hypothesis property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import loopwave as lw

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3))
frames_u8 = arrays(np.uint8, shapes)
frames_f32 = arrays(np.float32, shapes, elements=st.floats(0, 1, width=32))
settings.register_profile("loopwave", max_examples=60, deadline=None)
settings.load_profile("loopwave")


@given(frames_u8)
def test_lab_round_trip(x):
    np.testing.assert_array_equal(lw.lab_to_rgb(lw.rgb_to_lab(x)), x)


@given(frames_f32)
def test_lab_round_trip_float(x):
    assert np.abs(lw.lab_to_rgb(lw.rgb_to_lab(x), dtype=np.float32) - x).max() < 1e-4


@given(frames_u8)
def test_match_to_itself_is_identity(x):
    np.testing.assert_array_equal(lw.match_histograms(x, x), x)


@given(frames_u8, frames_u8)
def test_lerp_endpoints(a, b):
    b = np.resize(b, a.shape)
    np.testing.assert_array_equal(lw.lerp_frames(a, b, 0.0), a)
    np.testing.assert_array_equal(lw.lerp_frames(a, b, 1.0), b)


@given(frames_u8)
def test_blend_with_itself_is_near_identity(x):
    assert np.abs(lw.blend_luminosity(x, x).astype(int) - x.astype(int)).max() <= 1


@given(frames_f32, frames_f32, st.booleans())
def test_color_correct_stays_finite_and_in_range(x, t, gamma):
    out = lw.color_correct(x, t, gamma=gamma)
    assert out.shape == x.shape and np.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


@given(frames_u8, frames_u8)
def test_color_correct_uint8_shapes(x, t):
    out, g = lw.color_correct(x, t, return_gammas=True)
    assert out.shape == x.shape and out.dtype == np.uint8
    assert 1 / 32 <= g <= 32
