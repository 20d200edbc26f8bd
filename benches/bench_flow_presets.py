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
cross-fade's. The PSNR is given for a second pair too, where detail moves by itself: a
cat (scikit-image's chelsea, a quarter of the frame's width) crosses the same moving
photograph the other way, by ``--cat-move`` of the frame's width (default 3%) and a
quarter of that of its height, so parts of the background are covered and uncovered
between the two frames (the true in-between has the cat halfway, on the background
halfway). Times are of the first pair. DIS follows such a cat up to about 5% of the
width at 1920x1080 (about 4% at 640x360, where ``fast`` and ``ultrafast`` lose it
first); at ``--cat-move 0.08`` every preset loses it, the cat is only cross-faded,
and the pair's PSNR at 1920x1080 falls from about 31.5 dB (at 0.03) to about 23 (a
cross-fade's 19-20). ``loopwave render`` takes the preset as ``interpolation.flow_preset``,
``loopwave interpolate`` as ``--flow-preset``.
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
from loopwave.interpolate import BlendInterpolator, FlowInterpolator  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_color import loopwave_source  # noqa: E402

PRESETS = ("medium", "fast", "ultrafast")


def moved(a: np.ndarray, t: float) -> np.ndarray:
    """``a`` a fraction ``t`` along the benchmark's path."""
    h, w = a.shape[:2]
    m = lw.motion_matrix(h, w, zoom=1 + 0.02 * t, angle=1.0 * t, translate=(12 * t, 6 * t))
    return lw.warp_affine(a, m)


def with_cat(a: np.ndarray, cat: np.ndarray, t: float, move: float) -> np.ndarray:
    """``a`` moved a fraction ``t`` along the path, the cat pasted on it a fraction ``t``
    along its own, ``move`` of the width left and a quarter of that down (whole pixels:
    its moves are even numbers of pixels)."""
    h, w = a.shape[:2]
    out = moved(a, t)
    ch, cw = cat.shape[:2]
    dx, dy = 2 * round(move * w / 2), 2 * round(move * w / 8)  # (halves are whole)
    x, y = round(0.55 * w - dx * t), round(0.3 * h + dy * t)
    out[y : y + ch, x : x + cw] = cat
    return out


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    h, w = x.shape[:2]
    cy, cx = h // 20, w // 20
    d = x[cy : h - cy, cx : w - cx].astype(np.float64) - y[cy : h - cy, cx : w - cx]
    return float(10 * np.log10(255.0**2 / max(np.mean(d * d), 1e-12)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1920x1080", help="WxH")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--cat-move", type=float, default=0.03, help="of the width (0.03)")
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    import cv2
    from skimage import data

    photo = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)
    b, truth = moved(photo, 1.0), moved(photo, 0.5)
    cw = w // 4
    cat = cv2.resize(data.chelsea(), (cw, max(1, cw * 300 // 451)), interpolation=cv2.INTER_AREA)
    # a, b and the true middle
    local = [with_cat(photo, cat, t, a.cat_move) for t in (0.0, 1.0, 0.5)]
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
    fade = BlendInterpolator()
    blend = psnr(fade.between(photo, b, [0.5])[0], truth)
    blend_local = psnr(fade.between(local[0], local[1], [0.5])[0], local[2])
    print(
        f"{w}x{h}, loopwave threads {lw.get_num_threads()}, OpenCV threads "
        f"{cv2.getNumThreads()}, {a.rounds} rounds; {loopwave_source()}; ms per pair (flows and "
        "the in-betweens)"
    )
    print(f"{'preset':<10} {'2x fastest':>10} {'median':>8} {'vs medium':>9} "
          f"{'6x fastest':>10} {'median':>8} {'vs medium':>9} {'PSNR t=0.5':>10} "
          f"{'cat':>9}")  # fmt: skip
    base = {k: min(ms["medium"][k]) for k in ("2x", "6x")}
    for name in PRESETS:
        q = psnr(interps[name].between(photo, b, [0.5])[0], truth)
        q_local = psnr(interps[name].between(local[0], local[1], [0.5])[0], local[2])
        row = [f"{name:<10}"]
        for k in ("2x", "6x"):
            t = ms[name][k]
            row.append(f"{min(t):10.1f} {np.median(t):8.1f} {base[k] / min(t):8.2f}x")
        print(" ".join(row) + f" {q:9.2f} dB {q_local:6.2f} dB")
    print(
        f"{'cross-fade':<10} {'':>10} {'':>8} {'':>9} {'':>10} {'':>8} {'':>9} {blend:9.2f} dB "
        f"{blend_local:6.2f} dB"
    )


if __name__ == "__main__":
    main()
