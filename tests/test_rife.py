"""RIFE IFNet: torch vs onnxruntime on random weights, checkpoint loading, backends."""

from __future__ import annotations

import os

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


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_file_of_the_other_kind_is_named_without_torchs_advice(checkpoint, onnx_model, tmp_path):
    """From a review: an ONNX model given to export-rife passed on torch's whole message,
    which says loading it unsafely "will likely succeed" and asks for an issue to be
    filed; a flownet.pkl given as the ONNX model did not say to export it first. A later
    review: what the safe loader stopped at is named for a pickle that runs code too (it
    said "an unknown entry"), without torch's allow-list advice, and the export command
    the hint gives is the path as given, quoted. An empty file, a text file and a
    damaged zip are named as such."""
    import argparse
    import pickle
    import shlex

    (tmp_path / "junk.pkl").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "code.pkl").write_bytes(pickle.dumps(_RunsCode(), protocol=2))
    torch.save({"args": argparse.Namespace(a=1)}, tmp_path / "namespace.pt")
    for path, also in [
        (onnx_model, 'an ONNX model needs no export: use it as it is, with `loopwave interpolate '
                     '--model` or interpolation.backend = "rife" and interpolation.model'),
        (tmp_path / "junk.pkl", "torch's safe loader stopped at: Unsupported operand 0;"),
        (tmp_path / "code.pkl", "stopped at: Trying to load unsupported GLOBAL posix.system"
         if os.name == "posix" else "stopped at: Trying to load unsupported GLOBAL"),
        (tmp_path / "namespace.pt", "stopped at: Unsupported global: GLOBAL argparse.Namespace "
                                    "was not an allowed global by default; loopwave never"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match="not a loadable state dict") as e:
            load_state_dict_file(build_ifnet(), path)
        assert also in str(e.value)
        for advice in ("weights_only", "file an issue", "add_safe_globals", "unknown entry"):
            assert advice not in str(e.value)
    # what torch said of an empty file ("EOFError: "), a text file ("KeyError: 101") and a
    # cut-short zip (a paragraph on how files come to be damaged)
    saved = tmp_path / "whole.pt"
    torch.save({"a": torch.zeros(3)}, saved)
    (tmp_path / "cut.pt").write_bytes(saved.read_bytes()[:-30])
    (tmp_path / "empty.pkl").write_bytes(b"")
    (tmp_path / "notes.pkl").write_text("hello, not weights\n")
    for path, said in [
        ("empty.pkl", "(the file is empty)"),
        ("notes.pkl", "(not a file torch.save writes (a zip archive or a pickle): it begins "
                      "b'hello, n')"),
        ("cut.pt", "(PytorchStreamReader failed reading zip archive: failed finding central "
                   "directory; the file is damaged or cut short)"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match="not a loadable state dict") as e:
            load_state_dict_file(build_ifnet(), tmp_path / path)
        assert said in str(e.value), str(e.value)
        assert "Error" not in str(e.value) and "This can happen" not in str(e.value)
    with pytest.raises(ValueError, match="not a loadable ONNX") as e:
        OnnxRifeInterpolator(checkpoint)
    hint = f"exported to ONNX first: loopwave export-rife {shlex.quote(str(checkpoint))} -o"
    assert hint in str(e.value)
    spaced = tmp_path / "a folder" / "flow net.pkl"
    spaced.parent.mkdir()
    spaced.write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a loadable ONNX") as e:
        OnnxRifeInterpolator(spaced)  # the suffix, not the contents
    assert f"loopwave export-rife '{spaced}' -o rife.onnx" in str(e.value)


def test_onnxruntimes_tensorrt_provider_is_not_taken_unasked(onnx_model, monkeypatch):
    """From a review of the GPU paths: with onnxruntime's TensorRT provider present, it was
    taken with its defaults, no engine cache among them, so every command and render (the
    encoder process too) built an engine for each frame size before its first frame."""
    import onnxruntime

    asked = []
    real = onnxruntime.InferenceSession

    def session(path, providers):
        asked.append(providers)
        return real(path, providers=["CPUExecutionProvider"])

    every = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: every)
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    OnnxRifeInterpolator(onnx_model)
    OnnxRifeInterpolator(onnx_model, providers=["TensorrtExecutionProvider"])  # asked for
    assert asked == [
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ["TensorrtExecutionProvider"],
    ]


def test_model_errors(tmp_path):
    with pytest.raises(OSError, match="no such file"):
        OnnxRifeInterpolator(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a loadable ONNX"):
        OnnxRifeInterpolator(junk)
    with pytest.raises(ValueError, match="scale"):
        TorchRifeInterpolator(scale=0.3)
    for bad in (0, float("inf"), 3):  # once ZeroDivisionError / torch errors
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


def test_exporting_leaves_the_hosts_random_numbers_alone(checkpoint, tmp_path):
    """From a review of loopwave inside a host program: the export's example frames came
    from torch's global generator, so the host's next random numbers changed."""
    from loopwave.rife import export_onnx

    torch.manual_seed(99)
    want = torch.rand(4)
    torch.manual_seed(99)
    export_onnx(tmp_path / "m.onnx", checkpoint)
    assert torch.equal(torch.rand(4), want)


def test_building_on_another_thread_leaves_a_smoke_models_weights_alone(monkeypatch):
    """From a review of loopwave on several threads: a RIFE model built on one thread drew
    from torch's global generator between the draws of a smoke model built on another,
    seeded for fixed weights, which then changed. The build here draws for a while (as a
    full IFNet's does) once the smoke model's build may start."""
    import threading

    import loopwave.rife as lr
    from loopwave.backends import smoke_backend

    def weights(backend):
        return sum(float(p.double().sum()) for p in backend.pipe.unet.parameters())

    want = weights(smoke_backend(seed=0))
    started = threading.Event()

    def slow_build():
        started.set()
        for _ in range(100):
            torch.rand(1000)
            threading.Event().wait(0.005)  # other threads run meanwhile
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(lr, "build_ifnet", slow_build)
    t = threading.Thread(target=lr._ifnet_for, args=(None,))
    t.start()
    assert started.wait(10)
    got = weights(smoke_backend(seed=0))
    t.join(30)
    assert got == want


def test_half_scale_for_large_frames(checkpoint, tmp_path):
    # scale 0.5 runs the flow blocks at scales 16..2 (for 2K/4K) and pads to 128
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
    out = TorchRifeInterpolator(checkpoint, scale=0.5).between(a, a, [0.3, 0.6])
    assert out.shape == (2, 100, 130, 3)
    onnx_half = export_onnx(tmp_path / "half.onnx", checkpoint, scale=0.5)
    via_onnx = OnnxRifeInterpolator(onnx_half, scale=0.5).between(a, a, [0.3, 0.6])
    assert np.abs(via_onnx.astype(int) - out.astype(int)).max() <= 1


def test_the_exported_scale_is_recorded_and_used(checkpoint, tmp_path, capsys):
    """The scale is fixed in the graph: a quarter-scale model needs frames padded to 256,
    and `loopwave interpolate --model` padded them to 64 (1080p frames failed as if the
    model had fixed sizes)."""
    import onnx

    from loopwave.png import write_png
    from loopwave.rife import SCALE_KEY

    quarter = export_onnx(tmp_path / "q.onnx", checkpoint, scale=0.25)
    assert not list(tmp_path.glob("*.partial"))
    r = OnnxRifeInterpolator(quarter)
    assert r.scale == 0.25
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (40, 136, 3), dtype=np.uint8)  # 64 x 192 at a multiple of 64
    assert r.between(a, a, [0.5]).shape == (1, 40, 136, 3)
    with pytest.raises(ValueError, match="exported with scale 0.25"):
        OnnxRifeInterpolator(quarter, scale=1.0)
    # a model without the record (exported elsewhere) is taken at scale 1 unless told
    proto = onnx.load(str(quarter))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    assert OnnxRifeInterpolator(bare).scale == 1.0
    assert OnnxRifeInterpolator(bare, scale=0.25).between(a, a, [0.5]).shape == (1, 40, 136, 3)
    # taken at scale 1, its failure names the scale as a likely cause (it blamed fixed sizes)
    with pytest.raises(ValueError, match=r"does not record .*: give that scale"):
        OnnxRifeInterpolator(bare).between(a, a, [0.5])
    proto.metadata_props.add(key=SCALE_KEY, value="big")
    onnx.save(proto, str(bare))
    with pytest.raises(ValueError, match="not a scale"):
        OnnxRifeInterpolator(bare)
    # the CLI, with the model's own scale and with --scale
    frames = tmp_path / "in"
    frames.mkdir()
    for i in range(2):
        write_png(frames / f"{i}.png", rng.integers(0, 256, (40, 136, 3), dtype=np.uint8))
    args = ["interpolate", str(frames), "--factor", "2", "--quiet", "--no-scene-cut"]
    assert main([*args, "-o", str(tmp_path / "o1"), "--model", str(quarter)]) == 0
    assert len(list((tmp_path / "o1").glob("*.png"))) == 3
    del proto.metadata_props[:]
    onnx.save(proto, str(bare))
    assert main([*args, "-o", str(tmp_path / "o2"), "--model", str(bare), "--scale", "0.25"]) == 0
    assert len(list((tmp_path / "o2").glob("*.png"))) == 3
    assert main([*args, "-o", str(tmp_path / "o3"), "--model", str(quarter), "--scale", "0.5"]) == 2
    assert main([*args, "-o", str(tmp_path / "o4"), "--blend", "--scale", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "exported with scale 0.25" in err and "--scale: only with --model" in err


def tiny_model(path, output: str, op: str):
    """An ONNX model with RIFE's inputs whose output is ``img0 <op> img1``."""
    from onnx import TensorProto, helper

    def io(name, dims):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    nchw = ["n", 3, "h", "w"]
    graph = helper.make_graph(
        [helper.make_node(op, ["img0", "img1"], [output])],
        "tiny",
        [io("img0", nchw), io("img1", nchw), io("timestep", ["n", 1, 1, 1])],
        [io(output, nchw)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnx

    onnx.save(model, str(path))
    return path


def test_a_model_of_another_tensor_type_is_refused_when_loaded(tmp_path):
    """A float16 model with RIFE's names loaded, then failed at the first pair with a
    hint about fixed sizes."""
    import onnx
    from onnx import TensorProto

    path = tiny_model(tmp_path / "half.onnx", "frame", "Add")
    model = onnx.load(str(path))
    for v in [*model.graph.input, *model.graph.output]:
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match=r"tensor\(float16\).*float32"):
        OnnxRifeInterpolator(path)


def test_argument_types_are_named(tmp_path):
    good = tiny_model(tmp_path / "add.onnx", "frame", "Add")
    with pytest.raises(TypeError, match="^model must be a path"):
        OnnxRifeInterpolator(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^providers must be a list"):
        OnnxRifeInterpolator(good, providers="CPUExecutionProvider")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^out must be a path"):
        export_onnx(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^checkpoint must be a path"):
        export_onnx(tmp_path / "x.onnx", 3)  # type: ignore[arg-type]
    # 14 and 15 passed, then torch failed on GridSample (opset 16) after seconds of work
    for opset in ("17", 7, 14, 15, 99, True):
        with pytest.raises(ValueError, match="^opset must be an int in 16..21"):
            export_onnx(tmp_path / "x.onnx", opset=opset)  # type: ignore[arg-type]
    assert not (tmp_path / "x.onnx").exists()
    # these were TypeErrors naming no argument, ValueErrors, or numpy's "truth value of an
    # array is ambiguous"
    with pytest.raises(TypeError, match="^checkpoint must be a path"):
        TorchRifeInterpolator(3)  # type: ignore[arg-type]
    for scale in ("0.5", True, np.array([1.0, 1.0]), None):
        with pytest.raises(TypeError, match="^scale must be a number"):
            TorchRifeInterpolator(scale=scale)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^scale must be a number"):
            export_onnx(tmp_path / "x.onnx", scale=scale)  # type: ignore[arg-type]
        if scale is not None:  # None: the model's own
            with pytest.raises(TypeError, match="^scale must be a number"):
                OnnxRifeInterpolator(good, scale=scale)  # type: ignore[arg-type]
    assert OnnxRifeInterpolator(good, scale=np.float32(0.5)).scale == 0.5


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(OSError, match="is a folder; name the flownet.pkl"):
        load_state_dict_file(build_ifnet(), tmp_path)


def test_random_weights_are_said_to_be_random(checkpoint, tmp_path, recwarn):
    """Without a checkpoint the network keeps its random weights: said, not silent."""
    with pytest.warns(UserWarning, match="random weights"):
        TorchRifeInterpolator()
    with pytest.warns(UserWarning, match="random weights"):
        export_onnx(tmp_path / "r.onnx", opset=17)
    recwarn.clear()
    TorchRifeInterpolator(checkpoint)
    assert not [w for w in recwarn if "random weights" in str(w.message)]


def test_model_outputs_are_checked_and_clipped(tmp_path):
    # an output under another name was taken, then failed on the first frames as if the
    # model had fixed sizes
    with pytest.raises(ValueError, match="output 'frame'"):
        OnnxRifeInterpolator(tiny_model(tmp_path / "out.onnx", "out", "Add"))
    # a model that does not clamp: 200 + 200 wrapped to 144, and below 0 wrapped too
    a = np.full((8, 8, 3), 200, np.uint8)
    b = np.zeros((8, 8, 3), np.uint8)
    b[:, :4] = 250
    added = OnnxRifeInterpolator(tiny_model(tmp_path / "add.onnx", "frame", "Add"))
    np.testing.assert_array_equal(added.between(a, a, [0.5])[0], 255)
    subtracted = OnnxRifeInterpolator(tiny_model(tmp_path / "sub.onnx", "frame", "Sub"))
    got = subtracted.between(a, b, [0.5])[0]
    np.testing.assert_array_equal(got[:, :4], 0)
    np.testing.assert_array_equal(got[:, 4:], 200)


def test_an_interrupted_export_leaves_no_partial_file(checkpoint, tmp_path, monkeypatch):
    """From a review: Ctrl-C (or a full disk) during torch's export left ~21 MB of
    OUT.partial behind: the clean-up covered only the steps after it."""
    import torch

    def stopped(model, args, path, **kw):
        open(path, "wb").write(b"half an export")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", stopped)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(tmp_path / "r.onnx", checkpoint)
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_a_link_at_its_partial_name(checkpoint, tmp_path, monkeypatch):
    """From a review: the export wrote through a link at OUT.partial, over the user's
    file it led to, and the rename left OUT a link to it."""
    import torch

    def tiny(model, args, path, **kw):  # (the file's making, not torch's export, is tested)
        with open(path, "wb") as f:
            f.write(b"an export")
        raise KeyboardInterrupt

    user = tmp_path / "user.txt"
    user.write_text("the user's")
    (tmp_path / "r.onnx.partial").symlink_to(user)
    monkeypatch.setattr(torch.onnx, "export", tiny)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(tmp_path / "r.onnx", checkpoint)
    assert user.read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user.txt"]


def test_export_never_overwrites_the_checkpoint(checkpoint, tmp_path, capsys):
    import shutil

    ck = tmp_path / "ck.pkl"
    shutil.copy(checkpoint, ck)
    before = ck.read_bytes()
    assert main(["export-rife", str(ck), "-o", str(ck)]) == 2
    assert "is the checkpoint" in capsys.readouterr().err
    assert ck.read_bytes() == before
    with pytest.raises(ValueError, match="^out: "):
        export_onnx(ck, ck)
    # nor the checkpoint named as the export's partial file (it was replaced by the model)
    partial = tmp_path / "r.onnx.partial"
    shutil.copy(checkpoint, partial)
    assert main(["export-rife", str(partial), "-o", str(tmp_path / "r.onnx")]) == 2
    assert "which is the checkpoint" in capsys.readouterr().err
    assert partial.read_bytes() == before and not (tmp_path / "r.onnx").exists()
    # an output the final rename would refuse, found before the export runs
    assert main(["export-rife", str(ck), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["export-rife", str(ck), "-o", str(tmp_path / "no" / "r.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_render_tries_its_rife_model_before_it_starts(checkpoint, tmp_path):
    """A quarter-scale model that does not record its scale failed in the encoder, once
    every frame had been rendered, and no setting could give its scale: the preflight
    runs one pair at the render's size, and ``interpolation.scale`` gives the scale."""
    import onnx
    from test_render import JOB
    from test_render_stages import decoded

    from loopwave.backends import smoke_backend
    from loopwave.render import render
    from loopwave.settings import Settings, SettingsError

    quarter = export_onnx(tmp_path / "q.onnx", checkpoint, scale=0.25)
    proto = onnx.load(str(quarter))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    job = {**JOB, "render": {**JOB["render"], "frames": 3}}
    it = {"factor": 2, "backend": "rife", "model": str(bare)}

    def run(name, **more):
        s = Settings.from_dict({**job, "interpolation": {**it, **more}})
        return render(s, run_dir=tmp_path / name, backend=smoke_backend(), progress=False)

    msg = r"^interpolation.model: .*give that scale \(interpolation.scale"
    with pytest.raises(ValueError, match=msg):
        run("a")
    assert not list((tmp_path / "a").rglob("*.png"))  # refused before the first frame
    assert len(decoded(run("b", scale=0.25).video)) == 5
    # (the key once: "interpolation.scale: scale: ..." before)
    with pytest.raises(ValueError, match=r"^interpolation.scale: [^:]*exported .* 0.25; got 1.0"):
        run("c", model=str(quarter), scale=1.0)
    for bad in (0.3, "0.5", True):
        with pytest.raises(SettingsError, match="^interpolation.scale: expected 'auto'"):
            Settings.from_dict({**job, "interpolation": {**it, "scale": bad}})
