"""tools/slurm_train.sh / slurm_test.sh: mmdet's srun command, run against a fake srun."""
import json
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest
from helpers import ROOT
from mmengine.config import Config

from mmliera.cli import parse_test_args, parse_train_args
from mmliera.cli.launch import setup_distributed

TOOLS = osp.join(ROOT, 'tools')
FAKE_SRUN = f"""#!/usr/bin/env bash
# records its arguments and environment; with FAKE_SRUN_EXEC=1 runs the task once
{sys.executable} -c 'import json, os, sys
keys = ("GPUS", "GPUS_PER_NODE", "CPUS_PER_TASK", "SRUN_ARGS", "PYTHONPATH")
json.dump(dict(argv=sys.argv[1:], env={{k: os.environ.get(k) for k in keys}}),
          open(os.environ["FAKE_SRUN_LOG"], "w"))' "$@"
if [ -n "$FAKE_SRUN_EXEC" ]; then
  while [ "$1" != python ]; do shift; done
  exec "$@"
fi
"""


def slurm(tmp_path, script, args, **env):
    """Run tools/<script> from ``tmp_path`` (not the repo) with the fake srun first on PATH."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    python = bin_dir / 'python'
    if not python.exists():  # a script, not a symlink: a venv's interpreter started through a
        # link in another folder no longer sees the venv's packages
        python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)
    log = tmp_path / 'srun.json'
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS')
    }
    full_env.update(
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        FAKE_SRUN_LOG=str(log),
        PYTHONPATH='/some/where',
        **env)
    done = subprocess.run(
        ['bash', osp.join(TOOLS, script)] + args,
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300)
    record = json.loads(log.read_text()) if log.exists() else None
    return done, record


def test_slurm_train_defaults(tmp_path):
    done, rec = slurm(tmp_path, 'slurm_train.sh', ['gpu', 'liera', 'configs/x.py', 'work_dirs/x'])
    assert done.returncode == 0, done.stderr
    assert rec['argv'] == [
        '-p', 'gpu', '--job-name=liera', '--gres=gpu:8', '--ntasks=8', '--ntasks-per-node=8',
        '--cpus-per-task=5', '--kill-on-bad-exit=1', 'python', '-u',
        osp.join(TOOLS, 'train.py'), 'configs/x.py', '--work-dir=work_dirs/x', '--launcher=slurm'
    ]
    first = rec['env']['PYTHONPATH'].split(os.pathsep)
    assert osp.realpath(first[0]) == osp.realpath(ROOT) and first[1] == '/some/where'


def test_slurm_train_environment_and_extra_args(tmp_path):
    done, rec = slurm(
        tmp_path,
        'slurm_train.sh', ['p1', 'job', 'c.py', 'w', '--amp', '--cfg-options', 'a=b c'],
        GPUS='16',
        GPUS_PER_NODE='4',
        CPUS_PER_TASK='3',
        SRUN_ARGS='--time=1:00:00 --qos=high')
    assert done.returncode == 0, done.stderr
    assert rec['argv'] == [
        '-p', 'p1', '--job-name=job', '--gres=gpu:4', '--ntasks=16', '--ntasks-per-node=4',
        '--cpus-per-task=3', '--kill-on-bad-exit=1', '--time=1:00:00', '--qos=high', 'python', '-u',
        osp.join(TOOLS, 'train.py'), 'c.py', '--work-dir=w', '--launcher=slurm', '--amp',
        '--cfg-options', 'a=b c'
    ]
    assert rec['env']['GPUS'] == '16' and rec['env']['SRUN_ARGS'] == '--time=1:00:00 --qos=high'


def test_slurm_test_command(tmp_path):
    done, rec = slurm(
        tmp_path,
        'slurm_test.sh', ['gpu', 'eval', 'c.py', 'work_dirs/x/epoch_12.pth', '--out', 'r.pkl'],
        GPUS='2',
        GPUS_PER_NODE='2')
    assert done.returncode == 0, done.stderr
    assert rec['argv'] == [
        '-p', 'gpu', '--job-name=eval', '--gres=gpu:2', '--ntasks=2', '--ntasks-per-node=2',
        '--cpus-per-task=5', '--kill-on-bad-exit=1', 'python', '-u',
        osp.join(TOOLS, 'test.py'), 'c.py', 'work_dirs/x/epoch_12.pth', '--launcher=slurm', '--out',
        'r.pkl'
    ]
    assert osp.realpath(rec['env']['PYTHONPATH'].split(os.pathsep)[0]) == osp.realpath(ROOT)


@pytest.mark.parametrize('script,args', [('slurm_train.sh', ['gpu', 'job', 'c.py']),
                                         ('slurm_test.sh', ['gpu', 'job', 'c.py']),
                                         ('slurm_train.sh', [])])
def test_too_few_arguments_print_usage(tmp_path, script, args):
    done, rec = slurm(tmp_path, script, args)
    assert done.returncode != 0 and rec is None
    assert f'usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] bash ' \
           f'tools/{script} PARTITION JOB_NAME CONFIG' in done.stderr


def test_tools_accept_launcher_slurm():
    assert parse_train_args(['c.py', '--launcher=slurm']).launcher == 'slurm'
    assert parse_test_args(['c.py', 'k.pth', '--launcher', 'slurm']).launcher == 'slurm'
    cfg = Config(dict(model=dict()))
    assert setup_distributed(cfg, 'slurm') is False  # mmengine's slurm init (CUDA) does it
    assert cfg.launcher == 'slurm' and 'model_wrapper_cfg' not in cfg


@pytest.mark.slow  # a task through fake srun
def test_srun_task_reaches_the_config_from_another_folder(tmp_path):
    """The task srun starts runs this repo's train.py with --launcher=slurm (from tmp_path):
    it loads the COCO config and stops at the missing data, before any distributed init."""
    done, _ = slurm(
        tmp_path,
        'slurm_train.sh', [
            'gpu', 'job',
            osp.join(ROOT, 'configs', 'liera_maskrcnn_convnextv2.py'),
            str(tmp_path / 'w')
        ],
        FAKE_SRUN_EXEC='1',
        GPUS='1',
        GPUS_PER_NODE='1')
    assert done.returncode == 1, done.stderr[-3000:]
    assert (f'error: {osp.join(ROOT, "configs", "liera_maskrcnn_convnextv2.py")} expects data '
            f'that is not there (relative to {tmp_path}): data/coco/annotations/'
            'instances_train2017.json') in done.stderr
    assert 'Traceback' not in done.stderr
