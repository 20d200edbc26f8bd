"""Shared inputs: real photographs from scikit-image and hard synthetic cases."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

skdata = pytest.importorskip("skimage.data")

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


@pytest.fixture(scope="session", autouse=True)
def _cwd_of_our_own(tmp_path_factory):
    """Every test runs in an empty folder of its own session, not in the checkout: a
    render's default output (``out/render/NAME``, relative) left there by ``make render``
    made a test that expects its render refused for another reason fail, and a test must
    not write into the checkout either."""
    import os

    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(here)


def _crop_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    return img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s, :3]


def float_photo(name: str, size: int) -> np.ndarray:
    """A photograph resized (anti-aliased) to ``size`` square: continuous float32 in [0, 1]."""
    from skimage.transform import resize

    img = _crop_square(getattr(skdata, name)())
    return resize(img, (size, size), anti_aliasing=True).astype(np.float32)


def _square(img: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    img = _crop_square(img)
    return (resize(img, (size, size), anti_aliasing=True) * 255 + 0.5).astype(np.uint8)


def photo(name: str, size: int) -> np.ndarray:
    """A photograph resized to ``size`` square, uint8 RGB."""
    return _square(getattr(skdata, name)(), size)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs, 128 px square, uint8 RGB."""
    return {n: photo(n, 128) for n in PHOTO_NAMES}


@pytest.fixture(scope="session")
def photos256() -> dict[str, np.ndarray]:
    """Real photographs, 256 px square (65536 pixels), uint8 RGB."""
    return {n: photo(n, 256) for n in PHOTO_NAMES}


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / np.float32(255)


def drift(img: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """The loopback drift the seed describes: warmer (orange), more contrast."""
    x = img.astype(np.float32) / 255
    x = 0.5 + (x - 0.5) * (1 + 0.5 * amount)
    x *= np.array([1 + 0.2 * amount, 1 + 0.05 * amount, 1 - 0.2 * amount], np.float32)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def check_shared_by_threads(call, reference: np.ndarray, prepared, photos) -> None:
    """``call(frame, ref)`` with one prepared object shared by 8 threads gives what it
    gives with the plain ``reference``, frame for frame (drifted photographs)."""
    from concurrent.futures import ThreadPoolExecutor

    frames = [drift(photos[n]) for n in ("astronaut", "chelsea", "rocket", "coffee")] * 2
    want = [call(f, reference) for f in frames]
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda f: call(f, prepared), frames))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def run_in_1536_mb(code: str) -> str:
    """Run ``code`` in a fresh interpreter whose address space is capped at 1536 MB
    (two kernel threads), and return what it printed; it must exit cleanly (an abort
    for want of memory is a failure)."""
    resource = pytest.importorskip("resource")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    import os

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "LOOPWAVE_NUM_THREADS": "2"},
    )
    assert out.returncode == 0, out.stderr[-1500:]
    return out.stdout


def _gradient() -> np.ndarray:
    """16x16: red down the rows, green across the columns, blue along the diagonal."""
    r, c = np.mgrid[:16, :16]
    return np.stack([r * 17, c * 17, (r + c) * 8], -1).astype(np.uint8)


def hard_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    sat = np.zeros((6, 8, 3), np.uint8)
    for i, c in enumerate(
        [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    ):
        sat[i] = c
    return {
        "flat": np.full((9, 7, 3), 128, np.uint8),
        "black": np.zeros((5, 5, 3), np.uint8),
        "white": np.full((5, 5, 3), 255, np.uint8),
        "saturated": sat,
        "one_pixel": np.array([[[12, 200, 99]]], np.uint8),
        "noise": rng.integers(0, 256, (33, 17, 3), dtype=np.uint8),
        "odd": rng.integers(0, 256, (7, 9, 3), dtype=np.uint8),
        "gradient": _gradient(),
    }


def cli_with_reader_gone(*args: str, lines: int = 0, timeout: float = 240) -> None:
    """Run ``python -m loopwave ARGS`` with a standard output whose reader takes ``lines``
    lines and goes (``| head``), and check that the command still succeeds."""
    p = subprocess.Popen(
        [sys.executable, "-m", "loopwave", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert p.stdout is not None and p.stderr is not None
    for _ in range(lines):
        p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=timeout) == 0, err[-2000:]


@pytest.fixture(params=sorted(hard_cases()))
def hard(request: pytest.FixtureRequest) -> np.ndarray:
    return hard_cases()[request.param]


@pytest.fixture
def sync_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """What is synced to disk and renamed, in order: ``("fsync", path of the file or
    folder)`` and ``("replace", destination)`` (the paths read through /proc)."""
    import os

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("names open files through /proc")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        events.append(("replace", os.fspath(b)))
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.fixture
def flow_presets_made(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The ``preset`` of each ``FlowInterpolator`` made while the test runs (None where
    none was given), in order: a subclass that records it stands in for the class."""
    import loopwave.interpolate as li

    made: list[str | None] = []

    class Seen(li.FlowInterpolator):
        def __init__(self, **kw: object) -> None:
            made.append(kw.get("preset"))  # type: ignore[arg-type]
            super().__init__(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(li, "FlowInterpolator", Seen)
    return made
