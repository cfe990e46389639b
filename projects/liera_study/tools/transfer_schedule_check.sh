#!/usr/bin/env bash
# The transfer study's second schedule check (projects/liera_study/docs/study.md, "Is 320 long enough?"): the five
# arms with finished 320-iteration finals, each at the multiplier its screening chose, seed 0,
# trained for ITERS iterations (default 640) and tested. Resumable like the study; the runs'
# records can later join the study with --add-runs when their schedule is chosen.
set -euo pipefail
cd "$(dirname "$0")/../../.."
T=projects/liera_study/configs/transfer
N=${ITERS:-640}
exec python projects/liera_study/tools/compare_methods.py \
  $T/full.py $T/lora.py $T/liera_taylor.py $T/norms.py $T/frozen.py \
  --grid lora,norms:lr_mult=0.3 liera_taylor:lr_mult=10 full,frozen:lr_mult=1 \
  --seeds 0 --order method \
  --final-cfg-options train_cfg.max_iters=$N param_scheduler.1.end=$N \
                      default_hooks.checkpoint.interval=$N \
  --reference frozen full \
  --work-dir work_dirs/transfer_schedule_$N --out-dir projects/liera_study/results/transfer_study/schedule_$N "$@"
