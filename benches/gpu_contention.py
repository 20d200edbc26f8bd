"""Does CPU-side interpolation slow the GPU loop down? img2img time alone, beside
interpolation threads (GIL shared), beside an interpolation process (own GIL) and beside
one at a lower priority. (``gpu_session.py`` runs :func:`measure` on its own backend.)

Run on a GPU machine: python benches/gpu_contention.py [--eager] (--smoke: tiny model, CPU)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import threading
import time
from collections.abc import Callable

import numpy as np


def _seq() -> list[np.ndarray]:
    frame = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    return [np.roll(frame, 3 * i, axis=1) for i in range(9)]


def _interpolate_until(stop: threading.Event | object, workers: int) -> None:
    from loopwave.interpolate import interpolate

    seq = _seq()
    while not stop.is_set():  # type: ignore[attr-defined]
        for _ in interpolate(seq, factor=6, scene_cut=False, workers=workers):
            pass


def _niced_interpolation(stop: object, workers: int) -> None:
    import os

    os.nice(10)
    _interpolate_until(stop, workers)


def measure(one: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median ms of ``one()`` (an img2img call) alone, beside interpolation threads (with
    the default switch interval and 0.5 ms), beside an interpolation process and beside
    one at nice 10."""
    from loopwave.bench import median_time

    rows = {"alone": median_time(one, repeats)}
    for label, interval in (("4 interpolation threads", None), ("same, switch 0.5 ms", 5e-4)):
        old = sys.getswitchinterval()
        if interval:
            sys.setswitchinterval(interval)
        stop = threading.Event()
        t = threading.Thread(target=_interpolate_until, args=(stop, 4))
        t.start()
        rows[label] = median_time(one, repeats)
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    ctx = mp.get_context("spawn")
    for label, target in (
        ("interpolation in a process (4 threads)", _interpolate_until),
        ("same, at nice 10", _niced_interpolation),
    ):
        ev = ctx.Event()
        p = ctx.Process(target=target, args=(ev, 4))
        p.start()
        time.sleep(3)  # its imports, before it competes
        rows[label] = median_time(one, repeats)
        ev.set()
        p.join()
    return {k: 1e3 * v for k, v in rows.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--eager", action="store_true", help="no compile, no CUDA graphs")
    p.add_argument("--smoke", action="store_true", help="the tiny model on the CPU: a check")
    args = p.parse_args(argv)
    from loopwave.sd15 import sd15_random_backend

    accel = (
        {}
        if args.eager
        else {"compile": ["unet"], "cuda_graphs": True, "channels_last": True, "device_rng": True}
    )
    if args.smoke:  # a quick check of this script on a CPU
        from loopwave.backends import smoke_backend

        b, frame, repeats = smoke_backend(), _seq()[0][:64, :64], 3
    else:
        b, frame, repeats = sd15_random_backend(accel=accel), _seq()[0], 7
    kw = {"prompt": "a castle", "negative": "", "strength": 0.5, "steps": 20, "cfg": 7.0}
    for k, v in measure(lambda: b.img2img(frame, seed=1, **kw), repeats).items():
        print(f"img2img {k:<42} {v:8.1f} ms")


if __name__ == "__main__":
    main()
