"""The ``loopwave`` command line."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    r = run_demo(
        args.out,
        frames=args.frames,
        size=args.size,
        keyframe_every=args.keyframe_every,
        renders=args.renders,
        progress=not args.quiet,
    )
    print(f"wrote {r.frames} corrected frames to {r.out_dir / 'frames'}")
    print(f"contact sheet: {r.out_dir / 'contact_sheet.png'} (rows: drifted, corrected, target)")
    print(
        f"mean Lab distance to the colour plan: {r.drift_before:.2f} before, "
        f"{r.drift_after:.2f} after correction (per frame: {r.out_dir / 'drift.csv'}); "
        f"the undrifted frames sit at {r.content_floor:.2f}, the part content changes explain"
    )
    print(f"color_correct: {r.correct_fps:.1f} frames/s at {args.size}x{args.size}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, simd_level

    p = argparse.ArgumentParser(
        prog="loopwave", description="loopwave: loopback morph videos, fast and headless"
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__} (colour kernels: {simd_level()})",
    )
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="colour-correct a simulated drifting loopback run")
    d.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    d.add_argument("--frames", type=int, default=96, help="number of frames (default: 96)")
    d.add_argument("--size", type=int, default=256, help="frame side in pixels (default: 256)")
    d.add_argument("--keyframe-every", type=int, default=12, help="colour-plan keyframe spacing")
    d.add_argument("--renders", type=int, default=4, help="renders averaged per keyframe")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)
    from .video import add_cli as add_video_cli

    add_video_cli(sub)  # `encode`; PyAV is imported only when it runs
    from .interpolate import add_cli as add_interpolate_cli

    add_interpolate_cli(sub)  # `interpolate`; OpenCV is imported only when it runs
    from .rife import add_cli as add_rife_cli

    add_rife_cli(sub)  # `export-rife`; torch is imported only when it runs
    from .render import add_cli as add_render_cli

    add_render_cli(sub)  # `render`; torch/diffusers are imported only when it runs
    from .settings import add_cli as add_settings_cli

    add_settings_cli(sub)  # `settings`: the settings reference, as a TOML file
    from .bench import add_cli as add_bench_cli

    add_bench_cli(sub)  # `bench`; everything heavy is imported only when it runs
    return p


# What the library calls a value an option gives, where that is not the option's dest (it
# goes by its dest too: factor for --factor, keyframe_interval for --keyframe-interval,
# settings for JOB), so that an error naming it names the option (_in_options)
_LIBRARY_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "demo": {"out": ("out_dir",)},
    "encode": {"output": ("path",)},  # the writer's
    "interpolate": {"output": ("path",)},  # the writer's (IN's reader is named IN there)
    "export-rife": {"output": ("out",)},
    "render": {
        "out": ("output.dir",),
        "model": ("model.path",),
        "frames": ("render.frames",),
        "size": ("render.width", "render.height"),
        "resume": ("run_dir",),
    },
    "bench": {"cuda_graphs": ("accel: cuda_graphs",)},
}


def _in_options(message: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """A library error of the command ``args`` ran, naming the option the user typed
    instead of the parameter or key it gave ("--factor must be in 2..16", not "factor
    ..."). Only options that gave a value (not None: a render's --frames left out names
    the settings file's render.frames, and its errors stay so) rename anything."""
    from ._validate import renamed

    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    aliases = _LIBRARY_NAMES.get(args.command, {})
    names: dict[str, str] = {}
    for action in commands.choices[args.command]._actions:
        if getattr(args, action.dest, None) is None:
            continue
        metavar = action.metavar if isinstance(action.metavar, str) else action.dest
        option = action.option_strings[0] if action.option_strings else metavar
        names[action.dest] = option
        for name in aliases.get(action.dest, ()):
            # a settings key the option overrides stays beside it: "--size (render.width)"
            names[name] = f"{option} ({name})" if "." in name else option
    return renamed(message, names)


class _Stdout(io.TextIOBase):
    """Standard output that, once its reader has gone (``| head``, ``| true``: a
    BrokenPipeError), drops what is written after: the command's work is done or goes
    on, and must not fail over a message no one reads (a finished render exited 2 with
    "error: Broken pipe"; `bench --json` lost its report, written after the table)."""

    def __init__(self, inner: Any) -> None:
        # None: started with its standard output closed (``>&-``, some supervisors), where
        # Python drops what print writes (every command ended in an AttributeError)
        self.inner, self.gone = inner, inner is None

    def write(self, s: str) -> int:
        if not self.gone:
            try:
                try:
                    self.inner.write(s)
                except UnicodeEncodeError:
                    # a path that is not valid text (a byte of another encoding in a file
                    # name) in a stream that refuses such characters: a command that had
                    # written its file exited 2 with the codec's error (from a review)
                    enc = getattr(self.inner, "encoding", None) or "utf-8"
                    self.inner.write(s.encode(enc, "backslashreplace").decode(enc, "replace"))
                if "\n" in s:  # a line at a time, so a gone reader shows here, not at exit
                    self.inner.flush()
            except BrokenPipeError:
                self._gone()
        return len(s)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.inner.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.gone = True
        try:  # what the stream still buffers goes nowhere, also at the interpreter's exit
            null = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            os.dup2(null, self.inner.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        finally:
            os.close(null)  # (the stream's descriptor is a copy of it now)

    def isatty(self) -> bool:
        return self.inner is not None and bool(self.inner.isatty())

    @property
    def encoding(self) -> Any:  # type: ignore[override]  # (io.TextIOBase's is None)
        return getattr(self.inner, "encoding", None)

    @property
    def errors(self) -> Any:  # type: ignore[override]
        return getattr(self.inner, "errors", None)

    def __getattr__(self, name: str) -> Any:
        # the rest as the stream it wraps has it (buffer, encoding, errors: another thread
        # of a host program calling main() writes to sys.stdout meanwhile)
        if name == "inner" or self.inner is None:
            raise AttributeError(name)
        return getattr(self.inner, name)

    def fileno(self) -> int:
        if self.inner is None:
            raise io.UnsupportedOperation("standard output is closed")
        return int(self.inner.fileno())


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a container or service stopping) or SIGHUP (its terminal closed,
    an ssh connection dropped), raised where Ctrl-C's KeyboardInterrupt would be, so the
    commands clean up and save as they do for Ctrl-C. ``signum``: which one."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = int(signum)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def _take_stop_signals() -> dict[int, Any]:
    """Handle SIGTERM, and SIGHUP unless ignored (``nohup``), as Ctrl-C; the handlers
    found, to put back. (SIGHUP killed a command outright: a folder of in-betweens left
    looking complete, a ``NAME.partial.EXT`` left behind.)"""
    found: dict[int, Any] = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm)}
    hup = getattr(signal, "SIGHUP", None)  # (POSIX only)
    if hup is not None and signal.getsignal(hup) is not signal.SIG_IGN:
        found[hup] = signal.signal(hup, _on_sigterm)
    return found


def _fill_closed_fd(fd: int) -> None:
    """Hold the closed standard descriptor ``fd`` open on the null device (the lowest free
    descriptor is the one a new file takes), inherited by child processes: os.open's are
    not, and the process stage's encoder then started with it closed too."""
    with contextlib.suppress(OSError):
        got = os.open(os.devnull, os.O_WRONLY)
        if got != fd:
            os.close(got)
        else:
            os.set_inheritable(got, True)


_stdout_lock = threading.Lock()
_stdout_users: list[_Stdout] = []  # the wrapper in place, once per main() running


def _wrap_stdout() -> _Stdout:
    """sys.stdout wrapped as :class:`_Stdout` while any main() runs: one wrapper for
    calls at once on several threads of a host program, put back by the last to end
    (each put back what it had found, so the first to end left the other's in place)."""
    with _stdout_lock:
        out = _stdout_users[0] if _stdout_users else _Stdout(sys.stdout)
        if not _stdout_users:
            sys.stdout = out
        _stdout_users.append(out)
        return out


def _unwrap_stdout(out: _Stdout) -> None:
    with _stdout_lock:
        _stdout_users.remove(out)
        if not _stdout_users and sys.stdout is out:
            sys.stdout = out.inner


def _plain_warnings(command: str) -> None:
    """loopwave's own warnings (a damaged frame a resume makes again) printed as the
    program's other notes are, ``loopwave CMD: warning: ...``, not in Python's form
    with a loopwave source file, line and code line; others' warnings as they are, but
    for the ONNX exporter's notes on diffusers' code."""
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    default = warnings.formatwarning

    def fmt(message: Any, category: Any, filename: str, lineno: int, line: Any = None) -> str:
        if os.path.abspath(filename).startswith(here):
            return f"loopwave {command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = fmt
    if not sys.warnoptions:  # a user's own -W or PYTHONWARNINGS decides instead
        # torch's tracer, exporting diffusers' UNet and VAE to ONNX (the onnx and tensorrt
        # backends), warns at each Python branch on a tensor's size and at a constant
        # it cannot fold: a screenful about diffusers' code that the user can do nothing
        # about. The trace is made at a latent size chosen for those branches
        # (trt.export_unet) and its parity with torch is tested. A host program calling
        # main(argv) keeps its own filters
        warnings.filterwarnings(
            "ignore", message="Converting a tensor to a Python ", module=r"diffusers\."
        )
        warnings.filterwarnings(
            "ignore", message="Constant folding - Only steps=1 ", module=r"torch\.onnx\."
        )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. Called without ``argv`` it is the program (the ``loopwave``
    script, ``python -m loopwave``) and takes over what belongs to the process: SIGTERM
    (as Ctrl-C) and transformers' log level. Called with ``argv`` from a host program,
    it leaves those to the host."""
    from .render import StageError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given (bench reports it)
    program = argv is None
    if program:
        # transformers warns at import about optional image processors no model here
        # uses (torchvision missing); keep the CLI's output to what concerns the user
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        _plain_warnings(args.command)
    # SIGTERM as Ctrl-C (the default handler killed the process with NAME.partial.EXT
    # and unsaved frames left); only the main thread may set a handler, and a host
    # program calling main(argv) keeps its own (its graceful stop never heard of one)
    previous: dict[int, Any] = {}
    if program and threading.current_thread() is threading.main_thread():
        previous = _take_stop_signals()
    # started with standard output closed (``>&-``): the next file opened (a run's lock)
    # would take fd 1, which a child's stdout pipe then replaces (it lost the lock)
    if sys.stdout is None:
        _fill_closed_fd(1)
    if sys.stderr is None:
        # the same with fd 2 (`2>&-`); and messages go nowhere, as Python's own do: with
        # sys.stderr None, print(file=sys.stderr) wrote to stdout, and the progress bar
        # raised AttributeError (demo, interpolate and encode exited 1, their work lost)
        _fill_closed_fd(2)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
    out = _wrap_stdout()
    try:
        return int(args.func(args))
    except (TypeError, ValueError, ImportError, OSError, StageError) as e:
        print(
            f"loopwave {args.command}: error: {_in_options(str(e), parser, args)}", file=sys.stderr
        )
        return 2
    except Exception as e:
        # PyAV's own errors that escaped a command's checks (not all are ValueError or
        # OSError: ProtocolNotFoundError is a LookupError) are about the files or the
        # settings, not a bug to show as a traceback
        if not type(e).__module__.startswith("av."):
            raise
        print(f"loopwave {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Terminated as e:
        with contextlib.suppress(OSError):  # (after SIGHUP the terminal may be gone)
            print("hung up" if e.signum != signal.SIGTERM else "terminated", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        try:
            out.flush()
        finally:  # (a flush that fails must not leave the wrapper in place for good)
            _unwrap_stdout(out)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
