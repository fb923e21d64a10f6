#!/usr/bin/env bash
# The checks to run when a GPU is lent (one short script, results under $OUT):
# 1. the accelerator record `python -m experiments.benchmarks.bench_gpu`, one JSON per part so a
#    timeout keeps what finished;
# 2. the loss, edge, numerics and fused tests and their doctests on the real GPU, where
#    `lax.platform_dependent` compiles the `default=` forms natively.
# Uses the machine's own jax/optax/flax; the checkout is on PYTHONPATH (no install, no network).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false MPLBACKEND=Agg
PY=${PYTHON:-python3}
nvidia-smi -L
$PY -c "import jax, optax, entjax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())"
timeout "${BENCH_FUSED_S:-240}" $PY -m experiments.benchmarks.bench_gpu --sections fused ${BENCH_ARGS:-} \
  --out "$OUT/bench_gpu_fused.json" --markdown 2>&1 | tee "$OUT/bench_gpu_fused.log"
timeout "${BENCH_REST_S:-120}" $PY -m experiments.benchmarks.bench_gpu --sections losses,ensemble ${BENCH_ARGS:-} \
  --out "$OUT/bench_gpu_rest.json" --markdown 2>&1 | tee "$OUT/bench_gpu_rest.log"
timeout "${TESTS_S:-150}" $PY -m pytest -q -p no:cacheprovider -o addopts="-p no:benchmark" \
  -n "${WORKERS:-6}" --doctest-modules -rf \
  tests/entjax/test_cross_entropy.py tests/entjax/test_entropy.py tests/entjax/test_divergences.py \
  tests/entjax/test_large_batches.py tests/entjax/test_numerics.py tests/entjax/test_fused.py \
  entjax/_cross_entropy.py entjax/_entropy.py entjax/_divergences.py 2>&1 | tee "$OUT/pytest_gpu.log"
