"""What ``tools/setup_env.sh`` will install on this machine, decided from facts it detects.

    python tools/setup_plan.py [--fact KEY=VALUE ...] [--target auto|cpu|cuda] [--shell]

(About 400 lines, one concept: the install decision table and the fact detection it needs, kept
apart from the shell script so that it can be tested.)

``bash tools/setup_env.sh --dry-run`` prints this plan and installs nothing; ``--shell`` prints
it as shell variables (``PLAN_*``) for the script. Facts (each detected unless given):

  python       X.Y of the interpreter                     torch        version or none
  torch_cuda   CUDA of the torch build, or none            torchvision  version or none
  torch_cxx    C++ standard torch's extensions use (17/20) gpu          yes / no
  nvcc         CUDA toolkit version (CUDA_HOME, PATH), or none
  mmcv         installed version or none                   mmcv_ops     none / cpu / CUDA version
  wheels       mmcv-2.1.0 wheel files in the wheel folder (comma-separated) or none

Rules. The target is CUDA when a GPU is visible; ``--target cuda`` (``MMLIERA_TARGET=cuda``)
builds CUDA ops on a machine without one (for ``TORCH_CUDA_ARCH_LIST``, else Turing to Hopper).
CPU: torch 2.14.1 + torchvision 0.29.1 exactly, as always. CUDA: a CUDA build of torch in
[2.1, 2.15) is kept (a missing torchvision gets its matching release); a missing, CPU-only or
unsupported torch is replaced by torch 2.14.1 (PyPI's Linux build, CUDA 13.0). mmcv 2.1.0 is
kept when its ops load (on CUDA: built with torch's CUDA major); else a prebuilt wheel (the
wheel folder; OpenMMLab's index for torch 2.1 + CUDA 11.8/12.1), verified after install, else a
source build with ``MMCV_WITH_OPS=1 FORCE_CUDA=1`` (CPU: 0), which needs nvcc of torch's CUDA
major. Only the standard library is used: it runs before anything is installed.
"""
import argparse
import functools
import glob
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys

CPU_TORCH = ('2.14.1', '0.29.1')
DEFAULT_CUDA_TORCH = ('2.14.1', '0.29.1', '13.0', '20')  # torch, torchvision, CUDA, C++ std
SUPPORTED_CUDA_TORCH = ((2, 1), (2, 15))  # [low, high) of torch (major, minor) kept on CUDA
OPENMMLAB_INDEX = 'https://download.openmmlab.com/mmcv/dist/cu{cu}/torch{torch}/index.html'
OPENMMLAB_WHEELS = {('2.1', '11.8'), ('2.1', '12.1')}  # mmcv 2.1.0 wheels, CPython <= 3.11
FACTS = ('python', 'torch', 'torch_cuda', 'torch_cxx', 'torchvision', 'gpu', 'nvcc', 'mmcv',
         'mmcv_ops', 'wheels')


class PlanError(Exception):
    """The machine cannot be set up as it is; the message says what to change."""


def base(version):
    """'2.11.0+cu130' -> (2, 11, 0); None for none."""
    if version in (None, 'none'):
        return None
    return tuple(int(p) for p in re.findall(r'\d+', version.split('+')[0])[:3])


def major(cuda):
    return None if cuda in (None, 'none') else cuda.split('.')[0]


def cuda_from_tag(torch_version):
    """CUDA of a torch build from its local tag: '2.11.0+cu130' -> '13.0'; '+cpu' -> none."""
    m = re.search(r'\+cu(\d+)(\d)$', torch_version or '')
    return f'{m.group(1)}.{m.group(2)}' if m else 'none'


# ---- detection ---------------------------------------------------------------------------


def _probe(code):
    """Run ``code`` in this interpreter from / (installed packages only); its stdout or None."""
    try:
        out = subprocess.run([sys.executable, '-c', code],
                             cwd='/',
                             capture_output=True,
                             text=True,
                             timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_nvcc():
    """Path of nvcc (CUDA_HOME / CUDA_PATH, PATH, /usr/local/cuda) or None."""
    for home in (os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH')):
        if home and osp.isfile(osp.join(home, 'bin', 'nvcc')):
            return osp.join(home, 'bin', 'nvcc')
    return shutil.which('nvcc') or ('/usr/local/cuda/bin/nvcc'
                                    if osp.isfile('/usr/local/cuda/bin/nvcc') else None)


def is_toolkit(home):
    """A CUDA toolkit root: bin/nvcc and include/cuda_runtime.h under it."""
    return bool(home) and osp.isfile(osp.join(home, 'bin', 'nvcc')) and osp.isfile(
        osp.join(home, 'include', 'cuda_runtime.h'))


def find_cuda_home(nvcc=None):
    """The real toolkit root for torch's extension builder (CUDA_HOME), or ''.

    torch guesses CUDA_HOME as the folder above the first ``nvcc`` on PATH; where that is a
    wrapper script (``/usr/local/bin/nvcc`` -> ``exec /usr/local/cuda-13.0/bin/nvcc``) the
    guess has no CUDA headers. The toolkit names its own folder in ``nvcc -dryrun``
    (``#$ _HERE_=<home>/bin``), which sees through any wrapper."""
    nvcc = nvcc or find_nvcc()
    for home in (os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'), nvcc
                 and osp.dirname(osp.dirname(osp.realpath(nvcc)))):
        if is_toolkit(home):
            return osp.normpath(home)
    if nvcc:
        try:
            out = subprocess.run([nvcc, '-dryrun', '--version'],
                                 capture_output=True,
                                 text=True,
                                 timeout=60)
            m = re.search(r'^#\$ _HERE_=(.+)$', out.stdout + out.stderr, re.M)
        except (OSError, subprocess.TimeoutExpired):
            m = None
        if m and is_toolkit(osp.dirname(m.group(1).strip())):
            return osp.normpath(osp.dirname(m.group(1).strip()))
    return '/usr/local/cuda' if is_toolkit('/usr/local/cuda') else ''


# headers that torch's ATen/cuda/CUDAContextLight.h includes; a toolkit installed without its
# math libraries lacks them, while torch's own nvidia-* wheels carry them
MATH_HEADERS = ('cusparse.h', 'cublas_v2.h', 'cusolverDn.h', 'curand.h', 'cufft.h')


def find_math_includes(cuda_home, site_dirs):
    """Include folders of torch's nvidia wheels for the MATH_HEADERS that ``cuda_home`` lacks
    (``<site>/nvidia/cu13/include`` for CUDA 13, ``<site>/nvidia/<lib>/include`` for 12)."""
    have = set()
    for inc in (osp.join(cuda_home,
                         'include'), osp.join(cuda_home, 'targets', 'x86_64-linux', 'include')):
        have |= {h for h in MATH_HEADERS if osp.isfile(osp.join(inc, h))}
    dirs = []
    for site in site_dirs:
        for inc in sorted(glob.glob(osp.join(site, 'nvidia', '*', 'include'))):
            found = {h for h in MATH_HEADERS if osp.isfile(osp.join(inc, h))} - have
            if found:
                have |= found
                dirs.append(inc)
    return dirs


def torch_site_dirs():
    """site-packages folders of the interpreter whose torch builds the extension."""
    out = _probe('import site, sys; print("\\n".join(site.getsitepackages() + '
                 '[site.getusersitepackages()]))')
    return [d for d in (out or '').splitlines() if osp.isdir(d)]


@functools.lru_cache(maxsize=None)
def _torch_facts():
    """torch, torch_cuda, torch_cxx, gpu from one import of torch."""
    out = _probe('import torch, torch.utils.cpp_extension as c\n'
                 "print(torch.__version__, torch.version.cuda or 'none', "
                 "'20' if 'c++20' in open(c.__file__).read() else '17', "
                 "'yes' if torch.cuda.is_available() else 'no')")
    if out is None:  # no (working) torch: ask the driver about a GPU
        smi = shutil.which('nvidia-smi')
        gpu = smi and subprocess.run([smi, '-L'], capture_output=True).returncode == 0
        return dict(torch='none', torch_cuda='none', torch_cxx='none', gpu='yes' if gpu else 'no')
    return dict(zip(('torch', 'torch_cuda', 'torch_cxx', 'gpu'), out.split()[-4:]))


def detect(name, wheel_dir):
    """One fact about this machine, as a string."""
    if name == 'python':
        return f'{sys.version_info.major}.{sys.version_info.minor}'
    if name in ('torch', 'torch_cuda', 'torch_cxx', 'gpu'):
        return _torch_facts()[name]
    if name == 'torchvision':
        return _probe('import torchvision; print(torchvision.__version__)') or 'none'
    if name == 'nvcc':
        nvcc = find_nvcc()
        if nvcc is None:
            return 'none'
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
        m = re.search(r'release (\d+\.\d+)', out)
        return m.group(1) if m else 'none'
    if name == 'mmcv':
        return _probe('import importlib.metadata as m; print(m.version("mmcv"))') or 'none'
    if name == 'mmcv_ops':
        out = _probe('import mmcv._ext as e\nassert hasattr(e, "nms") and '
                     'hasattr(e, "roi_align_forward")\nv = e.get_compiling_cuda_version()\n'
                     'print("cpu" if v == "not available" else v)')
        return out.split()[-1] if out else 'none'
    if name == 'wheels':
        found = sorted(osp.basename(p) for p in glob.glob(osp.join(wheel_dir, 'mmcv-2.1.0-*.whl')))
        return ','.join(found) or 'none'
    raise KeyError(name)


def gather(overrides, wheel_dir):
    """Facts: the overrides, the rest detected (a torch given without torch_cuda takes the CUDA
    of its +cuXYZ tag)."""
    facts = dict(overrides)
    if 'torch' in facts and 'torch_cuda' not in facts:
        facts['torch_cuda'] = cuda_from_tag(facts['torch'])
    if 'torch' in facts and 'torch_cxx' not in facts:
        facts['torch_cxx'] = '20' if (base(facts['torch']) or (0, )) >= (2, 10) else '17'
    if facts.get('torch') == 'none':
        facts.setdefault('torchvision', 'none')
    for name in FACTS:
        if name not in facts:
            facts[name] = detect(name, wheel_dir)
    return facts


# ---- the plan ----------------------------------------------------------------------------


def make_plan(facts, target='auto'):
    """dict: target, torch (keep/install), torch_pin, mmcv (keep/build), mmcv_try (prebuilt
    sources to try before a source build), force_cuda, cxx_std, why (reasons, per step)."""
    gpu, nvcc = facts['gpu'] == 'yes', facts['nvcc']
    if target == 'auto':  # nvcc alone does not make a CUDA machine (CPU images ship it too)
        target = 'cuda' if gpu else 'cpu'
        why_target = 'a GPU is visible' if gpu else 'no GPU is visible'
    else:
        why_target = 'asked for (--target / MMLIERA_TARGET)'
    plan = dict(target=target, why=dict(target=why_target))
    torch_v, tv = facts['torch'], facts['torchvision']

    # 1. torch
    if target == 'cpu':
        keep = base(torch_v) == base(CPU_TORCH[0]) and base(tv) == base(CPU_TORCH[1])
        want, want_tv, torch_cuda, cxx = (torch_v, tv, facts['torch_cuda'], facts['torch_cxx']) \
            if keep else (CPU_TORCH[0], CPU_TORCH[1], None, '20')
        plan['why']['torch'] = 'torch 2.14.1 + torchvision 0.29.1 are installed' if keep else \
            f'the CPU setup uses torch 2.14.1 + torchvision 0.29.1 (found torch {torch_v})'
    else:
        v = base(torch_v)
        low, high = SUPPORTED_CUDA_TORCH
        if v is None:
            keep, reason = False, 'no torch is installed'
        elif facts['torch_cuda'] == 'none':
            keep, reason = False, f'torch {torch_v} is a CPU-only build'
        elif not low <= v[:2] < high:
            keep, reason = False, (f'torch {torch_v} is outside the supported range '
                                   '>=2.1,<2.15')
        else:
            keep, reason = True, (f'torch {torch_v} (CUDA {facts["torch_cuda"]}) is in the '
                                  'supported range >=2.1,<2.15')
        if keep:
            want, torch_cuda, cxx = torch_v, facts['torch_cuda'], facts['torch_cxx']
            want_tv = tv if base(tv) and base(tv)[:2] == (0, v[1] + 15) else f'0.{v[1] + 15}.*'
            if want_tv != tv:
                reason += f'; torchvision {want_tv} matches it (found {tv})'
        else:
            want, want_tv, torch_cuda, cxx = DEFAULT_CUDA_TORCH
            reason += '; installing torch 2.14.1 (CUDA 13.0 on PyPI for Linux)'
        plan['why']['torch'] = reason
    plan['torch'] = 'keep' if keep and want_tv == tv else 'install'
    plan['torch_spec'] = [f'torch=={want.split("+")[0]}', f'torchvision=={want_tv.split("+")[0]}']
    plan['torch_pin'] = plan['torch_spec']

    # 2. mmcv
    ops = facts['mmcv_ops']
    mmcv_fits = facts['mmcv'] == '2.1.0' and ops != 'none' and keep and (
        target == 'cpu' or (ops != 'cpu' and major(ops) == major(torch_cuda)))
    plan['force_cuda'] = '1' if target == 'cuda' else '0'
    # no GPU to read the architecture from: build for Turing .. Hopper (CUDA 13 dropped < 7.5)
    plan['arch_list'] = os.environ.get('TORCH_CUDA_ARCH_LIST') or ('' if gpu or target == 'cpu' else
                                                                   '7.5;8.0;8.6;8.9;9.0+PTX')
    plan['cxx_std'] = cxx if cxx in ('17', '20') else '20'
    plan['mmcv_try'] = []
    if mmcv_fits:
        plan['mmcv'] = 'keep'
        plan['why']['mmcv'] = f'mmcv 2.1.0 is installed and its ops load ({ops})'
        return plan
    plan['mmcv'] = 'build'
    found = 'not installed' if facts['mmcv'] == 'none' else \
        f'{facts["mmcv"]} installed, ops: {ops}' + ('' if keep else ', torch changes')
    if target == 'cpu':
        plan['why']['mmcv'] = f'mmcv 2.1.0 with CPU ops is needed ({found})'
        if facts['wheels'] != 'none':
            plan['mmcv_try'] = ['folder']
        return plan
    plan['why']['mmcv'] = f'mmcv 2.1.0 with CUDA {torch_cuda} ops is needed ({found})'
    if facts['wheels'] != 'none':
        plan['mmcv_try'].append('folder')
    short = '.'.join(want.split('+')[0].split('.')[:2])
    if (short, torch_cuda) in OPENMMLAB_WHEELS and base(facts['python']) <= (3, 11):
        plan['mmcv_try'].append(OPENMMLAB_INDEX.format(cu=torch_cuda.replace('.', ''), torch=short))
    # a source build (the fallback) needs nvcc of torch's CUDA major
    if nvcc == 'none':
        raise PlanError(
            f'a CUDA build of mmcv 2.1.0 is needed ({plan["why"]["target"]}) but no nvcc was '
            f'found: install the CUDA {major(torch_cuda)} toolkit and set CUDA_HOME, or run '
            '`MMLIERA_TARGET=cpu bash tools/setup_env.sh` for CPU-only ops.')
    if major(nvcc) != major(torch_cuda):
        raise PlanError(
            f'nvcc {nvcc} cannot build mmcv\'s CUDA ops for torch {want} (CUDA {torch_cuda}): '
            f'the CUDA major versions must match; point CUDA_HOME at a CUDA '
            f'{major(torch_cuda)} toolkit, or install the torch build for CUDA {nvcc} '
            '(https://pytorch.org/get-started/locally/) and run again.')
    return plan


def describe(facts, plan, wheel_dir):
    """The plan in words."""
    gpu = 'a GPU is visible' if facts['gpu'] == 'yes' else 'no GPU visible'
    lines = [
        f"facts: Python {facts['python']}; torch {facts['torch']} (CUDA {facts['torch_cuda']}); "
        f"torchvision {facts['torchvision']}; {gpu}; nvcc {facts['nvcc']}; "
        f"mmcv {facts['mmcv']} (ops: {facts['mmcv_ops']}); wheels in {wheel_dir}: "
        f"{facts['wheels']}",
        f"target: {plan['target'].upper()} ({plan['why']['target']})",
    ]
    if plan['torch'] == 'keep':
        lines.append(f"1. torch: keep ({plan['why']['torch']})")
    else:
        lines.append(f"1. torch: pip install {' '.join(plan['torch_spec'])} "
                     f"({plan['why']['torch']})")
    if plan['mmcv'] == 'keep':
        lines.append(f"2. mmcv: keep ({plan['why']['mmcv']})")
    else:
        tries = [
            f'the prebuilt wheel in {wheel_dir}'
            if t == 'folder' else f'the prebuilt wheel from {t}' for t in plan['mmcv_try']
        ]
        build = (f"MMCV_WITH_OPS=1 FORCE_CUDA={plan['force_cuda']} pip install "
                 f"--no-build-isolation --no-binary mmcv mmcv==2.1.0 (C++{plan['cxx_std']}" +
                 (f", TORCH_CUDA_ARCH_LIST={plan['arch_list']}" if plan['arch_list'] else '') + ')')
        if tries:
            lines.append(f"2. mmcv: try {', then '.join(tries)} (kept only if its ops load" +
                         (' with CUDA' if plan['target'] == 'cuda' else '') +
                         f'), else build from source: {build} ({plan["why"]["mmcv"]})')
        else:
            lines.append(f"2. mmcv: build from source: {build} ({plan['why']['mmcv']})")
    lines.append(f"3. mmengine 0.10.7, mmdet 3.3.0, mmpretrain 1.2.0, mmliera (editable), tests: "
                 f"installed unless present, with {' '.join(plan['torch_pin'])} held")
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--fact',
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help=f'use VALUE instead of detecting KEY (one of: {", ".join(FACTS)})')
    p.add_argument(
        '--target',
        choices=['auto', 'cpu', 'cuda'],
        default=os.environ.get('MMLIERA_TARGET') or 'auto')
    p.add_argument(
        '--wheels',
        default=os.environ.get('MMLIERA_WHEELS')
        or osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '..', 'shared', 'wheels'))
    p.add_argument('--shell', action='store_true', help='print PLAN_* shell variables')
    args = p.parse_args(argv)
    if args.target not in ('auto', 'cpu', 'cuda'):
        print(
            f'[setup] error: MMLIERA_TARGET={args.target!r}: use auto, cpu or cuda',
            file=sys.stderr)
        return 2
    overrides = {}
    for item in args.fact:
        key, sep, value = item.partition('=')
        if not sep or key not in FACTS or not value:
            print(
                f'[setup] error: --fact {item!r}: use KEY=VALUE with KEY one of '
                f'{", ".join(FACTS)}',
                file=sys.stderr)
            return 2
        overrides[key] = value
    wheel_dir = osp.normpath(args.wheels)
    facts = gather(overrides, wheel_dir)
    try:
        plan = make_plan(facts, args.target)
    except PlanError as e:
        print(f'[setup] error: {e}', file=sys.stderr)
        return 2
    if args.shell:
        values = dict(
            PLAN_TARGET=plan['target'],
            PLAN_TORCH=plan['torch'],
            PLAN_TORCH_SPEC=' '.join(plan['torch_spec']),
            PLAN_TORCH_PIN=' '.join(plan['torch_pin']),
            PLAN_MMCV=plan['mmcv'],
            PLAN_MMCV_TRY=' '.join(plan['mmcv_try']),
            PLAN_FORCE_CUDA=plan['force_cuda'],
            PLAN_CXX_STD=plan['cxx_std'],
            PLAN_NVCC=find_nvcc() or '',
            PLAN_ARCH_LIST=plan['arch_list'],
            PLAN_CUDA_HOME='',
            PLAN_CUDA_CPATH='')
        if plan['target'] == 'cuda' and plan['mmcv'] == 'build':
            home = find_cuda_home()
            values['PLAN_CUDA_HOME'] = home
            values['PLAN_NVCC'] = osp.join(home, 'bin', 'nvcc') if home else values['PLAN_NVCC']
            values['PLAN_CUDA_CPATH'] = ':'.join(find_math_includes(
                home, torch_site_dirs())) if home else ''
        for k, v in values.items():
            print(f'{k}={shlex.quote(v)}')
    else:
        print(describe(facts, plan, wheel_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
