"""Python time an img2img call spends before it can queue any GPU work: the device lookup.

    python benches/bench_call_overhead.py [--model sd15-random|smoke] [--repeats 20]

diffusers works out a pipeline's execution device on every call by walking every
module of every component for offloading hooks; loopwave's backends pin it (see
``loopwave.backends._pin_device``). This times, side by side in one run on the
same pipeline, diffusers' own lookup (the base class's property) and the pinned
one, and reports the ratio. ``sd15-random`` builds SD 1.5's UNet, VAE and text
encoder with random weights on the CPU (about 4 GB of memory; no download): the
module count, not the weights, sets the cost.
"""

from __future__ import annotations

import argparse
from typing import Any

from loopwave.bench import median_time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sd15-random", choices=["sd15-random", "smoke"])
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    if a.model == "smoke":
        from loopwave.backends import smoke_backend

        backend = smoke_backend()
    else:
        from loopwave.sd15 import sd15_random_backend

        backend = sd15_random_backend(device="cpu")
    pipe = backend.pipe
    base: Any = type(pipe).__mro__[1]  # the diffusers class the backend's pinned subclass extends
    modules = sum(
        sum(1 for _ in getattr(pipe, n).modules()) for n in ("unet", "vae", "text_encoder")
    )

    def diffusers_lookup() -> None:
        for _ in range(10):
            base._execution_device.fget(pipe)

    def pinned_lookup() -> None:
        for _ in range(10):
            _ = pipe._execution_device

    unpinned = median_time(diffusers_lookup, a.repeats) / 10
    pinned = median_time(pinned_lookup, a.repeats) / 10
    print(f"model: {backend.label}, {modules} modules in unet + vae + text_encoder")
    print("| lookup per img2img call | ms |")
    print("|---|---:|")
    print(f"| diffusers `_execution_device` | {1e3 * unpinned:.3f} |")
    print(f"| loopwave pinned | {1e3 * pinned:.5f} |")
    print(f"| saved per call | {1e3 * (unpinned - pinned):.3f} ({unpinned / pinned:.0f}x) |")


if __name__ == "__main__":
    main()
