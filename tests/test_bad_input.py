"""Bad input raises TypeError/ValueError naming the argument; odd layouts are valid input."""

from __future__ import annotations

import numpy as np
import pytest

import loopwave as lw
from loopwave import _native

F = np.zeros((4, 6, 3), np.uint8)
FF = np.zeros((4, 6, 3), np.float32)

ONE_FRAME_FNS = {
    "rgb_to_lab": lambda x: lw.rgb_to_lab(x),
    "match_histograms": lambda x: lw.match_histograms(x, F),
    "blend_luminosity": lambda x: lw.blend_luminosity(x, F),
    "adjust_gamma": lambda x: lw.adjust_gamma(x, 1.2),
    "match_gamma": lambda x: lw.match_gamma(x, F),
    "lerp_frames": lambda x: lw.lerp_frames(x, F, 0.5),
    "color_correct": lambda x: lw.color_correct(x, F),
    "rgb_to_yuv420p": lambda x: lw.rgb_to_yuv420p(x),
}

BAD_TYPE = [
    None,
    [[[1, 2, 3]]],
    "frames",
    3.0,
    np.zeros((4, 6, 3), np.float64),
    np.zeros((4, 6, 3), np.int16),
    np.zeros((4, 6, 3), bool),
]
BAD_VALUE = [
    np.zeros((4, 6), np.uint8),
    np.zeros((4, 6, 4), np.uint8),
    np.zeros((1, 1, 4, 6, 3), np.uint8),
    np.zeros((0, 6, 3), np.uint8),
]


@pytest.mark.parametrize("name", sorted(ONE_FRAME_FNS))
@pytest.mark.parametrize(
    "bad", BAD_TYPE, ids=lambda b: type(b).__name__ + str(getattr(b, "dtype", ""))
)
def test_wrong_type_names_the_argument(name, bad):
    arg = "a" if name == "lerp_frames" else "color" if name == "blend_luminosity" else "frames"
    with pytest.raises(TypeError, match=arg):
        ONE_FRAME_FNS[name](bad)


@pytest.mark.parametrize("name", sorted(ONE_FRAME_FNS))
@pytest.mark.parametrize("bad", BAD_VALUE, ids=lambda b: str(b.shape))
def test_wrong_shape_names_the_argument(name, bad):
    arg = "a" if name == "lerp_frames" else "color" if name == "blend_luminosity" else "frames"
    with pytest.raises(ValueError, match=arg):
        ONE_FRAME_FNS[name](bad)


@pytest.mark.parametrize("name", sorted(ONE_FRAME_FNS))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_float_is_refused(name, bad):
    x = FF.copy()
    x[1, 2, 0] = bad
    fn = {
        "match_histograms": lambda x: lw.match_histograms(x, FF),
        "blend_luminosity": lambda x: lw.blend_luminosity(x, FF),
        "match_gamma": lambda x: lw.match_gamma(x, FF),
        "lerp_frames": lambda x: lw.lerp_frames(x, FF, 0.5),
        "color_correct": lambda x: lw.color_correct(x, FF),
    }.get(name, ONE_FRAME_FNS[name])
    with pytest.raises(ValueError, match="NaN|finite"):
        fn(x)


def test_second_arguments():
    with pytest.raises(TypeError, match="reference"):
        lw.match_histograms(F, FF)
    with pytest.raises(ValueError, match="reference"):
        lw.match_histograms(np.stack([F] * 3), np.stack([F] * 2))
    with pytest.raises(ValueError, match="luma"):
        lw.blend_luminosity(F, F[:2])
    with pytest.raises(ValueError, match="b"):
        lw.lerp_frames(F, F[:, :2], 0.5)
    with pytest.raises(TypeError, match="target"):
        lw.color_correct(F, None)
    with pytest.raises(ValueError, match="target"):
        lw.color_correct(np.stack([F] * 3), np.stack([F] * 2))
    with pytest.raises(TypeError, match="gamma"):
        lw.color_correct(F, F, gamma="yes")
    nan_target = FF.copy()
    nan_target[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="target"):
        lw.color_correct(FF, nan_target)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, np.nan, [0.1, 0.2, 0.3]])
def test_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match="alpha"):
        lw.lerp_frames(np.stack([F, F]), np.stack([F, F]), alpha)


@pytest.mark.parametrize("gamma", [0.0, -1.0, np.nan, np.inf, [1.0, 2.0, 3.0]])
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        lw.adjust_gamma(np.stack([F, F]), gamma)


@pytest.mark.parametrize("gamma", [None, "2", True])
def test_gamma_wrong_type(gamma):
    with pytest.raises(TypeError, match="gamma"):
        lw.adjust_gamma(F, gamma)


def test_lab_and_dtype_and_mean_and_threads():
    with pytest.raises(TypeError, match="lab"):
        lw.lab_to_rgb(F)
    with pytest.raises(TypeError, match="lab"):
        lw.lab_to_rgb([[[50.0, 0.0, 0.0]]])
    with pytest.raises(TypeError, match="dtype"):
        lw.lab_to_rgb(FF, dtype=np.float64)
    with pytest.raises(ValueError, match="frames"):
        lw.mean_frames(F)
    with pytest.raises(TypeError, match="frames"):
        lw.mean_frames([])
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        lw.mean_frames([F, F[:2]])
    with pytest.raises(TypeError, match="n"):
        lw.set_num_threads(1.5)
    with pytest.raises(ValueError, match="n"):
        lw.set_num_threads(-1)


def test_odd_layouts_are_valid(photos):
    img = photos["coffee"]
    target = photos["rocket"]
    want = lw.color_correct(img, target)
    ro = img.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(lw.color_correct(ro, target), want)
    np.testing.assert_array_equal(lw.color_correct(np.asfortranarray(img), target), want)
    big = np.zeros((256, 256, 3), np.uint8)
    big[::2, ::2] = img
    np.testing.assert_array_equal(lw.color_correct(big[::2, ::2], target), want)
    f = img.astype(np.float32) / 255
    np.testing.assert_array_equal(lw.rgb_to_lab(f.astype(">f4")), lw.rgb_to_lab(f))


def test_panic_is_an_exception_not_a_crash():
    with pytest.raises(lw.KernelPanic, match="internal error"):
        _native._panic_for_tests()
    assert issubclass(lw.KernelPanic, RuntimeError)
    assert lw.rgb_to_lab(F).shape == F.shape  # still usable afterwards


def test_raw_native_calls_raise_instead_of_crashing():
    with pytest.raises(TypeError, match="frames"):
        _native.rgb_to_lab(F)  # 3-D: the native layer wants (n, h, w, 3)
    with pytest.raises(ValueError, match="contiguous"):
        _native.rgb_to_lab(np.zeros((1, 4, 6, 3), np.uint8)[:, :, ::2])
    with pytest.raises(ValueError, match="channels"):
        _native.rgb_to_lab(np.zeros((1, 4, 6, 4), np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        _native.rgb_to_lab(np.zeros((0, 4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="reference"):
        _native.match_histograms(np.zeros((3, 2, 2, 3), np.uint8), np.zeros((2, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="gamma"):
        _native.adjust_gamma(np.zeros((1, 2, 2, 3), np.uint8), np.array([0.0]))
    with pytest.raises(ValueError, match="matrix"):
        _native.rgb_to_yuv420p(np.zeros((1, 2, 2, 3), np.uint8), "x", False)
