# The few commands people run. Each target creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
OUT ?= out/demo
RENDER_OUT ?= out/render

.PHONY: demo render test test-rust test-python bench bench-rust lint fmt wheel clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The main job: examples/morph.toml (the seed's workflow, 240 frames, 6x interpolation to
# 60 fps) on the embedded smoke model at 128x128; about 1.5 minutes on 2 CPU cores.
# Each run starts afresh; continue a kept run with `loopwave render --resume out/render/morph`.
render: $(PY)
	$(PIP) install --quiet ".[video,torch]"
	rm -rf $(RENDER_OUT)/morph
	$(VENV)/bin/loopwave render examples/morph.toml --size 128x128 --out $(RENDER_OUT)

# The colour-correction demo: colour-correct a simulated drifting loopback run.
demo: $(PY)
	$(PIP) install --quiet ".[demo]"
	$(VENV)/bin/loopwave demo --out $(OUT)

# The whole test suite: Rust kernel tests, then pytest against the installed wheel.
test: test-rust test-python

# Once at the CPU's widest SIMD level, once on the x86-64 baseline build of the hot loops.
test-rust:
	cargo test --release --locked
	LOOPWAVE_SIMD=baseline cargo test --release --locked

test-python: $(PY)
	$(PIP) install --quiet ".[test]"
	$(PY) -m pytest -q

# Side-by-side benchmarks against the seed's libraries, and criterion benches of the kernels.
bench: $(PY)
	$(PIP) install --quiet ".[bench]"
	$(PY) benches/bench_color.py

bench-rust:
	cargo bench --bench kernels

lint: $(PY)
	$(PIP) install --quiet ".[dev]"
	cargo fmt --check
	cargo clippy --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest loopwave._native

fmt:
	cargo fmt
	$(VENV)/bin/ruff format python tests benches

wheel: $(PY)
	$(PIP) install --quiet maturin
	$(VENV)/bin/maturin build --release --out dist

clean:
	rm -rf target dist $(VENV) $(OUT) $(RENDER_OUT)
