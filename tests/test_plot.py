"""The drift plot: a polyline PNG per series, NaNs skipped, arguments checked."""

from __future__ import annotations

import numpy as np
import pytest

from loopwave.plan import _read_png
from loopwave.plot import COLOURS, line_plot

GRID, LABEL = (225, 225, 225), (110, 110, 110)  # the gridlines' grey, the numbers'


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
    # the same shape, scaled (the scale's numbers differ)
    np.testing.assert_array_equal(drawn(huge, COLOURS[0]), drawn(small, COLOURS[0]))
    assert not np.array_equal(drawn(huge, LABEL), drawn(small, LABEL))


# the digits as the test expects them drawn: 3x5, each pixel 2x2
DIGITS = {
    "0": ["111", "101", "101", "101", "111"],
    "1": ["010", "110", "010", "010", "111"],
    "2": ["111", "001", "111", "100", "111"],
    "3": ["111", "001", "011", "001", "111"],
    "4": ["101", "101", "111", "001", "001"],
    "5": ["111", "100", "111", "001", "111"],
}


def text_mask(text):
    cols = []
    for k, c in enumerate(text):
        if k:
            cols.append(np.zeros((5, 1), bool))
        cols.append(np.array([[b == "1" for b in row] for row in DIGITS[c]]))
    return np.kron(np.hstack(cols), np.ones((2, 2), bool))


def test_a_scale_of_round_values(tmp_path):
    """Gridlines at round values of y, numbered at the left above each line, and at round
    frames along x, numbered below. Before, a grid at quarters of the data's range and no
    numbers: the plot had no scale."""
    img = _read_png(line_plot(tmp_path / "s.png", [[9.2, 8, 3, 7, 4.5]], width=200, height=100))
    # y from 0 to 10 in steps of 5 (9.2 rounded up): rows 79 (0), 50 (5), 20 (10)
    grid_rows = [y for y in range(100) if drawn(img[:, 100:110], GRID)[y].all()]
    assert grid_rows == [20, 50, 79]
    for y, text in ((20, "10"), (50, "5"), (79, "0")):
        want = text_mask(text)
        got = drawn(img[y - 11 : y - 1, 23 : 23 + want.shape[1]], LABEL)
        np.testing.assert_array_equal(got, want, err_msg=text)
    # x: frames 0..4, one line each; the numbers centred under them
    xs = 20 + np.arange(5) * (200 - 41) / 4
    columns = [x for x in range(200) if drawn(img[64:76, x : x + 1], GRID).all()]
    assert columns == list(np.round(xs).astype(int))
    for k, x in enumerate(columns):
        got = drawn(img[83:93, x - 3 : x + 3], LABEL)
        np.testing.assert_array_equal(got, text_mask(str(k)), err_msg=str(k))
    assert drawn(img, LABEL).sum() == sum(text_mask(t).sum() for t in "10 5 0 0 1 2 3 4".split())


def test_series_of_zeros_get_a_plain_scale(tmp_path, monkeypatch):
    """From a review: a render whose distances were all 0 (strength 0, colour off) had
    its y axis labelled 0, 5e-301 and 1e-300; the scale is now 0 to 1."""
    from loopwave import plot

    made = []
    real = plot._ticks
    monkeypatch.setattr(plot, "_ticks", lambda *a: made.append(real(*a)) or made[-1])
    line_plot(tmp_path / "z.png", [[0.0, 0.0, 0.0]], width=200, height=100)
    y_labels = [label for _, label in made[0][1]]
    assert y_labels == ["0", "0.5", "1"]
