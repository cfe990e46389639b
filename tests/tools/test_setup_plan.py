"""tools/setup_env.sh's decisions (tools/setup_plan.py) for CUDA and CPU machines, from given
facts: no GPU needed, nothing installed (``--dry-run``)."""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location('setup_plan', f'{ROOT}/tools/setup_plan.py')
setup_plan = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_plan)

WHEEL = 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
H100 = dict(
    python='3.12',
    torch='2.11.0+cu130',
    torchvision='0.26.0+cu130',
    gpu='yes',
    nvcc='13.0',
    mmcv='none',
    mmcv_ops='none',
    wheels='none')
CPU = dict(
    python='3.11',
    torch='2.14.1+cu130',
    torchvision='0.29.1+cu130',
    gpu='no',
    nvcc='none',
    mmcv='2.1.0',
    mmcv_ops='cpu',
    wheels=WHEEL)


def plan(target='auto', **facts):
    return setup_plan.make_plan(setup_plan.gather(facts, '/wheels'), target)


def dry_run(*args, env=None, python=None):
    """``bash tools/setup_env.sh --dry-run ARGS`` with an interpreter that refuses pip."""
    return subprocess.run(['bash', f'{ROOT}/tools/setup_env.sh', *args],
                          capture_output=True,
                          text=True,
                          env={
                              **os.environ, 'PYTHON': python or sys.executable,
                              **(env or {})
                          })


def facts_args(**facts):
    return [a for k, v in facts.items() for a in ('--fact', f'{k}={v}')]


def test_cuda_machine_keeps_a_supported_torch_and_builds_mmcv_with_cuda(monkeypatch):
    monkeypatch.delenv('TORCH_CUDA_ARCH_LIST', raising=False)  # CUDA images often set it
    p = plan(**H100)
    assert p['target'] == 'cuda' and p['torch'] == 'keep'
    assert p['torch_pin'] == ['torch==2.11.0', 'torchvision==0.26.0']
    assert p['mmcv'] == 'build' and p['mmcv_try'] == [] and p['force_cuda'] == '1'
    assert p['cxx_std'] == '20' and p['arch_list'] == ''  # the visible GPU sets the arch


@pytest.mark.parametrize('torch_v,why', [('none', 'no torch is installed'),
                                         ('2.14.1+cpu', 'CPU-only build'),
                                         ('2.0.1+cu130', 'outside the supported range'),
                                         ('2.15.0+cu130', 'outside the supported range')])
def test_cuda_machine_replaces_a_missing_cpu_only_or_unsupported_torch(torch_v, why):
    p = plan(**{**H100, 'torch': torch_v, 'torchvision': 'none'})
    assert p['torch'] == 'install' and why in p['why']['torch']
    assert p['torch_spec'] == ['torch==2.14.1', 'torchvision==0.29.1']
    assert p['mmcv'] == 'build' and p['force_cuda'] == '1'


def test_cuda_machine_adds_the_matching_torchvision():
    p = plan(**{**H100, 'torchvision': 'none'})
    assert p['torch'] == 'install'
    assert p['torch_spec'] == ['torch==2.11.0', 'torchvision==0.26.*']


def test_second_run_on_a_cuda_machine_changes_nothing():
    p = plan(**{**H100, 'mmcv': '2.1.0', 'mmcv_ops': '13.0', 'nvcc': 'none'})
    assert p['torch'] == 'keep' and p['mmcv'] == 'keep'  # nvcc is not even needed then


def test_cpu_only_mmcv_ops_on_a_cuda_machine_are_rebuilt_with_cuda():
    p = plan(**{**H100, 'mmcv': '2.1.0', 'mmcv_ops': 'cpu', 'wheels': WHEEL})
    assert p['mmcv'] == 'build' and p['force_cuda'] == '1'
    assert p['mmcv_try'] == ['folder']  # tried, kept only if its ops have CUDA


def test_mmcv_built_for_another_cuda_major_is_rebuilt():
    p = plan(**{**H100, 'mmcv': '2.1.0', 'mmcv_ops': '12.1'})
    assert p['mmcv'] == 'build'


def test_openmmlab_wheel_is_tried_where_one_is_published():
    p = plan(**{
        **H100, 'python': '3.10',
        'torch': '2.1.2+cu121',
        'torchvision': '0.16.2',
        'nvcc': '12.4'
    })
    assert p['torch'] == 'keep' and p['cxx_std'] == '17'
    assert p['mmcv_try'] == ['https://download.openmmlab.com/mmcv/dist/cu121/torch2.1/index.html']


@pytest.mark.parametrize('facts,match', [
    (dict(nvcc='none'), 'no nvcc was found: install the CUDA 13 toolkit and set CUDA_HOME'),
    (dict(nvcc='12.4'), 'the CUDA major versions must match'),
])
def test_cuda_build_without_a_fitting_nvcc_is_one_clear_error(facts, match):
    with pytest.raises(setup_plan.PlanError, match=match):
        plan(**{**H100, **facts})


def test_cpu_machine_behaves_as_before():
    # nvcc alone (this CPU machine ships one) does not make a CUDA machine
    p = plan(**{**CPU, 'nvcc': '13.0'})
    assert p['target'] == 'cpu' and p['torch'] == 'keep' and p['mmcv'] == 'keep'
    p = plan(**{
        **CPU, 'torch': '2.13.0',
        'torchvision': '0.28.0',
        'mmcv': 'none',
        'mmcv_ops': 'none'
    })
    assert p['torch'] == 'install' and p['torch_spec'] == ['torch==2.14.1', 'torchvision==0.29.1']
    assert p['mmcv'] == 'build' and p['mmcv_try'] == ['folder'] and p['force_cuda'] == '0'
    p = plan(**{**CPU, 'mmcv': 'none', 'mmcv_ops': 'none', 'wheels': 'none'})
    assert p['mmcv_try'] == [] and p['force_cuda'] == '0' and p['cxx_std'] == '20'


def test_target_cuda_on_a_machine_without_gpu_builds_for_listed_archs(monkeypatch):
    monkeypatch.delenv('TORCH_CUDA_ARCH_LIST', raising=False)
    p = plan('cuda', **{**CPU, 'nvcc': '13.0'})
    assert p['force_cuda'] == '1' and p['mmcv'] == 'build' and '9.0' in p['arch_list']
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    assert plan('cuda', **{**CPU, 'nvcc': '13.0'})['arch_list'] == '9.0'


def test_torch_cuda_comes_from_the_version_tag():
    assert setup_plan.cuda_from_tag('2.11.0+cu130') == '13.0'
    assert setup_plan.cuda_from_tag('2.5.1+cu118') == '11.8'
    assert setup_plan.cuda_from_tag('2.14.1+cpu') == 'none'


@pytest.fixture
def no_pip(tmp_path):
    """An interpreter that fails on ``-m pip``: a dry run must never reach pip."""
    wrapper = tmp_path / 'python'
    wrapper.write_text('#!/usr/bin/env bash\nfor a in "$@"; do [ "$a" = pip ] && '
                       f'{{ echo PIP-CALLED >&2; exit 99; }}; done\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_dry_run_prints_the_cuda_plan_and_installs_nothing(no_pip):
    out = dry_run('--dry-run', *facts_args(**H100), python=no_pip)
    assert out.returncode == 0, out.stderr
    assert 'PIP-CALLED' not in out.stderr
    text = out.stdout
    assert 'nothing is installed' in text and 'target: CUDA (a GPU is visible)' in text
    assert '1. torch: keep (torch 2.11.0+cu130 (CUDA 13.0) is in the supported range ' \
           '>=2.1,<2.15)' in text
    assert 'MMCV_WITH_OPS=1 FORCE_CUDA=1' in text and 'torch==2.11.0 torchvision==0.26.0' in text


@pytest.mark.slow  # probes this machine
def test_dry_run_on_this_machine_detects_its_facts(no_pip):
    """No fact given: what this (CPU, set-up) machine is; a second run would change nothing."""
    out = dry_run('--dry-run', python=no_pip)
    assert out.returncode == 0, out.stderr
    import torch
    assert f'torch {torch.__version__}' in out.stdout
    if not torch.cuda.is_available():
        assert 'target: CPU' in out.stdout and '1. torch: keep' in out.stdout
        assert '2. mmcv: keep' in out.stdout


@pytest.mark.parametrize('args,match', [
    (['--dry-run', '--fact', 'gpus=yes'], "--fact 'gpus=yes': use KEY=VALUE"),
    (['--fact', 'gpu=yes'], '--fact describes a machine that is not this one'),
    (['--frobnicate'], "unknown option '--frobnicate'"),
    (['--dry-run', *facts_args(**{
        **H100, 'nvcc': 'none'
    })], 'no nvcc was found'),
])
def test_bad_requests_are_one_error_line(no_pip, args, match):
    out = dry_run(*args, python=no_pip)
    assert out.returncode == 2 and 'PIP-CALLED' not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('[setup] error: ') and match in lines[0], \
        out.stderr


def test_bad_target_in_the_environment_is_one_error_line(no_pip):
    out = dry_run('--dry-run', env={'MMLIERA_TARGET': 'gpu'}, python=no_pip)
    assert out.returncode == 2 and out.stdout == ''
    assert out.stderr.strip() == \
        "[setup] error: MMLIERA_TARGET='gpu': use auto, cpu or cuda"


def test_help_names_the_dry_run_and_the_target():
    out = subprocess.run(['bash', f'{ROOT}/tools/setup_env.sh', '--help'],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0 and '--dry-run' in out.stdout and 'MMLIERA_TARGET' in out.stdout
    assert 'set -euo' not in out.stdout


def _toolkit(root, headers=()):
    """A fake CUDA toolkit under ``root``: bin/nvcc that names its folder on -dryrun, and
    include/ with cuda_runtime.h and ``headers``."""
    os.makedirs(f'{root}/bin')
    os.makedirs(f'{root}/include')
    for h in ('cuda_runtime.h', *headers):
        open(f'{root}/include/{h}', 'w').close()
    nvcc = f'{root}/bin/nvcc'
    with open(nvcc, 'w') as f:
        f.write(f'#!/bin/sh\necho "#$ _HERE_={root}/bin" >&2\n'
                'echo "Cuda compilation tools, release 13.0, V13.0.88"\n')
    os.chmod(nvcc, 0o755)
    return nvcc


def test_cuda_home_sees_through_an_nvcc_wrapper_script(tmp_path, monkeypatch):
    """The nvcc on PATH may be `exec /usr/local/cuda-13.0/bin/nvcc "$@"` in /usr/local/bin:
    torch would guess CUDA_HOME=/usr/local (no headers); the plan names the real toolkit."""
    real = _toolkit(str(tmp_path / 'cuda-13.0'))
    wrapper = tmp_path / 'bin' / 'nvcc'
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    for var in ('CUDA_HOME', 'CUDA_PATH'):
        monkeypatch.delenv(var, raising=False)
    assert setup_plan.find_cuda_home(str(wrapper)) == str(tmp_path / 'cuda-13.0')
    # a CUDA_HOME that is a real toolkit wins; one without headers is passed over
    other = tmp_path / 'other'
    _toolkit(str(other))
    monkeypatch.setenv('CUDA_HOME', str(other))
    assert setup_plan.find_cuda_home(str(wrapper)) == str(other)
    monkeypatch.setenv('CUDA_HOME', str(tmp_path))
    assert setup_plan.find_cuda_home(str(wrapper)) == str(tmp_path / 'cuda-13.0')


def test_math_headers_come_from_torchs_nvidia_wheels_only_where_the_toolkit_lacks_them(tmp_path):
    home = tmp_path / 'cuda'
    _toolkit(str(home), headers=['cublas_v2.h'])
    site = tmp_path / 'site'
    cu13 = site / 'nvidia' / 'cu13' / 'include'
    cu13.mkdir(parents=True)
    for h in ('cusparse.h', 'cublas_v2.h', 'cuda_runtime.h'):
        (cu13 / h).touch()
    empty = site / 'nvidia' / 'cudnn' / 'include'
    empty.mkdir(parents=True)
    (empty / 'cudnn.h').touch()
    assert setup_plan.find_math_includes(str(home), [str(site)]) == [str(cu13)]
    for h in setup_plan.MATH_HEADERS:
        (home / 'include' / h).touch()
    assert setup_plan.find_math_includes(str(home), [str(site)]) == []


def test_shell_plan_of_a_cuda_build_sets_cuda_home_and_header_path(tmp_path):
    """What setup_env.sh exports for the source build: CUDA_HOME (the toolkit), PYTORCH_NVCC's
    target, and CPATH with the headers of torch's wheels (this interpreter's site-packages)."""
    _toolkit(str(tmp_path / 'cuda'))
    env = {**os.environ, 'CUDA_HOME': str(tmp_path / 'cuda'), 'TORCH_CUDA_ARCH_LIST': '9.0'}
    out = subprocess.run(
        [sys.executable, f'{ROOT}/tools/setup_plan.py', '--shell', *facts_args(**H100)],
        capture_output=True,
        text=True,
        env=env)
    assert out.returncode == 0, out.stderr
    values = dict(line.split('=', 1) for line in out.stdout.splitlines())
    assert values['PLAN_MMCV'] == 'build' and values['PLAN_ARCH_LIST'] == '9.0'
    assert values['PLAN_CUDA_HOME'] == str(tmp_path / 'cuda')
    assert values['PLAN_NVCC'] == str(tmp_path / 'cuda' / 'bin' / 'nvcc')
    import site
    expected = setup_plan.find_math_includes(
        str(tmp_path / 'cuda'),
        site.getsitepackages() + [site.getusersitepackages()])
    assert values['PLAN_CUDA_CPATH'].strip("'") == ':'.join(expected)
    cpu = subprocess.run(
        [sys.executable, f'{ROOT}/tools/setup_plan.py', '--shell', *facts_args(**CPU)],
        capture_output=True,
        text=True,
        env=env)
    assert "PLAN_CUDA_HOME=''" in cpu.stdout  # a CPU build leaves CUDA alone


@pytest.mark.slow  # runs the whole setup script (~25 s of imports)
def test_step_three_offline_installs_mmliera_alone(tmp_path):
    """Step 3 with mmliera missing and PIP_NO_INDEX set (a GPU slot's kit): mmliera alone,
    --no-deps, so pip never asks for a distribution the image has under another name
    (opencv-python where the image has opencv-python-headless); online, the same step resolves
    the OpenMMLab packages and the test extras."""
    root = tmp_path / 'checkout'  # a checkout where mmliera is not installed from
    (root / 'tools').mkdir(parents=True)
    for name in ('setup_env.sh', 'setup_plan.py'):
        (root / 'tools' / name).write_text(open(f'{ROOT}/tools/{name}').read())
    log = tmp_path / 'pip.log'
    fake = tmp_path / 'python'  # this interpreter, whose pip only writes down what it was asked
    fake.write_text(f'#!/usr/bin/env bash\nif [ "$1 $2" = "-m pip" ]; then echo "$@" >> {log}; '
                    f'exit 0; fi\nexec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, 'PYTHON': str(fake), 'MMLIERA_TARGET': 'cpu', 'PIP_NO_INDEX': '1'}
    out = subprocess.run(['bash', str(root / 'tools' / 'setup_env.sh')],
                         capture_output=True,
                         text=True,
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    calls = [line for line in log.read_text().splitlines() if str(root) in line]
    assert len(calls) == 1, log.read_text()
    assert '--no-deps' in calls[0] and calls[0].endswith(f'-e {root}')
    assert 'mmengine' not in calls[0] and 'offline (PIP_NO_INDEX)' in out.stdout
