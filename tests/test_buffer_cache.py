"""The result-buffer cache: dropped results' memory reused, never while still in use."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import loopwave as lw

# 1.2 MB of uint8 per batch: above the 1 MiB below which results are plain numpy arrays
SHAPE = (2, 384, 512, 3)


def address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Each test starts with an empty cache at the default limit, and leaves it so."""
    limit = lw.buffer_cache_info()["max_bytes"]
    lw.set_buffer_cache(0)
    lw.set_buffer_cache(limit)
    yield
    lw.set_buffer_cache(0)
    lw.set_buffer_cache(limit)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, SHAPE, dtype=np.uint8)


def test_a_dropped_result_is_reused_by_the_next_of_its_size(frames: np.ndarray) -> None:
    want = lw.color_correct(frames, frames[0]).copy()
    r = lw.color_correct(frames, frames[0])
    assert not r.flags.owndata and type(r.base).__name__ == "ResultBuffer"
    at = address(r)
    del r
    info = lw.buffer_cache_info()
    assert info["buffers"] == 1 and info["bytes"] == frames.nbytes
    r = lw.color_correct(frames, frames[0])
    assert address(r) == at
    assert lw.buffer_cache_info()["buffers"] == 0
    np.testing.assert_array_equal(r, want)
    # an ordinary array in every other way
    assert r.flags.c_contiguous and r.flags.writeable and r.flags.aligned
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(r)), want)


def test_a_view_keeps_the_memory_out_of_the_cache(frames: np.ndarray) -> None:
    r = lw.color_correct(frames, frames[0])
    keep = r.copy()
    view, at = r[1, 10:], address(r)
    del r
    assert lw.buffer_cache_info()["buffers"] == 0
    other = lw.color_correct(frames[::-1].copy(), frames[1])
    assert address(other) != at
    np.testing.assert_array_equal(view, keep[1, 10:])
    del other, view
    assert lw.buffer_cache_info()["buffers"] == 2


@pytest.mark.parametrize(
    "hold",
    [
        lambda r: r.base,
        memoryview,
        lambda r: np.frombuffer(r.data, np.uint8),
        lambda r: r.reshape(-1)[::7],
        lambda r: np.lib.stride_tricks.as_strided(r, (4,), (1,)),
    ],
    ids=["base", "memoryview", "frombuffer", "strided-view", "as_strided"],
)
def test_anything_reaching_the_memory_keeps_it(frames: np.ndarray, hold) -> None:
    r = lw.lerp_frames(frames, frames, 0.5)
    held, at = hold(r), address(r)
    del r
    assert lw.buffer_cache_info()["buffers"] == 0
    assert address(lw.lerp_frames(frames, frames, 0.5)) != at
    del held
    assert lw.buffer_cache_info()["buffers"] >= 1


def test_a_failed_call_returns_its_buffer(frames: np.ndarray) -> None:
    r = lw.lerp_frames(frames, frames, 0.5)
    at = address(r)
    del r
    bad = frames.copy()
    with pytest.raises(ValueError, match="alpha"):
        lw.lerp_frames(frames, bad, 1.5)
    info = lw.buffer_cache_info()
    assert info["buffers"] == 1
    assert address(lw.lerp_frames(frames, frames, 0.5)) == at


def test_float32_results_over_kept_buffers_are_aligned(frames: np.ndarray) -> None:
    x = frames.astype(np.float32) / 255
    for _ in range(3):
        r = lw.rgb_to_lab(x)
        assert not r.flags.owndata and r.flags.aligned
        assert address(r) % 16 == 0
        del r


def test_a_kept_buffer_serves_only_requests_up_to_a_quarter_smaller() -> None:
    """A kept buffer is never used for a larger result, nor for one much smaller."""

    def result(rows: int) -> np.ndarray:
        z = np.zeros((1, rows, 1024, 3), np.uint8)
        return lw.lerp_frames(z, z, 0.5)

    r = result(512)
    at = address(r)
    del r
    # one byte-row more than the kept buffer holds: refused, a new buffer
    bigger = result(513)
    assert address(bigger) != at
    del bigger
    lw.set_buffer_cache(0)
    lw.set_buffer_cache(1 << 30)
    r = result(512)  # 1.5 MiB of uint8
    at = address(r)
    del r
    # 512 rows kept: 410 rows (the kept buffer 24.9% larger) take it, 409 (25.2%) do not
    fits = result(410)
    assert address(fits) == at
    del fits
    smaller = result(409)
    assert address(smaller) != at


def dirty(shape: tuple[int, ...], dtype: type) -> int:
    """Leave a result buffer of `shape` and `dtype` in the cache, full of garbage."""
    n = int(np.prod(shape))
    assert n % 3 == 0
    z = np.zeros((1, 1, n // 3, 3), dtype)  # as many bytes, as RGB frames (planes too)
    r = lw.lerp_frames(z, z, 0.0)
    r.view(np.uint8)[...] = 0xFF if dtype == np.uint8 else 0x7F  # 0x7F7F7F7F: a huge float
    at = address(r)
    del r
    return at


KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], type]] = {
    "rgb_to_lab": (lambda x: lw.rgb_to_lab(x), np.float32),
    "lab_to_rgb": (lambda x: lw.lab_to_rgb(lw.rgb_to_lab(x).copy()), np.uint8),
    "match_histograms": (lambda x: lw.match_histograms(x, x[::-1].copy()), np.uint8),
    "blend_luminosity": (lambda x: lw.blend_luminosity(x, x[::-1].copy()), np.uint8),
    "adjust_gamma": (lambda x: lw.adjust_gamma(x, 0.7), np.uint8),
    "match_gamma": (lambda x: lw.match_gamma(x, x[0])[0], np.uint8),
    "color_correct": (lambda x: lw.color_correct(x, x[1]), np.uint8),
    "color_correct f32": (
        lambda x: lw.color_correct(x.astype(np.float32) / 255, x[1].astype(np.float32) / 255),
        np.float32,
    ),
    "lerp_frames": (lambda x: lw.lerp_frames(x, x[::-1].copy(), 0.3), np.uint8),
    "warp_affine": (lambda x: lw.warp_affine(x, np.array([[1, 0.1, 3], [0, 1, -2.5]])), np.uint8),
    # (two frames twice as tall: a result of 1 MiB or more, which the cache keeps)
    "mean_frames": (lambda x: lw.mean_frames(np.concatenate([x, x[::-1]], axis=1)), np.uint8),
    "yuv420p_to_rgb": (lambda x: lw.yuv420p_to_rgb(lw.rgb_to_yuv420p(x)), np.uint8),
    # (two frames twice as tall: planes of 1 MiB or more)
    "rgb_to_yuv420p": (lambda x: lw.rgb_to_yuv420p(np.concatenate([x, x[::-1]], axis=1)), np.uint8),
}


@pytest.mark.parametrize("name", KERNELS)
def test_every_kernel_writes_all_of_a_reused_buffer(name: str, frames: np.ndarray) -> None:
    fn, dtype = KERNELS[name]
    lw.set_buffer_cache(0)
    want = fn(frames)
    owner = want if want.base is None else want.base  # (mean_frames gives a view of (1, ...))
    assert isinstance(owner, np.ndarray) and owner.flags.owndata  # the cache off: plain numpy
    lw.set_buffer_cache(1 << 30)
    at = dirty(want.shape, dtype)
    got = fn(frames)
    assert address(got) == at, "the garbage buffer was not reused"
    np.testing.assert_array_equal(got, want)


def test_limits_hold(frames: np.ndarray) -> None:
    lw.set_buffer_cache(3 * frames.nbytes)
    results = [lw.lerp_frames(frames, frames, 0.5) for _ in range(6)]
    del results
    info = lw.buffer_cache_info()
    assert info["buffers"] == 3 and info["bytes"] == 3 * frames.nbytes
    lw.set_buffer_cache(100 * frames.nbytes)
    results = [lw.lerp_frames(frames, frames, 0.5) for _ in range(6)]
    del results
    assert lw.buffer_cache_info()["buffers"] == 4  # at most four kept
    lw.set_buffer_cache(frames.nbytes + 1)
    assert lw.buffer_cache_info() == {
        "max_bytes": frames.nbytes + 1,
        "bytes": frames.nbytes,
        "buffers": 1,
    }
    lw.set_buffer_cache(0)
    assert lw.buffer_cache_info() == {"max_bytes": 0, "bytes": 0, "buffers": 0}
    r = lw.lerp_frames(frames, frames, 0.5)
    assert r.flags.owndata
    del r
    assert lw.buffer_cache_info()["buffers"] == 0


def test_sizes_it_does_not_keep(frames: np.ndarray) -> None:
    small = lw.lerp_frames(frames[:, :8], frames[:, :8], 0.5)
    assert small.flags.owndata
    lw.set_buffer_cache(frames.nbytes - 1)  # a result larger than the limit: not kept
    r = lw.lerp_frames(frames, frames, 0.5)
    assert r.flags.owndata
    # a kept buffer serves results up to a quarter smaller, not much smaller ones
    lw.set_buffer_cache(1 << 30)
    big = np.zeros((4, *SHAPE[1:]), np.uint8)
    del r
    r = lw.lerp_frames(big, big, 0.5)
    at = address(r)
    del r
    half = lw.lerp_frames(frames, frames, 0.5)
    assert address(half) != at
    assert lw.buffer_cache_info()["buffers"] == 1


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, r"max_bytes must be an int in 0..2\*\*63-1; got -1"),
        (2**70, ValueError, r"max_bytes must be an int in 0..2\*\*63-1"),  # it said "0 or more"
        (1.5, TypeError, "max_bytes must be an int"),
        (True, TypeError, "max_bytes must be an int"),
        (None, TypeError, "max_bytes must be an int"),
    ],
)
def test_bad_limits(value: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        lw.set_buffer_cache(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "want"),
    # a huge value was reported as 2**64 - 1, which set_buffer_cache itself refuses
    [
        ("0", 0),
        ("7", 7 << 20),
        ("lots", 512 << 20),
        ("18446744073709", 2**63 - 1),
        ("99999999999999999999999", 2**63 - 1),
    ],
)
def test_limit_from_the_environment(env: str, want: int) -> None:
    code = "import loopwave as lw; print(lw.buffer_cache_info()['max_bytes'])"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "LOOPWAVE_BUFFER_CACHE_MB": env},
        timeout=60,
    )
    assert r.stdout.strip() == str(want), r.stderr


def test_threads_dropping_and_taking_results_at_once(frames: np.ndarray) -> None:
    alphas = [i / 7 for i in range(8)]
    want = [lw.lerp_frames(frames, frames[::-1].copy(), a).copy() for a in alphas]
    b = frames[::-1].copy()
    bad: list[str] = []

    def work(i: int) -> None:
        try:
            for _ in range(6):
                r = lw.lerp_frames(frames, b, alphas[i])
                if not np.array_equal(r, want[i]):
                    bad.append(f"thread {i}")
                del r
        except BaseException as e:  # a call that failed counts (it was lost in the thread)
            bad.append(f"thread {i}: {e!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    assert lw.buffer_cache_info()["buffers"] <= 4
