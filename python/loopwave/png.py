"""A small lossless PNG writer and reader (8-bit RGB), numpy and the standard library only.

loopwave writes frames and contact sheets without Pillow, so the core install
stays light. Rows use PNG filter 1 (Sub), which compresses photographs well and
costs one numpy subtraction. :func:`read_png` reads such files back (a resume, a
colour plan's keyframes) where neither Pillow nor PyAV is installed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["make_folder", "read_png", "sync_file", "sync_folder", "whole_png", "write_png"]

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


def _fsync(fd: int, name: Any) -> None:
    """``fsync(fd)``; on macOS ``F_FULLFSYNC``, as its ``fsync`` leaves the bytes in the
    drive's cache. EINVAL and ENOTSUP (a filesystem that cannot sync: some network and
    FUSE ones) pass; any other error is raised naming the file."""
    try:
        if sys.platform == "darwin":
            import fcntl  # (POSIX only)

            full = getattr(fcntl, "F_FULLFSYNC", None)
            try:
                if full is not None:
                    fcntl.fcntl(fd, full)
                    return
            except OSError:  # a filesystem without it: fsync, as Python's own docs advise
                pass
        os.fsync(fd)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOTSUP):
            return
        raise OSError(e.errno, f"{e.strerror} (syncing it to disk)", str(name)) from None


def sync_file(f: Any) -> None:
    """Flush the open file ``f`` and have the OS put its bytes on disk (``fsync``), so a
    rename after it can never outlive its data in a power cut: an ext4 or XFS disk
    commits the rename, and writes the data when it gets to it, and a recorded frame
    came back empty. Filesystems that cannot sync are written to as before."""
    f.flush()
    _fsync(f.fileno(), getattr(f, "name", "a file"))


def sync_folder(folder: Path) -> None:
    """:func:`sync_file` for a folder's entries (a rename into it); nothing on Windows,
    where a folder cannot be opened so."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        _fsync(fd, folder)
    except OSError as e:
        if e.errno != errno.EBADF:  # (a folder some systems will not sync)
            raise
    finally:
        os.close(fd)


def make_folder(folder: Path) -> list[Path]:
    """``folder.mkdir(parents=True, exist_ok=True)``, with each folder it makes synced into
    its parent (:func:`sync_folder`), top down: a file synced into a new folder is only
    found after a power cut if the folder's own entry is on disk too (ext4's and XFS's
    journals happen to order it so; POSIX does not promise it). Returns the folders it
    made, deepest first (for :func:`remove_folders`)."""
    made: list[Path] = []
    p = folder
    while not p.exists() and p.parent != p:  # (a file in the way: mkdir says so below)
        made.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    for p in reversed(made):
        sync_folder(p.parent)
    return made


def remove_folders(made: list[Path]) -> None:
    """Remove the folders :func:`make_folder` made, deepest first, as far as they are
    empty (a run stopped part way leaves no folders behind; one holding other files
    stays, and so do those above it)."""
    for d in made:
        try:
            d.rmdir()
        except OSError:
            break


def clear_tmp(tmp: Path) -> None:
    """Remove what is at ``tmp``, a writer's own temporary name beside the file it makes,
    before the writer makes it: a link (or the write would go through it, over the file
    it leads to: a review found a user's file outside the run folder overwritten with a
    run's state, and an exported model), a FIFO (a write waited on it for ever), a killed
    write's file. A folder there stays: ``IsADirectoryError`` naming it."""
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        raise IsADirectoryError(errno.EISDIR, "a folder is at a writer's temporary name", str(tmp))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def open_tmp(tmp: Path, mode: str = "wb", *, made: list[Path] | None = None, **kwargs: Any) -> Any:
    """Open ``tmp``, a writer's own temporary name beside the file it makes (written,
    then renamed over it), as a new file: a link there is removed, not followed (from a
    review: a user's file a link at ``state.json.tmp`` led to, outside the run folder,
    was overwritten with the run's state, and a link at ``drift.csv.tmp`` was left as
    the run's drift table), and so is a FIFO (a write waited on it for ever) or a killed
    write's file. A folder there stays, and the open fails. ``mode``/``kwargs`` as for
    :func:`open` (a writing mode). ``made``: ``tmp`` is appended to it as the file is
    made, before the open returns (what a clean-up may delete, a Ctrl-C included)."""
    clear_tmp(tmp)  # (a folder: IsADirectoryError, where O_EXCL's said "File exists")
    own = made if made is not None else []

    def afresh(path: str, flags: int) -> int:  # (one made meanwhile: FileExistsError)
        own.append(tmp)  # (first: a Ctrl-C as the open returns leaves the file made)
        try:
            return os.open(path, flags | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError:  # made nothing (one there is another writer's, or a folder)
            own.remove(tmp)
            raise

    # (opened by its name, which errors and sync_file's message give)
    return open(tmp, mode, opener=afresh, **kwargs)  # noqa: SIM115 (the caller closes it)


@contextlib.contextmanager
def replacing(
    path: Path, tmp: Path, mode: str = "wb", *, durable: bool = True, **kwargs: Any
) -> Iterator[Any]:
    """Write ``path`` whole or not at all: the block writes to the open file ``tmp``
    (:func:`open_tmp`), which is renamed over ``path`` when the block ends (with
    ``durable``, synced first: :func:`sync_file`); an ``OSError`` naming no file names
    ``path`` (:func:`naming`). On any error, a Ctrl-C included, ``tmp`` is deleted, and
    only where this opened it: a folder there, or a file another writer made there
    between the clearing and the open (``FileExistsError``), is not this writer's to
    delete (from a review: the clean-up deleted that other file, and a folder's
    ``IsADirectoryError`` from the clean-up hid the open's own)."""
    made: list[Path] = []
    try:
        with naming(path), open_tmp(tmp, mode, made=made, **kwargs) as f:
            yield f
            if durable:
                sync_file(f)
        os.replace(tmp, path)
    except BaseException:  # a full disk, a failed sync, a Ctrl-C: no NAME.tmp left
        if made:  # (a Ctrl-C as the file was made too: a review)
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an ``OSError`` that names no file (a full disk's ENOSPC from a buffered
    write, a failed flush) as one naming ``path``, the file being written."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise type(e)(e.errno, e.strerror, os.fspath(path)) from e


def write_png(
    path: str | os.PathLike[str], image: np.ndarray, *, level: int = 6, durable: bool = False
) -> Path:
    """Write ``image`` to ``path`` atomically (a temporary file, then rename). With
    ``durable``, the file is on disk before the rename, and the rename before this
    returns (:func:`sync_file`): what a run records as made must survive a power cut."""
    path = Path(path)
    data = encode_png(image, level=level)
    if path.is_dir():
        raise OSError(f"path: cannot write to {path}: it is a folder")
    if not path.parent.is_dir():  # the error would name the temporary file
        raise OSError(f"path: cannot write {path}: the folder {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")  # (the renderer knows its own by this name)
    if len(os.fsencode(tmp.name)) > 255:  # a legal 252-255-byte name failed, naming tmp
        tmp = path.with_name(f".{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]}.tmp")
    with replacing(path, tmp, durable=durable) as f:  # (no NAME.tmp left beside the frames)
        f.write(data)
    if durable:
        sync_folder(path.parent)
    return path


_IEND = _chunk(b"IEND", b"")


def whole_png(path: str | os.PathLike[str], *, crc: bool = False) -> str | None:
    """Why the file at ``path`` is not a whole PNG file, or None where it looks whole: it
    opens with the signature and an IHDR chunk and ends with the IEND chunk (two small
    reads), and with ``crc`` every chunk in between passes its CRC check (the whole file
    read; zlib's CRC runs at GB/s). For what a power cut leaves of a file the disk had
    not written yet: nothing, a file cut short, one of the right length holding zeros,
    or (found only with ``crc``) blocks of zeros inside it."""
    try:
        with open(path, "rb") as f:
            if crc:
                data = f.read()
                head, size, tail = data[:16], len(data), data[-len(_IEND) :]
            else:
                head = f.read(16)
                size = f.seek(0, os.SEEK_END)
                f.seek(max(size - len(_IEND), 0))
                tail = f.read()
    except FileNotFoundError:
        return "it is missing"
    except OSError as e:
        return f"it cannot be read ({e.strerror or e})"
    if size < 16 + len(_IEND):
        return f"it holds {size} bytes" if size else "it is empty"
    if head[:8] != _SIGNATURE or head[12:16] != b"IHDR":
        return "it does not open as a PNG file"
    if tail != _IEND:
        return "it is cut short (it does not end with IEND)"
    if crc:
        pos, view = 8, memoryview(data)
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            end = pos + 12 + length
            if end > len(data):
                return f"a chunk at byte {pos} runs past the end of the file"
            stored = struct.unpack(">I", data[end - 4 : end])[0]
            if zlib.crc32(view[pos + 4 : end - 4]) != stored:
                return f"its chunk at byte {pos} fails its CRC check"
            pos = end
    return None


#: Pillow's limit (twice its MAX_IMAGE_PIXELS), against a small file that claims a huge image
MAX_PIXELS = 178_956_970


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit RGB, non-interlaced PNG as an ``(H, W, 3)`` ``uint8`` array: what
    :func:`write_png` writes, and Pillow's RGB PNGs. Other kinds (grey, palette, alpha,
    16-bit, interlaced) are refused with a ValueError naming the file, as is a damaged
    one (a failed CRC, cut short); a missing file is the OSError ``open`` raises.

    Rows filtered None, Sub or Up are undone with numpy (a 512x512 frame of
    :func:`write_png`'s in about 7 ms); Average and Paeth rows, which Pillow picks for
    most rows of a photograph, in a Python loop per byte, about 0.3 ms per 512-pixel row
    (0.17 s for a 512x512 photograph Pillow wrote)."""
    name = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode_png(data)
    except ValueError as e:
        raise ValueError(f"{name!s}: {e}") from None


def decode_png(data: bytes) -> np.ndarray:
    """:func:`read_png` of the file's bytes."""
    if data[:8] != _SIGNATURE:
        raise ValueError("not a PNG file (no PNG signature)")
    pos, header, idat = 8, None, []
    while True:
        if pos + 12 > len(data):
            raise ValueError("the file is cut short (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"the file is cut short (in its {kind!r} chunk)")
        body = data[pos + 8 : end - 4]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", data[end - 4 : end])[0]:
            raise ValueError(f"its {kind!r} chunk fails its CRC check: the file is damaged")
        pos = end
        if (header is None) != (kind == b"IHDR"):
            raise ValueError("IHDR must be the first chunk, and only once")
        if kind == b"IHDR":
            if length != 13:
                raise ValueError(f"IHDR must hold 13 bytes; got {length}")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif not kind[0] & 0x20 and kind != b"PLTE":  # a critical chunk of another kind
            raise ValueError(f"unknown critical chunk {kind!r}")
    assert header is not None
    w, h, depth, ctype, compression, filtering, interlace = header
    if not (1 <= w < 2**31 and 1 <= h < 2**31) or compression or filtering or interlace > 1:
        raise ValueError(f"invalid IHDR (size {w}x{h}, methods {compression}/{filtering})")
    kinds = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGB + alpha"}
    if depth != 8 or ctype != 2 or interlace:
        raise ValueError(
            f"the PNG is {depth}-bit {kinds.get(ctype, f'colour type {ctype}')}"
            f"{', interlaced' if interlace else ''}: loopwave's own reader takes 8-bit "
            "RGB, non-interlaced only (install Pillow or PyAV to read others)"
        )
    if w * h > MAX_PIXELS:
        raise ValueError(f"{w}x{h} is over {MAX_PIXELS} pixels (Pillow's limit too)")
    stride = 3 * w
    size = h * (stride + 1)
    try:
        z = zlib.decompressobj()
        raw = z.decompress(b"".join(idat), size)
    except zlib.error as e:
        raise ValueError(f"its image data is damaged ({e})") from None
    if len(raw) < size:
        raise ValueError(f"its image data is cut short ({len(raw)} of {size} bytes)")
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    filters = rows[:, 0]
    if (filters > 4).any():
        y = int(np.flatnonzero(filters > 4)[0])
        raise ValueError(f"row {y} has filter type {filters[y]} (0..4 are defined)")
    out = np.empty((h, stride), np.uint8)
    prior = np.zeros(stride, np.uint8)  # the row above the first is zeros
    for y in range(h):
        line, f = rows[y, 1:], filters[y]
        if f == 0:  # None
            out[y] = line
        elif f == 1:  # Sub: a running sum along each channel (uint8 wraps, mod 256)
            out[y] = np.cumsum(line.reshape(w, 3), axis=0, dtype=np.uint8).reshape(stride)
        elif f == 2:  # Up
            np.add(line, prior, out=out[y])
        else:
            out[y] = np.frombuffer((_average if f == 3 else _paeth)(line, prior), np.uint8)
        prior = out[y]
    return out.reshape(h, w, 3)


def _average(line: np.ndarray, prior: np.ndarray) -> bytearray:
    """Undo the Average filter: each byte plus the floor of the mean of the byte to its
    left (already undone; 0 for the first pixel) and the byte above."""
    out, up = bytearray(line.tobytes()), prior.tobytes()
    for i in range(min(3, len(out))):
        out[i] = (out[i] + (up[i] >> 1)) & 255
    for i in range(3, len(out)):
        out[i] = (out[i] + ((out[i - 3] + up[i]) >> 1)) & 255
    return out


def _paeth(line: np.ndarray, prior: np.ndarray) -> bytearray:
    """Undo the Paeth filter: each byte plus whichever of left (a), above (b) and upper
    left (c) is nearest a + b - c, ties going to a, then b."""
    out, up = bytearray(line.tobytes()), prior.tobytes()
    for i in range(min(3, len(out))):  # a = c = 0: the predictor is b
        out[i] = (out[i] + up[i]) & 255
    for i in range(3, len(out)):
        a, b, c = out[i - 3], up[i], up[i - 3]
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        if pa <= pb and pa <= pc:
            out[i] = (out[i] + a) & 255
        elif pb <= pc:
            out[i] = (out[i] + b) & 255
        else:
            out[i] = (out[i] + c) & 255
    return out
