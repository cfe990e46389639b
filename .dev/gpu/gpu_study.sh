#!/usr/bin/env bash
# Parts of the transfer study (projects/liera_study/docs/study.md) side by side on one GPU: each lane is one
# projects/liera_study/tools/compare_methods.py run (one method, one seed) with its own work dir and out dir, and the
# lanes run at once (the study's slim Mask R-CNN leaves an H200 mostly idle). The lanes' results
# merge on any machine without training anything again, and a later slot goes on where this
# one stopped:
#
#   bash .dev/gpu/gpu_study.sh OUT [LIMIT_S]   # LIMIT_S (default 480): every lane stops and saves by then
#   bash .dev/gpu/gpu_study.sh --plan          # the lanes, in the order they are taken
#   GPU_STUDY_ADD=OUT1:OUT2 bash .dev/gpu/gpu_study.sh OUT3   # a later slot: lanes not done yet
#   python projects/liera_study/tools/compare_methods.py NAME=CONFIG ... --add-runs OUT*/LANE/results.json ... \
#       (the lanes' grid and options) --out-dir DIR    # tables and plots of the merge
#
# Lanes: one per (group, seed), named GROUP_sSEED. Groups (NAME=CONFIG | backbone lr_mult |
# seeds | iterations of the schedule):
#   the rank study: LoRA and LieRA Taylor at ranks 2, 8, 32, 3 seeds, each at the lr_mult chosen
#   on val for rank 8 (LoRA 0.3, LieRA 10), the final runs' 320 iterations; frozen and full at
#   320 beside them (3 seeds);
#   the schedule check: frozen, LoRA, LieRA Taylor and full at their chosen lr_mult with 3x the
#   final schedule (960 iterations, val every 80), seed 0;
#   the rank study with each rank's own lr_mult (alpha = 2r keeps alpha/r fixed, so an Adam step
#   of the factors moves ΔW further the higher the rank): ranks 2 and 32 screened on val over
#   three values around rank 8's choice scaled by 8/r. A group with several lr_mult values
#   screens them in its first seed's lane (160 iterations each, then the final run); its other
#   seeds' lanes wait for that choice from an earlier slot and take it from there.
# Writes OUT/LANE/{results.json, table.md, ..., lane.log}, OUT/data_sha256.txt (the generated
# data's checksum, to compare with the CPU machine's), OUT/run_logs.tar.gz, OUT/summary.txt.
# Environment: PYTHON (default python); GPU_STUDY_LANES (comma-separated lane or group names:
# only these); GPU_STUDY_MAX (at most this many lanes at once, default 12: the first ones not
# done); GPU_STUDY_ADD (the OUT folders of earlier slots, separated by ':': a lane one of them
# holds tested is done and not taken again; the others add what those slots left, with
# --add-runs); GPU_STUDY_ITERS (every lane's iterations instead of its own: a smoke run);
# GPU_STUDY_WORK (the lanes' work dirs, default /tmp/gpu_study).
# Sizing, measured on one H200 with 16 cores (2026-12-04): with 12 lanes a 320-iteration run
# trains at ~0.69 s/iter (~4.3 min), then ~35 s of test: a 9-minute slot finishes one
# 320-iteration lane each. A 960-iteration lane needs a slot with few other lanes.
set -uo pipefail
T=projects/liera_study/configs/transfer
GROUPS_="rank_lora_r2|lora_r2=$T/lora_r2.py|0.3|0 1 2|320
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
at960_full|full=$T/full.py|1|0|960
tuned_lora_r2|lora_r2=$T/lora_r2.py|0.3,1,3|0 1 2|320
tuned_lora_r32|lora_r32=$T/lora_r32.py|0.03,0.1,0.3|0 1 2|320
tuned_liera_r2|liera_taylor_r2=$T/liera_taylor_r2.py|10,30,100|0 1 2|320
tuned_liera_r32|liera_taylor_r32=$T/liera_taylor_r32.py|1,3,10|0 1 2|320"
LANES=$(while IFS='|' read -r group method lr seeds iters; do
  first=${seeds%% *}
  for seed in $seeds; do echo "${group}_s$seed|$group|$method|$lr|$seed|$iters|$first"; done
done <<< "$GROUPS_")

if [ "${1:-}" = --plan ]; then
  printf '%-18s %-52s %-7s %-4s %s\n' lane method lr_mult seed iters
  while IFS='|' read -r name group method lr seed iters first; do
    printf '%-18s %-52s %-7s %-4s %s\n' "$name" "$method" "$lr" "$seed" "$iters"
  done <<< "$LANES"
  exit 0
fi
die() { echo "error: $*" >&2; exit 1; }
OUT=${1:?usage: bash .dev/gpu/gpu_study.sh OUT [LIMIT_S] | --plan}
LIMIT=${2:-480}
case "$LIMIT" in ''|*[!0-9]*) die "LIMIT_S '$LIMIT' is not a number of seconds" ;; esac
MAX=${GPU_STUDY_MAX:-12}
case "$MAX" in ''|*[!0-9]*|0) die "GPU_STUDY_MAX '$MAX' is not a positive number of lanes" ;; esac
PY=${PYTHON:-python}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
EARLIER=()
[ -n "${GPU_STUDY_ADD:-}" ] && IFS=':' read -ra EARLIER <<< "$GPU_STUDY_ADD"
for dir in "${EARLIER[@]}"; do
  [ -d "$dir" ] || die "GPU_STUDY_ADD: no folder '$dir' (give the OUT folders of earlier slots)"
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${GPU_STUDY_WORK:-/tmp/gpu_study}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
T0=$SECONDS
note() { echo "$*" | tee -a "$OUT/summary.txt"; }

# this slot's lanes: selected, not done in an earlier slot, at most MAX
chosen=()
done_lane() {  # done_lane LANE: the folder of an earlier slot that holds LANE tested, or nothing
  for dir in "${EARLIER[@]}"; do
    grep -qs '"status": "ok"' "$dir/$1/results.json" && echo "$dir"
  done | tail -n 1
}
while IFS='|' read -r name group method lr seed iters first; do
  if [ -n "${GPU_STUDY_LANES:-}" ] && [[ ",$GPU_STUDY_LANES," != *",$name,"* ]] &&
    [[ ",$GPU_STUDY_LANES," != *",$group,"* ]]; then
    continue
  fi
  done_in=$(done_lane "$name")
  if [ -n "$done_in" ]; then
    note "$name: done in $done_in"
  elif [[ "$lr" == *,* ]] && [ "$seed" != "$first" ] && [ -z "$(done_lane "${group}_s$first")" ]; then
    :  # a screened group's other seeds wait for its first lane's choice (an earlier slot's)
  elif [ ${#chosen[@]} -lt "$MAX" ]; then
    chosen+=("$name|$method|$lr|$seed|$iters|${group}_s$first")
  fi
done <<< "$LANES"
if [ ${#chosen[@]} -eq 0 ]; then
  note 'gpu_study: no lane left to run'
  exit 0
fi

note "lanes: $(printf '%s\n' "${chosen[@]}" | cut -d'|' -f1 | paste -sd' ')"

# the data once, before the lanes (each would otherwise make it), and its checksum
"$PY" - <<'PYEOF' || { note 'error: the transfer data could not be made'; exit 1; }
from mmengine.config import Config
from mmengine.registry import init_default_scope
import mmliera  # noqa: F401 (registers the datasets)
from mmdet.registry import DATASETS
cfg = Config.fromfile('projects/liera_study/configs/transfer/lora.py')
init_default_scope('mmdet')
for split in ('train', 'val', 'test'):
    DATASETS.build(cfg[f'{split}_dataloader']['dataset'])
PYEOF
DATA=$("$PY" -c "from mmengine.config import Config; print(Config.fromfile('$T/lora.py').data_root)")
(cd "$DATA" && find . -type f ! -name DONE.json | sort | xargs sha256sum | sha256sum |
  cut -d' ' -f1) > "$OUT/data_sha256.txt"
note "gpu_study: $(date -u '+%F %T UTC'), ${#chosen[@]} lanes, stopped by ${LIMIT} s;" \
  "data sha256 $(cat "$OUT/data_sha256.txt")"

pids=()
names=()
for lane in "${chosen[@]}"; do
  IFS='|' read -r name method lr seed iters first_lane <<< "$lane"
  iters=${GPU_STUDY_ITERS:-$iters}
  mkdir -p "$OUT/$name"
  added=()
  for dir in "${EARLIER[@]}"; do  # (and the first lane's screening, when this lane is another)
    for from in $(printf '%s\n' "$name" "$first_lane" | sort -u); do
      [ -f "$dir/$from/results.json" ] && added+=("$dir/$from/results.json")
    done
  done
  [ ${#added[@]} -gt 0 ] && added=(--add-runs "${added[@]}")
  timeout -s TERM --kill-after=40 "$((LIMIT - (SECONDS - T0)))" "$PY" projects/liera_study/tools/compare_methods.py \
    "$method" --grid "lr_mult=$lr" --seeds "$seed" --screen-seed "${first_lane##*_s}" \
    --final-cfg-options "train_cfg.max_iters=$iters" "param_scheduler.1.end=$iters" \
    "default_hooks.checkpoint.interval=$iters" --work-dir "$WORK/$name" --out-dir "$OUT/$name" \
    "${added[@]}" > "$OUT/$name/lane.log" 2>&1 < /dev/null &
  pids+=($!)
  names+=("$name")
done

status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  rc=$?
  tested=$(grep -c ': test ' "$OUT/${names[$i]}/lane.log")
  note "   ${names[$i]}: exit $rc, $tested runs tested, $((SECONDS - T0)) s"
  [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc
done
(cd "$WORK" && find . -name run.log | tar czf "$OUT/run_logs.tar.gz" -T -) 2>/dev/null
note "total: $((SECONDS - T0)) s, exit $status"
exit $status
