#!/usr/bin/env bash
# bash tools/dist_train.sh CONFIG GPUS [train.py args]   (CPUs with gloo when there is no CUDA)
# NNODES, NODE_RANK, MASTER_ADDR, PORT come from the environment, e.g. two nodes:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 bash tools/dist_train.sh CONFIG 8   # on node0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 bash tools/dist_train.sh CONFIG 8   # on node1
# Exits non-zero soon after any rank dies, leaving no process of the job (tools/dist_run.sh).
CONFIG=${1:-}
GPUS=${2:-}
if [ -z "$CONFIG" ] || [ -z "$GPUS" ]; then
  echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py args]" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_run.sh" "$(dirname "$0")/train.py" "$GPUS" "$CONFIG" \
    --launcher pytorch "${@:3}"
