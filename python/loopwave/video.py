"""Video I/O with PyAV: frames stream straight into the encoder, no PNG round trips.

:class:`VideoWriter` converts RGB frames to I420 with the Rust
:func:`loopwave.rgb_to_yuv420p` and hands those planes to PyAV's encoder on a
background thread behind a bounded queue, so the caller waits only when the
queue is full. :class:`VideoReader` decodes any file PyAV reads into ``uint8``
RGB batches and seeks by frame index.

Needs the ``video`` extra (``pip install 'loopwave[video]'``); ``import
loopwave`` does not import PyAV.

Crash safety
------------
A file cut off by a killed process still plays up to its last flushed frames:

- MP4/MOV output is fragmented
  (``movflags=frag_keyframe+empty_moov+default_base_moof+delay_moov``): a fragment
  goes to disk at each keyframe, one every ``keyframe_interval`` frames (default:
  one second of video). ``delay_moov`` writes the header with the first fragment,
  with edit lists, so frame ``i`` plays at ``i / fps`` and the sound's encoder
  priming is skipped (without it the first frame played at 2/fps, behind the sound).
- Matroska/WebM output is streamable by design; loopwave closes a cluster
  after every packet (``cluster_size_limit=0``, about 20 bytes a frame), so all
  but the newest packet are on disk.
- Every packet is handed to the operating system as it is muxed
  (``flush_packets=1``); :meth:`VideoWriter.flush` can also ``fsync``.

What is lost in a crash is what was still queued, inside the encoder (its
look-ahead: x264 up to about ``keyframe_interval`` frames, libvpx 25) or, for
MP4, in the current fragment. :meth:`VideoWriter.flush` waits until the queue
is empty and returns :attr:`VideoWriter.frames_on_disk`, the number of frames
from the start that a reader of the file gets even if the process dies now.

Example
-------
>>> import numpy as np
>>> from loopwave.video import VideoWriter, VideoReader
>>> frames = np.zeros((10, 64, 64, 3), np.uint8)
>>> with VideoWriter("/tmp/x.mp4", fps="30000/1001", crf=18) as w:  # doctest: +SKIP
...     w.write(frames)
>>> with VideoReader("/tmp/x.mp4", batch=4) as r:  # doctest: +SKIP
...     r.frame_count, r.fps, r.read(7).shape
(10, Fraction(30000, 1001), (64, 64, 3))
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import errno
import functools
import heapq
import io
import itertools
import json
import math
import os
import queue
import re
import stat
import struct
import tempfile
import threading
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

import numpy as np

from . import _validate as v
from .color import rgb_to_yuv420p, yuv420p_to_rgb

__all__ = [
    "CODECS",
    "VideoReader",
    "VideoWriter",
    "encode_dir",
    "list_encoders",
    "parse_fps",
    "partial_path",
    "read_frames_dir",
]

# codec name -> (FFmpeg encoder candidates in order of preference, default extension)
CODECS: dict[str, tuple[tuple[str, ...], str]] = {
    "h264": (("libx264",), ".mp4"),
    "h265": (("libx265",), ".mp4"),
    "vp9": (("libvpx-vp9",), ".webm"),
    "av1": (("libsvtav1", "libaom-av1", "librav1e"), ".mp4"),
    "h264_nvenc": (("h264_nvenc",), ".mp4"),
    "hevc_nvenc": (("hevc_nvenc",), ".mp4"),
    "av1_nvenc": (("av1_nvenc",), ".mp4"),
}
# smallest frame side (after padding to even) an encoder takes: libx265 aborts the whole
# process (heap corruption) on frames such as 40x16 and refuses sides under 16 (measured
# with PyAV's libx265: no failure with both sides >= 32); SVT-AV1 refuses sides under 4
_MIN_SIDE = {"libx265": 32, "libsvtav1": 4}
# smallest frame width, where it is more: libx265's look-ahead (cuTree) writes past a
# buffer's end on frames up to 48 wide, whatever their height (valgrind: 32x32 to 48x48,
# 200x32, 100x40 high x wide; none at 56 or more wide, 32x64 included), and the process
# aborted in 12 of 16 runs of 48x48 frames with sound; 64 for a margin
_MIN_WIDTH = {"libx265": 64}
# frame sides (short, long) that every encoder here opens at with any settings it takes;
# check_frame_size tries a frame outside them by opening its encoder at that size
_USUAL_SIDES = (64, 8192)
# the highest frame rate an encoder opens at (SVT-AV1: "The maximum allowed frame rate is
# 240 fps", found only when the first frame opened it)
_MAX_FPS = {"libsvtav1": Fraction(240)}
# SVT-AV1 never returns from the final flush of frames thinner than this that are longer
# than _SVT_LONG (measured with this PyAV's SVT-AV1 4.1: 24x100, 16x66 and 8x1000 hang,
# 26x100, 16x64 and 26x4000 do not; refused below 32, with a margin for other versions)
_SVT_THIN, _SVT_LONG = 32, 64
# the SVT-AV1 bundled with PyAV 19.0 and 18.1.1 corrupts the heap in its final flush of
# frames with both sides at most this ("realloc(): invalid next size", the process aborted;
# 4x4, 6x6, 8x8; 8x10 and 4x10 finish). 18.1.0's encoded 100 4x4 videos in a row, but a
# heap corruption need not show, and 18.1.1 aborted a fresh-clone test run: refused on
# every version (it was on 19 and later only). Every even size from 4 to 64 a side that
# is let through encoded on 18.1.1 without an abort (one and three frames, three times)
_SVT_TINY = 8
# seconds between two frames' times beyond which, in formats whose timestamps may jump
# (MPEG-TS/PS), the gap is a jump and not a pause (ffmpeg's dts_delta_threshold)
_TS_JUMP = 10
_TS_DISCONT = 0x200  # FFmpeg's AVFMT_TS_DISCONT: a format whose timestamps may jump
# frames a packet's decoding time may lead its presentation time by (x264's and x265's
# B-frame pyramids reorder a few; anything far beyond is a broken DTS, see _repair_dts)
_MAX_REORDER = 64
_ALIASES = {"hevc": "h265", "avc": "h264", "libx264": "h264", "libx265": "h265"}
# file extension -> FFmpeg muxer
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# containers that take only some codecs -> those codecs (measured with this PyAV: FFmpeg's
# MOV muxer refuses VP9 and AV1 with a bare "Invalid argument" on the first frame)
_CONTAINER_CODECS = {
    "webm": ("vp9", "av1"),
    "mov": ("h264", "h265", "h264_nvenc", "hevc_nvenc"),
}
_CONTAINER_NAMES = {"webm": "WebM", "mov": "MOV (QuickTime)"}
# the matrix names of rgb_to_yuv420p -> FFmpeg's (AVColorSpace, AVColorPrimaries,
# AVColorTransferCharacteristic) codes, tagged in the stream
_COLOR_TAGS = {"bt601": (6, 6, 6), "bt709": (1, 1, 1), "bt2020": (9, 9, 14)}
# every spelling rgb_to_yuv420p takes (any case) -> its name above
_MATRIX_NAMES = {
    **{k: "bt601" for k in ("bt601", "bt.601", "601", "smpte170m")},
    **{k: "bt709" for k in ("bt709", "bt.709", "709")},
    **{k: "bt2020" for k in ("bt2020", "bt.2020", "2020", "bt2020nc")},
}
# AVColorSpace code -> the matrix the reader decodes with (any other: BT.601, as swscale's
# default); and each matrix as swscale's own number (SWS_CS_*): PyAV before 18 has no name
# for BT2020 (a KeyError), but takes the number, and converts as 18 does
_SPACE_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_SWS_CS = {"bt601": 5, "bt709": 1, "bt2020": 9}
_RANGE_MPEG, _RANGE_JPEG = 1, 2
# swscale's flags for YUV to RGB (SWS_*; PyAV passes an int through as they are): with
# its default, bilinear alone, 4:2:0 and 4:2:2 came out a level dark on average (a mean
# of -1.0 on photographs, -1.7 from 10 bits: fixed-point tables that drop a level on
# about half the values); ACCURATE_RND with FULL_CHR_H_INT rounds them. 8-bit 4:2:0 at
# its own size, nearly every video, is decoded by loopwave's own yuv420p_to_rgb instead
# (as exact, several times faster than swscale's accurate path)
_SWS_ACCURATE = 0x40000 | 0x2000
_SWS_BILINEAR, _SWS_BICUBIC = 2, 4
_CRF_MAX = {"libx264": 51, "libx265": 51, "h264_nvenc": 51, "hevc_nvenc": 51, "av1_nvenc": 51}
_DEFAULT_CRF = 18
_INSTALL = "video I/O needs PyAV: pip install 'loopwave[video]'"


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL) from e
    return av


def _av_open(path: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> Any:
    """``av.open`` of the file ``path``, every file this module opens. FFmpeg is given
    the absolute path: it takes a name's start up to a first ``:`` for a protocol when
    only letters, digits, ``+``, ``-`` and ``.`` come before it, so (from a review) a
    relative ``2024-05-01T12:30:00.mp4`` or a frame in a folder ``run:1`` failed with
    "Protocol not found" (the writer's was an uncaught ProtocolNotFoundError), and
    ``file:fx.mp4`` was written to ``fx.mp4``; an absolute path starts with ``/``. It is
    :meth:`Path.absolute`'s, not ``os.path.abspath``'s, which takes out ``..`` as text
    (past a link to a folder, another file). Reading, the image demuxer (image2, which
    FFmpeg picks for ``f%d.png``) reads the file named, not a numbered sequence: it read
    ``f1.png`` beside it (``pattern_type=none``; other formats leave the option unused)."""
    name = str(Path(path).absolute())
    if "\0" in name:  # (FFmpeg ends the name there: "a\0.mp4" wrote over a file "a")
        raise ValueError(f"{name!r} holds a NUL byte, which no file name can")
    if mode == "r":
        kwargs["container_options"] = {"pattern_type": "none"}
    return _av().open(name, mode, **kwargs)


def _quiet(encoder: str, options: dict[str, str]) -> None:
    """Keep x265's and SVT-AV1's banners off stderr (errors still show)."""
    if encoder == "libx265":
        params = options.get("x265-params", "")
        if "log-level" not in params:
            options["x265-params"] = (params + ":" if params else "") + "log-level=error"
    elif encoder == "libsvtav1":
        # SVT-AV1 reads its log level from the environment only; set SVT_LOG=3 for its banner
        os.environ.setdefault("SVT_LOG", "1")


@functools.cache
def _x264_cpu() -> tuple[int, int] | None:
    """The CPU flags of the libx264 this process loaded (its ``x264_cpu_detect``) and the
    flag of AVX-512 in them (from its own ``x264_cpu_names``); None where it cannot be
    found (not Linux, an FFmpeg with x264 linked in statically, a libx264 without those
    symbols, no ctypes). Looked up once."""
    try:
        import ctypes
    except ImportError:  # a Python built without _ctypes
        return None
    _av()  # (libavcodec loads libx264)
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = sorted(
        {part[5] for line in maps.splitlines() if len(part := line.split(None, 5)) == 6} - {""}
    )

    class _Name(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("flags", ctypes.c_uint32)]

    for p in paths:
        if "libx264" not in os.path.basename(p):
            continue
        try:
            lib = ctypes.CDLL(p)
            detect = lib.x264_cpu_detect
            detect.restype, detect.argtypes = ctypes.c_uint32, []
            table = (_Name * 64).in_dll(lib, "x264_cpu_names")
        except (OSError, AttributeError, ValueError):
            continue
        named: dict[bytes, int] = {}
        for entry in table:
            if not entry.name:
                break
            named[entry.name] = entry.flags
        if b"AVX512" in named and b"AVX2" in named:
            return int(detect()), named[b"AVX512"] & ~named[b"AVX2"]
    return None


def _x264_key(param: str) -> str:
    """The option an ``x264-params`` entry sets, as x264 reads its name: ``no-asm=1``,
    ``noasm``, `` asm = 0`` all set ``asm``."""
    key = param.split("=", 1)[0].strip().lower().replace("_", "-")
    for no in ("no-", "no"):
        if key.startswith(no) and key != no:
            return key[len(no) :]
    return key


def _x264_params(width: int) -> str | None:
    """x264 options that keep its output reproducible at ``width``, or None.

    x264's AVX-512 MB-tree kernel (``mbtree_propagate_list``, core 164-165 as PyAV
    bundles it) works on 8 macroblocks at a time with no mask for the last group, and
    adds what it reads past a row's end into the rate control's costs. At widths whose
    count of 16-pixel macroblocks is not a multiple of 8 (such as 576, 720 or 960; 512,
    1280 and 1920 are not hit) on a CPU with AVX-512, the video then depends on leftover heap
    memory: 1 to 3 in 8 renders of one job in one process came out different, decoded
    frames up to 35 levels apart. There, x264 runs without AVX-512 (its ``asm`` flags
    less that one), which gives the same video every time; elsewhere it is left as is."""
    if (width + 15) // 16 % 8 == 0:
        return None
    cpu = _x264_cpu()
    if cpu is None or not cpu[0] & cpu[1]:
        return None
    return f"asm={cpu[0] & ~cpu[1]}"


def _try_open(
    encoder: str,
    options: Mapping[str, str],
    bitrate: int | None = None,
    size: tuple[int, int] = (64, 64),
) -> None:
    """Open ``encoder`` at ``size`` (width, height; 64x64 by default); raises what FFmpeg
    raises (no encoder, no GPU, bad option value, a size it refuses), and ValueError for
    options the encoder does not have.

    FFmpeg sets the options an encoder knows and hands the others back unused
    (PyAV leaves them in ``options`` after ``open``); it would otherwise ignore a
    misspelt one (``"tunee"``) without a word.
    """
    av = _av()
    ctx = av.CodecContext.create(encoder, "w")
    (ctx.width, ctx.height), ctx.pix_fmt = size, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    if bitrate:
        ctx.bit_rate = bitrate
    opts = dict(options)
    _quiet(encoder, opts)
    ctx.options = opts
    ctx.open()
    unused = sorted(k for k in ctx.options if k in options)
    if unused:
        raise ValueError(
            f"options: {encoder} has no option {', '.join(map(repr, unused))} "
            f"(see `ffmpeg -h encoder={encoder}`)"
        )


_probed: dict[str, str | None] = {}  # codec -> the encoder that opened, or None
_probe_lock = threading.Lock()


def _encoder_for(codec: str) -> str | None:
    """The first FFmpeg encoder for ``codec`` that opens here (probed once per codec)."""
    with _probe_lock:
        if codec not in _probed:
            found = None
            for name in CODECS[codec][0]:
                try:
                    _try_open(name, {})
                except Exception:  # noqa: BLE001 - any failure means: not usable here
                    continue
                found = name
                break
            # kept only once the probe has run through: a Ctrl-C during it (a notebook's
            # first render) left the codec marked missing for the rest of the process
            _probed[codec] = found
        return _probed[codec]


def list_encoders() -> list[str]:
    """The codecs of :data:`CODECS` that this PyAV build can encode on this machine.

    An encoder counts when it opens: NVENC ones need an NVIDIA GPU with an
    encoder unit and its driver. The probe runs once per process.

    Example
    -------
    >>> from loopwave.video import list_encoders
    >>> "h264" in list_encoders()  # doctest: +SKIP
    True
    """
    return sorted(c for c in CODECS if _encoder_for(c) is not None)


def parse_fps(fps: Any, arg: str = "fps") -> Fraction:
    """A frame rate as a positive :class:`~fractions.Fraction`.

    Accepts an int, a float (taken as written: ``29.97`` is ``2997/100``), a
    Fraction, or a string such as ``"60"``, ``"29.97"`` or ``"30000/1001"``; the
    nearest fraction with a denominator up to 10^6 is taken (FFmpeg keeps rates in
    32-bit terms), and it must lie in [1/10000, 1000].

    Example
    -------
    >>> parse_fps("30000/1001")
    Fraction(30000, 1001)
    """
    form = f"{arg} must be a number, a Fraction or a string like '30000/1001'"
    if isinstance(fps, bool) or fps is None:
        raise TypeError(f"{form}; got {fps!r}")
    if isinstance(fps, Fraction):
        f = fps.limit_denominator(1_000_000)  # Fraction(29.97) has 2^48 below
    else:
        if isinstance(fps, np.floating) and np.finfo(fps.dtype).bits < 64:
            # as written too: np.float32(29.97) is 29.97 (its item() 29.969999313354492,
            # which became 15712911/524288)
            fps = str(fps)
        elif isinstance(fps, (np.integer, np.floating)):
            fps = fps.item()  # Fraction() takes Python numbers only
        try:
            f = Fraction(fps.strip() if isinstance(fps, str) else fps)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            raise (ValueError if isinstance(fps, (str, int, float)) else TypeError)(
                f"{form}; got {fps!r}"
            ) from None
        f = f.limit_denominator(1_000_000)
    # below one frame per 10^4 s, MP4 and MOV fail when the file is closed
    if not Fraction(1, 10_000) <= f <= 1000:
        raise ValueError(f"{arg} must be in [1/10000, 1000]; got {fps!r}")
    return f


def _positive_int(
    x: Any, arg: str, *, allow_none: bool = False, most: int = 2**31 - 1
) -> int | None:
    """An int in 1..``most`` (FFmpeg keeps most counts in a C int)."""
    if x is None and allow_none:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{arg} must be an int{' or None' if allow_none else ''}; got {x!r}")
    if not 1 <= x <= most:
        raise ValueError(f"{arg} must be in 1..{most}; got {x}")
    return int(x)


def _encoder_options(
    encoder: str, crf: int | None, preset: str | int | None, bitrate: int | None
) -> dict[str, str]:
    """The FFmpeg options for ``encoder`` that give this quality setting."""
    o: dict[str, str] = {}
    if crf is not None:
        if encoder in ("libx264", "libx265", "libsvtav1"):
            o["crf"] = str(crf)
        elif encoder in ("libvpx-vp9", "libaom-av1"):
            o["crf"], o["b"] = str(crf), "0"  # constant quality needs a zero target bitrate
        elif encoder == "librav1e":
            o["qp"] = str(min(255, crf * 4))
        elif encoder.endswith("_nvenc"):
            o["rc"], o["cq"], o["b"] = "vbr", str(max(1, crf)), "0"  # cq 0 means "auto"
    if preset is not None:
        key = {"libvpx-vp9": "cpu-used", "libaom-av1": "cpu-used", "librav1e": "speed"}
        o[key.get(encoder, "preset")] = str(preset)
    if encoder == "libvpx-vp9":
        o["row-mt"] = "1"
    return o


@dataclass
class _Config:
    """Everything the encoder thread needs to open one output file."""

    encoder: str
    muxer: str
    fps: Fraction
    gop: int
    options: dict[str, str]
    bitrate: int | None
    matrix: str
    full_range: bool
    metadata: dict[str, str]
    audio: Path | None
    size: tuple[int, int] = (0, 0)  # (height, width), set by the first frame
    audio_sync: bool = False


class _Durable:
    """Which frames of one file are on disk, from the order packets were muxed.

    MP4 (``frag_keyframe``) writes a fragment when the next keyframe packet
    arrives; Matroska with a cluster per packet writes a cluster when the next
    packet arrives. The count is the longest run of frames from the first one
    (display order) whose packets are all written.
    """

    def __init__(self, cut_at_keyframes: bool) -> None:
        self.cut_at_keyframes = cut_at_keyframes
        self.pending: list[int] = []
        self.done: list[int] = []  # a heap
        self.prefix = 0

    def muxed(self, index: int, keyframe: bool) -> None:
        if not self.cut_at_keyframes or (keyframe and self.pending):
            self._commit()
        self.pending.append(index)

    def finish(self) -> None:
        self._commit()

    def _commit(self) -> None:
        for i in self.pending:
            heapq.heappush(self.done, i)
        self.pending = []
        while self.done and self.done[0] <= self.prefix:
            if heapq.heappop(self.done) == self.prefix:
                self.prefix += 1


def _decode_time(p: Any) -> float | None:
    """A packet's decoding time in seconds (its presentation time where it has none),
    read before muxing (mux rebases the packet in place)."""
    ts = p.dts if p.dts is not None else p.pts
    return None if ts is None else float(ts * p.time_base)


class _AudioFeed:
    """Transcode the first audio stream of a file into an output, in step with the video.

    AAC at 48 kHz stereo (Opus for WebM). Fed up to the time of the video frames so
    far, so packets interleave and a cut-off file keeps its sound; a sound shorter than
    the video stays so. With ``sync``, the sound keeps its place
    against the first frame the file's video decodes to, the output's 0: cut before it,
    silence before a later start (from a review: it started at 0 whatever the streams'
    start times, so a clip whose picture started 0.5 s after its sound came out 0.5 s
    out of step; a first fix took the stream's start time, which a file cut mid-GOP
    puts before its first decodable frame).
    """

    def __init__(self, container: Any, source: Path, *, sync: bool = False) -> None:
        av = _av()
        codec = "libopus" if container.format.name == "webm" else "aac"
        self.rate = 48000
        self.src = _av_open(source)
        self.stream = container.add_stream(codec, rate=self.rate, layout="stereo")
        self.frame_size = 960 if codec == "libopus" else 1024
        self.resampler = av.AudioResampler(
            format=self.stream.format.name, layout="stereo", rate=self.rate
        )
        self.fifo = av.AudioFifo()
        sound = self.src.streams.audio[0]
        self.decoded = self.src.decode(sound)
        self.samples = 0  # samples sent to the encoder
        self.time = float("-inf")  # start time (s) of the newest audio packet muxed
        self.first_dts: float | None = None  # decoding time (s) of the first one
        # the first source frame, decoded to place it; then samples of silence still to
        # put before it (written a second at a time: an offset of an hour was 2.6 GB in
        # one frame), and samples to cut from its start
        try:
            self.head: Any = next(self.decoded, None)
        except av.error.FFmpegError as e:  # (its file was left open, and not named)
            self.src.close()
            raise ValueError(f"audio: cannot decode the sound of {source} ({e})") from e
        except BaseException:
            self.src.close()
            raise
        self.exhausted = self.head is None
        self.pad = self.drop = 0
        self.heard = False  # whether any of the sound itself is in the output
        zero = _first_frame_time(source) if sync else None
        if zero is not None and self.head is not None:
            start = self.head.time if self.head.time is not None else _start_seconds(sound)
            offset = round(((start or 0.0) - zero) * self.rate)
            self.pad, self.drop = max(0, offset), max(0, -offset)

    def _pull(self) -> bool:
        """One more second of the silence before the sound, or one more source frame
        into the FIFO; False once the source is done."""
        if self.pad:
            n = min(self.pad, self.rate)
            self.fifo.write(self._silence(n))
            self.pad -= n
            return True
        if self.exhausted and self.head is None:
            return False
        frame = self.head if self.head is not None else next(self.decoded, None)
        self.head = None
        out = self.resampler.resample(frame)  # None flushes the resampler
        self.exhausted = frame is None
        for f in out:
            f.pts = None
            self.fifo.write(f)
            if self.drop:  # (nothing was in the FIFO before these: the start is cut)
                cut = min(self.drop, self.fifo.samples)
                self.fifo.read(cut)
                self.drop -= cut
            self.heard |= self.fifo.samples > 0 and not self.drop
        return not self.exhausted

    def _silence(self, samples: int) -> Any:
        frame = _av().AudioFrame(format=self.stream.format.name, layout="stereo", samples=samples)
        frame.sample_rate = self.rate
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        return frame

    def feed(self, until: float, mux: Callable[[Any], None], *, final: bool = False) -> None:
        """Encode source audio up to ``until`` seconds (whole encoder frames unless ``final``)."""
        target = int(until * self.rate)
        while self.samples < target:
            need = min(self.frame_size, target - self.samples)
            if need < self.frame_size and not final:
                break
            while self.fifo.samples < need and self._pull():
                pass
            if self.fifo.samples < need and not self.heard:
                # none of the sound is in the output (all of it before the first frame):
                # silence, so packets go on (with none, an MP4 writes no fragment: a
                # killed one was empty, and frames_on_disk stayed 0)
                self.fifo.write(self._silence(need - self.fifo.samples))
            take = min(need, self.fifo.samples)
            if take == 0 or (take < self.frame_size and not final):
                break  # (a sound shorter than the video stays so)
            frame = self.fifo.read(take)
            frame.pts, frame.time_base = self.samples, Fraction(1, self.rate)
            self.samples += take
            for p in self.stream.encode(frame):
                mux(p)
        if final:
            for p in self.stream.encode(None):
                mux(p)
            self.src.close()


def _first_frame_time(path: Path) -> float | None:
    """The time (s) of the first frame ``path``'s video decodes to (where a reader's frame
    0 is), or None: no video, or none decodable."""
    av = _av()
    try:
        with _av_open(path) as c:
            if not c.streams.video:
                return None
            for f in c.decode(video=0):
                return None if f.time is None else float(f.time)
    except (av.error.FFmpegError, OSError):
        pass
    return None


def _start_seconds(stream: Any) -> float | None:
    """A stream's start time in seconds, or None where it has none."""
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


def _check_complete(path: Path, count: int, fps: Fraction) -> None:
    """Raise OSError unless the last of ``count`` frames can be read back from ``path``.

    FFmpeg drops an error of the last write, made when the file is closed (the MP4
    muxer's final fragment): a disk that filled up there, or a file size limit, left a
    video cut short that was renamed as complete and reported as written. Reads only the
    packets from the last keyframe on (a seek to the end), not the whole file."""
    last = _last_readable(path, fps, seek=True)
    if last is None:  # the seek to the end failed on the cut file: read it all to say more
        last = _last_readable(path, fps, seek=False)
    if last != count - 1:
        raise OSError(
            f"{path}: the video was cut short when it was closed (its last readable frame "
            f"is {'none' if last is None else last + 1} of {count}); is the disk full, or "
            "a file size limit reached?"
        )


def _last_readable(path: Path, fps: Fraction, *, seek: bool) -> int | None:
    """The number of the last whole packet's frame in ``path`` (from the last keyframe on
    with ``seek``, else from the start), or None."""
    av = _av()
    last = None
    try:
        with _av_open(path) as c:
            s = c.streams.video[0]
            if seek:
                c.seek(2**62, backward=True, any_frame=False, stream=s)
            for p in c.demux(s):
                # a packet cut short is still returned, flagged corrupt
                if p.pts is not None and p.size and not p.is_corrupt:
                    t = round(p.pts * p.time_base * fps)
                    last = t if last is None else max(last, t)
    except (OSError, IndexError, av.error.FFmpegError):
        pass  # unreadable from there on: what was read stands
    return last


def _file_key(path: Path) -> tuple[int, int, int] | None:
    """What tells a file's content changed: its inode, size and modification time
    (None where there is none)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _span(names: list[str]) -> str:
    """``a`` for one name, ``a to z`` for several (in order)."""
    return names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"


def _is_are(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"


def _cannot_write(path: Path, e: BaseException) -> OSError:
    """The error of a video file that could not be made or started, naming it once, with
    the cause's errno where it is a system one, and so the OSError subclass Python has
    for it (a review: a FileNotFoundError or a full disk came as a plain OSError, an
    except clause for it missed; PyAV raises EINVAL as a ValueError, ENOMEM as a
    MemoryError). FFmpeg's own codes (InvalidDataError's 1094995529) are no errno (a
    review). The reason is the cause's strerror (else the system's text for its errno,
    else the cause as it prints), then FFmpeg's last log line where PyAV carries one."""
    no = getattr(e, "errno", None)
    if not (isinstance(no, int) and no in errno.errorcode):
        no = None
    why = getattr(e, "strerror", None)
    if not (isinstance(why, str) and why.strip()):
        why = str(e) if no is None else os.strerror(no)
    log = getattr(e, "log", None)  # PyAV: (level, logger, message) of FFmpeg's last line
    if isinstance(log, tuple) and len(log) == 3 and isinstance(log[2], str) and log[2].strip():
        who = log[1].strip() if isinstance(log[1], str) else ""
        why += f" ({who}: {log[2].strip()})" if who else f" ({log[2].strip()})"
    message = f"cannot write video to {path}: {why}"
    return OSError(message) if no is None else OSError(no, message)


class _Output:
    """One output file: container, video stream, optional audio; lives on the encoder thread."""

    def __init__(self, path: Path, cfg: _Config) -> None:
        av = _av()
        self.path, self.cfg = path, cfg
        mp4 = cfg.muxer in ("mp4", "mov")
        opts = {"flush_packets": "1"}
        if mp4:
            opts["movflags"] = "frag_keyframe+empty_moov+default_base_moof+delay_moov"
        else:
            opts["cluster_size_limit"] = "0"  # a cluster per packet: all but the newest on disk
        try:
            self.container = _av_open(path, "w", format=cfg.muxer, options=opts)
        except (OSError, av.error.FFmpegError) as e:
            raise _cannot_write(path, e) from e
        try:
            self.container.metadata.update(cfg.metadata)
            s = self.container.add_stream(cfg.encoder, rate=cfg.fps)
            s.height, s.width = cfg.size
            s.pix_fmt = "yuv420p"
            cc = s.codec_context
            cc.gop_size = cfg.gop
            # tag what rgb_to_yuv420p produced, so players and our reader convert back right
            space, primaries, trc = _COLOR_TAGS[cfg.matrix]
            self.colorspace = space
            self.color_range = _RANGE_JPEG if cfg.full_range else _RANGE_MPEG
            cc.colorspace, cc.color_range = space, self.color_range
            cc.color_primaries, cc.color_trc = primaries, trc
            if cfg.encoder in ("libx265", "hevc_nvenc") and mp4:
                cc.codec_tag = "hvc1"  # what Apple players expect for HEVC in MP4
            if cfg.bitrate:
                s.bit_rate = cfg.bitrate
            opts = dict(cfg.options)
            # rgb_to_yuv420p's chroma is centre-sited (the mean of each 2x2 block); untagged,
            # players take 4:2:0 chroma as left-sited (H.264's default), half a pixel off.
            # FFmpeg passes the tag on to x264's and x265's VUI and to Matroska/WebM's
            # ChromaSiting. AV1's own header cannot say "centre" (SVT-AV1 warns), so AV1
            # in MP4 goes untagged; MP4's VP9 box says "co-located" for any but "left",
            # tagged or not
            if not (mp4 and cfg.encoder in CODECS["av1"][0] + CODECS["av1_nvenc"][0]):
                opts.setdefault("chroma_sample_location", "center")
            _quiet(cfg.encoder, opts)
            if cfg.encoder == "libx264" and (params := _x264_params(cfg.size[1])):
                given = [p for p in opts.get("x264-params", "").split(":") if p.strip()]
                if not any(_x264_key(p) == "asm" for p in given):  # a caller's own stands
                    opts["x264-params"] = ":".join([*given, params])
            s.options = opts
            self.stream = s
            # all streams must exist before the first packet writes the header
            self.audio = (
                _AudioFeed(self.container, cfg.audio, sync=cfg.audio_sync) if cfg.audio else None
            )
            # the encoders opened, each with its own options, as its first frame did
            # (their errors as they were; a failure leaves the file as it was), then the
            # file made, now, just after the writer looked at what is there
            # (_Encoder._make_way), not at the first packet, x264's many frames later:
            # a file opened meanwhile in a VideoReader (a kept partial file) was
            # truncated under the reader, and a link made meanwhile written through
            # (a review)
            self._open_encoders()
            try:
                self.container.start_encoding()
            except (OSError, av.error.FFmpegError) as e:
                raise _cannot_write(path, e) from e
        except BaseException:
            self.abandon()
            raise
        self.time_base = 1 / cfg.fps
        self.count = 0  # frames sent to the encoder
        self.durable = _Durable(cut_at_keyframes=mp4)
        # video packets the muxer may hold: (time, frame, keyframe, decoding time)
        self._gate: deque[tuple[float, int, bool, float | None]] = deque()
        self._dts_shift: int | None = None  # see _repair_dts

    def _open_encoders(self) -> None:
        """Open each stream's encoder with the options given it."""
        for st in self.container.streams:
            if not st.codec_context.is_open:
                st.codec_context.open()

    def encode(self, planes: np.ndarray) -> None:
        av = _av()
        if planes.shape[0] % 6 == 0:
            # zero copy: the frame wraps the numpy buffer (PyAV computes the height
            # as rows // 6 * 4, right only when the height is a multiple of 4)
            frame = av.VideoFrame.from_numpy_buffer(planes, format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.colorspace, frame.color_range = self.colorspace, self.color_range
        frame.pts, frame.time_base = self.count, self.time_base
        self.count += 1
        for p in self.stream.encode(frame):
            self._mux_video(p)
        if self.audio is not None:
            self.audio.feed(self.count / float(self.cfg.fps), self._mux_audio)

    def _mux_video(self, p: Any) -> None:
        self._repair_dts(p)
        t = p.pts * p.time_base  # read before muxing: mux rebases the packet in place
        d = _decode_time(p)
        index, key = int(round(t * self.cfg.fps)), bool(p.is_keyframe)
        self.container.mux(p)
        if self.audio is None:
            self.durable.muxed(index, key)
        else:
            # with two streams the muxer interleaves: a video packet is written
            # once an audio packet with a later time has arrived
            self._gate.append((float(t), index, key, d))
            self._release()

    def _repair_dts(self, p: Any) -> None:
        """Take out an implausible decoding-time offset: libx265 sometimes gives a stream
        of two frames one garbage DTS offset, the same for each packet (seen: -1.4e14 to
        -6e18; 3 of 12 streams in one try), which MP4 and MOV refuse at close ("pts/dts
        pair unsupported") and Matroska writes. The first packet's DTS is plausible if
        it is at most its PTS and not more than ``_MAX_REORDER`` frames before it;
        otherwise the offset that makes it equal its PTS (no reordering yet) is taken
        out of every packet."""
        if p.dts is None or p.pts is None:
            return
        if self._dts_shift is None:
            lead = (p.pts - p.dts) * p.time_base * self.cfg.fps
            self._dts_shift = 0 if 0 <= lead <= _MAX_REORDER else p.dts - p.pts
        if self._dts_shift:
            p.dts -= self._dts_shift

    def _mux_audio(self, p: Any) -> None:
        assert self.audio is not None
        if p.pts is not None:
            self.audio.time = float(p.pts * p.time_base)
        if self.audio.first_dts is None:
            self.audio.first_dts = _decode_time(p)
        self.container.mux(p)
        self._release()

    def _release(self) -> None:
        assert self.audio is not None
        first = self.audio.first_dts
        while self._gate and self._gate[0][0] < self.audio.time:
            _, index, key, d = self._gate.popleft()
            # the MP4 muxer cuts no fragment before its first moov, which waits for a
            # packet of every track: a keyframe written (in decoding-time order) before the
            # first audio packet cut nothing, and its fragment's frames were not on disk
            # (with B-frames a scene cut at frame 1 comes first: flush() said 1, a kill
            # left an empty file)
            self.durable.muxed(index, key and first is not None and d is not None and d > first)

    def flush_to_disk(self, fsync: bool) -> None:
        if fsync and self.path.exists():
            fd = os.open(self.path, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        for p in self.stream.encode(None):
            self._mux_video(p)
        if self.audio is not None:
            self.audio.feed(self.count / float(self.cfg.fps), self._mux_audio, final=True)
        self.container.close()
        if self.count:
            _check_complete(self.path, self.count, self.cfg.fps)
        for _, index, key, _ in self._gate:
            self.durable.muxed(index, key)
        self._gate.clear()
        self.durable.finish()

    def abandon(self) -> None:
        """After an error: close what can be closed, so the file is as complete as it gets."""
        for c in (getattr(getattr(self, "audio", None), "src", None), self.container):
            try:
                if c is not None:
                    c.close()
            except Exception:  # noqa: BLE001 - already failing; the first error is reported
                pass


@dataclass
class _Flush:
    fsync: bool
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _End:
    reverse: bool  # append the ping-pong reversal (False after an exception in the caller)


_Item = np.ndarray | _Flush | _End


class _Discarded(Exception):
    """Ends an encoder thread told to discard its files (:meth:`_Encoder.discard`)."""


class _SettingsRefused(ValueError):
    """The encoder refused a writer's settings. Its message names the writer's path,
    which :func:`writing_video` turns into its output's (the writer's is the partial
    file, which the caller never named)."""


class _FolderRefused(OSError):
    """A writer's folder is missing or not writable: the output's as much as its partial
    file's, so :func:`writing_video` names the output, as for :class:`_SettingsRefused`."""


class VideoWriter:
    """Encode RGB frames to a video file on a background thread.

    Frames go through a bounded queue to an encoder thread; the caller waits
    only when ``queue_size`` frames are waiting. An error in the encoder thread
    is raised again in the caller, as it was, on the next :meth:`write`,
    :meth:`flush` or :meth:`close`. Use it as a context manager: leaving the
    block closes the file, also when the block raised (the caller's exception
    is the one that propagates).

    Parameters
    ----------
    path : output file; the extension picks the container: ``.mp4``, ``.m4v``,
        ``.mov``, ``.mkv`` or ``.webm`` (WebM holds VP9 or AV1 only, MOV
        H.264 or H.265 only)
    fps : frames per second: int, float, Fraction or a string like ``"30000/1001"``
    codec : one of :func:`list_encoders`: ``"h264"``, ``"h265"``, ``"vp9"``, ``"av1"``,
        ``"h264_nvenc"``, ``"hevc_nvenc"``, ``"av1_nvenc"``; None (the default): ``"vp9"``
        for a ``.webm`` path (WebM takes VP9 and AV1 only), else ``"h264"``
    crf : constant quality, lower is better (default 18 unless ``bitrate`` is given):
        0..51 for x264/x265/NVENC (NVENC's ``cq``), 0..63 for VP9 and AV1
    preset : the encoder's speed preset (``"slow"`` for x264/x265, 0..13 for SVT-AV1,
        ``cpu-used`` 0..8 for VP9 and libaom, ``"p1"``..``"p7"`` for NVENC)
    bitrate : target bits per second instead of constant quality
    keyframe_interval : frames between keyframes (default: one second of video);
        MP4 output loses at most about this many frames (plus the encoder's
        look-ahead) when the process is killed
    matrix, full_range : the YUV conversion (see :func:`loopwave.rgb_to_yuv420p`),
        tagged in the stream so players convert back with the same matrix; the chroma's
        place (centre-sited) is tagged too, in H.264 and H.265 streams and in MKV and
        WebM files (an AV1 stream in MP4 cannot carry it, and MP4's VP9 box records
        "co-located" whatever it is told)
    title : metadata title
    settings : a mapping stored, with the encoder settings used, as JSON in the
        ``comment`` tag: ``{"video": {...}, "settings": {...}}``
        (read it back with :attr:`VideoReader.settings`)
    audio : a file whose first audio stream is muxed in, as AAC (Opus in WebM),
        from its start, cut to the video's length
    audio_sync : the frames written are ``audio``'s own video's (interpolated, as
        ``loopwave interpolate`` writes them): its sound keeps its place against that
        video's first frame, the output's 0, whatever the two streams' start times
        (without ``audio``: a ValueError)
    segment_seconds : split into files of this many seconds each, named
        ``<stem>_000<ext>``, ``<stem>_001<ext>``, ... (:attr:`paths` lists them);
        not with ``audio`` or ``pingpong``. Existing files of those names are
        overwritten, and on closing, the ones numbered after the last segment
        written (an earlier, longer run's) are deleted, so that a glob of
        ``<stem>_*<ext>`` gives this video and nothing else. A writer whose encoder
        fails (a full disk) leaves them, and its error says which parts are whose (a
        note, Python 3.11+)
    pingpong : after the frames, append them again reversed, without repeating the
        last and the first frame, so the file loops back and forth seamlessly:
        N frames become ``2N - 2`` (one frame stays one). A sound (``audio``) plays on
        forward through the reversed half, neither reversed nor looped, cut to the
        video's length (with ``audio_sync``, in step with the forward half only). The
        reversal needs every frame again at the end:
        the encoder thread spills the I420 planes (1.5 bytes per pixel per frame,
        3.1 MB per 1080p frame) to an unnamed temporary file in the output's
        folder, so memory stays flat; make sure that disk has room
    queue_size : frames waiting for the encoder, at most
    options : more FFmpeg encoder options, e.g. ``{"tune": "grain"}``; they win
        over the ones loopwave derives. A name the encoder does not have (FFmpeg
        would ignore it) or a value it refuses raises ValueError

    Close the writer (or use ``with``): one still open when Python exits is finished then
    with the frames it was given (no ping-pong), but not if the process is killed.

    Writing over a file that is being read is not supported: the writer truncates it
    and the reader decodes a mix of old and new packets. A ``path`` that an open
    :class:`VideoReader` of this process reads is refused (ValueError); readers in
    other processes cannot be seen, so do not write to a file they read.
    :func:`writing_video` writes under a temporary name and renames at the end.

    Odd frame sizes are padded to even by repeating the last row and column
    (4:2:0 chroma needs even sizes); :attr:`size` gives the encoded size. Frames
    are ``uint8`` RGB, or ``float32`` RGB in [0, 1].

    Example
    -------
    >>> import numpy as np
    >>> from loopwave.video import VideoWriter
    >>> frames = np.zeros((30, 48, 64, 3), np.uint8)
    >>> with VideoWriter("out.mp4", fps=30, codec="h264", crf=18) as w:  # doctest: +SKIP
    ...     for f in frames:
    ...         w.write(f)
    ...     w.flush()  # returns the frames safely on disk
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: int | float | Fraction | str = 30,
        codec: str | None = None,
        crf: int | None = None,
        preset: str | int | None = None,
        bitrate: int | None = None,
        keyframe_interval: int | None = None,
        matrix: str = "bt709",
        full_range: bool = False,
        title: str | None = None,
        settings: Mapping[str, Any] | None = None,
        audio: str | os.PathLike[str] | None = None,
        segment_seconds: float | None = None,
        pingpong: bool = False,
        queue_size: int = 8,
        options: Mapping[str, str] | None = None,
        audio_sync: bool = False,
        _own_file: bool = False,
    ) -> None:
        # ``_own_file`` (writing_video's partial files): a link, a hard link or a FIFO at
        # a file this writer makes is replaced when the file is opened, not written
        # through, nor followed by the checks below (a review: a link to a folder was
        # refused as a folder), and a segmented writer's unnumbered path is never
        # written; refusals name ``output``, writing_video's argument
        av = _av()
        # (a review: a NUL byte, where FFmpeg ends the name, wrote "a\0.mp4" over a file "a")
        _check_name("path", path, "a video file")
        self.path = Path(path)
        muxer = _MUXERS.get(self.path.suffix.lower())
        if muxer is None:
            raise ValueError(
                f"path: cannot tell the container of {self.path}; "
                f"use one of the extensions {sorted(_MUXERS)}"
            )
        parent = self.path.parent
        if not parent.is_dir():
            raise _FolderRefused(
                f"path: cannot write to {self.path}: the folder {parent} is missing"
            )
        if not os.access(parent, os.W_OK):
            raise _FolderRefused(f"path: cannot write to {self.path}: the folder is not writable")
        # (a hard link there too: made afresh, so a reader of its other name reads on;
        # and segmented, the path itself is never written, only its numbered parts: an
        # input there was refused as "open in a VideoReader", a review)
        replaced = _own_file and (segment_seconds is not None or _not_ours_to_write_into(self.path))
        if self.path.is_dir() and not replaced:
            where = "output" if _own_file else "path"
            raise OSError(f"{where}: cannot write to {self.path}: it is a folder")
        self.fps = parse_fps(fps)

        if not replaced:  # (writing_video's own file: its argument is output)
            _refuse_open_input(self.path, "output" if _own_file else "path")
        if codec is None:
            codec = "vp9" if muxer == "webm" else "h264"
        codec, encoder = _codec_encoder(codec)
        allowed = _CONTAINER_CODECS.get(muxer)
        if allowed is not None and codec not in allowed:
            raise _SettingsRefused(
                f"codec {codec!r} cannot go in the {_CONTAINER_NAMES[muxer]} container "
                f"({self.path}); use one of {list(allowed)} or an .mp4/.mkv path"
            )
        self.codec = codec
        self.encoder = encoder

        bitrate = _positive_int(bitrate, "bitrate", allow_none=True, most=10**12)
        if crf is not None and bitrate is not None:
            raise ValueError("give crf (constant quality) or bitrate, not both")
        if crf is None and bitrate is None:
            crf = _DEFAULT_CRF
        if crf is not None:
            if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)):
                raise TypeError(f"crf must be an int or None; got {crf!r}")
            _check_crf(crf, self.encoder)
            crf = int(crf)
        if preset is not None and (isinstance(preset, bool) or not isinstance(preset, (str, int))):
            raise TypeError(f"preset must be a string or an int; got {preset!r}")
        if keyframe_interval is None:
            keyframe_interval = max(1, round(float(self.fps)))
        gop = _positive_int(keyframe_interval, "keyframe_interval")
        assert gop is not None
        if not isinstance(matrix, str):
            raise TypeError(f"matrix must be a string such as 'bt709'; got {matrix!r:.40}")
        # the names rgb_to_yuv420p takes, as the one each stands for
        matrix = _MATRIX_NAMES.get(matrix.lower(), matrix)
        if matrix not in _COLOR_TAGS:
            raise ValueError(
                f"matrix must be one of {sorted(_COLOR_TAGS)} (or an alias rgb_to_yuv420p "
                f"takes: {sorted(_MATRIX_NAMES)}); got {matrix!r:.40}"
            )
        if not isinstance(full_range, (bool, np.bool_)):
            raise TypeError(f"full_range must be True or False; got {full_range!r}")
        if not isinstance(pingpong, (bool, np.bool_)):
            raise TypeError(f"pingpong must be True or False; got {pingpong!r}")
        qsize = _positive_int(queue_size, "queue_size")
        assert qsize is not None
        enc_opts = _encoder_options(self.encoder, crf, preset, bitrate)
        if options is not None:
            if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
                raise TypeError(f"options must be a mapping of str to str; got {options!r:.80}")
            enc_opts.update({k: str(val) for k, val in options.items()})
        check_frame_rate(self.encoder, self.fps)
        self._enc_opts, self._bitrate = enc_opts, bitrate  # the first frame's size is tried
        try:  # surface a bad preset or option here, not on the first frame
            _try_open(self.encoder, enc_opts, bitrate)
        except av.error.FFmpegError as e:
            # every setting given, the bitrate too (the codec's, not an option): from a
            # review, `--bitrate 999` was refused as "these settings ({})"
            given: dict[str, Any] = {**enc_opts, **({"bitrate": bitrate} if bitrate else {})}
            raise _SettingsRefused(
                f"{self.encoder} does not accept these settings for {self.path} ({given}): {e}"
            ) from e

        metadata: dict[str, str] = {}
        if title is not None:
            if not isinstance(title, str):
                raise TypeError(f"title must be a string; got {type(title).__name__}")
            metadata["title"] = title
        if settings is not None and not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a mapping; got {type(settings).__name__}")
        used: dict[str, Any] = {
            "codec": codec,
            "encoder": self.encoder,
            "fps": str(self.fps),
            "keyframe_interval": gop,
            "matrix": matrix,
            "full_range": bool(full_range),
            "pingpong": bool(pingpong),
        }
        for k, val in (("crf", crf), ("preset", preset), ("bitrate", bitrate)):
            if val is not None:
                used[k] = val
        comment: dict[str, Any] = {"video": used}
        if settings is not None:
            comment["settings"] = dict(settings)
        try:
            metadata["comment"] = json.dumps(comment, default=str, sort_keys=True)
        except (TypeError, ValueError, RecursionError) as e:  # odd keys, a cycle
            raise TypeError(f"settings must be JSON-like (string keys, no cycles): {e}") from None

        if audio is not None:  # (an empty name was taken for the current folder)
            _check_name("audio", audio, "a sound file")
        self.audio = None if audio is None else Path(audio)
        if self.audio is not None:
            _check_audio(self.audio)
            # it was written over as it was read (a link replaced is not written through)
            if not replaced and _same_file(self.audio, self.path):
                raise ValueError(f"audio: {self.audio} is the output path; write to another file")
            if muxer == "webm" and "libopus" not in av.codecs_available:
                raise ValueError("audio: WebM needs the libopus encoder, which this PyAV lacks")
        if segment_seconds is not None:
            if isinstance(segment_seconds, bool) or not isinstance(
                segment_seconds, (int, float, np.integer, np.floating)
            ):
                raise TypeError(f"segment_seconds must be a number; got {segment_seconds!r}")
            if not 0 < segment_seconds < 10**9:
                raise ValueError(f"segment_seconds must be > 0 and finite; got {segment_seconds!r}")
            if self.audio is not None or pingpong:
                raise ValueError("segment_seconds cannot be combined with audio or pingpong")
        self.segment_frames = (
            # half a frame rounds up (round() took 2.5 frames to 2)
            None
            if segment_seconds is None
            else max(1, math.floor(segment_seconds * self.fps + 0.5))
        )
        self.pingpong = bool(pingpong)
        self.matrix, self.full_range = matrix, bool(full_range)
        self.metadata = metadata
        if not isinstance(audio_sync, (bool, np.bool_)):
            raise TypeError(f"audio_sync must be True or False; got {audio_sync!r:.40}")
        if audio_sync and self.audio is None:  # (it was taken and did nothing)
            raise ValueError("audio_sync=True needs audio, the sound to keep in step; got none")
        self._cfg = _Config(
            self.encoder, muxer, self.fps, gop, enc_opts, bitrate, matrix, self.full_range,
            metadata, self.audio, audio_sync=bool(audio_sync),
        )  # fmt: skip
        self.size: tuple[int, int] | None = None  # (height, width) as encoded
        self._first = (0, 0)  # (height, width) of the first frame, as given
        self.frames_queued = 0
        self._closed = False
        # held around the closed check and the put of write() and flush(), and around
        # close()'s flag and end marker, so nothing is queued behind the end marker: from
        # a review, a write() racing close() on another thread returned with its frame
        # queued after the end and never encoded, and a flush() waited forever for the
        # encoder that had ended. The encoder thread never takes it, so a put that waits
        # for room in the queue while holding it is let go once the encoder has taken one
        self._lock = threading.Lock()
        # the encoder thread's state lives apart from the writer, so the thread holds no
        # reference to it: a writer dropped without close() is collected, and its
        # finalizer ends the file (the thread held the writer, and with it the encoder
        # and its frames, until the interpreter exited: 40 MB a forgotten 720p writer,
        # its video written only then)
        enc = _Encoder(self.path, self._cfg, qsize, self.pingpong, self.segment_frames)
        enc.replace_links = _own_file
        self._enc = enc
        _running.add(enc)
        try:
            enc.thread.start()
        except BaseException:  # (no thread to wait for at exit)
            _running.discard(enc)
            raise
        _open_writers.add(self)
        # a writer dropped unclosed ends its file as after an error (its frames, no
        # ping-pong); one still open at exit is finished by _finish_open_writers
        self._finalizer = weakref.finalize(self, enc.end)
        self._finalizer.atexit = False

    # -- caller side ---------------------------------------------------------
    @property
    def frames_on_disk(self) -> int:
        """Frames, counted from the first, that a reader gets from the file(s) as they are now.

        Exact after :meth:`close`; between writes it trails what was written by
        the queue, the encoder's look-ahead and (MP4) the current fragment. With
        ``audio`` it counts only video the muxer has interleaved with later sound,
        so after the sound ends it stays put until :meth:`close`.
        """
        return self._enc.on_disk()

    @property
    def paths(self) -> list[Path]:
        """The files opened so far."""
        return self._enc.paths

    @property
    def frames_written(self) -> int:
        """Frames the encoder thread has encoded."""
        return self._enc.frames_written

    def write(self, frames: np.ndarray) -> None:
        """Queue one frame ``(H, W, 3)`` or a batch ``(N, H, W, 3)``, ``uint8`` RGB
        (or ``float32`` in [0, 1]); all frames must have one size."""
        self._check_usable("write")
        x, _ = v.frames(frames, "frames")
        h, w = x.shape[1:3]
        even = (h + h % 2, w + w % 2)
        if self.size is None:
            check_frame_size(self.encoder, h, w, options=self._enc_opts, bitrate=self._bitrate)
        elif (h, w) != self._first:
            raise ValueError(
                f"frames must keep one size; got {w} wide, {h} high after "
                f"{self._first[1]} wide, {self._first[0]} high"
            )
        if h % 2 or w % 2:
            x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        planes = rgb_to_yuv420p(x, matrix=self.matrix, full_range=self.full_range)
        with self._lock:  # (converted without it; closed since?)
            self._check_usable("write")
            if self.size is None:  # set by a frame that converted (a refused one sets none)
                self.size = even
                self._cfg.size = even
                self._first = (h, w)
            elif (h, w) != self._first:  # two threads' first frames (a later review)
                raise ValueError(
                    f"frames must keep one size; got {w} wide, {h} high after "
                    f"{self._first[1]} wide, {self._first[0]} high"
                )
            for p in planes:
                self._put(p)
                self.frames_queued += 1

    def flush(self, *, fsync: bool = False) -> int:
        """Wait until the encoder thread has taken every frame written so far.

        Returns :attr:`frames_on_disk`: that many frames survive if the process
        is killed now. ``fsync=True`` also asks the OS to put the file on the
        disk itself (survives a power cut; slower).
        """
        item = _Flush(bool(fsync))
        with self._lock:
            self._check_usable("flush")
            self._put(item, "flush")
        while not item.done.wait(0.05):
            # an encoder that has ended never takes it (it stops at the end marker, or
            # after an error whose report another thread took): not a wait forever
            ended = not self._enc.alive()
            self._raise_if_failed()
            if ended and not item.done.is_set():
                self._closed = True
                raise ValueError("flush: the writer is closed")
        self._raise_if_failed()
        if self._enc.deleted:  # (each waiting thread: the error went to one)
            raise ValueError("flush: the writer is closed (an error deleted its files)")
        return self.frames_on_disk

    def close(self) -> None:
        """Encode what is queued, add the ping-pong reversal, flush the encoder and
        close the file(s). Calling it again does nothing. A writer that was given
        no frames creates no file. A reversal still being encoded when Python exits (a
        close() on a daemon thread) or at Ctrl-C stops there, the file ended with the
        frames so far, and close() raises RuntimeError (where it still runs); so does a
        ping-pong close() that the garbage collector runs on the encoder's own thread,
        which ends the file without the reversal."""
        self._finish(reverse=True)

    def _finish(self, reverse: bool, seen: Callable[[int], object] | None = None) -> None:
        """End the file (see :meth:`close`); ``seen(n)`` is called with the frames
        encoded so far, every 0.1 s, while the encoder finishes (the ping-pong reversal
        is encoded then)."""
        if threading.current_thread() is self._enc.thread:
            # the garbage collector, closing a generator that held this writer, on the
            # encoder's own thread: waiting (or putting into the queue it empties) it
            # waited for itself for good, and the exit hook for it. Ended as dropped.
            if self._closed:  # (a second close does nothing: end() cut a reversal)
                return
            self._let_go()
            self._enc.end()
            if reverse and self.pingpong and self.frames_queued > 2:  # (__del__ prints it)
                raise RuntimeError(
                    "close() ran on the writer's own encoder thread (the garbage "
                    f"collector): {self.path} ends without its ping-pong reversal"
                )
            return
        with self._lock:  # the end marker goes last (see __init__)
            if self._closed:
                self._raise_if_failed()
                return
            self._let_go()
            try:
                self._put(_End(reverse), "close")
            except BaseException:
                # (Ctrl-C while waiting for room in the queue): the thread still ends the
                # file, and the exit hook waits for it
                self._enc.end()
                raise
        try:
            while not self._enc.finished.wait(0.1):
                if seen is not None:
                    seen(self._enc.frames_written)
        except BaseException:  # (Ctrl-C in the wait): as above
            self._enc.end()
            raise
        self._raise_if_failed()

    def _let_go(self) -> None:
        """Mark the writer closed, its end in hand: no finalizer, no exit hook for it."""
        self._closed = True
        self._finalizer.detach()
        _open_writers.discard(self)

    def _discard(self) -> None:
        """Close the writer for a failure whose files are not kept: the encoder stops at
        once and deletes them (see :meth:`_Encoder.discard`); waits for it."""
        self._enc.discard()  # first: a Ctrl-C after it leaves the encoder told
        self._let_go()
        if threading.current_thread() is not self._enc.thread:  # (see _finish)
            self._enc.finished.wait()

    def _check_usable(self, what: str) -> None:
        self._raise_if_failed()
        if self._closed:
            raise ValueError(f"{what}: the writer is closed")

    def _put(self, item: _Item, what: str = "write") -> None:
        while True:
            self._raise_if_failed()
            if self._enc.deleted:
                raise ValueError(f"{what}: the writer is closed (an error deleted its files)")
            if not self._enc.alive():
                self._raise_if_failed()
                raise RuntimeError("the video encoder thread has stopped")
            try:
                self._enc.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        """Raise the encoder thread's error in the caller, once."""
        enc = self._enc
        if enc.error is not None:
            err, enc.error = enc.error, None
            self._closed = True
            raise err

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.close()
            return
        # an exception in the caller: still finish the file cleanly (what was
        # written, no ping-pong), and keep the caller's exception as the one raised
        try:
            self._finish(reverse=False)
        except Exception:  # noqa: BLE001 - the caller's exception wins
            pass


class _Encoder:
    """A writer's encoder thread and what it alone changes: the output files, the counts
    of frames encoded and on disk, the error to hand the writer. It holds no reference
    to the writer."""

    def __init__(
        self,
        path: Path,
        cfg: _Config,
        qsize: int,
        pingpong: bool,
        segment_frames: int | None,
    ) -> None:
        self.path, self.cfg = path, cfg
        self.queue: queue.Queue[_Item] = queue.Queue(maxsize=qsize)
        self.pingpong, self.segment_frames = pingpong, segment_frames
        self.paths: list[Path] = []  # files opened so far
        self.frames_written = 0  # frames encoded
        self.closed_on_disk = 0  # frames in files already closed (segments)
        self.out: _Output | None = None
        self.error: BaseException | None = None
        self.ending = False  # see end()
        self.discarding = False  # see discard()
        self.deleted = False  # the files were deleted by discard()
        # the files are writing_video's partial files, its own, where a link is replaced
        # (_make_way), not written through
        self.replace_links = False
        self.started = False  # an output file opened, or tried (see _made)
        # the part being started, and what was at its name before (see _say_earlier_parts)
        self._starting: tuple[Path, tuple[int, int, int] | None] | None = None
        # the error, kept after it is handed to a caller: writing_video renames no video
        # whose encoder failed (a producer thread that caught it let a cut video in)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self.run, name="loopwave-encoder", daemon=True)
        # set when the thread has ended the file. Waited on instead of Thread.join: a
        # KeyboardInterrupt in a join marks the thread stopped in CPython 3.11 (bpo-45274's
        # handling), after which join and is_alive say it ended while it still writes, and
        # the exit hook let the process exit with the file cut short (Ctrl-C in close())
        self.finished = threading.Event()

    def alive(self) -> bool:
        return not self.finished.is_set()

    def on_disk(self) -> int:
        if self.deleted:
            return 0
        out = self.out
        return self.closed_on_disk + (out.durable.prefix if out is not None else 0)

    def end(self) -> None:
        """Ask the thread to finish the file as after an error (its frames, no ping-pong)
        once it has taken what is queued, and stop; never blocks (a dropped writer's
        finalizer, which the garbage collector may run on the encoder thread itself)."""
        self.ending = True

    def discard(self) -> None:
        """Ask the thread to stop at once, without encoding what is queued or flushing
        the encoder, and delete its files (a failure whose partial file is not kept: the
        error or Ctrl-C waited for every queued frame, 23 s at x264's veryslow, and the
        file was deleted before the encoder, still writing, made it). Never blocks."""
        self.discarding = self.ending = True

    def segment_path(self, i: int) -> Path:
        return self.path if self.segment_frames is None else _numbered(self.path, i)

    def _remove_stale_segments(self) -> None:
        """Delete the segments numbered after this run's last, left by an earlier,
        longer run to the same path, so the numbered files are this run's alone (also
        for a writer dropped unclosed)."""
        for p in _numbered_from(self.path, len(self.paths)):
            p.unlink()

    def _say_earlier_parts(self, e: BaseException) -> None:
        """A plain segmented writer whose encoder fails (a full disk) leaves its parts
        beside an earlier, longer run's later ones, each a playable video of that run,
        which only an end without such a failure removes: the error says which parts are
        whose (Python 3.11+, which has notes). A part it was starting counts as this
        run's where its file changed (a review: one made and cut to its header was
        called the earlier run's, left as it was). Never in the way of the error itself
        (a review: a folder it may not look into ended the thread with that error)."""
        if self.segment_frames is None or self.replace_links or not hasattr(e, "add_note"):
            return
        with contextlib.suppress(Exception):
            mine = [p.name for p in self.paths]
            if self._starting is not None:
                path, before = self._starting
                if _file_key(path) != before:
                    mine.append(path.name)
            older = [p.name for p in _numbered_from(self.path, len(mine))]
            if mine and older:
                e.add_note(
                    f"path: {_span(mine)} {_is_are(mine)} this run's; {_span(older)} "
                    f"{_is_are(older)} an earlier run's, left as "
                    f"{'it was' if len(older) == 1 else 'they were'}"
                )

    def _encode(self, planes: np.ndarray) -> None:
        out = self.out
        if out is not None and self.segment_frames and out.count >= self.segment_frames:
            self._close_output()
            out = None
        if out is None:
            path = self.segment_path(len(self.paths))
            self._make_way(path)  # (before `started`: a file it refuses is not its own)
            self.started = True  # (a file may be made, whether or not the open succeeds)
            self._starting = (path, _file_key(path))  # (for _say_earlier_parts)
            out = _Output(path, self.cfg)
            self.paths.append(out.path)
            self._starting = None
            self.out = out
        out.encode(planes)
        self.frames_written += 1

    def _make_way(self, path: Path) -> None:
        """Before the output file ``path`` is opened (the single file, or each segment,
        which the writer's own checks never saw), one look at what is there. At a file
        that is the writer's own (``replace_links``: writing_video's partial files), a
        link, a hard link or a FIFO is removed, not written through (from reviews: the
        file a link led to, outside the folder, was overwritten with the video, and the
        output left a link to it; a hard link's other file was emptied and rewritten); a
        plain file there, a kept partial video, is left for FFmpeg to replace as it
        opens the file, just after this look and once the encoders are open, so a
        writer whose encoder cannot open does not lose it. Otherwise a file open in a
        reader is refused (a part open in a reader was written over, and the reader got
        a cut-short video), and at its own name a write-protected one (FFmpeg said
        "Permission denied", naming no file)."""
        own = self.replace_links
        if own and _not_ours_to_write_into(path):
            with contextlib.suppress(FileNotFoundError):  # (gone meanwhile)
                path.unlink()
            return
        _refuse_open_input(path, "output" if own else "path")
        if own and _write_protected(path):
            raise OSError(
                errno.EACCES,
                f"output: cannot write video to {path}: it {_PROTECTED}; move it, or choose "
                "another output name",
            )

    def _close_output(self) -> None:
        out = self.out
        if out is not None:
            out.close()
            # in this order a concurrent frames_on_disk may undercount, never overcount
            self.out = None
            self.closed_on_disk += out.durable.prefix

    def run(self) -> None:
        try:
            self._run()
        finally:
            _running.discard(self)
            self.finished.set()

    def _run(self) -> None:
        spill: io.BufferedRandom | None = None
        spilled = 0
        try:
            while True:
                if self.discarding:
                    raise _Discarded
                try:
                    item = self.queue.get(timeout=0.25)
                except queue.Empty:
                    if not self.ending:
                        continue
                    item = _End(False)
                if self.discarding:
                    raise _Discarded
                if isinstance(item, np.ndarray):
                    self._encode(item)
                    if self.pingpong:
                        try:
                            if spill is None:
                                # unnamed: the OS removes it however the process ends
                                spill = tempfile.TemporaryFile(
                                    prefix=".loopwave-pingpong-", dir=self.path.parent
                                )
                            spill.write(item.data)
                        except OSError as e:  # ("[Errno 27] File too large" named nothing)
                            raise OSError(
                                e.errno,
                                f"ping-pong: cannot keep the frames to reverse in a "
                                f"temporary file in {self.path.parent.absolute()} "
                                f"({e.strerror or e})",
                            ) from e
                        spilled += 1
                elif isinstance(item, _Flush):
                    if self.out is not None:
                        self.out.flush_to_disk(item.fsync)
                    item.done.set()
                else:
                    cut = None
                    if item.reverse and spill is not None and spilled > 2:
                        cut = self._encode_reversed(spill, spilled)
                    if self.discarding:
                        raise _Discarded
                    self._close_output()
                    if self.discarding:  # (told during the flush: its files go too)
                        raise _Discarded
                    if self.segment_frames is not None and self.paths:
                        self._remove_stale_segments()
                    if cut is not None:
                        # the close() waiting for it returned as if whole (a daemon
                        # thread's, at the program's exit): a video cut short was renamed
                        # into place by writing_video; kept as the failure too, for
                        # writing_video where another thread took the error first
                        self.error = self.failure = RuntimeError(
                            f"ping-pong: the reversal stopped at the program's exit (or "
                            f"Ctrl-C) after {cut} of its {spilled - 2} frames; "
                            f"{self.path} holds the frames and those {cut}"
                        )
                    return
        except BaseException as e:  # reported to the caller on its next call
            if self.out is not None:
                self.out.abandon()
            if self.discarding:  # (also where a flush under way failed: its file made)
                # for every thread's flush(), write() and frames_on_disk (a flush
                # returned a count of frames on disk, of files deleted)
                self.deleted = _unlink_all(self.paths)
            if not isinstance(e, _Discarded):  # (the caller already has its error)
                self._say_earlier_parts(e)
                self.error = self.failure = e
            while True:  # drain, so a blocked producer or flush notices the failure
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Flush):
                    item.done.set()
        finally:
            if spill is not None:
                # thrown away: its flush failing again on a full disk (a second ENOSPC)
                # escaped the thread with a traceback after the error was reported
                with contextlib.suppress(OSError):
                    spill.close()

    def _encode_reversed(self, spill: io.BufferedRandom, n: int) -> int | None:
        """Encode the ``n`` spilled frames' reversal; the frames encoded where :meth:`end`
        stopped it, else None."""
        h, w = self.cfg.size
        rows = h * 3 // 2
        nbytes = rows * w
        spill.flush()
        for k in range(n - 2, 0, -1):
            if self.ending:  # end(): Ctrl-C in close(), or the exit (no ping-pong)
                return n - 2 - k
            planes = np.empty((rows, w), np.uint8)
            spill.seek(k * nbytes)
            if spill.readinto(planes.data.cast("B")) != nbytes:
                raise OSError("ping-pong: the temporary frame file came back short")
            self._encode(planes)
        return None


# the readers open in this process: a writer refuses to truncate a file one of them reads
_open_readers: weakref.WeakSet[_Decoder] = weakref.WeakSet()
# writers not yet closed, and encoder threads still running: the thread is a daemon, so a
# writer not closed lost what was queued and the encoder's buffered frames when Python
# exited (29 of 90 frames on disk); at exit each open writer is finished as after an error
# (its frames, no ping-pong), and the threads of writers dropped unclosed (ended by their
# finalizers) are waited for
_open_writers: weakref.WeakSet[VideoWriter] = weakref.WeakSet()
_running: set[_Encoder] = set()


@atexit.register
def _finish_open_writers() -> None:
    for w in list(_open_writers):
        with contextlib.suppress(Exception):
            w._finish(reverse=False)
    for enc in list(_running):
        enc.end()  # a writer whose close() was interrupted never queued its end
        enc.finished.wait()


def _not_ours_to_write_into(path: Path) -> bool:
    """Whether what is at a writer's own name ``path`` must be removed before the writer
    opens it, rather than written into: a link (its target would be written), a regular
    file with other names (hard links: emptied and rewritten), a FIFO (waited on for
    ever). Not a folder (refused before) or a plain file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        return False
    return stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode) or st.st_nlink > 1


def _write_protected(path: Path) -> bool:
    """Whether ``path`` is a plain file of one name (not a link, nor a hard link, which
    a writer removes rather than writes into) that this writer may not write into, which
    stays at a writer's own name (a partial video or segment): from a review, a kept
    part made read-only failed at the first frame, with an error naming no file.
    Protected: this user may not write it, or its owner may not (``chmod 444``), which
    holds for root too."""
    try:
        st = os.lstat(path)
    except OSError:  # (none there)
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        return False
    return not st.st_mode & stat.S_IWUSR or not os.access(path, os.W_OK)


_PROTECTED = "is write-protected (a part an earlier run kept?)"


def _goes_by(path: Path, entries: Iterable[Path]) -> Path | None:
    """The first of the folder ``entries`` that ``path`` is, or goes through on the way to
    what it names, else None: its name resolved one part at a time as the system does,
    each link followed (relative to the folder it is in), ``..`` taken after the link
    before it, and a folder compared as a file on disk (:func:`_same_file`: another
    mount of it is it). From reviews: a sound named by a link to the link at the partial
    name (``alias.wav``), through that link to a folder (``o.partial.mp4/song.wav``), or
    through a bind mount of its folder, was not found through it: the writer removed the
    link or the name, and the sound failed as "no such file"."""
    by_name: dict[str, list[Path]] = {}
    for e in entries:
        by_name.setdefault(e.name, []).append(e)
    cur, todo, hops = os.sep, list(Path(os.path.join(os.getcwd(), path)).parts[1:]), 0
    while todo:
        part = todo.pop(0)
        if part == "..":  # (after the links before it: cur is a real folder's path)
            cur = os.path.dirname(cur)
            continue
        for e in by_name.get(part, ()):
            if _same_file(cur, e.absolute().parent):
                return e
        nxt = os.path.join(cur, part)
        try:
            to = os.readlink(nxt)
        except OSError:  # not a link (or none there): a folder, or the name's end
            cur = nxt
            continue
        hops += 1
        if hops > 40:  # (a loop: the system gives up at 40 links)
            return None
        to_parts = Path(to).parts
        if os.path.isabs(to):  # (from the root: "//x" is "/x" too, though its parts[0]
            cur, to_parts = os.sep, to_parts[1:]  # is "//": a review)
        todo[:0] = to_parts
    return None


class _InputCheck:
    """Whether making the writer's own names ``targets`` would destroy an input: its
    partial file (written into) and output (renamed over), or, segmented, their parts
    there now (written, renamed over or deleted). At those names a link or a file with
    other names is replaced, not written into, so an input is harmed only where its name
    is, or goes through, one of them (:func:`_goes_by`), or where it is the one file
    there, reached another way (a bind mount of the file itself). A hard link of the
    input, or a link to it, at such a name harms nothing and is not refused (older
    refusals, which a review found protecting nothing once such names were replaced).
    Each input is resolved once, whatever the number of targets (a review: inputs times
    parts, with a walk each, took 17 s for 1000 inputs beside 400 parts)."""

    def __init__(self, targets: list[Path]) -> None:
        self.targets = targets
        self.ones: dict[tuple[int, int], Path] = {}  # the one-link files there
        for t in targets:
            try:
                st = os.lstat(t)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                self.ones[(st.st_dev, st.st_ino)] = t

    def harm(self, src: Path) -> tuple[str, Path] | None:
        """(how, the target) where making it would destroy ``src``, else None."""
        hit = _goes_by(src, self.targets)
        if hit is not None:
            return ("replaces the link" if hit.is_symlink() else "goes through"), hit
        try:
            st = os.stat(src)
        except (OSError, ValueError):
            return None
        one = self.ones.get((st.st_dev, st.st_ino))
        return None if one is None else ("goes through", one)


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file or folder: the same on disk where both exist
    (links included, and another mount of a folder: a review found a bind mount's taken
    for another folder), else the same path once resolved."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # (realpath: Path.resolve raised bare on a link loop)
        return os.path.realpath(a) == os.path.realpath(b)


def _refuse_open_input(path: Path, arg: str) -> None:
    """Refuse to write ``path`` while a :class:`VideoReader` of this process reads it: the
    writer truncates the file under the reader, which then decodes a mix of old and new
    packets (a 200-frame source was read as 206 frames) or fails."""
    if not path.exists():
        return

    if any(
        not r._closed and _same_file(r._where_opened, path.absolute()) for r in list(_open_readers)
    ):
        raise ValueError(
            f"{arg}: {path} is open in a VideoReader; close it or write to another file"
        )


def _numbered(path: Path, i: int) -> Path:
    """Segment ``i`` of ``path``: ``<stem>_000<ext>``, ``<stem>_001<ext>``, ..."""
    return path.with_name(f"{path.stem}_{i:03d}{path.suffix}")


def _numbered_from(path: Path, i: int) -> list[Path]:
    """The files :func:`_numbered` ``(path, i)``, ``(path, i + 1)``, ... there now, up to the
    first number missing (an earlier, longer run's later parts, after a run's ``i``)."""
    found = []
    while (p := _numbered(path, i)).is_file():
        found.append(p)
        i += 1
    return found


def _segment_number(path: Path, name: str) -> int | None:
    """``i`` where ``name`` is :func:`_numbered` ``(path, i)``'s, else None (names the writer
    makes only: ``seg_0001.mp4`` or non-ASCII digits are none)."""
    m = re.fullmatch(rf"{re.escape(path.stem)}_(\d+){re.escape(path.suffix)}", name, re.ASCII)
    return int(m[1]) if m and _numbered(path, int(m[1])).name == name else None


def _check_name(arg: str, given: Any, what: str) -> None:
    """Refuse ``given`` as the path ``arg`` (of ``what``) unless it is a str or
    os.PathLike naming a non-empty str without a NUL byte (from reviews: bytes and NULs
    failed bare, naming nothing, and an empty name was taken for the current folder)."""
    name = os.fspath(given) if isinstance(given, (str, os.PathLike)) else None
    if not isinstance(name, str):
        raise TypeError(f"{arg}: expected a path (str or os.PathLike); got {given!r}")
    if not name:  # (Path("") is the current folder: "cannot write to .")
        raise ValueError(f"{arg}: got an empty path; give {what}")
    if "\0" in name:
        raise ValueError(f"{arg}: {name!r} holds a NUL byte, which no file name can")


def _segments_of(path: Path) -> list[tuple[int, Path]]:
    """The numbered segments of ``path`` in its folder now, each with its number
    (:func:`_segment_number`), in no order."""
    try:
        names = [(_segment_number(path, f.name), f) for f in path.parent.iterdir()]
    except OSError:  # no folder (yet)
        return []
    return [(i, f) for i, f in names if i is not None]


def _check_audio(path: Path) -> None:
    av = _av()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise OSError(f"audio: {what}: {path}")
    try:
        with _av_open(path) as c:
            if not c.streams.audio:
                raise ValueError(f"audio: {path} has no audio stream")
    except av.error.FFmpegError as e:
        raise ValueError(f"audio: {path} is not a readable media file ({e})") from e


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    """The frame's display matrix: FFmpeg's nine 32-bit numbers (``a b u c d v x y w``,
    ``a`` to ``d`` in 16.16 fixed point), or None where it has none."""
    # by name (PyAV 19 iterates the side data's types, not the data: every x264 file's
    # SEI made each VideoReader fail, "'Type' object has no attribute 'type'")
    data = frame.side_data.get("DISPLAYMATRIX")
    if data is None:
        return None
    raw = bytes(data)
    if len(raw) < 36:
        return None
    return tuple(int(x) for x in np.frombuffer(raw[:36], dtype=np.int32))  # native order


def _orientation(matrix: tuple[int, ...]) -> tuple[bool, int]:
    """What ``ffmpeg``'s autorotate does with a display matrix, as ``(mirror, turns)``:
    the frame is shown mirrored left-right (``mirror``), then turned ``turns`` quarter
    turns counterclockwise (``np.rot90``'s ``k``).

    FFmpeg rounds the matrix's angle to a degree and applies: at 90 degrees, a transpose
    where the matrix mirrors (``c > 0``), else a quarter turn clockwise; at 270, the
    other diagonal's transpose where it mirrors (``c < 0``), else a quarter turn
    counterclockwise; at 180, a mirror left-right where ``a < 0`` and upside down where
    ``d < 0`` (both: a half turn); at 0, upside down where ``d < 0``. Other angles (FFmpeg's
    ``rotate`` filter, which players do not apply) and degenerate matrices give
    ``(False, 0)``."""
    a, b, c, d = (x / 65536 for x in (matrix[0], matrix[1], matrix[3], matrix[4]))
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if sx == 0 or sy == 0:
        return False, 0
    angle = math.degrees(math.atan2(b / sy, a / sx))
    theta = math.floor(abs(angle) + 0.5) * (1 if angle >= 0 else -1)  # C's round()
    theta %= 360
    if theta == 90:
        return (True, 1) if c > 0 else (False, 3)
    if theta == 270:
        return (True, 3) if c < 0 else (False, 1)
    if theta == 180:
        left_right, upside_down = a < 0, d < 0
        if left_right and upside_down:
            return False, 2
        if left_right or upside_down:
            return True, 0 if left_right else 2
        return False, 0
    if theta in (0, 1):  # FFmpeg turns 359 by the rotate filter
        return (True, 2) if d < 0 else (False, 0)
    return False, 0


class _Decoder:
    """The state and the decoding of a :class:`VideoReader` (which see). Its read
    cursor's generator refers back to it; the reader in front does not, so a reader
    dropped without ``close()`` closes its decoder at once."""

    def __init__(
        self, path: str | os.PathLike[str], *, batch: int = 16, autorotate: bool = True
    ) -> None:
        _av()  # a clear ImportError first when PyAV is missing
        # (FFmpeg ends a name at a NUL byte: "a\0.mp4" read a file "a"; an empty name is
        # refused below, as an OSError, as it was)
        if not isinstance(path, (str, os.PathLike)) or os.fspath(path) != "":
            _check_name("path", path, "a video file")
        b = _positive_int(batch, "batch")
        assert b is not None
        if not isinstance(autorotate, (bool, np.bool_)):
            raise TypeError(f"autorotate must be True or False; got {autorotate!r}")
        self.batch = b
        self.path = Path(path)
        self._where_opened = self.path.absolute()  # the relative path may move (chdir)
        # held by whatever uses the container and its decoder after __init__ (a read, a
        # batch of an iteration, the index, close), so that threads sharing the reader
        # take turns: PyAV decodes without the GIL, and from a review, two threads reading
        # one reader aborted the process (SIGABRT) and a close() from another thread while
        # one read could crash it (SIGSEGV). Reentrant: fps uses frame_count
        self._lock = threading.RLock()
        if not self.path.is_file():
            if os.fspath(path) == "":  # (Path("") is ".", a folder)
                raise OSError("path: empty; name a video file")
            if self.path.is_dir():
                what = "is a folder, not a video file:"
            elif self.path.exists():  # a FIFO, a device
                what = "is not a regular file (a video file is read whole, seeking in it):"
            else:
                what = "no such file"
            raise OSError(f"path: {what} {self.path}")
        self.container = self._open()
        if not self.container.streams.video:
            self.container.close()
            raise ValueError(f"path: {self.path} has no video stream")
        self.stream = self.container.streams.video[0]
        try:
            h, w = self.stream.height, self.stream.width
        except AttributeError:  # a file cut off in its header: a stream without a codec
            self.container.close()
            raise ValueError(
                f"path: {self.path} is not a readable video (its video stream has no "
                "frame size: the file may be cut off)"
            ) from None
        self.stream.thread_type = "AUTO"
        self.metadata: dict[str, str] = dict(self.container.metadata)
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        # the rate the container declares (exact from loopwave's tag); see the fps property
        self._declared: Fraction = self._tagged_fps(Fraction(rate))
        self._fps: Fraction | None = None  # the fps property, once worked out
        # seconds from the first frame's time to the last frame's end, by the timestamps
        # (set by _index where every frame has a time of its own)
        self._span: Fraction | None = None
        self._count: int | None = None  # frames an iteration yields, once known
        self._indexed = False  # whether _index has run
        self._pts: list[int] = []  # frame i's presentation time (stream time base), sorted
        self._where: dict[int, int] = {}  # presentation time -> frame index
        self._keys: list[int] = []  # indices of the frames whose packets are keyframes
        # where the last read left the decoder: (the next frame's index, the iterator that
        # yields it, the decoder's move count then), so reads in order decode on
        self._cursor: tuple[int, Generator[Any, None, None], int] | None = None
        self._timed = True  # False: times cannot locate frames here, count from the start
        # bumped whenever the decoder is moved, so a suspended iterator knows to seek again
        self._moves = 0
        self._closed = False
        self.rotation = 0  # degrees counterclockwise, a multiple of 90, as applied
        self.mirrored = False  # whether frames are mirrored left-right before the rotation
        self._turns = 0  # quarter turns for np.rot90
        # (width, height) every frame is scaled to before the rotation: the first frame's
        self._size: tuple[int, int] = (w, h)
        self._probe_first(autorotate)
        w, h = self._size
        self.width: int = h if self._turns % 2 else w
        self.height: int = w if self._turns % 2 else h
        _open_readers.add(self)

    def _open(self) -> Any:
        av = _av()
        try:  # (a reopen too: the file first opened, wherever the working folder is now)
            return _av_open(self._where_opened)
        except (av.error.FFmpegError, UnicodeDecodeError) as e:  # damaged metadata: the latter
            raise ValueError(f"path: {self.path} is not a readable video ({e})") from None

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"VideoReader of {self.path} is closed")

    def _tagged_fps(self, rate: Fraction) -> Fraction:
        """The exact fps in loopwave's settings tag when the stream's rate is within 1e-4
        (relative) of it: Matroska keeps times in milliseconds, so 60000/1001 written
        reads back as 19001/317, and FFmpeg keeps its rate's terms under 30001, so
        33.333 reads back as 29933/898 (1.2e-6 off)."""
        video = (self.settings or {}).get("video")
        tagged = video.get("fps") if isinstance(video, dict) else None
        if tagged is None:
            return rate
        try:
            exact = parse_fps(tagged)
        except (TypeError, ValueError):
            return rate
        return exact if abs(rate - exact) <= exact / 10**4 else rate

    def _probe_first(self, autorotate: bool) -> None:
        """The first frame's size, which every frame is scaled to, and (``autorotate``)
        the orientation its display matrix asks for (see :func:`_orientation`; PyAV 18
        shows the matrix on frames only)."""
        try:
            first = next(self._decoded(), None)
        except ValueError:
            return  # undecodable: iterating reports it
        if first is None:
            return
        self._size = (int(first.width), int(first.height))
        if not autorotate:
            return
        matrix = _display_matrix(first)
        if matrix is None:
            return
        self.mirrored, self._turns = _orientation(matrix)
        self.rotation = {0: 0, 1: 90, 2: -180, 3: -90}[self._turns]

    @property
    def frame_count(self) -> int:
        with self._lock:
            self._check_open()
            self._index()
            assert self._count is not None
            return self._count

    @property
    def fps(self) -> Fraction:
        """The declared rate where the frames' timestamps agree with it, else
        ``frame_count / span`` (see VideoReader.fps); worked out once, at the first use."""
        with self._lock:  # (a close() between frame_count and the stream's time base)
            if self._fps is None:
                n = self.frame_count
                declared, span = self._declared, self._span
                # agree: the span holds the frames at the declared rate to within half a
                # frame, and the two timestamps' rounding to the time base (Matroska's
                # milliseconds are 0.7 of a frame at 700 fps, whose 2 frames read back as
                # 1000 fps)
                base = self.stream.time_base
                slack = Fraction(1, 2) + (2 * Fraction(base) * declared if base else 0)
                if span is None or span <= 0 or n == 0 or abs(n - span * declared) <= slack:
                    self._fps = declared
                else:
                    self._fps = n / span
            return self._fps

    @property
    def evenly_spaced(self) -> bool:
        """See VideoReader.evenly_spaced."""
        with self._lock:
            at = self._times()
            if at is None or len(at) < 3:
                return True
            # how far each frame's own time is from its place at the reader's rate (a
            # first version compared each interval with the median one: a clip of 30 fps
            # then 24 passed, 0.3 s off by its end, and one dropped frame failed)
            step = 1 / self.fps
            off = max(abs(t - i * step) for i, t in enumerate(at))
            return off <= max(step, Fraction(1, 25))

    @property
    def times(self) -> np.ndarray | None:
        """See VideoReader.times."""
        with self._lock:
            at = self._times()
            return None if at is None else np.array([float(t) for t in at])

    def _times(self) -> list[Fraction] | None:
        """Each frame's time in seconds from the first frame's, timestamp jumps taken out
        as the span takes them out (:meth:`_gaps`); None where the file gives no times to
        tell by. The caller holds the lock."""
        self._check_open()
        self._index()
        base = self.stream.time_base
        if not self._timed or not self._pts or not base:
            return None
        base = Fraction(base)
        gaps = self._gaps(self._pts, base)
        if gaps is None:
            return None
        return [t * base for t in itertools.accumulate(gaps, initial=0)]

    @property
    def settings(self) -> dict[str, Any] | None:
        text = next((val for k, val in self.metadata.items() if k.lower() == "comment"), "")
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _before_start(self) -> int:
        """A timestamp a second before any frame. Seeking to the stream's start time is
        not enough: MP4 seeks by decode time, and with B-frames (H.265) the second
        packet's decode time is at or before the first frame's display time, so a seek
        to it skipped frame 0."""
        step = max(1, int(round(1 / self.stream.time_base)))
        return min(self.stream.start_time or 0, 0) - step

    def _seek_start(self, bump: bool = True) -> None:
        """Move the decoder to the first frame; ``bump`` tells suspended iterators (not
        when the iterator that is running goes back by itself)."""
        if bump:
            self._moves += 1
        try:
            self.container.seek(
                self._before_start(), stream=self.stream, backward=True, any_frame=False
            )
        except _av().error.FFmpegError:  # not seekable (a raw stream): open it afresh
            self._reopen()

    def _reopen(self) -> None:
        self.container.close()
        self.container = self._open()
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"

    def _index(self) -> None:
        """Read every frame's presentation time from the packets, once (demuxing only):
        frame ``i`` of an iteration is the one with the ``i``-th smallest time. Packets
        that give no frame are left out: empty ones, the cut-off last packet of a
        truncated file (which :meth:`_decoded` skips, see :meth:`_cut_off`) and ones
        flagged discard (the decoder drops their frames). Without a time for every
        frame, or with one time twice, frames are found by counting instead."""
        if self._indexed:
            return
        self._seek_start()
        stamps: list[int | None] = []
        key_times: list[int] = []
        decode_times: list[int] = []
        ends: dict[int, int] = {}  # a frame's time -> its packet's duration, where given
        # the decoder drops what comes before the first keyframe (a file cut mid-GOP);
        # where no packet is flagged a keyframe, all count
        first_key: int | None = None
        try:
            for p in self.container.demux(self.stream):
                if p.size == 0:
                    continue
                if first_key is None and p.is_keyframe:  # a discarded one counts too
                    first_key = len(stamps)
                if not p.is_discard and not self._cut_off(p):
                    stamps.append(p.pts)
                    if p.dts is not None:
                        decode_times.append(p.dts)
                    if p.is_keyframe and p.pts is not None:
                        key_times.append(p.pts)
                    if p.pts is not None and p.duration:
                        ends[p.pts] = p.duration
        except _av().error.FFmpegError:
            pass  # a cut-off file: index what is there
        stamps = stamps[first_key or 0 :]
        count = len(stamps) if self._count is None else self._count
        times = sorted(t for t in stamps if t is not None)
        timed = not (
            len(times) < len(stamps)
            or len(set(times)) < len(times)
            or count != len(times)
            or self._goes_back(key_times, decode_times)
        )
        if timed:
            where = {t: i for i, t in enumerate(times)}
            keys = sorted(where[t] for t in key_times if t in where)
            span = self._time_span(times, ends.get(times[-1]) if times else None)
        # set together, _indexed last: a Ctrl-C while they were worked out left a reader
        # indexed with no times (read() then raised IndexError, times was None), and one
        # here leaves it to index again
        self._count = count
        if timed:
            self._pts, self._where, self._keys, self._span = times, where, keys, span
        else:
            self._timed = False
        self._indexed = True

    @staticmethod
    def _goes_back(key_times: list[int], decode_times: list[int]) -> bool:
        """Whether the packets' times, in the order they come, ever go back: clips
        joined with ``cat`` whose second starts earlier (MPEG-TS), where the ``i``-th
        smallest time is not frame ``i``'s. Decoding times never go back in one stream,
        nor do keyframes' times (B-frames are reordered, a slow variable-rate clip's by
        more than a second); a join inside the first clip's last GOP moves no keyframe
        back, but its decoding times go back."""
        return any(b <= a for a, b in zip(key_times, key_times[1:], strict=False)) or any(
            b < a for a, b in zip(decode_times, decode_times[1:], strict=False)
        )

    def _time_span(self, times: list[int], last: int | None) -> Fraction | None:
        """Seconds from the first of ``times`` (sorted, the stream's time base) to the
        end of the last frame: its time plus its packet's duration ``last``, or where
        that is not given, plus the mean interval between the frames. None where that
        cannot be told (one frame without a duration, no time base).

        Timestamp jumps are taken out (:meth:`_gaps`)."""
        base = self.stream.time_base
        if not times or not base:
            return None
        base = Fraction(base)
        n = len(times)
        gaps = self._gaps(times, base)
        if gaps is None:
            return None
        total = Fraction(sum(gaps))
        if last is not None and last > 0:
            step = Fraction(last)
        elif n > 1:
            step = total / (n - 1)
        else:
            return None
        return (total + step) * base

    def _gaps(self, times: list[int], base: Fraction) -> list[int] | None:
        """The intervals between ``times`` (sorted, the time base ``base``). In formats
        whose timestamps may jump (MPEG-TS/PS: clips joined, a broadcast's
        discontinuities, FFmpeg unwrapping a jump back as a wrap of the 33-bit clock), a
        gap of more than :data:`_TS_JUMP` seconds counts as the median interval, as
        ``ffmpeg`` takes such jumps out; elsewhere a gap is a pause. None where every gap
        is such a jump."""
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        if not self.container.format.flags & _TS_DISCONT:
            return gaps
        steady = sorted(g for g in gaps if g * base <= _TS_JUMP)
        if len(steady) == len(gaps):
            return gaps
        if not steady:
            return None
        typical = steady[len(steady) // 2]
        return [g if g * base <= _TS_JUMP else typical for g in gaps]

    def _cut_off(self, packet: Any) -> bool:
        """Whether ``packet`` is the cut-off last packet of a truncated file: flagged
        corrupt and reaching the end of the file (the demuxer read what was left of it).
        Other packets flagged corrupt are decoded, as FFmpeg decodes them: the MPEG-TS
        demuxer flags a packet on any break in its continuity counters, at every join of
        clips concatenated with ``cat`` (camcorder ``.MTS``: the packet is whole) or where
        one 188-byte TS packet was lost (the decoder conceals the gap)."""
        if not packet.is_corrupt:
            return False
        pos = packet.pos
        if pos is None or pos < 0:
            return False
        try:
            size = int(self.container.size)
        except (AttributeError, TypeError, ValueError, _av().error.FFmpegError):
            return False
        return size > 0 and pos + packet.size >= size

    def _decoded(self) -> Iterator[Any]:
        """Frames decoded from where the demuxer stands, as FFmpeg decodes them: packets
        flagged corrupt are decoded too, but for the cut-off last packet of a truncated
        file (:meth:`_cut_off`), and one flagged corrupt that the decoder refuses gives
        no frame (FFmpeg drops it with an error message) where another packet's decoding
        error is raised. A demuxing error (a cut-off file) ends the stream as the end of
        the file does, so these are the frames :meth:`_index` counts."""
        av = _av()
        packets = self.container.demux(self.stream)  # ends with an empty packet: a flush
        while True:
            damaged = False
            try:
                p = next(packets, None)
            except av.error.FFmpegError:
                p, damaged = None, True
            try:
                if damaged:  # the rest cannot be read: flush the decoder, as at the end
                    yield from self.stream.decode(None)
                if p is None:
                    return
                if not p.is_corrupt:
                    yield from p.decode()
                elif not self._cut_off(p):
                    try:
                        frames = p.decode()
                    except av.error.FFmpegError:
                        continue  # a damaged packet the decoder refuses: dropped
                    yield from frames
            except av.error.FFmpegError as e:
                raise ValueError(f"{self.path}: decoding failed ({e})") from e

    def _rgb(self, frame: Any) -> np.ndarray:
        rgb = self._to_rgb(frame, self._size)
        if self.mirrored:
            rgb = rgb[:, ::-1]
        if self._turns:
            rgb = np.rot90(rgb, self._turns)
        return np.ascontiguousarray(rgb)  # no copy where nothing was turned

    def _from_start(self, start: int, *, bump: bool = True) -> Iterator[Any]:
        """Frames from ``start``, decoding from the first frame and counting: this is
        what iterating is, and the fallback where times cannot locate frames (streams
        without timestamps, or that cannot seek). A pass to the end records the frame
        count; a decoded time that differs from the packet index turns seeking by time
        off."""
        self._seek_start(bump)
        n = 0
        for f in self._decoded():
            if self._timed and self._indexed and (n >= len(self._pts) or f.pts != self._pts[n]):
                self._timed = False
            if n >= start:
                yield f
            n += 1
        if self._count != n:
            self._timed = self._timed and not self._indexed
            self._count = n

    def _seek_to(self, start: int) -> Iterator[Any]:
        """Frames from ``start`` (``0 < start < frame_count``) by its presentation time:
        seek to a keyframe at or before it and decode forward to the frame with exactly
        that time. A frame whose time is not the next one of the packet index (MPEG-PS
        after a seek) turns seeking by time off and the frames come by counting."""
        av = _av()
        target = self._pts[start]
        step = max(1, int(round(1 / self.stream.time_base)))
        floor = self._before_start()
        seek_to = target
        # Some containers (fragmented MP4, B-frames) land after the target: step back,
        # twice as far each time, until the first frame is not past the target or we
        # are before the start.
        while True:
            try:
                self.container.seek(
                    max(seek_to, floor), stream=self.stream, backward=True, any_frame=False
                )
            except av.error.FFmpegError:  # not seekable: count from the start instead
                self._timed = False
                yield from self._from_start(start)
                return
            frames = self._decoded()
            head = next(frames, None)
            if head is not None and (head.pts is None or head.pts <= target):
                break
            if seek_to <= floor:
                break
            # landed past the target, or past the end (MPEG-TS lands there when asked
            # for a time before its second keyframe)
            seek_to -= step
            step *= 2
        i = -1  # the index of the frame yielded last
        prev: int | None = None  # the index of the frame decoded last
        for f in () if head is None else _chain(head, frames):
            k = None if f.pts is None else self._where.get(f.pts)
            # every frame from the seek on must be the next of the index: times that are
            # decode times (H.264 with B-frames in AVI) come out of order, and one of
            # them can equal the target's while being another frame
            if k is None or (prev is not None and k != prev + 1):
                break
            prev = k
            if k < start:
                continue  # decoding up to the target
            if k != (start if i < 0 else i + 1):
                break  # the target's time is not among the frames
            i = k
            yield f
        else:
            if i + 1 >= (self._count or 0):
                return
        # the decoded times do not follow the packet index: count from the start
        self._timed = False
        yield from self._from_start(max(i + 1, start), bump=i < 0)

    def _frames(self, start: int) -> Generator[Any, None, None]:
        """Decoded frames from ``start`` (PyAV's, for :meth:`_rgb`); if something else
        moves the decoder while this is suspended (another iterator, :meth:`read`,
        :attr:`frame_count`), it seeks back to its next frame before going on."""
        i = start
        while True:
            self._moves += 1  # tells suspended iterators that the decoder moves now
            mine: int | None = None
            for f in self._decode_from(i):
                if mine is None:  # after the decoder's own seek (or reopen)
                    mine = self._moves
                yield f
                if self._closed:
                    raise ValueError(f"VideoReader of {self.path} was closed while iterating")
                i += 1
                if self._moves != mine:
                    break
            else:
                return

    def _decode_from(self, start: int) -> Iterator[Any]:
        if start == 0:
            yield from self._from_start(0)
            return
        self._index()
        if start >= (self._count or 0):
            return
        if self._timed:
            yield from self._seek_to(start)
        else:
            yield from self._from_start(start)

    @staticmethod
    def _to_rgb(frame: Any, size: tuple[int, int] | None = None) -> np.ndarray:
        """RGB with the frame's own matrix and range (untagged: BT.601, and limited range
        but for the ``yuvj`` formats, which are full range by definition, as FFmpeg reads
        them: an MJPEG stream often carries no range tag), scaled to ``size`` (width,
        height) where it has another size, as FFmpeg scales a stream whose frame size
        changes to its first frame's (bicubic, ``ffmpeg``'s default)."""
        matrix = _SPACE_MATRIX.get(int(frame.colorspace), "bt601")
        full = int(frame.color_range) == _RANGE_JPEG or frame.format.name.startswith("yuvj")
        scale: dict[str, Any] = {}
        if size is not None and (frame.width, frame.height) != size:
            scale = {"width": size[0], "height": size[1]}
        even = not (frame.width | frame.height) & 1
        if not scale and even and frame.format.name in ("yuv420p", "yuvj420p"):
            planes = frame.to_ndarray()  # as stored (to "yuv420p" would squeeze yuvj's range)
            return yuv420p_to_rgb(planes, matrix=matrix, full_range=full)
        rgb = frame.reformat(
            format="rgb24",
            src_colorspace=_SWS_CS[matrix],
            src_color_range="JPEG" if full else "MPEG",
            dst_color_range="JPEG",
            interpolation=(_SWS_BICUBIC if scale else _SWS_BILINEAR) | _SWS_ACCURATE,
            **scale,
        )
        return np.asarray(rgb.to_ndarray())

    def _batches(self, start: int) -> Iterator[np.ndarray]:
        """Batches of frames from ``start``, each decoded holding the lock, which is let go
        while the caller has the batch (another thread's read or close goes in between)."""
        frames = self._frames(start)
        while True:
            buf: list[np.ndarray] = []
            with self._lock:
                if self._closed:
                    raise ValueError(f"VideoReader of {self.path} was closed while iterating")
                for f in frames:
                    buf.append(self._rgb(f))
                    if len(buf) == self.batch:
                        break
            if not buf:
                return
            yield np.stack(buf)
            if len(buf) < self.batch:
                return

    @staticmethod
    def _check_index(index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int; got {index!r}")
        if index < 0:
            raise ValueError(f"index must be >= 0; got {index}")
        return int(index)

    def iter_from(self, index: int) -> Iterator[np.ndarray]:
        start = self._check_index(index)
        self._check_open()
        if start >= 2**40:  # past the end of any video (and of 64-bit timestamps)
            return iter(())
        return self._batches(start)

    def read(self, index: int) -> np.ndarray:
        start = self._check_index(index)
        with self._lock:
            self._check_open()
            if start < 2**40:
                frames, skip = self._resume(start)
                try:
                    for _ in range(skip):
                        next(frames)
                    f = next(frames)
                except StopIteration:
                    pass
                else:
                    self._cursor = (start + 1, frames, self._moves)
                    return self._rgb(f)
        raise IndexError(f"index {index} is past the end of {self.path}")

    CONTINUE_FOR = 8  # see VideoReader.CONTINUE_FOR

    def _resume(self, start: int) -> tuple[Generator[Any, None, None], int]:
        """The iterator a read of ``start`` takes its frame from and how many frames to
        skip first: the last read's, where it stands before ``start`` and decoding on
        beats a seek; otherwise a fresh one from ``start``."""
        c, self._cursor = self._cursor, None
        if c is not None:
            nxt, frames, moves = c
            if moves == self._moves and nxt <= start:
                # a seek would land on the last keyframe at or before `start` (known
                # once indexed); where times cannot locate frames, it decodes from frame 0
                k = bisect.bisect_right(self._keys, start) - 1
                seek_lands = self._keys[k] if k >= 0 else 0
                if start - nxt <= self.CONTINUE_FOR or (
                    self._indexed and (not self._timed or seek_lands <= nxt)
                ):
                    return frames, start - nxt
            frames.close()  # lets go of its decoded frame now
        return self._frames(start), 0

    def close(self) -> None:
        with self._lock:  # waits for another thread's read or batch to be decoded
            if not self._closed:
                self._closed = True
                self._cursor = None
                _open_readers.discard(self)
                self.container.close()
                # the stream holds the codec context: its decoding threads and frame pool
                # (3 threads and about 20 MB a 720p H.264 reader) stayed until the reader
                # was dropped, however long a closed one was kept
                self.stream = None


_T = TypeVar("_T")


class _Forward(Generic[_T]):
    """A read-only attribute of a :class:`VideoReader`: its decoder's of the same name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Forward[_T]: ...
    @overload
    def __get__(self, obj: VideoReader, owner: type) -> _T: ...
    def __get__(self, obj: VideoReader | None, owner: type) -> _Forward[_T] | _T:
        if obj is None:
            return self
        value: _T = getattr(obj._dec, self.name)
        return value

    def __set__(self, obj: VideoReader, value: object) -> None:
        raise AttributeError(f"VideoReader.{self.name} is read-only")


class VideoReader:
    """Decode a video file into ``uint8`` RGB batches; seekable by frame index.

    Iterating gives ``(n, H, W, 3)`` arrays of up to ``batch`` frames, from the
    first frame. :meth:`read` and :meth:`iter_from` seek, and ``read(i)`` is always
    frame ``i`` of that iteration, also at variable frame rates (VFR MP4/MKV, GIFs
    with uneven delays) and across gaps in the timestamps (MPEG-TS, AVI with dropped
    frames): the presentation time of every frame is read once from the packets
    (demuxing, no decoding), and a seek goes to the keyframe at or before frame
    ``i``'s time and decodes forward to the frame with exactly that time. Where the
    decoded times do not follow the packets' (MPEG-PS after a seek; H.264 with
    B-frames in AVI, whose packets carry decode times) or there are none (raw
    streams), the reader decodes from the first frame and counts instead: as exact,
    but a read costs a decode from the start. The index itself costs one pass over
    the file's packets (no decoding) at the first :attr:`frame_count`, :attr:`fps`,
    :attr:`duration` or seek: about 0.2 s for 36,000 frames of a small MP4 (20 minutes
    at 30 fps).

    YUV is converted with the matrix and range the stream is tagged with (BT.601
    limited range when untagged). The display matrix in the file (a phone's portrait
    clip: a quarter turn; an editor's mirror or transpose) is applied as ``ffmpeg``'s
    autorotate applies it, so :attr:`width`, :attr:`height` and the frames are as
    shown: a mirror left-right where the matrix mirrors (:attr:`mirrored`), then a
    turn of :attr:`rotation` degrees (FFmpeg's sign, counterclockwise: ``-90`` for a
    phone held upright). A matrix upside down is a mirror and a half turn, a transpose a
    mirror and a quarter turn. Angles that are not a multiple of 90 degrees (which
    ``ffmpeg`` turns by its ``rotate`` filter and players ignore) are ignored, and
    ``autorotate=False`` gives the frames as stored (:attr:`rotation` 0, not mirrored).

    Every frame has the size :attr:`width` x :attr:`height`: where the frame size
    changes within the stream (a screen recording whose window was resized, clips of
    two sizes joined), the frames are scaled to the first frame's size (bicubic), as
    ``ffmpeg`` scales them, before the rotation; iterating, :meth:`read` and
    :meth:`iter_from` give the same frames.

    Packets the demuxer flags corrupt are decoded, as FFmpeg decodes them: the MPEG-TS
    demuxer flags a packet on any break in its continuity counters, at each join of
    clips concatenated with ``cat`` (camcorder ``.MTS`` files: the packet is whole) or
    where one 188-byte TS packet was lost (the decoder conceals the gap). Only the
    cut-off last packet of a truncated file (one flagged corrupt that reaches the end of
    the file) is skipped, and so is a packet flagged corrupt that the decoder refuses
    (FFmpeg drops it too; :attr:`frame_count`, counted from the packets, learns of that
    at the end of an iteration). Frames an MP4 edit list cuts off are not returned;
    :attr:`frame_count` counts what iterating yields.

    One reader may be shared by threads: its calls are serialised (one :meth:`read`,
    one batch of an iteration, the index's pass or :meth:`close` at a time), so each
    gives what it would alone; iterators and reads of several threads interleave as
    those of one thread do. A :meth:`close` from another thread waits for the batch
    being decoded, and the iteration's next step raises ValueError. Readers of their
    own (of one file or several), one a thread, decode in parallel.

    Parameters
    ----------
    path : any file PyAV reads; its first video stream is decoded
    batch : frames per batch
    autorotate : turn (and mirror) the frames by the file's display matrix (default True)

    Example
    -------
    >>> from loopwave.video import VideoReader
    >>> with VideoReader("in.mp4", batch=16) as r:  # doctest: +SKIP
    ...     print(r.fps, r.frame_count, r.width, r.height)
    ...     for batch in r:          # (<=16, H, W, 3) uint8
    ...         ...
    ...     frame = r.read(42)       # one frame, by index
    """

    #: A read this many frames or fewer past the last one decodes on, even across a
    #: keyframe: a seek restarts the decoder, whose threads and frame reordering cost
    #: a few frames' decoding before its first frame comes out.
    CONTINUE_FOR = _Decoder.CONTINUE_FOR

    def __init__(
        self, path: str | os.PathLike[str], *, batch: int = 16, autorotate: bool = True
    ) -> None:
        # Everything lives in the decoder. read()'s cursor (a suspended generator of
        # the decoder's) refers back to the decoder, not to this object, so dropping
        # the last reference to a reader and its iterators closes the file at once
        # (__del__), as with a file object, instead of at the next garbage collection.
        self._dec = _Decoder(path, batch=batch, autorotate=autorotate)

    batch: _Forward[int] = _Forward("Frames per batch when iterating.")
    path: _Forward[Path] = _Forward("The file, as given.")
    fps: _Forward[Fraction] = _Forward(
        "Frames per second, a Fraction. The rate the container declares (exact as "
        "loopwave's settings tag has it: Matroska keeps milliseconds) where the frames' "
        "timestamps agree with it: their span (see :attr:`duration`) holds "
        ":attr:`frame_count` frames at that rate to within half a frame, as at any "
        "constant rate. Otherwise the mean rate ``frame_count / span``: Matroska/WebM "
        "declare a nominal rate, and FFmpeg guesses a GIF's from its first delays, so a "
        "variable-rate clip (a pause, uneven GIF delays) read as 10 fps and 1 s where its "
        "10 frames span 2.5 s (MP4 declares that mean already). Without a time for every "
        "frame (raw streams, times repeated): the declared rate. In MPEG-TS/PS a jump of "
        "over 10 s between two frames' times counts as one frame interval (``ffmpeg`` "
        "takes such jumps out). Worked out at the first use, from the packet index "
        "(:attr:`frame_count`'s pass over the packets)."
    )
    width: _Forward[int] = _Forward(
        "Frame width, as shown (after the rotation), of every frame: the first frame's "
        "(frames of another size are scaled to it)."
    )
    height: _Forward[int] = _Forward(
        "Frame height, as shown (after the rotation), of every frame: the first frame's "
        "(frames of another size are scaled to it)."
    )
    rotation: _Forward[int] = _Forward(
        "The rotation applied, after the mirror where :attr:`mirrored`: degrees "
        "counterclockwise, a multiple of 90 (0 if none)."
    )
    mirrored: _Forward[bool] = _Forward(
        "Whether the display matrix mirrors, so frames are mirrored left-right before "
        "the rotation (as ``ffmpeg`` applies an hflip, vflip or transpose)."
    )
    metadata: _Forward[dict[str, str]] = _Forward("The container's tags.")
    container: _Forward[Any] = _Forward("The PyAV input container.")
    stream: _Forward[Any] = _Forward("The PyAV video stream decoded (None once closed).")

    frame_count: _Forward[int] = _Forward(
        "Frames an iteration yields: counted once from the packets (demuxing, no decoding; "
        "the header's count can be wrong), leaving out those that give no frame: flagged "
        "discard (cut off by an MP4 edit list), or the cut-off last packet of a truncated "
        "file."
    )
    evenly_spaced: _Forward[bool] = _Forward(
        "Whether the frames, played at :attr:`fps` from the first, each come within a "
        "frame (or 40 ms, if more) of their own times: not so for a recording whose rate "
        "changes, which drifts against its sound. True where the file gives no times to "
        "tell by, and for fewer than three frames."
    )
    times: _Forward[np.ndarray | None] = _Forward(
        "Each frame's time in seconds from the first frame's (float64, one per frame an "
        "iteration yields, increasing), from the packets' timestamps, with MPEG-TS "
        "timestamp jumps taken out as :attr:`duration` takes them out. None where the "
        "file gives no time for every frame (a raw stream), gives one time twice, or "
        "its keyframes' times go back (MPEG-TS clips joined with ``cat``, the second "
        "starting earlier: their frames are then found by counting). "
        ":func:`loopwave.interpolate.retime` takes them, to space a variable-rate "
        "recording's frames evenly."
    )
    settings: _Forward[dict[str, Any] | None] = _Forward(
        "The JSON of the ``comment`` tag (what :class:`VideoWriter` stores), or None. "
        "Matroska spells the tag ``COMMENT``; either spelling is read."
    )

    @property
    def duration(self) -> float:
        """Seconds of video, ``frame_count / fps``: by :attr:`fps`'s rule, the span of the
        frames' timestamps (from the first frame's time to the end of the last frame: its
        time plus its duration, or plus the mean interval between frames where the
        packet gives none) unless the declared rate agrees with it."""
        return float(self.frame_count / self.fps)

    def _held(self, batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """``batches``, keeping this reader (and so its file) alive while they run."""
        yield from batches

    def __iter__(self) -> Iterator[np.ndarray]:
        self._dec._check_open()
        return self._held(self._dec._batches(0))

    def iter_from(self, index: int) -> Iterator[np.ndarray]:
        """Batches starting at frame ``index`` (exact: frame ``index`` of an iteration)."""
        return self._held(self._dec.iter_from(index))

    def read(self, index: int) -> np.ndarray:
        """The frame at ``index``, ``(H, W, 3)`` ``uint8``: frame ``index`` of an
        iteration (seeks to the keyframe at or before it, then decodes forward). Past the
        end: ``IndexError``.

        Reads in increasing order go on from where the last read left the decoder,
        unless a seek decodes less (a keyframe more than :attr:`CONTINUE_FOR` frames
        ahead of it and at or before ``index``) or something else moved the decoder in
        between: reading every frame by index costs one pass, also where frames are
        found by counting from the start (raw streams)."""
        return self._dec.read(index)

    def close(self) -> None:
        """Close the file (also done when the reader is dropped); idempotent."""
        self._dec.close()

    def __del__(self) -> None:
        dec = self.__dict__.get("_dec")  # absent when __init__ failed
        if dec is not None:
            dec.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chain(head: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield head
    yield from rest


def _natural_key(p: Path) -> tuple[list[Any], str]:
    # the split's odd parts are the runs of digits (isdigit() took "²", which int() does
    # not: a frame named 1²2.png stopped interpolate and encode with int()'s error); the
    # name itself breaks ties (f1 and f01 came in the folder's own order)
    parts = [int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", p.name))]
    return parts, p.name


def read_frames_dir(folder: str | os.PathLike[str], *, arg: str = "folder") -> list[Path]:
    """The PNG files of a folder in name order, numbers compared as numbers
    (``f2.png`` before ``f10.png``); errors name ``arg``."""
    d = Path(folder)
    if not d.is_dir():
        what = "is a file, not a folder of PNG frames:" if d.exists() else "no such folder"
        raise OSError(f"{arg}: {what} {d}")
    # files only: a folder named x.png (`interpolate DIR -o DIR/x.png` makes one) is none
    files = sorted(
        (p for p in d.iterdir() if p.suffix.lower() == ".png" and p.is_file()), key=_natural_key
    )
    if not files:
        raise ValueError(f"{arg}: no .png frames in {d}")
    return files


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_head(path: Path) -> bytes | None:
    """A PNG's first 33 bytes (signature and IHDR chunk), or None where the file is not a
    PNG's (the decoder then says what is wrong)."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError:
        return None
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head


def _png_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` from a PNG's header, or None where it is not a PNG's."""
    head = _png_head(path)
    if head is None:
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def _image_size(path: Path, arg: str) -> tuple[int, int]:
    """(height, width) of an image that is not a PNG, from its stream's header (FFmpeg's
    probe: a 4K JPEG decoded for its size took 54 ms, its header 1 ms)."""
    av = _av()
    try:
        with _av_open(path) as c:
            s = c.streams.video[0]
            if s.codec_context.width and s.codec_context.height:
                return s.codec_context.height, s.codec_context.width
    except (av.error.FFmpegError, IndexError, OSError):
        pass
    raise ValueError(f"{arg}: {path} is not an image (not a PNG, nor another FFmpeg reads)")


def check_one_size(files: list[Path], arg: str) -> None:
    """Refuse a frame folder whose PNGs differ in size, naming the first odd one, from
    their headers alone: found by the encoder part way, it left a partial video. A file
    named ``.png`` that is another image (a JPEG) is sized from its own header, as the
    encoder reads it: from a review, one of another size was refused as "frames must
    keep one size", naming neither the file nor the sizes. An empty one is refused."""
    first: tuple[Path, tuple[int, int]] | None = None
    for f in files:
        size = _png_size(f)
        if size is None:
            try:
                with open(f, "rb") as fh:
                    signature = fh.read(len(_PNG_SIGNATURE))
            except OSError:
                continue  # reading it names the file and the error
            if not signature:
                raise ValueError(f"{arg}: {f} is empty (0 bytes), not an image")
            if signature == _PNG_SIGNATURE:
                continue  # a damaged PNG: reading it says what is wrong
            size = _image_size(f, arg)
        if first is None:
            first = (f, size)
        elif size != first[1]:
            (h0, w0), (h, w) = first[1], size
            raise ValueError(
                f"{arg}: the frames must have one size; {f.name} is {w}x{h}, "
                f"{first[0].name} is {w0}x{h0}"
            )


# the bit depths PNG allows for each colour type (PNG spec, table 11.1)
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _png_header_problem(path: Path) -> str | None:
    """What is wrong with a PNG's header (IHDR), or None (also for what is no PNG: the
    decoder says). FFmpeg decodes headers Pillow refuses, an RGB image of 4-bit depth or
    interlace method 2, into pixels of its own invention."""
    head = _png_head(path)
    if head is None:
        return None
    if zlib.crc32(head[12:29]) != int.from_bytes(head[29:33], "big"):
        return "its header (IHDR) fails its CRC check"
    depth, colour, compression, filtering, interlace = head[24:29]
    if depth not in _PNG_DEPTHS.get(colour, ()):
        return f"bit depth {depth} with colour type {colour} is not a PNG's"
    if compression or filtering or interlace > 1:
        return f"compression {compression}, filter {filtering}, interlace {interlace}: not a PNG's"
    return None


def _read_png(path: Path, *, still: bool = False) -> np.ndarray:
    """One image file as ``(H, W, 3)`` ``uint8`` RGB, decoded by FFmpeg (a PNG's header
    checked first). ``still``: refuse an animated image (an APNG, or a GIF named
    ``.png``), where one frame of a sequence is read: its first frame alone was taken,
    without a word, and its others lost."""
    av = _av()
    problem = _png_header_problem(path)
    if problem:
        raise ValueError(f"cannot read frame {path}: {problem}")
    images = _png_images(path) if still else None
    if images is not None and images > 1:
        raise ValueError(
            f"cannot read frame {path}: it is an animated PNG of {images} images; one file "
            "is one frame here: write its frames out as single images first"
        )
    try:
        with _av_open(path) as c:
            frames = iter(c.decode(video=0))
            frame = next(frames)
            # another kind of file (a GIF named .png); a PNG's chunks said it all, and
            # what follows its end (another PNG appended, stray bytes) is not read
            if still and images is None and _another_frame(frames):
                raise ValueError(
                    f"cannot read frame {path}: it holds more than one frame (an "
                    f"animated image, read as {c.format.name}); one file is one frame "
                    "here: write its frames out as single images first"
                )
            return np.asarray(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, StopIteration) as e:
        raise ValueError(f"cannot read frame {path}: {e}") from e


def _png_images(path: Path) -> int | None:
    """How many images a PNG file holds, from its chunks: an APNG's frames (its
    ``fcTL`` chunks, or its ``acTL`` count where that says more), and its default image
    where that is not one of them (no ``fcTL`` before the ``IDAT``), else 1; None where
    the file is no PNG. From a review: counting the frames FFmpeg decodes passed an APNG
    whose second frame was damaged or cut off, and one whose default image is no frame
    (FFmpeg gives the animation alone), and refused a PNG with another appended after
    its end. ``acTL`` alone is not trusted: a file whose count says 1 held 2 frames, and
    FFmpeg's muxer writing to a pipe leaves its placeholder, 2**32 - 1."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return None
            said, framed, default_framed, animated = 0, 0, False, False
            while len(head := f.read(8)) == 8:
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IEND":
                    break
                if kind == b"IDAT" and not animated:
                    # an APNG's acTL comes before its image data: without it, frame
                    # chunks are ignored (the file is a still to Pillow and FFmpeg)
                    return 1
                if kind == b"acTL" and length >= 4:
                    said = int.from_bytes(f.read(4), "big")
                    said = 0 if said == 0xFFFFFFFF else said
                    animated, length = True, length - 4
                elif kind == b"fcTL":
                    framed += 1
                elif kind == b"IDAT":
                    default_framed |= framed > 0
                f.seek(length + 4, os.SEEK_CUR)  # (and the CRC)
    except OSError:
        return None  # (reading it names the file and the error)
    frames = max(said, framed)
    return 1 if frames == 0 else frames + (not default_framed)


def _another_frame(frames: Iterator[Any]) -> bool:
    """Whether an image file's decoder gives a second frame; a decoder error there is
    taken as none (the reader's attempt at trailing bytes)."""
    try:
        return next(frames, None) is not None
    except _av().error.FFmpegError:
        return False


def _codec_encoder(codec: Any) -> tuple[str, str]:
    """The codec's canonical name and the encoder this PyAV has for it."""
    if not isinstance(codec, str):
        raise TypeError(f"codec must be a string such as 'h264'; got {type(codec).__name__}")
    codec = _ALIASES.get(codec.lower(), codec.lower())
    encoder = _encoder_for(codec) if codec in CODECS else None
    if encoder is None:
        known = "" if codec in CODECS else f" (loopwave knows {sorted(CODECS)})"
        raise ValueError(
            f"codec {codec!r:.60} is not available here; available: {list_encoders()}{known}"
        )
    return codec, encoder


def _check_crf(crf: int, encoder: str) -> None:
    top = _CRF_MAX.get(encoder, 63)
    if not 0 <= crf <= top:
        raise ValueError(f"crf must be in 0..{top} for {encoder}; got {crf}")


def check_codec(codec: Any, crf: int) -> str:
    """Check a codec name and a crf as :class:`VideoWriter` would, without opening a file
    (a render checks its video settings before rendering); returns the encoder."""
    _, encoder = _codec_encoder(codec)
    _check_crf(crf, encoder)
    return encoder


def check_frame_size(
    encoder: str,
    h: int,
    w: int,
    *,
    options: Mapping[str, str] | None = None,
    bitrate: int | None = None,
) -> None:
    """Refuse frames of ``h`` x ``w`` that ``encoder`` (as :func:`check_codec` returns it)
    cannot take, as :class:`VideoWriter` does at the first frame.

    With ``options`` (the encoder's FFmpeg options, and ``bitrate``), a size outside
    :data:`_USUAL_SIDES` is also tried by opening the encoder at it: x264 and SVT-AV1
    refuse widths over 16384, and SVT-AV1 with a bitrate any side under 64, which
    otherwise failed only when the video started, with FFmpeg's "Generic error in an
    external library" (ordinary sizes are not tried: an SVT-AV1 encoder costs seconds
    and hundreds of MB to open at 4K)."""
    least = _MIN_SIDE.get(encoder, 1)
    wide = max(least, _MIN_WIDTH.get(encoder, 1))
    short, long = sorted((h + h % 2, w + w % 2))  # as encoded: padded to even sides
    if encoder == "libsvtav1" and (short < least or long <= _SVT_TINY):
        # one message for both (a review: 2x2 was told "at least 4x4", which the next
        # refusal then refused)
        raise ValueError(
            f"frames: {encoder} needs frames of at least {least}x{least} pixels with one "
            f"side over {_SVT_TINY} (it refuses smaller ones, and corrupts memory and aborts "
            f"the process on frames of {_SVT_TINY}x{_SVT_TINY} pixels or less: the SVT-AV1 "
            f"of PyAV 18.1.1 and 19); got {w} wide, {h} high (pad them, or use another codec "
            "such as vp9)"
        )
    if short < least or w + w % 2 < wide:
        need = (
            f"{least}x{least} pixels" if wide == least else f"{wide} pixels wide and {least} high"
        )
        raise ValueError(
            f"frames: {encoder} needs frames of at least {need}; got {w} wide, {h} high "
            "(pad them, or use another codec such as h264)"
        )
    if encoder == "libsvtav1" and short < _SVT_THIN and long > _SVT_LONG:
        raise ValueError(
            f"frames: {encoder} never finishes a stream of frames under {_SVT_THIN} pixels on "
            f"one side and over {_SVT_LONG} on the other (SVT-AV1 hangs in its final flush); "
            f"got {w} wide, {h} high (pad them, or use another codec such as vp9)"
        )
    if options is not None and not (_USUAL_SIDES[0] <= short and long <= _USUAL_SIDES[1]):
        try:
            _try_open(encoder, options, bitrate, size=(w + w % 2, h + h % 2))
        except _av().error.FFmpegError as e:
            with_bitrate = f" at a bitrate of {bitrate}" if bitrate else ""
            raise ValueError(
                f"frames: {encoder} does not open at {w} wide, {h} high{with_bitrate} ({e}); "
                "pad or scale the frames, or use another codec"
            ) from None


def check_frame_rate(encoder: str, fps: Fraction, arg: str = "fps") -> None:
    """Refuse a frame rate ``encoder`` (as :func:`check_codec` returns it) cannot open at,
    as :class:`VideoWriter` does when it is made."""
    most = _MAX_FPS.get(encoder)
    if most is not None and fps > most:
        raise ValueError(
            f"{arg}: {encoder} takes at most {most} frames per second; got {fps} "
            f"(use another codec such as vp9)"
        )


def _refuse_in_the_way(out: Path, *, segmented: bool, segments: int | None = None) -> None:
    """Refuse what stands in the way of the rename into ``out`` (``segmented``: into its
    numbered segments): a file there that is write-protected, or a folder (below).
    Write-protected: from a review, the rename at the end replaced a file whatever
    its mode, so a video made read-only to keep it was replaced without a word.
    Protected: this user may not write it, or its owner may not (``chmod 444``), which
    holds for root too, whom permissions do not stop.

    Segmented, a folder named as one of its parts is refused with OSError: the renames
    at the end stopped at it, the first parts in place beside an older run's others.
    Before the video is written, any of them (how many parts it will have is not known
    yet; from a review, one refused only at the end cost the whole encode); once it is
    written, those where one of its ``segments`` parts goes (a folder numbered past them
    is not in the way). Unsegmented, a folder at ``out`` once the video is written (one
    made meanwhile: before, writing_video refuses it itself). A link to a folder is
    none: the rename replaces the link."""
    targets = [(0, out)]
    if segmented:  # every numbered segment there, past a gap too, and not ``out`` itself,
        # which a segmented run never writes (from a review of the first version)
        # (names the writer makes: seg_0001.mp4 or non-ASCII digits were refused too)
        targets = _segments_of(out)  # (no folder yet: nothing replaced)
    for i, f in targets:
        try:
            mode = os.stat(f).st_mode
        except OSError:  # none there (or a dangling link): nothing replaced
            continue
        if stat.S_ISDIR(mode):
            try:
                if not stat.S_ISDIR(os.lstat(f).st_mode):
                    continue  # a link to a folder: the rename replaces the link
            except OSError:  # gone meanwhile: nothing in the way
                continue
            if not segmented and segments is not None:  # (made meanwhile: before,
                # writing_video refuses it itself)
                raise OSError(errno.EISDIR, f"output: {f} is a folder; move it")
            if segmented and (segments is None or i < segments):
                raise OSError(
                    errno.EISDIR,
                    f"output: {f} is a folder, where part {i + 1} of the segmented video "
                    f"{'goes' if segments or i == 0 else 'may go'}; move it"
                    + (", or choose another output name" if segments is None else ""),
                )
            continue
        if not mode & stat.S_IWUSR or not os.access(f, os.W_OK):
            raise ValueError(
                f"output: {f} exists and is write-protected; make it writable to replace "
                "it, or choose another output name"
            )


def _parts_where(out: Path, paths: list[Path], i: int, *, renamed_maybe: bool) -> str:
    """Where a segmented video's parts are when renaming ``paths[i]`` into place stopped:
    the ones renamed, the rest still partial, and the segments of an earlier run under
    ``out``'s names after them. ``renamed_maybe`` (stopped by a Ctrl-C, not a failed
    rename): part ``i`` counts as renamed where its partial file is gone, as after a
    Ctrl-C just after the rename."""
    n = len(paths)
    if renamed_maybe and not paths[i].exists() and _numbered(out, i).exists():
        i += 1

    def span(a: Path, b: Path) -> str:
        return f"{a.name}{f' to {b.name}' if a != b else ''}"

    placed = span(_numbered(out, 0), _numbered(out, max(i - 1, 0)))
    if i == n:
        one = f"the video's one part is in place ({placed})"
        where = one if n == 1 else f"all {n} of the video's parts are in place ({placed})"
    else:
        if i == 0:
            said = [] if n == 1 else [f"none of the video's {n} parts is in place"]
        elif i == 1:
            said = [f"part 1 of the video's {n} is in place ({placed})"]
        else:
            said = [f"the first {i} of the video's {n} parts are in place ({placed})"]
        # (a failed rename: its partial file vanished, and maybe others with it)
        there = [k for k in range(i, n) if paths[k].exists()]
        gone = [k for k in range(i, n) if k not in there]

        def runs(ks: list[int]) -> str:  # runs of consecutive parts as spans, 3 at most
            spans, start = [], 0
            for at in range(1, len(ks) + 1):
                if at == len(ks) or ks[at] != ks[at - 1] + 1:
                    spans.append(span(paths[ks[start]], paths[ks[at - 1]]))
                    start = at
            return ", ".join(spans[:3]) + ", ..." * (len(spans) > 3)

        if gone:
            part = "the video's one part" if n == 1 else f"part {gone[0] + 1}"
            which = (
                f"{part}'s partial file {paths[gone[0]].name} is"
                if len(gone) == 1
                else f"{len(gone)} partial files ({runs(gone)}) are"
            )
            said.append(f"{which} gone")
        if there:
            rest = runs(there)
            if n == 1:
                said.append(f"the video's one part is still {rest}")
            else:
                said.append(f"{'all' if i == 0 and not gone else 'the rest'} still {rest}")
        where = ", ".join(said)
    older = [q.name for j in range(i, n) if (q := _numbered(out, j)).is_file()]
    older += [q.name for q in _numbered_from(out, n)]  # an earlier, longer run's last ones
    if older:
        names = f"{', '.join(older[:3])}{', ...' * (len(older) > 3)}"
        where += f"; {names} {'are' if len(older) > 1 else 'is'} an earlier run's"
    return where


def partial_path(out: str | os.PathLike[str]) -> Path:
    """Where :func:`writing_video` writes ``out`` until it is complete:
    ``NAME.partial.EXT`` beside it."""
    p = Path(out)
    return p.with_name(p.stem + ".partial" + p.suffix)


def _unlink_all(paths: Iterable[Path]) -> bool:
    """Delete ``paths`` (missing ones too); whether every one is gone. Errors are not
    raised: a clean-up's failure must not hide the error it cleans up after."""
    gone = True
    for f in dict.fromkeys(paths):
        try:
            f.unlink(missing_ok=True)
        except OSError:
            gone = False
    return gone


@contextlib.contextmanager
def writing_video(
    out: str | os.PathLike[str],
    *,
    keep_partial: bool = True,
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
    **writer_options: Any,
) -> Iterator[VideoWriter]:
    """A :class:`VideoWriter` on :func:`partial_path` (``NAME.partial.EXT`` beside
    ``out``), renamed to ``out`` when the block ends without an error, so a failure
    never leaves a complete-looking video. On an error the partial file stays
    (``keep_partial``, to look at) or goes. An existing ``out`` is replaced, unless it is
    write-protected (``chmod a-w``; or, segmented, one of its segments is), which is
    refused with ValueError before the writer starts; a folder where it or a segment
    goes, with OSError. Both are checked again before the rename at the end, where a
    refusal (one that came meanwhile) keeps the finished video under its partial name,
    whatever ``keep_partial`` says, and names it. Segments are renamed one by one: one
    that fails all the same (an I/O error) leaves those before it in place, and the
    error names where each part is. A link, a hard link or a FIFO at the partial file's
    name (or a part's) is replaced, not written through; a write-protected file there
    is refused before the writer starts (segmented: the first part; a later one when
    the writer gets to it, naming it), as is one open in a :class:`VideoReader`.

    ``inputs`` are the files the frames come from (one path, or several), and the sound
    is one too: where one is, or is named through, a name the writer writes into,
    renames over or deletes (``out`` and its partial file, or, segmented, their parts
    there now; ``interpolate clip.partial.mp4 -o clip.mp4``), this refuses to start, as
    writing would destroy the input while it is read. A hard link of an input, or a link
    to it, at such a name is replaced and harms nothing, so it is not refused. A block
    that writes no frames raises ValueError and creates no file; one whose encoder
    failed, the error taken by another thread that went on, raises RuntimeError, and the
    video is not renamed."""
    _check_name("output", out, "a video file")  # (reviews: bare errors naming nothing)
    p = Path(out)
    if p.is_dir() and not p.is_symlink():  # (a link to one is replaced, as at the end)
        raise OSError(errno.EISDIR, f"output: cannot write to {p}: it is a folder")
    if p.suffix.lower() not in _MUXERS:
        raise ValueError(
            f"output: cannot tell the container of {p}; use one of the extensions {sorted(_MUXERS)}"
        )
    # (one path is one input, not a sequence of one-letter names; the sound is one too:
    # `encode DIR -o av.mp4 --audio av.mp4` wrote over it)
    if isinstance(inputs, (str, os.PathLike)):
        srcs = [inputs]
    else:
        # (bytes iterated as ints, and what cannot be iterated, failed bare: reviews). Told
        # by the type, as iter() does, not by catching iter()'s TypeError, which may be the
        # caller's own __iter__'s (a review: reported as a wrong type, the error hidden)
        kind = type(inputs)
        hook = getattr(kind, "__iter__", None)
        if isinstance(inputs, (bytes, bytearray, memoryview)) or not (
            hook is not None or (not hasattr(kind, "__iter__") and hasattr(kind, "__getitem__"))
        ):
            raise TypeError(
                f"inputs: expected a path (str or os.PathLike) or several; got {inputs!r}"
            )
        srcs = list(inputs)
    for src in srcs:
        _check_name("inputs", src, "the file the frames come from")
    if writer_options.get("audio") is not None:
        _check_name("audio", writer_options["audio"], "a sound file")
        srcs.append(writer_options["audio"])
    tmp = partial_path(p)
    segmented = writer_options.get("segment_seconds") is not None
    # the names it writes into or replaces: out and its partial file, or, segmented,
    # their numbered parts there now, which it writes, renames over or deletes, and not
    # out or the partial file themselves (reviews: an input at a part's name, or named
    # through a link there, was written over or lost its name; one at out's was refused)
    check = _InputCheck(
        [f for b in (p, tmp) for _, f in _segments_of(b)] if segmented else [p, tmp]
    )
    for src in srcs:
        if harm := check.harm(Path(src)):
            how, target = harm
            if segmented and how == "goes through":
                how = "replaces or deletes"
            raise ValueError(
                f"output: writing {'the segmented video ' * segmented}{p} {how} "
                f"{target}, which is the input {src}; choose another output name"
            )
    _refuse_in_the_way(p, segmented=segmented)
    # what stays at the writer's own names that it cannot write: one refused before it
    # starts (from a review: a kept part made read-only failed at the first frame, bare)
    # (segmented, its first part: those after it, as many as the video will have, are
    # refused by the encoder when it gets there, naming them; one it never reaches is
    # not in the way: a review)
    first = _numbered(tmp, 0) if segmented else tmp
    if _write_protected(first):
        raise ValueError(f"output: {first} {_PROTECTED}; move it, or choose another output name")
    # (a link or a hard link at the partial file's name, the writer's own as its
    # segments' are, is replaced when the file is opened, not written through: a review
    # found a user's file a link led to written over, and a hard link's other file; so
    # one to out itself is not refused, as it was, since out is replaced at the end)
    # (a writer that refuses to start removes nothing: tmp may be a file open in a
    # VideoReader, which its refusal protected)
    try:
        w = VideoWriter(tmp, _own_file=True, **writer_options)
    except (_SettingsRefused, _FolderRefused) as e:
        # the settings and the folder are out's, not only its partial file's, which the
        # caller never named (codec 'h264' ... (o.partial.webm)); the refusals that are
        # the partial file's own (a folder of its name) keep naming it
        said = str(e).replace(str(tmp), str(p))
        raise type(e)("output:" + said[5:] if said.startswith("path:") else said) from e.__cause__
    try:
        try:
            yield w
            w.close()  # (a Ctrl-C here as in the block: its segments were made after)
            failure = w._enc.failure
            if failure is not None:  # handed to a thread that went on (a cut video)
                raise RuntimeError(
                    f"output: the encoder failed ({failure}), so {p} was not written"
                ) from failure
        except BaseException as e:
            if keep_partial:  # its frames, as after an error (no ping-pong)
                w.__exit__(type(e), e, e.__traceback__)
            else:  # at once: nothing queued is encoded (in a thread the files were
                # deleted before, a file the encoder went on to make was left); an
                # encoder flush under way is waited for (x264's lookahead: seconds)
                w._discard()
            raise
    except BaseException:
        if not keep_partial:  # the files the writer made (again, if a second Ctrl-C
            # stopped the wait above: the encoder deletes them too)
            w._enc.discard()  # (never blocks; a Ctrl-C may have come before _discard's)
            # a file that cannot be deleted does not hide the error (it became the
            # context of a PermissionError); its frames_on_disk is 0 once all are gone
            w._enc.deleted = _unlink_all(_made(w, tmp))
        raise
    if not w.paths:  # no frame came, so the writer opened no file
        raise ValueError(f"output: no frames to write, so {p} was not created")
    try:
        # checked again as at the start: a folder or a protected file that came meanwhile
        # (a segmented video's renames stopped there, its first parts in place beside an
        # older run's others; a protected video was replaced). The finished video is kept
        # whatever keep_partial says: it is whole, and the refusal is only of its name
        _refuse_in_the_way(p, segmented=segmented, segments=len(w.paths))
    except (OSError, ValueError) as e:
        kept = f"{w.paths[0].name}{f' to {w.paths[-1].name}' if len(w.paths) > 1 else ''}"
        if isinstance(e, OSError):  # (its errno kept)
            raise OSError(e.errno, f"{e.strerror}; the finished video is kept as {kept}") from None
        raise ValueError(f"{e}; the finished video is kept as {kept}") from None
    if not segmented:
        try:
            os.replace(tmp, p)
        except BaseException:  # (left behind, though keep_partial said not to)
            if not keep_partial:
                w._enc.deleted = _unlink_all(_made(w, tmp))
            raise
        return
    # segments: each partial one renamed to out's segment of its number, then out's
    # segments after the last (an earlier, longer run's) deleted, as VideoWriter does
    for i, seg in enumerate(w.paths):
        try:
            os.replace(seg, _numbered(p, i))
        except BaseException as e:  # (not undone: those renamed replaced an older run's)
            where = _parts_where(p, w.paths, i, renamed_maybe=not isinstance(e, OSError))
            if isinstance(e, OSError):
                raise OSError(
                    e.errno,
                    f"output: renaming {seg.name} to {_numbered(p, i).name} failed "
                    f"({e.strerror or e}): {where}",
                ) from e
            if hasattr(e, "add_note"):  # (Python 3.11+) a Ctrl-C between two renames
                e.add_note(f"output: stopped while renaming the segments into place: {where}")
            raise
    for stale in _numbered_from(p, len(w.paths)):
        stale.unlink()


@contextlib.contextmanager
def _saying_why_kept(bar: Any, w: VideoWriter, keep_partial: bool) -> Iterator[None]:
    """Around a command's writing: on a Ctrl-C with the partial file kept, say why the
    program does not stop at once (the frames queued are encoded first: seconds at a slow
    preset, without a word)."""
    try:
        yield
    except KeyboardInterrupt:
        if keep_partial:
            queued = w.frames_queued - w.frames_written
            first = f"the {queued} frames still queued are encoded and " if queued > 0 else ""
            bar.say(
                f"stopping: {w.path.name} is kept (--keep-partial); {first}the file is ended first"
            )
        raise


def _made(w: VideoWriter, tmp: Path) -> list[Path]:
    """The files a writer on ``tmp`` made: a segmented one's parts, never ``tmp`` itself;
    an unsegmented one's ``tmp`` only once it opened (or tried to open) it (from reviews:
    a ``NAME.partial.EXT`` kept by an earlier run, or a link there, was deleted by a
    writer that failed before its first frame)."""
    if w.segment_frames is not None:
        return list(w.paths)
    return [tmp] if w._enc.started else []


def encode_dir(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    keep_partial: bool = True,
    arg: str = "folder",
    **writer_options: Any,
) -> int:
    """Encode a folder of PNG frames (name order) into ``out``; returns the frames in
    the video (``2N - 2`` for ``N >= 2`` with ``pingpong``).

    ``writer_options`` go to :class:`VideoWriter`. PNGs are decoded by PyAV, so
    no imaging library is needed. The video is written as ``NAME.partial.EXT`` (its
    segments as ``NAME.partial_000.EXT``, ...) and renamed when every frame is in, so a
    failed run (a PNG of another size, a corrupt one) never leaves a complete-looking
    ``out``; the partial file stays (``keep_partial``) or goes, as in
    :func:`writing_video`. A missing or empty folder, or frames of two sizes, are refused
    before anything is written, naming ``arg`` (the CLI's ``FRAMES_DIR``). A file that
    holds more than one frame (an APNG, an animated GIF named ``.png``) is refused when
    it is reached, naming it.

    Example
    -------
    >>> from loopwave.video import encode_dir
    >>> encode_dir("run/frames", "run/out.mp4", fps=60, crf=16)  # doctest: +SKIP
    960
    """
    from ._progress import Progress

    files = read_frames_dir(folder, arg=arg)
    check_one_size(files, arg)
    n = len(files)
    total = 2 * n - 2 if writer_options.get("pingpong") and n > 2 else n
    with (
        writing_video(out, keep_partial=keep_partial, **writer_options) as w,
        Progress(total, "encode", enabled=progress) as bar,
    ):
        with _saying_why_kept(bar, w, keep_partial):
            for f in files:
                w.write(_read_png(f, still=True))
                bar.update()
            # the reversed frames are encoded as the writer closes: the bar follows them
            # (it stood at N/N for as long as they took)
            w._finish(reverse=True, seen=lambda k: bar.update(max(0, k - bar.done)))
        bar.update(max(0, w.frames_written - bar.done))
    return w.frames_written


def add_cli(sub: Any) -> None:
    """Register ``loopwave encode`` on an argparse subparsers object."""
    p = sub.add_parser(
        "encode",
        help="encode a folder of PNG frames into a video",
        description="Encode the PNG frames of FRAMES_DIR, in name order, into a video file.",
    )
    p.add_argument("frames_dir", metavar="FRAMES_DIR")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mkv, .webm, .mov)")
    p.add_argument(
        "--fps", default="30", help="frames per second, e.g. 60 or 30000/1001 (default: 30)"
    )
    p.add_argument(
        "--codec",
        default=None,
        help="h264, h265, vp9, av1, or an NVENC codec (default: vp9 for .webm, else h264)",
    )
    quality = p.add_mutually_exclusive_group()
    quality.add_argument("--crf", type=int, default=None, help="constant quality (default 18)")
    quality.add_argument("--bitrate", type=int, default=None, help="target bits/s instead of --crf")
    p.add_argument("--preset", default=None, help="encoder preset, e.g. slow")
    p.add_argument(
        "--keyframe-interval", type=int, default=None, help="frames between keyframes (1 s)"
    )
    p.add_argument("--title", default=None, help="title metadata")
    p.add_argument("--audio", default=None, help="mux the first audio stream of this file")
    p.add_argument(
        "--segment-seconds", type=float, default=None, help="split into files of N seconds"
    )
    p.add_argument("--pingpong", action="store_true", help="append the frames reversed")
    p.add_argument(
        "--keep-partial",
        action="store_true",
        help="on an error, keep the part written (OUTPUT's NAME.partial.EXT)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(a: Any) -> int:
        w: dict[str, Any] = dict(
            fps=a.fps,
            codec=a.codec,
            crf=a.crf,
            bitrate=a.bitrate,
            preset=a.preset,
            keyframe_interval=a.keyframe_interval,
            title=a.title,
            audio=a.audio,
            segment_seconds=a.segment_seconds,
            pingpong=a.pingpong,
        )
        # the writer's errors name its parameters (fps, path): the CLI names the options
        n = encode_dir(
            a.frames_dir,
            a.output,
            progress=not a.quiet,
            keep_partial=a.keep_partial,
            arg="FRAMES_DIR",
            **w,
        )
        if a.segment_seconds is None:
            print(f"wrote {n} frames to {a.output}")
        else:
            stem = Path(a.output)
            print(f"wrote {n} frames to {stem.with_name(stem.stem + '_NNN' + stem.suffix)}")
        return 0

    p.set_defaults(func=run)
