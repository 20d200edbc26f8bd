"""A Stable-Diffusion-1.5-sized img2img pipeline with random weights, for measuring speed.

Benchmarks on a GPU need the real model's compute, not its pictures, and this
project downloads no weights. :func:`sd15_random_backend` builds the UNet, VAE
and CLIP text encoder from the published SD 1.5 configurations (the values
below; about 860M, 84M and 123M parameters) with random weights, in-process.
Its pictures are noise; its speed is the real model's. Like the smoke model
it uses loopwave's byte-level tokenizer (token ids < 514, inside CLIP's
49,408-entry embedding), which changes nothing about the compute: prompts are
padded to whole chunks of 77 tokens (one chunk up to 75 bytes of prompt).

Build it on a GPU: on the CPU the float32 weights take about 4.3 GB and one
512x512 denoising step several seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .backends import (
    DiffusersBackend,
    _byte_tokenizer,
    _deps,
    _img2img_pipeline,
    _one_at_a_time,
    _torch_device,
    check_backend_args,
    check_seed,
)

__all__ = ["SD15_TEXT", "SD15_UNET", "SD15_VAE", "sd15_random_backend", "sd15_random_parts"]

# the published runwayml/stable-diffusion-v1-5 configurations (facts, not weights)
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 512,
}
# CLIP ViT-L/14's text tower
SD15_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}


# one build at a time: the weights come from torch's process-wide generator, reseeded
# here (builds on two threads got each other's draws)
@_one_at_a_time
def sd15_random_parts(*, seed: int = 0, device: str = "cpu") -> tuple[Any, Any, Any]:
    """``(unet, vae, text_encoder)`` at SD 1.5 size with random weights, made in float32
    on ``device`` (``"meta"`` builds them without memory, to inspect shapes and parameter
    counts)."""
    torch, diffusers = _deps()
    from transformers import CLIPTextConfig, CLIPTextModel

    seed = check_seed(seed)
    if device != "meta":
        device = str(_torch_device(torch, device))
    # the generator the weights are drawn from alone (the CPU's, or the build CUDA
    # device's: "cuda" is the current one), forked: torch.manual_seed reseeded every CUDA
    # generator, the host's included. Other accelerators (mps, xpu) as before: all seeded
    at = torch.device(device)
    gpus = (
        [torch.cuda.current_device() if at.index is None else at.index] if at.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=gpus):
        torch.default_generator.manual_seed(seed)
        for i in gpus:
            torch.cuda.default_generators[i].manual_seed(seed)
        if at.type not in ("cpu", "cuda", "meta"):
            torch.manual_seed(seed)
        with torch.device(device):
            unet = diffusers.UNet2DConditionModel(**SD15_UNET)
            vae = diffusers.AutoencoderKL(**SD15_VAE)
            text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
    for m in (unet, vae, text):
        m.eval()
    return unet, vae, text


def sd15_random_backend(
    *,
    device: str = "auto",
    scheduler: str | None = "DPM++ 2M Karras",
    seed: int = 0,
    accel: dict[str, Any] | None = None,
) -> DiffusersBackend:
    """An SD 1.5-sized img2img backend with random weights (see the module docs)."""
    torch, _ = _deps()
    # before a billion weights are drawn
    _, dev = check_backend_args(torch, device, scheduler, accel)
    # drawn in float32 on the device, then cast to float16 there by DiffusersBackend on
    # CUDA (about 4.3 GB at the peak, not 2.2)
    unet, vae, text = sd15_random_parts(seed=seed, device=str(dev))
    with tempfile.TemporaryDirectory() as d:
        tokenizer = _byte_tokenizer(Path(d))
    pipe = _img2img_pipeline(unet, vae, text, tokenizer)
    return DiffusersBackend(
        pipe,
        device=device,
        scheduler=scheduler,
        label="SD 1.5 size, RANDOM WEIGHTS",
        accel=accel,
    )
