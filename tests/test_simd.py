"""Every SIMD level the CPU has gives the same bytes as the x86-64 baseline build.

The kernels pick AVX-512, AVX2 or the baseline at run time (``loopwave.simd_level``);
``LOOPWAVE_SIMD`` caps the level for a process, so each level runs in its own subprocess
over the same inputs (real photographs at an odd size, so every block tail is exercised,
plus noise and float32 copies), and the outputs are compared for exact equality.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import photo

import loopwave as lw

LEVELS = ("baseline", "avx2", "avx512")

# Runs in the subprocess: every public kernel on the saved inputs, results saved.
SCRIPT = r"""
import sys
import numpy as np
import loopwave as lw
from loopwave import _native

src = np.load(sys.argv[1])
u8, tgt, noise = src["u8"], src["tgt"], src["noise"]
f32 = u8.astype(np.float32) / 255
out = {"level": np.array(lw.simd_level())}
lab = lw.rgb_to_lab(u8)
out["lab_u8"] = lab
out["lab_f32"] = lw.rgb_to_lab(f32)
out["rgb_u8"] = lw.lab_to_rgb(lab)
out["rgb_f32"] = lw.lab_to_rgb(lab, dtype=np.float32)
out["hist"] = lw.match_histograms(u8, tgt)
out["hist_f32"] = lw.match_histograms(f32, tgt.astype(np.float32) / 255)
out["blend"] = lw.blend_luminosity(u8, noise)
out["blend_f32"] = lw.blend_luminosity(f32, noise.astype(np.float32) / 255)
out["gamma"] = lw.adjust_gamma(u8, [0.7, 1.6])
out["gamma_f32"] = lw.adjust_gamma(f32, 1.3)
m, g = lw.match_gamma(u8, tgt)
out["match_gamma"], out["match_gamma_g"] = m, g
for name, frames, target in (("cc", u8, tgt), ("cc_f32", f32, tgt.astype(np.float32) / 255)):
    c, g = lw.color_correct(frames, target, return_gammas=True)
    out[name], out[name + "_g"] = c, g
out["cc_per_frame"] = lw.color_correct(u8, np.stack([tgt, tgt[::-1]]))
out["cc_nogamma"] = lw.color_correct(noise, tgt, gamma=False)
out["lerp"] = lw.lerp_frames(u8[0], noise[0], 0.3)
out["mean"] = lw.mean_frames(u8)
even = u8[:, :76, :70]  # 4:2:0 needs even sizes; 70 leaves a tail after 16-pixel blocks
for mat in ("bt709", "bt601"):
    out["yuv_" + mat] = lw.rgb_to_yuv420p(even, matrix=mat)
out["yuv_f32"] = lw.rgb_to_yuv420p(even.astype(np.float32) / 255, full_range=True)
out["rgb_from_yuv"] = lw.yuv420p_to_rgb(out["yuv_bt709"])
rows, cols = noise.shape[1] // 3 * 3, noise.shape[2] // 2 * 2  # noise: mostly out of gamut
out["rgb_from_noise"] = lw.yuv420p_to_rgb(noise[:, :rows, :cols, 0].copy(), full_range=True)
out["warp"] = lw.warp_affine(u8, lw.motion_matrix(u8.shape[1], u8.shape[2], zoom=1.03, angle=2.0))
from loopwave.interpolate import interpolate
out["flow"] = np.stack(list(interpolate(list(u8), factor=3, backend="flow", scene_cut=False)))
np.savez(sys.argv[2], **out)
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(11)
    u8 = np.stack([photo("astronaut", 77), photo("chelsea", 77)])[:, :, :71]
    path = tmp_path_factory.mktemp("simd") / "inputs.npz"
    np.savez(
        path,
        u8=u8,
        tgt=photo("coffee", 50),
        noise=rng.integers(0, 256, u8.shape, dtype=np.uint8),
    )
    return path


def run_level(level: str, inputs: Path) -> dict[str, np.ndarray]:
    out = inputs.with_name(f"out-{level}.npz")
    env = {**os.environ, "LOOPWAVE_SIMD": level}
    subprocess.run([sys.executable, "-c", SCRIPT, str(inputs), str(out)], env=env, check=True)
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def baseline(inputs: Path) -> dict[str, np.ndarray]:
    """The baseline build's outputs, run once for every level compared with them."""
    return run_level("baseline", inputs)


def test_level_is_one_of_the_names() -> None:
    assert lw.simd_level() in LEVELS


@pytest.mark.parametrize("spelling", ["BASELINE", " Baseline\n", "baseline"])
def test_the_cap_is_read_in_any_case(spelling: str) -> None:
    # "AVX2" or "Baseline" were ignored: the kernels ran at the CPU's widest level
    code = "import loopwave as lw; print(lw.simd_level())"
    env = {**os.environ, "LOOPWAVE_SIMD": spelling}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.stdout.strip() == "baseline", r.stderr


@pytest.mark.parametrize("level", LEVELS[1:])
def test_level_matches_baseline_bit_for_bit(
    level: str, inputs: Path, baseline: dict[str, np.ndarray]
) -> None:
    got = run_level(level, inputs)
    if str(got["level"]) != level:
        pytest.skip(f"this CPU does not support {level} (ran {got['level']})")
    base = baseline
    assert str(base["level"]) == "baseline"
    assert got.keys() == base.keys()
    different = [
        k for k in base if k != "level" and not np.array_equal(got[k], base[k], equal_nan=True)
    ]
    assert not different, f"{level} differs from the baseline in {different}"
