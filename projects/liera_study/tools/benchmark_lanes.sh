#!/usr/bin/env bash
# How to spend a machine's cores on many small training runs: LANES runs at once with THREADS
# threads each, against one run at a time with all of them. Prints the wall time and the runs
# per hour of each way; the study's tools run one after another (lanes=1), so this says whether
# running them side by side would pay.
#   projects/liera_study/tools/benchmark_lanes.sh [CONFIG] [ITERS]      (default projects/liera_study/configs/transfer/lora.py, 60)
#   LAYOUTS="1x2 2x1" projects/liera_study/tools/benchmark_lanes.sh     (LANESxTHREADS, default "1xNPROC NPROCx1")
# Each run trains ITERS iterations and validates once at the end (the transfer task's val split),
# from the same seed; work dirs under work_dirs/benchmark_lanes/ (removed first).
set -euo pipefail
cd "$(dirname "$0")/../../.."
CONFIG=${1:-projects/liera_study/configs/transfer/lora.py}
ITERS=${2:-60}
NPROC=$(nproc)
LAYOUTS=${LAYOUTS:-"1x$NPROC ${NPROC}x1"}
W=work_dirs/benchmark_lanes
[ -f "$CONFIG" ] || { echo "error: no config $CONFIG: give a training config as the first argument" >&2; exit 1; }
case "$ITERS" in ''|*[!0-9]*|0) echo "error: ITERS must be a positive whole number, got '$ITERS'" >&2; exit 1;; esac
rm -rf "$W"; mkdir -p "$W"
echo "benchmark_lanes: $CONFIG, $ITERS iterations + one val per run, $(date -u +%F) on $NPROC cores ($(uname -m))"
for layout in $LAYOUTS; do
  case "$layout" in *x*) ;; *) echo "error: layout '$layout' is not LANESxTHREADS (e.g. 2x1)" >&2; exit 1;; esac
  lanes=${layout%x*}; threads=${layout#*x}
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$lanes"); do
    OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads python -m mmliera.cli train "$CONFIG" \
      --work-dir "$W/${layout}_$i" --cfg-options train_cfg.max_iters="$ITERS" \
      train_cfg.val_interval="$ITERS" default_hooks.checkpoint.interval="$ITERS" \
      > "$W/${layout}_$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || { echo "error: a run of layout $layout failed: see $W/${layout}_*.log" >&2; exit 1; }
  done
  end=$(date +%s.%N)
  python - "$layout" "$lanes" "$start" "$end" <<'EOF'
import sys
layout, lanes, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
wall = end - start
print(f'{layout:>6}: {lanes} run(s) in {wall:7.1f} s wall = {3600 * lanes / wall:6.1f} runs/hour')
EOF
done
