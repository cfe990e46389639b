"""The GPU slot's scripts (.dev/gpu/gpu_slot.sh, gpu_checks.sh, gpu_kit.sh): syntax, their plan
(steps, order, the time budget they claim against the device slot), the kit's list, and the
errors and deadline handling a CPU machine can reach."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _slot_setting(name):
    """A setting of the device slot as gpu_slot.sh declares it (the machine's limits live in
    the script, not here)."""
    text = open(os.path.join(ROOT, '.dev', 'gpu', 'gpu_slot.sh')).read()
    return int(re.search(rf'^{name}=(\d+)', text, re.M).group(1))


SLOT_S, COMMAND_LIMIT_S = _slot_setting('DEVICE_SLOT_S'), _slot_setting('COMMAND_LIMIT_S')
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
    out = bash('-n', f'.dev/gpu/{script}')
    assert out.returncode == 0, out.stderr


def test_slot_plan_order_and_budget_fit_the_device_slot():
    out = bash('.dev/gpu/gpu_slot.sh', '--plan')
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
    full = bash('.dev/gpu/gpu_checks.sh', '--plan').stdout.splitlines()
    quick = bash('.dev/gpu/gpu_checks.sh', '--plan', 'quick').stdout.splitlines()
    names = [line.split()[0] for line in full[:-1]]
    assert names == CHECKS
    assert [line.split()[0] for line in quick[:-1]] == [
        n for n in CHECKS if n not in ('whole_amp', 'demo_amp', 'bench_384_fp32', 'study')
    ]
    caps = [int(line.split()[1]) for line in full[:-1]]
    assert full[-1].split()[:2] == ['total', str(sum(caps))]
    text = '\n'.join(full)
    for needle in ('tests/engine/test_cuda.py', '--amp --paper', '--device cuda',
                   'train.py configs/demo/'
                   'liera_maskrcnn_convnextv2-atto_synthetic.py --amp',
                   'train.py projects/liera_study/configs/transfer/whole_liera.py --amp',
                   'tools/test.py projects/liera_study/configs/transfer/',
                   'gpu_study.sh $OUT/study $LANE_LIMIT'):
        assert needle in text


def test_study_lanes_name_existing_configs_and_refuse_bad_settings(tmp_path):
    out = bash('.dev/gpu/gpu_study.sh', '--plan')
    assert out.returncode == 0, out.stderr
    lanes = [line.split() for line in out.stdout.splitlines()[1:]]
    assert len({lane[0] for lane in lanes}) == len(lanes) == 6 * 3 + 2 * 3 + 4 + 4 * 3
    for name, method, lr_mult, seed, iters in lanes:
        assert name.endswith(f'_s{seed}') and iters in ('320', '960')
        method_name, config = method.split('=')
        assert os.path.isfile(os.path.join(ROOT, config)), config
        assert method_name == os.path.basename(config)[:-3]  # (merges keep the study's names)
    ranks = {lane[1].split('=')[0] for lane in lanes if lane[0].startswith('rank_')}
    assert ranks == {f'{m}{r}' for m in ('lora', 'liera_taylor') for r in ('_r2', '', '_r32')}
    tuned = {lane[1].split('=')[0]: lane[2] for lane in lanes if lane[0].startswith('tuned_')}
    assert tuned == dict(
        lora_r2='0.3,1,3',
        lora_r32='0.03,0.1,0.3',
        liera_taylor_r2='10,30,100',
        liera_taylor_r32='1,3,10')  # (rank 8's choice scaled by 8 / r)
    for args, env, msg in ((['OUT',
                             '8m'], {}, "LIMIT_S '8m' is not a number of seconds"), (['OUT'], {
                                 'GPU_STUDY_MAX':
                                 '0'
                             }, "GPU_STUDY_MAX '0' is not"), (['OUT'], {
                                 'GPU_STUDY_ADD': '/nonexistent'
                             }, "GPU_STUDY_ADD: no folder '/nonexistent'")):
        out = bash('.dev/gpu/gpu_study.sh', str(tmp_path / args[0]), *args[1:], env=env)
        assert out.returncode == 1 and out.stderr.startswith('error: ' + msg), out.stderr


def _slot(tmp_path, done, lanes_env, max_lanes):
    """gpu_study.sh after an earlier slot whose LANE/results.json hold one run of status
    done[LANE]; returns this slot's summary lines (the data step fails on purpose:
    PYTHON=false, nothing trains)."""
    earlier = tmp_path / 'slot1'
    for lane, status in done.items():
        (earlier / lane).mkdir(parents=True)
        (earlier / lane / 'results.json').write_text(
            json.dumps(dict(runs=[dict(status=status)]), indent=1))
    out = bash(
        '.dev/gpu/gpu_study.sh',
        str(tmp_path / 'slot2'),
        env=dict(
            GPU_STUDY_ADD=str(earlier),
            GPU_STUDY_LANES=lanes_env,
            GPU_STUDY_MAX=str(max_lanes),
            PYTHON='false'))
    assert out.returncode == 1
    summary = (tmp_path / 'slot2' / 'summary.txt').read_text().splitlines()
    assert summary[-1] == 'error: the transfer data could not be made'
    return [line.replace(str(earlier), 'EARLIER') for line in summary[:-1]]


def test_study_takes_the_lanes_an_earlier_slot_left(tmp_path):
    """A lane an earlier slot tested is done; the next ones are taken, at most GPU_STUDY_MAX."""
    assert _slot(tmp_path, dict(rank_lora_r8_s0='ok', rank_lora_r8_s1='interrupted'),
                 'rank_lora_r8,at960_full_s0', 2) == [
                     'rank_lora_r8_s0: done in EARLIER', 'lanes: rank_lora_r8_s1 rank_lora_r8_s2'
                 ]


def test_a_screened_groups_other_seeds_wait_for_its_first_lane(tmp_path):
    """tuned_*: seed 0's lane screens; seeds 1 and 2 are taken once an earlier slot holds
    seed 0's lane tested."""
    assert _slot(tmp_path, dict(tuned_lora_r32_s0='ok'), 'tuned_lora_r2,tuned_lora_r32', 12) == [
        'tuned_lora_r32_s0: done in EARLIER',
        'lanes: tuned_lora_r2_s0 tuned_lora_r32_s1 tuned_lora_r32_s2'
    ]


@pytest.mark.slow  # waits past a deadline
def test_checks_past_the_deadline_skip_every_step_and_say_so(tmp_path):
    out = bash(
        '.dev/gpu/gpu_checks.sh',
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
        Requirement(line) for line in open(f'{ROOT}/.dev/gpu/gpu_kit.txt').read().splitlines()
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
    out = bash('.dev/gpu/gpu_slot.sh', *args, env={'PYTHON': sys.executable})
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and lines[0].startswith('error: '), out.stderr
    assert match in lines[0]
    assert not (tmp_path / 'OUT').exists()  # nothing half-written


def test_committed_gpu_records_hold_no_absolute_path():
    """The raw records of earlier GPU runs name their files relative to their work dir, like
    the study's records (the machine's /tmp means nothing elsewhere)."""
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, '.dev', 'gpu', 'results')):
        for f in files:
            if f == 'results.json':
                text = open(os.path.join(folder, f)).read()
                found += [os.path.join(folder, f)] if re.search(r'"/(tmp|work|root|home)/',
                                                                text) else []
                json.loads(text)
    assert found == []
