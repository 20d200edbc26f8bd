"""One GPU session's measurements of the render loop, with one model build and one compile.

Where does a frame's time go between the UNet-only rate and the render's? This builds the
SD 1.5-sized random-weight backend once (compiled, CUDA graphs, channels-last, device RNG)
and, with it:

1. splits one img2img frame into UNet calls, VAE encode, VAE decode and the rest;
2. runs ``loopwave bench``'s measurements (``run_bench``, its render included);
3. times img2img alone and beside interpolation threads or processes
   (``gpu_contention.measure``, on the same compiled backend);
4. chains img2img on its own output, then renders the same job with each encoder-stage
   placement (``stages``), without the video, and without colour correction, reporting
   the steady frame interval of each.

Run on a GPU machine: ``python benches/gpu_session.py OUTDIR [--frames N] [--profile]``;
writes OUTDIR/session.json (``--profile``: also OUTDIR/profile.txt, torch.profiler's top
operators over two img2img frames) and prints a summary last. ``--smoke`` runs it on the
tiny model on the CPU (a check of the script, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_contention  # noqa: E402


def _sync_time(torch: Any, fn: Any, repeats: int) -> float:
    """Median seconds of ``fn`` with the device synchronised around each call."""
    ts = []
    for _ in range(repeats + 1):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts[1:]))


def _split(torch: Any, b: Any, frame: np.ndarray, kw: dict[str, Any], repeats: int) -> dict:
    """One img2img frame: whole, and its VAE encode and decode alone."""
    pipe = b.pipe
    dev, dtype = b.device, pipe.vae.dtype
    h, w = frame.shape[:2]
    image = torch.rand(1, 3, h, w, device=dev, dtype=dtype) * 2 - 1
    latent = torch.randn(1, 4, h // 8, w // 8, device=dev, dtype=dtype)
    with torch.inference_mode():
        enc = _sync_time(torch, lambda: pipe.vae.encode(image).latent_dist.sample(), repeats)
        dec = _sync_time(torch, lambda: pipe.vae.decode(latent).sample, repeats)
    whole = _sync_time(torch, lambda: b.img2img(frame, seed=1, cfg=7.0, **kw), repeats)
    return {"img2img_ms": 1e3 * whole, "vae_encode_ms": 1e3 * enc, "vae_decode_ms": 1e3 * dec}


def _render(b: Any, size: int, frames: int, factor: int, **options: Any) -> dict:
    from loopwave.bench import render_settings, timed_render

    s = render_settings(frames, size, 20, 0.5, factor, options.pop("colour", "plan"))
    with tempfile.TemporaryDirectory() as tmp:
        stamps, end = timed_render(s, Path(tmp) / "run", b, **options)
    gaps = np.diff(stamps[1:])
    return {
        "steady_ms": 1e3 * float(np.median(gaps)),
        "mean_ms": 1e3 * float(np.mean(gaps)),
        "end_to_end_fps": (frames - 1) / (end - stamps[0]),
        "tail_s": end - stamps[-1],
    }


def _chain(b: Any, frame: np.ndarray, kw: dict[str, Any], n: int) -> dict:
    """img2img fed its own output, nothing else: the loop's ceiling."""
    stamps = []
    for _ in range(n):
        frame = b.img2img(frame, seed=1, cfg=7.0, **kw)
        stamps.append(time.perf_counter())
    return {"steady_ms": 1e3 * float(np.median(np.diff(stamps)))}


def _profile(torch: Any, b: Any, frame: np.ndarray, kw: dict[str, Any], out: Path) -> dict:
    """torch.profiler over two img2img frames: the top operators by device and host time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with profile(activities=acts) as prof:
        for _ in range(2):
            b.img2img(frame, seed=1, cfg=7.0, **kw)
        torch.cuda.synchronize()
    ka = prof.key_averages()
    text = ka.table(sort_by="self_cuda_time_total", row_limit=30)
    text += "\n" + ka.table(sort_by="self_cpu_time_total", row_limit=30)
    (out / "profile.txt").write_text(text)
    return {"written": str(out / "profile.txt")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", default=".", help="folder for session.json (default .)")
    p.add_argument("--frames", type=int, default=48, help="frames per render (default 48)")
    p.add_argument("--profile", action="store_true", help="also write profile.txt")
    p.add_argument("--smoke", action="store_true", help="the tiny model on the CPU: a check")
    args = p.parse_args(argv)
    import torch

    from loopwave import bench

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames, smoke = args.frames, args.smoke
    report: dict[str, Any] = {"argv": sys.argv if argv is None else argv}

    def save() -> None:
        (out / "session.json").write_text(json.dumps(report, indent=1))

    t0 = time.perf_counter()
    if smoke:
        from loopwave.backends import smoke_backend

        b, size, repeats = smoke_backend(), 64, 2
    else:
        from loopwave.sd15 import sd15_random_backend

        accel = {
            "compile": ["unet", "vae"],
            "cuda_graphs": True,
            "channels_last": True,
            "device_rng": True,
        }
        b, size, repeats = sd15_random_backend(accel=accel), 512, 7
    frame = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    kw = {"prompt": "a castle", "negative": "", "strength": 0.5, "steps": 20}
    b.img2img(frame, seed=1, cfg=7.0, **kw)  # compiles
    report["build_and_compile_s"] = time.perf_counter() - t0
    print(f"built and compiled in {report['build_and_compile_s']:.0f} s", flush=True)

    def step(name: str, fn: Any) -> None:
        t = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as e:  # one failing part should not lose the others
            report[name] = {"error": repr(e)}
        print(f"{name} ({time.perf_counter() - t:.0f} s): {report[name]}", flush=True)
        save()

    step("split", lambda: _split(torch, b, frame, kw, repeats))
    bench._backend = lambda *_a, **_k: b  # the one compiled backend for every measurement
    step(
        "bench",
        lambda: bench.run_bench(
            model="smoke" if smoke else "sd15-random", size=size, frames=frames, repeats=3
        )["results"],
    )
    step(
        "contention",
        lambda: gpu_contention.measure(lambda: b.img2img(frame, seed=1, cfg=7.0, **kw), repeats),
    )
    step("chain", lambda: _chain(b, frame, kw, frames))
    variants: list[tuple[str, int, dict[str, Any]]] = [
        ("render_thread", 6, {"stages": "thread"}),
        ("render_process", 6, {"stages": "process"}),
        ("render_no_video", 6, {"video": False}),
        ("render_no_video_no_colour", 6, {"video": False, "colour": "none"}),
        ("render_thread_again", 6, {"stages": "thread"}),
        ("render_process_again", 6, {"stages": "process"}),
    ]
    for label, factor, options in variants:
        step(label, lambda f=factor, o=options: _render(b, size, frames, f, **dict(o)))
    if args.profile:
        step("profile", lambda: _profile(torch, b, frame, kw, out))
    print("\n== summary")
    for k, v in report.items():
        if isinstance(v, dict):
            rounded = {a: round(x, 2) if isinstance(x, float) else x for a, x in v.items()}
            print(k, json.dumps(rounded))


if __name__ == "__main__":
    main()
