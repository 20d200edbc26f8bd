"""`import loopwave` needs numpy only."""

from __future__ import annotations

import ast
import subprocess
import sys

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
        if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == color.__name__
    }
    assert public == set(color.__all__)
    assert set(color.__all__) <= set(lw.__all__)
