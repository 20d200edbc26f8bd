"""The colour plan: keyframe targets that keep a long loopback run from drifting.

Before the loop, keyframes are rendered every ``every`` frames (and at the last
frame) from the init image at a high denoise, so each is one feedback step deep
and carries no drift; each is rendered ``renders`` times and averaged
(:func:`loopwave.mean_frames`) to iron out flukes. Frame ``i`` is then
corrected toward the lerp of its two nearest keyframes, weighted by distance
(the seed's ``get_cc_target``): between keyframes 20 and 40, frame 35 takes 25%
of keyframe 20 and 75% of keyframe 40.

A plan is saved in the run directory (``plan/NNNNNN.png`` plus ``plan.json``)
and loaded on resume instead of being rendered again; a render builds it with
``keep=RUN_DIR/plan``, so each keyframe is on disk as soon as it is made and an
interrupted build goes on from there. A uint8 plan built with ``keep``, or loaded,
reads its keyframes from those files as targets need them and holds the last three
(:class:`Keyframes`): its memory is that of three images however many keyframes it
has, as a long render's memory stays flat however long the video is. Such a plan
needs its files for as long as it is used, and refuses one changed since it was
made; its keyframes are read-only arrays.

Example
-------
>>> import numpy as np
>>> plan = ColourPlan.build(lambda i, v: np.full((8, 8, 3), i, np.uint8), frames=41, every=20)
>>> int(plan.target(35)[0, 0, 0])  # 0.25 * 20 + 0.75 * 40
35
"""

from __future__ import annotations

import bisect
import contextlib
import io
import json
import os
import stat
import threading
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as _v
from .color import color_correct, lerp_frames, mean_frames
from .png import (
    make_folder,
    read_png,
    replacing,
    sync_folder,
    whole_png,
    write_png,
)

__all__ = ["ColourPlan", "Keyframes", "keyframe_indices"]

RenderFn = Callable[[int, int], np.ndarray]  # (frame index, variant) -> uint8 RGB frame


def keyframe_indices(frames: int, every: int) -> list[int]:
    """Keyframes every ``every`` frames from 0, and the last frame (``frames`` up to
    :data:`MAX_FRAME`)."""
    # at most MAX_FRAME: 10**10 frames built a set of 10**10 indices first
    frames, every = (
        _v.whole(x, name, 1, MAX_FRAME) for name, x in (("frames", frames), ("every", every))
    )
    return sorted({*range(0, frames, every), frames - 1})


#: Keyframe indices run below this (six-digit file names, and far beyond any render).
MAX_FRAME = 10**9


class Keyframes(Mapping[int, np.ndarray]):
    """A plan's keyframes in their files (``plan/NNNNNN.png`` or ``.npy``), read when asked
    for; the last :attr:`HELD` read are kept, read-only, so a render going through its
    frames in order reads each keyframe once and holds three images at most.

    A file changed since the plan was made (rewritten, or gone) is an ``OSError``
    naming it when it is next read: each file's size and modification time are
    recorded when the plan is made. Pickled or copied, the mapping takes its paths
    and records, not the images held."""

    #: Keyframes kept in memory: a target between two keyframes needs both, and a third
    #: spares a re-read when targets step back across one.
    HELD = 3

    def __init__(
        self,
        paths: dict[int, Path],
        read: Callable[[Path], np.ndarray],
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
    ) -> None:
        # absolute: a later chdir must not point the plan at other files
        self.paths = {k: Path(p).resolve() for k, p in sorted(paths.items())}
        self._read, self._shape, self._dtype = read, shape, dtype
        self._stamps = {k: _stamp(p) for k, p in self.paths.items()}
        self._start()

    def _start(self) -> None:
        self._held: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the held images, for plans shared between threads

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_held"], state["_lock"]  # a lock cannot be pickled; images not needed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start()

    def __getitem__(self, k: int) -> np.ndarray:
        with self._lock:
            img = self._held.get(k)
            if img is not None:
                self._held.move_to_end(k)
                return img
        path = self.paths[k]  # KeyError for a frame that is not a keyframe
        changed = f"{path}: changed since the colour plan was made"
        try:
            same = _stamp(path) == self._stamps[k]
        except OSError:
            raise OSError(f"{changed} (it is gone)") from None
        if not same:  # another plan saved over it, or an edit
            raise OSError(f"{changed}; load the plan again (ColourPlan.load)")
        img = self._read(path)
        if img.shape != self._shape or img.dtype != self._dtype:
            raise OSError(
                f"{changed} (now {img.dtype} {img.shape}, the plan's keyframes are "
                f"{self._dtype} {self._shape})"
            )
        img.flags.writeable = False  # a caller's edit must not reach the next frame's target
        with self._lock:
            self._held[k] = img
            while len(self._held) > self.HELD:
                self._held.popitem(last=False)
        return img

    def __contains__(self, k: object) -> bool:
        return k in self.paths  # Mapping's default would read the image

    def __iter__(self) -> Iterator[int]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"Keyframes({len(self)} in {Path(next(iter(self.paths.values()))).parent})"


class ColourPlan:
    """Keyframe targets by frame index; :meth:`target` and :meth:`correct` per frame.

    ``keyframes`` maps each keyframe's frame index to its image: the dict given, or, for
    a plan built with ``keep`` or loaded, a :class:`Keyframes` that reads them from
    their files."""

    keyframes: Mapping[int, np.ndarray]

    def __init__(self, keyframes: Mapping[int, np.ndarray]) -> None:
        if not isinstance(keyframes, Mapping):
            raise TypeError(f"keyframes must be a dict {{frame: image}}; got {keyframes!r:.60}")
        keyframes = dict(keyframes)  # (another plan's Keyframes: each read, all held)
        if not keyframes:
            raise ValueError("keyframes must not be empty")
        check = _KeyframeCheck()
        for k, img in keyframes.items():
            check(k, img)
        # plain ints: numpy integers cannot go into plan.json (save() failed after
        # writing the PNGs, leaving an older plan.json beside the new images); each image
        # the plan's own, read-only, as a plan in files hands them out: a caller's later
        # edit of an array it passed (or of a target it was given) changed every target
        # after it; an array read-only down to its memory (build's averages) is kept
        self._set(dict(sorted((int(k), _frozen(img)) for k, img in keyframes.items())))

    def _set(self, keyframes: Mapping[int, np.ndarray]) -> None:
        self.keyframes = keyframes
        self._keys = list(keyframes)

    @classmethod
    def _in_files(
        cls,
        paths: dict[int, Path],
        read: Callable[[Path], np.ndarray],
        check: _KeyframeCheck,
    ) -> ColourPlan:
        """A plan over keyframe files that ``check`` has seen, each read when needed."""
        assert check.shape is not None and check.dtype is not None
        plan = cls.__new__(cls)
        plan._set(Keyframes(paths, read, check.shape, check.dtype))
        return plan

    @classmethod
    def build(
        cls,
        render: RenderFn,
        *,
        frames: int,
        every: int,
        renders: int = 4,
        keep: str | os.PathLike[str] | None = None,
    ) -> ColourPlan:
        """Render every keyframe ``renders`` times with ``render(index, variant)`` and average.

        With ``keep`` (a folder: the run's ``plan/``), each ``uint8`` keyframe is written
        there as ``NNNNNN.png`` as soon as it is made, and one already there, left by a
        build that was interrupted, is read instead of rendered again: a plan of hundreds
        of renders is not started over after a Ctrl-C. Such a plan then reads its
        keyframes from those files when targets need them (:class:`Keyframes`), so it
        holds a few images, not all of them: keep the folder while the plan is used."""
        # as frames and every: numpy integers too (np.timedelta64 is one, a duration)
        if isinstance(renders, (bool, np.bool_, np.timedelta64)) or not isinstance(
            renders, (int, np.integer)
        ):
            raise TypeError(f"renders must be an int; got {renders!r:.60}")
        if renders < 1:
            raise ValueError(f"renders must be an int >= 1; got {renders!r}")
        renders = int(renders)
        if not callable(render):
            raise TypeError(
                f"render must be a function (index, variant) -> image; got {render!r:.60}"
            )
        keep = None if keep is None else _v.folder(keep, "keep")
        keys = keyframe_indices(frames, every)
        made: dict[int, np.ndarray] = {}
        paths: dict[int, Path] = {}
        check = _KeyframeCheck()
        for k in keys:
            path = None if keep is None else keep / f"{k:06d}.png"
            # complete (write_png renames into place, durably), unless a power cut came
            # before the disk wrote a file of a run made before files were synced
            kept = path if path is not None and path.exists() else None
            why = None if kept is None else whole_png(kept, crc=True)
            if why is not None:
                warnings.warn(
                    f"{path}: a kept keyframe is damaged ({why}), as a power cut leaves a "
                    "file the disk had not written; it is rendered again",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if kept is not None and why is None:
                img = _read_png(kept)
            else:
                made_k: list[np.ndarray] = []
                for v in range(renders):
                    made_k.append(_rendered(render(k, v), k, v, made_k[0] if made_k else None))
                img = mean_frames(made_k)
                # memory of its own (a view of mean_frames' batch): the plan keeps it, uncopied
                for a in (img.base, img):
                    if isinstance(a, np.ndarray):
                        a.flags.writeable = False
                if path is not None and img.dtype == np.uint8:
                    make_folder(path.parent)
                    write_png(path, img, durable=True)
            check(k, img)
            if path is not None and img.dtype == np.uint8:
                paths[k] = path  # on disk: read again when a target needs it
            else:
                made[k] = img
        if not made:
            return cls._in_files(paths, _read_png, check)
        return cls(made)

    @staticmethod
    def kept(keep: str | os.PathLike[str], *, frames: int, every: int) -> int:
        """How many of the keyframes :meth:`build` with ``keep`` would read, not render."""
        d = _v.folder(keep, "keep")
        return sum(
            whole_png(d / f"{k:06d}.png", crc=True) is None for k in keyframe_indices(frames, every)
        )

    def target(self, i: int) -> np.ndarray:
        """The target of frame ``i``: its keyframe, or the lerp of the two around it. A
        keyframe is a read-only array: copy it to edit it. Frames past the last keyframe
        take it (a plan's last keyframe is its last frame, so only frames beyond the plan
        do); a negative ``i`` is refused."""
        if isinstance(i, (bool, np.bool_, np.timedelta64)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"i must be a frame index (int); got {i!r}")
        if i < 0:
            raise ValueError(f"i must be a frame index >= 0; got {i!r}")
        keys = self._keys
        at = bisect.bisect_left(keys, i)  # keys[at - 1] < i <= keys[at]
        if at < len(keys) and keys[at] == i:
            return self.keyframes[i]
        if at == 0:
            return self.keyframes[keys[0]]
        if at == len(keys):
            return self.keyframes[keys[-1]]
        a, b = keys[at - 1], keys[at]
        return lerp_frames(self.keyframes[a], self.keyframes[b], (i - a) / (b - a))

    def correct(self, frame: np.ndarray, i: int, *, gamma: bool = True) -> np.ndarray:
        """:func:`loopwave.color_correct` of frame ``i`` toward its target."""
        return color_correct(frame, self.target(i), gamma=gamma)

    def save(self, run_dir: str | Path) -> Path:
        """Write the keyframes into ``RUN_DIR/plan/`` (``uint8`` as PNG, ``float32`` as
        ``.npy``, exact) and their index into ``RUN_DIR/plan.json``, last (with each
        ``.npy`` file's CRC-32, which :meth:`load` checks)."""
        run_dir = _v.folder(run_dir, "run_dir")
        d = run_dir / "plan"
        make_folder(d)
        floats = self.keyframes[self._keys[0]].dtype == np.float32
        in_files = self.keyframes.paths if isinstance(self.keyframes, Keyframes) else {}
        crcs: dict[str, int] = {}  # of each .npy file (a PNG's chunks carry their own)
        dests = {k: d / f"{k:06d}{'.npy' if floats else '.png'}" for k in self._keys}
        # the plan's own files (a build with keep=RUN_DIR/plan, a plan loaded from here)
        own = {k for k in self._keys if k in in_files and _same_file(in_files[k], dests[k])}
        index_path = run_dir / "plan.json"
        if index_path.exists() and len(own) < len(self._keys):
            # the old index goes first (on disk before any keyframe is replaced): a save
            # over another plan that failed part way (a full disk) left the old index
            # naming a mix of both plans' keyframes, and load() took it
            index_path.unlink()
            sync_folder(run_dir)
        for k in self._keys:
            dest = dests[k]
            if k in own:
                if floats:  # read and checked when it was loaded
                    crcs[dest.stem] = zlib.crc32(dest.read_bytes())
                continue
            img = self.keyframes[k]
            if floats:
                buf = io.BytesIO()
                np.save(buf, img, allow_pickle=False)
                crcs[dest.stem] = zlib.crc32(buf.getbuffer())
                with replacing(dest, d / f"{k:06d}.npy.tmp") as f:
                    f.write(buf.getbuffer())
            else:
                write_png(dest, img, durable=True)
        sync_folder(d)
        index: dict[str, Any] = {"keyframes": self._keys}
        if floats:
            index["dtype"] = "float32"
            index["crc32"] = crcs
        _atomic_json(run_dir / "plan.json", index)
        return d

    @classmethod
    def load(cls, run_dir: str | Path) -> ColourPlan:
        """Load a saved plan (its PNGs read with Pillow, else PyAV, else loopwave's own
        reader of the 8-bit RGB PNGs it writes). Every keyframe is
        read and checked here, one at a time; the plan then reads each again from its file
        when a target needs it (:class:`Keyframes`)."""
        run_dir = _v.folder(run_dir, "run_dir")
        index = run_dir / "plan.json"
        if not index.is_file():
            raise OSError(f"run_dir: no colour plan in {run_dir} (plan.json missing)")
        data = _read_json(index)
        frames = data.get("keyframes") if isinstance(data, dict) else None
        # a list of whole numbers, nothing else ("010" read as [0, 1 0], 10.7 as 10,
        # true as 1; 1e400 raised OverflowError)
        if (
            not isinstance(frames, list)
            or not frames
            or not all(type(k) is int and 0 <= k < 10**9 for k in frames)
        ):
            raise ValueError(
                f'{index}: expected {{"keyframes": [frame, ...]}} with frames whole numbers '
                f">= 0; got {frames!r:.80}"
            )
        dtype = data.get("dtype", "uint8")
        if dtype not in ("uint8", "float32"):
            raise ValueError(f'{index}: "dtype" must be "uint8" or "float32"; got {dtype!r:.40}')
        ext = ".png" if dtype == "uint8" else ".npy"
        read = _read_png if dtype == "uint8" else _npy_reader(data.get("crc32"), index)
        # each image read and checked now, one at a time, then read again when needed
        paths = {k: run_dir / "plan" / f"{k:06d}{ext}" for k in sorted(set(frames))}
        check = _KeyframeCheck()
        try:
            for k, path in paths.items():
                check(k, read(path))
        except ValueError as e:  # PNGs of several sizes
            raise ValueError(f"{index}: the plan's keyframe images do not match ({e})") from e
        return cls._in_files(paths, read, check)


class _KeyframeCheck:
    """Checks keyframes one at a time, each against the first seen: the same shape, all
    uint8 or all float32, not empty, finite (checked when the plan is made rather than
    when a target is lerped, where the error named `a`/`b`)."""

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype[Any] | None = None

    def __call__(self, k: object, img: object) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"keyframes: frame {k!r} is not an int")
        if not 0 <= k < MAX_FRAME:  # what save() names and load() reads back
            raise ValueError(f"keyframes: frame {k} is not in 0..{MAX_FRAME - 1}")
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(f"keyframes[{k}] must be an (H, W, 3) numpy array; got {img!r:.60}")
        if self.shape is None or self.dtype is None:
            self.shape, self.dtype = img.shape, img.dtype
        if img.shape != self.shape:
            raise ValueError(
                f"keyframes must share one shape; got {sorted({self.shape, img.shape})}"
            )
        dtypes = sorted({str(self.dtype), str(img.dtype)})
        if dtypes not in (["uint8"], ["float32"]):
            raise TypeError(f"keyframes must all be uint8 or all float32; got {dtypes}")
        if img.size == 0:
            raise ValueError(f"keyframes must not be empty images; got shape {img.shape}")
        if img.dtype == np.float32 and not np.isfinite(img).all():
            raise ValueError(f"keyframes[{k}] holds NaN or infinity")


def _frozen(img: np.ndarray) -> np.ndarray:
    """``img`` read-only, and a copy unless it and every array down to its memory's
    owner are read-only already (then no writeable array reaches that memory, short of a
    caller setting ``writeable`` back on)."""
    a: object = img
    while isinstance(a, np.ndarray) and not a.flags.writeable:
        if a.flags.owndata:
            return img
        a = a.base
    img = np.array(img, copy=True)
    img.flags.writeable = False
    return img


def _rendered(img: object, k: int, variant: int, first: np.ndarray | None) -> np.ndarray:
    """A render of keyframe ``k``, checked (against the keyframe's ``first`` render, if
    any): an error names the call that made it, not :func:`mean_frames`' argument
    (``frames`` is build's frame count)."""
    call = f"render({k}, {variant})"
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{call} must return an (H, W, 3) numpy array; got {img!r:.60}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{call} must return one (H, W, 3) image; got shape {img.shape}")
    if img.dtype not in (np.uint8, np.float32):
        raise TypeError(f"{call} must return a uint8 or float32 image; got {img.dtype}")
    if first is not None and (img.shape, img.dtype) != (first.shape, first.dtype):
        raise ValueError(
            f"{call} must return an image like render({k}, 0)'s ({first.dtype} "
            f"{first.shape}); got {img.dtype} {img.shape}"
        )
    if img.dtype == np.float32 and not np.isfinite(img).all():
        raise ValueError(f"{call} returned NaN or infinity")
    return img


def _stamp(path: Path) -> tuple[int, int]:
    """What tells a keyframe file from one written over it: its size and modification
    time (nanoseconds)."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either missing
        return False


# the run folder's JSON files (settings, state, the plan's index), shared with the renderer


def _atomic_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON whole or not at all (a temporary file, then rename), on disk
    before this returns (:func:`loopwave.png.sync_file`): a run's settings, state and plan
    index must survive a power cut as the frames they name do."""
    with replacing(path, path.with_name(path.name + ".tmp"), "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True))
    sync_folder(path.parent)


def _read_json(path: Path) -> Any:
    """A run file's JSON; a damaged one is a ValueError naming the file, as is a key
    given twice (as in a settings file: a hand-edited run's settings.json took the last)."""
    from .settings import _unique_keys

    with contextlib.suppress(OSError):  # (the read reports those)
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # (a FIFO: waited on for ever)
            raise ValueError(f"{path}: not a regular file; the run folder is damaged")
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: not readable JSON ({e}); the run folder is damaged") from None


def _read_npy(path: Path, crc: int | None = None) -> np.ndarray:
    """A float32 keyframe saved by :meth:`ColourPlan.save`: ``(H, W, 3)`` float32. With
    ``crc``, the file's CRC-32 must be it (a .npy has no checksum of its own, and zeros
    inside one, from a power cut, read as a plausible image)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OSError(f"{path}: missing; the run folder is damaged") from None
    except OSError as e:
        raise OSError(f"{path}: not a readable .npy keyframe ({e})") from None
    if crc is not None and zlib.crc32(data) != crc:
        raise OSError(f"{path}: damaged (its CRC-32 is not the one plan.json recorded for it)")
    try:
        img = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise OSError(f"{path}: not a readable .npy keyframe ({e})") from None
    if not isinstance(img, np.ndarray) or img.dtype != np.float32 or img.shape[2:] != (3,):
        raise OSError(f"{path}: expected an (H, W, 3) float32 array; got {img!r:.60}")
    return np.asarray(img)


def _npy_reader(crcs: Any, index: Path | None = None) -> Callable[[Path], np.ndarray]:
    """:func:`_read_npy` checking each file against ``crcs`` (plan.json's ``"crc32"``,
    ``{"000012": crc, ...}``; plans saved before it have none, and are read unchecked)."""
    if crcs is None:
        crcs = {}
    if not isinstance(crcs, dict) or not all(
        isinstance(k, str) and type(v) is int and 0 <= v < 2**32 for k, v in crcs.items()
    ):
        raise ValueError(f'{index}: "crc32" must map keyframe names to CRC-32 values')
    return lambda path: _read_npy(path, crcs.get(path.stem))


def _read_png(path: Path) -> np.ndarray:
    """An image file (PNG, or a JPEG init image) as ``(H, W, 3)`` uint8, turned upright as
    its EXIF orientation says with Pillow (a phone's JPEG was read on its side: refused
    as the wrong size, or a square one rotated). Without Pillow, PyAV or loopwave's own
    PNG reader, which do not read EXIF."""
    try:
        from PIL import Image, ImageOps

        try:
            with Image.open(path) as raw:
                im = ImageOps.exif_transpose(raw)
                if im.mode in ("I", "I;16", "I;16B", "I;16L"):
                    # 16-bit grey: scaled to 8 bits (PIL's convert("RGB") clips it at 255)
                    grey = np.asarray(im, dtype=np.float64) / 257.0
                    g8 = np.clip(np.round(grey), 0, 255).astype(np.uint8)
                    return np.repeat(g8[..., None], 3, axis=2)
                return np.asarray(im.convert("RGB"))
        except Image.DecompressionBombError as e:  # not an OSError: name the file
            raise ValueError(f"{path}: {e}") from None
        except OSError as e:
            if str(path) in str(e):
                raise
            raise OSError(f"{path}: {e}") from e  # 'image file is truncated' named no file
    except ImportError:  # fall back to PyAV, then to loopwave's own reader
        from .video import _read_png as read_with_av

        try:
            return read_with_av(path)
        except ImportError:  # a core install: numpy only
            try:
                return read_png(path)  # the 8-bit RGB PNGs loopwave writes
            except ValueError as e:  # as Pillow's errors: an OSError naming the file
                raise OSError(str(e)) from None
