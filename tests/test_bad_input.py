"""Bad input raises TypeError/ValueError naming the argument; odd layouts are valid input;
the native layer raises instead of crashing."""

from __future__ import annotations

import decimal
import re
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import loopwave as lw
from loopwave import _native

F = np.zeros((4, 6, 3), np.uint8)
FF = np.zeros((4, 6, 3), np.float32)
B2 = np.stack([F, F])


def names_arg(exc: pytest.ExceptionInfo[BaseException], arg: str) -> None:
    """The message leads with the argument's name ('a must ...', 'frames[1] must ...');
    an element of a list argument may be named by its index ('frames[0] must ...')."""
    msg = str(exc.value)
    index = "" if "[" in arg else r"(\[\d+\])?"
    pattern = rf"{re.escape(arg)}{index}(?![\w\[])"
    assert re.match(pattern, msg), f"message does not name {arg!r}: {msg}"


def frame_args(good: np.ndarray) -> dict[tuple[str, str], Callable[[Any], Any]]:
    """Every frame-array argument of the public API, called with ``good`` companions:
    (function, argument name) -> call(bad value)."""
    return {
        ("rgb_to_lab", "frames"): lambda x: lw.rgb_to_lab(x),
        ("match_histograms", "frames"): lambda x: lw.match_histograms(x, good),
        ("match_histograms", "reference"): lambda x: lw.match_histograms(good, x),
        ("blend_luminosity", "color"): lambda x: lw.blend_luminosity(x, good),
        ("blend_luminosity", "luma"): lambda x: lw.blend_luminosity(good, x),
        ("adjust_gamma", "frames"): lambda x: lw.adjust_gamma(x, 1.2),
        ("match_gamma", "frames"): lambda x: lw.match_gamma(x, good),
        ("match_gamma", "reference"): lambda x: lw.match_gamma(good, x),
        ("lerp_frames", "a"): lambda x: lw.lerp_frames(x, good, 0.5),
        ("lerp_frames", "b"): lambda x: lw.lerp_frames(good, x, 0.5),
        ("mean_frames", "frames"): lambda x: lw.mean_frames(x),
        ("color_correct", "frames"): lambda x: lw.color_correct(x, good),
        ("color_correct", "target"): lambda x: lw.color_correct(good, x),
        ("rgb_to_yuv420p", "frames"): lambda x: lw.rgb_to_yuv420p(x),
    }


FRAME_ARGS = {
    **frame_args(F),
    ("mean_frames", "frames[1]"): lambda x: lw.mean_frames([F, x]),
}
# float32 companions (for NaN/inf in float input), and lab_to_rgb, which takes float only
FLOAT_ARGS = {
    **frame_args(FF),
    ("lab_to_rgb", "lab"): lambda x: lw.lab_to_rgb(x),
    ("mean_frames", "frames"): lambda x: lw.mean_frames(np.stack([FF, x])),
}

BAD_TYPE = {
    "None": None,
    "nested_list": [[[1, 2, 3]]],
    "string": "frames",
    "bytes": b"\x00\x01\x02",
    "float": 3.0,
    "int": 3,
    "float64": np.zeros((4, 6, 3), np.float64),
    "int16": np.zeros((4, 6, 3), np.int16),
    "uint16": np.zeros((4, 6, 3), np.uint16),
    "bool": np.zeros((4, 6, 3), bool),
    "float16": np.zeros((4, 6, 3), np.float16),
    "complex64": np.zeros((4, 6, 3), np.complex64),
    "object": np.zeros((4, 6, 3), object),
}
BAD_VALUE = {
    "rank1": np.zeros(3, np.uint8),
    "rank2": np.zeros((4, 6), np.uint8),
    "rank5": np.zeros((1, 1, 4, 6, 3), np.uint8),
    "4_channels": np.zeros((4, 6, 4), np.uint8),
    "1_channel": np.zeros((4, 6, 1), np.uint8),
    "empty_rows": np.zeros((0, 6, 3), np.uint8),
    "empty_cols": np.zeros((4, 0, 3), np.uint8),
    "empty_batch": np.zeros((0, 4, 6, 3), np.uint8),
}


@pytest.mark.parametrize(("fn", "arg"), sorted(FRAME_ARGS))
@pytest.mark.parametrize("bad", sorted(BAD_TYPE))
def test_wrong_type_or_dtype_names_the_argument(fn, arg, bad):
    with pytest.raises(TypeError) as exc:
        FRAME_ARGS[fn, arg](BAD_TYPE[bad])
    names_arg(exc, arg)


@pytest.mark.parametrize(("fn", "arg"), sorted(FRAME_ARGS))
@pytest.mark.parametrize("bad", sorted(BAD_VALUE))
def test_wrong_shape_names_the_argument(fn, arg, bad):
    with pytest.raises(ValueError) as exc:
        FRAME_ARGS[fn, arg](BAD_VALUE[bad])
    names_arg(exc, arg)


@pytest.mark.parametrize(("fn", "arg"), sorted(FLOAT_ARGS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0, 0), (3, 5, 2)])
def test_non_finite_float_is_refused(fn, arg, bad, where):
    x = FF.copy()
    x[where] = bad
    with pytest.raises(ValueError, match=r"NaN|finite") as exc:
        FLOAT_ARGS[fn, arg](x)
    names_arg(exc, arg)


def test_non_finite_in_a_later_frame_of_a_batch():
    x = np.zeros((3, 4, 6, 3), np.float32)
    x[2, 3, 5, 2] = np.nan
    for call in (
        lambda: lw.rgb_to_lab(x),
        lambda: lw.color_correct(x, FF),
        lambda: lw.match_histograms(x, FF),
        lambda: lw.rgb_to_yuv420p(x),
        lambda: lw.mean_frames(x),
    ):
        with pytest.raises(ValueError, match="frames"):
            call()


# ------------------------------------------------------- mismatched companions


def test_mismatched_dtypes_name_the_second_argument():
    for call, arg in (
        (lambda: lw.match_histograms(F, FF), "reference"),
        (lambda: lw.match_gamma(F, FF), "reference"),
        (lambda: lw.blend_luminosity(F, FF), "luma"),
        (lambda: lw.lerp_frames(F, FF, 0.5), "b"),
        (lambda: lw.color_correct(F, FF), "target"),
        (lambda: lw.color_correct(FF, F), "target"),
        # a list of frames of two dtypes (it was a ValueError)
        (lambda: lw.mean_frames([F, FF]), "frames[1]"),
        (lambda: lw.mean_frames([FF, FF, F]), "frames[2]"),
    ):
        with pytest.raises(TypeError) as exc:
            call()
        names_arg(exc, arg)


def test_mismatched_shapes_and_batch_sizes():
    b3 = np.stack([F] * 3)
    for call, arg in (
        (lambda: lw.match_histograms(b3, B2), "reference"),
        (lambda: lw.match_gamma(b3, B2), "reference"),
        (lambda: lw.color_correct(b3, B2), "target"),
        (lambda: lw.blend_luminosity(F, F[:2]), "luma"),
        (lambda: lw.blend_luminosity(b3, B2), "luma"),
        (lambda: lw.blend_luminosity(B2, F), "luma"),
        (lambda: lw.lerp_frames(F, F[:, :2], 0.5), "b"),
        (lambda: lw.lerp_frames(b3, B2, 0.5), "b"),
        (lambda: lw.lerp_frames(B2, F, 0.5), "b"),
        (lambda: lw.mean_frames([F, F[:2]]), "frames[1]"),
        (lambda: lw.mean_frames([FF, FF, FF[:, :5]]), "frames[2]"),
    ):
        with pytest.raises(ValueError) as exc:
            call()
        names_arg(exc, arg)


def test_unaligned_float_frames_are_valid_input():
    buf = np.zeros(4 * 6 * 3 * 4 + 1, np.uint8)
    x = np.ndarray((4, 6, 3), np.float32, buf, offset=1)  # C-contiguous, not aligned
    x[...] = np.linspace(0, 1, x.size, dtype=np.float32).reshape(x.shape)
    assert not x.flags.aligned
    np.testing.assert_array_equal(lw.rgb_to_lab(x), lw.rgb_to_lab(x.copy()))
    np.testing.assert_array_equal(lw.color_correct(x, x), lw.color_correct(x.copy(), x.copy()))


def test_a_frame_against_a_batch_shows_both_shapes():
    # each argument's shape as given (the message once showed (4, 6, 3) twice)
    for call, msg in (
        (lambda: lw.blend_luminosity(F, B2), "color (4, 6, 3); got (2, 4, 6, 3)"),
        (lambda: lw.lerp_frames(F, B2, 0.5), "a (4, 6, 3); got (2, 4, 6, 3)"),
        (lambda: lw.lerp_frames(B2, F, 0.5), "a (2, 4, 6, 3); got (4, 6, 3)"),
        # (from a review) a frame and a batch of one were taken as one shape, the
        # result's rank the first argument's
        (lambda: lw.blend_luminosity(F, F[None]), "color (4, 6, 3); got (1, 4, 6, 3)"),
        (lambda: lw.blend_luminosity(F[None], F), "color (1, 4, 6, 3); got (4, 6, 3)"),
        (lambda: lw.lerp_frames(F, F[None], 0.5), "a (4, 6, 3); got (1, 4, 6, 3)"),
        (lambda: lw.lerp_frames(F[None], F, 0.5), "a (1, 4, 6, 3); got (4, 6, 3)"),
    ):
        with pytest.raises(ValueError, match=re.escape(msg)):
            call()


def test_mean_frames_list_items_are_single_frames():
    # a batch among frames was averaged in as its frames: [frame, batch of 3] gave a
    # four-frame mean
    with pytest.raises(ValueError, match=r"^frames\[1\] must be one frame"):
        lw.mean_frames([B2[0], np.stack([B2[0]] * 3)])
    # a memoryview is an array, not a sequence of sub-views (NotImplementedError before)
    np.testing.assert_array_equal(lw.mean_frames(memoryview(B2)), lw.mean_frames(B2))


def test_mean_frames_needs_several_frames():
    with pytest.raises(ValueError) as exc:
        lw.mean_frames(F)  # one frame, not a batch
    names_arg(exc, "frames")
    for bad in ([], (), None, "frames", 3):
        with pytest.raises(TypeError) as exc:
            lw.mean_frames(bad)
        names_arg(exc, "frames")


# -------------------------------------------------------------- scalar arguments


@pytest.mark.parametrize(
    "alpha", [-0.1, 1.5, np.nan, np.inf, -np.inf, [0.1, 0.2, 0.3], [], [[0.1, 0.2]]]
)
def test_alpha_out_of_range_or_wrong_length(alpha):
    with pytest.raises(ValueError) as exc:
        lw.lerp_frames(B2, B2, alpha)
    names_arg(exc, "alpha")


# bytearray and memoryview were read as small ints where bytes was refused (a review)
@pytest.mark.parametrize(
    "alpha", [None, "0.5", True, b"x", bytearray(b"\x00\x01"), memoryview(b"\x00\x01"), object()]
)
def test_alpha_wrong_type(alpha):
    with pytest.raises(TypeError) as exc:
        lw.lerp_frames(B2, B2, alpha)
    names_arg(exc, "alpha")


@pytest.mark.parametrize(
    ("call", "arg", "err"),
    [
        (lambda x: lw.adjust_gamma(B2, x), "gamma", ValueError),
        (lambda x: lw.lerp_frames(B2, B2, x), "alpha", ValueError),
        (lambda x: lw.set_num_threads(x), "n", ValueError),
    ],
)
def test_numbers_beyond_float64_are_value_errors(call, arg, err):
    # a Python int beyond float64 raised OverflowError (neither TypeError nor ValueError)
    for huge in (10**400, 2**64):
        if arg != "n" and huge == 2**64:
            continue  # representable: an ordinary out-of-range (gamma fine, alpha > 1)
        with pytest.raises(err) as exc:
            call(huge)
        names_arg(exc, arg)


@pytest.mark.parametrize("bad", [np.bool_(True), 1 + 0j, np.array([1 + 0j, 2 + 0j])])
def test_gamma_bool_or_complex(bad):
    with pytest.raises(TypeError) as exc:
        lw.adjust_gamma(B2, bad)
    names_arg(exc, "gamma")


@pytest.mark.parametrize("flag", ["no", 0, None])
def test_return_gammas_must_be_bool(flag):
    with pytest.raises(TypeError) as exc:
        lw.color_correct(F, F, return_gammas=flag)
    names_arg(exc, "return_gammas")


def test_alpha_list_holding_none():
    with pytest.raises((TypeError, ValueError)) as exc:  # None reads as NaN here
        lw.lerp_frames(B2, B2, [None, 0.5])
    names_arg(exc, "alpha")


@pytest.mark.parametrize(
    "gamma", [0.0, -1.0, -0.0, np.nan, np.inf, [1.0, 0.0], [1.0, 2.0, 3.0], [], [[1.0, 2.0]]]
)
def test_bad_gamma(gamma):
    with pytest.raises(ValueError) as exc:
        lw.adjust_gamma(B2, gamma)
    names_arg(exc, "gamma")


@pytest.mark.parametrize(
    ("gamma", "said"),
    [
        (decimal.Decimal("1e-400"), "got 1e-400 (0 in float64)"),
        (np.longdouble("1e-4000"), "got 1e-4000 (0 in float64)"),
        ([1.0, decimal.Decimal("-1e-400")], "got -1e-400 (0 in float64)"),
        ([decimal.Decimal("1e-400")], "got 1e-400 (0 in float64)"),
        (decimal.Decimal("1." + "23456789" * 5 + "E-401"), "got 1.23457e-401 (0 in float64)"),
        (0, "got 0.0"),
        (-0.0, "got -0.0"),
        (Fraction(1, 10**400), "got 1e-400 (0 in float64)"),
        (Fraction(-3, 7 * 10**400), "got -4.28571e-401 (0 in float64)"),
        ([2.0, -3], "got -3.0"),
    ],
)
def test_a_bad_gamma_is_quoted_as_given(gamma, said):
    """From a review: a positive gamma below float64's smallest was refused as "got
    0.0", the value after conversion, not the one given."""
    if isinstance(gamma, np.longdouble) and gamma == 0:
        pytest.skip("this platform's long double is float64")
    with pytest.raises(ValueError, match=r"^gamma must be finite and in \(0\.0, inf\); ") as exc:
        lw.adjust_gamma(B2, gamma)
    assert str(exc.value).endswith(said), exc.value


def test_one_value_per_frame_says_number_for_one_frame():
    with pytest.raises(
        ValueError, match=r"^alpha must be a number or a sequence of 1 number \(one"
    ):
        lw.lerp_frames(B2[:1], B2[:1], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"^alpha must be a number or 2 numbers \(one per"):
        lw.lerp_frames(B2, B2, [0.2, 0.3, 0.4])


@pytest.mark.parametrize(
    "gamma",
    [
        None,
        "2",
        True,
        False,
        b"2",
        bytearray(b"\x01\x02"),
        memoryview(b"\x01\x02"),
        ["a", "b"],
        object(),
        # arrays of text, bools or objects (the first two were accepted as numbers)
        ["1.5", "2"],
        np.array([True, True]),
        np.array([1, None], dtype=object),
    ],
)
def test_gamma_wrong_type(gamma):
    with pytest.raises(TypeError) as exc:
        lw.adjust_gamma(F, gamma)
    names_arg(exc, "gamma")


@pytest.mark.parametrize("gamma", ["yes", 1, 0.5, None, [True]])
def test_color_correct_gamma_flag_must_be_bool(gamma):
    with pytest.raises(TypeError) as exc:
        lw.color_correct(F, F, gamma=gamma)
    names_arg(exc, "gamma")


def test_lab_to_rgb_arguments():
    with pytest.raises(TypeError) as exc:
        lw.lab_to_rgb(F)  # uint8 is not Lab
    names_arg(exc, "lab")
    for bad in (None, [[[50.0, 0.0, 0.0]]], "lab", 50.0):
        with pytest.raises(TypeError) as exc:
            lw.lab_to_rgb(bad)
        names_arg(exc, "lab")
    for bad in (np.zeros((4, 6), np.float32), np.zeros((4, 6, 2), np.float32), FF[:0]):
        with pytest.raises(ValueError) as exc:
            lw.lab_to_rgb(bad)
        names_arg(exc, "lab")
    for dtype in (np.float64, np.int16, bool, "nonsense", None):
        with pytest.raises(TypeError) as exc:
            lw.lab_to_rgb(FF, dtype=dtype)
        names_arg(exc, "dtype")
    with pytest.raises(TypeError, match="got None"):  # np.dtype(None) is float64
        lw.lab_to_rgb(FF, dtype=None)


def test_exact_numbers_are_numbers():
    # Fraction (VideoReader.fps is one) and Decimal were refused as "not real numbers"
    from decimal import Decimal
    from fractions import Fraction

    for g, same in ((Fraction(1, 2), 0.5), (Decimal("0.5"), 0.5), ([Fraction(1, 2), 2], [0.5, 2])):
        np.testing.assert_array_equal(lw.adjust_gamma(B2, g), lw.adjust_gamma(B2, same))
    np.testing.assert_array_equal(lw.lerp_frames(B2, B2, Fraction(1, 3)), B2)
    with pytest.raises(TypeError, match="^gamma .*bool"):  # a bool among numbers
        lw.adjust_gamma(B2, [True, 2.0])
    # nested: numpy turns [[True, 0.5]] into floats, and bools were read as 1 and 0
    eye = [[True, False, 0.0], [False, True, 0.0]]
    with pytest.raises(TypeError, match="^matrix .*bool"):
        lw.warp_affine(B2, eye)
    with pytest.raises(TypeError, match="^matrix .*bool"):
        lw.warp_affine(B2, ([1.0, np.bool_(False), 0.0], (0.0, 1.0, 0.0)))
    with pytest.raises(TypeError, match="^gamma .*bool"):
        lw.adjust_gamma(B2, [[True], [2.0]])
    assert lw.warp_affine(B2, [[1.0, 0, 0], [0, 1, 0]]).shape == B2.shape


def test_lab_to_rgb_names_what_lab_must_be():
    # a finite float64 beyond float32 was reported as "NaN or infinity"
    big = np.full((2, 2, 3), 1e300)
    with pytest.raises(ValueError, match="^lab: has values beyond float32's range"):
        lw.lab_to_rgb(big)
    # the shape error said "dtype uint8 or float32", which Lab is not
    with pytest.raises(ValueError, match="^lab must be a float array of shape") as exc:
        lw.lab_to_rgb(np.zeros((4, 6), np.float32))
    assert "uint8" not in str(exc.value)


def test_rgb_to_yuv420p_arguments():
    with pytest.raises(ValueError) as exc:
        lw.rgb_to_yuv420p(np.zeros((3, 4, 3), np.uint8))
    names_arg(exc, "frames")
    with pytest.raises(ValueError, match="matrix"):
        lw.rgb_to_yuv420p(F, matrix="bt999")
    with pytest.raises(ValueError, match="^matrix "):  # UnicodeEncodeError before
        lw.rgb_to_yuv420p(F, matrix="\ud800")
    with pytest.raises(TypeError) as exc:
        lw.rgb_to_yuv420p(F, matrix=601)
    names_arg(exc, "matrix")


@pytest.mark.parametrize("n", [1.5, "2", None, True, [2]])
def test_set_num_threads_wrong_type(n):
    before = lw.get_num_threads()
    with pytest.raises(TypeError) as exc:
        lw.set_num_threads(n)
    names_arg(exc, "n")
    assert lw.get_num_threads() == before


@pytest.mark.parametrize("n", [-1, -(2**40), 10**6])
def test_set_num_threads_out_of_range(n):
    before = lw.get_num_threads()
    with pytest.raises(ValueError) as exc:
        lw.set_num_threads(n)
    names_arg(exc, "n")
    assert lw.get_num_threads() == before


# ------------------------------------------------------ odd but valid layouts


def _layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    ro = x.copy()
    ro.flags.writeable = False
    wide = np.zeros((x.shape[0], x.shape[1] * 2, *x.shape[2:]), x.dtype)
    wide[:, ::2] = x
    out = {
        "read_only": ro,
        "strided": wide[:, ::2],
        "fortran": np.asfortranarray(x),
        "reversed": x[::-1, ::-1].copy()[::-1, ::-1],
        "channel_strided": np.repeat(x, 2, axis=-1)[..., ::2],
    }
    if x.dtype == np.float32:
        out["big_endian"] = x.astype(">f4")
    return out


def _layout_calls(x: np.ndarray, other: np.ndarray) -> dict[str, Callable[..., Any]]:
    lab = lw.rgb_to_lab(x)
    return {
        "rgb_to_lab": lambda a, b: lw.rgb_to_lab(a),
        "lab_to_rgb": lambda a, b: lw.lab_to_rgb(_same_layout(a, lab)),
        "match_histograms": lambda a, b: lw.match_histograms(a, b),
        "blend_luminosity": lambda a, b: lw.blend_luminosity(a, b),
        "adjust_gamma": lambda a, b: lw.adjust_gamma(a, 1.7),
        "match_gamma": lambda a, b: lw.match_gamma(a, b)[0],
        "lerp_frames": lambda a, b: lw.lerp_frames(a, b, 0.3),
        "mean_frames": lambda a, b: lw.mean_frames([a, b]),
        "color_correct": lambda a, b: lw.color_correct(a, b),
        "rgb_to_yuv420p": lambda a, b: lw.rgb_to_yuv420p(a),
    }


def _same_layout(like: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` (contiguous) in the layout of ``like`` (one of _layouts' values, or contiguous)."""
    if like.flags.c_contiguous and like.flags.writeable and like.dtype.isnative:
        return x
    if not like.flags.writeable:
        y = x.copy()
        y.flags.writeable = False
        return y
    if like.dtype.byteorder == ">":
        return x.astype(">f4")
    if like.flags.f_contiguous and not like.flags.c_contiguous:
        return np.asfortranarray(x)
    wide = np.zeros((x.shape[0], x.shape[1] * 2, 3), x.dtype)
    wide[:, ::2] = x
    return wide[:, ::2]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(
    "fn",
    [
        "rgb_to_lab",
        "lab_to_rgb",
        "match_histograms",
        "blend_luminosity",
        "adjust_gamma",
        "match_gamma",
        "lerp_frames",
        "mean_frames",
        "color_correct",
        "rgb_to_yuv420p",
    ],
)
def test_odd_layouts_give_the_contiguous_result(photos, fn, dtype):
    x = np.ascontiguousarray(photos["coffee"][:64, :96])
    other = np.ascontiguousarray(photos["rocket"][:64, :96])
    if dtype == np.float32:
        x, other = x.astype(np.float32) / 255, other.astype(np.float32) / 255
    calls = _layout_calls(x, other)
    want = calls[fn](x, other)
    assert x.flags.c_contiguous
    for name, a in _layouts(x).items():
        assert not np.shares_memory(a, x)
        assert name in ("read_only", "big_endian") or not a.flags.c_contiguous
        b = _layouts(other)[name]
        got = calls[fn](a, b)
        np.testing.assert_array_equal(got, want, err_msg=f"{fn}, {name} layout")


def test_inputs_are_not_modified(photos):
    x, t = photos["coffee"].copy(), photos["rocket"].copy()
    xf, tf = x.astype(np.float32) / 255, t.astype(np.float32) / 255
    keep = [a.copy() for a in (x, t, xf, tf)]
    lw.color_correct(x, t)
    lw.color_correct(xf, tf)
    lw.match_histograms(x, t)
    lw.blend_luminosity(xf, tf)
    lw.adjust_gamma(x, 2.0)
    lw.lerp_frames(xf, tf, 0.5)
    for a, k in zip((x, t, xf, tf), keep, strict=True):
        np.testing.assert_array_equal(a, k)


# ------------------------------------------------------------ the native layer


def test_panic_is_an_exception_not_a_crash():
    assert issubclass(lw.KernelPanic, RuntimeError)
    assert lw.KernelPanic is _native.KernelPanic
    for _ in range(3):
        with pytest.raises(lw.KernelPanic, match="internal error"):
            _native._panic_for_tests()
    with pytest.raises(RuntimeError):
        _native._panic_for_tests()
    assert lw.rgb_to_lab(F).shape == F.shape  # still usable afterwards


def test_kernel_panic_pickles_as_itself():
    """Its module was '_native', which cannot be imported: pickling failed, so a panic in
    a multiprocessing worker reached the parent as a PicklingError."""
    import pickle

    with pytest.raises(lw.KernelPanic) as info:
        _native._panic_for_tests()
    assert lw.KernelPanic.__module__ == "loopwave._native"
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is lw.KernelPanic and str(again) == str(info.value)


X4 = np.random.default_rng(0).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
X4F = X4.astype(np.float32) / 255
ONE = np.ones(2)

# raw native calls: name -> call(frames4d) for the first frame argument
RAW: dict[str, Callable[[Any], Any]] = {
    "rgb_to_lab": lambda x: _native.rgb_to_lab(x),
    "lab_to_rgb": lambda x: _native.lab_to_rgb(x, True),
    "match_histograms": lambda x: _native.match_histograms(x, x),
    "blend_luminosity": lambda x: _native.blend_luminosity(x, x),
    "adjust_gamma": lambda x: _native.adjust_gamma(x, np.ones(len(x)) * 1.5),
    "match_gamma": lambda x: _native.match_gamma(x, x)[0],
    "color_correct": lambda x: _native.color_correct(x, x, True)[0],
    "lerp_frames": lambda x: _native.lerp_frames(x, x[::-1].copy(), np.full(len(x), 0.25)),
    "mean_frames": lambda x: _native.mean_frames(x),
    "rgb_to_yuv420p": lambda x: _native.rgb_to_yuv420p(x, "bt709", False),
}


@pytest.mark.parametrize("fn", sorted(RAW))
@pytest.mark.parametrize(
    "bad",
    [
        "3d",
        "5d",
        "strided",
        "reversed",
        "4ch",
        "empty_n",
        "empty_h",
        "float64",
        "int16",
        "list",
        "none",
        "big_endian",
    ],
)
def test_raw_native_calls_raise_instead_of_crashing(fn, bad):
    x = X4F if fn == "lab_to_rgb" else X4
    value = {
        "3d": x[0],
        "5d": x[None],
        "strided": x[:, :, ::2],
        "reversed": x[:, ::-1],
        "4ch": np.zeros((*x.shape[:3], 4), x.dtype),
        "empty_n": x[:0],
        "empty_h": x[:, :0],
        "float64": x.astype(np.float64),
        "int16": x.astype(np.int16),
        "list": x.tolist(),
        "none": None,
        "big_endian": X4F.astype(">f4"),
    }[bad]
    with pytest.raises((TypeError, ValueError)):
        RAW[fn](value)


def test_raw_native_argument_checks():
    with pytest.raises(ValueError, match="contiguous"):
        _native.rgb_to_lab(X4[:, :, ::2])
    with pytest.raises(ValueError, match="channels"):
        _native.rgb_to_lab(np.zeros((1, 4, 6, 4), np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        _native.rgb_to_lab(np.zeros((0, 4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="reference"):
        _native.match_histograms(np.zeros((3, 2, 2, 3), np.uint8), X4[:, :2, :2].copy())
    with pytest.raises(ValueError, match="target"):
        _native.color_correct(np.zeros((3, 2, 2, 3), np.uint8), X4, False)
    with pytest.raises(TypeError, match="target"):
        _native.color_correct(X4, X4F, False)
    with pytest.raises(ValueError, match="luma"):
        _native.blend_luminosity(X4, X4[:1].copy())
    with pytest.raises(ValueError, match="b"):
        _native.lerp_frames(X4, X4[:1].copy(), ONE)
    for g in (np.array([0.0, 1.0]), np.array([np.nan, 1.0]), np.ones(3), np.ones(0)):
        with pytest.raises(ValueError, match="gamma"):
            _native.adjust_gamma(X4, g)
    with pytest.raises(ValueError, match="gamma"):
        _native.adjust_gamma(X4, np.ones(4)[::2])
    for t in (np.array([1.5, 0.0]), np.array([np.nan, 0.0]), np.ones(3) * 0.5):
        with pytest.raises(ValueError, match="alpha"):
            _native.lerp_frames(X4, X4, t)
    with pytest.raises(TypeError):
        _native.adjust_gamma(X4, [1.0, 1.0])
    with pytest.raises(TypeError):
        _native.lab_to_rgb(X4, True)
    with pytest.raises(ValueError, match="matrix"):
        _native.rgb_to_yuv420p(X4, "x", False)
    with pytest.raises(ValueError, match="even"):
        _native.rgb_to_yuv420p(np.zeros((1, 3, 4, 3), np.uint8), "bt709", False)
    nan = X4F.copy()
    nan[1, 3, 5, 2] = np.nan
    for call in (
        lambda: _native.rgb_to_lab(nan),
        lambda: _native.color_correct(X4F, nan, True),
        lambda: _native.match_histograms(X4F, nan),
        lambda: _native.mean_frames(nan),
    ):
        with pytest.raises(ValueError, match="NaN|finite"):
            call()
    with pytest.raises((OverflowError, ValueError)):
        _native.set_num_threads(-1)


def _misaligned(shape, dtype):
    """A C-contiguous, writeable array at an odd byte offset (not aligned)."""
    dt = np.dtype(dtype)
    count = int(np.prod(shape))
    a = np.frombuffer(bytearray(count * dt.itemsize + 1), dt, count, offset=1).reshape(shape)
    assert a.flags.c_contiguous and a.flags.writeable and not a.flags.aligned
    return a


def test_raw_native_misaligned_arrays_are_named_as_such():
    """From a review: a misaligned array was refused as not C-contiguous, which it is."""
    f = _misaligned((2, 8, 8, 3), np.float32)
    f[...] = 0.5
    with pytest.raises(ValueError, match="^frames: expected an aligned array"):
        _native.rgb_to_lab(f)
    m = _misaligned((6,), np.float64)
    m[:] = np.eye(2, 3).ravel()
    with pytest.raises(ValueError, match="^matrix: expected a contiguous, aligned 1-D"):
        _native.warp_affine(X4, m, "wrap")
    flows = _misaligned((2, 8, 8, 2), np.float32)
    flows[...] = 0
    with pytest.raises(ValueError, match="^flows: expected an aligned C-contiguous"):
        _native._flow_interpolate(np.zeros((2, 8, 8, 3), np.uint8), flows, np.array([0.5]), 1.5)


def test_raw_native_fortran_order_raises_or_is_read_correctly():
    # The native wrappers rely on C order ("These wrappers still check everything
    # they rely on"), but rust-numpy's as_slice() also accepts F-contiguous arrays.
    # A Fortran-ordered batch must raise, or give the C-order batch's result;
    # it must never be read silently in the wrong order.
    misread = []
    for fn, call in sorted(RAW.items()):
        x = X4F if fn == "lab_to_rgb" else X4
        f = np.asfortranarray(x)
        assert f.flags.f_contiguous and not f.flags.c_contiguous
        try:
            got = call(f)
        except (TypeError, ValueError):
            continue
        if not np.array_equal(got, call(x)):
            misread.append(fn)
    assert not misread, f"Fortran-ordered input silently read as C order by _native.{misread}"


def test_an_output_that_cannot_be_allocated_is_a_memory_error(tmp_path):
    """numpy failing to allocate the result made the numpy crate panic on the null
    pointer: PanicException, a BaseException that got past `except Exception`."""
    import subprocess
    import sys

    code = """
import re, resource, numpy as np, loopwave as lw
x = np.zeros((16, 1024, 1024, 3), np.uint8)  # 48 MiB in, 192 MiB of float32 out
vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
try:
    lw.rgb_to_lab(x)
except MemoryError:
    print("MemoryError")
except BaseException as e:
    print("other", type(e).__name__)
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("uses /proc and RLIMIT_AS")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "MemoryError", r.stdout + r.stderr[-2000:]


def test_found_in_review_each_names_its_argument():
    """Each of these gave an error that did not name the argument, or took input whose
    meaning it ignored."""
    import decimal

    f = np.zeros((4, 6, 3), np.uint8)
    batch = np.zeros((2, 4, 6, 3), np.uint8)
    # ragged lists: numpy's 'setting an array element with a sequence'
    with pytest.raises(TypeError, match="^gamma must"):
        lw.adjust_gamma(batch, [[1.0], [1.0, 2.0]])
    with pytest.raises(TypeError, match="^matrix must"):
        lw.warp_affine(f, [[1, 0, 0], [0, 1]])
    # Decimal('sNaN'): 'cannot convert signaling NaN to float'
    with pytest.raises(ValueError, match="^alpha must"):
        lw.lerp_frames(f, f, decimal.Decimal("sNaN"))
    with pytest.raises(ValueError, match="^gamma must"):
        lw.adjust_gamma(f, decimal.Decimal("sNaN"))
    # a masked array's mask was ignored (in and out)
    masked = np.ma.masked_array(np.full((4, 6, 3), 200, np.uint8), mask=True)
    with pytest.raises(TypeError, match="^frames must .* not a masked array"):
        lw.adjust_gamma(masked, 2.0)
    with pytest.raises(TypeError, match="^gamma must"):
        lw.adjust_gamma(batch, np.ma.masked_array([1.0, 2.0], mask=[False, True]))
    with pytest.raises(TypeError, match="^out must be a plain numpy array"):
        lw.color_correct(f, f, out=np.ma.masked_array(np.zeros_like(f)))
    # timedelta64 is a NumPy integer: taken as a number, or a UFuncTypeError
    with pytest.raises(TypeError, match="^zoom must"):
        lw.motion_matrix(4, 4, zoom=np.timedelta64(2, "s"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^height must"):
        lw.motion_matrix(np.timedelta64(4, "s"), 4)  # type: ignore[arg-type]
    # a lone surrogate: UnicodeEncodeError
    with pytest.raises(ValueError, match="^border must"):
        lw.warp_affine(f, np.eye(2, 3), border="\ud800")

    # a contiguous copy too large for memory is a MemoryError naming the argument (under
    # an address-space limit, so no machine's overcommit setting lets it through)
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        return
    code = """
import re, resource, numpy as np, loopwave as lw
vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
try:
    lw.rgb_to_lab(np.broadcast_to(np.zeros(3, np.uint8), (2**30, 1, 1, 3)))
except MemoryError as e:
    print(str(e))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("frames: no memory for a contiguous copy"), r.stdout + r.stderr


def test_motion_takes_real_numbers_of_any_kind():
    """Fraction and Decimal were refused as "not a number" here, where warp_affine's
    matrix, adjust_gamma and lerp_frames take them (VideoReader.fps is a Fraction)."""
    from decimal import Decimal
    from fractions import Fraction

    want = lw.motion_matrix(4, 6, zoom=1.5, angle=0.5, translate=(0.5, -2.0))
    got = lw.motion_matrix(
        4, 6, zoom=Fraction(3, 2), angle=Decimal("0.5"), translate=(Fraction(1, 2), Decimal(-2))
    )
    np.testing.assert_array_equal(got, want)
    for bad in (Decimal("sNaN"), Decimal("Infinity"), np.longdouble("1e4000"), 10**400):
        with pytest.raises(ValueError, match="^zoom must be a finite real number"):
            lw.motion_matrix(4, 6, zoom=bad)
    with pytest.raises(ValueError, match="^zoom must be > 0"):
        lw.motion_matrix(4, 6, zoom=Fraction(-1, 2))
    # a positive zoom that becomes 0 as a float was "not > 0"; one whose square
    # overflows was "cannot be inverted ... at least 1e-12", as if it were too small
    with pytest.raises(ValueError, match=r"^zoom Decimal\('1E-400'\) is too small"):
        lw.motion_matrix(4, 6, zoom=Decimal("1e-400"))
    with pytest.raises(ValueError, match="^zoom 1e[+]200 is too large"):
        lw.motion_matrix(4, 6, zoom=1e200)
    with pytest.raises(TypeError, match=r"^translate\[0\] must be a number"):
        lw.motion_matrix(4, 6, translate=("1", 0))  # type: ignore[arg-type]


def test_overflows_are_named_errors_not_warnings():
    """Under -W error a RuntimeWarning from a float64 or float32 cast (a long double
    beyond range, a zoom whose square overflows) came out first, naming nothing."""
    import warnings

    huge = np.longdouble("1e4000")
    if not np.isfinite(huge):
        pytest.skip("long double is float64 on this platform")
    cases = [
        (lambda: lw.motion_matrix(4, 4, zoom=1e200), "zoom"),
        (lambda: lw.adjust_gamma(F, huge), "gamma"),
        (lambda: lw.lerp_frames(F, F, huge), "alpha"),
        (lambda: lw.warp_affine(F, np.array([[huge, 0, 0], [0, 1, 0]])), "matrix"),
        (lambda: lw.lab_to_rgb(np.full((2, 2, 3), huge)), "lab"),
        (lambda: lw.lab_to_rgb(np.full((2, 2, 3), 1e300)), "lab"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call, arg in cases:
            with pytest.raises(ValueError) as e:
                call()
            names_arg(e, arg)


def test_lab_to_rgb_copy_of_a_huge_view_is_a_named_memory_error():
    # a broadcast view of 3e12 values: a bare MemoryError from a check before any other
    lab = np.lib.stride_tricks.as_strided(
        np.zeros(3), shape=(1 << 20, 1 << 20, 3), strides=(0, 0, 8)
    )
    with pytest.raises(MemoryError, match="^lab: no memory for a float32 copy"):
        lw.lab_to_rgb(lab)
    # infinities of the input itself are the kernel's to refuse, not "beyond float32"
    bad = np.zeros((2, 2, 3))
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="^lab") as e:
        lw.lab_to_rgb(bad)
    assert "beyond float32" not in str(e.value)


def test_found_in_an_adversarial_review():
    """From a review: lab_to_rgb copied a non-float32 lab to float32 before checking its
    shape (a huge broadcast one of the wrong shape was a MemoryError, and it called Lab's
    channels RGB); yuv420p_to_rgb's copy of a huge broadcast planes was numpy's bare
    MemoryError; the matrix message left out the other spellings it takes."""
    huge = np.broadcast_to(np.zeros(1), (1 << 40, 4, 4, 4))  # float64, 4 channels
    with pytest.raises(ValueError, match=r"^lab must have 3 channels \(L, a, b\) in the last"):
        lw.lab_to_rgb(huge)
    with pytest.raises(ValueError, match="^lab must be a float array of shape"):
        lw.lab_to_rgb(np.broadcast_to(np.zeros(1, np.float16), (1 << 41,)))
    planes = np.broadcast_to(np.zeros((1, 1), np.uint8), (1 << 40, 6, 8))
    with pytest.raises(MemoryError, match="^planes: no memory for a contiguous copy"):
        lw.yuv420p_to_rgb(planes)
    also = '(any case; also written "bt.601", "601", "smpte170m", "bt.709", "709"'
    for bad in ("bt7O9", "bt709é"):
        with pytest.raises(ValueError, match="matrix") as e:
            lw.rgb_to_yuv420p(F, matrix=bad)
        assert also in str(e.value)
        with pytest.raises(ValueError, match="matrix") as e:
            lw.yuv420p_to_rgb(np.zeros((6, 8), np.uint8), matrix=bad)
        assert also in str(e.value)


def test_a_long_name_is_not_quoted_whole():
    for call in (
        lambda s: lw.rgb_to_yuv420p(F, matrix=s),
        lambda s: lw.warp_affine(F, np.eye(2, 3), border=s),
    ):
        for s in ("x" * 1_000_000, "é" * 1_000_000):
            with pytest.raises(ValueError) as e:
                call(s)
            assert len(str(e.value)) < 200


def test_big_endian_arrays_are_checked_before_they_are_converted():
    """From a review: a big-endian array was converted to native order before its
    dtype, rank and channels were checked, so a refused one was copied first, and a
    huge broadcast one raised a bare MemoryError instead of naming what was wrong."""
    huge = (2**40, 1, 1, 3)
    with pytest.raises(TypeError, match="^frames must have dtype uint8 or float32.*got int64"):
        lw.rgb_to_lab(np.broadcast_to(np.zeros(3, ">i8"), huge))
    with pytest.raises(ValueError, match="^frames must be .* got 2 dimensions"):
        lw.rgb_to_lab(np.broadcast_to(np.zeros(4, ">f4"), (2**40, 4)))
    with pytest.raises(MemoryError, match="^frames: no memory for a contiguous copy"):
        lw.rgb_to_lab(np.broadcast_to(np.zeros(3, ">f4"), huge))
    x = np.random.default_rng(0).random((2, 4, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(lw.rgb_to_lab(x.astype(">f4")), lw.rgb_to_lab(x))


def test_durations_are_not_counts():
    """From a review: np.timedelta64 (a NumPy integer) was taken as a thread count, or
    failed with an unnamed TypeError or OverflowError."""
    for call, name in ((lw.set_num_threads, "n"), (lw.set_buffer_cache, "max_bytes")):
        for bad in (np.timedelta64(1, "s"), np.timedelta64(3, "s")):
            with pytest.raises(TypeError, match=f"^{name} must be an int; got timedelta64"):
                call(bad)  # type: ignore[arg-type]
    assert lw.get_num_threads() >= 1


def test_bool_arrays_among_the_numbers_of_a_list_are_refused():
    """From a review: 0-d bool arrays in a list were read as 1.0 (bare bools were
    refused)."""
    b = np.full((2, 4, 6, 3), 100, np.uint8)
    t = np.array(True)
    for call in (
        lambda: lw.adjust_gamma(b, [t, 2.0]),
        lambda: lw.lerp_frames(b, b, [t, 0.5]),
        lambda: lw.warp_affine(b, [[t, 0, 0], [0, t, 0]]),
    ):
        with pytest.raises(TypeError, match="got a bool among the numbers"):
            call()


def test_a_matrix_whose_inverse_overflows_is_refused():
    """From a review: a finite matrix with an allowed determinant inverted to entries
    past float64's range, and warped every pixel to NaN (float) or black (uint8)."""
    m = [[2e-312, 0, 0], [0, 1e300, 0]]
    for f in (np.full((2, 3, 3), 0.5, np.float32), np.full((2, 3, 3), 128, np.uint8)):
        with pytest.raises(ValueError, match="^matrix: maps the frame from coordinates beyond"):
            lw.warp_affine(f, m)
    # large but representable still warps: every source pixel is 0.5, so is every output
    far = lw.warp_affine(np.full((2, 3, 3), 0.5, np.float32), [[1e-6, 0, 1e250], [0, 1e6, 0]])
    assert np.all(far == 0.5)


_SCRATCH_WITHOUT_MEMORY = """
import re, resource, sys
import numpy as np
from loopwave import _native

_native.set_buffer_cache(0)
kind, side = sys.argv[1], 4000
small = np.zeros((1, 8, 8, 3), np.uint8)
_native.color_correct(small, small, False, None)  # the thread pool, before the limit
if kind == "cc":
    f, t = np.full((1, side, side, 3), 100, np.uint8), np.full((1, 8, 8, 3), 50, np.uint8)
    f.fill(100)
    call = lambda: _native.color_correct(f, t, False, None)
    room = 3 * side * side  # the result fits, the bins (6 bytes a pixel) do not
else:
    pair, flows = np.ones((2, side, side, 3), np.uint8), np.ones((2, side, side, 2), np.float32)
    call = lambda: _native._flow_interpolate(pair, flows, np.array([0.5]), 1.0)
    room = 3 * side * side  # the result fits, the two visibility maps do not
vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + room + (16 << 20), resource.RLIM_INFINITY))
try:
    call()
    print("ran")
except MemoryError as e:
    print("MemoryError:", e)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, /proc")
@pytest.mark.parametrize("kind", ["cc", "flow"])
def test_no_memory_for_a_working_buffer_is_a_memory_error(kind):
    """From a review: color_correct's bins and the flow interpolator's visibility maps came
    from vec!, which aborts the process when the allocator has no memory (the interpreter
    died with SIGABRT); numpy's own allocations already raised MemoryError."""
    import subprocess

    r = subprocess.run(
        [sys.executable, "-c", _SCRATCH_WITHOUT_MEMORY, kind],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("MemoryError: frames: no memory for a working buffer of"), r.stdout


def test_the_flow_interpolator_refuses_sides_its_positions_cannot_hold():
    """From a review: past 2^24 pixels a side, its f32 positions read a neighbour's colour
    (or the next row's, or panicked past the last)."""
    w = (1 << 24) + 2
    pair, flows = np.zeros((2, 1, w, 3), np.uint8), np.zeros((2, 1, w, 2), np.float32)
    with pytest.raises(ValueError, match="^frames: the flow interpolator takes sides of at most"):
        _native._flow_interpolate(pair, flows, np.array([0.5]), 1.0)
