"""Plain float64 numpy references of the formulas (independent of the Rust code).

Every function here is written from the published definitions (IEC 61966-2-1,
CIE 15, the W3C compositing spec's SetLum/ClipColor as ``blendmodes`` codes it,
ITU-R BT.601/709/2020), not from loopwave's sources.
"""

from __future__ import annotations

import numpy as np

# sRGB (IEC 61966-2-1) primaries to XYZ, D65; the white is the row sums
M = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
M_INV = np.linalg.inv(M)
WHITE = M.sum(1)
EPS, KAPPA = 216 / 24389, 24389 / 27
REC601 = np.array([0.299, 0.587, 0.114])


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.maximum(v, 0) ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb01: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (any float) to CIELAB, float64."""
    return lab_from_linear(srgb_to_linear(rgb01))


def lab_from_linear(linear: np.ndarray) -> np.ndarray:
    """Linear RGB to CIELAB, float64."""
    xyz = np.asarray(linear, np.float64) @ M.T / WHITE
    f = np.where(xyz > EPS, np.cbrt(xyz), (KAPPA * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB to sRGB in [0, 1], float64; out-of-gamut colours clipped per channel in linear RGB."""
    lab = np.asarray(lab, np.float64)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16) / 116
    fx = fy + a / 500
    fz = fy - b / 200

    def finv(f: np.ndarray) -> np.ndarray:
        return np.where(f**3 > EPS, f**3, (116 * f - 16) / KAPPA)

    yr = np.where(L > KAPPA * EPS, fy**3, L / KAPPA)
    xyz = np.stack([finv(fx), yr, finv(fz)], -1) * WHITE
    return linear_to_srgb(np.clip(xyz @ M_INV.T, 0, 1))


def mean_lightness(rgb8: np.ndarray) -> float:
    return float(rgb_to_lab(np.asarray(rgb8, np.float64) / 255.0)[..., 0].mean())


def lum(c: np.ndarray) -> np.ndarray:
    return np.asarray(c, np.float64) @ REC601


def set_lum(color: np.ndarray, new_lum: np.ndarray) -> np.ndarray:
    """SetLum with ClipColor (W3C compositing; blendmodes' ``_setLum``), float64 in [0, 1]."""
    c = np.asarray(color, np.float64) + (new_lum - lum(color))[..., None]
    L = lum(c)[..., None]
    n = c.min(-1, keepdims=True)
    x = c.max(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(n < 0, L + (c - L) * L / (L - n), c)
        hi = np.where(x > 1, L + (lo - L) * (1 - L) / (x - L), lo)
    return hi


def blend_luminosity(color01: np.ndarray, luma01: np.ndarray) -> np.ndarray:
    """LUMINOSITY: hue and saturation of ``color``, Rec.601 luminance of ``luma``."""
    return set_lum(color01, lum(luma01))


YUV_K = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def yuv420p(rgb255: np.ndarray, matrix: str, full: bool) -> np.ndarray:
    """Planar I420 of one (H, W, 3) frame with values in [0, 255], float64 and unrounded.

    Y'CbCr from gamma-encoded RGB; chroma from the mean of each 2x2 block.
    """
    kr, kb = YUV_K[matrix]
    x = np.asarray(rgb255, np.float64)
    h, w, _ = x.shape

    def ycc(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = kr * p[..., 0] + (1 - kr - kb) * p[..., 1] + kb * p[..., 2]
        return y, (p[..., 2] - y) / (2 * (1 - kb)), (p[..., 0] - y) / (2 * (1 - kr))

    ys, cs, off = (255.0, 255.0, 0.0) if full else (219.0, 224.0, 16.0)
    y, _, _ = ycc(x)
    _, u, v = ycc(x.reshape(h // 2, 2, w // 2, 2, 3).mean((1, 3)))
    planes = [off + ys * y / 255, 128 + cs * u / 255, 128 + cs * v / 255]
    return np.concatenate([p.reshape(-1) for p in planes]).reshape(h * 3 // 2, w)


def rgb_from_yuv420p(planes: np.ndarray, matrix: str, full: bool) -> np.ndarray:
    """RGB in [0, 255] of one frame's I420 planes ``(H * 3 // 2, W)``, float64, unrounded
    and unclipped: chroma centre-sited (each sample at the middle of its 2x2 block, as
    :func:`yuv420p` makes it) and interpolated bilinearly, the edge samples repeated."""
    kr, kb = YUV_K[matrix]
    rows, w = planes.shape
    h = rows * 2 // 3
    flat = np.asarray(planes, np.float64).reshape(-1)
    n = h * w // 4
    y = flat[: h * w].reshape(h, w)

    def up(c: np.ndarray) -> np.ndarray:
        # luma pixel k sits at chroma position (k - 0.5) / 2 on each axis
        for axis, size in ((0, h), (1, w)):
            pos = np.clip((np.arange(size) - 0.5) / 2, 0, c.shape[axis] - 1)
            lo = np.floor(pos).astype(int)
            hi = np.minimum(lo + 1, c.shape[axis] - 1)
            f = pos - lo
            shape = (-1, 1) if axis == 0 else (1, -1)
            a, b = np.take(c, lo, axis), np.take(c, hi, axis)
            c = a * (1 - f.reshape(shape)) + b * f.reshape(shape)
        return c

    u = up(flat[h * w : h * w + n].reshape(h // 2, w // 2))
    v = up(flat[h * w + n :].reshape(h // 2, w // 2))
    ys, cs, off = (255.0, 255.0, 0.0) if full else (219.0, 224.0, 16.0)
    yy, pb, pr = (y - off) * 255 / ys, (u - 128) * 255 / cs, (v - 128) * 255 / cs
    r = yy + 2 * (1 - kr) * pr
    b = yy + 2 * (1 - kb) * pb
    g = (yy - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([r, g, b], -1)


def exact_color_step(frame8: np.ndarray, target8: np.ndarray) -> np.ndarray:
    """The seed's colour step (no gamma) computed exactly, in float64 with nothing rounded.

    CIELAB of both, scikit-image's (sort-based, exact) histogram match, back to
    sRGB clipped in linear RGB, LUMINOSITY blend keeping the frame's luminance.
    Returns values in [0, 255], float64, unrounded.
    """
    from skimage.exposure import match_histograms

    f = np.asarray(frame8, np.float64) / 255
    t = np.asarray(target8, np.float64) / 255
    matched = match_histograms(rgb_to_lab(f), rgb_to_lab(t), channel_axis=-1)
    return blend_luminosity(lab_to_rgb(matched), f) * 255
