"""The CLI's errors name the option the user typed, not the library's parameter it went to:
`interpolate --factor 40` said "factor must be in 2..16; got 40" (interpolate()'s words).
Exit code 2, as argparse's own usage errors; a name no option gave stays as the library
wrote it (a settings file's own render.frames)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopwave._validate import renamed
from loopwave.cli import main
from loopwave.png import write_png

# (extra modules, argv, the message after "loopwave COMMAND: error: "); {frames} is a folder
# of two PNG frames, {tmp} an empty folder, {job} a valid settings file (64x64, 4 frames of
# the smoke model), {plain} a file without an extension
CASES = [
    ((), "demo --out {tmp}/d --frames 1", "--frames must be in 2..100000; got 1"),
    ((), "demo --out {tmp}/d --size 8", "--size must be in 16..4096; got 8"),
    ((), "demo --out {tmp}/d --keyframe-every 0", "--keyframe-every must be in 1..100000; got 0"),
    ((), "demo --out {tmp}/d --renders 0", "--renders must be in 1..64; got 0"),
    ((), "demo --out= --frames 2", "--out must name a folder; got an empty path"),
    # about 1.3 TB at the peak: both options are named, as the subject of the message
    ((), "demo --out {tmp}/d --size 4096 --frames 2000", "--frames x --size: 2000 frames of"),
    (("av",), "encode {frames} -o {tmp}/a.xyz", "-o: cannot tell the container of {tmp}/a.xyz"),
    (("av",), "encode {frames} -o {tmp}", "-o: cannot write to {tmp}: it is a folder"),
    (
        ("av",),
        "encode {frames} -o {tmp}/no/a.mp4",
        "-o: cannot write to {tmp}/no/a.mp4: the folder",
    ),
    (("av",), "encode {frames} -o {tmp}/a.mp4 --audio {tmp}/no.wav", "--audio: no such file"),
    (("av",), "encode {frames} -o {tmp}/a.mp4 --audio {tmp}", "--audio: is a folder, not a file"),
    ((), "interpolate {frames} -o {tmp}/o --factor 40", "--factor must be in 2..16; got 40"),
    ((), "interpolate {frames} -o {tmp}/o --fps 0", "--fps must be in [1/10000, 1000]; got '0'"),
    (("onnxruntime",), "interpolate {frames} -o {tmp}/o --model {tmp}/no.onnx", "--model: no such"),
    # (from a review: a folder was "no such file", and -o "" the current folder's files)
    (("onnxruntime",), "interpolate {frames} -o {tmp}/o --model {tmp}", "--model: {tmp} is a fol"),
    ((), "interpolate {frames} -o=", "-o: got an empty path; give a video file or a new folder"),
    (("av",), "encode {frames} -o=", "-o: got an empty path; give a video file"),
    ((), "export-rife {tmp}/no.pkl -o=", "-o: got an empty path; name the .onnx file to write"),
    ((), "export-rife {tmp}/no.pkl -o .", "-o: . is a folder; name the .onnx file to write"),
    ((), "export-rife {tmp}/no.pkl -o /", "-o: / is a folder; name the .onnx file to write"),
    (
        ("onnxruntime",),
        "interpolate {frames} -o {tmp}/o --model {tmp}/no.onnx --scale 3",
        "--scale must be 1.0, 0.5 or 0.25",
    ),
    (
        ("av",),
        "interpolate {frames} -o {tmp}/no/o.mp4",
        "-o: cannot write to {tmp}/no/o.mp4: the folder",
    ),
    # an existing file as a folder of PNG frames, or a path under it (raw errno messages)
    (
        (),
        "interpolate {frames} -o {plain}",
        "-o: {plain} is a file; name a video file (.mp4, .mkv, ...) or a folder for PNG frames",
    ),
    ((), "interpolate {frames} -o {plain}/x", "-o: cannot write the folder {plain}/x: {plain} is"),
    ((), "interpolate {frames} -o {plain}/x.mp4", "-o: cannot write the video {plain}/x.mp4: "),
    # IN's reader, which names its parameter path too: IN, not -o
    (
        ("av",),
        "interpolate {frames}/notes.txt -o {tmp}/o",
        "IN: {frames}/notes.txt is not a readable",
    ),
    (
        ("torch", "onnx"),
        "export-rife {tmp}/no.pkl -o {tmp}/r.onnx",
        "CKPT: no such file {tmp}/no.pkl",
    ),
    ((), "export-rife {tmp}/no.pkl -o {tmp}/r.onnx --scale 3", "--scale must be 1.0, 0.5 or 0.25"),
    (
        (),
        "export-rife {tmp}/no.pkl -o {tmp}",
        "-o: {tmp} is a folder; name the .onnx file to write",
    ),
    ((), "export-rife {tmp}/no.pkl -o {tmp}/no/r.onnx", "-o: the folder {tmp}/no does not exist"),
    (("torch",), "bench --size 100", "--size must be a multiple of 8; got 100"),
    (("torch",), "bench --steps 0", "--steps must be an int >= 1; got 0"),
    (("torch",), "bench --strength 2", "--strength must be in [1/1000, 1]; got 2.0"),
    (("torch",), "bench --frames 1", "--frames must be an int >= 3; got 1"),
    (("torch",), "bench --factor 40", "--factor must be an int in 2..16; got 40"),
    (("torch",), "bench --repeats 0", "--repeats must be an int >= 1; got 0"),
    (("torch",), "bench --device nope", "--device: 'nope' is not a torch device"),
    (("torch", "diffusers"), "bench --model {tmp}/no", "--model path '{tmp}/no' is not a local"),
    ((), "render {tmp}/no.toml", "JOB: no such file {tmp}/no.toml"),
    ((), "render --resume {tmp}", "--resume: {tmp} has no settings.json to resume from"),
    # the option and the key of the settings it overrides (--size gives two)
    ((), "render {job} --frames 0", "--frames (render.frames): expected an int in 1..1000000"),
    ((), "render {job} --size 64x63", "--size (render.height): expected a multiple of 8"),
    (("torch", "diffusers"), "render {job} --model {tmp}/no", "--model path '"),
]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    frames, empty = tmp_path / "frames", tmp_path / "tmp"
    frames.mkdir()
    empty.mkdir()
    for i in range(2):
        write_png(frames / f"{i:03d}.png", np.full((16, 16, 3), 40 * i, np.uint8))
    (frames / "notes.txt").write_text("not a video")
    plain = tmp_path / "plainfile"  # a file without an extension
    plain.write_text("not a folder")
    job = tmp_path / "job.json"
    settings = {
        "version": 1,
        "render": {"frames": 4, "width": 64, "height": 64},
        "prompts": {"0": "a cat"},
        "model": {"backend": "smoke"},
        "output": {"dir": str(tmp_path / "out")},
    }
    job.write_text(json.dumps(settings))
    return {"frames": str(frames), "tmp": str(empty), "job": str(job), "plain": str(plain)}


@pytest.mark.parametrize(("needs", "argv", "said"), CASES, ids=[c[1] for c in CASES])
def test_errors_name_the_option(places, capsys, needs, argv, said) -> None:
    for module in needs:
        pytest.importorskip(module)
    args = [a.format(**places) for a in argv.split()]
    if args[0] == "demo":
        args.append("--quiet")
    assert main(args) == 2
    assert f"loopwave {args[0]}: error: {said.format(**places)}" in capsys.readouterr().err


def test_cuda_graphs_without_cuda_names_the_option(capsys) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("the option is refused only without CUDA")
    assert main(["bench", "--cuda-graphs"]) == 2
    err = capsys.readouterr().err  # it said "accel: cuda_graphs needs ..."
    assert "loopwave bench: error: --cuda-graphs needs a CUDA device" in err


def test_crf_and_bitrate_are_refused_together_by_the_parser(places, capsys) -> None:
    # the writer said "give crf (constant quality) or bitrate, not both"
    with pytest.raises(SystemExit) as e:
        main(["encode", places["frames"], "-o", "x.mp4", "--crf", "18", "--bitrate", "9000"])
    assert e.value.code == 2
    assert "argument --bitrate: not allowed with argument --crf" in capsys.readouterr().err


def test_a_name_no_option_gave_stays(places, capsys, tmp_path) -> None:
    """The settings file's own bad render.frames, with --size given beside it: the key,
    not an option."""
    job = json.loads(Path(places["job"]).read_text())
    job["render"]["frames"] = 0
    (tmp_path / "zero.json").write_text(json.dumps(job))
    assert main(["render", str(tmp_path / "zero.json"), "--size", "64x64", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "loopwave render: error: render.frames: expected an int in 1..1000000" in err


def test_a_long_value_is_not_quoted_whole(places, capsys, tmp_path) -> None:
    """From a review: a 100,000-character video.codec or model.accel came back whole in
    a one-line error (settings' own messages cut values short)."""
    job = json.loads(Path(places["job"]).read_text())
    long = "x" * 100_000
    for section, key, value in [
        ("video", "codec", long),
        ("model", "accel", long),
        ("model", "accel", {long: True}),
        ("model", "accel", {"sdpa": long}),
        ("model", "accel", {"compile": [long]}),
    ]:
        edited = json.loads(json.dumps(job))
        edited.setdefault(section, {})[key] = value
        (tmp_path / "long.json").write_text(json.dumps(edited))
        assert main(["render", str(tmp_path / "long.json"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"loopwave render: error: {section}.") and len(err) < 400, err[:400]


def test_render_options_replace_the_files_values_before_they_are_checked(
    places, capsys, tmp_path, monkeypatch
) -> None:
    """From a review: the settings file was checked before --frames, --size, --out and
    --model were put in, so a value the option replaces was refused in the option's
    name ("--frames (render.frames): ... got 2000000" with --frames 2 given), and a
    file made to be used with --model (a diffusers backend without its path) never ran."""
    import loopwave.render as lr

    given: list[Any] = []
    monkeypatch.setattr(lr, "render", lambda s, **k: given.append(s) or _Rendered(tmp_path))
    job = json.loads(Path(places["job"]).read_text())
    for edit, options, key, want in [
        ({"render": {"frames": 2_000_000}}, ["--frames", "2"], ("render", "frames"), 2),
        ({"render": {"width": 100}}, ["--size", "64x64"], ("render", "width"), 64),
        ({"output": {"dir": "a\0b"}}, ["--out", str(tmp_path / "o")], ("output", "dir"), None),
        ({"model": {"backend": "diffusers"}}, ["--model", str(tmp_path)], ("model", "path"), None),
        ({"model": {"path": "x"}}, ["--model", str(tmp_path)], ("model", "backend"), "diffusers"),
    ]:
        edited = json.loads(json.dumps(job))
        for section, values in edit.items():
            edited[section] = {**edited.get(section, {}), **values}
        (tmp_path / "e.json").write_text(json.dumps(edited))
        assert main(["render", str(tmp_path / "e.json"), *options, "--quiet"]) == 0, (
            capsys.readouterr().err
        )
        got = given.pop()[key[0]][key[1]]
        assert got == want if want is not None else got == str(Path(options[1]).absolute())
    # an option's own bad value is still named by the option; an empty --model too
    assert main(["render", places["job"], "--frames", "0", "--quiet"]) == 2
    assert "error: --frames (render.frames): expected an int in 1..1000000" in (
        capsys.readouterr().err
    )
    assert main(["render", places["job"], "--model", "", "--quiet"]) == 2
    assert "error: --model (model.path)" in capsys.readouterr().err
    assert main(["render", places["job"], "--size", "9" * 5000 + "x64", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: --size: a side of more than 18 digits; got '999" in err and len(err) < 200
    # (a later review) a large side is the settings' to refuse, and leading zeros are fine
    assert main(["render", places["job"], "--size", "1000000x64", "--quiet"]) == 2
    assert "error: --size (render.width): expected" in capsys.readouterr().err
    for size in ("0000064x64", "0" * 5000 + "64x64"):
        assert main(["render", places["job"], "--size", size, "--quiet"]) == 0
        assert given.pop()["render"]["width"] == 64


class _Rendered:
    def __init__(self, d: Path) -> None:
        self.frames, self.run_dir, self.video = 4, d, None


def test_renamed_changes_only_the_subject() -> None:
    names = {"frames": "--frames", "size": "--size", "render": "RENDER"}
    assert renamed("frames must be >= 2", names) == "--frames must be >= 2"
    assert renamed("frames x size: too big", names) == "--frames x --size: too big"
    # a name that goes on, or one after the subject, is another thing
    assert renamed("frames[3] must be one frame", names) == "frames[3] must be one frame"
    assert renamed("render.frames: expected", names) == "render.frames: expected"
    assert renamed("framesize must be", names) == "framesize must be"
    # a path that starts with a name (a reader's "input/clip.mov: decoding failed")
    paths = {"input": "IN", "out": "--out"}
    assert renamed("input/clip.mov: decoding failed", paths) == "input/clip.mov: decoding failed"
    assert renamed("out\\demo: cannot write", paths) == "out\\demo: cannot write"
    assert renamed("give frames or size", names) == "give frames or size"
    assert renamed("frames must be >= 2", {}) == "frames must be >= 2"


def test_render_refuses_an_empty_out(places, capsys) -> None:
    """An empty --out (an unset variable in a script) rendered into the current folder."""
    assert main(["render", places["job"], "--out", "", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "loopwave render: error: --out (output.dir): expected a folder path ('.' for" in err


def test_commands_run_with_standard_output_closed(tmp_path):
    """From a review: started with fd 1 closed (``>&-``: cron, some supervisors) every
    command ended in an AttributeError traceback and exit 120, a render only after all its
    work; Python itself drops what print writes there."""
    import subprocess
    import sys

    for args in (["settings"], ["demo", "--out", str(tmp_path / "d"), "--frames", "4",
                                "--size", "16", "--quiet"]):  # fmt: skip
        r = subprocess.run(  # the shell closes fd 1 for it (no preexec_fn in a threaded pytest)
            ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "loopwave", *args],
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr[-2000:])
    assert (tmp_path / "d" / "contact_sheet.png").is_file()


def test_commands_run_with_standard_error_closed(tmp_path):
    """From a review: started with fd 2 closed (``2>&-``) Python's sys.stderr is None; the
    progress bar's first write raised AttributeError, and demo, interpolate and encode
    exited 1 saying nothing, interpolate removing the frames it had made."""
    import subprocess
    import sys

    pytest.importorskip("av")

    def run(*args):
        return subprocess.run(
            ["sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, "-m", "loopwave", *args],
            stdout=subprocess.PIPE,
            text=True,
            timeout=300,
        )

    demo = tmp_path / "d"
    r = run("demo", "--out", str(demo), "--frames", "4", "--size", "16")
    assert r.returncode == 0 and (demo / "contact_sheet.png").is_file(), r.stdout[-2000:]
    r = run("interpolate", str(demo / "frames"), "-o", str(tmp_path / "i"), "--factor", "2")
    assert r.returncode == 0 and len(list((tmp_path / "i").glob("*.png"))) == 7, r.stdout
    r = run("encode", str(tmp_path / "i"), "-o", str(tmp_path / "v.mp4"))
    assert r.returncode == 0 and (tmp_path / "v.mp4").stat().st_size > 0, r.stdout
    # a refusal still exits 2 (its message goes where stderr went: nowhere)
    assert run("encode", str(tmp_path / "nothing"), "-o", str(tmp_path / "w.mp4")).returncode == 2
    # the process stage's encoder inherits the closed fd 2 (os.open's devnull was not
    # inheritable: it exited 1 at its end, and the render failed with a StageError)
    pytest.importorskip("diffusers")  # the smoke model
    job = {
        "version": 1,
        "render": {"frames": 3, "width": 64, "height": 64, "steps": "0: (2)"},
        "colour": {"mode": "none"},
        "interpolation": {"factor": 2, "backend": "blend"},
        "output": {"dir": str(tmp_path / "out"), "name": "m"},
        "prompts": {"0": "a cat"},
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    r = run("render", str(tmp_path / "job.json"), "--stages", "process")
    assert r.returncode == 0 and (tmp_path / "out" / "m" / "m.mp4").is_file(), r.stdout


def test_render_notes_prompts_past_the_last_frame_and_refuses_an_empty_resume(
    places, capsys, tmp_path
) -> None:
    """From a review: prompt keyframes at or past render.frames were taken and never used,
    without a word (a note now, but for --frames N, a preview that means it); an empty
    --resume (an unset variable) was taken as no --resume ("a settings file is
    needed")."""
    pytest.importorskip("av")
    pytest.importorskip("diffusers")  # the smoke model
    job = json.loads(Path(places["job"]).read_text())
    job["prompts"] = {"0": "a cat", "3": "a dog", "4": "a fox", "500": "a bird"}
    job["interpolation"] = {"factor": 1}
    job["colour"] = {"mode": "none"}
    (tmp_path / "late.json").write_text(json.dumps(job))
    assert main(["render", str(tmp_path / "late.json"), "--no-video"]) == 0
    err = capsys.readouterr().err
    assert "note: the prompt keyframes at frame 4, 500 come after the last frame" in err
    assert "(render.frames = 4)" in err
    job["output"]["dir"] = str(tmp_path / "out2")
    (tmp_path / "late.json").write_text(json.dumps(job))
    assert main(["render", str(tmp_path / "late.json"), "--frames", "3", "--no-video"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main(["render", "--resume", ""]) == 2
    assert "loopwave render: error: --resume: expected the run's folder; got ''" in (
        capsys.readouterr().err
    )


# -- main() called in-process by a host program ------------------------------------------


def test_main_called_with_argv_leaves_the_process_settings_to_the_host(monkeypatch, capsys):
    """From a review of loopwave inside a host program: main(argv) took over SIGTERM (the
    host's graceful stop never heard of one, main returned 143) and set
    TRANSFORMERS_VERBOSITY for good (transformers imported later stayed at ERROR, and
    every child process inherited it). Both are the program's, main() without argv."""
    import os
    import signal

    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    installed = []
    real = signal.signal

    def spy(sig, handler):
        installed.append(sig)
        return real(sig, handler)

    monkeypatch.setattr(signal, "signal", spy)
    # (a test run under nohup, or a CI runner ignoring SIGHUP, passes that on)
    hup = real(signal.SIGHUP, signal.SIG_DFL)
    assert main(["settings"]) == 0
    assert signal.SIGTERM not in installed
    assert "TRANSFORMERS_VERBOSITY" not in os.environ
    monkeypatch.setattr("sys.argv", ["loopwave", "settings"])
    assert main() == 0  # the program: both taken, the handler put back after
    assert installed.count(signal.SIGTERM) == 2
    assert os.environ.get("TRANSFORMERS_VERBOSITY") == "error"
    # SIGHUP as SIGTERM, and put back, unless ignored (nohup), where it stays ignored
    assert installed.count(signal.SIGHUP) == 2
    real(signal.SIGHUP, signal.SIG_IGN)
    try:
        installed.clear()
        assert main() == 0
        assert signal.SIGHUP not in installed and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        real(signal.SIGHUP, hup)


def test_main_on_several_threads_puts_back_the_stdout_it_found():
    """From the same review: each main() put back the sys.stdout it had found, so with two
    at once on a host's threads the first to end left the other's wrapper in place for
    good (without .buffer: the host's sys.stdout.buffer.write raised AttributeError)."""
    import sys

    from loopwave import cli

    before = sys.stdout
    a = cli._wrap_stdout()
    b = cli._wrap_stdout()  # a second call while the first runs
    assert a is b and sys.stdout is a
    assert sys.stdout.encoding == before.encoding  # the wrapped stream's own, meanwhile
    cli._unwrap_stdout(a)
    assert sys.stdout is b  # the other call still runs
    cli._unwrap_stdout(b)
    assert sys.stdout is before


def test_an_interrupted_encoder_probe_is_not_kept(monkeypatch):
    """From the same review: a Ctrl-C during the first probe of a codec left it marked
    missing for the rest of the process ("codec 'h264' is not available here")."""
    pytest.importorskip("av")
    from loopwave import video

    monkeypatch.setattr(video, "_probed", {})
    real = video._try_open
    calls = []

    def interrupted(name, options, *a, **k):
        calls.append(name)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(name, options, *a, **k)

    monkeypatch.setattr(video, "_try_open", interrupted)
    with pytest.raises(KeyboardInterrupt):
        video._encoder_for("h264")
    assert "h264" not in video._probed
    assert video._encoder_for("h264") == "libx264"


def test_a_stdout_that_fails_leaves_no_wrapper_behind(monkeypatch):
    """From a review of this change: a flush that failed in main()'s clean-up skipped
    putting sys.stdout back, and every later main() in the process reused the stale
    wrapper over the broken stream and failed the same way."""
    import io
    import sys

    from loopwave import cli

    class Broken(io.StringIO):
        def flush(self):
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(sys, "stdout", Broken())
    with pytest.raises(OSError):
        main(["settings"])
    assert cli._stdout_users == [] and isinstance(sys.stdout, Broken)
    good = io.StringIO()
    monkeypatch.setattr(sys, "stdout", good)
    assert main(["settings"]) == 0 and "[render]" in good.getvalue()


def test_the_programs_own_warnings_print_as_its_notes(monkeypatch):
    """From a review: a resume's damaged-frame warning printed as Python's
    "/.../loopwave/render.py:1530: RuntimeWarning: ..." with a line of loopwave's code."""
    import os
    import warnings

    import loopwave.render
    from loopwave.cli import _plain_warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    _plain_warnings("render")
    ours = warnings.formatwarning("frame 2 is damaged", RuntimeWarning, loopwave.render.__file__, 9)
    assert ours == "loopwave render: warning: frame 2 is damaged\n"
    other = warnings.formatwarning("x", UserWarning, os.__file__, 3)
    assert other.startswith(f"{os.__file__}:3: UserWarning: x")


def test_stdout_whose_reader_is_gone_keeps_no_extra_descriptor():
    """Once its reader has gone, the CLI's stdout points its descriptor at /dev/null;
    the /dev/null descriptor it opened for that stayed open as well (one a broken pipe)."""
    import os
    from pathlib import Path

    from loopwave.cli import _Stdout

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts open files through /proc")

    def nulls() -> int:
        return sum(os.path.realpath(p) == os.devnull for p in Path("/proc/self/fd").iterdir())

    r, w = os.pipe()
    os.close(r)  # the reader has gone
    with os.fdopen(w, "w") as f:
        out = _Stdout(f)
        before = nulls()
        out.write("a line\n")
        assert out.gone and out.write("more\n") == 5
        assert nulls() == before + 1  # the stream's own descriptor, now /dev/null


def test_a_pyav_error_escaping_a_command_is_an_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    """PyAV's errors are not all ValueError or OSError (ProtocolNotFoundError is a
    LookupError): from a review of the CLI on odd inputs, one escaped `encode` as a
    traceback, exit 1 (that path is closed; any other is an error, exit 2)."""
    av = pytest.importorskip("av")
    import loopwave.video as lv

    def refuse(*a, **k):
        raise av.error.ProtocolNotFoundError(-1330794744, "Protocol not found", "x:y")

    monkeypatch.setattr(lv, "encode_dir", refuse)
    frames = tmp_path / "f"
    frames.mkdir()
    assert main(["encode", str(frames), "-o", str(tmp_path / "o.mp4"), "--quiet"]) == 2
    assert "loopwave encode: error: [Errno -1330794744] Protocol not found" in (
        capsys.readouterr().err
    )
    monkeypatch.setattr(lv, "encode_dir", lambda *a, **k: 1 / 0)  # a bug stays a traceback
    with pytest.raises(ZeroDivisionError):
        main(["encode", str(frames), "-o", str(tmp_path / "o.mp4"), "--quiet"])
