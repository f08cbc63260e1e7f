#!/usr/bin/env bash
# One-class tables (and other experiment jobs) on a lent accelerator, in one lease, packed as
# they finish so that a run cut off at its time limit still returns what it finished.
#   JAX_ANOMALY_DATA=<root with mnist/ and fashion-mnist/> \
#     bash experiments/gpu_tables.sh OUT SECONDS JOB...
# A JOB is DATASET:DETECTOR:ARCH:EPOCHS[:MORE ONE_CLASS ARGS] (a one_class.py table, e.g.
# `mnist:ae:dense:20:--model latent=16 --tag l16`), `bench_fanogan`, or
# `dcgan:DATASET:NORMAL:EPOCHS` (one f-AnoGAN run with the conv GAN, with its plots: the
# DCGAN sample grid). A job is skipped once less than a minute of SECONDS is left.
# Everything lands in OUT/tables.tar.gz, with the log in OUT/log.txt.
set -uo pipefail
out=${1:?OUT}
budget=${2:?SECONDS}
shift 2
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
start=$SECONDS
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee "$work/device.txt"
for job in "$@"; do
  left=$((budget - (SECONDS - start)))
  if ((left < 60)); then echo "skip $job: ${left}s left"; continue; fi
  echo "== $job (${left}s left)"
  IFS=: read -r a b c d e <<<"$job"
  case $a in
    bench_fanogan)
      timeout "$left" $py experiments/bench_fanogan.py --out "$work/bench_fanogan.json" ;;
    dcgan)
      timeout "$left" $py -m jax_anomaly.cli run --detector fanogan --arch conv --dataset "$b" \
        --normal "$c" --epochs "$d" --out "$work/dcgan_${b}_$c" | tail -25 ;;
    *)
      timeout "$left" $py experiments/one_class.py --dataset "$a" --detector "$b" --arch "$c" \
        --epochs "$d" --out "$work" ${e:-} | tail -16 ;;
  esac
  tar -czf "$out/tables.tar.gz" -C "$work" . 2>/dev/null
done 2>&1 | tee "$out/log.txt"
tar -czf "$out/tables.tar.gz" -C "$work" .
