"""RIFE 4.x frame interpolation: our own PyTorch IFNet, ONNX export, onnxruntime backend.

The network follows one published RIFE 4.x "HDv3" IFNet layout: a small feature
head (``encode``: 3 -> 32 -> 32 -> 32 -> 8 channels at half resolution,
transposed back; so ``block0`` takes 7 + 16 channels), and four ``IFBlock`` s at
scales 8, 4, 2, 1 (192, 128, 96, 64 channels), each two strided convs, eight
residual convs with a learned per-channel ``beta``, and a transposed conv +
pixel shuffle that outputs a flow update (4 channels: to frame 0 and to frame
1) and a blend mask. Parameter names and shapes are the published ones, so a
``flownet.pkl`` state dict of this layout loads with :func:`load_state_dict_file`
(``weights_only=True``; a ``module.`` prefix from DataParallel is stripped). Not
every RIFE 4.x release has this layout: those with a 4-channel feature head or a
fifth block are refused, with a message naming the keys and shapes that differ.
Written from the published architecture; no code of the RIFE projects is reused.

What was verified here: the layer names/shapes, that a random-weight network
exported with :func:`export_onnx` (dynamic height, width and a timestep input)
gives the same output under onnxruntime as under torch, and padding/cropping.
What was not: interpolation quality with real RIFE weights (none are
downloaded in this project); those are the user's local files.

Needs the ``torch`` extra (and ``onnx`` for export / ``onnxruntime`` to run).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import check_opset, not_a_file
from .interpolate import Interpolator
from .png import clear_tmp

__all__ = [
    "OnnxRifeInterpolator",
    "TorchRifeInterpolator",
    "build_ifnet",
    "export_onnx",
    "load_state_dict_file",
]


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("RIFE needs PyTorch: pip install 'loopwave[torch]'") from e
    return torch


def build_ifnet() -> Any:
    """A RIFE 4.x IFNet ``torch.nn.Module`` (random weights)."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    def conv(cin: int, cout: int, stride: int = 1) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.2, True))

    class Head(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.cnn0 = nn.Conv2d(3, 32, 3, 2, 1)
            self.cnn1 = nn.Conv2d(32, 32, 3, 1, 1)
            self.cnn2 = nn.Conv2d(32, 32, 3, 1, 1)
            self.cnn3 = nn.ConvTranspose2d(32, 8, 4, 2, 1)
            self.act = nn.LeakyReLU(0.2, True)

        def forward(self, x: Any) -> Any:
            x = self.act(self.cnn0(x))
            x = self.act(self.cnn1(x))
            x = self.act(self.cnn2(x))
            return self.cnn3(x)

    class ResConv(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, 1, 1)
            self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
            self.act = nn.LeakyReLU(0.2, True)

        def forward(self, x: Any) -> Any:
            return self.act(self.conv(x) * self.beta + x)

    class IFBlock(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, cin: int, c: int) -> None:
            super().__init__()
            self.conv0 = nn.Sequential(conv(cin, c // 2, 2), conv(c // 2, c, 2))
            self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 6, 4, 2, 1), nn.PixelShuffle(2))

        def forward(self, x: Any, flow: Any, scale: float) -> tuple[Any, Any]:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            if flow is not None:
                f = (
                    F.interpolate(
                        flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False
                    )
                    / scale
                )
                x = torch.cat((x, f), 1)
            feat = self.convblock(self.conv0(x))
            out = F.interpolate(
                self.lastconv(feat), scale_factor=scale, mode="bilinear", align_corners=False
            )
            return out[:, :4] * scale, out[:, 4:5]

    def warp(img: Any, flow: Any) -> Any:
        """Backward warp: sample ``img`` at ``x + flow(x)`` (border padding)."""
        n, _, h, w = img.shape
        ys = torch.linspace(-1.0, 1.0, h, device=img.device, dtype=img.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=img.device, dtype=img.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        fx = flow[:, 0] * (2.0 / (w - 1))
        fy = flow[:, 1] * (2.0 / (h - 1))
        grid = torch.stack((gx.unsqueeze(0) + fx, gy.unsqueeze(0) + fy), dim=3)
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)

    class IFNet(nn.Module):  # type: ignore[misc,name-defined]
        """``forward(img0, img1, timestep, scale)``: images ``(N, 3, H, W)`` in [0, 1],
        timestep ``(N, 1, 1, 1)``; returns the interpolated ``(N, 3, H, W)``."""

        def __init__(self) -> None:
            super().__init__()
            self.block0 = IFBlock(7 + 16, 192)
            self.block1 = IFBlock(8 + 4 + 16, 128)
            self.block2 = IFBlock(8 + 4 + 16, 96)
            self.block3 = IFBlock(8 + 4 + 16, 64)
            self.encode = Head()

        def forward(self, img0: Any, img1: Any, timestep: Any, scale: float = 1.0) -> Any:
            t = timestep * torch.ones_like(img0[:, :1])
            f0, f1 = self.encode(img0), self.encode(img1)
            flow = mask = None
            w0, w1 = img0, img1
            for block, s in zip(
                (self.block0, self.block1, self.block2, self.block3),
                (8.0, 4.0, 2.0, 1.0),
                strict=True,
            ):
                s = s / scale
                if flow is None:
                    flow, mask = block(torch.cat((img0, img1, f0, f1, t), 1), None, s)
                else:
                    wf0, wf1 = warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4])
                    d, mask = block(torch.cat((w0, w1, wf0, wf1, t, mask), 1), flow, s)
                    flow = flow + d
                w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
            m = torch.sigmoid(mask)
            return (w0 * m + w1 * (1 - m)).clamp(0, 1)

    return IFNet()


def _ifnet_for(checkpoint: str | os.PathLike[str] | None) -> Any:
    """An IFNet with the checkpoint's weights (random without one). With a checkpoint,
    the throwaway initial weights are drawn without using up the host program's random
    numbers (torch's global generator: its next numbers after an export changed). Built
    one at a time with the models of :mod:`loopwave.backends`, which seed that generator
    (a RIFE built on another thread drew from it between a smoke model's draws, whose
    weights then changed, and two overlapping forks restored each other's state)."""
    from .backends import _BUILD_LOCK

    with _BUILD_LOCK:
        if checkpoint is None:
            return build_ifnet()
        with _torch().random.fork_rng(devices=[]):
            model = build_ifnet()
    load_state_dict_file(model, checkpoint)
    return model


def _load_error(p: Path, e: Exception) -> str:
    """What ``torch.load(p, weights_only=True)`` found wrong, without its advice: for any
    file its safe loader cannot read (an ONNX model, random bytes, a pickle holding
    code), torch says that loading it unsafely "will likely succeed", asks for an issue
    to be filed or names its allow-list calls, none of which loopwave offers. What the
    loader stopped at is the error torch's own is raised from (its context), whose first
    sentence names it ("Unsupported operand 8", "Trying to load unsupported GLOBAL
    posix.system whose module posix is blocked", "Unsupported global: GLOBAL
    argparse.Namespace was not an allowed global by default"). An empty file, a file of
    neither of torch.save's forms (a text file: torch said "KeyError: 101") and a damaged
    zip archive are named as such."""
    text = str(e)
    try:
        with p.open("rb") as f:
            head: bytes | None = f.read(8)
    except OSError:
        head = None
    if head == b"":  # (torch said "EOFError: ", nothing more)
        return "the file is empty"
    if "Weights only load failed" in text:
        inner = str(e.__context__ or "").strip()
        found = re.split(r"(?<=\.)\s+(?=[A-Z])", inner, maxsplit=1)[0].removesuffix(".")
        if not found:  # (another torch's wording: the part its message quotes)
            cut = text.partition("WeightsUnpickler error:")[2].partition("Check the documentation")
            found = " ".join(cut[0].split())
        text = f"torch's safe loader stopped at: {found or 'an entry it does not read'}; "
        text += "loopwave never runs code a checkpoint holds"
    elif head is not None and not head.startswith((b"PK", b"\x80")):
        # neither of torch.save's forms: a text file gave "KeyError: 101" (its first
        # byte, read as a pickle opcode)
        text = f"not a file torch.save writes (a zip archive or a pickle): it begins {head!r}"
    elif head is not None and head.startswith(b"PK") and "zip archive" in text:
        # torch's first sentence ("...failed reading zip archive: failed finding central
        # directory"), without its paragraph on how a file comes to be damaged
        text = text.split(". ", 1)[0].removesuffix(".") + "; the file is damaged or cut short"
    else:
        text = f"{type(e).__name__}: {text}"
    if p.suffix.lower() == ".onnx":
        text += (
            "; an ONNX model needs no export: use it as it is, with `loopwave interpolate "
            '--model` or interpolation.backend = "rife" and interpolation.model'
        )
    return text


def load_state_dict_file(model: Any, path: str | os.PathLike[str]) -> Any:
    """Load a RIFE ``flownet.pkl`` (or any state dict file) safely into ``model``.

    ``weights_only=True``: no pickled code runs. Keys may carry DataParallel's
    ``module.`` prefix. Missing, unexpected or mis-shaped parameters are refused
    with a ``ValueError`` that lists them.
    """
    torch = _torch()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path to a state dict file; got {path!r:.60}")
    p = Path(path)
    if p.is_dir():
        raise OSError(f"checkpoint: {p} is a folder; name the flownet.pkl file in it")
    if not p.is_file():
        raise OSError(f"checkpoint: no such file {p}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise ValueError(
            f"checkpoint: {p} is not a loadable state dict ({_load_error(p, e)})"
        ) from e
    if not isinstance(sd, Mapping):
        raise ValueError(f"checkpoint: {p} does not hold a state dict (got {type(sd).__name__})")
    odd = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise ValueError(
            f"checkpoint: {p} is not a state dict of named tensors (e.g. the entry {odd[0]!r})"
        )
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    bad = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or extra or bad:
        raise ValueError(
            f"checkpoint: {p} does not match the RIFE 4.x IFNet layout: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} unexpected "
            f"(e.g. {extra[:3]}), {len(bad)} with other shapes (e.g. {bad[:3]})"
        )
    model.load_state_dict(sd)
    return model


def _pad_to(x: np.ndarray, multiple: int) -> tuple[np.ndarray, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
    return x, h, w


def _to_nchw(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame.transpose(2, 0, 1)[None].astype(np.float32) / 255)


#: The scales an IFNet runs at: 1.0, or 0.5 / 0.25 for 2K / 4K frames.
SCALES = (1.0, 0.5, 0.25)


def _check_scale(scale: Any) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale must be a number: 1.0, 0.5 or 0.25; got {scale!r:.60}")
    if scale not in SCALES:
        raise ValueError(f"scale must be 1.0, 0.5 or 0.25 (for 2K/4K frames); got {scale!r}")


def _pad_multiple(scale: float) -> int:
    return int(64 / scale) if scale < 1 else 64


def _warn_random(what: str) -> None:
    import warnings

    warnings.warn(
        f"{what}: no checkpoint, so the network has random weights and its output is not "
        "an interpolation; pass the RIFE flownet.pkl as checkpoint",
        UserWarning,
        stacklevel=3,
    )


class TorchRifeInterpolator(Interpolator):
    """Run an IFNet directly with torch (CPU or a GPU ``device``).

    ``checkpoint`` is the RIFE ``flownet.pkl`` to load. Without one the network keeps
    its random initial weights (for tests and timing): its output is not an
    interpolation, and a ``UserWarning`` says so."""

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        scale: float = 1.0,
    ) -> None:
        torch = _torch()
        _check_scale(scale)
        self.model = _ifnet_for(checkpoint)
        from .backends import _torch_device

        self.device = _torch_device(torch, device)
        self.model.eval().to(self.device)
        self.scale = float(scale)
        if checkpoint is None:
            _warn_random("TorchRifeInterpolator")

    def _between(self, a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray:
        torch = _torch()
        x0, h, w = _pad_to(_to_nchw(a), _pad_multiple(self.scale))
        x1, _, _ = _pad_to(_to_nchw(b), _pad_multiple(self.scale))
        out = []
        with torch.inference_mode():
            i0 = torch.from_numpy(x0).to(self.device)
            i1 = torch.from_numpy(x1).to(self.device)
            for t in ts:
                tt = torch.full((1, 1, 1, 1), float(t), device=self.device)
                y = self.model(i0, i1, tt, self.scale)[0, :, :h, :w]
                out.append(_to_u8(y.permute(1, 2, 0).cpu().numpy()))
        return np.stack(out)


def _to_u8(y: np.ndarray) -> np.ndarray:
    """A model's [0, 1] output as rounded ``uint8``; values outside (a model that does
    not clamp) are clipped, NaN gives 0."""
    return np.clip(np.nan_to_num(y * 255 + 0.5, nan=0.0), 0, 255).astype(np.uint8)


#: The metadata key of an exported model that records the ``scale`` it was exported
#: with (the IFNet's scale is fixed in the graph, and so is the size multiple it needs).
SCALE_KEY = "loopwave.rife_scale"


def export_onnx(
    out: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    scale: float = 1.0,
    opset: int = 17,
) -> Path:
    """Export the IFNet to ONNX with dynamic height/width and a ``timestep`` input.

    Inputs ``img0``, ``img1`` ``(N, 3, H, W)`` float32 in [0, 1] with H, W multiples
    of 64 (of ``64 / scale`` for ``scale`` < 1), ``timestep`` ``(N, 1, 1, 1)``;
    output ``frame`` ``(N, 3, H, W)``. The ``scale`` is recorded in the model's
    metadata (:data:`SCALE_KEY`), where :class:`OnnxRifeInterpolator` finds it. The
    file is written whole or not at all (a temporary file, then a rename), and never
    over ``checkpoint``. Without a ``checkpoint`` the model has random weights (for
    tests and timing; a ``UserWarning`` says so). ``opset`` is 16 at least, the first
    with GridSample (the warp). Needs torch and the ``onnx`` package.
    """
    _check_scale(scale)
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path for the .onnx file; got {out!r:.60}")
    if not os.fspath(out):  # (Path("") has no name to add ".partial" to)
        raise ValueError("out: got an empty path; name the .onnx file to write")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path or None; got {checkpoint!r:.60}")
    check_opset(opset, low=16)  # GridSample, the warp, came in opset 16
    path = Path(out)
    if not path.name or path.is_dir():  # (".", "/": with_name raised "has an empty name")
        raise ValueError(f"out: {path} is a folder; name the .onnx file to write")
    partial = path.with_name(path.name + ".partial")
    if checkpoint is not None:
        from .video import _same_file

        if _same_file(path, Path(checkpoint)):
            raise ValueError(f"out: {path} is the checkpoint; write the model to another file")
        if _same_file(partial, Path(checkpoint)):
            raise ValueError(
                f"out: writing {path} goes through {partial.name}, which is the "
                "checkpoint; write the model to another file"
            )
    # what the final rename would refuse, before the export's seconds of work
    if path.is_dir():
        raise ValueError(f"out: {path} is a folder; name the .onnx file to write")
    if not path.parent.is_dir():
        raise ValueError(f"out: the folder {path.parent} does not exist")
    try:
        import onnx
    except ImportError as e:  # pragma: no cover
        raise ImportError("exporting needs the onnx package: pip install 'loopwave[onnx]'") from e
    torch = _torch()
    model = _ifnet_for(checkpoint)
    if checkpoint is None:
        _warn_random("export_onnx")
    model.eval()

    class Wrapped(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, img0: Any, img1: Any, timestep: Any) -> Any:
            return self.net(img0, img1, timestep, scale)

    m = _pad_multiple(scale)
    g = torch.Generator().manual_seed(0)  # not the host's random numbers
    ex = (
        torch.rand(1, 3, m, m, generator=g),
        torch.rand(1, 3, m, m, generator=g),
        torch.full((1, 1, 1, 1), 0.5),
    )
    dyn = {
        "img0": {0: "n", 2: "h", 3: "w"},
        "img1": {0: "n", 2: "h", 3: "w"},
        "timestep": {0: "n"},
        "frame": {0: "n", 2: "h", 3: "w"},
    }
    clear_tmp(partial)  # (a link there: the export went through it; a review)
    # the partial file goes whatever stops the export (Ctrl-C during torch's export, or a
    # full disk, left ~21 MB of OUT.partial behind)
    try:
        with torch.inference_mode():
            torch.onnx.export(
                Wrapped(),
                ex,
                str(partial),
                input_names=["img0", "img1", "timestep"],
                output_names=["frame"],
                dynamic_axes=dyn,
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(str(partial))
        proto.metadata_props.add(key=SCALE_KEY, value=repr(float(scale)))
        onnx.save(proto, str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


class OnnxRifeInterpolator(Interpolator):
    """Run an exported RIFE ONNX model with onnxruntime.

    Picks the CUDA execution provider when onnxruntime has it, else the CPU; not its
    TensorRT one, which builds an engine for each new frame size in each session
    (minutes, again in every command and render, with no engine cache asked for), and
    in fp32 at that: pass ``providers`` to choose it, with its options. Frames are
    padded (edge) to the model's multiple and cropped back. ``scale`` is the one the
    model was exported with: by default read from its metadata (:func:`export_onnx`
    records it), else 1.0; one given that differs from the recorded one is refused.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        scale: float | None = None,
        providers: list[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
        except ImportError as e:  # pragma: no cover
            raise ImportError(
                "the ONNX backend needs onnxruntime: pip install 'loopwave[onnx]'"
            ) from e
        if scale is not None:
            _check_scale(scale)
        if not isinstance(model, (str, os.PathLike)):
            raise TypeError(f"model must be a path to an .onnx file; got {model!r:.60}")
        if providers is not None and (
            isinstance(providers, str)
            or not isinstance(providers, (list, tuple))
            or not all(isinstance(x, str) for x in providers)
        ):
            raise TypeError(
                f"providers must be a list of onnxruntime provider names; got {providers!r:.60}"
            )
        p = Path(model)
        if not p.is_file():
            raise OSError(f"model: {not_a_file(model)}")
        available = ort.get_available_providers()
        if providers is None:
            providers = [x for x in ("CUDAExecutionProvider",) if x in available]
            providers.append("CPUExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(p), providers=providers)
        except Exception as e:  # onnxruntime raises its own types for bad files
            hint = (
                "; a RIFE checkpoint is exported to ONNX first: loopwave export-rife "
                f"{shlex.quote(str(p))} -o rife.onnx"
                if p.suffix.lower() in (".pkl", ".pth", ".pt", ".ckpt")
                else ""
            )
            raise ValueError(f"model: {p} is not a loadable ONNX model ({e}){hint}") from e
        names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if names != ["img0", "img1", "timestep"] or "frame" not in outputs:
            raise ValueError(
                f"model: {p} has inputs {names} and outputs {outputs}; expected inputs "
                "['img0', 'img1', 'timestep'] and an output 'frame' "
                "(export one with `loopwave export-rife`)"
            )
        types = {i.name: i.type for i in self.session.get_inputs()}
        types["frame"] = next(o.type for o in self.session.get_outputs() if o.name == "frame")
        odd = {k: t for k, t in types.items() if t != "tensor(float)"}
        if odd:
            raise ValueError(
                f"model: {p} takes or gives {odd}; loopwave feeds and reads float32 "
                "(tensor(float)): export one with `loopwave export-rife`"
            )
        tag = self.session.get_modelmeta().custom_metadata_map.get(SCALE_KEY)
        try:
            recorded = None if tag is None else float(tag)
            if recorded is not None:
                _check_scale(recorded)
        except ValueError:
            raise ValueError(f"model: {p} records {SCALE_KEY} = {tag!r}, not a scale") from None
        if scale is not None and recorded is not None and scale != recorded:
            raise ValueError(
                f"scale: {p} was exported with scale {recorded:g}; got {scale!r} "
                "(leave scale out to use the model's)"
            )
        self.scale: float = float(scale) if scale is not None else (recorded or 1.0)
        self._told = scale is not None or recorded is not None  # else 1.0 is a guess
        self.path = p

    def _between(self, a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray:
        x0, h, w = _pad_to(_to_nchw(a), _pad_multiple(self.scale))
        x1, _, _ = _pad_to(_to_nchw(b), _pad_multiple(self.scale))
        out = []
        for t in ts:
            feed = {"img0": x0, "img1": x1, "timestep": np.full((1, 1, 1, 1), t, np.float32)}
            try:
                y = self.session.run(["frame"], feed)[0]
            except MemoryError:
                raise
            except Exception as e:  # onnxruntime's errors are not typed: e.g. fixed shapes
                guess = (
                    ""
                    if self._told
                    else f"; or it was exported with a scale below 1 that it does not record "
                    f"({SCALE_KEY}): give that scale (interpolation.scale, --scale)"
                )
                why = " ".join(str(e).split())  # onnxruntime's text spans lines
                raise ValueError(
                    f"model: {self.path} cannot interpolate {x0.shape[2]}x{x0.shape[3]} "
                    f"(padded) frames ({why}); a model exported with fixed sizes takes only "
                    f"those (loopwave export-rife makes one with dynamic sizes){guess}"
                ) from e
            out.append(_to_u8(y[0, :, :h, :w].transpose(1, 2, 0)))
        return np.stack(out)


def add_cli(sub: Any) -> None:
    """Register ``loopwave export-rife CKPT -o rife.onnx``."""
    p = sub.add_parser("export-rife", help="export a RIFE 4.x flownet.pkl to ONNX")
    p.add_argument("checkpoint", metavar="CKPT", help="flownet.pkl (a RIFE 4.x state dict)")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--scale", type=float, default=1.0, help="1.0, or 0.5 / 0.25 for 2K / 4K")

    def run(a: Any) -> int:
        path = export_onnx(a.output, a.checkpoint, scale=a.scale)
        print(f"wrote {path}")
        return 0

    p.set_defaults(func=run)
