"""`import loopwave` needs numpy only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "cv2", "skimage", "PIL", "av", "onnxruntime", "onnx", "scipy", "diffusers", "ray")


def _loaded_after(statement: str) -> list[str]:
    code = (
        "import sys\n"
        f"{statement}\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.strip())


def test_import_is_light():
    assert _loaded_after("import loopwave") == []


def test_using_the_colour_kernels_stays_light():
    statement = (
        "import numpy as np, loopwave as lw\n"
        "x = np.zeros((4, 4, 3), np.uint8)\n"
        "lw.color_correct(x, x); lw.rgb_to_yuv420p(x); lw.lab_to_rgb(lw.rgb_to_lab(x))"
    )
    assert _loaded_after(statement) == []


def test_the_check_itself_sees_heavy_modules():
    # guards against a vacuous pass: the probe does report a heavy import
    assert "PIL" in _loaded_after("import PIL")


def test_color_all_lists_every_public_function():
    """set_buffer_cache and buffer_cache_info were exported by loopwave but missing from
    loopwave.color.__all__ (so from `from loopwave.color import *`)."""
    import inspect

    import loopwave as lw
    import loopwave.color as color

    public = {
        n
        for n, f in vars(color).items()
        if (inspect.isfunction(f) or inspect.isclass(f))
        and not n.startswith("_")
        and f.__module__ == color.__name__
    }
    assert public == set(color.__all__)
    assert set(color.__all__) <= set(lw.__all__)


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("LOOPWAVE_SIMD", "avx-2", "LOOPWAVE_SIMD='avx-2' is not 'avx512', 'avx2' or 'baseline'"),
        ("LOOPWAVE_SIMD", "sse2", "LOOPWAVE_SIMD='sse2' is not"),
        ("LOOPWAVE_NUM_THREADS", "four", "LOOPWAVE_NUM_THREADS='four' is not a whole number"),
        ("LOOPWAVE_NUM_THREADS", "-2", "LOOPWAVE_NUM_THREADS='-2' is not a whole number"),
        ("LOOPWAVE_BUFFER_CACHE_MB", "64MB", "LOOPWAVE_BUFFER_CACHE_MB='64MB' is not a whole"),
        ("LOOPWAVE_NUM_THREADS", "1\x1f", "LOOPWAVE_NUM_THREADS='1\\x1f' is not a whole"),
        ("LOOPWAVE_SIMD", "baseline\x1e", "LOOPWAVE_SIMD='baseline\\x1e' is not"),
        (
            "LOOPWAVE_NUM_THREADS",
            "9" * 20,
            f"LOOPWAVE_NUM_THREADS='{'9' * 20}' is not a whole number below 2**64",
        ),
        ("LOOPWAVE_SIMD", " AVX2\n", None),
        ("LOOPWAVE_SIMD", "\u3000avx2\xa0", None),
        ("LOOPWAVE_SIMD", "", None),
        ("LOOPWAVE_NUM_THREADS", "0", None),
        ("LOOPWAVE_NUM_THREADS", "+3", None),
        ("LOOPWAVE_BUFFER_CACHE_MB", "0", None),
    ],
)
def test_an_environment_setting_the_kernels_cannot_read_is_named(name, value, said):
    """From the docs review: the native module ignores a value it cannot read, so a typo
    (LOOPWAVE_SIMD=avx-2) ran and timed the widest level without a word. Values it
    reads give no warning (checked under -W error)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWAVE_")}
    env[name] = value
    run = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", "import loopwave"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if said is None:
        assert run.returncode == 0, run.stderr
    else:
        assert run.returncode != 0 and "RuntimeWarning: " + said in run.stderr, run.stderr


@pytest.mark.parametrize(
    "line",
    [
        "import loopwave",
        "from loopwave import render",
        "import loopwave.color",
        # (a review: this pointed into importlib/__init__.py)
        'import importlib; importlib.import_module("loopwave")',
    ],
)
def test_an_environment_warning_points_at_the_users_import(tmp_path, line):
    """The warning for an unreadable LOOPWAVE_* value pointed at loopwave's own
    ``from .color import`` in ``loopwave/__init__.py``; it points at the line outside
    loopwave that imported it, as a warning about the caller's input should."""
    script = tmp_path / "users_script.py"
    script.write_text(f"x = 1\n{line}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWAVE_")}
    env["LOOPWAVE_SIMD"] = "avx-2"
    run = subprocess.run(
        [sys.executable, "-W", "always::RuntimeWarning", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith(f"{script}:2: RuntimeWarning: LOOPWAVE_SIMD="), run.stderr
    assert run.stderr.count("RuntimeWarning") == 1, run.stderr
