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
interrupted build goes on from there.

Example
-------
>>> import numpy as np
>>> plan = ColourPlan.build(lambda i, v: np.full((8, 8, 3), i, np.uint8), frames=41, every=20)
>>> int(plan.target(35)[0, 0, 0])  # 0.25 * 20 + 0.75 * 40
35
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .color import color_correct, lerp_frames, mean_frames
from .png import write_png

__all__ = ["ColourPlan", "keyframe_indices"]

RenderFn = Callable[[int, int], np.ndarray]  # (frame index, variant) -> uint8 RGB frame


def keyframe_indices(frames: int, every: int) -> list[int]:
    """Keyframes every ``every`` frames from 0, and the last frame (``frames`` up to
    :data:`MAX_FRAME`)."""
    for name, v, lo in (("frames", frames, 1), ("every", every, 1)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int; got {v!r}")
        if not lo <= v <= MAX_FRAME:  # 10**10 frames built a set of 10**10 indices first
            raise ValueError(f"{name} must be in {lo}..{MAX_FRAME}; got {v!r}")
    frames, every = int(frames), int(every)
    return sorted({*range(0, frames, every), frames - 1})


#: Keyframe indices run below this (six-digit file names, and far beyond any render).
MAX_FRAME = 10**9


class ColourPlan:
    """Keyframe targets by frame index; :meth:`target` and :meth:`correct` per frame."""

    def __init__(self, keyframes: dict[int, np.ndarray]) -> None:
        if not isinstance(keyframes, dict):
            raise TypeError(f"keyframes must be a dict {{frame: image}}; got {keyframes!r:.60}")
        if not keyframes:
            raise ValueError("keyframes must not be empty")
        for k, img in keyframes.items():
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
                raise TypeError(f"keyframes: frame {k!r} is not an int")
            if not 0 <= k < MAX_FRAME:  # what save() names and load() reads back
                raise ValueError(f"keyframes: frame {k} is not in 0..{MAX_FRAME - 1}")
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
                raise TypeError(f"keyframes[{k}] must be an (H, W, 3) numpy array; got {img!r:.60}")
        shapes = {k.shape for k in keyframes.values()}
        if len(shapes) != 1:
            raise ValueError(f"keyframes must share one shape; got {sorted(shapes)}")
        # checked here rather than when a target is lerped, where the error named `a`/`b`
        dtypes = sorted({str(img.dtype) for img in keyframes.values()})
        if dtypes not in (["uint8"], ["float32"]):
            raise TypeError(f"keyframes must all be uint8 or all float32; got {dtypes}")
        if any(img.size == 0 for img in keyframes.values()):
            raise ValueError(f"keyframes must not be empty images; got shape {shapes.pop()}")
        for k, img in keyframes.items():
            if img.dtype == np.float32 and not np.isfinite(img).all():
                raise ValueError(f"keyframes[{k}] holds NaN or infinity")
        # plain ints: numpy integers cannot go into plan.json (save() failed after
        # writing the PNGs, leaving an older plan.json beside the new images)
        self.keyframes = dict(sorted((int(k), img) for k, img in keyframes.items()))
        self._keys = list(self.keyframes)

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
        of renders is not started over after a Ctrl-C."""
        if isinstance(renders, bool) or not isinstance(renders, int) or renders < 1:
            raise ValueError(f"renders must be an int >= 1; got {renders!r}")
        keys = keyframe_indices(frames, every)
        made: dict[int, np.ndarray] = {}
        for k in keys:
            path = None if keep is None else Path(keep) / f"{k:06d}.png"
            if path is not None and path.is_file():  # complete: write_png renames into place
                made[k] = _read_png(path)
                continue
            made[k] = mean_frames([render(k, v) for v in range(renders)])
            if path is not None and made[k].dtype == np.uint8:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_png(path, made[k])
        return cls(made)

    @staticmethod
    def kept(keep: str | os.PathLike[str], *, frames: int, every: int) -> int:
        """How many of the keyframes :meth:`build` with ``keep`` would read, not render."""
        return sum((Path(keep) / f"{k:06d}.png").is_file() for k in keyframe_indices(frames, every))

    def target(self, i: int) -> np.ndarray:
        """The target of frame ``i``: its keyframe, or the lerp of the two around it."""
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"i must be a frame index (int); got {i!r}")
        if i in self.keyframes:
            return self.keyframes[i]
        keys = self._keys
        if i < keys[0]:
            return self.keyframes[keys[0]]
        if i > keys[-1]:
            return self.keyframes[keys[-1]]
        b = next(k for k in keys if k > i)
        a = max(k for k in keys if k < i)
        return lerp_frames(self.keyframes[a], self.keyframes[b], (i - a) / (b - a))

    def correct(self, frame: np.ndarray, i: int, *, gamma: bool = True) -> np.ndarray:
        """:func:`loopwave.color_correct` of frame ``i`` toward its target."""
        return color_correct(frame, self.target(i), gamma=gamma)

    def save(self, run_dir: str | Path) -> Path:
        """Write the keyframes into ``RUN_DIR/plan/`` (``uint8`` as PNG, ``float32`` as
        ``.npy``, exact) and their index into ``RUN_DIR/plan.json``, last."""
        d = Path(run_dir) / "plan"
        d.mkdir(parents=True, exist_ok=True)
        floats = next(iter(self.keyframes.values())).dtype == np.float32
        for k, img in self.keyframes.items():
            if floats:
                tmp = d / f"{k:06d}.npy.tmp"
                with open(tmp, "wb") as f:
                    np.save(f, img, allow_pickle=False)
                os.replace(tmp, d / f"{k:06d}.npy")
            else:
                write_png(d / f"{k:06d}.png", img)
        index: dict[str, Any] = {"keyframes": self._keys}
        if floats:
            index["dtype"] = "float32"
        _atomic_json(Path(run_dir) / "plan.json", index)
        return d

    @classmethod
    def load(cls, run_dir: str | Path) -> ColourPlan:
        """Load a saved plan (needs Pillow or PyAV to read the PNGs)."""
        index = Path(run_dir) / "plan.json"
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
        read = _read_png if dtype == "uint8" else _read_npy
        ext = ".png" if dtype == "uint8" else ".npy"
        try:
            return cls({k: read(Path(run_dir) / "plan" / f"{k:06d}{ext}") for k in frames})
        except ValueError as e:  # PNGs of several sizes
            raise ValueError(f"{index}: the plan's keyframe images do not match ({e})") from e


# the run folder's JSON files (settings, state, the plan's index), shared with the renderer


def _atomic_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON whole or not at all (a temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    """A run file's JSON; a damaged one is a ValueError naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: not readable JSON ({e}); the run folder is damaged") from None


def _read_npy(path: Path) -> np.ndarray:
    """A float32 keyframe saved by :meth:`ColourPlan.save`: ``(H, W, 3)`` float32."""
    try:
        img = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise OSError(f"{path}: missing; the run folder is damaged") from None
    except (OSError, ValueError, EOFError) as e:
        raise OSError(f"{path}: not a readable .npy keyframe ({e})") from None
    if not isinstance(img, np.ndarray) or img.dtype != np.float32 or img.shape[2:] != (3,):
        raise OSError(f"{path}: expected an (H, W, 3) float32 array; got {img!r:.60}")
    return np.asarray(img)


def _read_png(path: Path) -> np.ndarray:
    try:
        from PIL import Image

        try:
            with Image.open(path) as im:
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
    except ImportError:  # pragma: no cover - fall back to PyAV
        from .video import _read_png as read_with_av

        return read_with_av(path)
