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


def test_builds_on_threads_get_the_weights_of_their_seed(monkeypatch):
    """The weights come from torch's process-wide generator, reseeded per build: two
    builds on two threads drew from each other's stream (5 in 5 trials) before builds
    took the backends' build lock."""
    import threading

    import torch

    import loopwave.sd15 as sd

    # the published configurations shrunk, so a build takes a moment (same code path)
    small_unet = dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    monkeypatch.setattr(sd, "SD15_UNET", {**sd.SD15_UNET, **small_unet})
    monkeypatch.setattr(sd, "SD15_VAE", {**sd.SD15_VAE, "block_out_channels": (32,) * 4})
    small_text = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4)
    monkeypatch.setattr(sd, "SD15_TEXT", {**sd.SD15_TEXT, **small_text, "num_hidden_layers": 2})

    def flat(parts):
        return torch.cat([p.detach().flatten() for m in parts for p in m.parameters()])

    want = flat(sd15_random_parts(seed=0))
    assert not torch.equal(want, flat(sd15_random_parts(seed=1)))
    # from a review of the GPU paths: each build (smoke ones too) reseeded every CUDA
    # generator through torch.manual_seed, the host's CUDA random numbers with them; the
    # host's CPU numbers go on as before, and the weights are the seed's all the same
    from loopwave.backends import smoke_backend

    seeded: list = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: seeded.append(s))
    torch.manual_seed(5)  # (recorded: the host's own)
    host = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(flat(sd15_random_parts(seed=0)), want)
    units = [p.detach().clone() for p in smoke_backend(seed=3).pipe.unet.parameters()]
    assert torch.equal(torch.rand(3), host) and seeded == [5, 5]
    again = smoke_backend(seed=3).pipe.unet.parameters()
    assert all(torch.equal(a, b) for a, b in zip(units, again, strict=True))
    got: list = [None, None]

    def build(k):
        got[k] = flat(sd15_random_parts(seed=0))

    for _ in range(3):
        got[:] = [None, None]
        threads = [threading.Thread(target=build, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(torch.equal(g, want) for g in got)


def test_sd15_arguments_are_checked_before_the_weights_are_built(monkeypatch):
    import loopwave.sd15 as sd

    def no_build(**kw):
        raise AssertionError("the weights were built before the arguments were checked")

    monkeypatch.setattr(sd, "sd15_random_parts", no_build)
    for kw, err, msg in (
        ({"device": "foo"}, ValueError, "^device: 'foo'"),
        ({"device": "cuda:3"}, ValueError, "^device: 'cuda:3' asked for"),
        ({"scheduler": "bogus"}, ValueError, "^scheduler must be one of"),
        ({"accel": {"compile": ["foo"]}}, ValueError, r"^accel\.compile"),
    ):
        with pytest.raises(err, match=msg):
            sd.sd15_random_backend(**kw)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"^seed must be in -2\*\*63\.\.2\*\*64 - 1"):
        sd15_random_parts(seed=2**70, device="meta")
    with pytest.raises(ValueError, match="^device: 'foo'"):
        sd15_random_parts(device="foo")
