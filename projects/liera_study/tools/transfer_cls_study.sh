#!/usr/bin/env bash
# The classification transfer study (projects/liera_study/docs/transfer_cls_study.md): 7 arms on the embedded task
# (five texture-filled shapes, from a backbone pre-trained on three flat-coloured ones), the
# backbone's lr_mult chosen per arm on val (seed 0), then 5 paired seeds on test; the outputs go
# to projects/liera_study/results/transfer_cls_study/.
# Resumable: run it again after a stop and it goes on; projects/liera_study/results/transfer_cls_study/ is rewritten
# after every step. Extra arguments go to projects/liera_study/tools/compare_methods.py (e.g. --rerun).
set -euo pipefail
cd "$(dirname "$0")/../../.."
C=projects/liera_study/configs/transfer_cls
exec python projects/liera_study/tools/compare_methods.py \
  $C/frozen.py $C/norms.py $C/lora_r2.py $C/liera_r2.py $C/lora_r8.py $C/liera_r8.py $C/full.py \
  --grid norms:lr_mult=0.1,0.3,1 lora_r2,lora_r8:lr_mult=0.3,1,3,10 \
         liera_r2,liera_r8:lr_mult=1,3,10,30,100 full:lr_mult=0.3,1,3,10 frozen:lr_mult=1 \
  --seeds 0 1 2 3 4 \
  --diff liera_r2-lora_r2 liera_r8-lora_r8 liera_r8-liera_r2 lora_r8-lora_r2 lora_r8-frozen \
         liera_r8-frozen norms-frozen liera_r8-norms full-liera_r8 full-lora_r8 \
  --reference frozen full \
  --work-dir work_dirs/transfer_cls_study --out-dir projects/liera_study/results/transfer_cls_study "$@"
