"""Prompt weights in the A1111 syntax, and prompt embeddings that honour them.

The syntax (what people who make these videos write, and what the seed's
``@wave_completed(a,b)`` tokens expand to):

==========================  =========================================
``a castle``                every token at weight 1
``(castle:1.3)``            ``castle`` at 1.3
``(castle)``                1.1; ``((castle))`` 1.21
``[castle]``                1 / 1.1
``(a (red:1.5) castle:0.8)`` nested weights multiply: ``red`` at 1.2
``\\(castle\\)``              literal brackets (backslash escapes ``( ) [ ] \\``)
==========================  =========================================

A closing bracket without an open bracket of its kind is kept as text; the two
kinds close apart, as A1111 keeps them (``(a [b) c]`` is ``a`` at 1.1, ``b`` at 1, ``c``
at 1 / 1.1); an opening bracket never closed weights the rest of the prompt (as A1111
does). ``(x:w)``
needs a number after the last colon; ``(a:b)`` with ``b`` not a number is the
literal ``a:b`` at 1.1.

Long prompts are split into chunks as A1111 splits them: each chunk holds at most
``model_max_length - 2`` tokens (75 for Stable Diffusion's CLIP) between its own start and
end tokens, padded; a full chunk whose last comma lies within :data:`COMMA_BACKTRACK`
tokens of its end is cut after that comma, the rest moving to the next chunk; the word
``BREAK`` (capitals, a word of its own within its piece of text between brackets,
found before equal weights are merged, as A1111 finds it: ``x BREAK(dog:1)`` ends a
chunk after ``x``) ends a chunk there. Each chunk is encoded on its own and the hidden
states are joined along the token axis, so the UNet attends to all of them.
``max_chunks`` says how many chunks the model reads (1 by default, as diffusers'
``encode_prompt``; :class:`loopwave.backends.DiffusersBackend` reads up to
:data:`loopwave.backends.MAX_CHUNKS`, a UNet exported with a fixed 77-token input one).
Where no chunk is left to start, ``BREAK`` is ignored and a full chunk is not cut back to
its comma, so nothing that fits is dropped; tokens past the last chunk are dropped with a
``UserWarning`` saying how many. Two departures from A1111: ``BREAK`` inside brackets
ends a chunk too (A1111 multiplies its marker by the bracket's weight and then reads it
as the word "break" at a negative weight), and a ``BREAK`` with no chunk left is ignored
(A1111 has no limit on chunks).

:func:`encode_weighted` turns a weighted prompt into the text encoder's hidden
states the way A1111 does: each segment is tokenized on its own, the token ids
are joined and cut into chunks as above, each chunk is encoded, each token's hidden
state is multiplied by its weight, and each chunk is rescaled to the mean it had before
weighting (unless either mean is within :data:`MEAN_FLOOR` of the chunk's RMS of zero, or
they differ in sign, as with random-weight encoders whose final layer norm has no
bias: the ratio would be noise). The weighting is done in float32 whatever the
encoder's dtype. A prompt without weights that fits one chunk gives exactly what
diffusers' ``encode_prompt`` gives.

The steps are also available apart — :func:`tokenize_weighted`,
:func:`encode_ids`, :func:`apply_weights`, :func:`warn_dropped` — so a caller
can cache the encoder's output by token ids and re-weight it per call: a prompt
whose weights change every frame (``@wave_completed``) then runs the text
encoder once (and warns once about a cut, not every frame).
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

__all__ = [
    "apply_weights",
    "encode_ids",
    "encode_weighted",
    "parse_weights",
    "tokenize_weighted",
    "tokens_read",
    "warn_dropped",
]

UP, DOWN = 1.1, 1 / 1.1
#: the largest prompt weight allowed (A1111 users rarely go past 2; 1e30 gives black frames)
MAX_WEIGHT = 100.0
#: means below this fraction of the hidden states' RMS are not restored (see encode_weighted)
MEAN_FLOOR = 1e-3
#: a full chunk is cut after its last comma when that comma is at most this many tokens
#: from the chunk's end (A1111's default); 0 turns the rule off
COMMA_BACKTRACK = 20
#: A1111's chunk break: the capital word BREAK, with the spaces around it
_BREAK_WORD = re.compile(r"\bBREAK\b")


def split_breaks(text: str) -> list[str]:
    r"""``text`` split at each ``BREAK`` word, the whitespace on either side of it dropped:
    ``re.split(r"\s*\bBREAK\b\s*", text)``, in linear time (that pattern's leading
    ``\s*`` tried again at every place of a long run of spaces: 22 s for a prompt with
    40,000 newlines in it)."""
    parts: list[str] = []
    start = 0
    for m in _BREAK_WORD.finditer(text):
        # the run of whitespace right before BREAK goes with it (none is left there when
        # it follows the last BREAK, whose trailing run was dropped)
        parts.append(text[start : m.start()].rstrip())
        start = m.end()
        while start < len(text) and text[start].isspace():
            start += 1
    parts.append(text[start:])
    return parts


_NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")


def _scaled(
    out: list[tuple[str, float]], scales: list[tuple[int, int, float]]
) -> list[tuple[str, float]]:
    """``out`` with each closed group's factor applied to its segments. Groups nest (round
    brackets, which one stack closed), and each was recorded when it closed, inner before outer, so
    sorting by start (outer first where starts tie) and walking the segments with a
    stack of the groups that hold them gives each segment its factors' product in one
    pass."""
    if not scales:
        return out
    order = sorted(range(len(scales)), key=lambda k: (scales[k][0], -k))
    res: list[tuple[str, float]] = []
    held: list[tuple[int, float]] = []  # (end, product of the factors down to this group)
    nxt = 0
    for j, (seg, w) in enumerate(out):
        while held and held[-1][0] <= j:
            held.pop()
        while nxt < len(order) and scales[order[nxt]][0] <= j:
            _, end, f = scales[order[nxt]]
            held.append((end, f * held[-1][1] if held else f))
            nxt += 1
        res.append((seg, w * held[-1][1]) if held else (seg, w))
    return res


def _bracket_weight(n: int) -> float:
    """``UP ** n`` (``DOWN`` is ``1 / UP``), infinite where it overflows (the weight
    check then refuses it)."""
    try:
        return UP**n
    except OverflowError:
        return math.inf


def parse_weights(text: str, *, arg: str = "prompt") -> list[tuple[str, float]]:
    """``text`` as ``(segment, weight)`` pairs in order, adjacent equal weights merged
    (but not across a ``BREAK``: each segment's BREAKs are the prompt's) and empty segments
    dropped (see the module docs for the syntax); errors name ``arg``."""
    if not isinstance(text, str):
        raise TypeError(f"{arg} must be a str; got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate, e.g. "\ud800" in a JSON file
        raise ValueError(
            f"{arg}: not valid text ({e.reason} at character {e.start}: {text[e.start]!r})"
        ) from None
    out: list[tuple[str, float]] = []
    # open brackets of each kind, by where their group starts in `out`: the two kinds
    # close apart, as A1111 keeps them ("(a [b) c]": a at 1.1, b at 1, c at 1/1.1), so a
    # segment's weight is 1.1 to the number of open round brackets less the open square
    # ones (read off the counts, not multiplied up through them: deep nesting was
    # quadratic)
    opened: dict[str, list[int]] = {"(": [], "[": []}
    # explicit weights of closed groups, (start, end, factor) over `out`, applied once
    # at the end rather than to the group's segments at each close (also quadratic)
    scales: list[tuple[int, int, float]] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append(("".join(buf), _bracket_weight(len(opened["("]) - len(opened["["]))))
            buf.clear()

    def close(kind: str, factor: float | None) -> None:
        """Close the innermost bracket of ``kind``; an explicit weight re-weights what it
        held."""
        flush()
        start = opened[kind].pop()
        if factor is not None and start < len(out):
            # the bracket's 1.1 was applied while the group was open
            scales.append((start, len(out), factor / UP))

    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "()[]\\":
            buf.append(text[i + 1])
            i += 2
            continue
        if ch in "([":
            flush()
            opened[ch].append(len(out))
        elif ch == ")" and opened["("]:
            # "(text:1.3)": the explicit weight is after the last colon of the group
            seg = "".join(buf)
            head, colon, tail = seg.rpartition(":")
            factor = None
            if colon and _NUMBER.fullmatch(tail):
                buf[:] = list(head)
                factor = float(tail.strip())  # (float() keeps \x1c-\x1f, which \s takes)
            close("(", factor)
        elif ch == "]" and opened["["]:
            close("[", None)
        else:
            buf.append(ch)
        i += 1
    flush()
    out = _scaled(out, scales)
    merged: list[tuple[str, float]] = []
    held = False  # whether merged[-1] holds a BREAK
    for s, w in out:
        if not s:
            continue
        if not abs(w) <= MAX_WEIGHT:  # also NaN; a huge weight blacks out every frame
            raise ValueError(
                f"{arg}: the weight of {s[:40]!r} is {w:.4g}; weights must be finite and "
                f"within +-{MAX_WEIGHT:g} (check the (text:weight) numbers and the nesting)"
            )
        # A1111 finds BREAK in each piece of text before it merges equal weights: a
        # piece holding one is not joined to its neighbours ("x BREAK(dog:1)" ends a
        # chunk after x; joined, "BREAKdog" is no word of its own), nor are two pieces
        # whose join spells one ("BRE(AK:1)" is no BREAK to A1111), so each segment's
        # BREAKs are the prompt's
        has = _BREAK_WORD.search(s) is not None
        if (
            merged
            and abs(merged[-1][1] - w) < 1e-12
            and not (held or has or _spells_break(merged[-1][0], s))
        ):
            merged[-1] = (merged[-1][0] + s, w)
        else:
            merged.append((s, w))
            held = has
    return merged


def _spells_break(left: str, right: str) -> bool:
    """Whether ``left + right`` has a ``BREAK`` across the join (a few characters either
    side are enough to tell, so a long run of merges stays linear)."""
    j = min(len(left), 5)
    return any(m.start() < j < m.end() for m in _BREAK_WORD.finditer(left[-5:] + right[:5]))


def _token_ids(tokenizer: Any, text: str, arg: str) -> tuple[list[int], list[float], list[int]]:
    """Token ids of a weighted prompt (without start/end tokens), their weights, and the
    positions (into the ids) where a ``BREAK`` ends a chunk, in order."""
    ids: list[int] = []
    weights: list[float] = []
    breaks: list[int] = []
    for seg, w in parse_weights(text, arg=arg):
        for k, part in enumerate(split_breaks(seg)):
            if k:
                breaks.append(len(ids))
            if part:
                # verbose=False: no "sequence length is longer than the specified maximum"
                # from transformers for a part over 77 tokens; the chunks here hold them
                part_ids = tokenizer(part, add_special_tokens=False, verbose=False).input_ids
                ids += part_ids
                weights += [w] * len(part_ids)
    return ids, weights, breaks


def _comma_id(tokenizer: Any) -> int | None:
    """The id of a lone comma, if the tokenizer makes it one token."""
    ids = tokenizer(",", add_special_tokens=False).input_ids
    return ids[0] if len(ids) == 1 else None


def _split_chunks(
    ids: list[int],
    weights: list[float],
    breaks: list[int],
    size: int,
    comma: int | None,
    max_chunks: int,
) -> list[tuple[list[int], list[float]]]:
    """The tokens cut into chunks of at most ``size`` (see the module docs); chunks past
    ``max_chunks`` are returned too, for the caller to count what it drops. Where no chunk
    is left to start, a ``BREAK`` is ignored (the words after it go on in the chunk) and a
    full chunk is not cut back to a comma: either would drop words that fit."""
    chunks: list[tuple[list[int], list[float]]] = []
    cur: list[int] = []
    cur_w: list[float] = []
    comma_at = -1  # where in `cur` the last comma is

    def close() -> None:
        nonlocal cur, cur_w, comma_at
        chunks.append((cur, cur_w))
        cur, cur_w, comma_at = [], [], -1

    def room() -> bool:
        """Whether a chunk after the current one is read."""
        return len(chunks) + 1 < max_chunks

    b = 0
    for p, (t, w) in enumerate(zip(ids, weights, strict=True)):
        while b < len(breaks) and breaks[b] == p:
            if room():
                close()  # an empty chunk, too, for a BREAK right after another
            b += 1
        if len(cur) == size:
            back = len(cur) - comma_at
            # a comma arriving at a full chunk starts the next one (no cut back)
            if t != comma and comma_at >= 0 and back <= COMMA_BACKTRACK and room():
                rest, rest_w = cur[comma_at + 1 :], cur_w[comma_at + 1 :]
                del cur[comma_at + 1 :], cur_w[comma_at + 1 :]
                close()
                cur, cur_w = rest, rest_w
            else:
                close()
        if t == comma:
            comma_at = len(cur)
        cur.append(t)
        cur_w.append(w)
    for _ in breaks[b:]:  # BREAKs at the very end: each closes a chunk, as A1111's do
        if room():
            close()
    if cur or not chunks:
        close()
    return chunks


def tokenize_weighted(
    tokenizer: Any, text: str, *, max_chunks: int = 1, arg: str = "prompt"
) -> tuple[tuple[int, ...], tuple[float, ...], int]:
    """The encoder's input for a weighted prompt: ``model_max_length`` token ids per chunk
    (start, at most ``model_max_length - 2`` prompt tokens, end, padding; at most
    ``max_chunks`` chunks, see the module docs), a weight per id, and how many prompt
    tokens did not fit and were dropped (see :func:`warn_dropped`); errors name ``arg``."""
    if isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 1:
        raise ValueError(f"max_chunks must be an int >= 1; got {max_chunks!r}")
    tok = tokenizer
    n = tok.model_max_length
    ids, weights, breaks = _token_ids(tok, text, arg)
    chunks = _split_chunks(ids, weights, breaks, n - 2, _comma_id(tok), max_chunks)
    dropped = sum(len(c) for c, _ in chunks[max_chunks:])
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    full: list[int] = []
    w: list[float] = []
    for c, cw in chunks[:max_chunks]:
        full += [tok.bos_token_id, *c, tok.eos_token_id] + [pad] * (n - 2 - len(c))
        w += [1.0, *cw, 1.0] + [1.0] * (n - 2 - len(c))
    return tuple(full), tuple(w), dropped


def warn_dropped(arg: str, text: str, dropped: int, read: int, *, stacklevel: int = 2) -> None:
    """The ``UserWarning`` for a prompt cut to what the model reads (``read`` tokens at
    most), naming ``arg``."""
    what = "token is" if dropped == 1 else f"{dropped} tokens are"
    warnings.warn(
        f"{arg}: the last {what} dropped: the model reads at most {read} prompt tokens "
        f"({text[:40]!r}...)",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def tokens_read(tokenizer: Any, max_chunks: int) -> int:
    """The most prompt tokens ``max_chunks`` chunks hold."""
    return max_chunks * (int(tokenizer.model_max_length) - 2)


def encode_ids(pipe: Any, ids: tuple[int, ...], device: Any) -> Any:
    """The text encoder's hidden states for token ids, unweighted: ``(1, n, dim)``; ids
    longer than ``model_max_length`` are chunks of that length (as
    :func:`tokenize_weighted` makes them), encoded each on its own in one batch and
    joined along the token axis."""
    import torch

    n = pipe.tokenizer.model_max_length
    rows = [list(ids[i : i + n]) for i in range(0, len(ids), n)]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"ids: {len(ids)} ids are not whole chunks of {n}")
    with torch.inference_mode():
        out = pipe.text_encoder(torch.tensor(rows, device=device), attention_mask=None)[0]
        return out.reshape(1, -1, out.shape[-1])


def apply_weights(hidden: Any, weights: tuple[float, ...], *, chunk: int | None = None) -> Any:
    """Hidden states scaled by per-token weights, each chunk of ``chunk`` tokens (default:
    all of them, one chunk) brought back to its mean (see the module docs); computed in
    float32 and returned in ``hidden``'s dtype. Unweighted: ``hidden`` itself."""
    import torch

    if all(x == 1.0 for x in weights):
        return hidden
    n = len(weights) if chunk is None else chunk
    if n < 1 or len(weights) % n or hidden.shape[1] != len(weights):
        raise ValueError(
            f"weights: {len(weights)} weights for {hidden.shape[1]} hidden states in chunks of {n}"
        )
    with torch.inference_mode():
        h = hidden.float().reshape(-1, n, hidden.shape[-1])  # (chunks, tokens, dim)
        per_chunk = (1, 2)
        before = h.mean(per_chunk, keepdim=True)
        h = h * torch.tensor(weights, device=h.device, dtype=torch.float32).reshape(-1, n, 1)
        after = h.mean(per_chunk, keepdim=True)
        rms = h.square().mean(per_chunk, keepdim=True).sqrt()
        # a mean near 0 (a final layer norm without bias: random weights) cannot be
        # restored by a ratio; the weighted states are then left as they are. Chosen on
        # the device (no `if` on a tensor): this runs every frame, and must not wait
        restorable = (torch.minimum(before.abs(), after.abs()) > MEAN_FLOOR * rms) & (
            before * after > 0
        )
        h = h * torch.where(restorable, before / after, torch.ones_like(before))
        return h.reshape(hidden.shape).to(hidden.dtype)


def encode_weighted(
    pipe: Any, text: str, device: Any, *, arg: str = "prompt", max_chunks: int = 1
) -> Any:
    """The text encoder's hidden states for a weighted prompt: ``(1, 77 k, dim)`` for ``k``
    chunks (at most ``max_chunks``) on ``device`` in the encoder's dtype (see the module
    docs; ``arg`` names the prompt in warnings and errors)."""
    ids, weights, dropped = tokenize_weighted(pipe.tokenizer, text, max_chunks=max_chunks, arg=arg)
    if dropped:
        warn_dropped(arg, text, dropped, tokens_read(pipe.tokenizer, max_chunks))
    n = pipe.tokenizer.model_max_length
    return apply_weights(encode_ids(pipe, ids, device), weights, chunk=n)
