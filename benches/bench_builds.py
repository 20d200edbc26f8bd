"""Two builds of the native module timed against each other, in one process, in turns.

    python benches/bench_builds.py OLD.so NEW.so [--rounds 24] [--threads 1] [--dtype uint8]
                                   [--kernel color_correct|blend_luminosity|match_gamma|
                                             flow_interpolate] [--inbetweens 8]

How a kernel change is judged on a shared machine whose speed moves by up to 2x from
minute to minute: each build is a copy of ``_native.abi3.so`` (``cargo build --release
--features python`` writes ``target/release/lib_native.so``; copy it aside before and
after the change). Both are loaded into this process, called alternately on the same
1080p photographs (bench_color's batch of 8), and the ratio of each round's pair is
taken, so load that comes and goes hits both sides alike. Prints whether the outputs
are identical, each side's fastest and median ms per frame, and the median of the
per-round ratios OLD / NEW (above 1: NEW is faster).

``flow_interpolate`` (the flow interpolator's native pass, uint8 only) makes 8 in-between
frames (``--inbetweens N``: N) of the first photograph and a moved, blurred copy of it,
from DIS flows worked out once by the current package's ``FlowInterpolator``: ms per
in-between frame.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_color import photos  # noqa: E402


def load(path: str, tag: str, tmp: Path) -> ModuleType:
    """Import the extension at ``path`` as its own module (a copy under a package of
    its own, so two builds of one module can live in one process)."""
    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such file")
    pkg = tmp / tag
    pkg.mkdir()
    so = pkg / "_native.abi3.so"
    shutil.copyfile(path, so)
    name = f"{tag}._native"
    loader = importlib.machinery.ExtensionFileLoader(name, str(so))
    spec = importlib.util.spec_from_file_location(name, so, loader=loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument(
        "--kernel",
        choices=["color_correct", "blend_luminosity", "match_gamma", "flow_interpolate"],
        default="color_correct",
    )
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--threads", type=int, default=1, help="worker threads (0: all cores)")
    p.add_argument("--dtype", choices=["uint8", "float32"], default="uint8")
    p.add_argument(
        "--inbetweens",
        type=int,
        default=8,
        help="flow_interpolate: in-between frames a call (1: a 2x interpolation, whose "
        "one call also works out the pair's visibilities)",
    )
    a = p.parse_args(argv)
    frames, targets = photos(1080, 1920, 8)
    target = targets[:1]
    if a.dtype == "float32":
        frames = (frames / 255).astype(np.float32)
        target = (target / 255).astype(np.float32)
    luma = np.ascontiguousarray(np.roll(frames, 1, axis=0))
    if a.kernel == "flow_interpolate":
        import cv2

        from loopwave.interpolate import FlowInterpolator

        if a.dtype != "uint8":
            raise SystemExit("flow_interpolate takes --dtype uint8 only")
        moved = np.roll(cv2.GaussianBlur(frames[0], (5, 5), 1.5), (6, -11), axis=(0, 1))
        pair = np.stack([frames[0], moved])
        flows = np.stack(FlowInterpolator().flows(pair[0], pair[1])).astype(np.float32)
        if not 1 <= a.inbetweens <= 8:
            raise SystemExit("--inbetweens: 1..8")
        ts = np.arange(1, a.inbetweens + 1) / (a.inbetweens + 1.0)
        frames = frames[: len(ts)]  # (ms per in-between frame)
    with tempfile.TemporaryDirectory() as d:
        mods = [load(a.old, "build_old", Path(d)), load(a.new, "build_new", Path(d))]
        outs = [np.empty_like(frames) for _ in mods]
        for m in mods:
            m.set_num_threads(a.threads)

        def call(i: int) -> Any:
            m = mods[i]
            if a.kernel == "color_correct":
                return m.color_correct(frames, target, True, outs[i])[0]
            if a.kernel == "match_gamma":
                return m.match_gamma(frames, target)[0]
            if a.kernel == "flow_interpolate":
                return m._flow_interpolate(pair, flows, ts, 1.5)
            return m.blend_luminosity(frames, luma)

        same = np.array_equal(call(0), call(1))
        ms: list[list[float]] = [[], []]
        for r in range(a.rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                t = time.perf_counter()
                call(i)
                ms[i].append((time.perf_counter() - t) / len(frames) * 1e3)
    old, new = np.array(ms[0]), np.array(ms[1])
    ratio = float(np.median(old / new))
    print(f"{a.kernel} {a.dtype} 1920x1080, {a.threads or 'all'} thread(s), {a.rounds} rounds")
    print(f"  outputs identical: {same}")
    print(f"  old  fastest {old.min():7.2f}  median {np.median(old):7.2f} ms/frame")
    print(f"  new  fastest {new.min():7.2f}  median {np.median(new):7.2f} ms/frame")
    print(f"  old/new, median of the per-round ratios: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
