"""A dependency-free progress bar for long work: items done, rate, ETA.

Writes to stderr, redraws in place on a terminal and prints occasional lines
otherwise (logs, CI), so it never floods a log file.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


class Progress:
    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "frame",
        stream: TextIO | None = None,
        enabled: bool = True,
        initial: int = 0,
        note: Callable[[], str] | None = None,
    ) -> None:
        """``note``: called at each redraw, its text added after the ETA (a stage behind)."""
        self.total, self.desc, self.unit, self.note = total, desc, unit, note
        self.stream = stream if stream is not None else sys.stderr
        # no stream at all: Python's sys.stderr when started with fd 2 closed (`2>&-`),
        # where the first write raised AttributeError and stopped the work
        self.enabled = enabled and self.stream is not None
        # ``initial`` items were done before (a resumed run): counted, but not in the rate
        self.done = self.initial = initial
        self.start = time.perf_counter()
        self._last = 0.0
        self._finished = False  # the line at done == total was drawn
        self._width = 0  # of the last line drawn in place, to blank what a shorter one leaves
        try:  # a closed stream raises ValueError here
            self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        except (OSError, ValueError):
            self._tty = self.enabled = False

    def update(self, n: int = 1, *, timed: bool = True) -> None:
        """Count ``n`` more items; ``timed=False`` for items that cost no time here (made
        before, loaded), which count toward the total but not the rate."""
        self.done += n
        if not timed:
            self.initial += n
        now = time.perf_counter()
        # redraw at most 10x a second on a terminal, every 5 s otherwise, and once when the
        # total is reached (past it, as when a video held more frames than its header said,
        # the throttle holds again)
        finishing = self.done >= self.total and not self._finished
        if finishing or now - self._last >= (0.1 if self._tty else 5.0):
            self._finished = self._finished or finishing
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        if not self.enabled:
            return
        elapsed = max(now - self.start, 1e-9)
        rate = (self.done - self.initial) / elapsed
        left = max(self.total - self.done, 0)
        eta = _clock(left / rate) if rate > 0 else "--"
        frac = min(self.done / self.total, 1.0) if self.total > 0 else 1.0
        # under one a second, seconds an item (a model on the CPU showed "0.0 frames/s")
        speed = (
            f"{rate:.1f} {self.unit}s/s"
            if rate >= 1 or rate <= 0
            else f"{1 / rate:.1f} s/{self.unit}"
        )
        tail = f" {self.done}/{self.total} {self.unit}s {speed} ETA {eta}"
        if self.note is not None:
            tail += self.note()
        if not self._tty:
            self._emit(f"{self.desc} [{'#' * int(frac * 24):<24}]{tail}\n")
            return
        # in place, within one row: a line that wrapped made every redraw a new row, and
        # the bar scrolled (80 columns, a long model name); the bar narrows, then goes,
        # then the description is cut
        # (in terminal cells: a model named in CJK wrapped at 74 characters of 80)
        room = self._columns() - 1
        for width in (24, 12, 0):
            bar = f" [{'#' * int(frac * width):<{width}}]" if width else ""
            line = self.desc + bar + tail
            if _cells(line) <= room:
                break
        else:
            line = _cut(self.desc, room - _cells(tail) - 3) + "..." + tail
            if _cells(line) > room:
                line = _cut(tail.strip(), room)
        # spaces over what a longer line before left
        cells = _cells(line)
        line, self._width = line + " " * (min(self._width, room) - cells), cells
        self._emit("\r" + line)

    def _columns(self) -> int:
        """The terminal's width, of the stream's own terminal where it has one."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation too
            return shutil.get_terminal_size((80, 24)).columns

    def _emit(self, text: str) -> None:
        """Progress is best-effort: a closed pipe or a full disk on stderr (``| head``,
        ``2>/dev/full``) turns the bar off instead of stopping the work."""
        if not self.enabled:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, AttributeError):  # ValueError: the stream was closed
            self.enabled = False

    def say(self, text: str) -> None:
        """A line of its own under the bar (where it is shown at all)."""
        self._emit(("\n" if self._tty else "") + text + "\n")
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled and self._tty:
            self._emit("\n")


def _cells(text: str) -> int:
    """The terminal cells ``text`` takes: two for a wide character (CJK), none for a
    combining one."""
    return sum(
        2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
        for c in text
    )


def _cut(text: str, cells: int) -> str:
    """The longest start of ``text`` that takes at most ``cells`` cells."""
    used = 0
    for i, c in enumerate(text):
        used += _cells(c)
        if used > cells:
            return text[:i]
    return text


def _clock(seconds: float) -> str:
    """``42s``, ``3:07`` or ``1:02:03``: a time left, as people read it (``--`` for one
    that is not a finite time ahead)."""
    if not 0 <= seconds < 10**9:  # also NaN and infinity
        return "--"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
