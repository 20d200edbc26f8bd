"""Does CPU-side interpolation slow the GPU loop down? img2img time alone, beside
interpolation threads (GIL shared) and beside an interpolation process (own GIL).

Run on a GPU machine: python benches/gpu_contention.py [--eager] (--smoke: tiny model, CPU)
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading

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


def main() -> None:
    from loopwave.bench import median_time
    from loopwave.sd15 import sd15_random_backend

    accel = (
        {}
        if "--eager" in sys.argv
        else {"compile": ["unet"], "cuda_graphs": True, "channels_last": True, "device_rng": True}
    )
    if "--smoke" in sys.argv:  # a quick check of this script on a CPU
        from loopwave.backends import smoke_backend

        b, frame, repeats = smoke_backend(), _seq()[0][:64, :64], 3
    else:
        b, frame, repeats = sd15_random_backend(accel=accel), _seq()[0], 7
    kw = {"prompt": "a castle", "negative": "", "strength": 0.5, "steps": 20, "cfg": 7.0}

    def one() -> None:
        b.img2img(frame, seed=1, **kw)

    rows = [("alone", 1e3 * median_time(one, repeats))]
    for label, interval in (("4 interpolation threads", None), ("same, switch 0.5 ms", 5e-4)):
        old = sys.getswitchinterval()
        if interval:
            sys.setswitchinterval(interval)
        stop = threading.Event()
        t = threading.Thread(target=_interpolate_until, args=(stop, 4))
        t.start()
        rows.append((label, 1e3 * median_time(one, repeats)))
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    ctx = mp.get_context("spawn")
    ev = ctx.Event()
    p = ctx.Process(target=_interpolate_until, args=(ev, 4))
    p.start()
    rows.append(("interpolation in a process (4 threads)", 1e3 * median_time(one, repeats)))
    ev.set()
    p.join()
    for k, v in rows:
        print(f"img2img {k:<42} {v:8.1f} ms")


if __name__ == "__main__":
    main()
