"""The encoder stage in a child process (``render(..., stages="process")``): the same video
as the thread stage, resume, failures, a killed child and early stops.

The videos are compared at crf 0 (lossless H.264): on a 16-core machine libx264's lossy
output differed between two identical thread-stage renders (max 28 levels, seen on the
lent H200 machine; same frames on disk), so only lossless videos can be compared exactly."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
av = pytest.importorskip("av")

from test_render import JOB as _JOB  # noqa: E402

from loopwave.backends import smoke_backend  # noqa: E402
from loopwave.cli import main  # noqa: E402
from loopwave.plan import _read_png  # noqa: E402
from loopwave.render import StageError, _ProcessStage, render  # noqa: E402
from loopwave.settings import Settings  # noqa: E402
from loopwave.video import partial_path  # noqa: E402

JOB = {**_JOB, "video": {"crf": 0}}  # lossless: see the module docs


@pytest.fixture(scope="module")
def backend():
    return smoke_backend()


def pngs(run_dir):
    return np.stack([_read_png(p) for p in sorted((run_dir / "frames").glob("*.png"))])


def decoded(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_the_process_stage_makes_the_thread_stages_video(tmp_path, backend):
    s = Settings.from_dict(JOB)
    t = render(s, run_dir=tmp_path / "t", backend=backend, progress=False, stages="thread")
    p = render(s, run_dir=tmp_path / "p", backend=backend, progress=False, stages="process")
    assert p.video is not None and p.video.name == "morph.mp4"
    np.testing.assert_array_equal(pngs(t.run_dir), pngs(p.run_dir))
    a, b = decoded(t.video), decoded(p.video)
    assert a.shape == b.shape == (13, 64, 64, 3)  # 7 frames, 2x
    np.testing.assert_array_equal(a, b)
    assert not list((tmp_path / "p").glob("*.partial.*"))


def test_a_stopped_process_stage_leaves_no_video_and_resume_encodes_everything(tmp_path, backend):
    s = Settings.from_dict(JOB)
    rd = tmp_path / "r"
    cut = render(s, run_dir=rd, backend=backend, progress=False, stop_after=3, stages="process")
    assert cut.video is None and not list(rd.glob("*.mp4"))
    r = render(None, run_dir=rd, resume=True, backend=backend, progress=False, stages="process")
    whole = render(s, run_dir=tmp_path / "w", backend=backend, progress=False, stages="thread")
    np.testing.assert_array_equal(decoded(r.video), decoded(whole.video))


def test_the_encoder_process_reports_how_far_it_is(tmp_path, capfd):
    """The child draws no bar of its own (its bar of the stored frames and the render's
    took turns on one terminal line while a resume caught up); it reports how far it is,
    and the renderer shows it as it does for the thread stage: here every frame is made,
    and the finishing bar counts the child's 160 stored 256x256 frames (flow x6)."""
    rd = _made_without_video(tmp_path, 160, size=256)
    capfd.readouterr()
    render(None, run_dir=rd, resume=True, backend=_Noise(), progress=True, stages="process")
    err = capfd.readouterr().err
    assert "re-encoding the 160 frames already made\n" in err
    assert re.search(r"^finishing the video \[#{24}\] 160/160 frames ", err, re.M), err
    assert "re-encoding the frames made" not in err  # the child's bar


def _run_dir(tmp_path, **interpolation):
    rd = tmp_path / "run"
    rd.mkdir(parents=True)
    job = {**JOB, "interpolation": {**JOB["interpolation"], **interpolation}}
    (rd / "settings.json").write_text(json.dumps(dict(Settings.from_dict(job))))
    return rd


def _stage(rd):
    return _ProcessStage(rd, 0, rd / "morph.mp4")


def test_the_process_stage_makes_the_thread_stages_video_at_to_fps(tmp_path, backend):
    """interpolation.to_fps reaches the child's encoder: 7 frames at 10 fps, 0.6 s, as
    16 frames at 25 fps."""
    job = {**JOB, "interpolation": {**JOB["interpolation"], "to_fps": 25}}
    s = Settings.from_dict(job)
    t = render(s, run_dir=tmp_path / "t", backend=backend, progress=False, stages="thread")
    p = render(s, run_dir=tmp_path / "p", backend=backend, progress=False, stages="process")
    a, b = decoded(t.video), decoded(p.video)
    assert a.shape == b.shape == (16, 64, 64, 3)
    np.testing.assert_array_equal(a, b)
    with av.open(str(p.video)) as c:
        assert c.streams.video[0].average_rate == 25


def _put(stage, frame):
    """Hand ``frame`` on as the writer does, as an ``(index, frame)`` item (the child
    numbers the frames itself: the index is not sent)."""
    stage.put((0, frame))


def _closed(stage):
    return stage.p.stdin.closed and stage.p.stdout.closed and stage.p.returncode is not None


def test_an_encoder_process_failure_is_a_stage_error_with_its_message(tmp_path):
    rd = _run_dir(tmp_path, factor=1)
    stage = _stage(rd)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    # worded as the thread stage words it (no exception type in front)
    with pytest.raises(StageError, match="^encoding failed: frames must keep one size"):
        for _ in range(50):  # the child fails on the second frame; a later put sees it
            _put(stage, np.zeros((32, 64, 3), np.uint8))
    with pytest.raises(StageError, match="^encoding failed: frames must keep one size"):
        stage.close()  # the same report again, not an error reading it twice
    assert stage.p.returncode == 1 and _closed(stage)
    assert not list(rd.glob("*.mp4"))  # no video, partial or not


def _failed_by_itself(tmp_path):
    """A process stage whose child failed on its second frame and has exited."""
    rd = _run_dir(tmp_path, factor=1)
    stage = _stage(rd)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    _put(stage, np.zeros((32, 64, 3), np.uint8))
    assert stage.p.wait(60) == 1
    return rd, stage


def test_an_abandoned_encoder_process_that_had_failed_keeps_its_error(tmp_path):
    """From a review: abandon() records the failure of a child that failed by itself
    before it (raised in a cancel's place), not only one met in close()."""
    rd, stage = _failed_by_itself(tmp_path)
    stage.abandon()
    assert stage.error is not None
    assert str(stage.error).startswith("encoding failed: frames must keep one size")
    assert _closed(stage) and not list(rd.glob("*.mp4"))


def test_a_child_killed_after_its_report_keeps_its_report_and_files(tmp_path):
    """A child killed by abandon() after it wrote its report (a narrow window: the
    report says, say, that the finished video is kept as its partial file) failed by
    itself: its report is its error, and its files are left as it left them. Here its
    exit status is made a kill's, and a file stands in for the kept video."""
    rd, stage = _failed_by_itself(tmp_path)
    stage.p.returncode = -signal.SIGKILL
    (rd / "morph.partial.mp4").write_bytes(b"kept")
    stage.abandon()
    assert str(stage.error).startswith("encoding failed: frames must keep one size")
    assert (rd / "morph.partial.mp4").read_bytes() == b"kept"


def test_a_second_ctrl_c_in_the_flush_wait_keeps_what_the_child_reported_it_kept(
    tmp_path, monkeypatch
):
    """From a review: a second Ctrl-C while abandon() waited for the child's final flush
    deleted the partial video whatever the child had reported, where its report (just
    written, in that window) said the finished video was kept under that name. The
    child here failed by itself; the flush and the Ctrl-C are made to look so."""
    rd, stage = _failed_by_itself(tmp_path)
    (rd / "morph.partial.mp4").write_bytes(b"kept")

    def ctrl_c(self, timeout):
        raise KeyboardInterrupt

    monkeypatch.setattr(_ProcessStage, "finishing", property(lambda self: True))
    monkeypatch.setattr(_ProcessStage, "wait", ctrl_c)
    stage._ended = True
    with pytest.raises(KeyboardInterrupt):
        stage.abandon()
    assert (rd / "morph.partial.mp4").read_bytes() == b"kept"


def test_a_child_that_died_of_its_own_signal_is_a_failure_however_abandon_ends_it(
    tmp_path, monkeypatch
):
    """From a review: abandon() took a child that had already died of a signal (a codec
    crash) for one it had killed itself, where it found the frame lock held and killed
    at once: no error, and a plain cancel in its place."""
    rd = _run_dir(tmp_path, factor=1)
    stage = _stage(rd)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    stage.p.send_signal(signal.SIGSEGV)
    stage.p.wait(60)
    monkeypatch.setattr(_ProcessStage, "WRITE_WAIT", 0.1)
    taken, let_go = threading.Event(), threading.Event()

    def writing():  # (a write stuck on the child: abandon() kills at once)
        with stage._lock:
            taken.set()
            let_go.wait(30)

    held = threading.Thread(target=writing)
    held.start()
    assert taken.wait(30)
    threading.Timer(1.0, let_go.set).start()
    stage.abandon()
    held.join()
    assert stage.p.returncode == -signal.SIGSEGV
    assert str(stage.error) == "encoding failed: the encoder process was killed by SIGSEGV"


def test_a_child_that_dies_of_its_own_signal_as_abandon_kills_is_a_failure(tmp_path, monkeypatch):
    """From a review: a child that died of its own signal between ``_kill``'s look and its
    kill (which ``Popen.kill`` then did not send) was marked killed here, and its crash
    taken for the abandon's own kill: no error. Only a SIGKILL is the abandon's now. The
    look is made to answer "running" for a child that has just crashed."""
    rd = _run_dir(tmp_path, factor=1)
    stage = _stage(rd)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    stage.p.send_signal(signal.SIGSEGV)
    os.waitid(os.P_PID, stage.p.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
    poll, looks = stage.p.poll, []

    def late_look():
        looks.append(1)
        return None if len(looks) == 1 else poll()

    monkeypatch.setattr(stage.p, "poll", late_look)
    stage._ended = stage._done = True  # (as after close(): abandon kills at once)
    stage.abandon()
    assert stage._killed and stage.p.returncode == -signal.SIGSEGV
    assert str(stage.error) == "encoding failed: the encoder process was killed by SIGSEGV"


def test_a_second_ctrl_c_while_abandon_waits_for_a_child_mid_video_kills_it(tmp_path, monkeypatch):
    """From a review: a second Ctrl-C while abandon() waited for a child still taking
    frames to end (its end of input sent) left it running past the run's lock, about to
    remove its partial video by name, which a resume at once was writing again. It is
    killed, as in the wait for the final flush."""
    rd = _run_dir(tmp_path, factor=1)
    stage = _stage(rd)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    os.kill(stage.p.pid, signal.SIGSTOP)  # (it would end at once on its end of input)
    wait = stage.p.wait

    def interrupted(timeout=None):
        if timeout is not None:  # the wait for its exit: the second Ctrl-C lands
            raise KeyboardInterrupt
        return wait()

    monkeypatch.setattr(stage.p, "wait", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            stage.abandon()
    finally:  # (not left stopped for good where this fails)
        if stage.p.poll() is None:
            stage.p.kill()
    assert stage.p.returncode == -signal.SIGKILL
    assert not list(rd.glob("*.mp4"))  # (its partial video removed here)


def test_a_stage_let_go_with_a_full_queue_does_its_items_then_ends():
    """From a review: a writer let go to drain (``let_go_now(drain=True)``) with its queue
    full cannot be sent its end; it must still end once the queue is empty (the mutant
    that waited on the queue for good held the run's lock for the rest of the process)."""
    import loopwave.render as lr

    done, go = [], threading.Event()

    def work(items):
        for item in items:
            go.wait(30)
            done.append(item)

    stage = lr._Stage("saving frames", work, maxsize=2)
    for item in range(3):  # one taken, held; two fill the queue
        stage.put(item)
    deadline = time.monotonic() + 30
    while not stage.q.full():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stage.let_go_now(drain=True)
    assert stage.q.full()  # (the end could not be queued)
    go.set()
    assert stage.wait(30) and done == [0, 1, 2] and stage.error is None


def test_a_stages_end_callbacks_all_run_though_one_raises(monkeypatch):
    """The callbacks a stage runs as its thread ends each run, whatever one before raised:
    the last of a render's releases the run's lock. The error still reaches the thread's
    hook."""
    import loopwave.render as lr

    go, ran, hooked = threading.Event(), [], []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(args.exc_value))
    stage = lr._Stage("encoding", lambda items: go.wait(30))

    def broken():
        ran.append("broken")
        raise OSError(5, "Input/output error")

    stage.after(broken)
    stage.after(lambda: ran.append("release"))
    go.set()
    stage.t.join(30)
    assert ran == ["broken", "release"]
    assert [type(x) for x in hooked] == [OSError]
    stage.after(lambda: ran.append("at once"))  # (the thread has ended: called here)
    assert ran[-1] == "at once"


def test_an_end_callback_given_while_the_thread_runs_one_waits_for_it():
    """From a review: a callback given once the thread had ended, while the thread still
    ran one given before it, ran at once beside it (the run lock's release beside the
    record of the video, a Ctrl-C having stopped the lock's exit). It now runs after it,
    on the thread."""
    import loopwave.render as lr

    end, started, go, ran = threading.Event(), threading.Event(), threading.Event(), []
    stage = lr._Stage("encoding", lambda items: end.wait(30))

    def slow():
        started.set()
        go.wait(30)
        ran.append(("record", threading.current_thread().name))

    stage.after(slow)
    end.set()  # (its work ends: the thread runs the callback)
    assert started.wait(30) and stage.wait(0)
    stage.after(lambda: ran.append(("release", threading.current_thread().name)))
    assert ran == []  # not run here, beside the slow one
    go.set()
    stage.t.join(30)
    assert ran == [("record", "loopwave-encoding"), ("release", "loopwave-encoding")]
    stage.after(lambda: ran.append(("at once", threading.current_thread().name)))
    assert ran[-1] == ("at once", threading.main_thread().name)


def test_an_encoder_process_that_cannot_start_leaves_no_pipe_open(tmp_path, monkeypatch):
    """From a review: where the child could not be started, both ends of its report
    pipe are closed (one was left open each time)."""
    import loopwave.render as lr

    def refused(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(lr.subprocess, "Popen", refused)
    fds = sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(OSError, match="Cannot allocate memory"):
            _ProcessStage(tmp_path, 0, tmp_path / "morph.mp4")
    assert sorted(os.listdir("/proc/self/fd")) == fds


def test_a_ctrl_c_before_the_end_is_written_is_not_waited_for(tmp_path, monkeypatch):
    """From a review: a Ctrl-C in close() before the end of the frames was written left a
    child that had taken every frame looking as if it finished the video: abandon()
    waited its whole EXIT_WAIT for a flush that could not come."""
    from loopwave._encode_worker import END

    rd = _run_dir(tmp_path, factor=1)
    stage = _ProcessStage(rd, 0, rd / "morph.mp4", frames=1)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    deadline = time.monotonic() + 60
    while stage.taken < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    write = stage._write

    def interrupted(data):
        if bytes(data[:4]) == END:
            raise KeyboardInterrupt
        write(data)

    stage._write = interrupted
    monkeypatch.setattr(_ProcessStage, "EXIT_WAIT", 20.0)
    with pytest.raises(KeyboardInterrupt):
        stage.close()
    t = time.monotonic()
    stage.abandon()
    assert time.monotonic() - t < 10 and stage.p.returncode == -signal.SIGKILL
    assert stage.error is None and not list(rd.glob("*.mp4"))


def test_an_abandoned_encoder_process_exits_and_drops_the_partial_video(tmp_path):
    rd = _run_dir(tmp_path)
    stage = _stage(rd)
    for i in range(3):
        _put(stage, np.full((64, 64, 3), 40 * i, np.uint8))
    stage.abandon()
    assert stage.p.returncode == 0 and _closed(stage)
    assert not list(rd.glob("*.mp4"))
    _put(stage, np.zeros((64, 64, 3), np.uint8))  # after abandon: dropped, as the thread stage
    stage.close()  # and closing it again is harmless


def test_the_encoder_process_finishes_the_video_it_was_sent(tmp_path):
    rd = _run_dir(tmp_path, factor=3)
    stage = _stage(rd)
    frames = [np.full((64, 64, 3), v, np.uint8) for v in (0, 90, 180)]
    for f in frames:
        _put(stage, f)
    stage.close()
    assert _closed(stage)
    got = decoded(rd / "morph.mp4")
    assert len(got) == 7  # 3 frames, 3x: two in between each pair
    assert np.abs(got[::3].astype(int) - np.stack(frames)).max() <= 2


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_killed_encoder_process_is_a_stage_error_and_leaves_no_partial_video(tmp_path):
    rd = _run_dir(tmp_path)
    stage = _stage(rd)
    for i in range(6):  # enough for the partial video to be on disk
        _put(stage, np.full((64, 64, 3), 30 * i, np.uint8))
    deadline = time.monotonic() + 60
    while not list(rd.glob("*.partial.mp4")):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stage.p.send_signal(signal.SIGKILL)  # as a codec's abort would end it
    stage.p.wait()
    msg = "^encoding failed: the encoder process was killed by SIGKILL"
    with pytest.raises(StageError, match=msg):
        _put(stage, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(StageError, match=msg):
        stage.close()
    assert _closed(stage) and not list(rd.glob("*.mp4"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_abandoning_a_child_that_stopped_reading_does_not_hang(tmp_path, monkeypatch):
    """A child stuck in a codec: the writer waits on the full pipe, abandon() kills the
    child rather than wait for that write (it hung there forever)."""
    monkeypatch.setattr(_ProcessStage, "WRITE_WAIT", 0.5)
    rd = _run_dir(tmp_path)
    stage = _stage(rd)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    stage.p.send_signal(signal.SIGSTOP)
    writer = threading.Thread(
        target=lambda: [_put(stage, np.zeros((256, 256, 3), np.uint8)) for _ in range(40)]
    )
    writer.start()  # 40 frames of 192 KB: far beyond the pipe and the child's queue
    # the writer's first 192 KB write cannot end (the pipe holds 64 KB, its reader is
    # stopped): wait until it holds the write lock, not a fixed time (a loaded host
    # started the thread late, and abandon() found no write to give up on)
    deadline = time.monotonic() + 60
    while not stage._lock.locked():
        assert time.monotonic() < deadline, "the writer never began a write"
        time.sleep(0.01)
    assert writer.is_alive()  # waiting on the stopped child
    t = time.monotonic()
    stage.abandon()
    writer.join(30)
    assert not writer.is_alive() and time.monotonic() - t < 30
    assert stage.p.returncode == -signal.SIGKILL and _closed(stage)
    assert not list(rd.glob("*.mp4"))


def test_abandon_racing_a_put_drops_the_frame_quietly(tmp_path):
    """abandon() on one thread while the writer thread puts frames: the puts after it
    return (one raised 'write to closed file' and lost the writer's queued frames)."""
    for k in range(8):
        rd = _run_dir(tmp_path / str(k))
        stage = _stage(rd)
        errors: list[BaseException] = []

        def puts(stage=stage, errors=errors):
            try:
                for _ in range(30):
                    _put(stage, np.zeros((64, 64, 3), np.uint8))
            except BaseException as e:  # noqa: BLE001 - what the test looks for
                errors.append(e)

        writer = threading.Thread(target=puts)
        writer.start()
        time.sleep(0.002 * k)
        stage.abandon()
        writer.join(60)
        assert not errors and _closed(stage)
        assert not list(rd.glob("*.mp4"))


def test_the_child_imports_the_renderers_loopwave(tmp_path, monkeypatch):
    """Not a loopwave in the working folder (``python -m`` looks there first)."""
    rd = _run_dir(tmp_path)
    shadow = tmp_path / "cwd" / "loopwave"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not the renderer loopwave')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    stage = _stage(rd)
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    _put(stage, np.zeros((64, 64, 3), np.uint8))
    stage.close()
    assert len(decoded(rd / "morph.mp4")) == 3


@pytest.mark.parametrize("bad", ["gpu", "", 1, None, "Thread", "auto"])
def test_stages_must_be_one_of_the_placements(tmp_path, backend, bad):
    with pytest.raises(ValueError, match="^stages must be one of 'thread', 'process'"):
        render(Settings.from_dict(JOB), run_dir=tmp_path / "r", backend=backend, stages=bad)
    assert not (tmp_path / "r").exists()


def test_the_cli_takes_stages(tmp_path, capsys):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({**JOB, "output": {"dir": str(tmp_path), "name": "c"}}))
    assert main(["render", str(job), "--quiet", "--stages", "process"]) == 0
    assert len(decoded(tmp_path / "c" / "c.mp4")) == 13
    with pytest.raises(SystemExit):
        main(["render", str(job), "--stages", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_a_render_on_a_gpu_encodes_the_same_in_a_process(tmp_path):
    s = Settings.from_dict(JOB)
    gpu = smoke_backend(device="cuda")
    p = render(s, run_dir=tmp_path / "p", backend=gpu, progress=False, stages="process")
    t = render(s, run_dir=tmp_path / "t", backend=gpu, progress=False, stages="thread")
    np.testing.assert_array_equal(decoded(p.video), decoded(t.video))


def _children_of_run(run_dir) -> list[int]:
    """Processes whose command line names ``run_dir`` and the encoder worker."""
    found = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"_encode_worker" in c for c in cmd) and str(run_dir).encode() in cmd:
            found.append(int(p.name))
    return found


def _cli_render(tmp_path, n, **popen):
    """An ``n``-frame CLI render with the encoder in a process, started as a child of
    this test; returns the process and its run folder."""
    import subprocess
    import sys

    job = tmp_path / "job.json"
    out = {"dir": str(tmp_path / "out"), "name": "c"}
    job.write_text(json.dumps({**JOB, "render": {**JOB["render"], "frames": n}, "output": out}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopwave", "render", str(job), "--quiet", "--stages", "process"],
        stdout=subprocess.DEVNULL,
        **popen,
    )
    return proc, tmp_path / "out" / "c"


def _wait_for_frame(proc, run_dir, k):
    from test_render import _run_dir_state

    deadline = time.monotonic() + 240
    while _run_dir_state(run_dir) < k and proc.poll() is None:
        assert time.monotonic() < deadline, "render made no progress"
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
@pytest.mark.parametrize(("sig", "rc"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_to_the_whole_process_group_stops_cleanly_and_resumes(tmp_path, sig, rc):
    """Ctrl-C in a terminal, `timeout` or `kill -TERM -PGID` signal every process of the
    group: the encoder process (in a session of its own) is ended by the renderer, no
    partial video stays (the child died of SIGTERM and left one), and resume completes."""
    import subprocess

    from test_render import frames_of

    n = 24
    # its own group, as a shell job would be
    proc, run_dir = _cli_render(tmp_path, n, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for_frame(proc, run_dir, 2)
        os.killpg(proc.pid, getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == rc, err.decode()[-2000:]
    assert f"--resume {run_dir}" in err.decode()
    assert not list(run_dir.glob("*.mp4"))  # neither a video nor a partial one
    assert _children_of_run(run_dir) == []
    assert main(["render", "--resume", str(run_dir), "--quiet", "--stages", "process"]) == 0
    assert len(frames_of(run_dir)) == n
    assert len(decoded(run_dir / "c.mp4")) == 2 * n - 1


def test_render_frames_with_the_process_stage(tmp_path, backend):
    from loopwave.render import render_frames

    s = Settings.from_dict(JOB)
    got = [i for i, _ in render_frames(s, run_dir=tmp_path / "a", backend=backend,
                                       progress=False, stages="process")]  # fmt: skip
    assert got == list(range(7)) and len(decoded(tmp_path / "a" / "morph.mp4")) == 13
    it = render_frames(s, run_dir=tmp_path / "b", backend=backend, progress=False,
                       stages="process")  # fmt: skip
    for i, _ in it:
        if i == 2:
            break
    it.close()  # a consumer that stops early: no video, no child left
    assert not list((tmp_path / "b").glob("*.mp4"))
    assert _children_of_run(tmp_path / "b") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl, /proc")
@pytest.mark.parametrize("stopped", [False, True])
def test_the_encoder_process_of_a_killed_renderer_ends_with_it(tmp_path, stopped):
    """kill -9 of the renderer alone: its encoder process is killed with it (Linux's
    parent-death signal), even one that was busy or stopped (SIGSTOP here), and holds the
    run's lock while it lives; a resume completes the run and leaves no partial video.
    From a review: the orphan went on with the frames in its pipe, then removed the
    partial video of the render resumed meanwhile, which failed."""
    import subprocess

    from test_render import frames_of

    n = 24
    proc, run_dir = _cli_render(tmp_path, n, stderr=subprocess.DEVNULL)
    try:
        _wait_for_frame(proc, run_dir, 3)
        # the child asks for the parent-death signal first thing, but it may still be
        # starting: a child stopped before it asked would live on, stopped, until it was
        # continued (and then exit, its parent gone). Its partial video is made after
        # the request, so wait for that (CI failed once when the renderer reached frame 3
        # while its child was still importing).
        deadline = time.monotonic() + 240
        while not partial_path(run_dir / "c.mp4").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no encoding began"
            time.sleep(0.02)
        (child,) = _children_of_run(run_dir)  # the encoder process is running
        lock = (run_dir / ".lock").stat()
        held = [os.stat(f) for f in Path(f"/proc/{child}/fd").iterdir()]
        assert any(os.path.samestat(lock, f) for f in held), "the child holds no run lock"
        if stopped:
            os.kill(child, signal.SIGSTOP)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _children_of_run(run_dir):
        if time.monotonic() > deadline:
            for pid in _children_of_run(run_dir):
                os.kill(pid, signal.SIGKILL)
            raise AssertionError("the killed renderer's encoder process lives on")
        time.sleep(0.02)
    assert main(["render", "--resume", str(run_dir), "--quiet", "--stages", "process"]) == 0
    assert len(frames_of(run_dir)) == n and len(decoded(run_dir / "c.mp4")) == 2 * n - 1
    assert sorted(p.name for p in run_dir.glob("*.mp4")) == ["c.mp4"]


@pytest.mark.parametrize("factor", [1, 3])
def test_flow_interpolation_in_a_process_makes_the_same_video(tmp_path, backend, factor):
    job = {**JOB, "interpolation": {"factor": factor, "backend": "flow"}}
    s = Settings.from_dict(job)
    t = render(s, run_dir=tmp_path / "t", backend=backend, progress=False, stages="thread")
    p = render(s, run_dir=tmp_path / "p", backend=backend, progress=False, stages="process")
    a, b = decoded(t.video), decoded(p.video)
    assert len(a) == 1 + 6 * factor
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("rate", "count"), [({"factor": 2}, 13), ({"factor": 1, "to_fps": 25}, 16)]
)
def test_rife_interpolation_in_a_process_makes_the_same_video(tmp_path, backend, rate, count):
    """The encoder process loads the settings' RIFE model itself (the renderer only
    checks it); with to_fps too, whatever the factor."""
    pytest.importorskip("onnxruntime")
    from test_rife import tiny_model

    model = tiny_model(tmp_path / "max.onnx", "frame", "Max")
    job = {**JOB, "interpolation": {**rate, "backend": "rife", "model": str(model)}}
    s = Settings.from_dict(job)
    t = render(s, run_dir=tmp_path / "t", backend=backend, progress=False, stages="thread")
    p = render(s, run_dir=tmp_path / "p", backend=backend, progress=False, stages="process")
    a, b = decoded(t.video), decoded(p.video)
    assert len(a) == count
    np.testing.assert_array_equal(a, b)


class _Noise:
    """An instant stand-in backend: the init plus seeded noise (no model)."""

    label = "noise"

    def img2img(self, init, *, prompt, negative, strength, steps, cfg, seed):
        rng = np.random.default_rng(seed)
        noise = rng.integers(-20, 21, init.shape)
        return np.clip(init.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _made_without_video(tmp_path, n, size=128):
    """A run of ``n`` frames of ``size`` squared, all made, no video yet (flow
    interpolation x6)."""
    job = {
        **JOB,
        "render": {**JOB["render"], "frames": n, "width": size, "height": size},
        "colour": {"mode": "first"},
        "interpolation": {"factor": 6, "backend": "flow"},
    }
    rd = tmp_path / "run"
    render(Settings.from_dict(job), run_dir=rd, backend=_Noise(), progress=False, video=False)
    return rd


def _interrupt_when(ready, timeout=120):
    """SIGINT to this process (the main thread's KeyboardInterrupt) once ``ready()``."""
    main_id = threading.main_thread().ident

    def watch():
        deadline = time.monotonic() + timeout
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.005)
        signal.pthread_kill(main_id, signal.SIGINT)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.skipif(sys.platform == "win32", reason="signals")
def test_a_ctrl_c_while_a_resume_encodes_its_frames_again_stops_it(tmp_path, monkeypatch):
    """From a review: a resume whose frames are all made spends its time finishing the
    video, outside the guard that abandons the stages; a Ctrl-C there left the encoder
    thread writing (and later renaming) the video after render() had raised and released
    the run's lock, and once abandoned it still encoded every stored frame before
    stopping (48 s for 281 frames at 512x512). A KeyboardInterrupt in a thread's join
    also made CPython 3.11 think the thread had ended."""
    import loopwave.render as lr

    n = 40
    rd = _made_without_video(tmp_path, n)
    read = []
    real = lr._read_png

    def slow_read(path):  # the stored frames, read by the encoder thread
        if path.parent.name == "frames":
            read.append(path.name)
            time.sleep(0.02)
        return real(path)

    monkeypatch.setattr(lr, "_read_png", slow_read)
    read.clear()
    watcher = _interrupt_when(lambda: len(read) >= 5)
    with pytest.raises(KeyboardInterrupt):
        render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False)
    watcher.join()
    stages = [t.name for t in threading.enumerate() if t.name.startswith("loopwave-")]
    assert stages == []  # nothing left writing
    assert len(read) < 20, len(read)  # stopped within a few frames, not after all 40
    assert not (rd / ".lock").exists() and not list(rd.glob("*.mp4"))
    monkeypatch.undo()
    r = render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False)
    assert len(decoded(r.video)) == 6 * (n - 1) + 1


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_a_ctrl_c_while_the_encoder_process_finishes_the_video_ends_it(tmp_path):
    """The same in the process stage: the child was left finishing the video (it had
    been sent the end of the frames) after render() had raised and released the lock;
    it is now killed, and its partial video removed. It is stopped (SIGSTOP) as the
    video starts, so it is still taking frames when the Ctrl-C comes (one that has
    taken them all is in its final flush, which is waited for: a review)."""
    n = 40
    rd = _made_without_video(tmp_path, n)
    partial = partial_path(rd / "morph.mp4")

    def started():
        if not partial.exists():
            return False
        for pid in _children_of_run(rd):
            os.kill(pid, signal.SIGSTOP)  # (SIGKILL ends a stopped process too)
        return True

    watcher = _interrupt_when(started)
    with pytest.raises(KeyboardInterrupt):
        render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False, stages="process")
    watcher.join()
    assert _children_of_run(rd) == []
    assert not partial.exists() and not (rd / ".lock").exists()
    time.sleep(1.0)  # a child left running would rename its video into place meanwhile
    assert not (rd / "morph.mp4").exists()


class _CtrlCOnLine:
    """A stderr whose write of a line holding ``text`` raises KeyboardInterrupt."""

    def __init__(self, real, text):
        self.real, self.text = real, text

    def write(self, s):
        if self.text in s:
            raise KeyboardInterrupt
        return self.real.write(s)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _no_stage_threads(timeout=5.0):
    """Whether every ``loopwave-`` thread has ended, waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name.startswith("loopwave-")]:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
@pytest.mark.parametrize("where", ["report pipe", "reports", "writer", "line"])
def test_a_ctrl_c_as_the_encoder_process_starts_ends_it(tmp_path, monkeypatch, where):
    """From the Left alone list: with ``stages="process"``, a Ctrl-C after the child had
    started but before the render's guard (as its end of the report pipe was closed
    here, in the start of its reports thread, of the frame writer, or in the
    "re-encoding" line) left the child running past the run's lock, re-encoding the
    stored frames into the partial video that a resume then wrote too. It is ended there
    now, its partial video removed, and a resume makes the video."""
    import loopwave.render as lr

    n = 6
    rd = _made_without_video(tmp_path, n)
    if where == "report pipe":
        import types

        fake, ends = types.ModuleType("os"), []
        fake.__dict__.update(os.__dict__)

        def pipe():
            r, w = os.pipe()
            ends.append(w)
            return r, w

        def close(fd):
            os.close(fd)
            if fd in ends:  # (the child's end, closed here once the child has started)
                ends.clear()
                raise KeyboardInterrupt

        fake.pipe, fake.close = pipe, close
        monkeypatch.setattr(lr, "os", fake)
    elif where == "reports":
        real_start = threading.Thread.start

        def start(self):
            if self.name == "loopwave-encoder-reports":
                raise KeyboardInterrupt
            return real_start(self)

        monkeypatch.setattr(threading.Thread, "start", start)
    elif where == "writer":

        def saver(*args):
            raise KeyboardInterrupt

        monkeypatch.setattr(lr, "_saver", saver)
    else:
        monkeypatch.setattr(sys, "stderr", _CtrlCOnLine(sys.stderr, "re-encoding the 6 frames"))
    # (its traceback kept, as a notebook keeps it: one freed closed the child's input,
    # which then ended it, where it was made but not yet a stage)
    with pytest.raises(KeyboardInterrupt) as stopped:
        render(
            None, run_dir=rd, resume=True, backend=_Noise(), progress=where == "line",
            stages="process",
        )  # fmt: skip
    assert _children_of_run(rd) == [] and stopped.tb is not None
    assert not partial_path(rd / "morph.mp4").exists() and not (rd / ".lock").exists()
    monkeypatch.undo()
    r = render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False, stages="process")
    assert len(decoded(r.video)) == 6 * (n - 1) + 1


@pytest.mark.parametrize(
    "where",
    ["encoding", "encoding twice", "encoding unstarted", "encoding made", "saving frames"]
    + ["saving frames made", "registration"],
)
def test_a_ctrl_c_before_the_encoder_thread_is_registered_ends_it(tmp_path, monkeypatch, where):
    """The same in the thread stage: a Ctrl-C in the encoder thread's start (in
    ``Thread.start``'s wait for the thread: a review), a second one as that is handled
    (the next review: the stage's work then ran with nothing to stop it), one as the
    stage's making returned (before the render had it), one before its thread started
    (not waited for), or one between its start and
    its registration with the run's lock, left it encoding the stored frames, past the
    lock, and then waiting for frames for good. It is ended, and a stage whose own start
    was interrupted (here the frame writer's) ends before its work, not waiting for
    items."""
    import loopwave.render as lr

    n = 6
    rd = _made_without_video(tmp_path, n)
    if where in ("encoding", "encoding twice", "encoding unstarted", "saving frames"):
        real_start, real_set = threading.Thread.start, threading.Event.set
        name = f"loopwave-{where.split()[0] if 'encoding' in where else where}"

        def start(self):
            if self.name == name and where == "encoding unstarted":
                raise KeyboardInterrupt  # (as start() began: no thread to wait for)
            real_start(self)  # (the thread runs)
            if self.name == name:
                if where == "encoding twice":
                    monkeypatch.setattr(threading.Event, "set", set_once)
                raise KeyboardInterrupt

        def set_once(self):  # the second Ctrl-C, as the first's handling sets abandon
            monkeypatch.setattr(threading.Event, "set", real_set)
            raise KeyboardInterrupt

        monkeypatch.setattr(threading.Thread, "start", start)
    elif where.endswith(" made"):
        real_init = lr._Stage.__init__

        def made(self, name, *args, **kwargs):
            real_init(self, name, *args, **kwargs)
            if name == where.removesuffix(" made"):
                raise KeyboardInterrupt  # (as the making returned: never the render's)

        monkeypatch.setattr(lr._Stage, "__init__", made)
    else:

        def outlived_by(self, stage, **kw):
            raise KeyboardInterrupt

        monkeypatch.setattr(lr._RunLock, "outlived_by", outlived_by)
    with pytest.raises(KeyboardInterrupt):
        render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False)
    assert _no_stage_threads()
    assert not partial_path(rd / "morph.mp4").exists() and not (rd / ".lock").exists()
    monkeypatch.undo()
    r = render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False)
    assert len(decoded(r.video)) == 6 * (n - 1) + 1


def test_an_empty_or_unwritable_drift_csv_on_resume(tmp_path):
    """From a review: a resume rewrote drift.csv in place, so a kill during it lost the
    rows of the frames made before, and one right after the truncation left an empty
    file, to which each later resume appended rows with no header (drift.png then failed
    for good). The rows are now written to a new file that replaces the old."""
    from loopwave.render import _keep_drift_rows

    s = Settings.from_dict(JOB)
    rd = tmp_path / "run"
    render(s, run_dir=rd, backend=_Noise(), progress=False, video=False, stop_after=3)
    csv_path = rd / "drift.csv"
    before = csv_path.read_text()

    def fails(*a):
        raise OSError(28, "No space left on device")

    real = os.replace
    os.replace = fails
    try:
        with pytest.raises(OSError, match="No space"):
            _keep_drift_rows(csv_path, 1)
    finally:
        os.replace = real
    assert csv_path.read_text() == before  # untouched
    assert sorted(p.name for p in rd.iterdir() if p.name.endswith(".tmp")) == []
    csv_path.write_text("")  # as a kill right after the old truncation left it
    r = render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False, video=False)
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "frame,delta_e_to_target,delta_e_to_previous"
    assert [int(x.split(",")[0]) for x in lines[1:]] == [4, 5, 6]  # 0-3's rows were lost
    assert r.frames == 7 and (rd / "drift.png").is_file()


def test_a_resume_refuses_a_run_changed_while_it_loaded_and_a_stop_before_its_end(
    tmp_path, monkeypatch
):
    """From a review: a resume read the run before its model loaded and only the last
    frame under the lock, so a fresh run started (and finished) there meanwhile was
    continued with the old settings, a mix of two runs; and a stop_after below the
    frames made rendered one more frame before stopping."""
    import loopwave.render as lr

    s = Settings.from_dict(JOB)
    rd = tmp_path / "run"
    render(s, run_dir=rd, backend=_Noise(), progress=False, video=False, stop_after=4)
    with pytest.raises(ValueError, match=r"^stop_after: frame 2 is already made \(the run has 5"):
        render(None, run_dir=rd, resume=True, backend=_Noise(), video=False, stop_after=2)
    with pytest.raises(ValueError, match="^stop_after: frame 4 is already made"):
        render(None, run_dir=rd, resume=True, backend=_Noise(), video=False, stop_after=4)
    assert json.loads((rd / "state.json").read_text())["last"] == 4
    other = json.loads((rd / "settings.json").read_text())
    other["render"]["seed"] = 99

    def another_render_meanwhile():  # called just before the lock is taken
        (rd / "settings.json").write_text(json.dumps(other))

    monkeypatch.setattr(lr, "_stop_if_asked", another_render_meanwhile)
    with pytest.raises(ValueError, match="another render changed .* while this resume started"):
        render(None, run_dir=rd, resume=True, backend=_Noise(), progress=False, video=False)
    assert json.loads((rd / "state.json").read_text())["last"] == 4  # nothing made


@pytest.mark.parametrize("stages", ["thread", "process"])
def test_an_encoder_failure_is_a_stage_error_in_either_stage(tmp_path, backend, stages):
    """From a review: in the process stage the clean-up of the partial video raised its
    own IsADirectoryError, hiding the child's report (a folder where the video goes)."""
    (tmp_path / "r" / "morph.partial.mp4").mkdir(parents=True)
    s = Settings.from_dict({**JOB, "render": {**JOB["render"], "frames": 3}})
    with pytest.raises(StageError, match=r"^encoding failed: .*morph\.partial\.mp4.*folder"):
        render(s, run_dir=tmp_path / "r", backend=backend, progress=False, stages=stages)


@pytest.mark.parametrize("exe", ["", "/bin/true", "/nonexistent/python", "host"])
def test_a_host_without_a_python_executable_is_told_before_the_render(
    tmp_path, backend, monkeypatch, exe
):
    """From a review of loopwave inside a host program: where Python is embedded (uwsgi,
    Blender) sys.executable is the host program or empty, and the encoder process failed
    at the first frame ("exited with 125", PermissionError ''), after the model load."""
    from loopwave import render as render_module

    render_module._python_problem.cache_clear()
    if exe == "host":  # a host program that ignores -c, starts a worker and never ends
        exe = str(tmp_path / "host")
        Path(exe).write_text("#!/bin/sh\nsleep 120 &\nsleep 120\n")
        os.chmod(exe, 0o755)
    monkeypatch.setattr(sys, "executable", exe)
    t0 = time.monotonic()
    s = Settings.from_dict(JOB)
    with pytest.raises(ValueError, match=r"^stages: 'process' runs the encoder in a new Python"):
        render(s, run_dir=tmp_path / "r", backend=backend, progress=False, stages="process")
    assert time.monotonic() - t0 < 30  # asked for a few seconds, not a minute
    assert not (tmp_path / "r").exists()
    render(s, run_dir=tmp_path / "t", backend=backend, progress=False, stages="thread", video=True)
    render_module._python_problem.cache_clear()


def test_a_resume_makes_new_frames_while_the_video_catches_up(tmp_path, backend, monkeypatch):
    """From a soak review: a resume made about five new frames, then waited, generation
    idle, until the video had re-encoded every frame made before (26 s at frame 1,516, 69
    s at 3,500). Here the encoder's reading of the stored frames is held until the
    render has made 14 new frames, more than the stages' queues hold: before, the render
    waited on the encoder, and the encoder on the render, until the hold gave up."""
    import loopwave.render as render_module

    job = {**JOB, "render": {**JOB["render"], "frames": 22}}
    s = Settings.from_dict(job)
    rd = tmp_path / "r"
    render(s, run_dir=rd, backend=backend, progress=False, stop_after=3)
    made_14 = threading.Event()
    held: list[bool] = []
    real = render_module._read_png

    def read_back(path):
        if threading.current_thread().name == "loopwave-encoding" and path.stem == "000000":
            held.append(made_14.wait(60))
        return real(path)

    def on_frame(i, frame):
        if i >= 4 + 13:
            made_14.set()

    monkeypatch.setattr(render_module, "_read_png", read_back)
    r = render(None, run_dir=rd, resume=True, backend=backend, progress=False, on_frame=on_frame)
    assert held == [True]  # the encoder waited for new frames, and they came
    monkeypatch.undo()
    # the video: every frame once, in order, as an uninterrupted render's
    whole = render(s, run_dir=tmp_path / "w", backend=backend, progress=False)
    np.testing.assert_array_equal(pngs(r.run_dir), pngs(whole.run_dir))
    np.testing.assert_array_equal(decoded(r.video), decoded(whole.video))


def test_a_resumed_encoder_process_drains_its_input_while_behind(tmp_path):
    """The child's reader, as a resume starts it (frames 0-4 on disk): it takes every
    frame sent at once, keeping only their numbers, so the renderer's writes never wait
    on the stored frames' re-encoding; once the encoder has caught up (taken every item),
    it holds frames again, four at most, as the thread stage's queue does."""
    import io

    from loopwave._encode_worker import END, FRAME, HEADER, _reader
    from loopwave.render import _Feed

    frame = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    msg = b"".join(HEADER.pack(FRAME, 4, 6, 3) + frame.tobytes() for _ in range(40))
    q = _Feed(behind=True)
    _reader(io.BytesIO(msg + HEADER.pack(END, 0, 0, 0)), q, 5)  # returns: nothing waited
    items = [q.get() for _ in range(41)]
    assert [i for i, _ in items[:40]] == list(range(5, 45))
    assert all(f is None for _, f in items[:40]) and items[40] is END
    # caught up: frames are held, up to four, then a put waits (here: gives up)
    assert not q.behind
    stream = io.BytesIO(b"".join(HEADER.pack(FRAME, 4, 6, 3) + frame.tobytes() for _ in range(4)))
    _reader(stream, q, 45)
    got = [q.get() for _ in range(4)]
    assert [i for i, _ in got] == [45, 46, 47, 48]
    np.testing.assert_array_equal(got[3][1], frame)
    q.get()  # the reader's end of input (_Stopped), queued last
    for k in range(4):
        q.put((49 + k, frame), timeout=0)
    with pytest.raises(queue.Full):
        q.put((53, frame), timeout=0.05)


def test_a_resumed_encoder_process_takes_new_frames_at_once_and_stops_at_once(tmp_path):
    """From a review of the catch-up change: nothing tested the child's side of it (a
    child built with a queue never behind passed every test), and a stopped render's
    child went on reading back and encoding every frame queued before the end of its
    input (up to 60 s, then killed). Here the child has 160 stored 256x256 frames to
    encode again with flow x6 (seconds of work); 40 new frames, far more than the pipe
    and its queue hold, are taken at once, and abandoning stops it at its next frame."""
    rd = _made_without_video(tmp_path, 160, size=256)
    stage = _ProcessStage(rd, 160, rd / "morph.mp4")
    t = time.monotonic()
    for i in range(40):
        stage.put((160 + i, np.zeros((256, 256, 3), np.uint8)))
    sent = time.monotonic() - t
    stage.abandon()
    done = time.monotonic() - t
    print(f"sent {sent:.2f} s, stopped {done:.2f} s")
    assert stage.p.returncode == 0 and _closed(stage) and not list(rd.glob("*.mp4"))
    # the whole re-encode of the stored frames alone takes far longer (timed below)
    t = time.monotonic()
    whole = _ProcessStage(rd, 160, rd / "morph.mp4")
    whole.close()
    full = time.monotonic() - t
    print(f"the stored frames alone: {full:.2f} s")
    assert sent < full / 2 and done < full / 2, (sent, done, full)
