#!/usr/bin/env bash
# The capacity study (projects/liera_study/docs/capacity_study.md): when does LieRA beat LoRA?
#
#   projects/liera_study/tools/capacity_study.sh PHASE TASK [compare_methods options]
#
# PHASE  TASK
#   sensitivity  teacher_multiplicative | teacher_additive: can the harness see the difference?
#                frozen (the floor), LoRA and LieRA at rank 2 (the teachers' rank), lr_mult
#                chosen on val on 2 seeds, then 5 paired seeds
#   gate         recolour | recolour_opponent | gratings | gratings_fine, seed 0: norms-only
#                at least 0.05 below full fine-tuning, LoRA better at rank 32 than at rank 2
#                (each at its best lr_mult, on val; a pick at a grid's top extends the grid)
#   compare      recolour_opponent (the one task that passed its gate: recolour and gratings
#                failed, and gratings_fine, gratings' one redesign, too): norms, LoRA and LieRA
#                at ranks 2 and 8, full; settings chosen on val on 2 seeds, then 5 paired seeds
#   long         recolour_opponent: the comparison again at 1200 iterations (its arms had not
#                levelled off at 600), settings chosen again at 1200 around each 600 pick; own
#                record, results/capacity_study/recolour_opponent_1200/
# A task's phases share one record, projects/liera_study/results/capacity_study/TASK/ (the gate's
# runs are the compare phase's screening runs of seed 0). Resumable: run it again after a stop.
# Two 1-thread runs side by side (the 2-core CPU; --jobs 1 to run two tasks side by side); each
# screening run of a final seed is tested right after it trains, sealed (a session's end takes
# the checkpoints).
set -euo pipefail
cd "$(dirname "$0")/../../.."
C=projects/liera_study/configs/capacity
usage="usage: $0 sensitivity|gate|compare|long TASK [compare_methods options]"
phase=${1:?$usage}
task=${2:?$usage}
shift 2
# shellcheck disable=SC2207
options=($(python -c "import sys
from projects.liera_study.liera_study.datasets.capacity_cls import task_cfg_options
try:
    print(*task_cfg_options(sys.argv[1]))
except ValueError as e:
    sys.exit(f'error: {e}')" "$task"))
lora_grid=lr_mult=0.3,1,3  # (the classification study chose 1 and 3 at ranks 2 and 8)
liera_grid=lr_mult=10,30,100  # (it chose 30 and 10; a pick at an edge extends a grid)
record=$task long=()
if [[ $phase == long ]]; then  # 1200 iterations, val every 100: the last quarter is 900-1200
  record=${task}_1200
  long=(train_cfg.max_iters=1200 param_scheduler.1.end=1200 default_hooks.checkpoint.interval=1200)
fi
common=(--jobs 2 --threads 1 --test-screening --cfg-options "${options[@]}" "${long[@]}"
  --work-dir "work_dirs/capacity_study/$record"
  --out-dir "projects/liera_study/results/capacity_study/$record")
# grids extended by the edge rule, per task (docs/capacity_study.md, "Progress")
case $task in
  teacher_multiplicative) sensitivity_lora=lr_mult=0.1,0.3,1,3 ;;  # 0.3 won 2 seeds at the edge
  *) sensitivity_lora=$lora_grid ;;
esac
case $task in
  teacher_multiplicative) sensitivity_liera=lr_mult=0.3,1,3,10,30,100 ;;  # 10, 3, 1 at the edge
  teacher_additive) sensitivity_liera=lr_mult=3,10,30,100 ;;  # 10 won 2 seeds at the edge
  *) sensitivity_liera=$liera_grid ;;
esac
norms_grid=lr_mult=0.3,1,3 full_grid=lr_mult=0.3,1,3 lora_r2_grid=$lora_grid lora_r8_grid=$lora_grid
case $task in  # seed-0 picks at the grid's top in the gate: the edge rule extends the grid
  gratings) norms_grid=lr_mult=0.3,1,3,10 lora_r2_grid=lr_mult=0.3,1,3,10 ;;
  recolour_opponent) norms_grid=lr_mult=0.3,1,3,10,30 lora_r2_grid=lr_mult=0.3,1,3,10
    lora_r8_grid=lr_mult=0.3,1,3,10 full_grid=lr_mult=0.3,1,3,10 ;;  # lora_r8: 2 seeds at 3
  gratings_fine) norms_grid=lr_mult=0.3,1,3,10 ;;
esac
case $phase:$task in
  sensitivity:teacher_multiplicative|sensitivity:teacher_additive)
    exec python projects/liera_study/tools/compare_methods.py \
      $C/frozen.py $C/lora_r2.py $C/liera_r2.py \
      --grid frozen:lr_mult=1 lora_r2:$sensitivity_lora liera_r2:$sensitivity_liera \
      --seeds 0 1 2 3 4 --screen-seeds 0 1 --diff liera_r2-lora_r2 liera_r2-frozen \
      lora_r2-frozen --reference frozen "${common[@]}" "$@" ;;
  gate:recolour|gate:recolour_opponent|gate:gratings|gate:gratings_fine)
    exec python projects/liera_study/tools/compare_methods.py \
      $C/norms.py $C/lora_r2.py $C/lora_r32.py $C/full.py \
      --grid norms:$norms_grid lora_r2,lora_r32:$lora_grid full:$full_grid \
      --seeds 0 --diff full-norms lora_r32-lora_r2 "${common[@]}" "$@" ;;
  compare:recolour_opponent|long:recolour_opponent)
    grid=(norms:$norms_grid lora_r2:$lora_r2_grid lora_r8:$lora_r8_grid
      liera_r2,liera_r8:$liera_grid full:$full_grid)
    if [[ $phase == long ]]; then  # each 600 pick and its neighbours; a value whose two
      # 600-iteration runs both fell to chance (27.25 %) is not screened again and closes its
      # edge (docs, "Progress")
      grid=(norms:lr_mult=3,10,30 lora_r2:lr_mult=1,3,10 lora_r8:lr_mult=1,3
        liera_r2,liera_r8:lr_mult=10,30 full:lr_mult=1,3,10)
    fi
    exec python projects/liera_study/tools/compare_methods.py \
      $C/norms.py $C/lora_r2.py $C/liera_r2.py $C/lora_r8.py $C/liera_r8.py $C/full.py \
      --grid "${grid[@]}" --seeds 0 1 2 3 4 --screen-seeds 0 1 \
      --diff liera_r2-lora_r2 liera_r8-lora_r8 full-norms lora_r8-lora_r2 liera_r8-liera_r2 \
      --reference norms full "${common[@]}" "$@" ;;
  *)
    echo "error: phase '$phase' does not take task '$task': sensitivity takes" \
      "teacher_multiplicative or teacher_additive, gate takes recolour, recolour_opponent," \
      "gratings or gratings_fine, compare and long take recolour_opponent (gratings" \
      "and gratings_fine failed their gates; their records are kept)" >&2
    exit 1 ;;
esac
