"""Video I/O with PyAV: frames stream straight into the encoder, no PNG round trips.

:class:`VideoWriter` converts RGB frames to I420 with the Rust
:func:`loopwave.rgb_to_yuv420p` and hands the planes to PyAV's encoder on a
background thread behind a bounded queue, so the caller waits only when the
queue is full. :class:`VideoReader` decodes any file PyAV reads into ``uint8``
RGB batches and seeks by frame index.

Needs the ``video`` extra (``pip install 'loopwave[video]'``); ``import
loopwave`` does not import PyAV.

Crash safety: MP4 output is fragmented (``frag_keyframe+empty_moov``) and the
muxer flushes every packet, so a file cut off by a killed process plays up to
the last completed fragment; a fragment ends at each keyframe, one every
``keyframe_interval`` frames (default: one second). WebM/Matroska output is
streamable by design.

Example
-------
>>> import numpy as np
>>> from loopwave.video import VideoWriter, VideoReader
>>> frames = np.zeros((10, 64, 64, 3), np.uint8)
>>> with VideoWriter("/tmp/x.mp4", fps=10) as w:  # doctest: +SKIP
...     w.write(frames)
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from . import _validate as v
from .color import rgb_to_yuv420p

__all__ = ["VideoReader", "VideoWriter", "list_encoders", "parse_fps"]

# codec name -> (FFmpeg encoder candidates, default container extension)
CODECS: dict[str, tuple[tuple[str, ...], str]] = {
    "h264": (("libx264",), ".mp4"),
    "h265": (("libx265",), ".mp4"),
    "vp9": (("libvpx-vp9",), ".webm"),
    "av1": (("libsvtav1", "libaom-av1", "librav1e"), ".mp4"),
    "h264_nvenc": (("h264_nvenc",), ".mp4"),
    "hevc_nvenc": (("hevc_nvenc",), ".mp4"),
    "av1_nvenc": (("av1_nvenc",), ".mp4"),
}
# the matrix names of rgb_to_yuv420p -> FFmpeg's AVColorSpace codes (stream tags)
_AVCOL_SPC = {"bt601": 6, "bt709": 1, "bt2020": 9}
# AVColorSpace code -> the swscale colorspace the reader converts with
_SWS_SPACE = {1: "ITU709", 5: "ITU601", 6: "ITU601", 9: "BT2020", 10: "BT2020"}
_AVCOL_RANGE_MPEG = 1
_CRF_OPTION = {
    "libx264": "crf",
    "libx265": "crf",
    "libvpx-vp9": "crf",
    "libsvtav1": "crf",
    "libaom-av1": "crf",
}


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("video I/O needs PyAV: pip install 'loopwave[video]'") from e
    return av


def _encoder_works(name: str) -> bool:
    """Whether FFmpeg has the encoder and it opens (NVENC needs a GPU and driver)."""
    av = _av()
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.open()
        return True
    except Exception:  # any failure means: not usable here
        return False


_available: dict[str, str] | None = None


def _encoders() -> dict[str, str]:
    global _available
    if _available is None:
        found = {}
        for codec, (candidates, _) in CODECS.items():
            for name in candidates:
                if _encoder_works(name):
                    found[codec] = name
                    break
        _available = found
    return _available


def list_encoders() -> list[str]:
    """The codecs of :data:`CODECS` this PyAV build can encode on this machine."""
    return sorted(_encoders())


def parse_fps(fps: Any, arg: str = "fps") -> Fraction:
    """An fps as a positive Fraction: an int, a float, a Fraction, or ``"30000/1001"``."""
    if isinstance(fps, bool) or fps is None:
        raise TypeError(
            f"{arg} must be a number, a Fraction or a string like '30000/1001'; got {fps!r}"
        )
    try:
        f = Fraction(fps).limit_denominator(1_000_000) if not isinstance(fps, Fraction) else fps
    except (TypeError, ValueError):
        raise (TypeError if not isinstance(fps, str) else ValueError)(
            f"{arg} must be a number, a Fraction or a string like '30000/1001'; got {fps!r}"
        ) from None
    if f <= 0 or f > 1000:
        raise ValueError(f"{arg} must be in (0, 1000]; got {fps!r}")
    return f


class _Segment:
    """One output file: container, video stream, optional audio."""

    def __init__(
        self,
        path: Path,
        codec: str,
        w: int,
        h: int,
        fps: Fraction,
        options: dict[str, str],
        bitrate: int | None,
        gop: int,
        metadata: dict[str, str],
        matrix: str,
        audio: Path | None = None,
    ) -> None:
        av = _av()
        self.path = path
        container_opts = {"flush_packets": "1"}
        if path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            container_opts["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        try:
            self.container = av.open(str(path), "w", options=container_opts)
        except (OSError, av.error.FFmpegError) as e:
            raise OSError(f"cannot write video to {path}: {e}") from e
        self.container.metadata.update(metadata)
        s = self.container.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        # tag what rgb_to_yuv420p produced, so players and our reader convert back right
        self.colorspace = _AVCOL_SPC[matrix]
        s.codec_context.colorspace = self.colorspace
        s.codec_context.color_range = _AVCOL_RANGE_MPEG
        if bitrate:
            s.bit_rate = bitrate
        s.options = options
        self.stream = s
        self.fps = fps
        self.count = 0
        # streams must all exist before the first packet writes the header
        self.audio = audio
        self.audio_stream = _add_audio_stream(self.container, audio) if audio else None

    def encode(self, planes: np.ndarray) -> None:
        av = _av()
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.colorspace = self.colorspace
        frame.color_range = _AVCOL_RANGE_MPEG
        frame.pts = self.count
        self.count += 1
        for p in self.stream.encode(frame):
            self.container.mux(p)

    def close(self) -> None:
        for p in self.stream.encode(None):
            self.container.mux(p)
        if self.audio is not None:
            _mux_audio(self.container, self.audio_stream, self.audio, self.count / float(self.fps))
        self.container.close()


def _add_audio_stream(container: Any, audio: Path) -> Any:
    """An AAC (Opus for WebM) stereo stream for the first audio stream of ``audio``."""
    av = _av()
    webm = container.format.name.startswith(("webm", "matroska"))
    with av.open(str(audio)) as src:
        if not src.streams.audio:
            raise ValueError(f"audio: {audio} has no audio stream")
        rate = src.streams.audio[0].rate
    return container.add_stream(
        "libopus" if webm else "aac", rate=48000 if webm else rate, layout="stereo"
    )


def _mux_audio(container: Any, out: Any, audio: Path, seconds: float) -> None:
    """Transcode the first audio stream of ``audio`` into ``out``, cut at ``seconds``."""
    av = _av()
    resampler = av.AudioResampler(format=out.format.name, layout="stereo", rate=out.rate)
    with av.open(str(audio)) as src:
        ins = src.streams.audio[0]
        for frame in src.decode(ins):
            if frame.pts is not None and frame.time_base and frame.pts * frame.time_base > seconds:
                break
            for f in resampler.resample(frame):
                f.pts = None  # let the encoder count samples
                for p in out.encode(f):
                    container.mux(p)
        for p in out.encode(None):
            container.mux(p)


class VideoWriter:
    """Encode RGB frames to a video file on a background thread.

    Parameters
    ----------
    path : output file; the extension picks the container (``.mp4``, ``.mkv``, ``.webm``)
    fps : frames per second: int, float, Fraction or ``"30000/1001"``
    codec : one of :func:`list_encoders` (``"h264"``, ``"h265"``, ``"vp9"``, ``"av1"``, NVENC)
    crf, preset, bitrate : quality controls passed to the encoder (``crf`` 0 is lossless
        luma for x264/x265; ``bitrate`` in bits/s)
    matrix : the YUV matrix for :func:`loopwave.rgb_to_yuv420p` (tagged in the stream)
    keyframe_interval : frames between keyframes (default: one second); crash-safe
        MP4 output loses at most this many frames
    title, settings : metadata: a title and a mapping stored as JSON in the comment
    audio : a file whose first audio stream is muxed in (cut to the video's length)
    segment_seconds : split into files of this many seconds: ``name_000.mp4``, ...
    pingpong : after the frames, append them reversed (without repeating the two ends),
        for a seamless back-and-forth loop; keeps the I420 planes in memory (1.5 bytes
        per pixel per frame) until :meth:`close`
    queue_size : frames converted but not yet encoded, at most

    Odd frame sizes are padded to even by repeating the last row/column (4:2:0 needs
    even sizes); :attr:`size` tells the encoded size.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: Any = 30,
        codec: str = "h264",
        crf: int | None = 18,
        preset: str | None = None,
        bitrate: int | None = None,
        matrix: str = "bt709",
        keyframe_interval: int | None = None,
        title: str | None = None,
        settings: Mapping[str, Any] | None = None,
        audio: str | os.PathLike[str] | None = None,
        segment_seconds: float | None = None,
        pingpong: bool = False,
        queue_size: int = 8,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
        self.path = Path(path)
        if not self.path.parent.exists() or not os.access(self.path.parent, os.W_OK):
            raise OSError(f"path: cannot write to {self.path} (folder missing or not writable)")
        self.fps = parse_fps(fps)
        if not isinstance(codec, str):
            raise TypeError(f"codec must be a string; got {type(codec).__name__}")
        available = _encoders()
        if codec not in available:
            raise ValueError(
                f"codec {codec!r} is not available here; available: {sorted(available)}"
            )
        self.encoder = available[codec]
        if crf is not None and (
            isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 63
        ):
            raise ValueError(f"crf must be an int in 0..63 or None; got {crf!r}")
        if bitrate is not None and (not isinstance(bitrate, int) or bitrate <= 0):
            raise ValueError(f"bitrate must be a positive int (bits/s) or None; got {bitrate!r}")
        if keyframe_interval is None:
            keyframe_interval = max(1, round(float(self.fps)))
        if (
            isinstance(keyframe_interval, bool)
            or not isinstance(keyframe_interval, int)
            or keyframe_interval < 1
        ):
            raise ValueError(f"keyframe_interval must be an int >= 1; got {keyframe_interval!r}")
        if segment_seconds is not None and not (
            isinstance(segment_seconds, (int, float)) and segment_seconds > 0
        ):
            raise ValueError(f"segment_seconds must be a positive number; got {segment_seconds!r}")
        if segment_seconds is not None and (audio is not None or pingpong):
            raise ValueError("segment_seconds cannot be combined with audio or pingpong")
        self.audio = Path(audio) if audio is not None else None
        if self.audio is not None and not self.audio.is_file():
            raise OSError(f"audio: no such file {self.audio}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1; got {queue_size!r}")
        if matrix not in _AVCOL_SPC:
            raise ValueError(f"matrix must be one of {sorted(_AVCOL_SPC)}; got {matrix!r}")
        self.matrix = matrix
        self.options: dict[str, str] = {}
        if crf is not None and self.encoder in _CRF_OPTION and bitrate is None:
            self.options[_CRF_OPTION[self.encoder]] = str(crf)
            if self.encoder == "libvpx-vp9":
                self.options["b"] = "0"
        if preset is not None:
            self.options["preset"] = str(preset)
        if self.encoder == "libx265":
            self.options["x265-params"] = "log-level=error"
        self.bitrate = bitrate
        self.gop = keyframe_interval
        self.metadata: dict[str, str] = {}
        if title is not None:
            self.metadata["title"] = str(title)
        if settings is not None:
            self.metadata["comment"] = json.dumps(dict(settings), default=str, sort_keys=True)
        self.segment_frames = (
            None if segment_seconds is None else max(1, round(segment_seconds * float(self.fps)))
        )
        self.pingpong = bool(pingpong)
        self._held: list[np.ndarray] = []
        self.size: tuple[int, int] | None = None  # (height, width) as encoded
        self.frames_written = 0
        self.paths: list[Path] = []
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="loopwave-encoder", daemon=True)
        self._thread.start()

    # -- caller side ---------------------------------------------------------
    def write(self, frames: np.ndarray) -> None:
        """Queue one frame ``(H, W, 3)`` or a batch ``(N, H, W, 3)`` of ``uint8`` RGB."""
        self._raise_if_failed()
        if self._closed:
            raise ValueError("write: the writer is closed")
        x, _ = v.frames(frames, "frames")
        if x.dtype != np.uint8:
            raise TypeError(f"frames must be uint8 RGB; got {x.dtype}")
        h, w = x.shape[1:3]
        if self.size is None:
            self.size = (h + h % 2, w + w % 2)
        elif (h + h % 2, w + w % 2) != self.size:
            raise ValueError(
                f"frames must keep one size; got {h}x{w} after {self.size[0]}x{self.size[1]}"
            )
        if h % 2 or w % 2:
            x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        planes = rgb_to_yuv420p(x, matrix=self.matrix)
        for p in planes:
            self._put(p)
            if self.pingpong:
                self._held.append(p)

    def _put(self, item: np.ndarray | None) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            self._closed = True
            raise RuntimeError(f"video encoding failed: {err}") from err

    def close(self) -> None:
        """Encode what is queued, flush the encoder and close the file(s)."""
        if self._closed:
            self._raise_if_failed()
            return
        if self.pingpong and len(self._held) > 2:
            for p in reversed(self._held[1:-1]):
                self._put(p)
        self._held = []
        self._put(None)
        self._thread.join()
        self._closed = True
        self._raise_if_failed()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.close()
            return
        # an exception in the caller: still finish the file cleanly, and keep
        # the caller's exception as the one that propagates
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the caller's exception wins
            pass

    # -- encoder thread -------------------------------------------------------
    def _segment_path(self, i: int) -> Path:
        if self.segment_frames is None:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{i:03d}{self.path.suffix}")

    def _run(self) -> None:
        seg: _Segment | None = None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                if seg is not None and self.segment_frames and seg.count >= self.segment_frames:
                    seg.close()
                    seg = None
                if seg is None:
                    assert self.size is not None
                    h, w = self.size
                    seg = _Segment(
                        self._segment_path(len(self.paths)),
                        self.encoder,
                        w,
                        h,
                        self.fps,
                        dict(self.options),
                        self.bitrate,
                        self.gop,
                        self.metadata,
                        self.matrix,
                        self.audio,
                    )
                    self.paths.append(seg.path)
                seg.encode(item)
                self.frames_written += 1
            if seg is not None:
                seg.close()
        except BaseException as e:  # reported to the caller on its next call
            self._error = e
            # drain so a blocked producer can notice the failure
            while True:
                try:
                    if self._queue.get_nowait() is None:
                        break
                except queue.Empty:
                    break


def _chain(head: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield head
    yield from rest


class VideoReader:
    """Decode a video file into ``uint8`` RGB batches; seekable by frame index.

    Example
    -------
    >>> with VideoReader("in.mp4", batch=16) as r:  # doctest: +SKIP
    ...     for batch in r:          # (<=16, H, W, 3) uint8
    ...         ...
    ...     frame = r.read(42)       # one frame, by index
    """

    def __init__(self, path: str | os.PathLike[str], *, batch: int = 16) -> None:
        av = _av()
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1; got {batch!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise OSError(f"path: no such file {self.path}")
        try:
            self.container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise ValueError(f"path: {self.path} is not a readable video ({e})") from e
        if not self.container.streams.video:
            self.container.close()
            raise ValueError(f"path: {self.path} has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.batch = batch
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        self.fps = Fraction(rate)
        self.width, self.height = self.stream.width, self.stream.height
        self.metadata = dict(self.container.metadata)

    @property
    def frame_count(self) -> int:
        """Frames in the stream (from the header, else counted by decoding once)."""
        if self.stream.frames:
            return int(self.stream.frames)
        n = sum(len(b) for b in self._batches(0))
        return n

    def _frames(self, start: int) -> Iterator[np.ndarray]:
        tb = self.stream.time_base
        first = self.stream.start_time or 0
        target = first + int(round(start / self.fps / tb))
        # Seek to a keyframe at or before the target; some containers (fragmented
        # MP4) land after it, so step back a second at a time until the first
        # decoded frame is not past the target, or we are at the start.
        step = max(1, int(round(1 / tb)))
        seek_to = target
        while True:
            self.container.seek(
                max(seek_to, first), stream=self.stream, backward=True, any_frame=False
            )
            frames = self.container.decode(self.stream)
            head = next(frames, None)
            if head is None or head.pts is None or head.pts <= target or seek_to <= first:
                break
            seek_to -= step
        if head is None:
            return
        for frame in _chain(head, frames):
            if frame.pts is not None and frame.pts < target:
                continue
            yield self._to_rgb(frame)

    @staticmethod
    def _to_rgb(frame: Any) -> np.ndarray:
        """RGB with the frame's own matrix and range (untagged: BT.601, limited)."""
        space = _SWS_SPACE.get(int(frame.colorspace), "ITU601")
        full = int(frame.color_range) == 2
        rgb = frame.reformat(
            format="rgb24",
            src_colorspace=space,
            src_color_range="JPEG" if full else "MPEG",
            dst_color_range="JPEG",
        )
        return np.asarray(rgb.to_ndarray())

    def _batches(self, start: int) -> Iterator[np.ndarray]:
        buf: list[np.ndarray] = []
        for f in self._frames(start):
            buf.append(f)
            if len(buf) == self.batch:
                yield np.stack(buf)
                buf = []
        if buf:
            yield np.stack(buf)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._batches(0)

    def iter_from(self, index: int) -> Iterator[np.ndarray]:
        """Batches starting at frame ``index``."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"index must be an int >= 0; got {index!r}")
        return self._batches(int(index))

    def read(self, index: int) -> np.ndarray:
        """The frame at ``index`` (exact: seeks to the keyframe before it, then decodes forward)."""
        for batch in self.iter_from(index):
            first: np.ndarray = batch[0]
            return first
        raise IndexError(f"index {index} is past the end of {self.path}")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frames_dir(folder: str | os.PathLike[str]) -> list[Path]:
    """The PNG files of a folder, in name order."""
    d = Path(folder)
    if not d.is_dir():
        raise OSError(f"FRAMES_DIR: no such folder {d}")
    files = sorted(d.glob("*.png"))
    if not files:
        raise ValueError(f"FRAMES_DIR: no .png frames in {d}")
    return files


def _read_png(path: Path) -> np.ndarray:
    av = _av()
    try:
        with av.open(str(path)) as c:
            frame = next(iter(c.decode(video=0)))
            return np.asarray(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, StopIteration) as e:
        raise ValueError(f"cannot read frame {path}: {e}") from e


def encode_dir(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    **writer_options: Any,
) -> int:
    """Encode a folder of PNG frames (name order) into ``out``; returns the frame count."""
    from ._progress import Progress

    files = read_frames_dir(folder)
    with (
        VideoWriter(out, **writer_options) as w,
        Progress(len(files), "encode", enabled=progress) as bar,
    ):
        for f in files:
            w.write(_read_png(f))
            bar.update()
    return len(files)


def add_cli(sub: Any) -> None:
    """Register ``loopwave encode`` on an argparse subparsers object."""
    p = sub.add_parser("encode", help="encode a folder of PNG frames into a video")
    p.add_argument("frames_dir", metavar="FRAMES_DIR")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mkv, .webm)")
    p.add_argument("--fps", default="30", help="frames per second, e.g. 60 or 30000/1001")
    p.add_argument("--codec", default="h264", help="h264, h265, vp9, av1, or an NVENC codec")
    p.add_argument("--crf", type=int, default=18, help="constant rate factor (default 18)")
    p.add_argument("--preset", default=None, help="encoder preset, e.g. slow")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(a: Any) -> int:
        n = encode_dir(
            a.frames_dir,
            a.output,
            fps=parse_fps(a.fps),
            codec=a.codec,
            crf=a.crf,
            preset=a.preset,
            progress=not a.quiet,
        )
        print(f"wrote {n} frames to {a.output}")
        return 0

    p.set_defaults(func=run)
