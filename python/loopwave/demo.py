"""The colour-correction demo: the seed's colour plan on a simulated loopback run.

Before the renderer landed this was loopwave's main job (``make demo``). It builds a morph through
scikit-image's bundled photographs, drifts it the way ~150+ frames of img2img
feedback do (warmer, more contrast, compounding), then repairs it with the
seed's colour plan: keyframes every ``K`` frames (each the mean of ``V`` noisy
"renders", standing in for one-step-deep img2img passes), per-frame targets
lerped between the two nearest keyframes, and :func:`loopwave.color_correct`.

Writes ``frames/NNNNN.png`` (corrected), ``contact_sheet.png`` (rows: drifted,
corrected, target) and ``drift.csv`` (per-frame Lab distance to the target
before and after), and prints a summary. Frames an earlier, longer run left in the
folder are removed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as _v
from . import color
from ._progress import Progress
from .png import make_folder, remove_folders, write_png

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    frames: int
    drift_before: float
    drift_after: float
    content_floor: float
    correct_fps: float


def _skimage() -> tuple[Any, Any]:
    """scikit-image's sample photographs and its resize, or an error naming the extra."""
    try:
        from skimage import data
        from skimage.transform import resize
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the demo uses scikit-image's sample photographs: pip install 'loopwave[demo]'"
        ) from e
    return data, resize


def _photos(size: int) -> list[np.ndarray]:
    data, resize = _skimage()
    out = []
    for name in PHOTOS:
        img = getattr(data, name)()[..., :3]
        h, w = img.shape[:2]
        s = min(h, w)  # centre square crop, then resize
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        small = resize(img, (size, size), anti_aliasing=True)
        out.append((small * 255 + 0.5).astype(np.uint8))
    return out


def clean_sequence(photos: list[np.ndarray], n: int) -> np.ndarray:
    """A morph through ``photos``: cross-fades with a hold at each photograph."""
    frames = np.empty((n, *photos[0].shape), np.uint8)
    for i in range(n):
        p = i / max(n - 1, 1) * (len(photos) - 1)
        k = min(int(p), len(photos) - 2)
        t = float(np.clip((p - k - 0.25) / 0.5, 0.0, 1.0))  # hold, fade, hold
        frames[i] = color.lerp_frames(photos[k], photos[k + 1], t)
    return frames


def drift(frames: np.ndarray, *, strength: float = 1.0, seed: int = 0) -> np.ndarray:
    """Simulated feedback drift: compounding warm tint and contrast, plus grain."""
    rng = np.random.default_rng(seed)
    n = len(frames)
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        d = strength * (i / max(n - 1, 1)) ** 1.5
        x = f.astype(np.float32) / 255.0
        x = 0.5 + (x - 0.5) * (1.0 + 0.7 * d)  # contrast up
        x *= np.array([1.0 + 0.22 * d, 1.0 + 0.06 * d, 1.0 - 0.25 * d], np.float32)  # toward orange
        x += rng.normal(0.0, 0.01, x.shape).astype(np.float32)
        out[i] = (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return out


def colour_plan(
    clean: np.ndarray, every: int, renders: int, seed: int = 1
) -> dict[int, np.ndarray]:
    """Keyframes every ``every`` frames and the last, each the mean of ``renders`` noisy renders."""
    rng = np.random.default_rng(seed)
    keys = sorted({*range(0, len(clean), every), len(clean) - 1})
    plan = {}
    for k in keys:
        base = clean[k].astype(np.int16)
        variants = [
            np.clip(
                base + rng.normal(0, 6, 3).astype(np.int16) + rng.integers(-4, 5, base.shape),
                0,
                255,
            ).astype(np.uint8)
            for _ in range(renders)
        ]
        plan[k] = color.mean_frames(variants)
    return plan


def target_for(plan: dict[int, np.ndarray], i: int) -> np.ndarray:
    """The lerp of the two keyframes around frame ``i`` (the seed's ``get_cc_target``)."""
    if i in plan:
        return plan[i]
    keys = sorted(plan)
    a = max(k for k in keys if k <= i)
    b = min(k for k in keys if k > i)
    return color.lerp_frames(plan[a], plan[b], (i - a) / (b - a))


def _lab_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame mean Euclidean Lab distance (CIE76 delta E)."""
    d = color.rgb_to_lab(a) - color.rgb_to_lab(b)
    dist: np.ndarray = np.sqrt((d * d).sum(-1)).reshape(len(a), -1).mean(1)
    return dist


def contact_sheet(rows: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Tile ``columns`` evenly spaced frames of each row sequence into one image."""
    n, h, w, _ = rows[0].shape
    idx = np.linspace(0, n - 1, columns).round().astype(int)
    sheet = np.full((len(rows) * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, np.uint8)
    for r, seq in enumerate(rows):
        for c, i in enumerate(idx):
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            sheet[y : y + h, x : x + w] = seq[i]
    return sheet


def run_demo(
    out_dir: str | Path = "out/demo",
    *,
    frames: int = 96,
    size: int = 256,
    keyframe_every: int = 12,
    renders: int = 4,
    batch: int = 8,
    progress: bool = True,
) -> DemoResult:
    """Run the demo; see the module docstring. Returns the drift numbers."""
    frames, size, keyframe_every, renders, batch = (
        _v.whole(value, name, low, high)
        for name, value, low, high in (
            ("frames", frames, 2, 100_000),
            ("size", size, 16, 4096),
            ("keyframe_every", keyframe_every, 1, 100_000),
            ("renders", renders, 1, 64),
            ("batch", batch, 1, 256),
        )
    )
    out = _v.folder(out_dir, "out_dir")
    why = _v.unmakeable(out)
    if why is not None:
        raise type(why)(f"out_dir: {out} cannot be made: {why}")
    # the demo holds every frame in memory, in about 13 copies at its peak (uint8 and
    # float32 working sets; measured: 180 MiB of frames, 2.6 GB resident)
    need = 13 * frames * size * size * 3
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: the old per-copy bound
        ram = 13 * 2**31
    if need > ram:
        raise ValueError(
            f"frames x size: {frames} frames of {size}x{size} need about {need / 2**30:.1f} GiB "
            f"at the peak, more than this machine's {ram / 2**30:.1f} GiB; "
            "the demo holds its frames in memory: lower one of them"
        )
    _check_ours(out)
    _skimage()  # before the folder is made (one was left empty without it)
    # the folders made here and the marker if this run made it: removed again if it stops
    # (a Ctrl-C left the folder with the marker and an empty frames/)
    marked = not (out / MARKER).exists()
    made = make_folder(out / "frames")
    (out / MARKER).touch()
    # an earlier, longer run's frames past this run's last would stay beside its own, and
    # its summary beside this run's first frames, were this one killed (a folder that
    # looked finished; from a review)
    _remove_outputs(out, first_frame=frames)
    try:
        return _run(out, frames, size, keyframe_every, renders, progress, batch)
    except BaseException:
        # a run stopped part way (Ctrl-C) left its first frames over an earlier run's, with
        # that run's drift.csv and contact sheet: a folder that looked finished
        _remove_outputs(out, first_frame=0)
        if marked:
            (out / MARKER).unlink(missing_ok=True)
        remove_folders(made)
        raise


#: the file that marks a folder as the demo's (its frames may be replaced)
MARKER = ".loopwave-demo"


def _demo_frame(p: Path) -> bool:
    """Whether ``p`` has a name the demo writes its frames under: 00123.png."""
    return len(p.stem) == 5 and p.stem.isascii() and p.stem.isdigit()


def _check_ours(out: Path) -> None:
    """Refuse an output folder whose ``frames/`` holds numbered PNGs the demo did not write
    (ffmpeg's ``%05d`` names are the demo's: they were removed and overwritten, silently),
    or which holds a ``drift.csv`` or a ``contact_sheet.png``. A folder is the demo's when
    it holds its marker, or its contact sheet beside its drift table and its first frame
    (a folder an earlier version wrote, without the marker; a ``contact_sheet.png`` alone,
    or kept beside a copy of the table, may be a user's)."""
    if (out / MARKER).exists() or (
        (out / "contact_sheet.png").exists()
        and _first_line(out / "drift.csv") == DRIFT_HEADER
        and (out / "frames" / "00000.png").is_file()
    ):
        return
    frames = out / "frames"
    if frames.is_dir() and any(_demo_frame(p) for p in frames.glob("*.png")):
        raise ValueError(
            f"out_dir: {frames} holds numbered PNGs the demo did not write, which it would "
            "replace; give an empty or new folder"
        )
    for name in ("drift.csv", "contact_sheet.png"):  # (from reviews: a render's, or a user's)
        if (out / name).exists():
            raise ValueError(
                f"out_dir: {out} holds a {name} the demo did not write, which it would "
                "replace; give an empty or new folder"
            )


#: the first line of the demo's drift table
DRIFT_HEADER = "frame,delta_e_before,delta_e_after"


def _first_line(path: Path) -> str | None:
    """The first line of ``path`` (None where it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(len(DRIFT_HEADER) + 2).rstrip("\n")
    except OSError:
        return None


def _remove_outputs(out: Path, *, first_frame: int) -> None:
    """Remove the demo's frames from ``first_frame`` on (only the names it writes:
    00123.png; a render's 000123.png, six digits, in a run folder given as the output
    were removed too), and its drift.csv and contact sheet."""
    for old in (out / "frames").glob("*.png"):
        if _demo_frame(old) and int(old.stem) >= first_frame:
            old.unlink()
    for name in ("drift.csv", "contact_sheet.png"):
        (out / name).unlink(missing_ok=True)


def _run(
    out: Path,
    frames: int,
    size: int,
    keyframe_every: int,
    renders: int,
    progress: bool,
    batch: int,
) -> DemoResult:
    """The demo's work, its arguments checked (see :func:`run_demo`)."""
    clean = clean_sequence(_photos(size), frames)
    drifted = drift(clean)
    plan = colour_plan(clean, keyframe_every, renders)
    targets = np.stack([target_for(plan, i) for i in range(frames)])

    corrected = np.empty_like(drifted)
    spent = 0.0
    with Progress(frames, "colour-correct", enabled=progress) as bar:
        for s in range(0, frames, batch):
            t0 = time.perf_counter()
            color.color_correct(
                drifted[s : s + batch], targets[s : s + batch], out=corrected[s : s + batch]
            )
            spent += time.perf_counter() - t0
            for i in range(s, min(s + batch, frames)):
                write_png(out / "frames" / f"{i:05d}.png", corrected[i])
            bar.update(min(batch, frames - s))

    before, after = _lab_distance(drifted, targets), _lab_distance(corrected, targets)
    with open(out / "drift.csv", "w") as f:
        f.write(DRIFT_HEADER + "\n")
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            f.write(f"{i},{b:.4f},{a:.4f}\n")
    write_png(out / "contact_sheet.png", contact_sheet([drifted, corrected, targets], columns=6))
    floor = _lab_distance(clean, targets)  # what content differences alone give
    return DemoResult(
        out, frames, float(before.mean()), float(after.mean()), float(floor.mean()), frames / spent
    )
