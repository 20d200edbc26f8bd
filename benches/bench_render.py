"""Per-stage time per frame of the renderer, and its end-to-end throughput.

    python benches/bench_render.py [--size 128] [--frames 24] [--steps 8]

Runs on the embedded smoke model on the CPU (the only model available
offline): times each stage for one frame (median of several) — img2img, the
motion warp and color_correct (the render thread), the drift figures and the
PNG save (the writer thread), flow interpolation and H.264 encoding of the
in-betweens (the encoder thread) — then a full render of ``--frames`` frames
with video, and reports its loop's frames/s (from frame 0 to the finished
video) against the busiest thread (how well the stages overlap) and against
all stages one after another (a serial loop). On this CPU-only machine the
smoke model's img2img keeps every core busy, so the other stages compete with
it for the CPU instead of hiding behind it; a second render whose img2img
sleeps (``--gpu-ms``, generation as if on a GPU, leaving the CPU free) shows
how much of the CPU stages the pipeline hides when generation is elsewhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import loopwave as lw
from loopwave.backends import smoke_backend
from loopwave.bench import median_time
from loopwave.png import write_png
from loopwave.render import render
from loopwave.settings import Settings


class _OffCpu:
    """Stands in for generation on a GPU: img2img takes ``seconds`` of wall time and no CPU
    (it sleeps), then returns the init image shifted by a pixel, so the frames still move."""

    def __init__(self, seconds: float, label: str) -> None:
        self.seconds, self.label = seconds, f"simulated GPU ({label} frames)"

    def img2img(self, init: np.ndarray, **_: object) -> np.ndarray:
        time.sleep(self.seconds)
        return np.roll(init, 1, axis=1)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--factor", type=int, default=6, help="interpolation factor (flow)")
    p.add_argument(
        "--gpu-ms", type=float, default=50.0, help="simulated off-CPU generation time per frame"
    )
    a = p.parse_args(argv)
    from loopwave.interpolate import FlowInterpolator
    from loopwave.render import _lab_distance
    from loopwave.video import VideoWriter

    backend = smoke_backend()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (a.size, a.size, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (a.size, a.size, 3), dtype=np.uint8)
    # a moved copy, so the flow has something to find
    nxt = lw.warp_affine(frame, lw.motion_matrix(a.size, a.size, zoom=1.02, angle=1.0))
    prev_lab = lw.rgb_to_lab(nxt)

    def drift_figures(lab: np.ndarray) -> tuple[float, float]:
        return _lab_distance(lab, lw.rgb_to_lab(target)), _lab_distance(lab, prev_lab)

    m = lw.motion_matrix(a.size, a.size, zoom=1.01, angle=0.5)
    flow = FlowInterpolator()
    ts = np.arange(1, a.factor) / a.factor
    with tempfile.TemporaryDirectory() as d:
        video = VideoWriter(Path(d) / "v.mp4", fps=10 * a.factor, codec="h264", crf=18)

        def encode() -> None:  # one source frame's worth: factor frames, waiting for the encoder
            video.write(np.stack([frame] * a.factor))
            video.flush()

        # stage -> (thread it runs on in the renderer, seconds per source frame)
        stages = {
            "img2img (smoke, strength 0.5)": (
                "render",
                median_time(
                    lambda: backend.img2img(
                        frame,
                        prompt="a castle",
                        negative="",
                        strength=0.5,
                        steps=a.steps,
                        cfg=7,
                        seed=1,
                    )
                ),
            ),
            "warp_affine": ("render", median_time(lambda: lw.warp_affine(frame, m))),
            "color_correct": ("render", median_time(lambda: lw.color_correct(frame, target))),
            # as the writer does it: the frame's Lab, the target's (it changes every frame
            # between keyframes), the previous frame's Lab reused, two distances
            "drift figures (2 x Lab distance)": (
                "writer",
                median_time(lambda: drift_figures(lw.rgb_to_lab(frame))),
            ),
            "png save": (
                "writer",
                median_time(lambda: write_png(Path(d) / "f.png", frame, level=1)),
            ),
            f"interpolate (flow, x{a.factor})": (
                "encoder",
                median_time(lambda: flow.between(frame, nxt, ts)),
            ),
            f"encode (h264, {a.factor} frames)": ("encoder", median_time(encode)),
        }
        video.close()
        s = Settings.from_dict(
            {
                "version": 1,
                "render": {
                    "frames": a.frames,
                    "width": a.size,
                    "height": a.size,
                    "steps": f"0: ({a.steps})",
                },
                "denoise": {"mode": "schedule", "schedule": "0: (0.5)"},
                "colour": {"keyframe_every": a.frames, "renders": 1},
                "motion": {"zoom": "0: (1.01)", "angle": "0: (0.5)"},
                "interpolation": {"factor": a.factor, "backend": "flow"},
                "prompts": {"0": "a castle"},
            }
        )
        # the colour plan (2 keyframes) and frame 0 (from noise) come before the loop and
        # cost more steps than a loop frame: time from frame 0's arrival to the finished
        # video, i.e. frames 1.. through every stage, the encoder's tail included
        t0: list[float] = []

        def on_frame(i: int, _frame: np.ndarray) -> None:
            if i == 0:
                t0.append(time.perf_counter())

        def loop_time(b: object, name: str) -> float:
            t0.clear()
            render(
                s,
                run_dir=Path(d) / name,
                backend=b,  # type: ignore[arg-type]
                progress=False,
                video=True,
                on_frame=on_frame,
            )
            return (time.perf_counter() - t0[0]) / (a.frames - 1)

        per_frame = loop_time(backend, "run")
        off_cpu = loop_time(_OffCpu(a.gpu_ms / 1e3, backend.label), "off-cpu")
    threads: dict[str, float] = {}
    for thread, sec in stages.values():
        threads[thread] = threads.get(thread, 0.0) + sec
    bottleneck = max(threads, key=lambda k: threads[k])
    serial = sum(threads.values())
    print(
        f"renderer stages at {a.size}x{a.size}, {a.steps} steps, smoke model on the CPU "
        f"({lw.get_num_threads()} kernel threads, {os.cpu_count()} cores):"
    )
    print(f"{'stage':<36} {'thread':<8} {'ms/frame':>10}")
    for k, (thread, sec) in stages.items():
        print(f"{k:<36} {thread:<8} {sec * 1e3:10.2f}")
    for thread, sec in threads.items():
        print(f"{'  total on the ' + thread + ' thread':<36} {'':<8} {sec * 1e3:10.2f}")
    print(f"{'end to end (render + video)':<36} {'':<8} {per_frame * 1e3:10.2f}")
    print(
        f"throughput {1 / per_frame:.2f} frames/s; the busiest thread ({bottleneck}) allows "
        f"{1 / threads[bottleneck]:.2f}; all stages one after another {1 / serial:.2f} "
        f"({threads[bottleneck] / per_frame:.0%} of the bottleneck rate)"
    )
    other = serial - threads["render"] + stages["warp_affine"][1] + stages["color_correct"][1]
    print(
        f"generation off the CPU (simulated: img2img sleeps {a.gpu_ms:.0f} ms, as if on a GPU): "
        f"{off_cpu * 1e3:.2f} ms/frame end to end; one after another it would be "
        f"{a.gpu_ms + other * 1e3:.2f}, so {other * 1e3 - (off_cpu * 1e3 - a.gpu_ms):.2f} of the "
        f"{other * 1e3:.2f} ms of CPU stages per frame are hidden behind generation"
    )
    return {
        "per_frame": per_frame,
        "off_cpu_per_frame": off_cpu,
        **{k: v for k, (_, v) in stages.items()},
    }


if __name__ == "__main__":
    main(sys.argv[1:])
