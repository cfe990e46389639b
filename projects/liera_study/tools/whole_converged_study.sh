#!/usr/bin/env bash
# The whole-detector study at convergence (projects/liera_study/docs/whole_detector_study.md,
# "At convergence"): the arms of transfer_whole_study.sh at 960 iterations (val every 80), each
# setting chosen at that schedule on the mean val bbox of 2 seeds, then 5 paired seeds; every
# screening run of seeds 0 and 1 is tested right after it trains, sealed (--test-screening: a
# session's end takes the checkpoints; only the chosen setting's figures are ever read).
#
#   projects/liera_study/tools/whole_converged_study.sh PHASE [compare_methods options]
#
# PHASE (all phases share one record, projects/liera_study/results/whole_detector_converged/):
#   adapters   LoRA (lr_mult 0.1 0.3 1 3 10: 0.3 won seed 0 at the edge) and LieRA (3 10 30),
#              then their finals
#   fair       the fair chances, anchored at each adapter arm's pick p (set LORA_P and LIERA_P):
#              split: the backbone's factors at p, the neck's and heads' one or two steps lower
#              on the 1-3-10 ladder (p itself is the adapter arm); warmup (100 iterations):
#              lr_mult p or one step higher
#   reference  heads only and full fine-tuning, lr 1e-4 3e-4 1e-3 3e-3
#   report     every arm's tables and pairs again from the records (--report-only)
# A pick at a grid's edge: extend that arm's grid here and run the phase again (done runs are
# kept). Resumable: run it again after a stop. Two 1-thread runs side by side (the 2-core CPU).
set -euo pipefail
cd "$(dirname "$0")/../../.."
T=projects/liera_study/configs/transfer
phase=${1:?usage: $0 adapters|fair|reference|report [compare_methods options]}
shift
common=(--seeds 0 1 2 3 4 --screen-seeds 0 1 --test-screening --jobs 2 --threads 1
  --cfg-options train_cfg.max_iters=960 param_scheduler.1.end=960
                default_hooks.checkpoint.interval=160
  --work-dir work_dirs/whole_detector_converged
  --out-dir projects/liera_study/results/whole_detector_converged)
adapters=($T/whole_lora.py $T/whole_liera.py)
adapter_grid=(whole_lora:lr_mult=0.1,0.3,1,3,10 whole_liera:lr_mult=3,10,30)
ref=($T/whole_frozen.py $T/whole_full.py)
ref_grid=(whole_frozen,whole_full:lr=0.0001,0.0003,0.001,0.003)
fair=($T/whole_lora_split.py $T/whole_liera_split.py $T/whole_lora_warmup.py
  $T/whole_liera_warmup.py)
split_key=optim_wrapper.paramwise_cfg.custom_keys
fair_grid() {  # the fair-chance grids from the adapter arms' picks
  local lp=${LORA_P:?set LORA_P (the LoRA arm pick)} ep=${LIERA_P:?set LIERA_P (the LieRA arm pick)}
  python - "$lp" "$ep" <<'EOF'
import sys
ladder = [round(m * 10.0**e, 6) for e in range(-3, 4) for m in (1, 3)]  # ... 0.3 1 3 10 ...
def step(x, k):  # k steps along the ladder from x
    return f'{ladder[ladder.index(round(x, 6)) + k]:g}'
for name, p in (('lora', float(sys.argv[1])), ('liera', float(sys.argv[2]))):
    print(f'whole_{name}_split:optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult='
          f'{step(p, 0)} whole_{name}_split:optim_wrapper.paramwise_cfg.custom_keys.lora_.'
          f'lr_mult={step(p, -2)},{step(p, -1)} whole_{name}_warmup:lr_mult={step(p, 0)},'
          f'{step(p, 1)}')
EOF
}
case $phase in
  adapters)
    exec python projects/liera_study/tools/compare_methods.py "${adapters[@]}" \
      --grid "${adapter_grid[@]}" --diff whole_liera-whole_lora "${common[@]}" "$@" ;;
  fair)
    # shellcheck disable=SC2207
    grid=($(fair_grid))
    exec python projects/liera_study/tools/compare_methods.py "${fair[@]}" --grid "${grid[@]}" \
      --diff whole_liera_split-whole_lora_split whole_liera_warmup-whole_lora_warmup \
      "${common[@]}" "$@" ;;
  reference)
    exec python projects/liera_study/tools/compare_methods.py "${ref[@]}" --grid "${ref_grid[@]}" \
      --diff whole_full-whole_frozen "${common[@]}" "$@" ;;
  report)
    # shellcheck disable=SC2207
    grid=($(fair_grid))
    exec python projects/liera_study/tools/compare_methods.py "${ref[@]:0:1}" "${adapters[@]}" \
      "${fair[@]}" "${ref[@]:1:1}" --grid "${adapter_grid[@]}" "${ref_grid[@]}" "${grid[@]}" \
      --diff whole_liera-whole_lora whole_liera_split-whole_lora_split \
             whole_liera_warmup-whole_lora_warmup whole_lora-whole_frozen \
             whole_liera-whole_frozen whole_full-whole_liera whole_full-whole_lora \
      --reference whole_frozen whole_full "${common[@]}" --report-only "$@" ;;
  *)
    echo "error: unknown phase '$phase': use adapters, fair, reference or report" >&2
    exit 1 ;;
esac
