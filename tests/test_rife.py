"""RIFE IFNet: torch vs onnxruntime on random weights, checkpoint loading, backends."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from loopwave.cli import main  # noqa: E402
from loopwave.rife import (  # noqa: E402
    OnnxRifeInterpolator,
    TorchRifeInterpolator,
    build_ifnet,
    export_onnx,
    load_state_dict_file,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-weight state dict saved as RIFE ships it (DataParallel 'module.' keys)."""
    torch.manual_seed(0)
    model = build_ifnet()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)  # keep activations in a sane range with random weights
    path = tmp_path_factory.mktemp("rife") / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def onnx_model(checkpoint, tmp_path_factory):
    return export_onnx(tmp_path_factory.mktemp("onnx") / "rife.onnx", checkpoint)


@pytest.mark.parametrize("hw", [(64, 64), (128, 192)])
def test_onnxruntime_matches_torch(checkpoint, onnx_model, hw):
    model = load_state_dict_file(build_ifnet(), checkpoint).eval()
    rng = np.random.default_rng(1)
    x0 = rng.random((1, 3, *hw), dtype=np.float32)
    x1 = rng.random((1, 3, *hw), dtype=np.float32)
    sess = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    for t in (0.25, 0.5):
        ts = np.full((1, 1, 1, 1), t, np.float32)
        with torch.inference_mode():
            want = model(torch.from_numpy(x0), torch.from_numpy(x1), torch.from_numpy(ts)).numpy()
        got = sess.run(["frame"], {"img0": x0, "img1": x1, "timestep": ts})[0]
        assert got.shape == want.shape
        rel = np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)
        assert rel <= 1e-3


def test_backends_agree_with_padding(checkpoint, onnx_model):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)  # needs padding to 64 x 128
    b = np.roll(a, 3, axis=1)
    via_torch = TorchRifeInterpolator(checkpoint).between(a, b, [0.5])
    via_onnx = OnnxRifeInterpolator(onnx_model).between(a, b, [0.5])
    assert via_torch.shape == via_onnx.shape == (1, 50, 70, 3)
    assert np.abs(via_torch.astype(int) - via_onnx.astype(int)).max() <= 1


def test_published_key_names_load_and_wrong_ones_are_refused(checkpoint, tmp_path):
    sd = torch.load(checkpoint, weights_only=True)
    assert "module.block0.conv0.0.0.weight" in sd and "module.encode.cnn3.weight" in sd
    assert tuple(sd["module.block0.conv0.0.0.weight"].shape) == (96, 23, 3, 3)
    assert tuple(sd["module.block3.lastconv.0.weight"].shape) == (64, 24, 4, 4)
    bad = dict(sd)
    bad.pop("module.block1.convblock.3.beta")
    bad["module.block9.x"] = torch.zeros(1)
    path = tmp_path / "bad.pkl"
    torch.save(bad, path)
    with pytest.raises(ValueError, match="1 missing.*1 unexpected"):
        load_state_dict_file(build_ifnet(), path)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable"):
        load_state_dict_file(build_ifnet(), junk)


def test_model_errors(tmp_path):
    with pytest.raises(OSError, match="no such file"):
        OnnxRifeInterpolator(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a loadable ONNX"):
        OnnxRifeInterpolator(junk)
    with pytest.raises(ValueError, match="scale"):
        TorchRifeInterpolator(scale=0.3)
    for bad in (0, float("inf"), 3, True):  # once ZeroDivisionError / torch errors
        with pytest.raises(ValueError, match="scale"):
            export_onnx(tmp_path / "x.onnx", scale=bad)
    with pytest.raises(ValueError, match="scale"):
        OnnxRifeInterpolator(junk, scale=0.3)
    with pytest.raises(ValueError, match="device"):
        TorchRifeInterpolator(device="bogus")
    odd = tmp_path / "odd.pkl"
    torch.save({1: torch.zeros(1)}, odd)
    with pytest.raises(ValueError, match="named tensors"):
        TorchRifeInterpolator(odd)


def test_export_cli(checkpoint, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export-rife", str(checkpoint), "-o", str(out)]) == 0
    assert out.stat().st_size > 1_000_000
    OnnxRifeInterpolator(out)  # loads and has the expected inputs
    from loopwave.png import write_png

    frames = tmp_path / "in"
    frames.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        write_png(frames / f"{i}.png", rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    args = ["interpolate", str(frames), "-o", str(tmp_path / "o"), "--factor", "2"]
    assert main([*args, "--model", str(out), "--quiet", "--no-scene-cut"]) == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 3


def test_half_scale_for_large_frames(checkpoint, tmp_path):
    # scale 0.5 runs the flow blocks at scales 16..2 (for 2K/4K) and pads to 128
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
    out = TorchRifeInterpolator(checkpoint, scale=0.5).between(a, a, [0.3, 0.6])
    assert out.shape == (2, 100, 130, 3)
    onnx_half = export_onnx(tmp_path / "half.onnx", checkpoint, scale=0.5)
    via_onnx = OnnxRifeInterpolator(onnx_half, scale=0.5).between(a, a, [0.3, 0.6])
    assert np.abs(via_onnx.astype(int) - out.astype(int)).max() <= 1
