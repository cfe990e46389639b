#!/usr/bin/env bash
# bash tools/slurm_run.sh PARTITION JOB_NAME SCRIPT [args]: mmdet's srun command for SCRIPT
# (slurm_train.sh and slurm_test.sh call this). GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5
# SRUN_ARGS="" by default; SCRIPT args should include --launcher=slurm.
set -x

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

PYTHONPATH="$TOOLS/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "${SCRIPT}" "${@:4}"
