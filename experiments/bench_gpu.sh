#!/usr/bin/env bash
# The GPU checks and benchmarks in one go (one lease of an accelerator machine): device
# facts, the test suite on the GPU, the AnoGAN search benchmarks (throughput with the cost of the
# progress line; AUROC against length and matmul precision), AE/GAN training and scaling, many
# models stacked (K up to 64, to set training.stacked.DEFAULT_GROUP['gpu']), local processes, and
# models saved there for experiments/portable_model.py
# check on a CPU machine. Everything lands in $1 (default results/benchmarks/gpu) and $1/all.tar.gz.
#   JAX_ANOMALY_DATA=<root with mnist/ and fashion-mnist/> bash experiments/bench_gpu.sh OUT
set -uo pipefail
out=${1:-results/benchmarks/gpu}
work=$(mktemp -d)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$work/device.txt"
$py -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" | tee -a "$work/device.txt"
timeout 300 $py -m pytest -q -p no:cacheprovider tests 2>&1 | tail -15 | tee "$work/tests.txt"
$py experiments/portable_model.py save "$work/portable" 2>&1 | tail -3
$py -m jax_anomaly.cli bench score --detector anogan --dataset mnist --search-steps 500 --sizes 1000,10000,100000 \
  --progress --out "$work/bench_score_anogan.json" 2>&1 | grep -v "^train" | tee "$work/bench_score_anogan.log"
$py -m jax_anomaly.cli bench search --precisions float32,tf32,bf16 --out "$work/bench_search.json" 2>&1 \
  | grep -v "^train" | tee "$work/bench_search.log"
$py -m jax_anomaly.cli bench train --detector ae --dataset fashion_mnist --preset mnist_tutorial \
  --out "$work/bench_train_ae.json" 2>&1 | grep -v "^train " | tee "$work/bench_train_ae.log"
$py -m jax_anomaly.cli bench train --detector anogan --dataset mnist --epochs 20 \
  --out "$work/bench_train_anogan.json" 2>&1 | grep -v "^train " | tee "$work/bench_train_anogan.log"
$py -m jax_anomaly.cli bench scaling --out "$work/bench_scaling.json" 2>&1 | tee "$work/bench_scaling.log"
$py experiments/bench_stacked.py --models 1,2,4,16,64 --groups 1,4,16,64 --out "$work" 2>&1 | tee "$work/bench_stacked.log"
$py experiments/bench_multiprocess.py --processes 1,2 --out "$work" 2>&1 | tee "$work/bench_multiprocess.log"
mkdir -p "$out" && tar -czf "$out/all.tar.gz" -C "$work" .
