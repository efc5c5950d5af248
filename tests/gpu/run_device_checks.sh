#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent GPU machine (torch, transformers==5.17.0 and triton
# installed; no network). Carry a liger-kernel wheel in .gpu-wheels/. Each step has its own time limit, so a
# hang in one still leaves the others' results; outputs go to $OUT (or ./gpu-out).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() {  # step NAME SECONDS COMMAND...
  local name=$1 seconds=$2
  shift 2
  echo "=== $name (limit ${seconds}s)" | tee -a "$OUT/summary.txt"
  local start=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start))s" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.txt"
}
nvidia-smi -L | tee "$OUT/summary.txt"
python3 -c "import torch, transformers, triton; print('torch', torch.__version__, 'transformers', transformers.__version__, 'triton', triton.__version__)" | tee -a "$OUT/summary.txt"
python3 -m pip install --quiet --no-deps --no-index .gpu-wheels/liger_kernel-*.whl 2>&1 | tail -n 2
step pytest_gpu 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_qwen3_gpu.py tests/test_models_gpu.py tests/test_qwen3_generated.py
step equivalence 120 python3 -m tests.equivalence
step check_qwen3_gpu 150 python3 tests/gpu/check_qwen3_gpu.py
step bench_train_step ${BENCH_SECONDS:-200} python3 benchmarks/bench_train_step.py --budget-s $(( ${BENCH_SECONDS:-200} - 20 ))
