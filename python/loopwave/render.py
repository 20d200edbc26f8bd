"""The morph renderer: loopback img2img with a colour plan, schedules, motion and resume.

``render(settings)`` follows the seed's workflow: frame 0 from the init image
(or from noise), then each frame is the previous one, moved by the motion
schedules (:func:`loopwave.warp_affine`), run through img2img at the wave
denoise (or a schedule) with the prompt in force, and colour-corrected toward
its colour-plan target (or the first frame, or not at all).

Every frame is stored losslessly as ``frames/NNNNNN.png`` in the run directory,
then ``state.json`` records it (both written atomically, in that order), so
``render(..., resume=True)`` / ``loopwave render --resume RUN_DIR`` continues
after a crash or kill and produces exactly the frames an uninterrupted run
would (deterministic on the CPU). Frame saving and the drift report run on a
writer thread behind a bounded queue; generation itself is sequential (each
frame needs the corrected previous one). At the end the frames are
interpolated and encoded (when PyAV is installed) by streaming them from disk,
so memory stays flat however long the video is.

Outputs in the run directory: ``settings.json`` (the resolved settings, which
render the same video again), ``frames/``, ``plan/`` (the colour plan),
``drift.csv`` and ``drift.png`` (per frame: Lab distance to the target, red, and to
the previous frame, blue) and ``NAME.mp4``.
"""

from __future__ import annotations

import csv
import json
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._progress import Progress
from .backends import Img2Img, load_backend
from .color import color_correct, motion_matrix, rgb_to_lab, warp_affine
from .plan import ColourPlan, _read_png
from .png import write_png
from .schedule import Schedule, parse_prompts, prompt_at, seed_for, wave_strength
from .settings import Settings

__all__ = ["RenderResult", "render", "render_frames"]


@dataclass(frozen=True)
class RenderResult:
    run_dir: Path
    frames: int
    video: Path | None


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _delta_e(a: np.ndarray, b: np.ndarray) -> float:
    d = rgb_to_lab(a) - rgb_to_lab(b)
    return float(np.sqrt((d * d).sum(-1)).mean())


class _Writer:
    """Saves frames, the state and drift rows in order on one background thread."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.q: queue.Queue[tuple[int, np.ndarray, float, float] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, name="loopwave-writer", daemon=True)
        self.t.start()

    def _run(self) -> None:
        try:
            while (item := self.q.get()) is not None:
                i, frame, to_target, to_prev = item
                write_png(self.run_dir / "frames" / f"{i:06d}.png", frame)
                with open(self.run_dir / "drift.csv", "a", newline="") as f:
                    csv.writer(f).writerow([i, f"{to_target:.4f}", f"{to_prev:.4f}"])
                _atomic_json(self.run_dir / "state.json", {"last": i})
        except BaseException as e:  # reported on the next put/close
            self.error = e

    def put(self, item: tuple[int, np.ndarray, float, float]) -> None:
        if self.error:
            raise RuntimeError(f"saving frames failed: {self.error}") from self.error
        self.q.put(item)

    def close(self) -> None:
        self.q.put(None)
        self.t.join()
        if self.error:
            raise RuntimeError(f"saving frames failed: {self.error}") from self.error


class _Job:
    def __init__(self, s: Settings, backend: Img2Img) -> None:
        r, d, m = s["render"], s["denoise"], s["motion"]
        n = r["frames"]
        self.s, self.n, self.backend = s, n, backend
        self.h, self.w = r["height"], r["width"]
        sch = {
            k: Schedule(r[k], max_frames=n, seed=r["seed"], name=f"render.{k}")
            for k in ("steps", "cfg", "seed_schedule")
        }
        self.steps, self.cfg, self.seed_sched = sch["steps"], sch["cfg"], sch["seed_schedule"]
        self.denoise = (
            None
            if d["mode"] == "wave"
            else Schedule(d["schedule"], max_frames=n, name="denoise.schedule")
        )
        self.motion = {
            k: Schedule(m[k], max_frames=n, name=f"motion.{k}")
            for k in ("zoom", "angle", "translation_x", "translation_y")
        }
        self.prompts = parse_prompts(s["prompts"])

    def strength(self, i: int) -> float:
        d = self.s["denoise"]
        if self.denoise is not None:
            return float(np.clip(self.denoise(i), 0.0, 1.0))
        return wave_strength(
            i,
            base=d["base"],
            amplitude=d["amplitude"],
            frames_per_wave=d["frames_per_wave"],
            offset=d["offset"],
        )

    def seed(self, i: int) -> int:
        r = self.s["render"]
        return seed_for(i, seed=r["seed"], behaviour=r["seed_behaviour"], schedule=self.seed_sched)

    def generate(self, init: np.ndarray, i: int, strength: float, seed: int) -> np.ndarray:
        d = self.s["denoise"]
        p = prompt_at(self.prompts, i, frames_per_wave=d["frames_per_wave"], offset=d["offset"])
        seed = p.seed + i if p.seed is not None else seed
        return self.backend.img2img(
            init,
            prompt=p.text,
            negative=p.negative,
            strength=strength,
            steps=int(round(self.steps(i))),
            cfg=float(self.cfg(i)),
            seed=seed,
        )

    def move(self, frame: np.ndarray, i: int) -> np.ndarray:
        z, a = self.motion["zoom"](i), self.motion["angle"](i)
        tx, ty = self.motion["translation_x"](i), self.motion["translation_y"](i)
        if z == 1 and a == 0 and tx == 0 and ty == 0:
            return frame
        m = motion_matrix(self.h, self.w, zoom=z, angle=a, translate=(tx, ty))
        return warp_affine(frame, m, border=self.s["motion"]["border"])

    def first_frame(self) -> np.ndarray:
        path = self.s["render"]["init_image"]
        if path:
            img = _read_png(Path(path)) if Path(path).is_file() else None
            if img is None:
                raise ValueError(f"render.init_image: no such file {path}")
            if img.shape[:2] != (self.h, self.w):
                raise ValueError(
                    f"render.init_image: {path} is {img.shape[1]}x{img.shape[0]}, "
                    f"expected render.width x render.height = {self.w}x{self.h}"
                )
            return img
        rng = np.random.default_rng(self.s["render"]["seed"])
        noise = rng.integers(96, 160, (self.h, self.w, 3), dtype=np.uint8)
        return self.generate(noise, 0, 1.0, self.seed(0))


def _drift_plot(run_dir: Path) -> Path:
    """drift.png: Lab distance to the target (red) and to the previous frame (blue) per frame."""
    from .plot import line_plot

    rows = list(csv.DictReader(open(run_dir / "drift.csv")))
    to_target = [float(r["delta_e_to_target"]) for r in rows]
    to_prev = [float(r["delta_e_to_previous"]) for r in rows]
    return line_plot(run_dir / "drift.png", [to_target, to_prev])


def _frames_on_disk(run_dir: Path) -> Iterator[np.ndarray]:
    for f in sorted((run_dir / "frames").glob("*.png")):
        yield _read_png(f)


def _encode(run_dir: Path, s: Settings, progress: bool) -> Path | None:
    try:
        import av  # noqa: F401
    except ImportError:
        return None
    from .interpolate import interpolate
    from .video import VideoWriter

    i, v = s["interpolation"], s["video"]
    out = run_dir / f"{s['output']['name']}.mp4"
    frames: Iterator[np.ndarray] = _frames_on_disk(run_dir)
    if i["factor"] > 1:
        backend: Any = i["backend"]
        if backend == "rife":
            from .rife import OnnxRifeInterpolator

            backend = OnnxRifeInterpolator(i["model"])
        frames = interpolate(frames, factor=i["factor"], backend=backend, scene_cut=i["scene_cut"])
    with VideoWriter(
        out,
        fps=v["fps"] * i["factor"],
        codec=v["codec"],
        crf=v["crf"],
        title=s["output"]["name"],
        settings=s,
    ) as w:
        for f in frames:
            w.write(f)
    return out


def render(
    settings: Settings | None,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    backend: Img2Img | None = None,
    progress: bool = True,
    video: bool = True,
    stop_after: int | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> RenderResult:
    """Render a morph video (see the module docs). ``stop_after`` stops after that frame index,
    as a crash would (for tests and partial renders); resume with ``resume=True``.
    ``on_frame(i, frame)`` is called with each finished frame (see :func:`render_frames`)."""
    if resume:
        if run_dir is None:
            raise ValueError("run_dir: resume needs the run directory")
        rd = Path(run_dir)
        if not (rd / "settings.json").is_file():
            raise ValueError(f"run_dir: {rd} has no settings.json to resume from")
        settings = Settings.from_dict(json.loads((rd / "settings.json").read_text()))
    else:
        if not isinstance(settings, Settings):  # also refuses None without resume
            raise TypeError(
                f"settings must be loopwave.settings.Settings; got {type(settings).__name__}"
            )
        rd = (
            Path(run_dir)
            if run_dir is not None
            else Path(settings["output"]["dir"]) / settings["output"]["name"]
        )
        if (rd / "state.json").exists():
            raise ValueError(f"run_dir: {rd} already holds a run; resume it or pick another output")
    m = settings["model"]
    if backend is None:  # before touching the run directory: a bad model leaves nothing behind
        backend = load_backend(
            m["backend"],
            m["path"],
            scheduler=m["scheduler"],
            device=m["device"],
            allow_pickle=m["allow_pickle"],
        )
    if not resume:
        (rd / "frames").mkdir(parents=True, exist_ok=True)
        _atomic_json(rd / "settings.json", dict(settings))
        (rd / "drift.csv").write_text("frame,delta_e_to_target,delta_e_to_previous\n")
    job = _Job(settings, backend)
    c = settings["colour"]
    state = json.loads((rd / "state.json").read_text()) if (rd / "state.json").exists() else None
    last = state["last"] if state else -1
    # frames after the last recorded one may be partial writes of a killed run
    for f in (rd / "frames").glob("*.png"):
        if int(f.stem) > last:
            f.unlink()
    if last >= 0:
        rows = list(csv.reader(open(rd / "drift.csv")))
        with open(rd / "drift.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(r for r in rows if not r[0].isdigit() or int(r[0]) <= last)
    first = _read_png(rd / "frames" / f"{0:06d}.png") if last >= 0 else job.first_frame()
    plan: ColourPlan | None = None
    if c["mode"] == "plan":
        if (rd / "plan.json").exists():
            plan = ColourPlan.load(rd)
        else:
            plan = ColourPlan.build(
                lambda k, v: job.generate(first, k, c["keyframe_strength"], job.seed(k) + 7919 * v),
                frames=job.n,
                every=c["keyframe_every"],
                renders=c["renders"],
            )
            plan.save(rd)

    def target(i: int) -> np.ndarray | None:
        return plan.target(i) if plan else (first if c["mode"] == "first" else None)

    writer = _Writer(rd)
    prev = _read_png(rd / "frames" / f"{last:06d}.png") if last >= 0 else None
    done = last + 1
    try:
        with Progress(job.n, f"render [{backend.label}]", enabled=progress) as bar:
            bar.update(done)
            for i in range(done, job.n):
                if i == 0:
                    frame = first
                else:
                    assert prev is not None
                    frame = job.generate(job.move(prev, i), i, job.strength(i), job.seed(i))
                    t = target(i)
                    if t is not None:
                        frame = color_correct(frame, t, gamma=c["gamma"])
                t = target(i)
                writer.put(
                    (
                        i,
                        frame,
                        _delta_e(frame, t) if t is not None else float("nan"),
                        _delta_e(frame, prev) if prev is not None else 0.0,
                    )
                )
                prev = frame
                if on_frame is not None:
                    on_frame(i, frame)
                bar.update()
                if stop_after is not None and i >= stop_after:
                    writer.close()
                    return RenderResult(rd, i + 1, None)
    except BaseException:
        # Ctrl-C, a failing backend, or a consumer that stopped early: flush what was
        # generated (resume continues from it) and let the original error through
        try:
            writer.close()
        except RuntimeError:
            pass
        raise
    writer.close()
    _drift_plot(rd)
    out = _encode(rd, settings, progress) if video else None
    return RenderResult(rd, job.n, out)


class _Stop(Exception):
    """Raised inside the render thread when the consumer of render_frames stops early."""


def render_frames(settings: Settings | None, **options: Any) -> Iterator[tuple[int, np.ndarray]]:
    """Render as :func:`render` does, yielding ``(index, frame)`` as each frame is finished.

    The render runs on a background thread one frame ahead of the consumer; frames
    are still stored in the run directory, so an interrupted iteration can be
    resumed. Closing the iterator early stops the render after the current frame.

    Example
    -------
    >>> for i, frame in render_frames(settings, run_dir="out/run"):  # doctest: +SKIP
    ...     my_pipeline.push(frame)
    """
    q: queue.Queue[tuple[int, np.ndarray] | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def on_frame(i: int, frame: np.ndarray) -> None:
        while not stop.is_set():
            try:
                q.put((i, frame), timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def run() -> None:
        try:
            render(settings, on_frame=on_frame, **options)
            q.put(None)
        except _Stop:
            pass
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    t = threading.Thread(target=run, name="loopwave-render", daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


def add_cli(sub: Any) -> None:
    """Register ``loopwave render JOB.toml [--resume RUN_DIR] [--model PATH]``."""
    p = sub.add_parser("render", help="render a morph video from a settings file")
    p.add_argument("settings", metavar="JOB", nargs="?", help="settings file (.toml or .json)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--model", help="a local diffusers folder or .safetensors (overrides the file)")
    p.add_argument("--out", help="output folder (overrides output.dir)")
    p.add_argument("--frames", type=int, help="number of frames (overrides render.frames)")
    p.add_argument("--size", help="WxH (overrides render.width and render.height)")
    p.add_argument("--no-video", action="store_true", help="write frames only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(a: Any) -> int:
        from .settings import load_settings

        if a.resume:
            r = render(
                None,
                run_dir=a.resume,
                resume=True,
                progress=not a.quiet,
                video=not a.no_video,
            )
        else:
            if not a.settings:
                raise ValueError("JOB: a settings file is needed (or --resume RUN_DIR)")
            data = dict(load_settings(a.settings))
            if a.model:
                data["model"] = {**data["model"], "backend": "diffusers", "path": a.model}
            if a.out:
                data["output"] = {**data["output"], "dir": a.out}
            if a.frames:
                data["render"] = {**data["render"], "frames": a.frames}
            if a.size:
                try:
                    w, h = (int(x) for x in a.size.lower().split("x"))
                except ValueError:
                    raise ValueError(f"--size: expected WxH like 256x256; got {a.size!r}") from None
                data["render"] = {**data["render"], "width": w, "height": h}
            r = render(Settings.from_dict(data), progress=not a.quiet, video=not a.no_video)
        print(
            f"rendered {r.frames} frames in {r.run_dir}"
            + (f"; video: {r.video}" if r.video else "")
        )
        return 0

    p.set_defaults(func=run)
