"""The encoder stage in a child process (``render(..., stages="process")``): the same video
as the thread stage, resume, failures, a killed child and early stops.

The videos are compared at crf 0 (lossless H.264): on a 16-core machine libx264's lossy
output differed between two identical thread-stage renders (max 28 levels, seen on the
lent H200 machine; same frames on disk), so only lossless videos can be compared exactly."""

from __future__ import annotations

import json
import signal

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


def _run_dir(tmp_path, **interpolation):
    rd = tmp_path / "run"
    rd.mkdir()
    job = {**JOB, "interpolation": {**JOB["interpolation"], **interpolation}}
    (rd / "settings.json").write_text(json.dumps(dict(Settings.from_dict(job))))
    return rd


def test_an_encoder_process_failure_is_a_stage_error_with_its_message(tmp_path):
    rd = _run_dir(tmp_path, factor=1)
    stage = _ProcessStage(rd, 0)
    stage.put(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(StageError, match="encoding failed: ValueError: frames must keep one size"):
        for _ in range(50):  # the child fails on the second frame; a later put sees it
            stage.put(np.zeros((32, 64, 3), np.uint8))
        stage.close()
    assert stage.p.returncode == 1
    assert not list(rd.glob("*.mp4"))  # no video, partial or not


def test_an_abandoned_encoder_process_exits_and_drops_the_partial_video(tmp_path):
    rd = _run_dir(tmp_path)
    stage = _ProcessStage(rd, 0)
    for i in range(3):
        stage.put(np.full((64, 64, 3), 40 * i, np.uint8))
    stage.abandon()
    assert stage.p.returncode == 0
    assert not list(rd.glob("*.mp4"))
    stage.put(np.zeros((64, 64, 3), np.uint8))  # after abandon: dropped, as the thread stage
    stage.close()  # and closing it again is harmless


def test_the_encoder_process_finishes_the_video_it_was_sent(tmp_path):
    rd = _run_dir(tmp_path, factor=3)
    stage = _ProcessStage(rd, 0)
    frames = [np.full((64, 64, 3), v, np.uint8) for v in (0, 90, 180)]
    for f in frames:
        stage.put(f)
    stage.close()
    got = decoded(rd / "morph.mp4")
    assert len(got) == 7  # 3 frames, 3x: two in between each pair
    assert np.abs(got[::3].astype(int) - np.stack(frames)).max() <= 2  # lossy H.264


def test_a_killed_encoder_process_stops_the_render_with_the_frames_saved(tmp_path):
    rd = _run_dir(tmp_path)
    stage = _ProcessStage(rd, 0)
    stage.put(np.zeros((64, 64, 3), np.uint8))
    stage.p.send_signal(signal.SIGKILL)  # as a codec's abort would end it
    stage.p.wait()
    with pytest.raises(StageError, match="encoding failed: the encoder process exited with -9"):
        stage.put(np.zeros((64, 64, 3), np.uint8))


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
