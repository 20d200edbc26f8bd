"""warp_affine / motion_matrix against OpenCV."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

import loopwave as lw


def deforum_2d(img, zoom, angle, translate, cv_border):
    """Deforum's anim_frame_warp_2d, written out: the shift, then getRotationMatrix2D
    about (W // 2, H // 2), composed as 3x3 matrices and warped by warpPerspective.
    Returns the matrix and the moved image."""
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w // 2, h // 2), angle, zoom)
    trans = np.float32([[1, 0, translate[0]], [0, 1, translate[1]]])
    xform = np.matmul(np.vstack([rot, [0, 0, 1]]), np.vstack([trans, [0, 0, 1]]))
    return xform, cv2.warpPerspective(img, xform, (w, h), borderMode=cv_border)


@pytest.mark.parametrize(
    ("zoom", "angle", "translate"),
    [(1.0, 0.0, (0, 0)), (1.05, 0.0, (0, 0)), (1.0, 7.5, (3.5, -2.0)), (0.9, -20.0, (0, 4.25)),
     (1.04, 2.0, (10, 0)), (1.2, -35.0, (-6.5, 9.25))],
)  # fmt: skip
@pytest.mark.parametrize(
    ("border", "cv_border"), [("replicate", cv2.BORDER_REPLICATE), ("wrap", cv2.BORDER_WRAP)]
)
@pytest.mark.parametrize("size", [(128, 100), (127, 99)])  # odd: the centre is W // 2, H // 2
def test_matches_deforum(photos, zoom, angle, translate, border, cv_border, size):
    """motion_matrix is Deforum's 2D motion matrix (the shift first, then rotation and
    zoom about the integer centre), and warp_affine moves the frame as Deforum's
    warpPerspective does. Before, the shift came after the rotation and zoom (0.4 px
    a frame off at zoom 1.04, angle 2, translate (10, 0)) and the centre was W / 2."""
    img = np.ascontiguousarray(photos["astronaut"][: size[0], : size[1]])
    h, w = img.shape[:2]
    m = lw.motion_matrix(h, w, zoom=zoom, angle=angle, translate=translate)
    xform, want = deforum_2d(img, zoom, angle, translate, cv_border)
    np.testing.assert_allclose(m, xform[:2], rtol=0, atol=1e-12)
    # warpAffine with the top two rows is the same warp
    same = cv2.warpAffine(img, xform[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv_border)
    assert np.abs(same.astype(int) - want).max() <= 1
    got = lw.warp_affine(img, m, border=border)
    diff = np.abs(got.astype(int) - want.astype(int))
    # OpenCV quantises bilinear weights to 1/32 pixel; ours are exact
    assert diff.mean() < 0.5
    assert np.quantile(diff, 0.99) <= 3


def test_per_frame_matrices_and_float(photos):
    batch = np.stack([photos["coffee"], photos["rocket"]])
    ms = np.stack([lw.motion_matrix(128, 128, zoom=1.1), lw.motion_matrix(128, 128, angle=10)])
    out = lw.warp_affine(batch, ms)
    np.testing.assert_array_equal(out[1], lw.warp_affine(batch[1], ms[1]))
    f = lw.warp_affine(batch.astype(np.float32) / 255, ms)
    assert np.abs(f * 255 - out).max() <= 0.51


def test_float_frames_far_outside_0_1_stay_finite():
    """Float frames are not clipped by warp_affine: samples of opposite sign near the
    float32 maximum once made NaN (their difference overflowed), where the exact value
    is finite; a convex mix of finite samples is finite."""
    big = np.float32(3e38)
    a = np.zeros((2, 2, 3), np.float32)
    a[0, 0], a[0, 1] = big, -big
    out = lw.warp_affine(a, [[1, 0, 0.5], [0, 1, 0]])  # half a pixel along x
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[0, 0], [big] * 3)  # the edge, replicated
    np.testing.assert_array_equal(out[0, 1], [0.0] * 3)  # halfway between +big and -big
    top = np.full((3, 3, 3), np.finfo(np.float32).max, np.float32)
    moved = lw.warp_affine(top, [[1, 0, 0.3], [0, 1, 0.7]])
    assert np.isfinite(moved).all()
    np.testing.assert_allclose(moved, top, rtol=1e-6)  # (rounding of the mix)


def test_bad_input():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="matrix"):
        lw.warp_affine(img, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="invertible"):
        lw.warp_affine(img, np.zeros((2, 3)))
    # a tiny determinant is written in scientific notation, not 40 decimal places
    with pytest.raises(ValueError, match=r"determinant 1\.000e-20; its magnitude must be at least"):
        lw.warp_affine(img, np.array([[1e-10, 0, 0], [0, 1e-10, 0]]))
    with pytest.raises(ValueError, match="border"):
        lw.warp_affine(img, lw.motion_matrix(8, 8), border="mirror")
    with pytest.raises(ValueError, match="matrix"):
        lw.warp_affine(img, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="zoom"):
        lw.motion_matrix(8, 8, zoom=0)
    with pytest.raises(TypeError, match="frames"):
        lw.warp_affine(img.astype(np.float64), lw.motion_matrix(8, 8))
    with pytest.raises(TypeError, match="matrix"):
        lw.warp_affine(img, np.eye(2, 3) + 0j)  # the imaginary part would be dropped
    # not numbers: TypeErrors naming matrix (None said "got ()"; None inside "NaN")
    for bad in (None, "abc", [[1, 0, 0], [0, 1, None]], np.eye(2, 3).astype(bool)):
        with pytest.raises(TypeError, match="^matrix "):
            lw.warp_affine(img, bad)
    with pytest.raises(ValueError, match="^matrix "):  # OverflowError before
        lw.warp_affine(img, [[1, 0, 10**400], [0, 1, 0]])
    # a plain list of ints, as before
    np.testing.assert_array_equal(lw.warp_affine(img, [[1, 0, 0], [0, 1, 0]]), img)


@pytest.mark.parametrize(
    ("kwargs", "err", "arg"),
    [
        ({"height": "8"}, TypeError, "height"),
        ({"width": 8.0}, TypeError, "width"),
        ({"height": 0}, ValueError, "height"),
        ({"translate": None}, TypeError, "translate"),
        ({"translate": (1, 2, 3)}, TypeError, "translate"),
        ({"translate": (float("nan"), 0)}, ValueError, "translate[0]"),
        ({"translate": (0, "1")}, TypeError, "translate[1]"),
        ({"angle": float("inf")}, ValueError, "angle"),
        ({"zoom": True}, TypeError, "zoom"),
        # beyond float64 (OverflowError / numpy's isfinite TypeError before)
        ({"height": 10**400}, ValueError, "height"),
        ({"zoom": 10**400}, ValueError, "zoom"),
        # finite arguments whose matrix is not (it held -inf)
        ({"zoom": 1e308}, ValueError, "zoom"),
        # a matrix warp_affine cannot invert: found here, not at the warp (a render's
        # settings check builds every frame's matrix but warps none)
        ({"zoom": 1e-7}, ValueError, "zoom"),
        ({"zoom": 1e160}, ValueError, "zoom"),
    ],
)
def test_motion_matrix_arguments(kwargs, err, arg):
    args = {"height": 8, "width": 8, **kwargs}
    h, w = args.pop("height"), args.pop("width")
    with pytest.raises(err, match=rf"^{re.escape(arg)} "):
        lw.motion_matrix(h, w, **args)


def test_motion_matrix_refuses_exactly_what_warp_affine_cannot_invert():
    img = np.zeros((8, 8, 3), np.uint8)
    for zoom in (1.01e-6, 1e150):  # just inside: both take it
        lw.warp_affine(img, lw.motion_matrix(8, 8, zoom=zoom))
    for zoom, why in ((0.99e-6, "too small: the motion cannot be inverted"), (1e155, "too large")):
        m = lw.motion_matrix(8, 8, zoom=1.0)
        m[:, :2] *= zoom  # the same matrix, built by hand
        with pytest.raises(ValueError, match="not invertible"):
            lw.warp_affine(img, m)
        with pytest.raises(ValueError, match=why):
            lw.motion_matrix(8, 8, zoom=zoom)


def test_motion_matrix_takes_numpy_numbers():
    m = lw.motion_matrix(np.int64(8), 8, zoom=np.float32(1.5), angle=np.int32(30))
    np.testing.assert_allclose(m, lw.motion_matrix(8, 8, zoom=1.5, angle=30), atol=1e-6)
