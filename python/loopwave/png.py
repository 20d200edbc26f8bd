"""A small lossless PNG writer (8-bit RGB), numpy and the standard library only.

loopwave writes frames and contact sheets without Pillow, so the core install
stays light. Rows use PNG filter 1 (Sub), which compresses photographs well and
costs one numpy subtraction.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image: np.ndarray, *, level: int = 6) -> bytes:
    """Encode an ``(H, W, 3)`` ``uint8`` RGB array as PNG bytes."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy.ndarray; got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(
            f"image must be a non-empty (H, W, 3) uint8 array; got {image.dtype} {image.shape}"
        )
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)):
        raise TypeError(f"level must be an int in -1..9 (zlib); got {level!r}")
    if not -1 <= level <= 9:
        raise ValueError(f"level must be an int in -1..9 (zlib); got {level!r}")
    level = int(level)
    h, w, _ = image.shape
    rows = np.ascontiguousarray(image).reshape(h, w * 3)
    sub = rows.copy()
    sub[:, 3:] = rows[:, 3:] - rows[:, :-3]  # uint8 wrap-around is what the filter wants
    raw = np.empty((h, w * 3 + 1), np.uint8)
    raw[:, 0] = 1  # filter type Sub
    raw[:, 1:] = sub
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike[str], image: np.ndarray, *, level: int = 6) -> Path:
    """Write ``image`` to ``path`` atomically (a temporary file, then rename)."""
    path = Path(path)
    data = encode_png(image, level=level)
    if path.is_dir():
        raise OSError(f"path: cannot write to {path}: it is a folder")
    if not path.parent.is_dir():  # the error would name the temporary file
        raise OSError(f"path: cannot write {path}: the folder {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:  # a full disk, a Ctrl-C: no NAME.tmp left beside the frames
        tmp.unlink(missing_ok=True)
        raise
    return path
