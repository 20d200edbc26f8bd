"""Colour kernels over frames and batches of frames.

Frames are ``(H, W, 3)`` or ``(N, H, W, 3)`` RGB arrays, ``uint8`` or ``float32``
in [0, 1]; one frame in gives one frame out, a batch gives a batch. Float RGB is
clipped to [0, 1] where a kernel reads it as colour; NaN and infinity are
refused with a ``ValueError``. Batches run in Rust on loopwave's own thread
pool (:func:`set_num_threads`) with the GIL released, so other Python threads keep
running; calls from several threads share the pool, so together they use at most
:func:`get_num_threads` cores.

Example
-------
>>> import numpy as np, loopwave as lw
>>> frame = np.full((4, 4, 3), 200, np.uint8)
>>> lw.lab_to_rgb(lw.rgb_to_lab(frame))[0, 0].tolist()
[200, 200, 200]
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from . import _native
from . import _validate as v

__all__ = [
    "ColorTarget",
    "HistogramReference",
    "adjust_gamma",
    "blend_luminosity",
    "buffer_cache_info",
    "color_correct",
    "get_num_threads",
    "lab_to_rgb",
    "lerp_frames",
    "match_gamma",
    "match_histograms",
    "mean_frames",
    "rgb_to_lab",
    "motion_matrix",
    "rgb_to_yuv420p",
    "set_buffer_cache",
    "set_num_threads",
    "simd_level",
    "warp_affine",
    "yuv420p_to_rgb",
]

Frames = npt.NDArray[Any]


def _squeeze(x: np.ndarray, single: bool) -> np.ndarray:
    return x[0] if single else x


def rgb_to_lab(frames: Frames) -> npt.NDArray[np.float32]:
    """sRGB frames to CIELAB (D65 white, L in [0, 100]) as ``float32``.

    Within 0.002 of a float64 reference (see ``tests/``); ``uint8`` colours
    round-trip exactly through :func:`lab_to_rgb`. Greys get ``a = b = 0``
    exactly (not rounding noise of either sign).

    Example
    -------
    >>> import numpy as np, loopwave as lw
    >>> lw.rgb_to_lab(np.array([[[255, 255, 255]]], np.uint8)).round(3).tolist()
    [[[100.0, 0.0, 0.0]]]
    """
    x, single = v.frames(frames, "frames")
    return _squeeze(_native.rgb_to_lab(x), single)


def lab_to_rgb(lab: npt.NDArray[np.floating[Any]], *, dtype: npt.DTypeLike = np.uint8) -> Frames:
    """CIELAB (``float32``; other float dtypes are converted) back to sRGB.

    Colours outside the sRGB gamut are clipped per channel in linear RGB (a colour
    with a value beyond 1e12 is first scaled down, its three values alike, to 1e12).
    NaN or infinity anywhere in ``lab`` raises ``ValueError``: a NaN has no
    colour, and silently mapping it to black would hide upstream bugs.

    Parameters
    ----------
    lab : ndarray, shape (H, W, 3) or (N, H, W, 3)
    dtype : ``np.uint8`` (rounded to nearest) or ``np.float32`` (in [0, 1])
    """
    if not isinstance(lab, np.ndarray):
        raise TypeError(f"lab must be a numpy.ndarray of shape (..., 3); got {type(lab).__name__}")
    if lab.dtype.kind != "f":
        raise TypeError(f"lab must be a float array (float32 preferred); got {lab.dtype}")
    try:
        if dtype is None:  # np.dtype(None) is float64: the message would name that
            raise TypeError
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be np.uint8 or np.float32; got {dtype!r}") from None
    if out_dtype not in v.FRAME_DTYPES:
        raise TypeError(f"dtype must be np.uint8 or np.float32; got {out_dtype}")
    lab_form = "a float array of shape (H, W, 3) or (N, H, W, 3)"
    # before the float32 copy: a wrong shape was copied first (MemoryError for a huge
    # broadcast one, not its shape)
    v.frame_shape(lab, "lab", lab_form, "L, a, b")
    lab32 = lab
    if lab.dtype != np.float32:
        try:
            # a finite value beyond float32 becomes inf in the cast (no warning: checked
            # below), where the inputs' own infinities stay the kernel's to refuse
            with np.errstate(over="ignore"), v.reading(lab, "lab"):
                lab32 = lab.astype(np.float32)
            if (np.isinf(lab32) & np.isfinite(lab)).any():
                raise ValueError("lab: has values beyond float32's range (about 3.4e38)")
        except MemoryError:  # a float32 copy of a huge (broadcast) view
            nbytes = lab.size * 4
            raise MemoryError(
                f"lab: no memory for a float32 copy of shape {lab.shape} ({nbytes} bytes)"
            ) from None
    x, single = v.frames(lab32, "lab", lab_form)
    return _squeeze(_native.lab_to_rgb(x, out_dtype == np.uint8), single)


class _Prepared:
    """What :class:`HistogramReference` and :class:`ColorTarget` share: frames'
    statistics worked out once by the native class ``_made_by``, which never change."""

    __slots__ = ("_native",)
    _arg: str  # the argument it stands for, named in errors
    _made_by: Any
    _native: Any

    def __init__(self, frames: Frames) -> None:
        f, _ = v.frames(frames, self._arg)
        if hasattr(self, "_native"):  # (copies are the object itself: it must not change)
            name = type(self).__name__
            raise TypeError(f"a {name} is made once; make another for another {self._arg}")
        self._native = self._made_by(f)

    def __len__(self) -> int:
        """How many frames it was made of."""
        return int(self._native.n)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the frames it was made of (``uint8`` or ``float32``): frames
        corrected or matched with it must have it."""
        return np.dtype(np.float32 if self._native.is_float else np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        """The ``(height, width)`` of the frames it was made of."""
        h, w = self._native.size
        return int(h), int(w)

    # it never changes, so a copy is itself (as a tuple's), not a copy of its statistics
    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self


class HistogramReference(_Prepared):
    """What :func:`match_histograms` needs of a reference, worked out once: each
    reference frame's per-channel histogram. Pass it as ``match_histograms``'
    ``reference`` to match frame after frame to the same reference (a video graded a
    frame at a time): the output is the same as with the reference itself, and no call
    counts the reference again, which is about half of a one-frame call at 1080p.

    ``reference`` is one frame ``(H, W, 3)`` or ``(1, H, W, 3)``, for frames and
    batches of any length, or ``N`` frames, one per frame of an ``N``-frame batch;
    ``uint8`` or ``float32`` (finite), and frames matched to it must have its dtype.
    A ``uint8`` reference keeps its counts (6 KB a frame), not the pixels. A
    ``float32`` one keeps a copy of its pixels too: a frame whose values reach past the
    reference's range is binned over both ranges, and the reference is counted again
    on that binning (as :func:`match_histograms` does every call); and its histograms,
    up to 300 KB a frame however small (one bin for a constant channel, else 4096).
    Where that memory is not there, MemoryError. Later changes to the array do not
    reach it. It can be shared by threads and pickled (a ``uint8`` one as its counts,
    a ``float32`` one as its pixels; checked when unpickled).

    Example
    -------
    >>> import numpy as np, loopwave as lw
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    >>> ref = lw.HistogramReference(frames[0])
    >>> ref
    HistogramReference(1 frame of 16x16, uint8)
    >>> same = [lw.match_histograms(f, ref) == lw.match_histograms(f, frames[0]) for f in frames]
    >>> all(s.all() for s in same)
    True
    """

    __slots__ = ()
    _arg = "reference"
    _made_by = _native.PreparedReference

    def __init__(self, reference: Frames) -> None:
        super().__init__(reference)

    def __repr__(self) -> str:
        n, (h, w) = len(self), self.size
        return f"HistogramReference({n} frame{'s' * (n != 1)} of {w}x{h}, {self.dtype})"

    def __reduce__(self) -> tuple[Any, ...]:
        n = self._native
        return (_histogram_reference_from_state, (n.state(), n.is_float, (len(self), *n.size)))


def _check_state(state: Any, shape: Any, arg: str, names: tuple[str, ...]) -> None:
    """An unpickled statistics' ``state`` (bytes, which the native check reads) and its
    ``shape`` (a tuple of one int per name; OverflowError or the binding's own words,
    naming neither, came otherwise)."""
    if not isinstance(state, bytes):
        raise TypeError(f"state: expected the statistics as bytes; got {type(state).__name__}")
    if not (
        isinstance(shape, tuple)
        and len(shape) == len(names)
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**63 for d in shape)
    ):
        raise ValueError(
            f"{arg}: expected ({', '.join(names)}) as ints from 0 to 2**63 - 1; got {_brief(shape)}"
        )


def _brief(x: Any, *, top: bool = True) -> str:
    """``repr(x)`` cut short, where an int in it may be past Python's digit limit for
    ``str()`` (a bare "Exceeds the limit (4300 digits)" came otherwise); only the top
    tuple or list is opened (a deeply nested one was a RecursionError)."""
    if type(x) is int and x.bit_length() > 64:
        return f"{'-' * (x < 0)}an int of {x.bit_length()} bits"
    if top and type(x) in (tuple, list) and len(x) < 8:
        inner = ", ".join(_brief(d, top=False) for d in x)
        return f"({inner}{',' * (len(x) == 1)})" if type(x) is tuple else f"[{inner}]"
    try:
        return f"{x!r:.80}"
    except Exception:  # (a repr that fails: a nested or long one holding such an int)
        return f"a {type(x).__name__}"


def _histogram_reference_from_state(
    state: bytes, is_float: bool, dims: tuple[int, int, int]
) -> HistogramReference:
    """A :class:`HistogramReference` unpickled, checked by the native module."""
    _check_state(state, dims, "dims", ("frames", "height", "width"))
    r = HistogramReference.__new__(HistogramReference)
    r._native = _native.PreparedReference.from_state(state, is_float, dims)
    return r


def _prepared_fits(prepared: Any, kind: str, x: np.ndarray, arg: str) -> None:
    """Refuse a prepared target or reference of another dtype than ``x``'s, or whose
    frame count is neither 1 nor the batch's, naming ``arg``."""
    if prepared.dtype != x.dtype:
        raise TypeError(
            f"{arg} must have the dtype of frames ({x.dtype}); got a {kind} of "
            f"{prepared.dtype} frames"
        )
    if len(prepared) not in (1, x.shape[0]):
        raise ValueError(
            f"{arg} must be one frame or one per frame ({x.shape[0]}); got a "
            f"{kind} of {len(prepared)} frames"
        )


def match_histograms(frames: Frames, reference: Frames | HistogramReference) -> Frames:
    """Match each frame's per-channel histogram to ``reference``'s.

    The semantics of ``skimage.exposure.match_histograms(f, r, channel_axis=-1)``:
    ``uint8`` results are scikit-image's exactly (truncated like its cast).
    ``float32`` input is matched on 4096-bin histograms spanning the value range of
    the frame and its reference (not the batch's: a frame's result is the same alone
    or in any batch). A reference bin keeps its least and greatest value and how many
    pixels hold the least, so scikit-image's reference curve is exact at those points
    and under a bin width (range/4096) off between them; all of a frame's values in one
    bin share one output. So a result is off from scikit-image's by at most the spread
    of the exact outputs over its value's bin, plus one bin width. The median error
    stays below a bin width, but where a crowded bin of the frame meets a sparse
    stretch of the reference (bright highlights, for example) the spread can be
    hundreds of bin widths. The result equals scikit-image's where no bin of the frame
    holds two distinct values and none of the reference holds more than two (e.g.
    frames made from ``uint8`` ones). For exact scikit-image semantics use ``uint8``
    frames, or float frames made from them.
    Float values here are not clipped: any finite values (e.g. Lab) work, as long as each
    channel's values (a frame and its reference together) span less than 3.4e38 and, where
    they differ, more than 1e-34 (else ``ValueError``: f32 bins cannot hold them).

    Parameters
    ----------
    frames : (H, W, 3) or (N, H, W, 3) array
    reference : one frame, or one per frame; same dtype, any size; or a
        :class:`HistogramReference` made of such, to count it once for many calls
    """
    x, single = v.frames(frames, "frames")
    if isinstance(reference, HistogramReference):
        _prepared_fits(reference, "HistogramReference", x, "reference")
        return _squeeze(_native.match_histograms_prepared(x, reference._native), single)
    r, _ = v.frames(reference, "reference")
    v.same_dtype(r, "reference", x, "frames")
    v.one_or_per_frame(r, "reference", x.shape[0])
    return _squeeze(_native.match_histograms(x, r), single)


def blend_luminosity(color: Frames, luma: Frames) -> Frames:
    """The LUMINOSITY blend: hue and saturation of ``color``, luminance of ``luma``.

    As the ``blendmodes`` library computes it (Rec.601 weights 0.299/0.587/0.114,
    SetLum with ClipColor); ``blendLayers(color, luma, BlendType.LUMINOSITY)``.
    """
    c, single = v.frames(color, "color")
    lu, single_l = v.frames(luma, "luma")
    v.same_dtype(lu, "luma", c, "color")
    if lu.shape != c.shape or single_l != single:  # (a frame is not a batch of one)
        raise ValueError(
            f"luma must have the shape of color {c.shape[single:]}; got {lu.shape[single_l:]}"
        )
    return _squeeze(_native.blend_luminosity(c, lu), single)


def adjust_gamma(frames: Frames, gamma: float | npt.ArrayLike) -> Frames:
    """``frames ** gamma`` on values scaled to [0, 1] (scikit-image's ``adjust_gamma``).

    ``gamma`` is one positive number or one per frame. ``uint8`` uses
    scikit-image's table (``rint(255 * (i/255) ** gamma)``).
    """
    x, single = v.frames(frames, "frames")
    g = v.per_frame_values(gamma, "gamma", x.shape[0], low=0.0, high=np.inf, low_open=True)
    return _squeeze(_native.adjust_gamma(x, g), single)


def match_gamma(frames: Frames, reference: Frames) -> tuple[Frames, Any]:
    """Per frame, the gamma that makes its mean lightness match the reference's.

    The rule: mean CIE L* of ``adjust_gamma(frame, g)`` equals the mean L* of the
    reference (its frame for this frame, or the one shared reference). Mean L*
    falls monotonically in ``g``, so the root is unique; it is found on ``ln g``
    within [1/32, 32] to 0.005 L*. Frames over 65536 pixels are evaluated on one
    pixel of each of at most 65536 square cells, at a fixed pseudo-random place in
    its cell (no regular grid, which reads one phase of a fine periodic pattern such
    as scanlines), toward the target less the sample's own error in mean L* at
    gamma 1 (so a frame matched to itself gets exactly 1). A frame gamma cannot change (only black
    and white) gets 1; an unreachable target gets the nearer end of the range.

    (The seed's ``(std2/std1) * (mean2 - mean1) / mean1`` is a contrast-weighted
    relative brightness difference, not a gamma: it is 0 for equal means and
    has no fixed relation to the exponent that fixes the brightness.)

    Returns
    -------
    frames : the adjusted frames
    gammas : float (one frame in) or float64 array of shape (N,)
    """
    x, single = v.frames(frames, "frames")
    r, _ = v.frames(reference, "reference")
    v.same_dtype(r, "reference", x, "frames")
    v.one_or_per_frame(r, "reference", x.shape[0])
    out, gammas = _native.match_gamma(x, r)
    return (out[0], float(gammas[0])) if single else (out, gammas)


def lerp_frames(a: Frames, b: Frames, alpha: float | npt.ArrayLike) -> Frames:
    """``a + alpha * (b - a)``: PIL's ``Image.blend(a, b, alpha)`` for ``alpha`` in [0, 1]
    (``float32`` computes ``(1 - alpha) * a + alpha * b``, exactly ``a`` and ``b`` at the
    ends).

    ``alpha`` is one number or one per frame, taken as ``float32``. ``uint8`` rounds
    to nearest in ``float32`` arithmetic (PIL truncates; the two differ by at most one
    level), so a result within about 1e-5 of a half level may round either way.
    """
    x, single = v.frames(a, "a")
    y, single_b = v.frames(b, "b")
    v.same_dtype(y, "b", x, "a")
    if x.shape != y.shape or single_b != single:  # (a frame is not a batch of one)
        raise ValueError(f"b must have the shape of a {x.shape[single:]}; got {y.shape[single_b:]}")
    t = v.per_frame_values(alpha, "alpha", x.shape[0], low=0.0, high=1.0, low_open=False)
    return _squeeze(_native.lerp_frames(x, y, t), single)


def mean_frames(frames: Frames | list[Frames] | tuple[Frames, ...]) -> Frames:
    """The mean of several frames (e.g. several renders of one keyframe), one frame out.

    ``frames`` is an ``(N, H, W, 3)`` array or a list of same-shape frames;
    ``uint8`` rounds to nearest.
    """
    x = v.frame_list(frames, "frames")
    out: Frames = _native.mean_frames(x)[0]
    return out


class ColorTarget(_Prepared):
    """What :func:`color_correct` needs of a target, worked out once: each target frame's
    CIE Lab histogram and mean lightness. Pass it as ``color_correct``'s ``target`` to
    correct frame after frame toward the same target (a video read a frame at a time
    and graded toward one reference, a renderer's fixed target): the output is the same
    as with the target itself, and no call works out its statistics again, which is a
    pass over the whole target, about a third of a one-frame call at 1080p
    (``benches/bench_seed_ratio.py``'s rows for one frame).

    ``target`` is one frame ``(H, W, 3)`` or ``(1, H, W, 3)``, for frames and batches of
    any length, or ``N`` frames, one per frame of an ``N``-frame batch; ``uint8`` or
    ``float32``, checked as ``color_correct`` checks it, and frames corrected toward it
    must have its dtype. It keeps the statistics (about 100 KB a target frame), not the
    pixels: later changes to the array do not reach it. It can be shared by threads, and
    pickled to send to other processes (its statistics, checked when unpickled).

    Example
    -------
    >>> import numpy as np, loopwave as lw
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    >>> ref = lw.ColorTarget(frames[0])
    >>> ref
    ColorTarget(1 target of 16x16, uint8)
    >>> same = [lw.color_correct(f, ref) == lw.color_correct(f, frames[0]) for f in frames]
    >>> all(s.all() for s in same)
    True
    """

    __slots__ = ()
    _arg = "target"
    _made_by = _native.PreparedTarget

    def __init__(self, target: Frames) -> None:
        super().__init__(target)

    @property
    def mean_lightness(self) -> npt.NDArray[np.float64]:
        """Each target frame's mean CIE L* (0..100), the lightness ``gamma=True`` aims at."""
        # (black's f32 sum lands a hair under 0)
        return np.clip(np.array(self._native.mean_lightness, np.float64), 0.0, 100.0)

    def __repr__(self) -> str:
        n, (h, w) = len(self), self.size
        return f"ColorTarget({n} target{'s' * (n != 1)} of {w}x{h}, {self.dtype})"

    def __reduce__(self) -> tuple[Any, ...]:
        n = self._native
        return (_color_target_from_state, (n.state(), n.is_float, n.size))


def _color_target_from_state(state: bytes, is_float: bool, size: tuple[int, int]) -> ColorTarget:
    """A :class:`ColorTarget` unpickled: its statistics, checked by the native module."""
    _check_state(state, size, "size", ("height", "width"))
    t = ColorTarget.__new__(ColorTarget)
    t._native = _native.PreparedTarget.from_state(state, is_float, size)
    return t


@overload
def color_correct(
    frames: Frames,
    target: Frames | ColorTarget,
    *,
    gamma: bool = ...,
    return_gammas: Literal[False] = ...,
    out: Frames | None = ...,
) -> Frames: ...
@overload
def color_correct(
    frames: Frames,
    target: Frames | ColorTarget,
    *,
    gamma: bool = ...,
    return_gammas: Literal[True],
    out: Frames | None = ...,
) -> tuple[Frames, Any]: ...
def color_correct(
    frames: Frames,
    target: Frames | ColorTarget,
    *,
    gamma: bool = True,
    return_gammas: bool = False,
    out: Frames | None = None,
) -> Frames | tuple[Frames, Any]:
    """The seed's whole colour step, fused in one native call over a batch.

    Per frame: CIELAB histogram match to ``target``; LUMINOSITY blend that keeps
    the frame's own luminance; then (``gamma=True``) :func:`match_gamma` toward
    the target's mean lightness. ``target`` is one frame or one per frame, the
    same dtype as ``frames``, any size, or a :class:`ColorTarget` made of such (the
    same output, without working out the target's statistics again on every call).
    Nothing is rounded to 8 bits between the
    steps, so on photographs the output is close to the exact float64 result
    (``benches/bench_accuracy.py``: a mean of 0.24 levels from it), and within a few
    levels of the seed's pipeline (OpenCV LAB + skimage + blendmodes) where frame and
    target are alike; toward an unlike target the seed's 8-bit Lab is itself up to tens
    of levels from the exact result.

    The Lab histograms have 4096 fixed bins per channel (0.024 in L*, 0.055 in a* and
    b*), and the target's bins each give one point of its curve, at the bin's centre
    (:func:`match_histograms` keeps more per bin, at a cost this step does not pay).
    So a target whose colours crowd into one bin just past a sparse stretch (hundreds
    of colours within 0.055 in a*, beyond a few far off) is reached by a slope over
    the crowd's share of pixels where the exact step reaches it at once: frame
    pixels whose rank falls in that share can come out tens of levels off.

    ``out``, if given, receives the result and is returned: an array of the shape and
    dtype of ``frames``, C-contiguous, writeable, and sharing no memory with ``frames``
    or ``target`` (checked by address, as numpy's ``out=`` is: two ``np.memmap`` views
    of one file, at different addresses, are not seen to overlap; give such an ``out`` a
    file of its own). Without it, the result reuses the memory of a result already dropped
    where one of about its size is kept (:func:`set_buffer_cache`), which saves the
    operating system mapping and zeroing fresh pages, 0.4-1 ms per 1080p frame.

    Memory beyond the input and the result: each frame in flight (one per thread) keeps
    its pixels' bin indices, 6 bytes a pixel (12 MB a 1080p frame; a single frame of 2**31
    samples needs 4 GiB of it).

    Example
    -------
    >>> import numpy as np, loopwave as lw
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> lw.color_correct(frames, frames[0]).shape
    (2, 16, 16, 3)
    """
    x, single = v.frames(frames, "frames")
    prepared = None
    if isinstance(target, ColorTarget):
        _prepared_fits(target, "ColorTarget", x, "target")
        prepared = target._native
    else:
        t, _ = v.frames(target, "target")
        v.same_dtype(t, "target", x, "frames")
        v.one_or_per_frame(t, "target", x.shape[0])
    if not isinstance(gamma, (bool, np.bool_)):
        raise TypeError(f"gamma must be True or False; got {gamma!r}")
    if not isinstance(return_gammas, (bool, np.bool_)):
        raise TypeError(f"return_gammas must be True or False; got {return_gammas!r}")
    dst = None if out is None else _out_like(out, frames, x, single, target)
    if prepared is not None:
        res, gammas = _native.color_correct_prepared(x, prepared, bool(gamma), dst)
    else:
        res, gammas = _native.color_correct(x, t, bool(gamma), dst)
    res = _squeeze(res, single) if out is None else out
    if not return_gammas:
        return res
    return (res, float(gammas[0])) if single else (res, gammas)


def _out_like(out: Any, frames: np.ndarray, x: np.ndarray, single: bool, target: Any) -> np.ndarray:
    """Check an ``out=`` array against ``frames`` (``x``: the 4-D batch); return its 4-D view."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array or None; got {type(out).__name__}")
    if v._masked(out):  # its mask would stay as it was
        raise TypeError("out must be a plain numpy array, not a masked array")
    if out.dtype != x.dtype:
        raise TypeError(f"out must have the dtype of frames ({x.dtype}); got {out.dtype}")
    if out.shape != frames.shape:
        raise ValueError(f"out must have the shape of frames {frames.shape}; got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned:
        raise ValueError("out must be C-contiguous, aligned and writeable")
    if any(_overlaps(out, a) for a in (frames, x, target) if not isinstance(a, ColorTarget)):
        raise ValueError("out must not share memory with frames or target")
    return out[None] if single else out


_TooHard = getattr(np, "exceptions", np).TooHardError
# candidate solutions the exact overlap test may try (numpy documents any int; its
# stubs name only the special values -1 and 0)
_OVERLAP_WORK: Any = 1 << 20


def _overlaps(a: np.ndarray, b: Any) -> bool:
    """Whether ``a`` and ``b`` share a byte. ``np.may_share_memory`` compares only the
    spans' ends, so a view of frames 0 and 3 of a buffer seemed to overlap an ``out``
    of frames 1 and 2; the exact test settles that, and a case too hard for it to
    settle in its bounded search counts as sharing."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=_OVERLAP_WORK))
    except _TooHard:
        return True


# the names the native check takes, as its message gives them
MATRICES = (
    '"bt601", "bt709" or "bt2020" (any case; also written "bt.601", "601", "smpte170m", '
    '"bt.709", "709", "bt.2020", "2020", "bt2020nc")'
)


def _check_yuv_options(matrix: Any, full_range: Any) -> None:
    if not isinstance(matrix, str):
        raise TypeError(f"matrix must be a string such as 'bt709'; got {type(matrix).__name__}")
    # what the native check cannot even read, or would quote whole in its message (a
    # megabyte of text); no name is longer than 9 characters
    if not matrix.isascii() or len(matrix) > 40:
        raise ValueError(f"matrix must be {MATRICES}; got {matrix!r:.40}")
    if not isinstance(full_range, (bool, np.bool_)):
        raise TypeError(f"full_range must be True or False; got {full_range!r}")


def rgb_to_yuv420p(
    frames: Frames, *, matrix: str = "bt709", full_range: bool = False
) -> npt.NDArray[np.uint8]:
    """RGB to planar 4:2:0 YUV (I420), ready for ``av.VideoFrame.from_ndarray(..., "yuv420p")``.

    Returns ``(H * 3 // 2, W)`` per frame: the Y plane, then U, then V. ``H`` and
    ``W`` must be even. ``matrix`` is ``"bt601"``, ``"bt709"`` or ``"bt2020"`` (any
    case; also ``"bt.709"`` or ``"709"``, and ``"smpte170m"`` and ``"bt2020nc"`` as
    FFmpeg names them); limited range (Y 16..235) unless ``full_range``. Chroma is the mean of each
    2x2 block.
    """
    x, single = v.frames(frames, "frames")
    _check_yuv_options(matrix, full_range)
    if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(
            "frames must have an even height and width for 4:2:0 chroma; "
            f"got {x.shape[1]}x{x.shape[2]}"
            " (pad or crop first; loopwave.video pads for you)"
        )
    return _squeeze(_native.rgb_to_yuv420p(x, matrix, bool(full_range)), single)


def yuv420p_to_rgb(
    planes: npt.NDArray[np.uint8], *, matrix: str = "bt709", full_range: bool = False
) -> npt.NDArray[np.uint8]:
    """Planar 4:2:0 YUV (I420) back to 8-bit RGB: the inverse of :func:`rgb_to_yuv420p`.

    ``planes`` is ``(H * 3 // 2, W)`` per frame, ``uint8``, as :func:`rgb_to_yuv420p`
    returns it and ``av.VideoFrame.to_ndarray(format="yuv420p")`` gives it: the Y
    plane, then U, then V, ``H`` and ``W`` even; or ``(N, H * 3 // 2, W)`` for a batch.
    Returns ``(H, W, 3)`` (or ``(N, H, W, 3)``) ``uint8`` RGB. ``matrix`` and
    ``full_range`` are read as :func:`rgb_to_yuv420p` reads them. Chroma is taken as
    centre-sited (the mean of each 2x2 block, as :func:`rgb_to_yuv420p` writes it) and
    upsampled bilinearly, each value rounded to nearest: within half a level of the
    exact decode (float64), where FFmpeg's default conversion drops a level on about
    half the values.
    """
    form = "a uint8 numpy.ndarray of shape (H * 3 // 2, W) or (N, H * 3 // 2, W)"
    if not isinstance(planes, np.ndarray) or v._masked(planes):
        raise TypeError(f"planes must be {form}; got {type(planes).__name__}")
    if planes.dtype != np.uint8:
        raise TypeError(f"planes must have dtype uint8; got {planes.dtype}")
    if planes.ndim not in (2, 3):
        raise ValueError(
            f"planes must be {form}; got {planes.ndim} dimensions, shape {planes.shape}"
        )
    rows, w = planes.shape[-2:]
    if planes.size == 0 or rows % 3 or w % 2:
        raise ValueError(
            f"planes must be {form} with H and W even and not zero; got shape {planes.shape}"
        )
    _check_yuv_options(matrix, full_range)
    single = planes.ndim == 2
    try:
        with v.reading(planes, "planes"):
            x = np.require(planes[None] if single else planes, requirements=("C", "A"))
    except MemoryError:  # a copy of a huge (broadcast) view
        raise MemoryError(
            f"planes: no memory for a contiguous copy of shape {planes.shape} ({planes.size} bytes)"
        ) from None
    return _squeeze(_native.yuv420p_to_rgb(x, matrix, bool(full_range)), single)


def motion_matrix(
    height: int,
    width: int,
    *,
    zoom: float = 1.0,
    angle: float = 0.0,
    translate: tuple[float, float] = (0.0, 0.0),
) -> npt.NDArray[np.float64]:
    """The forward 2x3 matrix of Deforum's 2D motion: shift by ``translate`` = (x, y)
    pixels, then rotate by ``angle`` degrees (counter-clockwise) and scale by ``zoom``
    about the centre ``(width // 2, height // 2)``. As Deforum's ``anim_frame_warp_2d``:
    ``cv2.getRotationMatrix2D(centre, angle, zoom) @ [[1, 0, x], [0, 1, y], [0, 0, 1]]``
    (3x3 forms, top two rows kept), so the shift on screen is turned and scaled with the
    frame. (Deforum's A1111 extension puts the centre at ``width * 0.5``: the same for
    even sizes. Deforum holds the shift as float32, here float64.)"""
    for name, size in (("height", height), ("width", width)):
        if isinstance(size, (bool, np.bool_, np.timedelta64)) or not isinstance(
            size, (int, np.integer)
        ):
            raise TypeError(f"{name} must be an int; got {size!r}")
        if not 1 <= size <= 2**31:
            raise ValueError(f"{name} must be in 1..2**31; got {str(size):.40}")
    try:
        tx, ty = translate
    except (TypeError, ValueError):
        raise TypeError(f"translate must be a pair (x, y) of numbers; got {translate!r}") from None
    vals = {}
    for name, val in (("zoom", zoom), ("angle", angle), ("translate[0]", tx), ("translate[1]", ty)):
        if np.iscomplexobj(val) and not isinstance(val, (str, bytes)):
            raise TypeError(f"{name} must be a real number; got {val!r}")
        # real numbers of any kind (Fraction, Decimal: as warp_affine's matrix takes them)
        if not v._is_real(val):
            raise TypeError(f"{name} must be a number; got {val!r}")
        f = v.to_float(val)
        if not np.isfinite(f):
            raise ValueError(f"{name} must be a finite real number; got {val!r:.40}")
        vals[name] = f
    if not zoom > 0:
        raise ValueError(f"zoom must be > 0; got {zoom}")
    tx, ty = vals["translate[0]"], vals["translate[1]"]
    cx, cy = float(int(width) // 2), float(int(height) // 2)  # Deforum's (W // 2, H // 2)
    with np.errstate(over="ignore", invalid="ignore"):
        a = vals["zoom"] * np.cos(np.radians(vals["angle"]))
        b = vals["zoom"] * np.sin(np.radians(vals["angle"]))
        # [[a, b, c], [-b, a, d]] (getRotationMatrix2D) times the shift [[1, 0, tx], [0, 1, ty]]
        c, d = (1 - a) * cx - b * cy, b * cx + (1 - a) * cy
        m = np.array([[a, b, a * tx + b * ty + c], [-b, a, -b * tx + a * ty + d]])
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]  # zoom squared (inf for a huge zoom)
    if not np.isfinite(m).all():
        raise ValueError(
            f"zoom {zoom!r:.20} with translate {translate!r:.40} and size {height}x{width} "
            "gives a matrix beyond float64's range"
        )
    if not np.isfinite(det):  # a zoom near 1e154 and beyond
        raise ValueError(
            f"zoom {zoom!r:.20} is too large: zoom squared (the matrix's determinant) "
            "is beyond float64's range"
        )
    if not abs(det) >= 1e-12:  # warp_affine's own limit (a zoom that became 0 too)
        raise ValueError(
            f"zoom {zoom!r:.20} is too small: the motion cannot be inverted (determinant "
            f"{det:.3e}, zoom squared; warp_affine needs at least 1e-12, a zoom of 1e-6)"
        )
    return m


def warp_affine(frames: Frames, matrix: npt.ArrayLike, *, border: str = "replicate") -> Frames:
    """Warp frames by a forward 2x3 affine ``matrix`` (OpenCV's convention), bilinear.

    ``matrix`` is ``(2, 3)`` or one per frame ``(N, 2, 3)``; ``border`` is
    ``"replicate"`` (edge pixels extend) or ``"wrap"`` (the frame tiles). Matches
    ``cv2.warpAffine(..., INTER_LINEAR)`` to within OpenCV's 1/32-pixel weight rounding.
    """
    x, single = v.frames(frames, "frames")
    m = v.real_array(matrix, "matrix", "a (2, 3) or (N, 2, 3) array of real numbers")
    if m.shape not in ((2, 3), (x.shape[0], 2, 3)):
        raise ValueError(f"matrix must have shape (2, 3) or ({x.shape[0]}, 2, 3); got {m.shape}")
    if not isinstance(border, str):
        raise TypeError(f"border must be 'replicate' or 'wrap'; got {border!r:.40}")
    if not border.isascii() or len(border) > 40:  # as rgb_to_yuv420p's matrix
        raise ValueError(f"border must be 'replicate' or 'wrap'; got {border!r:.40}")
    return _squeeze(_native.warp_affine(x, np.ascontiguousarray(m.reshape(-1)), border), single)


def set_num_threads(n: int) -> None:
    """Use ``n`` worker threads for kernels (0 restores the default: ``LOOPWAVE_NUM_THREADS``
    or the number of cores, at most 1024). Lower it to leave cores to torch or
    onnxruntime. A new count starts a pool of that many threads (calls already running
    finish on the old one). The pool it replaces is kept for reuse, up to three of them
    holding at most four threads per core together (at least 32), so switching between a
    few counts starts threads only the first time; asking for the current count changes
    nothing. A larger count than that is started anew each time it is asked for."""
    # (np.timedelta64 is a numpy integer, and a duration)
    if isinstance(n, (bool, np.timedelta64)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int; got {type(n).__name__}")
    if not 0 <= n <= 1024:
        raise ValueError(f"n must be in 0..1024; got {n}")
    _native.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of worker threads kernels use."""
    return int(_native.get_num_threads())


def set_buffer_cache(max_bytes: int) -> None:
    """Keep the memory of dropped results, up to ``max_bytes`` in all, for new results.

    A kernel's result of 1 MiB or more is a view of a buffer that, once the result and
    every view of it are gone, is kept for the next result of about its size: the
    operating system then need not map and zero fresh pages for it (0.4-1 ms per 1080p
    frame; glibc returns blocks over 32 MiB to the system on every free). At most four
    buffers are kept, the most recently freed, so never more memory than the results the
    program held before. The default limit is 512 MiB, or ``LOOPWAVE_BUFFER_CACHE_MB``
    (read at the first result or :func:`buffer_cache_info` call); 0 turns the cache off
    and releases what it holds. Such a result's ``flags.owndata`` is False (its ``base``
    owns the memory), so ``ndarray.resize`` refuses it, as it does any view.
    """
    if isinstance(max_bytes, (bool, np.timedelta64)) or not isinstance(
        max_bytes, (int, np.integer)
    ):
        raise TypeError(f"max_bytes must be an int; got {type(max_bytes).__name__}")
    if not 0 <= max_bytes < 2**63:
        raise ValueError(f"max_bytes must be an int in 0..2**63-1; got {max_bytes}")
    _native.set_buffer_cache(int(max_bytes))


def buffer_cache_info() -> dict[str, int]:
    """The result-buffer cache (see :func:`set_buffer_cache`): its limit ``max_bytes``,
    and the ``bytes`` and number of ``buffers`` it holds now."""
    limit, held, n = _native.buffer_cache_info()
    return {"max_bytes": int(limit), "bytes": int(held), "buffers": int(n)}


def simd_level() -> str:
    """The instruction set the kernels run with: ``"avx512"``, ``"avx2"`` or ``"baseline"``.

    The widest this CPU has, capped by the environment variable ``LOOPWAVE_SIMD`` (same
    names; read once, at the first kernel call). Every level gives bit-identical results;
    the cap exists for comparing them and for timing.
    """
    return str(_native.simd_level())


# what Rust's str::trim takes off (Unicode White_Space; Python's strip also takes \x1c-\x1f)
_RUST_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


def _unread_settings(env: Mapping[str, str]) -> list[str]:
    """What the native module does with each of its environment variables that it cannot
    read (it ignores them, keeping the default), as messages."""
    out = []
    simd = env.get("LOOPWAVE_SIMD", "").strip(_RUST_SPACE).lower()
    if simd and simd not in ("avx512", "avx2", "baseline"):
        out.append(
            f"LOOPWAVE_SIMD={env['LOOPWAVE_SIMD']!r:.40} is not 'avx512', 'avx2' or 'baseline'; "
            "ignored: the kernels run at the widest level this CPU has"
        )
    whole = re.compile(r"\+?[0-9]+")
    threads = env.get("LOOPWAVE_NUM_THREADS", "").strip(_RUST_SPACE)
    if threads and not (whole.fullmatch(threads) and int(threads) < 2**64):  # 0: the default
        out.append(
            f"LOOPWAVE_NUM_THREADS={env['LOOPWAVE_NUM_THREADS']!r:.40} is not a whole number "
            "below 2**64; ignored: the kernels use a thread per available core"
        )
    cache = env.get("LOOPWAVE_BUFFER_CACHE_MB", "").strip(_RUST_SPACE)
    if cache and not (whole.fullmatch(cache) and int(cache) < 2**128):
        out.append(
            f"LOOPWAVE_BUFFER_CACHE_MB={env['LOOPWAVE_BUFFER_CACHE_MB']!r:.40} is not a whole "
            "number of MiB below 2**128; ignored: the result-buffer cache keeps up to 512 MiB"
        )
    return out


def _importers_stacklevel() -> int:
    """The ``stacklevel`` that points a warning issued by this module's import at the
    line outside loopwave that imported it (``import loopwave`` in the user's script, or
    its ``importlib.import_module("loopwave")``), not at loopwave's own ``from .color
    import``: the frames of loopwave and of Python's import machinery (some of which
    :func:`warnings.warn` skips without counting) are passed."""
    import importlib

    ours = os.path.dirname(os.path.abspath(__file__)) + os.sep
    # (importlib.import_module's own frame is counted, and passed: a review)
    machinery = os.path.dirname(os.path.abspath(importlib.__file__ or "")) + os.sep
    frame, level = sys._getframe(1), 1  # (the module's own frame: stacklevel 1)
    while frame.f_back is not None:
        frame = frame.f_back
        name = frame.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            continue  # (not counted by warnings.warn either)
        level += 1
        if not os.path.abspath(name).startswith((ours, machinery)):
            break
    return level


# a typo (LOOPWAVE_SIMD=avx-2) would otherwise time, or run, something else without a word
for _message in _unread_settings(os.environ):
    warnings.warn(_message, RuntimeWarning, stacklevel=_importers_stacklevel())
