#!/usr/bin/env bash
# The rank study of projects/liera_study/docs/study.md on this machine (the CPU counterpart of .dev/gpu/gpu_study.sh's
# rank lanes): LoRA and LieRA Taylor at ranks 2 and 32 beside the study's rank 8, 3 paired
# seeds of the study's 960-iteration finals, mAP against trainable parameters. Each rank gets
# its own backbone lr_mult on val (alpha = 2r keeps alpha/r fixed, so an Adam step of the
# factors moves ΔW further the higher the rank): three values around rank 8's choice (LoRA 0.3,
# LieRA 10) scaled by 8/r, extended by the tool's edge rule where the best lay at an end
# (lora_r32: 0.03 was the lowest of 0.03 / 0.1 / 0.3, so 0.01 was added). Rank 8, frozen
# and full are the main study's runs (--add-runs projects/liera_study/results/transfer_study/results.json: same
# configs, options and thread count, so nothing of them trains again): run it once
# projects/liera_study/tools/transfer_study.sh has seeds 0-2 of those four arms.
# Resumable like the study (run it again after a stop); two 1-thread runs at a time.
set -euo pipefail
cd "$(dirname "$0")/../../.."
T=projects/liera_study/configs/transfer
N=960
ADD=()
for f in projects/liera_study/results/transfer_study/results.json projects/liera_study/results/transfer_study/first_pass_320/results.json; do
  [ -f "$f" ] && ADD+=("$f")
done
exec python projects/liera_study/tools/compare_methods.py \
  $T/frozen.py $T/lora_r2.py $T/lora.py $T/lora_r32.py \
  $T/liera_taylor_r2.py $T/liera_taylor.py $T/liera_taylor_r32.py $T/full.py \
  --grid lr_mult=0.1,0.3,1,3,10,30,100 full:lr_mult=0.1,0.3,1,3 frozen:lr_mult=1 \
         lora_r2:lr_mult=0.3,1,3 lora_r32:lr_mult=0.01,0.03,0.1,0.3 \
         liera_taylor_r2:lr_mult=10,30,100 liera_taylor_r32:lr_mult=1,3,10 \
  --seeds 0 1 2 --order seed --jobs "${JOBS:-2}" --threads "${THREADS:-1}" \
  --final-cfg-options train_cfg.max_iters=$N param_scheduler.1.end=$N \
                      default_hooks.checkpoint.interval=160 \
  --diff liera_taylor_r2-lora_r2 liera_taylor-lora liera_taylor_r32-lora_r32 \
         lora_r32-lora lora-lora_r2 liera_taylor_r32-liera_taylor liera_taylor-liera_taylor_r2 \
  --reference frozen full ${ADD[@]+--add-runs "${ADD[@]}"} \
  --work-dir work_dirs/transfer_rank_$N --out-dir projects/liera_study/results/transfer_study/rank_$N "$@"
