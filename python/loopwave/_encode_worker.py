"""The render's encoder stage in a process of its own (``render(..., stages="process")``).

Started by :class:`loopwave.render._ProcessStage` (``run([RUN_DIR, ON_DISK, NICE])`` in a
fresh interpreter with the renderer's ``sys.path``, in a session of its own). It checks
that it imported the renderer's loopwave, lowers its own CPU
priority by ``NICE`` first (so the threads OpenCV, rayon and the interpolation pool start
later inherit it), reads the run's ``settings.json``, then interpolates and encodes the
frames already on disk (``ON_DISK`` of them, a resumed run) and those the renderer sends
on standard input, exactly as the thread stage does.

Standard input carries frames as a 16-byte header (``b"LWF1"``, then height, width and
channels as little-endian uint32) followed by the uint8 pixels, row by row; ``b"LWND"``
and twelve zero bytes end the stream, and the video is finished. End of file without
that header means the render stopped early (Ctrl-C, a failure, a killed parent): the
partial video is removed, as the thread stage does when abandoned. On failure the
worker writes one line, the error, to standard output and exits with status 1.
As it takes each frame it writes ``TAKEN BEHIND`` (the frames taken so far, and 1 while
it is still reading frames back from the run's folder, else 0) as a line to the pipe
whose descriptor ``LOOPWAVE_REPORT_FD`` names, for the renderer's progress bar.
Interrupts are the renderer's to handle: SIGINT and SIGHUP are ignored here. On Linux
the worker is killed when the renderer's thread that started it ends (a killed renderer's
worker went on with the frames in its pipe, then removed the partial video of the render
resumed meanwhile); it also holds the run's lock, passed on to it, until it exits.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

import numpy as np

from ._validate import error_text

if TYPE_CHECKING:
    from .render import _Feed

HEADER = struct.Struct("<4sIII")
FRAME, END = b"LWF1", b"LWND"


class _Stopped(Exception):
    """The renderer's stream ended without its end header: drop the video."""


def _read_exactly(f: BinaryIO, n: int) -> bytes | None:
    """``n`` bytes, or None at end of file (also part way: a parent killed mid-frame)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _reader(f: BinaryIO, q: _Feed, first: int, stopped: threading.Event | None = None) -> None:
    """Drain standard input into ``q`` as ``(index, frame)`` items, the first frame
    numbered ``first``, while frames are interpolated, so the renderer waits only once
    ``q`` is full (four frames, as the thread stage's queue holds) and not at all while
    the encoder is behind (a resume: the frames are dropped here and read back from the
    run's folder, as the thread stage does); ``END`` or ``_Stopped`` last. ``stopped`` is
    set at an end of input without ``END``: the encoder stops reading frames back then
    (it went on through every frame queued before the ``_Stopped``)."""
    try:
        while True:
            head = _read_exactly(f, HEADER.size)
            if head is None:
                _stop(q, stopped)
                return
            magic, h, w, c = HEADER.unpack(head)
            if magic == END:
                q.put(END)
                return
            if magic != FRAME:
                q.put(ValueError(f"encoder stream: bad frame header {magic!r}"))
                return
            data = _read_exactly(f, h * w * c)
            if data is None:
                _stop(q, stopped)
                return
            q.put((first, np.frombuffer(data, np.uint8).reshape(h, w, c)))
            first += 1
    except BaseException as e:  # noqa: BLE001 - handed to the encoding thread
        q.put(e)


def _stop(q: _Feed, stopped: threading.Event | None) -> None:
    """The input ended without ``END``: the render stopped early."""
    if stopped is not None:
        stopped.set()
    q.put(_Stopped())


def _reporter(out: TextIO) -> Callable[[int, bool], None]:
    """Write ``TAKEN BEHIND`` lines to ``out``; silent once the renderer has gone."""
    gone = False

    def report(taken: int, behind: bool) -> None:
        nonlocal gone
        if not gone:
            try:
                out.write(f"{taken} {int(behind)}\n")
            except (OSError, ValueError):
                gone = True

    return report


def _frames(q: _Feed) -> Iterator[tuple[int, np.ndarray | None]]:
    while True:
        item = q.get()
        if isinstance(item, tuple):
            yield item
        elif item is END:
            return
        else:
            raise item


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when the renderer's thread that started
    it ends; then, if the renderer is already gone (before the request), exit."""
    parent = os.environ.get("LOOPWAVE_PARENT_PID")
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != int(parent):
        os._exit(1)


def main(argv: list[str]) -> int:
    _die_with_parent()
    for sig in ("SIGINT", "SIGHUP"):  # the renderer decides when to stop
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_IGN)
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything a library prints goes to standard error
    try:
        import loopwave

        want = os.environ.get("LOOPWAVE_PACKAGE")
        got = str(Path(loopwave.__file__).resolve().parent)
        if want is not None and got != want:
            raise ImportError(f"the encoder process imported loopwave from {got}, not {want}")
        run_dir, on_disk, nice = Path(argv[0]), int(argv[1]), int(argv[2])
        if nice and hasattr(os, "nice"):
            os.nice(nice)
        from .plan import _read_json
        from .render import _Abandoned, _encoder, _Feed, _rife_model
        from .settings import Settings

        s = Settings._from_saved(_read_json(run_dir / "settings.json"))
        rife = _rife_model(s)
        q = _Feed(behind=on_disk > 0)
        report = os.environ.pop("LOOPWAVE_REPORT_FD", None)
        if report is not None:  # how far it is, for the renderer's bar
            q.on_taken = _reporter(os.fdopen(int(report), "w", buffering=1))
        stopped = threading.Event()  # the render stopped: no more frames read back
        reader = threading.Thread(
            target=_reader, args=(sys.stdin.buffer, q, on_disk, stopped), daemon=True
        )
        reader.start()
        try:
            _encoder(run_dir, s, on_disk, rife, stopped, q)(_frames(q))
        except (_Stopped, _Abandoned):
            pass  # writing_video removed the partial file on the way out
    except BaseException as e:  # noqa: BLE001 - reported to the renderer, one line
        # as the thread stage words it: the exception's text
        msg = (error_text(e) or type(e).__name__).replace("\n", " ")
        try:
            result.write(msg + "\n")
            result.flush()
        except OSError:  # the renderer is gone: nobody to tell
            pass
        return 1
    return 0


def run(argv: list[str]) -> None:
    """The process's entry point: :func:`main`, then exit at once."""
    code = main(argv)
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # None: started with fd 2 closed
        pass
    # no interpreter teardown: with the stdin reader still blocked on a daemon thread (a
    # failure part way), finalisation sometimes aborted the process after the report
    os._exit(code)
