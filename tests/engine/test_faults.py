"""Faults in real runs of the (tiny) demo through tools/: a rank killed with SIGKILL, exact
2-process resume, damaged checkpoints, a NaN loss, two nodes over loopback."""
import os
import shutil
import subprocess
import time
import uuid

import pytest
import torch
from helpers import (ROOT, free_port, hidden_cuda, run, runner_output, start, stop_group,
                     tool_in_process, write_cfg)
from tiny_demo import tiny_demo_cfg

from mmliera.checkpoint.safe_load import safe_load

pytestmark = pytest.mark.slow  # multi-process training runs with faults

MARK = 'MMLIERA_TEST_JOB_MARK'


@pytest.fixture(scope='module', autouse=True)
def _on_the_cpu():
    """These runs compare CPU (gloo) multi-process jobs bit for bit: the CPU even where a GPU is,
    and every job's threads set the same way, by dist_run.sh (its share of the cores per local
    process), not by an OMP_NUM_THREADS that an xdist worker sets for what its tests start."""
    omp = os.environ.pop('OMP_NUM_THREADS', None)
    with hidden_cuda():
        yield
    if omp is not None:
        os.environ['OMP_NUM_THREADS'] = omp


@pytest.fixture(scope='module')
def fault_cfg(tmp_path_factory):
    """The tiny demo at 128 px, 4 iterations of batch 2, checkpoints every 2, one loader worker, no
    validation (no test reads its mAP), and the fault hooks of tests/support/fault_hooks.py
    (inactive unless their variables are set)."""
    tmp = tmp_path_factory.mktemp('faults')
    return write_cfg(
        tmp / 'faults.py', tiny_demo_cfg(tmp, iters=4, validate=False, size=128), """
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


def kill_rank_1_and_wait(cfg, work, after_iter, **env):
    """A 2-process job of ``cfg`` whose rank 1 is SIGKILLed after iteration ``after_iter``; it
    must end within 60 s of the kill and leave no process. Returns its output."""
    mark = uuid.uuid4().hex
    out = run(
        ['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir',
         str(work)],
        env={
            'PORT': str(free_port()),
            'MMLIERA_TEST_KILL_RANK': '1',
            'MMLIERA_TEST_KILL_AFTER_ITER': str(after_iter),
            MARK: mark,
            **env
        },
        expect_fail=True)
    exited = time.time()
    killed_at = float((work / 'killed_at').read_text())
    assert 'SIGKILL' in out and exited - killed_at < 60, (exited - killed_at, out[-3000:])
    deadline = exited + 15
    while job_processes(mark) and time.time() < deadline:
        time.sleep(0.2)
    assert not job_processes(mark), 'processes of the killed job are still alive'
    return out


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='reads /proc')
def test_killed_rank_ends_the_job_and_resume_is_bit_identical(fault_cfg, dist_straight, tmp_path):
    work = tmp_path / 'killed'
    kill_rank_1_and_wait(fault_cfg, work, 2)
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


@pytest.fixture(scope='module')
def epoch_cfg(fault_cfg, tmp_path_factory):
    """The fault config by epoch, as the paper's configs train: 2 epochs of 2 iterations
    (8 images, 2 ranks of batch 2), a checkpoint and an adapter file every epoch."""
    tmp = tmp_path_factory.mktemp('by_epoch')
    return write_cfg(
        tmp / 'by_epoch.py', fault_cfg, """
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=2, val_interval=1000)
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
log_processor = dict(by_epoch=True)
custom_hooks = [dict(type='LieRAFreezeHook'), dict(type='KillRankHook'),
                dict(type='AdapterCheckpointHook', by_epoch=True, interval=1)]
""")


def _adapters(path):
    from safetensors.torch import load_file
    return load_file(str(path))


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='reads /proc')
def test_epoch_based_kill_mid_epoch_and_resume_is_bit_identical(epoch_cfg, tmp_path):
    straight = tmp_path / 'straight'
    run(['bash', 'tools/dist_train.sh', epoch_cfg, '2', '--work-dir',
         str(straight)],
        env=dict(PORT=str(free_port())))
    work = tmp_path / 'killed'  # killed after iteration 3: the middle of epoch 2
    kill_rank_1_and_wait(epoch_cfg, work, 3, MMLIERA_TEST_KILL_WAIT_FOR='epoch_1.pth')
    assert (work / 'epoch_1.pth').is_file() and not (work / 'epoch_2.pth').exists()
    assert (work / 'epoch_1.pth.rng-rank1').is_file()
    assert (work / 'adapters_epoch_1.safetensors').is_file()
    assert not (work / 'adapters_epoch_2.safetensors').exists()

    out = run([
        'bash', 'tools/dist_train.sh', epoch_cfg, '2', '--work-dir',
        str(work), '--resume',
        str(work / 'epoch_1.pth')
    ],
              env=dict(PORT=str(free_port())))
    assert 'resumed epoch: 1, iter: 2' in out and 'Epoch(train) [2][2/2]' in out, out[-3000:]
    assert f'random-number states restored from {work / "epoch_1.pth"}' in out
    assert_same_weights(straight / 'epoch_2.pth', work / 'epoch_2.pth')
    for epoch in (1, 2):  # the adapter files by epoch, equal to the uninterrupted run's
        a, b = (_adapters(w / f'adapters_epoch_{epoch}.safetensors') for w in (straight, work))
        assert a.keys() == b.keys() and any('lora_B' in k for k in a)
        for k in a:
            assert torch.equal(a[k], b[k]), k
    key = next(k for k in a if k.endswith('lora_B'))
    assert not torch.equal(_adapters(work / 'adapters_epoch_1.safetensors')[key], a[key])


def test_resume_past_a_truncated_checkpoint_with_another_process_count(
        fault_cfg, dist_straight, tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    for name in ('iter_2.pth', 'iter_2.pth.rng-rank1', 'iter_4.pth'):
        shutil.copy(dist_straight / name, work / name)
    data = (work / 'iter_4.pth').read_bytes()
    (work / 'iter_4.pth').write_bytes(data[:len(data) // 3])  # e.g. an older run's cut save
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    out = runner_output('train', fault_cfg, '--work-dir', work, '--resume', '--cfg-options',
                        'train_cfg.max_iters=3')
    assert f'--resume: {work / "iter_4.pth"} cannot be read (truncated' in out
    assert f'resuming from {work / "iter_2.pth"}, the newest readable checkpoint' in out
    assert 'was saved by a run of 2 processes, this run has 1' in out
    assert 'resumed epoch: 0, iter: 2' in out and 'Iter(train) [3/3]' in out


def test_resume_with_nothing_readable_is_one_error(fault_cfg, tmp_path):
    """(in-process: it stops before any training; tests/tools/test_tool_errors.py checks that a real
    process shows one line and no traceback)"""
    work = tmp_path / 'w'
    work.mkdir()
    (work / 'iter_2.pth').write_bytes(b'PK\x03\x04 cut short')
    code, _, err = tool_in_process('train', fault_cfg, '--work-dir', work, '--resume')
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith(
        f'error: --resume: no checkpoint in {work} can be read ({work}/iter_2.pth: truncated'), err
    assert 'Traceback' not in err
    code, _, err = tool_in_process('train', fault_cfg, '--work-dir', work, '--resume',
                                   work / 'iter_2.pth')
    assert code == 1 and err.strip().splitlines()[-1].startswith(
        f'error: --resume {work}/iter_2.pth: the checkpoint cannot be read (truncated'), err


def test_nan_loss_stops_training_with_one_error(fault_cfg, tmp_path):
    work = tmp_path / 'w'
    out = runner_output(
        'train',
        fault_cfg,
        '--work-dir',
        work,
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
        PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'tests', 'support'), ROOT]),
        NNODES='2',
        MASTER_ADDR='127.0.0.1',
        PORT=port)
    env.pop('OMP_NUM_THREADS', None)  # dist_run.sh shares the cores among the local nodes
    cmd = ['bash', 'tools/dist_train.sh', fault_cfg, '1', '--work-dir', str(work)]
    logs = [tmp_path / f'node{r}.log' for r in (0, 1)]
    nodes = [
        start(
            cmd,
            env=dict(env, NODE_RANK=str(r)),
            stdout=open(logs[r], 'w'),
            stderr=subprocess.STDOUT) for r in (0, 1)
    ]
    try:  # one node failing ends the wait: its peer gets 60 s, not the whole timeout
        deadline, failed_at = time.time() + 600, None
        while any(p.poll() is None for p in nodes) and time.time() < deadline:
            if failed_at is None and any(p.poll() not in (None, 0) for p in nodes):
                failed_at = time.time()
            if failed_at is not None and time.time() > failed_at + 60:
                break
            time.sleep(0.5)
    finally:
        for p in nodes:
            if p.poll() is None:
                stop_group(p)
            p.wait()
    outs = [log.read_text() for log in logs]
    assert [p.returncode for p in nodes] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert 'GPU number: 2' in outs[0] and 'Iter(train) [4/4]' in outs[0]
    assert '2 nodes on this machine: OMP_NUM_THREADS=' in outs[0]
    assert_same_weights(dist_straight / 'iter_4.pth', work / 'iter_4.pth')
