"""Weights-free interpolation: known motion, counts, scene cuts, errors, CLI."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from loopwave import lerp_frames  # noqa: E402
from loopwave.cli import main  # noqa: E402
from loopwave.interpolate import (  # noqa: E402
    BlendInterpolator,
    FlowInterpolator,
    interpolate,
    is_scene_cut,
    resolve_factor,
    scene_cut_distance,
)
from loopwave.png import read_png, write_png  # noqa: E402

RNG = np.random.default_rng(0)
BG = cv2.GaussianBlur(RNG.integers(60, 120, (64, 96, 3)).astype(np.uint8), (0, 0), 1.0)
TEX = RNG.integers(0, 256, (20, 20, 3)).astype(np.uint8)


def square_at(x: int) -> np.ndarray:
    """A textured square on a textured background, its left edge at column x."""
    f = BG.copy()
    f[22:42, x : x + 20] = TEX
    return f


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b).mean())


@pytest.mark.parametrize("shift", [2, 4])
def test_flow_midpoint_beats_a_cross_fade(shift):
    a, b, mid = square_at(20), square_at(20 + 2 * shift), square_at(20 + shift)
    flow = FlowInterpolator().between(a, b, [0.5])[0]
    fade = BlendInterpolator().between(a, b, [0.5])[0]
    # measured: flow 1.3 vs fade 5.9 at 8 px; the bound leaves room for OpenCV versions
    assert mae(flow, mid) < 0.5 * mae(fade, mid)


def test_flow_at_quarter_steps():
    a, b = square_at(16), square_at(24)
    out = FlowInterpolator().between(a, b, [0.25, 0.75])
    assert mae(out[0], square_at(18)) < 0.6 * mae(lerp_frames(a, b, 0.25), square_at(18))
    assert mae(out[1], square_at(22)) < 0.6 * mae(lerp_frames(a, b, 0.75), square_at(22))


def flow_blend_reference(a, b, f01, f10, t, sigma):
    """The flow interpolator's blend in float64, sampling with scipy's map_coordinates
    (bilinear, edge replicated): an oracle independent of the native kernel."""
    from scipy.ndimage import map_coordinates

    h, w = a.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    f01, f10 = f01.astype(np.float64), f10.astype(np.float64)

    def warp(img, flow):
        coords = [gy + flow[..., 1], gx + flow[..., 0]]
        chans = img[..., None] if img.ndim == 2 else img
        out = np.stack(
            [
                map_coordinates(chans[..., c], coords, order=1, mode="nearest")
                for c in range(chans.shape[-1])
            ],
            -1,
        )
        return out[..., 0] if img.ndim == 2 else out

    vis0 = np.exp(-((np.linalg.norm(f01 + warp(f10, f01), axis=-1) / sigma) ** 2))
    vis1 = np.exp(-((np.linalg.norm(f10 + warp(f01, f10), axis=-1) / sigma) ** 2))
    ft0 = -(1 - t) * t * f01 + t * t * f10
    ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
    w0 = ((1 - t) * (warp(vis0, ft0) + 1e-4))[..., None]
    w1 = (t * (warp(vis1, ft1) + 1e-4))[..., None]
    af, bf = a.astype(np.float64), b.astype(np.float64)
    return (w0 * warp(af, ft0) + w1 * warp(bf, ft1)) / (w0 + w1)


def test_unrelated_frames_fade_at_each_in_betweens_time():
    """From a review: where the two flows disagree (a large move, a cut the detector
    misses), the weights' floor was added after the time weight, so every in-between was
    about an even mix ([0.3, 0.42, 0.51, 0.6, 0.69] of b at factor 6); it now falls back
    to a cross-fade at each in-between's time."""
    from skimage import data

    img = data.astronaut()  # two unrelated halves: the detector scores them 0.235, no cut
    a, b = np.ascontiguousarray(img[:256, :256]), np.ascontiguousarray(img[:256, 256:])
    out = list(interpolate([a, b], factor=6))
    assert len(out) == 7
    af, d = a.astype(np.float64), (b.astype(np.float64) - a).ravel()
    share = [float((f.astype(np.float64) - af).ravel() @ d / (d @ d)) for f in out]
    np.testing.assert_allclose(share, np.arange(7) / 6, atol=0.03)


def test_flow_blend_matches_a_float64_reference_on_a_photograph():
    from conftest import photo

    import loopwave as lw

    a = photo("astronaut", 96)[:, :80]  # not square: rows and columns must not be swapped
    m = lw.motion_matrix(96, 80, zoom=1.04, angle=2.0, translate=(3.0, -2.0))
    b = lw.warp_affine(a, m)
    flow = FlowInterpolator()
    dis = flow.flows(a, b)
    # and flows that disagree (smooth noise of a few pixels each way), so the
    # visibility weights vary over the frame and the samples reach past the edges
    rough = [
        cv2.GaussianBlur(RNG.normal(0, 40, (96, 80, 2)), (0, 0), 4).astype(np.float32) for _ in "ab"
    ]
    for f01, f10 in (dis, rough):
        flow._flows = lambda _a, _b, f=(f01, f10): f  # type: ignore[method-assign]
        ts = [0.2, 0.5, 0.75]
        got = flow.between(a, b, ts)
        for k, t in enumerate(ts):
            want = flow_blend_reference(a, b, f01, f10, t, flow.sigma)
            diff = np.abs(got[k] - np.floor(want + 0.5))
            assert diff.max() <= 1, (t, diff.max())  # float32 against float64 rounding
            assert (diff > 0).mean() < 0.01


def test_blend_midpoint_is_lerp():
    a, b = square_at(10), square_at(40)
    np.testing.assert_array_equal(
        BlendInterpolator().between(a, b, [0.5])[0], lerp_frames(a, b, 0.5)
    )


@pytest.mark.parametrize("k", [2, 6, 16])
def test_counts_and_order(k):
    frames = [square_at(10 + 4 * i) for i in range(4)]
    out = list(interpolate(frames, factor=k, backend="blend", scene_cut=False))
    assert len(out) == 3 * k + 1
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(out[i * k], f)
    looped = list(interpolate(frames, factor=k, backend="blend", scene_cut=False, loop=True))
    assert len(looped) == 4 * k


@pytest.mark.parametrize("loop", [False, True])
def test_pairs_in_parallel_give_the_same_stream(loop):
    """workers > 1: the flow interpolator on several pairs at once (one DIS object per
    thread), frames in the same order and bit-identical to one pair at a time."""
    from skimage import data

    photo = cv2.resize(data.astronaut(), (96, 64))
    # a cut in the middle: held frames must land in the right slots too
    frames = [square_at(10 + 3 * i) for i in range(4)] + [np.roll(photo, i, 1) for i in range(3)]
    one = list(interpolate(frames, factor=4, loop=loop, workers=1))
    for workers in (2, 3, 8):
        many = list(interpolate(frames, factor=4, loop=loop, workers=workers))
        assert len(many) == len(one) == (len(frames) - (not loop)) * 4 + (not loop)
        for x, y in zip(one, many, strict=True):
            np.testing.assert_array_equal(x, y)


def test_interpolators_that_are_not_thread_safe_run_one_pair_at_a_time():
    import threading

    class Recording(BlendInterpolator):
        thread_safe = False

        def __init__(self) -> None:
            self.threads: set[str] = set()

        def _between(self, a, b, ts):
            self.threads.add(threading.current_thread().name)
            return super()._between(a, b, ts)

    frames = [square_at(10 + 4 * i) for i in range(5)]
    rec = Recording()
    assert len(list(interpolate(frames, factor=3, backend=rec, scene_cut=False))) == 13
    assert rec.threads == {threading.current_thread().name}
    threaded = Recording()
    threaded.thread_safe = True
    list(interpolate(frames, factor=3, backend=threaded, scene_cut=False, workers=3))
    assert all(t.startswith("loopwave-interp") for t in threaded.threads)
    # asked for by number: still one pair at a time (it once ran four at once)
    rec = Recording()
    assert len(list(interpolate(frames, factor=3, backend=rec, scene_cut=False, workers=4))) == 13
    assert rec.threads == {threading.current_thread().name}
    assert len(list(interpolate(frames, factor=3, backend="blend", workers=np.int64(2)))) == 13
    for bad, err in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(err, match="workers"):
            list(interpolate(frames, backend="blend", workers=bad))


def test_a_failing_pair_stops_the_stream():
    class Broken(BlendInterpolator):
        def _between(self, a, b, ts):
            raise RuntimeError("boom")

    frames = [square_at(10 + 4 * i) for i in range(5)]
    with pytest.raises(RuntimeError, match="boom"):
        list(interpolate(frames, factor=3, backend=Broken(), scene_cut=False, workers=2))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_frames_before_a_failing_source_come_out_whatever_the_workers(workers):
    """From a review: with more than one worker, the pairs still in flight when the
    frames' iterator raised were dropped (4 workers gave 1 frame of 7)."""

    def source():
        for i in range(4):
            yield np.full((32, 32, 3), 60 * i, np.uint8)
        raise OSError("decode error")

    got = []
    with pytest.raises(OSError, match="decode error"):
        for f in interpolate(source(), factor=2, backend="blend", scene_cut=False, workers=workers):
            got.append(int(f.mean()))
    assert got == [0, 30, 60, 90, 120, 150, 180]


def test_factor_from_fps():
    assert resolve_factor(None, to_fps=60, fps=10) == 6
    assert resolve_factor(None, to_fps="60000/1001", fps="10000/1001") == 6
    with pytest.raises(ValueError, match=r"integer multiple.*retime\(frames, times"):
        resolve_factor(None, to_fps=60, fps=25)
    with pytest.raises(ValueError, match="got fps alone"):  # (a review: "to_fps and fps")
        resolve_factor(6, fps=30)
    with pytest.raises(ValueError, match="got to_fps alone"):
        resolve_factor(None, to_fps=60)
    # NTSC rates written as decimals (a review: 59.94 over 30000/1001 was refused, its
    # message "59.94/30000/1001 = 999999/500000")
    ntsc = Fraction(30000, 1001)
    assert resolve_factor(None, to_fps=59.94, fps=ntsc) == 2
    assert resolve_factor(None, to_fps="119.88", fps="23.976") == 5
    assert resolve_factor(None, to_fps=Fraction(60000, 1001), fps=29.97) == 2
    with pytest.raises(
        ValueError, match=r"^to_fps must .*to_fps 60 / fps 30000/1001 = 2.002 \(retime"
    ):
        resolve_factor(None, to_fps=60, fps=ntsc)  # 60 is not twice 29.97
    for bad in (1, 17, 0):
        with pytest.raises(ValueError, match="factor"):
            resolve_factor(bad)
    with pytest.raises(TypeError, match="factor"):
        resolve_factor(2.5)  # type: ignore[arg-type]
    assert resolve_factor(None) == 6
    exact = Fraction(90000000, 3003037)  # each rounded to 10^6 below, the ratio was not 6
    assert resolve_factor(None, to_fps=exact * 6, fps=exact) == 6
    assert resolve_factor(6, to_fps=60, fps=10) == 6  # both, agreeing
    with pytest.raises(ValueError, match="disagrees"):  # once: silently 6
        resolve_factor(4, to_fps=60, fps=10)
    a = square_at(10)
    with pytest.raises(ValueError, match="disagrees"):
        interpolate([a, a], factor=4, to_fps=60, fps=10)
    # a factor out of range from the rates names the rates, not a factor never passed
    for to_fps, fps, k in ((10, 10, 1), (200, 10, 20), ("60000/1001", "60000/1001", 1)):
        with pytest.raises(ValueError, match=f"^to_fps {to_fps} over fps {fps} gives factor {k}; "):
            interpolate([a, a], to_fps=to_fps, fps=fps, backend="blend")
    with pytest.raises(ValueError, match="^to_fps 10 over fps 10 gives factor 1"):
        resolve_factor(1, to_fps=10, fps=10)  # both given, agreeing: still the rates
    assert len(list(interpolate([a, a], backend="blend", scene_cut=False))) == 7  # factor 6


def test_scene_cuts_are_detected_and_held():
    from skimage import data

    def clip(img, n):
        img = cv2.resize(img[..., :3], (96, 64))
        return [np.roll(img, 2 * i, axis=1) for i in range(n)]

    seq = clip(data.astronaut(), 4) + clip(data.coffee(), 4)
    cuts = [i for i in range(7) if is_scene_cut(seq[i], seq[i + 1])]
    assert cuts == [3]
    assert scene_cut_distance(seq[0], seq[0]) == 0
    out = list(interpolate(seq, factor=3, backend="blend"))
    held = out[3 * 3 + 1 : 3 * 3 + 3]
    for f in held:
        np.testing.assert_array_equal(f, seq[3])


SMALL_FRAMES_SCRIPT = """
import numpy as np
from loopwave.interpolate import FlowInterpolator
rng = np.random.default_rng(1)
for preset in ("ultrafast", "fast", "medium"):
    fi = FlowInterpolator(preset=preset)
    for h, w in ((1, 1), (4, 6), (12, 100), (16, 100), (24, 300), (31, 200), (12, 96), (95, 8)):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out = fi.between(a, a, [0.5])
        assert out.shape == (1, h, w, 3), (preset, h, w, out.shape)
        # no motion between identical frames: the frame comes back
        assert np.abs(out[0].astype(int) - a).max() <= 1, (preset, h, w)
        f01, f10 = fi.flows(a, np.roll(a, 1, axis=1))
        assert f01.shape == f10.shape == (h, w, 2)
print("ok")
"""


def test_flow_on_small_and_short_wide_frames():
    """OpenCV's DIS kills the process on frames such as 12x100 (measured: exit code
    -11); the interpolator extends small frames by their edges first. Run in a child
    process so a regression fails this test instead of crashing pytest."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", SMALL_FRAMES_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])


def test_black_and_white_frames_have_a_distance():
    """Black's L* must land in the histogram (it once came out as -6e-8 and was dropped,
    giving 0/0 = NaN and never a cut)."""
    black, white = np.zeros((32, 48, 3), np.uint8), np.full((32, 48, 3), 255, np.uint8)
    assert scene_cut_distance(black, white) == pytest.approx(1 / 3)  # only L differs
    assert scene_cut_distance(black, black) == 0
    assert is_scene_cut(black, white, threshold=0.3)
    out = list(interpolate([black, white], factor=2, backend="blend", scene_cut=0.3))
    np.testing.assert_array_equal(out[1], black)  # held, not a grey cross-fade


def test_tiny_colour_shifts_are_not_cuts():
    """The a*/b* histograms had a bin edge at exactly 0, where greys sit: flat grey
    (128, 128, 128) -> (127, 128, 129) scored 0.667 and was held as a cut in the middle of
    a fade; a noisy near-grey picture shifted by one level scored up to 0.26."""
    import itertools

    flat = np.full((64, 64, 3), 128, np.uint8)
    tinted = np.empty_like(flat)
    tinted[...] = (127, 128, 129)
    assert scene_cut_distance(flat, tinted) < 0.05
    assert not is_scene_cut(flat, tinted)
    out = list(interpolate([flat, tinted], factor=4, backend="blend"))
    np.testing.assert_array_equal(out[2], lerp_frames(flat, tinted, 0.5))  # not held
    assert not np.array_equal(out[2], flat)
    # every grey level, every 1-level tint of it
    worst = 0.0
    for g in range(0, 256, 5):
        grey = np.full((8, 8, 3), g, np.uint8)
        for tint in itertools.product((-1, 0, 1), repeat=3):
            shifted = np.clip(grey.astype(np.int16) + tint, 0, 255).astype(np.uint8)
            worst = max(worst, scene_cut_distance(grey, shifted))
    assert worst < 0.1
    # a desaturated, noisy picture shifted toward blue or red by a level or two
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (128, 128, 1)).astype(np.int16)
    img = np.clip(base + rng.integers(-1, 2, (128, 128, 3)), 0, 255)
    for shift in ((0, 0, 1), (-1, 0, 1), (1, 0, -1), (-2, 0, 2)):
        moved = np.clip(img + shift, 0, 255).astype(np.uint8)
        assert scene_cut_distance(img.astype(np.uint8), moved) < 0.05, shift
    # a slow fade of a flat frame toward a tint: no cut anywhere on the way
    fade = [np.full((16, 16, 3), (128 - i, 128, 128 + i), np.uint8) for i in range(12)]
    assert not any(is_scene_cut(x, y) for x, y in itertools.pairwise(fade))


def test_bad_inputs():
    a = square_at(10)
    with pytest.raises(ValueError, match="timesteps"):
        FlowInterpolator().between(a, a, [0.0, 0.5])
    with pytest.raises(ValueError, match="shape"):
        BlendInterpolator().between(a, a[:10], [0.5])
    with pytest.raises(TypeError, match="uint8"):
        BlendInterpolator().between(a.astype(np.float32), a.astype(np.float32), [0.5])
    with pytest.raises(ValueError, match="OnnxRifeInterpolator"):
        list(interpolate([a, a], backend="rife"))
    with pytest.raises(TypeError, match="^backend must be 'flow', 'blend' or an Interpolator"):
        list(interpolate([a, a], backend=np.array(["flow", "blend"])))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        list(interpolate([a, a[:10]], backend="blend", scene_cut=False))
    with pytest.raises(ValueError, match="scene_cut"):
        list(interpolate([a, a], scene_cut=2.0))
    # NumPy scalars are numbers (np.float32 was refused, np.float64 taken)
    assert len(list(interpolate([a, a], factor=2, backend="blend", scene_cut=np.float32(0.3)))) == 3
    for threshold, err in (("0.3", TypeError), (float("nan"), ValueError), (1.5, ValueError)):
        with pytest.raises(err, match="threshold"):
            is_scene_cut(a, a, threshold=threshold)  # type: ignore[arg-type]
    assert is_scene_cut(a, square_at(40), threshold=np.float32(0.0))
    # the public flows() checks its frames (it raised cv2.error)
    with pytest.raises(ValueError, match="shape"):
        FlowInterpolator().flows(a, a[:12])
    with pytest.raises(TypeError, match="uint8"):
        FlowInterpolator().flows(a.astype(np.float32), a.astype(np.float32))
    f01, f10 = FlowInterpolator().flows(a, square_at(14))
    assert f01.shape == f10.shape == (*a.shape[:2], 2) and f01.dtype == np.float32
    with pytest.raises(ValueError, match="preset"):
        FlowInterpolator(preset="slow")
    with pytest.raises(TypeError, match="^preset"):
        FlowInterpolator(preset=[])  # type: ignore[arg-type]
    # 1e-39 (its f32 inverse infinite) made every visibility NaN and the frames black;
    # 10**400 raised numpy's own TypeError (a review)
    for sigma, err in (
        (float("inf"), ValueError),
        (0, ValueError),
        ("1", TypeError),
        (1e-39, ValueError),
        (10**400, ValueError),
        (1e7, ValueError),
    ):
        with pytest.raises(err, match="^occlusion_sigma"):
            FlowInterpolator(occlusion_sigma=sigma)  # type: ignore[arg-type]
    FlowInterpolator(occlusion_sigma=1e-3)
    FlowInterpolator(occlusion_sigma=np.float32(1e6))
    # checked when interpolate() is called, not at the first frame drawn
    with pytest.raises(ValueError, match="^factor"):
        interpolate([a, a], factor=99)
    with pytest.raises(TypeError, match="^frames"):
        interpolate(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^frames: an array"):
        interpolate(np.stack([a, a])[0])  # one frame, not a batch
    # an (N, H, W, 3) array is a sequence of frames
    batch = list(interpolate(np.stack([a, a, a]), factor=2, backend="blend"))
    assert len(batch) == 5
    with pytest.raises(TypeError, match="^loop"):
        interpolate([a, a], loop="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^frames\[0\] must be uint8"):
        list(interpolate([a.astype(np.float32) / 255] * 2, backend="blend"))


def png_folder(path, n):
    """A folder of ``n`` numbered PNGs of a moving square."""
    path.mkdir()
    for i in range(n):
        write_png(path / f"{i:03d}.png", square_at(10 + 4 * i))
    return path


def test_cli_removes_the_frames_of_a_folder_it_did_not_finish(tmp_path, capsys):
    """A damaged input frame stopped the command with 5 numbered frames left in the
    output folder, a sequence that looks whole; they go now, as a video's partial file
    does, unless --keep-partial."""
    src = png_folder(tmp_path / "in", 6)
    png = (src / "004.png").read_bytes()
    (src / "004.png").write_bytes(png[: len(png) // 2])  # its header intact, its data cut
    out = tmp_path / "out"
    assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 2
    assert "004.png" in capsys.readouterr().err
    assert not out.exists()
    out.mkdir()  # a folder that was there (empty) stays
    assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 2
    assert out.is_dir() and not list(out.iterdir())
    argv = ["interpolate", str(src), "-o", str(out), "--blend", "--quiet", "--keep-partial"]
    assert main(argv) == 2
    assert len(list(out.glob("*.png"))) > 0
    # a write-protected video output is refused before the input is read (here missing)
    kept = tmp_path / "kept.mp4"
    kept.write_bytes(b"mine")
    kept.chmod(0o444)
    argv = ["interpolate", str(tmp_path / "missing"), "-o", str(kept), "--quiet"]
    assert main(argv) == 2
    assert "kept.mp4 exists and is write-protected" in capsys.readouterr().err
    assert kept.read_bytes() == b"mine"
    # from a review: the folders above a new output folder, made for it, were left
    deep = tmp_path / "new" / "a" / "sub"
    assert main(["interpolate", str(src), "-o", str(deep), "--blend", "--quiet"]) == 2
    assert not (tmp_path / "new").exists()


def test_cli_flow_preset(tmp_path, capsys, flow_presets_made):
    """--flow-preset picks the DIS preset of the flow backend (it was only reachable from
    Python, FlowInterpolator(preset=...)); with another backend it is refused."""
    src = png_folder(tmp_path / "in", 3)
    outs = {}
    for preset in ("ultrafast", "medium", None):
        out = tmp_path / f"out_{preset}"
        extra = [] if preset is None else ["--flow-preset", preset]
        argv = ["interpolate", str(src), "-o", str(out), "--factor", "2", *extra, "--quiet"]
        assert main(argv) == 0
        outs[preset] = [read_png(p) for p in sorted(out.glob("*.png"))]
    # the default: the string backend, "flow", whose interpolator takes "medium"
    assert flow_presets_made == ["ultrafast", "medium", None]
    for a, b in zip(outs["medium"], outs[None], strict=True):
        np.testing.assert_array_equal(a, b)
    for extra in (["--blend"], ["--model", "r.onnx"]):
        out = str(tmp_path / "x")
        assert main(["interpolate", str(src), "-o", out, "--flow-preset", "fast", *extra]) == 2
        assert "--flow-preset: only with the flow backend" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's own refusal names the choices
        main(["interpolate", str(src), "-o", str(tmp_path / "y"), "--flow-preset", "slow"])
    assert "choose from" in capsys.readouterr().err


def test_cli_folder_to_folder_and_video(tmp_path, capsys):
    src = png_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    assert main(["interpolate", str(src), "-o", str(out), "--factor", "4", "--quiet"]) == 0
    assert len(list(out.glob("*.png"))) == 9
    assert main(["interpolate", str(src), "-o", str(tmp_path / "x"), "--model", "r.onnx"]) == 2
    # (without onnxruntime the missing runtime is named first)
    err = capsys.readouterr().err
    assert "no such file" in err or "needs onnxruntime" in err
    pytest.importorskip("av")
    from loopwave.video import VideoReader

    video = tmp_path / "out.mp4"
    assert main(["interpolate", str(src), "-o", str(video), "--blend", "--quiet"]) == 0
    with VideoReader(video) as r:
        assert r.frame_count == 13 and r.fps == 60
    assert not (tmp_path / "out.partial.mp4").exists()  # renamed when complete
    from loopwave.video import list_encoders

    if "vp9" in list_encoders():  # WebM: VP9 picked for it (h264 always failed there)
        webm = tmp_path / "out.webm"
        assert main(["interpolate", str(src), "-o", str(webm), "--blend", "--quiet"]) == 0
        with VideoReader(webm) as r:
            assert r.frame_count == 13 and r.stream.codec_context.name == "vp9"
    # stale frames of an earlier run would mix with new ones; the input is never the output
    assert main(["interpolate", str(src), "-o", str(out), "--factor", "2", "--quiet"]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert len(list(out.glob("*.png"))) == 9
    assert main(["interpolate", str(src), "-o", str(src), "--quiet"]) == 2
    assert "must not be the input" in capsys.readouterr().err
    too_fast = ["interpolate", str(src), "-o", str(tmp_path / "f.mp4"), "--fps", "999"]
    assert main([*too_fast, "--factor", "6", "--quiet"]) == 2
    assert "--fps x --factor" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["interpolate", str(empty), "-o", str(tmp_path / "e.mp4"), "--quiet"]) == 2
    assert "IN: no .png frames" in capsys.readouterr().err  # it named FRAMES_DIR
    # frames of two sizes: refused from the headers, naming the file, before any output
    write_png(src / "999.png", np.zeros((16, 16, 3), np.uint8))
    mixed = tmp_path / "mixed.mp4"
    assert main(["interpolate", str(src), "-o", str(mixed), "--blend", "--quiet"]) == 2
    assert "IN: the frames must have one size; 999.png is 16x16" in capsys.readouterr().err
    assert not mixed.exists() and not (tmp_path / "mixed.partial.mp4").exists()
    # a cut-off PNG fails part way: the part written goes unless --keep-partial
    (src / "999.png").write_bytes((src / "000.png").read_bytes()[:60])
    assert main(["interpolate", str(src), "-o", str(mixed), "--blend", "--quiet"]) == 2
    assert not mixed.exists() and not (tmp_path / "mixed.partial.mp4").exists()
    keep = ["interpolate", str(src), "-o", str(mixed), "--blend", "--quiet", "--keep-partial"]
    assert main(keep) == 2
    assert not mixed.exists() and (tmp_path / "mixed.partial.mp4").exists()


def test_native_flow_kernel_refuses_bad_arrays():
    """The private kernel behind FlowInterpolator checks what it relies on itself."""
    from loopwave import _native

    pair = np.zeros((2, 8, 9, 3), np.uint8)
    flows = np.zeros((2, 8, 9, 2), np.float32)
    ts = np.array([0.5])
    assert _native._flow_interpolate(pair, flows, ts, 1.5).shape == (1, 8, 9, 3)
    cases = [
        ((np.zeros((3, 8, 9, 3), np.uint8), flows, ts, 1.5), "pair"),
        ((pair, flows[:, :7], ts, 1.5), "flows"),
        ((pair, flows[:, :, ::-1], ts, 1.5), "flows"),  # not C-contiguous
        ((pair, np.full_like(flows, np.nan), ts, 1.5), "flows"),
        ((pair, flows, np.array([0.0]), 1.5), "timesteps"),
        ((pair, flows, ts, -1.0), "sigma"),
    ]
    for args, name in cases:
        with pytest.raises(ValueError, match=name):
            _native._flow_interpolate(*args)


def test_native_flow_kernel_checks_every_flow_value():
    """The flows' check is one vectorised pass in blocks of 4096 values (it was two
    early-exit scans a value at a time): a bad value anywhere, in either flow, in the
    first or a later block or the last, short one, is named as before."""
    from loopwave import _native

    pair = np.zeros((2, 48, 50, 3), np.uint8)  # 4,800 values a flow: a block and a part
    ts = np.array([0.5])
    places = [(0, 0, 0, 0), (0, 40, 49, 1), (1, 0, 0, 0), (1, 40, 48, 0), (1, 47, 49, 1)]
    for where in places:
        for bad, said in [
            (np.nan, "flows: contains NaN or infinity"),
            (-np.inf, "flows: contains NaN or infinity"),
            (np.inf, "flows: contains NaN or infinity"),
            (1.0000001e18, r"flows: must each be within ±1e18 pixels"),
            (-3e18, r"flows: must each be within ±1e18 pixels"),
        ]:
            flows = np.zeros((2, 48, 50, 2), np.float32)
            flows[where] = bad
            if bad == -3e18:  # a value too large and a NaN: the NaN is named, as before
                flows[places[-1] if where != places[-1] else places[0]] = np.nan
                said = "flows: contains NaN or infinity"
            with pytest.raises(ValueError, match=said):
                _native._flow_interpolate(pair, flows, ts, 1.5)
        flows = np.zeros((2, 48, 50, 2), np.float32)
        flows[where] = np.float32(-1e18)  # the bound itself is taken
        assert _native._flow_interpolate(pair, flows, ts, 1.5).shape == (1, 48, 50, 3)


def test_cli_never_overwrites_its_input(tmp_path, capsys):
    """`interpolate clip.partial.mp4 -o clip.mp4`: the output is written as clip.partial.mp4,
    the input; it was truncated while read, then renamed away, and a short video left."""
    pytest.importorskip("av")
    from loopwave.video import VideoReader, VideoWriter

    src = tmp_path / "clip.partial.mp4"
    with VideoWriter(src, fps=10) as w:
        w.write(np.stack([square_at(10 + 2 * i) for i in range(5)]))
    before = src.read_bytes()
    out = tmp_path / "clip.mp4"
    assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 2
    assert "which is the input" in capsys.readouterr().err
    assert src.read_bytes() == before and not out.exists()
    with VideoReader(src) as r:
        assert r.frame_count == 5
    assert main(["interpolate", str(src), "-o", str(src), "--blend", "--quiet"]) == 2
    assert "must not be the input" in capsys.readouterr().err
    # the input named through a link at the output's name: the rename would replace it
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    assert main(["interpolate", str(link), "-o", str(link), "--blend", "--quiet"]) == 2
    assert "must not be the input" in capsys.readouterr().err
    assert link.is_symlink() and src.read_bytes() == before


def test_cli_output_another_name_of_the_input(tmp_path):
    """-o naming a hard link of the input, or a link to it, was refused as the input: the
    video is renamed over that name when complete, and the input is kept."""
    pytest.importorskip("av")
    from loopwave.video import VideoReader, VideoWriter

    src = tmp_path / "clip.mp4"
    with VideoWriter(src, fps=10) as w:
        w.write(np.stack([square_at(10 + 2 * i) for i in range(5)]))
    before = src.read_bytes()
    hard, soft = tmp_path / "hard.mp4", tmp_path / "soft.mp4"
    os.link(src, hard)
    soft.symlink_to(src)
    for out in (hard, soft):
        assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 0
        assert src.read_bytes() == before and not out.is_symlink()
        with VideoReader(out) as r:
            assert r.frame_count == 25
        with VideoReader(src) as r:
            assert r.frame_count == 5


def test_cli_output_names(tmp_path, capsys):
    """-o X.m4v (a container VideoWriter writes) made a folder of PNGs named X.m4v, and
    -o X.avi (one it does not) a folder too."""
    pytest.importorskip("av")
    from loopwave.video import VideoReader

    src = png_folder(tmp_path / "in", 3)
    m4v = tmp_path / "out.m4v"
    assert main(["interpolate", str(src), "-o", str(m4v), "--factor", "2", "--quiet"]) == 0
    assert m4v.is_file()
    with VideoReader(m4v) as r:
        assert r.frame_count == 5
    for name in ("out.avi", "out.mpg", "out.gif", "out.ts"):
        assert main(["interpolate", str(src), "-o", str(tmp_path / name), "--quiet"]) == 2
        assert "cannot write" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    # from a review: -o X.png made a folder named X.png holding the frames
    for name in ("x.png", "x.JPG", "x.webp"):
        assert main(["interpolate", str(src), "-o", str(tmp_path / name), "--quiet"]) == 2
        assert f"{name} names an image" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    # and an input's rate too high to multiply was blamed on --fps, not given
    from loopwave.video import VideoWriter

    fast = tmp_path / "fast.mp4"
    with VideoWriter(fast, fps=240) as w:
        w.write(np.stack([square_at(10), square_at(14)]))
    argv = ["interpolate", str(fast), "-o", str(tmp_path / "f.mp4"), "--factor", "6", "--quiet"]
    assert main(argv) == 2
    assert "the input's rate x --factor: at most 1000 fps out; got 240 x 6" in (
        capsys.readouterr().err
    )


def test_cli_output_under_or_named_by_a_file(tmp_path, capsys):
    """-o naming an existing file without an extension said "[Errno 17] File exists:
    'plainfile'", and -o under a file "[Errno 20] Not a directory" (a video under a file:
    "the folder ... is missing"); now they say what is wrong, name -o, and read nothing."""
    src = png_folder(tmp_path / "in", 2)
    plain = tmp_path / "plainfile"
    plain.write_bytes(b"keep")
    for out, said in (
        (plain, f"-o: {plain} is a file; name a video file (.mp4, .mkv, ...) or a folder for PNG"),
        (plain / "x", f"-o: cannot write the folder {plain}/x: {plain} is a file, not a folder"),
        (plain / "x" / "y", f"-o: cannot write the folder {plain}/x/y: {plain} is a file"),
        (plain / "x.mp4", f"-o: cannot write the video {plain}/x.mp4: {plain} is a file, not a"),
        (plain / "x" / "y.mkv", f"-o: cannot write the video {plain}/x/y.mkv: {plain} is a file"),
    ):
        assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"loopwave interpolate: error: {said}" in err, err
        assert "Errno" not in err
    assert plain.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "plainfile"]
    # the library's subject, path, is what the CLI renames
    import re

    from loopwave.interpolate import _check_output

    with pytest.raises(ValueError, match=f"^path: {re.escape(str(plain))} is a file"):
        _check_output(plain, False)
    _check_output(tmp_path / "new" / "frames", False)  # a folder to be made: fine
    _check_output(tmp_path / "new.mp4", True)
    # from a review: a symlink to an unmounted drive passed, then mkdir said "[Errno 17]"
    drive = tmp_path / "drive"
    drive.symlink_to(tmp_path / "not_mounted")
    for out, what in ((drive, "folder"), (drive / "x", "folder"), (drive / "x.mp4", "video")):
        assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 2
        err = capsys.readouterr().err
        said = f"-o: cannot write the {what} {out}: {drive} is a symlink to "
        assert said in err and "which does not exist" in err and "Errno" not in err, err


def test_cli_input_without_decodable_frames(tmp_path, capsys):
    """An AVI cut inside its first frame: a FileNotFoundError about out.partial.mp4."""
    av = pytest.importorskip("av")
    whole, cut = tmp_path / "whole.avi", tmp_path / "cut.avi"
    c = av.open(str(whole), "w")
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
    for i in range(5):
        for p in s.encode(av.VideoFrame.from_ndarray(square_at(10 + i), format="rgb24")):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    with av.open(str(whole)) as c:
        first = next(c.demux(video=0))
        end = first.pos + first.size // 2
    cut.write_bytes(whole.read_bytes()[:end])
    for out in (tmp_path / "e.mp4", tmp_path / "frames"):
        assert main(["interpolate", str(cut), "-o", str(out), "--blend", "--quiet"]) == 2
        assert "has no decodable video frames" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.avi", "whole.avi"]


def test_cli_keeps_a_phone_clip_upright(tmp_path):
    """A portrait clip (display matrix, rotation -90) came out sideways: the reader ignored
    the rotation and the output has none."""
    av = pytest.importorskip("av")
    from loopwave.video import VideoReader

    src = tmp_path / "phone.mp4"
    c = av.open(str(src), "w")
    s = c.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
    s.set_display_rotation(-90)
    for i in range(3):
        for p in s.encode(av.VideoFrame.from_ndarray(square_at(10 + 4 * i), format="rgb24")):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    out = tmp_path / "x2.mp4"
    assert main(["interpolate", str(src), "-o", str(out), "--factor", "2", "--quiet"]) == 0
    with VideoReader(src) as a, VideoReader(out) as b:
        assert (a.width, a.height) == (b.width, b.height) == (64, 96)
        assert b.rotation == 0
        assert mae(b.read(0), a.read(0)) < 3 and mae(b.read(4), a.read(2)) < 3


@pytest.mark.parametrize("n, loop, total", [(1, True, 1), (3, True, 12), (3, False, 9)])
def test_cli_progress_total_is_the_frames_written(tmp_path, monkeypatch, n, loop, total):
    """With --loop, one frame stays one frame: the bar once ended at 1/4."""
    import loopwave._progress as progress

    seen = []

    class Recording(progress.Progress):
        def __init__(self, total, *a, **k):
            seen.append(total)
            super().__init__(total, *a, **k)

    monkeypatch.setattr(progress, "Progress", Recording)
    src = png_folder(tmp_path / "in", n)
    out = tmp_path / "out"
    args = ["interpolate", str(src), "-o", str(out), "--factor", "4", "--blend"]
    assert main([*args, *(["--loop"] if loop else [])]) == 0
    assert seen == [total] == [len(list(out.glob("*.png")))]


def test_a_producer_may_reuse_its_buffer_and_the_caller_may_change_the_output():
    """interpolate kept the input arrays themselves: a generator that refills one buffer
    got every in-between as the new frame against itself; and frames it yielded (the
    inputs, a frame held across a cut) were one array, so changing one changed others."""
    seq = [square_at(10 + 4 * i) for i in range(4)]
    want = [f.copy() for f in interpolate(seq, factor=3, backend="blend")]
    buf = np.empty_like(seq[0])

    def refilled():
        for f in seq:
            buf[...] = f
            yield buf

    got = list(interpolate(refilled(), factor=3, backend="blend"))
    assert len(got) == len(want) == 10
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert not any(np.shares_memory(g, f) for g in got for f in seq)
    # a cut: the frame before it is held, each time as an array of its own
    cut = [square_at(10), np.full_like(seq[0], 255)]
    out = list(interpolate(cut, factor=4, backend="blend", scene_cut=0.1))
    assert len({id(f) for f in out}) == len(out) == 5
    held = out[1].copy()
    out[0][...] = 7
    np.testing.assert_array_equal(out[1], held)


def test_timesteps_must_be_numbers_not_text():
    """numpy parsed "0.5" as a number: a string was taken as a timestep."""
    a = square_at(10)
    for bad in ("0.5", ["0.5"], [True], [0.5j], [[0.5], [0.2, 0.3]]):
        with pytest.raises(TypeError, match="timesteps must be numbers"):
            BlendInterpolator().between(a, a, bad)
    assert BlendInterpolator().between(a, a, [np.float32(0.5), 1 / 3]).shape == (2, *a.shape)


def test_cli_keeps_a_videos_sound(tmp_path, capsys):
    """From a review: `loopwave interpolate` wrote the video without the input's sound,
    without a word. It is kept (in step: frame i of the input plays at i / fps in both)
    unless --no-audio."""
    av = pytest.importorskip("av")
    import wave

    from loopwave.video import VideoWriter

    wav = tmp_path / "tone.wav"
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(48000)
        f.writeframes((np.sin(np.arange(48000 * 2) * 0.0576) * 8000).astype("<i2").tobytes())
    src = tmp_path / "in.mp4"
    with VideoWriter(src, fps=10, audio=wav) as w:
        for i in range(12):
            w.write(square_at(10 + 2 * i))

    def streams(path):
        with av.open(str(path)) as c:
            sound = c.streams.audio
            seconds = float(sound[0].duration * sound[0].time_base) if sound else None
            return sum(1 for _ in c.decode(video=0)), len(sound), seconds

    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(src), "-o", str(out), "--factor", "3", "--quiet"]) == 0
    n, sounds, seconds = streams(out)
    assert (n, sounds) == (34, 1)
    assert seconds == pytest.approx(34 / 30, abs=0.05)  # cut to the video's length
    quiet = tmp_path / "quiet.mp4"
    argv = ["interpolate", str(src), "-o", str(quiet), "--factor", "3", "--quiet", "--no-audio"]
    assert main(argv) == 0
    assert streams(quiet)[:2] == (34, 0)
    # a rate given in place of the video's own: told that sound and video part
    fast = tmp_path / "fast.mp4"
    argv = ["interpolate", str(src), "-o", str(fast), "--factor", "2", "--fps", "20", "--quiet"]
    assert main(argv) == 0
    assert "plays at another speed than its sound" in capsys.readouterr().err


def _flash_and_beep(path, video_start, sound_start, times=None, cut_before=None, end=2.0, rate=10):
    """A 10 fps MKV whose picture starts at ``video_start`` s and sound at ``sound_start``
    s (in the file's own times), with one white frame and a 1 kHz beep both at 1.2 s;
    ``times``: the frames' own times in ms instead (a variable rate); ``cut_before``:
    video packets before that time (s) left out, keyframes every second (a recording
    that starts mid-GOP, whose first frames do not decode); ``end``: the sound's end;
    ``rate``: the frame rate the stream declares."""
    import av

    with av.open(str(path), "w") as c:
        opts = {"bframes": "0", "g": "10", "keyint_min": "10", "sc_threshold": "0"}
        v = c.add_stream("libx264", rate=rate, options=opts)
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        packets = []
        for t in times or [int(video_start * 1000) + 100 * i for i in range(16)]:
            f = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 255 * (t == 1200), np.uint8))
            f.pts, f.time_base = t, Fraction(1, 1000)
            packets += v.encode(f)
        packets += v.encode()
        for p in packets:
            if cut_before is None or p.pts * p.time_base >= cut_before:
                c.mux(p)
        rate = 48000
        x = np.zeros(int(end * rate), np.float32)
        x[int(1.2 * rate) : int(1.3 * rate)] = 0.8 * np.sin(np.arange(rate // 10) * 2 * np.pi / 48)
        for k in range(int(sound_start * rate), len(x) - 1024, 1024):
            f = av.AudioFrame.from_ndarray(x[None, k : k + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts = rate, k
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode():
            c.mux(p)


def _flash_and_beep_times(path):
    """When the white frame shows and when the beep starts, in seconds."""
    import av

    with av.open(str(path)) as c:  # (the in-betweens fade to and from it)
        seen = [(f.to_ndarray().mean(), float(f.time)) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
        rate = frames[0].sample_rate
        sound = np.concatenate([f.to_ndarray()[0] for f in frames])
        start = float(frames[0].time)
    return max(seen)[1], start + np.nonzero(np.abs(sound) > 0.3)[0][0] / rate


@pytest.mark.parametrize(
    ("video_start", "sound_start", "cut_before"), [(0.5, 0.0, None), (0.0, 0.5, None), (0, 0, 0.5)]
)
def test_the_sound_stays_with_the_picture_whatever_the_start_times(
    tmp_path, video_start, sound_start, cut_before
):
    """From a review: the sound was started at the output's 0 whatever the input's
    streams' start times, so a clip whose picture starts 0.5 s after its sound (or
    before it) came out 0.5 s out of step. The beep and the flash stay together; also
    where the picture starts mid-GOP (a later review: placed by the stream's start time,
    0.5 s before its first decodable frame, it was that far off)."""
    pytest.importorskip("av")
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    _flash_and_beep(src, video_start, sound_start, cut_before=cut_before)
    flash, beep = _flash_and_beep_times(src)
    assert abs(flash - beep) < 0.01
    assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 0
    flash, beep = _flash_and_beep_times(out)
    assert abs(flash - beep) < 0.03, (flash, beep)  # within a frame of the output (1/60 s)


def test_a_sound_file_with_a_picture_of_its_own_keeps_its_start(tmp_path):
    """From a review: the alignment to a file's first frame was applied to any sound
    given (`encode --audio`), so a music video whose picture starts after its sound had
    its music cut. Only interpolate, which writes that picture, aligns; a sound that
    lies wholly before its picture is silence there, packets and all (a track with none
    left a killed MP4 empty)."""
    av = pytest.importorskip("av")
    from loopwave.video import VideoWriter

    music = tmp_path / "music.mkv"
    _flash_and_beep(music, 1.0, 0.0)
    out = tmp_path / "enc.mp4"
    with VideoWriter(out, fps=10, audio=music) as w:
        for i in range(25):
            w.write(square_at(10 + i))
    assert _flash_and_beep_times(out)[1] == pytest.approx(1.2, abs=0.03)  # the beep kept
    early = tmp_path / "early.mkv"  # the sound over by 1.5 s, the picture from 1.6 s
    _flash_and_beep(early, 0, 0, times=[1600 + 100 * i for i in range(8)], end=1.5)
    out = tmp_path / "silent.mp4"
    assert main(["interpolate", str(early), "-o", str(out), "--blend", "--quiet"]) == 0
    with av.open(str(out)) as c:
        sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert len(sound) > 0 and np.abs(sound).max() < 1e-3


def test_a_variable_rate_input_is_retimed_in_step_with_its_sound(tmp_path, capsys):
    """From a review: a variable-rate clip (a phone's, a screen recording) came out with
    its frames evenly spaced and its sound as it was, so picture and sound parted (here
    0.5 s at the flash), without a word; then it was noted, not mended. Its frames are
    now placed by their own times (retime), so the flash comes with the beep, and that is
    said; a constant rate is not retimed."""
    pytest.importorskip("av")
    from loopwave.video import VideoReader

    src, out = tmp_path / "vfr.mkv", tmp_path / "out.mkv"
    vfr = [0, 100, 200, 1200, 1300, 1400, 1500]
    _flash_and_beep(src, 0, 0, times=vfr)
    steady = tmp_path / "cfr.mkv"
    _flash_and_beep(steady, 0, 0)
    with VideoReader(src) as r, VideoReader(steady) as s:
        assert not r.evenly_spaced and s.evenly_spaced
        np.testing.assert_allclose(r.times, np.array(vfr) / 1000, atol=1e-9)
        np.testing.assert_allclose(s.times, np.arange(16) / 10, atol=1e-9)
    # a rate that changes part way (a phone in low light), and one frame dropped in a
    # steady rate: the drift is what counts (a first version, comparing each interval
    # with the median one, passed the former, 0.3 s off, and noted the latter)
    changed, dropped = tmp_path / "30then24.mkv", tmp_path / "dropped.mkv"
    _flash_and_beep(changed, 0, 0, rate=30, times=[round(1000 * i / 30) for i in range(60)]
                    + [2000 + round(1000 * i / 24) for i in range(1, 48)])  # fmt: skip
    steady30 = [round(1000 * i / 30) for i in range(90) if i != 40]
    _flash_and_beep(dropped, 0, 0, rate=30, times=steady30)
    with VideoReader(changed) as c, VideoReader(dropped) as d:
        assert not c.evenly_spaced and d.evenly_spaced
    # a timestamp jump in MPEG-TS (joined clips) is taken out, as the reader's span takes
    # it out (a review: the note would have come for every joined .MTS); in MKV, a pause
    joined = [100 * i for i in range(10)] + [20000 + 100 * i for i in range(10)]
    _flash_and_beep(tmp_path / "joined.ts", 0, 0, times=joined)
    _flash_and_beep(tmp_path / "paused.mkv", 0, 0, times=joined)
    with VideoReader(tmp_path / "joined.ts") as j, VideoReader(tmp_path / "paused.mkv") as p:
        assert j.evenly_spaced and not p.evenly_spaced
        np.testing.assert_allclose(j.times, np.arange(20) / 10, atol=2e-5)
        np.testing.assert_allclose(p.times, np.array(joined) / 1000, atol=1e-9)
    assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "retimed by their timestamps to 60 fps" in err
    assert "another speed" not in err  # (a review: said of an --fps never given)
    flash, beep = _flash_and_beep_times(out)
    assert abs(flash - beep) < 1 / 60 + 0.01, (flash, beep)  # within a frame of the output
    with VideoReader(out) as o:  # the grid from 0 to 1.5 s at the typical rate (10) x 6
        assert o.fps == 60 and o.frame_count == 91
        seen = [f.mean() for batch in o for f in batch]
    # the second's pause holds its black frame, as a player shows it, and moves to the
    # flash over the last typical interval (a cross-fade over the whole second showed the
    # flash a second early, and never whole)
    assert max(seen[13:66]) < 2 and seen[72] > 250 and 10 < seen[69] < 245
    argv = ["interpolate", str(steady), "-o", str(tmp_path / "c.mkv"), "--blend", "--quiet"]
    assert main(argv) == 0
    assert "retimed" not in capsys.readouterr().err


def _levels(frames):
    return [int(f[0, 0, 0]) for f in frames]


def _retimed_reference(values, times, fps, loop=False, hold=None):
    """What retime should give for flat frames of ``values`` shown at ``times``, by a
    float64 walk over the output times (written apart from loopwave's grid); ``hold``:
    an interval over that many times the median one holds its first frame, and moves
    to the next over the last median interval only."""
    t, vals = [float(x) for x in times], [float(x) for x in values]
    gaps = sorted(b - a for a, b in zip(t, t[1:], strict=False) if b > a)
    mid = len(gaps) // 2
    med = (gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2) if gaps else 1 / fps
    near = [g for g in gaps if abs(g - med) <= max(0.1 * med, min(0.0015, 0.3 * med))]
    med = sum(near) / len(near) if near else med
    if loop and len(t) > 1:
        t, vals = [*t, t[-1] + med], [*vals, vals[0]]
    snap = min(1e-3, 0.25 / fps)
    out, j = [], 0
    while True:
        at = t[0] + j / fps
        if (loop and len(times) > 1 and at >= t[-1] - snap) or at > t[-1] + snap:
            return out
        i = max(k for k in range(len(t)) if t[k] <= at + snap)
        if at - t[i] <= snap:
            out.append(vals[i])
        else:
            span = t[i + 1] - t[i]
            if hold is not None and span > hold * med:
                u = max(0.0, (at - (t[i + 1] - med)) / med)
            else:
                u = (at - t[i]) / span
            out.append((1 - u) * vals[i] + u * vals[i + 1])
        j += 1


@pytest.mark.parametrize("hold", [None, 3.5, 1.5])
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize(
    ("times", "fps"),
    [
        ([0.0, 0.1, 0.3, 0.35, 0.9, 1.0], 20),  # gaps of 1, 4, 1 and 11 output frames
        ([0.0, 0.04, 0.05, 0.06, 0.2, 0.21, 0.5], 12),  # frames passed over
        ([0.0, 0.0334, 0.0667, 0.1001, 0.2], 30),  # within 1 ms of the grid: the frame itself
        ([5.0, 5.5, 5.5, 6.0], 4),  # a time twice (the later frame), from 5 s
        ([0.0, 0.1, 0.2, 3.2, 3.3, 3.4], 10),  # a 3 s pause: held, then 0.1 s to move
    ],
)
def test_retime_places_frames_by_their_times(times, fps, loop, hold):
    from loopwave.interpolate import retime

    values = [10 + 40 * i for i in range(len(times))]
    frames = [np.full((8, 8, 3), x, np.uint8) for x in values]
    opts = {"backend": "blend", "scene_cut": False, "loop": loop, "hold": hold}
    got = _levels(retime(frames, times, fps=fps, **opts))
    want = _retimed_reference(values, times, fps, loop, hold)
    assert len(got) == len(want)
    assert np.abs(np.array(got) - np.array(want)).max() <= 0.5 + 1e-9, (got, want)


def test_retime_at_a_steady_rate_is_interpolate():
    """Times at a steady rate, retimed to k times it, give interpolate's frames; with
    workers, the same; a frame within 1 ms of its output time comes out unchanged."""
    from loopwave.interpolate import retime

    frames = [square_at(10 + 3 * i) for i in range(5)]
    times = np.arange(5) / 10
    for loop in (False, True):
        want = list(interpolate(frames, factor=6, loop=loop, workers=1))
        for workers in (1, 3):
            got = list(retime(frames, times, fps=60, loop=loop, workers=workers))
            assert len(got) == len(want)
            worst = max(
                int(np.abs(x.astype(int) - y).max()) for x, y in zip(got, want, strict=True)
            )
            assert worst <= 1
    jittered = times + np.array([0, 4e-4, -6e-4, 9e-4, -2e-4])
    got = list(retime(frames, jittered, fps=60))
    assert len(got) == 25
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(got[6 * i], f)


def test_retime_holds_across_a_cut_and_checks_its_input():
    from skimage import data

    from loopwave.interpolate import retime

    photo = cv2.resize(data.astronaut(), (96, 64))
    frames = [square_at(10), square_at(13), photo]
    got = list(retime(frames, [0, 0.1, 0.4], fps=10, backend="blend"))
    assert len(got) == 5
    for held in got[1:4]:  # across the cut, the frame before it
        np.testing.assert_array_equal(held, frames[1])
    np.testing.assert_array_equal(got[4], photo)
    f = [np.zeros((8, 8, 3), np.uint8)] * 3
    for bad, err, what in [
        ([0, 0.2, 0.1], ValueError, r"must not decrease; times\[2\]"),
        ([0, np.nan, 1], ValueError, "finite"),
        ([], ValueError, "none"),
        ([[0, 1, 2]], TypeError, "1-D"),
        (["0", "1", "2"], TypeError, "seconds"),
        ([0, [1], 2], TypeError, "seconds"),
        ([0.0, True, 2.0], TypeError, "not of True/False"),  # (read as 1 second)
        ((0, np.True_, 2), TypeError, "not of True/False"),
        ([0.0, np.array(True), 2.0], TypeError, "not of True/False"),
        (collections.deque([0.0, True, 2.0]), TypeError, "not of True/False"),
        (np.array([False, True]), TypeError, "1-D sequence of seconds; got bool"),
    ]:
        with pytest.raises(err, match=what):
            retime(f, bad, fps=10)
    for fps, err in ((0, ValueError), (None, TypeError), ("fast", ValueError)):
        with pytest.raises(err, match="fps"):
            retime(f, [0, 1, 2], fps=fps)
    with pytest.raises(ValueError, match="more frames than the 2 times"):
        list(retime(f, [0, 1], fps=10, backend="blend"))
    with pytest.raises(TypeError, match="frames"):
        retime("abc", [0], fps=10)
    with pytest.raises(ValueError, match="scene_cut"):
        retime(f, [0, 1, 2], fps=10, scene_cut=2)

    # (from a review) an object that is an array only (no iteration) is still taken
    class ArrayOnly:
        def __array__(self, dtype=None, copy=None):
            return np.array([0.0, 0.1, 0.2])

    assert len(list(retime(f, ArrayOnly(), fps=10, backend="blend"))) == 3

    class OldStyle:  # a sequence by __getitem__ and __len__ alone
        def __init__(self, items):
            self.items = items

        def __len__(self):
            return len(self.items)

        def __getitem__(self, k):
            return self.items[k]

    with pytest.raises(TypeError, match="not of True/False"):
        retime(f, OldStyle([0.0, True, 2.0]), fps=10)
    assert len(list(retime(f, OldStyle([0.0, 0.1, 0.2]), fps=10, backend="blend"))) == 3
    # fewer frames than times: the output ends at the last frame
    assert _levels(retime(f[:2], [0, 0.1, 0.2], fps=20, backend="blend")) == [0, 0, 0]


def test_a_lightness_only_cut_is_under_the_default_threshold():
    from loopwave.interpolate import SCENE_CUT_THRESHOLD, is_scene_cut, scene_cut_distance

    assert SCENE_CUT_THRESHOLD == 0.35
    a, b = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
    d = scene_cut_distance(a, b)
    assert 0.3 < d <= 1 / 3 + 1e-9  # the docs: "at most 1/3, under the default threshold"
    assert not is_scene_cut(a, b)


@pytest.mark.parametrize(
    ("fps", "to", "step"),
    [
        ("29.97", "30000/1001", 1),  # 1.000001 times: each frame is an output
        ("30000/1001", "59.94", 1),  # twice, to within 1e-5
        ("29.97", "510000/1001", 1),  # 17 times: past interpolate's factor
        ("59.94", "30000/1001", 2),  # half: every other frame is an output
        ("24", "60", 2),  # not whole: frames 0, 2, 4, ... land, as at any length
        ("41.6667", "1000", 1),  # 24 times, just past 1000 fps: _snapped_rate keeps 1000
    ],
)
def test_even_times_keep_frames_on_the_output_grid_however_long(fps, to, step):
    """A review: frames at i / 29.97 retimed to 30000/1001 drifted 3.3e-8 s a frame off
    the output's times, and from frame 29,971 (1000 s) on none was shown as itself."""
    from loopwave.interpolate import _even_times, _Grid, _near_whole
    from loopwave.video import parse_fps

    n = 45_000
    f, t = parse_fps(fps), parse_fps(to)
    times = _even_times(n, f, t)
    grid = _Grid(times, float(t), False, None)
    late = range(n - 3000, n)
    assert [i for i in late if grid.lands(i)] == [i for i in late if i % step == 0]
    # and each on its own output: frame i on output i x to / fps (a frame drifted a whole
    # output off still "landed", on the output before its own)
    shown = np.array([i for i in late if i % step == 0])
    at = times[shown] * float(t)
    if fps == "24":
        outputs_a_frame = t / f  # 2.5
    else:
        up, down = _near_whole(t / f), _near_whole(f / t)
        outputs_a_frame = Fraction(up) if up is not None else Fraction(1, down)
    np.testing.assert_allclose(at, shown * float(outputs_a_frame), rtol=0, atol=1e-6)
    if fps == "24":
        np.testing.assert_array_equal(times, np.arange(n) / 24)  # as they were


@pytest.mark.parametrize(
    ("fps", "to", "want"),
    [
        ("30000/1001", "59.94", Fraction(60000, 1001)),
        ("30000/1001", "14.985", Fraction(15000, 1001)),
        ("30000/1001", "29.97", Fraction(30000, 1001)),
        ("24", "60", Fraction(60)),  # no whole ratio: as given
        ("24", "24.001", Fraction(24001, 1000)),  # 4e-5 off: as given
        ("500.0025", "1000", Fraction(1000)),  # its double is past 1000 fps: as given
        ("0.99999", "0.0001", Fraction(1, 10000)),  # a 10000th of it is under 1/10000
    ],
)
def test_snapped_rate(fps, to, want):
    from loopwave.interpolate import _snapped_rate
    from loopwave.video import parse_fps

    assert _snapped_rate(parse_fps(fps), parse_fps(to)) == want


def test_cli_to_fps_near_a_whole_multiple_is_that_multiple_of_the_input_s_rate(
    tmp_path, monkeypatch
):
    """--to-fps 59.94 over frames at 30000/1001 is 60000/1001 (as interpolate(to_fps=...)
    takes it): the frames at their own times fall on the output's, and a sound stays in
    step. At the decimal rate they drifted off its times (a review)."""
    import loopwave.interpolate as li

    seen = []
    real = li.retime

    def spy(f, times, **kw):
        seen.append((times, kw["fps"]))
        return real(f, times, **kw)

    monkeypatch.setattr(li, "retime", spy)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        write_png(src / f"{i:03d}.png", np.full((16, 16, 3), 50 * i, np.uint8))
    for to, rate, count in (
        ("59.94", Fraction(60000, 1001), 7),
        ("14.985", Fraction(15000, 1001), 2),
    ):
        out = tmp_path / f"out{to}"
        argv = ["interpolate", str(src), "-o", str(out), "--fps", "30000/1001", "--to-fps", to]
        assert main([*argv, "--blend", "--quiet"]) == 0
        times, fps = seen.pop()
        assert fps == rate and np.array_equal(times, np.arange(4) / (30000 / 1001))
        assert len(list(out.glob("*.png"))) == count


def test_cli_to_fps_converts_any_rate(tmp_path, capsys):
    """--to-fps: a rate that is no multiple of the input's (24 -> 60, 60 -> 24), each
    output frame the input frame at its time or an in-between (--factor takes whole
    multiples only)."""
    from loopwave.png import read_png

    src = tmp_path / "in"
    src.mkdir()
    values = [0, 40, 80, 120, 160, 200]
    for i, x in enumerate(values):
        write_png(src / f"{i:03d}.png", np.full((16, 16, 3), x, np.uint8))
    for rate, to in (("24", "60"), ("60", "24"), ("24", "24000/1001")):
        out = tmp_path / f"out_{rate}_{to.replace('/', '_')}"
        argv = ["interpolate", str(src), "-o", str(out), "--fps", rate, "--to-fps", to]
        assert main([*argv, "--blend", "--no-scene-cut", "--quiet"]) == 0
        got = [int(read_png(f)[0, 0, 0]) for f in sorted(out.glob("*.png"))]
        want = _retimed_reference(values, np.arange(6) / int(rate), float(Fraction(to)))
        assert len(got) == len(want) and np.abs(np.array(got) - want).max() <= 0.5 + 1e-9
    assert len(got) == 6  # (24000/1001 from 24: the last frame's time is past the grid's)
    for argv, what in (
        (["--to-fps", "60", "--factor", "2"], "not allowed with"),
        (["--to-fps", "0"], "--to-fps"),
        (["--to-fps", "fast"], "--to-fps"),
        (["--to-fps", "1001"], "--to-fps"),
    ):
        out = tmp_path / "refused"
        with pytest.raises(SystemExit) if "allowed" in what else contextlib.nullcontext():
            assert main(["interpolate", str(src), "-o", str(out), *argv, "--quiet"]) == 2
        assert what in capsys.readouterr().err
        assert not out.exists()


def test_cli_to_fps_keeps_a_video_in_step_with_its_sound(tmp_path, capsys):
    """25 fps to 60 (2.4 frames out per frame in): the flash still comes with the beep,
    and the video is 60 fps."""
    pytest.importorskip("av")
    from loopwave.video import VideoReader

    src, out = tmp_path / "in.mkv", tmp_path / "out.mp4"
    _flash_and_beep(src, 0, 0, times=[40 * i for i in range(50)], rate=25)
    assert main(["interpolate", str(src), "-o", str(out), "--to-fps", "60", "--quiet"]) == 0
    assert "retimed" not in capsys.readouterr().err  # (evenly spaced: no note)
    flash, beep = _flash_and_beep_times(out)
    assert abs(flash - beep) < 1 / 60 + 0.01, (flash, beep)
    with VideoReader(out) as r:
        assert r.fps == 60 and r.frame_count == int(49 / 25 * 60) + 1


def _ts_clip(path, times_ms, levels):
    """An MPEG-TS clip of flat 32x24 frames at ``levels``, shown at ``times_ms``."""
    import av

    with av.open(str(path), "w", format="mpegts") as c:
        v = c.add_stream("libx264", rate=10, options={"bframes": "2", "g": "4"})
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for t, x in zip(times_ms, levels, strict=True):
            f = av.VideoFrame.from_ndarray(np.full((24, 32, 3), x, np.uint8))
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)


def test_clips_joined_with_a_jump_back_are_read_in_their_order(tmp_path):
    """From a review: two MPEG-TS clips joined with cat, the second's times before the
    first's, were mapped by sorted time (frame 0 read as the second clip's first), so
    VideoReader.times put them 20 s off and interpolate made a 9 s fade of them. The
    keyframes going back tells: the frames are counted, and no times are given."""
    pytest.importorskip("av")
    from loopwave.video import VideoReader

    first, second = tmp_path / "a.ts", tmp_path / "b.ts"
    _ts_clip(first, [10000 + t for t in (0, 33, 67, 500, 533, 567, 1000, 1033)], range(0, 80, 10))
    _ts_clip(second, [100 * i for i in range(8)], range(120, 200, 10))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    with VideoReader(joined) as r:
        assert r.times is None and r.evenly_spaced and r.frame_count == 16
        levels = [float(f.mean()) for batch in r for f in batch]
        np.testing.assert_allclose(levels, [*range(0, 80, 10), *range(120, 200, 10)], atol=2)
        read = [float(r.read(i).mean()) for i in (0, 7, 8, 15)]
        np.testing.assert_allclose(read, [0, 70, 120, 190], atol=2)
    # the second clip starting inside the first's last GOP: no keyframe goes back, but
    # the decoding times do (a later review: mapped by sorted time, 0.3 s off)
    window = tmp_path / "window.ts"
    _ts_clip(second, [850 + 100 * i for i in range(8)], range(120, 200, 10))
    _ts_clip(first, [100 * i for i in range(10)], range(0, 100, 10))
    window.write_bytes(first.read_bytes() + second.read_bytes())
    with VideoReader(window) as r:
        assert r.times is None and r.frame_count == 18
        levels = [float(f.mean()) for batch in r for f in batch]
        np.testing.assert_allclose(levels, [*range(0, 100, 10), *range(120, 200, 10)], atol=2)
    _ts_clip(first, [10000 + t for t in (0, 33, 67, 500, 533, 567, 1000, 1033)], range(0, 80, 10))
    with VideoReader(first) as r:  # one clip alone: its own times, B-frames and all
        np.testing.assert_allclose(
            r.times, np.array([0, 33, 67, 500, 533, 567, 1000, 1033]) / 1000, atol=2e-5
        )


def test_retime_makes_a_long_interval_a_piece_at_a_time():
    """From a review: every output of one interval was made in one call, so a 60 s pause
    (1804 frames) took 1.4 GB at 480x270, and would run out of memory at 1080p."""
    import tracemalloc

    from loopwave.interpolate import retime

    class Counting(BlendInterpolator):
        most = 0

        def _between(self, a, b, ts):
            Counting.most = max(Counting.most, len(ts))
            return super()._between(a, b, ts)

    frames = [np.full((64, 64, 3), x, np.uint8) for x in (0, 100, 200)]
    for hold in (None, 3.0):  # interpolated across, and held
        tracemalloc.start()
        n = sum(1 for _ in retime(frames, [0, 0.1, 60.1], fps=30, backend=Counting(), hold=hold))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert n == 1804 and peak < 4_000_000, peak  # (all at once: 22 MB)
    assert 0 < Counting.most <= 16


@pytest.mark.parametrize("workers", [1, 3])
def test_a_pair_made_a_piece_at_a_time_works_out_its_flows_and_cut_once(monkeypatch, workers):
    """An interval of 40 outputs is made 16 at a time: the flows were worked out again for
    each piece (and the scene-cut check run again). Once now, from any worker, and the
    outputs are those of one call for all 40 timesteps."""
    import loopwave.interpolate as li

    flows, cuts = [], []
    real_cut = li.scene_cut_distance

    class Counting(FlowInterpolator):
        def _flows(self, a, b):
            flows.append(1)
            return super()._flows(a, b)

    def counted_cut(a, b):
        cuts.append(1)
        return real_cut(a, b)

    monkeypatch.setattr(li, "scene_cut_distance", counted_cut)
    a, b, c = square_at(10), square_at(30), square_at(34)
    got = list(li.retime([a, b, c], [0, 1, 1.1], fps=40, backend=Counting(), workers=workers))
    assert len(got) == 45  # 40 from a to b (b itself the 41st), 4 from b to c
    assert len(flows) == 2 and len(cuts) == 2  # one pair each, not 3 + 1
    want = FlowInterpolator().between(a, b, np.arange(1, 40) / 40)
    np.testing.assert_array_equal(np.stack(got[1:40]), want)
    np.testing.assert_array_equal(got[0], a)
    np.testing.assert_array_equal(got[40], b)


@pytest.mark.parametrize("rate", [1000, 999, 4000])
def test_retime_of_frames_under_a_millisecond_apart_shows_each_output_its_own_frame(rate):
    """The 1 ms snap reached the next frame where frames were 1 ms apart or less: at
    1000 fps to 100, the outputs showed frames 1, 11, 20, not 0, 10, 20 (a review)."""
    from loopwave.interpolate import retime

    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(21)]
    times = np.arange(21) / rate
    got = [int(f[0, 0, 0]) for f in retime(frames, times, fps=rate / 10, backend="blend")]
    assert got == [0, 10, 20]


def test_a_flow_interpolator_subclass_s_own_between_is_used():
    """A review: with the flows shared by a pair's pieces, a FlowInterpolator subclass
    overriding between or _between was passed over, its own never called."""

    class Inverted(FlowInterpolator):
        def between(self, a, b, timesteps):
            return 255 - super().between(a, b, timesteps)

    class Black(FlowInterpolator):
        def _between(self, a, b, ts):
            return np.zeros((len(ts), *a.shape), np.uint8)

    class PreparesOnly(BlendInterpolator):  # a _prepare without _between_prepared
        def _prepare(self, a, b):
            raise AssertionError("not called")

    a, b = square_at(10), square_at(30)
    mid = FlowInterpolator().between(a, b, [0.5])[0]
    got = list(interpolate([a, b], factor=2, backend=Inverted()))
    np.testing.assert_array_equal(got[1], 255 - mid)
    assert not list(interpolate([a, b], factor=2, backend=Black()))[1].any()
    got = list(interpolate([a, b], factor=2, backend=PreparesOnly()))
    np.testing.assert_array_equal(got[1], lerp_frames(a, b, 0.5))


def test_flow_interpolator_subclasses_of_other_shapes():
    """A third review: a _prepare from a mixin was an AttributeError; a subclass giving
    _prepare and _between had its _between passed over; one giving _between_prepared
    alone worked its flows out again for each 16 outputs."""
    import loopwave.interpolate as li

    flows = []

    class Counted(FlowInterpolator):
        def _flows(self, a, b):
            flows.append(1)
            return super()._flows(a, b)

    class Mixin:
        def _prepare(self, a, b):
            return super()._prepare(a, b)

    class WithMixin(Mixin, Counted):
        pass

    class Both(Counted):
        def _prepare(self, a, b):
            return super()._prepare(a, b)

        def _between(self, a, b, ts):
            return 255 - super()._between(a, b, ts)

    class Finishing(Counted):
        def _between_prepared(self, a, b, ts, prepared):
            return 255 - super()._between_prepared(a, b, ts, prepared)

    a, b = square_at(10), square_at(30)
    ts = np.arange(1, 40) / 40
    want = FlowInterpolator().between(a, b, ts)
    for cls, inverted, flows_worked in (
        (WithMixin, False, 1),
        (Both, True, 3),
        (Finishing, True, 1),
    ):
        flows.clear()
        got = np.stack(list(li.retime([a, b], [0, 1], fps=40, backend=cls()))[1:40])
        np.testing.assert_array_equal(got, 255 - want if inverted else want)
        assert len(flows) == flows_worked, cls  # (Both: its own _between, once a piece)


def test_the_caller_gets_a_pair_s_own_failure_whichever_piece_ran_it(monkeypatch):
    """Reviews: one exception raised again on several threads spliced their frames into
    its traceback; a copy of it lost its cause, and with an __init__ of its own its
    message ("bad shape bad shape (64, 96, 3)"). The pair's first piece is held back here,
    so a later one does the work: the caller still gets the exception itself."""
    import time

    import loopwave.interpolate as li

    class ShapeError(ValueError):
        def __init__(self, shape):
            super().__init__(f"bad shape {shape}")

    raised = []

    class Failing(FlowInterpolator):
        def _flows(self, a, b):
            try:
                raise ZeroDivisionError("the cause")
            except ZeroDivisionError as z:
                raised.append(ShapeError(a.shape))
                raise raised[-1] from z

    arrived = []
    real = li._Pair.prepared

    def late(self, interp):
        arrived.append(1)
        if len(arrived) == 1:
            time.sleep(0.2)
        return real(self, interp)

    monkeypatch.setattr(li._Pair, "prepared", late)
    a, b = square_at(10), square_at(30)
    frames = li.retime([a, b], [0, 1], fps=200, backend=Failing(), scene_cut=False, workers=4)
    with pytest.raises(ShapeError) as caught:
        list(frames)
    assert len(raised) == 1 and caught.value is raised[0]
    assert str(caught.value) == "bad shape (64, 96, 3)"
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


class _Buffered(FlowInterpolator):
    """Flows worked out into one buffer of its own a thread, filled again for each pair
    (and, with ``delay``, a slower kernel: another thread moves on meanwhile)."""

    def __init__(self, delay=0.0, view=False):
        import threading

        super().__init__()
        self._mine = threading.local()
        self.delay, self.view = delay, view

    def _prepare(self, a, b):
        flows = np.stack(self._flows(a, b))
        buf = getattr(self._mine, "buf", None)
        if buf is None or buf.shape != flows.shape:
            buf = self._mine.buf = np.empty_like(flows)
        buf[...] = flows
        if self.view:  # a read-only view of it: the same buffer all the same
            buf = buf.view()
            buf.flags.writeable = False
        return buf

    def _between_prepared(self, a, b, ts, prepared):
        import time

        time.sleep(self.delay)
        return super()._between_prepared(a, b, ts, prepared)


def test_an_interpolator_filling_its_own_flows_buffer_again_still_works():
    """A review: the shared flows were made read-only in place, so a subclass that fills
    one buffer of its own for each pair failed at the next pair, and in between() after."""
    a, b, c = square_at(10), square_at(30), square_at(34)
    f = _Buffered()
    got = list(interpolate([a, b, c], factor=2, backend=f))
    np.testing.assert_array_equal(got[1], FlowInterpolator().between(a, b, [0.5])[0])
    np.testing.assert_array_equal(f.between(b, c, [0.5])[0], got[3])


@pytest.mark.parametrize("view", [False, True])
def test_a_pair_split_across_threads_keeps_its_own_flows_from_a_reused_buffer(view):
    """A review: shared as a view of a subclass's own buffer, a pair's later piece, on
    another thread, read the next pair's flows once the first thread refilled it (7
    frames off by up to 195 levels). The pieces now share a read-only copy."""
    from loopwave.interpolate import retime

    frames = [square_at(x) for x in (4, 30, 6, 34, 8)]
    times = [0, 1, 2, 3, 4]
    want = list(retime(frames, times, fps=40, hold=None, backend=FlowInterpolator(), workers=1))
    got = list(retime(frames, times, fps=40, hold=None, backend=_Buffered(0.02, view), workers=2))
    assert len(got) == len(want) == 161
    for j, (x, y) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(x, y, err_msg=f"output {j}")


class _Flows(NamedTuple):
    f01: np.ndarray
    f10: np.ndarray


_FORMS = ["buffer", "view", "toggled", "tuple", "fortran", "list", "named", "dict", "masked"]


@pytest.mark.parametrize("form", _FORMS)
def test_a_pair_s_shared_flows_stay_its_own_when_the_subclass_reuses_its_buffer(form):
    """Reviews: a pair's later pieces read what its interpolator's _prepare returned after
    that interpolator had filled the same buffer again for its next pair (a buffer, a view
    of it, one kept read-only between fills, a tuple of buffers; then a dict of them, and
    a masked array's mask). Deterministic: the next pair's _prepare is called in between
    here, as another thread did it. (One buffer per thread: a thread-safe subclass.)"""
    import loopwave.interpolate as li

    class Reusing(FlowInterpolator):
        local = threading.local()

        def _prepare(self, a, b):
            flows = np.stack(self._flows(a, b))
            buf = getattr(self.local, "buf", None)
            if buf is None:
                buf = self.local.buf = np.empty_like(flows)
                self.local.mask = np.zeros(flows.shape, bool)
            buf.flags.writeable = True
            buf[...] = flows
            pair = (buf[0], buf[1])
            if form == "toggled":
                buf.flags.writeable = False
            return {
                "view": buf.view(),
                "tuple": pair,
                "list": list(pair),
                "named": _Flows(*pair),
                "dict": {"flows": pair, "scale": 1.0},
                "fortran": np.asfortranarray(buf),
                "masked": np.ma.MaskedArray(buf, mask=self.local.mask),
            }.get(form, buf)

    f = Reusing()
    a, b, c, d = square_at(10), square_at(30), square_at(4), square_at(40)
    pair = li._Pair(a, b)
    shared = pair.prepared(f)
    want = np.stack(f._flows(a, b))
    f._prepare(c, d)  # the next pair, on another thread
    assert type(shared) is type(f._prepare(c, d))  # each container as its own type
    arrays = list(shared["flows"] if form == "dict" else shared)
    np.testing.assert_array_equal(np.stack(arrays), want)
    assert pair.prepared(f) is shared
    for x in arrays if form in ("tuple", "list", "named", "dict") else [shared]:
        assert not x.flags.writeable and x.flags.c_contiguous
    if form == "masked":
        assert not shared.mask.flags.writeable
        assert not np.shares_memory(shared.mask, f.local.mask)


def test_a_subclass_s_named_tuple_of_flows_reaches_its_own_between():
    """A review: shared as a plain tuple, a named tuple lost its names, and a subclass
    reading ``prepared.f01`` raised AttributeError."""

    class Named(FlowInterpolator):
        def _prepare(self, a, b):
            return _Flows(*self._flows(a, b))

        def _between_prepared(self, a, b, ts, prepared):
            flows = np.stack([prepared.f01, prepared.f10])
            return super()._between_prepared(a, b, ts, flows)

    frames = [square_at(x) for x in (4, 30, 6)]
    got = list(interpolate(frames, factor=3, backend=Named(), workers=2))
    want = list(interpolate(frames, factor=3, backend=FlowInterpolator(), workers=1))
    assert len(got) == len(want) == 7
    for x, y in zip(got, want, strict=True):
        np.testing.assert_array_equal(x, y)


def test_flow_interpolator_s_own_flows_are_shared_as_they_are():
    import loopwave.interpolate as li

    f = FlowInterpolator()
    pair = li._Pair(square_at(10), square_at(30))
    shared = pair.prepared(f)
    assert not shared.flags.writeable and shared.base is None  # fresh: no copy needed
    calls = []
    f._prepare = lambda a, b: calls.append(1) or np.zeros((2, 64, 96, 2), np.float32)
    other = li._Pair(square_at(10), square_at(30)).prepared(f)  # set on the object: copied
    assert calls and not other.flags.writeable


@pytest.mark.parametrize("workers", [1, 2])
def test_the_frames_error_keeps_its_context_when_the_consumer_is_handling_another(workers):
    """A review: raised again after the pairs in flight were drained, the frames' error
    took as its context the exception a consumer iterating inside an except block was
    handling, in place of its own."""

    def frames():
        yield square_at(10)
        yield square_at(30)
        try:
            raise KeyError("k")
        except KeyError:
            raise ValueError("frame 2 is broken")  # noqa: B904 (implicitly chained)

    try:
        raise RuntimeError("the consumer's own")
    except RuntimeError:
        with pytest.raises(ValueError, match="frame 2") as caught:
            for _ in interpolate(frames(), factor=2, backend="blend", workers=workers):
                pass
    assert isinstance(caught.value.__context__, KeyError), repr(caught.value.__context__)


def test_strided_flows_from_a_subclass_are_taken():
    """A review: a Fortran-order or reversed _prepare result reached the kernel as it was,
    refused as "expected a C-contiguous (2, 64, 96, 2) array, got shape [2, 64, 96, 2]"."""

    class Fortran(FlowInterpolator):
        def _prepare(self, a, b):
            return np.asfortranarray(np.stack(self._flows(a, b)))

    a, b = square_at(10), square_at(30)
    want = FlowInterpolator().between(a, b, [0.25, 0.5])
    np.testing.assert_array_equal(Fortran().between(a, b, [0.25, 0.5]), want)


def test_the_frames_failing_leave_no_cycle_holding_the_frames():
    """A review: the frames' error, kept in a local of the generator whose frame its
    traceback holds, kept the last frames alive until a full garbage collection."""
    import gc
    import weakref

    seen = []

    class Watching(FlowInterpolator):
        def _prepare(self, a, b):
            seen.extend((weakref.ref(a), weakref.ref(b)))
            return super()._prepare(a, b)

    def frames():
        yield square_at(10)
        yield square_at(30)
        raise ValueError("frame 2 is broken")

    gc.collect()
    gc.disable()
    try:
        for workers in (1, 2):
            seen.clear()
            try:
                list(interpolate(frames(), factor=2, backend=Watching(), workers=workers))
            except ValueError:
                pass
            assert seen and all(r() is None for r in seen), workers
    finally:
        gc.enable()


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("where", ["flows", "between", "cut"])
@pytest.mark.parametrize("pieces", [False, True])
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_pair_failing_leaves_no_cycle_holding_the_frames(
    workers, pieces, where, last, monkeypatch
):
    """A review: the pair kept its error, whose traceback held frames that held the pair
    (and, with more than one worker, the generator's frame held the future and the pair):
    a cycle keeping the pair's frames alive until a full garbage collection. ``last``:
    only the last pair fails (the generator's frame still held its future)."""
    import gc
    import weakref

    import loopwave.interpolate as li
    from loopwave.interpolate import retime

    seen = []

    def watched(x):
        seen.append(weakref.ref(x))
        return x

    frames = [square_at(10), square_at(30), square_at(4), square_at(40)]

    def fails(a):
        return not last or np.array_equal(a, frames[2])

    class Failing(FlowInterpolator):
        def _flows(self, a, b):
            watched(a), watched(b)
            if where == "flows" and fails(a):
                raise RuntimeError("flows failed")
            return super()._flows(a, b)

        def _between_prepared(self, a, b, ts, prepared):
            if where == "between" and fails(a):
                raise RuntimeError("between failed")
            return super()._between_prepared(a, b, ts, prepared)

    def cut(a, b):
        watched(a), watched(b)
        if fails(a):
            raise RuntimeError("cut failed")
        return 0.0

    if where == "cut":
        monkeypatch.setattr(li, "scene_cut_distance", cut)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(RuntimeError, match="failed"):
            if pieces:
                list(
                    retime(
                        frames, [0, 1, 2, 3], fps=40, hold=None, backend=Failing(), workers=workers
                    )
                )
            else:
                list(interpolate(frames, factor=2, backend=Failing(), workers=workers))
        assert seen and all(r() is None for r in seen), sum(r() is not None for r in seen)
    finally:
        gc.enable()


def _pool_threads_end(timeout=30.0):
    """Wait for the interpolator's pool threads, left to end on their own by a consumer
    that stopped early."""
    import time

    deadline = time.monotonic() + timeout
    while any(t.name.startswith("loopwave-interp") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the pieces' threads did not end"
        time.sleep(0.02)


def _flows_failing_at(frame, seen, before=lambda: None):
    """A flow interpolator noting (weakly, in ``seen``) the frames its flows get, whose
    flows fail for the pair that starts at ``frame`` (after calling ``before``)."""
    import weakref

    class Failing(FlowInterpolator):
        def _flows(self, a, b):
            seen.extend((weakref.ref(a), weakref.ref(b)))
            if np.array_equal(a, frame):
                before()
                raise RuntimeError("flows failed")
            return super()._flows(a, b)

    return Failing()


@pytest.mark.parametrize("failing", [0, 1])
def test_a_pair_failing_in_a_later_piece_leaves_no_cycle_holding_the_frames(monkeypatch, failing):
    """A review: where a pair's later piece met its error first, the generator raised it
    from the pair's first piece, whose loop over the pieces still pending kept the later
    piece's future (holding the error) in a frame of the error's traceback; and where
    that pair was the last, the generator's own variable kept it. The pair's first piece
    (the one whose timesteps start the interval, whichever thread runs it) waits until a
    later piece has failed."""
    import gc
    import sys

    import loopwave.interpolate as li
    from loopwave.interpolate import retime

    frames = [square_at(10), square_at(30), square_at(4)]
    seen = []
    met = threading.Event()
    waited = []
    prepared = li._Pair.prepared

    def late_first_piece(pair, interp):
        ts = sys._getframe(1).f_locals["ts"]  # (the piece's, in _stream's fill)
        if np.array_equal(pair.a, frames[failing]) and ts.min() < 0.1:
            waited.append(met.wait(30))
        try:
            return prepared(pair, interp)
        finally:
            if pair.failed is not None:
                met.set()

    failing_flows = _flows_failing_at(frames[failing], seen)
    monkeypatch.setattr(li._Pair, "prepared", late_first_piece)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(RuntimeError, match="flows failed"):
            list(retime(frames, [0, 1, 2], fps=40, hold=None, backend=failing_flows, workers=2))
        assert waited == [True]  # the first piece came after a later one failed
        assert all(r() is None for r in seen), sum(r() is not None for r in seen)
    finally:
        gc.enable()


@pytest.mark.parametrize("pieces", [False, True])
def test_a_pair_failing_after_the_consumer_stopped_leaves_no_cycle(monkeypatch, pieces):
    """A review: a consumer that stops early (close, break, the generator dropped) does not
    wait for the pieces being made; a pair failing meanwhile kept its error, whose
    traceback held the pair: a cycle keeping its frames alive until a full collection.
    The pair now lets go of it once its last piece is done."""
    import gc

    import loopwave.interpolate as li
    from loopwave.interpolate import retime

    frames = [square_at(10), square_at(30), square_at(4), square_at(40)]
    seen = []
    queued, started, go = threading.Event(), threading.Event(), threading.Event()
    tries = []
    init = li._Pair.__init__

    def noting(pair, a, b):
        init(pair, a, b)
        if np.array_equal(a, frames[1]):
            queued.set()  # (its first piece is queued before the consumer gets control)

    def before_failing():
        tries.append(1)
        started.set()
        go.wait(30)  # still being made when the consumer stops

    failing_flows = _flows_failing_at(frames[1], seen, before_failing)
    monkeypatch.setattr(li._Pair, "__init__", noting)
    gc.collect()
    gc.disable()
    try:
        if pieces:
            made = retime(frames, [0, 1, 2, 3], fps=40, hold=None, backend=failing_flows, workers=2)
        else:
            made = interpolate(frames, factor=2, backend=failing_flows, workers=2)
        while not queued.is_set():
            next(made)
        assert started.wait(30)
        made.close()
        go.set()
        del made
        _pool_threads_end()
        assert seen and all(r() is None for r in seen), sum(r() is not None for r in seen)
        assert len(tries) == 1  # the pair's work, not made again by a piece after it failed
    finally:
        gc.enable()


def test_a_pair_failing_after_the_consumer_stopped_is_not_made_again(monkeypatch):
    """A review: the pair lets go of its error only once its last piece is done. Let go
    of at its failing piece's end, a later piece still running found no error and made
    the pair's flows again. Here a later piece of the failing pair reaches the shared work
    only after the failing one is done."""
    import gc
    import sys
    import time

    import loopwave.interpolate as li
    from loopwave.interpolate import retime

    frames = [square_at(4 + 6 * i) for i in range(4)]
    seen, tries = [], []
    started, later_in, go = threading.Event(), threading.Event(), threading.Event()
    cut = li._Pair.cut

    def late_later_piece(pair, threshold):
        ts = sys._getframe(1).f_locals["ts"]  # (the piece's, in _stream's fill)
        if np.array_equal(pair.a, frames[1]) and ts.min() > 0.1:
            later_in.set()
            go.wait(30)
            time.sleep(0.3)  # after the failing piece is done
        return cut(pair, threshold)

    def before_failing():
        tries.append(1)
        started.set()
        go.wait(30)

    monkeypatch.setattr(li._Pair, "cut", late_later_piece)
    failing_flows = _flows_failing_at(frames[1], seen, before_failing)
    gc.collect()
    gc.disable()
    try:
        made = retime(
            frames,
            [0, 1, 2, 3],
            fps=40,
            hold=None,
            backend=failing_flows,
            workers=4,
            scene_cut=False,
        )
        try:
            for _ in made:
                if started.wait(0.2) and later_in.wait(0.2):
                    break
            else:
                pytest.fail("the failing pair's pieces did not start")
        finally:  # (also where it failed: no piece left waiting for the tests after)
            made.close()
            go.set()
            del made
            _pool_threads_end()
        assert len(tries) == 1  # the pair's flows, not made again by its later piece
        assert seen and all(r() is None for r in seen), sum(r() is not None for r in seen)
    finally:
        gc.enable()


def test_a_consumer_stopped_early_keeps_no_finished_piece_s_frames(monkeypatch):
    """A review: the callbacks that let a failed pair go of its error held the pair's
    futures, and with them the finished pieces' frames, until its last piece was done."""
    import weakref

    from loopwave.interpolate import retime

    frames = [square_at(4 + 6 * i) for i in range(4)]
    held, go = threading.Event(), threading.Event()
    made_frames = []
    between = FlowInterpolator._between_prepared

    class Noting(FlowInterpolator):
        def _between_prepared(self, a, b, ts, prepared):
            out = between(self, a, b, ts, prepared)
            if np.array_equal(a, frames[1]):
                if ts.max() > 0.9:  # the pair's last piece: held while the consumer stops
                    held.set()
                    go.wait(30)
                else:  # (the outputs are views of it: alive while any of them is)
                    made_frames.append(weakref.ref(out))
            return out

    made = retime(frames, [0, 1, 2, 3], fps=40, hold=None, backend=Noting(), workers=5)
    try:
        for _ in made:
            if held.wait(0.2) and len(made_frames) == 2:
                break
        else:
            pytest.fail("the pair's pieces did not come to the point")
        made.close()  # (closed, it holds nothing)
        _ = None
        assert sum(r() is not None for r in made_frames) == 0
    finally:  # (also where it failed: no piece left waiting for the tests after)
        made.close()
        go.set()
        _pool_threads_end()


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_pair_s_error_keeps_its_own_context_when_the_frames_fail_too(workers):
    """A review: with more than one worker, the pairs in flight were drained inside the
    frames' own except block, so a pair's error took the frames' error as its context."""

    class Failing(FlowInterpolator):
        def _flows(self, a, b):
            try:
                raise FileNotFoundError("flows.bin")
            except FileNotFoundError:
                raise RuntimeError("flows failed")  # noqa: B904 (implicitly chained)

    def frames():
        yield square_at(10)
        yield square_at(30)
        raise ValueError("frame 2 is broken")

    with pytest.raises((RuntimeError, ValueError)) as caught:
        list(interpolate(frames(), factor=2, backend=Failing(), workers=workers))
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value.__context__, FileNotFoundError), caught.value.__context__


@pytest.mark.parametrize("own", [True, False])
@pytest.mark.parametrize("pieces", [False, True])
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_pair_s_error_keeps_its_own_context_when_the_consumer_is_handling_another(
    workers, pieces, own
):
    """A review: with more than one worker, a pair's error, raised again in the generator,
    took as its context the exception a consumer iterating inside an except block was
    handling (with one worker it kept its own). ``pieces``: one pair made 16 outputs at a
    time, a later piece raising the error another piece met."""
    from loopwave.interpolate import retime

    class Failing(FlowInterpolator):
        def _flows(self, a, b):
            if not own:
                raise RuntimeError("flows failed")
            try:
                raise KeyError("own")
            except KeyError:
                raise RuntimeError("flows failed")  # noqa: B904 (implicitly chained)

    frames = [square_at(10), square_at(30), square_at(4)]
    try:
        raise LookupError("the consumer's own")
    except LookupError:
        with pytest.raises(RuntimeError, match="flows failed") as caught:
            if pieces:
                made = retime(
                    frames, [0, 1, 2], fps=40, hold=None, backend=Failing(), workers=workers
                )
            else:
                made = interpolate(frames, factor=2, backend=Failing(), workers=workers)
            for _ in made:
                pass
    # an error of no context of its own takes the consumer's, as one made inline does
    # (a review: with more than one worker it had none)
    want = KeyError if own else LookupError
    assert isinstance(caught.value.__context__, want), repr(caught.value.__context__)


def test_shared_flows_are_read_only_and_an_override_on_the_object_is_used():
    """A review: a subclass scaling the shared flows in place changed the pair's other
    pieces (now an error), and a between set on the object itself was passed over."""
    from loopwave.interpolate import retime

    class Halving(FlowInterpolator):
        def _between_prepared(self, a, b, ts, prepared):
            prepared *= 0.5
            return super()._between_prepared(a, b, ts, prepared)

    a, b = square_at(10), square_at(30)
    with pytest.raises(ValueError, match="read-only"):
        list(retime([a, b], [0, 1], fps=40, backend=Halving()))
    f = FlowInterpolator()
    calls = []
    f.between = lambda x, y, ts: calls.append(len(ts)) or np.zeros((len(ts), *x.shape), np.uint8)
    got = list(retime([a, b], [0, 1], fps=40, backend=f))
    assert calls == [16, 16, 7] and not np.stack(got[1:40]).any()


@pytest.mark.parametrize("where", ["flows", "cut"])
def test_a_pair_s_failure_is_tried_once_and_raised_in_order(monkeypatch, where):
    """A review: each piece waiting on the pair's lock tried the failing work again in
    turn (4 pieces of a 0.5 s failure: 2 s before the error came)."""
    import loopwave.interpolate as li

    tries = []

    class Failing(FlowInterpolator):
        def _flows(self, a, b):
            tries.append(1)
            raise RuntimeError("no flows")

    def failing_cut(a, b):
        tries.append(1)
        raise RuntimeError("no cut")

    if where == "cut":
        monkeypatch.setattr(li, "scene_cut_distance", failing_cut)
    a, b = square_at(10), square_at(30)
    out = []
    with pytest.raises(RuntimeError, match="no flows" if where == "flows" else "no cut"):
        for f in li.retime([a, b], [0, 1], fps=64, backend=Failing(), workers=4):
            out.append(f)
    assert len(tries) == 1 and len(out) == 1  # the first frame, then the pair's error


def test_retime_refuses_times_in_the_wrong_unit_and_takes_fractions():
    from loopwave.interpolate import retime

    f = [np.zeros((8, 8, 3), np.uint8)] * 3
    for bad in ([0, 1e20, 2e20], [0, 2**62, 2**63 - 1], [0, 1e9, 2e9]):
        with pytest.raises(ValueError, match="times span"):
            retime(f, bad, fps=10)
    got = retime(
        f, [Fraction(0), Fraction(1, 10), Fraction(1, 5)], fps=Fraction(20), backend="blend"
    )
    assert len(list(got)) == 5
    from decimal import Decimal

    assert len(list(retime(f[:2], [Decimal("0"), Decimal("0.1")], fps=10, backend="blend"))) == 2
    for bad in ([0, "1", 2], [0, 1j, 2], [Fraction(0), "1"]):
        with pytest.raises(TypeError, match="times"):
            retime(f, bad, fps=10)
    for hold in (0.5, float("nan"), "3"):
        with pytest.raises(ValueError, match="hold"):
            retime(f, [0, 1, 2], fps=10, hold=hold)


def test_retime_loop_with_fewer_frames_closes_over_the_typical_interval():
    """From a review: frames running out before the times closed the loop toward the
    missing frame's time, not over the typical interval."""
    from loopwave.interpolate import retime

    frames = [np.full((8, 8, 3), x, np.uint8) for x in (0, 100, 200)]
    times = [0, 0.1, 0.2, 0.35, 0.5]  # the typical interval 0.125 s
    got = _levels(retime(frames, times, fps=20, backend="blend", scene_cut=False, loop=True))
    # 0, 0.05 ... 0.2 from the frames, then 0.25 and 0.3 toward the first over 0.125 s
    assert got == [0, 50, 100, 150, 200, 120, 40]


def test_cli_fps_on_a_variable_rate_input_notes_the_drift(tmp_path, capsys):
    """From a review: --fps turns retiming off, and a variable-rate input with sound then
    drifted without a word where --fps was the reader's own rate."""
    pytest.importorskip("av")
    from loopwave.video import VideoReader

    src = tmp_path / "vfr.mkv"
    _flash_and_beep(src, 0, 0, times=[0, 100, 200, 1200, 1300, 1400, 1500])
    with VideoReader(src) as r:
        own = str(r.fps)
    argv = ["interpolate", str(src), "-o", str(tmp_path / "o.mkv"), "--blend", "--quiet"]
    assert main([*argv, "--fps", own]) == 0  # its mean rate: as long as its sound
    err = capsys.readouterr().err
    assert "taken as evenly spaced at that rate" in err and "retimed by" not in err
    assert "another speed" not in err
    with VideoReader(tmp_path / "o.mkv") as o:  # 7 frames over 1.6 s, at 4.375 x 6
        assert o.fps == Fraction(105, 4)
    # its typical rate (10, over 4.375 on average): 0.7 s of picture for 1.6 s of sound,
    # which a later review found unsaid (the note compared --fps with the typical rate)
    for rate, tail in (("10", "is cut to"), ("2", "ends before")):
        assert main([*argv, "--fps", rate]) == 0
        err = capsys.readouterr().err
        assert f"note: --fps {rate}: the input's frames" in err
        assert f"--fps {rate} is not the input's rate (4.375 fps on average)" in err
        assert f"which {tail} the video's end" in err  # (a review: "cut" when it was not)
    # which ends first from the lengths (a later review: from the speed alone, a faster
    # video "cut" a sound already shorter than its picture)
    short = tmp_path / "short.mkv"  # 1.5 s of picture at 10 fps, 1.34 s of sound
    _flash_and_beep(short, 0, 0, end=1.35)
    argv2 = ["interpolate", str(short), "-o", str(tmp_path / "s.mkv"), "--blend", "--quiet"]
    assert main([*argv2, "--fps", "10.5"]) == 0  # 91 frames at 63 fps: 1.44 s
    assert "which ends before the video's end" in capsys.readouterr().err
    # a file cut mid-GOP: the sound counts from the first frame that decodes (at 1 s
    # here), where the writer places it, not from the stream's start (a last review:
    # 0.6 s more of sound, and "is cut to" where it ended 0.16 s before the picture)
    cut = tmp_path / "cut.mkv"
    _flash_and_beep(cut, 0, 0, times=[100 * i for i in range(30)], cut_before=0.1, end=3.0)
    argv3 = ["interpolate", str(cut), "-o", str(tmp_path / "c.mkv"), "--blend", "--quiet"]
    assert main([*argv3, "--fps", "9", "--factor", "2"]) == 0  # 39 frames at 18 fps: 2.17 s
    assert "which ends before the video's end" in capsys.readouterr().err
    # --to-fps with --fps: the frames are taken as even, so not "retimed by timestamps"
    assert main([*argv, "--fps", "10", "--to-fps", "30"]) == 0
    assert "retimed by" not in capsys.readouterr().err


def test_a_typical_rate_from_millisecond_times_is_the_common_rate():
    """From a review: the median of intervals rounded to milliseconds (33 or 34 ms at
    30 fps, 17 at 60) was 1-2% off the rate, so no common rate was taken (117.6 fps for
    a 60 fps screen recording at --factor 2), and most frames became in-betweens."""
    from loopwave.interpolate import _typical_rate

    for rate in ("24", "25", "30", "60", "120", "240", "30000/1001", "60000/1001", "24000/1001"):
        r = Fraction(rate)
        ms = np.round(np.arange(300) / float(r) * 1000) / 1000
        assert _typical_rate(ms) == r, rate
        kept = np.delete(ms, np.arange(5, 300, 7))  # dropped frames
        assert _typical_rate(kept) == r, rate
        exact = np.arange(300) / float(r)  # (a 90 kHz time base: near exact)
        assert _typical_rate(exact) == r, rate
    jitter = np.cumsum(np.random.default_rng(1).choice([0.033, 0.034], 300))
    assert _typical_rate(jitter) == Fraction(30000, 1001)  # (a mean of 33.5 ms)
    assert _typical_rate(np.array([0.0, 0.0])) == 10
    # timestamps jittered by 2 ms (a later review: 141 of 200 such clips came out at
    # neither; over these 10 s, 30 and 29.97 are within the jitter's error of each other)
    rng = np.random.default_rng(2)
    for _ in range(50):
        stamps = np.sort(np.round((np.arange(300) / 30 + rng.normal(0, 0.002, 300)), 3))
        assert _typical_rate(stamps) in (30, Fraction(30000, 1001))
    two = np.concatenate([np.arange(60) / 30, 2 + np.arange(1, 48) / 24])  # 30 then 24
    assert _typical_rate(np.round(two, 3)) == 30  # (the longer part's, not a mix)
    assert _typical_rate(np.arange(10) / 7) == 7  # no common rate near: its own
    thousand = np.delete(np.arange(3000) / 1000, np.arange(3, 3000, 3))  # 1 and 2 ms
    assert _typical_rate(thousand) == 1000  # (the 2 ms intervals are not rounding)


def test_cli_retimes_a_millisecond_clip_to_the_common_rate_and_keeps_its_frames(tmp_path):
    pytest.importorskip("av")
    from loopwave.video import VideoReader

    src = tmp_path / "60.mkv"  # 60 fps, a 0.5 s stall in the middle
    times = [round(1000 * i / 60) for i in range(60)] + [
        1500 + round(1000 * i / 60) for i in range(60)
    ]
    _flash_and_beep(src, 0, 0, rate=60, times=times)
    out = tmp_path / "out.mkv"
    assert (
        main(["interpolate", str(src), "-o", str(out), "--factor", "2", "--blend", "--quiet"]) == 0
    )
    with VideoReader(out) as r:
        assert r.fps == 120


@pytest.mark.parametrize("where", [10, 11, 12, 100, 101, 300, 301])
def test_a_whole_multiple_interval_is_held_or_not_whatever_the_rounding(where):
    """From a review: two frames dropped at 60 fps (an interval of exactly 3) were held
    or interpolated by floating-point noise with hold=3, depending on where they were.
    Now never held at a tie (the default is 3.5)."""
    from loopwave.interpolate import _Grid

    times = np.delete(np.arange(600) / 60, [where, where + 1])
    for hold in (3.0, 3.5):
        grid = _Grid(times, 120.0, False, hold)
        places = np.concatenate(list(grid.between(where - 1, False)))
        assert places.size == 5 and (places > 0).all(), (hold, places)


def test_retime_with_fewer_frames_than_times_keeps_the_last_frames_outputs():
    """From a review: an output at the last frame's time that a later time (never
    reached: fewer frames than times) had taken was lost: one frame at [0, 0] gave
    nothing."""
    from loopwave.interpolate import retime

    f = [np.full((8, 8, 3), x, np.uint8) for x in (0, 100, 200)]
    assert _levels(retime(f[:1], [0, 0], fps=10)) == [0]
    assert _levels(retime(f[:1], [0, 0], fps=10, loop=True)) == [0]  # (a later review)
    assert _levels(retime(f[:1], [7.3, 7.30099], fps=250, loop=True)) == [0]
    assert _levels(retime(f[:2], [0, 0.1, 0.1], fps=10, backend="blend")) == [0, 100]
    got = retime(f[:2], [0, 0.1, 0.1005, 0.3], fps=10, backend="blend")
    assert _levels(got) == [0, 100]
    # with loop: the frame itself, then toward the first over the typical interval
    got = retime(f[:2], [0, 0.1, 0.1, 0.2], fps=20, backend="blend", loop=True, scene_cut=False)
    assert _levels(got) == [0, 50, 100, 50]


def test_a_long_interval_is_worked_out_as_it_goes():
    """From a review: every output time of one interval was an array made before its
    first frame (10**8 outputs: 2.3 GB and 7 s)."""
    import itertools
    import tracemalloc

    from loopwave.interpolate import retime

    f = [np.full((8, 8, 3), x, np.uint8) for x in (0, 200)]
    tracemalloc.start()
    first = list(itertools.islice(retime(f, [0, 1e5], fps=1000, hold=None, backend="blend"), 40))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(first) == 40 and peak < 2_000_000, peak


def test_retime_names_hold_and_times_for_values_it_cannot_take():
    from decimal import Decimal

    from loopwave.interpolate import retime

    f = [np.zeros((8, 8, 3), np.uint8)] * 2
    assert len(list(retime(f, [0, 1], fps=2, hold=Fraction(3), backend="blend"))) == 3
    assert len(list(retime(f, [0, 1], fps=2, hold=Decimal(2), backend="blend"))) == 3
    for hold in (10**400, "3", True, float("inf"), 0.99):
        with pytest.raises(ValueError, match="hold"):
            retime(f, [0, 1], fps=2, hold=hold)
    for bad in ([Decimal("sNaN"), 1], [0, 10**400], [Decimal("Infinity"), 1]):
        with pytest.raises(ValueError, match="times"):
            retime(f, bad, fps=2)


def test_the_interpolate_docstring_examples_run():
    import doctest

    import loopwave.interpolate

    result = doctest.testmod(loopwave.interpolate)
    assert result.attempted >= 2 and result.failed == 0


def test_a_ctrl_c_inside_a_frames_write_leaves_no_folder(tmp_path, monkeypatch):
    """From a review of interrupts: a Ctrl-C in write_png after its rename left that
    frame (the count not yet raised) and so the folders, which a run again refused
    ("already holds files")."""
    import loopwave.png as lp

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_png(src / f"{i}.png", square_at(10 * i))
    real, calls = lp.write_png, []

    def then_ctrl_c(path, img):
        real(path, img)
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(lp, "write_png", then_ctrl_c)
    out = tmp_path / "o" / "x"
    assert main(["interpolate", str(src), "-o", str(out), "--blend", "--factor", "4"]) == 130
    assert len(calls) == 3 and not (tmp_path / "o").exists()


def test_a_consumer_that_stops_does_not_wait_for_the_pairs_being_made(tmp_path):
    """From a review of interrupts: a break out of interpolate(workers=4) waited for every
    pair being made (3 s at 1080p), and a Ctrl-C in that wait, inside the garbage
    collector, was printed and lost."""
    import threading
    import time

    from loopwave.interpolate import Interpolator

    release = threading.Event()

    class Slow(Interpolator):
        thread_safe = True

        def _between(self, a, b, ts):
            if a[0, 0, 0] > 0:  # every pair but the first waits
                release.wait(20)
            return np.stack([a] * len(ts))

    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(8)]
    gen = interpolate(frames, factor=2, backend=Slow(), workers=4, scene_cut=False)
    assert next(gen) is not None and next(gen) is not None  # pairs 1..3 now in flight
    t = time.monotonic()
    gen.close()
    took = time.monotonic() - t
    release.set()
    assert took < 10, took  # (it waited for the 20 s of the pairs in flight)


def test_a_ctrl_c_as_the_input_video_closes_is_not_lost(tmp_path, monkeypatch):
    """From a review of interrupts: the input's reader was closed in its __del__ once its
    frames ran out, where a Ctrl-C was printed as "Exception ignored in
    VideoReader.__del__" and lost (the CLI exited 0). It is closed as its frames end."""
    pytest.importorskip("av")
    from loopwave import video as lv
    from loopwave.interpolate import _read_input

    src = tmp_path / "s.mp4"
    with lv.VideoWriter(src, fps=10) as w:
        for i in range(3):
            w.write(square_at(10 * i))
    real, closes = lv._Decoder.close, []

    def interrupted(self):
        real(self)
        closes.append(self)
        if len(closes) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(lv._Decoder, "close", interrupted)
    frames, n, _, _ = _read_input(src)
    got = []
    with pytest.raises(KeyboardInterrupt):
        for f in frames:
            got.append(f)
    assert len(got) == n == 3


def test_an_animated_image_in_the_input_folder_is_refused(tmp_path, capsys):
    """As `encode`: an APNG among the input frames was read as its first frame alone."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "0.png", square_at(10))
    anim = [Image.fromarray(square_at(x)) for x in (12, 14, 16)]
    anim[0].save(src / "1.png", save_all=True, append_images=anim[1:])
    out = tmp_path / "o.mp4"
    assert main(["interpolate", str(src), "-o", str(out), "--blend", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{src / '1.png'}: it is an animated PNG of 3 images" in err
    assert not out.exists()
