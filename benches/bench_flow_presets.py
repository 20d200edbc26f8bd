"""The flow interpolator's DIS presets side by side: time per pair and how close the
in-between comes to the true one.

    python benches/bench_flow_presets.py [--size 1920x1080] [--rounds 8]

A photograph (scikit-image's astronaut, resized) and the same photograph moved along a
known path (zoom 1 -> 1.02, turn 0 -> 1 degree, shift 0 -> (12, 6) pixels, bilinear):
the frame halfway along that path is the true in-between. Each preset's
``FlowInterpolator(preset=...)`` makes the 2x in-between (one pair's flows and one
frame) and the five of a 6x interpolation, in turns, so load that comes and goes hits
every preset alike; the fastest and median times are printed, with the ratio of each
preset's fastest to medium's, and the PSNR of its t = 0.5 frame against the true one
(the middle 90% of the frame, away from the edges the move uncovers), beside a plain
cross-fade's. ``loopwave render`` takes the preset as ``interpolation.flow_preset``,
``loopwave interpolate`` as ``--flow-preset``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import loopwave as lw  # noqa: E402
from loopwave.interpolate import BlendInterpolator, FlowInterpolator  # noqa: E402

PRESETS = ("medium", "fast", "ultrafast")


def moved(a: np.ndarray, t: float) -> np.ndarray:
    """``a`` a fraction ``t`` along the benchmark's path."""
    h, w = a.shape[:2]
    m = lw.motion_matrix(h, w, zoom=1 + 0.02 * t, angle=1.0 * t, translate=(12 * t, 6 * t))
    return lw.warp_affine(a, m)


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    h, w = x.shape[:2]
    cy, cx = h // 20, w // 20
    d = x[cy : h - cy, cx : w - cx].astype(np.float64) - y[cy : h - cy, cx : w - cx]
    return float(10 * np.log10(255.0**2 / max(np.mean(d * d), 1e-12)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1920x1080", help="WxH")
    p.add_argument("--rounds", type=int, default=8)
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    import cv2
    from skimage import data

    photo = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)
    b, truth = moved(photo, 1.0), moved(photo, 0.5)
    sixths = [k / 6 for k in range(1, 6)]
    interps = {name: FlowInterpolator(preset=name) for name in PRESETS}
    for f in interps.values():  # first use: DIS objects, buffers
        f.between(photo, b, [0.5])
    ms: dict[str, dict[str, list[float]]] = {n: {"2x": [], "6x": []} for n in PRESETS}
    for r in range(a.rounds):
        order = PRESETS if r % 2 == 0 else PRESETS[::-1]
        for name in order:
            for kind, ts in (("2x", [0.5]), ("6x", sixths)):
                t0 = time.perf_counter()
                interps[name].between(photo, b, ts)
                ms[name][kind].append((time.perf_counter() - t0) * 1e3)
    blend = psnr(BlendInterpolator().between(photo, b, [0.5])[0], truth)
    print(
        f"{w}x{h}, loopwave threads {lw.get_num_threads()}, OpenCV threads "
        f"{cv2.getNumThreads()}, {a.rounds} rounds; ms per pair (flows and the in-betweens)"
    )
    print(f"{'preset':<10} {'2x fastest':>10} {'median':>8} {'vs medium':>9} "
          f"{'6x fastest':>10} {'median':>8} {'vs medium':>9} {'PSNR t=0.5':>10}")  # fmt: skip
    base = {k: min(ms["medium"][k]) for k in ("2x", "6x")}
    for name in PRESETS:
        q = psnr(interps[name].between(photo, b, [0.5])[0], truth)
        row = [f"{name:<10}"]
        for k in ("2x", "6x"):
            t = ms[name][k]
            row.append(f"{min(t):10.1f} {np.median(t):8.1f} {base[k] / min(t):8.2f}x")
        print(" ".join(row) + f" {q:9.2f} dB")
    print(f"{'cross-fade':<10} {'':>10} {'':>8} {'':>9} {'':>10} {'':>8} {'':>9} {blend:9.2f} dB")


if __name__ == "__main__":
    main()
