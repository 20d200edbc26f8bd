"""img2img backends: one small interface, diffusers behind it, and an embedded smoke model.

:class:`Img2Img` is the interface the renderer calls: init image, prompt,
negative prompt, strength, steps, cfg and seed in, one ``uint8`` RGB frame out.

* :class:`DiffusersBackend` runs a ``StableDiffusionImg2ImgPipeline`` from a
  local diffusers folder (``model_index.json``) or a single ``.safetensors``
  checkpoint (``from_single_file`` with ``local_files_only`` and the Hub's offline
  switch on: it needs the model's config cached locally, and says so if it is not).
  Pickled ``.ckpt`` files are refused unless ``allow_pickle=True``; then torch's full
  unpickler reads them (they can run code), and their tensors go to diffusers, whose own
  reader takes safe pickles only. A path that is not a local
  file or folder is an error: nothing is downloaded. So is a model that would
  load and then fail or render wrongly: a folder part lacking weights, an
  inpainting or depth UNet, a LoRA or other file given as the checkpoint.
  fp16 + SDPA on CUDA, float32 on the CPU (with weights copied off the files
  they were mapped from). Schedulers by name (:data:`SCHEDULERS`), LoRA files
  with weights (local ``.safetensors``, through ``peft``).
* :func:`smoke_backend` builds a tiny Stable-Diffusion-architecture pipeline
  (UNet, VAE and CLIP text encoder from small configs, a byte-level tokenizer
  written to a temporary folder) with fixed random weights, in-process, with no
  download, so the whole main job runs on a fresh machine. Its pictures are
  noise-like: it is a SMOKE MODEL for testing the pipeline, not for art.

Needs the ``torch`` extra (torch, diffusers, transformers).
"""

from __future__ import annotations

import abc
import collections
import contextlib
import functools
import json
import logging
import math
import os
import pickle
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from ._validate import _is_real, error_text, to_float

__all__ = [
    "ACCEL_KEYS",
    "SCHEDULERS",
    "DiffusersBackend",
    "Img2Img",
    "check_accel",
    "load_backend",
    "smoke_backend",
]

log = logging.getLogger("loopwave")

# A1111 names -> (diffusers scheduler class, extra config)
_DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2}
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {**_DPMPP_2M, "use_karras_sigmas": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", _DPMPP_2M),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
}
# the sigma spacing a name means unless its options say otherwise, set whatever the model's
# own scheduler config holds (a model saved with Karras sigmas ran "Euler", "LMS" and
# "DPM++ 2M" with them; one saved with Lu lambdas or flow sigmas still ran "DPM++ 2M" with
# those): every spacing switch diffusers' schedulers have (tests check the installed ones
# have no other); each class takes those of these it has
_PLAIN_SIGMAS = {
    "use_karras_sigmas": False,
    "use_exponential_sigmas": False,
    "use_beta_sigmas": False,
    "use_lu_lambdas": False,
    "use_flow_sigmas": False,
    "use_dynamic_shifting": False,  # shifts flow sigmas by a resolution-dependent mu
}


def _scheduler_options(cls: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The config a scheduler name sets on ``cls``: its options over plain sigmas, only
    the keys ``cls`` takes."""
    import inspect

    takes = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in {**_PLAIN_SIGMAS, **extra}.items() if k in takes}


#: distinct prompts whose embeddings a backend keeps
EMBED_CACHE = 16
#: the most 75-token chunks of a prompt a backend reads (600 tokens; see
#: :mod:`loopwave.prompt_weights`); a UNet exported with a fixed text length reads one
MAX_CHUNKS = 8
#: the largest steps and cfg img2img takes (a render checks every frame against them)
MAX_STEPS, MAX_CFG = 1000, 100
#: the smallest cfg: diffusers runs any guidance scale up to 1 as no guidance, the frame of
#: cfg 1 (A1111 mixes the unconditional prediction in below 1; cfg 0, 0.5 and -5 all gave
#: the cfg-1 frame here, silently)
MIN_CFG = 1
#: what the cfg check says it takes
CFG_FORM = f"in [{MIN_CFG}, {MAX_CFG}] (up to 1 diffusers runs no guidance)"

ACCEL_KEYS = (
    "channels_last",
    "sdpa",
    "compile",
    "cuda_graphs",
    "pinned",
    "device_frames",
    "device_rng",
)


def check_backend_args(
    torch: Any, device: Any, scheduler: Any, accel: Any
) -> tuple[dict[str, Any], Any]:
    """The speed options (defaults filled in) and the torch device of a backend to be
    built, its scheduler's name checked too: before any weights are built or loaded (a
    misspelt scheduler or a CUDA device on a machine without one was found only after
    the model had loaded)."""
    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise TypeError(f"scheduler must be a str or None; got {scheduler!r:.60}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {sorted(SCHEDULERS)}; got {scheduler!r}")
    checked, dev = check_accel(accel), _torch_device(torch, device)
    if checked["cuda_graphs"] and dev.type != "cuda":  # it compiled the UNet anyway
        raise ValueError(f"accel: cuda_graphs needs a CUDA device; this backend runs on {dev}")
    return checked, dev


def check_seed(seed: Any) -> int:
    """A model-building seed: an int in -2**63..2**64 - 1, what torch's generator takes."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {seed!r:.60}")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be in -2**63..2**64 - 1; got {seed}")
    return int(seed)


def check_accel(accel: Any, arg: str = "accel") -> dict[str, Any]:
    """Validated speed options (see :class:`DiffusersBackend`), defaults filled in."""
    if accel is None:
        accel = {}
    if not isinstance(accel, dict):
        raise TypeError(f"{arg} must be a dict of options {list(ACCEL_KEYS)}; got {accel!r:.80}")
    unknown = sorted(set(accel) - set(ACCEL_KEYS))
    if unknown:
        raise ValueError(
            f"{arg}.{str(unknown[0])[:40]}: unknown option (known: {', '.join(ACCEL_KEYS)})"
        )
    out: dict[str, Any] = {
        "channels_last": False,
        "sdpa": True,
        "compile": [],
        "cuda_graphs": False,
        "pinned": True,
        "device_frames": False,
        "device_rng": False,
    }
    out.update(accel)
    for k in ("channels_last", "sdpa", "cuda_graphs", "pinned", "device_frames", "device_rng"):
        if not isinstance(out[k], bool):
            raise ValueError(f"{arg}.{k}: expected true or false, got {out[k]!r:.80}")
    parts = out["compile"]
    if not isinstance(parts, (list, tuple)) or any(p not in ("unet", "vae") for p in parts):
        raise ValueError(f"{arg}.compile: expected a list of 'unet', 'vae'; got {parts!r:.80}")
    out["compile"] = list(parts)
    return out


def _outputs_of_its_own(module: Any) -> None:
    """Make ``module`` return copies of its output tensors. A CUDA-graph replay writes
    into the previous replay's output memory, and a scheduler that keeps a raw UNet
    output across steps (PNDM at cfg 1, where no guidance arithmetic makes a new tensor)
    would read it overwritten: torch then raises. A copy per step is one latent."""
    import torch

    def copy(_m: Any, _args: Any, out: Any) -> Any:
        if isinstance(out, torch.Tensor):
            return out.clone()
        if isinstance(out, tuple):
            return type(out)(copy(_m, _args, o) for o in out)
        if hasattr(out, "sample") and isinstance(out.sample, torch.Tensor):  # a UNet2D output
            out.sample = out.sample.clone()
        return out

    module.register_forward_hook(copy)


def compiled_parts(accel: dict[str, Any]) -> list[str]:
    """The parts ``torch.compile`` wraps under checked speed options (:func:`check_accel`):
    those in ``compile``, and the UNet where ``cuda_graphs`` is on alone (its graphs come
    from compiling it), so neither can then run as an exported graph."""
    parts = list(accel["compile"])
    return ["unet"] if accel["cuda_graphs"] and not parts else parts


class Img2Img(abc.ABC):
    """The renderer's view of a model."""

    label: str = "img2img"

    @abc.abstractmethod
    def img2img(
        self,
        init: np.ndarray,
        *,
        prompt: str,
        negative: str,
        strength: float,
        steps: int,
        cfg: float,
        seed: int,
    ) -> np.ndarray:
        """One frame: ``init`` (H, W, 3) uint8 in, (H, W, 3) uint8 out. ``strength`` in
        [0, 1], ``steps`` in 0..1000 (0 runs as 1), ``cfg`` in [1, 100] and
        prompt weights within +-100: the ranges a render checks for every frame before it
        starts, whatever the backend (and :meth:`check_schedule`'s, a backend's own)."""

    def check_schedule(self, steps: int, strength: float) -> None:
        """Raise ``ValueError`` if :meth:`img2img` would refuse ``steps`` at ``strength`` for
        a reason of this backend's own, beyond the shared ranges (a render asks for every
        frame after the model loads, before it writes anything). Nothing by default."""
        return None

    #: whether :meth:`check_schedule` can refuse anything (a render skips the frames if not)
    limits_schedule: bool = False


class _TorchvisionNote(logging.Filter):
    """Drops transformers' "`CLIPImageProcessor` requires torchvision (not installed);
    falling back to ..." lines: diffusers' pipelines import the image processors of
    safety checkers loopwave never loads, and the fallback is all it would use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed); falling back" not in record.getMessage()


@contextlib.contextmanager
def _no_torchvision_notes() -> Iterator[None]:
    """:class:`_TorchvisionNote` on the logger that writes them, for the import only (a
    host's own use of transformers keeps its messages; these are logged once)."""
    log = logging.getLogger("transformers.utils.import_utils")
    note = _TorchvisionNote()
    log.addFilter(note)
    try:
        yield
    finally:
        log.removeFilter(note)


def _deps() -> tuple[Any, Any]:
    try:
        import diffusers
        import torch
        import transformers  # (every SD pipeline's text encoder; diffusers alone imports
        # without it, then fails at the first model built)
    except ImportError as e:
        raise ImportError(
            f"img2img backends need torch, diffusers and transformers ({e}): "
            "pip install 'loopwave[torch]'"
        ) from e
    try:  # (diffusers imports its pipelines lazily: a failure surfaced at the first use)
        with _no_torchvision_notes():
            diffusers.StableDiffusionImg2ImgPipeline  # noqa: B018
    except (ImportError, RuntimeError) as e:  # e.g. diffusers 0.30 beside transformers 5
        # diffusers' message is "Failed to import ... (look up to see its traceback):",
        # then the cause
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        cause = lines[-1][:300] if lines else type(e).__name__
        if "transformers" not in cause:
            raise ImportError(f"diffusers' img2img pipeline failed to import: {cause}") from e
        raise ImportError(
            f"diffusers {diffusers.__version__} cannot run beside transformers "
            f"{transformers.__version__} ({cause}): pip install 'loopwave[torch]' installs "
            "versions that go together"
        ) from e
    return torch, diffusers


WARNED_KEPT = 1024  # cut prompts remembered, so each warns once


def _one_call_at_a_time(fn: _F) -> _F:
    """A method that runs under its object's ``_call_lock``."""

    @functools.wraps(fn)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._call_lock:
            return fn(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


class DiffusersBackend(Img2Img):
    """Wraps a diffusers img2img pipeline (see the module docs).

    The backend takes the pipeline over: it moves it to ``device`` (and float32 off
    CUDA), sets its scheduler, attention processors and progress bar, and pins its
    device (``pipe.device`` then keeps answering that device, so moving the pipeline
    afterwards is not seen by it). Hand it a pipeline you no longer drive yourself.

    ``accel`` holds the speed options (:func:`check_accel`), each optional and, but
    for ``pinned``, timed by ``loopwave bench --tricks``: ``sdpa`` (fused attention, default on),
    ``channels_last``, ``compile`` (``["unet", "vae"]``), ``cuda_graphs`` (compile's
    reduce-overhead mode), ``pinned`` (page-locked, non-blocking uploads on CUDA,
    default on) and ``device_frames``: the frame returned is read-only and its
    copy stays on the device, so when the renderer passes that same array back as
    the next init (colour correction off, no motion) nothing is uploaded;
    ``device_rng``: noise is drawn by a generator on the device, not copied from
    the host at every ancestral step (the same seed then gives other frames on a
    GPU than on the CPU; identical on the CPU). Frames
    are quantised to ``uint8`` on the device with the float32 arithmetic numpy
    would use on the host, so only a byte per sample is copied back.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        device: str = "auto",
        scheduler: str | None = None,
        label: str = "diffusers",
        accel: dict[str, Any] | None = None,
    ) -> None:
        torch, diffusers = _deps()
        self.accel, self.device = check_backend_args(torch, device, scheduler, accel)
        if scheduler is not None:
            cls_name, extra = SCHEDULERS[scheduler]
            cls = getattr(diffusers, cls_name)
            pipe.scheduler = cls.from_config(
                pipe.scheduler.config, **_scheduler_options(cls, extra)
            )
        # fp16 on CUDA, float32 elsewhere
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        if all(getattr(pipe, m).dtype == dtype for m in ("unet", "vae", "text_encoder")):
            pipe = pipe.to(self.device)
        else:
            # diffusers warns on any cast, even with no module to keep in float32
            from diffusers.utils import logging as dlog

            # under the build lock: two threads swapping the level at once could leave
            # diffusers silenced for good (each restoring what the other had set)
            with _BUILD_LOCK:
                log = logging.getLogger("diffusers")
                level = log.level  # its own (get_verbosity() is the effective level)
                dlog.set_verbosity_error()
                try:
                    pipe = pipe.to(self.device, dtype)
                finally:
                    log.setLevel(level)
        pipe.set_progress_bar_config(disable=True)
        _pin_device(pipe, self.device)
        self.pipe = pipe
        self.label = label
        # device_frames: the last frame returned, and its copy on the device
        self._kept: tuple[np.ndarray, Any] | None = None
        self.uploads_skipped = 0
        # text-encoder output of the last few token sequences: a morph repeats its
        # prompts for many frames, so the encoder runs once per distinct prompt text
        self._embeds: collections.OrderedDict[tuple[int, ...], Any] = collections.OrderedDict()
        self.prompts_encoded = 0
        self._warned: set[tuple[str, tuple[int, ...]]] = set()
        # how many 75-token chunks of a prompt the UNet takes (1 once it runs as a graph
        # exported with a 77-token input: loopwave.trt.use_runner sets it)
        self.max_chunks = MAX_CHUNKS
        # frames of at most this many pixels are refused (see size_problem)
        self.max_area_refused = 0
        # check_schedule's schedules, by length: timesteps, sigmas, order, training steps
        self._schedules: dict[int, tuple[Any, Any, int, int, float]] = {}
        self._schedules_of: Any = None
        # reentrant: img2img (under it) calls embed (under it too)
        self._call_lock = threading.RLock()
        self._speed_up(torch)

    def _speed_up(self, torch: Any) -> None:
        """Apply the speed options; each is optional and measured by ``loopwave bench``."""
        a, pipe = self.accel, self.pipe
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        # fused scaled_dot_product_attention, or the plain matmul-softmax-matmul attention
        # (diffusers picks SDPA by default on torch 2, so off has to be set too: "SDPA
        # off" timed SDPA again)
        for part in (pipe.unet, pipe.vae):
            if hasattr(part, "set_attn_processor"):
                kind: Any = AttnProcessor2_0 if a["sdpa"] else AttnProcessor
                part.set_attn_processor(kind())
        if a["channels_last"]:
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        # CUDA graphs come from torch.compile's "reduce-overhead" mode: the denoise
        # loop's shapes are fixed, so the captured graphs are replayed every step (on a
        # CUDA device only: check_backend_args refused others)
        mode = "reduce-overhead" if a["cuda_graphs"] else None
        parts = compiled_parts(a)
        if "unet" in parts:
            pipe.unet = torch.compile(pipe.unet, mode=mode, fullgraph=False)
            if a["cuda_graphs"]:
                _outputs_of_its_own(pipe.unet)
        if "vae" in parts:
            pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=mode)
            pipe.vae.encoder = torch.compile(pipe.vae.encoder, mode=mode)

    @_one_call_at_a_time
    def embed(self, text: str, *, arg: str = "prompt", stacklevel: int = 2) -> Any:
        """Hidden states of a prompt with A1111 weights (:mod:`loopwave.prompt_weights`):
        ``(1, 77 k, dim)`` for a prompt of ``k`` chunks, at most :attr:`max_chunks`.

        The text encoder's output is cached by token ids for the last :data:`EMBED_CACHE`
        distinct token sequences, and the weights are applied per call: a prompt whose
        weights change every frame (``@wave_completed``) is encoded once. A prompt cut to
        what the encoder reads warns once, pointing ``stacklevel`` frames up (2: at the
        caller of ``embed``)."""
        from .prompt_weights import (
            apply_weights,
            encode_ids,
            tokenize_weighted,
            tokens_read,
            warn_dropped,
        )

        tok = self.pipe.tokenizer
        ids, weights, dropped = tokenize_weighted(tok, text, max_chunks=self.max_chunks, arg=arg)
        if dropped and (arg, ids) not in self._warned:
            # once per argument and tokens, not every frame (@wave changes the text only);
            # forgotten after WARNED_KEPT (a long prompt whose text changes every frame)
            if len(self._warned) >= WARNED_KEPT:
                self._warned.clear()
            self._warned.add((arg, ids))
            read = tokens_read(tok, self.max_chunks)
            # one frame more: the call lock's wrapper
            warn_dropped(arg, text, dropped, read, stacklevel=stacklevel + 1)
        hidden = self._embeds.get(ids)
        if hidden is None:
            hidden = encode_ids(self.pipe, ids, self.device)
            self.prompts_encoded += 1
            self._embeds[ids] = hidden
            if len(self._embeds) > EMBED_CACHE:
                self._embeds.popitem(last=False)
        else:
            self._embeds.move_to_end(ids)
        # in the encoder's dtype, on the device
        return apply_weights(hidden, weights, chunk=tok.model_max_length)

    #: every schedule length a scheduler can be set to is checked (see check_schedule)
    limits_schedule = True

    def check_schedule(self, steps: int, strength: float) -> None:
        """Refuse a schedule the scheduler cannot run: ``steps`` at ``strength`` (as
        diffusers' img2img cuts it, :func:`_steps_for`) makes a schedule whose part that
        runs

        - reaches a timestep the model was never trained on (``num_train_timesteps``,
          1000 for Stable Diffusion): "leading" spacing with ``steps_offset`` 1, which SD
          1.5's DDIM and PNDM take, makes timestep 1000 at 1000 steps (an ``IndexError``
          inside diffusers at frame 0), and so did any strength under 1/999, which
          :func:`_steps_for` gives a 1000-step schedule;
        - repeats a noise level, where the scheduler has sigmas (DPM++ 2M's linspace
          sigmas at 1000 steps: its solver divided by their zero difference and the
          frame was refused as NaN, blaming the prompt weights);
        - is under 4 steps for the PNDM scheduler in its Runge-Kutta warm-up form
          (without ``skip_prk_steps``; it failed inside diffusers with "operands could not
          be broadcast together"). SD 1.5 checkpoints ship it with ``skip_prk_steps``.

        Each schedule length is set once on a copy of the scheduler and kept."""
        n_steps = _steps_for(steps, strength) if strength > 0 else 0
        if n_steps == 0:
            return
        sched = self.pipe.scheduler
        if type(sched).__name__ == "PNDMScheduler" and not sched.config.get(
            "skip_prk_steps", False
        ):
            if n_steps < 4:
                raise ValueError(
                    f"steps: the PNDM scheduler needs a schedule of at least 4 steps; "
                    f"{steps} step{'s' * (steps != 1)} at strength {strength:g} "
                    f"make{'s' * (steps == 1)} one of {n_steps}"
                )
        problem = self._schedule_problem(n_steps, min(int(n_steps * strength), n_steps))
        if problem:
            made = f"{steps} step{'s' * (steps != 1)} at strength {strength:g}"
            fix = "use fewer steps"
            if n_steps != max(1, steps):  # a strength too small for a step of `steps`
                made += f" (a schedule of {n_steps}, of which it runs the last step)"
                fix = "use a higher strength"
            raise ValueError(f"steps: {made}: {problem}; {fix}")

    def _schedule_problem(self, n_steps: int, runs: int) -> str | None:
        """What is wrong with the last ``runs`` steps of the scheduler's ``n_steps``-step
        schedule, or None (see :meth:`check_schedule`)."""
        sched = self.pipe.scheduler
        if self._schedules_of is not sched:  # the scheduler was swapped since
            self._schedules, self._schedules_of = {}, sched
        cache = self._schedules
        if n_steps not in cache:
            fresh = type(sched).from_config(sched.config)
            fresh.set_timesteps(n_steps, device="cpu")
            ts = np.asarray(fresh.timesteps, dtype=np.float64)  # set on the CPU
            sigmas = getattr(fresh, "sigmas", None)
            sig = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
            order = int(getattr(fresh, "order", 1))
            # PNDM's warm-up steps read its own list of timesteps from the start, whatever
            # part of the schedule img2img runs
            prk = getattr(fresh, "prk_timesteps", None)
            warm = -np.inf if prk is None or not len(prk) else float(np.max(prk))
            trained = int(sched.config.num_train_timesteps)
            cache[n_steps] = (ts, sig, order, trained, warm)
        ts, sig, order, trained, warm = cache[n_steps]
        start = (n_steps - runs) * order  # where diffusers' img2img starts the schedule
        highest = max(warm, ts[start:].max() if len(ts[start:]) else -np.inf)
        if highest >= trained:
            return (
                f"the {type(sched).__name__}'s schedule of {n_steps} steps "
                f"reaches timestep {highest:g}, past the model's {trained} training steps"
            )
        if sig is not None and len(sig[start:]) > 1 and not (np.diff(sig[start:]) < 0).all():
            return f"the {type(sched).__name__}'s schedule of {n_steps} steps repeats a noise level"
        return None

    def _guided_pair(self, prompt: str, negative: str) -> tuple[Any, Any]:
        """The prompt's and the negative's hidden states, the shorter padded with chunks
        of the empty prompt to the other's length: the pipeline runs both through the UNet
        in one batch. (A1111's "pad prompt/negative prompt" option pads the same way; by
        default A1111 runs the two apart at their own lengths, which gives other frames
        when the lengths differ.)"""
        torch, _ = _deps()
        # the warnings point at img2img's caller: past here, img2img and the call lock
        cond = self.embed(prompt, arg="prompt", stacklevel=5)
        uncond = self.embed(negative, arg="negative", stacklevel=5)
        if cond.shape[1] != uncond.shape[1]:
            empty = self.embed("")
            more = abs(cond.shape[1] - uncond.shape[1]) // empty.shape[1]
            pad = empty.repeat(1, more, 1)
            if cond.shape[1] < uncond.shape[1]:
                cond = torch.cat([cond, pad], dim=1)
            else:
                uncond = torch.cat([uncond, pad], dim=1)
        return cond, uncond

    def size_problem(self, h: int, w: int) -> str | None:
        """Why this model cannot make frames ``h`` high and ``w`` wide (sides the VAE
        takes), or None: the smoke model's UNet cannot make 16x16 frames."""
        if h * w > self.max_area_refused:
            return None
        return f"the {self.label}'s UNet cannot make frames of {w}x{h}; make them larger"

    @_one_call_at_a_time
    def clear_prompt_cache(self) -> None:
        """Forget the cached text-encoder outputs (after the text encoder changed, e.g.
        a LoRA was loaded into it)."""
        self._embeds.clear()

    # one call at a time: the scheduler, the prompt cache and the kept frame are state
    # (four threads on one backend got wrong frames or an IndexError); give each thread
    # its own backend to run them in parallel
    @_one_call_at_a_time
    def img2img(
        self,
        init: np.ndarray,
        *,
        prompt: str,
        negative: str,
        strength: float,
        steps: int,
        cfg: float,
        seed: int,
    ) -> np.ndarray:
        torch, _ = _deps()
        if not isinstance(init, np.ndarray):
            raise TypeError(f"init must be a numpy array; got {type(init).__name__}")
        for name, text in (("prompt", prompt), ("negative", negative)):
            if not isinstance(text, str):
                raise TypeError(f"{name} must be a str; got {type(text).__name__}")
        if init.dtype != np.uint8 or init.ndim != 3 or init.shape[2] != 3:
            raise ValueError(
                f"init must be an (H, W, 3) uint8 image; got {init.dtype} {init.shape}"
            )
        h, w = init.shape[:2]
        if h % 8 or w % 8 or min(h, w) < 16:  # the VAE cropped 100x100 to 96x96
            raise ValueError(
                f"init must be at least 16x16 with sides multiples of 8 (the VAE's cell); "
                f"got {w}x{h}"
            )
        problem = self.size_problem(h, w)
        if problem:
            raise ValueError(f"init: {problem}")
        for name, v in (("strength", strength), ("cfg", cfg)):
            if not _is_real(v):
                raise TypeError(f"{name} must be a number; got {v!r}")
        for name, v in (("steps", steps), ("seed", seed)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int; got {v!r}")
        # as floats from here on, as diffusers takes them: a Fraction's exact step count
        # differed from diffusers' float one (1/161 of 161 steps: 1 against 0, a crash
        # inside diffusers), and a Decimal NaN raised InvalidOperation in the range check
        strength, cfg = to_float(strength), to_float(cfg)
        if not 0 <= strength <= 1:
            raise ValueError(f"strength must be in [0, 1]; got {strength}")
        if not 0 <= steps <= MAX_STEPS:
            raise ValueError(f"steps must be in 0..{MAX_STEPS} (0 runs as 1); got {steps}")
        if not MIN_CFG <= cfg <= MAX_CFG:  # also NaN
            raise ValueError(f"cfg must be {CFG_FORM}; got {cfg}")
        self.check_schedule(steps, strength)
        n_steps = _steps_for(steps, strength) if strength > 0 else 0
        if n_steps == 0:  # strength 0 or below 1/1000: no denoising step at that noise level
            unchanged: np.ndarray = init.copy()
            return unchanged
        kept = self._kept
        if kept is not None and init is kept[0]:
            # the renderer handed back the frame we returned (no colour correction, no
            # motion): its pixels are still on the device, so nothing is uploaded
            dev_u8 = kept[1]
            self.uploads_skipped += 1
        else:
            host = np.ascontiguousarray(init)
            # torch warns on a read-only array (a frame returned with device_frames on):
            # copy it rather than share memory torch may not write to
            dev_u8 = torch.from_numpy(host if host.flags.writeable else host.copy())
            if self.device.type == "cuda" and self.accel["pinned"]:
                # page-locked memory, copied without blocking the host
                dev_u8 = dev_u8.pin_memory().to(self.device, non_blocking=True)
            else:
                dev_u8 = dev_u8.to(self.device)
        image = dev_u8.permute(2, 0, 1)[None].float() / 255
        # a CPU generator gives the same frames on every device; on a GPU it costs a
        # host-to-device copy of fresh noise at each ancestral step (device_rng avoids it)
        gen_device = self.device if self.accel["device_rng"] else torch.device("cpu")
        # seeds are 32-bit, as in A1111: torch's CPU generator reads only the low 32 bits
        # (2**32 gave seed 0's noise) and a number beyond 64 bits overflowed
        gen = torch.Generator(gen_device).manual_seed(int(seed) % 2**32)
        with torch.inference_mode():
            if cfg > 1:
                cond, uncond = self._guided_pair(prompt, negative)
            else:  # without guidance diffusers never reads the negative prompt
                # the warning points at img2img's caller: past embed, img2img and the
                # call lock's wrapper
                cond, uncond = self.embed(prompt, arg="prompt", stacklevel=4), None
            latents = self.pipe(
                prompt_embeds=cond,
                negative_prompt_embeds=uncond,
                image=image,
                strength=float(strength),
                num_inference_steps=n_steps,
                guidance_scale=float(cfg),
                generator=gen,
                output_type="latent",
            ).images
            # decoded here as the pipeline decodes, and checked before its postprocess:
            # that clamps to [0, 1], so +inf and -inf passed the check as white and black
            # pixels (and NaN would quantise to black)
            vae = self.pipe.vae
            decoded = vae.decode(
                latents / vae.config.scaling_factor, return_dict=False, generator=gen
            )[0]
            if not bool(torch.isfinite(decoded).all()):
                raise ValueError(
                    "the model produced NaN/inf pixels (prompt weights, cfg or a LoRA scale "
                    "too large for it, or an fp16 overflow)"
                )
            out = self.pipe.image_processor.postprocess(decoded, output_type="pt")[0]
            # quantised on the device with the arithmetic numpy would use on the host
            # (float32 clip, *255 + 0.5, truncate): one byte per sample crosses the bus
            u8 = (out.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0)
            u8 = u8.contiguous()
        frame: np.ndarray = u8.cpu().numpy()
        if self.accel["device_frames"]:
            # read-only, so the same array object still means the same pixels
            frame.flags.writeable = False
            self._kept = (frame, u8)
        return frame


def _torch_device(torch: Any, device: Any) -> Any:
    """``device`` ("auto", "cpu", "cuda", "cuda:1", ...) as a torch.device that exists."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cuda' or 'cpu'; got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device: {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= count:
            raise ValueError(
                f"device: {device!r} asked for, but this machine has {count} CUDA GPUs"
            )
    elif dev.type in ("mps", "xpu"):
        backend = (
            getattr(torch.backends, "mps", None)
            if dev.type == "mps"
            else getattr(torch, "xpu", None)
        )
        if backend is None or not backend.is_available():
            raise ValueError(f"device: {device!r} asked for, but this machine has no {dev.type}")
    elif dev.type != "cpu":
        raise ValueError(f"device: {device!r} is not supported (use auto, cpu or cuda)")
    return dev


def _steps_for(steps: int, strength: float) -> int:
    """The schedule length to hand diffusers' img2img, which runs the last
    ``int(steps * strength)`` of its steps and fails when that is 0: then the shortest
    schedule of which it runs one (``ceil(1 / strength)`` steps). That one step is the
    schedule's last, at its lowest noise level, not at the level ``strength`` names: where
    the last step's noise level is the same at any length (Karras sigmas, Euler's and
    Euler a's schedules) every strength below ``1 / steps`` gives the same frame, as in
    A1111 (its img2img then runs its schedule's last step only); other schedulers' last
    steps differ a little with the length. 0 when even the scheduler's finest schedule
    (1000 steps) runs none: the frame passes unchanged."""
    n = max(1, int(steps))
    if int(n * strength) >= 1:
        return n
    if strength * 1000 < 1:  # no schedule runs a step (and 1 / 5e-324 is infinite)
        return 0
    n = math.ceil(1 / strength)
    # the product as diffusers forms it can round just below 1 (161 * (1/161)): one more
    while n <= 1000 and int(n * strength) < 1:
        n += 1
    return n if n <= 1000 else 0


def _byte_tokenizer(folder: Path) -> Any:
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (no merges, no download)."""
    from transformers import CLIPTokenizer

    # GPT-2/CLIP's printable stand-ins for the 256 bytes
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    symbols = [chr(c) for c in cs]
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


#: pipeline class -> its subclass with the device lookups pinned
_PINNED: dict[type, type] = {}


def _pin_device(pipe: Any, device: Any) -> None:
    """Make ``pipe._execution_device`` and ``pipe.device`` return ``device`` at once.

    diffusers works both out on every call by walking every module of every
    component, looking for offloading hooks: 6 to 14 ms per img2img call with SD 1.5's
    modules on this project's 2-core CPU (``benches/bench_call_overhead.py``), spent
    before the call queues any GPU work, so on a GPU the device idles through it
    every frame. A backend places its modules on one device at start and
    never offloads, so the answer cannot change. The subclass keeps the class's
    name, so ``save_pretrained`` writes the same ``model_index.json``."""
    base = type(pipe)
    if base not in _PINNED.values():  # else already pinned (a backend over another's pipe)
        if base not in _PINNED:
            fixed = property(lambda self: self.__dict__["_loopwave_device"])
            body = {"_execution_device": fixed, "device": fixed, "__module__": base.__module__}
            _PINNED[base] = type(base.__name__, (base,), body)
        pipe.__class__ = _PINNED[base]
    object.__setattr__(pipe, "_loopwave_device", device)


def _img2img_pipeline(unet: Any, vae: Any, text: Any, tokenizer: Any) -> Any:
    """An img2img pipeline over models built in-process (no safety checker, and a
    DDIM config with the values diffusers' img2img expects, so it does not warn)."""
    _, diffusers = _deps()
    return diffusers.StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=diffusers.DDIMScheduler(steps_offset=1, clip_sample=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


# backends are built one at a time: the smoke model's weights come from torch's
# process-wide random generator, and the lazy imports of diffusers and transformers race
# (renders on several threads got other weights, or ImportErrors). A backend runs one
# img2img call at a time (its scheduler keeps state): give each thread its own to run
# them in parallel.
_BUILD_LOCK = threading.RLock()
_F = TypeVar("_F", bound=Callable[..., Any])


def _one_at_a_time(fn: _F) -> _F:
    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _BUILD_LOCK:
            return fn(*args, **kwargs)

    return cast(_F, locked)


@_one_at_a_time
def smoke_backend(
    *,
    device: str = "cpu",
    scheduler: str | None = "DPM++ 2M Karras",
    seed: int = 0,
    accel: dict[str, Any] | None = None,
) -> DiffusersBackend:
    """The embedded SMOKE MODEL: a tiny SD-architecture pipeline with fixed random weights."""
    torch, diffusers = _deps()
    check_backend_args(torch, device, scheduler, accel)
    seed = check_seed(seed)
    from transformers import CLIPTextConfig, CLIPTextModel

    with tempfile.TemporaryDirectory() as d:
        tokenizer = _byte_tokenizer(Path(d))
    # the CPU generator alone, forked: torch.manual_seed also reseeds every CUDA
    # generator (queued until CUDA starts), and the host's CUDA random numbers changed
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_attention_heads=4,
                num_hidden_layers=2,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.eos_token_id,
            )
        )
        unet = diffusers.UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=32,
        )
        # four blocks: latents at 1/8 of the image size, as in Stable Diffusion
        vae = diffusers.AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(32, 32, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            norm_num_groups=32,
            layers_per_block=1,
        )
    for m in (text, unet, vae):
        m.eval()  # as from_pretrained leaves them
    pipe = _img2img_pipeline(unet, vae, text, tokenizer)
    log.warning("using the embedded SMOKE MODEL (tiny, random weights): output is not art")
    backend = DiffusersBackend(
        pipe, device=device, scheduler=scheduler, label="SMOKE MODEL", accel=accel
    )
    # 16x16 frames make a 1x1 latent past its UNet's one downsampling, where a group norm
    # of 32 groups over 32 channels sees one value a group (torch's "Expected more than 1
    # value per channel" at frame 0); Stable Diffusion's 320 channels see ten
    backend.max_area_refused = 16 * 16
    return backend


# What diffusers, transformers and peft raise on damaged model or LoRA files: a
# config without its keys (KeyError), a missing tensor (NotImplementedError: meta
# tensors), a LoRA without its up matrices (IndexError), an allocation (RuntimeError),
# a damaged pytorch_model.bin (torch's safe loader's UnpicklingError, which escaped as
# a traceback); and safetensors' own error (a truncated file: see _load_errors)
_LOAD_ERRORS = (
    ValueError, KeyError, IndexError, TypeError, AttributeError,
    NotImplementedError, RuntimeError, OSError, pickle.UnpicklingError,
)  # fmt: skip


def _load_errors() -> tuple[type[BaseException], ...]:
    """:data:`_LOAD_ERRORS` and safetensors' ``SafetensorError``, which transformers lets
    through from a truncated file (a damaged text encoder escaped as a traceback)."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - diffusers needs safetensors
        return _LOAD_ERRORS
    return (*_LOAD_ERRORS, SafetensorError)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Hugging Face Hub lookups refused while loading local files. diffusers'
    ``from_single_file`` ignores ``local_files_only`` when the model's config is not
    cached and calls the Hub to fetch it (it resolved huggingface.co); with the hub's
    offline switch on, that fails at once and the loader reports it."""
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


def _pipeline_dtype(dtype: Any) -> dict[str, Any]:
    """The keyword a pipeline's ``from_pretrained`` takes its dtype by: ``dtype`` where
    diffusers has renamed it (it warns of ``torch_dtype`` there, on every load, past
    ``--quiet``), ``torch_dtype`` before, where ``dtype`` would be ignored. (The warning
    was silenced with ``warnings.catch_warnings``, which swaps the process's filters:
    a filter a host thread added during a load was lost.)"""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


# quiet_loading() depth: while above 0, load_backend shows no loading bars
_quiet_loads = 0
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Within it, :func:`load_backend` shows no loading bars, whatever its ``progress``
    says (the CLI's ``--quiet`` turns them off for the whole command)."""
    global _quiet_loads
    with _QUIET_LOCK:
        _quiet_loads += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_loads -= 1


@contextlib.contextmanager
def _loading_bars(show: bool) -> Iterator[None]:
    """diffusers' and transformers' progress bars ("Loading pipeline components...",
    "Loading weights") off while loading unless ``show``, and their log warnings too
    (``--quiet`` still printed "There are modules in UNet2DConditionModel that should be
    kept in float32", "Attempting to download the necessary config files", though
    nothing is downloaded, and transformers' load reports); errors still show. Each put
    back as it was. Under the build lock (load_backend's): two loads swapping them at
    once could leave them off for good."""
    if show:
        yield
        return
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    # each library's logger's own level, put back as it was: get_verbosity() is the
    # effective level, and setting that pinned a logger the host had left to follow its
    # root (NOTSET) at INFO for good
    libs = [(dlog, logging.getLogger("diffusers")), (tlog, logging.getLogger("transformers"))]
    was = [(m, log, m.is_progress_bar_enabled(), log.level) for m, log in libs]
    for m, _, _, _ in was:
        m.disable_progress_bar()
        m.set_verbosity(max(m.get_verbosity(), logging.ERROR))
    try:
        yield
    finally:
        for m, log, on, level in was:
            log.setLevel(level)
            if on:
                m.enable_progress_bar()


def _check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool if it is one (numpy's too): a gate such as ``allow_pickle`` took
    any truthy value, so "no" and "false" let pickled files through."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r:.60}")
    return bool(value)


@_one_at_a_time
def load_backend(
    kind: str,
    path: str | os.PathLike[str] = "",
    *,
    scheduler: str | None = None,
    device: str = "auto",
    allow_pickle: bool = False,
    lora: list[dict[str, Any]] | None = None,
    accel: dict[str, Any] | None = None,
    progress: bool = True,
) -> Img2Img:
    """A backend from settings: ``"smoke"``, or ``"diffusers"`` with a local ``path``.

    ``lora`` is a list of ``{"path": file, "scale": weight}`` (scale 1 if left out):
    local ``.safetensors`` LoRA files in any format diffusers reads (diffusers, kohya),
    applied together with their weights (needs ``peft``).

    ``allow_pickle`` (True or False): pickled ``.ckpt`` models and pickled LoRA files are
    read with torch's full unpickler, which can run code: only for files you trust. It
    reads the objects training scripts save beside the weights (numpy scalars,
    ``argparse.Namespace``, Lightning callbacks; classes of modules not installed as inert
    stand-ins) and keeps only the tensors. ``progress``: diffusers' and transformers'
    loading bars (off within :func:`quiet_loading` too)."""
    allow_pickle = _check_flag("allow_pickle", allow_pickle)
    show = _check_flag("progress", progress) and _quiet_loads == 0
    loras = _check_loras([] if lora is None else lora, allow_pickle)
    if kind == "smoke":
        backend = smoke_backend(
            device="cpu" if device == "auto" else device, scheduler=scheduler, accel=accel
        )
        with _loading_bars(show):
            _apply_loras(backend.pipe, loras)
        if loras:  # a LoRA may change the text encoder: no embedding made before it holds
            backend.clear_prompt_cache()
            if backend.device.type == "cpu":
                _own_memory(backend.pipe)
        return backend
    if kind != "diffusers":
        raise ValueError(f"backend must be 'smoke' or 'diffusers'; got {kind!r}")
    torch, diffusers = _deps()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path to the model; got {path!r:.60}")
    # before the weights load (minutes for a large model)
    _, dev = check_backend_args(torch, device, scheduler, accel)
    p = Path(path)
    suffix = p.suffix.lower()  # MODEL.SafeTensors was refused as "not a .safetensors file"
    try:
        found = bool(str(path)) and p.exists()
    except OSError as e:  # a name too long for the system: an OSError naming nothing
        raise ValueError(f"model path {str(path)!r:.200}: {e.strerror or e}") from None
    if not found:
        raise ValueError(
            f"model path {str(path)!r} is not a local file or folder "
            "(loopwave never downloads models)"
        )
    if not p.is_dir() and suffix not in (".safetensors", ".ckpt"):
        raise ValueError(f"model path {p} must be a diffusers folder or a .safetensors file")
    if suffix == ".ckpt" and not p.is_dir() and not allow_pickle:
        raise ValueError(
            f"{p} is a pickled checkpoint, which can run code when loaded; "
            "convert it to .safetensors, or if you trust it set model.allow_pickle = true "
            "in the settings (allow_pickle=True in Python)"
        )
    # loaded in the precision it will run in ("cuda:1" too): fp16 on CUDA
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    cls = diffusers.StableDiffusionImg2ImgPipeline
    with _loading_bars(show):
        if p.is_dir():
            pipe = _load_folder(cls, p, dtype)
        else:
            pipe = _load_single_file(cls, p, dtype, pickled=suffix == ".ckpt")
        try:
            _check_tokenizer(pipe)
            _check_shapes(pipe)
        except ValueError as e:
            raise ValueError(f"model path {p}: {e}") from None
        _apply_loras(pipe, loras)
    if dev.type == "cpu":  # moved nowhere: see _own_memory
        _own_memory(pipe)
    try:
        return DiffusersBackend(pipe, device=device, scheduler=scheduler, label=p.name, accel=accel)
    except NotImplementedError as e:  # tensors a damaged file lacks stay on torch's meta device
        raise ValueError(f"model path {p}: weights are missing from the files ({e})") from e


def _weight_files(folder: Path) -> list[Path]:
    return [f for f in folder.iterdir() if f.is_file() and f.suffix in (".safetensors", ".bin")]


#: the parts of a diffusers folder loaded here, each on its own (see _load_part)
_PARTS = ("unet", "vae", "text_encoder")


def _part_variant(part: Path) -> str | None:
    """``"fp16"`` when a part of a diffusers folder has its weights only as fp16 variant
    files (``diffusion_pytorch_model.fp16.safetensors``, as ``save_pretrained(...,
    variant="fp16")`` writes them): diffusers looks for the plain names unless told the
    variant, and the folder was refused with "no file named diffusion_pytorch_model.bin".
    Each part's own: one variant for the whole folder made one fp16-only part (or a
    safety_checker/ with fp16 files alone) load every part's fp16 file, where the fp32
    files beside them had loaded before."""
    names = [f.name for f in _weight_files(part)]
    if names and all(".fp16." in n or ".fp16-" in n for n in names):
        return "fp16"
    return None


def _damaged_safetensors(folder: Path) -> list[str]:
    """The ``.safetensors`` files in a diffusers folder whose header does not read (a
    truncated file), relative to it."""
    from safetensors import safe_open

    bad = []
    for f in sorted(folder.glob("*/*.safetensors")):
        try:
            with safe_open(str(f), framework="pt"):
                pass
        except Exception:  # noqa: BLE001 - any failure to read it is the damage sought
            bad.append(f.relative_to(folder).as_posix())
    return bad


class _PartRefused(ValueError):
    """A part of a diffusers folder that loaded but is not whole; the message names it."""


def _load_part(folder: Path, name: str, index: dict[str, Any], dtype: Any) -> Any:
    """Part ``name`` of a diffusers folder as its ``model_index.json`` names it, in
    ``dtype``, from its own fp16 variant files where it has only those
    (:func:`_part_variant`); None for a part left to diffusers (absent, or of a class
    not a diffusers or transformers model: diffusers refuses what it cannot load).

    Loaded here to see what the files lacked: transformers fills a tensor missing from
    the text encoder's file with random values and only logs it ("newly initialized"),
    so a text encoder with one tensor removed, or all renamed, loaded without error and
    rendered with random weights. A part lacking weights is refused (position_ids is a
    buffer, not a weight: older files hold it, newer ones do not)."""
    import importlib

    entry = index.get(name)
    sub = folder / name
    if not (
        isinstance(entry, (list, tuple))
        and len(entry) == 2
        and entry[0] in ("diffusers", "transformers")
        and isinstance(entry[1], str)
        and sub.is_dir()
    ):
        return None
    import diffusers
    import transformers

    part_cls: Any = getattr(importlib.import_module(entry[0]), entry[1], None)
    base = diffusers.ModelMixin if entry[0] == "diffusers" else transformers.PreTrainedModel
    if not (isinstance(part_cls, type) and issubclass(part_cls, base)):
        return None
    load: Any = part_cls.from_pretrained
    variant = _part_variant(sub)
    kwargs: dict[str, Any] = {"local_files_only": True, "output_loading_info": True}
    if variant:
        kwargs["variant"] = variant
    if not any(f.suffix == ".safetensors" for f in _weight_files(sub)):
        # a .bin-only part: diffusers logged an error looking for a .safetensors first
        # ("no file named ... found in directory", naming the model's folder), past --quiet
        kwargs["use_safetensors"] = False
    if entry[0] == "diffusers":
        model, info = load(str(folder), subfolder=name, torch_dtype=dtype, **kwargs)
    else:
        from packaging.version import Version

        # "dtype" from transformers 4.56 (torch_dtype warns there), torch_dtype before
        new = Version(transformers.__version__) >= Version("4.56")
        kwargs["dtype" if new else "torch_dtype"] = dtype
        model, info = load(str(sub), **kwargs)
    missing = sorted(k for k in info.get("missing_keys") or () if not k.endswith("position_ids"))
    if missing:
        n, shown = len(missing), ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise _PartRefused(f"{name} lacks {n} weight{'s' * (n != 1)}: {shown}")
    return model


def _load_folder(cls: Any, p: Path, dtype: Any) -> Any:
    """A pipeline from a local diffusers folder, fp16-variant-only parts too (loaded in
    ``dtype``, the device's). The UNet, VAE and text encoder are loaded here, each with
    its own variant (:func:`_load_part`); the scheduler and tokenizer by diffusers."""
    try:
        index = json.loads((p / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # diffusers says what is wrong with it
        index = {}
    if not isinstance(index, dict):
        index = {}
    parts: dict[str, Any] = {}
    fp16_only = False
    part: str | None = None
    try:
        with _offline():
            for part in _PARTS:
                # (known before the load: a failing fp16-only part lost the hint)
                fp16_only |= (p / part).is_dir() and _part_variant(p / part) is not None
                model = _load_part(p, part, index, dtype)
                if model is not None:
                    parts[part] = model
            part = None
            return cls.from_pretrained(
                str(p),
                **_pipeline_dtype(dtype),
                local_files_only=True,
                safety_checker=None,
                # (an IP-Adapter's image encoder, unused here: loaded without the parts'
                # own variants, an fp16-only folder holding one was refused)
                image_encoder=None,
                requires_safety_checker=False,
                **parts,
            )
    except _load_errors() as e:  # a damaged folder: missing keys, files, tensors
        why = str(e)
        from safetensors import SafetensorError

        if isinstance(e, SafetensorError):  # its message names no file: find it
            damaged = _damaged_safetensors(p)
            if damaged:
                why = f"{', '.join(damaged)} is damaged: {e}"
        elif pickled := [c for c in _chain(e) if isinstance(c, pickle.UnpicklingError)]:
            # torch's message names no file (transformers 4 wrapped it in an OSError)
            names = sorted(f.name for f in (p / part).glob("*.bin")) if part else []
            files = ", ".join(f"{part}/{n}" for n in names) or part or "a weight file"
            # the cause without torch's advice to load it with weights_only off
            why = (
                f"{files} is damaged or holds what torch's safe loader refuses "
                f"({_cause(pickled[-1])})"
            )
        elif part and not isinstance(e, _PartRefused):
            why = f"{part}: {why}"
        if fp16_only:
            why += "; only fp16 variant weight files were found for some of its parts"
        raise ValueError(f"model path {p}: cannot load this diffusers folder ({why})") from e


def _check_shapes(pipe: Any) -> None:
    """Refuse parts that do not fit img2img or one another: an inpainting model (its UNet
    takes 9 input channels: latents, mask and masked image), a depth model (5) or an
    InstructPix2Pix model (8) loaded, and frame 0 failed with torch's "expected input
    ... to have 9 channels" after the run folder was written; so would a text encoder
    whose features are not the width the UNet attends to."""
    unet, vae, text = (getattr(pipe, n, None) for n in _PARTS)
    if unet is None or vae is None or text is None:
        return
    takes = unet.config.in_channels
    latent = vae.config.latent_channels
    if takes != latent:
        kind = {9: "an inpainting model?", 5: "a depth model?", 8: "an InstructPix2Pix model?"}
        hint = f" ({kind[takes]})" if takes in kind else ""
        raise ValueError(
            f"its UNet takes {takes} input channels{hint}; img2img needs {latent}, "
            "the VAE's latent channels"
        )
    # a UNet projecting the text features first takes its projection's input width; one
    # projecting image embeddings (IP-Adapter's) is not checked
    width = unet.config.cross_attention_dim
    if unet.config.get("encoder_hid_dim") is not None:
        if unet.config.get("encoder_hid_dim_type") not in (None, "text_proj"):
            return
        width = unet.config.encoder_hid_dim
    widths = set(width) if isinstance(width, (list, tuple)) else {width}
    made = text.config.hidden_size
    if widths != {made}:
        shown = ", ".join(str(w) for w in sorted(widths))
        raise ValueError(
            f"its UNet attends to text features {shown} wide, its text encoder makes them "
            f"{made} wide: not parts of one model"
        )


def _own_memory(pipe: Any) -> None:
    """Give every weight and buffer of the UNet, VAE and text encoder memory of its own,
    off the files they were read from. On the CPU (where nothing moves them to a device)
    they stayed memory-mapped from the model and LoRA files: a file rewritten while the
    backend was alive changed its later frames, and one truncated killed the process
    with SIGBUS at the next frame. Weights shared between modules stay shared."""
    torch, _ = _deps()
    # by id: the original (kept alive, so no id is reused while this runs) and its copy
    copies: dict[int, tuple[Any, Any]] = {}
    with torch.no_grad():
        for part in (getattr(pipe, n, None) for n in _PARTS):
            if part is None:
                continue
            for module in part.modules():
                for param in module._parameters.values():
                    if param is not None and id(param) not in copies:
                        copies[id(param)] = (param, None)
                        param.data = param.data.clone()  # the Parameter is shared as it was
                buffers = module._buffers
                for key, buf in buffers.items():
                    if buf is None:
                        continue
                    if id(buf) not in copies:
                        copies[id(buf)] = (buf, buf.clone())
                    buffers[key] = copies[id(buf)][1]


class _Absent:
    """Stands in for a class or function that a pickled checkpoint names from a module not
    installed here (``pytorch_lightning``'s callbacks, in training checkpoints): it takes any
    arguments and state, and is dropped with everything else that is not a tensor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _lenient_pickle() -> Any:
    """A pickle module for ``torch.load`` whose unpickler gives :class:`_Absent` stand-ins
    for what it cannot import (the full unpickler otherwise: the user trusts the file)."""
    import pickle
    import types

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                return type(name, (_Absent,), {"__module__": module})

    mod = types.ModuleType("pickle")  # torch looks at the name (to check dill's version)
    mod.Unpickler = Unpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()  # type: ignore[attr-defined]
    return mod


def _read_pickled(p: Path, what: str) -> dict[str, Any]:
    """The tensors of a pickled checkpoint the user trusts (``allow_pickle``), read with
    torch's full unpickler: diffusers reads pickles with the safe one only
    (``weights_only``), which refuses the numpy scalars, ``argparse.Namespace`` and
    Lightning objects training scripts save beside the weights, and the refusal was
    reported as a missing offline config. The state dict is found as diffusers finds it
    (under ``state_dict`` keys); only its tensors are kept."""
    import zipfile

    torch, _ = _deps()
    try:
        obj = torch.load(
            str(p),
            map_location="cpu",
            weights_only=False,
            pickle_module=_lenient_pickle(),
            mmap=zipfile.is_zipfile(p),  # not for the legacy format
        )
    except Exception as e:  # noqa: BLE001 - a pickle can raise anything
        raise ValueError(f"{what}: cannot read this pickled checkpoint ({_cause(e)})") from e
    while isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    tensors = (
        {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if isinstance(obj, dict)
        else {}
    )
    if not tensors:
        raise ValueError(f"{what}: no tensors in this pickled checkpoint (a {type(obj).__name__})")
    return tensors


@contextlib.contextmanager
def _checkpoint_read_as(path: Path, state: dict[str, Any] | None) -> Iterator[None]:
    """diffusers' ``from_single_file`` given ``state`` as what ``path`` holds: it takes a
    path only, and reads pickles with torch's safe loader only. Its reader
    (``diffusers.loaders.single_file.load_single_file_checkpoint``) is swapped for the call,
    for this one path (other paths, other threads' loads, read as before). A diffusers
    without that reader reads the file itself, and the error then says what its safe
    loader refused (:func:`_single_file_error`)."""
    if state is None:
        yield
        return
    from diffusers.loaders import single_file as _single_file

    single_file: Any = _single_file
    real = getattr(single_file, "load_single_file_checkpoint", None)
    if real is None:  # pragma: no cover - another diffusers
        yield
        return
    target = os.path.abspath(path)

    def read(link: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(link, (str, os.PathLike)) and os.path.abspath(link) == target:
            return state
        return real(link, *args, **kwargs)

    single_file.load_single_file_checkpoint = read
    try:
        yield
    finally:
        single_file.load_single_file_checkpoint = real


def _chain(e: BaseException) -> list[BaseException]:
    """``e`` and the exceptions it was raised from or during, outermost first."""
    out: list[BaseException] = []
    c: BaseException | None = e
    while c is not None and not any(c is o for o in out):
        out.append(c)
        c = c.__cause__ or c.__context__
    return out


def _cause(e: BaseException) -> str:
    """An exception in a line: its type and its message's most telling line (torch's
    safe-loader refusals run to a page; the line naming the global is the one that says,
    or the one after "WeightsUnpickler error:" where that ends its line: a damaged file's
    "Unsupported operand 0". Its first line is torch's advice to load the file with
    weights_only off, which would run whatever the file holds)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    bare = [i + 1 for i, ln in enumerate(lines[:-1]) if ln.endswith("WeightsUnpickler error:")]
    first = lines[bare[0]] if bare else lines[0] if lines else ""
    pick = next((ln for ln in lines if "Unsupported global" in ln), first)
    # "Unsupported global: GLOBAL numpy._core.multiarray.scalar", less torch's advice
    pick = pick.removeprefix("WeightsUnpickler error: ").split(" was not an allowed global")[0]
    return f"{type(e).__name__}: {pick[:300]}" if pick else type(e).__name__


def _single_file_error(p: Path, e: BaseException) -> str:
    """What went wrong loading a single-file checkpoint, the real cause first: diffusers
    wraps it (a safe-loader refusal read "Unable to load weights from checkpoint file")."""
    import pickle

    # (huggingface_hub.utils has them in every version taken; .errors only from 0.25)
    from huggingface_hub.utils import LocalEntryNotFoundError, OfflineModeIsEnabled  # type: ignore[attr-defined,unused-ignore]
    from safetensors import SafetensorError

    chain = _chain(e)
    for c in reversed(chain):  # innermost first: the cause, not diffusers' wrapping
        if isinstance(c, pickle.UnpicklingError):
            return (
                f"{p} is a pickled checkpoint with objects torch's safe loader refuses "
                f"({_cause(c)}); convert it to .safetensors"
            )
        if isinstance(c, SafetensorError):
            return f"{p} is not a readable .safetensors file, damaged or truncated? ({_cause(c)})"
    if any(isinstance(c, (LocalEntryNotFoundError, OfflineModeIsEnabled)) for c in chain):
        # the Hub's refusal names the repository whose config diffusers looked for
        import re

        found = (re.search(r"/api/models/([^/\s]+/[^/\s]+)/", str(c)) for c in chain)
        repo = next((f" ({m[1]})" for m in found if m), "")
        return (
            f"cannot load {p} offline: diffusers builds a single-file checkpoint from the "
            f"config of its model type{repo}, which is not in the local Hugging Face cache; "
            "convert it to a diffusers folder or cache its config"
        )
    # (not "offline": the config was found, and the checkpoint itself failed, a tensor
    # missing or of another shape)
    return (
        f"cannot load {p}: diffusers could not build a pipeline from this single-file "
        f"checkpoint ({_cause(e)}); is it a whole Stable Diffusion checkpoint? Converting "
        "it to a diffusers folder says more"
    )


#: what the tensor names of LoRA files hold (kohya's, diffusers' and peft's formats)
_LORA_MARKS = ("lora_unet_", "lora_te", ".lora_A.", ".lora_B.", ".lora_down.", "lora.down")


def _not_a_checkpoint(p: Path, keys: list[str]) -> str | None:
    """Why tensors named ``keys`` are not a Stable Diffusion checkpoint, or None: a LoRA
    (or any other file) given as the model was reported as a config missing from the
    local Hugging Face cache, or, with it cached, as a text encoder that failed to load,
    naming neither."""
    if any(m in k for k in keys for m in _LORA_MARKS):
        return f"model path {p} is a LoRA, not a model: list it under model.lora"
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        return (
            f"model path {p} is not a Stable Diffusion checkpoint "
            "(no model.diffusion_model.* tensors)"
        )
    return None


def _safetensors_keys(p: Path) -> list[str] | None:
    """The tensor names in a ``.safetensors`` file's header, or None where it does not read
    (diffusers' load then says it is damaged)."""
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            return list(f.keys())
    except Exception:  # noqa: BLE001 - any failure to read it is reported by the load
        return None


def _load_single_file(cls: Any, p: Path, dtype: Any, *, pickled: bool) -> Any:
    """A pipeline from a single ``.safetensors`` checkpoint, or a pickled ``.ckpt`` the
    user trusts (read here: :func:`_read_pickled`). Its tensor names are looked at first
    (:func:`_not_a_checkpoint`)."""
    state = _read_pickled(p, f"model path {p}") if pickled else None
    keys = list(state) if state is not None else _safetensors_keys(p)
    problem = None if keys is None else _not_a_checkpoint(p, keys)
    if problem:
        raise ValueError(problem)
    with contextlib.ExitStack() as stack:
        # (diffusers read MODEL.SafeTensors as a pickle, and failed: "Unable to load
        # weights", which was reported as a missing offline config); its link made
        # before the load's errors are read as the checkpoint's
        try:
            path = p if pickled else stack.enter_context(_as_safetensors_name(p))
        except OSError as e:  # (the link or copy: said with the model's path, as a LoRA's)
            raise ValueError(f"model path {p}: {error_text(e)}") from e
        return _from_single_file(cls, p, path, state, dtype)


def _from_single_file(cls: Any, p: Path, path: Path, state: Any, dtype: Any) -> Any:
    """``cls.from_single_file`` of ``path`` (``p``, or a link to it), offline, ``p`` read
    as ``state`` where given; its failures named as :func:`_single_file_error` says."""
    try:
        with _offline(), _checkpoint_read_as(p, state):
            return cls.from_single_file(str(path), torch_dtype=dtype, local_files_only=True)
    except Exception as e:  # diffusers raises several types when a config is missing
        raise ValueError(_single_file_error(p, e)) from e


def _check_tokenizer(pipe: Any) -> None:
    """Refuse a tokenizer the text encoder cannot use. From a diffusers folder without its
    tokenizer files transformers builds one of 2 tokens that reads up to 1e30: the model
    loaded, and the first frame failed with an OverflowError after the run folder was
    written."""
    tok, text = getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)
    if tok is None or text is None:
        raise ValueError(f"no {'tokenizer' if tok is None else 'text encoder'}")
    positions = getattr(text.config, "max_position_embeddings", None)
    vocab = getattr(text.config, "vocab_size", None)
    longest = tok.model_max_length
    if not isinstance(longest, int) or not (
        3 <= longest <= (positions if isinstance(positions, int) else 10**6)
    ):
        shown = f"{longest:.6g}" if isinstance(longest, (int, float)) else repr(longest)
        raise ValueError(
            f"the tokenizer reads {shown} tokens at most, the text encoder {positions} "
            "(is the tokenizer folder missing or damaged?)"
        )
    if isinstance(vocab, int) and len(tok) > vocab:
        raise ValueError(
            f"the tokenizer has {len(tok)} tokens, the text encoder {vocab}: not its tokenizer"
        )
    special = set(tok.all_special_ids)
    ids = tok("a photo of a castle", add_special_tokens=False).input_ids
    if all(i in special for i in ids):
        raise ValueError(
            f"the tokenizer ({len(tok)} tokens) reads text as unknown tokens only "
            "(is the tokenizer folder missing or damaged?)"
        )


def _check_loras(lora: list[dict[str, Any]], allow_pickle: bool) -> list[tuple[Path, float]]:
    out = []
    if not isinstance(lora, (list, tuple)):
        raise TypeError(
            f"lora must be a list of {{'path': file, 'scale': weight}}; got {lora!r:.60}"
        )
    for k, e in enumerate(lora):
        if not isinstance(e, dict) or not isinstance(e.get("path"), (str, os.PathLike)):
            raise TypeError(f"lora[{k}] must be {{'path': file, 'scale': weight}}; got {e!r:.60}")
        unknown = sorted(set(e) - {"path", "scale"}, key=str)
        if unknown:  # a misspelt scale was ignored (scale 1)
            raise ValueError(f"lora[{k}]: unknown key {unknown[0]!r} (known: path, scale)")
        if not str(e["path"]).strip():
            raise ValueError(f"lora[{k}]: path is empty")
        scale = e.get("scale", 1.0)
        # a real number of any kind, as img2img takes (np.float32 was refused; 10**400
        # raised an OverflowError naming nothing)
        if not _is_real(scale) or not math.isfinite(to_float(scale)):
            raise ValueError(f"lora[{k}]: scale must be a finite number; got {scale!r:.60}")
        p, scale = Path(e["path"]), to_float(scale)
        try:
            found = p.is_file()
        except OSError as err:  # a name too long for the system: an OSError naming nothing
            raise ValueError(f"lora[{k}]: {str(p)!r:.200}: {err.strerror or err}") from None
        if not found:
            raise ValueError(
                f"lora[{k}]: {str(p)!r} is not a local file (loopwave never downloads models)"
            )
        # the suffix in any case, as the model's (Style.SafeTensors was called pickled)
        if p.suffix.lower() != ".safetensors" and not allow_pickle:
            raise ValueError(
                f"lora[{k}]: {p} is not a .safetensors file; other formats are pickled and "
                "can run code when loaded (if you trust it: model.allow_pickle = true in the "
                "settings, allow_pickle=True in Python)"
            )
        out.append((p, scale))
    return out


@contextlib.contextmanager
def _as_safetensors_name(p: Path) -> Iterator[Path]:
    """``p``, or a link to it named ``*.safetensors``: diffusers reads a LoRA or a
    single-file checkpoint as safetensors (a LoRA with its adapter metadata) only by that
    exact suffix, and read ``Style.SafeTensors`` as a pickle. A hard link where symbolic
    ones are not allowed, a copy where neither is (a checkpoint of gigabytes: say so)."""
    if p.suffix == ".safetensors":
        yield p
        return
    import shutil

    with tempfile.TemporaryDirectory(prefix="loopwave-lora-") as d:
        alias = Path(d) / (p.stem + ".safetensors")
        try:
            alias.symlink_to(p.resolve())
        except OSError:
            try:
                os.link(p, alias)
            except OSError:
                try:
                    shutil.copyfile(p, alias)
                except OSError as e:
                    raise OSError(
                        e.errno,
                        "diffusers reads a .safetensors file by that exact suffix, and a "
                        f"link or copy of {p.name} named so could not be made in "
                        f"{tempfile.gettempdir()} ({e.strerror or e}); rename the file to "
                        "end in .safetensors",
                    ) from e
        yield alias


def _apply_loras(pipe: Any, loras: list[tuple[Path, float]]) -> None:
    if not loras:
        return
    try:
        import peft
    except ImportError:
        raise ImportError("LoRA files need peft: pip install peft") from None
    from diffusers.utils import USE_PEFT_BACKEND  # type: ignore[attr-defined,unused-ignore]

    if not USE_PEFT_BACKEND:  # peft too old for this diffusers: "PEFT backend is required"
        import diffusers
        from packaging.version import Version

        need = getattr(diffusers.utils.constants, "MIN_PEFT_VERSION", None)
        if need and Version(peft.__version__) >= Version(need):  # installed since
            raise ImportError(
                "LoRA files need peft, installed after diffusers was imported (diffusers "
                "looks for it once): restart Python"
            )
        raise ImportError(
            f"LoRA files need a peft this diffusers ({diffusers.__version__}) takes"
            + (f", {need} or later" if need else "")
            + f"; peft {peft.__version__} is too old: pip install -U peft"
        )
    names = [f"lora{k}" for k in range(len(loras))]
    for name, (p, _) in zip(names, loras, strict=True):
        what = f"lora: cannot load {p}"
        try:
            if p.suffix.lower() != ".safetensors":  # pickled, allowed: read here
                state = _read_pickled(p, what)
                with _offline():
                    pipe.load_lora_weights(state, adapter_name=name)
            else:
                with _as_safetensors_name(p) as f, _offline():
                    pipe.load_lora_weights(str(f.parent), weight_name=f.name, adapter_name=name)
        except _load_errors() as e:  # corrupt, or not a LoRA of this model
            if str(e).startswith(what):
                raise
            raise ValueError(f"{what}: {error_text(e)}") from e
    try:
        pipe.set_adapters(names, adapter_weights=[s for _, s in loras])
    except ValueError as e:  # a file with no LoRA tensors for this model loads as nothing
        files = ", ".join(str(p) for p, _ in loras)
        raise ValueError(f"lora: no LoRA weights for this model in {files} ({e})") from None
