#!/usr/bin/env bash
# The whole-detector study (docs/whole_detector.md): the demo's pre-trained Mask R-CNN adapted
# whole to the transfer task (projects/liera_study/configs/transfer/whole_*.py: heads retrained with the backbone
# frozen, LoRA and LieRA factors in every part, full fine-tuning), the searched value chosen
# per arm on val (seed 0; adapters: lr_mult of the factors; the others: the base lr), then 5
# paired seeds on test, the same schedule as the backbone study's final runs.
# Resumable: run it again after a stop and it goes on; projects/liera_study/results/whole_detector_study/ is rewritten
# after every step. Extra arguments go to projects/liera_study/tools/compare_methods.py (e.g. --rerun).
set -euo pipefail
cd "$(dirname "$0")/../../.."
T=projects/liera_study/configs/transfer
exec python projects/liera_study/tools/compare_methods.py \
  $T/whole_frozen.py $T/whole_lora.py $T/whole_liera.py $T/whole_full.py \
  --grid whole_lora:lr_mult=0.1,0.3,1,3,10 whole_liera:lr_mult=1,3,10,30,100 \
         whole_frozen,whole_full:lr=0.0001,0.0003,0.001,0.003 \
  --seeds 0 1 2 3 4 --order method \
  --final-cfg-options train_cfg.max_iters=320 param_scheduler.1.end=320 \
                      default_hooks.checkpoint.interval=320 \
  --diff whole_liera-whole_lora whole_lora-whole_frozen whole_liera-whole_frozen \
         whole_full-whole_liera whole_full-whole_lora \
  --reference whole_frozen whole_full \
  --work-dir work_dirs/whole_detector_study --out-dir projects/liera_study/results/whole_detector_study "$@"
