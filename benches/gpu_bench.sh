#!/usr/bin/env bash
# The GPU measurements of issue 5, as run on a lent H100 (see benches/RESULTS_GEN.md).
# Usage: benches/gpu_bench.sh STAGE [OUTDIR]
#   STAGE: check | base | tricks | best | session | tensorrt
# (session: benches/gpu_session.py, the render loop taken apart, about 4 minutes on an H200;
#  tensorrt: UNet and VAE as fp16 TensorRT engines; needs the tensorrt package)
# Expects python3 with torch (CUDA); diffusers and av are installed from .whl/ when that
# folder exists (the lent machine has no package index), the native module from
# python/loopwave/_native.abi3.so (built elsewhere with `maturin develop --release`).
set -u
stage=${1:?stage: check, base, tricks, best, session or tensorrt}
out=${2:-${OUT:-out/gpu}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD/python
fi
py=python3
bench() {  # name, timeout, bench args...
    local name=$1 limit=$2
    shift 2
    echo "== bench $name: $*"
    timeout "$limit" $py -m loopwave bench --model "${MODEL:-sd15-random}" --json "$out/bench_$name.json" "$@" \
        2>&1 | tee "$out/bench_$name.log" | grep -v "^\s*$"
}
case $stage in
check)
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.used \
        --format=csv
    $py -c "import torch, diffusers, av, loopwave; print('torch', torch.__version__, \
'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'av', av.__version__)"
    timeout 240 $py -m pytest -q -p no:cacheprovider tests/test_backends.py \
        tests/test_trt.py tests/test_prompt_weights.py tests/test_render_stages.py 2>&1 |
        tee "$out/pytest_gpu.log" | tail -15
    ;;
base) bench base 200 --frames 24 ;;
tricks) bench tricks 420 --frames 24 --tricks ;;
best)
    bench best 300 --frames 48 --compile unet,vae --cuda-graphs --device-rng --channels-last
    ;;
session)
    timeout 420 $py benches/gpu_session.py "$out" --frames 48 2>&1 | grep -v "^\s*$" |
        tee "$out/session.log" | tail -20
    ;;
tensorrt) bench tensorrt 540 --frames 48 --unet tensorrt --vae tensorrt --device-rng ;;
*) echo "unknown stage $stage"; exit 2 ;;
esac
