"""The diffusers backend loading real files: a saved diffusers folder and LoRA files.

No weights are downloaded: the smoke model is saved to a folder (the layout of a
real diffusers model) and a LoRA is made with peft with random weights; the
in-memory models they came from are the oracles.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from loopwave.backends import SCHEDULERS, DiffusersBackend, load_backend, smoke_backend  # noqa: E402

CALL = {"prompt": "a castle", "negative": "fog", "strength": 0.6, "steps": 4, "cfg": 7.0}


@pytest.fixture(scope="module")
def init():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_a_saved_diffusers_folder_renders_like_the_model_it_came_from(tmp_path, init):
    smoke = smoke_backend()
    smoke.pipe.save_pretrained(tmp_path / "model")
    loaded = load_backend("diffusers", tmp_path / "model", device="cpu", scheduler="Euler a")
    assert loaded.label == "model"
    smoke = smoke_backend(scheduler="Euler a")
    want = smoke.img2img(init, seed=9, **CALL)
    got = loaded.img2img(init, seed=9, **CALL)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, loaded.img2img(init, seed=10, **CALL))  # the seed matters


def test_a_load_leaves_the_hosts_warning_filters_alone(tmp_path, monkeypatch):
    """From a review of loopwave on several threads: diffusers' warning that torch_dtype is
    renamed dtype was silenced with warnings.catch_warnings around every load, which
    swaps the process's filter list, so a filter a host thread added during a load was
    lost (and a host's own catch_warnings overlapping it got loopwave's warnings). The
    pipeline now gets its dtype by the name its diffusers takes, and warns of nothing."""
    import warnings

    import loopwave.backends as lb

    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    real = lb._load_part

    def host_thread_meanwhile(*a, **k):
        if a[1] == "vae":
            warnings.filterwarnings("error", message="host policy")
        return real(*a, **k)

    monkeypatch.setattr(lb, "_load_part", host_thread_meanwhile)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loaded = load_backend("diffusers", tmp_path / "model", device="cpu")
        kept = any(f[1] is not None and f[1].pattern == "host policy" for f in warnings.filters)
    assert kept
    assert not [w for w in seen if "torch_dtype" in str(w.message)]
    assert loaded.pipe.unet.dtype == torch.float32


def test_a_single_file_checkpoint_never_reaches_the_network(tmp_path, monkeypatch):
    """diffusers' from_single_file ignored local_files_only when the config was not cached
    and resolved huggingface.co to download it; now the Hub's offline switch is on while
    loading, and the missing config is a ValueError."""
    import socket

    from safetensors.torch import save_file

    tried = []

    def no_network(*args, **kwargs):
        tried.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    ckpt = tmp_path / "model.safetensors"
    save_file({"model.diffusion_model.conv_in.weight": torch.zeros(320, 4, 3, 3)}, str(ckpt))
    with pytest.raises(ValueError, match="cannot load .*model.safetensors offline"):
        load_backend("diffusers", ckpt, device="cpu")
    # the suffix in any case (it was refused as "must be a diffusers folder or a
    # .safetensors file")
    upper = ckpt.rename(tmp_path / "MODEL.SafeTensors")
    # (and read as safetensors: diffusers took that suffix for a pickle, and its "Unable to
    # load weights" was reported as "cannot load ... offline (OSError: ...)")
    with pytest.raises(ValueError, match="cannot load .*MODEL.SafeTensors offline: diffusers"):
        load_backend("diffusers", upper, device="cpu")
    assert tried == []
    import huggingface_hub.constants as hub

    assert not hub.HF_HUB_OFFLINE  # the switch is put back


def test_damaged_model_folders_are_value_errors(tmp_path):
    """KeyError ('_class_name') and NotImplementedError (a tensor missing: left on torch's
    meta device) reached the CLI as tracebacks."""
    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    index = tmp_path / "model" / "model_index.json"
    good = index.read_text()
    index.write_text("{}")
    with pytest.raises(ValueError, match="model path .*model: cannot load"):
        load_backend("diffusers", tmp_path / "model", device="cpu")
    index.write_text(good)
    from safetensors.torch import load_file, save_file

    unet = next((tmp_path / "model" / "unet").glob("*.safetensors"))
    tensors = load_file(str(unet))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(unet))
    with pytest.raises(ValueError, match="model path .*model"):
        load_backend("diffusers", tmp_path / "model", device="cpu")


def test_the_pipeline_does_not_search_its_modules_for_the_device_every_call(init, monkeypatch):
    """diffusers works out the execution device on every call by walking every module
    for offloading hooks (6-14 ms a call with SD 1.5 on a CPU, while a GPU waits); the
    backend pins it. Counted: the hook search is never entered, the answer is right,
    and the pipeline keeps its class name (``save_pretrained`` above writes the same)."""
    import diffusers
    from diffusers.hooks import group_offloading

    b = smoke_backend()
    calls = []
    search = group_offloading._get_group_onload_device

    def counted(module):
        calls.append(module)
        return search(module)

    monkeypatch.setattr(group_offloading, "_get_group_onload_device", counted)
    b.img2img(init, seed=9, **CALL)
    assert calls == []
    assert b.pipe._execution_device == b.pipe.device == b.device == torch.device("cpu")
    assert isinstance(b.pipe, diffusers.StableDiffusionImg2ImgPipeline)
    assert type(b.pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    # the unpinned pipeline does search: the count above can fail
    diffusers.StableDiffusionImg2ImgPipeline._execution_device.fget(b.pipe)
    assert len(calls) > 0
    # a second backend over the same pipeline is pinned once, not subclassed again
    from loopwave.backends import DiffusersBackend

    again = DiffusersBackend(b.pipe, device="cpu")
    assert type(again.pipe) is type(b.pipe)


def _lora_file(tmp_path):
    """A rank-4 LoRA on the smoke UNet's attention, random A and B; returns (file, oracle)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    oracle = smoke_backend()
    unet = oracle.pipe.unet
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:  # peft starts B at zero (a no-op LoRA); make it count
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=state)
    return tmp_path / "pytorch_lora_weights.safetensors", oracle


def test_lora_files_apply_with_their_scale(tmp_path, init):
    pytest.importorskip("peft")
    path, oracle = _lora_file(tmp_path)
    plain = smoke_backend().img2img(init, seed=4, **CALL)
    want = oracle.img2img(init, seed=4, **CALL)
    assert np.abs(want.astype(int) - plain).mean() > 2  # the LoRA changes the picture
    sched = "DPM++ 2M Karras"  # the smoke backend's default, which the oracle has
    got = load_backend("smoke", scheduler=sched, lora=[{"path": str(path)}])
    assert np.abs(got.img2img(init, seed=4, **CALL).astype(int) - want).max() <= 1
    off = load_backend("smoke", scheduler=sched, lora=[{"path": str(path), "scale": 0.0}])
    off = off.img2img(init, seed=4, **CALL)
    assert np.abs(off.astype(int) - plain).max() <= 1


def test_lora_scales_of_any_real_kind(tmp_path):
    """From a review: np.float32 and np.int64 scales were refused (img2img takes numpy
    numbers everywhere), and 10**400 raised an OverflowError naming nothing."""
    from fractions import Fraction

    from loopwave.backends import _check_loras

    f = tmp_path / "x.safetensors"
    f.write_bytes(b"")
    for scale, want in ((np.float32(0.5), 0.5), (np.int64(1), 1.0), (Fraction(1, 4), 0.25)):
        assert _check_loras([{"path": str(f), "scale": scale}], False) == [(f, want)]
    for bad in (10**400, float("nan"), "1", True):
        with pytest.raises(ValueError, match=r"^lora\[0\]: scale must be a finite number"):
            _check_loras([{"path": str(f), "scale": bad}], False)


def test_lora_refusals(tmp_path):
    # through the API (settings files are checked before): a KeyError or a bare float()
    # error before
    for bad, err in (
        ("style.safetensors", TypeError),
        ([{"scale": 0.5}], TypeError),
        (["style.safetensors"], TypeError),
        ([{"path": "x.safetensors", "scale": "strong"}], ValueError),
        ([{"path": "x.safetensors", "scale": float("nan")}], ValueError),
    ):
        with pytest.raises(err, match="^lora"):
            load_backend("smoke", lora=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"lora\[0\]: .* is not a local file"):
        load_backend("smoke", lora=[{"path": str(tmp_path / "missing.safetensors")}])
    pt = tmp_path / "style.pt"
    pt.write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"lora\[0\]: .*pickled"):
        load_backend("smoke", lora=[{"path": str(pt)}])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    pytest.importorskip("peft")
    with pytest.raises(ValueError, match="lora: cannot load"):
        load_backend("smoke", lora=[{"path": str(bad)}])
    # only the down (A) matrices of a LoRA: an IndexError in diffusers reached the CLI
    from safetensors.torch import load_file, save_file

    good, _ = _lora_file(tmp_path)
    half = tmp_path / "half.safetensors"
    down = {k: v for k, v in load_file(str(good)).items() if "lora_A" in k or "lora.down" in k}
    save_file(down, str(half))
    with pytest.raises(ValueError, match="lora: cannot load .*half.safetensors"):
        load_backend("smoke", lora=[{"path": str(half)}])


def test_speed_options_keep_the_pictures(init):
    plain = smoke_backend().img2img(init, seed=2, **CALL)
    options = ({"channels_last": True}, {"sdpa": False}, {"pinned": False}, {"device_rng": True})
    for accel in options:
        got = smoke_backend(accel=accel).img2img(init, seed=2, **CALL)
        assert np.abs(got.astype(int) - plain).max() <= 1, accel


def test_too_few_steps_for_the_strength_run_one_step(init):
    """diffusers runs the last int(steps * strength) steps and failed on 0 (steps 2,
    strength 0.3, mid-render); the backend then runs the last step of the 4-step schedule,
    the shortest of which 0.3 runs one step. That step is at the schedule's lowest noise
    level, not at 0.3's: with Karras sigmas (the smoke model's DPM++ 2M Karras) its level
    is the same at any length, so every strength below 1/steps gives the frame of 1/steps."""
    b = smoke_backend()
    call = {**CALL, "strength": 0.3}
    short = b.img2img(init, seed=2, **{**call, "steps": 2})
    np.testing.assert_array_equal(short, b.img2img(init, seed=2, **{**call, "steps": 4}))
    assert np.abs(short.astype(int) - init).mean() > 1  # a step was taken
    one_step = b.img2img(init, seed=2, **{**call, "steps": 20, "strength": 0.05})
    for weaker in (0.049, 0.01, 0.0011):
        got = b.img2img(init, seed=2, **{**call, "steps": 20, "strength": weaker})
        np.testing.assert_array_equal(got, one_step)
    # below 1/1000 no schedule has a step at that noise level: the frame passes unchanged
    np.testing.assert_array_equal(b.img2img(init, seed=2, **{**call, "strength": 5e-4}), init)


def test_input_limits(init):
    b = smoke_backend()
    for kw, msg in (
        ({"cfg": 1e30}, "cfg"),
        ({"cfg": float("nan")}, "cfg"),
        # from a review: diffusers ran each of these as cfg 1, silently
        ({"cfg": 0.0}, r"^cfg must be in \[1, 100\] \(up to 1 diffusers runs no guidance\)"),
        ({"cfg": 0.5}, r"^cfg must be in \[1, 100\]"),
        ({"cfg": -5}, r"^cfg must be in \[1, 100\]"),
        ({"steps": 10**6}, "steps"),
        ({"prompt": "(a cat:1e30)"}, "weight"),
        ({"negative": "(blur:1e400)"}, "weight"),
    ):
        with pytest.raises(ValueError, match=msg):
            b.img2img(init, seed=2, **{**CALL, **kw})
    # strength 0 passes the frame (a schedule may reach 0 at the wave's low point)
    np.testing.assert_array_equal(b.img2img(init, seed=2, **{**CALL, "strength": 0.0}), init)
    # seeds are 32-bit: 2**32 + 5 is seed 5, and numbers beyond 64 bits work
    same = b.img2img(init, seed=5, **CALL)
    np.testing.assert_array_equal(b.img2img(init, seed=2**32 + 5, **CALL), same)
    b.img2img(init, seed=10**30, **CALL)
    with pytest.raises(ValueError, match="PNDM"):
        smoke_backend(scheduler="PNDM").img2img(init, seed=2, **{**CALL, "steps": 3})


def test_non_finite_model_output_is_an_error(init, monkeypatch):
    b = smoke_backend()
    real = b.pipe.vae.decode

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        (out[0] if isinstance(out, tuple) else out.sample)[:] = float("nan")
        return out

    monkeypatch.setattr(b.pipe.vae, "decode", poisoned)
    with pytest.raises(ValueError, match="NaN"):
        b.img2img(init, seed=2, **CALL)


def test_frames_are_quantised_as_numpy_would(init):
    """The backend quantises on the device; the oracle is diffusers' own float output
    quantised on the host (clip, *255 + 0.5, truncate)."""
    b = smoke_backend()
    got = b.img2img(init, seed=4, **CALL)
    image = torch.from_numpy(init).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        out = b.pipe(
            prompt=CALL["prompt"],
            negative_prompt=CALL["negative"],
            image=image,
            strength=CALL["strength"],
            num_inference_steps=CALL["steps"],
            guidance_scale=CALL["cfg"],
            generator=torch.Generator("cpu").manual_seed(4),
            output_type="np",
        ).images[0]
    want = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, want)
    assert got.flags.writeable  # without device_frames the caller owns the frame


def test_device_frames_skip_uploads_and_keep_the_frames(init):
    plain, kept = smoke_backend(), smoke_backend(accel={"device_frames": True})
    x = y = init
    for i in range(3):
        x = plain.img2img(x, seed=i, **CALL)
        y = kept.img2img(y, seed=i, **CALL)
        np.testing.assert_array_equal(y, x)
        assert not y.flags.writeable  # the device copy stands for it: no edits in place
    assert kept.uploads_skipped == 2 and plain.uploads_skipped == 0
    # an equal array that is not the returned one is uploaded: identity, not content
    kept.img2img(y.copy(), seed=0, **CALL)
    assert kept.uploads_skipped == 2


def test_a_read_only_init_is_uploaded_from_a_writable_copy(init, monkeypatch):
    # torch warns about a non-writable array only once per process, so watch the arrays
    # handed to torch.from_numpy instead of waiting for the warning
    handed = []
    from_numpy = torch.from_numpy

    def watched(a):
        handed.append(a.flags.writeable)
        return from_numpy(a)

    monkeypatch.setattr(torch, "from_numpy", watched)
    b = smoke_backend(accel={"device_frames": True})
    frozen = init.copy()
    frozen.flags.writeable = False
    got = b.img2img(frozen, seed=0, **CALL)
    assert handed and all(handed)
    monkeypatch.undo()
    np.testing.assert_array_equal(got, smoke_backend().img2img(init, seed=0, **CALL))


def test_every_model_part_is_brought_to_the_device_dtype():
    from loopwave.backends import DiffusersBackend

    pipe = smoke_backend().pipe
    pipe.vae.to(torch.float16)  # the UNet already float32: the old check looked only at it
    b = DiffusersBackend(pipe, device="cpu")
    assert {b.pipe.unet.dtype, b.pipe.vae.dtype, b.pipe.text_encoder.dtype} == {torch.float32}


def test_device_frames_in_a_render(tmp_path):
    from loopwave.render import render
    from loopwave.settings import Settings

    job = Settings.from_dict(
        {
            "version": 1,
            "render": {"frames": 4, "width": 32, "height": 32, "steps": "0: (3)", "seed": 2},
            "denoise": {"mode": "schedule", "schedule": "0: (0.5)"},
            "colour": {"mode": "none"},
            "prompts": {"0": "a forest"},
        }
    )
    a = render(job, run_dir=tmp_path / "a", backend=smoke_backend(), progress=False, video=False)
    kept = smoke_backend(accel={"device_frames": True})
    b = render(job, run_dir=tmp_path / "b", backend=kept, progress=False, video=False)
    # frame 0 starts from noise; frames 1-3 start from the previous output, still on
    # the device (no colour correction, no motion)
    assert kept.uploads_skipped == 3
    names = sorted(p.name for p in (a.run_dir / "frames").glob("*.png"))
    assert len(names) == 4
    for n in names:
        assert (b.run_dir / "frames" / n).read_bytes() == (a.run_dir / "frames" / n).read_bytes()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compile and CUDA graphs: GPU only")
def test_compiled_unet_with_cuda_graphs_keeps_the_pictures(init):
    plain = smoke_backend(device="cuda").img2img(init, seed=2, **CALL)
    fast = smoke_backend(device="cuda", accel={"compile": ["unet"], "cuda_graphs": True})
    got = fast.img2img(init, seed=2, **CALL)
    # fp16 kernels fused differently round differently; over the denoise steps that
    # moves a few pixels by up to a few levels (H100: at most 3, mean 0.33), never the picture
    diff = np.abs(got.astype(int) - plain)
    assert diff.max() <= 4 and diff.mean() <= 1.0, (diff.max(), diff.mean())


def test_cuda_graph_outputs_are_copied_for_schedulers_that_keep_them():
    """From a review: PNDM at cfg 1 keeps the UNet's own output tensors across steps
    (no guidance arithmetic makes new ones), and a CUDA-graph replay writes each step's
    output into the last one's memory (torch then raises). With cuda_graphs the compiled
    UNet returns copies. Here a module returning its own buffer stands in for a graph's
    output memory (CUDA graphs need a GPU: the PNDM case itself is not run)."""
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

    from loopwave.backends import _outputs_of_its_own

    class Replay(torch.nn.Module):
        def __init__(self, wrap):
            super().__init__()
            self.wrap, self.memory = wrap, torch.zeros(3)

        def forward(self, x):
            self.memory.copy_(x)  # each replay overwrites the one output buffer
            return self.wrap(self.memory)

    for wrap in (lambda t: t, lambda t: (t,), lambda t: UNet2DConditionOutput(sample=t)):
        m = Replay(wrap)
        _outputs_of_its_own(m)
        first = m(torch.ones(3))
        m(torch.full((3,), 2.0))  # the next step's replay
        kept = first if isinstance(first, torch.Tensor) else first[0]
        assert torch.equal(kept, torch.ones(3)), wrap  # still this step's output
        assert type(first) is type(wrap(torch.zeros(3)))


@pytest.mark.parametrize(
    ("device", "err", "msg"),
    [("bogus", ValueError, "not a torch device"), ("meta", ValueError, "not supported"),
     (5, TypeError, "device")],
)  # fmt: skip
def test_bad_devices(device, err, msg):
    with pytest.raises(err, match=msg):
        smoke_backend(device=device)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="0 CUDA GPUs"):
            smoke_backend(device="cuda")


def test_backends_built_on_threads_get_the_same_weights():
    # the smoke model draws its weights from torch's global generator: built on several
    # threads at once they came out different (and lazy imports raced)
    from concurrent.futures import ThreadPoolExecutor

    want = next(smoke_backend().pipe.unet.parameters()).detach().clone()
    with ThreadPoolExecutor(3) as ex:
        built = list(ex.map(lambda _: smoke_backend(), range(3)))
    for b in built:
        torch.testing.assert_close(next(b.pipe.unet.parameters()), want, rtol=0, atol=0)


def test_a_torch_device_object_is_a_device():
    assert smoke_backend(device=torch.device("cpu")).device.type == "cpu"


def test_speed_option_errors():
    from loopwave.backends import check_accel

    assert check_accel(None)["sdpa"] is True
    with pytest.raises(ValueError, match=r"accel\.turbo: unknown option"):
        check_accel({"turbo": True})
    with pytest.raises(ValueError, match=r"accel\.compile: expected a list"):
        check_accel({"compile": "unet"})
    with pytest.raises(ValueError, match=r"accel\.channels_last: expected true or false"):
        check_accel({"channels_last": 1})
    with pytest.raises(ValueError, match=r"accel\.device_frames: expected true or false"):
        check_accel({"device_frames": "yes"})
    with pytest.raises(ValueError, match=r"accel\.device_rng: expected true or false"):
        check_accel({"device_rng": None})
    with pytest.raises(TypeError, match="accel must be a dict"):
        check_accel(["channels_last"])


# Tensor methods that read a value on the host: on a GPU each one waits for the device
HOST_READS = ("item", "__bool__", "nonzero", "tolist", "cpu", "numpy", "__int__", "__float__")


def _host_reads(backend, init, steps, monkeypatch):
    counts = dict.fromkeys(HOST_READS, 0)
    for name in HOST_READS:
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _orig=orig, **k):
            counts[_name] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    try:
        backend.img2img(
            init, prompt="a castle", negative="", strength=1.0, steps=steps, cfg=7.0, seed=1
        )
    finally:
        monkeypatch.undo()
    return counts


@pytest.mark.parametrize("scheduler", ["DPM++ 2M Karras", "DPM++ 2M", "Euler a"])
def test_no_host_reads_per_denoise_step(init, scheduler, monkeypatch):
    """The denoise loop (UNet, guidance, scheduler step) reads nothing back to the host: the
    reads are per frame (set-up, the final download), as many at 16 steps as at 4."""
    b = smoke_backend(scheduler=scheduler)
    b.img2img(init, prompt="a castle", negative="", strength=1.0, steps=2, cfg=7.0, seed=1)
    few = _host_reads(b, init, 4, monkeypatch)
    many = _host_reads(b, init, 16, monkeypatch)
    assert few == many
    assert few["cpu"] == 1  # the frame's one download


def test_found_in_review_img2img_arguments(init):
    """Sizes not a multiple of 8 came back cropped (100x100 gave 96x96) and tiny ones
    failed inside torch; bad types failed with messages that named nothing, or were taken
    (seed '12', steps 2.5, strength True)."""
    b = smoke_backend()
    for shape in ((100, 100, 3), (60, 68, 3), (8, 8, 3), (4, 4, 3)):
        with pytest.raises(ValueError, match="^init must be at least 16x16"):
            b.img2img(np.zeros(shape, np.uint8), seed=1, **CALL)
    assert b.img2img(np.zeros((16, 24, 3), np.uint8), seed=1, **CALL).shape == (16, 24, 3)
    for kw, err, name in (
        ({"strength": "0.5"}, TypeError, "strength"),
        ({"strength": True}, TypeError, "strength"),
        ({"steps": None}, TypeError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"cfg": None}, TypeError, "cfg"),
        ({"seed": None}, TypeError, "seed"),
        ({"seed": "12"}, TypeError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
    ):
        with pytest.raises(err, match=f"^{name} must"):
            b.img2img(init, **{"seed": 1, **CALL, **kw})
    want = b.img2img(init, seed=3, **CALL)
    got = b.img2img(init, seed=np.int64(3), **{**CALL, "steps": np.int32(4)})
    np.testing.assert_array_equal(got, want)


def test_strengths_whose_step_product_rounds_down_still_denoise(init):
    """ceil(1 / s) * s rounds to just below 1 for s = 1/161 (and 23 other 1/k up to
    1/1000): no step ran and the frame passed unchanged."""
    from loopwave.backends import _steps_for

    for k in range(2, 1001):
        n = _steps_for(1, 1 / k)
        assert n and int(n * (1 / k)) >= 1, k  # what diffusers computes
    b = smoke_backend()
    out = b.img2img(init, seed=2, **{**CALL, "strength": 1 / 161, "steps": 1})
    assert not np.array_equal(out, init)


def test_one_backend_from_several_threads_gives_each_call_its_frame(init):
    """Four threads on one backend got wrong frames (a difference of 255) or an
    IndexError from the shared scheduler; calls now take turns."""
    import threading

    b = smoke_backend()
    want = {s: b.img2img(init, seed=s, **CALL) for s in range(4)}
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def run(s: int) -> None:
        try:
            for _ in range(3):
                got[s] = b.img2img(init, seed=s, **CALL)
                np.testing.assert_array_equal(got[s], want[s])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_devices_and_accel_that_this_machine_lacks_are_value_errors():
    import torch

    from loopwave.backends import _torch_device

    if not torch.backends.mps.is_available():  # once a RuntimeError or AssertionError later
        with pytest.raises(ValueError, match="no mps"):
            _torch_device(torch, "mps")
    if not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        with pytest.raises(ValueError, match="no xpu"):
            _torch_device(torch, "xpu")
    if not torch.cuda.is_available():  # it compiled the UNet anyway, breaking ONNX export
        with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
            smoke_backend(accel={"cuda_graphs": True})


def test_lora_entries_with_unknown_keys_are_refused(tmp_path):
    f = tmp_path / "l.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown key 'wieght'"):  # scale 1 was used
        load_backend("smoke", lora=[{"path": str(f), "wieght": 0.5}])
    with pytest.raises(ValueError, match="path is empty"):
        load_backend("smoke", lora=[{"path": ""}])


@pytest.fixture(scope="module")
def scheduler_pipe():
    """One smoke pipeline for the scheduler cases (each sets its own scheduler on it)."""
    return smoke_backend().pipe


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_name_runs_its_class(name, init, scheduler_pipe):
    """Each name in SCHEDULERS puts its diffusers class (with its options) in the pipeline
    and denoises (two seeds give two pictures); only three of the seven ran in a test."""
    import diffusers

    from loopwave.backends import DiffusersBackend

    cls_name, extra = SCHEDULERS[name]
    b = DiffusersBackend(scheduler_pipe, device="cpu", scheduler=name)
    sched = b.pipe.scheduler
    assert type(sched) is getattr(diffusers, cls_name)
    for key, value in extra.items():
        assert sched.config[key] == value
    kw = {**CALL, "steps": 8}  # PNDM's warm-up needs a schedule of at least 4 steps
    a, other = (b.img2img(init, seed=s, **kw) for s in (1, 2))
    assert not np.array_equal(a, other) and not np.array_equal(a, init)


@pytest.mark.parametrize("name", ["DPM++ 2M", "Euler", "LMS"])
def test_a_scheduler_name_means_the_same_whatever_the_models_config(tmp_path, name, init):
    """From a review: a name took its class's options over the model's own scheduler
    config, so a model saved with Karras sigmas (as the smoke model's default "DPM++ 2M
    Karras" is) ran "DPM++ 2M", "Euler" and "LMS" with Karras sigmas too."""
    from loopwave.backends import load_backend

    smoke = smoke_backend()
    assert smoke.pipe.scheduler.config["use_karras_sigmas"] is True
    smoke.pipe.save_pretrained(tmp_path / "model")
    loaded = load_backend("diffusers", str(tmp_path / "model"), device="cpu", scheduler=name)
    fresh = smoke_backend(scheduler=name)
    for b in (loaded, fresh):
        assert b.pipe.scheduler.config["use_karras_sigmas"] is False
    np.testing.assert_array_equal(
        loaded.img2img(init, seed=1, **CALL), fresh.img2img(init, seed=1, **CALL)
    )


def test_numbers_of_any_kind_and_strengths_too_small_for_a_step(init):
    """strength and cfg as Fraction or Decimal were taken, then used exactly where
    diffusers uses floats: 1/161 of 161 steps made a schedule of 161 (exact) that
    diffusers ran as 0 steps and crashed on; a Decimal NaN raised InvalidOperation; a
    subnormal strength raised OverflowError (1 / 5e-324 is infinite)."""
    from decimal import Decimal
    from fractions import Fraction

    b = smoke_backend(scheduler="DDIM")
    kw = {"prompt": "a", "negative": "", "steps": 161, "cfg": 1.0, "seed": 0}
    want = b.img2img(init, strength=1 / 161, **kw)
    assert not np.array_equal(want, init)  # one step ran
    np.testing.assert_array_equal(b.img2img(init, strength=Fraction(1, 161), **kw), want)
    np.testing.assert_array_equal(
        b.img2img(init, strength=0.6, **{**kw, "cfg": Decimal("7.5"), "steps": 4}),
        b.img2img(init, strength=0.6, **{**kw, "cfg": 7.5, "steps": 4}),
    )
    for name in ("strength", "cfg"):
        # beyond float64, or a signalling NaN: OverflowError and a message naming nothing
        for bad in (Decimal("NaN"), Decimal("sNaN"), 10**400, -(10**400), Fraction(10**400)):
            with pytest.raises(ValueError, match=f"^{name} must be"):
                b.img2img(init, seed=0, **{**CALL, name: bad})
    # no schedule runs a step at that noise level: the frame passes unchanged
    for tiny in (5e-324, 1e-300, Fraction(1, 1001)):
        np.testing.assert_array_equal(b.img2img(init, seed=0, **{**CALL, "strength": tiny}), init)
        b.check_schedule(4, tiny)


def test_pndm_without_its_warm_up_runs_short_schedules(init):
    """SD 1.5 checkpoints ship PNDM with skip_prk_steps (no Runge-Kutta warm-up): their
    1-3 step schedules work and were refused as the warm-up's are."""
    from diffusers import PNDMScheduler

    b = smoke_backend(scheduler="PNDM")  # the smoke model's config has the warm-up
    with pytest.raises(ValueError, match="PNDM"):
        b.check_schedule(3, 1.0)
    b.pipe.scheduler = PNDMScheduler.from_config(b.pipe.scheduler.config, skip_prk_steps=True)
    b.check_schedule(3, 1.0)  # the scheduler now in place is the one checked
    for steps in (1, 2, 3):
        out = b.img2img(init, seed=2, **{**CALL, "steps": steps, "strength": 1.0})
        assert out.shape == init.shape and not np.array_equal(out, init)


def test_prompt_errors_name_the_prompt_they_are_in(init):
    b = smoke_backend()
    # the negative's bad weight was reported as "prompt: ..."
    with pytest.raises(ValueError, match=r"^negative: the weight of 'a' is 1e\+09"):
        b.img2img(init, seed=1, **{**CALL, "negative": "(a:1e9)"})
    with pytest.raises(ValueError, match=r"^prompt: the weight of 'a' is 1e\+09"):
        b.img2img(init, seed=1, **{**CALL, "prompt": "(a:1e9)"})
    # a lone surrogate (JSON's "\ud800") failed inside the tokenizer with its own TypeError
    with pytest.raises(ValueError, match=r"^prompt: not valid text .*'\\ud800'"):
        b.img2img(init, seed=1, **{**CALL, "prompt": "a\ud800b"})
    with pytest.raises(ValueError, match=r"^negative: not valid text"):
        b.img2img(init, seed=1, **{**CALL, "negative": "\udfff"})


def test_backend_settings_are_checked_before_any_weights_load(tmp_path, monkeypatch):
    """A misspelt scheduler, bad speed options or a missing GPU were found only after the
    whole model had loaded (minutes for a real one)."""
    import diffusers

    smoke_backend().pipe.save_pretrained(tmp_path / "m")

    def no_load(*a, **k):
        raise AssertionError("the weights loaded before the settings were checked")

    monkeypatch.setattr(diffusers.StableDiffusionImg2ImgPipeline, "from_pretrained", no_load)
    for kw, err, msg in (
        ({"scheduler": "bogus"}, ValueError, "^scheduler must be one of"),
        ({"scheduler": ["x"]}, TypeError, "^scheduler must be a str or None"),
        ({"accel": {"compile": ["foo"]}}, ValueError, r"^accel\.compile"),
        ({"device": "cuda:7"}, ValueError, "^device: 'cuda:7' asked for"),
    ):
        with pytest.raises(err, match=msg):
            load_backend("diffusers", tmp_path / "m", **kw)
    monkeypatch.undo()
    with pytest.raises(TypeError, match="^path must be a str or path"):
        load_backend("diffusers", 123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^lora must be a list"):
        load_backend("smoke", lora={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^scheduler must be a str or None"):
        load_backend("smoke", scheduler=["x"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^seed must be in -2\*\*63\.\.2\*\*64 - 1"):
        smoke_backend(seed=2**70)


def test_embed_runs_under_the_call_lock():
    """embed is public and shares the prompt cache with img2img: a call waits while
    another thread holds the backend (it ran beside it before)."""
    import threading

    b = smoke_backend()
    done = threading.Event()
    with b._call_lock:
        t = threading.Thread(target=lambda: (b.embed("a castle"), done.set()))
        t.start()
        assert not done.wait(0.5)  # waiting for the lock
    t.join(30)
    assert done.is_set()
    b.img2img(np.zeros((32, 32, 3), np.uint8), prompt="a castle", negative="",
              strength=0.5, steps=2, cfg=7.0, seed=1)  # fmt: skip
    # img2img calls embed under the same (reentrant) lock


def test_the_set_of_warned_prompts_stays_bounded(monkeypatch):
    import warnings

    from loopwave import backends

    monkeypatch.setattr(backends, "WARNED_KEPT", 3)
    b = smoke_backend()
    cap = 75 * backends.MAX_CHUNKS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(10):  # a long prompt whose words change every frame
            b.embed(f"{i:03d}" + "p" * cap)
            assert len(b._warned) <= 3


def test_the_log_level_swap_around_a_cast_holds_the_build_lock(monkeypatch):
    """DiffusersBackend built directly (not through load_backend) silences diffusers for
    the cast under the build lock: two threads swapping the level at once could each
    restore the other's silenced level."""
    from diffusers.utils import logging as dlog

    from loopwave import backends

    held = []
    monkeypatch.setattr(dlog, "set_verbosity_error", lambda: held.append(
        backends._BUILD_LOCK._is_owned()))  # fmt: skip
    pipe = smoke_backend().pipe
    pipe.vae.to(torch.float16)  # a cast to come
    backends.DiffusersBackend(pipe, device="cpu")
    assert held == [True]


def _ldm_checkpoint(pipe):
    """The pipeline's weights as an original (LDM) Stable Diffusion checkpoint, the layout
    of a .ckpt: the inverse of diffusers' single-file conversion, for the smoke model."""
    import re

    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    def renamed(rest, pairs):
        for diffusers_name, ldm_name in pairs:
            if rest.startswith(diffusers_name + "."):
                return ldm_name + rest[len(diffusers_name) :]
        return rest

    resnet = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
              ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
              ("conv_shortcut", "skip_connection")]  # fmt: skip
    unet, out = pipe.unet, {}
    per = unet.config.layers_per_block + 1  # LDM blocks per diffusers down block
    top = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    state = unet.state_dict()
    attended = {int(k.split(".")[1]) for k in state if re.match(r"up_blocks\.\d+\.attentions", k)}
    rules = [
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)",
         lambda b, j, r: f"input_blocks.{b * per + j + 1}.0.{renamed(r, resnet)}"),
        (r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)",
         lambda b, j, r: f"input_blocks.{b * per + j + 1}.1.{r}"),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)",
         lambda b, r: f"input_blocks.{(b + 1) * per}.0.op.{r}"),
        (r"mid_block\.resnets\.(\d+)\.(.*)",
         lambda j, r: f"middle_block.{2 * j}.{renamed(r, resnet)}"),
        (r"mid_block\.attentions\.0\.(.*)", lambda r: f"middle_block.1.{r}"),
        (r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)",
         lambda b, j, r: f"output_blocks.{b * per + j}.0.{renamed(r, resnet)}"),
        (r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)",
         lambda b, j, r: f"output_blocks.{b * per + j}.1.{r}"),
        (r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)",
         lambda b, r: f"output_blocks.{b * per + per - 1}.{2 if b in attended else 1}.conv.{r}"),
    ]  # fmt: skip

    def convert(key, table, rules):
        if key in table:
            return table[key]
        for pattern, to in rules:
            m = re.fullmatch(pattern, key)
            if m:
                return to(*(int(g) if g.isdigit() else g for g in m.groups()))
        raise KeyError(key)

    for k, v in state.items():
        out["model.diffusion_model." + convert(k, top, rules)] = v
    vae = pipe.vae
    last = len(vae.config.up_block_types) - 1

    def res(r):
        return r.replace("conv_shortcut", "nin_shortcut")

    attn = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
            ("to_out.0", "proj_out")]  # fmt: skip
    vae_rules = [
        (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)",
         lambda i, j, r: f"encoder.down.{i}.block.{j}.{res(r)}"),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)",
         lambda i, r: f"encoder.down.{i}.downsample.conv.{r}"),
        (r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)",
         lambda part, j, r: f"{part}.mid.block_{j + 1}.{res(r)}"),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)",
         lambda part, r: f"{part}.mid.attn_1.{renamed(r, attn)}"),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)",
         lambda i, j, r: f"decoder.up.{last - i}.block.{j}.{res(r)}"),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)",
         lambda i, r: f"decoder.up.{last - i}.upsample.conv.{r}"),
    ]  # fmt: skip
    for k, v in vae.state_dict().items():
        out["first_stage_model." + convert(k, DIFFUSERS_TO_LDM_MAPPING["vae"], vae_rules)] = v
    for k, v in pipe.text_encoder.state_dict().items():
        name = k if k.startswith("text_model.") else "text_model." + k
        out["cond_stage_model.transformer." + name] = v
    return out


def _hub_cache_with_config(tmp_path, pipe, monkeypatch):
    """A local Hugging Face cache holding what diffusers looks up for an SD 1.x
    single-file checkpoint (stable-diffusion-v1-5's configs and tokenizer), here the smoke
    model's, without weights; the Hub's cache pointed at it."""
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    repo = cache / "models--stable-diffusion-v1-5--stable-diffusion-v1-5"
    commit = "0" * 40
    pipe.save_pretrained(repo / "snapshots" / commit)
    for f in (repo / "snapshots" / commit).glob("*/*.safetensors"):
        f.unlink()  # configs only, as diffusers caches them: the weights come from the file
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))


class _LightningCallback:
    """A class of a module that is not installed where the checkpoint is loaded."""

    def __init__(self):
        self.best_model_score = torch.tensor(0.5)
        self.dirpath = "/checkpoints"


def test_a_trusted_pickled_checkpoint_with_training_objects_loads(tmp_path, init, monkeypatch):
    """From a review: allow_pickle=True did not load a .ckpt holding what training scripts
    save beside the weights (a numpy global_step, an argparse.Namespace, a Lightning
    callback): diffusers reads pickles with torch's safe loader only, and its refusal was
    reported as a missing offline config. The checkpoint now loads and renders as the model
    it was saved from."""
    import argparse
    import sys
    import types

    smoke = smoke_backend(scheduler="Euler a")
    _hub_cache_with_config(tmp_path, smoke.pipe, monkeypatch)
    module = types.ModuleType("lightning_not_here")
    module._LightningCallback = _LightningCallback
    monkeypatch.setattr(_LightningCallback, "__module__", module.__name__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ckpt = tmp_path / "model.ckpt"
    torch.save(
        {
            "state_dict": _ldm_checkpoint(smoke.pipe),
            "global_step": np.int64(470000),
            "hyper_parameters": argparse.Namespace(lr=1e-4),
            "callbacks": {"ModelCheckpoint": _LightningCallback()},
        },
        ckpt,
    )
    monkeypatch.delitem(sys.modules, module.__name__)  # not installed where it loads
    # the settings' key, for the CLI's users (the message named only the Python argument)
    with pytest.raises(ValueError, match="pickled checkpoint.*model.allow_pickle = true"):
        load_backend("diffusers", ckpt, device="cpu")
    loaded = load_backend("diffusers", ckpt, device="cpu", allow_pickle=True, scheduler="Euler a")
    np.testing.assert_array_equal(
        loaded.img2img(init, seed=9, **CALL), smoke.img2img(init, seed=9, **CALL)
    )


def test_what_a_single_file_load_refused_is_named(tmp_path, monkeypatch):
    """The real cause comes first: torch's safe loader refusing the numpy scalar of a
    pickled checkpoint was reported as a missing offline config (diffusers' reader, where
    the file is not handed to it already read), and an unreadable pickle says so."""
    from loopwave import backends

    ckpt = tmp_path / "np.ckpt"
    weights = {"model.diffusion_model.conv_in.weight": torch.zeros(32, 4, 3, 3)}
    torch.save({"state_dict": weights, "global_step": np.int64(470000)}, ckpt)
    monkeypatch.setattr(backends, "_checkpoint_read_as", lambda p, state: contextlib.nullcontext())
    refused = r"np\.ckpt is a pickled checkpoint with objects torch's safe loader refuses "
    with pytest.raises(
        ValueError, match=refused + r"\(UnpicklingError: Unsupported global: .*scalar"
    ):
        load_backend("diffusers", ckpt, device="cpu", allow_pickle=True)
    monkeypatch.undo()
    # read, it reaches the next need, the config, which names the repository looked for
    with pytest.raises(
        ValueError, match=r"np\.ckpt offline: .*model type \(stable-diffusion-v1-5/"
    ):
        load_backend("diffusers", ckpt, device="cpu", allow_pickle=True)
    ckpt.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match=r"np\.ckpt: cannot read this pickled checkpoint \(Unpick"):
        load_backend("diffusers", ckpt, device="cpu", allow_pickle=True)
    torch.save({"global_step": 5}, ckpt)
    with pytest.raises(ValueError, match=r"np\.ckpt: no tensors in this pickled checkpoint"):
        load_backend("diffusers", ckpt, device="cpu", allow_pickle=True)
    # (from a review) a link or copy under the exact suffix that cannot be made is said
    # so, not blamed on the checkpoint
    upper = tmp_path / "M.SafeTensors"
    upper.write_bytes(b"x")

    def refused(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Path, "symlink_to", refused)
        m.setattr(backends.os, "link", refused)
        m.setattr("shutil.copyfile", refused)
        with pytest.raises(OSError, match=r"a link or copy of M\.SafeTensors named so could "):
            with backends._as_safetensors_name(upper):
                pass
        # (a review of that) a checkpoint's says so with its whole path, as a LoRA's does
        with pytest.raises(ValueError, match=r"^model path .*/M\.SafeTensors: diffusers reads "):
            backends._load_single_file(object, upper, None, pickled=False)
    # any other failure (the config found, a tensor missing) was "cannot load ... offline
    # (KeyError ...); ... or cache its config", which it had
    said = backends._single_file_error(ckpt, KeyError("model.diffusion_model.out.2.weight"))
    assert "offline" not in said and "cache" not in said, said
    assert said.startswith(f"cannot load {ckpt}: diffusers could not build a pipeline"), said
    assert "(KeyError: 'model.diffusion_model.out.2.weight')" in said, said


def test_a_trusted_pickled_lora_with_training_objects_loads(tmp_path, init):
    """A pickled LoRA (allow_pickle) went through the same safe loader and failed on a
    numpy scalar beside its tensors."""
    pytest.importorskip("peft")
    from safetensors.torch import load_file

    path, oracle = _lora_file(tmp_path)
    pt = tmp_path / "style.pt"
    torch.save({**load_file(str(path)), "step": np.int64(1000)}, pt)
    want = oracle.img2img(init, seed=4, **CALL)
    sched = "DPM++ 2M Karras"  # the oracle's (smoke_backend's default)
    got = load_backend("smoke", scheduler=sched, lora=[{"path": str(pt)}], allow_pickle=True)
    assert np.abs(got.img2img(init, seed=4, **CALL).astype(int) - want).max() <= 1


def test_allow_pickle_takes_a_bool_only(tmp_path):
    """From a review: "no" and "false" are truthy, and opened the pickle gate."""
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    for bad in ("no", "false", 0, 1, None, [True]):
        with pytest.raises(TypeError, match="^allow_pickle must be True or False"):
            load_backend("diffusers", ckpt, device="cpu", allow_pickle=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^allow_pickle must be True or False"):
            load_backend("smoke", allow_pickle=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pickled checkpoint, which can run code"):
        load_backend("diffusers", ckpt, device="cpu", allow_pickle=np.bool_(False))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^progress must be True or False"):
        load_backend("smoke", progress="no")  # type: ignore[arg-type]


def test_infinite_pixels_are_an_error(init, monkeypatch):
    """From a review: the check ran after diffusers' postprocess clamped to [0, 1], so +inf
    and -inf became white and black frames; the decoded tensor is checked now."""
    b = smoke_backend()
    real = b.pipe.vae.decode

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        sample = out[0] if isinstance(out, tuple) else out.sample
        sample[:, :, :32] = float("inf")
        sample[:, :, 32:] = float("-inf")
        return out

    monkeypatch.setattr(b.pipe.vae, "decode", poisoned)
    with pytest.raises(ValueError, match="NaN/inf pixels"):
        b.img2img(init, seed=2, **CALL)


def test_a_damaged_text_encoder_is_a_value_error_naming_the_file(tmp_path):
    """From a review: a truncated text_encoder/model.safetensors escaped as safetensors' own
    SafetensorError (a traceback, naming no file)."""
    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    f = tmp_path / "model" / "text_encoder" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"model path .*model: cannot load this diffusers folder "
                       r"\(text_encoder/model\.safetensors is damaged"):  # fmt: skip
        load_backend("diffusers", tmp_path / "model", device="cpu")


def test_a_folder_without_its_tokenizer_is_refused_at_load(tmp_path):
    """From a review: transformers built a 2-token tokenizer that reads up to 1e30 tokens;
    the model loaded and the first frame failed with an OverflowError, after the run
    folder was written."""
    import shutil

    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    shutil.rmtree(tmp_path / "model" / "tokenizer")
    # (transformers before 5 refuses it itself, "Can't load tokenizer", named in the same way)
    refused = (
        r"model path .*model: (the tokenizer reads 1e\+30 tokens at most, the text encoder 77"
        r"|cannot load .*Can't load tokenizer)"
    )
    with pytest.raises(ValueError, match=refused):
        load_backend("diffusers", tmp_path / "model", device="cpu")


def test_tokenizers_the_text_encoder_cannot_use_are_refused(tmp_path):
    import json

    from transformers import CLIPTokenizer

    from loopwave.backends import _check_tokenizer

    pipe = smoke_backend().pipe
    _check_tokenizer(pipe)
    pipe.text_encoder.config.vocab_size = 100
    with pytest.raises(ValueError, match="the tokenizer has 514 tokens, the text encoder 100"):
        _check_tokenizer(pipe)
    pipe.text_encoder.config.vocab_size = 514
    # a vocabulary of its special tokens only: every word is unknown
    (tmp_path / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    pipe.tokenizer = CLIPTokenizer(
        str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=77
    )
    with pytest.raises(ValueError, match=r"the tokenizer \(2 tokens\) reads text as unknown"):
        _check_tokenizer(pipe)
    pipe.tokenizer = None
    with pytest.raises(ValueError, match="^no tokenizer$"):
        _check_tokenizer(pipe)


def test_a_folder_of_fp16_variant_weights_loads(tmp_path, init):
    """From a review: a folder holding only diffusion_pytorch_model.fp16.safetensors (as
    save_pretrained(variant="fp16") writes) was refused with "no file named
    diffusion_pytorch_model.bin"; it loads, in the device's precision."""
    pipe = smoke_backend(scheduler="Euler a").pipe.to(torch.float16)
    pipe.save_pretrained(tmp_path / "model", variant="fp16")
    assert not list((tmp_path / "model").glob("*/diffusion_pytorch_model.safetensors"))
    loaded = load_backend("diffusers", tmp_path / "model", device="cpu", scheduler="Euler a")
    parts = (loaded.pipe.unet, loaded.pipe.vae, loaded.pipe.text_encoder)
    assert {m.dtype for m in parts} == {torch.float32}
    # the oracle: the smoke model with its weights rounded to fp16 as they were saved
    oracle = smoke_backend(scheduler="Euler a")
    with torch.no_grad():
        for m in (oracle.pipe.unet, oracle.pipe.vae, oracle.pipe.text_encoder):
            for t in m.state_dict().values():
                t.copy_(t.half().float())
    np.testing.assert_array_equal(
        loaded.img2img(init, seed=3, **CALL), oracle.img2img(init, seed=3, **CALL)
    )


def test_fp16_files_of_a_part_it_does_not_load_leave_the_fp32_weights(tmp_path):
    """From a review: a safety_checker/ holding only an fp16 file (the pipeline loads no
    safety checker) made every part load its fp16 file, where the fp32 files beside them
    had loaded before."""
    pipe = smoke_backend().pipe
    pipe.save_pretrained(tmp_path / "model")
    # fp16 files beside the fp32 ones, as the Hub's SD 1.5 folders hold both
    smoke_backend().pipe.to(torch.float16).save_pretrained(tmp_path / "model", variant="fp16")
    (tmp_path / "model" / "safety_checker").mkdir()
    (tmp_path / "model" / "safety_checker" / "model.fp16.safetensors").write_bytes(b"")
    loaded = load_backend("diffusers", tmp_path / "model", device="cpu")
    want = pipe.unet.state_dict()
    for k, v in loaded.pipe.unet.state_dict().items():
        assert torch.equal(v, want[k]), k  # the fp32 weights, not rounded to fp16


def test_every_sigma_spacing_switch_of_the_installed_schedulers_is_reset():
    """A name sets every sigma-spacing switch its class has: the installed diffusers'
    switches are all in the list (use_lu_lambdas and use_flow_sigmas were not)."""
    import inspect
    import re

    import diffusers

    from loopwave.backends import _PLAIN_SIGMAS

    for cls_name, _ in SCHEDULERS.values():
        takes = inspect.signature(getattr(diffusers, cls_name).__init__).parameters
        switches = {k for k in takes if re.fullmatch(r"use_\w*(sigmas|lambdas|shifting)", k)}
        assert switches <= set(_PLAIN_SIGMAS), (cls_name, switches - set(_PLAIN_SIGMAS))


@pytest.mark.parametrize("flag", ["use_lu_lambdas", "use_flow_sigmas"])
def test_a_model_saved_with_other_sigmas_runs_a_name_as_named(tmp_path, flag, init):
    """From a review: a model saved with Lu lambdas kept them under "DPM++ 2M"."""
    import diffusers

    pipe = smoke_backend().pipe
    pipe.scheduler = diffusers.DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, **{flag: True, "use_karras_sigmas": False}
    )
    pipe.save_pretrained(tmp_path / "model")
    loaded = load_backend("diffusers", tmp_path / "model", device="cpu", scheduler="DPM++ 2M")
    assert loaded.pipe.scheduler.config[flag] is False
    kw = {**CALL, "steps": 8}
    np.testing.assert_array_equal(
        loaded.img2img(init, seed=1, **kw),
        smoke_backend(scheduler="DPM++ 2M").img2img(init, seed=1, **kw),
    )


def test_a_lora_suffix_in_any_case_is_safetensors(tmp_path, init):
    """From a review: Style.SafeTensors was refused as pickled (the model's suffix was
    already read in any case)."""
    pytest.importorskip("peft")
    from loopwave.backends import _check_loras

    path, oracle = _lora_file(tmp_path)
    upper = path.rename(tmp_path / "Style.SafeTensors")
    assert _check_loras([{"path": str(upper)}], False) == [(upper, 1.0)]
    got = load_backend("smoke", scheduler="DPM++ 2M Karras", lora=[{"path": str(upper)}])
    want = oracle.img2img(init, seed=4, **CALL)
    assert np.abs(got.img2img(init, seed=4, **CALL).astype(int) - want).max() <= 1


def test_a_load_puts_back_the_library_loggers_own_levels(tmp_path, monkeypatch):
    """From a review of loopwave inside a host program: the quiet load saved diffusers' and
    transformers' effective levels and set them back as their own, so loggers the host
    had left at NOTSET (following its root logger) stayed pinned at INFO."""
    import logging

    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    logs = [logging.getLogger(n) for n in ("diffusers", "transformers")]
    for log in logs:
        monkeypatch.setattr(log, "level", log.level)  # put back after the test
        log.setLevel(logging.NOTSET)
    load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
    assert [log.level for log in logs] == [logging.NOTSET, logging.NOTSET]
    half = smoke_backend().pipe.to(torch.bfloat16)  # cast back to float32, quietly
    DiffusersBackend(half, device="cpu")
    assert [log.level for log in logs] == [logging.NOTSET, logging.NOTSET]


def test_no_loading_bars_without_progress(tmp_path, capfd):
    """From a review: `--quiet` ("no progress bar") still printed diffusers' "Loading
    pipeline components..." and transformers' "Loading weights" bars."""
    import json

    from diffusers.utils import logging as dlog

    from loopwave.backends import quiet_loading
    from loopwave.cli import main

    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    capfd.readouterr()
    load_backend("diffusers", tmp_path / "model", device="cpu")
    assert "Loading pipeline components" in capfd.readouterr().err  # shown by default
    load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
    assert "Loading" not in capfd.readouterr().err
    with quiet_loading():
        load_backend("diffusers", tmp_path / "model", device="cpu")
    assert "Loading" not in capfd.readouterr().err
    assert dlog.is_progress_bar_enabled()  # put back
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "version": 1,
        "render": {"frames": 2, "width": 32, "height": 32, "steps": "0: (2)", "seed": 2},
        "denoise": {"mode": "schedule", "schedule": "0: (0.5)"},
        "colour": {"mode": "none"},
        "prompts": {"0": "a forest"},
    }))  # fmt: skip
    argv = ["render", str(job), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--no-video", "--quiet"]) == 0
    assert "Loading" not in capfd.readouterr().err
    # and a library caller's render(progress=False) loads quietly too
    from loopwave.render import render
    from loopwave.settings import load_settings

    s = load_settings(job)
    s["model"] = {**s["model"], "backend": "diffusers", "path": str(tmp_path / "model")}
    render(s, run_dir=tmp_path / "lib", progress=False, video=False)
    assert "Loading" not in capfd.readouterr().err


# SD 1.5's published scheduler config (PNDM without warm-up, "leading" spacing by default)
SD15_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


@pytest.mark.parametrize("config", ["smoke", "sd15"])
def test_schedules_the_scheduler_cannot_run_are_refused_before_a_step(init, config):
    """From a review: 1000 steps (the documented most) ran timestep 1000 with DDIM and
    PNDM (an IndexError inside diffusers) and repeated a noise level with DPM++ 2M (a
    division by zero, refused as NaN pixels blaming the prompt weights), and a strength
    just over 1/1000 made such a schedule of any steps. check_schedule now sets the
    schedule on a copy of the scheduler and looks."""
    import diffusers

    from loopwave.backends import _scheduler_options

    refused = {"DDIM": "reaches timestep 1000", "PNDM": "reaches timestep 1000"}
    refused["DPM++ 2M"] = "repeats a noise level"
    for name, (cls_name, extra) in SCHEDULERS.items():
        b = smoke_backend(scheduler=name)
        if config == "sd15":
            cls = getattr(diffusers, cls_name)
            b.pipe.scheduler = cls.from_config(SD15_SCHEDULER, **_scheduler_options(cls, extra))
        b.check_schedule(999, 1.0)  # every scheduler runs 999
        if not (name == "PNDM" and config == "smoke"):  # the warm-up form: see below
            b.check_schedule(1000, 0.5)  # the half that runs is fine
        if name not in refused:
            b.check_schedule(1000, 1.0)
            continue
        with pytest.raises(
            ValueError, match=f"^steps: 1000 steps at strength 1: .*{refused[name]}"
        ):
            b.check_schedule(1000, 1.0)
        # refused at once by img2img too, before any step (a step of 1000 takes minutes)
        with pytest.raises(ValueError, match=refused[name]):
            b.img2img(init, seed=0, **{**CALL, "steps": 1000, "strength": 1.0})
    # PNDM's warm-up form (the smoke model's config) reads its warm-up timesteps from the
    # schedule's start whatever strength cuts: a 1000-step schedule fails at any strength
    b = smoke_backend(scheduler="PNDM")
    if config == "smoke":
        with pytest.raises(ValueError, match=r"\(a schedule of 1000, .* use a higher strength$"):
            b.check_schedule(20, 0.001)
        with pytest.raises(ValueError, match="reaches timestep 1000"):
            b.check_schedule(1000, 0.5)
    b.check_schedule(20, 0.0011)  # a schedule of 910


def test_scheduler_refusals_stop_a_render_before_it_writes(tmp_path):
    from loopwave.render import render
    from loopwave.settings import Settings

    job = {
        "version": 1,
        "render": {"frames": 3, "width": 32, "height": 32, "steps": "0: (4), 2: (1000)"},
        "denoise": {"mode": "schedule", "schedule": "0: (1)"},
        "colour": {"mode": "none"},
        "model": {"scheduler": "DDIM"},
        "prompts": {"0": "a forest"},
    }
    s = Settings.from_dict(job)
    b = smoke_backend(scheduler="DDIM")
    with pytest.raises(ValueError, match="^render.steps at frame 2: steps: 1000 steps"):
        render(s, run_dir=tmp_path / "run", backend=b, progress=False, video=False)
    assert not (tmp_path / "run").exists()
    # the smoke model's UNet cannot make 16x16 frames (torch failed at frame 0)
    job["render"] = {"frames": 3, "width": 16, "height": 16, "steps": "0: (4)"}
    s = Settings.from_dict(job)
    with pytest.raises(ValueError, match="^render.width, render.height: the SMOKE MODEL's UNet"):
        render(s, run_dir=tmp_path / "run", backend=b, progress=False, video=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(
        ValueError, match="^init: the SMOKE MODEL's UNet cannot make frames of 16x16"
    ):
        b.img2img(np.zeros((16, 16, 3), np.uint8), seed=1, **CALL)


def test_sdpa_off_runs_the_plain_attention(init, monkeypatch):
    """From a review: accel.sdpa = false (bench's "SDPA off") changed nothing, since
    diffusers picks SDPA itself on torch 2."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    on, off = smoke_backend(), smoke_backend(accel={"sdpa": False})
    for b, kind in ((on, AttnProcessor2_0), (off, AttnProcessor)):
        for part in (b.pipe.unet, b.pipe.vae):
            assert {type(p) for p in part.attn_processors.values()} == {kind}
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        torch.nn.functional,
        "scaled_dot_product_attention",
        lambda *a, **k: calls.append(1) or sdpa(*a, **k),
    )
    off.img2img(init, seed=2, **CALL)  # the text encoder (transformers' own SDPA) runs
    calls.clear()
    got = off.img2img(init, seed=2, **CALL)  # the prompts' states are cached now
    assert calls == []
    on.img2img(init, seed=2, **CALL)
    calls.clear()
    want = on.img2img(init, seed=2, **CALL)
    assert calls  # the same call with SDPA on goes through it
    assert np.abs(got.astype(int) - want).max() <= 1


def test_clearing_the_prompt_cache_waits_for_a_call_in_progress():
    """From a review: clear_prompt_cache took no lock, so a clear while another thread
    encoded raised KeyError in embed (a hit then moved to the end of a cleared dict)."""
    import threading

    b = smoke_backend()
    b.embed("a castle")
    with b._call_lock:  # as a call in progress on another thread holds it
        t = threading.Thread(target=b.clear_prompt_cache)
        t.start()
        t.join(0.3)
        assert t.is_alive() and len(b._embeds) == 1
    t.join(10)
    assert not t.is_alive() and len(b._embeds) == 0


def test_timestep_spacing_is_the_models_as_the_readme_says(tmp_path):
    """A name fixes the sigma spacing, not the timestep spacing: that is the model's
    scheduler_config.json's, the named scheduler's default where the file has none (a
    review found DDIM on other timesteps for a model saved with every key written)."""
    import json

    smoke_backend().pipe.save_pretrained(tmp_path / "m")
    config = tmp_path / "m" / "scheduler" / "scheduler_config.json"
    for spacing, want in (
        (None, {"DDIM": "leading", "PNDM": "leading", "DPM++ 2M": "linspace", "Euler": "linspace"}),
        ("trailing", dict.fromkeys(("DDIM", "DPM++ 2M", "Euler"), "trailing")),
    ):
        cfg = {"_class_name": "PNDMScheduler", **SD15_SCHEDULER}
        if spacing:
            cfg["timestep_spacing"] = spacing
        config.write_text(json.dumps(cfg))
        for name, kind in want.items():
            b = load_backend("diffusers", tmp_path / "m", device="cpu", scheduler=name)
            assert b.pipe.scheduler.config["timestep_spacing"] == kind, (spacing, name)
            assert b.pipe.scheduler.config["steps_offset"] == 1


def test_loading_a_folder_prints_no_torch_dtype_deprecation(tmp_path):
    """From a review: every load printed diffusers' FutureWarning about torch_dtype, past
    --quiet."""
    import warnings

    smoke_backend().pipe.save_pretrained(tmp_path / "m")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_backend("diffusers", tmp_path / "m", device="cpu", progress=False)
    assert not [w for w in seen if "torch_dtype" in str(w.message)]


def test_a_text_encoder_lacking_weights_is_refused(tmp_path, init):
    """From a review: a text_encoder/ file with a tensor removed, or all its tensors
    renamed, loaded without error: transformers filled the missing weights with random
    values and only logged it, and the frames were not the model's."""
    from safetensors.torch import load_file, save_file

    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    f = tmp_path / "model" / "text_encoder" / "model.safetensors"
    whole = load_file(str(f))
    gone = next(k for k in whole if k.endswith("layers.1.self_attn.q_proj.weight"))
    save_file({k: v for k, v in whole.items() if k != gone}, str(f))
    with pytest.raises(ValueError, match=r"model path .*model: cannot load this diffusers folder "
                       rf"\(text_encoder lacks 1 weight: {gone}\)"):  # fmt: skip
        load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
    save_file({"renamed." + k: v for k, v in whole.items()}, str(f))
    with pytest.raises(ValueError, match=r"\(text_encoder lacks \d+ weights: .*, \.\.\.\)"):
        load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
    save_file(whole, str(f))  # whole again: it loads, and renders as the model
    loaded = load_backend("diffusers", tmp_path / "model", device="cpu", scheduler="Euler a")
    np.testing.assert_array_equal(
        loaded.img2img(init, seed=9, **CALL),
        smoke_backend(scheduler="Euler a").img2img(init, seed=9, **CALL),
    )


def test_a_damaged_pickled_text_encoder_is_a_value_error_naming_the_file(tmp_path):
    """From a review: a damaged text_encoder/pytorch_model.bin escaped as torch's raw
    pickle.UnpicklingError, whose message advises loading it with weights_only off."""
    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "text_encoder" / "model.safetensors").unlink()
    (tmp_path / "model" / "text_encoder" / "pytorch_model.bin").write_bytes(b"\0garbage" * 100)
    damaged = r"\(text_encoder/pytorch_model\.bin is damaged .*\(UnpicklingError: "
    with pytest.raises(
        ValueError, match=r"model path .*model: cannot load .*folder " + damaged
    ) as e:
        load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
    assert "weights_only" not in str(e.value)


def test_parts_img2img_cannot_run_are_refused_at_load(tmp_path):
    """From a review: an inpainting model (its UNet takes 9 input channels) loaded, and
    frame 0 failed inside torch after the run folder was written; so did a UNet
    attending to text features of another width than its text encoder's."""
    import diffusers

    pipe = smoke_backend().pipe
    config = dict(pipe.unet.config)
    for change, refused in (
        ({"in_channels": 9}, r"its UNet takes 9 input channels \(an inpainting model\?\); "
                             r"img2img needs 4"),
        ({"cross_attention_dim": 64}, r"its UNet attends to text features 64 wide, its text "
                                      r"encoder makes them 32 wide"),
    ):  # fmt: skip
        pipe.unet = diffusers.UNet2DConditionModel.from_config({**config, **change})
        pipe.save_pretrained(tmp_path / "model")
        with pytest.raises(ValueError, match=r"^model path .*model: " + refused):
            load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)


def test_cpu_weights_are_not_read_from_their_files_after_loading(tmp_path, init):
    """From a review: on the CPU the weights stayed memory-mapped from the model's files
    (and LoRA files): a model file overwritten while the backend was alive changed its
    later frames, and one truncated killed the process with SIGBUS."""
    import importlib.util
    import os
    import shutil

    from safetensors.torch import save_file

    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    unet_file = tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors"
    lora = []
    if importlib.util.find_spec("peft"):
        lora_file, _ = _lora_file(tmp_path)
        lora = [{"path": str(lora_file)}]
    b = load_backend("diffusers", tmp_path / "model", device="cpu", lora=lora, progress=False)
    before = b.img2img(init, seed=4, **CALL)
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as maps:
            mapped = maps.read()
        assert str(unet_file) not in mapped
        assert not lora or lora[0]["path"] not in mapped
    # rewritten in place, as cp does (save_file makes a new file: the old mapping held)
    other = smoke_backend(seed=1).pipe.unet.state_dict()
    save_file({k: v.contiguous() for k, v in other.items()}, str(tmp_path / "other.safetensors"))
    shutil.copyfile(tmp_path / "other.safetensors", unet_file)
    np.testing.assert_array_equal(b.img2img(init, seed=4, **CALL), before)


def test_a_lora_or_other_file_given_as_the_model_is_named(tmp_path):
    """From a review: a LoRA given as model.path was reported as a config missing from the
    local Hugging Face cache ("convert it ... or cache its config"), and so was any
    safetensors file that is not a Stable Diffusion checkpoint."""
    from safetensors.torch import save_file

    kohya = tmp_path / "style.safetensors"
    save_file({
        "lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 64),
        "lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight": torch.zeros(64, 4),
    }, str(kohya))  # fmt: skip
    with pytest.raises(ValueError, match=r"^model path .*style\.safetensors is a LoRA, not a "
                       r"model: list it under model\.lora$"):  # fmt: skip
        load_backend("diffusers", kohya, device="cpu", progress=False)
    vae = tmp_path / "vae.safetensors"
    save_file(
        {k: v.contiguous() for k, v in smoke_backend().pipe.vae.state_dict().items()}, str(vae)
    )
    with pytest.raises(ValueError, match=r"vae\.safetensors is not a Stable Diffusion checkpoint "
                       r"\(no model\.diffusion_model\.\* tensors\)"):  # fmt: skip
        load_backend("diffusers", vae, device="cpu", progress=False)
    ckpt = tmp_path / "style.ckpt"  # pickled, trusted: its tensors are looked at as well
    torch.save({"unet.down_blocks.1.attentions.0.proj_in.lora_A.weight": torch.zeros(4, 64)}, ckpt)
    with pytest.raises(ValueError, match=r"style\.ckpt is a LoRA, not a model"):
        load_backend("diffusers", ckpt, device="cpu", allow_pickle=True, progress=False)


def test_each_part_of_a_folder_loads_its_own_variant(tmp_path):
    """From a review: one part with fp16 variant files only (the text encoder here) made
    every part load its fp16 file: the UNet's fp16 file beside its fp32 one was loaded,
    here another model's."""
    import shutil

    pipe = smoke_backend().pipe
    pipe.save_pretrained(tmp_path / "model")
    pipe.save_pretrained(tmp_path / "fp16", variant="fp16")
    for f in (tmp_path / "model" / "text_encoder").glob("*.safetensors"):
        f.unlink()
    shutil.copy(tmp_path / "fp16" / "text_encoder" / "model.fp16.safetensors",
                tmp_path / "model" / "text_encoder")  # fmt: skip
    smoke_backend(seed=1).pipe.unet.save_pretrained(tmp_path / "other", variant="fp16")
    shutil.copy(tmp_path / "other" / "diffusion_pytorch_model.fp16.safetensors",
                tmp_path / "model" / "unet")  # fmt: skip
    loaded = load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
    for part in ("unet", "text_encoder"):
        want = getattr(pipe, part).state_dict()
        for k, v in getattr(loaded.pipe, part).state_dict().items():
            assert torch.equal(v, want[k]), (part, k)


def test_quiet_loads_print_no_library_warnings(tmp_path):
    """From a review: progress=False (--quiet) still printed diffusers' and transformers'
    load-time warnings ("There are modules in UNet2DConditionModel that should be kept
    in float32", "Attempting to download the necessary config files", transformers' load
    reports); their levels are put back after."""
    import logging

    from diffusers.utils import logging as dlog
    from safetensors.torch import load_file, save_file
    from transformers.utils import logging as tlog

    smoke_backend().pipe.save_pretrained(tmp_path / "model")
    f = tmp_path / "model" / "text_encoder" / "model.safetensors"
    # a tensor the model does not have: transformers loads the rest and reports it
    save_file({**load_file(str(f)), "extra.weight": torch.zeros(2)}, str(f))
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    # the libraries' own loggers (they do not propagate to the root: no caplog)
    keep = Keep(logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers")]
    levels = (dlog.get_verbosity(), tlog.get_verbosity())
    for lg in loggers:
        lg.addHandler(keep)
    try:
        load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
        assert not [m for m in seen if "extra.weight" in m]
        assert (dlog.get_verbosity(), tlog.get_verbosity()) == levels
        load_backend("diffusers", tmp_path / "model", device="cpu")  # shown by default
        assert [m for m in seen if "extra.weight" in m]
        # a .bin-only part: diffusers looked for a .safetensors first and logged, as an
        # error (past --quiet), that the model's folder had none
        vae = tmp_path / "model" / "vae"
        (vae / "diffusion_pytorch_model.safetensors").unlink()
        smoke_backend().pipe.vae.save_pretrained(vae, safe_serialization=False)
        seen.clear()
        load_backend("diffusers", tmp_path / "model", device="cpu", progress=False)
        assert not [m for m in seen if "no file named" in m], seen
    finally:
        for lg in loggers:
            lg.removeHandler(keep)


def test_over_long_paths_are_value_errors_naming_the_key():
    """From a review: a model or LoRA path too long for the system raised the OSError of
    Path.exists / Path.is_file ("File name too long"), naming no setting."""
    with pytest.raises(ValueError, match=r"^model path 'xxxx.*File name too long"):
        load_backend("diffusers", "x" * 300, device="cpu")
    with pytest.raises(ValueError, match=r"^lora\[0\]: 'xxxx.*File name too long"):
        load_backend("smoke", lora=[{"path": "x" * 300 + ".safetensors"}])


def test_an_fp16_folder_with_an_image_encoder_loads(tmp_path):
    """From a review: an fp16-only folder holding an IP-Adapter's image_encoder/ (saved
    after load_ip_adapter) loaded before the parts were loaded one by one, and then was
    refused: diffusers loaded the image encoder, unused here, without the fp16 variant."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    pipe = smoke_backend().pipe
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
        image_size=32, patch_size=16, projection_dim=32,
    )  # fmt: skip
    pipe.register_modules(image_encoder=CLIPVisionModelWithProjection(vision))
    pipe.to(torch.float16).save_pretrained(tmp_path / "model", variant="fp16")
    assert (tmp_path / "model" / "image_encoder" / "model.fp16.safetensors").is_file()
    loaded = load_backend("diffusers", tmp_path / "model", device="cpu")
    assert loaded.pipe.image_encoder is None
    want = smoke_backend().pipe.unet.state_dict()
    for k, v in loaded.pipe.unet.state_dict().items():
        assert torch.equal(v, want[k].half().float()), k


def test_library_versions_that_cannot_work_together_are_named(monkeypatch):
    """From a review of the oldest versions allowed: diffusers 0.30 beside transformers 5
    failed at the first use with diffusers' RuntimeError ("Failed to import ...
    FLAX_WEIGHTS_NAME"), and a peft too old for the installed diffusers gave "PEFT
    backend is required for load_lora_weights()" with peft installed."""
    import re
    import sys
    import types
    from pathlib import Path

    import diffusers.utils
    import transformers

    from loopwave.backends import _apply_loras, _deps

    stub = types.ModuleType("diffusers")
    stub.__version__ = "0.30.3"  # type: ignore[attr-defined]

    def failing(cause):  # diffusers' lazy import wraps every cause so
        def get(name):
            raise RuntimeError(
                "Failed to import diffusers.pipelines.stable_diffusion because of the "
                f"following error (look up to see its traceback):\n{cause}"
            )

        return get

    stub.__getattr__ = failing(  # type: ignore[attr-defined]
        "cannot import name 'FLAX_WEIGHTS_NAME' from 'transformers.utils'"
    )
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "diffusers", stub)
        beside = re.escape(transformers.__version__)
        said = rf"^diffusers 0.30.3 cannot run beside transformers {beside}"
        with pytest.raises(ImportError, match=said + r" \(cannot import name 'FLAX_WEIGHTS"):
            _deps()
        # another cause (a scipy built for another numpy) is not called a clash
        stub.__getattr__ = failing("No module named 'scipy'")  # type: ignore[attr-defined]
        with pytest.raises(ImportError, match=r"^diffusers' img2img pipeline failed to import: "
                           r"No module named 'scipy'$"):  # fmt: skip
            _deps()
    import peft

    monkeypatch.setattr(diffusers.utils, "USE_PEFT_BACKEND", False)
    pipe = smoke_backend().pipe
    with pytest.raises(ImportError, match=r"installed after diffusers was imported .*restart"):
        _apply_loras(pipe, [(Path("style.safetensors"), 1.0)])  # new enough, seen too late
    monkeypatch.setattr(peft, "__version__", "0.10.0")
    with pytest.raises(ImportError, match=r"LoRA files need a peft this diffusers .* too old"):
        _apply_loras(pipe, [(Path("style.safetensors"), 1.0)])


def test_a_missing_transformers_is_named_with_the_extra_to_install(monkeypatch):
    """From a review: diffusers imports without transformers, so the backends got past
    their dependency check and failed at the first model built with a bare
    ModuleNotFoundError, without the extra that installs it."""
    import sys

    from loopwave.backends import _deps

    monkeypatch.setitem(sys.modules, "transformers", None)  # what an import then meets
    said = r"need torch, diffusers and transformers \(.*transformers.*\): pip install 'loop"
    with pytest.raises(ImportError, match=said):
        _deps()
    with pytest.raises(ImportError, match=said):
        smoke_backend()


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="transformers has torchvision"
)
def test_loading_a_model_prints_no_torchvision_notes_and_a_hosts_own_use_keeps_them():
    """From a review: the Python render() printed transformers' "`CLIPImageProcessor`
    requires torchvision (not installed); falling back to ..." lines (diffusers'
    pipelines import the image processors of safety checkers loopwave never loads),
    where the CLI hid them by setting the library's verbosity for the whole process.
    They are now dropped for the pipelines' import alone: a host's own use of an image
    processor afterwards still gets its note (a fresh interpreter: they are logged once)."""
    script = (
        "from loopwave.backends import smoke_backend\n"
        "smoke_backend()\n"
        "import sys, transformers\n"
        "print('--- host', file=sys.stderr, flush=True)\n"
        "transformers.ViTImageProcessor\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("TRANSFORMERS_VERBOSITY", None)
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    ours, _, host = r.stderr.partition("--- host")
    assert "requires torchvision" not in ours, ours
    assert "`ViTImageProcessor` requires torchvision" in host, r.stderr[-2000:]
