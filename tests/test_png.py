"""loopwave's own PNG reader (numpy only), against Pillow and a filter-by-filter encoder
written here; and the colour plan reading its keyframes with it where neither Pillow
nor PyAV is installed."""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loopwave.png import decode_png, make_folder, read_png, write_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def encode(img, filters, *, pieces=3, header=None, extra=()):
    """A PNG of ``img`` with row y filtered by ``filters[y]`` (the PNG spec's forward
    filters, on the original bytes), its image data split over ``pieces`` IDAT chunks."""
    h, w, _ = img.shape
    x = img.reshape(h, w * 3).astype(np.int64)
    up = np.vstack([np.zeros((1, w * 3), np.int64), x[:-1]])
    left = np.hstack([np.zeros((h, 3), np.int64), x[:, :-3]])
    upleft = np.hstack([np.zeros((h, 3), np.int64), up[:, :-3]])
    preds = [0 * x, left, up, (left + up) // 2, paeth(left, up, upleft)]
    rows = np.empty((h, w * 3 + 1), np.uint8)
    for y, f in enumerate(filters):
        rows[y, 0] = f
        rows[y, 1:] = (x[y] - preds[f][y]) % 256
    z = zlib.compress(rows.tobytes(), 9)
    cut = np.linspace(0, len(z), pieces + 1).astype(int)
    ihdr = header if header is not None else struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        SIGNATURE
        + chunk(b"IHDR", ihdr)
        + b"".join(extra)
        + b"".join(chunk(b"IDAT", z[a:b]) for a, b in zip(cut[:-1], cut[1:], strict=True))
        + chunk(b"IEND", b"")
    )


def pil_read(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (33, 64)])
def test_every_filter_type(shape):
    """Each of the five filters, in every order (rows cycle through them with two
    offsets), on noise and on smooth gradients (where Paeth's ties matter): the same
    pixels as Pillow decodes from the same file, and as the image encoded."""
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([xx * 7 % 256, yy * 5 % 256, (xx + yy) * 3 % 256], -1).astype(np.uint8)
    flat = np.full((h, w, 3), 200, np.uint8)
    for img in (noise, smooth, flat):
        for offset in (0, 3):
            for only in (None, 0, 1, 2, 3, 4):
                filters = [(y + offset) % 5 if only is None else only for y in range(h)]
                data = encode(img, filters)
                np.testing.assert_array_equal(pil_read(data), img)  # the encoder here is right
                np.testing.assert_array_equal(decode_png(data), img, f"{filters}")


def test_reads_what_write_png_writes(tmp_path):
    rng = np.random.default_rng(1)
    for h, w in ((1, 1), (1, 9), (9, 1), (31, 17), (128, 96)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        write_png(tmp_path / "a.png", img, level=1)
        got = read_png(tmp_path / "a.png")
        assert got.dtype == np.uint8 and got.shape == (h, w, 3)
        np.testing.assert_array_equal(got, img)


def test_reads_pillows_rgb_pngs(tmp_path, photos):
    """Pillow filters rows adaptively (mostly Paeth and Up on photographs); its files
    read the same as Pillow reads them, at each compression and with optimize."""
    for name, img in photos.items():
        for opts in ({}, {"compress_level": 0}, {"compress_level": 9}, {"optimize": True}):
            Image.fromarray(img).save(tmp_path / "p.png", **opts)
            np.testing.assert_array_equal(read_png(tmp_path / "p.png"), img, f"{name} {opts}")


def ihdr(w, h, depth=8, ctype=2, interlace=0):
    return struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace)


def test_refuses_what_it_cannot_read(tmp_path):
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    good = encode(img, [1, 2, 3, 4])
    for mode in ("L", "RGBA", "P", "I;16", "LA", "1"):  # other kinds, written by Pillow
        buf = io.BytesIO()
        Image.fromarray(img).convert(mode).save(buf, format="PNG")
        with pytest.raises(ValueError, match="8-bit RGB, non-interlaced only"):
            decode_png(buf.getvalue())
    with pytest.raises(ValueError, match="8-bit RGB, interlaced:"):
        decode_png(encode(img, [0] * 4, header=ihdr(5, 4, interlace=1)))
    with pytest.raises(ValueError, match="is 16-bit RGB:"):
        decode_png(encode(img, [0] * 4, header=ihdr(5, 4, depth=16)))
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png(b"GIF89a" + good[6:])
    damaged = bytearray(good)
    damaged[-20] ^= 1  # inside the last IDAT chunk
    with pytest.raises(ValueError, match="CRC"):
        decode_png(bytes(damaged))
    for cut in (len(good) - 12, len(good) - 30, 20, 8):
        with pytest.raises(ValueError, match="cut short"):
            decode_png(good[:cut])
    short = encode(img[:3], [1, 1, 1], header=ihdr(5, 4))  # one row fewer than IHDR says
    with pytest.raises(ValueError, match="image data is cut short"):
        decode_png(short)
    rows = np.zeros((4, 16), np.uint8)
    rows[2, 0] = 5
    bad_filter = SIGNATURE + chunk(b"IHDR", ihdr(5, 4))
    bad_filter += chunk(b"IDAT", zlib.compress(rows.tobytes())) + chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="row 2 has filter type 5"):
        decode_png(bad_filter)
    with pytest.raises(ValueError, match="unknown critical chunk"):
        decode_png(encode(img, [0] * 4, extra=[chunk(b"ABCD", b"x")]))
    # ancillary chunks (and a suggested palette) are skipped
    extra = [chunk(b"gAMA", struct.pack(">I", 45455)), chunk(b"tEXt", b"a\0b")]
    np.testing.assert_array_equal(decode_png(encode(img, [4] * 4, extra=extra)), img)
    np.testing.assert_array_equal(
        decode_png(encode(img, [3] * 4, extra=[chunk(b"PLTE", bytes(6))])), img
    )
    with pytest.raises(ValueError, match="over 178956970 pixels"):
        decode_png(encode(img, [0] * 4, header=ihdr(2**16, 2**16)))
    # read_png names the file; a missing one is open's error
    (tmp_path / "bad.png").write_bytes(good[:-30])
    with pytest.raises(ValueError, match=r"bad\.png: the file is cut short"):
        read_png(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError):
        read_png(tmp_path / "missing.png")


@pytest.fixture
def no_pillow_no_av(monkeypatch):
    """A core install: ``import PIL`` and ``import av`` fail."""
    for name in ("PIL", "PIL.Image", "av"):
        monkeypatch.setitem(sys.modules, name, None)


def test_the_plan_reads_its_keyframes_without_pillow_or_pyav(tmp_path, photos, no_pillow_no_av):
    """ColourPlan.build(keep=...) on a core install (numpy only): it wrote every keyframe
    and then failed at the first target ("video I/O needs PyAV"); its PNGs are now read
    back with loopwave's own reader. The same for a saved plan loaded again."""
    from loopwave.plan import ColourPlan, _read_png

    with pytest.raises(ImportError):
        import PIL.Image  # noqa: F401
    imgs = [photos[n] for n in ("coffee", "chelsea", "rocket")]
    plan = ColourPlan.build(lambda k, v: imgs[k // 4], frames=9, every=4, renders=1, keep=tmp_path)
    for k in (0, 4, 8):
        np.testing.assert_array_equal(plan.target(k), imgs[k // 4])
    assert plan.target(2).shape == imgs[0].shape  # a lerp of keyframes 0 and 4
    plan.save(tmp_path / "run")
    again = ColourPlan.load(tmp_path / "run")
    for i in range(9):
        np.testing.assert_array_equal(again.target(i), plan.target(i))
    # a file with every filter type, as Pillow writes them
    (tmp_path / "pil.png").write_bytes(encode(imgs[2], [y % 5 for y in range(128)]))
    np.testing.assert_array_equal(_read_png(tmp_path / "pil.png"), imgs[2])
    # a kind the reader does not take: an OSError naming the file, as Pillow's errors
    grey = SIGNATURE + chunk(b"IHDR", ihdr(1, 1, ctype=0))
    (tmp_path / "grey.png").write_bytes(
        grey + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")
    )
    with pytest.raises(OSError, match=r"grey\.png: .*install Pillow or PyAV"):
        _read_png(tmp_path / "grey.png")


def test_write_png_never_leaves_a_partial_file(tmp_path, monkeypatch):
    import os

    from loopwave.png import write_png

    path = tmp_path / "f.png"
    write_png(path, np.zeros((4, 4, 3), np.uint8))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_png(path, np.full((4, 4, 3), 9, np.uint8))
    assert path.read_bytes() == before  # the old file whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]  # no f.png.tmp


def test_write_png_takes_the_longest_legal_name(tmp_path):
    """From a review: the temporary file was NAME.tmp, four bytes longer, so a legal name
    of 252-255 bytes failed with "File name too long" naming a file never asked for."""
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for n in (251, 255):
        path = tmp_path / ("f" * (n - 4) + ".png")
        write_png(path, img)
        np.testing.assert_array_equal(read_png(path), img)
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [251, 255]  # no temporary left


def test_whole_png_tells_what_a_power_cut_leaves(tmp_path):
    """whole_png: the quick check a resume makes of every recorded frame."""
    from loopwave.png import whole_png

    path = write_png(tmp_path / "f.png", np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3))
    data = path.read_bytes()
    assert whole_png(path) is None
    cases = {
        "empty": (b"", "it is empty"),
        "tiny": (data[:10], "it holds 10 bytes"),
        "cut": (data[: len(data) // 2], "cut short"),
        "last byte": (data[:-1], "cut short"),
        "zeros": (bytes(len(data)), "does not open as a PNG"),
        "tail zeros": (data[:40] + bytes(len(data) - 40), "cut short"),
        "no IHDR": (data[:12] + b"IHDX" + data[16:], "does not open as a PNG"),
    }
    for name, (content, why) in cases.items():
        path.write_bytes(content)
        got = whole_png(path)
        assert got is not None and why in got, name
    assert whole_png(tmp_path / "none.png") == "it is missing"
    assert "cannot be read" in whole_png(tmp_path)  # a folder
    # what only the CRCs find: zeros inside the file, one byte changed
    third = len(data) // 3
    for content in (
        data[:third] + bytes(third) + data[2 * third :],
        data[:50] + bytes([data[50] ^ 1]) + data[51:],
    ):
        path.write_bytes(content)
        assert whole_png(path) is None  # the ends are whole
        assert "fails its CRC check" in whole_png(path, crc=True)
    path.write_bytes(data)
    assert whole_png(path, crc=True) is None
    path.write_bytes(data[:33] + struct.pack(">I", 1 << 30) + data[37:])  # a length past the end
    assert "runs past the end" in whole_png(path, crc=True)


def test_durable_write_syncs_the_file_before_its_rename_and_the_folder_after(tmp_path, sync_events):
    img = np.full((3, 4, 3), 7, np.uint8)
    write_png(tmp_path / "plain.png", img)
    assert [e[0] for e in sync_events] == ["replace"]  # not durable: no sync
    sync_events.clear()
    write_png(tmp_path / "f.png", img, durable=True)
    tmp, final = str(tmp_path / "f.png.tmp"), str(tmp_path / "f.png")
    assert sync_events == [("fsync", tmp), ("replace", final), ("fsync", str(tmp_path))]
    np.testing.assert_array_equal(read_png(final), img)


def test_make_folder_syncs_each_new_folder_into_its_parent(tmp_path, sync_events):
    """A run's new folders (out/render/RUN, its frames) are on disk before the files in
    them are: each one made is synced into its parent, top down, and nothing else."""
    make_folder(tmp_path / "a" / "b" / "c")
    assert (tmp_path / "a" / "b" / "c").is_dir()
    parents = [tmp_path, tmp_path / "a", tmp_path / "a" / "b"]
    assert sync_events == [("fsync", str(p)) for p in parents]
    sync_events.clear()
    make_folder(tmp_path / "a" / "b" / "c")  # there already: nothing to sync
    make_folder(tmp_path / "a" / "d")
    assert sync_events == [("fsync", str(tmp_path / "a"))]
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        make_folder(tmp_path / "file")
    with pytest.raises((FileExistsError, NotADirectoryError)):
        make_folder(tmp_path / "file" / "under")


def test_durable_write_on_a_filesystem_that_cannot_sync(tmp_path, monkeypatch):
    """EINVAL (a filesystem without fsync) writes as before; EIO (the disk lost the data)
    is raised, and leaves no temporary file and the old file whole."""
    import errno
    import os

    img = np.full((3, 4, 3), 7, np.uint8)
    path = write_png(tmp_path / "f.png", img)
    before = path.read_bytes()

    def refuse(code):
        def fsync(fd):
            raise OSError(code, os.strerror(code))

        return fsync

    monkeypatch.setattr(os, "fsync", refuse(errno.EINVAL))
    write_png(path, img[::-1].copy(), durable=True)
    np.testing.assert_array_equal(read_png(path), img[::-1])
    write_png(path, img, durable=True)
    monkeypatch.setattr(os, "fsync", refuse(errno.EIO))
    with pytest.raises(OSError, match="Input/output error"):
        write_png(path, np.zeros_like(img), durable=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_sync_names_the_file_and_uses_full_fsync_on_macos(tmp_path, monkeypatch):
    import errno
    import fcntl
    import os

    from loopwave import png

    calls = []
    monkeypatch.setattr(png.sys, "platform", "darwin")
    monkeypatch.setattr(fcntl, "F_FULLFSYNC", 51, raising=False)
    monkeypatch.setattr(fcntl, "fcntl", lambda fd, op: calls.append(("fcntl", op)))
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync", fd)))
    write_png(tmp_path / "f.png", np.zeros((2, 2, 3), np.uint8), durable=True)
    assert calls == [("fcntl", 51), ("fcntl", 51)]  # the file, then its folder

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(png.sys, "platform", "linux")
    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(OSError, match="syncing it to disk.*f.png.tmp") as e:
        write_png(tmp_path / "f.png", np.zeros((2, 2, 3), np.uint8), durable=True)
    assert e.value.errno == errno.EIO


def test_atomic_json_leaves_no_temporary_file_when_its_sync_fails(tmp_path, monkeypatch):
    import errno
    import os

    from loopwave.plan import _atomic_json

    path = tmp_path / "state.json"
    _atomic_json(path, {"last": 3})

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(OSError, match="state.json.tmp"):
        _atomic_json(path, {"last": 4})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert path.read_text().count('"last": 3') == 1


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    """From a disk-full review: a buffered write's ENOSPC names no file, and the render
    said only "saving frames failed: [Errno 28] No space left on device"."""
    import errno

    import loopwave.png

    def full(f) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loopwave.png, "sync_file", full)
    with pytest.raises(OSError) as e:
        write_png(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8), durable=True)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "a.png")
    assert "a.png" in str(e.value) and not list(tmp_path.iterdir())


def test_open_tmp_replaces_what_is_at_the_name_and_never_follows_a_link(tmp_path):
    """A writer's temporary name is its own: a link there was followed (a user's file it
    led to, outside the run folder, was overwritten), a FIFO waited on for ever. Each is
    replaced by a new file; a folder stays, and the open fails."""
    from loopwave.png import open_tmp

    user = tmp_path / "user.txt"
    user.write_text("the user's")
    tmp = tmp_path / "state.json.tmp"
    makers = {
        "a link to a file": lambda: tmp.symlink_to(user),
        "a link to nowhere": lambda: tmp.symlink_to(tmp_path / "nowhere"),
        "a link to a folder": lambda: tmp.symlink_to(tmp_path),
        "a stale file": lambda: tmp.write_text("stale"),
    }
    if hasattr(os, "mkfifo"):
        makers["a FIFO"] = lambda: os.mkfifo(tmp)
    for what, make in makers.items():
        make()
        with open_tmp(tmp, "w", encoding="utf-8") as f:
            f.write("new")
        assert tmp.read_text() == "new" and not tmp.is_symlink(), what
        assert user.read_text() == "the user's", what
        assert not (tmp_path / "nowhere").exists(), what
        tmp.unlink()
    tmp.mkdir()
    with pytest.raises(IsADirectoryError, match="state.json.tmp"):
        open_tmp(tmp)
    assert tmp.is_dir()


def test_open_tmp_never_follows_a_link_made_after_it_cleared_the_name(tmp_path, monkeypatch):
    """The name is cleared, then opened with O_EXCL | O_NOFOLLOW: a link put there in
    between (here: the clearing skipped) is refused, not written through."""
    import loopwave.png as lp

    user = tmp_path / "user.txt"
    user.write_text("the user's")
    tmp = tmp_path / "drift.csv.tmp"
    tmp.symlink_to(user)
    monkeypatch.setattr(lp, "clear_tmp", lambda path: None)
    with pytest.raises(OSError):
        lp.open_tmp(tmp, "w")
    assert user.read_text() == "the user's" and tmp.is_symlink()


def test_a_writer_deletes_only_the_temporary_file_it_opened(tmp_path, monkeypatch):
    """From the last note's Left alone: on a failed open, write_png's clean-up deleted what
    was at its temporary name all the same: a file another writer made there between the
    clearing and the open (O_EXCL's FileExistsError) was lost, and a folder there ended
    in the clean-up's own IsADirectoryError, which hid the open's. Now the clean-up
    deletes only a file it opened."""
    import loopwave.png as lp

    img = np.zeros((2, 2, 3), np.uint8)
    path = tmp_path / "f.png"
    tmp = tmp_path / "f.png.tmp"
    tmp.mkdir()
    with pytest.raises(IsADirectoryError, match="a folder is at a writer's temporary name") as e:
        write_png(path, img)
    assert e.value.__context__ is None and tmp.is_dir() and not path.exists()
    tmp.rmdir()

    clear = lp.clear_tmp

    def another_writer_comes(p):  # another process makes the name after the clearing
        clear(p)
        Path(p).write_text("another writer's")

    monkeypatch.setattr(lp, "clear_tmp", another_writer_comes)
    with pytest.raises(FileExistsError):
        write_png(path, img)
    assert tmp.read_text() == "another writer's" and not path.exists()
    monkeypatch.undo()

    tmp.unlink()  # and one it opened is deleted on an error in the block, as before
    with pytest.raises(RuntimeError, match="in the block"), lp.replacing(path, tmp) as f:
        f.write(b"half")
        raise RuntimeError("in the block")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_ctrl_c_as_the_temporary_file_is_made_leaves_none(tmp_path, monkeypatch):
    """From a review of the change above: the clean-up knew the file for its own only once
    open() had returned, so a Ctrl-C just after the file was made left NAME.tmp behind."""
    real, fds = os.open, []

    def made_then_ctrl_c(path, flags, mode=0o777, *a, **k):
        fd = real(path, flags, mode, *a, **k)
        if str(path).endswith(".tmp"):
            fds.append(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", made_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_png(tmp_path / "f.png", np.zeros((2, 2, 3), np.uint8), durable=True)
    monkeypatch.undo()
    for fd in fds:
        os.close(fd)
    assert fds and list(tmp_path.iterdir()) == []
