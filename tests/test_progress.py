"""The progress bar's line: counts, rate, and a readable time left."""

from __future__ import annotations

import io

import pytest

from loopwave._progress import Progress, _clock


@pytest.mark.parametrize(
    ("seconds", "want"),
    [(0, "0s"), (42.4, "42s"), (59.6, "1:00"), (187, "3:07"), (3723, "1:02:03"),
     (-4000, "--"), (float("inf"), "--"), (float("nan"), "--")],
)  # fmt: skip
def test_clock(seconds, want):
    assert _clock(seconds) == want


def test_lines_before_and_after_a_rate(monkeypatch):
    t = [100.0]
    monkeypatch.setattr("loopwave._progress.time.perf_counter", lambda: t[0])
    out = io.StringIO()  # not a terminal: one line per redraw, every 5 s or at the end
    with Progress(240, "render", stream=out) as bar:
        t[0] += 6
        bar.update(timed=False)  # frame 0, made before the loop: no rate yet
        t[0] += 6
        bar.update(2)  # 2 timed frames in 12 s since the start
        t[0] += 6
        bar.update(237)
    lines = out.getvalue().splitlines()
    assert lines[0] == "render [                        ] 1/240 frames 0.0 frames/s ETA --"
    # under one a second, seconds a frame (a model on the CPU showed "0.0 frames/s")
    assert lines[1] == "render [                        ] 3/240 frames 6.0 s/frame ETA 23:42"
    assert lines[2].startswith("render [########################] 240/240 frames")
    assert lines[2].endswith("ETA 0s")


def test_a_stream_that_cannot_be_written_turns_the_bar_off():
    """`loopwave render ... 2>&1 | head -1` once stopped the render with BrokenPipeError
    from the progress bar; progress is best-effort."""
    from loopwave._progress import Progress

    class Broken:
        writes = 0

        def write(self, text):
            Broken.writes += 1
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def isatty(self):
            return False

    with Progress(5, "work", stream=Broken()) as bar:
        for _ in range(5):
            bar.update()
    assert Broken.writes == 1 and not bar.enabled


def test_past_the_total_the_bar_is_full_and_throttled(monkeypatch):
    """Past the total (an input with more frames than its header said) every update
    redrew, the bar grew past its brackets and the ETA went negative."""
    t = [100.0]
    monkeypatch.setattr("loopwave._progress.time.perf_counter", lambda: t[0])
    out = io.StringIO()
    with Progress(10, "x", stream=out) as bar:
        for _ in range(110):
            t[0] += 0.01
            bar.update()
    lines = out.getvalue().splitlines()
    # the first update, the line at 10/10, and for the next 100 updates within 5 s: none
    assert len(lines) == 2
    assert lines[1].startswith("x [########################] 10/10 frames")
    t[0] += 6
    bar.update()
    last = out.getvalue().splitlines()[-1]
    assert "[########################] 111/10" in last and last.endswith("ETA 0s")
    empty = io.StringIO()
    with Progress(0, "y", stream=empty) as bar:
        for _ in range(1000):
            bar.update()
    assert len(empty.getvalue().splitlines()) == 1  # at once (done >= 0); 1000 lines before


def test_a_shorter_line_in_place_blanks_the_longer_one_before(monkeypatch):
    """On a terminal the bar redraws over itself with a carriage return; a shorter line
    left the end of the longer one on screen ("ETA 0s00")."""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "200")  # (a narrow CI terminal cut the line)
    t = [100.0]
    monkeypatch.setattr("loopwave._progress.time.perf_counter", lambda: t[0])
    out = Terminal()
    with Progress(1000, "x", stream=out) as bar:
        t[0] += 100
        bar.update(1)  # ETA in minutes: a long line
        t[0] += 0.2
        bar.update(999)  # ETA 0s: shorter
    screen = ""
    for part in out.getvalue().split("\r"):  # what a terminal shows after each \r
        part = part.rstrip("\n")
        screen = part + screen[len(part) :]
    assert screen.rstrip().endswith("ETA 0s")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _screen(text: str) -> list[str]:
    """The rows a terminal of unlimited width shows for ``text`` (``\r`` back to the row's
    start, ``\n`` a new row)."""
    rows = [""]
    for chunk in text.replace("\n", "\r\n").split("\r"):
        if chunk.startswith("\n"):
            rows.append("")
            chunk = chunk[1:]
        rows[-1] = chunk + rows[-1][len(chunk) :]
    return rows


def test_wide_characters_take_two_cells(monkeypatch):
    """From a review: the fit counted characters, and a model named in CJK gave lines of
    74 characters but 87 cells at 80 columns: wrapped, the bar scrolled again."""
    from loopwave._progress import _cells

    monkeypatch.setenv("COLUMNS", "80")
    t = [100.0]
    monkeypatch.setattr("loopwave._progress.time.perf_counter", lambda: t[0])
    out = _Terminal()
    with Progress(240, "render [" + "模型" * 12 + ".safetensors]", stream=out) as bar:
        for _ in range(240):
            t[0] += 0.5
            bar.update()
    lines = [x.rstrip("\n") for x in out.getvalue().split("\r")[1:]]
    assert _cells("模型 ab") == 7 and _cells("e\u0301") == 1
    assert len(lines) > 100 and all(_cells(x) < 80 for x in lines)
    assert lines[-1].rstrip().endswith("240/240 frames 2.0 frames/s ETA 0s")


@pytest.mark.parametrize("columns", [80, 40, 20])
def test_the_bar_fits_the_terminal_width(monkeypatch, columns):
    """From a review: the bar ignored the terminal's width; a line that wrapped made every
    redraw (a carriage return goes back to the last row only) a new row, and the bar
    scrolled: 240 rows for a render at 80 columns with a long model name."""
    monkeypatch.setenv("COLUMNS", str(columns))
    t = [100.0]
    monkeypatch.setattr("loopwave._progress.time.perf_counter", lambda: t[0])
    out = _Terminal()
    with Progress(240, "render [v1-5-pruned-emaonly.safetensors]", stream=out) as bar:
        for _ in range(240):
            t[0] += 0.5
            bar.update()
    rows = [r for r in _screen(out.getvalue()) if r]
    assert len(rows) == 1, rows  # redrawn in place
    lines = out.getvalue().split("\r")[1:]
    assert len(lines) > 100 and all(len(x.rstrip("\n")) < columns for x in lines)
    want = {  # the bar goes first, then the description is cut, then the counts
        80: "render [v1-5-pruned-emaonly.safetensors] 240/240 frames 2.0 frames/s ETA 0s",
        40: "r... 240/240 frames 2.0 frames/s ETA 0s",
        20: "240/240 frames 2.0",
    }
    assert rows[0].rstrip() == want[columns]


def test_no_stream_or_a_closed_one_turns_the_bar_off():
    """From a review: started with fd 2 closed, sys.stderr is None, and the first write
    raised AttributeError (the CLI's demo, interpolate and encode exited 1, saying
    nothing); a closed stream raised ValueError from isatty() before the work began."""
    import sys

    closed = io.StringIO()
    closed.close()
    for stream in (None, closed):
        real = sys.stderr
        sys.stderr = stream if stream is None else real
        try:
            with Progress(3, "work", stream=stream) as bar:
                for _ in range(3):
                    bar.update()
        finally:
            sys.stderr = real
        assert not bar.enabled and bar.done == 3
