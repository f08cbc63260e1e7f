#!/usr/bin/env bash
# The GPU checks and benchmarks in one go (one lease of an accelerator machine):
# device facts, the test suite on the GPU, the AnoGAN benchmark with a matmul-precision
# comparison, and the AE benchmark. Figures go to $1 (default results/gpu).
#   JAX_ANOMALY_DATA=<root with mnist/ and fashion-mnist/> bash experiments/bench_gpu.sh OUT
set -uo pipefail
out=${1:-results/gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/device.txt"
$py -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" | tee -a "$out/device.txt"
timeout 240 $py -m pytest -q -x -p no:cacheprovider tests 2>&1 | tail -5 | tee "$out/tests.txt"
$py -m jax_anomaly.cli bench anogan --sizes 1000,10000,100000 --precisions float32,tf32,bf16 \
  --out "$out/bench_anogan.json" 2>&1 | grep -v "^train" | tee "$out/bench_anogan.log"
$py -m jax_anomaly.cli bench ae --out "$out/bench_ae.json" 2>&1 | grep -v "^train" | tee "$out/bench_ae.log"
