#!/usr/bin/env bash
# The GPU checks in one command, on a CUDA machine whose stack is set up (bash tools/setup_env.sh,
# or .dev/gpu/gpu_slot.sh on a machine without a registry):
#
#   bash .dev/gpu/gpu_checks.sh OUT_DIR [quick]
#   bash .dev/gpu/gpu_checks.sh --plan [quick]      # the steps, in order, with their time caps
#
# Steps, in this order (each capped at its seconds, and at what is left before the deadline):
#   whole_amp        the whole-detector LieRA arm with --amp: a final run's schedule (320 iters,
#                    lr_mult 10 as chosen on CPU), then tools/test.py on the test split  [not in quick]
#   cuda_tests       tests/engine/test_cuda.py + tests/peft/test_autocast.py
#   bench_384_amp    tools/analysis_tools/benchmark.py --device cuda --amp (384 px, batch 1: the CPU setting)
#   bench_paper_amp  the same with --paper (ConvNeXt-V2-B, 1024 px, batch 2)
#   demo_amp         the demo with --amp: pre-training, LieRA, COCO mAP   [not in quick]
#   bench_384_fp32   tools/analysis_tools/benchmark.py --device cuda (fp32)            [not in quick]
#   suite            the fast tier of the whole suite (-m "not slow"; pytest-xdist by file if there)
#   study            .dev/gpu/gpu_study.sh: the transfer study's rank and schedule lanes side by side
#                    (each lane stops and saves 20 s before the step's time)  [not in quick]
# Writes, flat in OUT_DIR: versions.txt, one STEP.log each, bench_*.{md,json}, summary.txt (one
# line per step: exit status and seconds; a step skipped for lack of time says so). Each step
# runs even when an earlier one failed; the exit status is that of the first failure.
# Environment: PYTHON (default python), GPU_CHECKS_DEADLINE (seconds since the epoch by which
# everything must end; default: none), GPU_CHECKS_STEPS (comma-separated: only these steps),
# GPU_CHECKS_TESTS (what `suite` runs, default: all, as README's test command), GPU_CHECKS_JOBS (xdist workers, default 8).
# A step past its time gets SIGINT first, so pytest still prints its summary of failures.
set -uo pipefail
# name | cap (s) | in quick | command (run from the checkout; $PY, $OUT, $XDIST, $TESTS and
# $LANE_LIMIT, the step's time less 20 s, expand there)
PLAN="whole_amp|150|no|\$PY tools/train.py projects/liera_study/configs/transfer/whole_liera.py --amp --work-dir /tmp/gpu_checks/whole --cfg-options train_cfg.max_iters=320 param_scheduler.1.end=320 default_hooks.checkpoint.interval=320 optim_wrapper.paramwise_cfg.custom_keys.lora_.lr_mult=10 && \$PY tools/test.py projects/liera_study/configs/transfer/whole_liera.py /tmp/gpu_checks/whole/iter_320.pth --work-dir /tmp/gpu_checks/whole_test
cuda_tests|150|yes|\$PY -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py tests/peft/test_autocast.py
bench_384_amp|75|yes|\$PY tools/analysis_tools/benchmark.py --device cuda --amp --out \$OUT/bench_384_amp
bench_paper_amp|100|yes|\$PY tools/analysis_tools/benchmark.py --device cuda --amp --paper --out \$OUT/bench_paper_amp
demo_amp|150|no|\$PY tools/train.py configs/demo/liera_maskrcnn_convnextv2-atto_synthetic.py --amp --work-dir /tmp/gpu_checks/demo
bench_384_fp32|75|no|\$PY tools/analysis_tools/benchmark.py --device cuda --out \$OUT/bench_384_fp32
suite|180|yes|\$PY -m pytest -v -rfE -p no:cacheprovider -m 'not slow' \$XDIST \$TESTS
study|480|no|PYTHON=\$PY bash .dev/gpu/gpu_study.sh \$OUT/study \$LANE_LIMIT"
MIN_STEP=20  # seconds: a step with less time than this left is skipped

if [ "${1:-}" = --plan ]; then
  total=0
  while IFS='|' read -r name cap quick cmd; do
    [ "${2:-}" = quick ] && [ "$quick" = no ] && continue
    printf '%-16s %4d s  %s\n' "$name" "$cap" "$cmd"
    total=$((total + cap))
  done <<< "$PLAN"
  printf 'total            %4d s\n' "$total"
  exit 0
fi
OUT=${1:?usage: bash .dev/gpu/gpu_checks.sh OUT_DIR [quick] | --plan [quick]}
QUICK=${2:-}
PY=${PYTHON:-python}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
TESTS=${GPU_CHECKS_TESTS:-}  # empty: setup.cfg's testpaths (the library's and the study's tests)
XDIST=
"$PY" -c "import xdist" 2>/dev/null && XDIST="-n ${GPU_CHECKS_JOBS:-8} --dist loadfile"
DEADLINE=${GPU_CHECKS_DEADLINE:-0}
status=0

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  (nvcc --version | tail -n 2) || echo 'nvcc: none'
  "$PY" -c "import mmliera, torch; print(mmliera.environment_summary()); \
print('device:', torch.cuda.get_device_name(), 'cudnn', torch.backends.cudnn.version())"
  "$PY" -c "import mmcv._ext as e; print('mmcv ops built with CUDA', e.get_compiling_cuda_version())"
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"

while IFS='|' read -r name cap quick cmd; do
  [ -n "$QUICK" ] && [ "$quick" = no ] && continue
  [ -n "${GPU_CHECKS_STEPS:-}" ] && [[ ",$GPU_CHECKS_STEPS," != *",$name,"* ]] && continue
  limit=$cap
  if [ "$DEADLINE" -gt 0 ]; then
    left=$((DEADLINE - $(date +%s)))
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  if [ "$limit" -lt $MIN_STEP ]; then
    echo "== $name: skipped (${limit} s left before the deadline)" | tee -a "$OUT/summary.txt"
    [ $status -eq 0 ] && status=124
    continue
  fi
  LANE_LIMIT=$((limit - 20))
  cmd=$(eval "echo \"$cmd\"")
  echo "== $name (at most $limit s): $cmd" | tee -a "$OUT/summary.txt"
  t0=$SECONDS
  timeout -s INT --kill-after=15 "$limit" bash -c "$cmd" > "$OUT/$name.log" 2>&1 < /dev/null
  rc=$?
  [ $rc -eq 124 ] && note=' (timed out)' || note=''
  echo "   exit $rc$note, $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.log"
  for f in "$OUT/$name"/benchmark.md "$OUT/$name"/benchmark.json; do
    [ -f "$f" ] && cp "$f" "$OUT/$name.${f##*.}"
  done
  [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc
done <<< "$PLAN"
exit $status
