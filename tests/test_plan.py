"""The colour plan: keyframes, the seed's lerp targets, save/load, correction."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import drift

from loopwave import color_correct, lerp_frames
from loopwave.plan import ColourPlan, keyframe_indices


def test_keyframe_indices():
    assert keyframe_indices(41, 20) == [0, 20, 40]
    assert keyframe_indices(45, 20) == [0, 20, 40, 44]
    assert keyframe_indices(1, 5) == [0]
    with pytest.raises(ValueError, match="every"):
        keyframe_indices(10, 0)
    assert keyframe_indices(np.int64(10), np.int64(4)) == [0, 4, 8, 9]  # refused before
    with pytest.raises(TypeError, match="frames"):
        keyframe_indices(10.0, 4)  # type: ignore[arg-type]
    # 10**10 frames built a set of 10**10 indices (memory) before any check
    with pytest.raises(ValueError, match=r"frames must be in 1\.\.1000000000"):
        keyframe_indices(10**10, 1)
    with pytest.raises(ValueError, match="frames must be in"):
        ColourPlan.build(lambda i, v: np.zeros((4, 4, 3), np.uint8), frames=10**10, every=1)


def test_targets_follow_the_seed_rule():
    plan = ColourPlan.build(lambda i, v: np.full((4, 4, 3), i * 5, np.uint8), frames=41, every=20)
    assert plan.target(20)[0, 0, 0] == 100
    # frame 35: 25% of keyframe 20 (100) + 75% of keyframe 40 (200)
    assert plan.target(35)[0, 0, 0] == 175
    np.testing.assert_array_equal(
        plan.target(35), lerp_frames(plan.keyframes[20], plan.keyframes[40], 0.75)
    )


def test_renders_are_averaged():
    calls = []

    def render(i, v):
        calls.append((i, v))
        return np.full((2, 2, 3), 10 * v, np.uint8)

    plan = ColourPlan.build(render, frames=3, every=5, renders=4)
    assert sorted(calls) == [(k, v) for k in (0, 2) for v in range(4)]
    assert plan.keyframes[0][0, 0, 0] == 15  # mean of 0, 10, 20, 30


def test_renders_takes_numpy_integers_and_names_itself():
    """renders takes numpy integers as frames and every do (refused before), and a wrong
    type is a TypeError (a ValueError before), a count below 1 a ValueError, each naming
    renders."""

    def render(i, v):
        return np.full((2, 2, 3), 10 * v, np.uint8)

    for n in (np.int64(2), np.uint8(2), np.int32(2)):
        plan = ColourPlan.build(render, frames=3, every=np.int64(5), renders=n)
        assert plan.keyframes[0][0, 0, 0] == 5
    for bad in (2.0, "2", None, True, np.bool_(True), np.timedelta64(2, "s"), np.float64(2)):
        with pytest.raises(TypeError, match="^renders must be an int"):
            ColourPlan.build(render, frames=3, every=5, renders=bad)
    for bad in (0, -1, np.int64(0)):
        with pytest.raises(ValueError, match="^renders must be an int >= 1"):
            ColourPlan.build(render, frames=3, every=5, renders=bad)


def test_save_load_and_correct(tmp_path, photos):
    keys = {0: photos["coffee"], 10: photos["chelsea"]}
    plan = ColourPlan(keys)
    plan.save(tmp_path)
    again = ColourPlan.load(tmp_path)
    for k in keys:
        np.testing.assert_array_equal(again.keyframes[k], keys[k])
    frame = drift(plan.target(4))
    np.testing.assert_array_equal(plan.correct(frame, 4), color_correct(frame, plan.target(4)))
    with pytest.raises(OSError, match="plan.json"):
        ColourPlan.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="shape"):
        ColourPlan({0: photos["coffee"], 5: photos["coffee"][:10]})
    with pytest.raises(TypeError, match=r"keyframes\[0\]"):
        ColourPlan({0: [1, 2, 3]})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="frame"):
        ColourPlan({"0": photos["coffee"]})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="^i "):
        ColourPlan({0: photos["coffee"]}).target(float("nan"))  # type: ignore[arg-type]


def test_reading_16_bit_and_oversized_images(tmp_path, monkeypatch):
    from pathlib import Path

    from PIL import Image

    from loopwave.plan import _read_png

    grey = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    got = _read_png(Path(tmp_path / "g16.png"))
    assert got.shape == (48, 64, 3) and got.dtype == np.uint8
    # scaled to 8 bits, not clipped at 255 (PIL's convert("RGB") saturated it)
    np.testing.assert_array_equal(got[..., 0], np.round(grey / 257).astype(np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x48 is then a "bomb"
    with pytest.raises(ValueError, match="g16.png"):
        _read_png(Path(tmp_path / "g16.png"))


def test_an_init_image_is_read_upright(tmp_path):
    """From a review: a JPEG whose EXIF orientation says "turn 90 degrees" (a phone's) was
    read on its side: refused as the wrong size, or, square, frame 0 silently rotated."""
    from pathlib import Path

    from PIL import Image

    from loopwave.plan import _read_png

    img = np.zeros((64, 96, 3), np.uint8)
    img[:16] = (255, 0, 0)  # a red band at the top, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored image is turned 90 degrees clockwise
    Image.fromarray(img).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    got = _read_png(Path(tmp_path / "phone.jpg"))
    assert got.shape == (96, 64, 3)  # as shown upright
    # the oracle: numpy turns the stored pixels as the tag says (the top band goes right)
    want = np.rot90(np.asarray(Image.open(tmp_path / "phone.jpg")), k=-1)
    np.testing.assert_array_equal(got, want)
    assert got[:, -16:, 0].mean() > 200 and got[:, :16, 0].mean() < 50


def test_numpy_integer_keyframes_save_whole(tmp_path, photos):
    """np.int64 frames were kept as keys: save() wrote the PNGs, then json failed, and an
    older plan.json stayed beside the new images (load gave a mix of both plans)."""
    ColourPlan({0: photos["chelsea"], 10: photos["chelsea"]}).save(tmp_path)
    plan = ColourPlan({np.int64(0): photos["coffee"], np.int32(10): photos["coffee"]})
    plan.save(tmp_path)
    again = ColourPlan.load(tmp_path)
    assert list(again.keyframes) == [0, 10]
    for k in (0, 10):
        np.testing.assert_array_equal(again.keyframes[k], photos["coffee"])


@pytest.mark.parametrize("keys", ['"010"', "[0.9, 10.7]", "[false, true]", "[1e400]", "[]", "[-1]"])
def test_damaged_plan_index_is_a_value_error_naming_it(tmp_path, photos, keys):
    # a string was read letter by letter, floats and bools as ints, 1e400 raised
    # OverflowError, and [] failed without naming plan.json
    ColourPlan({0: photos["coffee"], 1: photos["coffee"]}).save(tmp_path)
    (tmp_path / "plan.json").write_text('{"keyframes": ' + keys + "}")
    with pytest.raises(ValueError, match="plan.json"):
        ColourPlan.load(tmp_path)


def test_a_truncated_plan_image_names_its_file(tmp_path, photos):
    ColourPlan({0: photos["coffee"], 5: photos["coffee"]}).save(tmp_path)
    png = tmp_path / "plan" / "000005.png"
    png.write_bytes(png.read_bytes()[:2000])
    with pytest.raises(OSError, match="000005.png"):
        ColourPlan.load(tmp_path)


def test_keyframes_are_checked_when_the_plan_is_made(photos):
    # float64, mixed dtypes, NaN and empty images were taken, and failed later in a lerp
    # with errors naming `a` and `b`
    img = photos["coffee"]
    with pytest.raises(TypeError, match="^keyframes must all be uint8 or all float32"):
        ColourPlan({0: img.astype(np.float64)})
    with pytest.raises(TypeError, match="^keyframes must all be uint8 or all float32"):
        ColourPlan({0: img, 5: img.astype(np.float32) / 255})
    bad = img.astype(np.float32) / 255
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^keyframes\[3\] holds NaN"):
        ColourPlan({3: bad})
    with pytest.raises(ValueError, match="^keyframes must not be empty images"):
        ColourPlan({0: img[:0]})


def test_float_plans_save_exactly_and_frames_outside_the_names_are_refused(tmp_path, photos):
    img = photos["astronaut"][:32, :48].astype(np.float32) / 255
    img[0, 0] = [0.123456789, 1.0, 0.0]
    plan = ColourPlan({0: img, 20: img[::-1].copy()})
    plan.save(tmp_path)  # refused by write_png, naming neither the plan nor the frame
    back = ColourPlan.load(tmp_path)
    assert list(back.keyframes) == [0, 20]
    for k in (0, 20):
        assert back.keyframes[k].dtype == np.float32
        np.testing.assert_array_equal(back.keyframes[k], plan.keyframes[k])
    np.save(tmp_path / "plan" / "000020.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(OSError, match="000020.npy"):
        ColourPlan.load(tmp_path)
    (tmp_path / "plan" / "000020.npy").unlink()
    with pytest.raises(OSError, match="000020.npy"):
        ColourPlan.load(tmp_path)
    # saved, then not loadable: now refused when made
    small = photos["coffee"][:8, :8]
    for k in (-5, 10**9):
        with pytest.raises(ValueError, match=f"frame {k} is not in"):
            ColourPlan({k: small, 1: small})


def test_float_keyframes_carry_a_checksum_in_plan_json(tmp_path, photos):
    """Zeros inside a .npy keyframe (a power cut) read as a plausible image: plan.json
    records each file's CRC-32, and a file that does not match it is refused."""
    import json
    import zlib

    img = photos["chelsea"][:24, :40].astype(np.float32) / 255
    ColourPlan({0: img, 9: img[::-1].copy()}).save(tmp_path)
    index = json.loads((tmp_path / "plan.json").read_text())
    npy = tmp_path / "plan" / "000009.npy"
    assert index["crc32"]["000009"] == zlib.crc32(npy.read_bytes())
    good = npy.read_bytes()
    npy.write_bytes(good[:200] + bytes(64) + good[264:])  # zeros inside the pixels
    assert np.load(npy).shape == img.shape  # numpy alone reads it as an image
    with pytest.raises(OSError, match=r"000009\.npy: damaged \(its CRC-32"):
        ColourPlan.load(tmp_path)
    npy.write_bytes(good)
    loaded = ColourPlan.load(tmp_path)
    # saved again into its own folder, its files' checksums are kept
    loaded.save(tmp_path)
    assert json.loads((tmp_path / "plan.json").read_text()) == index
    # a plan saved before the checksums loads unchecked; a malformed entry is refused
    (tmp_path / "plan.json").write_text(json.dumps({"keyframes": [0, 9], "dtype": "float32"}))
    np.testing.assert_array_equal(ColourPlan.load(tmp_path).target(9), img[::-1])
    bad = {**index, "crc32": {"000009": -1}}
    (tmp_path / "plan.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match='"crc32" must map'):
        ColourPlan.load(tmp_path)


def test_a_build_with_keep_goes_on_from_its_last_finished_keyframe(tmp_path):
    """An interrupted build started over: hundreds of renders lost to one Ctrl-C."""

    def pure(k, v):
        return np.full((4, 6, 3), (k * 7 + v * 3) % 256, np.uint8)

    calls = []

    def render(k, v):
        calls.append((k, v))
        if len(calls) == 7:  # keyframes 0, 3 and 6 done (two renders each), then 9's first
            raise KeyboardInterrupt
        return pure(k, v)

    whole = ColourPlan.build(pure, frames=10, every=3, renders=2)
    assert list(whole.keyframes) == [0, 3, 6, 9]
    keep = tmp_path / "plan"
    with pytest.raises(KeyboardInterrupt):
        ColourPlan.build(render, frames=10, every=3, renders=2, keep=keep)
    names = sorted(p.name for p in keep.iterdir())
    assert names == ["000000.png", "000003.png", "000006.png"]
    assert ColourPlan.kept(keep, frames=10, every=3) == 3
    calls.clear()
    plan = ColourPlan.build(render, frames=10, every=3, renders=2, keep=keep)
    assert calls == [(9, 0), (9, 1)]  # only the keyframe that was not finished
    for k in whole.keyframes:
        np.testing.assert_array_equal(plan.keyframes[k], whole.keyframes[k])


def test_a_build_with_keep_renders_a_damaged_keyframe_again(tmp_path):
    """A kept keyframe a power cut left empty or cut short (a run made before files were
    synced to disk) stopped every build and resume with a ValueError: it is rendered
    again, and not counted as kept."""

    def pure(k, v):
        return np.full((4, 6, 3), (k * 7 + v * 3) % 256, np.uint8)

    keep = tmp_path / "plan"
    whole = ColourPlan.build(pure, frames=10, every=3, renders=2)
    ColourPlan.build(pure, frames=10, every=3, renders=2, keep=keep)
    (keep / "000003.png").write_bytes(b"")
    cut = (keep / "000006.png").read_bytes()
    (keep / "000006.png").write_bytes(cut[: len(cut) - 5])
    assert ColourPlan.kept(keep, frames=10, every=3) == 2
    calls = []

    def render(k, v):
        calls.append((k, v))
        return pure(k, v)

    plan = ColourPlan.build(render, frames=10, every=3, renders=2, keep=keep)
    assert calls == [(3, 0), (3, 1), (6, 0), (6, 1)]
    for k in whole.keyframes:
        np.testing.assert_array_equal(plan.keyframes[k], whole.keyframes[k])
    assert ColourPlan.kept(keep, frames=10, every=3) == 4


def test_a_plan_in_files_holds_a_few_keyframes_and_reads_each_once(tmp_path, monkeypatch):
    """A plan held every keyframe in memory: W x H x 3 bytes times frames / every, which
    grew with the video where every other stage stays flat."""
    import tracemalloc

    import loopwave.plan as plan_mod
    from loopwave.plan import Keyframes

    def pure(k, v):
        rng = np.random.default_rng(k * 10 + v)
        return rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)

    reads = []
    real = plan_mod._read_png
    monkeypatch.setattr(plan_mod, "_read_png", lambda p: reads.append(p.name) or real(p))
    n, every = 400, 5
    eager = ColourPlan.build(pure, frames=n, every=every, renders=1)
    assert isinstance(eager.keyframes, dict)
    plan = ColourPlan.build(pure, frames=n, every=every, renders=1, keep=tmp_path / "plan")
    assert isinstance(plan.keyframes, Keyframes) and len(plan.keyframes) == 81
    assert reads == []  # made, written and let go; nothing read back yet
    tracemalloc.start()
    try:
        peak0 = tracemalloc.get_traced_memory()[1]
        for i in range(n):
            t = plan.target(i)
            np.testing.assert_array_equal(t, eager.target(i), err_msg=f"frame {i}")
            del t
        peak = tracemalloc.get_traced_memory()[1] - peak0
    finally:
        tracemalloc.stop()
    # the eager plan's images are all alive here; the file plan added a few of its own
    # (the held ones, a decode's buffers, the lerps and the comparisons), not all 81
    assert peak < 20 * 64 * 80 * 3, peak
    assert sorted(reads) == [f"{k:06d}.png" for k in keyframe_indices(n, every)]  # each once
    # a held keyframe (the last, not read again) is read-only: an edit must not reach
    # later targets
    with pytest.raises(ValueError, match="read-only"):
        plan.keyframes[n - 1][0, 0, 0] = 1
    assert 5 in plan.keyframes and 6 not in plan.keyframes and len(reads) == 81


def test_a_plan_in_files_saves_without_rewriting_and_names_a_changed_file(tmp_path, photos):
    img = photos["coffee"][:48, :64]
    plan = ColourPlan.build(lambda k, v: img, frames=9, every=4, renders=1, keep=tmp_path / "plan")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "plan").iterdir()}
    assert plan.save(tmp_path) == tmp_path / "plan"
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "plan").iterdir()} == before
    back = ColourPlan.load(tmp_path)
    assert list(back.keyframes) == [0, 4, 8]
    np.testing.assert_array_equal(back.target(2), img)
    # saved elsewhere, a plan in files writes its images there
    back.save(tmp_path / "copy")
    again = ColourPlan.load(tmp_path / "copy")
    np.testing.assert_array_equal(again.keyframes[8], img)
    # a keyframe file replaced by one of another size after the load is named when read
    from PIL import Image

    fresh = ColourPlan.load(tmp_path)  # checks every image, holds none
    Image.fromarray(photos["coffee"][:10, :10]).save(tmp_path / "plan" / "000008.png")
    np.testing.assert_array_equal(fresh.target(1), img)
    with pytest.raises(OSError, match=r"000008\.png: changed since the colour plan was made"):
        fresh.target(7)


def test_a_plan_in_files_checks_its_files_and_travels(tmp_path, monkeypatch, photos):
    """A plan built with keep or loaded reads its files: another plan saved over them
    (same size) was used silently, a relative keep broke after a chdir, and a loaded
    plan could not be pickled (a lock) nor handed to ColourPlan."""
    import copy
    import pickle
    import shutil

    img = photos["coffee"][:32, :48]
    other = photos["chelsea"][:32, :48]
    monkeypatch.chdir(tmp_path)
    plan = ColourPlan.build(lambda k, v: img, frames=9, every=4, renders=1, keep="run/plan")
    plan.save("run")
    monkeypatch.chdir(tmp_path / "run")  # the relative keep still means tmp_path/run/plan
    np.testing.assert_array_equal(plan.target(6), img)
    for twin in (pickle.loads(pickle.dumps(plan)), copy.deepcopy(plan)):
        np.testing.assert_array_equal(twin.target(2), img)
    eager = ColourPlan(plan.keyframes)  # each read, all held: a plain dict
    assert isinstance(eager.keyframes, dict) and list(eager.keyframes) == [0, 4, 8]
    loaded = ColourPlan.load(tmp_path / "run")
    import time

    time.sleep(0.01)  # a later modification time, whatever the file system's clock
    ColourPlan({0: other, 4: other, 8: other}).save(tmp_path / "run")  # the same size
    # (`plan` holds all three images, as read before the change: it goes on with them)
    np.testing.assert_array_equal(plan.target(1), img)
    with pytest.raises(OSError, match=r"000000\.png: changed since the colour plan was made"):
        loaded.target(1)
    shutil.rmtree(tmp_path / "run" / "plan")
    with pytest.raises(OSError, match=r"000000\.png: changed since .*\(it is gone\)"):
        loaded.target(1)


def test_a_plan_in_memory_is_its_own():
    """From a review: a plan made from a dict kept the caller's arrays and handed them
    out writeable, so an edit of a given target, or the caller reusing its buffer,
    changed every target after it (a plan in files already handed out read-only ones)."""
    k0, k10 = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 100, np.uint8)
    plan = ColourPlan({0: k0, 10: k10})
    k0[:] = 50  # the caller reuses its buffer
    assert plan.target(5)[0, 0].tolist() == [50, 50, 50]
    with pytest.raises(ValueError, match="read-only"):
        plan.target(10)[:] = 255
    assert plan.target(5)[0, 0].tolist() == [50, 50, 50]
    # a read-only view of a writeable array is copied too
    view = k10[:]
    view.flags.writeable = False
    plan = ColourPlan({0: view})
    k10[:] = 7
    assert plan.target(0)[0, 0].tolist() == [100, 100, 100]
    # a built plan keeps its averages without a copy, read-only down to their memory
    built = ColourPlan.build(lambda i, v: np.full((4, 4, 3), i, np.uint8), frames=3, every=1)
    for k in (0, 1, 2):
        img = built.keyframes[k]
        assert not img.flags.writeable
        assert img.base is None or not img.base.flags.writeable


def test_target_refuses_a_negative_frame_and_holds_the_last_past_the_end():
    plan = ColourPlan.build(lambda i, v: np.full((4, 4, 3), i, np.uint8), frames=41, every=20)
    for bad in (-1, -1000, np.int64(-5)):
        with pytest.raises(ValueError, match="^i must be a frame index >= 0"):
            plan.target(bad)
    with pytest.raises(TypeError, match="^i must be a frame index"):
        plan.target(np.timedelta64(5, "s"))  # type: ignore[arg-type]
    assert int(plan.target(41)[0, 0, 0]) == int(plan.target(10**12)[0, 0, 0]) == 40


def test_build_names_the_render_that_returned_a_bad_image():
    """From a review: mean_frames' own errors named `frames[0]`, which in build() is the
    frame count."""
    ok = np.zeros((4, 4, 3), np.uint8)
    cases = {
        "list": (
            lambda i, v: [[0, 0, 0]],
            TypeError,
            r"^render\(0, 0\) must return an \(H, W, 3\)",
        ),
        "float64": (lambda i, v: ok / 1.0, TypeError, r"^render\(0, 0\) must return a uint8 or"),
        "batch": (lambda i, v: ok[None], ValueError, r"^render\(0, 0\) must return one"),
        "size": (
            lambda i, v: np.zeros((4 + v, 4, 3), np.uint8),
            ValueError,
            r"^render\(0, 1\) must return an image like render\(0, 0\)'s",
        ),
        "dtype": (
            lambda i, v: ok if v == 0 else ok.astype(np.float32),
            ValueError,
            r"^render\(0, 1\) must return an image like",
        ),
        "nan": (
            lambda i, v: np.full((4, 4, 3), np.nan, np.float32),
            ValueError,
            r"^render\(0, 0\) returned NaN",
        ),
    }
    for render, err, match in cases.values():
        with pytest.raises(err, match=match):
            ColourPlan.build(render, frames=3, every=1, renders=2)
    with pytest.raises(TypeError, match="^render must be a function"):
        ColourPlan.build(None, frames=3, every=1)  # type: ignore[arg-type]


def test_folders_are_named_and_an_empty_one_is_refused(tmp_path, monkeypatch):
    """From a review: keep="" read and wrote keyframes in the current directory (and took
    a render's own 000000.png there as a finished keyframe); a None folder raised Path's
    own TypeError, naming no argument."""
    monkeypatch.chdir(tmp_path)
    render = lambda i, v: np.full((4, 4, 3), i, np.uint8)  # noqa: E731
    with pytest.raises(ValueError, match="^keep must name a folder"):
        ColourPlan.build(render, frames=3, every=1, keep="")
    with pytest.raises(ValueError, match="^keep must name a folder"):
        ColourPlan.kept("", frames=3, every=1)
    assert list(tmp_path.iterdir()) == []
    plan = ColourPlan.build(render, frames=3, every=1)
    for call in (plan.save, ColourPlan.load):
        with pytest.raises(TypeError, match="^run_dir must be a folder's path"):
            call(None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="^run_dir must name a folder"):
            call("")
    with pytest.raises(TypeError, match="^keep must be a folder's path"):
        ColourPlan.build(render, frames=3, every=1, keep=3)  # type: ignore[arg-type]


def test_a_plan_in_files_hands_out_read_only_keyframes(tmp_path):
    from loopwave.plan import ColourPlan

    # float32 keyframes come back from .npy files (np.load: writeable arrays)
    plan = ColourPlan({k: np.full((4, 4, 3), k / 10, np.float32) for k in (0, 1, 2)})
    plan.save(tmp_path)
    loaded = ColourPlan.load(tmp_path)
    with pytest.raises(ValueError, match="read-only"):
        loaded.target(2)[:] = 1.0
    assert loaded.target(2)[0, 0].tolist() == pytest.approx([0.2] * 3)


def _disk_full_at(call: int):
    """A stand-in for a write's sync that fails as a full disk does (ENOSPC, naming no
    file, as a buffered write's flush reports it) from its ``call``-th call on."""
    import errno

    calls = [0]

    def sync(f) -> None:
        calls[0] += 1
        if calls[0] >= call:
            raise OSError(errno.ENOSPC, "No space left on device")

    return sync


def test_a_save_over_another_plan_that_fails_part_way_leaves_no_plan(tmp_path, monkeypatch):
    """From a disk-full review: the old plan.json stayed while keyframes were replaced one
    by one, so a save over another plan that failed part way loaded, without a word, as
    a mix of both plans' keyframes. The old index now goes first."""
    import loopwave.png

    a = ColourPlan({k: np.full((4, 4, 3), 10, np.uint8) for k in (0, 5, 10, 15)})
    b = ColourPlan({k: np.full((4, 4, 3), 200, np.uint8) for k in (0, 5, 10, 15)})
    a.save(tmp_path)
    monkeypatch.setattr(loopwave.png, "sync_file", _disk_full_at(3))
    with pytest.raises(OSError, match="No space left") as e:
        b.save(tmp_path)
    assert e.value.filename == str(tmp_path / "plan" / "000010.png")  # named, not bare
    monkeypatch.undo()
    assert not list((tmp_path / "plan").glob("*.tmp"))
    with pytest.raises(OSError, match="plan.json missing"):
        ColourPlan.load(tmp_path)
    b.save(tmp_path)  # once there is room, a save over what is left is whole
    assert all((v == 200).all() for v in ColourPlan.load(tmp_path).keyframes.values())


def test_a_float_plan_save_on_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    import loopwave.png

    plan = ColourPlan({k: np.full((4, 4, 3), 0.5, np.float32) for k in (0, 5)})
    monkeypatch.setattr(loopwave.png, "sync_file", _disk_full_at(2))
    with pytest.raises(OSError, match="No space left") as e:
        plan.save(tmp_path)
    assert e.value.filename == str(tmp_path / "plan" / "000005.npy")
    assert sorted(p.name for p in (tmp_path / "plan").iterdir()) == ["000000.npy"]


def test_a_link_at_a_float_keyframes_temporary_name_is_not_written_through(tmp_path):
    """From a review: a float keyframe is written to plan/NNNNNN.npy.tmp and renamed; a
    link there had the user's file it led to overwritten, and the keyframe left a link
    to it. It is replaced now."""
    user = tmp_path / "user.bin"
    user.write_bytes(b"the user's")
    (tmp_path / "plan").mkdir()
    (tmp_path / "plan" / "000000.npy.tmp").symlink_to(user)
    img = np.linspace(0, 1, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    ColourPlan({0: img}).save(tmp_path)
    npy = tmp_path / "plan" / "000000.npy"
    assert user.read_bytes() == b"the user's" and npy.is_file() and not npy.is_symlink()
    assert np.array_equal(np.load(npy), img)
