#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent GPU machine (torch, transformers==5.17.0 and triton
# preinstalled; no network). Carry the wheels of .gpu-wheels/ (liger-kernel 0.8.5, cut-cross-entropy 25.1.1:
# see README, "GPU checks"). Each step has its own time limit, so a hang in one still leaves the others'
# results; raw outputs go to $OUT (or ./gpu-out). Worst case ~8 min (the limits below add up to 485 s);
# BENCH_SECONDS moves the grid's share.
#
#   pytest_gpu        the -m gpu tests: compiled regions vs eager, Qwen3 GPU file vs stock, the families on GPU
#   equivalence       the harness's GPU rows (bf16 and fp32), fused loss forced (PATCHGEN_FUSED_LOSS_MIN_LOGITS=0:
#                     the tiny models would otherwise take upstream's loss), one process per family
#   check_qwen3_gpu   Qwen3 GPU file: logits, each loss path and kernel, gradients (fp32, bf16) vs stock; compiled
#                     regions; peak memory; examples/train_qwen3.py
#   bench_train_step  the grid (stock / Liger / generated, 512-32768 tokens, two model sizes) and the per-op table
set -u
OUT=${OUT:-gpu-out}
BENCH_SECONDS=${BENCH_SECONDS:-250}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() {  # step NAME SECONDS COMMAND...
  local name=$1 seconds=$2
  shift 2
  echo "=== $name (limit ${seconds}s)" | tee -a "$OUT/summary.txt"
  local start=$SECONDS
  timeout "$seconds" "$@" >> "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start))s" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.txt"
}
equivalence_rows() {  # one process per family: a slow one (Triton/Inductor compiles) leaves the others' rows
  local family
  for family in qwen3 llama qwen2 mistral gemma3 qwen3_moe; do
    PATCHGEN_FUSED_LOSS_MIN_LOGITS=0 timeout 30 python3 -m tests.equivalence --only "$family/gpu"
    echo "--- $family/gpu: exit $?"
  done
}
export -f equivalence_rows
nvidia-smi -L | tee "$OUT/summary.txt"
python3 -m pip install --quiet --no-deps --no-index .gpu-wheels/*.whl 2>&1 | tail -n 2
python3 -c "import torch, transformers, triton, liger_kernel, cut_cross_entropy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'triton', triton.__version__)" | tee -a "$OUT/summary.txt"
step pytest_gpu 60 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_compiled_kernels.py tests/test_qwen3_generated.py tests/test_models_gpu.py
step equivalence 105 bash -c equivalence_rows
step check_qwen3_gpu 70 python3 tests/gpu/check_qwen3_gpu.py
step bench_train_step "$BENCH_SECONDS" python3 benchmarks/bench_train_step.py --budget-s $((BENCH_SECONDS - 15))
