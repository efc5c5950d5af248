#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent GPU machine (torch, transformers==5.17.0 and triton
# preinstalled; no network). Carry the wheels of .gpu-wheels/ (liger-kernel 0.8.5, cut-cross-entropy 25.1.1:
# see README, "GPU checks"). Each step has its own time limit, so a hang in one still leaves the others'
# results; raw outputs go to $OUT (or ./gpu-out). Worst case ~8 min: the correctness steps run side by side
# (CHECK_SECONDS, 170 s), then the grid alone (BENCH_SECONDS, 300 s).
#
#   GRID_ONLY=1       skip phase 1 (the correctness steps): only the grid runs
#   BENCH_ARGS="..."  more arguments for benchmarks/bench_train_step.py (--models, --shapes, --variants, --no-ops,
#                     --max-seq-cap; see its --help); its --budget-s is always BENCH_SECONDS - 15
#
# e.g. the grid alone in under 240 s:
#   GRID_ONLY=1 BENCH_SECONDS=225 BENCH_ARGS="--models qwen3,llama --shapes 1x512,1x2048,1x8192,4x8192 \
#     --variants stock,liger,generated --no-ops" bash tests/gpu/run_device_checks.sh
#
#   pytest_gpu        the -m gpu tests: compiled regions vs eager, both branches of the size-switched norm/MLP vs
#                     stock, Qwen3 GPU file vs stock, the families on GPU
#   equivalence       the harness's GPU rows (bf16 and fp32), fused loss and Liger's norm/MLP branch forced
#                     (PATCHGEN_FUSED_LOSS_MIN_LOGITS=0, PATCHGEN_LIGER_NORM_MLP_MIN_TOKENS=0: the tiny models would
#                     otherwise take upstream's loss and, in the Qwen3 file, upstream's norm/MLP), one process per family
#   check_qwen3_gpu   Qwen3 GPU file: logits, each loss path and kernel, gradients (fp32, bf16) vs stock; compiled
#                     regions; peak memory; examples/train_qwen3.py
#   bench_train_step  the grid (stock / Liger / generated, 512-32768 tokens, two model sizes) and the per-op table
set -u
OUT=${OUT:-gpu-out}
BENCH_SECONDS=${BENCH_SECONDS:-300}
CHECK_SECONDS=${CHECK_SECONDS:-170}
GRID_ONLY=${GRID_ONLY:-0}
BENCH_ARGS=${BENCH_ARGS:-}
# every family with a generated _gpu file (the harness fails a row whose type has no entry in tests/families.py)
FAMILIES=${FAMILIES:-$(for file in generated/*/patched_modeling_*_gpu.py; do basename "$(dirname "$file")"; done)}
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
    ( PATCHGEN_FUSED_LOSS_MIN_LOGITS=0 PATCHGEN_LIGER_NORM_MLP_MIN_TOKENS=0 timeout $((CHECK_SECONDS - 10)) python3 -m tests.equivalence --only "$family/gpu" \
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
if [ "$GRID_ONLY" != 1 ]; then
  # Phase 1, correctness only, side by side (no timing from this phase is reported): the -m gpu tests (xdist),
  # the equivalence rows of every family, and the Qwen3 file's own check. Liger's fused-MoE kernels autotune
  # over 16-32 Triton configs each (7 kernels, per dtype: a compile per config) the first time they run; GPU
  # run 1's qwen3_moe equivalence rows spent their 160 s there. Correctness needs one config:
  # LIGER_FUSED_MOE_AUTOTUNE=0 (read when liger_kernel is imported) pins it.
  export LIGER_FUSED_MOE_AUTOTUNE=0
  # each test's result as it happens (-v), one line per failure (--tb=line) and a summary (-rfE); a hung test
  # fails alone (--timeout, where pytest-timeout is installed) instead of taking the step's time limit
  timeout_option=$(python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout=60")
  step pytest_gpu "$CHECK_SECONDS" python3 -m pytest -v --tb=line -rfE -m gpu -n 4 -p no:cacheprovider $timeout_option \
    tests/test_compiled_kernels.py tests/test_switched_kernels.py tests/test_qwen3_generated.py tests/test_models_gpu.py tests/test_fused_loss.py \
    tests/gpu/test_moe_experts_gpu.py tests/test_hf_behaviours.py tests/test_models_qwen2_5_vl.py &
  step equivalence "$CHECK_SECONDS" bash -c equivalence_rows &
  step check_qwen3_gpu "$CHECK_SECONDS" python3 tests/gpu/check_qwen3_gpu.py &
  wait
  unset LIGER_FUSED_MOE_AUTOTUNE
fi
# Phase 2, alone on the GPU: the grid and the per-op table (its numbers are the reported ones).
# shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
step bench_train_step "$BENCH_SECONDS" python3 benchmarks/bench_train_step.py --budget-s $((BENCH_SECONDS - 15)) $BENCH_ARGS
cat "$OUT/summary.txt"
for name in pytest_gpu equivalence check_qwen3_gpu bench_train_step; do
  [ -f "$OUT/$name.txt" ] && { echo "##### $name"; tail -n 70 "$OUT/$name.txt"; }
done
