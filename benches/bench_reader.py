"""VideoReader: every frame by ``read(i)`` in order, against one iteration, in one run.

    python benches/bench_reader.py [--size 1280x720] [--frames 240] [--gop 60]

Writes an H.264 MP4 (a keyframe every ``--gop`` frames) and a raw H.264 stream of the
same frames (no timestamps: frames are found by counting from the start) into a
temporary folder, then times per file: iterating once (the floor), ``read(i)`` for
every ``i`` in order as the reader does it (decoding on from the last read), and the
same reads each made from a fresh seek (the reader's cursor dropped before every read:
what ``read`` did before it kept one). Prints ms per frame and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from loopwave.video import VideoReader, VideoWriter


def frames(n: int, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        t = i / max(n - 1, 1)
        out[i, ..., 0] = 127.5 + 127.5 * np.sin(x / 37 + 6 * t)
        out[i, ..., 1] = 127.5 + 127.5 * np.cos(y / 23 - 4 * t)
        out[i, ..., 2] = (x + y + 300 * t) % 256
    return out


def write_raw(path: Path, seq: np.ndarray, fps: int) -> None:
    import av

    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=fps)
        s.height, s.width, s.pix_fmt = seq.shape[1], seq.shape[2], "yuv420p"
        for f in seq:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def timed(path: Path, n: int) -> dict[str, float]:
    ms: dict[str, float] = {}
    with VideoReader(path, batch=16) as r:
        assert r.frame_count == n
        t = time.perf_counter()
        got = sum(len(b) for b in r)
        ms["iterate once"] = (time.perf_counter() - t) / got * 1e3
        t = time.perf_counter()
        for i in range(n):
            r.read(i)
        ms["read(i) in order"] = (time.perf_counter() - t) / n * 1e3
        dec = r._dec  # the reader's decoder holds the cursor
        assert hasattr(dec, "_cursor"), "the reader keeps its cursor elsewhere now"
        t = time.perf_counter()
        for i in range(n):
            dec._cursor = None  # every read from a fresh seek
            r.read(i)
        ms["read(i), fresh seeks"] = (time.perf_counter() - t) / n * 1e3
    return ms


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="1280x720", help="WxH")
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--gop", type=int, default=60)
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    seq = frames(a.frames, h, w)
    res: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        mp4, raw = Path(d) / "gop.mp4", Path(d) / "raw.h264"
        with VideoWriter(mp4, fps=30, keyframe_interval=a.gop) as wr:
            wr.write(seq)
        write_raw(raw, seq, 30)
        print(f"{a.size}, {a.frames} frames; ms per frame")
        for name, path in ((f"MP4, keyframe every {a.gop}", mp4), ("raw H.264", raw)):
            ms = res[name] = timed(path, a.frames)
            base = ms["read(i) in order"]
            print(f"  {name}")
            for k, v in ms.items():
                print(f"    {k:<22} {v:8.2f}   {v / base:6.2f}x the in-order reads")
    return res


if __name__ == "__main__":
    main()
