"""A dependency-free line plot to PNG (numpy only), for the drift report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .png import write_png

__all__ = ["line_plot"]

COLOURS = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14)]
LABEL = (110, 110, 110)  # the scale's numbers
GRID = (225, 225, 225)

# a 3x5 pixel font for the scale's numbers: each glyph five rows of three bits
_FONT = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "011", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    ".": ("000", "000", "000", "000", "010"),
    "-": ("000", "000", "111", "000", "000"),
    "e": ("000", "111", "101", "110", "011"),
}
_GLYPHS = {c: np.array([[b == "1" for b in row] for row in g]) for c, g in _FONT.items()}
_SCALE = 2  # each font pixel drawn 2x2: digits 6x10 pixels


def _text(img: np.ndarray, text: str, x: int, y: int, *, centre: bool = False) -> None:
    """Draw ``text`` (digits, '.', '-', 'e') with its top-left corner at (x, y), or centred
    on x; pixels outside the image are dropped."""
    advance = 4 * _SCALE  # three columns and a gap
    if centre:
        x -= (len(text) * advance - _SCALE) // 2
    for c in text:
        ys, xs = np.nonzero(np.kron(_GLYPHS[c], np.ones((_SCALE, _SCALE), bool)))
        ys, xs = ys + y, xs + x
        inside = (ys >= 0) & (ys < img.shape[0]) & (xs >= 0) & (xs < img.shape[1])
        img[ys[inside], xs[inside]] = LABEL
        x += advance


def _ticks(lo: float, hi: float, unit: float, count: int) -> tuple[float, list[tuple[float, str]]]:
    """About ``count`` steps of a round size (1, 2 or 5 times a power of ten) from the
    last round value <= lo to the first >= hi, given in units of ``unit``: (the step,
    [(tick, its label), ...]) with the step and ticks in those units too, the labels in
    real values."""
    # the step's power of ten from logarithms: step * unit may be beyond float64
    raw = np.log10((hi - lo) / count) + np.log10(unit)
    k = int(np.floor(raw))
    frac = 10.0 ** (raw - k)
    m = next(m for m in (1, 2, 5, 10) if m >= frac * (1 - 1e-9))
    step = m * 10.0 ** (k - np.log10(unit))
    ticks = []
    for j in range(int(np.floor(lo / step + 1e-9)), int(np.ceil(hi / step - 1e-9)) + 1):
        exp = k
        mant = j * m
        while mant and mant % 10 == 0:
            mant, exp = mant // 10, exp + 1
        value = mant * 10.0**exp if abs(exp) < 300 else float("inf")
        label = "0" if mant == 0 else f"{value:.6g}" if np.isfinite(value) else f"{mant}e{exp}"
        if "e" in label:  # 1e+06 -> 1e6
            a, b = label.split("e")
            label = f"{a}e{int(b)}"
        ticks.append((j * step, label))
    return step, ticks


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

    Series are coloured red, blue, green, orange in order. x is a value's index in its
    series (the frame, for drift.png), y its value; light grid lines mark round values of
    both (1, 2 or 5 times a power of ten), numbered in grey: y's at the left, above its
    line, x's below the plot. The y range is widened to the grid lines around the data.
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
    finite = np.concatenate([d[np.isfinite(d)] for d in data] + [np.zeros(1)])
    # in units of the largest magnitude, so a span beyond float64 (1e308 to -1e308) is not inf
    # (all zero: a unit of 1, where 1e-300 labelled the axis 0, 5e-301, 1e-300)
    unit = float(np.abs(finite).max()) or 1.0
    data = [d / unit for d in data]
    lo, hi = float(finite.min()) / unit, float(finite.max()) / unit
    hi = hi if hi > lo else lo + 1.0
    step, yticks = _ticks(lo, hi, unit, 4)
    lo, hi = yticks[0][0], yticks[-1][0]  # out to the round values
    n = max(len(d) for d in data)
    span_x = max(n - 1, 1)

    def x_of(i: np.ndarray | float) -> np.ndarray:
        return margin + np.asarray(i, np.float64) * (width - 2 * margin - 1) / span_x

    def y_of(v: np.ndarray | float) -> np.ndarray:
        return height - margin - 1 - (np.asarray(v) - lo) / (hi - lo) * (height - 2 * margin - 1)

    # grid and scale, under the lines; numbers only where they have room
    room = (height - 2 * margin) / max(len(yticks) - 1, 1) >= 12
    for t, label in yticks:
        y = int(round(float(y_of(t))))
        img[y, margin : width - margin] = GRID
        if room:
            _text(img, label, margin + 3, y - 11)
    step_x, xticks = _ticks(0.0, float(span_x), 1.0, 8)
    step_x = max(step_x, 1.0)  # whole frames only
    room = step_x * (width - 2 * margin - 1) / span_x >= 8 * len(xticks[-1][1]) + 4
    for t, label in xticks:
        if t != int(t) or t > n - 1:
            continue
        x = int(round(float(x_of(t))))
        img[margin : height - margin, x] = GRID
        if room:
            _text(img, label, x, height - margin + 3, centre=True)
    for d, colour in zip(data, COLOURS * (len(data) // len(COLOURS) + 1), strict=False):
        xs = x_of(np.arange(len(d)))
        ys = y_of(d)
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
