"""VideoWriter / VideoReader round trips with PyAV, crash safety, options, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")
from loopwave import video as lv  # noqa: E402
from loopwave.cli import main  # noqa: E402


def moving(n: int = 24, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth frames with motion (gradients and a moving soft blob)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for i in range(n):
        cx = 10 + 1.5 * i
        blob = np.exp(-((x - cx) ** 2 + (y - h / 2) ** 2) / 60.0)
        r = 40 + 150 * x / w + 60 * blob
        g = 30 + 120 * y / h + 40 * blob
        b = 90 + 80 * blob + 20 * np.sin(i / 3)
        out.append(np.stack([r, g, b], -1))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return float(10 * np.log10(255**2 / mse))


def decode_all(path) -> np.ndarray:
    with lv.VideoReader(path) as r:
        return np.concatenate(list(r))


@pytest.mark.parametrize("codec", [c for c in lv.list_encoders() if "nvenc" not in c])
def test_round_trip_each_codec(tmp_path, codec):
    frames = moving()
    path = tmp_path / f"out{lv.CODECS[codec][1]}"
    with lv.VideoWriter(path, fps=12, codec=codec, crf=4) as w:
        w.write(frames[:10])
        for f in frames[10:]:
            w.write(f)
    with lv.VideoReader(path) as r:
        assert (r.height, r.width) == (48, 64)
        assert r.fps == 12
        assert r.frame_count == len(frames)
        out = np.concatenate(list(r))
    assert out.shape == frames.shape
    assert psnr(out, frames) >= 40


def test_h264_is_available():
    assert "h264" in lv.list_encoders()


def test_killed_writer_leaves_a_playable_file(tmp_path):
    path = tmp_path / "killed.mp4"
    script = textwrap.dedent(f"""
        import sys, time, numpy as np
        from loopwave.video import VideoWriter
        w = VideoWriter({str(path)!r}, fps=10, keyframe_interval=5, crf=23)
        rng = np.random.default_rng(0)
        for i in range(1000):
            w.write(np.full((32, 32, 3), i % 256, np.uint8))
            if i == 40:
                print("flushed", flush=True)
            time.sleep(0.01 if i < 40 else 0.05)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "flushed"
    time.sleep(1.0)  # ~20 more frames, several more keyframes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n = len(decode_all(path))
    # every completed fragment (5 frames each) up to at least frame 40 is there
    assert n >= 35


def test_odd_size_is_padded(tmp_path):
    frames = moving(6, 31, 45)
    path = tmp_path / "odd.mp4"
    with lv.VideoWriter(path, fps=10, crf=4) as w:
        w.write(frames)
    assert w.size == (32, 46)
    out = decode_all(path)
    assert out.shape == (6, 32, 46, 3)
    assert psnr(out[:, :31, :45], frames) >= 38


def test_rational_fps_and_metadata(tmp_path):
    path = tmp_path / "meta.mp4"
    with lv.VideoWriter(path, fps="30000/1001", title="morph", settings={"seed": 7}) as w:
        w.write(moving(4))
    with lv.VideoReader(path) as r:
        assert r.fps == Fraction(30000, 1001)
        assert r.metadata.get("title") == "morph"
        assert '"seed": 7' in r.metadata.get("comment", "")


def test_segments(tmp_path):
    path = tmp_path / "seg.mp4"
    with lv.VideoWriter(path, fps=10, segment_seconds=1.0) as w:
        w.write(moving(25))
    assert [p.name for p in w.paths] == ["seg_000.mp4", "seg_001.mp4", "seg_002.mp4"]
    counts = [len(decode_all(p)) for p in w.paths]
    assert counts == [10, 10, 5]


def test_pingpong(tmp_path):
    frames = moving(8)
    path = tmp_path / "pp.mp4"
    with lv.VideoWriter(path, fps=10, crf=2, pingpong=True) as w:
        w.write(frames)
    out = decode_all(path)
    assert len(out) == 8 + 6  # the ends are not repeated
    assert psnr(out[8:], frames[6:0:-1]) > 38


def test_audio_is_muxed(tmp_path):
    wav = tmp_path / "tone.wav"
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(22050)
        t = np.arange(22050 * 2) / 22050
        f.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    path = tmp_path / "av.mp4"
    with lv.VideoWriter(path, fps=10, audio=wav) as w:
        w.write(moving(10))
    with av.open(str(path)) as c:
        assert len(c.streams.audio) == 1 and len(c.streams.video) == 1
        n_audio = sum(1 for _ in c.decode(audio=0))
    assert n_audio > 0


def test_encoder_errors_reach_the_caller(tmp_path):
    w = lv.VideoWriter(tmp_path / "x.mp4", fps=10)
    w.write(moving(2))
    w._queue.put(np.zeros((3, 3), np.uint8))  # a malformed item the encoder will choke on
    with pytest.raises(RuntimeError, match="video encoding failed"):
        for _ in range(200):
            w.write(moving(1))
            time.sleep(0.01)
        w.close()


def test_exception_in_with_block_still_closes(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(KeyError):
        with lv.VideoWriter(path, fps=10) as w:
            w.write(moving(5))
            raise KeyError("caller bug")
    assert len(decode_all(path)) == 5


def test_reader_seeks_exactly(tmp_path):
    frames = moving(30)
    path = tmp_path / "seek.mp4"
    with lv.VideoWriter(path, fps=10, crf=4, keyframe_interval=8) as w:
        w.write(frames)
    seq = decode_all(path)
    with lv.VideoReader(path, batch=4) as r:
        for i in (0, 7, 8, 13, 29):
            np.testing.assert_array_equal(r.read(i), seq[i])
        rest = np.concatenate(list(r.iter_from(21)))
        np.testing.assert_array_equal(rest, seq[21:])
        with pytest.raises(IndexError):
            r.read(30)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="codec 'nope'.*available"):
        lv.VideoWriter(tmp_path / "a.mp4", codec="nope")
    with pytest.raises(OSError, match="missing"):
        lv.VideoWriter(tmp_path / "no" / "such" / "a.mp4")
    with pytest.raises(ValueError, match="fps"):
        lv.VideoWriter(tmp_path / "a.mp4", fps=0)
    with pytest.raises(TypeError, match="fps"):
        lv.VideoWriter(tmp_path / "a.mp4", fps=None)
    with pytest.raises(ValueError, match="crf"):
        lv.VideoWriter(tmp_path / "a.mp4", crf=99)
    with pytest.raises(ValueError, match="matrix"):
        lv.VideoWriter(tmp_path / "a.mp4", matrix="rec9")
    with lv.VideoWriter(tmp_path / "b.mp4") as w:
        with pytest.raises(TypeError, match="frames"):
            w.write(np.zeros((8, 8, 3), np.float32))
        w.write(np.zeros((8, 8, 3), np.uint8))
        with pytest.raises(ValueError, match="one size"):
            w.write(np.zeros((16, 8, 3), np.uint8))
    with pytest.raises(OSError, match="no such file"):
        lv.VideoReader(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="not a readable video"):
        lv.VideoReader(junk)


def test_encode_cli(tmp_path, capsys):
    from loopwave.png import write_png

    frames = moving(6)
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(frames):
        write_png(d / f"{i:05d}.png", f)
    out = tmp_path / "enc.mp4"
    assert main(["encode", str(d), "-o", str(out), "--fps", "12", "--crf", "4", "--quiet"]) == 0
    assert psnr(decode_all(out), frames) >= 40
    assert main(["encode", str(tmp_path / "none"), "-o", str(out), "--quiet"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["encode", str(d), "-o", str(out), "--codec", "nope", "--quiet"]) == 2
    assert "available" in capsys.readouterr().err
