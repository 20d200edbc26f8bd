"""rgb_to_yuv420p against OpenCV (BT.601 limited) and a float64 reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import loopwave as lw

K = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def reference(rgb: np.ndarray, matrix: str, full: bool) -> np.ndarray:
    kr, kb = K[matrix]
    x = rgb.astype(np.float64)
    h, w, _ = x.shape

    def ycc(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = kr * p[..., 0] + (1 - kr - kb) * p[..., 1] + kb * p[..., 2]
        return y, (p[..., 2] - y) / (2 * (1 - kb)), (p[..., 0] - y) / (2 * (1 - kr))

    ys, cs, off = (255.0, 255.0, 0.0) if full else (219.0, 224.0, 16.0)
    y, _, _ = ycc(x)
    m = x.reshape(h // 2, 2, w // 2, 2, 3).mean((1, 3))
    _, u, v = ycc(m)
    planes = [off + ys * y / 255, 128 + cs * u / 255, 128 + cs * v / 255]
    return np.concatenate([p.reshape(-1) for p in planes]).reshape(h * 3 // 2, w)


@pytest.mark.parametrize("matrix", sorted(K))
@pytest.mark.parametrize("full", [False, True])
def test_matches_float64_reference(photos, matrix, full):
    img = photos["astronaut"][:, :126]
    got = lw.rgb_to_yuv420p(img, matrix=matrix, full_range=full)
    assert got.shape == (192, 126) and got.dtype == np.uint8
    assert np.abs(got - np.clip(reference(img, matrix, full), 0, 255)).max() <= 0.5 + 1e-6


def test_luma_matches_opencv_bt601(photos):
    img = photos["coffee"]
    cv = cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)
    got = lw.rgb_to_yuv420p(img, matrix="bt601")
    h = img.shape[0]
    assert np.abs(got[:h].astype(int) - cv[:h].astype(int)).max() <= 1
    # OpenCV subsamples chroma by its own rule; means agree closely
    assert abs(got[h:].astype(float).mean() - cv[h:].astype(float).mean()) < 1.0


def test_batch_and_float(photos):
    batch = np.stack([photos["coffee"], photos["rocket"]])
    out = lw.rgb_to_yuv420p(batch)
    assert out.shape == (2, 192, 128)
    np.testing.assert_array_equal(out[1], lw.rgb_to_yuv420p(batch[1]))
    f = lw.rgb_to_yuv420p(batch.astype(np.float32) / 255)
    assert np.abs(f.astype(int) - out.astype(int)).max() <= 1


@pytest.mark.parametrize("shape", [(7, 8, 3), (8, 9, 3)])
def test_odd_sizes_are_refused(shape):
    with pytest.raises(ValueError, match="even"):
        lw.rgb_to_yuv420p(np.zeros(shape, np.uint8))


def test_unknown_matrix():
    with pytest.raises(ValueError, match="matrix"):
        lw.rgb_to_yuv420p(np.zeros((2, 2, 3), np.uint8), matrix="rec9")
    with pytest.raises(TypeError, match="matrix"):
        lw.rgb_to_yuv420p(np.zeros((2, 2, 3), np.uint8), matrix=709)  # type: ignore[arg-type]
