#!/usr/bin/env bash
# One final run of the transfer study made again by hand, with the plain tools (tools/train.py,
# tools/test.py) instead of projects/liera_study/tools/compare_methods.py, then set beside the study's record of it
# (projects/liera_study/results/transfer_study/results.json): the issue's check that the tool's figures are what a
# user gets. Same config, options, seed and thread count (1) as the study's final runs.
#   projects/liera_study/tools/transfer_by_hand.sh [ARM] [SEED]     (default: liera_taylor 0; LR=... to set the
#   backbone's lr_mult instead of the study's choice)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ARM=${1:-liera_taylor}
SEED=${2:-0}
RESULTS=${RESULTS:-projects/liera_study/results/transfer_study/results.json}
CONFIG=projects/liera_study/configs/transfer/$ARM.py
if [ ! -f "$CONFIG" ]; then
  echo "error: $CONFIG does not exist; pass an arm of projects/liera_study/configs/transfer/ (e.g. liera_taylor)" >&2
  exit 1
fi
# the arm's chosen multiplier: that of its final runs, or the one grid.md marks chosen
LR=${LR:-$(python - "$RESULTS" "$ARM" <<'EOF'
import json, os, re, sys
results, arm = sys.argv[1:]
runs = json.load(open(results))['runs']
chosen = {r['setting_label'] for r in runs
          if r['method'] == arm and r.get('final') and r.get('phase') == 'final'}
grid = os.path.join(os.path.dirname(results), 'grid.md')
if not chosen and os.path.isfile(grid):
    found = re.findall(rf'^\| {re.escape(arm)} \| (\S+) \|.*\*\*chosen\*\*', open(grid).read(), re.M)
    chosen = set(found)
if len(chosen) != 1:
    sys.exit(f'error: {results} holds no single chosen setting of {arm} ({sorted(chosen)}); '
             'run projects/liera_study/tools/transfer_study.sh until its screening is done, or set LR=')
print(chosen.pop().split('=')[1])
EOF
)}
WORK=work_dirs/transfer_by_hand/$ARM/seed_$SEED
OPTS="train_cfg.max_iters=960 param_scheduler.1.end=960 default_hooks.checkpoint.interval=160
      optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult=$LR randomness.seed=$SEED"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# shellcheck disable=SC2086
python tools/train.py "$CONFIG" --work-dir "$WORK" --resume --cfg-options $OPTS
# shellcheck disable=SC2086
python tools/test.py "$CONFIG" "$WORK/iter_960.pth" --work-dir "$WORK/test" --cfg-options $OPTS
python - "$RESULTS" "$ARM" "$SEED" "$WORK/test" <<'EOF'
import sys
from projects.liera_study.liera_study.compare.runs import test_metrics
import json
results, arm, seed, test_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
mine = test_metrics(test_dir)
rec = [r for r in json.load(open(results))['runs'] if r['method'] == arm and r['seed'] == seed
       and r.get('final') and r.get('phase') == 'final' and r['status'] == 'ok']
print(f'by hand: {arm} seed {seed}: test bbox mAP {mine["bbox_mAP"]:.3f} segm mAP '
      f'{mine["segm_mAP"]:.3f}')
if rec:
    r = rec[0]
    print(f'the study: bbox {r["bbox_mAP"]:.3f} segm {r["segm_mAP"]:.3f}; difference bbox '
          f'{mine["bbox_mAP"] - r["bbox_mAP"]:+.3f} segm {mine["segm_mAP"] - r["segm_mAP"]:+.3f}')
else:
    print(f'the study has no tested final run of {arm} seed {seed} yet')
EOF
