"""The benchmark script runs (a smoke run; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("cv2")
pytest.importorskip("blendmodes")


def load_bench(name: str):
    """Import ``benches/<name>.py`` as module ``name``."""
    path = Path(__file__).resolve().parents[1] / "benches" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_bench_color_quick_run(tmp_path, capsys):
    mod = load_bench("bench_color")
    out = tmp_path / "table.md"
    rows = mod.main(["--quick", "--markdown", str(out)])
    kernels = {r.kernel for r in rows}
    assert {"rgb_to_lab float32", "color_correct (shared target)", "rgb_to_yuv420p"} <= kernels
    assert "match_histograms 1 frame, prepared" in kernels
    assert all(r.ours_ms > 0 and r.base_ms and r.base_ms > 0 for r in rows)
    assert out.read_text().count("\n| ") == len(rows) + 1  # header row + one per kernel


def test_bench_render_runs(capsys):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    pytest.importorskip("av")
    mod = load_bench("bench_render")
    got = mod.main(["--size", "32", "--frames", "4", "--steps", "2", "--factor", "2"])
    assert got["per_frame"] > 0 and all(v > 0 for v in got.values())
    out = capsys.readouterr().out
    assert "busiest thread" in out and "encode (h264, 2 frames)" in out


def test_bench_builds_compares_a_build_with_itself(capsys):
    # the installed extension against a copy of itself: same outputs, a ratio near 1
    import loopwave._native as native

    mod = load_bench("bench_builds")
    ratio = mod.main(
        [native.__file__, native.__file__, "--rounds", "2", "--kernel", "blend_luminosity"]
    )
    assert 0.2 < ratio < 5
    assert "outputs identical: True" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no such file"):
        mod.main(["/nonexistent/_native.so", native.__file__])


def test_bench_reader_runs(capsys):
    pytest.importorskip("av")
    mod = load_bench("bench_reader")
    got = mod.main(["--size", "64x48", "--frames", "12", "--gop", "5"])
    assert set(got) == {"MP4, keyframe every 5", "raw H.264"}
    for ms in got.values():
        assert set(ms) == {"iterate once", "read(i) in order", "read(i), fresh seeks"}
        assert all(v > 0 for v in ms.values())
    assert "the in-order reads" in capsys.readouterr().out


def test_bench_accuracy_runs(capsys):
    mod = load_bench("bench_accuracy")
    diffs = mod.main(["--size", "96x64", "--frames", "2"])
    (d,) = diffs.values()
    assert d.shape == (2, 64, 96, 3)
    # the fused kernel is close to the exact step (mean well under a level)
    assert 0 < d.mean() < 1.0
    assert "more than 2 levels off" in capsys.readouterr().out


def test_bench_seed_ratio_runs(capsys, monkeypatch):
    import loopwave as lw

    mod = load_bench("bench_seed_ratio")
    limit = lw.buffer_cache_info()["max_bytes"]
    # each new result with the cache on finds a kept buffer (batches of 8 at 256x192 are
    # over the cache's 1 MiB floor): the cache-off row must not empty it in between
    kept_before: list[int] = []
    real = lw.color_correct

    def spy(frames, target, **kw):
        # the batch's calls (the single-frame row's results are under the cache's floor)
        if frames.ndim == 4 and "out" not in kw and lw.buffer_cache_info()["max_bytes"] > 0:
            kept_before.append(lw.buffer_cache_info()["buffers"])
        return real(frames, target, **kw)

    monkeypatch.setattr(mod.lw, "color_correct", spy)
    res = mod.main(["--size", "256x192", "--rounds", "3"])
    assert lw.buffer_cache_info()["max_bytes"] == limit  # the cache-off row's limit undone
    assert len(kept_before) == 4 and all(k >= 1 for k in kept_before[1:]), kept_before
    # with the renderer's own call: one frame with a target of its own, in the same rounds;
    # and one frame toward the batch's one target, as it is and as a ColorTarget
    assert set(res) == {
        "seed step (1 frame)",
        "color_correct",
        "color_correct cache off",
        "color_correct out=",
        "color_correct 1 frame, own target",
        "color_correct 1 frame, one target",
        "color_correct 1 frame, ColorTarget",
    }
    assert all(v.shape == (3,) and (v > 0).all() for v in res.values())
    out = capsys.readouterr().out
    assert out.count("per round") == 6 and "middle half" in out


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "benches").glob("*.py"))
)
def test_every_bench_script_answers_help_without_running(script):
    """From the docs review: gpu_session.py and gpu_contention.py read sys.argv by hand, so
    ``--help`` was ignored and started an SD 1.5-sized GPU run (on a CPU, a traceback)."""
    import subprocess

    path = Path(__file__).resolve().parents[1] / "benches" / script
    run = subprocess.run(
        [sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout.startswith("usage: "), run.stderr[-2000:]


def test_a_stale_loopwave_is_named(tmp_path):
    # from a session's mistake: two benchmark runs measured a virtual environment's copy
    # of loopwave installed before the last change, in place of the tree
    import os

    stale_sources = load_bench("bench_color").stale_sources
    tree, pkg = tmp_path / "tree", tmp_path / "site" / "loopwave"
    (tree / "rust" / "kernels").mkdir(parents=True)
    (tree / "python" / "loopwave").mkdir(parents=True)
    pkg.mkdir(parents=True)
    rs, tree_py = tree / "rust" / "kernels" / "lab.rs", tree / "python" / "loopwave" / "a.py"
    native, pkg_py = pkg / "_native.abi3.so", pkg / "a.py"
    for f, t in ((rs, 100), (tree / "Cargo.toml", 100), (tree_py, 100), (native, 200)):
        f.write_text("same")
        os.utime(f, (t, t))
    pkg_py.write_text("same")
    assert stale_sources(native, pkg, tree) is None
    # (a review) by content, not by time: an older copy installed after the tree's last
    # edit, and a file the install lacks, were taken as current
    pkg_py.write_text("older")
    assert "its Python sources differ" in stale_sources(native, pkg, tree)
    pkg_py.unlink()
    assert "(a.py)" in stale_sources(native, pkg, tree)
    pkg_py.write_text("same")
    os.utime(tree_py, (300, 300))  # touched, the same bytes: current
    assert stale_sources(native, pkg, tree) is None
    # the tree's own package: its Python is what runs, so only its Rust can be stale
    tree_py.write_text("changed")
    assert stale_sources(native, (tree / "python" / "loopwave").resolve(), tree) is None
    os.utime(tree / "Cargo.toml", (300, 300))  # a build setting changed since the build
    assert "rebuild" in stale_sources(native, pkg, tree)
    os.utime(tree / "Cargo.toml", (100, 100))
    os.utime(rs, (300, 300))  # a Rust change since the build
    assert "rebuild" in stale_sources(native, pkg, tree)
    (tree / "Cargo.toml").unlink()  # not a checkout: nothing to compare with
    assert stale_sources(native, pkg, tree) is None
