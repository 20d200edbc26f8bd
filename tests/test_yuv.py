"""rgb_to_yuv420p against a float64 reference (all matrices, both ranges) and OpenCV;
yuv420p_to_rgb, its inverse, against a float64 decode, OpenCV and FFmpeg.

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
from reference import YUV_K, rgb_from_yuv420p
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


# -- yuv420p_to_rgb ---------------------------------------------------------------


@pytest.mark.parametrize("matrix", sorted(YUV_K))
@pytest.mark.parametrize("full", [False, True])
def test_decode_matches_float64_reference(photos, matrix, full):
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (6 * 3 // 2, 10), dtype=np.uint8)  # mostly out of gamut
    for img in (photos["astronaut"][:, :126], photos["rocket"][2:, :]):
        yuv = lw.rgb_to_yuv420p(img, matrix=matrix, full_range=full)
        for planes_ in (yuv, noise):
            got = lw.yuv420p_to_rgb(planes_, matrix=matrix, full_range=full)
            assert got.dtype == np.uint8 and got.shape == (*yuv_size(planes_), 3)
            want = np.clip(rgb_from_yuv420p(planes_, matrix, full), 0, 255)
            assert np.abs(got - want).max() <= 0.5 + 1e-3  # rounded to nearest


def yuv_size(planes_: np.ndarray) -> tuple[int, int]:
    return planes_.shape[0] * 2 // 3, planes_.shape[1]


def test_decode_round_trips_photos_without_bias(photos):
    """The reason for the kernel: FFmpeg's default conversion (what PyAV's
    ``to_ndarray(format="rgb24")`` does) decodes 4:2:0 a level dark on average."""
    av = pytest.importorskip("av")
    for name in ("astronaut", "coffee", "chelsea"):
        img = photos[name][: photos[name].shape[0] // 2 * 2, : photos[name].shape[1] // 2 * 2]
        yuv = lw.rgb_to_yuv420p(img)
        ours = lw.yuv420p_to_rgb(yuv).astype(np.float64) - img
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.colorspace, frame.color_range = 1, 1  # BT.709, limited
        ffmpeg = frame.to_ndarray(format="rgb24").astype(np.float64) - img
        assert abs(ours.mean()) < 0.05, name
        assert ffmpeg.mean() < -0.5, name  # what the reader decoded before
        assert np.abs(ours).mean() < np.abs(ffmpeg).mean(), name


def test_decode_matches_opencv_where_chroma_is_flat(photos):
    """OpenCV's COLOR_YUV2RGB_I420 (BT.601 limited, chroma repeated, fixed point) where
    each 2x2 block's chroma equals its neighbours', so siting and filter do not matter."""
    img = photos["astronaut"][::8, ::8].repeat(8, 0).repeat(8, 1)  # flat 8x8 blocks
    yuv = lw.rgb_to_yuv420p(img, matrix="bt601")
    got = lw.yuv420p_to_rgb(yuv, matrix="bt601")
    want = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
    # the middle 4x4 of each block: away from its edges, where interpolation mixes blocks
    inner = np.tile(np.pad(np.ones((4, 4), bool), 2), (img.shape[0] // 8, img.shape[1] // 8))
    assert np.abs(got[inner].astype(int) - want[inner]).max() <= 1


def test_decode_matches_ffmpeg_accurate_rounding(photos):
    """FFmpeg's swscale with ACCURATE_RND | FULL_CHR_H_INT (interpolating chroma its own
    way): the same colours to within chroma filtering."""
    av = pytest.importorskip("av")
    img = photos["coffee"][:200, :300]
    for matrix, space in (("bt601", 5), ("bt709", 1), ("bt2020", 9)):
        for full in (False, True):
            yuv = lw.rgb_to_yuv420p(img, matrix=matrix, full_range=full)
            got = lw.yuv420p_to_rgb(yuv, matrix=matrix, full_range=full).astype(np.float64)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.colorspace = space  # (PyAV 17 goes by the frame's tag for BT.2020)
            want = frame.reformat(
                format="rgb24",
                src_colorspace=space,
                src_color_range="JPEG" if full else "MPEG",
                dst_color_range="JPEG",
                interpolation=0x2 | 0x40000 | 0x2000,
            ).to_ndarray()
            d = got - want
            assert abs(d.mean()) < 0.05 and np.abs(d).mean() < 1.0, (matrix, full)


def test_decode_batches_views_and_layouts(photos):
    img = photos["rocket"][:64, :96]
    batch = np.stack([img, img[::-1]])
    yuv = lw.rgb_to_yuv420p(batch)
    got = lw.yuv420p_to_rgb(yuv)
    assert got.shape == (2, 64, 96, 3)
    np.testing.assert_array_equal(got[1], lw.yuv420p_to_rgb(yuv[1]))
    ro = yuv.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(lw.yuv420p_to_rgb(ro), got)
    np.testing.assert_array_equal(lw.yuv420p_to_rgb(np.asfortranarray(yuv[0])), got[0])
    strided = np.zeros((96, 192), np.uint8)
    strided[:, ::2] = yuv[0]
    np.testing.assert_array_equal(lw.yuv420p_to_rgb(strided[:, ::2]), got[0])
    tiny = lw.rgb_to_yuv420p(np.full((2, 2, 3), 77, np.uint8))
    assert lw.yuv420p_to_rgb(tiny).tolist() == [[[77] * 3] * 2] * 2


@pytest.mark.parametrize(
    ("planes_", "kwargs", "exc", "match"),
    [
        (None, {}, TypeError, "planes must be a uint8 numpy.ndarray"),
        ([[16, 16], [16, 16], [128, 128]], {}, TypeError, "planes must be a uint8"),
        (np.zeros((3, 2), np.float32), {}, TypeError, "planes must have dtype uint8"),
        (np.zeros((3, 2, 1, 1), np.uint8), {}, ValueError, "4 dimensions"),
        (np.zeros((4, 2), np.uint8), {}, ValueError, r"H and W even.*shape \(4, 2\)"),
        (np.zeros((3, 3), np.uint8), {}, ValueError, r"shape \(3, 3\)"),
        (np.zeros((0, 3, 2), np.uint8), {}, ValueError, r"not zero.*shape \(0, 3, 2\)"),
        (np.zeros((3, 2), np.uint8), {"matrix": 709}, TypeError, "matrix must be a string"),
        (np.zeros((3, 2), np.uint8), {"matrix": "rec9"}, ValueError, "matrix.*bt709"),
        (np.zeros((3, 2), np.uint8), {"full_range": 1}, TypeError, "full_range must be True"),
    ],
)
def test_decode_bad_input(planes_, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lw.yuv420p_to_rgb(planes_, **kwargs)
    masked = np.ma.masked_array(np.zeros((3, 2), np.uint8))
    with pytest.raises(TypeError, match="planes must be"):
        lw.yuv420p_to_rgb(masked)
