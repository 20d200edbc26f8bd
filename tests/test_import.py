"""`import loopwave` needs numpy only."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, loopwave\n"
        "heavy = {'torch', 'cv2', 'skimage', 'PIL', 'av', 'onnxruntime',"
        " 'diffusers', 'ray', 'scipy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
