"""The drift plot: a polyline PNG per series, NaNs skipped, arguments checked."""

from __future__ import annotations

import numpy as np
import pytest

from loopwave.plan import _read_png
from loopwave.plot import COLOURS, line_plot


def drawn(img: np.ndarray, colour) -> np.ndarray:
    return (img == colour).all(-1)


def test_lines_and_isolated_points(tmp_path):
    p = line_plot(tmp_path / "a.png", [[0, 1, 2, 3], [np.nan, 5, np.nan, 1]], width=200, height=100)
    img = _read_png(p)
    assert img.shape == (100, 200, 3)
    assert drawn(img, COLOURS[0]).sum() > 100  # the first series' line
    # a finite point between NaNs drew nothing before: it is marked now
    assert drawn(img, COLOURS[1]).sum() >= 4
    # a series of NaNs only draws nothing and does not fail
    img = _read_png(line_plot(tmp_path / "b.png", [[np.nan, np.nan]], width=64, height=64))
    assert not drawn(img, COLOURS[0]).any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"height": 10},
        {"width": 0},
        {"margin": -5},
        {"margin": 0},  # passed the check, then drew a grid line past the last row
        {"margin": 40, "height": 64},
        {"width": 1.5},
    ],
)
def test_bad_sizes_are_value_errors(tmp_path, kwargs):
    # IndexErrors before
    with pytest.raises(ValueError, match="^(width|height|margin)"):
        line_plot(tmp_path / "c.png", [[1, 2, 3]], **kwargs)


def test_series_must_be_sequences_of_numbers(tmp_path):
    with pytest.raises(ValueError, match="^series"):
        line_plot(tmp_path / "d.png", [])
    with pytest.raises(ValueError, match="^series"):  # numpy's "truth value" error before
        line_plot(tmp_path / "d.png", [np.zeros((3, 2))])
    # errors that name series, not numpy's or float()'s (a TypeError for wrong types)
    for bad in ("abc", [["a"]], [[1 + 1j]], (x for x in [[1]]), {0: [1, 2]}):
        with pytest.raises(TypeError, match="^series"):
            line_plot(tmp_path / "d.png", bad)


def test_rows_of_an_array_and_huge_values(tmp_path):
    """A 2-D array is its rows (numpy's truth-value error before); values whose span
    overflows float64 still draw (hi - lo was inf: no line at all)."""
    a = _read_png(line_plot(tmp_path / "a.png", np.array([[0.0, 1, 2], [2, 1, 0]])))
    b = _read_png(line_plot(tmp_path / "b.png", [[0.0, 1, 2], [2, 1, 0]]))
    np.testing.assert_array_equal(a, b)
    huge = _read_png(line_plot(tmp_path / "h.png", [[1e308, -1e308, 0]]))
    small = _read_png(line_plot(tmp_path / "s.png", [[1.0, -1.0, 0]]))
    np.testing.assert_array_equal(huge, small)  # the same shape, scaled
