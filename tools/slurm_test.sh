#!/usr/bin/env bash
# mmdet's tools/slurm_test.sh for this repo's tools/test.py (works from any folder):
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#   bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]

if [ $# -lt 4 ]; then
  echo "usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] bash" \
    "tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]" >&2
  exit 2
fi

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFIG=$3
CHECKPOINT=$4
exec bash "$TOOLS/slurm_run.sh" "$1" "$2" \
    "$TOOLS/test.py" "${CONFIG}" "${CHECKPOINT}" \
    --launcher="slurm" "${@:5}"
