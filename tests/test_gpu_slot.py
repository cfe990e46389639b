"""The GPU slot's scripts (tools/gpu_slot.sh, gpu_checks.sh, gpu_kit.sh): syntax, their plan
(steps, order, the time budget they claim against the device slot), the kit's list, and the
errors and deadline handling a CPU machine can reach."""
import os
import re
import subprocess
import sys

import pytest
import torch
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOT_S, COMMAND_LIMIT_S = 15 * 60, 10 * 60  # the device slot and its per-command limit
CHECKS = [
    'whole_amp', 'cuda_tests', 'bench_384_amp', 'bench_paper_amp', 'demo_amp', 'bench_384_fp32',
    'suite', 'study'
]


def bash(*args, env=None, **kw):
    """Run a script with this environment less the GPU_CHECKS_* settings (a suite run by
    gpu_checks.sh itself has them)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith('GPU_CHECKS_')}
    return subprocess.run(['bash', *args],
                          capture_output=True,
                          text=True,
                          cwd=ROOT,
                          env={
                              **base,
                              **(env or {})
                          },
                          **kw)


@pytest.mark.parametrize('script', ['gpu_slot.sh', 'gpu_checks.sh', 'gpu_kit.sh', 'gpu_study.sh'])
def test_scripts_parse(script):
    out = bash('-n', f'tools/{script}')
    assert out.returncode == 0, out.stderr


def test_slot_plan_order_and_budget_fit_the_device_slot():
    out = bash('tools/gpu_slot.sh', '--plan')
    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.splitlines()
    m = re.match(
        r'device slot: start-up and transfers (\d+) s \+ this command (\d+) s = (\d+) s '
        r'\(plan at most (\d+) s\)', first)
    assert m, first
    start, command, total, plan_max = map(int, m.groups())
    assert start + command == total <= plan_max <= SLOT_S - 120  # 2 minutes of margin at least
    assert command <= COMMAND_LIMIT_S - 30 and start >= 120
    steps = [line.split()[0] for line in rest if re.match(r'^\w+\s+(\d+|rest) s ', line)]
    assert steps == ['kit', 'stack', 'checks', 'pack']
    caps = {line.split()[0]: line.split()[1] for line in rest if line.split()[0] in steps}
    # set-up, even a build, leaves time for the checks and the packing
    assert int(caps['kit']) + int(caps['stack']) + int(caps['pack']) + 30 < command
    checks = [line.split()[0] for line in rest if line.startswith('  ') and 'total' not in line]
    assert checks == CHECKS


def test_checks_plan_and_quick_subset():
    full = bash('tools/gpu_checks.sh', '--plan').stdout.splitlines()
    quick = bash('tools/gpu_checks.sh', '--plan', 'quick').stdout.splitlines()
    names = [line.split()[0] for line in full[:-1]]
    assert names == CHECKS
    assert [line.split()[0] for line in quick[:-1]] == [
        n for n in CHECKS if n not in ('whole_amp', 'demo_amp', 'bench_384_fp32', 'study')
    ]
    caps = [int(line.split()[1]) for line in full[:-1]]
    assert full[-1].split()[:2] == ['total', str(sum(caps))]
    text = '\n'.join(full)
    for needle in ('tests/test_cuda.py', '--amp --paper', '--device cuda', 'train.py configs/demo/'
                   'liera_maskrcnn_convnextv2-atto_synthetic.py --amp',
                   'train.py configs/transfer/whole_liera.py --amp',
                   'tools/test.py configs/transfer/', 'gpu_study.sh $OUT/study $LANE_LIMIT'):
        assert needle in text


def test_study_lanes_name_existing_configs_and_refuse_a_bad_limit():
    out = bash('tools/gpu_study.sh', '--plan')
    assert out.returncode == 0, out.stderr
    lanes = [line.split() for line in out.stdout.splitlines()[1:]]
    assert len({lane[0] for lane in lanes}) == len(lanes) == 12
    for lane in lanes:
        name, config = lane[1].split('=')
        assert os.path.isfile(os.path.join(ROOT, config)), config
        assert name == os.path.basename(config)[:-3]  # (merges keep the study's method names)
    ranks = sorted(lane[1].split('=')[0] for lane in lanes if lane[0].startswith('rank_'))
    assert ranks == sorted(f'{m}{r}' for m in ('lora', 'liera_taylor') for r in ('_r2', '', '_r32'))
    out = bash('tools/gpu_study.sh', 'OUT', '8m')
    assert out.returncode == 1 and out.stderr.strip() == \
        "error: LIMIT_S '8m' is not a number of seconds"


@pytest.mark.slow  # waits past a deadline
def test_checks_past_the_deadline_skip_every_step_and_say_so(tmp_path):
    out = bash(
        'tools/gpu_checks.sh',
        str(tmp_path / 'out'),
        env={
            'GPU_CHECKS_DEADLINE': '1',
            'PYTHON': sys.executable
        },
        timeout=300)
    assert out.returncode == 124
    summary = (tmp_path / 'out' / 'summary.txt').read_text().splitlines()
    assert [line.split()[1].rstrip(':') for line in summary] == CHECKS
    assert all('skipped' in line for line in summary)
    assert (tmp_path / 'out' / 'versions.txt').exists()


def test_kit_list_pins_what_the_gpu_image_would_get_wrong():
    reqs = [
        Requirement(line) for line in open(f'{ROOT}/tools/gpu_kit.txt').read().splitlines()
        if line.strip() and not line.startswith('#')
    ]
    by_name = {r.name.lower(): r.specifier for r in reqs}
    assert str(by_name['mmengine']) == '==0.10.7' and str(by_name['mmdet']) == '==3.3.0'
    assert str(by_name['mmpretrain']) == '==1.2.0'
    setuptools = by_name['setuptools']  # mmengine imports pkg_resources, gone in 81
    assert setuptools.contains('80.10.2') and not setuptools.contains('81.0.0')
    assert '4.46.3' in by_name['transformers'] and '5.0' not in by_name['transformers']
    assert 'model-index' in by_name and 'importlib-metadata' in by_name  # what mmpretrain imports
    assert 'mmcv' not in by_name  # built or carried, never from this list


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-machine refusal')
@pytest.mark.parametrize('args,match', [
    (['/nonexistent-kit', 'OUT'], "no kit folder '/nonexistent-kit'"),
    (['KIT', 'OUT', '9m'], "BUDGET_S '9m' is not a number"),
    (['tools', 'OUT'], 'torch sees no CUDA device here'),
])
def test_slot_refuses_with_one_error_line(tmp_path, args, match):
    args = [str(tmp_path / a) if a in ('OUT', 'KIT') else a for a in args]
    (tmp_path / 'KIT').mkdir()
    out = bash('tools/gpu_slot.sh', *args, env={'PYTHON': sys.executable})
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and lines[0].startswith('error: '), out.stderr
    assert match in lines[0]
    assert not (tmp_path / 'OUT').exists()  # nothing half-written
