"""The SD 1.5-sized random model has the published model's shapes (built on the meta device)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from loopwave.sd15 import sd15_random_parts  # noqa: E402


def test_parameter_counts_match_stable_diffusion_1_5():
    unet, vae, text = sd15_random_parts(device="meta")
    count = [sum(p.numel() for p in m.parameters()) for m in (unet, vae, text)]
    # the published v1-5 UNet, VAE (kl-f8) and CLIP ViT-L/14 text encoder
    assert count == [859_520_964, 83_653_863, 123_060_480]
    assert unet.config.cross_attention_dim == text.config.hidden_size == 768
