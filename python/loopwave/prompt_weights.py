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

A closing bracket without its opening bracket is kept as text; an opening
bracket never closed weights the rest of the prompt (as A1111 does). ``(x:w)``
needs a number after the last colon; ``(a:b)`` with ``b`` not a number is the
literal ``a:b`` at 1.1.

:func:`encode_weighted` turns a weighted prompt into the text encoder's hidden
states the way A1111 does: each segment is tokenized on its own, the token ids
are joined (at most ``model_max_length - 2`` of them, between the start and end
tokens, padded; a longer prompt is cut there, with a ``UserWarning`` saying how
many tokens were dropped), encoded once, each token's hidden state is multiplied
by its weight, and the whole is rescaled to the mean it had before weighting
(unless either mean is within :data:`MEAN_FLOOR` of the RMS of zero, or they
differ in sign, as with random-weight encoders whose final layer norm has no
bias: the ratio would be noise). The weighting is done in float32 whatever the
encoder's dtype. A prompt without weights gives exactly what diffusers'
``encode_prompt`` gives.

The steps are also available apart — :func:`tokenize_weighted`,
:func:`encode_ids`, :func:`apply_weights`, :func:`warn_dropped` — so a caller
can cache the encoder's output by token ids and re-weight it per call: a prompt
whose weights change every frame (``@wave_completed``) then runs the text
encoder once (and warns once about a cut, not every frame).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

__all__ = [
    "apply_weights",
    "encode_ids",
    "encode_weighted",
    "parse_weights",
    "tokenize_weighted",
    "warn_dropped",
]

UP, DOWN = 1.1, 1 / 1.1
#: the largest prompt weight allowed (A1111 users rarely go past 2; 1e30 gives black frames)
MAX_WEIGHT = 100.0
#: means below this fraction of the hidden states' RMS are not restored (see encode_weighted)
MEAN_FLOOR = 1e-3
_NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")


def _scaled(
    out: list[tuple[str, float]], scales: list[tuple[int, int, float]]
) -> list[tuple[str, float]]:
    """``out`` with each closed group's factor applied to its segments. Groups nest (a
    stack closed them), and each was recorded when it closed, inner before outer, so
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


def parse_weights(text: str) -> list[tuple[str, float]]:
    """``text`` as ``(segment, weight)`` pairs in order, adjacent equal weights merged and
    empty segments dropped (see the module docs for the syntax)."""
    if not isinstance(text, str):
        raise TypeError(f"prompt must be a str; got {type(text).__name__}")
    out: list[tuple[str, float]] = []
    # open brackets: (kind, index in `out` where the group starts, product of the
    # bracket weights so far), so a segment's weight is read off the top, not
    # multiplied up through the whole stack (deep nesting was quadratic)
    stack: list[tuple[str, int, float]] = []
    # explicit weights of closed groups, (start, end, factor) over `out`, applied once
    # at the end rather than to the group's segments at each close (also quadratic)
    scales: list[tuple[int, int, float]] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append(("".join(buf), stack[-1][2] if stack else 1.0))
            buf.clear()

    def close(factor: float | None) -> None:
        """Close the innermost bracket; an explicit weight re-weights what it held."""
        flush()
        _, start, _ = stack.pop()
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
            above = stack[-1][2] if stack else 1.0
            stack.append((ch, len(out), above * (UP if ch == "(" else DOWN)))
        elif ch == ")" and stack and stack[-1][0] == "(":
            # "(text:1.3)": the explicit weight is after the last colon of the group
            seg = "".join(buf)
            head, colon, tail = seg.rpartition(":")
            factor = None
            if colon and _NUMBER.fullmatch(tail):
                buf[:] = list(head)
                factor = float(tail)
            close(factor)
        elif ch == "]" and stack and stack[-1][0] == "[":
            close(None)
        else:
            buf.append(ch)
        i += 1
    flush()
    out = _scaled(out, scales)
    merged: list[tuple[str, float]] = []
    for s, w in out:
        if not s:
            continue
        if not abs(w) <= MAX_WEIGHT:  # also NaN; a huge weight blacks out every frame
            raise ValueError(
                f"prompt: the weight of {s[:40]!r} is {w:.4g}; weights must be finite and "
                f"within +-{MAX_WEIGHT:g} (check the (text:weight) numbers and the nesting)"
            )
        if merged and abs(merged[-1][1] - w) < 1e-12:
            merged[-1] = (merged[-1][0] + s, w)
        else:
            merged.append((s, w))
    return merged


def _token_ids(tokenizer: Any, text: str) -> tuple[list[int], list[float]]:
    """Token ids of a weighted prompt (without start/end tokens) and their weights."""
    ids: list[int] = []
    weights: list[float] = []
    for seg, w in parse_weights(text):
        seg_ids = tokenizer(seg, add_special_tokens=False).input_ids
        ids += seg_ids
        weights += [w] * len(seg_ids)
    return ids, weights


def tokenize_weighted(tokenizer: Any, text: str) -> tuple[tuple[int, ...], tuple[float, ...], int]:
    """The encoder's input for a weighted prompt: ``model_max_length`` token ids (start,
    at most ``model_max_length - 2`` prompt tokens, end, padding), a weight per id, and
    how many prompt tokens did not fit and were dropped (see :func:`warn_dropped`)."""
    tok = tokenizer
    n = tok.model_max_length
    ids, weights = _token_ids(tok, text)
    dropped = max(0, len(ids) - (n - 2))
    ids, weights = ids[: n - 2], weights[: n - 2]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    full = [tok.bos_token_id, *ids, tok.eos_token_id]
    full += [pad] * (n - len(full))
    w = [1.0, *weights, 1.0] + [1.0] * (n - 2 - len(weights))
    return tuple(full), tuple(w), dropped


def warn_dropped(arg: str, text: str, dropped: int, read: int, *, stacklevel: int = 2) -> None:
    """The ``UserWarning`` for a prompt cut to the encoder's window, naming ``arg``."""
    warnings.warn(
        f"{arg}: {read + dropped} tokens, but the text encoder reads {read}; the last "
        f"{dropped} are dropped ({text[:40]!r}...)",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def encode_ids(pipe: Any, ids: tuple[int, ...], device: Any) -> Any:
    """The text encoder's hidden states for token ids, unweighted: ``(1, n, dim)``."""
    import torch

    with torch.inference_mode():
        return pipe.text_encoder(torch.tensor([list(ids)], device=device), attention_mask=None)[0]


def apply_weights(hidden: Any, weights: tuple[float, ...]) -> Any:
    """Hidden states scaled by per-token weights, the mean restored (see the module docs);
    computed in float32 and returned in ``hidden``'s dtype. Unweighted: ``hidden`` itself."""
    import torch

    if all(x == 1.0 for x in weights):
        return hidden
    with torch.inference_mode():
        h = hidden.float()
        before = h.mean()
        h = h * torch.tensor(weights, device=h.device, dtype=torch.float32)[None, :, None]
        after = h.mean()
        rms = h.square().mean().sqrt()
        # a mean near 0 (a final layer norm without bias: random weights) cannot be
        # restored by a ratio; the weighted states are then left as they are. Chosen on
        # the device (no `if` on a tensor): this runs every frame, and must not wait
        restorable = (torch.minimum(before.abs(), after.abs()) > MEAN_FLOOR * rms) & (
            before * after > 0
        )
        h = h * torch.where(restorable, before / after, torch.ones_like(before))
        return h.to(hidden.dtype)


def encode_weighted(pipe: Any, text: str, device: Any, *, arg: str = "prompt") -> Any:
    """The text encoder's hidden states for a weighted prompt: ``(1, 77, dim)`` on ``device``
    in the encoder's dtype (see the module docs; ``arg`` names the prompt in warnings)."""
    ids, weights, dropped = tokenize_weighted(pipe.tokenizer, text)
    if dropped:
        warn_dropped(arg, text, dropped, pipe.tokenizer.model_max_length - 2)
    return apply_weights(encode_ids(pipe, ids, device), weights)
