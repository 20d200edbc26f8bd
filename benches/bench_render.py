"""Per-stage time per frame of the renderer, and its end-to-end throughput.

    python benches/bench_render.py [--size 128] [--frames 16] [--steps 8]

Runs on the embedded smoke model on the CPU (the only model available
offline): times img2img, the motion warp, color_correct toward a plan target
and the PNG save for one frame each (median of several), then a full
render of ``--frames`` frames without video, and reports frames/s against the
slowest stage (how close the loop gets to its bottleneck) and against the sum
of the stages (what a strictly serial loop would reach).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import loopwave as lw
from loopwave.backends import smoke_backend
from loopwave.png import write_png
from loopwave.render import render
from loopwave.settings import Settings


def median_time(fn, repeats: int = 5) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    a = p.parse_args(argv)
    backend = smoke_backend()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (a.size, a.size, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (a.size, a.size, 3), dtype=np.uint8)
    m = lw.motion_matrix(a.size, a.size, zoom=1.01, angle=0.5)
    with tempfile.TemporaryDirectory() as d:
        stages = {
            "img2img (smoke, strength 0.5)": median_time(
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
            "warp_affine": median_time(lambda: lw.warp_affine(frame, m)),
            "color_correct": median_time(lambda: lw.color_correct(frame, target)),
            "png save": median_time(lambda: write_png(Path(d) / "f.png", frame)),
        }
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
                "prompts": {"0": "a castle"},
            }
        )
        t = time.perf_counter()
        render(s, run_dir=Path(d) / "run", backend=backend, progress=False, video=False)
        total = time.perf_counter() - t
    # the colour plan renders 2 keyframes (0 and the last, at strength 0.75) before the loop,
    # and frame 0 comes from noise at strength 1: both cost more steps than a loop frame
    per_frame = total / (a.frames + 2)
    slowest = max(stages.values())
    print(
        f"renderer stages at {a.size}x{a.size}, {a.steps} steps, smoke model on the CPU "
        f"({lw.get_num_threads()} kernel threads):"
    )
    print(f"{'stage':<32} {'ms/frame':>10}")
    for k, v in stages.items():
        print(f"{k:<32} {v * 1e3:10.2f}")
    print(f"{'end to end (render, no video)':<32} {per_frame * 1e3:10.2f}")
    print(
        f"throughput {1 / per_frame:.2f} frames/s; slowest stage allows {1 / slowest:.2f}; "
        f"a strictly serial loop {1 / sum(stages.values()):.2f} "
        f"({slowest / per_frame:.0%} of the bottleneck rate)"
    )
    return {"per_frame": per_frame, **stages}


if __name__ == "__main__":
    main(sys.argv[1:])
