#!/usr/bin/env bash
# bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]   (CPUs with gloo without CUDA)
# NNODES, NODE_RANK, MASTER_ADDR, PORT come from the environment (see tools/dist_train.sh).
CONFIG=${1:-}
CHECKPOINT=${2:-}
GPUS=${3:-}
if [ -z "$CONFIG" ] || [ -z "$CHECKPOINT" ] || [ -z "$GPUS" ]; then
  echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_run.sh" "$(dirname "$0")/test.py" "$GPUS" "$CONFIG" \
    "$CHECKPOINT" --launcher pytorch "${@:4}"
