#!/usr/bin/env bash
# Make the kit that .dev/gpu/gpu_slot.sh installs on a GPU machine without a package registry
# (Python 3.12, a CUDA 13 torch already there): run on a machine that reaches PyPI.
#
#   bash .dev/gpu/gpu_kit.sh KIT [MMCV_WHEEL ...]
#
# KIT gets: the wheels of the OpenMMLab stack and the small packages it imports that such
# an image lacks (for CPython 3.12, manylinux x86_64), mmcv 2.1.0's source (built there when no
# mmcv wheel comes along), and each MMCV_WHEEL given (an mmcv 2.1.0 wheel with CUDA ops built
# for that machine's Python and torch, e.g. by `MMLIERA_WHEEL_OUT=DIR bash tools/setup_env.sh`
# in a Python 3.12 venv with that torch; or the pieces a GPU run brought back: give *.whl.part00).
# Pinned: transformers 4.46 with the tokenizers / huggingface-hub it accepts (transformers 5
# breaks `import mmpretrain.models`), setuptools < 81 (mmengine imports pkg_resources) and
# setuptools < 70 for mmcv's setup.py. About 25 MB without an mmcv wheel.
set -euo pipefail
KIT=${1:?usage: bash .dev/gpu/gpu_kit.sh KIT [MMCV_WHEEL ...]}
shift
PY=${PYTHON:-python}
mkdir -p "$KIT"
# one list (.dev/gpu/gpu_kit.txt), shared with .dev/gpu/gpu_slot.sh, which installs exactly these;
# setuptools < 70 only for mmcv's setup.py (setup_env.sh gives it to the build alone)
mapfile -t WHEELS < <(grep -v '^#' "$(dirname "${BASH_SOURCE[0]}")/gpu_kit.txt" | grep .)
plat=(--python-version 3.12 --implementation cp --only-binary=:all: --no-deps
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64)
"$PY" -m pip download -q --disable-pip-version-check -d "$KIT" "${plat[@]}" "${WHEELS[@]}"
"$PY" -m pip download -q --disable-pip-version-check -d "$KIT" "${plat[@]}" "setuptools<70"
# mmcv's source: a plain download (pip would need torch to prepare its metadata)
[ -f "$KIT/mmcv-2.1.0.tar.gz" ] || "$PY" -m pip download -q --disable-pip-version-check \
  -d "$KIT" --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 2>/dev/null || \
  [ -f "$KIT/mmcv-2.1.0.tar.gz" ] || { echo "error: could not download mmcv-2.1.0.tar.gz into $KIT" >&2; exit 1; }
# each mmcv wheel (or the pieces of one: give NAME.whl.part00) goes in whole, its members
# recompressed with LZMA (pip reads any zip method; the CUDA build's 108 MB library packs to
# 18 MB instead of 37 MB, which keeps checkout + kit under the device's 64 MiB of carry)
for w in "$@"; do
  case "$w" in *.whl.part00) pieces=("${w%.part00}".part[0-9][0-9]); w=${w%.part00} ;; *) pieces=() ;; esac
  [ -f "$w" ] || [ ${#pieces[@]} -gt 0 ] || { echo "error: $w: no such mmcv wheel" >&2; exit 1; }
  "$PY" - "$w" "$KIT/$(basename "$w")" "${pieces[@]}" <<'PY'
import io, os, sys, zipfile
src, dst, pieces = sys.argv[1], sys.argv[2], sys.argv[3:]
data = b''.join(open(p, 'rb').read() for p in pieces) if pieces else open(src, 'rb').read()
with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(dst + '.tmp', 'w') as zout:
    for info in zin.infolist():
        zout.writestr(info, zin.read(info.filename), compress_type=zipfile.ZIP_LZMA)
os.replace(dst + '.tmp', dst)
PY
done
du -sh "$KIT"
ls "$KIT"
