"""Schedules (Deforum keyframe strings), the safe evaluator, wave, prompts, seeds."""

from __future__ import annotations

import contextlib
import gc
import math
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwave.schedule import (
    Prompt,
    Schedule,
    ScheduleError,
    evaluate,
    parse_prompts,
    prompt_at,
    seed_for,
    wave_strength,
)

TABLE = [
    ("0: (0.65), 30: (0.4)", [0.65, 0.525, 0.4, 0.4]),
    ("10: (1)", [1, 1, 1, 1]),
    ("0: (t/10)", [0, 1.5, 3, 4.5]),
    ("0: (t/10), 30: (0)", [0, 1.5, 0, 0]),
    ("0: (0), 30: (t)", [0, 15, 30, 45]),
    ("0:(1),30:(-1)", [1, 0, -1, -1]),
    ("0: (max_f - t)", [59, 44, 29, 14]),
    ("0: (max(0.2, min(t, 0.5)))", [0.2, 0.5, 0.5, 0.5]),  # commas inside calls
    ("0: (where(t < 20, 1, 2))", [1, 1, 2, 2]),
    ("0: (s + 1)", [8, 8, 8, 8]),
]


@pytest.mark.parametrize(("text", "want"), TABLE)
def test_schedule_table(text, want):
    sc = Schedule(text, max_frames=60, seed=7)
    np.testing.assert_allclose([sc(i) for i in (0, 15, 30, 45)], want, atol=1e-12)


def test_deforum_examples():
    zoom = Schedule("0: (-0.06*(cos(3.141*t/15)**100)+0.06)", max_frames=60)
    v = zoom.values()
    assert v[0] == pytest.approx(0.0, abs=1e-6) and v[15] == pytest.approx(0.0, abs=1e-4)
    assert v[7] == pytest.approx(0.06, abs=1e-3)  # a pulse between the beats
    strength = Schedule("0: (0.65), 30: (0.4)", max_frames=60).values()
    assert strength.shape == (60,) and np.all(np.diff(strength[:31]) < 0)
    assert Schedule(0.5, max_frames=3).values().tolist() == [0.5, 0.5, 0.5]


def test_wave_strength_matches_the_seed_formula():
    for i in range(40):
        c = abs(math.cos(math.radians(i * 180 / 12 + 30)))
        want = min(max(0.3 + 0.4 - c * 0.4, 0), 1)
        assert wave_strength(i, base=0.3, amplitude=0.4, frames_per_wave=12, offset=30) == want
    assert wave_strength(6, base=0.9, amplitude=0.5, frames_per_wave=12) == 1.0  # clamped
    with pytest.raises(ScheduleError, match="frames_per_wave"):
        wave_strength(1, base=0.3, amplitude=0.4, frames_per_wave=0)
    # NaN passed through the clamp once, and came out as the strength
    nan = float("nan")
    for arg, kw in (
        ("frames_per_wave", {"frames_per_wave": nan}),
        ("frames_per_wave", {"frames_per_wave": math.inf}),
        ("base", {"base": nan}),
        ("amplitude", {"amplitude": nan}),
        ("offset", {"offset": math.inf}),
    ):
        args = {"base": 0.3, "amplitude": 0.4, "frames_per_wave": 12, **kw}
        with pytest.raises(ScheduleError, match=f"^{arg} "):
            wave_strength(3, **args)


def test_where_evaluates_only_the_chosen_branch():
    s = Schedule("0: (where(t > 0, 1 / t, 0))", max_frames=4)
    assert s.values().tolist() == [0.0, 1.0, 0.5, 1 / 3]


def test_bad_frames_and_huge_numbers():
    s = Schedule("0: (1), 10: (2)", max_frames=20, name="cfg")
    assert s(np.int64(5)) == s(5.0) == 1.5
    with pytest.raises(ScheduleError, match="^cfg: frame"):
        s(float("nan"))
    with pytest.raises(TypeError, match="^cfg: frame"):
        s(None)  # type: ignore[arg-type]
    for bad in (10**5000, float("inf"), float("nan")):
        with pytest.raises(ScheduleError, match="^cfg must be finite"):
            Schedule(bad, max_frames=3, name="cfg")
    with pytest.raises(ScheduleError, match="^cfg: "):
        Schedule("9" * 5000 + ": (1)", max_frames=3, name="cfg")


@pytest.mark.parametrize(
    "bad",
    [
        "__import__('os').system('x')",
        "open('/etc/passwd')",
        "t.__class__",
        "[1, 2]",
        "lambda: 1",
        "x + 1",
        "'abc'",
        "sin",
        "9**9**9",
        "1/0",
        "sqrt(-1)",
        "exp(1000)",
        "(" * 5000,
        "t" + "+t" * 300,
    ],
)
def test_bad_expressions_are_refused(bad):
    with pytest.raises(ScheduleError):
        evaluate(bad, t=1)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0 (1)",
        "a: (1)",
        "0: (1",
        "0: (1)), 5: (2)",
        "-3: (1)",
        "0: (import os)",
        "0: (1), \u0661\u0660: (2)",  # Arabic-Indic digits: read as frame 10
    ],
)
def test_bad_schedules_name_the_problem(bad):
    with pytest.raises(ScheduleError, match="strength"):
        Schedule(bad, max_frames=10, name="strength")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_fuzzed_text_never_crashes_and_stays_bounded(text):
    with _bounded(5.0):
        try:
            v = evaluate(text, t=3, max_f=10, s=1)
            assert math.isfinite(v)
        except ScheduleError:
            pass
        try:
            Schedule(text, max_frames=5).values()
        except ScheduleError:
            pass


@contextlib.contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    """The block ends within ``seconds``: a guard against blow-ups (an exponent tower, a
    huge repeat), which take minutes, not a timing. Each example takes milliseconds; the
    bound is wide and the garbage collector off, as one of its full passes over a process
    that has loaded torch took up to 1.1 s on a loaded host."""
    gc.disable()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        gc.enable()
    assert time.perf_counter() - t0 < seconds


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.sampled_from(["t", "1", "2.5", "max_f", "s", "pi"]),
        lambda c: st.one_of(
            st.tuples(c, st.sampled_from(["+", "-", "*", "/", "**", "%"]), c).map(
                lambda x: f"({x[0]} {x[1]} {x[2]})"
            ),
            st.tuples(st.sampled_from(["sin", "cos", "abs", "sqrt", "exp"]), c).map(
                lambda x: f"{x[0]}({x[1]})"
            ),
        ),
        max_leaves=30,
    )
)
def test_fuzzed_expressions(expr):
    with _bounded(5.0):
        try:
            assert math.isfinite(evaluate(expr, t=2, max_f=9, s=3))
        except ScheduleError:
            pass


def test_prompt_at_needs_prompts_and_a_finite_wave():
    with pytest.raises(ScheduleError, match="at least one prompt"):
        prompt_at({}, 0)
    p = parse_prompts({0: "a @wave_completed(0, 1) b"})
    with pytest.raises(ScheduleError, match="finite frames_per_wave"):
        prompt_at(p, 3, frames_per_wave=float("nan"))  # once gave the text 'a nan b'


def test_prompts_and_wave_tokens():
    p = parse_prompts({0: "a cat --neg blurry", "30": "a dog"})
    assert p[0].negative == "blurry" and prompt_at(p, 29).text == "a cat"
    assert prompt_at(p, 30).text == "a dog"
    lines = parse_prompts("0::a forest\n40::1234::(castle:@wave_completed(0.5, 1.5))\n")
    assert lines[40].seed == 1234
    assert prompt_at(lines, 40, frames_per_wave=20).text == "(castle:0.500)"
    # frame 50 is 10 frames into its wave of 20: 10/19 of the way
    assert prompt_at(lines, 50, frames_per_wave=20).text == f"(castle:{0.5 + 10 / 19:.3f})"
    rem = parse_prompts({0: "(x:@wave_remaining(0, 1))"})
    assert prompt_at(rem, 5, frames_per_wave=20).text == f"(x:{1 - 5 / 19:.3f})"
    with pytest.raises(ScheduleError, match="frames_per_wave"):
        prompt_at(rem, 5)
    for bad in ("0::a::b::c", "x::a", ""):
        with pytest.raises(ScheduleError, match="prompts"):
            parse_prompts(bad)
    # (from a review) frames in ASCII digits, as a schedule's: int() took the full-width
    # "５" as 5 and "5_0" as 50
    for bad in ("0::a\n\uff15::b", "0::a\n5_0::b", {0: "a", "\u0661": "b"}, {True: "a"}):
        with pytest.raises(ScheduleError, match="is not a whole number in ASCII digits"):
            parse_prompts(bad)
    assert sorted(parse_prompts("0::a\n+5::b\n 7 ::c")) == [0, 5, 7]
    # (a review of that) no limit of 18 digits, as before; past Python's own, refused
    assert sorted(parse_prompts({0: "a", 10**18: "b", "1234567890123456789": "c"}))[1:] == [
        10**18,
        1234567890123456789,
    ]
    with pytest.raises(ScheduleError, match="has too many digits"):
        parse_prompts({0: "a", "9" * 5000: "b"})
    # (a later review: an int frame past the limit then failed in a message's str()) a
    # frame of more than 600 digits, far past any render's, is refused as an int too
    assert sorted(parse_prompts({0: "a", 10**599: "b"}))[1] == 10**599
    for big, sign in ((10**5000, "a"), (-(10**5000), "a negative")):
        with pytest.raises(ScheduleError, match=f"{sign} frame of more than 600 digits has"):
            parse_prompts({0: "a", big: 5})
    # (a review of that) counted in digits as text is, not in bits: 10**600 - 1 and 2**1990
    # (600 digits each) were refused as ints and taken as text; a negative frame's message
    # printed all its digits
    for frame in (10**600 - 1, 2**1990):
        assert sorted(parse_prompts({0: "a", frame: "b"}))[1] == frame
        assert sorted(parse_prompts({0: "a", str(frame): "b"}))[1] == frame
    with pytest.raises(ScheduleError, match="has too many digits"):
        parse_prompts({0: "a", 10**600: "b"})
    with pytest.raises(ScheduleError, match=r"^prompts: frame [0-9]{20}\.\.\. is given twice$"):
        parse_prompts({10**599: "a", "1" + "0" * 599: "b"})
    with pytest.raises(ScheduleError, match=r"^prompts: frame [0-9]{20}\.\.\. is given twice$"):
        parse_prompts({10**23: "a", "1" + "0" * 23: "b"})  # (21-24 digits were printed whole)
    for neg in (-(10**599), "-" + "1" * 600):
        with pytest.raises(ScheduleError, match=r"^prompts: frame -[0-9]{20}\.\.\. is negative$"):
            parse_prompts({0: "a", neg: "b"})
    # (a later review) leading zeros are no digits, as in a schedule's keys: 5,000 of them
    # were "too many digits", and a seed's ("0::0001::a") was not a seed
    assert sorted(parse_prompts("0::a\n" + "0" * 5000 + "3::b")) == [0, 3]
    assert sorted(parse_prompts({"00": "a", "007": "b"})) == [0, 7]
    with pytest.raises(ScheduleError, match="frame 7 is given twice"):
        parse_prompts({"7": "a", "007": "b"})
    assert parse_prompts("0::" + "0" * 30 + "1::a cat")[0].seed == 1
    # (a review of that) the zeros are stripped after the match: a pattern where two parts
    # could take them took seconds to refuse a long key (0.7 s for 8,000 zeros, squared)
    for bad in ({"0" * 50_000 + "x": "a"}, "0" * 50_000 + "x::a"):
        with pytest.raises(ScheduleError, match="is not a whole number in ASCII digits"):
            parse_prompts(bad)
    # past Python's digit limit, wherever it is set, a ScheduleError with the sign kept
    if not hasattr(sys, "set_int_max_str_digits"):  # (an old 3.10 has no limit)
        return
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        for key, shown in (("1" * 700, "frame 1111"), ("-" + "0" * 9 + "1" * 700, "frame -1111")):
            with pytest.raises(ScheduleError, match=f"prompts: {shown}.*has too many digits"):
                parse_prompts({key: "a"})
    finally:
        sys.set_int_max_str_digits(limit)


def test_a_seed_schedule_beyond_64_bits_is_refused():
    s = Schedule("0: (1e300)", max_frames=3, name="seed_schedule")
    with pytest.raises(ScheduleError, match="too large for a seed"):
        seed_for(0, seed=1, behaviour="schedule", schedule=s)


def test_seed_behaviours():
    assert [seed_for(i, seed=10) for i in range(4)] == [10, 11, 12, 13]
    assert [seed_for(i, seed=10, behaviour="fixed") for i in range(3)] == [10, 10, 10]
    assert [seed_for(i, seed=10, behaviour="ladder") for i in range(6)] == [10, 12, 11, 13, 12, 14]
    assert [seed_for(i, seed=10, behaviour="alternate") for i in range(4)] == [10, 11, 10, 11]
    r = [seed_for(i, seed=10, behaviour="random") for i in range(5)]
    assert r == [seed_for(i, seed=10, behaviour="random") for i in range(5)] and len(set(r)) == 5
    assert r[0] == 10  # Deforum renders frame 0 with the seed given, draws after it
    sch = Schedule("0: (100 + t*2)", max_frames=10)
    assert seed_for(3, seed=0, behaviour="schedule", schedule=sch) == 106
    # the fraction dropped, as Deforum's int(): even steps, where rounding half to even
    # gave 0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5
    ramp = Schedule("0: (0), 10: (5)", max_frames=11)
    got = [seed_for(i, seed=0, behaviour="schedule", schedule=ramp) for i in range(11)]
    assert got == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    down = Schedule("0: (0), 4: (-2)", max_frames=5)
    got = [seed_for(i, seed=0, behaviour="schedule", schedule=down) for i in range(5)]
    assert got == [0, 0, -1, -1, -2]  # toward 0
    with pytest.raises(ScheduleError, match="seed behaviour"):
        seed_for(0, seed=0, behaviour="spiral")


def test_found_in_review_each_bad_value_is_named_and_python_semantics_hold():
    """Each of these once crashed with another exception type, left the schedule's name
    out of its message, accepted nonsense, or differed from Python."""
    s = Schedule("0: (1)", max_frames=5, name="cfg")
    with pytest.raises(ScheduleError, match="^cfg: frame"):  # was a bare OverflowError
        s(10**400)
    with pytest.raises(TypeError, match="^cfg: frame"):  # was 2.0 and a ComplexWarning
        s(np.complex128(2 + 7j))
    assert s(np.float32(2)) == s(np.int64(2)) == 1
    with pytest.raises(ValueError, match="^cfg: n must"):  # was an empty array
        s.values(-1)
    assert s.values(0).shape == (0,) and s.values(np.int64(2)).tolist() == [1, 1]
    # a key written +1 is a number, ramped toward the next (it was held at 1)
    assert Schedule("0: (+1), 30: (0)", max_frames=60)(15) == 0.5
    with pytest.raises(ScheduleError, match="^cfg at frame 0"):  # the name was missing
        Schedule("0: (1e400)", max_frames=5, name="cfg")
    # round's digits (every value is a float) and Python's and/or
    assert evaluate("round(1.2345, 2)") == 1.23 and evaluate("round(2.5)") == 2
    with pytest.raises(ScheduleError, match="whole number"):
        evaluate("round(1.2345, 1.5)")
    assert evaluate("t > 0 and 1 / t > 0.5", t=0) == 0  # was a division by zero
    assert evaluate("0 or 5") == 5 and evaluate("2 and 3") == 3 and evaluate("0 and 3") == 0
    assert evaluate("t > 0 or 7", t=1) == 1
    # NaN and overflow reach no prompt and no strength
    prompts = parse_prompts({0: "(cat:@wave_completed(0, 1))"})
    for frame, offset in ((float("nan"), 0.0), (float("inf"), 0.0), (3, 1e308)):
        with pytest.raises(ScheduleError, match="frame|phase"):
            prompt_at(prompts, frame, frames_per_wave=24, offset=offset)
    assert prompt_at(prompts, 12, frames_per_wave=24).text == f"(cat:{12 / 23:.3f})"
    # a token with a call inside was kept as is; refused when the prompts are read (found
    # only at render time, it stopped a render for good: resume keeps the settings)
    with pytest.raises(ScheduleError, match="frame 3: cannot read @wave_completed"):
        parse_prompts({3: "a @wave_completed(0, max(1, 2))"})
    with pytest.raises(ScheduleError, match="frame 0: @wave_remaining"):
        parse_prompts({0: "a (b:@wave_remaining(0, 1/0))"})
    wave = dict(base=0.3, amplitude=0.35, frames_per_wave=24)
    for i in (float("nan"), float("inf"), 10**400):
        with pytest.raises(ScheduleError, match="^i must be finite"):
            wave_strength(i, **wave)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="frames_per_wave"):  # 'math domain error'
        wave_strength(1, base=0.3, amplitude=0.35, frames_per_wave=1e-320)
    with pytest.raises(ScheduleError, match="frames_per_wave"):
        wave_strength(1, base=0.3, amplitude=0.35, frames_per_wave=0)
    assert wave_strength(np.int64(12), **wave) == pytest.approx(0.65)
    # seeds are ints (1.5 gave 11.5; "1" an unnamed TypeError)
    assert seed_for(np.int64(1), seed=10) == 11
    for bad in ({"i": 1.5, "seed": 10}, {"i": 1, "seed": "1"}, {"i": 1, "seed": None}):
        with pytest.raises(TypeError, match=f"^{'i' if bad['i'] == 1.5 else 'seed'} must"):
            seed_for(bad["i"], seed=bad["seed"])  # type: ignore[arg-type]


def test_prompt_keys_neg_words_and_wave_bounds():
    """From a review: "--neg" inside a word split the prompt ("a --negative b" had the
    negative 'ative b'); a frame given twice silently kept the last; t in a @wave bound
    was always 0 (prompt_at has no t to give it)."""
    assert parse_prompts({0: "a --negative b"})[0] == Prompt("a --negative b", "")
    assert parse_prompts({0: "a --neg b c"})[0] == Prompt("a", "b c")
    assert parse_prompts("0::x --neg y")[0] == Prompt("x", "y")
    for twice in ({0: "a", "0": "b"}, "0::a\n0::b", " 3::a\n3 ::b"):
        with pytest.raises(ScheduleError, match="frame (0|3) is given twice"):
            parse_prompts(twice)
    for name in ("t", "max_f", "s"):
        with pytest.raises(ScheduleError, match="names t, max_f or s"):
            parse_prompts({0: f"(a:@wave_completed({name}, 100))"})
    assert parse_prompts({0: "(a:@wave_completed(0.5, 2 * 0.75))"})


def test_a_key_for_every_frame_of_a_long_render_is_taken():
    """From a review: a whole schedule was limited to 8,000 characters, which refused a
    per-frame schedule of 600 keys (as Parseq and audio-sync tools write them)."""
    from loopwave.schedule import MAX_SCHEDULE

    values = [round(0.4 + 0.3 * ((i * 7) % 11) / 11, 4) for i in range(5000)]
    s = Schedule(", ".join(f"{i}: ({v})" for i, v in enumerate(values)), max_frames=5000)
    assert [s(i) for i in (0, 599, 4999)] == [values[0], values[599], values[4999]]
    with pytest.raises(ScheduleError, match=f"^zoom is longer than {MAX_SCHEDULE} characters"):
        Schedule("0: (1)" + " " * MAX_SCHEDULE, max_frames=5, name="zoom")


def test_a_schedules_key_frame_given_twice_is_refused():
    """From a review: "0: (1), 0: (2)" kept the last value silently (prompts refuse it)."""
    for text, frame in (("0: (1), 0: (2)", 0), ("0: (0.65), 30: (0.4), 30 : (0.9)", 30)):
        with pytest.raises(ScheduleError, match=f"^zoom: key frame {frame} is given twice$"):
            Schedule(text, max_frames=60, name="zoom")
    assert Schedule("0: (1), 30: (2)", max_frames=60)(30) == 2.0


def test_wave_bounds_may_use_the_named_constants():
    """From a review: a @wave bound with pi or e was refused as naming t, max_f or s,
    though prompt_at fills the constants in."""
    prompts = parse_prompts({0: "(a:@wave_completed(0, pi/2)) (b:@wave_remaining(e, 3))"})
    x = 6 / 11  # six frames into a wave of 12
    want = f"(a:{math.pi / 2 * x:.3f}) (b:{3 - (3 - math.e) * x:.3f})"
    assert prompt_at(prompts, 6, frames_per_wave=12).text == want
    with pytest.raises(ScheduleError, match="names t, max_f or s"):
        parse_prompts({0: "(a:@wave_completed(0, pi * t))"})


def test_prompt_at_and_seed_for_name_wrong_arguments():
    """Raw TypeErrors and AttributeErrors that named nothing, from a review."""
    prompts = parse_prompts({0: "a (b:@wave_completed(1, 2))"})
    for kw, name in (({"frames_per_wave": "20"}, "frames_per_wave"), ({"offset": None}, "offset")):
        with pytest.raises(TypeError, match=f"^{name} must be a number"):
            prompt_at(prompts, 1, **{"frames_per_wave": 20, **kw})
    with pytest.raises(TypeError, match="^prompts must map frames to Prompt"):
        prompt_at({0: "a"}, 0)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="^schedule must be a Schedule"):
        seed_for(1, seed=1, behaviour="schedule", schedule=5)  # type: ignore[arg-type]
    assert prompt_at(prompts, 5, frames_per_wave=20).text == f"a (b:{1 + 5 / 19:.3f})"


def test_a_frames_key_is_the_last_at_or_before_it_among_many_keys():
    """The key lookup (a binary search: a linear scan of 1,300 keys per frame made the
    render's check of a million frames take 18 minutes) against a plain scan."""
    rng = np.random.default_rng(3)
    frames = sorted(set(rng.integers(0, 5000, 400).tolist()) | {0})
    values = dict(zip(frames, np.round(rng.random(len(frames)), 3).tolist(), strict=True))
    s = Schedule(", ".join(f"{f}: ({v})" for f, v in values.items()), max_frames=5000)
    for frame in rng.integers(0, 5000, 300).tolist() + frames[:5] + [4999]:
        at = max(f for f in frames if f <= frame)
        later = [f for f in frames if f > frame]
        want = values[at]
        if later:
            nxt = later[0]
            want += (values[nxt] - values[at]) * (frame - at) / (nxt - at)
        assert s(frame) == pytest.approx(want, abs=1e-12), frame


def test_wave_tokens_follow_the_loopback_wave_script():
    """From a review: the script sorts a token's bounds (its published crossfade writes
    @wave_remaining(1, 0)) and reaches the higher on a wave's last frame (it divides by
    frames_per_wave - 1); loopwave ran (1, 0) backwards and stopped at 0.95."""
    p = parse_prompts({0: "(above:@wave_remaining(1, 0)), (below:@wave_completed(0,1))"})
    texts = [prompt_at(p, i, frames_per_wave=20).text for i in range(41)]
    for i, t in enumerate(texts):
        x = (i % 20) / 19  # the script's progress
        assert t == f"(above:{1 - x:.3f}), (below:{x:.3f})", (i, t)
    assert texts[0] == "(above:1.000), (below:0.000)"
    assert texts[19] == "(above:0.000), (below:1.000)" and texts[20] == texts[0]
    # either order of the bounds gives the same weights
    q = parse_prompts({0: "(a:@wave_completed(1.5, 0.5))"})
    r = parse_prompts({0: "(a:@wave_completed(0.5, 1.5))"})
    assert all(
        prompt_at(q, i, frames_per_wave=7) == prompt_at(r, i, frames_per_wave=7) for i in range(9)
    )
    # a one-frame wave has no way to go: the start (the script divided by zero)
    assert prompt_at(r, 3, frames_per_wave=1).text == "(a:0.500)"


def test_line_seeds_follow_the_loopback_wave_script():
    """From a review: a line's seed is the seed at its frame; +N goes up a frame from there,
    -N down, a plain N stays, and lines without a seed keep it (loopwave added the frame
    index to it, read -N as a negative seed, and fell back at the next line)."""
    from loopwave.schedule import PromptTrack

    t = PromptTrack(
        parse_prompts(
            "0::a forest\n40::1234::a castle\n45::-654::a ship\n47::+77::a tree\n50::a cat"
        )
    )
    assert [t.seed(i) for i in (0, 39)] == [None, None]  # the seed behaviour's
    assert [t.seed(i) for i in (40, 41, 44)] == [1234, 1234, 1234]
    assert [t.seed(i) for i in (45, 46)] == [654, 653]
    assert [t.seed(i) for i in (47, 48, 49, 50, 60)] == [77, 78, 79, 80, 90]  # kept on line 50
    assert t.at(50).text == "a cat" and t.at(46).text == "a ship"
    with pytest.raises(ScheduleError, match="not N, \\+N or -N"):
        parse_prompts("0::+-5::a")
    with pytest.raises(ScheduleError, match="not N"):
        parse_prompts("0::" + "9" * 5000 + "::a")  # once int() past Python's digit limit


@pytest.mark.parametrize(
    ("text", "positive", "negative"),
    [
        ("a cat --neg blurry", "a cat", "blurry"),
        ("(a cat:1.2)--neg blurry", "(a cat:1.2)", "blurry"),
        ("a cat,--neg blurry", "a cat,", "blurry"),
        ("a cat --neg, blurry", "a cat", ", blurry"),
        ("a --negative b", "a --negative b", ""),  # a word that starts with it is not it
    ],
)
def test_neg_splits_where_deforum_does(text, positive, negative):
    """From a review: '--neg' was split only between spaces; Deforum splits at it."""
    p = parse_prompts({0: text})[0]
    assert (p.text, p.negative) == (positive, negative)


def test_a_ramp_between_huge_finite_keys_stays_finite():
    s = Schedule("0: (1e308), 10: (-1e308)", max_frames=11)
    assert s(5) == 0.0 and s(0) == 1e308 and s(10) == -1e308  # b - a overflowed to -inf


def test_looking_up_a_prompt_a_frame_is_not_quadratic():
    """From a review: every lookup scanned every key (41 s to check 20,000 frames with a
    prompt a frame). Counted, not timed: the keys compared per lookup."""
    from loopwave.schedule import PromptTrack

    class Key(int):
        compared = 0

        def __lt__(self, other):
            Key.compared += 1
            return int.__lt__(self, other)

        def __gt__(self, other):
            Key.compared += 1
            return int.__gt__(self, other)

    n = 20_000
    t = PromptTrack({Key(i): p for i, p in parse_prompts({i: f"p{i}" for i in range(n)}).items()})
    Key.compared = 0
    for i in range(0, n, 97):
        assert t.at(i).text == f"p{i}"
    assert Key.compared < 40 * len(range(0, n, 97))  # log2(20000) ~ 15 a lookup


def test_an_unbalanced_bracket_is_placed_not_quoted_whole():
    """From a review: the message held the whole schedule (583 KB for a key per frame, as
    Parseq writes them) and said nowhere where the bracket was."""
    big = ", ".join(f"{i}: ({0.5 + (i % 7) / 100})" for i in range(40000))
    extra_open = big.replace("20000: (", "20000: ((", 1)
    at = big.index("20000: (") + len("20000: ")
    with pytest.raises(ScheduleError, match=rf"unbalanced '\(', never closed, at character {at}:"):
        Schedule(extra_open, max_frames=10)
    extra_close = big.replace("20000: (0.5", "20000: 0.5)", 1)
    for bad in (extra_open, extra_close):
        with pytest.raises(ScheduleError) as e:
            Schedule(bad, max_frames=10)
        assert len(str(e.value)) < 300 and "20000: " in str(e.value)


def test_a_misspelt_wave_token_is_refused():
    """From a review: '@wave_complete(0, 1)' (or '@Wave_completed') was sent to the model
    as text, weighted by its brackets, on every frame, without a word."""
    for bad in ("@wave_complete", "@Wave_completed", "@wave_remain", "@WAVE_REMAINING", "@wave_"):
        with pytest.raises(ScheduleError, match=f"unknown '{bad}'"):
            parse_prompts({0: f"(cat:{bad}(0, 1))"})
    assert (
        parse_prompts({0: "(cat:@wave_completed(0, 1))"})[0].text == "(cat:@wave_completed(0, 1))"
    )


def test_prompt_wave_offset_is_in_degrees_180_a_wave():
    from loopwave.schedule import parse_prompts, prompt_at

    p = parse_prompts({0: "(a:@wave_completed(0, 1))"})
    # 90 degrees is half a wave of 20 frames: frame 0 with offset 90 is frame 10 without
    assert (
        prompt_at(p, 0, frames_per_wave=20, offset=90).text
        == prompt_at(p, 10, frames_per_wave=20).text
    )
    assert prompt_at(p, 0, frames_per_wave=20, offset=90).text == f"(a:{10 / 19:.3f})"


def test_whole_takes_a_ramps_rounding_error_as_the_key():
    from loopwave.schedule import Schedule, seed_for, whole

    s = Schedule("0: (0.1), 4: (1.3)", max_frames=5)
    assert s(3) == pytest.approx(1.0) and s(3) < 1.0  # 0.9999999999999999
    assert whole(s(3)) == 1
    assert seed_for(3, seed=0, behaviour="schedule", schedule=s) == 1


def test_an_expression_before_its_first_key_holds_its_value_at_the_key():
    from loopwave.schedule import Schedule

    s = Schedule("10: (t)", max_frames=20)
    assert [s(0), s(5), s(10), s(15)] == [10, 10, 10, 15]


def test_chained_comparisons_are_pythons():
    from loopwave.schedule import evaluate

    assert evaluate("1 < t < 3", t=2) == 1.0
    assert evaluate("0 < t < 3", t=5) == 0.0


def test_python_syntax_warnings_do_not_reach_the_user():
    """ "1if t < 5 else 2" is valid (CPython warns of an invalid decimal literal: a
    SyntaxWarning, a DeprecationWarning on 3.10): it printed on every parse, naming no
    setting, and with -W error the schedule was refused. Run as a user would, in a process
    of its own with warnings as errors (pytest's own recorders show every warning)."""
    import subprocess
    import sys

    code = (
        "from loopwave.schedule import Schedule\n"
        "sch = Schedule('0: (1if t < 5 else 1.01)', max_frames=10)\n"
        "print(sch(2), sch(7))\n"
    )
    for flag in ("error", "default"):
        r = subprocess.run(
            [sys.executable, "-W", flag, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert (r.returncode, r.stdout, r.stderr) == (0, "1.0 1.01\n", ""), flag
