"""End-to-end render on the embedded smoke model: outputs, resume, settings, CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from loopwave.backends import smoke_backend  # noqa: E402
from loopwave.cli import main  # noqa: E402
from loopwave.plan import _read_png  # noqa: E402
from loopwave.render import render, render_frames  # noqa: E402
from loopwave.settings import Settings, load_settings  # noqa: E402

JOB = {
    "version": 1,
    "render": {"frames": 7, "width": 64, "height": 64, "steps": "0: (4)", "seed": 5},
    "denoise": {"frames_per_wave": 4, "base": 0.3, "amplitude": 0.3},
    "colour": {"mode": "plan", "keyframe_every": 3, "renders": 2},
    "motion": {"zoom": "0: (1.0), 4: (1.02)"},
    "interpolation": {"factor": 2, "backend": "blend"},
    "prompts": {"0": "a forest --neg blur", "3": "a castle (stone:@wave_completed(0.5, 1.5))"},
}


@pytest.fixture(scope="module")
def backend():
    return smoke_backend()


def frames_of(run_dir):
    return [_read_png(p) for p in sorted((run_dir / "frames").glob("*.png"))]


def test_end_to_end(tmp_path, backend):
    r = render(Settings.from_dict(JOB), run_dir=tmp_path / "run", backend=backend, progress=False)
    assert r.frames == 7
    frames = frames_of(r.run_dir)
    assert len(frames) == 7 and frames[0].shape == (64, 64, 3)
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # the loop moves
    rows = list(csv.DictReader(open(r.run_dir / "drift.csv")))
    assert [int(x["frame"]) for x in rows] == list(range(7))
    assert all(float(x["delta_e_to_target"]) >= 0 for x in rows)
    assert json.loads((r.run_dir / "plan.json").read_text())["keyframes"] == [0, 3, 6]
    plot = _read_png(r.run_dir / "drift.png")
    assert plot.shape == (300, 800, 3)
    assert ((plot == (214, 39, 40)).all(-1)).sum() > 50  # the red target-distance line
    av = pytest.importorskip("av")
    assert r.video is not None
    with av.open(str(r.video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 13  # 7 frames, 2x
    # the resolved settings render the same frames again
    again = render(
        load_settings(r.run_dir / "settings.json"),
        run_dir=tmp_path / "again",
        backend=backend,
        progress=False,
        video=False,
    )
    for a, b in zip(frames, frames_of(again.run_dir), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stop", [0, 4])
def test_resume_gives_the_uninterrupted_frames(tmp_path, backend, stop):
    s = Settings.from_dict(JOB)
    full = render(s, run_dir=tmp_path / "full", backend=backend, progress=False, video=False)
    cut = render(
        s, run_dir=tmp_path / "cut", backend=backend, progress=False, video=False, stop_after=stop
    )
    assert cut.frames == stop + 1
    # a half-written frame after the last recorded one is discarded on resume
    (tmp_path / "cut" / "frames" / f"{stop + 1:06d}.png").write_bytes(b"partial")
    render(
        None, run_dir=tmp_path / "cut", resume=True, backend=backend, progress=False, video=False
    )
    a, b = frames_of(full.run_dir), frames_of(tmp_path / "cut")
    assert len(a) == len(b) == 7
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    rows = list(csv.DictReader(open(tmp_path / "cut" / "drift.csv")))
    assert [int(x["frame"]) for x in rows] == list(range(7))


def test_refusals(tmp_path, backend):
    s = Settings.from_dict(JOB)
    render(s, run_dir=tmp_path / "r", backend=backend, progress=False, video=False, stop_after=0)
    with pytest.raises(ValueError, match="already holds a run"):
        render(s, run_dir=tmp_path / "r", backend=backend, progress=False)
    with pytest.raises(ValueError, match="settings.json"):
        render(None, run_dir=tmp_path / "nothing", resume=True, backend=backend)
    with pytest.raises(TypeError, match="settings"):
        render({"version": 1}, run_dir=tmp_path / "x", backend=backend)  # type: ignore[arg-type]


def test_cli_render_and_model_errors(tmp_path, capsys):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({**JOB, "output": {"dir": str(tmp_path / "out"), "name": "m"}}))
    assert main(["render", str(job), "--frames", "3", "--no-video", "--quiet"]) == 0
    assert len(list((tmp_path / "out" / "m" / "frames").glob("*.png"))) == 3
    missing = ["--model", str(tmp_path / "missing"), "--out", str(tmp_path / "o3"), "--quiet"]
    assert main(["render", str(job), *missing]) == 2
    assert "not a local file or folder" in capsys.readouterr().err
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"pickle")
    job2 = tmp_path / "job2.json"
    job2.write_text(json.dumps({**JOB, "output": {"dir": str(tmp_path / "o2")}}))
    assert main(["render", str(job2), "--model", str(ckpt), "--quiet"]) == 2
    assert "pickled" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # nothing written for a refused model


def test_frame_iterator(tmp_path, backend):
    s = Settings.from_dict(JOB)
    got = list(
        render_frames(s, run_dir=tmp_path / "it", backend=backend, progress=False, video=False)
    )
    assert [i for i, _ in got] == list(range(7))
    for (_, f), disk in zip(got, frames_of(tmp_path / "it"), strict=True):
        np.testing.assert_array_equal(f, disk)
    # stopping early leaves a resumable run
    it = render_frames(s, run_dir=tmp_path / "early", backend=backend, progress=False, video=False)
    first = [next(it) for _ in range(2)]
    it.close()
    assert [i for i, _ in first] == [0, 1]
    render(
        None, run_dir=tmp_path / "early", resume=True, backend=backend, progress=False, video=False
    )
    for a, b in zip(frames_of(tmp_path / "it"), frames_of(tmp_path / "early"), strict=True):
        np.testing.assert_array_equal(a, b)
