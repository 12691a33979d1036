#!/usr/bin/env bash
# One-shot CUDA check for a lent GPU machine (device tool): the quick tests on CUDA, then `alfi bench` on the
# GPU. Expects .whl/ with jsonschema and its pure-Python needs (not in the GPU image) and writes
# everything under $OUT. Usage: bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider --device cuda -m "not slow" 2>&1 | tail -15 | tee "$OUT/cuda_tests.txt"
timeout 200 python3 -m alfi bench --device cuda --only throughput,step,ensemble,evaluate \
    --out-dir "$OUT/bench" 2>&1 | tee "$OUT/bench.txt"
timeout 240 python3 -m alfi bench --device cuda --only accuracy --poisson-seconds 60 \
    --weinberg-seconds 120 --out-dir "$OUT/acc" 2>&1 | tee "$OUT/accuracy.txt"
