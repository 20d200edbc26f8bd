"""color_correct against the seed's step at one size, fastest and median, in turns.

    python benches/bench_seed_ratio.py [--size 1920x1080] [--rounds 12] [--blendmodes DIR]

bench_color.py reports medians. On a shared machine the seed's step (about a second per
1080p frame, single-threaded numpy and Python) swings by up to 2x from minute to minute, and
its median drifts with it. Here each round times one seed step (one frame), one
color_correct call over a batch of 8 with a new result (its memory that of the result
dropped before it: the buffer cache), one with the buffer cache off (fresh pages from the
OS for every result), one into a reused ``out=`` array, and one call on a single frame with
a target of its own, as the renderer makes it (a frame at a time, each with the colour
plan's target for it: the target's statistics are worked out on every call, where the
batch's shared target has them once for eight frames), one on a single frame toward the
batch's one target, and the same with that target made a ``ColorTarget`` once before the
rounds (a video graded a frame at a time toward one reference), so every round sees the
same load; the ratio of the fastest times compares each side at its least disturbed, and the
median of the per-round ratios (each seed step against the calls of its own round) pairs
the two sides under the same moment's load.

``--blendmodes DIR`` also times, in the same rounds, the seed's step with the blendmodes
package in DIR (for example ``pip install --no-deps --target DIR blendmodes==2022``, the
version AUTOMATIC1111's web UI pins, in whose environment the seed's script ran): up to
its 2024 releases blendmodes' LUMINOSITY ran a Python loop over the pixels (SetLum), which
its 2025 release, the one the project's ``bench`` extra installs, took out.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import loopwave as lw  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_color import machine, photos, seed_step  # noqa: E402


def load_blendmodes(folder: str) -> tuple[object, str]:
    """``blendmodes.blend`` from the package in ``folder`` (as ``pip install --target``
    leaves it), under another name beside the installed one, and its version."""
    import importlib.metadata
    import importlib.util

    pkg = Path(folder) / "blendmodes"
    if not (pkg / "blend.py").is_file():
        raise SystemExit(f"--blendmodes: no blendmodes package in {folder}")
    spec = importlib.util.spec_from_file_location(
        "blendmodes_alt", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
    )
    assert spec is not None and spec.loader is not None
    sys.modules["blendmodes_alt"] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import blendmodes_alt.blend as blend  # type: ignore[import-not-found]

    dists = list(importlib.metadata.distributions(path=[folder]))
    version = next((d.version for d in dists if d.metadata["Name"] == "blendmodes"), "?")
    return blend, version


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="1920x1080", help="WxH")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--blendmodes", metavar="DIR", help="also the seed's step with this blendmodes")
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    n = 8
    frames, targets = photos(h, w, n)
    target = targets[0]
    out = np.empty_like(frames)
    prepared = lw.ColorTarget(target)  # made once, as a video graded toward it would
    cache = lw.buffer_cache_info()["max_bytes"]
    # (call, frames per call, the buffer cache's limit while it runs)
    calls = {
        "seed step (1 frame)": (lambda i: seed_step(frames[i % n], target), 1, cache),
        "color_correct": (lambda i: lw.color_correct(frames, target), n, cache),
        "color_correct cache off": (lambda i: lw.color_correct(frames, target), n, 0),
        "color_correct out=": (lambda i: lw.color_correct(frames, target, out=out), n, cache),
        "color_correct 1 frame, own target": (
            lambda i: lw.color_correct(frames[i % n], targets[i % n]),
            1,
            cache,
        ),
        "color_correct 1 frame, one target": (
            lambda i: lw.color_correct(frames[i % n], target),
            1,
            cache,
        ),
        "color_correct 1 frame, ColorTarget": (
            lambda i: lw.color_correct(frames[i % n], prepared),
            1,
            cache,
        ),
    }
    alt = None
    if a.blendmodes:
        blend, version = load_blendmodes(a.blendmodes)
        alt = f"seed step, blendmodes {version}"
        calls[alt] = (lambda i: seed_step(frames[i % n], target, blend), 1, cache)
        # the same step with another version of one library: how far their outputs differ
        diffs = [
            np.abs(
                seed_step(frames[i], target).astype(np.int16)
                - seed_step(frames[i], target, blend).astype(np.int16)
            )
            for i in range(min(n, 2))
        ]
        print(
            f"the seed's step with blendmodes {version} differs from it by at most "
            f"{max(int(d.max()) for d in diffs)} levels (mean {np.mean(diffs):.2f})"
        )
    ms: dict[str, list[float]] = {k: [] for k in calls}
    try:
        for i in range(-1, a.rounds):  # round -1 warms up and is not recorded
            results = []
            for k, (fn, per, limit) in calls.items():
                lw.set_buffer_cache(limit)
                t = time.perf_counter()
                results.append(fn(i))
                if i >= 0:
                    ms[k].append((time.perf_counter() - t) / per * 1e3)
            # the round's results live until here, so the cache-off row's limit of 0
            # cannot release the buffer of the new result before it; dropped with the
            # limit back, that buffer returns to the cache for the next round's
            lw.set_buffer_cache(cache)
            del results
    finally:
        lw.set_buffer_cache(cache)  # the cache-off row's limit never outlives the run
    res = {k: np.array(v) for k, v in ms.items()}

    def line(k: str, v: np.ndarray, seed: np.ndarray | None) -> str:
        out = f"  {k:<34} fastest {v.min():9.2f}  median {np.median(v):9.2f}"
        if seed is None:
            return out
        # each round's pair saw the same moment's load: the median of the per-round
        # ratios, with the middle half of them, is the paired estimate
        q1, q2, q3 = np.percentile(seed / v, [25, 50, 75])
        return out + (
            f"   speed-up: fastest/fastest {seed.min() / v.min():5.1f}x, "
            f"median/median {np.median(seed) / np.median(v):5.1f}x, "
            f"per round {q2:5.1f}x (middle half {q1:.0f}-{q3:.0f}x)"
        )

    ours = [k for k in res if not k.startswith("seed step")]
    print(f"{machine()}; {a.size}, {a.rounds} rounds, ms per frame")
    for k, v in res.items():
        print(line(k, v, None if k not in ours else res["seed step (1 frame)"]))
    if alt is not None:
        print(f"against the seed's step with {alt.removeprefix('seed step, ')}:")
        for k in ours:
            print(line(k, res[k], res[alt]))
    return res


if __name__ == "__main__":
    main()
