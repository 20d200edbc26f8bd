"""A dependency-free line plot to PNG (numpy only), for the drift report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .png import write_png

__all__ = ["line_plot"]

COLOURS = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14)]


def line_plot(
    path: str | Path,
    series: Sequence[Sequence[float]],
    *,
    width: int = 800,
    height: int = 300,
    margin: int = 20,
) -> Path:
    """Draw each series (a list of sequences, or the rows of a 2-D array) as a polyline
    over a shared y range that includes 0 (NaNs skipped) and write a PNG.

    Series are coloured red, blue, green, orange in order; a light grid marks quarters.
    """
    if isinstance(series, np.ndarray) and series.ndim == 2:  # one series a row
        series = list(series)
    if isinstance(series, (str, bytes, np.ndarray)) or not isinstance(series, Sequence):
        raise TypeError(
            f"series must be a list of sequences of numbers; got {type(series).__name__}"
        )
    try:
        data = [np.asarray(s, np.float64) for s in series]
    except (TypeError, ValueError) as e:  # text, complex, ragged
        raise TypeError(f"series must hold sequences of real numbers ({e})") from None
    if not data or any(d.ndim != 1 or not len(d) for d in data):
        raise ValueError("series must be a non-empty list of non-empty 1-D sequences")
    # margin >= 1: the grid's last lines sit at height - margin and width - margin
    for name, v, least in (("width", width, 16), ("height", height, 16), ("margin", margin, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"{name} must be an int >= {least}; got {v!r}")
    if 2 * margin >= min(width, height) - 4:
        raise ValueError(f"margin {margin} leaves no room in {width}x{height}")
    img = np.full((height, width, 3), 255, np.uint8)
    for q in range(5):  # grid
        y = margin + q * (height - 2 * margin) // 4
        img[y, margin : width - margin] = 225
        x = margin + q * (width - 2 * margin) // 4
        img[margin : height - margin, x] = 225
    finite = np.concatenate([d[np.isfinite(d)] for d in data] + [np.zeros(1)])
    # in units of the largest magnitude, so a span beyond float64 (1e308 to -1e308) is not inf
    unit = max(float(np.abs(finite).max()), 1e-300)
    data = [d / unit for d in data]
    lo, hi = float(finite.min()) / unit, float(finite.max()) / unit
    hi = hi if hi > lo else lo + 1.0
    n = max(len(d) for d in data)
    for d, colour in zip(data, COLOURS * (len(data) // len(COLOURS) + 1), strict=False):
        xs = margin + np.arange(len(d)) * (width - 2 * margin - 1) / max(n - 1, 1)
        ys = height - margin - 1 - (d - lo) / (hi - lo) * (height - 2 * margin - 1)
        for (x0, y0), (x1, y1) in zip(
            zip(xs[:-1], ys[:-1], strict=True), zip(xs[1:], ys[1:], strict=True), strict=True
        ):
            if not (np.isfinite(y0) and np.isfinite(y1)):
                continue
            steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
            px = np.linspace(x0, x1, steps).round().astype(int)
            py = np.linspace(y0, y1, steps).round().astype(int)
            for dy in (0, 1):  # two pixels thick
                img[np.clip(py + dy, 0, height - 1), px] = colour
        # points with no finite neighbour draw no segment: mark them (a lone point, or
        # [nan, 5, nan], drew nothing)
        ok = np.isfinite(ys)
        before = np.concatenate([[False], ok[:-1]])
        after = np.concatenate([ok[1:], [False]])
        for k in np.flatnonzero(ok & ~before & ~after):
            y, x = int(round(ys[k])), int(round(xs[k]))
            img[y : y + 2, max(x - 1, 0) : x + 2] = colour
    return write_png(path, img)
