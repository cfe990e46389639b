#!/usr/bin/env bash
# bash tools/dist_run.sh SCRIPT NPROC_PER_NODE [args]: torchrun SCRIPT (dist_train.sh and
# dist_test.sh call this). NNODES, NODE_RANK, MASTER_ADDR, PORT come from the environment.
#
# When a rank dies, torchrun stops the other ranks and exits non-zero, but the data-loader
# workers of a rank killed with SIGKILL are orphans it does not see. Every process of the job
# carries MMLIERA_JOB=<id> in its environment; whatever of it is still alive when torchrun has
# returned (or when this script is interrupted) is stopped: SIGTERM, then SIGKILL after 5 s.
set -u
SCRIPT=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
JOB="$(hostname)-$$-$(date +%s%N)"

# Several "nodes" on this very machine (MASTER_ADDR loopback) share its cores: without a
# thread count each process would use all of them and the job would crawl.
case "$MASTER_ADDR" in
  127.*|localhost|::1)
    if [ "$NNODES" -gt 1 ] && [ -z "${OMP_NUM_THREADS:-}" ]; then
      CORES=$(nproc 2>/dev/null || echo 1)
      THREADS=$(( CORES / (NNODES * NPROC) ))
      export OMP_NUM_THREADS=$(( THREADS > 0 ? THREADS : 1 ))
      echo "dist_run.sh: $NNODES nodes on this machine: OMP_NUM_THREADS=$OMP_NUM_THREADS" >&2
    fi ;;
esac

job_pids() {
  [ -d /proc/self ] || return 0
  grep -lsxz "MMLIERA_JOB=$JOB" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
}

stop_leftovers() {
  local pids
  pids=$(job_pids)
  [ -z "$pids" ] && return 0
  echo "dist_run.sh: stopping $(echo $pids | wc -w) leftover process(es) of the job:" $pids >&2
  kill -TERM $pids 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    sleep 0.5
    pids=$(job_pids)
    [ -z "$pids" ] && return 0
  done
  kill -KILL $pids 2>/dev/null
  return 0
}

MMLIERA_JOB=$JOB PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
python -m mmliera.cli.torchrun \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$SCRIPT" "${@:3}" &
LAUNCHER=$!
trap 'kill -TERM $LAUNCHER 2>/dev/null' INT TERM HUP
RC=0
wait $LAUNCHER || RC=$?
while kill -0 $LAUNCHER 2>/dev/null; do  # a trapped signal ends `wait` early: wait again
  RC=0
  wait $LAUNCHER || RC=$?
done
stop_leftovers
exit $RC
