#!/usr/bin/env bash
# mmdet's tools/slurm_train.sh for this repo's tools/train.py (works from any folder):
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# e.g. GPUS=16 bash tools/slurm_train.sh gpu liera configs/liera_maskrcnn_convnextv2.py \
#        work_dirs/liera_maskrcnn_convnextv2 --auto-scale-lr

if [ $# -lt 4 ]; then
  echo "usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] bash" \
    "tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFIG=$3
WORK_DIR=$4
exec bash "$TOOLS/slurm_run.sh" "$1" "$2" \
    "$TOOLS/train.py" "${CONFIG}" --work-dir="${WORK_DIR}" \
    --launcher="slurm" "${@:5}"
