"""``loopwave bench``: how fast is each stage of a render on this machine, and the whole?

Measures, with one model and size:

* UNet iterations/s at batch 2 (classifier-free guidance), no host sync per step;
* img2img time per frame at the given steps and strength;
* ``color_correct`` ms per frame (batch of 8);
* flow interpolation: in-between frames per second;
* H.264 encoding frames per second (PyAV);
* a whole render (colour plan on, interpolation, H.264) in frames/s, from the
  first loop frame to the finished video, and that as a share of the
  UNet-only rate (UNet it/s divided by the UNet calls a frame needs) — the
  share the other stages cost.

``--tricks`` also times the UNet with each speed option of
:func:`loopwave.backends.check_accel` alone, and a chain of img2img calls fed
their own output (the loop with colour correction off) with and without
``device_frames`` and ``device_rng``. ``--unet`` and ``--vae`` run those parts as
exported graphs (``onnx``: onnxruntime; ``tensorrt``: an fp16 engine; see
:mod:`loopwave.trt`). Prints a table and writes JSON
(``--json``) with the device, versions and command. Models: ``smoke`` (the
tiny embedded model; the default, runs in seconds on a CPU), ``sd15-random``
(SD 1.5's architecture and size with random weights: real compute, no
download; meant for a GPU), or a local diffusers folder / ``.safetensors``.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .trt import RUNTIMES, check_exported

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["median_time", "run_bench"]


def _sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, after one warm-up call
    (compilation, caches); the benchmarks under benches/ use it too."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _backend(
    model: str, device: str, accel: dict[str, Any] | None, allow_pickle: bool = False
) -> Any:
    from .backends import load_backend, smoke_backend

    if model == "smoke":
        return smoke_backend(device="cpu" if device == "auto" else device, accel=accel)
    if model == "sd15-random":
        from .sd15 import sd15_random_backend

        return sd15_random_backend(device=device, accel=accel)
    return load_backend("diffusers", model, device=device, accel=accel, allow_pickle=allow_pickle)


def unet_calls(backend: Any, fn: Callable[[], Any]) -> int:
    """How many times ``fn`` calls the backend's UNet (a forward pre-hook, removed after)."""
    n = 0

    def count(*_: Any) -> None:
        nonlocal n
        n += 1

    hook = backend.pipe.unet.register_forward_pre_hook(count)
    try:
        fn()
    finally:
        hook.remove()
    return n


def unet_its(
    backend: Any, size: int, iterations: int, min_seconds: float = 1.0, repeats: int = 3
) -> float:
    """UNet iterations per second at batch 2 and ``size`` pixels (latents size/8).

    At least ``iterations`` calls, and more when they take under ``min_seconds``
    (a fast GPU runs a handful of calls in milliseconds: too short to time); the median
    of ``repeats`` such runs (one run was the figure, and a stall in it distorted every
    share of it in the report: "render / UNet only 661%")."""
    import torch

    pipe, dev = backend.pipe, backend.device
    dtype = next(pipe.text_encoder.parameters()).dtype
    cfg = pipe.unet.config
    g = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(2, cfg.in_channels, size // 8, size // 8, generator=g).to(dev, dtype)
    ctx = torch.randn(2, 77, cfg.cross_attention_dim, generator=g).to(dev, dtype)
    t = torch.tensor([500.0, 500.0], device=dev)

    def run(n: int) -> None:
        with torch.inference_mode():
            for _ in range(n):
                pipe.unet(x, t, ctx, return_dict=False)
        _sync(torch, dev)

    def timed(n: int) -> float:
        start = time.perf_counter()
        run(n)
        return time.perf_counter() - start

    run(2)  # warm-up
    n = iterations
    while (took := timed(n)) < min_seconds and n < 10_000:
        n = max(n + 1, int(n * 1.2 * min_seconds / max(took, 1e-6)))
    rates = [n / took] + [n / timed(n) for _ in range(max(repeats, 1) - 1)]
    return statistics.median(rates)


def render_settings(
    frames: int, size: int, steps: int, strength: float, factor: int, colour: str = "plan"
) -> Settings:
    """The render the benchmark times: ``frames`` square frames at one steps x strength,
    a colour plan of one keyframe (or ``colour`` "first"/"none"), flow interpolation."""
    from .settings import Settings

    return Settings.from_dict(
        {
            "version": 1,
            "render": {"frames": frames, "width": size, "height": size, "steps": f"0: ({steps})"},
            "denoise": {"mode": "schedule", "schedule": f"0: ({strength})"},
            "colour": {"mode": colour, "keyframe_every": frames, "renders": 1},
            "interpolation": {"factor": factor, "backend": "flow"},
            "prompts": {"0": "a castle"},
        }
    )


def timed_render(
    s: Settings, run_dir: Path, backend: Any, **options: Any
) -> tuple[list[float], float]:
    """Render ``s`` into ``run_dir``; returns when each frame left the render loop and
    when the whole render (video and drift plot included) ended (``time.perf_counter``)."""
    from .render import render

    stamps: list[float] = []
    render(
        s,
        run_dir=run_dir,
        backend=backend,
        progress=False,
        on_frame=lambda _i, _f: stamps.append(time.perf_counter()),
        **options,
    )
    return stamps, time.perf_counter()


def run_bench(
    *,
    model: str = "smoke",
    size: int | None = None,
    steps: int = 20,
    strength: float = 0.5,
    frames: int = 12,
    factor: int = 6,
    device: str = "auto",
    unet: str = "torch",
    vae: str = "torch",
    accel: dict[str, Any] | None = None,
    tricks: bool = False,
    repeats: int = 3,
    engine_dir: str | os.PathLike[str] | None = None,
    allow_pickle: bool = False,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the measurements (see the module docs); returns the JSON-able report.

    With ``unet`` or ``vae`` exported, the graphs (and TensorRT engines) go to a
    temporary folder, made afresh each run, or with ``engine_dir`` to a folder under it
    keyed as a render keys them (the model's files, the size, the versions), where a
    later run finds and reuses them. ``allow_pickle``: a ``.ckpt`` model you trust (as
    :func:`loopwave.backends.load_backend` takes it). ``command``: the command line
    that ran it, for the report (the CLI's)."""
    from . import color_correct
    from .backends import MAX_STEPS, _deps, check_backend_args, compiled_parts
    from .interpolate import _cv2, interpolate
    from .video import VideoWriter, _av

    if size is None:
        size = 128 if model == "smoke" else 512
    for name, v, lo in (
        ("size", size, 64),
        ("steps", steps, 1),
        ("frames", frames, 3),
        ("repeats", repeats, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
    if size % 8:
        raise ValueError(f"size must be a multiple of 8; got {size}")
    if frames > 1_000_000:  # (a render's bound: it was found after every stage was timed)
        raise ValueError(f"frames must be at most 1000000; got {frames}")
    if size > 4096:  # as demo: 16384 failed allocating, after the model was built
        raise ValueError(f"size must be at most 4096; got {size}")
    if steps > MAX_STEPS:  # img2img refused it, after the model was built and timed
        raise ValueError(f"steps must be at most {MAX_STEPS}; got {steps}")
    if not 1 / MAX_STEPS <= strength <= 1:  # below, img2img runs no step: nothing to time
        raise ValueError(f"strength must be in [1/{MAX_STEPS}, 1]; got {strength}")
    # as interpolate() checks it, but before the model loads and the other measurements
    if isinstance(factor, bool) or not isinstance(factor, int) or not 2 <= factor <= 16:
        raise ValueError(f"factor must be an int in 2..16; got {factor!r}")
    # each named with its extra, before the model is built (PyAV and OpenCV were needed
    # only after it, and the first measurements); after the plain checks above, which a
    # review found came after 6.5 s of imports
    _av()  # (before torch's import, 6 s: a missing PyAV was named after it)
    _cv2()
    torch, _ = _deps()
    # before the weights are built (a billion for sd15-random)
    checked, dev = check_backend_args(torch, device, None, accel)
    on = "cpu" if model == "smoke" and device == "auto" else dev  # as _backend places it
    check_exported(on, unet=unet, vae=vae, compiled=compiled_parts(checked))
    if engine_dir is not None:
        from ._validate import folder, unmakeable

        engine_dir = folder(engine_dir, "engine_dir")
        why = unmakeable(engine_dir)  # (a file, or a file above it: found after the model)
        if why is not None:
            raise type(why)(f"engine_dir: {why}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        backend = _backend(model, device, accel, allow_pickle)
        if unet != "torch" or vae != "torch":
            from .render import _graph_dir
            from .trt import use_exported

            graphs: str | Path = d
            if engine_dir is not None:
                kind = model if model in ("smoke", "sd15-random") else "diffusers"
                m = {"backend": kind, "path": model, "lora": [], "engine_dir": engine_dir}
                graphs = _graph_dir(m, size, size)
            use_exported(backend, unet=unet, vae=vae, height=size, width=size, directory=graphs)
        dev = backend.device
        log(f"model: {backend.label} on {dev}; {size}x{size}, {steps} steps, strength {strength}")
        results["unet_its"] = unet_its(backend, size, max(4, 2 * repeats), repeats=max(3, repeats))
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        kw = {"prompt": "a castle", "negative": "", "strength": strength, "steps": steps}
        # UNet calls per img2img frame, counted (a second-order scheduler makes two a
        # step, PNDM one more than its steps), in a call that also warms up
        calls = unet_calls(backend, lambda: backend.img2img(frame, cfg=7.0, seed=1, **kw))
        results["img2img_ms"] = 1e3 * median_time(
            lambda: backend.img2img(frame, cfg=7.0, seed=1, **kw), repeats
        )
        batch = np.stack([frame] * 8)
        results["colour_ms"] = 1e3 * median_time(lambda: color_correct(batch, frame), repeats) / 8
        # a stream of 9 frames, as the renderer's encoder stage interpolates it
        # (pairs in parallel where the machine has the cores)
        seq = [np.roll(frame, 3 * i, axis=1) for i in range(9)]
        made = (len(seq) - 1) * (factor - 1)
        took = median_time(
            lambda: sum(1 for _ in interpolate(seq, factor=factor, scene_cut=False)), repeats
        )
        results["interpolation_fps"] = made / took
        # moving frames (the stream above, over and over): copies of one frame, as timed
        # before, x264 codes as skips, about twice as fast as frames that change
        n_enc = 30
        moving = np.stack([seq[i % len(seq)] for i in range(n_enc)])
        with VideoWriter(Path(d) / "e.mp4", fps=60, codec="h264", crf=18) as w:

            def encode() -> None:
                w.write(moving)
                w.flush()

            results["encode_fps"] = n_enc / median_time(encode, repeats)
        s = render_settings(frames, size, steps, strength, factor)
        stamps, end = timed_render(s, Path(d) / "run", backend)
        unet_only = results["unet_its"] / calls
        # end to end: frame 0 out to the finished video (frame 0 is made before the loop)
        results["render_fps"] = (frames - 1) / (end - stamps[0])
        # steady: the loop's median frame interval, without the tail after the last frame
        # (saving, interpolating and encoding what is still queued, the drift plot)
        results["render_steady_fps"] = 1.0 / float(np.median(np.diff(stamps[1:])))
        results["render_tail_s"] = end - stamps[-1]
        results["unet_only_fps"] = unet_only
        results["render_share_of_unet_only"] = results["render_fps"] / unet_only
        results["render_steady_share_of_unet_only"] = results["render_steady_fps"] / unet_only
        # a loopback frame cannot start before the previous one is decoded, so img2img
        # alone (VAE encode and decode, scheduler, transfers included) is the render's ceiling
        results["img2img_share_of_unet_only"] = 1e3 / results["img2img_ms"] / unet_only
        if (accel or {}).get("device_frames") and not tricks:
            log(
                "note: device_frames changes none of these figures (img2img is timed from "
                "one fixed frame, and the render corrects colour); --tricks times it in a "
                "chain of img2img calls"
            )
        if tricks:
            if unet != "torch" or vae != "torch":
                # (the report's settings named the exported parts beside these figures)
                log(
                    "note: --tricks times torch's UNet and img2img with torch's speed "
                    "options: the exported parts are not in its figures"
                )
                results["tricks_runtime"] = "torch"
            results["tricks_unet_its"] = _tricks(model, device, size, repeats, log, allow_pickle)
            results["tricks_chained_img2img_ms"] = _chained(
                model, device, accel or {}, frame, kw, repeats, log, allow_pickle
            )
    report = {
        # (sys.argv joined was not a command a shell could run again, and from a script
        # it named the script's own arguments)
        "command": command,
        "device": _device_name(torch, dev),
        "machine": f"{platform.processor() or platform.machine()}, {_cores()} cores",
        "versions": _versions(),
        "settings": {
            "model": model,
            "size": size,
            "steps": steps,
            "strength": strength,
            "unet_calls_per_frame": calls,
            "frames": frames,
            "interpolation": factor,
            "unet": unet,
            "vae": vae,
            "accel": accel or {},
        },
        "results": results,
    }
    _table(report, log)
    return report


def _tricks(
    model: str,
    device: str,
    size: int,
    repeats: int,
    log: Callable[[str], None],
    allow_pickle: bool = False,
) -> dict[str, float | None]:
    variants: dict[str, dict[str, Any]] = {
        "baseline (SDPA)": {},
        "SDPA off": {"sdpa": False},
        "channels-last": {"channels_last": True},
        "compile unet": {"compile": ["unet"]},
        "compile unet + CUDA graphs": {"compile": ["unet"], "cuda_graphs": True},
    }
    out: dict[str, float | None] = {}
    on_gpu = None  # known from the baseline, built first
    for name, accel in variants.items():
        if accel.get("cuda_graphs") and not on_gpu:
            continue  # CUDA graphs exist only on a GPU
        try:
            b = _backend(model, device, accel, allow_pickle)
            on_gpu = b.device.type == "cuda"
            out[name] = unet_its(b, size, max(4, 2 * repeats), repeats=max(3, repeats))
            log(f"  UNet with {name}: {out[name]:.2f} it/s")
        except Exception as e:  # (torch.compile without a C compiler, ...)
            _failed(name, e, log)
            out[name] = None
        b = None
        _release()  # before the next variant is built: one at a time beside the run's own
    return out


def _failed(name: str, e: Exception, log: Callable[[str], None]) -> None:
    """Say that a variant failed (torch.compile without a C compiler, a GPU out of
    memory); the report holds None for it, where the failure lost every figure measured
    before it."""
    log(f"  {name}: failed ({type(e).__name__}: {str(e)[:200]})")


def _release() -> None:
    """Free a dropped backend's memory now (a billion weights for sd15-random)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _chained(
    model: str,
    device: str,
    accel: dict[str, Any],
    frame: np.ndarray,
    kw: dict[str, Any],
    repeats: int,
    log: Callable[[str], None],
    allow_pickle: bool = False,
) -> dict[str, float | None]:
    """ms per frame of img2img fed its own output: uploading each frame or not, and
    with noise drawn on the device."""
    out: dict[str, float | None] = {}
    variants = {
        # device_rng off where the label does not say it, whatever the run's own options
        "upload each frame": {"device_frames": False, "device_rng": False},
        "device_frames": {"device_frames": True, "device_rng": False},
        "device_frames + device_rng": {"device_frames": True, "device_rng": True},
    }
    for name, opts in variants.items():
        try:
            b = _backend(model, device, {**accel, **opts}, allow_pickle)

            def chain(b: Any = b) -> None:
                x = frame
                for i in range(4):
                    x = b.img2img(x, cfg=7.0, seed=i, **kw)

            out[name] = 1e3 * median_time(chain, repeats) / 4
            log(f"  img2img chained, {name}: {out[name]:.1f} ms/frame")
            del chain
        except Exception as e:
            _failed(f"img2img chained, {name}", e, log)
            out[name] = None
        b = None
        _release()
    return out


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def _device_name(torch: Any, dev: Any) -> str:
    if dev.type == "cuda":
        return str(torch.cuda.get_device_name(dev))
    return f"CPU ({platform.processor() or platform.machine()}, {_cores()} cores)"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("loopwave", "torch", "diffusers", "onnxruntime", "av", "tensorrt"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _table(report: dict[str, Any], log: Callable[[str], None]) -> None:
    r, st = report["results"], report["settings"]
    rows = [
        ("UNet, batch 2", f"{r['unet_its']:.2f} it/s"),
        (f"img2img ({st['steps']} steps x {st['strength']})", f"{r['img2img_ms']:.1f} ms/frame"),
        ("color_correct", f"{r['colour_ms']:.2f} ms/frame"),
        (f"flow interpolation x{st['interpolation']}", f"{r['interpolation_fps']:.1f} frames/s"),
        ("H.264 encode", f"{r['encode_fps']:.1f} frames/s"),
        ("render, end to end", f"{r['render_fps']:.2f} frames/s"),
        ("render, steady (median frame)", f"{r['render_steady_fps']:.2f} frames/s"),
        ("render, tail after the last frame", f"{r['render_tail_s']:.2f} s"),
        (
            f"UNet only ({st['unet_calls_per_frame']} calls/frame)",
            f"{r['unet_only_fps']:.2f} frames/s",
        ),
        ("render / UNet only", f"{r['render_share_of_unet_only']:.0%}"),
        ("render steady / UNet only", f"{r['render_steady_share_of_unet_only']:.0%}"),
        ("img2img alone / UNet only (ceiling)", f"{r['img2img_share_of_unet_only']:.0%}"),
    ]
    log(f"device: {report['device']}")
    for k, v in rows:
        log(f"  {k:<36} {v:>18}")


def add_cli(sub: Any) -> None:
    """Register ``loopwave bench``."""
    p = sub.add_parser("bench", help="measure generation, colour, interpolation, encoding, render")
    p.add_argument("--model", default="smoke", help="smoke, sd15-random or a local model path")
    p.add_argument("--size", type=int, help="frame side in pixels (128 smoke, else 512)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--strength", type=float, default=0.5)
    p.add_argument("--frames", type=int, default=12, help="frames of the end-to-end render")
    p.add_argument("--factor", type=int, default=6, help="interpolation factor (2..16)")
    p.add_argument("--device", default="auto")
    p.add_argument("--unet", default="torch", choices=RUNTIMES)
    p.add_argument(
        "--vae",
        default="torch",
        choices=RUNTIMES,
        help="run the VAE encoder and decoder as exported graphs",
    )
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", default="", help="comma list of unet, vae")
    p.add_argument("--cuda-graphs", action="store_true")
    p.add_argument("--no-sdpa", action="store_true")
    p.add_argument(
        "--device-frames",
        action="store_true",
        help="keep each output on the device for the next init (colour off; only "
        "--tricks' chained img2img times it)",
    )
    p.add_argument("--device-rng", action="store_true", help="draw noise on the device")
    p.add_argument(
        "--tricks",
        action="store_true",
        help="also time the UNet with each speed option alone, and chained img2img "
        "with and without device_frames and device_rng",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load a pickled .ckpt --model (it can run code: only a file you trust)",
    )
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument(
        "--engine-dir",
        metavar="DIR",
        help="keep the exported graphs and engines of --unet/--vae under DIR and reuse "
        "them in later runs (default: a temporary folder, exported afresh each run)",
    )

    def run(a: Any) -> int:
        if a.json is not None and not a.json.strip():  # ignored before: no report, no error
            raise ValueError("--json: expected a file path; got ''")
        if a.json and (Path(a.json).is_dir() or not Path(a.json).parent.is_dir()):
            # checked first: the measurements take minutes
            raise OSError(f"--json: cannot write {a.json} (a folder, or its folder is missing)")
        if a.json and not os.access(Path(a.json).parent, os.W_OK):  # found out at the end
            raise OSError(f"--json: cannot write {a.json} (its folder is not writable)")
        if a.model.lower().endswith(".ckpt") and not a.allow_pickle:
            # (load_backend's own refusal pointed to a settings key bench does not read)
            raise ValueError(
                f"--model: {a.model} is a pickled checkpoint, which can run code when "
                "loaded; convert it to .safetensors, or if you trust it pass --allow-pickle"
            )
        parts = [x.strip() for x in a.compile.split(",") if x.strip()]
        if any(x not in ("unet", "vae") for x in parts):
            raise ValueError(f"--compile: expected a comma list of unet, vae; got {a.compile!r}")
        accel = {
            "channels_last": a.channels_last,
            "compile": parts,
            "cuda_graphs": a.cuda_graphs,
            "sdpa": not a.no_sdpa,
            "device_frames": a.device_frames,
            "device_rng": a.device_rng,
        }
        report = run_bench(
            model=a.model,
            size=a.size,
            steps=a.steps,
            strength=a.strength,
            frames=a.frames,
            factor=a.factor,
            device=a.device,
            unet=a.unet,
            vae=a.vae,
            accel=accel,
            tricks=a.tricks,
            repeats=a.repeats,
            engine_dir=a.engine_dir,
            allow_pickle=a.allow_pickle,
            command=shlex.join(["loopwave", *getattr(a, "argv", sys.argv[1:])]),
        )
        if a.json:
            from .plan import _atomic_json

            try:
                _atomic_json(Path(a.json), report)  # whole or not at all
            except OSError as e:  # a full disk: the report still reaches the user
                print(json.dumps(report, indent=2))
                msg = f"--json: could not write {a.json} ({e}); the report is printed above"
                raise OSError(msg) from e
            print(f"report: {a.json}")
        return 0

    p.set_defaults(func=run)
