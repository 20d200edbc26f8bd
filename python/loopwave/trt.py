"""The UNet as an exported graph: ONNX export, an onnxruntime runner and a TensorRT engine.

The denoising loop spends nearly all of its time in the UNet. This module
exports a diffusers UNet to ONNX (dynamic batch; height and width fixed or
dynamic) and puts a runner in the pipeline's ``unet`` slot
(:func:`external_unet`), so the rest of diffusers — scheduler, guidance,
VAE, text encoder — runs unchanged. Two runners:

* :class:`OrtRunner` — onnxruntime (CUDA/TensorRT execution providers when
  installed, else the CPU).
* :class:`TrtRunner` — a TensorRT engine built from the ONNX file (fp16),
  cached on disk under a key of the model's hash, the shape profile, the
  TensorRT version and the GPU (:func:`engine_key`); a second run loads the
  cached engine instead of building for minutes.

What was verified where: the export, its parity with torch, the ORT runner
inside a full img2img call and the cache key are tested on the CPU
(``tests/test_trt.py``, tiny UNet under onnxruntime). The TensorRT build and
run need a GPU with the ``tensorrt`` package; their test is skipped without
one, and this project's development machine had neither, so that code path
has not been run here.

Example
-------
>>> from loopwave.backends import smoke_backend                       # doctest: +SKIP
>>> b = smoke_backend()                                               # doctest: +SKIP
>>> onnx = export_unet(b.pipe.unet, "unet.onnx", height=512, width=512)  # doctest: +SKIP
>>> use_runner(b, OrtRunner(onnx))                                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .backends import DiffusersBackend, _deps

__all__ = [
    "OrtRunner",
    "ShapeProfile",
    "TrtRunner",
    "engine_key",
    "export_unet",
    "external_unet",
    "file_hash",
    "use_runner",
]

INPUTS = ("sample", "timestep", "encoder_hidden_states")
OUTPUT = "out_sample"


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
) -> Path:
    """Export ``unet`` (a diffusers ``UNet2DConditionModel``) to ONNX at ``path``.

    Inputs ``sample`` (B, C, H/8, W/8), ``timestep`` (B,) float32 and
    ``encoder_hidden_states`` (B, 77, D); output ``out_sample``. The batch is
    dynamic (2 with classifier-free guidance, 1 without); ``dynamic_size`` makes
    the latent height and width dynamic too. Exported in float32; TensorRT
    builds fp16 from it."""
    torch, _ = _deps()
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 8 or v % 8:
            raise ValueError(f"{name} must be a positive multiple of 8; got {v!r}")
    if not isinstance(opset, int) or not 14 <= opset <= 21:
        raise ValueError(f"opset must be an int in 14..21; got {opset!r}")
    out = Path(path)
    cfg = unet.config
    dev = next(unet.parameters()).device
    args = (
        torch.randn(2, cfg.in_channels, height // 8, width // 8, device=dev),
        torch.tensor([500.0, 500.0], device=dev),
        torch.randn(2, 77, cfg.cross_attention_dim, device=dev),
    )
    batch = {0: "batch"}
    axes: dict[str, dict[int, str]] = {name: dict(batch) for name in (*INPUTS, OUTPUT)}
    if dynamic_size:
        for name in ("sample", OUTPUT):
            axes[name].update({2: "latent_height", 3: "latent_width"})
    wrapped = _unet_wrapper(unet.float()).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with torch.inference_mode():
        torch.onnx.export(
            wrapped,
            args,
            str(tmp),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    os.replace(tmp, out)
    return out


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (the model part of an engine's cache key)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ShapeProfile:
    """The shapes a TensorRT engine accepts: batch and latent size ranges (min, opt, max)."""

    batch: tuple[int, int, int] = (1, 2, 2)
    latent_height: tuple[int, int, int] = (64, 64, 64)
    latent_width: tuple[int, int, int] = (64, 64, 64)
    text_len: int = 77

    def __post_init__(self) -> None:
        for name in ("batch", "latent_height", "latent_width"):
            lo, opt, hi = getattr(self, name)
            if not (isinstance(lo, int) and 1 <= lo <= opt <= hi):
                raise ValueError(f"{name} must be (min, opt, max) with 1 <= min <= opt <= max")

    @classmethod
    def fixed(cls, height: int, width: int, batch: int = 2) -> ShapeProfile:
        """One image size (pixels), batch 1 to ``batch``."""
        return cls((1, batch, batch), (height // 8,) * 3, (width // 8,) * 3)


def engine_key(model_hash: str, profile: ShapeProfile, trt_version: str, gpu: str) -> str:
    """The cache key of an engine: everything that makes an engine unusable if it changes."""
    blob = json.dumps(
        {"model": model_hash, "profile": asdict(profile), "trt": trt_version, "gpu": gpu},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class OrtRunner:
    """Runs an exported UNet with onnxruntime (GPU providers first when present)."""

    def __init__(self, onnx_path: str | os.PathLike[str], *, providers: list[str] | None = None):
        import onnxruntime as ort  # type: ignore[import-untyped]

        p = Path(onnx_path)
        if not p.is_file():
            raise ValueError(f"onnx_path: no such file {p}")
        have = ort.get_available_providers()
        if providers is None:
            providers = [x for x in ("CUDAExecutionProvider", "CPUExecutionProvider") if x in have]
        self.session = ort.InferenceSession(str(p), providers=providers)
        self.providers = self.session.get_providers()

    def __call__(self, sample: Any, timestep: Any, encoder_hidden_states: Any) -> Any:
        torch, _ = _deps()
        feed = {
            "sample": sample.detach().float().cpu().numpy(),
            "timestep": timestep.detach().float().cpu().numpy(),
            "encoder_hidden_states": encoder_hidden_states.detach().float().cpu().numpy(),
        }
        (out,) = self.session.run([OUTPUT], feed)
        return torch.from_numpy(out).to(sample.device, sample.dtype)


class TrtRunner:
    """Runs a TensorRT engine built (or loaded from the cache) for an exported UNet.

    Needs ``tensorrt`` (10.x) and a CUDA GPU. Not run on this project's
    development machine (no GPU); see the module docs."""

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        profile: ShapeProfile,
        *,
        cache_dir: str | os.PathLike[str] = ".cache/loopwave/engines",
        fp16: bool = True,
    ) -> None:
        torch, _ = _deps()
        try:
            import tensorrt as trt  # type: ignore[import-not-found]
        except ImportError:
            raise ImportError("the TensorRT backend needs the tensorrt package") from None
        if not torch.cuda.is_available():
            raise ValueError("the TensorRT backend needs a CUDA GPU")
        self.trt, self.torch = trt, torch
        gpu = torch.cuda.get_device_name()
        key = engine_key(file_hash(onnx_path), profile, trt.__version__, gpu)
        self.path = Path(cache_dir) / f"unet-{key}.plan"
        logger = trt.Logger(trt.Logger.WARNING)
        if not self.path.is_file():
            self._build(Path(onnx_path), profile, fp16, logger)
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ValueError(f"cannot load the cached engine {self.path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()

    def _build(self, onnx: Path, profile: ShapeProfile, fp16: bool, logger: Any) -> None:
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
        b, lh, lw = profile.batch, profile.latent_height, profile.latent_width
        channels = network.get_input(0).shape[1]
        dim = network.get_input(2).shape[2]
        # (min, opt, max) shapes of each input
        shapes = [
            {
                "sample": (b[k], channels, lh[k], lw[k]),
                "timestep": (b[k],),
                "encoder_hidden_states": (b[k], profile.text_len, dim),
            }
            for k in range(3)
        ]
        for n in INPUTS:
            opt.set_shape(n, shapes[0][n], shapes[1][n], shapes[2][n])
        config.add_optimization_profile(opt)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ValueError(f"TensorRT could not build an engine from {onnx}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(bytes(plan))
        os.replace(tmp, self.path)

    def __call__(self, sample: Any, timestep: Any, encoder_hidden_states: Any) -> Any:
        torch = self.torch
        inputs = {
            "sample": sample.float().contiguous(),
            "timestep": timestep.float().contiguous(),
            "encoder_hidden_states": encoder_hidden_states.float().contiguous(),
        }
        for name, t in inputs.items():
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        out = torch.empty_like(inputs["sample"])
        self.context.set_tensor_address(OUTPUT, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return out.to(sample.dtype)


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

    return ExternalUNetModule()


def use_runner(backend: DiffusersBackend, runner: Any) -> DiffusersBackend:
    """Put ``runner`` (an :class:`OrtRunner` or :class:`TrtRunner`) in ``backend``'s UNet slot."""
    if not isinstance(backend, DiffusersBackend):
        raise TypeError(f"backend must be a DiffusersBackend; got {type(backend).__name__}")
    backend.pipe.unet = external_unet(backend.pipe.unet, runner)
    backend.label = f"{backend.label}, UNet via {type(runner).__name__}"
    return backend
