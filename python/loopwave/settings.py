"""Render settings: one versioned file (TOML, or JSON), validated with errors that name the key.

Every key has a type, a default and a range; unknown keys, wrong types and
out-of-range values raise :class:`SettingsError` (a ``ValueError``) naming the
key path, e.g. ``render.frames: expected an int in 1..1000000, got -3``. Schedules are
checked here by parsing them (:mod:`loopwave.schedule`); their values at each frame
(steps, cfg, denoising strength, motion, prompt weights), the crf, frame size and frame
rate the codec takes, the init image and the RIFE model are checked when a render starts,
before the model loads, also as :class:`SettingsError` naming the key (and the frame).
:meth:`Settings.to_json`
writes the resolved settings (defaults filled in), which load back to the same
settings, so a run directory's copy renders the same video again.

Paths (:data:`PATH_KEYS`, and each ``model.lora`` entry's ``path``) are taken as they are
written: a relative one against the current folder when it is used, not against the
settings file's folder. A render makes them absolute when a run starts
(:meth:`Settings.with_absolute_paths`), so its ``settings.json`` holds absolute paths and a
resume from another folder reads and writes the same files.

Example
-------
>>> s = Settings.from_dict({"version": 1, "render": {"frames": 30}, "prompts": {"0": "a cat"}})
>>> s["render"]["frames"], s["denoise"]["mode"]
(30, 'wave')
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import reprlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .rife import SCALES
from .schedule import SEED_BEHAVIOURS, Schedule, ScheduleError, parse_prompts
from .trt import RUNTIMES

__all__ = ["ADDED_LATER", "PATH_KEYS", "SCHEMA", "Settings", "SettingsError", "load_settings"]

VERSION = 1


class SettingsError(ValueError):
    """A settings file or mapping that cannot be used; the message names the key path."""


Check = Callable[[Any], str | None]  # returns the problem, or None


def _shown(v: Any) -> str:
    """``repr(v)`` for an error message, cut short: a million-character value was
    printed whole, and one nested thousands deep raised ``RecursionError``."""
    try:
        return _REPR.repr(v)
    except ValueError:  # an int past Python's 4300 digits for str(), anywhere in v
        if isinstance(v, int):
            digits = int(abs(v).bit_length() * math.log10(2)) + 1  # or one more than it has
            if abs(v) < 10 ** (digits - 1):
                digits -= 1
            return f"<an int of {digits} digits>"
        return f"<a {type(v).__name__} holding an int too long to show>"


_REPR = reprlib.Repr()  # (its keyword arguments are Python 3.12's)
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 6


def _takes(check: Check, words: str) -> Check:
    """``check``, labelled with what it takes, in words (for ``loopwave settings``). Kept
    on the function itself: checks made inside other checks, at each validation, would
    pile up in a table (one per call, never dropped)."""
    check.__dict__["takes"] = words
    return check


def _int(lo: int, hi: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected an int, got {_shown(v)}"
        if v < lo or (hi is not None and v > hi):
            return (
                f"expected an int in {lo}..{hi}, got {_shown(v)}"
                if hi
                else f"expected an int >= {lo}, got {_shown(v)}"
            )
        return None

    return _takes(check, f"an int in {lo}..{hi}" if hi else f"an int >= {lo}")


def _num(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"expected a number, got {_shown(v)}"
        if not lo <= v <= hi:
            return f"expected a number in [{lo}, {hi}], got {_shown(v)}"
        return None

    return _takes(check, f"a number in [{lo:g}, {hi:g}]")


def _str(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"expected a string, got {_shown(v)}"
        if choices and v not in choices:
            return f"expected one of {list(choices)}, got {_shown(v)}"
        return None

    return _takes(check, f"one of {', '.join(map(repr, choices))}" if choices else "a string")


def _path() -> Check:
    """A file or folder path the file system can take: no NUL character, each part at
    most 255 bytes and the whole under 4096 (such paths failed only when the render got
    to them, with messages that named no key)."""

    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"expected a string, got {_shown(v)}"
        if "\0" in v:
            return f"expected a path without a NUL character, got {v!r:.60}"
        b = os.fsencode(v)
        long = next((part for part in b.split(b"/") if len(part) > 255), None)
        if long is not None:
            return f"expected path parts of at most 255 bytes; {long[:24]!r}... is {len(long)}"
        if len(b) >= 4096:
            return f"expected a path under 4096 bytes, got {len(b)}"
        return None

    return _takes(check, "a path")


def _size(v: Any) -> str | None:
    """A frame side: the VAE works in 8-pixel cells (65 came out as 64)."""
    problem = _int(16, 8192)(v)
    if problem is None and v % 8:
        return f"expected a multiple of 8 (the VAE's cell), got {v}"
    return problem


def _folder_name(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"expected a string, got {_shown(v)}"
    if v.strip() in ("", ".", "..") or any(c in v for c in "/\\\0"):
        return f"expected a folder name (no '/', not '.' or '..'), got {_shown(v)}"
    return None


def _rife_scale(v: Any) -> str | None:
    """The scale a RIFE ONNX model was exported with: ``"auto"`` (the one it records,
    else 1.0) or 1.0, 0.5, 0.25."""
    if (isinstance(v, str) and v == "auto") or (
        not isinstance(v, bool) and isinstance(v, (int, float)) and v in SCALES
    ):
        return None
    return (
        f"expected 'auto' (the model's recorded scale, else 1.0) or 1.0, 0.5, 0.25; got {_shown(v)}"
    )


def _rate(v: Any) -> str | None:
    """A video frame rate, or "" for none: a number, or a string such as "24", "29.97"
    or "30000/1001", in [1/10000, 1000] (as :func:`loopwave.video.parse_fps` takes it)."""
    if isinstance(v, str) and v == "":  # (an array's == is no bool)
        return None
    problem = f"expected {_RATE}, got {_shown(v)}"
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        return problem
    from .video import parse_fps  # (video imports numpy only; PyAV where it writes)

    try:
        parse_fps(v, "rate")
    except (TypeError, ValueError, OverflowError):  # (inf, NaN, an int past 4300 digits)
        return problem
    return None


_RATE = "a rate in [1/10000, 1000] such as 24, 29.97 or '30000/1001', or '' (none)"
_takes(_rate, _RATE.replace("(none)", "(video.fps x factor)"))


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"expected true or false, got {_shown(v)}"


def _schedule(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        return f"expected a keyframe string like '0: (0.5)' or a number, got {_shown(v)}"
    try:
        Schedule(v, max_frames=1)
    except ScheduleError as e:
        return str(e)
    return None


def _lora(v: Any) -> str | None:
    if not isinstance(v, list):
        return f"expected a list of {{path = '...', scale = 1.0}} tables, got {_shown(v)}"
    for k, e in enumerate(v):
        if not isinstance(e, Mapping) or set(e) - {"path", "scale"} or "path" not in e:
            return f"[{k}]: expected a table {{path = '...', scale = 1.0}}, got {_shown(e)}"
        if not isinstance(e["path"], str) or not e["path"]:
            return f"[{k}].path: expected a file path, got {_shown(e['path'])}"
        problem = _path()(e["path"])  # (a NUL or a 300-byte part failed at the load)
        if problem:
            return f"[{k}].path: {problem}"
        problem = _num(-8, 8)(e.get("scale", 1.0))
        if problem:
            return f"[{k}].scale: {problem}"
    return None


def _scheduler(v: Any) -> str | None:
    from .backends import SCHEDULERS

    return _str(*SCHEDULERS)(v)


def _device(v: Any) -> str | None:
    """What :class:`loopwave.backends.DiffusersBackend` takes; whether the machine has the
    device is known only when the model loads."""
    problem = _str()(v)
    if problem is None and not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d{1,4})?", v):
        return f"expected auto, cpu, cuda, cuda:N, mps or xpu; got {_shown(v)}"
    return problem


def _accel(v: Any) -> str | None:
    from .backends import check_accel

    try:
        check_accel(v, "accel")
    except (TypeError, ValueError) as e:
        return str(e).removeprefix("accel.")
    return None


_takes(_size, "a multiple of 8 in 16..8192 (pixels)")
_takes(_folder_name, "a folder name (no '/', not '.' or '..')")
_takes(_rife_scale, "'auto' (the model's recorded scale, else 1.0), 1.0, 0.5 or 0.25")
_takes(_bool, "true or false")
_takes(_schedule, 'a keyframe schedule such as "0: (0.5), 60: (0.7)", or a number')
_takes(_lora, 'a list of tables { path = "style.safetensors", scale = 0.8 }, scale in [-8, 8]')
_takes(_device, "auto, cpu, cuda, cuda:N, mps or xpu")
_takes(_accel, 'a table such as { compile = ["unet"], cuda_graphs = true }')


# section -> key -> (default, check)
SCHEMA: dict[str, dict[str, tuple[Any, Check]]] = {
    "output": {"dir": ("out/render", _path()), "name": ("morph", _folder_name)},
    "model": {
        "backend": ("smoke", _str("smoke", "diffusers")),
        "path": ("", _path()),
        "scheduler": ("DPM++ 2M Karras", _scheduler),
        "allow_pickle": (False, _bool),
        "device": ("auto", _device),
        "lora": ([], _lora),  # [{path = "style.safetensors", scale = 0.8}, ...]
        "accel": ({}, _accel),  # speed options, see loopwave.backends.check_accel
        # the UNet and VAE in torch, or exported: onnx (onnxruntime), tensorrt (fp16 engine)
        "unet": ("torch", _str(*RUNTIMES)),
        "vae": ("torch", _str(*RUNTIMES)),
        "engine_dir": (".cache/loopwave/engines", _path()),  # exported graphs and engines
    },
    "render": {
        "frames": (240, _int(1, 1_000_000)),
        "width": (512, _size),
        "height": (512, _size),
        "seed": (1234, _int(0, 2**32 - 1)),
        "seed_behaviour": ("iter", _str(*SEED_BEHAVIOURS)),
        "seed_schedule": ("0: (0)", _schedule),
        "steps": ("0: (20)", _schedule),
        "cfg": ("0: (7)", _schedule),
        "init_image": ("", _path()),
    },
    "denoise": {
        "mode": ("wave", _str("wave", "schedule")),
        "base": (0.3, _num(0, 1)),
        "amplitude": (0.35, _num(0, 1)),
        "frames_per_wave": (24, _num(1e-6, 1e6)),
        "offset": (0.0, _num(-1e6, 1e6)),
        "schedule": ("0: (0.5)", _schedule),
    },
    "colour": {
        "mode": ("plan", _str("plan", "first", "none")),
        "keyframe_every": (20, _int(1, 10**9)),
        "renders": (4, _int(1, 64)),
        "keyframe_strength": (0.75, _num(0, 1)),
        "gamma": (True, _bool),
    },
    "motion": {
        "zoom": ("0: (1.0)", _schedule),
        "angle": ("0: (0)", _schedule),
        "translation_x": ("0: (0)", _schedule),
        "translation_y": ("0: (0)", _schedule),
        "border": ("replicate", _str("replicate", "wrap")),
    },
    "interpolation": {
        "factor": (6, _int(1, 16)),
        "to_fps": ("", _rate),
        "backend": ("flow", _str("flow", "blend", "rife")),
        "flow_preset": ("medium", _str("medium", "fast", "ultrafast")),
        "model": ("", _path()),
        "scale": ("auto", _rife_scale),
        "scene_cut": (True, _bool),
    },
    "video": {"codec": ("h264", _str()), "crf": (18, _int(0, 63)), "fps": (10, _num(0.001, 1000))},
}

#: keys added to :data:`SCHEMA` after runs were made, as (section, key): a run's state
#: records the digest of its settings without them where they hold their default, so
#: runs made before them still resume
ADDED_LATER: tuple[tuple[str, str], ...] = (
    ("interpolation", "scale"),
    ("interpolation", "to_fps"),
    ("interpolation", "flow_preset"),
)

#: what each key does, for the settings reference (``loopwave settings``); every key of
#: :data:`SCHEMA` has one (tested)
DOCS: dict[str, dict[str, str]] = {
    "output": {
        "dir": "the folder runs are made in",
        "name": "the run's folder in output.dir, and its video's name (NAME.mp4)",
    },
    "model": {
        "backend": '"smoke": the embedded tiny model (random weights, no download); '
        '"diffusers": the model at model.path',
        "path": "a local diffusers folder or .safetensors (or, with allow_pickle, .ckpt) file",
        "scheduler": "the sampler, by name; it sets its own sigma spacing (the timestep "
        "spacing is the model's scheduler config's)",
        "allow_pickle": "read pickled .ckpt models and LoRAs, which can run code: only "
        "files you trust",
        "device": "where the model runs; auto takes CUDA when there is one (the smoke "
        "model's auto is the CPU, so its frames are the same everywhere)",
        "lora": "LoRA files applied to the model, each with its weight",
        "accel": "speed options: channels_last, sdpa, compile (a list of unet, vae), "
        "cuda_graphs, pinned, device_frames, device_rng (README: Fast generation)",
        "unet": "the UNet in torch, or exported: onnx (onnxruntime), tensorrt (fp16 engine)",
        "vae": "the VAE's encoder and decoder, the same way",
        "engine_dir": "where exported graphs and engines are kept, per model and size",
    },
    "render": {
        "frames": "frames the loop makes (before interpolation)",
        "width": "frame width",
        "height": "frame height",
        "seed": "the render's seed (s in schedules)",
        "seed_behaviour": "how the seed moves from frame to frame: iter (+1 a frame), fixed, "
        "random, ladder, alternate, or schedule (render.seed_schedule)",
        "seed_schedule": "each frame's seed, with seed_behaviour = schedule",
        "steps": "denoising steps per frame (0..1000; 0 runs as 1; a schedule the "
        "scheduler cannot run, as DDIM's 1000, is refused before the render)",
        "cfg": "guidance scale per frame (1..100)",
        "init_image": "frame 0 (a PNG or JPEG of the render's size); empty: frame 0 is made "
        "from seeded noise at full strength",
    },
    "denoise": {
        "mode": "wave: the seed's wave of strengths; schedule: denoise.schedule",
        "base": "wave: the lowest strength",
        "amplitude": "wave: how far above base it rises, base + amplitude at most 1 "
        "(strength = base + amp - amp * |cos(i * 180 / frames_per_wave + offset)|)",
        "frames_per_wave": "wave: frames from one low point to the next",
        "offset": "wave: a phase shift, in degrees",
        "schedule": "schedule: each frame's denoising strength, 0..1 (Deforum's "
        "strength_schedule is 1 minus this)",
    },
    "colour": {
        "mode": "plan: correct toward keyframes rendered ahead; first: toward frame 0 "
        "(A1111, Deforum); none",
        "keyframe_every": "plan: frames between keyframes",
        "renders": "plan: renders averaged per keyframe",
        "keyframe_strength": "plan: the denoise strength keyframes are rendered at",
        "gamma": "match each frame's lightness to its target's too",
    },
    "motion": {
        "zoom": "zoom per frame (1.0: none; Deforum's 2D motion)",
        "angle": "rotation per frame, in degrees, counter-clockwise",
        "translation_x": "shift per frame, in pixels, to the right",
        "translation_y": "shift per frame, in pixels, down",
        "border": "what fills the edges a move uncovers: replicate or wrap",
    },
    "interpolation": {
        "factor": "video frames per rendered frame (1: none); not used where to_fps is set",
        "to_fps": "the video's frame rate, where it is not video.fps x factor: any rate, "
        "the in-betweens made at their times (24 from 10 fps: 2.4 a frame)",
        "backend": "flow (optical flow, no weights), blend (cross-fade) or rife "
        "(interpolation.model)",
        "flow_preset": "the flow backend's optical-flow preset: medium, fast or ultrafast "
        "(at 1080p, against medium: a 2x interpolation about 3.1x and 3.9x faster, a 6x "
        "one, the default factor, 2.1x and 2.4x; coarser flows, less exact motion)",
        "model": "a RIFE model exported to ONNX (loopwave export-rife)",
        "scale": "the RIFE model's flow scale (the rife backend's only)",
        "scene_cut": "hold a frame over a scene cut instead of morphing across it",
    },
    "video": {
        "codec": "h264, h265, vp9 or av1 (FFmpeg's encoders as PyAV has them)",
        "crf": "quality: lower is better (0 lossless for h264)",
        "fps": "rendered frames per second; the video runs at fps x interpolation.factor "
        "(or at interpolation.to_fps)",
    },
}


def reference() -> str:
    """Every settings key as a TOML file to start from: each with what it does, what it
    takes and its default value (``loopwave settings``), then a prompt."""
    from .backends import SCHEDULERS

    lines = [
        "# loopwave render settings: every key, with its default value. Keep the ones you",
        "# change; a key left out takes its default, but version and at least one prompt",
        "# are needed. (loopwave settings)",
        f"version = {VERSION}",
    ]
    for section, keys in SCHEMA.items():
        lines += ["", f"[{section}]"]
        for key, (default, check) in keys.items():
            takes = getattr(check, "takes", "")
            if (section, key) in PATH_KEYS:
                takes = _PATH_TAKES.get((section, key), f"a path ({_RELATIVE}; empty: none)")
            if check is _scheduler:
                takes = "one of " + ", ".join(map(repr, sorted(SCHEDULERS)))
            lines.append(f"# {DOCS[section][key]}; {takes}" if takes else f"# {DOCS[section][key]}")
            lines.append(f"{key} = {_toml(default)}")
    lines += [
        "",
        "[prompts]  # frame = prompt; a prompt holds until the next; --neg starts the negative",
        '0 = "a misty forest at dawn --neg blurry"',
    ]
    return "\n".join(lines) + "\n"


_RELATIVE = "a relative one from the folder the run starts in; ~ is your home folder"
#: path keys whose empty value is not "none"
_PATH_TAKES = {
    ("output", "dir"): f"a folder path ({_RELATIVE}; '.' for that folder itself)",
    ("model", "engine_dir"): f"a folder path ({_RELATIVE}; empty: that folder itself)",
    ("render", "init_image"): f"a path ({_RELATIVE})",  # (its empty value: see above)
}


def _toml(v: Any) -> str:
    """A default value as TOML writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for these (no control characters)
    if v == []:
        return "[]"
    if v == {}:
        return "{}"
    raise TypeError(f"no TOML form for {v!r}")


def add_cli(sub: Any) -> None:
    """Register ``loopwave settings``."""
    p = sub.add_parser(
        "settings",
        help="print every render setting, with what it does, what it takes and its default, "
        "as a TOML file to start from",
    )

    def run(_: Any) -> int:
        print(reference(), end="")
        return 0

    p.set_defaults(func=run)


#: the keys whose value is a file or folder path, as (section, key); each ``model.lora``
#: entry's ``path`` is one too. An empty string means none, except ``model.engine_dir``
#: (empty: the folder the run starts in) and ``output.dir`` (refused empty for a new run).
PATH_KEYS: tuple[tuple[str, str], ...] = (
    ("output", "dir"),
    ("model", "path"),
    ("model", "engine_dir"),
    ("render", "init_image"),
    ("interpolation", "model"),
)


def _absolute(path: Any, base: str) -> Any:
    """``path`` with a leading ``~`` made the home folder, and a relative one joined to
    ``base``; not normalised (``lnk/../x`` means what the OS makes of it when ``lnk`` is a
    symlink: collapsing the ``..`` named another file), only leading ``./`` parts dropped.
    Empty (none) or not a string: as it is."""
    if not isinstance(path, str) or not path:
        return path
    path = os.path.expanduser(path)  # "~/renders" made a folder named "~" here
    if os.path.isabs(path):
        return path
    while path.startswith("./"):
        path = path[2:].lstrip("/")
    return base if path in ("", ".") else os.path.join(base, path)


class Settings(dict[str, Any]):
    """Validated, fully resolved settings: ``settings["render"]["frames"]``."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        """Check ``data`` against :data:`SCHEMA` and fill in the defaults; a problem is a
        :class:`SettingsError` naming the key."""
        try:
            return cls._from_dict(data)
        except RecursionError:  # a value nested thousands deep, in an error message
            raise SettingsError("settings: nested too deeply") from None

    @classmethod
    def _from_saved(cls, data: Mapping[str, Any]) -> Settings:
        """A run's own ``settings.json``, as :meth:`from_dict` takes it less the checks
        added after runs were made with what they refuse, so that such a run still
        resumes (refused, it could neither go on nor be edited: its settings' digest is
        in its state): ``model.path`` beside the smoke backend, and
        ``interpolation.model`` beside another backend than rife,
        ``interpolation.flow_preset`` beside another than flow and ``interpolation.scale``
        beside another than rife, which ignore them, and a wave whose
        ``denoise.base + denoise.amplitude`` passes 1 (clamped to 1)."""
        try:
            return cls._from_dict(data, saved=True)
        except RecursionError:
            raise SettingsError("settings: nested too deeply") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], *, saved: bool = False) -> Settings:
        if not isinstance(data, Mapping):
            raise SettingsError(f"settings must be a table/object, got {type(data).__name__}")
        data = dict(data)
        if "version" not in data:  # (a review: "expected 1, got None" read as a bad value)
            raise SettingsError(f"version: missing; settings start with version = {VERSION}")
        version = data.pop("version")
        if type(version) is not int or version != VERSION:  # not true, not 1.0
            raise SettingsError(f"version: expected {VERSION}, got {_shown(version)}")
        out = cls(version=VERSION)
        for section, keys in SCHEMA.items():
            given = data.pop(section, {})
            if not isinstance(given, Mapping):
                raise SettingsError(f"{section}: expected a table, got {_shown(given)}")
            given = dict(given)
            resolved = {}
            for key, (default, check) in keys.items():
                if key not in given:
                    value = copy.deepcopy(default)
                elif (value := given.pop(key)) is None:  # JSON null: not "the default"
                    raise SettingsError(
                        f"{section}.{key}: null is not a value; leave the key out for the "
                        f"default ({default!r})"
                    )
                problem = check(value)
                if problem:
                    raise SettingsError(f"{section}.{key}: {problem}")
                resolved[key] = value
            if given:
                raise SettingsError(
                    f"{section}.{str(sorted(given, key=str)[0])[:60]}: unknown key "
                    f"(known: {', '.join(keys)})"
                )
            out[section] = resolved
        prompts = data.pop("prompts", None)
        if prompts is None:
            raise SettingsError("prompts: at least one prompt keyframe is needed, e.g. 0 = 'a cat'")
        try:
            parse_prompts(prompts)
        except ScheduleError as e:
            msg = str(e)  # some already start with the key path
            raise SettingsError(msg if msg.startswith("prompts") else f"prompts: {msg}") from None
        out["prompts"] = (
            {str(k): v for k, v in dict(prompts).items()}
            if isinstance(prompts, Mapping)
            else prompts
        )
        if data:
            raise SettingsError(
                f"{str(sorted(data, key=str)[0])[:60]}: unknown section "
                f"(known: version, prompts, {', '.join(SCHEMA)})"
            )
        if out["model"]["backend"] == "diffusers" and not out["model"]["path"]:
            raise SettingsError(
                "model.path: the diffusers backend needs a local model folder or file"
            )
        if out["model"]["backend"] == "smoke" and out["model"]["path"] and not saved:
            raise SettingsError(
                "model.path: given, but model.backend is 'smoke' (the built-in model of "
                "random weights, which reads no file); set model.backend = 'diffusers' to "
                "load it"
            )
        it = out["interpolation"]
        if it["backend"] == "rife" and not it["model"]:
            raise SettingsError("interpolation.model: the rife backend needs a .onnx model path")
        # (a run's own settings made before these refusals still resume as they are)
        resumes = (
            "; a run made with these settings resumes as it is: loopwave render --resume "
            "RUN_DIR (render(None, run_dir=..., resume=True))"
        )
        d = out["denoise"]
        if d["mode"] == "wave" and d["base"] + d["amplitude"] > 1 + 1e-9 and not saved:
            # (from a review: the wave's top was clamped to 1, fresh noise, without a word)
            raise SettingsError(
                f"denoise.base + denoise.amplitude: {d['base']} + {d['amplitude']}, past 1, "
                "where the wave rises to (a strength of 1 is fresh noise, not the last frame "
                f"changed); lower one of them{resumes}"
            )
        if it["backend"] != "rife" and it["model"] and not saved:
            raise SettingsError(
                f"interpolation.model: given, but interpolation.backend is {it['backend']!r}, "
                f"which uses no model; set interpolation.backend = 'rife' to use it{resumes}"
            )
        if it["backend"] != "flow" and it["flow_preset"] != "medium" and not saved:
            # (rife: not "set the backend to flow", which the model's check then refuses)
            fix = "leave the preset out" + (
                "" if it["backend"] == "rife" else ", or set interpolation.backend = 'flow'"
            )
            raise SettingsError(
                f"interpolation.flow_preset: {it['flow_preset']!r} given, but "
                f"interpolation.backend is {it['backend']!r}, which uses none; the preset is "
                f"the flow backend's ({fix}){resumes}"
            )
        if it["backend"] != "rife" and it["scale"] != "auto" and not saved:
            # (from a review: taken and unused, as the two above were)
            raise SettingsError(
                f"interpolation.scale: {it['scale']!r} given, but interpolation.backend is "
                f"{it['backend']!r}; the scale is the rife backend's (leave it out){resumes}"
            )
        return out

    def to_json(self) -> str:
        """The settings as JSON (indented, keys sorted), which :meth:`from_dict` of
        ``json.loads`` reads back to the same settings."""
        return json.dumps(self, indent=2, sort_keys=True)

    def copy(self) -> Settings:
        """A deep copy: changing it leaves these settings as they are."""
        return Settings(copy.deepcopy(dict(self)))

    def with_absolute_paths(self, base: str | os.PathLike[str] | None = None) -> Settings:
        """A copy with every relative path (:data:`PATH_KEYS`, each ``model.lora`` entry's
        ``path``) made absolute against ``base``, by default the current folder: joined to
        it, not normalised, so a ``..`` after a symlink keeps the OS's meaning; a leading
        ``~`` is the home folder. Empty paths (none) stay empty, but for
        ``model.engine_dir``, whose empty value is ``base`` itself; absolute ones are kept
        as they are. A render does this when a run
        starts, so its ``settings.json`` means the same files from any folder."""
        root = os.path.abspath(os.getcwd() if base is None else os.fspath(base))
        out = self._with_paths(lambda p: _absolute(p, root))
        model = out.get("model")
        if isinstance(model, dict) and model.get("engine_dir") == "":
            # empty is the folder the run starts in, not none: kept empty, a resume from
            # another folder exported the graphs again there
            model["engine_dir"] = root
        return out

    def path_problem(self) -> str | None:
        """The first path (:data:`PATH_KEYS`, each ``model.lora`` entry's) that the
        file system cannot take, with its key and what is wrong; None if all can. For
        paths :meth:`with_absolute_paths` made: they can pass 4096 bytes where the
        relative ones did not, and the run's ``settings.json`` was then refused."""
        named = [(f"{sec}.{key}", self.get(sec, {}).get(key)) for sec, key in PATH_KEYS]
        lora = self.get("model", {}).get("lora") or []
        named += [(f"model.lora[{k}].path", e.get("path")) for k, e in enumerate(lora)]
        for name, path in named:
            problem = _path()(path) if isinstance(path, str) and path else None
            if problem:
                return f"{name}: {problem}"
        return None

    def _with_paths(self, change: Callable[[Any], Any]) -> Settings:
        """A copy with ``change`` applied to every path (:data:`PATH_KEYS`, each
        ``model.lora`` entry's ``path``)."""
        out = self.copy()
        for section, key in PATH_KEYS:
            sec = out.get(section)
            if isinstance(sec, dict) and key in sec:
                sec[key] = change(sec[key])
        model = out.get("model")
        lora = model.get("lora") if isinstance(model, dict) else None
        if isinstance(lora, list):
            for entry in lora:
                if isinstance(entry, dict) and "path" in entry:
                    entry["path"] = change(entry["path"])
        return out


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (JSON took the last silently; TOML
    refuses it)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key {k!r} is given twice in one object")
        out[k] = v
    return out


#: the largest settings file read: eight schedules of 1,000,000 characters, prompts and
#: room to spare (an endless pipe or a video given by mistake was read until memory ran out)
MAX_SETTINGS_BYTES = 64 * 2**20


def load_settings(path: str | Path) -> Settings:
    """Read a TOML (``.toml``) or JSON (``.json``) settings file; under any other name
    (a pipe), JSON where it opens with ``{``, else TOML."""
    return Settings.from_dict(_read_settings_file(path))


def _read_settings_file(path: str | Path) -> Any:
    """:func:`load_settings`' reading of the file, without checking what it holds (the
    render command puts its options' values in first)."""
    p = Path(path)
    if p.is_dir():
        raise SettingsError(f"settings: {p} is a folder, not a settings file")
    if not p.exists():  # a pipe (loopwave render <(...)) is read as a file is
        raise SettingsError(f"settings: no such file {p}")
    with p.open("rb") as f:  # a pipe or /dev/zero by mistake read without end
        raw = f.read(MAX_SETTINGS_BYTES + 1)
    if len(raw) > MAX_SETTINGS_BYTES:
        raise SettingsError(
            f"settings: {p} is over {MAX_SETTINGS_BYTES // 2**20} MiB, not a settings file"
        )
    suffix = p.suffix.lower()
    kind = "JSON" if suffix == ".json" else "TOML"
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is fine
        # a name without .toml or .json (a pipe, /dev/fd/63) is JSON where it opens with
        # a brace, which no TOML document can
        if suffix != ".toml" and text.lstrip().startswith("{"):
            kind = "JSON"
        if kind == "JSON":
            data = json.loads(text, object_pairs_hook=_unique_keys)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
            data = tomllib.loads(text)
    except (ValueError, RecursionError) as e:  # TOMLDecodeError, JSONDecodeError, UTF-8
        raise SettingsError(f"settings: {p} is not valid {kind}: {e}") from None
    return data
