"""Keyframe schedules, the wave denoise, prompt keyframes and seed behaviours.

Schedules use Deforum's keyframe strings: ``"0: (0.65), 30: (0.4)"``. A value is
a number or an expression in ``t`` (the frame), ``max_f`` (the last frame
index) and ``s`` (the seed), with ``pi``, ``e`` and the functions ``sin cos
tan asin acos atan atan2 sqrt abs exp log log10 floor ceil round min max
clamp where``. Commas inside calls are fine (Deforum's own splitter breaks
there).

Rules (``v(k)`` is the value written at key ``k``):

============================================  ==========================================
schedule                                      frames 0, 15, 30, 45
============================================  ==========================================
``0: (0.65), 30: (0.4)``                      0.65, 0.525, 0.4, 0.4 (ramp, then hold)
``10: (1)``                                   1, 1, 1, 1 (before the first key it holds)
``0: (t/10)``                                 0, 1.5, 3, 4.5 (an expression runs every frame)
``0: (t/10), 30: (0)``                        0, 1.5, 0, 0 (until the next key)
``0: (0), 30: (t)``                           0, 15, 30, 45 (a number ramps to the next
                                              key's value at that key: ``t`` at 30 is 30)
============================================  ==========================================

Expressions are evaluated by a small interpreter over Python's ``ast``: only
numbers, the names and functions above, arithmetic, comparisons (1 or 0),
``and``/``or``/``not`` (as in Python: ``and`` and ``or`` stop at the operand that
decides and give its value) and conditionals are allowed; every number is a
float (so ``9**9**9`` overflows at once instead of computing a huge integer); a
string is at most 2000 characters and an expression at most 200 syntax nodes. A
settings file from a stranger cannot run code, read files, or hang the process.
"""

from __future__ import annotations

import ast
import bisect
import math
import numbers
import operator
import random
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = [
    "Prompt",
    "Schedule",
    "ScheduleError",
    "evaluate",
    "parse_prompts",
    "PromptTrack",
    "prompt_at",
    "seed_for",
    "wave_strength",
]

MAX_TEXT = 2000
MAX_NODES = 200
#: the longest schedule string: a key a frame for tens of thousands of frames, as Parseq
#: and audio-sync tools write them (8,000 refused one of 600 keys)
MAX_SCHEDULE = 1_000_000


class ScheduleError(ValueError):
    """A schedule, expression or prompt list that cannot be used; the message says where."""


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _where(c: float, a: float, b: float) -> float:
    return a if c else b


def _round(x: float, digits: float = 0.0) -> float:
    """Python's round; the digits (a float here, as every value is) must be whole."""
    if digits != int(digits):
        raise ValueError(f"round's digits must be a whole number; got {digits}")
    return float(round(x, int(digits)))


FUNCTIONS: dict[str, Callable[..., float]] = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sqrt": math.sqrt,
    "abs": abs,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": _round,
    "min": min,
    "max": max,
    "clamp": _clamp,
    "where": _where,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
_BIN: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


# "1if t < 5 else 2" is valid, and CPython warned of an "invalid decimal literal" at each
# parse (SyntaxWarning; DeprecationWarning on 3.10), naming no setting; with -W error the
# schedule was refused. Ignored for expressions parsed as this file, whatever the other
# filters (catch_warnings around the parse changed them process-wide, and threads race)
_EXPRESSION_FILE = "<loopwave schedule expression>"
for _category in (SyntaxWarning, DeprecationWarning):
    warnings.filterwarnings("ignore", category=_category, module=re.escape(_EXPRESSION_FILE))


def compile_expression(text: str) -> ast.Expression:
    """Parse and check an expression; raises :class:`ScheduleError` for anything not allowed."""
    if not isinstance(text, str):
        raise ScheduleError(f"expression must be a string; got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ScheduleError(f"expression is longer than {MAX_TEXT} characters")
    try:
        tree = ast.parse(text.strip(), filename=_EXPRESSION_FILE, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ScheduleError(f"cannot parse expression {text!r}: {e}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ScheduleError(f"expression {text[:40]!r}... has over {MAX_NODES} parts")
    for n in nodes:
        ok = isinstance(
            n,
            (
                ast.Expression,
                ast.BinOp,
                ast.UnaryOp,
                ast.Compare,
                ast.IfExp,
                ast.BoolOp,
                ast.Load,
                ast.And,
                ast.Or,
                ast.USub,
                ast.UAdd,
                ast.Not,
            ),
        )
        ok = ok or type(n) in _BIN or type(n) in _CMP
        if isinstance(n, ast.Constant):
            ok = isinstance(n.value, (int, float)) and not isinstance(n.value, bool)
        elif isinstance(n, ast.Name):
            ok = n.id in CONSTANTS or n.id in ("t", "max_f", "s") or n.id in FUNCTIONS
        elif isinstance(n, ast.Call):
            ok = isinstance(n.func, ast.Name) and n.func.id in FUNCTIONS and not n.keywords
        if not ok:
            raise ScheduleError(
                f"expression {text!r}: {type(n).__name__} is not allowed "
                "(numbers, t, max_f, s, arithmetic and the listed functions only)"
            )
    return tree


def _eval(n: ast.AST, env: Mapping[str, float]) -> float:
    if isinstance(n, ast.Expression):
        return _eval(n.body, env)
    if isinstance(n, ast.Constant):
        assert isinstance(n.value, (int, float))  # checked by compile_expression
        return float(n.value)
    if isinstance(n, ast.Name):
        if n.id in env:
            return env[n.id]
        if n.id in CONSTANTS:
            return CONSTANTS[n.id]
        raise ScheduleError(f"{n.id} is a function; call it")
    if isinstance(n, ast.BinOp):
        a, b = _eval(n.left, env), _eval(n.right, env)
        return float(_BIN[type(n.op)](a, b))
    if isinstance(n, ast.UnaryOp):
        x = _eval(n.operand, env)
        return (
            -x if isinstance(n.op, ast.USub) else (float(not x) if isinstance(n.op, ast.Not) else x)
        )
    if isinstance(n, ast.Compare):
        left = _eval(n.left, env)
        for op, right_node in zip(n.ops, n.comparators, strict=True):
            right = _eval(right_node, env)
            if not _CMP[type(op)](left, right):
                return 0.0
            left = right
        return 1.0
    if isinstance(n, ast.BoolOp):
        # as Python: left to right, stopping at the first value that decides (falsy for
        # `and`, truthy for `or`) and giving that value, so `t > 0 and 1 / t` works at 0
        v = 0.0
        for operand in n.values:
            v = _eval(operand, env)
            if (not v) if isinstance(n.op, ast.And) else v:
                break
        return v
    if isinstance(n, ast.IfExp):
        return _eval(n.body, env) if _eval(n.test, env) else _eval(n.orelse, env)
    if isinstance(n, ast.Call):
        assert isinstance(n.func, ast.Name)
        if n.func.id == "where" and len(n.args) == 3:
            # only the chosen branch is evaluated, so where(t > 0, 1 / t, 0) works at t = 0
            return _eval(n.args[1] if _eval(n.args[0], env) else n.args[2], env)
        return float(FUNCTIONS[n.func.id](*[_eval(a, env) for a in n.args]))
    raise ScheduleError(f"{type(n).__name__} is not allowed")  # pragma: no cover - checked


def evaluate(
    text: str | ast.Expression, *, t: float = 0.0, max_f: float = 0.0, s: float = 0.0
) -> float:
    """Evaluate a schedule expression; any failure is a :class:`ScheduleError`."""
    tree = compile_expression(text) if isinstance(text, str) else text
    try:
        v = _eval(tree, {"t": float(t), "max_f": float(max_f), "s": float(s)})
    except ScheduleError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError) as e:
        raise ScheduleError(f"expression {ast.unparse(tree)!r} failed at t={t}: {e}") from None
    if not math.isfinite(v):
        raise ScheduleError(f"expression {ast.unparse(tree)!r} is not finite at t={t}")
    return v


def _near(text: str, at: int) -> str:
    """Where character ``at`` of ``text`` is, for an error: its index and the text around
    it (a schedule with a key per frame runs to hundreds of KB; the message held it all)."""
    return f"at character {at}: {text[max(0, at - 30) : at]!r} + {text[at : at + 30]!r}"


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    opened: list[int] = []  # where each bracket still open was opened
    for i, ch in enumerate(text):
        if ch == "(":
            opened.append(i)
        elif ch == ")":
            if not opened:
                raise ScheduleError(f"unbalanced ')' {_near(text, i)}")
            opened.pop()
        if ch == "," and not opened:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if opened:
        raise ScheduleError(f"unbalanced '(', never closed, {_near(text, opened[0])}")
    parts.append("".join(cur))
    return [p for p in (x.strip() for x in parts) if p]


@dataclass(frozen=True)
class _Key:
    frame: int
    text: str
    tree: ast.Expression
    number: float | None  # set when the value is a plain number


class Schedule:
    """A parsed keyframe schedule; ``schedule(frame)`` or ``schedule.values(n)``.

    Example
    -------
    >>> Schedule("0: (0.65), 30: (0.4)", max_frames=60)(15)
    0.525
    """

    def __init__(
        self, text: str | float | int, *, max_frames: int, seed: int = 0, name: str = "schedule"
    ) -> None:
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise ScheduleError(f"{name} must be a keyframe string or a number; got {text!r}")
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ScheduleError(f"{name}: max_frames must be an int >= 1; got {max_frames!r}")
        self.name, self.max_frames, self.seed = name, max_frames, seed
        if not isinstance(text, str):
            text = f"0: ({_finite_frame(text, name)!r})"  # a constant
        if len(text) > MAX_SCHEDULE:
            raise ScheduleError(f"{name} is longer than {MAX_SCHEDULE} characters")
        keys: dict[int, _Key] = {}
        try:
            parts = _split_top_level(text)
        except ScheduleError as e:
            raise ScheduleError(f"{name}: {e}") from None
        for part in parts:
            # (part is stripped: a lazy value before a trailing \s* backtracked at every
            # place of a long run of spaces, 31 s for 100,000 of them)
            # (\d took "١٠" as frame 10; leading zeros are no digits of the frame)
            m = re.match(r"(-?)0*([0-9]{1,18})\s*:", part)
            value = part[m.end() :].strip() if m else ""
            if not m or not value:
                if re.match(r"-?0*[1-9][0-9]{18,}\s*:", part):  # (ASCII digits, too many)
                    key = part.split(":")[0].strip()
                    key = key[: key.startswith("-")] + key.lstrip("-").lstrip("0")
                    shown = key if len(key) <= 30 else key[:30] + "..."
                    raise ScheduleError(f"{name}: key frame {shown} has more than 18 digits")
                raise ScheduleError(
                    f"{name}: {part[:60]!r} is not 'frame: (value)' (a frame in ASCII digits)"
                )
            # (without the zeros: past 4300 digits int() raised its own "Exceeds the limit")
            frame = int(m.group(1) + m.group(2))
            if frame < 0:
                raise ScheduleError(f"{name}: key frame {frame} is negative")
            try:
                tree = compile_expression(value)
            except ScheduleError as e:
                raise ScheduleError(f"{name} at frame {frame}: {e}") from None
            number = None
            body = tree.body
            if isinstance(body, ast.UnaryOp) and isinstance(body.op, (ast.USub, ast.UAdd)):
                body = body.operand  # -1 and +1 are numbers, ramped between
            if isinstance(body, ast.Constant):
                try:
                    number = evaluate(tree)
                except ScheduleError as e:  # 1e400
                    raise ScheduleError(f"{name} at frame {frame}: {e}") from None
            if frame in keys:
                # the last one won silently, as parse_prompts once let it
                raise ScheduleError(f"{name}: key frame {frame} is given twice")
            keys[frame] = _Key(frame, value, tree, number)
        if not keys:
            raise ScheduleError(f"{name} is empty")
        self.keys = [keys[k] for k in sorted(keys)]

    def _at_key(self, key: _Key, t: float) -> float:
        if key.number is not None:
            return key.number
        try:
            return evaluate(key.tree, t=t, max_f=self.max_frames - 1, s=self.seed)
        except ScheduleError as e:
            raise ScheduleError(f"{self.name} at frame {int(t)}: {e}") from None

    def __call__(self, frame: int) -> float:
        _finite_frame(frame, f"{self.name}: frame")
        keys = self.keys
        if frame <= keys[0].frame:
            return self._at_key(keys[0], keys[0].frame)
        # the last key at or before it, by binary search (a scan of 1,300 keys a frame
        # made checking a million frames take 18 minutes)
        i = bisect.bisect_right(keys, frame, key=lambda k: k.frame) - 1
        k = keys[i]
        if k.number is None:
            return self._at_key(k, frame)
        if i + 1 == len(keys):
            return k.number
        nxt = keys[i + 1]
        end = self._at_key(nxt, nxt.frame)
        a = (frame - k.frame) / (nxt.frame - k.frame)
        return _ramp(k.number, end, a)

    def values(self, n: int | None = None) -> np.ndarray:
        """The schedule at frames ``0 .. n-1`` (default: ``max_frames``)."""
        if n is not None and (
            isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0
        ):
            raise ValueError(f"{self.name}: n must be an int >= 0; got {n!r}")
        return np.array([self(i) for i in range(self.max_frames if n is None else n)])


def _finite_frame(frame: Any, name: str) -> float:
    """A frame number (or a constant): a real Python or NumPy scalar (not a bool or
    complex), finite, as a float."""
    if isinstance(frame, (bool, np.bool_)) or not isinstance(
        frame, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a number; got {frame!r}")
    try:
        f = float(frame)
    except OverflowError:  # an int beyond float64
        raise ScheduleError(f"{name} must be finite; got an int beyond float64") from None
    if not math.isfinite(f):
        raise ScheduleError(f"{name} must be finite; got {frame!r}")
    return f


def wave_strength(
    i: int, *, base: float, amplitude: float, frames_per_wave: float, offset: float = 0.0
) -> float:
    """The seed's wave denoise: ``base + amp - amp * |cos(radians(i * 180 / fpw + offset))|``,
    clamped to [0, 1]."""
    x = _finite_frame(i, "i")
    for name, v in (("base", base), ("amplitude", amplitude), ("offset", offset)):
        _finite_frame(v, name)
    fpw = _finite_frame(frames_per_wave, "frames_per_wave")
    angle = x * 180.0 / fpw + offset if fpw else math.nan
    if not math.isfinite(angle):  # 0 or a tiny frames_per_wave, or a huge frame
        raise ScheduleError(
            f"frames_per_wave must be finite and not 0, and i * 180 / frames_per_wave + offset "
            f"finite; got i={i!r}, frames_per_wave={frames_per_wave!r}, offset={offset!r}"
        )
    c = abs(math.cos(math.radians(angle)))
    return _clamp(base + amplitude - c * amplitude, 0.0, 1.0)


def _ramp(a: float, b: float, x: float) -> float:
    """``a`` to ``b`` at ``x`` in [0, 1]; finite between finite ends (``b - a`` overflowed
    between 1e308 and -1e308)."""
    v = a + (b - a) * x
    return v if math.isfinite(v) else a * (1.0 - x) + b * x


@dataclass(frozen=True)
class Prompt:
    """A prompt keyframe. ``seed`` (a ``frame::seed::prompt`` line's) is the seed at the
    line's frame; from there it goes up by one a frame (``seed_step`` 1, written ``+N``),
    down (-1, ``-N``) or stays (0, a plain ``N``), until a later line gives a seed, as in
    the Loopback Wave script. Lines without a seed keep the one in force."""

    text: str
    negative: str = ""
    seed: int | None = None
    seed_step: int = 0


def parse_prompts(spec: Mapping[int | str, str] | str) -> dict[int, Prompt]:
    """Prompt keyframes from ``{frame: "prompt --neg negative"}`` or from lines
    ``frame::prompt`` / ``frame::seed::prompt`` (the Loopback Wave script's format)."""
    out: dict[int, Prompt] = {}
    items: list[tuple[Any, str, tuple[int, int] | None]] = []
    if isinstance(spec, str):
        for n, line in enumerate(spec.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("::")
            if len(parts) == 2:
                items.append((parts[0], parts[1], None))
            elif len(parts) == 3:
                m = _LINE_SEED.fullmatch(parts[1].strip())
                if m is None:
                    raise ScheduleError(
                        f"prompts line {n}: seed {parts[1]!r:.60} is not N, +N or -N "
                        "(N a whole number: stays, goes up, goes down a frame)"
                    )
                step = {"+": 1, "-": -1, "": 0}[m.group(1)]
                items.append((parts[0], parts[2], (int(m.group(2)), step)))
            else:
                raise ScheduleError(
                    f"prompts line {n}: expected 'frame::prompt' or "
                    f"'frame::seed::prompt'; got {line!r:.80}"
                )
    elif isinstance(spec, Mapping):
        items = [(k, v, None) for k, v in spec.items()]
    else:
        raise ScheduleError(f"prompts must be a mapping or text; got {type(spec).__name__}")
    for frame, text, seed in items:
        # ASCII digits, as a schedule's key frames (int() took "５" and "5_0" as 5 and 50)
        if isinstance(frame, numbers.Integral) and not isinstance(frame, bool):
            f = int(frame)
            # (messages below format it: str() of one past Python's digit limit raised a
            # bare ValueError)
            if abs(f) >= 10**_MAX_FRAME_DIGITS:  # (as text: from its digits, not its bits)
                sign = "a negative" if f < 0 else "a"
                raise ScheduleError(
                    f"prompts: {sign} frame of more than {_MAX_FRAME_DIGITS} digits has too "
                    "many digits"
                )
        elif isinstance(frame, str) and (m := re.fullmatch(r"\s*([+-]?)([0-9]+)\s*", frame)):
            # (leading zeros are no digits, as in a schedule's keys; stripped here, not by
            # the pattern, where zeros both parts could take cost a refusal seconds)
            digits = m[2].lstrip("0") or "0"
            # (short of Python's digit limit, wherever set, and with it off too)
            if len(digits) > _MAX_FRAME_DIGITS:
                raise ScheduleError(f"prompts: frame {m[1]}{digits[:20]}... has too many digits")
            f = int(m[1] + digits)
        else:
            raise ScheduleError(
                f"prompts: frame {frame!r:.60} is not a whole number in ASCII digits"
            )
        # (for messages: cut as a key given as text is, the sign kept)
        size = str(abs(f))
        name = str(f) if len(size) <= 20 else f"{'-' * (f < 0)}{size[:20]}..."
        if f < 0:
            raise ScheduleError(f"prompts: frame {name} is negative")
        if not isinstance(text, str):
            raise ScheduleError(f"prompts: the prompt at frame {name} must be text")
        if f in out:  # {0: ..., "0": ...} or two "0::" lines: the last won silently
            raise ScheduleError(f"prompts: frame {name} is given twice")
        # "--neg" anywhere (Deforum splits at it), but not "--negative": one positive prompt
        pos, *rest = _NEG.split(text, maxsplit=1)
        neg = rest[0] if rest else ""
        out[f] = Prompt(pos.strip(), neg.strip(), *(seed or (None, 0)))
        _check_wave_tokens(text, name)
    if not out:
        raise ScheduleError("prompts: at least one prompt is needed")
    return dict(sorted(out.items()))


def _check_wave_tokens(text: str, frame: str) -> None:
    """Refuse, when the prompts are read, a ``@wave_`` token that :func:`prompt_at` could
    not fill in (a call inside it) or whose bounds do not evaluate: found only when the
    render reached it, it stopped the render there, for good (resume keeps the settings)."""
    if "@wave_" not in text.lower():
        return
    for m in _WAVE_NAME.finditer(text):
        if m.group(0) not in ("@wave_completed", "@wave_remaining"):
            raise ScheduleError(
                f"prompt at frame {frame}: unknown {m.group(0)!r}; the wave tokens are "
                "@wave_completed(a, b) and @wave_remaining(a, b)"
            )
    for m in _WAVE_TOKEN.finditer(text):
        for bound in (m.group(2), m.group(3)):
            try:
                tree = compile_expression(bound)
                if any(isinstance(n, ast.Name) and n.id not in CONSTANTS for n in ast.walk(tree)):
                    # prompt_at has no t, max_f or s to give them: t was always 0
                    raise ScheduleError(f"the bounds are numbers; {bound!r} names t, max_f or s")
                evaluate(tree)
            except ScheduleError as e:
                raise ScheduleError(f"prompt at frame {frame}: {m.group(0)}: {e}") from None
    left = _WAVE_CALL.search(_WAVE_TOKEN.sub("0", text))
    if left:
        raise ScheduleError(
            f"prompt at frame {frame}: cannot read {left.group(0)}...; write "
            "@wave_completed(a, b) / @wave_remaining(a, b) with a and b numbers or "
            "expressions without parentheses"
        )


_WAVE_CALL = re.compile(r"@wave_(completed|remaining)\s*\(")
_NEG = re.compile(r"--neg(?!\w)")
# a prompt's frame: far past any render's, short of Python's digit limit for str()
_MAX_FRAME_DIGITS = 600
_LINE_SEED = re.compile(r"([+-]?)0*([0-9]{1,20})")  # (leading zeros are no digits)
# a bound neither starts nor ends with whitespace: lazy bounds between \s* runs split a
# run of spaces in many ways (a missing comma and 3,200 spaces took 31 s)
_WAVE_BOUND = r"([^,()\s](?:[^,()]*[^,()\s])?)"
_WAVE_TOKEN = re.compile(rf"@wave_(completed|remaining)\(\s*{_WAVE_BOUND}\s*,\s*{_WAVE_BOUND}\s*\)")
# any @wave_ name, any case: one that is not one of the two was sent to the model as text
_WAVE_NAME = re.compile(r"@wave_\w*", re.I)


class PromptTrack:
    """Prompt keyframes (as :func:`parse_prompts` returns them) looked up by frame by
    binary search: the prompt in force (:meth:`at`) and the seed of the ``frame::seed::``
    lines (:meth:`seed`). A render asks both every frame; a scan of every key a call made
    a prompt a frame quadratic (41 s to check 20,000 frames)."""

    def __init__(self, prompts: Mapping[int, Prompt]) -> None:
        if not isinstance(prompts, Mapping) or not all(
            isinstance(p, Prompt) for p in prompts.values()
        ):
            raise TypeError("prompts must map frames to Prompt, as parse_prompts returns them")
        if not prompts:
            raise ScheduleError("prompts: at least one prompt is needed")
        self.prompts = dict(prompts)
        self.keys = sorted(self.prompts)
        self.seed_keys = [k for k in self.keys if self.prompts[k].seed is not None]

    def seed(self, frame: int) -> int | None:
        """The seed the last ``frame::seed::prompt`` line at or before ``frame`` sets for
        it (see :class:`Prompt`), or None before any such line."""
        i = bisect.bisect_right(self.seed_keys, frame) - 1
        if i < 0:
            return None
        k = self.seed_keys[i]
        p = self.prompts[k]
        assert p.seed is not None
        return p.seed + p.seed_step * (int(frame) - k)

    def at(self, frame: int, *, frames_per_wave: float = 0, offset: float = 0.0) -> Prompt:
        """See :func:`prompt_at`."""
        _finite_frame(frame, "frame")
        for name, v in (("frames_per_wave", frames_per_wave), ("offset", offset)):
            # float arithmetic below: Decimal, which _validate._is_real takes, does not mix
            if isinstance(v, (bool, np.bool_)) or not isinstance(
                v, (int, float, np.integer, np.floating)
            ):
                raise TypeError(f"{name} must be a number; got {v!r}")
        i = bisect.bisect_right(self.keys, frame) - 1
        p = self.prompts[self.keys[max(i, 0)]]  # the first prompt before its frame too
        if "@wave_" not in p.text + p.negative:
            return p
        if not frames_per_wave or not math.isfinite(frames_per_wave + offset):
            raise ScheduleError(
                "@wave_completed/@wave_remaining need a finite frames_per_wave (not 0) and "
                f"offset; got {frames_per_wave!r}, {offset!r}"
            )
        # where the frame is in its wave: 0 on its first frame, 1 on its last (the script
        # divides by frames_per_wave - 1); offset in degrees as the denoise wave's, 180 a wave
        at = (frame + offset * frames_per_wave / 180.0) % frames_per_wave
        if not math.isfinite(at):  # offset * frames_per_wave overflowed
            raise ScheduleError(
                f"the wave's phase at frame {frame} is not finite (offset {offset!r}, "
                f"frames_per_wave {frames_per_wave!r})"
            )
        progress = min(at / (frames_per_wave - 1), 1.0) if frames_per_wave > 1 else 0.0

        def sub(m: re.Match[str]) -> str:
            # the bounds in either order, low to high, as the script takes them:
            # @wave_remaining(1, 0) falls from 1 to 0 as @wave_remaining(0, 1) does
            a, b = evaluate(m.group(2)), evaluate(m.group(3))
            x = progress if m.group(1) == "completed" else 1 - progress
            return f"{_ramp(min(a, b), max(a, b), x):.3f}"

        text, negative = _WAVE_TOKEN.sub(sub, p.text), _WAVE_TOKEN.sub(sub, p.negative)
        left = _WAVE_CALL.search(text + "\n" + negative)
        if left:  # a token the pattern could not read (a call inside it), left in the prompt
            raise ScheduleError(
                f"prompt at frame {frame}: cannot read {left.group(0)}...; write "
                "@wave_completed(a, b) / @wave_remaining(a, b) with a and b numbers or "
                "expressions without parentheses"
            )
        return replace(p, text=text, negative=negative)


def prompt_at(
    prompts: Mapping[int, Prompt], frame: int, *, frames_per_wave: float = 0, offset: float = 0.0
) -> Prompt:
    """The prompt in force at ``frame`` (the last prompt keyframe at or before it; the
    first one for frames before that), with
    ``@wave_completed(a,b)`` and ``@wave_remaining(a,b)`` replaced by the weight for this
    frame, as the Loopback Wave script does: the lower bound to the higher over each wave
    of ``frames_per_wave`` frames (the higher on its last frame), and the reverse. The
    waves start ``offset`` degrees in, 180 degrees a wave, as :func:`wave_strength`'s."""
    return PromptTrack(prompts).at(frame, frames_per_wave=frames_per_wave, offset=offset)


SEED_BEHAVIOURS = ("iter", "fixed", "random", "ladder", "alternate", "schedule")


def whole(value: float) -> int:
    """A schedule's value as a count or a seed: its fraction dropped, toward 0, as Deforum's
    ``int()`` (``0: (10), 4: (12)`` gives 10, 10, 11, 11, 12), after rounding to 9 places (a
    ramp's 1.9999999999999998 is its key's 2). ``value`` is finite."""
    return int(round(value, 9))


def seed_for(
    i: int, *, seed: int, behaviour: str = "iter", schedule: Schedule | None = None
) -> int:
    """The seed of frame ``i``.

    ``iter`` seed+i; ``fixed`` seed; ``random`` seed at frame 0, then a reproducible draw
    from ``seed`` and ``i`` (Deforum draws after its first frame); ``ladder`` seed, +2, +1,
    +3, +2, +4 ... (``seed + i//2 + 2*(i%2)``); ``alternate`` seed, seed+1, seed, ... ;
    ``schedule`` the value of ``schedule`` at ``i`` with its fraction dropped (toward 0,
    as Deforum's ``int()``: ``0: (0), 10: (5)`` gives 0, 0, 1, 1, 2, ...).
    ``i`` and ``seed`` are ints (Python or NumPy).
    """
    for name, v in (("i", i), ("seed", seed)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int; got {v!r}")
    i, seed = int(i), int(seed)
    if behaviour == "iter":
        return seed + i
    if behaviour == "fixed":
        return seed
    if behaviour == "random":
        return seed if i == 0 else random.Random(seed * 1_000_003 + i).randrange(2**32)
    if behaviour == "ladder":
        return seed + i // 2 + 2 * (i % 2)
    if behaviour == "alternate":
        return seed + (i % 2)
    if behaviour == "schedule":
        if schedule is None:
            raise ScheduleError("seed behaviour 'schedule' needs a seed schedule")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule or None; got {type(schedule).__name__}")
        value = schedule(i)
        if not abs(value) <= 2**62:  # rounding a float beyond this makes no sense as a seed
            raise ScheduleError(f"{schedule.name} at frame {i}: {value} is too large for a seed")
        return whole(value)
    raise ScheduleError(f"seed behaviour must be one of {SEED_BEHAVIOURS}; got {behaviour!r}")
