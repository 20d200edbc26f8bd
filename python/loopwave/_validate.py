"""Input checks shared by the public API: clear errors that name the argument."""

from __future__ import annotations

import contextlib
import decimal
import math
import numbers
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _native

FRAME_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))
FRAMES_FORM = "a numpy.ndarray of shape (H, W, 3) or (N, H, W, 3), dtype uint8 or float32"


def _masked(x: Any) -> bool:
    """Whether ``x`` is a masked array. Without importing ``numpy.ma`` (lazy in NumPy 2):
    where it is not imported, no masked array exists; importing it on the first call
    held the import lock, and a child forked meanwhile by another thread hung on it.
    While another thread imports it, it is in ``sys.modules`` without its classes yet
    (an AttributeError failed a render's frame saver): then no masked array exists yet
    either."""
    cls = getattr(sys.modules.get("numpy.ma"), "MaskedArray", None)
    return cls is not None and isinstance(x, cls)


def _native_dtype(x: np.ndarray) -> np.dtype[Any]:
    # big-endian float32 is still float32: taken as native instead of refused
    return x.dtype if x.dtype.isnative else x.dtype.newbyteorder("=")


def frame_shape(x: np.ndarray, arg: str, form: str, channels: str = "RGB") -> None:
    """Refuse ``x`` unless it is shaped as one frame or a batch of three ``channels``."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{arg} must be {form}; got {x.ndim} dimensions, shape {x.shape}")
    if x.shape[-1] != 3:
        raise ValueError(
            f"{arg} must have 3 channels ({channels}) in the last axis; got shape {x.shape}"
        )
    if x.size == 0:
        raise ValueError(f"{arg} must not be empty; got shape {x.shape}")


def frames(x: Any, arg: str, form: str = FRAMES_FORM) -> tuple[np.ndarray, bool]:
    """Check a frame or batch; return it C-contiguous 4-D, and whether it was one frame.
    ``form`` is how errors describe what is expected."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{arg} must be {form}; got {type(x).__name__}")
    if _masked(x):  # its mask would be ignored
        raise TypeError(
            f"{arg} must be {form}, not a masked array (its mask would be ignored); "
            "pass .filled(value) or .data"
        )
    # checked before a big-endian array is converted: one that is refused is not copied
    # (a broadcast one of 2**40 frames raised MemoryError for its copy, not its dtype)
    dtype = _native_dtype(x)
    if dtype not in FRAME_DTYPES:
        raise TypeError(
            f"{arg} must have dtype uint8 or float32 (values in [0, 1]); got {dtype}"
            " (convert with .astype(np.float32) or skimage.util.img_as_ubyte)"
        )
    frame_shape(x, arg, form)
    single = x.ndim == 3
    # native byte order, C order and aligned (an array at an odd byte offset of a buffer
    # is copied)
    flags = x.flags
    if x.dtype == dtype and flags.c_contiguous and flags.aligned:  # (the kernel claims it)
        return (x[None] if single else x), single
    try:
        with reading(x, arg):
            x = x.astype(dtype, copy=False)
            return np.require(x[None] if single else x, requirements=("C", "A")), single
    except MemoryError:  # a copy of a huge (broadcast) view
        raise MemoryError(
            f"{arg}: no memory for a contiguous copy of shape {x.shape} ({x.nbytes} bytes)"
        ) from None


def reading(x: np.ndarray, arg: str) -> Any:
    """A context manager holding ``x`` claimed for reading while it is copied for a
    kernel (a ValueError naming ``arg`` where another call is writing it, as the kernel
    gives for an array it reads itself). From a review: the kernel's claim is on the
    copy, so a strided view of an array another call was writing through ``out=`` was
    copied, torn, and used without a word."""
    return _native._reading(x, arg)


def same_dtype(x: np.ndarray, arg: str, like: np.ndarray, like_arg: str) -> None:
    if x.dtype != like.dtype:
        raise TypeError(f"{arg} must have the dtype of {like_arg} ({like.dtype}); got {x.dtype}")


def one_or_per_frame(ref: np.ndarray, arg: str, n: int) -> None:
    if ref.shape[0] not in (1, n):
        raise ValueError(
            f"{arg} must be one frame (H, W, 3) or one per frame ({n}, H, W, 3); "
            f"got {ref.shape[0]} frames"
        )


def check_opset(v: Any, low: int = 14) -> None:
    """An ONNX opset the exporters take (torch's TorchScript exporter: 14..21; an
    exporter whose graph needs a later operator sets ``low``)."""
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= 21:
        raise ValueError(f"opset must be an int in {low}..21; got {v!r:.40}")


def unmakeable(path: Path) -> OSError | ValueError | None:
    """Why the folder ``path`` cannot be made (or written into, if it exists), or None:
    the nearest of it and its parents that exists is a file or a symlink to nothing (an
    unmounted drive: it passed as missing, and mkdir then said only "[Errno 17] File
    exists"), a ValueError; or it is not writable, an OSError. Callers raise it with
    their own subject, as ``type(e)(f"...: {e}")``."""
    have = path
    while not os.path.lexists(have) and have != have.parent:
        have = have.parent
    if have.is_symlink() and not have.exists():
        # (the target from the link's folder: a relative one was printed bare)
        to = os.path.join(have.parent, os.readlink(have))
        return ValueError(f"{have} is a symlink to {to}, which does not exist")
    if not have.is_dir():
        return ValueError(f"{have} is a file, not a folder")
    if not os.access(have, os.W_OK | os.X_OK):
        return OSError(f"{have} is not writable")
    return None


def not_a_file(path: str | os.PathLike[str]) -> str:
    """Why ``path``, which is not a regular file, cannot be read as one: empty, a folder,
    or not there (a folder was called "no such file", and "" the current folder "." )."""
    if not os.fspath(path):
        return "got an empty path"
    if Path(path).is_dir():
        return f"{path} is a folder, not a file"
    return f"no such file {path}"


def whole(v: Any, arg: str, low: int, high: int) -> int:
    """An int or numpy integer in ``low..high`` as an int (not a bool, nor an
    ``np.timedelta64``, which numpy counts among its integers but is a duration)."""
    if isinstance(v, (bool, np.bool_, np.timedelta64)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{arg} must be an int; got {v!r:.60}")
    if not low <= v <= high:
        raise ValueError(f"{arg} must be in {low}..{high}; got {v!r}")
    return int(v)


def folder(v: Any, arg: str) -> Path:
    """A folder's path (``str`` or ``os.PathLike``, not empty: ``Path("")`` is the
    current directory, which a caller who passed an empty string did not ask for)."""
    if not isinstance(v, (str, os.PathLike)):
        raise TypeError(f"{arg} must be a folder's path (str or os.PathLike); got {v!r:.60}")
    path = os.fspath(v)
    if not isinstance(path, str):  # a PathLike of bytes
        raise TypeError(f"{arg} must be a folder's path as text; got {path!r:.60}")
    if not path:
        raise ValueError(f"{arg} must name a folder; got an empty path")
    return Path(path)


def _is_real(v: Any) -> bool:
    # numbers.Real: also Fraction (VideoReader.fps is one); Decimal is not registered there
    # (np.timedelta64 is a numpy integer, and a duration)
    return isinstance(
        v, (numbers.Real, decimal.Decimal, np.integer, np.floating)
    ) and not isinstance(v, (bool, np.bool_, np.timedelta64))


def to_float(v: Any) -> float:
    """A real number (:func:`_is_real`) as a float: one beyond float64 (a huge int or
    Fraction, a long double) is an infinity and a signalling NaN a NaN, so the caller's
    finiteness or range check refuses it by name (not OverflowError, InvalidOperation,
    or a RuntimeWarning first)."""
    try:
        with np.errstate(over="raise"):
            return float(v)
    except (OverflowError, FloatingPointError):
        return math.inf if v > 0 else -math.inf
    except (ValueError, ArithmeticError):  # Decimal('sNaN')
        return math.nan


def _holds_bool(x: list[Any] | tuple[Any, ...]) -> bool:
    """Whether a bool is among the items of nested lists and tuples (numpy turns
    ``[[True, 0.5]]`` into floats, so its dtype cannot tell)."""
    todo = [x]
    while todo:
        for v in todo.pop():
            if isinstance(v, (bool, np.bool_)):
                return True
            if isinstance(v, np.ndarray) and v.dtype == np.bool_:  # [np.array(True), 2.0]
                return True
            if isinstance(v, (list, tuple)):
                todo.append(v)
    return False


def real_array(x: Any, arg: str, form: str) -> np.ndarray:
    """``x`` as a float64 array of real numbers: ``TypeError`` naming ``arg`` for
    anything else (None, text, bools, complex, objects), ``ValueError`` for a Python
    int beyond float64 (not OverflowError). Shape and finiteness are the caller's."""
    # bytes-like: raw bytes, not numbers (bytearray and memoryview read as small ints)
    if x is None or isinstance(x, (str, bytes, bytearray, memoryview, bool, np.bool_)):
        raise TypeError(f"{arg} must be {form}; got {x!r:.60}")
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):  # ragged nesting
        raise TypeError(f"{arg} must be {form}; got {type(x).__name__}") from None
    if np.iscomplexobj(raw) or _masked(x):
        raise TypeError(f"{arg} must be {form}; got {x!r:.60}")
    if isinstance(x, (list, tuple)) and _holds_bool(x):
        raise TypeError(f"{arg} must be {form}; got a bool among the numbers")
    if raw.dtype == object:
        if not all(_is_real(v) for v in raw.reshape(-1)):
            raise TypeError(f"{arg} must be {form}; got items that are not real numbers")
    elif raw.dtype.kind not in "iuf":  # text, bools, dates, timedeltas, structured
        raise TypeError(f"{arg} must be {form}; got dtype {raw.dtype}")
    try:
        # a long double beyond float64 overflowed with a RuntimeWarning (an exception
        # under -W error) and became inf
        with np.errstate(over="raise"):
            return raw.astype(np.float64)
    except (OverflowError, FloatingPointError):  # a Python int or long double beyond float64
        raise ValueError(f"{arg} must be finite; got a number beyond float64's range") from None
    except (ValueError, ArithmeticError) as e:  # Decimal('sNaN'): InvalidOperation
        raise ValueError(f"{arg} must be {form}; got {x!r:.60} ({e})") from None


def per_frame_values(
    x: Any, arg: str, n: int, *, low: float, high: float, low_open: bool
) -> np.ndarray:
    """A scalar or one value per frame, finite and within bounds, as float64."""
    per_frame = (
        f"{n} numbers (one per frame)" if n != 1 else "a sequence of 1 number (one per frame)"
    )
    arr = real_array(x, arg, f"a number or {per_frame}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, n)):
        raise ValueError(f"{arg} must be a number or {per_frame}; got shape {arr.shape}")
    arr = np.ascontiguousarray(arr.reshape(-1))
    bad = ~np.isfinite(arr) | (arr > high) | ((arr <= low) if low_open else (arr < low))
    if bad.any():
        lo = "(" if low_open else "["
        hi = "]" if np.isfinite(high) else ")"
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{arg} must be finite and in {lo}{low}, {high}{hi}; got {_given(x, i, arr[i])}"
        )
    return arr


def _given(x: Any, i: int, value: np.float64) -> str:
    """Value ``i`` of ``x`` for a message: as float64 has it, unless that is 0 where the
    value given is not (from a review: a gamma of ``Decimal("1e-400")`` was "got 0.0"),
    then to six digits, exponent and all ("got 1e-400 (0 in float64)")."""
    if value == 0:
        with contextlib.suppress(TypeError, ValueError, ArithmeticError):
            given = np.asarray(x, dtype=object).reshape(-1)
            original = given[i if given.size > 1 else 0]
            if original != 0:
                if isinstance(original, numbers.Rational):  # (a Fraction's text is long)
                    top, bottom = int(original.numerator), int(original.denominator)
                    exact = decimal.Decimal(top) / decimal.Decimal(bottom)
                else:
                    exact = decimal.Decimal(str(original))
                return f"{exact:.6g} (0 in float64)"
    return f"{value}"


def frame_list(x: Any, arg: str) -> np.ndarray:
    """A 4-D array or a non-empty sequence of same-shape frames, as a 4-D array."""
    if isinstance(x, np.ndarray):
        arr, single = frames(x, arg)
        if single:
            raise ValueError(
                f"{arg} must hold several frames (N, H, W, 3); got one frame {x.shape}"
            )
        return arr
    if isinstance(x, memoryview):  # a Sequence too, but of sub-views numpy cannot take
        return frame_list(np.asarray(x), arg)
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)) and len(x) > 0:
        items = [frames(f, f"{arg}[{i}]") for i, f in enumerate(x)]
        for i, (f, single) in enumerate(items):
            if not single:  # a batch among frames was averaged in as several frames
                raise ValueError(
                    f"{arg}[{i}] must be one frame (H, W, 3) like the others; got shape {f.shape}"
                )
        first = items[0][0]
        for i, (f, _) in enumerate(items):
            # a dtype apart is a TypeError, as in every kernel that takes two arrays
            if f.dtype != first.dtype:
                raise TypeError(
                    f"{arg}[{i}] must have the dtype of {arg}[0] ({first.dtype}); got {f.dtype}"
                )
            if f.shape[1:] != first.shape[1:]:
                raise ValueError(
                    f"{arg}[{i}] must have the shape of {arg}[0] {first.shape[1:]}; "
                    f"got {f.shape[1:]}"
                )
        # each claimed while it is copied, as frames() claims the arrays it copies
        with contextlib.ExitStack() as claims:
            for i, (f, _) in enumerate(items):
                claims.enter_context(reading(f, f"{arg}[{i}]"))
            return np.concatenate([f for f, _ in items])
    raise TypeError(
        f"{arg} must be an (N, H, W, 3) array or a non-empty list of frames; got {x!r:.80}"
    )


def error_text(e: BaseException) -> str:
    """``e``'s message for a sentence of loopwave's ("encoding failed: ..."): an OSError
    of an errno and words alone (no file name, nothing its class adds) without its
    "[Errno 21] "."""
    text = str(e)
    if isinstance(e, OSError) and e.strerror and text == f"[Errno {e.errno}] {e.strerror}":
        return str(e.strerror)  # (not where the class adds to it: PyAV's error log)
    return text


def renamed(message: str, names: Mapping[str, str]) -> str:
    """``message`` with the names that make up its subject replaced as ``names`` says: a
    parameter by what gave its value, e.g. ``{"factor": "--factor"}`` turns "factor must be
    in 2..16; got 40" into "--factor must be in 2..16; got 40". The subject is the name the
    message begins with, or names joined by " x " ("frames x size: ..."); a name that goes
    on ("frames[3]", "render.frames" for "render", a path "input/clip.mov") or one elsewhere
    is left as it is. An OSError's "[Errno N] " before a subject is dropped with it."""
    if not names:
        return message
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    # not a name that goes on: "frames[3]", "render.frames", a path "input/clip.mov"
    one = rf"(?:{alternatives})(?![\w.\[/\\])"
    # an OSError's "[Errno 21] " before the subject is left out where the subject leads
    body = re.sub(r"^\[Errno -?\d+\] ", "", message)
    subject = re.match(f"{one}(?: x {one})*", body)
    if subject is None:
        return message
    return re.sub(one, lambda m: names[m[0]], subject[0]) + body[subject.end() :]
