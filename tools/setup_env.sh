#!/usr/bin/env bash
# One-command setup of mmliera and its whole stack into the active Python (CPython 3.11 / 3.12).
#
#   bash tools/setup_env.sh [--dry-run [--fact KEY=VALUE ...]] [--target auto|cpu|cuda]
#
# CPU machines: torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 WITH compiled ops,
# mmdet 3.3.0, mmpretrain 1.2.0, mmliera itself (editable) and the test dependencies.
# CUDA machines (a GPU visible; --target cuda on a build host without one): the same, but a
# CUDA build of torch in [2.1, 2.15) that is already installed is kept (else torch 2.14.1 is
# installed), and mmcv 2.1.0 gets CUDA ops: a prebuilt wheel when one fits, else a source
# build with MMCV_WITH_OPS=1 FORCE_CUDA=1 against that torch (needs nvcc of torch's CUDA major).
# mmcv wheels are looked for in $MMLIERA_WHEELS (default: ../shared/wheels beside the checkout);
# without one, mmcv 2.1.0 is compiled from source (10-15 minutes on 2 cores). Running it
# again is quick and changes nothing. tools/setup_plan.py makes every decision; --dry-run
# prints its plan (from detected facts, or those given with --fact) and installs nothing.
#
# Environment: PYTHON (interpreter, default `python`), MMLIERA_WHEELS (wheel folder),
#              MMLIERA_TARGET (auto, cpu or cuda; as --target),
#              MAX_JOBS (compile jobs for the source build, default: number of cores),
#              MMLIERA_WHEEL_OUT (a folder: a source-built mmcv wheel is also copied there).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python}
WHEELS=${MMLIERA_WHEELS:-$ROOT/../shared/wheels}
PIP=("$PY" -m pip install --disable-pip-version-check)

# setuptools: torch 2.14 needs >=77.0.3; mmengine 0.10.7 imports pkg_resources (gone in 81)
BUILD_TOOLS=(numpy ninja wheel "setuptools>=77.0.3,<81")
OPENMMLAB=(mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0)

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 2; }

DRY_RUN=0
PLAN_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --fact) [ $# -ge 2 ] || die "--fact needs KEY=VALUE"; PLAN_ARGS+=(--fact "$2"); shift ;;
    --fact=*) PLAN_ARGS+=("$1") ;;
    --target) [ $# -ge 2 ] || die "--target needs auto, cpu or cuda"; PLAN_ARGS+=(--target "$2"); shift ;;
    --target=*) PLAN_ARGS+=("$1") ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
               exit 0 ;;
    *) die "unknown option '$1' (use --dry-run, --fact KEY=VALUE, --target auto|cpu|cuda)" ;;
  esac
  shift
done
case "${MMLIERA_TARGET:-auto}" in
  auto|cpu|cuda) ;;
  *) die "MMLIERA_TARGET='$MMLIERA_TARGET': use auto, cpu or cuda" ;;
esac
if [ $DRY_RUN = 0 ] && printf '%s\n' "${PLAN_ARGS[@]+"${PLAN_ARGS[@]}"}" | grep -q '^--fact'; then
  die "--fact describes a machine that is not this one: use it with --dry-run only"
fi

plan() { "$PY" "$ROOT/tools/setup_plan.py" --wheels "$WHEELS" ${PLAN_ARGS[@]+"${PLAN_ARGS[@]}"} "$@"; }
load_plan() { local out; out=$(plan --shell) || exit 2; eval "$out"; }

if [ $DRY_RUN = 1 ]; then
  log "dry run: this is the plan; nothing is installed"
  plan
  exit
fi

have() {  # have "<python statement>": true when it runs cleanly (from /, so only installed
          # packages count, not the checkout in the current directory)
  (cd / && "$PY" - >/dev/null 2>&1) <<PYEOF
$1
PYEOF
}

# 1. torch (CPU: pip takes 2.14.1 from this machine's disk; elsewhere it downloads the release)
load_plan
log "target: $PLAN_TARGET"
if [ "$PLAN_TORCH" = keep ] && have "import torch, torchvision, numpy, ninja, wheel, pkg_resources"; then
  log "${PLAN_TORCH_PIN}: already installed"
else
  log "installing $PLAN_TORCH_SPEC ${BUILD_TOOLS[*]}"
  # shellcheck disable=SC2086  # the specs are words
  "${PIP[@]}" $PLAN_TORCH_SPEC "${BUILD_TOOLS[@]}"
  load_plan  # decided again from the torch now installed
fi

# 2. mmcv 2.1.0 with compiled ops (mmcv._ext must load against this torch; on CUDA, with CUDA).
MMCV_OK="import mmcv
assert mmcv.__version__ == '2.1.0'
from mmcv.utils import ext_loader
ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
assert '$PLAN_TARGET' == 'cpu' or ext.get_compiling_cuda_version() != 'not available'"
MMCV_DEPS="import mmengine, cv2, addict, yapf, yaml, PIL, packaging, numpy"
install_mmcv() {  # install_mmcv PIP_ARGS...: in place of an mmcv already there (which pip
                  # removes only once the new one is ready); its dependencies only if missing
                  # (cv2 from opencv-python-headless counts, as on many CUDA images)
  if have "$MMCV_DEPS"; then
    "${PIP[@]}" --no-cache-dir --force-reinstall --no-deps "$@"
  else
    "${PIP[@]}" --no-cache-dir "$@"
  fi
}
if [ "$PLAN_MMCV" = keep ] && have "$MMCV_OK"; then
  log "mmcv 2.1.0 with compiled ops: already installed"
else
  done_mmcv=0
  for src in $PLAN_MMCV_TRY; do
    links=$src
    [ "$src" = folder ] && links=$WHEELS
    log "installing mmcv 2.1.0 from the prebuilt wheel in $links"
    if install_mmcv --find-links "$links" --only-binary mmcv mmcv==2.1.0 && have "$MMCV_OK"; then
      done_mmcv=1
      break
    fi
    log "that wheel does not fit here (its ops do not load$([ "$PLAN_TARGET" = cuda ] && echo ' or lack CUDA')); trying the next way"
  done
  if [ $done_mmcv = 0 ]; then
    log "building mmcv 2.1.0 from source, MMCV_WITH_OPS=1 FORCE_CUDA=$PLAN_FORCE_CUDA (~15 min on 2 cores for CPU ops; CUDA ops take longer)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # mmcv's setup.py imports pkg_resources (gone from recent setuptools): give the build a
    # private setuptools<70 on PYTHONPATH, leaving the environment's own setuptools alone.
    "${PIP[@]}" --target "$tmp/buildtools" "setuptools<70"
    # torch >= 2.10's headers need C++20; mmcv's setup.py passes -std=c++17 (to g++ and nvcc):
    # wrappers swap it for the standard torch uses (PLAN_CXX_STD).
    for tool in cxx nvcc; do
      real=${MMLIERA_REAL_CXX:-g++}
      [ $tool = nvcc ] && real=${PLAN_NVCC:-nvcc}
      cat > "$tmp/$tool" <<SH
#!/usr/bin/env bash
args=()
for a in "\$@"; do
  case "\$a" in -std=c++14|-std=c++17) a="-std=c++$PLAN_CXX_STD" ;; esac
  args+=("\$a")
done
exec "$real" "\${args[@]}"
SH
      chmod +x "$tmp/$tool"
    done
    links=()
    [ -d "$WHEELS" ] && links=(--find-links "$WHEELS")  # an mmcv-2.1.0.tar.gz there is used
    # build the wheel first: a failed build leaves the installed mmcv as it was
    # CUDA: CUDA_HOME is the real toolkit (torch guesses the folder above the first nvcc on PATH,
    # which may be a wrapper script); CPATH adds the cuSPARSE/cuBLAS/... headers of torch's
    # nvidia wheels where the toolkit lacks them (ATen/cuda/CUDAContextLight.h includes them).
    if [ "$PLAN_TARGET" = cuda ]; then
      [ -n "$PLAN_CUDA_HOME" ] || die "no CUDA toolkit (bin/nvcc and include/cuda_runtime.h) was found: set CUDA_HOME to it and run again"
      log "CUDA_HOME=$PLAN_CUDA_HOME${PLAN_CUDA_CPATH:+, headers also from $PLAN_CUDA_CPATH}"
    fi
    env MMCV_WITH_OPS=1 FORCE_CUDA="$PLAN_FORCE_CUDA" CXX="$tmp/cxx" PYTORCH_NVCC="$tmp/nvcc" \
      ${PLAN_CUDA_HOME:+CUDA_HOME="$PLAN_CUDA_HOME"} \
      ${PLAN_CUDA_CPATH:+CPATH="$PLAN_CUDA_CPATH${CPATH:+:$CPATH}"} \
      ${PLAN_ARCH_LIST:+TORCH_CUDA_ARCH_LIST="$PLAN_ARCH_LIST"} \
      MAX_JOBS="${MAX_JOBS:-$(nproc)}" PYTHONPATH="$tmp/buildtools${PYTHONPATH:+:$PYTHONPATH}" \
      "$PY" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation \
      --no-cache-dir --no-binary mmcv ${links[@]+"${links[@]}"} -w "$tmp/wheelhouse" mmcv==2.1.0
    if [ -n "${MMLIERA_WHEEL_OUT:-}" ]; then  # keep the built wheel (e.g. to carry elsewhere)
      mkdir -p "$MMLIERA_WHEEL_OUT" && cp "$tmp"/wheelhouse/mmcv-2.1.0-*.whl "$MMLIERA_WHEEL_OUT"/
      log "built wheel kept in $MMLIERA_WHEEL_OUT: $(cd "$tmp/wheelhouse" && ls mmcv-2.1.0-*.whl)"
    fi
    install_mmcv "$tmp"/wheelhouse/mmcv-2.1.0-*.whl
  fi
  have "$MMCV_OK" || { echo "[setup] mmcv 2.1.0 is installed but its compiled ops do not load$([ "$PLAN_TARGET" = cuda ] && echo ' with CUDA')" >&2; exit 1; }
fi

# 3. OpenMMLab packages, mmliera (editable) and the test dependencies (torch held as it is).
if have "import importlib.metadata as md, importlib.util as u, os
for n, v in [('mmengine', '0.10.7'), ('mmdet', '3.3.0'), ('mmpretrain', '1.2.0')]:
    assert md.version(n) == v
for n in ['pytest', 'pytest_timeout', 'xdist', 'safetensors', 'pycocotools', 'flake8', 'isort', 'yapf', 'seaborn', 'psutil']:
    assert u.find_spec(n) is not None
spec = u.find_spec('mmliera')
assert spec is not None and os.path.samefile(os.path.dirname(spec.origin), os.path.join('$ROOT', 'mmliera'))"; then
  log "mmengine, mmdet, mmpretrain, mmliera (editable) and test dependencies: already installed"
elif [ -n "${PIP_NO_INDEX:-}" ]; then
  # offline (a GPU slot's kit, .dev/gpu/gpu_slot.sh): the kit step installed each wheel without
  # dependencies; resolving them here would ask for distributions the image has under other
  # names (opencv-python-headless for opencv-python), so install mmliera alone and say what
  # the tests and linters would miss
  log "offline (PIP_NO_INDEX): installing mmliera (editable) without resolving dependencies"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
  "$PY" - <<'PY'
import importlib.util as u
missing = [n for n in ['pytest', 'pytest_timeout', 'xdist', 'safetensors', 'pycocotools',
                       'flake8', 'isort', 'yapf', 'seaborn', 'psutil'] if u.find_spec(n) is None]
if missing:
    print('[setup] offline: not installed here (tests or linters that need them will say so):',
          ', '.join(missing))
PY
else
  log "installing ${OPENMMLAB[*]} and mmliera (editable, with test extras)"
  # shellcheck disable=SC2086
  "${PIP[@]}" $PLAN_TORCH_PIN "${OPENMMLAB[@]}" mmcv==2.1.0 -e "$ROOT[tests,analysis]"
fi

"$PY" -c "import mmliera; print('[setup] ok: mmliera', mmliera.__version__, 'on', mmliera.environment_summary())"
