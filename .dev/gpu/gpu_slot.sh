#!/usr/bin/env bash
# One GPU slot in one command, on a CUDA machine without a package registry (the device machine:
# Python 3.12 with a CUDA 13 torch, nvcc, 16 cores): set the stack up from a carried kit, then
# run .dev/gpu/gpu_checks.sh, all within a time budget, and leave what must come back in OUT.
#
#   bash .dev/gpu/gpu_slot.sh KIT OUT [BUDGET_S]
#   bash .dev/gpu/gpu_slot.sh --plan                # the steps, in order, with their time caps
#
# KIT: made on a machine with PyPI by `bash .dev/gpu/gpu_kit.sh KIT [MMCV_WHEEL]`. An mmcv wheel
#      in KIT (whole, or as pieces mmcv-*.whl.partNN that are joined first) is installed when
#      its CUDA ops load; else mmcv 2.1.0 is built from KIT's source with all cores, for the
#      GPU's architecture (TORCH_CUDA_ARCH_LIST, default 9.0), by tools/setup_env.sh.
# OUT: summary.txt (every step: exit status, seconds), results.tar.gz (every log, the versions,
#      the benchmark tables), and after a build the new wheel in pieces of at most 15 MiB
#      (mmcv-*.whl.part00, ...): put them in KIT and the next slot skips the build.
# BUDGET_S (default 540): seconds this command may take in all; the checks are cut to it.
# The device slot (15 minutes, start-up included, at most 10 a command) is planned as: start-up
# and transfers 3 min + this command 9 min = 12 min, leaving 3 min of margin.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# name | cap (s) | what
STEPS="kit|60|install KIT's wheels (.dev/gpu/gpu_kit.txt, --no-index --no-deps) and mmliera (editable)
stack|420|tools/setup_env.sh offline: torch kept, mmcv from KIT's wheel (~30 s) or built (~6 min)
checks|rest|.dev/gpu/gpu_checks.sh, in its order, each step cut to what is left (45 s kept for pack)
pack|15|summary.txt, results.tar.gz, wheel pieces into OUT"
DEVICE_SLOT_S=900    # the device's time per session, start-up included
COMMAND_LIMIT_S=600  # the device's limit per command
START_UP_S=180       # the device machine's start and the transfers, outside this command
SLOT_S=720           # what the plan may use of DEVICE_SLOT_S

if [ "${1:-}" = --plan ]; then
  budget=${2:-540}
  echo "device slot: start-up and transfers ${START_UP_S} s + this command ${budget} s = $((START_UP_S + budget)) s (plan at most ${SLOT_S} s)"
  while IFS='|' read -r name cap what; do
    printf '%-7s %5s s  %s\n' "$name" "$cap" "$what"
  done <<< "$STEPS"
  echo 'checks:'
  bash "$ROOT/.dev/gpu/gpu_checks.sh" --plan | sed 's/^/  /'
  exit 0
fi

die() { echo "error: $*" >&2; exit 1; }
KIT=${1:?usage: bash .dev/gpu/gpu_slot.sh KIT OUT [BUDGET_S] | --plan}
OUT=${2:?usage: bash .dev/gpu/gpu_slot.sh KIT OUT [BUDGET_S] | --plan}
BUDGET=${3:-540}
case "$BUDGET" in ''|*[!0-9]*) die "BUDGET_S '$BUDGET' is not a number of seconds" ;; esac
[ -d "$KIT" ] || die "no kit folder '$KIT': make it with 'bash .dev/gpu/gpu_kit.sh $KIT' on a machine with PyPI"
[ -f "$ROOT/.dev/gpu/gpu_kit.txt" ] || die ".dev/gpu/gpu_kit.txt is missing from the checkout"
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || die "no '$PY' here: set PYTHON to the interpreter that has torch"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || \
  die "torch sees no CUDA device here: .dev/gpu/gpu_slot.sh is for a GPU machine (on a CPU machine run bash tools/setup_env.sh)"
T0=$(date +%s)
DEADLINE=$((T0 + BUDGET))
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
KIT=$(cd "$KIT" && pwd)
LOGS=/tmp/gpu_slot_logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1 PYTHON=$PY PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
note "gpu_slot: $(date -u '+%F %T UTC'), budget $BUDGET s, kit $(du -sh "$KIT" | cut -f1)"

# the kit as one flat folder (pieces joined), for --find-links and MMLIERA_WHEELS
FLAT=/tmp/gpu_slot_kit
rm -rf "$FLAT"
mkdir -p "$FLAT"
for f in "$KIT"/*; do
  case "$f" in *.part[0-9][0-9]) ;; *) ln -s "$f" "$FLAT/" ;; esac
done
for first in "$KIT"/*.whl.part00; do
  [ -f "$first" ] || continue
  whl=$(basename "${first%.part00}")
  cat "${first%.part00}".part[0-9][0-9] > "$FLAT/$whl"
  note "joined $(ls "${first%.part00}".part[0-9][0-9] | wc -l) pieces into $whl"
done
export PIP_FIND_LINKS=$FLAT

run_step() {  # run_step NAME CAP COMMAND: bounded by CAP and the deadline, logged
  local name=$1 cap=$2 t0=$SECONDS rc left
  left=$((DEADLINE - $(date +%s) - 30))
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -lt 10 ]; then
    note "== $name: skipped (no time left)"
    return 124
  fi
  note "== $name (at most $cap s)"
  timeout --kill-after=5 "$cap" bash -c "$3" > "$LOGS/$name.log" 2>&1 < /dev/null
  rc=$?
  note "   exit $rc$([ $rc -eq 124 ] && echo ' (timed out)'), $((SECONDS - t0)) s"
  tail -n 15 "$LOGS/$name.log"
  return $rc
}

export ROOT PY FLAT
KIT_CMD='mapfile -t specs < <(grep -v "^#" "$ROOT/.dev/gpu/gpu_kit.txt" | grep .)
"$PY" -m pip install -q --no-deps --no-compile "${specs[@]}" &&
  "$PY" -m pip install -q --no-deps --no-build-isolation --use-pep517 -e "$ROOT"'
STACK_CMD='MMLIERA_TARGET=cuda MMLIERA_WHEELS="$FLAT" MMLIERA_WHEEL_OUT=/tmp/gpu_slot_wheel \
  TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
  bash "$ROOT/tools/setup_env.sh"'

status=0
rm -rf /tmp/gpu_slot_wheel
run_step kit 60 "$KIT_CMD" || status=1
if [ $status -eq 0 ]; then
  run_step stack 420 "$STACK_CMD" || status=1
fi
if [ $status -eq 0 ]; then
  note "== checks: $((DEADLINE - $(date +%s) - 45)) s left"
  GPU_CHECKS_DEADLINE=$((DEADLINE - 45)) bash "$ROOT/.dev/gpu/gpu_checks.sh" "$LOGS/checks" \
    > "$LOGS/checks.log" 2>&1 < /dev/null
  rc=$?
  sed 's/^/   /' "$LOGS/checks/summary.txt" >> "$SUMMARY" 2>/dev/null
  note "   checks: exit $rc"
  [ $rc -ne 0 ] && status=$rc
fi

# pack: the new wheel in pieces (a GPU run's files come back at most 16 MiB each), the logs
for whl in /tmp/gpu_slot_wheel/mmcv-*.whl; do
  [ -f "$whl" ] || continue
  split -b 15M -d -a 2 "$whl" "$OUT/$(basename "$whl").part"
  note "built wheel: $(basename "$whl") ($(du -h "$whl" | cut -f1)) in $(ls "$OUT"/*.part* | wc -l) pieces"
done
note "total: $(( $(date +%s) - T0 )) s, exit $status"
cp "$SUMMARY" "$LOGS/"
tar czf "$OUT/results.tar.gz" -C "$LOGS" . 2>/dev/null
exit $status
