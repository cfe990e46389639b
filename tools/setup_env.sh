#!/usr/bin/env bash
# One-command setup of mmliera and its whole stack into the active Python (CPython 3.11).
#
#   bash tools/setup_env.sh
#
# Installs torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 WITH compiled ops,
# mmdet 3.3.0, mmpretrain 1.2.0, mmliera itself (editable) and the test dependencies.
# mmcv: a prebuilt wheel from $MMLIERA_WHEELS (default: ../shared/wheels beside the checkout) is
# used when one is there; otherwise mmcv 2.1.0 is compiled from source (about 15 minutes on
# 2 cores). Running it again is quick and changes nothing.
#
# Environment: PYTHON (interpreter, default `python`), MMLIERA_WHEELS (wheel folder),
#              MAX_JOBS (compile jobs for the source build, default: number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python}
WHEELS=${MMLIERA_WHEELS:-$ROOT/../shared/wheels}
PIP=("$PY" -m pip install --disable-pip-version-check)

TORCH_SPEC=(torch==2.14.1 torchvision==0.29.1)
# setuptools: torch 2.14 needs >=77.0.3; mmengine 0.10.7 imports pkg_resources (gone in 81)
BUILD_TOOLS=(numpy ninja wheel "setuptools>=77.0.3,<81")
OPENMMLAB=(mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0)

log() { printf '[setup] %s\n' "$*"; }

have() {  # have "<python statement>": true when it runs cleanly (from /, so only installed
          # packages count, not the checkout in the current directory)
  (cd / && "$PY" - >/dev/null 2>&1) <<PYEOF
$1
PYEOF
}

# 1. torch (pip takes 2.14.1 from this machine's disk; elsewhere it downloads the same release).
if have "import torch, torchvision, numpy, ninja, wheel, pkg_resources
assert torch.__version__.split('+')[0] == '2.14.1' and torchvision.__version__.split('+')[0] == '0.29.1'"; then
  log "torch 2.14.1 + torchvision 0.29.1: already installed"
else
  log "installing ${TORCH_SPEC[*]} ${BUILD_TOOLS[*]}"
  "${PIP[@]}" "${TORCH_SPEC[@]}" "${BUILD_TOOLS[@]}"
fi

# 2. mmcv 2.1.0 with compiled ops (mmcv._ext must load against this torch).
MMCV_OK="import mmcv
assert mmcv.__version__ == '2.1.0'
from mmcv.utils import ext_loader
ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])"
if have "$MMCV_OK"; then
  log "mmcv 2.1.0 with compiled ops: already installed"
else
  shopt -s nullglob
  wheels=("$WHEELS"/mmcv-2.1.0-*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -gt 0 ]; then
    log "installing mmcv 2.1.0 from the prebuilt wheel in $WHEELS"
    "${PIP[@]}" --no-cache-dir --find-links "$WHEELS" --only-binary mmcv mmcv==2.1.0
  else
    log "no prebuilt mmcv wheel in $WHEELS: building mmcv 2.1.0 from source (~15 min on 2 cores)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # mmcv's setup.py imports pkg_resources (gone from recent setuptools): give the build a
    # private setuptools<70 on PYTHONPATH, leaving the environment's own setuptools alone.
    "${PIP[@]}" --target "$tmp/buildtools" "setuptools<70"
    # torch 2.14's headers need C++20; mmcv's setup.py passes -std=c++17: swap it.
    cat > "$tmp/cxx" <<'SH'
#!/usr/bin/env bash
args=()
for a in "$@"; do
  if [ "$a" = "-std=c++17" ]; then a="-std=c++20"; fi
  args+=("$a")
done
exec "${MMLIERA_REAL_CXX:-g++}" "${args[@]}"
SH
    chmod +x "$tmp/cxx"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 CXX="$tmp/cxx" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      PYTHONPATH="$tmp/buildtools${PYTHONPATH:+:$PYTHONPATH}" \
      "${PIP[@]}" --no-build-isolation --no-cache-dir --no-binary mmcv mmcv==2.1.0
  fi
  have "$MMCV_OK" || { echo "[setup] mmcv 2.1.0 is installed but its compiled ops do not load" >&2; exit 1; }
fi

# 3. OpenMMLab packages, mmliera (editable) and the test dependencies.
if have "import importlib.metadata as md, importlib.util as u, os
for n, v in [('mmengine', '0.10.7'), ('mmdet', '3.3.0'), ('mmpretrain', '1.2.0')]:
    assert md.version(n) == v
for n in ['pytest', 'safetensors', 'pycocotools']:
    assert u.find_spec(n) is not None
spec = u.find_spec('mmliera')
assert spec is not None and os.path.samefile(os.path.dirname(spec.origin), os.path.join('$ROOT', 'mmliera'))"; then
  log "mmengine, mmdet, mmpretrain, mmliera (editable) and test dependencies: already installed"
else
  log "installing ${OPENMMLAB[*]} and mmliera (editable, with test extras)"
  "${PIP[@]}" "${TORCH_SPEC[@]}" "${OPENMMLAB[@]}" mmcv==2.1.0 -e "$ROOT[tests]"
fi

"$PY" -c "import mmliera; print('[setup] ok: mmliera', mmliera.__version__, 'on', mmliera.environment_summary())"
