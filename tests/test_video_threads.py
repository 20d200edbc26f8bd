"""VideoReader and VideoWriter used by several threads: a reader shared (its calls take
turns), a write or a flush racing close() on another thread. Each interleaving that went
wrong in a review is forced with events (every wait bounded), and what could crash the
process runs in a process of its own, so that a crash fails the test, not the run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
from loopwave import video as lv  # noqa: E402


def frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames that differ from their neighbours: a level and a bar that move with ``i``."""
    out = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i, ..., 1] = 8 * i % 256
        out[i, :, (3 * i) % w : (3 * i) % w + 6] = 255
    return out


def run_script(script: str, *args: str) -> dict[str, object]:
    """What ``script`` prints as JSON on its last line, run in a process of its own; its
    exit status must be 0 (a crash, SIGABRT or SIGSEGV, is a failure)."""
    r = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, f"exit status {r.returncode}: {r.stderr[-2000:]}"
    result: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


# -- one reader, several threads ---------------------------------------------------------

_SHARED_READER = """
import json, random, sys, threading
import numpy as np
from loopwave import video as lv

path, n = sys.argv[1], int(sys.argv[2])
with lv.VideoReader(path) as r:
    serial = [r.read(i) for i in range(n)]

# count the threads inside the decoder (its RGB conversion, right after a frame is
# decoded): the first to get there waits up to 2 s for another to come in, which only
# happens where calls are not serialised
inside, most, calls = [0], [0], [0]
guard, met = threading.Lock(), threading.Event()
real = lv._Decoder._rgb
def rgb(self, frame):
    with guard:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        calls[0] += 1
        first = calls[0] == 1
        if inside[0] > 1:
            met.set()
    try:
        if first:
            met.wait(2)
        return real(self, frame)
    finally:
        with guard:
            inside[0] -= 1
lv._Decoder._rgb = rgb

r = lv.VideoReader(path, batch=5)
wrong, errors, iterated = [], [], []
def reads(seed):
    rnd = random.Random(seed)
    try:
        for _ in range(40):
            i = rnd.randrange(n)
            if not np.array_equal(r.read(i), serial[i]):
                wrong.append(i)
    except Exception as e:
        errors.append(repr(e))
def iterates():
    try:
        iterated.extend(f for batch in r for f in batch)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=reads, args=(k,)) for k in range(3)]
threads.append(threading.Thread(target=iterates))
for t in threads:
    t.start()
for t in threads:
    t.join(30)
whole = len(iterated) == n and all(np.array_equal(a, b) for a, b in zip(iterated, serial))
r.close()
print(json.dumps({"most_inside": most[0], "wrong": wrong, "errors": errors,
                  "iteration_whole": whole, "hung": sum(t.is_alive() for t in threads)}))
"""


def test_one_reader_shared_by_threads_gives_the_frames_a_serial_read_does(tmp_path):
    """From a review: two threads reading one VideoReader aborted the process (SIGABRT):
    nothing kept them out of the PyAV container at once. Three threads reading random
    indices and one iterating get exactly what reads one after another get, and no two
    are ever inside the decoder together."""
    path = tmp_path / "shared.mp4"
    with lv.VideoWriter(path, fps=10, crf=10, keyframe_interval=8) as w:
        w.write(frames(40))
    got = run_script(_SHARED_READER, str(path), "40")
    assert got == {
        "most_inside": 1,
        "wrong": [],
        "errors": [],
        "iteration_whole": True,
        "hung": 0,
    }


_CLOSE_MID_ITERATION = """
import json, sys, threading
import numpy as np
from loopwave import video as lv

path = sys.argv[1]
with lv.VideoReader(path) as r:
    serial = [r.read(i) for i in range(12)]
r = lv.VideoReader(path, batch=2)

# in the step that decodes frames 4 and 5, between them: tell the main thread, and give
# its close() up to 2 s to get in (where nothing stops it, the decoder then goes on in a
# closed container)
in_step, closed = threading.Event(), threading.Event()
real = lv._Decoder._decoded
def decoded(self):
    for k, f in enumerate(real(self)):
        yield f
        if k == 4 and threading.current_thread().name == "iterating":
            in_step.set()
            closed.wait(2)
lv._Decoder._decoded = decoded

got, error = [], []
def iterates():
    try:
        for batch in r:
            got.extend(batch)
            if in_step.is_set():  # the next step after the close
                closed.wait(20)
    except Exception as e:
        error.append(f"{type(e).__name__}: {e}")
t = threading.Thread(target=iterates, name="iterating")
t.start()
assert in_step.wait(20)
def closes():
    r.close()
    closed.set()
c = threading.Thread(target=closes)
c.start()
c.join(20)
t.join(20)
try:
    r.read(0)
    after = "no error"
except ValueError as e:
    after = str(e)
print(json.dumps({
    "error": error, "hung": t.is_alive() or c.is_alive(), "after": after,
    "got": len(got), "right": all(np.array_equal(a, b) for a, b in zip(got, serial)),
}))
"""


def test_close_from_another_thread_mid_iteration_is_a_clean_error(tmp_path):
    """From a review: close() from another thread while one decodes could crash the
    process (SIGSEGV), the container closed under the decoder. close() now waits for
    the batch being decoded; the iteration's next step raises the closed error, and so
    does a read after it."""
    path = tmp_path / "close.mkv"
    with lv.VideoWriter(path, fps=10, crf=10) as w:
        w.write(frames(12))
    got = run_script(_CLOSE_MID_ITERATION, str(path))
    assert not got["hung"]
    assert got["got"] == 6 and got["right"]  # the batch being decoded was finished
    assert got["error"] == [f"ValueError: VideoReader of {path} was closed while iterating"]
    assert got["after"] == f"VideoReader of {path} is closed"


# -- a writer's write() and flush() racing close() ------------------------------------------


@pytest.fixture
def encoder_held_at_end(monkeypatch):
    """(taken, release): ``taken`` is set when an encoder thread has taken the end marker
    and is about to close its file, which it does once ``release`` is set (or 10 s on):
    until then the thread is alive, as while x264 flushes its look-ahead."""
    taken, release = threading.Event(), threading.Event()
    real = lv._Encoder._close_output

    def close_output(self: lv._Encoder) -> None:
        taken.set()
        release.wait(10)
        real(self)

    monkeypatch.setattr(lv._Encoder, "_close_output", close_output)
    yield taken, release
    release.set()


def _racing(name: str, call) -> tuple[threading.Thread, list[object]]:
    """``call`` started on a thread named ``name``; the list gets what it returned or
    the exception it raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as e:  # noqa: BLE001 - the test looks at it
            outcome.append(e)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t, outcome


def test_a_write_racing_close_is_in_the_file_or_refused(tmp_path, monkeypatch, encoder_held_at_end):
    """From a review: a write() on one thread racing close() on another returned without
    an error, its frame queued behind the end marker and never encoded. Forced here: the
    write's frame is converted, close() queues the end marker and the encoder takes it,
    then the write goes on; it is refused as closed (or, had it returned, its frame would
    have to be in the file)."""
    taken, release = encoder_held_at_end
    path = tmp_path / "race.mp4"
    clip = frames(2)
    w = lv.VideoWriter(path, fps=10)
    w.write(clip[0])
    converted, go = threading.Event(), threading.Event()
    real = lv.rgb_to_yuv420p

    def convert(*args, **kwargs):
        planes = real(*args, **kwargs)
        if threading.current_thread().name == "racing-write":
            converted.set()
            go.wait(10)
        return planes

    monkeypatch.setattr(lv, "rgb_to_yuv420p", convert)
    t, outcome = _racing("racing-write", lambda: (w.write(clip[1]), "returned")[1])
    assert converted.wait(10)
    closer = threading.Thread(target=w.close, daemon=True)
    closer.start()
    assert taken.wait(10)  # the end marker is in and taken; the encoder still runs
    go.set()
    t.join(10)
    release.set()
    closer.join(20)
    assert not t.is_alive() and not closer.is_alive()
    with lv.VideoReader(path) as r:
        n = r.frame_count
    if outcome == ["returned"]:
        assert n == 2, "write() returned, but its frame is not in the file"
    else:
        assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome
        assert str(outcome[0]) == "write: the writer is closed" and n == 1


def test_a_flush_racing_close_never_waits_forever(tmp_path, monkeypatch, encoder_held_at_end):
    """From a review: a flush() whose marker went into the queue after close()'s end
    marker waited forever (the encoder stops at the end marker). Forced here: the flush
    has made its marker when close() queues the end and the encoder takes it; the flush
    is refused as closed."""
    taken, release = encoder_held_at_end
    w = lv.VideoWriter(tmp_path / "flush.mp4", fps=10)
    w.write(frames(1))
    made, go = threading.Event(), threading.Event()
    real = lv._Flush

    class Flush(real):  # type: ignore[misc,valid-type]
        def __init__(self, fsync: bool) -> None:
            super().__init__(fsync)
            if threading.current_thread().name == "racing-flush":
                made.set()
                go.wait(10)

    monkeypatch.setattr(lv, "_Flush", Flush)
    t, outcome = _racing("racing-flush", w.flush)
    assert made.wait(10)
    closer = threading.Thread(target=w.close, daemon=True)
    closer.start()
    assert taken.wait(10)
    go.set()
    t.join(5)
    release.set()
    closer.join(20)
    t.join(5)
    assert not t.is_alive(), "flush() still waits after close() returned"
    assert not closer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome
    assert str(outcome[0]) == "flush: the writer is closed"


def test_a_flush_the_encoder_never_takes_is_refused(tmp_path, monkeypatch):
    """An encoder that has ended never takes a flush's marker (here an end marker is put
    in just ahead of it): flush() waited forever, checking only for the encoder's error.
    It now sees the thread has ended and says the writer is closed."""
    path = tmp_path / "ended.mp4"
    w = lv.VideoWriter(path, fps=10)
    w.write(frames(3))
    q = w._enc.queue
    real_put = q.put

    def put(item: object, *args: object, **kwargs: object) -> None:
        if isinstance(item, lv._Flush):
            real_put(lv._End(False), *args, **kwargs)
        real_put(item, *args, **kwargs)

    monkeypatch.setattr(q, "put", put)
    outcome: list[object] = []

    def flush() -> None:
        try:
            outcome.append(w.flush())
        except Exception as e:  # noqa: BLE001 - the test looks at it
            outcome.append(e)

    t = threading.Thread(target=flush, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "flush() waits for an encoder that has ended"
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome
    assert str(outcome[0]) == "flush: the writer is closed"
    w.close()  # closed already: nothing more to do, no error
    with lv.VideoReader(Path(path)) as r:
        assert r.frame_count == 3  # the end marker finished the file


def test_two_threads_first_frames_of_two_sizes_one_is_refused(tmp_path, monkeypatch):
    """From a review of the writer's lock: two threads' first write() calls, with frames of
    two sizes, both passed the size check before either set the size, and both were
    accepted: one frame's planes were encoded at the other's size. Both are converted
    together here; one is refused."""
    w = lv.VideoWriter(tmp_path / "two.mp4", fps=10)
    both = threading.Barrier(2)
    real = lv.rgb_to_yuv420p

    def convert(*args, **kwargs):
        planes = real(*args, **kwargs)
        both.wait(10)  # each has passed the size check with no size set
        return planes

    monkeypatch.setattr(lv, "rgb_to_yuv420p", convert)
    threads = [
        _racing(f"first-{i}", lambda f=f: w.write(f))
        for i, f in enumerate((frames(1, 48, 64), frames(1, 32, 32)))
    ]
    for t, _ in threads:
        t.join(20)
    monkeypatch.undo()
    outcomes = [o[0] for _, o in threads]
    refused = [o for o in outcomes if isinstance(o, ValueError)]
    assert len(refused) == 1 and "frames must keep one size" in str(refused[0]), outcomes
    w.close()
    with lv.VideoReader(tmp_path / "two.mp4") as r:
        assert r.frame_count == 1
