#!/usr/bin/env bash
# The classification transfer study (projects/liera_study/docs/transfer_cls_study.md): 7 arms
# on the embedded task (five texture-filled shapes, from a backbone pre-trained on three
# flat-coloured ones), the backbone's lr_mult chosen per arm on val (seed 0), then 5 paired seeds
# on test; the outputs go to projects/liera_study/results/transfer_cls_study/.
#
#   projects/liera_study/tools/transfer_cls_study.sh [compare_methods options, e.g. --rerun]
#
# Resumable: run it again after a stop and it goes on; the results folder is rewritten after
# every step.
#
#   projects/liera_study/tools/transfer_cls_study.sh recheck|recheck-long [compare_methods options]
# The rank-2 re-check at 600 iterations (docs/transfer_cls_study.md, "The rank-2 re-check"):
# LoRA r2, LieRA r2 and full, each setting chosen at 600 iterations on the mean val accuracy of
# seeds 0 and 1 (screening runs of those seeds tested as they train, sealed), then 5 paired seeds;
# two 1-thread runs side by side; outputs in projects/liera_study/results/transfer_cls_recheck/.
# Edge rule (2026-12-08): LoRA took 0.1 (0.3, its lowest value, won), full 0.3 (1 won).
# recheck-long: the same at 1200 iterations (val every 100), settings chosen again around the
# 600 picks; outputs in projects/liera_study/results/transfer_cls_recheck_1200/.
set -euo pipefail
cd "$(dirname "$0")/../../.."
C=projects/liera_study/configs/transfer_cls
if [[ ${1:-} == recheck || ${1:-} == recheck-long ]]; then
  its=600 record=transfer_cls_recheck
  grid=(lora_r2:lr_mult=0.1,0.3,1,3,10 liera_r2:lr_mult=3,10,30,100 full:lr_mult=0.3,1,3,10)
  if [[ $1 == recheck-long ]]; then  # 600 had not levelled off: around the 600 picks
    its=1200 record=transfer_cls_recheck_1200
    grid=(lora_r2:lr_mult=0.1,0.3,1 liera_r2:lr_mult=3,10,30 full:lr_mult=0.3,1,3)
  fi
  shift
  exec python projects/liera_study/tools/compare_methods.py \
    $C/lora_r2.py $C/liera_r2.py $C/full.py --grid "${grid[@]}" \
    --seeds 0 1 2 3 4 --screen-seeds 0 1 --test-screening --jobs 2 --threads 1 \
    --diff liera_r2-lora_r2 full-liera_r2 full-lora_r2 \
    --cfg-options train_cfg.max_iters=$its param_scheduler.1.end=$its \
                  default_hooks.checkpoint.interval=$its \
    --work-dir work_dirs/$record --out-dir projects/liera_study/results/$record "$@"
fi
exec python projects/liera_study/tools/compare_methods.py \
  $C/frozen.py $C/norms.py $C/lora_r2.py $C/liera_r2.py $C/lora_r8.py $C/liera_r8.py $C/full.py \
  --grid norms:lr_mult=0.1,0.3,1 lora_r2,lora_r8:lr_mult=0.3,1,3,10 \
         liera_r2,liera_r8:lr_mult=1,3,10,30,100 full:lr_mult=0.3,1,3,10 frozen:lr_mult=1 \
  --seeds 0 1 2 3 4 \
  --diff liera_r2-lora_r2 liera_r8-lora_r8 liera_r8-liera_r2 lora_r8-lora_r2 lora_r8-frozen \
         liera_r8-frozen norms-frozen liera_r8-norms full-liera_r8 full-lora_r8 \
  --reference frozen full \
  --work-dir work_dirs/transfer_cls_study \
  --out-dir projects/liera_study/results/transfer_cls_study "$@"
