#!/usr/bin/env bash
# The GPU checks in one command, on a CUDA machine whose stack is set up (bash tools/setup_env.sh):
#
#   bash tools/gpu_checks.sh OUT_DIR [quick]
#
# Writes, flat in OUT_DIR: versions.txt (GPU, driver, nvcc, the stack), cuda_tests.log
# (tests/test_cuda.py + tests/test_autocast.py), bench_384_fp32.log, bench_384_amp.log (the CPU
# benchmark's setting, 384 px batch 1), bench_paper_amp.log (--paper: 1024 px batch 2, --amp),
# demo_amp.log (the demo with --amp: pre-training, LieRA, COCO evaluation) and summary.txt (one
# line per step: exit status and seconds). `quick` skips the demo and the fp32 benchmark.
# Each step runs even when an earlier one failed; the exit status is that of the first failure.
set -uo pipefail
OUT=${1:?usage: bash tools/gpu_checks.sh OUT_DIR [quick]}
QUICK=${2:-}
PY=${PYTHON:-python}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0

step() {  # step NAME LOG COMMAND...: run, log to OUT/LOG, record status and time
  local name=$1 log=$2 t0=$SECONDS rc
  shift 2
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  "$@" > "$OUT/$log" 2>&1
  rc=$?
  echo "   exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$log"
  [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc
  return 0
}

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  (nvcc --version | tail -n 2) || echo 'nvcc: none'
  "$PY" -c "import mmliera, torch; print(mmliera.environment_summary()); \
print('device:', torch.cuda.get_device_name(), 'cudnn', torch.backends.cudnn.version())"
  "$PY" -c "import mmcv._ext as e; print('mmcv ops built with CUDA', e.get_compiling_cuda_version())"
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"

step 'CUDA tests' cuda_tests.log "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  tests/test_autocast.py
BENCH=("$PY" tools/benchmark.py --device cuda)  # each prints its table (the log keeps it)
[ -z "$QUICK" ] && step 'benchmark 384 px fp32' bench_384_fp32.log "${BENCH[@]}" \
  --out /tmp/gpu_checks/bench_384_fp32
step 'benchmark 384 px --amp' bench_384_amp.log "${BENCH[@]}" --amp \
  --out /tmp/gpu_checks/bench_384_amp
step 'benchmark paper setting --amp' bench_paper_amp.log "${BENCH[@]}" --amp --paper \
  --out /tmp/gpu_checks/bench_paper_amp
[ -z "$QUICK" ] && step 'demo --amp' demo_amp.log "$PY" tools/train.py \
  configs/demo/liera_maskrcnn_convnextv2-atto_synthetic.py --amp \
  --work-dir /tmp/gpu_checks/demo
exit $status
