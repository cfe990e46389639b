#!/usr/bin/env bash
# The transfer study of projects/liera_study/docs/study.md (12 arms, lr_mult chosen per arm on val with the 160-iteration
# schedule, then 5 paired seeds of 960 iterations on test; the 320-iteration first pass of five
# arms is projects/liera_study/results/transfer_study/first_pass_320/, whose screening runs this study takes as they are).
# Two runs at a time of one CPU thread each (--jobs 2 --threads 1: ~1.5x the runs per hour of one
# 2-thread run on this 2-core machine, projects/liera_study/tools/benchmark_lanes.sh). The thread count changes the
# last bits of every sum, so every final run has one thread; the schedule check's seed-0 runs
# (projects/liera_study/tools/transfer_schedule_check.sh, 2 threads) are not taken as finals: they show how far a
# run moves with the thread count alone. JOBS=1 THREADS=2 gives the earlier way. A final run
# saves a checkpoint every 160 iterations: one stopped mid-way (a session's end) goes on from
# its last one when the study is run again (bit-identical to a run not stopped). pissa and
# lora_norms chose 0.1, the grid's lowest value, in their first screening: by the tool's rule
# their grids reach two steps lower (0.03, 0.01).
# Resumable: run it again after a stop and it goes on; projects/liera_study/results/transfer_study/ is rewritten after
# every step. Extra arguments go to projects/liera_study/tools/compare_methods.py (e.g. --rerun).
set -euo pipefail
cd "$(dirname "$0")/../../.."
T=projects/liera_study/configs/transfer
N=960
ADD=()
for f in projects/liera_study/results/transfer_study/first_pass_320/results.json; do
  [ -f "$f" ] && ADD+=("$f")
done
exec python projects/liera_study/tools/compare_methods.py \
  $T/frozen.py $T/lora.py $T/liera_taylor.py $T/full.py $T/norms.py $T/liera_exp.py \
  $T/dora.py $T/dora_liera.py $T/pissa.py $T/pissa_liera.py $T/lora_norms.py $T/liera_norms.py \
  --grid lr_mult=0.1,0.3,1,3,10,30,100 full:lr_mult=0.1,0.3,1,3 frozen:lr_mult=1 \
         pissa,lora_norms:lr_mult=0.01,0.03,0.1,0.3,1,3,10,30,100 \
  --seeds 0 1 2 3 4 --order seed --jobs "${JOBS:-2}" --threads "${THREADS:-1}" \
  --final-cfg-options train_cfg.max_iters=$N param_scheduler.1.end=$N \
                      default_hooks.checkpoint.interval=160 \
  --diff liera_taylor-lora liera_exp-lora liera_exp-liera_taylor dora_liera-dora \
         pissa_liera-pissa liera_norms-lora_norms lora-frozen liera_taylor-frozen norms-frozen \
         full-liera_taylor full-lora liera_taylor-norms lora-norms \
         liera_exp-frozen dora-frozen dora_liera-frozen pissa-frozen pissa_liera-frozen \
         lora_norms-frozen liera_norms-frozen \
         full-norms full-liera_exp full-dora full-dora_liera full-pissa full-pissa_liera \
         full-lora_norms full-liera_norms dora-lora pissa-lora \
  --reference frozen full ${ADD[@]+--add-runs "${ADD[@]}"} \
  --work-dir work_dirs/transfer_study_$N --out-dir projects/liera_study/results/transfer_study "$@"
