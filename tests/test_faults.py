"""Faults in real runs of the (tiny) demo through tools/: a rank killed with SIGKILL, exact
2-process resume, damaged checkpoints, a NaN loss, two nodes over loopback."""
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import torch
from helpers import ROOT, free_port, hidden_cuda, run, write_cfg
from tiny_demo import tiny_demo_cfg

from mmliera.checkpoint.safe_load import safe_load

MARK = 'MMLIERA_TEST_JOB_MARK'


@pytest.fixture(scope='module', autouse=True)
def _on_the_cpu():
    """These runs compare CPU (gloo) multi-process jobs bit for bit: the CPU even where a GPU is."""
    with hidden_cuda():
        yield


@pytest.fixture(scope='module')
def fault_cfg(tmp_path_factory):
    """The tiny demo, 4 iterations of batch 2, checkpoints every 2, one loader worker, and the
    fault hooks of tests/fault_hooks.py (inactive unless their variables are set)."""
    tmp = tmp_path_factory.mktemp('faults')
    return write_cfg(
        tmp / 'faults.py', tiny_demo_cfg(tmp, iters=4), """
custom_imports = dict(imports=['mmliera', 'fault_hooks'], allow_failed_imports=False)
train_dataloader = dict(num_workers=1, persistent_workers=True)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=3))
custom_hooks = [dict(type='LieRAFreezeHook'), dict(type='KillRankHook'),
                dict(type='NaNAtIterHook')]
""")


@pytest.fixture(scope='module')
def dist_straight(fault_cfg, tmp_path_factory):
    work = tmp_path_factory.mktemp('straight')
    run(['bash', 'tools/dist_train.sh', fault_cfg, '2', '--work-dir',
         str(work)],
        env=dict(PORT=str(free_port())))
    return work


def _state(path):
    return safe_load(str(path))['state_dict']


def assert_same_weights(a, b):
    a, b = _state(a), _state(b)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def job_processes(mark):
    """pids of live processes whose environment holds ``MARK=mark``."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                if f'{MARK}={mark}'.encode() in f.read().split(b'\0'):
                    with open(f'/proc/{pid}/stat') as s:
                        if s.read().split(')')[-1].split()[0] != 'Z':
                            found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='reads /proc')
def test_killed_rank_ends_the_job_and_resume_is_bit_identical(fault_cfg, dist_straight, tmp_path):
    work, mark = tmp_path / 'killed', uuid.uuid4().hex
    out = run(
        ['bash', 'tools/dist_train.sh', fault_cfg, '2', '--work-dir',
         str(work)],
        env={
            'PORT': str(free_port()),
            'MMLIERA_TEST_KILL_RANK': '1',
            'MMLIERA_TEST_KILL_AFTER_ITER': '2',
            MARK: mark
        },
        expect_fail=True)
    exited = time.time()
    killed_at = float((work / 'killed_at').read_text())
    assert 'SIGKILL' in out and exited - killed_at < 60, (exited - killed_at, out[-3000:])
    deadline = exited + 15
    while job_processes(mark) and time.time() < deadline:
        time.sleep(0.2)
    assert not job_processes(mark), 'processes of the killed job are still alive'
    assert (work / 'iter_2.pth').is_file() and not (work / 'iter_4.pth').exists()
    assert (work / 'iter_2.pth.rng-rank1').is_file()  # rank 1's random-number state

    out = run(['bash', 'tools/dist_train.sh', fault_cfg, '2', '--work-dir',
               str(work), '--resume'],
              env=dict(PORT=str(free_port())))
    assert 'resumed epoch: 0, iter: 2' in out and 'Iter(train) [4/4]' in out
    assert f'ExactResumeHook: random-number states restored from {work / "iter_2.pth"}' in out
    b2, b4 = (
        _state(work / f'iter_{i}.pth')['backbone.stages.3.1.pointwise_conv2.lora_B']
        for i in (2, 4))
    assert not torch.equal(b2, b4)  # the resumed iterations trained the adapters
    assert_same_weights(dist_straight / 'iter_4.pth', work / 'iter_4.pth')


def test_resume_past_a_truncated_checkpoint_with_another_process_count(
        fault_cfg, dist_straight, tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    for name in ('iter_2.pth', 'iter_2.pth.rng-rank1', 'iter_4.pth'):
        shutil.copy(dist_straight / name, work / name)
    data = (work / 'iter_4.pth').read_bytes()
    (work / 'iter_4.pth').write_bytes(data[:len(data) // 3])  # e.g. an older run's cut save
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    out = run([
        sys.executable, 'tools/train.py', fault_cfg, '--work-dir',
        str(work), '--resume', '--cfg-options', 'train_cfg.max_iters=3'
    ])
    assert f'--resume: {work / "iter_4.pth"} cannot be read (truncated' in out
    assert f'resuming from {work / "iter_2.pth"}, the newest readable checkpoint' in out
    assert 'was saved by a run of 2 processes, this run has 1' in out
    assert 'resumed epoch: 0, iter: 2' in out and 'Iter(train) [3/3]' in out


def test_resume_with_nothing_readable_is_one_error(fault_cfg, tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    (work / 'iter_2.pth').write_bytes(b'PK\x03\x04 cut short')
    out = run([sys.executable, 'tools/train.py', fault_cfg, '--work-dir',
               str(work), '--resume'],
              expect_fail=True)
    last = out.strip().splitlines()[-1]
    assert last.startswith(f'error: --resume: no checkpoint in {work} can be read ({work}/'
                           'iter_2.pth: truncated'), last
    assert 'Traceback' not in out
    out = run([
        sys.executable, 'tools/train.py', fault_cfg, '--work-dir',
        str(work), '--resume',
        str(work / 'iter_2.pth')
    ],
              expect_fail=True)
    assert out.strip().splitlines()[-1].startswith(
        f'error: --resume {work}/iter_2.pth: the checkpoint cannot be read (truncated')


def test_nan_loss_stops_training_with_one_error(fault_cfg, tmp_path):
    work = tmp_path / 'w'
    out = run([sys.executable, 'tools/train.py', fault_cfg, '--work-dir',
               str(work)],
              env=dict(MMLIERA_TEST_NAN_AT_ITER='3'),
              expect_fail=True)
    last = out.strip().splitlines()[-1]
    assert last.startswith('error: iteration 3: the loss is not finite (loss=nan, loss_cls=nan)'
                           f'; training stopped before this step was saved, the last checkpoint '
                           f'({work / "iter_2.pth"}) is the last good one'), last
    assert 'Traceback' not in out and 'loss_rpn_cls=' not in last
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')


def test_nan_on_one_rank_stops_every_rank_with_one_error(fault_cfg, tmp_path):
    """Rank 1 alone sees a NaN loss at iteration 3; its gradients reach rank 0's weights through
    DDP's all-reduce, so every rank must stop there and nothing after iteration 2 be saved."""
    work = tmp_path / 'w'
    out = run(['bash', 'tools/dist_train.sh', fault_cfg, '2', '--work-dir',
               str(work)],
              env=dict(
                  PORT=str(free_port()), MMLIERA_TEST_NAN_AT_ITER='3', MMLIERA_TEST_NAN_RANK='1'),
              expect_fail=True,
              timeout=300)
    took = time.time() - float((work / 'nan_at').read_text())
    errors = [ln for ln in out.splitlines() if ln.startswith('error: iteration')]
    assert len(errors) == 2 and errors[0] == errors[1], out[-3000:]  # one line per rank, equal
    assert errors[0].startswith('error: iteration 3: the loss is not finite on rank 1 (loss=nan')
    assert f'the last checkpoint ({work / "iter_2.pth"}) is the last good one' in errors[0]
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    state = _state(work / 'iter_2.pth')
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert took < 60, took  # every rank has ended (no rank waits in a collective)
    assert 'Traceback' not in out


def test_two_nodes_over_loopback(fault_cfg, dist_straight, tmp_path):
    """NNODES=2, one process each, on one machine: the same job as 2 processes on one node."""
    work, port = tmp_path / 'w', str(free_port())
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'tests'), ROOT]),
        NNODES='2',
        MASTER_ADDR='127.0.0.1',
        PORT=port)
    env.pop('OMP_NUM_THREADS', None)  # dist_run.sh shares the cores among the local nodes
    cmd = ['bash', 'tools/dist_train.sh', fault_cfg, '1', '--work-dir', str(work)]
    nodes = [
        subprocess.Popen(
            cmd,
            env=dict(env, NODE_RANK=str(r)),
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT) for r in (0, 1)
    ]
    outs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert 'GPU number: 2' in outs[0] and 'Iter(train) [4/4]' in outs[0]
    assert '2 nodes on this machine: OMP_NUM_THREADS=' in outs[0]
    assert_same_weights(dist_straight / 'iter_4.pth', work / 'iter_4.pth')
