"""Frame interpolation: raise a 10 fps render to 60 fps.

One interface, :class:`Interpolator` (frames ``a``, ``b`` and timesteps in
(0, 1) -> in-between frames), and two weights-free backends that work on a
fresh machine:

* :class:`FlowInterpolator` — dense optical flow (OpenCV's DIS) in both
  directions, the flows from time ``t`` approximated from them as in Super
  SloMo (``F_t0 = -(1-t) t F_01 + t^2 F_10``, ``F_t1 = (1-t)^2 F_01 - t (1-t)
  F_10``), backward warping of both frames, and occlusion-aware blending: a
  pixel whose forward flow and the backward flow where it lands do not cancel
  is treated as occluded in that frame and weighted down; where both frames are
  (flows that agree nowhere: a large move, a cut the detector misses), the pixel
  is a cross-fade at ``t``. The tests move a small
  object (20 px) up to 8 px per frame, which it interpolates well; at 16 px per
  frame DIS lost it in a one-off check (no test), no better than a fade.
* :class:`BlendInterpolator` — a plain cross-fade (:func:`loopwave.lerp_frames`).

RIFE runs through the same interface: :class:`loopwave.rife.OnnxRifeInterpolator`
(an exported ONNX model under onnxruntime) or
:class:`loopwave.rife.TorchRifeInterpolator`; pass one as ``backend``.

:func:`interpolate` streams: frames in, frames out, constant memory. Across a
scene cut (:func:`is_scene_cut`) it does not interpolate: it holds the frame
before the cut for the in-between slots, so the cut stays a cut. :func:`retime`
does the same for frames shown at uneven times (a variable-rate recording):
it places them by their times on an even grid.

Example
-------
>>> import numpy as np
>>> from loopwave.interpolate import interpolate
>>> frames = [np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 200, np.uint8)]
>>> len(list(interpolate(frames, factor=4, backend="blend", scene_cut=False)))
5
"""

from __future__ import annotations

import abc
import collections
import concurrent.futures
import functools
import itertools
import math
import numbers
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import _native
from . import _validate as v
from .color import lerp_frames, rgb_to_lab

__all__ = [
    "BlendInterpolator",
    "FlowInterpolator",
    "Interpolator",
    "interpolate",
    "is_scene_cut",
    "retime",
    "scene_cut_distance",
]

SCENE_CUT_THRESHOLD = 0.35
#: ``FlowInterpolator``'s ``occlusion_sigma`` range, in pixels
SIGMA_RANGE = (1e-3, 1e6)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the optical-flow interpolator needs OpenCV: pip install opencv-python-headless"
        ) from e
    return cv2


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, single_a = v.frames(a, "a")
    y, single_b = v.frames(b, "b")
    if not (single_a and single_b):
        raise ValueError("a and b must be single frames (H, W, 3)")
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise TypeError(f"a and b must be uint8 RGB; got {x.dtype} and {y.dtype}")
    if x.shape != y.shape:
        raise ValueError(f"b must have the shape of a {x.shape[1:]}; got {y.shape[1:]}")
    return x[0], y[0]


def _timesteps(t: Any) -> np.ndarray:
    try:
        raw = np.asarray(t)
    except (TypeError, ValueError):  # ragged
        raise TypeError(f"timesteps must be numbers in (0, 1); got {t!r:.60}") from None
    if raw.dtype.kind not in "iuf":  # numpy would parse "0.5"; bools and complex are not times
        raise TypeError(f"timesteps must be numbers in (0, 1); got {t!r:.60}")
    ts = np.atleast_1d(raw.astype(np.float64))
    if ts.ndim != 1 or ts.size == 0 or not np.all((ts > 0) & (ts < 1)):
        raise ValueError(f"timesteps must be numbers in (0, 1); got {t!r}")
    return ts


class Interpolator(abc.ABC):
    """Produces in-between frames of two frames.

    ``thread_safe``: whether :meth:`between` may run for several pairs at once
    (then :func:`interpolate` works on pairs in parallel); False unless a
    subclass says otherwise."""

    thread_safe: bool = False

    def between(
        self, a: np.ndarray, b: np.ndarray, timesteps: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Frames at ``timesteps`` (each in (0, 1)) between ``a`` and ``b``, ``(T, H, W, 3)``
        ``uint8``; ``a`` and ``b`` are ``(H, W, 3)`` ``uint8`` frames of one shape (else a
        ``TypeError`` or ``ValueError``)."""
        x, y = _pair(a, b)
        return self._between(x, y, _timesteps(timesteps))

    @abc.abstractmethod
    def _between(self, a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray: ...

    def _prepare(self, a: np.ndarray, b: np.ndarray) -> Any:
        """The work on a pair that every one of its timesteps shares (the flow
        interpolator's flows), for :meth:`_between_prepared`. :class:`FlowInterpolator`'s
        ``_between`` is built on the two, so a pair of its whose outputs are made a piece
        at a time does this once (see ``_prepares``); for other classes they are not
        called. With :attr:`thread_safe`, it runs for several pairs at once, on several
        threads, as :meth:`between` does: a buffer it fills must be its thread's own (its
        result is copied before the pair's pieces share it, so the thread may fill the
        same buffer again for its next pair)."""
        raise NotImplementedError

    def _between_prepared(
        self, a: np.ndarray, b: np.ndarray, ts: np.ndarray, prepared: Any
    ) -> np.ndarray:
        """:meth:`_between` given :meth:`_prepare`'s result for ``a`` and ``b``, which
        every piece of the pair shares: a subclass's is a read-only copy where it is an
        array, or a tuple, named tuple, list or dict of them (other objects are shared as
        they are; see ``_shared``)."""
        raise NotImplementedError


class BlendInterpolator(Interpolator):
    """A cross-fade: ``a + t (b - a)``."""

    thread_safe = True

    def _between(self, a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return np.stack([lerp_frames(a, b, float(t)) for t in ts])


# the smallest side DIS gets (see FlowInterpolator.flows)
_DIS_MIN = 96


class FlowInterpolator(Interpolator):
    """Bidirectional DIS optical flow with occlusion-aware blending (see the module docs).

    Parameters
    ----------
    preset : DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"``
    occlusion_sigma : forward-backward mismatch (pixels) at which a pixel's weight
        falls to ``exp(-1)``; in :data:`SIGMA_RANGE` (1e-3 to 1e6)
    """

    _PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}
    thread_safe = True  # one DIS object per thread

    def __init__(self, *, preset: str = "medium", occlusion_sigma: float = 1.5) -> None:
        if not isinstance(preset, str):
            raise TypeError(f"preset must be one of {sorted(self._PRESETS)}; got {preset!r}")
        if preset not in self._PRESETS:
            raise ValueError(f"preset must be one of {sorted(self._PRESETS)}; got {preset!r}")
        sigma = occlusion_sigma
        if not v._is_real(sigma):
            raise TypeError(f"occlusion_sigma must be a positive number; got {sigma!r:.60}")
        # in pixels: below 1e-3 no two flows agree, above 1e6 all do (and under 1e-38 the
        # kernel's f32 inverse was infinite and the frames came out black)
        sigma = v.to_float(sigma)
        if not SIGMA_RANGE[0] <= sigma <= SIGMA_RANGE[1]:
            raise ValueError(
                f"occlusion_sigma must be in {SIGMA_RANGE[0]:g}..{SIGMA_RANGE[1]:g} pixels; "
                f"got {occlusion_sigma!r:.60}"
            )
        _cv2()
        self._preset = self._PRESETS[preset]
        self._local = threading.local()
        self.sigma = sigma

    def flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``F_01``, ``F_10`` (``(H, W, 2)`` float32): ``a(x) ~ b(x + F_01(x))``, and back.

        ``a`` and ``b``: ``(H, W, 3)`` ``uint8`` RGB frames of one shape."""
        a, b = _pair(a, b)
        return self._flows(a, b)

    def _flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cv2 = _cv2()
        dis = getattr(self._local, "dis", None)
        if dis is None:  # DIS keeps scratch buffers: one object per thread
            dis = self._local.dis = cv2.DISOpticalFlow_create(self._preset)
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        # OpenCV's DIS picks its pyramid depth from the frame size and crashes the
        # process (not an exception) on some small or flat frames, e.g. 12x100; frames
        # under _DIS_MIN pixels a side are extended by their edge pixels and the flow
        # is cropped back (larger frames are untouched)
        h, w = ga.shape
        ph, pw = max(_DIS_MIN - h, 0), max(_DIS_MIN - w, 0)
        if ph or pw:
            ga, gb = (cv2.copyMakeBorder(g, 0, ph, 0, pw, cv2.BORDER_REPLICATE) for g in (ga, gb))
        f01, f10 = dis.calc(ga, gb, None), dis.calc(gb, ga, None)
        return np.ascontiguousarray(f01[:h, :w]), np.ascontiguousarray(f10[:h, :w])

    def _between(self, a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return self._between_prepared(a, b, ts, self._prepare(a, b))

    def _prepare(self, a: np.ndarray, b: np.ndarray) -> Any:
        flows = np.stack(self._flows(a, b))
        flows.flags.writeable = False  # (its own: shared by a pair's pieces as it is)
        return flows

    def _between_prepared(
        self, a: np.ndarray, b: np.ndarray, ts: np.ndarray, prepared: Any
    ) -> np.ndarray:
        # visibility, the flows from t, both warps and the blend: one native pass per
        # output frame (GIL released), exact bilinear sampling with the edge replicated
        flows = np.ascontiguousarray(prepared, np.float32)  # (a subclass's may be strided)
        return _native._flow_interpolate(
            np.stack([a, b]), flows, np.ascontiguousarray(ts, np.float64), self.sigma
        )


# Lab ranges of the scene-cut histograms and their number of nodes: 17 nodes, 16 steps
# (6.25 L*, 13.75 a*/b*), so a* = b* = 0, where greys sit, is a node and not a bin edge
_CUT_RANGES = ((0.0, 100.0), (-110.0, 110.0), (-110.0, 110.0))
_CUT_NODES = 17


def _soft_histogram(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The histogram of ``x`` on :data:`_CUT_NODES` nodes evenly over ``[lo, hi]``, each
    value split between its two nearest nodes in proportion to its nearness (linear
    binning; values outside the range go to the end node): a value that moves a little
    moves a little weight, wherever it is."""
    n = _CUT_NODES
    pos = (np.clip(x.astype(np.float64).ravel(), lo, hi) - lo) * ((n - 1) / (hi - lo))
    i = np.minimum(pos.astype(np.intp), n - 2)  # the node below (hi: the last step's end)
    w = pos - i  # the share of the node above
    return np.bincount(i, 1.0 - w, n) + np.bincount(i + 1, w, n)


def scene_cut_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How different the two frames' colour distributions are, in [0, 1]: the mean over
    L*, a* and b* of the share of pixels whose value would have to move (half the L1
    distance of the two frames' histograms, i.e. 1 - their intersection).

    The histograms are linearly binned: 17 nodes a channel (L* 0..100 in steps of 6.25,
    a* and b* -110..110 in steps of 13.75, a* = b* = 0 a node), each value split between
    its two nearest nodes. A small colour change therefore scores little wherever it
    happens; with hard bins a 1-level change of a flat grey frame, (128, 128, 128) ->
    (127, 128, 129), crossed the bin edge that sat at a* = b* = 0 and scored 0.67, a
    "cut" in the middle of a fade (now 0.02).

    Global colour distributions barely change with motion and change a lot at a
    cut; 0 means identical histograms. A cut that changes only lightness (two grey
    scenes, black to white) scores at most 1/3, under the default threshold: pass a
    lower ``threshold`` for such material. (Taking the largest channel instead
    catches those cuts but also calls a 20% brightness change a cut: L* alone scores
    0.40 for it on scikit-image's camera photograph.)
    """
    x, y = _pair(a, b)
    step = max(1, max(x.shape[:2]) // 96)  # a thumbnail is enough for histograms
    la, lb = rgb_to_lab(x[::step, ::step]), rgb_to_lab(y[::step, ::step])
    moved = 0.0
    for c, (lo, hi) in enumerate(_CUT_RANGES):
        ha = _soft_histogram(la[..., c], lo, hi)
        hb = _soft_histogram(lb[..., c], lo, hi)
        moved += 0.5 * float(np.abs(ha - hb).sum())  # identical frames: exactly 0
    return min(1.0, moved / (3 * la[..., 0].size))


def is_scene_cut(a: np.ndarray, b: np.ndarray, *, threshold: float = SCENE_CUT_THRESHOLD) -> bool:
    """Whether ``a`` -> ``b`` is a cut: :func:`scene_cut_distance` above ``threshold``
    (a number in [0, 1])."""
    if not v._is_real(threshold):
        raise TypeError(f"threshold must be a number in [0, 1]; got {threshold!r}")
    if not 0 <= threshold <= 1:  # NaN too
        raise ValueError(f"threshold must be a number in [0, 1]; got {threshold!r}")
    return scene_cut_distance(a, b) > threshold


def _backend(backend: str | Interpolator) -> Interpolator:
    if isinstance(backend, Interpolator):
        return backend
    if not isinstance(backend, str):  # (an array compared with "flow" raised numpy's error)
        raise TypeError(
            f"backend must be 'flow', 'blend' or an Interpolator; got {type(backend).__name__}"
        )
    if backend == "flow":
        return FlowInterpolator()
    if backend == "blend":
        return BlendInterpolator()
    if backend == "rife":
        raise ValueError(
            "backend='rife' needs a model: pass loopwave.rife.OnnxRifeInterpolator(path) "
            "or TorchRifeInterpolator(checkpoint) as backend"
        )
    raise ValueError(f"backend must be 'flow', 'blend' or an Interpolator; got {backend!r}")


def _near_whole(ratio: Fraction) -> int | None:
    """The whole number ``k >= 1`` that a ratio of two rates lies within 1e-5 (relative)
    of, or None: one of the rates a decimal shorthand of the other's NTSC form (59.94
    over 30000/1001 is 2), whose frames are meant to fall on each other's."""
    k = round(ratio)
    return k if k >= 1 and abs(ratio - k) <= Fraction(k, 10**5) else None


def _snapped(fps: Fraction, to_fps: Fraction) -> Fraction:
    """:func:`_snapped_rate` without its bounds."""
    k = _near_whole(to_fps / fps)
    if k is not None:
        return fps * k
    down = _near_whole(fps / to_fps)
    return fps / down if down is not None else to_fps


def _snapped_rate(fps: Fraction, to_fps: Fraction) -> Fraction:
    """``to_fps``, or, where it is within 1e-5 (relative) of a whole multiple or a whole
    fraction of ``fps`` (:func:`_near_whole`), exactly that multiple or fraction: a decimal
    shorthand of an NTSC rate (59.94 from 30000/1001 is 60000/1001), whose frames are
    meant to fall on the input's. ``to_fps`` as it is where that would leave the rates a
    video takes, [1/10000, 1000] (then :func:`_even_times` places the frames)."""
    snapped = _snapped(fps, to_fps)
    return snapped if Fraction(1, 10_000) <= snapped <= 1000 else to_fps


def _even_times(n: int, fps: Fraction, to_fps: Fraction) -> np.ndarray:
    """The times of ``n`` frames evenly spaced at ``fps``, to be retimed to exactly
    ``to_fps``: ``i / fps``, or, where ``to_fps`` is within 1e-5 of a whole multiple or
    fraction of ``fps`` (:func:`_snapped_rate`), ``i`` over the rate that makes it exactly
    so: a decimal shorthand of an NTSC rate (frames at 29.97 to "30000/1001", 1.000001
    times it) drifted 3.3e-8 s a frame off the output's times, and past 1000 s every
    output was an in-between, where each should show its frame. The frames' span then
    differs from ``(n - 1) / fps`` by under 1e-5 of it. (Where the output's rate may be the
    snapped one instead, as the ``interpolate`` command's within [1/10000, 1000], that
    keeps the frames' own times, and their sound's.)"""
    return np.arange(n) / float(fps * to_fps / _snapped(fps, to_fps))


def resolve_factor(factor: int | None, to_fps: Any = None, fps: Any = None) -> int:
    """The integer factor, given directly or as ``to_fps / fps`` (both given: they must
    agree); 6 when neither is. A ratio within 1e-5 (relative) of an integer is taken as
    that integer, so the decimal forms of NTSC rates work (``to_fps=59.94`` with
    ``fps=30000/1001`` is 2, and the video's rate is ``fps`` x 2)."""
    if to_fps is not None or fps is not None:
        if to_fps is None or fps is None:
            alone = "to_fps" if fps is None else "fps"
            raise ValueError(
                f"to_fps and fps must be given together (the factor is to_fps / fps); got "
                f"{alone} alone"
            )
        from .video import parse_fps

        ratio = parse_fps(to_fps, "to_fps") / parse_fps(fps, "fps")
        if ratio.denominator != 1 and all(isinstance(x, (int, Fraction)) for x in (to_fps, fps)):
            # parse_fps rounds each to a denominator <= 10^6: exact rates keep their ratio
            ratio = Fraction(to_fps) / Fraction(fps)
        k = _near_whole(ratio)
        if k is not None:
            # a decimal shorthand of an NTSC rate (59.94 over 30000/1001, 23.976 over
            # 24000/1001): the video comes out at fps x k, the exact rate
            ratio = Fraction(k)
        if ratio.denominator != 1:
            raise ValueError(
                f"to_fps must be an integer multiple of fps; got to_fps {to_fps} / fps {fps} "
                f"= {float(ratio):.6g} (retime(frames, times, fps=to_fps) takes any rate)"
            )
        if factor is not None and not (v._is_real(factor) and factor == ratio):
            raise ValueError(
                f"factor {factor!r} disagrees with to_fps / fps = {to_fps}/{fps} = {ratio}; "
                "give one or the other"
            )
        factor = int(ratio)
    elif factor is None:
        factor = 6
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)):
        raise TypeError(f"factor must be an int in 2..16; got {factor!r}")
    if not 2 <= factor <= 16:
        if to_fps is not None:  # the caller gave the rates, not the factor
            raise ValueError(
                f"to_fps {to_fps} over fps {fps} gives factor {factor}; "
                "it must give a factor in 2..16"
            )
        raise ValueError(f"factor must be in 2..16; got {factor}")
    return int(factor)


def interpolate(
    frames: Iterable[np.ndarray],
    *,
    factor: int | None = None,
    to_fps: Any = None,
    fps: Any = None,
    backend: str | Interpolator = "flow",
    scene_cut: bool | float = True,
    loop: bool = False,
    workers: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream ``frames`` with ``factor - 1`` in-betweens after each (``to_fps``/``fps`` instead;
    ``factor`` 6 when neither is given).

    ``n`` frames give ``(n - 1) * factor + 1`` frames, or ``n * factor`` with
    ``loop=True`` (the last frame is also interpolated toward the first; one frame
    stays one frame).
    ``scene_cut`` is True (default threshold), False, or a threshold; across a
    cut the frame before it is held. ``workers`` pairs are interpolated at once
    by a thread pool when the backend is :attr:`Interpolator.thread_safe`
    (default: a quarter of the CPU cores, at most 4; 1 on small machines), and
    the frames still come out in order. Constant memory: ``workers`` pairs at a time.
    The arguments are checked when this is called; the frames as they are read.
    """
    k = resolve_factor(factor, to_fps, fps)
    _check_frames_arg(frames)
    interp, threshold, loop, workers = _checked_backend(backend, scene_cut, loop, workers)
    ts = np.arange(1, k) / k  # (k <= 16: one piece)
    slots = _Slots(lambda i: True, lambda i, wrap: [ts])
    return _stream(frames, slots, interp, threshold, loop, workers)


class _Slots:
    """Where the output frames fall, for :func:`_stream`: ``lands(i)``, whether input
    frame ``i`` is itself an output frame; ``between(i, wrap)``, the times of the other
    outputs from frame ``i`` to the next (``wrap``: the last frame to the first, with
    ``loop``), increasing, in [0, 1) (0 a copy of frame ``i``, held; others in-betweens),
    in pieces of at most :data:`_PIECE`; and ``tail(i)``, the copies of frame ``i`` still
    owed where the frames end with it."""

    def __init__(self, lands: Any, between: Any, tail: Any = None) -> None:
        self.lands: Any = lands
        self.between: Any = between
        self.tail: Any = tail or (lambda i: 0)


def _checked_backend(
    backend: str | Interpolator, scene_cut: Any, loop: Any, workers: Any
) -> tuple[Interpolator, float | None, bool, int]:
    """The options :func:`interpolate` and :func:`retime` share, checked: the backend,
    the scene-cut threshold (None: off), ``loop`` and the number of workers."""
    if not isinstance(loop, (bool, np.bool_)):
        raise TypeError(f"loop must be True or False; got {loop!r}")
    interp = _backend(backend)
    if workers is None:
        workers = max(1, min(4, (os.cpu_count() or 1) // 4))
    if isinstance(workers, (bool, np.bool_)) or not isinstance(workers, (int, np.integer)):
        raise TypeError(f"workers must be an int >= 1; got {workers!r}")
    if workers < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    # a backend that is not thread-safe runs one pair at a time, whatever was asked
    workers = int(workers) if interp.thread_safe else 1
    if isinstance(scene_cut, (bool, np.bool_)):
        threshold = SCENE_CUT_THRESHOLD if scene_cut else None
    elif v._is_real(scene_cut) and 0 < scene_cut <= 1:
        threshold = float(scene_cut)
    else:
        raise ValueError(
            f"scene_cut must be True, False or a threshold in (0, 1]; got {scene_cut!r}"
        )
    return interp, threshold, bool(loop), workers


def _check_frames_arg(frames: Any) -> None:
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise ValueError(f"frames: an array must be (N, H, W, 3); got shape {frames.shape}")
    if isinstance(frames, (str, bytes)) or not isinstance(frames, Iterable):
        raise TypeError(
            f"frames must be an iterable of (H, W, 3) uint8 frames; got {type(frames).__name__}"
        )


#: seconds: an output time this close to an input frame's time shows that frame itself
#: (at most a quarter of the output's frame interval, and of the input's typical one)
RETIME_SNAP = 1e-3
#: :func:`retime` makes at most this many output frames (a guard against times in the
#: wrong unit: milliseconds given as seconds)
RETIME_MAX_FRAMES = 10**9


def _retime_times(times: Any) -> np.ndarray:
    """``times`` checked: a 1-D sequence of finite seconds, not decreasing, at least one."""
    try:
        raw = np.asarray(times)
    except (TypeError, ValueError):  # ragged
        raise TypeError(f"times must be a sequence of seconds; got {times!r:.60}") from None
    if raw.dtype.kind == "O" and raw.ndim == 1:  # Fractions, Decimals
        from decimal import Decimal

        real = (numbers.Real, Decimal)
        if not all(isinstance(x, real) and not isinstance(x, bool) for x in raw):
            raise TypeError(f"times must be a sequence of seconds; got {times!r:.60}")
        try:
            raw = np.array([float(x) for x in raw])
        except (ValueError, OverflowError):  # Decimal('sNaN'), 10**400
            raise ValueError(f"times must be finite seconds; got {times!r:.60}") from None
    if raw.dtype.kind not in "iuf" or raw.ndim != 1:
        raise TypeError(
            f"times must be a 1-D sequence of seconds; got {raw.dtype} of shape {raw.shape}"
        )
    # every sequence but an array's own kind (numpy's, torch's: a typed whole, and slow to
    # walk), a 0-d bool array in a list too
    boolean = (bool, np.bool_)
    walked = not isinstance(times, range) and not hasattr(times, "__array__")
    walked &= isinstance(times, Iterable) or hasattr(times, "__getitem__")  # (old-style too)
    if walked and any(
        isinstance(x, boolean) or (isinstance(x, np.ndarray) and x.dtype == bool) for x in times
    ):
        # (numpy read True among numbers as 1 second)
        raise TypeError(
            f"times must be a sequence of seconds, not of True/False; got {times!r:.60}"
        )
    t = raw.astype(np.float64)
    if t.size == 0:
        raise ValueError("times must hold a time for each frame; got none")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"times must be finite; got {t[~np.isfinite(t)][0]}")
    if np.any(np.diff(t) < 0):
        at = int(np.nonzero(np.diff(t) < 0)[0][0]) + 1
        raise ValueError(f"times must not decrease; times[{at}] = {t[at]} < {t[at - 1]}")
    return t


#: frame rates a variable-rate recording's typical rate is taken as, within 0.5%
_COMMON_RATES = tuple(
    Fraction(r)
    for r in "24000/1001 24 25 30000/1001 30 48 50 60000/1001 60 72 90 100 120 144 240".split()
)


def _typical_interval(times: np.ndarray, wide: bool = False) -> float | None:
    """The typical interval between frames: the mean of the intervals near the median
    one (timestamps in milliseconds give a 30 fps clip intervals of 33 and 34 ms, whose
    median, 33, is 1% off; 120 fps 8 and 9 ms): within 10% of it, or of 1.5 ms for
    timestamps' rounding but at most 30% of it (``wide``: within 40%, which takes in
    jittered timestamps' intervals whole, so their errors cancel, and two rates 30% apart
    both); the median where none is that near it (an even count of two kinds). None
    where no two times differ."""
    gaps = np.diff(times)
    gaps = gaps[gaps > 0]
    if not gaps.size:
        return None
    mid = float(np.median(gaps))
    window = 0.4 * mid if wide else max(0.1 * mid, min(0.0015, 0.3 * mid))
    near = gaps[np.abs(gaps - mid) <= window]
    return float(near.mean()) if near.size else mid


def _typical_rate(times: np.ndarray) -> Fraction:
    """The rate of a variable-rate recording's typical interval (:func:`_typical_interval`),
    as the common rate within 0.5% of it where there is one (a phone's 30 fps, 29.97 in
    a 90 kHz time base); 10 where no two times differ."""
    gap = _typical_interval(times)
    if gap is None:
        return Fraction(10)
    # the wide window first (timestamps jittered by 2 ms: the narrow mean was 29.3-30.4
    # fps for 30), then the narrow one (a clip of two rates, which the wide one mixes)
    for g in (_typical_interval(times, wide=True) or gap, gap):
        near = min(_COMMON_RATES, key=lambda r: abs(float(r) * g - 1))
        if abs(float(near) * g - 1) <= 0.005:
            return near
    return Fraction(1 / gap).limit_denominator(1001)


class _Grid:
    """The output frames of :func:`retime` (see there), pair by pair, worked out as they
    are needed: output ``j`` at ``times[0] + j / fps`` belongs to the last frame ``i``
    with ``times[i] <= time + snap``, so pair ``i`` holds outputs ``J(times[i])`` to
    ``J(times[i + 1]) - 1``, ``J(t) = ceil((t - snap - times[0]) fps)``: one rounding
    for both ends, so no output is counted twice or lost."""

    def __init__(self, times: np.ndarray, fps: float, loop: bool, hold: float | None) -> None:
        self.t, self.fps, self.hold = times, fps, hold
        #: the typical interval between frames: a loop closes over it, a pause keeps it
        self.typical = _typical_interval(times) or 1 / fps
        # at most a quarter of an output's interval and of a frame's: frames 1 ms apart
        # (1000 fps) gave each output the frame after its own
        self.snap = min(RETIME_SNAP, 0.25 / fps, 0.25 * self.typical)
        self.loop = loop and len(times) > 1
        if self.loop:
            self.count = self._j(times[-1] + self.typical)
        else:  # up to the last frame's time (and within the snap past it)
            self.count = self._upto(len(times) - 1)
        if self.count > RETIME_MAX_FRAMES:
            raise ValueError(
                f"times span {times[-1] - times[0]:.6g} s: at fps {fps:.6g} that is "
                f"{self.count} output frames, more than {RETIME_MAX_FRAMES} (seconds given "
                "in another unit?)"
            )

    def _j(self, t: float) -> int:
        return max(0, int(np.ceil((t - self.snap - self.t[0]) * self.fps)))

    def _upto(self, i: int) -> int:
        """The outputs up to frame ``i``'s time and within the snap past it."""
        return int(np.floor((self.t[i] + self.snap - self.t[0]) * self.fps)) + 1

    def _range(self, i: int, wrap: bool) -> tuple[int, int, float]:
        """The outputs from frame ``i`` to the next (``lo`` to ``hi - 1``) and that next
        frame's time."""
        t = self.t
        if wrap:
            nxt = t[i] + self.typical
        elif i + 1 < len(t):
            nxt = t[i + 1]
        else:
            return self._j(t[i]), self.count, t[i]
        return self._j(t[i]), min(self._j(nxt), self.count), nxt

    def _at(self, j: int | np.ndarray) -> Any:
        return self.t[0] + np.asarray(j) / self.fps

    def lands(self, i: int) -> bool:
        """Whether frame ``i`` is itself an output (one comes within the snap of it)."""
        if i >= len(self.t):
            return False
        lo, hi, _ = self._range(i, wrap=False)
        return lo < hi and float(self._at(lo)) - self.t[i] <= self.snap

    def between(self, i: int, wrap: bool) -> Iterator[np.ndarray]:
        """The places of the outputs from frame ``i`` to the next, :data:`_PIECE` at a
        time, but for frame ``i`` itself where it :meth:`lands`: in (0, 1), or 0 where a
        pause holds frame ``i`` (an interval over ``hold`` times the typical one moves to
        the next frame over its last typical interval only) or the outputs at its time
        were taken by a later frame that never came (``wrap`` with fewer frames)."""
        lo, hi, nxt = self._range(i, wrap)
        if lo < hi and self.lands(i):  # (it came as the frame itself)
            lo += 1
        ti, span = self.t[i], nxt - self.t[i]
        held = self.hold is not None and span > self.hold * self.typical * (1 + 1e-9)
        for j in range(lo, hi, _PIECE):
            at = self._at(np.arange(j, min(j + _PIECE, hi)))
            if held:
                u = np.clip((at - (nxt - self.typical)) / self.typical, 0.0, 1.0)
            else:
                u = (at - ti) / span if span > 0 else np.zeros_like(at)
            # (within the snap of frame i: that frame; a wrap's first may not have landed)
            yield np.where(at - ti <= self.snap, 0.0, u)

    def tail(self, i: int) -> int:
        """Copies of frame ``i`` still owed where the frames end with it (fewer frames
        than times): the outputs at its time that a later frame's time took."""
        if i + 1 >= len(self.t) or (self.loop and i > 0):  # (one frame does not wrap)
            return 0
        lo = min(self._j(self.t[i + 1]), self.count)
        return max(0, min(self._upto(i), self.count) - lo)


def retime(
    frames: Iterable[np.ndarray],
    times: Sequence[float] | np.ndarray,
    *,
    fps: Any,
    backend: str | Interpolator = "flow",
    scene_cut: bool | float = True,
    hold: float | None = 3.5,
    loop: bool = False,
    workers: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream ``frames``, shown at ``times`` (seconds, not decreasing; a variable-rate
    recording's, as :attr:`loopwave.video.VideoReader.times` gives them), as frames
    evenly spaced at ``fps`` from the first frame's time, so the result plays in step
    with the recording's sound.

    Output frame ``j`` shows the time ``times[0] + j / fps``: the input frame there, where
    one is within :data:`RETIME_SNAP` (1 ms; at most a quarter of an output interval, and of
    the typical interval between frames) of it, else the in-between of the frames before and
    after it, at its place between them (as :func:`interpolate` makes them: ``backend``,
    ``scene_cut``, ``workers``). Frames between two output times are passed over; an
    interval gets as many outputs as output times fall in it. An interval over ``hold``
    (3.5) times the typical one (the mean of the intervals near the median one; a screen
    recording's pause, a phone's frames dropped) holds the frame before it, as a player
    shows it, and moves to the next frame over the last typical interval only; ``hold=None``
    interpolates across every interval whole. The output ends at the last frame's time; with
    ``loop``, it goes on from the last frame to the first over the typical interval. Times
    at a steady rate ``r`` with ``fps = k r`` give what :func:`interpolate` gives with
    ``factor=k``. Memory stays flat however long an interval: its outputs are worked out and
    made 16 at a time.

    ``frames`` must not outnumber ``times`` (a ValueError when the frame past the last
    time comes); fewer frames end the output at the last frame's time (with ``loop`` and
    two or more, it closes over the typical interval; one frame stays one frame).

    Example
    -------
    >>> import numpy as np
    >>> from loopwave.interpolate import retime
    >>> frames = [np.full((8, 8, 3), v, np.uint8) for v in (0, 100, 200)]
    >>> [int(f[0, 0, 0]) for f in retime(frames, [0.0, 0.1, 0.3], fps=10, backend="blend")]
    [0, 100, 150, 200]
    """
    _check_frames_arg(frames)
    t = _retime_times(times)
    from .video import parse_fps

    rate = float(parse_fps(fps, "fps"))
    if hold is not None:
        try:
            ok = not isinstance(hold, (bool, str, bytes)) and math.isfinite(float(hold))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok or float(hold) < 1:
            raise ValueError(f"hold must be None or a number >= 1; got {hold!r:.60}")
        hold = float(hold)
    interp, threshold, loop, workers = _checked_backend(backend, scene_cut, loop, workers)
    grid = _Grid(t, rate, loop, hold)

    def counted() -> Iterator[np.ndarray]:
        for i, f in enumerate(frames):
            if i == len(t):
                raise ValueError(f"frames: more frames than the {len(t)} times given")
            yield f

    slots = _Slots(grid.lands, grid.between, grid.tail)
    return _stream(counted(), slots, interp, threshold, loop, workers)


#: the most outputs of one pair made at once by :func:`_stream` (interpolate's factor is at
#: most 16, so its pairs are made whole)
_PIECE = 16
_NONE = np.zeros(0)


def _prepares(interp: Interpolator) -> bool:
    """Whether ``interp``'s pairs can be made through :meth:`~Interpolator._prepare` and
    :meth:`~Interpolator._between_prepared` (whichever class gives them) in place of
    :meth:`~Interpolator.between`: where ``between`` and ``_between`` are those that
    amount to that, :class:`FlowInterpolator`'s. (A subclass overriding ``between`` or
    ``_between`` was passed over, its own never called; one giving ``_prepare`` from a
    mixin was an AttributeError.)"""
    cls, own = type(interp), getattr(interp, "__dict__", {})
    if "between" in own or "_between" in own:  # set on the object itself
        return False
    return cls.between is Interpolator.between and cls._between is FlowInterpolator._between


def _shared(prepared: Any) -> Any:
    """A subclass's :meth:`~Interpolator._prepare` result as a pair's pieces share it, on
    other threads too: a read-only C-order copy of an array (a masked array's mask too),
    and of each array in a tuple, a named tuple, a list or a dict, as deep as they nest,
    each container rebuilt as its own type. Other objects, and the arrays inside them, are
    shared as they are. The subclass may fill its own buffer again for its next pair, or
    scale the flows in place: shared as they were, a pair's later piece read the next
    pair's flows (a view, or a buffer kept read-only between fills, the same), and a
    piece's change reached the others. (FlowInterpolator's own are fresh and read-only:
    shared as they are.)"""
    if isinstance(prepared, np.ndarray):
        copied = np.array(prepared, copy=True, subok=True, order="C")
        copied.flags.writeable = False
        mask = getattr(copied, "_mask", None) if v._masked(copied) else None
        if isinstance(mask, np.ndarray):  # (numpy.ma.nomask: a scalar, nothing to write)
            mask.flags.writeable = False
        return copied
    kind = type(prepared)
    if kind in (tuple, list):
        return kind(_shared(x) for x in prepared)
    if isinstance(prepared, tuple) and callable(getattr(kind, "_make", None)):
        return kind._make(_shared(x) for x in prepared)  # a named tuple
    if kind is dict:
        return {k: _shared(x) for k, x in prepared.items()}
    return prepared


def _raise_as_made(error: BaseException) -> NoReturn:
    """Raise ``error``, made on a worker thread, in the generator, as one worker raises it
    inline: with the ``__context__`` it was made with, where it has one (raised again
    here, it took the exception a consumer iterating inside an ``except`` block was
    handling); without one, it takes the consumer's, as an error made inline does."""
    context = error.__context__
    try:
        raise error
    except BaseException:
        if context is not None:
            error.__context__ = context
        raise
    finally:
        del error, context  # (the traceback holds this frame: no cycle through them)


def _release_when_done(pending: Iterable[tuple[Any, Any, _Pair]]) -> None:
    """Once each pair's pieces still being made (``(future, _, pair)``) are all done, the
    pair lets go of an error it kept: a consumer stopped early does not wait for them,
    and a pair that failed meanwhile held its error, whose traceback held the pair (a
    cycle keeping its frames alive until a full collection). Not before the last piece is
    done: a piece finding no error would make the pair's work again. (The callbacks count
    the pieces down; holding the futures, they kept the finished pieces' frames.)"""
    pending = list(pending)
    releases = {
        pair: functools.partial(_count_down, pair, [count], threading.Lock())
        for pair, count in collections.Counter(of for _, _, of in pending).items()
    }
    for job, _, of in pending:  # (all counted first: a done one's callback runs at once)
        job.add_done_callback(releases[of])


def _count_down(pair: _Pair, left: list[int], lock: threading.Lock, _: Any) -> None:
    """One of ``pair``'s pieces done (:func:`_release_when_done`); at the last, the pair
    lets go of its error."""
    with lock:
        left[0] -= 1
        last = left[0] == 0
    if last:
        pair.failed = None


class _PairFailed(Exception):
    """A piece's pair's shared work failed in another of its pieces (which raises it)."""


class _Pair:
    """Two frames whose in-betweens :func:`_stream` makes, perhaps a piece at a time on
    several threads, and the work on them that every piece shares, done once (the first
    piece to need it does it; the others wait for it): whether they are a scene cut, and
    the interpolator's :meth:`~Interpolator._prepare` (the flow interpolator's flows,
    worked out again for each 16 outputs of one interval before)."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.a, self.b = a, b
        self._lock = threading.Lock()
        self._cut: bool | None = None
        self._prepared: Any = _NONE  # (not made yet)
        #: what failed, done once: the pair's other pieces raise _PairFailed, and the
        #: caller gets this, as its own piece raised it (each piece tried it again in turn,
        #: waiting on the lock: 4 pieces of a 0.5 s failure took 2 s to report it; one
        #: object raised again on several threads spliced their frames together, and a
        #: copy lost its cause and, with its own __init__, its message)
        self.failed: BaseException | None = None

    def _once(self, work: Callable[[], Any]) -> Any:
        if self.failed is not None:
            raise _PairFailed
        try:
            return work()
        except BaseException as e:
            self.failed = e
            raise

    def cut(self, threshold: float | None) -> bool:
        if threshold is None:
            return False
        with self._lock:
            if self._cut is None:
                self._cut = self._once(lambda: scene_cut_distance(self.a, self.b) > threshold)
            return self._cut

    def prepared(self, interp: Interpolator) -> Any:
        with self._lock:
            if self._prepared is _NONE:
                prepared = self._once(lambda: interp._prepare(self.a, self.b))
                own = getattr(interp._prepare, "__func__", None) is FlowInterpolator._prepare
                if not own:  # (a subclass's, or one set on the object itself)
                    prepared = _shared(prepared)
                self._prepared = prepared
            return self._prepared


def _stream(
    frames: Iterable[np.ndarray],
    slots: _Slots,
    interp: Interpolator,
    threshold: float | None,
    loop: bool,
    workers: int,
) -> Iterator[np.ndarray]:
    """The generator behind :func:`interpolate` and :func:`retime` (arguments already
    checked)."""

    prepares = _prepares(interp)

    def fill(pair: _Pair, ts: np.ndarray) -> list[np.ndarray] | None:
        """The outputs at ``ts`` from ``pair.a`` to ``pair.b``; 0: ``a`` held (retime's
        pauses). None where the pair's shared work failed in another of its pieces."""
        a, b = pair.a, pair.b
        moving = ts[ts > 0]
        try:
            if moving.size and pair.cut(threshold):
                moving = moving[:0]  # across a cut, a held
            if not moving.size:
                made: list[np.ndarray] = []
            elif prepares:  # (our own frames: checked, one shape, uint8)
                prepared = pair.prepared(interp)
                made = list(interp._between_prepared(a, b, _timesteps(moving), prepared))
            else:
                made = list(interp.between(a, b, moving))
        except _PairFailed:
            return None
        # each its own array, as interpolated ones are
        return [a.copy() for _ in range(ts.size - moving.size)] + made

    def pairs() -> Iterator[tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None, bool]]:
        """(i, a, b, frame after the in-betweens, wrap) for frames ``i`` and ``i + 1``:
        the first frame comes as (-1, first, None, first, False); with ``loop`` the last
        pair (last, first) has nothing after it, and wrap True. The frame after is left
        out where it is not an output frame itself (``slots.lands``)."""
        first = prev = None
        n = 0
        for i, f in enumerate(frames):
            cur, single = v.frames(f, f"frames[{i}]")
            if not single:
                raise ValueError(f"frames[{i}] must be one frame (H, W, 3); got {f.shape}")
            if cur.dtype != np.uint8:
                raise TypeError(f"frames[{i}] must be uint8; got {cur.dtype}")
            # our own copy: a producer may hand the same buffer again with the next
            # frame, while this one is still needed (every in-between came out as the
            # new frame against itself)
            cur = cur[0].copy()
            if prev is None:
                first = cur
                yield -1, cur, None, cur, False
            else:
                if cur.shape != prev.shape or cur.dtype != prev.dtype:
                    raise ValueError(
                        f"frames[{i}] must match the frames before it in shape and dtype"
                    )
                yield i - 1, prev, cur, cur, False
            prev = cur
            n = i + 1
        if loop and prev is not None and first is not None and prev is not first:
            yield n - 1, prev, first, None, True

    # pairs run on a pool of `workers` threads (inline with one worker); results are
    # taken in order, at most `workers` in flight
    pool = (
        concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="loopwave-interp")
        if workers > 1
        else None
    )
    pending: collections.deque[tuple[Any, np.ndarray | None, _Pair]] = collections.deque()

    # pairs whose error was raised: they let go of it at the end (see the last finally)
    raised: list[_Pair] = []

    def oldest() -> Iterator[np.ndarray]:
        job, after, pair = pending.popleft()
        error: BaseException | None = None
        made: list[np.ndarray] | None = None
        other: Any = None
        of: _Pair | None = None
        try:
            error = job.exception() if pool is not None else None
            if error is None:
                made = job.result() if pool is not None else job
            if error is None and made is None:
                # its pair's work failed in a later piece, still pending: that piece's
                # error, once its thread has let it go
                for other, _, of in pending:
                    if of is pair:
                        other.exception()
                error = pair.failed
                assert error is not None
            if error is not None:
                raised.append(pair)
                _raise_as_made(error)
        finally:
            # raised, the error's traceback holds this frame: not the error itself, nor
            # the future and the pair that hold it (a cycle keeping the frames alive)
            del job, pair, error, other, of
        assert made is not None
        yield from made
        if after is not None:
            yield after

    last: tuple[int, np.ndarray] | None = None  # the last frame given, and its index
    pair: _Pair | None = None
    waited = True  # whether no pair's work is left running at the end
    try:
        source = pairs()
        while True:
            try:
                i, a, b, after, wrap = next(source)
            except StopIteration:
                break
            except Exception as e:
                # the frames failed (a decode error, a bad frame): what was computed before
                # still comes out, in order, as with one worker (with more it was dropped);
                # outside this handler, so a pair's error met meanwhile keeps its own
                # __context__ (it took the frames' error as its context)
                failed: Exception | None = e
                context = e.__context__
            else:
                failed = None
            if failed is not None:
                try:
                    while pending:
                        yield from oldest()
                    try:
                        raise failed
                    except Exception:
                        # its own context again: raised here, it took the one a consumer
                        # iterating inside an except block was handling
                        failed.__context__ = context
                        raise
                finally:
                    del failed, context  # (its traceback holds this frame: a cycle)
            # the frames yielded are the caller's to change: copies of the ones kept
            if after is not None and not slots.lands(i + 1):
                after = None  # (retime: this frame falls between two output times)
            if b is None:
                last = (0, a)
                if after is not None:
                    yield after.copy()
                continue
            if not wrap:
                last = (i + 1, b)
            # a pair's outputs a piece at a time (a long interval of retime's holds many:
            # made at once, a 60 s pause took 1.4 GB at 480x270), the frame after with the
            # last piece
            pieces = iter(slots.between(i, wrap))
            piece = next(pieces, _NONE)
            pair = _Pair(a, b)  # its cut check and flows, once for all its pieces
            while True:
                following = next(pieces, None)
                done = following is None
                job = pool.submit(fill, pair, piece) if pool is not None else fill(pair, piece)
                pending.append((job, after.copy() if done and after is not None else None, pair))
                del job  # (a failed one, kept here, held its error in a cycle through this frame)
                if len(pending) >= workers:
                    yield from oldest()
                if done:
                    break
                piece = following
        while pending:
            yield from oldest()
        if last is not None:  # (retime: outputs at its time that a frame never given took)
            for _ in range(slots.tail(last[0])):
                yield last[1].copy()
    except GeneratorExit:
        # the consumer stopped (a break, the generator dropped): the pairs being made are
        # not waited for (a break waited for them, 3 s at 1080p, and a Ctrl-C then was
        # "ignored" in the garbage collector); their threads end when they are done
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            pool, waited = None, False
            _release_when_done(pending)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if waited:
            # no piece is left to read a pair's error: each lets go of its own (raised, or
            # one a later pair met; a frame of its traceback holds the pair, which held
            # the error: a cycle keeping the pair's frames alive until a full collection)
            for p in (*raised, *(of for _, _, of in pending), pair):
                if p is not None:
                    p.failed = None
            pending.clear()


# extensions of video containers VideoWriter does not write: an output named so is refused,
# not made into a folder of PNG frames that looks like a video
_OTHER_VIDEO_EXTENSIONS = frozenset(
    (
        ".3g2 .3gp .264 .265 .asf .avi .divx .dv .f4v .flv .gif .h264 .h265 .hevc .ivf .m2t "
        ".m2ts .m2v .mj2 .mjpeg .mpeg .mpg .mts .mxf .nut .ogg .ogv .rm .rmvb .ts .vob .wmv .y4m"
    ).split()
)


_IMAGE_EXTENSIONS = frozenset(".png .apng .jpg .jpeg .webp .bmp .tif .tiff .exr".split())


def _output_kind(out: Path) -> bool:
    """Whether ``-o`` names a video (True) or a folder of PNG frames (False): a video by
    every extension VideoWriter takes; a name ending in another video extension is refused."""
    from .video import _MUXERS

    ext = out.suffix.lower()
    if ext in _MUXERS:
        return True
    if ext in _OTHER_VIDEO_EXTENSIONS:
        raise ValueError(
            f"-o: cannot write {ext} video ({out}); use one of {sorted(_MUXERS)}, "
            "or a folder name for PNG frames"
        )
    if ext in _IMAGE_EXTENSIONS:  # (a folder of that name was made, holding the frames)
        raise ValueError(
            f"-o: {out} names an image; the output is a video ({', '.join(sorted(_MUXERS))}) "
            "or a folder for PNG frames"
        )
    return False


def _check_output(path: Path, video: bool) -> None:
    """Refuse an output that cannot be written, before the input is read: a folder of PNG
    frames named by an existing file (mkdir said "[Errno 17] File exists"), or a path under
    a file (mkdir said "[Errno 20] Not a directory"; the video writer called the file a
    missing folder). The subject is ``path``, the writer's name, which the CLI names ``-o``."""
    if not video and path.exists() and not path.is_dir():
        raise ValueError(
            f"path: {path} is a file; name a video file (.mp4, .mkv, ...) or a folder for "
            "PNG frames"
        )
    if video:  # (found by the writer, after a RIFE model's load and the first frame)
        from .video import _refuse_in_the_way

        _refuse_in_the_way(path, segmented=False)
    # the nearest existing folder the output goes in (a video: the folder it is written in)
    why = v.unmakeable(path if not video else path.parent)
    if why is None or (video and isinstance(why, OSError)):
        return  # (a video's own writer names an unwritable folder)
    what = "folder" if not video else "video"
    raise type(why)(f"path: cannot write the {what} {path}: {why}")


def _read_input(
    path: Path,
) -> tuple[Iterator[np.ndarray], int | None, Fraction | None, np.ndarray | None]:
    """The input's frames, their number and rate where known, and their times where
    they are not evenly spaced in time (a variable-rate video's; a folder's are even)."""
    if path.is_dir():
        from .video import _read_png, check_one_size, read_frames_dir

        files = read_frames_dir(path, arg="IN")
        check_one_size(files, "IN")
        return (_read_png(f, still=True) for f in files), len(files), None, None
    if path.is_file():
        from .video import VideoReader

        try:
            r = VideoReader(path)
        except (OSError, ValueError) as e:  # it names its parameter, path: here IN
            raise type(e)(v.renamed(str(e), {"path": "IN"})) from e
        times = None if r.evenly_spaced else r.times

        def frames() -> Iterator[np.ndarray]:
            # closed when read to the end, not by the garbage collector: a Ctrl-C there
            # printed "Exception ignored in VideoReader.__del__" and was lost (rc 0)
            with r:
                for batch in r:
                    yield from batch

        return frames(), r.frame_count, r.fps, times
    raise OSError(f"IN: no such file or folder {path}")


def _has_audio(path: Path) -> bool:
    """Whether ``path`` is a file with a sound stream."""
    if not path.is_file():
        return False
    from .video import _av_open

    try:  # (as the video: av.open took "2024-05-01T12:30:00.mp4" for a protocol's URL, and
        # the sound was dropped without a word)
        with _av_open(path) as c:
            return bool(c.streams.audio)
    except Exception:  # noqa: BLE001 - unreadable here: the frames' reader says why
        return False


def _sound_seconds(path: Path) -> float | None:
    """How long ``path``'s sound goes on after the first frame its video decodes to (the
    zero ``audio_sync`` places the sound against; the stream's start time is before it in
    a file cut mid-GOP): the sound's end from its stream's duration, or where that is not
    given (Matroska) from its last packet (demuxed, not decoded). None where unknown."""
    from .video import _av_open, _first_frame_time

    zero = _first_frame_time(path)
    if zero is None:
        return None
    try:
        with _av_open(path) as c:
            a = c.streams.audio[0]
            if a.duration and a.time_base:
                end = ((a.start_time or 0) + a.duration) * a.time_base
            else:
                end = max(
                    (p.pts + (p.duration or 0)) * p.time_base
                    for p in c.demux(a)
                    if p.pts is not None and p.size
                )
            return float(end) - zero
    except Exception:  # noqa: BLE001 - a message's detail only (no packets: ValueError)
        return None


def add_cli(sub: Any) -> None:
    """Register ``loopwave interpolate`` on an argparse subparsers object."""
    p = sub.add_parser("interpolate", help="add in-between frames (e.g. 10 -> 60 fps)")
    p.add_argument("input", metavar="IN", help="a folder of PNG frames or a video file")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="a folder (PNG frames) or a video file (.mp4, .m4v, .mov, .mkv, .webm)",
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument(
        "--factor", type=int, default=None, help="frames out per frame in (2..16; default: 6)"
    )
    rate.add_argument(
        "--to-fps",
        default=None,
        help="the output's frame rate, any (24 -> 60, 60 -> 24), in place of --factor: "
        "each output frame is the input frame at its time or an in-between",
    )
    p.add_argument(
        "--fps",
        default=None,
        help="input fps: a folder's (default 10); for a video, in place of its own rate "
        "(a variable-rate video is then not retimed by its frames' times)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--flow", action="store_true", help="optical-flow interpolation (default)")
    g.add_argument("--blend", action="store_true", help="plain cross-fade")
    g.add_argument("--model", help="a RIFE .onnx model (see `loopwave export-rife`)")
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="with --model: the scale it was exported with (default: the one it records, else 1.0)",
    )
    p.add_argument(
        "--flow-preset",
        choices=sorted(FlowInterpolator._PRESETS),
        default=None,
        help="with the flow backend: the optical flow's preset (default: medium; at 1080p "
        "a 2x interpolation runs about 3x faster with fast, 3.9x with ultrafast, their "
        "motion coarser)",
    )
    p.add_argument("--no-scene-cut", action="store_true", help="interpolate across cuts too")
    p.add_argument("--loop", action="store_true", help="also interpolate last -> first")
    p.add_argument(
        "--no-audio",
        action="store_true",
        help="leave out the input video's sound (kept by default where the output is a video)",
    )
    p.add_argument(
        "--keep-partial",
        action="store_true",
        help="on an error, keep what was written: the part of a video (NAME.partial.EXT), or "
        "the frames written to a folder",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(a: Any) -> int:
        from ._progress import Progress
        from .png import make_folder, remove_folders, write_png

        k = resolve_factor(6 if a.factor is None else a.factor)
        backend: str | Interpolator = "blend" if a.blend else "flow"
        if a.scale is not None and a.model is None:
            raise ValueError("--scale: only with --model")
        if a.flow_preset is not None:
            if a.blend or a.model is not None:
                raise ValueError(
                    "--flow-preset: only with the flow backend (not --blend or --model)"
                )
            backend = FlowInterpolator(preset=a.flow_preset)
        if a.model is not None:
            from .rife import OnnxRifeInterpolator

            backend = OnnxRifeInterpolator(a.model, scale=a.scale)
        from .video import _InputCheck, _same_file

        if not a.output:  # (Path("") is the current folder: ". already holds files")
            raise ValueError("-o: got an empty path; give a video file or a new folder")
        out, src = Path(a.output), Path(a.input)
        video_out = _output_kind(out)
        # A video is renamed over its name when complete (its NAME.partial.EXT is checked
        # against the input by writing_video): that destroys the input only where the
        # input's name is, or goes through, the output's, not where the output is another
        # name of it (a hard link or a link to it, which was refused: a review found the
        # input kept). A folder of frames is written into.
        if _InputCheck([out]).harm(src) if video_out else _same_file(out, src):
            raise ValueError("-o: the output must not be the input")
        _check_output(out, video_out)
        if not video_out and out.is_dir() and any(out.iterdir()):
            # stale frames of an earlier run would mix with these ones
            raise ValueError(f"-o: {out} already holds files; pick an empty or new folder")
        frames, n, in_fps, times = _read_input(src)
        from .video import parse_fps

        fps = parse_fps(a.fps) if a.fps is not None else (in_fps or Fraction(10))
        uneven = times is not None
        if a.fps is not None:
            times = None  # (the frames are taken as evenly spaced at the rate given)
        if a.to_fps is not None:
            out_fps = parse_fps(a.to_fps, "--to-fps")
            if times is None:  # evenly spaced at the input's rate
                # a whole multiple or fraction of it (to within 1e-5: 59.94 from 30000/1001)
                # exactly, as interpolate(to_fps=...) takes it, so the frames fall on the
                # output's times and the sound stays in step (the frames drifted off the
                # decimal rate's grid: past 1000 s every output was an in-between). Where
                # that rate is past the bounds a video takes, [1/10000, 1000], the rate
                # stays as given and _even_times places the frames on its grid: the
                # picture's length then differs from the sound's by under 1e-5 (36 ms an
                # hour); elsewhere these are the frames' own times, i / fps
                out_fps = _snapped_rate(fps, out_fps)
                times = _even_times(n or 0, fps, out_fps)
        else:
            # a variable rate: the factor times its typical rate (its mean, a screen
            # recording's pauses and all, gave 7.5 fps for a 60 fps recording at --factor 2)
            base = fps if times is None else _typical_rate(times)
            out_fps = base * k
            if (video_out or times is not None) and out_fps > 1000:
                rate = "--fps" if a.fps is not None else "the input's rate"
                raise ValueError(f"{rate} x --factor: at most 1000 fps out; got {base} x {k}")
        # the first frame before any output is made: an input with no decodable frame
        # (a cut-off file) is an error about the input, and leaves nothing behind
        first = next(frames, None)
        if first is None:
            raise ValueError(f"IN: {src} has no decodable video frames")
        frames = itertools.chain([first], frames)
        # with --loop, n > 1 frames give n * k (the last is interpolated toward the first);
        # one frame stays one frame
        total = None if not n else (n * k if a.loop and n > 1 else (n - 1) * k + 1)
        opts: dict[str, Any] = {"backend": backend, "scene_cut": not a.no_scene_cut, "loop": a.loop}
        if times is not None:
            # --to-fps, or a variable rate (a phone's clip, a screen recording): the frames
            # are placed by their times on an even grid at the output's rate, so the picture
            # stays in step with the sound (a variable rate's frames evenly spaced as they
            # came drifted: 0.5 s in a test)
            total = _Grid(times, float(out_fps), a.loop, None).count
            if uneven and a.fps is None:  # (with --fps, the times are even ones)
                print(
                    f"note: the input's frames are not evenly spaced in time (a variable "
                    f"frame rate); they are retimed by their timestamps to "
                    f"{float(out_fps):.6g} fps",
                    file=sys.stderr,
                )
            stream = retime(frames, times, fps=out_fps, **opts)
        else:
            stream = interpolate(frames, factor=k, **opts)
        count = 0
        with Progress(total or 0, "interpolate", enabled=not a.quiet and bool(total)) as bar:
            if video_out:
                from .video import _saying_why_kept, writing_video

                # the input's sound, in step: frame i of the input plays at i / fps in both
                sound = src if not a.no_audio and _has_audio(src) else None
                if sound is not None and uneven and a.fps is not None:
                    print(
                        f"note: --fps {a.fps.strip()}: the input's frames, not evenly spaced "
                        "in time (a "
                        "variable frame rate), are taken as evenly spaced at that rate, so the "
                        "picture drifts against the sound in places (without --fps they are "
                        "retimed)",
                        file=sys.stderr,
                    )
                # the frames taken as evenly spaced at --fps last n / fps, the sound the
                # input's span: its mean rate, n / span, is the one to compare (only with
                # --fps: without it, a variable rate is retimed)
                other = a.fps is not None and in_fps and abs(fps / in_fps - 1) > Fraction(1, 200)
                if sound is not None and in_fps and other:
                    # which ends first, from the lengths where known (the input's sound
                    # may be longer or shorter than its picture), else from the speed
                    heard, step = _sound_seconds(src), 1 / float(out_fps)
                    seen = total * step if total else None
                    if heard is None or seen is None:
                        tail = "is cut to" if fps > in_fps else "ends before"
                    else:
                        tail = (
                            "is cut to" if heard > seen + step
                            else "ends before" if heard < seen - step
                            else "ends with"
                        )  # fmt: skip
                    print(
                        f"note: --fps {a.fps.strip()} is not the input's rate "
                        f"({float(in_fps):.6g} fps{' on average' if uneven else ''}): the video "
                        f"plays at another speed than its sound, which {tail} the video's end",
                        file=sys.stderr,
                    )
                with writing_video(
                    out,
                    inputs=[src],
                    fps=out_fps,
                    keep_partial=a.keep_partial,
                    audio=sound,
                    audio_sync=sound is not None,
                ) as w:
                    with _saying_why_kept(bar, w, a.keep_partial):
                        for f in stream:
                            w.write(f)
                            count += 1
                            bar.update()
                        w.close()  # (here: a Ctrl-C while it ends the file is said too)
            else:
                made = make_folder(out)  # (removed again on failure)
                try:
                    for f in stream:
                        write_png(out / f"{count:06d}.png", f)
                        count += 1
                        bar.update()
                except BaseException:
                    # the frames written so far look like a whole sequence: removed, as a
                    # video's partial file is, unless --keep-partial (the folder was empty)
                    if not a.keep_partial:
                        # (and the one being written: a Ctrl-C in write_png after its
                        # rename left it, and the folder, which a run again refused)
                        for i in range(count + 1):
                            (out / f"{i:06d}.png").unlink(missing_ok=True)
                        remove_folders(made)  # (a parent made here too was left behind)
                    raise
        print(f"wrote {count} frame{'s' if count != 1 else ''} to {out}")
        return 0

    p.set_defaults(func=run)
