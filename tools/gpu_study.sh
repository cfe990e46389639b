#!/usr/bin/env bash
# Parts of the transfer study (docs/study.md) side by side on one GPU: each lane is one
# tools/compare_methods.py with its own work dir and out dir, and every lane runs at once (the
# study's slim Mask R-CNN leaves a GPU idle most of the time, so N lanes take about the time of
# one). The lanes' results merge on any machine, without training anything again:
#
#   bash tools/gpu_study.sh OUT [LIMIT_S]   # LIMIT_S (default 480): each lane stops and saves by then
#   bash tools/gpu_study.sh --plan          # the lanes
#   python tools/compare_methods.py NAME=CONFIG ... --add-runs OUT/LANE/results.json ... \
#       (the same grid and options as the lanes) --out-dir DIR      # tables and plots of the merge
#
# Lanes (name | methods as NAME=CONFIG | backbone lr_mult | seeds | iterations of the schedule):
#   the rank study: LoRA and LieRA Taylor at ranks 2, 8, 32, 3 seeds, each at the lr_mult chosen
#   on val for rank 8 (LoRA 0.3, LieRA 10), the final runs' 320 iterations;
#   the schedule check: frozen, LoRA, LieRA Taylor and full at their chosen lr_mult with 3x the
#   final schedule (960 iterations, val every 80), seed 0; frozen and full at 320 (3 seeds) to
#   set them beside the rank lanes' rank-8 runs.
# Writes OUT/LANE/{results.json, table.md, ..., lane.log}, OUT/data_sha256.txt (the generated
# data's checksum, to compare with the CPU machine's), OUT/run_logs.tar.gz, OUT/summary.txt.
# Environment: PYTHON (default python), GPU_STUDY_LANES (comma-separated: only these lanes),
# GPU_STUDY_ITERS (every lane's iterations instead of its own: a smoke run), GPU_STUDY_WORK
# (the lanes' work dirs, default /tmp/gpu_study).
set -uo pipefail
T=configs/transfer
LANES="rank_lora_r2|lora_r2=$T/lora_r2.py|0.3|0 1 2|320
rank_lora_r8|lora=$T/lora.py|0.3|0 1 2|320
rank_lora_r32|lora_r32=$T/lora_r32.py|0.3|0 1 2|320
rank_liera_r2|liera_taylor_r2=$T/liera_taylor_r2.py|10|0 1 2|320
rank_liera_r8|liera_taylor=$T/liera_taylor.py|10|0 1 2|320
rank_liera_r32|liera_taylor_r32=$T/liera_taylor_r32.py|10|0 1 2|320
at320_frozen|frozen=$T/frozen.py|1|0 1 2|320
at320_full|full=$T/full.py|1|0 1 2|320
at960_frozen|frozen=$T/frozen.py|1|0|960
at960_lora|lora=$T/lora.py|0.3|0|960
at960_liera|liera_taylor=$T/liera_taylor.py|10|0|960
at960_full|full=$T/full.py|1|0|960"

if [ "${1:-}" = --plan ]; then
  printf '%-16s %-44s %-7s %-6s %s\n' lane method lr_mult seeds iters
  while IFS='|' read -r name method lr seeds iters; do
    printf '%-16s %-44s %-7s %-6s %s\n' "$name" "$method" "$lr" "$seeds" "$iters"
  done <<< "$LANES"
  exit 0
fi
OUT=${1:?usage: bash tools/gpu_study.sh OUT [LIMIT_S] | --plan}
LIMIT=${2:-480}
case "$LIMIT" in ''|*[!0-9]*) echo "error: LIMIT_S '$LIMIT' is not a number of seconds" >&2; exit 1 ;; esac
PY=${PYTHON:-python}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${GPU_STUDY_WORK:-/tmp/gpu_study}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
T0=$SECONDS
note() { echo "$*" | tee -a "$OUT/summary.txt"; }

# the data once, before the lanes (each would otherwise generate it), and its checksum
"$PY" - <<'EOF' || { note 'error: the transfer data could not be made'; exit 1; }
from mmengine.config import Config
from mmengine.registry import init_default_scope
import mmliera  # noqa: F401 (registers the datasets)
from mmdet.registry import DATASETS
cfg = Config.fromfile('configs/transfer/lora.py')
init_default_scope('mmdet')
for split in ('train', 'val', 'test'):
    DATASETS.build(cfg[f'{split}_dataloader']['dataset'])
EOF
DATA=$("$PY" -c "from mmengine.config import Config; print(Config.fromfile('$T/lora.py').data_root)")
(cd "$DATA" && find . -type f ! -name DONE.json | sort | xargs sha256sum | sha256sum | cut -d' ' -f1) \
  > "$OUT/data_sha256.txt"
note "gpu_study: $(date -u '+%F %T UTC'), lanes stop by ${LIMIT} s; data sha256 $(cat "$OUT/data_sha256.txt")"

pids=()
names=()
while IFS='|' read -r name method lr seeds iters; do
  [ -n "${GPU_STUDY_LANES:-}" ] && [[ ",$GPU_STUDY_LANES," != *",$name,"* ]] && continue
  mkdir -p "$OUT/$name"
  iters=${GPU_STUDY_ITERS:-$iters}
  left=$((LIMIT - (SECONDS - T0)))
  # shellcheck disable=SC2086  # (seeds: one word each)
  timeout -s TERM --kill-after=40 "$left" "$PY" tools/compare_methods.py "$method" \
    --grid "lr_mult=$lr" --seeds $seeds --order method \
    --final-cfg-options "train_cfg.max_iters=$iters" "param_scheduler.1.end=$iters" \
    "default_hooks.checkpoint.interval=$iters" \
    --work-dir "$WORK/$name" --out-dir "$OUT/$name" > "$OUT/$name/lane.log" 2>&1 < /dev/null &
  pids+=($!)
  names+=("$name")
done <<< "$LANES"
note "${#pids[@]} lanes started"

status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  rc=$?
  done_runs=$(grep -c ': test ' "$OUT/${names[$i]}/lane.log")
  note "   ${names[$i]}: exit $rc, $done_runs runs tested, $((SECONDS - T0)) s"
  [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc
done
(cd "$WORK" && find . -name run.log | tar czf "$OUT/run_logs.tar.gz" -T -) 2>/dev/null
note "total: $((SECONDS - T0)) s, exit $status"
exit $status
