"""A1111 prompt weights: the parser against a table of cases, and the weighted embeddings
against diffusers' own encode_prompt (the oracle for prompts without weights)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwave.prompt_weights import parse_weights

U, D = 1.1, 1 / 1.1

CASES = [
    ("a castle", [("a castle", 1.0)]),
    ("", []),
    ("(castle:1.3)", [("castle", 1.3)]),
    ("a (castle:1.3) at dusk", [("a ", 1.0), ("castle", 1.3), (" at dusk", 1.0)]),
    ("(castle)", [("castle", U)]),
    ("((castle))", [("castle", U * U)]),
    ("[castle]", [("castle", D)]),
    ("[[castle]]", [("castle", D * D)]),
    ("(a (red:1.5) castle:0.8)", [("a ", 0.8), ("red", 1.2), (" castle", 0.8)]),
    ("([castle])", [("castle", 1.0)]),
    ("(castle: 0.5 )", [("castle", 0.5)]),
    ("(castle:.5)", [("castle", 0.5)]),
    ("(castle:1e-1)", [("castle", 0.1)]),
    ("(ratio 16:9)", [("ratio 16", 9.0)]),  # a number after the last colon is a weight
    ("(a:b)", [("a:b", U)]),  # anything else is text
    (r"\(castle\)", [("(castle)", 1.0)]),
    (r"a \[b\] \\ c", [("a [b] \\ c", 1.0)]),
    ("castle)", [("castle)", 1.0)]),  # a stray closing bracket is text
    ("castle]", [("castle]", 1.0)]),
    ("(castle", [("castle", U)]),  # an unclosed bracket weights the rest
    ("a (b", [("a ", 1.0), ("b", U)]),
    ("[a)", [("a)", D)]),  # ")" does not close "["
    # the two kinds close apart, as A1111 keeps them (a review: ")" was text here and
    # the "(" weighted the rest of the prompt)
    ("(red [castle) fog]", [("red ", U), ("castle", 1.0), (" fog", D)]),
    ("[a (b] c)", [("a ", D), ("b", 1.0), (" c", U)]),
    ("(a [b:1.5) c]", [("a ", 1.5), ("b", 1.5 * D), (" c", D)]),
    ("(a:1.0)(b:1.0)", [("ab", 1.0)]),  # equal neighbours merge
    ("(a:0.727)", [("a", 0.727)]),  # what @wave_completed expands to
    # equal neighbours do not merge across a BREAK (joined, "BREAKdog" is no BREAK)
    ("x BREAK(dog:1)", [("x BREAK", 1.0), ("dog", 1.0)]),
    ("(cat BREAK)(dog)", [("cat BREAK", U), ("dog", U)]),
    ("a(b:1)BREAK c(d:1)", [("ab", 1.0), ("BREAK c", 1.0), ("d", 1.0)]),
    ("BRE(AK:1)", [("BRE", 1.0), ("AK", 1.0)]),  # nor into one A1111 never saw
]


@pytest.mark.parametrize(("text", "want"), CASES)
def test_parser_table(text, want):
    got = parse_weights(text)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [w for _, w in got] == pytest.approx([w for _, w in want], rel=1e-9)


def _a1111_weights(text):
    """Per-character weights as A1111's attention parser gives them, written here from its
    rules: one list of open brackets per kind; a bracket's factor multiplies, when it
    closes (or at the end, if it never does), every piece of text from where it opened;
    ``:number)`` closes the innermost round bracket with that number as its factor."""
    res = []
    opened = {"(": [], "[": []}

    def scale(start, factor):
        for piece in res[start:]:
            piece[1] *= factor

    for m in re.finditer(r"\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^()\[\]:]+|:", text):
        tok, number = m.group(0), m.group(1)
        if tok in "([":
            opened[tok].append(len(res))
        elif number is not None and opened["("]:
            scale(opened["("].pop(), float(number))
        elif tok == ")" and opened["("]:
            scale(opened["("].pop(), U)
        elif tok == "]" and opened["["]:
            scale(opened["["].pop(), D)
        else:
            res.append([tok, 1.0])
    for kind, factor in (("(", U), ("[", D)):
        for start in opened[kind]:
            scale(start, factor)
    return [(ch, w) for piece, w in res for ch in piece]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab ()[]:1", max_size=40))
def test_parser_weights_every_letter_as_a1111_does(text):
    """Against the rules of A1111's parser, written out in the test, on prompts of
    brackets of both kinds, crossed or not, closed or not, and weights."""
    want = _a1111_weights(text)
    try:
        got = [(ch, w) for seg, w in parse_weights(text) for ch in seg]
    except ValueError as e:  # a weight past +-100 ("(a:111)")
        assert "weights must be finite and within" in str(e)
        assert any(abs(w) > 100 for _, w in want)
        return
    assert [ch for ch, _ in got] == [ch for ch, _ in want]
    assert [w for _, w in got] == pytest.approx([w for _, w in want], rel=1e-9)


def test_parser_refuses_non_text():
    with pytest.raises(TypeError, match="prompt must be a str"):
        parse_weights(None)  # type: ignore[arg-type]
    # a weight that is not finite, or beyond +-100 (1e30 blacked out every frame)
    for text in ("(a:1e400)", "(a:-1e30)", "(" * 800 + "a", "(a:101)"):
        with pytest.raises(ValueError, match="weight"):
            parse_weights(text)
    assert parse_weights("(a:100)") == [("a", 100.0)]


def test_parser_deep_nesting():
    """Thousands of nested groups, each weight applied once (the parser re-weighted each
    group's segments at every close and multiplied the whole bracket stack for each
    segment: 120 KB of '(a ' took 20 s)."""
    d = 3000
    ((seg, w),) = parse_weights("(" * d + "a" + ":1.001)" * d)
    assert seg == "a" and w == pytest.approx(1.001**d, rel=1e-9)
    got = parse_weights("".join(f"(w{k} " for k in range(40)) + ")" * 40)
    assert [s for s, _ in got] == [f"w{k} " for k in range(40)]
    np.testing.assert_allclose([w for _, w in got], 1.1 ** np.arange(1, 41), rtol=1e-12)
    ((_, w),) = parse_weights("[" * 2000 + "(" * 2000 + "b")
    assert w == pytest.approx(1.0, rel=1e-9)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="BREAKx :()", max_size=12), st.text(alphabet="BREAKx :()", max_size=12))
def test_a_join_spells_break_as_the_whole_text_says(left, right):
    """The parser looks for a BREAK only a few characters either side of a join (so long
    runs of merges stay linear); that agrees with a search of the joined text."""
    from loopwave.prompt_weights import _BREAK_WORD, _spells_break

    if _BREAK_WORD.search(left) or _BREAK_WORD.search(right):
        return  # pieces holding a BREAK are never joined
    assert _spells_break(left, right) == bool(_BREAK_WORD.search(left + right))


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("BREAKx ()\t\n\u00a0\u2003")), max_size=30))
def test_split_breaks_is_the_regular_expressions_split(text):
    """split_breaks replaced re.split(r"\\s*\\bBREAK\\b\\s*"), whose leading \\s* made a long
    run of whitespace quadratic (a review: 22 s for 40,000 newlines)."""
    import re

    from loopwave.prompt_weights import split_breaks

    assert split_breaks(text) == re.split(r"\s*\bBREAK\b\s*", text)


def test_long_runs_of_whitespace_parse_in_linear_time():
    """From a review: a prompt with 40,000 newlines took 22 s to parse (BREAK's pattern),
    a schedule value with 100,000 spaces 31 s (its key's pattern), a @wave_ token with a
    missing comma and 3,200 spaces 31 s; all are bounded now (each well under a second)."""
    import time

    from loopwave.schedule import ScheduleError, parse_prompts
    from loopwave.settings import Settings

    def bounded(call, *args):
        t = time.perf_counter()
        try:
            call(*args)
        except (ValueError, ScheduleError):
            pass
        return time.perf_counter() - t

    assert bounded(parse_weights, "a cat," + "\n" * 200_000 + "a dog BREAK" + " " * 200_000) < 5
    long_value = {"version": 1, "render": {"cfg": "0: (1" + " " * 400_000 + "+1)"}}
    assert bounded(Settings.from_dict, {**long_value, "prompts": {"0": "a"}}) < 5
    wave = "(cat:@wave_completed(" + " " * 20_000 + "0.5 1))"
    assert bounded(parse_prompts, {0: wave}) < 5


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab :()[]\\.0123456789", max_size=40))
def test_parser_never_fails_and_keeps_every_letter(text):
    try:
        got = parse_weights(text)
    except ValueError as e:
        # the one refusal: a weight beyond +-MAX_WEIGHT, such as "(a:101)" or
        # nested "((a:9):9):9" (hypothesis finds these now and then)
        assert "weights must be finite and within" in str(e)
        return
    joined = "".join(s for s, _ in got)
    # brackets and weights may go, but every letter stays, in order
    assert [c for c in joined if c in "ab"] == [c for c in text if c in "ab"]
    assert all(np.isfinite(w) for _, w in got)


torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from loopwave.backends import smoke_backend  # noqa: E402
from loopwave.prompt_weights import encode_weighted  # noqa: E402


@pytest.fixture(scope="module")
def backend():
    return smoke_backend()


@pytest.mark.parametrize("text", ["a castle at dusk", "", "x" * 300])
def test_unweighted_prompts_encode_as_diffusers_does(backend, text):
    want, _ = backend.pipe.encode_prompt(text, "cpu", 1, False)
    if len(text) > 75:  # the smoke tokenizer: a token a byte
        with pytest.warns(UserWarning, match="prompt: the last 225 tokens are dropped"):
            got = encode_weighted(backend.pipe, text, "cpu")
    else:
        got = encode_weighted(backend.pipe, text, "cpu")
    assert got.shape == want.shape == (1, 77, 32)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def _red_weighted(pipe, weight):
    """(plain embedding, weighted one, the weight per position) of 'a red castle'."""
    plain = encode_weighted(pipe, "a red castle", "cpu")
    heavy = encode_weighted(pipe, f"a (red:{weight}) castle", "cpu")
    tok = pipe.tokenizer
    n_a = len(tok("a ", add_special_tokens=False).input_ids)
    n_red = len(tok("red", add_special_tokens=False).input_ids)
    w = torch.ones(77)
    w[1 + n_a : 1 + n_a + n_red] = weight  # after the start token and "a "
    return plain, heavy, w


def test_weights_scale_their_tokens(backend):
    plain, heavy, w = _red_weighted(backend.pipe, 1.5)
    assert torch.equal(encode_weighted(backend.pipe, "a (red:1.0) castle", "cpu"), plain)
    # the smoke encoder's hidden states have a mean of about 0 (random weights, a layer
    # norm without bias): no mean to restore, the states are only scaled
    assert abs(plain.mean()) < 1e-3 * plain.square().mean().sqrt()
    torch.testing.assert_close(heavy, plain * w[None, :, None], rtol=0, atol=0)


def test_weights_keep_the_mean_when_there_is_one():
    b = smoke_backend()
    with torch.no_grad():
        te = b.pipe.text_encoder  # (transformers 4 keeps the layers under text_model)
        getattr(te, "text_model", te).final_layer_norm.bias.fill_(0.5)  # a clear mean
    plain, heavy, w = _red_weighted(b.pipe, 1.5)
    # A1111: hidden states times the weights, then rescaled to the mean before weighting
    want = plain * w[None, :, None]
    want = want * (plain.mean() / want.mean())
    torch.testing.assert_close(heavy, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(heavy.mean(), plain.mean(), rtol=1e-5, atol=0)


def test_backend_caches_embeddings_and_weights_change_the_frame(backend):
    init = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    kw = {"negative": "fog", "strength": 0.6, "steps": 3, "cfg": 7.0, "seed": 5}
    before = backend.prompts_encoded
    a = backend.img2img(init, prompt="a red castle", **kw)
    b = backend.img2img(init, prompt="a red castle", **kw)
    assert backend.prompts_encoded - before == 2  # the prompt and the negative, once each
    np.testing.assert_array_equal(a, b)
    # the same tokens with another weight: the encoder output is reused, re-weighted
    c = backend.img2img(init, prompt="a (red:1.8) castle", **kw)
    assert backend.prompts_encoded - before == 2
    assert not np.array_equal(a, c)
    backend.img2img(init, prompt="a blue castle", **kw)
    assert backend.prompts_encoded - before == 3


def test_backend_refuses_bad_prompts(backend):
    init = np.zeros((32, 32, 3), np.uint8)
    kw = {"strength": 0.6, "steps": 3, "cfg": 7.0, "seed": 5}
    with pytest.raises(TypeError, match="prompt must be a str"):
        backend.img2img(init, prompt=None, negative="", **kw)
    with pytest.raises(TypeError, match="negative must be a str"):
        backend.img2img(init, prompt="a", negative=3, **kw)
    with pytest.raises(TypeError, match="init must be a numpy array"):
        backend.img2img([[0]], prompt="a", negative="", **kw)


class _CountingEncoder:
    """Counts the text encoder's forward calls (an oracle apart from the backend's own
    ``prompts_encoded``)."""

    def __init__(self, backend, monkeypatch):
        self.calls = 0
        enc = backend.pipe.text_encoder
        forward = enc.forward

        def counted(*args, **kwargs):
            self.calls += 1
            return forward(*args, **kwargs)

        monkeypatch.setattr(enc, "forward", counted)


def test_changing_weights_reuse_the_encoder_output(monkeypatch):
    b = smoke_backend()
    # what @wave_completed expands to: the same words, a new weight every frame
    texts = [f"a (red:{w}) castle" for w in (0.8, 1.1, 1.4)]
    want = [encode_weighted(b.pipe, t, "cpu") for t in texts]  # before counting
    enc = _CountingEncoder(b, monkeypatch)
    init = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    kw = {"negative": "fog", "strength": 0.6, "steps": 2, "cfg": 7.0, "seed": 1}
    frames = []
    for text, oracle in zip(texts, want, strict=True):
        frames.append(b.img2img(init, prompt=text, **kw))
        # each call still gets its own weights: the embedding used is the oracle's
        torch.testing.assert_close(b.embed(text), oracle, rtol=0, atol=0)
    assert enc.calls == 2  # "a red castle" once, "fog" once
    assert not np.array_equal(frames[0], frames[2])
    b.clear_prompt_cache()
    b.embed("fog")
    assert enc.calls == 3


def test_long_prompts_warn_naming_the_argument_once():
    import warnings

    from loopwave.backends import MAX_CHUNKS

    b = smoke_backend()
    cap = 75 * MAX_CHUNKS  # a token a byte
    init = np.zeros((32, 32, 3), np.uint8)
    kw = {"strength": 0.6, "steps": 2, "cfg": 7.0, "seed": 1}
    with pytest.warns(UserWarning, match=rf"^negative: the last 25 tokens .* at most {cap}"):
        b.img2img(init, prompt="a castle", negative="n" * (cap + 25), **kw)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # no help from Python's own once-per-place filter
        # a weight that changes every frame (as @wave does): new text, the same tokens
        for w in (0.8, 1.0, 1.2):
            b.img2img(init, prompt=f"(ivy:{w}) " + "p" * (cap + 1), negative="", **kw)
    long = [str(x.message) for x in seen if issubclass(x.category, UserWarning)]
    long = [m for m in long if "the model reads at most" in m]
    assert len(long) == 1 and long[0].startswith("prompt: the last 4 tokens"), long
    # the warning points at the line calling img2img (it pointed inside the call lock's
    # wrapper in backends.py) or embed, with guidance and without
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        b.img2img(init, prompt="q" * (cap + 9), negative="", **kw)
        b.img2img(init, prompt="s" * (cap + 9), negative="", **{**kw, "cfg": 1.0})
        b.embed("r" * (cap + 9))
    where = [x.filename for x in seen if "the model reads" in str(x.message)]
    assert where == [__file__] * 3, where


def _chunks(ids, n=77):
    return [ids[i : i + n] for i in range(0, len(ids), n)]


def test_long_prompts_are_cut_into_chunks_as_a1111_cuts_them(backend):
    """75 tokens a chunk between its own start and end tokens; a full chunk is cut after
    a comma at most 20 tokens from its end; BREAK ends a chunk (the smoke tokenizer makes
    a token of each byte, so counts are letters)."""
    from loopwave.prompt_weights import tokenize_weighted

    tok = backend.pipe.tokenizer
    bos, eos = tok.bos_token_id, tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos

    def tid(ch):
        (i,) = tok(ch, add_special_tokens=False).input_ids
        return i

    def layout(text, max_chunks=8):
        """Each chunk as its prompt text, after checking its frame of special tokens."""
        ids, weights, dropped = tokenize_weighted(tok, text, max_chunks=max_chunks)
        assert len(ids) == len(weights) and len(ids) % 77 == 0
        texts = []
        for c in _chunks(ids):
            assert c[0] == bos
            body = c[1:]
            k = body.index(eos)
            assert all(t == pad for t in body[k + 1 :])
            texts.append(tok.decode(body[:k]).replace(" ", ""))
        return texts, weights, dropped

    assert layout("a" * 100) == (["a" * 75, "a" * 25], (1.0,) * 154, 0)
    assert layout("a" * 100, 1)[0::2] == (["a" * 75], 25)  # one chunk: the first 75 kept
    assert layout("a" * 75)[0] == ["a" * 75]  # exactly full: no empty second chunk
    assert layout("")[0] == [""]
    # the comma rule: 20 tokens back at most, and never on the last chunk read
    assert layout("x" * 60 + "," + "y" * 30)[0] == ["x" * 60 + ",", "y" * 30]
    assert layout("x" * 55 + "," + "y" * 30)[0] == ["x" * 55 + ",", "y" * 30]
    assert layout("x" * 54 + "," + "y" * 30)[0] == ["x" * 54 + "," + "y" * 20, "y" * 10]
    assert layout("x" * 60 + "," + "y" * 30, 1)[0::2] == (["x" * 60 + "," + "y" * 14], 16)
    assert layout("x" * 74 + "," + "y" * 5)[0] == ["x" * 74 + ",", "y" * 5]  # comma last
    # a comma arriving at a full chunk starts the next one; the chunk is not cut back
    assert layout("x" * 60 + "," + "y" * 14 + "," + "z" * 5)[0] == [
        "x" * 60 + "," + "y" * 14,
        "," + "z" * 5,
    ]
    # BREAK: its own capital word only
    assert layout("a BREAK b")[0] == ["a", "b"]
    # (CLIP lower-cases: the words are still there)
    assert layout("aBREAKb, BREAKFAST, break")[0] == ["abreakb,breakfast,break"]
    assert layout("a BREAK")[0] == ["a"]
    assert layout("BREAK a")[0] == ["", "a"]
    assert layout("a BREAK BREAK b")[0] == ["a", "", "b"]
    assert layout("a BREAK BREAK")[0] == ["a", ""]
    assert layout("BREAK BREAK")[0] == ["", ""]
    # where no chunk is left to start, BREAK is ignored: nothing that fits is dropped
    assert layout("a BREAK b", 1)[0::2] == (["ab"], 0)
    assert layout("c BREAK " * 8 + "d")[0::2] == (["c"] * 7 + ["cd"], 0)
    # inside brackets too (A1111 would read "break" there as a word of weight -1.5)
    texts, w, _ = layout("(a BREAK b:1.5) c")
    assert texts == ["a", "bc"]
    assert w[1] == pytest.approx(1.5) and w[78] == pytest.approx(1.5) and w[79] == 1.0
    # BREAK is found in each piece of text before equal weights merge, as A1111 finds it
    # (merged first, "x BREAKdog" read as one word and the chunk went on)
    assert layout("x BREAK(dog:1)")[0] == ["x", "dog"]
    assert layout("(cat BREAK)(dog)")[0] == ["cat", "dog"]
    assert layout("a(b:1)BREAK c(d:1)")[0] == ["ab", "cd"]
    assert layout("BRE(AK:1)")[0] == ["break"]  # a word across brackets is no BREAK
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="max_chunks"):
            tokenize_weighted(tok, "a", max_chunks=bad)


def test_each_chunk_encodes_as_diffusers_encodes_it_alone(backend):
    """The oracle: diffusers' encode_prompt of each chunk's text on its own, joined. (Two
    words: CLIP marks a word's last token, so "a" * 75 + "b" * 30 as one word would end
    its first chunk on another token than "a" * 75 does.)"""
    text = "a" * 75 + " " + "b" * 30
    got = encode_weighted(backend.pipe, text, "cpu", max_chunks=2)
    parts = [backend.pipe.encode_prompt(t, "cpu", 1, False)[0] for t in ("a" * 75, "b" * 30)]
    assert got.shape == (1, 154, 32)
    torch.testing.assert_close(got, torch.cat(parts, dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(backend.embed(text), got, rtol=0, atol=0)


def test_weights_keep_each_chunks_own_mean():
    b = smoke_backend()
    with torch.no_grad():
        te = b.pipe.text_encoder  # (transformers 4 keeps the layers under text_model)
        getattr(te, "text_model", te).final_layer_norm.bias.fill_(0.5)  # a clear mean
    plain = encode_weighted(b.pipe, "b" * 75 + " c " + "d" * 10, "cpu", max_chunks=2)
    heavy = encode_weighted(b.pipe, "b" * 75 + " (c:1.5) " + "d" * 10, "cpu", max_chunks=2)
    # A1111 rescales chunk by chunk: the first chunk holds no weight and stays as it is
    torch.testing.assert_close(heavy[:, :77], plain[:, :77], rtol=0, atol=0)
    w = torch.ones(77)
    w[1] = 1.5  # "c", right after the second chunk's start token
    want = plain[:, 77:] * w[None, :, None]
    want = want * (plain[:, 77:].mean() / want.mean())
    torch.testing.assert_close(heavy[:, 77:], want, rtol=1e-5, atol=1e-6)
    # and the backend's own path (its cache, its chunk count) weights the same way
    torch.testing.assert_close(b.embed("b" * 75 + " (c:1.5) " + "d" * 10), heavy, rtol=0, atol=0)


def test_guidance_pads_the_shorter_prompt_with_empty_chunks():
    b = smoke_backend()
    long, init = "x" * 75 + "y" * 20, np.zeros((32, 32, 3), np.uint8)
    for prompt, negative in ((long, "fog"), ("fog", long)):
        cond, uncond = b._guided_pair(prompt, negative)
        assert cond.shape == uncond.shape == (1, 154, 32)
        short = uncond if prompt == long else cond
        torch.testing.assert_close(short[:, :77], b.embed("fog"), rtol=0, atol=0)
        torch.testing.assert_close(short[:, 77:], b.embed(""), rtol=0, atol=0)
    # and diffusers takes the pair: the tokens past 75 reach the frame
    kw = {"negative": "fog", "strength": 0.8, "steps": 3, "cfg": 7.0, "seed": 2}
    a = b.img2img(init, prompt=long, **kw)
    c = b.img2img(init, prompt="x" * 75 + "z" * 20, **kw)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, b.img2img(init, prompt=long, **{**kw, "negative": "fog, " + long}))


def test_no_guidance_does_not_encode_the_negative(monkeypatch):
    b = smoke_backend()
    enc = _CountingEncoder(b, monkeypatch)
    init = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    kw = {"prompt": "a castle", "strength": 0.6, "steps": 2, "cfg": 1.0, "seed": 1}
    a = b.img2img(init, negative="fog", **kw)
    c = b.img2img(init, negative="something else entirely", **kw)
    assert enc.calls == 1  # the prompt only
    np.testing.assert_array_equal(a, c)  # and the negative could not matter


def test_the_prompt_cache_keeps_the_most_recently_used_sequences(monkeypatch):
    """The text encoder's output is kept for the last EMBED_CACHE distinct token
    sequences, least recently used out first."""
    from loopwave.backends import EMBED_CACHE

    b = smoke_backend()
    enc = _CountingEncoder(b, monkeypatch)
    words = ["castle", "forest", "river", "tower", "meadow", "harbour", "desert", "glacier",
             "canyon", "island", "valley", "temple", "garden", "bridge", "market", "lantern",
             "orchard"]  # fmt: skip
    assert len(words) == EMBED_CACHE + 1
    for w in words[:EMBED_CACHE]:
        b.embed(f"a {w}")
    assert enc.calls == EMBED_CACHE
    b.embed(f"a {words[0]}")  # a hit, and now the most recent
    assert enc.calls == EMBED_CACHE
    b.embed(f"a {words[-1]}")  # one more: the least recent (words[1]) goes
    assert enc.calls == EMBED_CACHE + 1
    b.embed(f"a {words[0]}")
    assert enc.calls == EMBED_CACHE + 1  # kept: it was used after words[1]
    b.embed(f"a {words[1]}")
    assert enc.calls == EMBED_CACHE + 2  # encoded again


class _Records(logging.Handler):
    """Keeps the messages logged to it."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_long_prompts_raise_no_transformers_length_warning(backend, monkeypatch):
    """transformers logs "Token indices sequence length is longer than the specified
    maximum sequence length for this model (80 > 77)..." for a text over 77 tokens; the
    prompt's chunks hold such texts, so that warning is wrong here and must not show (it
    did on every long prompt). transformers logs it once per tokenizer: the guard is
    reset before each call, and the same tokenizer, called directly, still logs it."""
    from loopwave.prompt_weights import tokenize_weighted

    tok = backend.pipe.tokenizer
    logger = logging.getLogger("transformers")  # transformers' loggers may not propagate
    records = _Records()
    level = logger.level
    logger.setLevel(logging.WARNING)  # (setLevel: the loggers below cache their level)
    logger.addHandler(records)
    too_long = "Token indices sequence length is longer"
    text = "x" * 100 + " (y:1.2) " + "z" * 90
    try:
        monkeypatch.setattr(tok, "deprecation_warnings", {}, raising=False)
        plain = tok("x" * 100, add_special_tokens=False).input_ids
        assert any(too_long in m for m in records.messages), records.messages  # it is seen
        records.messages.clear()
        monkeypatch.setattr(tok, "deprecation_warnings", {}, raising=False)
        ids, _, dropped = tokenize_weighted(tok, text, max_chunks=4)
        monkeypatch.setattr(tok, "deprecation_warnings", {}, raising=False)
        encode_weighted(backend.pipe, text, "cpu", max_chunks=4)
        assert not any(too_long in m for m in records.messages), records.messages
        # the same ids as the tokenizer's own (a token a byte: the x's fill chunk 1)
        assert dropped == 0 and list(ids[1:76]) == plain[:75]
        assert list(ids[78:103]) == plain[75:]
        # and transformers' logging is left as it was: a direct call still warns
        monkeypatch.setattr(tok, "deprecation_warnings", {}, raising=False)
        tok("x" * 100, add_special_tokens=False)
        assert any(too_long in m for m in records.messages), records.messages
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)


def test_weights_whose_mean_changes_sign_are_not_rescaled():
    torch = pytest.importorskip("torch")
    from loopwave.prompt_weights import apply_weights

    h = torch.rand(1, 4, 8) + 0.5  # a clear positive mean
    got = apply_weights(h, (-1.0, -1.0, -1.0, -1.0))
    torch.testing.assert_close(got, -h)  # the ratio (-1) would undo the weights


def test_padding_tokens_keep_weight_one():
    from loopwave.backends import smoke_backend
    from loopwave.prompt_weights import tokenize_weighted

    tok = smoke_backend().pipe.tokenizer
    ids, w, dropped = tokenize_weighted(tok, "a (castle:1.5)")
    n = len(tok("a ", add_special_tokens=False).input_ids)
    m = len(tok("castle", add_special_tokens=False).input_ids)
    want = [1.0] * (1 + n) + [1.5] * m + [1.0] * (77 - 1 - n - m)
    assert list(w) == pytest.approx(want)


def test_a_mean_under_the_floor_is_not_restored():
    torch = pytest.importorskip("torch")
    from loopwave.prompt_weights import apply_weights

    h = torch.randn(1, 4, 64)
    h = h - h.mean()
    rms = h.square().mean().sqrt()
    h = h + 1e-4 * rms  # a mean at 1e-4 of the RMS: noise, below MEAN_FLOOR (1e-3)
    w = (1.5, 1.0, 1.0, 1.0)
    want = h * torch.tensor(w).reshape(1, 4, 1)
    torch.testing.assert_close(apply_weights(h, w), want, rtol=0, atol=1e-7)


def test_a_weight_beside_control_whitespace():
    """U+001C-U+001F are whitespace to the weight pattern but not to float(): the render
    stopped with float()'s own "could not convert string to float"."""
    for text in ("(cat:\x1c1.2)", "(cat:1.2\x1f)", "(cat:\t1.2\n)"):
        assert parse_weights(text) == [("cat", pytest.approx(1.2))]
