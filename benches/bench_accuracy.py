"""color_correct's distance from the seed's step computed exactly, in float64.

    python benches/bench_accuracy.py [BUILD.so ...] [--size 1920x1080] [--frames 3]

The reference (tests/reference.py's ``exact_color_step``): CIELAB of frame and target in
float64, scikit-image's exact (sort-based) histogram match, back to sRGB, LUMINOSITY blend
with the frame's own luminance; nothing rounded. loopwave's 8-bit ``color_correct`` (without
the gamma, which the reference lacks) is compared with it on bench_color's photographs, and
the mean, 99.9th percentile and largest differences in 8-bit levels are printed, with the
share of samples more than 2 levels off. With builds of the native module given (copies of
``_native.abi3.so``), each is measured on the same frames, so a kernel change can be shown
not to move the result away from the exact step; without, the installed loopwave.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_builds import load  # noqa: E402
from bench_color import photos  # noqa: E402
from reference import exact_color_step  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("builds", nargs="*", help="copies of _native.abi3.so to compare")
    p.add_argument("--size", default="1920x1080", help="WxH")
    p.add_argument("--frames", type=int, default=3)
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    frames, targets = photos(h, w, max(a.frames, 1))
    frames, target = frames[: a.frames], targets[0]
    exact = np.stack([exact_color_step(f, target) for f in frames])
    diffs = {}
    print(f"{a.size}, {len(frames)} frames, 8-bit levels from the exact float64 step")
    # the builds' copies live in a directory removed when the comparison is done
    with tempfile.TemporaryDirectory() as tmp:
        if a.builds:
            natives = {b: load(b, f"build{i}", Path(tmp)) for i, b in enumerate(a.builds)}
        else:
            from loopwave import _native

            natives = {"installed loopwave": _native}
        for name, native in natives.items():
            out = np.empty_like(frames)
            native.color_correct(frames, target[None], False, out)
            d = np.abs(out.astype(np.float64) - exact)
            diffs[name] = d
            print(
                f"  {name}: mean {d.mean():.4f}, 99.9th percentile "
                f"{np.percentile(d, 99.9):.3f}, max {d.max():.2f}, "
                f"more than 2 levels off {(d > 2).mean():.5%}"
            )
    return diffs


if __name__ == "__main__":
    main()
