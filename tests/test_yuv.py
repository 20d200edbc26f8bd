"""rgb_to_yuv420p against a float64 reference (all matrices, both ranges) and OpenCV.

OpenCV's COLOR_RGB2YUV_I420 is BT.601 limited range, but it takes each 2x2
block's chroma from its top-left pixel, while loopwave (as documented) uses the
block mean. So OpenCV is the oracle for the Y plane everywhere, and for all
three planes on images whose 2x2 blocks are flat; the chroma siting difference
itself is checked against a top-left-sited reference.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import to_float
from reference import YUV_K
from reference import yuv420p as ref_yuv

import loopwave as lw


def planes(yuv: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = yuv.reshape(-1)
    n = h * w // 4
    return (
        flat[: h * w].reshape(h, w),
        flat[h * w : h * w + n].reshape(h // 2, w // 2),
        flat[h * w + n :].reshape(h // 2, w // 2),
    )


@pytest.mark.parametrize("matrix", sorted(YUV_K))
@pytest.mark.parametrize("full", [False, True])
def test_uint8_matches_float64_reference(photos, matrix, full):
    for img in (photos["astronaut"][:, :126], photos["rocket"][2:, :]):
        h, w = img.shape[:2]
        got = lw.rgb_to_yuv420p(img, matrix=matrix, full_range=full)
        assert got.shape == (h * 3 // 2, w) and got.dtype == np.uint8
        want = np.clip(ref_yuv(img, matrix, full), 0, 255)
        assert np.abs(got - want).max() <= 0.5 + 1e-6  # rounded to nearest


@pytest.mark.parametrize("matrix", sorted(YUV_K))
@pytest.mark.parametrize("full", [False, True])
def test_float32_matches_float64_reference(matrix, full):
    f = np.random.default_rng(0).random((2, 32, 48, 3), dtype=np.float32)
    got = lw.rgb_to_yuv420p(f, matrix=matrix, full_range=full)
    assert got.shape == (2, 48, 48) and got.dtype == np.uint8
    for i in range(2):
        want = np.clip(ref_yuv(f[i].astype(np.float64) * 255, matrix, full), 0, 255)
        assert np.abs(got[i] - want).max() <= 0.5 + 1e-4


def test_default_is_bt709_limited(photos):
    img = photos["chelsea"]
    np.testing.assert_array_equal(
        lw.rgb_to_yuv420p(img), lw.rgb_to_yuv420p(img, matrix="bt709", full_range=False)
    )


@pytest.mark.parametrize("matrix", sorted(YUV_K))
def test_limited_range_bounds_and_known_values(matrix):
    colours = np.array(
        [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]],
        np.uint8,
    )
    img = np.repeat(np.repeat(colours[None], 2, 0), 2, 1)  # 2x12: one 2x2 block per colour
    y, u, v = planes(lw.rgb_to_yuv420p(img, matrix=matrix), 2, 12)
    assert y.min() >= 16 and y.max() <= 235
    assert min(u.min(), v.min()) >= 16 and max(u.max(), v.max()) <= 240
    assert y[0, :2].tolist() == [16, 16] and y[0, 2:4].tolist() == [235, 235]
    assert u[0, :2].tolist() == [128, 128] and v[0, :2].tolist() == [128, 128]
    assert u[0, 4] == 240 and v[0, 2] == 240  # pure blue / red: chroma at its peak
    y, u, v = planes(lw.rgb_to_yuv420p(img, matrix=matrix, full_range=True), 2, 12)
    assert y[0, 0] == 0 and y[0, 2] == 255 and u[0, 4] == 255 and v[0, 2] == 255


def test_luma_matches_opencv_bt601_on_photos(photos):
    for img in photos.values():
        h, w = img.shape[:2]
        cv = cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)
        got = lw.rgb_to_yuv420p(img, matrix="bt601")
        assert np.abs(got[:h].astype(int) - cv[:h].astype(int)).max() <= 1
        assert abs(got[h:].astype(float).mean() - cv[h:].astype(float).mean()) < 1.0


def test_all_planes_match_opencv_on_block_flat_images(photos):
    rng = np.random.default_rng(1)
    blocks = [
        rng.integers(0, 256, (32, 48, 3), dtype=np.uint8),
        photos["coffee"][::2, ::2],
        photos["rocket"][::2, ::2],
    ]
    for b in blocks:
        img = np.repeat(np.repeat(b, 2, 0), 2, 1)  # every 2x2 block flat: siting is moot
        cv = cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420).astype(int)
        got = lw.rgb_to_yuv420p(img, matrix="bt601").astype(int)
        assert got.shape == cv.shape
        assert np.abs(got - cv).max() <= 1


def test_opencv_sites_chroma_top_left_and_loopwave_uses_the_block_mean(photos):
    img = photos["astronaut"]
    h, w = img.shape[:2]
    _, cu, cvv = planes(cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420), h, w)
    _, ru, rv = planes(
        ref_yuv(np.repeat(np.repeat(img[::2, ::2], 2, 0), 2, 1), "bt601", False), h, w
    )
    assert np.abs(cu - ru).max() <= 1 and np.abs(cvv - rv).max() <= 1  # OpenCV: top-left
    _, lu, lv = planes(lw.rgb_to_yuv420p(img, matrix="bt601"), h, w)
    _, mu, mv = planes(ref_yuv(img, "bt601", False), h, w)
    assert np.abs(lu - mu).max() <= 0.5 + 1e-6 and np.abs(lv - mv).max() <= 0.5 + 1e-6


def test_batch_and_float(photos):
    batch = np.stack([photos["coffee"], photos["rocket"]])
    out = lw.rgb_to_yuv420p(batch)
    assert out.shape == (2, 192, 128) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1], lw.rgb_to_yuv420p(batch[1]))
    f = lw.rgb_to_yuv420p(to_float(batch))
    assert np.abs(f.astype(int) - out.astype(int)).max() <= 1


def test_float_input_outside_unit_range_is_clipped():
    x = np.random.default_rng(2).uniform(-1, 2, (8, 10, 3)).astype(np.float32)
    np.testing.assert_array_equal(lw.rgb_to_yuv420p(x), lw.rgb_to_yuv420p(np.clip(x, 0, 1)))


def test_smallest_frame():
    out = lw.rgb_to_yuv420p(np.full((2, 2, 3), 255, np.uint8))
    assert out.shape == (3, 2)
    assert out.reshape(-1).tolist() == [235, 235, 235, 235, 128, 128]


@pytest.mark.parametrize("shape", [(7, 8, 3), (8, 9, 3), (7, 9, 3), (1, 1, 3), (2, 5, 3)])
def test_odd_sizes_are_refused(shape):
    with pytest.raises(ValueError, match="even"):
        lw.rgb_to_yuv420p(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="frames"):
        lw.rgb_to_yuv420p(np.zeros((2, *shape), np.float32))


def test_unknown_matrix():
    with pytest.raises(ValueError, match="matrix"):
        lw.rgb_to_yuv420p(np.zeros((2, 2, 3), np.uint8), matrix="rec9")
    img = np.random.default_rng(3).integers(0, 256, (4, 6, 3), np.uint8)
    for mangled in ("_b.t-7_0.9", "bt-709", "7.0.9"):  # were read as bt709
        with pytest.raises(ValueError, match="matrix"):
            lw.rgb_to_yuv420p(img, matrix=mangled)
    for alias, name in (("BT.709", "bt709"), ("709", "bt709"), ("smpte170m", "bt601")):
        np.testing.assert_array_equal(
            lw.rgb_to_yuv420p(img, matrix=alias), lw.rgb_to_yuv420p(img, matrix=name)
        )
    with pytest.raises(TypeError, match="matrix"):
        lw.rgb_to_yuv420p(np.zeros((2, 2, 3), np.uint8), matrix=709)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="matrix"):
        lw.rgb_to_yuv420p(np.zeros((2, 2, 3), np.uint8), matrix=None)  # type: ignore[arg-type]
