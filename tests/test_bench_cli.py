"""`loopwave bench` runs end to end on the smoke model and reports every figure (no timing is
asserted: benchmarks are not tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("av")
pytest.importorskip("cv2")

from loopwave.cli import main  # noqa: E402

SMALL = ["--size", "64", "--steps", "2", "--frames", "3", "--factor", "2", "--repeats", "1"]
KEYS = {
    "unet_its",
    "img2img_ms",
    "colour_ms",
    "interpolation_fps",
    "encode_fps",
    "render_fps",
    "unet_only_fps",
    "render_share_of_unet_only",
    "render_steady_fps",
    "render_tail_s",
    "render_steady_share_of_unet_only",
    "img2img_share_of_unet_only",
}


@pytest.mark.parametrize("exported", ["torch", "onnx"])
def test_bench_reports_every_stage(tmp_path, capsys, exported):
    if exported == "onnx":
        pytest.importorskip("onnxruntime")
    import shlex

    out = tmp_path / "my bench.json"
    args = ["--unet", exported, "--vae", exported, "--json", str(out)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["bench", *SMALL, *args]) == 0
    # a host calling main(argv) keeps its own warning filters: torch's tracer notes reach
    # it (the program, `python -m loopwave`, leaves them out: the test below)
    traced = [w for w in caught if str(w.message).startswith("Converting a tensor to a Python")]
    assert bool(traced) == (exported == "onnx")
    report = json.loads(out.read_text())
    # the command that ran it, as a shell takes it (a path with a space was two words,
    # and the arguments were sys.argv's, here pytest's own)
    assert shlex.split(report["command"]) == ["loopwave", "bench", *SMALL, *args]
    assert report["settings"]["unet"] == report["settings"]["vae"] == exported
    assert set(report["results"]) == KEYS
    assert all(v > 0 for v in report["results"].values())
    assert report["settings"]["unet_calls_per_frame"] == 1  # 2 steps at strength 0.5
    assert report["device"].startswith("CPU") and "torch" in report["versions"]
    text = capsys.readouterr().out
    assert "render / UNet only" in text and "UNet, batch 2" in text


@pytest.mark.parametrize("given", [None, "default"])
def test_the_program_leaves_out_the_onnx_exporters_notes(tmp_path, given):
    # torch's tracer printed a dozen TracerWarnings and UserWarnings about diffusers' code
    # at every export, which the user can do nothing about; their own -W still shows them
    pytest.importorskip("onnxruntime")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    if given:
        env["PYTHONWARNINGS"] = given
    args = ["bench", *SMALL, "--unet", "onnx", "--vae", "onnx"]
    run = subprocess.run(
        [sys.executable, "-m", "loopwave", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    notes = ("TracerWarning", "Converting a tensor to a Python", "Constant folding")
    assert any(n in run.stderr for n in notes) == bool(given), run.stderr[-2000:]


def test_bench_refuses_bad_settings(capsys, monkeypatch, tmp_path):
    assert main(["bench", "--size", "100"]) == 2
    assert "size must be a multiple of 8" in capsys.readouterr().err
    assert main(["bench", "--size", "16384"]) == 2  # an allocation traceback before
    assert "size must be at most 4096" in capsys.readouterr().err
    # sd15-random built its 1 GB of weights on the device before checking it (traceback)
    assert main(["bench", "--model", "sd15-random", "--device", "foo"]) == 2
    assert "device: 'foo'" in capsys.readouterr().err
    # a folder the report cannot go into was found out after the measurements (the
    # machine's user may be root, who can write anywhere: the check is what is tested)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode))
    assert main(["bench", "--json", str(tmp_path / "r.json")]) == 2
    assert "not writable" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["bench", "--strength", "0"]) == 2
    assert "strength must be in [1/1000, 1]" in capsys.readouterr().err
    # below 1/1000 img2img runs no step: the report gave 1 UNet call a frame and a
    # render at 54,780% of the UNet-only rate
    assert main(["bench", "--strength", "1e-6"]) == 2
    assert "strength must be in [1/1000, 1]; got 1e-06" in capsys.readouterr().err
    assert main(["bench", "--repeats", "0"]) == 2
    assert "repeats must be an int >= 1" in capsys.readouterr().err
    # (from a review) found after the model and every stage's measurement, as render.frames
    assert main(["bench", "--frames", "2000000"]) == 2
    assert "error: --frames must be at most 1000000; got 2000000" in capsys.readouterr().err
    # --factor was checked by interpolate(), after the model and three measurements
    import loopwave.bench as lb

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(lb, "_backend", no_model)
    for bad in ("1", "17"):
        assert main(["bench", "--factor", bad]) == 2
        assert f"factor must be an int in 2..16; got {bad}" in capsys.readouterr().err
    # steps over img2img's limit were refused by img2img, after the model was built and
    # its UNet timed; speed options after the weights were built (a billion: sd15-random)
    assert main(["bench", "--steps", "5000"]) == 2
    assert "steps must be at most 1000; got 5000" in capsys.readouterr().err
    assert main(["bench", "--model", "sd15-random", "--cuda-graphs"]) == 2
    assert "--cuda-graphs needs a CUDA device" in capsys.readouterr().err
    assert main(["bench", "--compile", "unet,foo"]) == 2
    assert "--compile: expected a comma list of unet, vae" in capsys.readouterr().err
    # from a review: refused only once the model was built (a billion weights for
    # sd15-random, a whole checkpoint for a path)
    assert main(["bench", "--compile", "unet", "--unet", "onnx"]) == 2
    assert "unet: compiled with torch.compile (accel's compile, or cuda_graphs" in (
        capsys.readouterr().err
    )
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        assert main(["bench", "--model", "sd15-random", "--vae", "tensorrt"]) == 2
        assert "needs the tensorrt package" in capsys.readouterr().err
    # an empty --json wrote no report and said nothing
    assert main(["bench", "--json", ""]) == 2
    assert "--json: expected a file path; got ''" in capsys.readouterr().err
    monkeypatch.undo()
    with pytest.raises(SystemExit):
        main(["bench", "--unet", "onnx", "--vae", "cuda"])
    assert "invalid choice: 'cuda'" in capsys.readouterr().err
    from loopwave.bench import run_bench

    with pytest.raises(ValueError, match="vae must be one of torch, onnx, tensorrt; got 'cuda'"):
        run_bench(vae="cuda")
    from loopwave.bench import median_time

    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        median_time(lambda: None, 0)


def test_bench_times_device_frames_against_uploads():
    from loopwave.bench import _chained

    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    kw = {"prompt": "a castle", "negative": "", "strength": 0.5, "steps": 2}
    lines: list[str] = []
    got = _chained("smoke", "cpu", {}, frame, kw, 1, lines.append)
    assert set(got) == {"upload each frame", "device_frames", "device_frames + device_rng"}
    assert all(v > 0 for v in got.values())
    assert len(lines) == 3 and "device_frames" in lines[1] and "device_rng" in lines[2]


def test_unet_calls_are_counted_not_assumed():
    """The report took one UNet call per step: PNDM runs more (its warm-up, or one more
    step without it), so its render share of the UNet-only rate came out too high."""
    from diffusers import PNDMScheduler

    from loopwave.backends import smoke_backend
    from loopwave.bench import unet_calls

    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    kw = {"prompt": "a castle", "negative": "", "cfg": 7.0, "seed": 1}
    b = smoke_backend(scheduler="DDIM")
    assert unet_calls(b, lambda: b.img2img(frame, strength=0.5, steps=8, **kw)) == 4
    assert unet_calls(b, lambda: b.img2img(frame, strength=0.0, steps=8, **kw)) == 0
    b = smoke_backend(scheduler="PNDM")
    b.pipe.scheduler = PNDMScheduler.from_config(b.pipe.scheduler.config, skip_prk_steps=True)
    n = unet_calls(b, lambda: b.img2img(frame, strength=1.0, steps=4, **kw))
    assert n == len(b.pipe.scheduler.timesteps) and n != 4, n
    # the hook is gone: calls after the count are not counted anywhere
    assert not b.pipe.unet._forward_pre_hooks


@pytest.mark.parametrize("which", ["tricks", "chained"])
def test_bench_variants_are_built_one_at_a_time(monkeypatch, which):
    """--tricks built each variant while the one before was still alive (with the run's
    own, three sd15-random backends: about 13 GB on a CPU)."""
    import weakref

    from loopwave import bench

    made: list[weakref.ref] = []
    build = bench._backend

    def tracked(*args, **kwargs):
        import gc

        gc.collect()
        assert all(r() is None for r in made), "the previous variant is still alive"
        b = build(*args, **kwargs)
        made.append(weakref.ref(b))
        return b

    monkeypatch.setattr(bench, "_backend", tracked)
    if which == "tricks":  # not timed (compiling on a CPU takes a minute): built and dropped
        monkeypatch.setattr(bench, "unet_its", lambda *_a, **_k: 1.0)
        got = bench._tricks("smoke", "cpu", 64, 1, lambda _: None)
    else:
        frame = np.zeros((64, 64, 3), np.uint8)
        kw = {"prompt": "a castle", "negative": "", "strength": 0.5, "steps": 2}
        got = bench._chained("smoke", "cpu", {}, frame, kw, 1, lambda _: None)
    assert len(made) == len(got) >= 3


def test_the_report_is_written_when_the_reader_of_the_table_has_gone(tmp_path):
    """From a review: `loopwave bench --json R | head -1` measured everything, then failed
    with "error: Broken pipe" on the table and never wrote R."""
    from conftest import cli_with_reader_gone

    out = tmp_path / "r.json"
    cli_with_reader_gone("bench", *SMALL, "--json", str(out), lines=1, timeout=600)
    assert set(json.loads(out.read_text())["results"]) == KEYS


def test_tricks_with_exported_parts_say_they_time_torch(tmp_path, monkeypatch):
    """From a review of the GPU paths: --tricks builds its own backends with torch's speed
    options, and the report gave their figures under settings naming an ONNX or
    TensorRT UNet. (The variants themselves are stood in for: compiling takes minutes.)"""
    pytest.importorskip("onnxruntime")
    from loopwave import bench

    monkeypatch.setattr(bench, "_tricks", lambda *a: {"baseline (SDPA)": 1.0})
    monkeypatch.setattr(bench, "_chained", lambda *a: {"upload each frame": 1.0})
    small = {"size": 64, "steps": 2, "frames": 3, "factor": 2, "repeats": 1}
    lines: list[str] = []
    report = bench.run_bench(unet="onnx", tricks=True, log=lines.append, **small)
    assert report["results"]["tricks_runtime"] == "torch"
    assert any("exported parts are not in its figures" in ln for ln in lines)
    report = bench.run_bench(tricks=True, log=lines.append, **small)
    assert "tricks_runtime" not in report["results"]


def test_bench_keeps_its_graphs_with_an_engine_dir(tmp_path, monkeypatch):
    """From a review: the bench exported its graphs into a temporary folder, gone after
    each run, so every --unet run exported (and built engines) again. With --engine-dir
    they are kept, keyed as a render keys them, and a second run reuses them."""
    pytest.importorskip("onnxruntime")
    from loopwave import trt
    from loopwave.bench import run_bench

    small = {"size": 64, "steps": 2, "frames": 3, "factor": 2, "repeats": 1}
    run_bench(unet="onnx", engine_dir=tmp_path, log=lambda _: None, **small)
    (graphs,) = tmp_path.iterdir()
    assert graphs.name.startswith("smoke-") and (graphs / "unet.onnx").is_file()
    stamp = (graphs / "unet.onnx").stat().st_mtime_ns

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(trt, "export_unet", no_export)
    report = run_bench(unet="onnx", engine_dir=tmp_path, log=lambda _: None, **small)
    assert report["results"]["unet_its"] > 0
    assert [p.name for p in tmp_path.iterdir()] == [graphs.name]
    assert (graphs / "unet.onnx").stat().st_mtime_ns == stamp


def test_bench_encodes_moving_frames_and_says_when_device_frames_is_not_timed(monkeypatch):
    """From a review: the encode figure timed 30 copies of one frame, which x264 codes
    as skips (about twice the rate of frames that change); and --device-frames was
    recorded in the report though no figure used it."""
    from loopwave import video
    from loopwave.bench import run_bench

    written: list[np.ndarray] = []
    real = video.VideoWriter.write

    def write(self, frames):
        written.append(np.array(frames))
        return real(self, frames)

    monkeypatch.setattr(video.VideoWriter, "write", write)
    lines: list[str] = []
    small = {"size": 64, "steps": 2, "frames": 3, "factor": 2, "repeats": 1}
    run_bench(accel={"device_frames": True}, log=lines.append, **small)
    timed = [w for w in written if w.ndim == 4 and len(w) == 30]
    assert timed, "the encode timing wrote no batch of 30 frames"
    for batch in timed:
        distinct = {f.tobytes() for f in batch}
        assert len(distinct) >= 9, len(distinct)
    assert any(line.startswith("note: device_frames changes none") for line in lines)


def test_a_failing_variant_of_tricks_loses_no_other_figure(monkeypatch):
    """From a review: a variant that failed (torch.compile without a C compiler, say)
    ended the bench, every figure measured before it lost, no report written. It is now
    said, and None in the report."""
    from loopwave import bench

    build = bench._backend

    def fails(model, device, accel, *_):
        accel = accel or {}
        if accel.get("compile") or accel.get("sdpa") is False or accel.get("device_rng"):
            raise RuntimeError("inductor: no C compiler")
        return build(model, device, accel)

    monkeypatch.setattr(bench, "_backend", fails)
    lines: list[str] = []
    got = bench._tricks("smoke", "cpu", 64, 1, lines.append)
    assert got["SDPA off"] is None and got["compile unet"] is None
    assert got["baseline (SDPA)"] > 0 and got["channels-last"] > 0  # before and after
    assert any("SDPA off: failed (RuntimeError: inductor: no C compiler)" in x for x in lines)
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    kw = {"prompt": "a castle", "negative": "", "strength": 0.5, "steps": 2}
    chained = bench._chained("smoke", "cpu", {}, frame, kw, 1, lines.append)
    assert chained["device_frames + device_rng"] is None and chained["device_frames"] > 0


def test_bench_names_a_missing_extra_before_the_model(monkeypatch):
    """From the same review: without PyAV or OpenCV the bench failed after the model was
    built and the first figures taken."""
    from loopwave import bench, video
    from loopwave.bench import run_bench

    def no_model(*a, **k):
        raise AssertionError("the model was built first")

    def no_av():
        raise ImportError("video I/O needs PyAV: pip install 'loopwave[video]'")

    monkeypatch.setattr(bench, "_backend", no_model)
    monkeypatch.setattr(video, "_av", no_av)
    with pytest.raises(ImportError, match="needs PyAV"):
        run_bench(size=64, steps=2, frames=3, factor=2, repeats=1)


def test_bench_takes_a_pickled_model_only_with_allow_pickle(capsys, monkeypatch, tmp_path):
    """From a review: `loopwave bench --model trusted.ckpt` was refused with "set
    model.allow_pickle = true in the settings", which bench does not read: it could
    never run."""
    import loopwave.backends as backends

    ckpt = tmp_path / "trusted.ckpt"
    ckpt.write_bytes(b"")
    assert main(["bench", "--model", str(ckpt), *SMALL]) == 2
    assert "pass --allow-pickle" in capsys.readouterr().err
    seen: dict = {}

    def load(kind, path, **kw):  # the real one would need a checkpoint and its config
        seen.update(kw, kind=kind, path=path)
        raise ValueError("loaded no further")

    monkeypatch.setattr(backends, "load_backend", load)
    assert main(["bench", "--model", str(ckpt), "--allow-pickle", *SMALL]) == 2
    assert "loaded no further" in capsys.readouterr().err
    assert seen["allow_pickle"] is True and seen["path"] == str(ckpt)


def test_one_stall_does_not_make_the_unet_figure(monkeypatch):
    """From a review: the UNet's it/s was its first timed run; one stall there (another
    process, a page-in) became the figure every "share of UNet only" row divides by
    ("render / UNet only 661%"). Now the median of runs; a clock the UNet moves, 0.1 s a
    call and one stall of 10 s in the first timed run."""
    from loopwave import bench

    b = bench._backend("smoke", "auto", None)
    clock, calls = [0.0], [0]

    def tick(*_):
        calls[0] += 1
        clock[0] += 0.1 + (10.0 if calls[0] == 3 else 0.0)  # after the 2 warm-up calls

    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    hook = b.pipe.unet.register_forward_pre_hook(tick)
    try:
        assert bench.unet_its(b, 64, 4) == pytest.approx(10.0)
    finally:
        hook.remove()


def test_bench_refuses_a_file_as_its_engine_folder_before_the_model(tmp_path, capsys, monkeypatch):
    """From a review: --engine-dir naming a file was found after the model was built
    ("[Errno 20] Not a directory: 'afile/smoke-...'", naming no option)."""
    from loopwave import bench

    def built(*_):
        raise AssertionError("the model was built")

    monkeypatch.setattr(bench, "_backend", built)
    (tmp_path / "afile").write_text("x")
    for under in ("afile", "afile/sub"):  # (a folder under a file passed as missing)
        args = ["--unet", "onnx", "--engine-dir", str(tmp_path / under)]
        assert main(["bench", *SMALL, *args]) == 2
        assert "afile is a file, not a folder" in capsys.readouterr().err
