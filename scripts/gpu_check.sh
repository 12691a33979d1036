#!/usr/bin/env bash
# One-shot CUDA check for a lent GPU machine (device tool), most important first, each part under
# its own time limit so one that hangs leaves the others' results:
#   1. the CUDA-graph tests (graphed training = eager training, per simulator, ensemble, resume);
#   2. graphed vs eager weights after 9 steps: bitwise equal or not, and the largest difference;
#   3. `alfi bench --only ensemble`: eager and graphed steps of 1, 6 and 18 models, and the paper
#      grid's projected GPU-hours;
#   4. every other device-aware test on CUDA;
#   5. `alfi bench --only throughput,step,evaluate`.
# Expects .whl/ with jsonschema and its needs (not in the GPU image); writes under $OUT.
# Usage: bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/gpu.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider --device cuda tests/test_cuda_graph.py 2>&1 \
    | tail -25 | tee "$OUT/cuda_graph_tests.txt"
timeout 60 python3 - <<'EOF' 2>&1 | tee "$OUT/graph_equivalence.txt"
import torch
from alfi.data import make_dataset
from alfi.simulators import get_simulator
from alfi.train import train
from tests.test_cuda_graph import SETTINGS, STEPS

for name in ("poisson", "linear_regression", "multivariate", "weinberg"):
    sim = get_simulator(name)
    data = make_dataset(sim, 20, 24, seed=5, device="cuda")
    runs = [
        train(sim, data, SETTINGS, seed=3, device="cuda", stop_after=STEPS, progress=False,
              cuda_graph=graphed).model.state_dict()
        for graphed in (False, True)
    ]
    same = all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    worst = max(float((runs[0][k] - runs[1][k]).abs().max()) for k in runs[0])
    print(f"{name}: bitwise equal {same}, largest weight difference {worst:.3g}")
EOF
timeout 200 python3 -m alfi bench --device cuda --only ensemble --out-dir "$OUT/bench" 2>&1 \
    | tee "$OUT/bench_ensemble.txt"
timeout 70 python3 -m pytest -q -p no:cacheprovider --device cuda -m "not slow" \
    --ignore=tests/test_cuda_graph.py 2>&1 | tail -25 | tee "$OUT/cuda_tests.txt"
timeout 50 python3 -m alfi bench --device cuda --only throughput,step,evaluate \
    --out-dir "$OUT/bench2" 2>&1 | tee "$OUT/bench_other.txt"
