"""The UNet and VAE as exported graphs: ONNX export, an onnxruntime runner and TensorRT engines.

The denoising loop spends nearly all of its time in the UNet. This module
exports a diffusers UNet to ONNX (dynamic batch; height and width fixed or
dynamic) and puts a runner in the pipeline's ``unet`` slot
(:func:`external_unet`), so the rest of diffusers — scheduler, guidance,
VAE, text encoder — runs unchanged. Optionally the VAE's encoder and decoder
go the same way (:func:`export_vae`, :func:`use_vae_runners`): they are the
rest of a loopback frame's critical path (one encode and one decode per
frame). Two runners, for any of these graphs:

* :class:`OrtRunner` — onnxruntime (its CUDA execution provider when
  installed, else the CPU).
* :class:`TrtRunner` — a TensorRT engine built from the ONNX file (fp16 by
  default), cached on disk under a key of the model's hash, the shape profile,
  the precision, the TensorRT version and the GPU (:func:`engine_key`); a
  second run with the same cache folder loads the cached engine instead of
  building for minutes.

What was verified where: the exports, their parity with torch, the ORT
runners inside a full img2img call and the cache key are tested on the CPU
(``tests/test_trt.py``, tiny UNet and VAE under onnxruntime). :class:`TrtRunner`'s
own Python (the cache path, builder flags, profile shapes, its checks of devices)
is tested against a stand-in for the ``tensorrt`` package that records what it is
asked and builds nothing. The TensorRT build and run themselves need a GPU with
the ``tensorrt`` package; their test is skipped without one, and no machine of
this project has had both, so that path has not been run.

Example
-------
>>> from loopwave.backends import smoke_backend                       # doctest: +SKIP
>>> b = smoke_backend()                                               # doctest: +SKIP
>>> onnx = export_unet(b.pipe.unet, "unet.onnx", height=512, width=512)  # doctest: +SKIP
>>> use_runner(b, OrtRunner(onnx))                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import check_opset
from .backends import DiffusersBackend, _deps, compiled_parts
from .png import clear_tmp

__all__ = [
    "OrtRunner",
    "ShapeProfile",
    "TrtRunner",
    "VaeProfile",
    "check_exported",
    "engine_key",
    "export_unet",
    "export_vae",
    "external_unet",
    "file_hash",
    "graph_hash",
    "use_exported",
    "use_runner",
    "use_vae_runners",
]

#: how a part of the model runs: in torch, as ONNX under onnxruntime, or as a TensorRT engine
RUNTIMES = ("torch", "onnx", "tensorrt")

INPUTS = ("sample", "timestep", "encoder_hidden_states")
OUTPUT = "out_sample"
# the VAE's two graphs: encoder image -> moments (before quant_conv), decoder latent
# (after post_quant_conv) -> image
VAE_ENCODER = ("image", "moments")
VAE_DECODER = ("latent", "decoded")


def _unet_wrapper(unet: Any) -> Any:
    torch, _ = _deps()

    class Wrapped(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample: Any, timestep: Any, encoder_hidden_states: Any) -> Any:
            return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    return Wrapped()


def export_unet(
    unet: Any,
    path: str | os.PathLike[str],
    *,
    height: int = 512,
    width: int = 512,
    dynamic_size: bool = False,
    opset: int = 17,
    scale: int = 8,
) -> Path:
    """Export ``unet`` (a diffusers ``UNet2DConditionModel``) to ONNX at ``path``.

    Inputs ``sample`` (B, C, H/s, W/s), ``timestep`` (B,) float32 and
    ``encoder_hidden_states`` (B, 77, D); output ``out_sample``; ``s`` is the VAE's
    ``scale`` (:func:`vae_scale`: 8 for Stable Diffusion). The batch is dynamic (2
    with classifier-free guidance, 1 without); ``dynamic_size`` makes the latent
    height and width dynamic too, any size the UNet takes. Exported in float32;
    TensorRT builds fp16 from it."""
    torch, _ = _deps()
    _check_export_args(height, width, opset, scale)
    _check_has_weights(unet, "unet")
    cfg = unet.config
    dev = next(unet.parameters()).device
    lh, lw = height // scale, width // scale
    if dynamic_size:
        # traced at a latent size its up-sampling factor does not divide: diffusers then
        # passes each up-sampling layer its skip connection's size, and the trace keeps
        # those sizes as the input's; at a multiple it doubles sizes, which the graph
        # then holds for every input (a graph traced at 64 refused latents 9 and 11)
        up = 2 ** (len(cfg.block_out_channels) - 1)
        lh += lh % up == 0
    g = torch.Generator().manual_seed(0)  # not the host's random numbers
    args = (
        torch.randn(2, cfg.in_channels, lh, lw, generator=g).to(dev),
        torch.tensor([500.0, 500.0], device=dev),
        torch.randn(2, 77, cfg.cross_attention_dim, generator=g).to(dev),
    )
    batch = {0: "batch"}
    axes: dict[str, dict[int, str]] = {name: dict(batch) for name in (*INPUTS, OUTPUT)}
    if dynamic_size:
        for name in ("sample", OUTPUT):
            axes[name].update({2: "latent_height", 3: "latent_width"})
    with _as_float32(unet):
        return _export(_unet_wrapper(unet).eval(), args, Path(path), INPUTS, OUTPUT, axes, opset)


@contextlib.contextmanager
def _as_float32(module: Any) -> Iterator[None]:
    """``module`` in float32 for the export, then back in its own dtype (fp16 -> fp32 -> fp16
    is exact), so that exporting does not change the caller's model."""
    torch, _ = _deps()
    dtype = next(module.parameters()).dtype
    if dtype == torch.float32:
        yield
        return
    # torch's own `to`: diffusers' override warns about modules to keep in float32
    torch.nn.Module.to(module, torch.float32)
    try:
        yield
    finally:
        torch.nn.Module.to(module, dtype)


def _check_export_args(height: Any, width: Any, opset: Any, multiple: Any) -> None:
    """Sizes in pixels, multiples of ``multiple`` (the VAE's scale, checked too), and the
    opset unless None."""
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"scale must be a positive int; got {multiple!r}")
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < multiple or v % multiple:
            raise ValueError(f"{name} must be a positive multiple of {multiple}; got {v!r}")
    if opset is not None:
        check_opset(opset)


def _check_has_weights(module: Any, arg: str) -> None:
    """Refuse to export a stand-in that calls a runner: it has no weights (export_unet
    raised a bare StopIteration on one; export_vae traced the runner's output into a
    graph with no inputs, which failed only when a frame used it)."""
    if _external(module):
        raise ValueError(
            f"{arg} already runs an exported graph (use_exported / use_runner): export "
            "from a backend with the model's own weights"
        )


def _export(
    module: Any,
    args: tuple[Any, ...],
    out: Path,
    inputs: tuple[str, ...],
    output: str,
    axes: dict[str, dict[int, str]],
    opset: int,
) -> Path:
    """``torch.onnx.export`` (TorchScript exporter) to a temporary name, then renamed."""
    torch, _ = _deps()
    if out.is_dir():
        raise OSError(f"out: cannot write to {out}: it is a folder")
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with torch.inference_mode():
            torch.onnx.export(
                module,
                args,
                str(tmp),
                input_names=list(inputs),
                output_names=[output],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )

    _write_into_place(out, write)
    return out


def _write_into_place(out: Path, write: Callable[[Path], object]) -> None:
    """``write`` a file at a temporary name of this process's own (two renders sharing a
    cache folder do not write into one file), then rename it to ``out``; a write that
    fails (a full disk, Ctrl-C) leaves no temporary file behind."""
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    clear_tmp(tmp)  # (a link there: the engine went through it; a review)
    try:
        write(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def vae_scale(vae: Any) -> int:
    """How many pixels one latent cell spans (8 for Stable Diffusion's VAE)."""
    return int(2 ** (len(vae.config.block_out_channels) - 1))


def export_vae(
    vae: Any,
    directory: str | os.PathLike[str],
    *,
    height: int = 512,
    width: int = 512,
    dynamic_size: bool = False,
    opset: int = 17,
) -> tuple[Path, Path]:
    """Export the encoder and decoder of ``vae`` (a diffusers ``AutoencoderKL``) to
    ``directory/vae_encoder.onnx`` and ``directory/vae_decoder.onnx``.

    The encoder graph takes ``image`` (B, 3, H, W) in [-1, 1] and gives ``moments``
    (B, 2 x latent channels, H/s, W/s) before ``quant_conv``; the decoder takes
    ``latent`` (B, latent channels, H/s, W/s) after ``post_quant_conv`` and gives
    ``decoded`` (B, 3, H, W), with ``s`` the VAE's scale (:func:`vae_scale`). The
    small 1x1 quantisation convolutions stay in torch, so the graphs stand in exactly
    for ``vae.encoder`` and ``vae.decoder`` (:func:`use_vae_runners`). The batch is
    dynamic, the size fixed unless ``dynamic_size``. Exported in float32."""
    torch, _ = _deps()
    scale = vae_scale(vae)
    _check_export_args(height, width, opset, scale)
    for part in ("encoder", "decoder"):
        _check_has_weights(getattr(vae, part, None), f"vae.{part}")
    out = Path(directory)
    dev = next(vae.parameters()).device
    latent = vae.config.latent_channels
    spatial = {2: "height", 3: "width"} if dynamic_size else {}
    paths = []
    g = torch.Generator().manual_seed(0)  # not the host's random numbers
    for part, (inp, outp), x in (
        ("encoder", VAE_ENCODER, torch.randn(1, 3, height, width, generator=g).to(dev)),
        (
            "decoder",
            VAE_DECODER,
            torch.randn(1, latent, height // scale, width // scale, generator=g).to(dev),
        ),
    ):
        axes = {name: {0: "batch", **spatial} for name in (inp, outp)}
        module = getattr(vae, part)
        with _as_float32(module):
            paths.append(_export(module, (x,), out / f"vae_{part}.onnx", (inp,), outp, axes, opset))
    return paths[0], paths[1]


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file."""
    h = hashlib.sha256()
    _hash_into(h, Path(path))
    return h.hexdigest()


def _hash_into(h: Any, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def graph_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of an ONNX model with its weights (the model part of an engine's cache key).

    A graph over 2 GB (SD 1.5's UNet in float32) is exported with its weights in
    external files beside it, which the ``.onnx`` file only names: those files are
    hashed too, in name order, so new weights make a new key."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: no such file {p}")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except MemoryError:
        raise
    except Exception as e:  # protobuf's DecodeError and the like
        raise ValueError(f"{p} is not a readable ONNX graph ({e})") from e
    names = sorted(
        {
            e.value
            for t in model.graph.initializer
            if uses_external_data(t)
            for e in t.external_data
            if e.key == "location"
        }
    )
    h = hashlib.sha256()
    _hash_into(h, p)
    for name in names:
        h.update(name.encode() + b"\0")
        _hash_into(h, p.parent / name)
    return h.hexdigest()


def _check_range(name: str, r: Any) -> None:
    """A (min, opt, max) triple of ints with 1 <= min <= opt <= max."""
    ok = (
        isinstance(r, tuple)
        and len(r) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
    )
    if not ok or not 1 <= r[0] <= r[1] <= r[2]:
        raise ValueError(
            f"{name} must be (min, opt, max) ints with 1 <= min <= opt <= max; got {r!r}"
        )


@dataclass(frozen=True)
class ShapeProfile:
    """The shapes a TensorRT engine accepts: batch and latent size ranges (min, opt, max)."""

    batch: tuple[int, int, int] = (1, 2, 2)
    latent_height: tuple[int, int, int] = (64, 64, 64)
    latent_width: tuple[int, int, int] = (64, 64, 64)
    text_len: int = 77

    def __post_init__(self) -> None:
        for name in ("batch", "latent_height", "latent_width"):
            _check_range(name, getattr(self, name))
        if isinstance(self.text_len, bool) or not isinstance(self.text_len, int):
            raise TypeError(f"text_len must be an int; got {self.text_len!r}")
        if self.text_len < 1:
            raise ValueError(f"text_len must be >= 1; got {self.text_len}")

    @classmethod
    def fixed(cls, height: int, width: int, batch: int = 2, scale: int = 8) -> ShapeProfile:
        """One image size (pixels, multiples of the VAE's ``scale``), batch 1 to ``batch``."""
        _check_export_args(height, width, None, scale)
        return cls((1, batch, batch), (height // scale,) * 3, (width // scale,) * 3)

    def shapes(self, network: Any) -> dict[str, list[tuple[int, ...]]]:
        """The (min, opt, max) shape of each of the UNet graph's inputs."""
        _check_inputs(network, (INPUTS,), "ShapeProfile", "the UNet graph")
        b, lh, lw = self.batch, self.latent_height, self.latent_width
        channels = network.get_input(0).shape[1]
        dim = network.get_input(2).shape[2]
        return {
            "sample": [(b[k], channels, lh[k], lw[k]) for k in range(3)],
            "timestep": [(b[k],) for k in range(3)],
            "encoder_hidden_states": [(b[k], self.text_len, dim) for k in range(3)],
        }


@dataclass(frozen=True)
class VaeProfile:
    """The shapes a VAE encoder or decoder engine accepts: batch and image size ranges
    (min, opt, max) in pixels, and the VAE's scale (pixels per latent cell)."""

    batch: tuple[int, int, int] = (1, 1, 1)
    height: tuple[int, int, int] = (512, 512, 512)
    width: tuple[int, int, int] = (512, 512, 512)
    scale: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 1:
            raise ValueError(f"scale must be a positive int; got {self.scale!r}")
        for name in ("batch", "height", "width"):
            _check_range(name, getattr(self, name))
        if any(v % self.scale for v in (*self.height, *self.width)):
            raise ValueError(f"height and width must be multiples of scale ({self.scale})")

    @classmethod
    def fixed(cls, height: int, width: int, scale: int = 8, batch: int = 1) -> VaeProfile:
        """One image size (pixels), batch 1 to ``batch``."""
        return cls((1, batch, batch), (height,) * 3, (width,) * 3, scale)

    def shapes(self, network: Any) -> dict[str, list[tuple[int, ...]]]:
        """The (min, opt, max) shape of the VAE graph's one input (``image`` or ``latent``)."""
        wanted = ((VAE_ENCODER[0],), (VAE_DECODER[0],))
        (name,) = _check_inputs(network, wanted, "VaeProfile", "a VAE encoder or decoder graph")
        b, h, w, s = self.batch, self.height, self.width, self.scale
        if name == VAE_ENCODER[0]:
            return {name: [(b[k], 3, h[k], w[k]) for k in range(3)]}
        channels = network.get_input(0).shape[1]
        return {name: [(b[k], channels, h[k] // s, w[k] // s) for k in range(3)]}


def _check_inputs(
    network: Any, wanted: tuple[tuple[str, ...], ...], profile: str, graph: str
) -> tuple[str, ...]:
    """The graph's input names, which must be one of ``wanted``: a profile for another
    kind of graph is refused (a ShapeProfile with a VAE graph raised an IndexError; a
    VaeProfile with the UNet's shaped its first input only)."""
    names = tuple(network.get_input(i).name for i in range(network.num_inputs))
    if names not in wanted:
        raise ValueError(
            f"profile: a {profile} is for {graph} (inputs "
            f"{' or '.join(map(str, map(list, wanted)))}); this graph's inputs are {list(names)}"
        )
    return names


def engine_key(
    model_hash: str,
    profile: ShapeProfile | VaeProfile,
    trt_version: str,
    gpu: str,
    *,
    fp16: bool = True,
) -> str:
    """The cache key of an engine: everything that makes an engine unusable if it changes
    (the precision too: an fp32 engine asked for, against fp16 overflow, must not be an
    fp16 one built before)."""
    shapes = {"kind": type(profile).__name__, **asdict(profile)}
    blob = json.dumps(
        {
            "model": model_hash,
            "profile": shapes,
            "trt": trt_version,
            "gpu": gpu,
            "precision": "fp16" if fp16 else "fp32",
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cuda_index(dev: Any) -> int:
    """A CUDA device's index: ``cuda`` alone is the current device, as torch places it."""
    if dev.index is not None:
        return int(dev.index)
    torch, _ = _deps()
    return int(torch.cuda.current_device())


class OrtRunner:
    """Runs an exported graph (UNet, VAE encoder or decoder) with onnxruntime. Called with
    the graph's inputs in order, as torch tensors; returns its output as a tensor on the
    first input's device, in its dtype.

    ``device``: the torch device of the model it stands in for. A CUDA one runs the graph
    on that GPU (``device_id``), and warns where onnxruntime has no CUDA provider (the
    ``onnxruntime`` package is CPU-only; ``onnxruntime-gpu`` has it), since the graph then
    runs on the CPU; a CPU one runs it on the CPU. None: the GPU first when present.
    ``providers`` overrides the choice."""

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        *,
        providers: list[Any] | None = None,
        device: Any = None,
    ):
        import onnxruntime as ort  # type: ignore[import-untyped]

        p = Path(onnx_path)
        if not p.is_file():
            raise ValueError(f"onnx_path: no such file {p}")
        dev = None
        if device is not None:
            torch, _ = _deps()
            try:
                dev = torch.device(device)
            except (RuntimeError, TypeError) as e:  # (torch's own words name no argument)
                raise ValueError(f"device: not a torch device: {device!r:.60} ({e})") from None
        have = ort.get_available_providers()
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if "CUDAExecutionProvider" in have and (dev is None or dev.type == "cuda"):
                gpu = {} if dev is None else {"device_id": _cuda_index(dev)}
                providers.insert(0, ("CUDAExecutionProvider", gpu))
        try:
            self.session = ort.InferenceSession(str(p), providers=providers)
        except MemoryError:
            raise
        except Exception as e:  # onnxruntime's own errors (InvalidProtobuf, ...) are not typed
            raise ValueError(f"onnx_path: {p} is not a loadable ONNX graph ({e})") from e
        self.path = p
        self.providers = self.session.get_providers()
        if dev is not None and dev.type == "cuda" and "CUDAExecutionProvider" not in self.providers:
            # (onnxruntime falls back to the CPU with a print to stdout at most)
            warnings.warn(
                f"{p.name} runs on the CPU, not {dev}: onnxruntime has no CUDA provider here "
                "(install onnxruntime-gpu in place of onnxruntime)",
                RuntimeWarning,
                stacklevel=2,
            )
        self.inputs = [x.name for x in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name

    def __call__(self, *inputs: Any) -> Any:
        torch, _ = _deps()
        if len(inputs) != len(self.inputs):
            raise TypeError(
                f"the graph takes {len(self.inputs)} inputs {self.inputs}; got {len(inputs)}"
            )
        feed = {
            n: t.detach().float().cpu().numpy() for n, t in zip(self.inputs, inputs, strict=True)
        }
        try:
            (out,) = self.session.run([self.output], feed)
        except MemoryError:
            raise
        except Exception as e:  # onnxruntime's InvalidArgument (wrong shapes) and the like
            shapes = {n: a.shape for n, a in feed.items()}
            raise ValueError(f"{self.path} refused inputs {shapes}: {e}") from e
        return torch.from_numpy(out).to(inputs[0].device, inputs[0].dtype)


class TrtRunner:
    """Runs a TensorRT engine built (or loaded from the cache) for an exported graph: the
    UNet with a :class:`ShapeProfile`, a VAE encoder or decoder with a :class:`VaeProfile`.
    Called like :class:`OrtRunner`, with CUDA tensors on the runner's ``device`` (by
    default the current CUDA device).

    Needs ``tensorrt`` (10.x) and a CUDA GPU. Not run on this project's
    development machine (no GPU); see the module docs."""

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        profile: ShapeProfile | VaeProfile,
        *,
        cache_dir: str | os.PathLike[str] = ".cache/loopwave/engines",
        fp16: bool = True,
        device: Any = None,
    ) -> None:
        torch, _ = _deps()
        if not isinstance(profile, (ShapeProfile, VaeProfile)):
            raise TypeError(f"profile must be a ShapeProfile or VaeProfile; got {profile!r}")
        if not isinstance(fp16, (bool, np.bool_)):
            raise TypeError(f"fp16 must be True or False; got {fp16!r:.40}")
        try:
            import tensorrt as trt  # type: ignore[import-not-found]
        except ImportError:
            raise ImportError("the TensorRT backend needs the tensorrt package") from None
        if not torch.cuda.is_available():
            raise ValueError("the TensorRT backend needs a CUDA GPU")
        dev = torch.device("cuda" if device is None else device)
        if dev.type != "cuda":
            raise ValueError(f"device: the TensorRT backend runs on a CUDA device; got {dev}")
        dev = torch.device("cuda", _cuda_index(dev))
        self.trt, self.torch, self.device = trt, torch, dev
        gpu = torch.cuda.get_device_name(dev)
        onnx = Path(onnx_path)
        key = engine_key(graph_hash(onnx), profile, trt.__version__, gpu, fp16=bool(fp16))
        self.path = Path(cache_dir) / f"{onnx.stem}-{key}.plan"
        logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(dev):  # TensorRT builds and loads on the current device
            if not self.path.is_file():
                self._build(onnx, profile, bool(fp16), logger)
            runtime = trt.Runtime(logger)
            self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise ValueError(f"cannot load the cached engine {self.path}; delete it to rebuild")
            self.context = self.engine.create_execution_context()
            # a stream of its own: on the default stream (torch's, unless the caller set
            # one) TensorRT 10 warns and synchronises around every enqueue
            self.stream = torch.cuda.Stream(dev)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        (self.output,) = (n for n in names if self.engine.get_tensor_mode(n) != mode)

    def _build(
        self, onnx: Path, profile: ShapeProfile | VaeProfile, fp16: bool, logger: Any
    ) -> None:
        trt = self.trt
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ValueError(f"TensorRT cannot parse {onnx}: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        opt = builder.create_optimization_profile()
        for name, (lo, best, hi) in profile.shapes(network).items():
            opt.set_shape(name, lo, best, hi)
        config.add_optimization_profile(opt)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ValueError(f"TensorRT could not build an engine from {onnx}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_into_place(self.path, lambda tmp: tmp.write_bytes(bytes(plan)))

    def __call__(self, *inputs: Any) -> Any:
        torch = self.torch
        if len(inputs) != len(self.inputs):
            raise TypeError(
                f"the engine takes {len(self.inputs)} inputs {self.inputs}; got {len(inputs)}"
            )
        # the engine reads and writes device memory at the addresses it is given: a CPU
        # tensor's address there is an illegal access (or a crash), not an error
        if any(t.device != self.device for t in inputs):
            where = [str(t.device) for t in inputs]
            raise ValueError(
                f"the TensorRT engine takes tensors on {self.device}; got them on {where}"
            )
        # float32 copies, made on the caller's stream; freed after the call, their memory
        # is reused only by work queued on that stream, which waits for the engine's
        # (torch's caching allocator is stream-ordered)
        feed = [t.float().contiguous() for t in inputs]
        for name, t in zip(self.inputs, feed, strict=True):
            if not self.context.set_input_shape(name, tuple(t.shape)):
                shapes = {n: tuple(x.shape) for n, x in zip(self.inputs, feed, strict=True)}
                raise ValueError(f"{self.path} refused inputs {shapes} (outside its profile)")
            self.context.set_tensor_address(name, t.data_ptr())
        shape = tuple(self.context.get_tensor_shape(self.output))
        out = torch.empty(shape, dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.output, out.data_ptr())
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)  # the inputs are written
        # the engine's device current, as TensorRT needs at enqueue (the render's thread
        # has device 0 current, whatever model.device says)
        with torch.cuda.device(self.device):
            ran = self.context.execute_async_v3(self.stream.cuda_stream)
        caller.wait_stream(self.stream)  # the output is written before the caller reads it
        if not ran:
            raise RuntimeError("TensorRT execution failed")
        return out.to(inputs[0].dtype)


def external_unet(unet: Any, runner: Any) -> Any:
    """A module for the pipeline's ``unet`` slot that calls ``runner`` instead of ``unet``."""
    torch, _ = _deps()

    class ExternalUNetModule(torch.nn.Module):  # type: ignore[misc,name-defined]
        """Stands in the pipeline's ``unet`` slot: the original's config, device and
        dtype, a forward that calls the runner (timesteps broadcast to the batch)."""

        def __init__(self) -> None:
            super().__init__()
            self.config = unet.config
            self._device = next(unet.parameters()).device
            self._dtype = next(unet.parameters()).dtype
            self.runner = runner

        @property
        def device(self) -> Any:
            return self._device

        @property
        def dtype(self) -> Any:
            return self._dtype

        def forward(
            self,
            sample: Any,
            timestep: Any,
            encoder_hidden_states: Any,
            *args: Any,
            return_dict: bool = True,
            **kwargs: Any,
        ) -> Any:
            extra = [k for k, v in kwargs.items() if v is not None]
            if args or extra:
                raise ValueError(
                    f"the exported UNet takes sample, timestep and text states only; got {extra}"
                )
            t = torch.as_tensor(timestep, device=sample.device).float().reshape(-1)
            t = t.expand(sample.shape[0]) if t.numel() == 1 else t
            out = self.runner(sample, t, encoder_hidden_states)
            return (out,) if not return_dict else type("Out", (), {"sample": out})()

    stand_in = ExternalUNetModule()
    stand_in.loopwave_external = True
    return stand_in


def _external(module: Any) -> bool:
    """Whether ``module`` is a stand-in that calls a runner (not the model's own)."""
    return bool(getattr(module, "loopwave_external", False))


def use_runner(backend: DiffusersBackend, runner: Any) -> DiffusersBackend:
    """Put ``runner`` (an :class:`OrtRunner` or :class:`TrtRunner`) in ``backend``'s UNet
    slot (in place of the runner there, when the slot already holds one)."""
    if not isinstance(backend, DiffusersBackend):
        raise TypeError(f"backend must be a DiffusersBackend; got {type(backend).__name__}")
    if not callable(runner):
        raise TypeError(f"runner must be an OrtRunner or TrtRunner; got {runner!r:.60}")
    if _external(backend.pipe.unet):  # it has no weights to stand in for again
        backend.pipe.unet.runner = runner
    else:
        backend.pipe.unet = external_unet(backend.pipe.unet, runner)
    # the graph's text input is one 77-token chunk (export_unet's, and the engines'
    # ShapeProfile.text_len): longer prompts are cut to it, with a warning
    backend.max_chunks = 1
    backend.label = f"{backend.label}, UNet via {type(runner).__name__}"
    return backend


def _vae_part(original: Any, runner: Any, part: str) -> Any:
    """A module for ``vae.encoder`` or ``vae.decoder`` that calls ``runner``."""
    torch, _ = _deps()
    param = next(original.parameters())

    class ExternalVaePart(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.runner = runner
            # an empty parameter, so the VAE still reports its device and dtype
            self.anchor = torch.nn.Parameter(
                torch.empty(0, dtype=param.dtype, device=param.device), requires_grad=False
            )

        def forward(self, sample: Any, latent_embeds: Any = None) -> Any:
            if latent_embeds is not None:
                raise ValueError(f"the exported VAE {part} takes no latent_embeds")
            return self.runner(sample)

    stand_in = ExternalVaePart()
    stand_in.loopwave_external = True
    return stand_in


def use_vae_runners(backend: DiffusersBackend, encoder: Any, decoder: Any) -> DiffusersBackend:
    """Put runners of the graphs from :func:`export_vae` in ``backend``'s VAE encoder and
    decoder slots (its ``quant_conv`` and ``post_quant_conv`` stay in torch)."""
    if not isinstance(backend, DiffusersBackend):
        raise TypeError(f"backend must be a DiffusersBackend; got {type(backend).__name__}")
    for name, runner in (("encoder", encoder), ("decoder", decoder)):
        if not callable(runner):
            raise TypeError(f"{name} must be a runner (OrtRunner or TrtRunner); got {runner!r}")
    vae = backend.pipe.vae
    if _external(vae.encoder):  # already runners: swap them (the stand-ins keep the dtype)
        vae.encoder.runner, vae.decoder.runner = encoder, decoder
    else:
        vae.encoder = _vae_part(vae.encoder, encoder, "encoder")
        vae.decoder = _vae_part(vae.decoder, decoder, "decoder")
    backend.label = f"{backend.label}, VAE via {type(encoder).__name__}"
    return backend


def check_exported(
    device: Any, *, unet: str = "torch", vae: str = "torch", compiled: Any = ()
) -> None:
    """What :func:`use_exported` would refuse, checked before a model is loaded or exported
    (each refusal came after minutes of either, and left a graph behind): a part both
    ``compiled`` (``torch.compile``) and exported, and where ``unet`` or ``vae`` is
    ``"tensorrt"``, a missing ``tensorrt`` package, a ``device`` that is not a CUDA one
    and a machine without CUDA."""
    for part, how in (("unet", unet), ("vae", vae)):
        if how not in RUNTIMES:
            raise ValueError(f"{part} must be one of {', '.join(RUNTIMES)}; got {how!r}")
        if how != "torch" and part in compiled:
            raise ValueError(
                f"{part}: compiled with torch.compile (accel's compile, or cuda_graphs, whose "
                f"graphs come from compiling the UNet), it cannot also run as {how}"
            )
    parts = [p for p, how in (("unet", unet), ("vae", vae)) if how == "tensorrt"]
    if not parts:
        return
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        raise ImportError(f"{parts[0]}: the TensorRT backend needs the tensorrt package")
    torch, _ = _deps()
    kind = "auto" if isinstance(device, str) and device == "auto" else torch.device(device).type
    if kind not in ("cuda", "auto"):
        raise ValueError(f"{parts[0]}: TensorRT engines run on a CUDA device; got {device}")
    if not torch.cuda.is_available():
        raise ValueError(f"{parts[0]}: TensorRT engines need a CUDA GPU; none is available")


def use_exported(
    backend: DiffusersBackend,
    *,
    unet: str = "torch",
    vae: str = "torch",
    height: int,
    width: int,
    directory: str | os.PathLike[str],
) -> DiffusersBackend:
    """Run ``backend``'s UNet and/or VAE as exported graphs: ``"onnx"`` (onnxruntime) or
    ``"tensorrt"`` (fp16 engines on a CUDA device, built once and cached in ``directory``);
    ``"torch"``
    leaves a part as it is. The ONNX files go to ``directory`` and are reused when already
    there, so ``directory`` must be the model's own (the renderer keys it by the model's
    files, LoRAs and the frame size). A part compiled with ``torch.compile`` cannot also be
    exported."""
    if not isinstance(backend, DiffusersBackend):
        raise TypeError(f"backend must be a DiffusersBackend; got {type(backend).__name__}")
    check_exported(backend.device, unet=unet, vae=vae, compiled=compiled_parts(backend.accel))
    for part, how in (("unet", unet), ("vae", vae)):
        slot = backend.pipe.unet if part == "unet" else backend.pipe.vae.encoder
        if how != "torch" and _external(slot):  # its weights are gone: nothing to export
            raise ValueError(
                f"{part}: this backend's {part} already runs as an exported graph; "
                "export from a fresh backend"
            )
    d = Path(directory)
    scale = vae_scale(backend.pipe.vae)
    if unet != "torch":
        onnx = d / "unet.onnx"
        if not onnx.is_file():
            export_unet(backend.pipe.unet, onnx, height=height, width=width, scale=scale)
        profile = ShapeProfile.fixed(height, width, scale=scale)
        use_runner(
            backend,
            OrtRunner(onnx, device=backend.device)
            if unet == "onnx"
            else TrtRunner(onnx, profile, cache_dir=d, device=backend.device),
        )
    if vae != "torch":
        graphs = (d / "vae_encoder.onnx", d / "vae_decoder.onnx")
        if not all(g.is_file() for g in graphs):
            graphs = export_vae(backend.pipe.vae, d, height=height, width=width)
        vprofile = VaeProfile.fixed(height, width, scale)
        enc, dec = (
            OrtRunner(g, device=backend.device)
            if vae == "onnx"
            else TrtRunner(g, vprofile, cache_dir=d, device=backend.device)
            for g in graphs
        )
        use_vae_runners(backend, enc, dec)
    return backend
