"""Settings files: defaults, validation errors that name the key path, round trip."""

from __future__ import annotations

import json
import re

import pytest

from loopwave.settings import Settings, SettingsError, load_settings

MINIMAL = {"version": 1, "prompts": {"0": "a forest", "40": "a castle --neg blurry"}}


def test_defaults_fill_in_and_round_trip(tmp_path):
    s = Settings.from_dict(MINIMAL)
    assert s["render"]["frames"] == 240 and s["colour"]["mode"] == "plan"
    path = tmp_path / "resolved.json"
    path.write_text(s.to_json())
    again = load_settings(path)
    assert again == s


def test_toml_file(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(
        'version = 1\n[render]\nframes = 60\nsteps = "0: (20), 30: (max(10, 30 - t/2))"\n'
        '[denoise]\nframes_per_wave = 12\n[prompts]\n0 = "a cat"\n"30" = "30::a dog"\n'
    )
    s = load_settings(path)
    assert s["render"]["frames"] == 60 and s["denoise"]["frames_per_wave"] == 12


_RATE_PROBLEM = re.escape(
    "interpolation.to_fps: expected a rate in [1/10000, 1000] such as 24, 29.97 or "
    "'30000/1001', or '' (none), got "
)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"render": {"frames": -3}}, r"render\.frames: expected an int in 1\.\.1000000, got -3"),
        ({"render": {"frames": "10"}}, r"render\.frames: expected an int"),
        ({"render": {"fram": 10}}, r"render\.fram: unknown key"),
        ({"rendr": {}}, r"rendr: unknown section"),
        ({"denoise": {"base": 1.5}}, r"denoise\.base: expected a number in \[0, 1\]"),
        ({"denoise": {"frames_per_wave": 0}}, r"denoise\.frames_per_wave"),
        ({"denoise": {"schedule": "0: (open('x'))"}}, r"denoise\.schedule"),
        ({"colour": {"mode": "auto"}}, r"colour\.mode: expected one of"),
        ({"colour": {"gamma": "yes"}}, r"colour\.gamma: expected true or false"),
        ({"render": {"seed_behaviour": "spiral"}}, r"render\.seed_behaviour"),
        ({"model": {"backend": "diffusers"}}, r"model\.path"),
        ({"interpolation": {"backend": "rife"}}, r"interpolation\.model"),
        ({"interpolation": {"flow_preset": "slow"}}, r"interpolation\.flow_preset: expected one"),
        ({"version": 2}, r"version: expected 1"),
        ({"prompts": {"x": "a"}}, r"prompts:"),
        ({"render": 5}, r"render: expected a table"),
        ({"render": {"width": 12}}, r"render\.width"),  # the UNet needs 16+ (GroupNorm)
        ({"render": {"height": 65}}, r"render\.height: expected a multiple of 8"),
        ({"output": {"name": ".."}}, r"output\.name: expected a folder name"),
        ({"model": {"lora": "x.safetensors"}}, r"model\.lora: expected a list"),
        ({"model": {"accel": {"turbo": True}}}, r"model\.accel: turbo: unknown option"),
        ({"model": {"lora": [{"scale": 1}]}}, r"model\.lora: \[0\]: expected a table"),
        ({"model": {"lora": [{"path": "a", "weight": 1}]}}, r"model\.lora: \[0\]: expected"),
        ({"model": {"lora": [{"path": "a", "scale": 20}]}}, r"model\.lora: \[0\]\.scale"),
        # refused when the model loaded (after the plan check), without the key's name
        ({"model": {"scheduler": "Euler b"}}, r"model\.scheduler: expected one of \['DPM"),
        ({"model": {"device": "gpu"}}, r"model\.device: expected auto, cpu, cuda, cuda:N"),
        # refused after the run folder was written, as "every must be in 1..1000000000"
        ({"colour": {"keyframe_every": 2 * 10**9}}, r"colour\.keyframe_every: .*1\.\.1000000000"),
        ({"interpolation": {"to_fps": True}}, _RATE_PROBLEM + "True$"),
        ({"interpolation": {"to_fps": "fast"}}, _RATE_PROBLEM + "'fast'$"),
        ({"interpolation": {"to_fps": 0}}, _RATE_PROBLEM + "0$"),
        ({"interpolation": {"to_fps": "2000"}}, _RATE_PROBLEM + "'2000'$"),
        ({"interpolation": {"to_fps": " "}}, _RATE_PROBLEM + "' '$"),
        ({"interpolation": {"to_fps": [24]}}, _RATE_PROBLEM + r"\[24\]$"),
        # (a review: "rate must be a number, ...; got inf", and a Fraction named as such)
        ({"interpolation": {"to_fps": float("inf")}}, _RATE_PROBLEM + "inf$"),
        ({"interpolation": {"to_fps": "nan"}}, _RATE_PROBLEM + "'nan'$"),
        # Python's own "Exceeds the limit (4300 digits)", and a 4,000-digit value echoed whole
        ({"interpolation": {"to_fps": 10**5000}}, _RATE_PROBLEM + "<an int of 5001 digits>$"),
        ({"interpolation": {"to_fps": 10**4000}}, _RATE_PROBLEM + r"1000000.*\.\.\..*0{6}$"),
        ({"video": {"fps": 10**5000}}, r"video\.fps: expected a number .*<an int of 5001 digits>$"),
        ({"render": {"frames": 10**5000}}, r"render\.frames: expected an int .*5001 digits>$"),
        ({"render": {"frames": [10**5000]}}, r"got <a list holding an int too long to show>$"),
        ({"render": {"frames": 10**5000 - 1}}, r"<an int of 5000 digits>$"),
    ],
)
def test_errors_name_the_key_path(patch, message):
    data = json.loads(json.dumps(MINIMAL))
    for k, v in patch.items():
        data[k] = v
    with pytest.raises(SettingsError, match=message):
        Settings.from_dict(data)


@pytest.mark.parametrize(("key", "problem"), [("to_fps", "expected a rate"), ("scale", "expected")])
def test_an_array_for_a_key_compared_with_a_string_is_refused_naming_it(key, problem):
    """A review: numpy's "truth value of an array is ambiguous", naming nothing."""
    np = pytest.importorskip("numpy")
    with pytest.raises(SettingsError, match=rf"^interpolation\.{key}: {problem}"):
        Settings.from_dict({**MINIMAL, "interpolation": {key: np.array([1.0, 0.5])}})


@pytest.mark.parametrize("rate", ["", 24, 29.97, "30000/1001", " 23.976", 0.5])
def test_interpolation_to_fps_takes_the_rates_video_fps_takes(rate):
    s = Settings.from_dict({**MINIMAL, "interpolation": {"to_fps": rate}})
    assert s["interpolation"]["to_fps"] == rate  # kept as written, for settings.json


def test_missing_prompts_and_bad_files(tmp_path):
    with pytest.raises(SettingsError, match="prompts"):
        Settings.from_dict({"version": 1})
    # (a review: "version: expected 1, got None" for a file without it)
    with pytest.raises(SettingsError, match="^version: missing; settings start with version = 1"):
        Settings.from_dict({"prompts": {"0": "a cat"}})
    with pytest.raises(SettingsError, match="^version: expected 1, got None"):  # JSON null
        Settings.from_dict({"version": None, "prompts": {"0": "a cat"}})
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = = 1")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad)
    script = tmp_path / "job.py"  # any other name is read as TOML; it said "not valid py"
    script.write_text("import os\n")
    with pytest.raises(SettingsError, match="job.py is not valid TOML"):
        load_settings(script)
    for key, want in (("-1", "^prompts: frame -1 is negative"), ("abc", "^prompts: frame 'abc'")):
        with pytest.raises(SettingsError, match=want):  # "prompts: prompts: ..." before
            Settings.from_dict({"version": 1, "prompts": {key: "a cat"}})
    assert issubclass(SettingsError, ValueError)


def test_odd_files_are_settings_errors(tmp_path):
    good = tmp_path / "bom.json"
    good.write_bytes(b"\xef\xbb\xbf" + json.dumps(MINIMAL).encode())
    assert load_settings(good)["version"] == 1  # a byte-order mark is fine
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"version = 1\n# caf\xe9\n")
    with pytest.raises(SettingsError, match="latin.toml"):
        load_settings(latin)  # was a bare UnicodeDecodeError
    deep = tmp_path / "deep.json"
    deep.write_text('{"version": 1, "render": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SettingsError, match="deep.json"):
        load_settings(deep)  # was a RecursionError
    nested: dict = {}
    node = nested
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(SettingsError):
        Settings.from_dict({**MINIMAL, "render": {"seed": nested}})


def test_version_is_the_int_and_odd_unknown_keys_are_named():
    for version in (True, 1.0):  # once taken as 1
        with pytest.raises(SettingsError, match="^version"):
            Settings.from_dict({**MINIMAL, "version": version})
    # unknown keys of mixed types were sorted together: TypeError '<' not supported
    with pytest.raises(SettingsError, match=r"^render\.1: unknown key"):
        Settings.from_dict({**MINIMAL, "render": {1: 2, "x": 3}})
    with pytest.raises(SettingsError, match="^1: unknown section"):
        Settings.from_dict({**MINIMAL, 1: {}, "x": {}})


def test_a_wave_token_the_render_cannot_fill_is_refused_when_loading():
    for text in ("x @wave_completed(min(0.5, 1), 1.5)", "(x:@wave_completed(0, foo))"):
        with pytest.raises(SettingsError, match="^prompts: .*@wave_completed"):
            Settings.from_dict({**MINIMAL, "prompts": {"0": "a", "3": text}})


@pytest.mark.parametrize(("section", "key"), [("render", "seed"), ("denoise", "base")])
def test_json_null_is_refused_not_taken_for_the_default(tmp_path, section, key):
    """null was silently replaced by the default: a "seed": null meant as "random" rendered
    with seed 1234."""
    path = tmp_path / "job.json"
    path.write_text(json.dumps({**MINIMAL, section: {key: None}}))
    with pytest.raises(SettingsError, match=rf"{section}\.{key}: null is not a value.*default"):
        load_settings(path)
    path.write_text(json.dumps({**MINIMAL, section: {}}))  # left out: the default
    assert load_settings(path)[section][key] == Settings.from_dict(MINIMAL)[section][key]


def test_relative_paths_are_made_absolute_against_the_folder(tmp_path, monkeypatch):
    """Every path a run reads or writes, made absolute against the current folder (or a
    given one); empty paths (none) stay empty, absolute ones and
    every other key as they are, and the settings made from are not changed."""
    import os

    from loopwave.settings import PATH_KEYS

    data = {
        **MINIMAL,
        "output": {"dir": "out/../renders"},
        "model": {
            "backend": "diffusers",
            "path": "models/sd15",
            "engine_dir": "/abs/engines",
            "lora": [{"path": "style.safetensors", "scale": 0.5}, {"path": "./b.safetensors"}],
        },
        "render": {"init_image": "init.png"},
        "video": {"codec": "h264"},  # a string, not a path
    }
    s = Settings.from_dict(data)
    before = s.to_json()
    monkeypatch.chdir(tmp_path)
    here = os.getcwd()
    a = s.with_absolute_paths()
    # joined, not normalised: through a symlinked "out" the OS's ".." is not here
    assert a["output"]["dir"] == os.path.join(here, "out/../renders")
    assert a["model"]["path"] == os.path.join(here, "models", "sd15")
    assert a["model"]["engine_dir"] == "/abs/engines"
    assert a["model"]["lora"] == [
        {"path": os.path.join(here, "style.safetensors"), "scale": 0.5},
        {"path": os.path.join(here, "b.safetensors")},
    ]
    assert a["render"]["init_image"] == os.path.join(here, "init.png")
    assert a["interpolation"]["model"] == ""  # none
    assert {(sec, key) for sec, key in PATH_KEYS} >= {("render", "init_image"), ("output", "dir")}
    for sec, key in PATH_KEYS:
        assert a[sec][key] == "" or os.path.isabs(a[sec][key]), (sec, key)
    assert s.to_json() == before  # a copy
    assert Settings.from_dict(json.loads(a.to_json())) == a  # still valid settings
    assert a.with_absolute_paths() == a
    # against another folder
    b = s.with_absolute_paths(tmp_path / "job")
    assert b["render"]["init_image"] == os.path.join(os.path.abspath(tmp_path / "job"), "init.png")
    # every other key the same
    for x in (a, b):
        assert x["video"] == s["video"] and x["prompts"] == s["prompts"]
        assert {k: v for k, v in x["render"].items() if k != "init_image"} == {
            k: v for k, v in s["render"].items() if k != "init_image"
        }


def test_the_settings_reference_names_every_key_and_loads_as_the_defaults(tmp_path, capsys):
    """`loopwave settings` (from a review: SCHEMA printed as functions, and several keys
    were documented nowhere a CLI user would look): every key with what it does, what it
    takes and its default, as a TOML file that loads back to the defaults."""
    from loopwave.cli import main
    from loopwave.settings import DOCS, SCHEMA, reference

    assert {s: set(k) for s, k in DOCS.items()} == {s: set(k) for s, k in SCHEMA.items()}
    assert main(["settings"]) == 0
    text = capsys.readouterr().out
    assert text == reference()
    job = tmp_path / "job.toml"
    job.write_text(text)
    got = load_settings(job)
    want = Settings.from_dict(
        {"version": 1, "prompts": {"0": "a misty forest at dawn --neg blurry"}}
    )
    assert got == want
    for section, keys in SCHEMA.items():
        lines = text.split(f"\n[{section}]\n")[1].split("\n[")[0].splitlines()
        for key in keys:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
            assert lines[at - 1].startswith(f"# {DOCS[section][key]}; "), (section, key)
    assert "one of 'DDIM', 'DPM++ 2M'" in text and "a multiple of 8 in 16..8192" in text
    # an empty path is "none" only where it is (output.dir refuses it; engine_dir is ".")
    said = dict(zip(text.splitlines()[1:], text.splitlines()[:-1], strict=True))
    assert "'.' for that folder itself" in said['dir = "out/render"']
    assert "empty: that folder itself" in said['engine_dir = ".cache/loopwave/engines"']
    assert "empty: none" in said['model = ""'] and "empty: none" not in said['init_image = ""']


def test_settings_defaults_are_the_seeds():
    from loopwave.settings import Settings

    s = Settings.from_dict({"version": 1, "prompts": {"0": "a cat"}})
    assert s["colour"]["renders"] == 4 and s["colour"]["keyframe_every"] == 20
    assert s["colour"]["keyframe_strength"] == 0.75
    assert (s["denoise"]["base"], s["denoise"]["amplitude"], s["denoise"]["frames_per_wave"]) == (
        0.3,
        0.35,
        24,
    )
    assert (s["video"]["fps"], s["interpolation"]["factor"]) == (10, 6)


def test_int_settings_take_their_upper_bound():
    from loopwave.settings import Settings

    s = Settings.from_dict(
        {
            "version": 1,
            "prompts": {"0": "a"},
            "colour": {"renders": 64},
            "interpolation": {"factor": 16},
            "video": {"crf": 63},
        }
    )
    assert s["colour"]["renders"] == 64


def test_paths_as_a_user_writes_them(tmp_path, monkeypatch):
    """From a review of settings and paths: "~/renders" made a folder named "~" in the
    current folder (and the render said its files were in the home folder); an empty
    engine_dir (the folder the run starts in) was kept empty, so a resume from another
    folder exported the graphs again there; "lnk/../x" was collapsed to "x", another file
    than the OS opens when lnk is a symlink; a NUL or a part over 255 bytes failed when
    the render got to it, naming no key."""
    import os

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = {**MINIMAL, "output": {"dir": "~/renders"}, "model": {"engine_dir": ""}}
    data["render"] = {"init_image": "./lnk/../init.png"}
    a = Settings.from_dict(data).with_absolute_paths()
    assert a["output"]["dir"] == str(tmp_path / "home" / "renders")
    assert a["model"]["engine_dir"] == os.getcwd()
    assert a["render"]["init_image"] == os.path.join(os.getcwd(), "lnk/../init.png")
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "init.png").write_bytes(b"the one the OS opens")
    (tmp_path / "lnk").symlink_to(tmp_path / "real" / "sub")
    assert open(a["render"]["init_image"], "rb").read() == b"the one the OS opens"
    for key, bad, says in (
        ("output.dir", "o\0x", "without a NUL"),
        ("render.init_image", "a/" + "n" * 256 + ".png", "at most 255 bytes"),
        ("model.engine_dir", "e/" * 2100, "under 4096 bytes"),
    ):
        section, name = key.split(".")
        with pytest.raises(SettingsError, match=rf"^{re.escape(key)}: expected .*{says}"):
            Settings.from_dict({**MINIMAL, section: {name: bad}})


def test_settings_files_a_user_might_give(tmp_path):
    """JSON took the last of a key given twice (TOML refuses it); a folder was "no such
    file"; a pipe (loopwave render <(...)) was "no such file" too."""
    import os
    import threading

    (tmp_path / "twice.json").write_text('{"version": 1, "render": {"frames": 2, "frames": 5}}')
    with pytest.raises(SettingsError, match="not valid JSON: the key 'frames' is given twice"):
        load_settings(tmp_path / "twice.json")
    with pytest.raises(SettingsError, match="is a folder, not a settings file"):
        load_settings(tmp_path)
    fifo = tmp_path / "job.toml"
    os.mkfifo(fifo)

    def feed():  # the writer's open waits for the reader's
        with open(fifo, "w") as f:
            f.write('version = 1\n[render]\nframes = 3\n[prompts]\n0 = "a"\n')

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    assert load_settings(fifo)["render"]["frames"] == 3
    t.join(10)


def test_json_through_a_pipe_is_read_as_json(tmp_path):
    """From the docs review: ``loopwave render <(jq ... job.json)`` is /dev/fd/63, with no
    suffix, so it was parsed as TOML and refused ("not valid TOML ... line 1, column 1"),
    while the README says a pipe is read as a file and a job may be JSON. A name without
    .toml or .json is JSON where it opens with a brace, which no TOML document can."""
    import subprocess
    import sys

    job = {"version": 1, "render": {"frames": 3}, "prompts": {"0": "a"}}
    bare = tmp_path / "job"
    bare.write_text("  \n" + json.dumps(job))
    assert load_settings(bare)["render"]["frames"] == 3
    (tmp_path / "job.txt").write_text('version = 1\n[render]\nframes = 4\n[prompts]\n0 = "a"\n')
    assert load_settings(tmp_path / "job.txt")["render"]["frames"] == 4
    (tmp_path / "braced.toml").write_text(json.dumps(job))  # .toml is TOML, whatever it holds
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(tmp_path / "braced.toml")
    (tmp_path / "broken").write_text('{"version": 1,')
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_settings(tmp_path / "broken")
    # a real pipe, as the shell's <(...) gives one
    code = (
        "import os, sys, json; from loopwave.settings import load_settings\n"
        "r, w = os.pipe(); os.write(w, sys.argv[1].encode()); os.close(w)\n"
        "print(load_settings(f'/dev/fd/{r}')['render']['frames'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "3"


def test_lora_paths_are_checked_as_other_paths():
    """From a fuzzing review: a LoRA path with a NUL or a 300-byte part was taken, and the
    render failed at the model load with a bare OSError naming no key."""
    for bad, says in (("a\0b.safetensors", "without a NUL"), ("p" * 300, "at most 255 bytes")):
        data = {**MINIMAL, "model": {"lora": [{"path": "ok.safetensors"}, {"path": bad}]}}
        with pytest.raises(SettingsError, match=rf"^model.lora: \[1\].path: expected .*{says}"):
            Settings.from_dict(data)


def test_a_path_too_long_only_once_absolute_is_named(tmp_path, monkeypatch):
    """A relative engine_dir of 4090 bytes passed; saved absolute it was 4105, and the
    run's own settings.json was then refused at resume."""
    monkeypatch.chdir(tmp_path)
    s = Settings.from_dict({**MINIMAL, "model": {"engine_dir": "e/" * 2045}})
    assert s.path_problem() is None
    problem = s.with_absolute_paths().path_problem()
    assert problem is not None and problem.startswith("model.engine_dir: expected a path under")
    lora = Settings.from_dict({**MINIMAL, "model": {"lora": [{"path": "l/" * 2045}]}})
    assert lora.with_absolute_paths().path_problem().startswith("model.lora[0].path: ")


def test_error_messages_show_a_bounded_value():
    """A million-character value was printed whole in its message, and one nested
    thousands deep gave only "settings: nested too deeply", naming no key."""
    with pytest.raises(SettingsError) as e:
        Settings.from_dict({**MINIMAL, "colour": {"mode": "x" * 1_000_000}})
    assert str(e.value).startswith("colour.mode: expected one of") and len(str(e.value)) < 200
    for data in (
        {**MINIMAL, "colour": {"k" * 1_000_000: 1}},  # an unknown key
        {**MINIMAL, "s" * 1_000_000: {}},  # an unknown section
        {**MINIMAL, "prompts": {"9" * 1_000_000: "a cat"}},  # a frame past int()'s digits
        {**MINIMAL, "prompts": "0::" + "1" * 1_000_000 + "x::a cat"},  # a line's seed
        {**MINIMAL, "prompts": "x" * 1_000_000},  # a line of neither form
    ):
        with pytest.raises(SettingsError) as e:
            Settings.from_dict(data)
        assert len(str(e.value)) < 300, str(e.value)[:300]
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for section, key in (("colour", "gamma"), ("render", "steps"), ("model", "lora")):
        with pytest.raises(SettingsError, match=rf"^{section}.{key}: (\[0\]: )?expected") as e:
            Settings.from_dict({**MINIMAL, section: {key: deep}})
        assert len(str(e.value)) < 200


def test_a_settings_file_is_read_up_to_a_limit(tmp_path, monkeypatch):
    """/dev/zero or an endless pipe given as the job was read until memory ran out (a
    MemoryError traceback, or the OOM killer)."""
    import loopwave.settings as settings

    monkeypatch.setattr(settings, "MAX_SETTINGS_BYTES", 1000)
    job = tmp_path / "job.toml"
    job.write_text('version = 1\n[prompts]\n0 = "a cat"\n' + "# pad\n" * 160)
    assert len(job.read_bytes()) <= 1000 and load_settings(job)["prompts"] == {"0": "a cat"}
    job.write_text(job.read_text() + "# pad\n" * 5)
    with pytest.raises(SettingsError, match=r"job.toml is over 0 MiB, not a settings file"):
        load_settings(job)
    monkeypatch.setattr(settings, "MAX_SETTINGS_BYTES", 4 * 2**20)
    with pytest.raises(SettingsError, match="/dev/zero is over 4 MiB"):
        load_settings("/dev/zero")


def test_an_interpolation_model_with_another_backend_is_refused():
    """From a review: interpolation.model set and interpolation.backend left at "flow" was
    taken, and the video made by optical flow; nothing said the model went unused."""
    for backend in ("flow", "blend"):
        with pytest.raises(
            SettingsError,
            match=rf"^interpolation.model: given, but interpolation.backend is '{backend}'",
        ):
            Settings.from_dict(
                {**MINIMAL, "interpolation": {"backend": backend, "model": "r.onnx"}}
            )
    s = Settings.from_dict({**MINIMAL, "interpolation": {"backend": "rife", "model": "r.onnx"}})
    assert s["interpolation"]["model"].endswith("r.onnx")
    # and a later review: the message said to set the backend, which a resume then
    # refused as an edit; it names the resume too
    with pytest.raises(SettingsError, match=r"render --resume RUN_DIR \(render\(None, run_dir"):
        Settings.from_dict({**MINIMAL, "interpolation": {"model": "r.onnx"}})


def test_a_flow_preset_with_another_backend_is_refused():
    """From a review: interpolation.flow_preset with the blend or rife backend was taken
    and unused (interpolate --flow-preset with --blend or --model is refused)."""
    for it in ({"backend": "blend"}, {"backend": "rife", "model": "r.onnx"}):
        with pytest.raises(
            SettingsError,
            match=rf"^interpolation.flow_preset: 'fast' given, but interpolation.backend is "
            rf"'{it['backend']}'",
        ) as e:
            Settings.from_dict({**MINIMAL, "interpolation": {**it, "flow_preset": "fast"}})
        # (a later review) no advice the model's check refuses next, and the resume named
        assert ("set interpolation.backend = 'flow'" in str(e.value)) == (it["backend"] != "rife")
        assert "loopwave render --resume RUN_DIR" in str(e.value)
        # its default is no choice, and the saved settings of a run are taken as they are
        assert Settings.from_dict({**MINIMAL, "interpolation": it})["interpolation"]
        saved = {**MINIMAL, "interpolation": {**it, "flow_preset": "fast"}}
        assert Settings._from_saved(saved)["interpolation"]["flow_preset"] == "fast"


def test_a_rife_scale_with_another_backend_and_a_wave_past_1_are_refused():
    """From an adversarial review: interpolation.scale beside the flow or blend backend
    was taken and unused, and a wave whose base + amplitude passed 1 was clamped to 1
    (fresh noise) without a word. A run's own saved settings are taken as they are."""
    for it in ({}, {"backend": "blend"}):
        data = {**MINIMAL, "interpolation": {**it, "scale": 0.5}}
        with pytest.raises(
            SettingsError, match=r"^interpolation.scale: 0.5 given, but .* the rife backend's"
        ):
            Settings.from_dict(data)
        assert Settings._from_saved(data)["interpolation"]["scale"] == 0.5
    rife = {"backend": "rife", "model": "r.onnx", "scale": 0.5}
    assert Settings.from_dict({**MINIMAL, "interpolation": rife})["interpolation"]["scale"] == 0.5
    data = {**MINIMAL, "denoise": {"base": 0.9, "amplitude": 0.9}}
    with pytest.raises(
        SettingsError, match=r"^denoise.base \+ denoise.amplitude: 0.9 \+ 0.9, past 1"
    ) as e:
        Settings.from_dict(data)
    assert "loopwave render --resume RUN_DIR" in str(e.value)  # (a later review)
    assert Settings._from_saved(data)["denoise"]["amplitude"] == 0.9
    for base, amplitude in [(0.65, 0.35), (0.7, 0.3), (0.15, 0.85), (1.0, 0.0)]:  # at most 1
        Settings.from_dict({**MINIMAL, "denoise": {"base": base, "amplitude": amplitude}})
    # with the schedule mode the wave's keys are not used
    Settings.from_dict({**MINIMAL, "denoise": {"mode": "schedule", "base": 0.9, "amplitude": 0.9}})


def test_a_key_frame_of_too_many_digits_is_named_so():
    """From a review: 19 ASCII digits were 'not ... (a frame in ASCII digits)'."""
    with pytest.raises(SettingsError, match=r"key frame 9{19} has more than 18 digits$"):
        Settings.from_dict({**MINIMAL, "render": {"steps": "9999999999999999999: (2)"}})
    with pytest.raises(SettingsError, match=r"key frame 9{30}\.\.\. has more than 18 digits$"):
        Settings.from_dict({**MINIMAL, "render": {"steps": "9" * 40 + ": (2)"}})
    # (a later review) leading zeros are no digits of the frame: this is frame 1
    s = Settings.from_dict({**MINIMAL, "render": {"steps": "0: (3), 0000000000000000001: (2)"}})
    assert s["render"]["steps"] == "0: (3), 0000000000000000001: (2)"
    # (a review of that) however many zeros; and a key of zeros then 19 digits is too long
    Settings.from_dict({**MINIMAL, "render": {"steps": "0: (3), " + "0" * 5000 + "1: (2)"}})
    with pytest.raises(SettingsError, match=r"key frame 1{19} has more than 18 digits$"):
        Settings.from_dict({**MINIMAL, "render": {"steps": "0" * 5 + "1" * 19 + ": (2)"}})
    # a frame of leading zeros without a value is that, not too many digits
    with pytest.raises(SettingsError, match=r"0{21}1:' is not 'frame: \(value\)'"):
        Settings.from_dict({**MINIMAL, "render": {"steps": "0" * 21 + "1:"}})


def test_a_model_path_with_the_smoke_backend_is_refused():
    """From a review: model.path set and model.backend left at its default, "smoke",
    rendered the built-in random model; only a log line said so."""
    with pytest.raises(SettingsError, match=r"^model.path: given, but model.backend is 'smoke'"):
        Settings.from_dict({**MINIMAL, "model": {"path": "/models/sd15"}})
    s = Settings.from_dict({**MINIMAL, "model": {"backend": "diffusers", "path": "/models/sd15"}})
    assert s["model"]["path"] == "/models/sd15"
