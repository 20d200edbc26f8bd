"""The demo (the main job until the renderer lands), its CLI, and the PNG writer."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from loopwave import png
from loopwave.cli import main
from loopwave.demo import run_demo

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("skimage")


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (64, 33)])
def test_png_round_trips_through_pillow(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(png.encode_png(img))))
    assert back.dtype == np.uint8 and back.shape == img.shape
    np.testing.assert_array_equal(back, img)


def test_png_refuses_bad_images(tmp_path) -> None:
    with pytest.raises(TypeError, match="image"):
        png.encode_png([[0, 0, 0]])  # type: ignore[arg-type]
    for bad in (
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 3), np.uint8),
    ):
        with pytest.raises(ValueError, match="image"):
            png.write_png(tmp_path / "x.png", bad)
    assert not (tmp_path / "x.png").exists()
    img = np.zeros((4, 4, 3), np.uint8)
    for level in (10, -2):
        with pytest.raises(ValueError, match="level"):
            png.write_png(tmp_path / "x.png", img, level=level)
    for level in (1.5, "6", None, True):  # wrong types: a TypeError (a ValueError before)
        with pytest.raises(TypeError, match="level"):
            png.write_png(tmp_path / "x.png", img, level=level)  # type: ignore[arg-type]
    # a numpy int is an int (refused before); PIL decodes what it wrote
    from PIL import Image

    png.write_png(tmp_path / "n.png", img + 7, level=np.int64(9))  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "n.png")), img + 7)
    with pytest.raises(OSError, match="the folder .*missing does not exist"):  # not x.png.tmp
        png.write_png(tmp_path / "missing" / "x.png", img)
    (tmp_path / "d.png").mkdir()
    with pytest.raises(OSError, match="folder"):
        png.write_png(tmp_path / "d.png", img)
    assert not (tmp_path / "d.png.tmp").exists()


def test_demo_corrects_the_drift(tmp_path) -> None:
    r = run_demo(tmp_path, frames=16, size=48, keyframe_every=5, renders=2, progress=False)
    frames = sorted((tmp_path / "frames").glob("*.png"))
    assert len(frames) == 16
    first = np.asarray(Image.open(frames[0]))
    assert first.shape == (48, 48, 3)
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png"))
    assert sheet.shape[0] > 3 * 48 and sheet.shape[1] > 6 * 48
    rows = list(csv.DictReader(open(tmp_path / "drift.csv")))
    assert len(rows) == 16
    before = np.array([float(x["delta_e_before"]) for x in rows])
    after = np.array([float(x["delta_e_after"]) for x in rows])
    # the drift compounds, so the late frames are where correction must show
    assert after[-5:].mean() < 0.75 * before[-5:].mean()
    assert r.drift_after < r.drift_before
    assert r.correct_fps > 0
    # a shorter run into the same folder: the longer run's later frames went stale
    # beside the new ones; files the demo does not write stay
    # (a render's six-digit frames too: they were removed, from a review)
    for mine in ("notes.png", "000150.png", "123456.png"):
        (tmp_path / "frames" / mine).write_bytes(b"mine")
    run_demo(tmp_path, frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    left = sorted(p.name for p in (tmp_path / "frames").glob("*.png"))
    assert left == [
        "00000.png",
        "00001.png",
        "00002.png",
        "00003.png",
        "000150.png",
        "123456.png",
        "notes.png",
    ]
    assert np.asarray(Image.open(tmp_path / "frames" / "00003.png")).shape == (16, 16, 3)


def test_an_interrupted_demo_leaves_nothing_that_looks_finished(tmp_path, monkeypatch) -> None:
    """From a review: a rerun stopped part way left its first frames over the earlier
    run's, with that run's drift.csv and contact sheet: a folder that looked finished."""
    import loopwave.demo as demo

    run_demo(tmp_path, frames=8, size=16, keyframe_every=2, renders=1, progress=False)
    (tmp_path / "frames" / "notes.png").write_bytes(b"mine")
    real, written = demo.write_png, []

    def until_three(path, img):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(path)
        real(path, img)

    monkeypatch.setattr(demo, "write_png", until_three)
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path, frames=8, size=16, keyframe_every=3, renders=1, progress=False)
    # (the marker that the folder is the demo's stays: a rerun may go on in it)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        ".loopwave-demo",
        "notes.png",
    ]


def test_demo_validates_options(tmp_path) -> None:
    with pytest.raises(ValueError, match="frames"):
        run_demo(tmp_path, frames=1)
    with pytest.raises(TypeError, match="size"):
        run_demo(tmp_path, size=32.5)  # type: ignore[arg-type]
    # from a review: the folder's errors named no argument (Path's own TypeError), a
    # numpy integer was refused where the plan's own API takes one, a duration was not
    for bad, err in ((None, TypeError), (123, TypeError), ("", ValueError)):
        with pytest.raises(err, match="^out_dir must"):
            run_demo(bad, frames=2, size=16)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^renders must be an int"):
        run_demo(tmp_path, renders=np.timedelta64(2, "s"))  # type: ignore[arg-type]
    # from a review: an unmounted drive's symlink gave "[Errno 17] File exists"
    drive = tmp_path / "drive"
    drive.symlink_to(tmp_path / "not_mounted")
    with pytest.raises(ValueError, match="^out_dir: .*drive is a symlink to .*which does not"):
        run_demo(drive / "demo", frames=2, size=16)
    drive.unlink()
    r = run_demo(
        tmp_path, frames=np.int64(2), size=np.int32(16), renders=np.int8(1), progress=False
    )
    assert len(list((tmp_path / "frames").glob("*.png"))) == 2
    assert r.out_dir == tmp_path


def test_cli_demo_and_errors(tmp_path, capsys) -> None:
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path),
                "--frames",
                "6",
                "--size",
                "32",
                "--keyframe-every",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "contact sheet" in out and "before" in out
    assert main(["demo", "--out", str(tmp_path), "--frames", "0", "--quiet"]) == 2
    assert "frames must be in 2..100000" in capsys.readouterr().err
    # about 1.3 TB at the peak: refused up front, not a MemoryError traceback (a bound of 2
    # GiB a copy let through runs that needed 13 times that)
    big = ["demo", "--out", str(tmp_path), "--size", "4096", "--frames", "2000", "--quiet"]
    assert main(big) == 2
    assert "GiB at the peak, more than this machine's" in capsys.readouterr().err
    assert main(["demo", "--out", "", "--frames", "2", "--quiet"]) == 2  # wrote into the cwd
    assert "--out must name a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["no-such-command"])


def test_cli_version(capsys) -> None:
    import loopwave

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.split() == [
        "loopwave",
        loopwave.__version__,
        "(colour",
        "kernels:",
        f"{loopwave.simd_level()})",
    ]
    # the wheel's version is Cargo.toml's, as __version__ is (pyproject's own could drift)
    from importlib.metadata import version

    assert version("loopwave") == loopwave.__version__


def test_a_missing_extra_is_named_before_anything_is_made(tmp_path, monkeypatch, capsys):
    """From a review of the package as a user installs it: the demo without scikit-image
    left its folder made and empty."""
    from loopwave import demo

    def missing():
        raise ImportError("the demo uses scikit-image's sample photographs: pip install x")

    monkeypatch.setattr(demo, "_skimage", missing)
    assert main(["demo", "--out", str(tmp_path / "d"), "--frames", "2", "--quiet"]) == 2
    assert "pip install" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_failed_png_write_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    import os

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        png.write_png(tmp_path / "f.png", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []  # f.png.tmp stayed before


def test_the_demo_replaces_no_frames_it_did_not_write(tmp_path) -> None:
    """From a review: `loopwave demo --out work` removed and overwrote work/frames/00001.png
    ... (ffmpeg's %05d names, the demo's own), exit 0, no warning."""
    frames = tmp_path / "work" / "frames"
    frames.mkdir(parents=True)
    theirs = np.full((8, 8, 3), 7, np.uint8)
    for i in range(1, 11):
        png.write_png(frames / f"{i:05d}.png", theirs)
    with pytest.raises(ValueError, match="^out_dir: .*holds numbered PNGs the demo did not"):
        run_demo(tmp_path / "work", frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    assert sorted(p.name for p in frames.iterdir()) == [f"{i:05d}.png" for i in range(1, 11)]
    assert main(["demo", "--out", str(tmp_path / "work"), "--frames", "4", "--quiet"]) == 2
    # (from a later review) nor a drift.csv, a render's or a user's
    run = tmp_path / "run"
    run.mkdir()
    (run / "drift.csv").write_text("frame,delta_e_to_target\n0,1.5\n")
    with pytest.raises(ValueError, match="^out_dir: .*holds a drift.csv the demo did not"):
        run_demo(run, frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    assert [p.name for p in run.iterdir()] == ["drift.csv"]
    # (a later session) nor a contact_sheet.png of a user's: it was taken as the mark of a
    # folder an earlier version wrote, and it and the frames replaced
    sheet = tmp_path / "sheet"
    (sheet / "frames").mkdir(parents=True)
    (sheet / "contact_sheet.png").write_bytes(b"my own sheet")
    png.write_png(sheet / "frames" / "00001.png", theirs)
    with pytest.raises(ValueError, match="^out_dir: .*holds numbered PNGs the demo did not"):
        run_demo(sheet, frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    (sheet / "frames" / "00001.png").unlink()
    with pytest.raises(ValueError, match="^out_dir: .*holds a contact_sheet.png the demo did"):
        run_demo(sheet, frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    assert (sheet / "contact_sheet.png").read_bytes() == b"my own sheet"
    # its own folder it reruns into, shorter runs removing the longer's frames
    own = tmp_path / "own"
    run_demo(own, frames=6, size=16, keyframe_every=2, renders=1, progress=False)
    run_demo(own, frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    assert sorted(p.name for p in (own / "frames").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    # and one an earlier version wrote (its contact sheet and drift table, no marker)
    (own / ".loopwave-demo").unlink()
    run_demo(own, frames=3, size=16, keyframe_every=2, renders=1, progress=False)
    assert sorted(p.name for p in (own / "frames").iterdir()) == [f"{i:05d}.png" for i in range(3)]
    # (a review of that) but not a user's kept sheet beside a copy of the demo's table,
    # without the demo's frames: both were replaced, and deleted by a stopped run
    kept = tmp_path / "kept"
    kept.mkdir()
    for name in ("contact_sheet.png", "drift.csv"):
        (kept / name).write_bytes((own / name).read_bytes())
    with pytest.raises(ValueError, match="^out_dir: .*holds a drift.csv the demo did not"):
        run_demo(kept, frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    assert sorted(p.name for p in kept.iterdir()) == ["contact_sheet.png", "drift.csv"]


def test_a_demo_rerun_removes_the_last_runs_summary_first(tmp_path, monkeypatch) -> None:
    """From a review: a rerun killed part way (no exception to clean up after) left its
    first frames beside the earlier run's later frames, drift table and contact sheet: a
    folder that looked finished. The summary goes before the new frames are made."""
    import loopwave.demo as demo

    run_demo(tmp_path, frames=6, size=16, keyframe_every=2, renders=1, progress=False)
    assert (tmp_path / "drift.csv").is_file() and (tmp_path / "contact_sheet.png").is_file()
    seen = []

    def killed(out, frames, *a):
        seen.append(sorted(p.name for p in out.iterdir()))
        raise SystemExit  # (stands for the kill: what was on disk when the work began)

    monkeypatch.setattr(demo, "_run", killed)
    with pytest.raises(SystemExit):
        run_demo(tmp_path, frames=4, size=16, keyframe_every=2, renders=1, progress=False)
    assert seen == [[".loopwave-demo", "frames"]]


def test_a_first_demo_stopped_part_way_leaves_no_folder(tmp_path, monkeypatch) -> None:
    """From a review of interrupts: a first run into a new folder, stopped part way
    (Ctrl-C), left the folder with the demo's marker and an empty frames/; the folders
    it made go again (not one that was there before, nor one holding other files)."""
    import loopwave.demo as demo

    def stop(path, img):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "write_png", stop)
    out = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, frames=8, size=16, keyframe_every=2, renders=1, progress=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "mine", frames=8, size=16, keyframe_every=2, renders=1, progress=False)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["keep.txt"]


@pytest.mark.skipif(sys.platform != "linux", reason="a file name that is not text: Linux's")
def test_a_path_that_is_not_text_does_not_fail_a_finished_command(tmp_path) -> None:
    """From a review: with a strict standard output (as a UTF-8 desktop's), a command whose
    output path held a byte that is not UTF-8 wrote its files, then exited 2 with "'utf-8'
    codec can't encode character '\\udcff'". The name is printed escaped."""
    out = tmp_path / os.fsdecode(b"\xffdemo")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    cmd = [sys.executable, "-m", "loopwave", "demo", "--out", str(out), "--frames", "4", "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"\\udcffdemo" in done.stdout
    assert (out / "contact_sheet.png").is_file()
