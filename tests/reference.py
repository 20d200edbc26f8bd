"""Plain float64 numpy references of the formulas (independent of the Rust code)."""

from __future__ import annotations

import numpy as np

M = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
WHITE = M.sum(1)
EPS, KAPPA = 216 / 24389, 24389 / 27


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def rgb_to_lab(rgb01: np.ndarray) -> np.ndarray:
    xyz = srgb_to_linear(rgb01) @ M.T / WHITE
    f = np.where(xyz > EPS, np.cbrt(xyz), (KAPPA * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def mean_lightness(rgb8: np.ndarray) -> float:
    return float(rgb_to_lab(rgb8 / 255.0)[..., 0].mean())
