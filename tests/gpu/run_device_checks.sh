#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent GPU machine (torch, transformers==5.17.0 and triton
# preinstalled; no network). Carry the wheels of .gpu-wheels/ (liger-kernel 0.8.5, cut-cross-entropy 25.1.1:
# see README, "GPU checks"). Each step has its own time limit, so a hang in one still leaves the others'
# results; raw outputs go to $OUT (or ./gpu-out). Worst case ~8 min: the correctness steps run side by side
# (CHECK_SECONDS, 170 s), then the grid alone (BENCH_SECONDS, 300 s).
#
#   pytest_gpu        the -m gpu tests: compiled regions vs eager, Qwen3 GPU file vs stock, the families on GPU
#   equivalence       the harness's GPU rows (bf16 and fp32), fused loss forced (PATCHGEN_FUSED_LOSS_MIN_LOGITS=0:
#                     the tiny models would otherwise take upstream's loss), one process per family
#   check_qwen3_gpu   Qwen3 GPU file: logits, each loss path and kernel, gradients (fp32, bf16) vs stock; compiled
#                     regions; peak memory; examples/train_qwen3.py
#   bench_train_step  the grid (stock / Liger / generated, 512-32768 tokens, two model sizes) and the per-op table
set -u
OUT=${OUT:-gpu-out}
BENCH_SECONDS=${BENCH_SECONDS:-300}
CHECK_SECONDS=${CHECK_SECONDS:-170}
FAMILIES=${FAMILIES:-"qwen3 llama qwen2 mistral gemma3 qwen3_moe olmo2 phi3 qwen3_next"}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() {  # step NAME SECONDS COMMAND...: output to $OUT/NAME.txt, exit status to summary.txt
  local name=$1 seconds=$2
  shift 2
  echo "=== $name (limit ${seconds}s)" >> "$OUT/summary.txt"
  local start=$SECONDS
  timeout "$seconds" "$@" >> "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start))s" >> "$OUT/summary.txt"
}
equivalence_rows() {  # every family's GPU rows at once, each in its own process (a hang leaves the others)
  local family pids=()
  mkdir -p /tmp/equivalence
  for family in $FAMILIES; do
    ( PATCHGEN_FUSED_LOSS_MIN_LOGITS=0 timeout $((CHECK_SECONDS - 10)) python3 -m tests.equivalence --only "$family/gpu" \
        > "/tmp/equivalence/$family.txt" 2>&1; echo "--- $family/gpu: exit $?" >> "/tmp/equivalence/$family.txt" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  for family in $FAMILIES; do cat "/tmp/equivalence/$family.txt"; done
}
export -f equivalence_rows
export CHECK_SECONDS FAMILIES
nvidia-smi -L | tee "$OUT/summary.txt"
python3 -m pip install --quiet --no-deps --no-index .gpu-wheels/*.whl 2>&1 | tail -n 2
python3 -c "import torch, transformers, triton, liger_kernel, cut_cross_entropy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'triton', triton.__version__)" | tee -a "$OUT/summary.txt"
# Phase 1, correctness only, side by side (no timing from this phase is reported): the -m gpu tests (xdist),
# the equivalence rows of every family, and the Qwen3 file's own check.
step pytest_gpu "$CHECK_SECONDS" python3 -m pytest -q -m gpu -n 4 -p no:cacheprovider -rfE \
  tests/test_compiled_kernels.py tests/test_qwen3_generated.py tests/test_models_gpu.py \
  tests/gpu/test_moe_experts_gpu.py tests/test_hf_behaviours.py &
step equivalence "$CHECK_SECONDS" bash -c equivalence_rows &
step check_qwen3_gpu "$CHECK_SECONDS" python3 tests/gpu/check_qwen3_gpu.py &
wait
# Phase 2, alone on the GPU: the grid and the per-op table (its numbers are the reported ones).
step bench_train_step "$BENCH_SECONDS" python3 benchmarks/bench_train_step.py --budget-s $((BENCH_SECONDS - 15))
cat "$OUT/summary.txt"
for name in pytest_gpu equivalence check_qwen3_gpu bench_train_step; do echo "##### $name"; tail -n 40 "$OUT/$name.txt"; done
