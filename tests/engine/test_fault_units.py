"""Fault tolerance, in process and fast: atomic saves, the resume fallback, exact resume with
random draws in the main process, the non-finite loss guard, data-loader workers that die with
their process, the job sweep of tools/dist_run.sh, the one-line pretrained-load report."""
import functools
import logging
import os
import os.path as osp
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from helpers import ROOT
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import BaseModel

from mmliera import LieRARunner
from mmliera.checkpoint.atomic import atomic_path, is_partial, write_text_atomic
from mmliera.checkpoint.resume import (UnreadableCheckpointError, checkpoint_problem,
                                       find_resume_checkpoint)
from mmliera.checkpoint.safe_load import safe_load
from mmliera.engine.hooks import NonFiniteLossError
from mmliera.engine.hooks.exact_resume_hook import rank_state_file


class ToyData(torch.utils.data.Dataset):
    """Items with noise drawn from numpy's global generator in __getitem__ (num_workers=0:
    in the training process, like a random augmentation)."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        x = torch.full((4, ), float(i)) + torch.from_numpy(np.random.randn(4)).float()
        return dict(inputs=x, labels=x.sum(0, keepdim=True))


class ToyModel(BaseModel):
    """A linear model with dropout (torch's global generator) and an inf/NaN switch."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.scale = 1.0

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.nn.functional.dropout(inputs, 0.3, self.training)) * self.scale
        return dict(loss=((out - labels)**2).mean(), loss_aux=self.linear.weight.abs().sum())


class ScaleAtIter(Hook):
    """Multiplies the model output by ``value`` from iteration ``at`` on."""

    def __init__(self, at, value):
        self.at, self.value = at, value

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            runner.model.scale = self.value


def toy_runner(work_dir, max_iters=4, interval=2, hooks=(), **kw):
    torch.manual_seed(0)
    cfg = dict(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=interval, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks),
        randomness=dict(seed=0),
        experiment_name=f'toy_{osp.basename(str(work_dir))}_{time.time_ns()}')
    cfg.update(kw)
    return LieRARunner(**cfg)


def _weights(path):
    return safe_load(str(path))['state_dict']


# atomic writes


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / 'f.txt'
    write_text_atomic(target, 'complete')
    with pytest.raises(OSError, match='disk full'):
        with atomic_path(target) as tmp, open(tmp, 'w') as f:
            f.write('half of the new')
            raise OSError('disk full')
    assert target.read_text() == 'complete' and os.listdir(tmp_path) == ['f.txt']
    assert is_partial(f'.f.txt.tmp-{os.getpid()}') and not is_partial('iter_4.pth')


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """A writer that makes its file owner-only (safetensors does) still leaves a file with the
    permissions of any file this process creates (0o666 minus the umask)."""
    import stat

    import torch

    from mmliera import save_adapter_checkpoint
    from mmliera.models.peft import LieRALinear
    mask = os.umask(0o022)
    os.umask(mask)
    path = tmp_path / 'adapters.safetensors'
    save_adapter_checkpoint(torch.nn.Sequential(LieRALinear(4, 4, rank=2)), str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    with atomic_path(tmp_path / 'private') as tmp:
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    assert stat.S_IMODE((tmp_path / 'private').stat().st_mode) == 0o666 & ~mask


CUT_SCRIPT = r'''
import os, signal, sys
tests = os.path.join(sys.argv[1], 'tests')
sys.path[:0] = [sys.argv[1], os.path.join(tests, 'support'), os.path.join(tests, 'engine')]
from mmengine.fileio.backends import LocalBackend
from test_fault_units import toy_runner

runner = toy_runner(sys.argv[2], max_iters=2)
runner.train()
real_put = LocalBackend.put

def put_half_then_die(self, obj, filepath):
    real_put(self, obj[:len(obj) // 2], filepath)  # half of the bytes reach the disk
    os.kill(os.getpid(), signal.SIGKILL)  # killed while saving: no exception, no clean-up

LocalBackend.put = put_half_then_die
runner.train_loop._max_iters = 4
runner.train_loop.run()
'''


@pytest.mark.slow  # a process killed mid-save
def test_a_save_cut_short_leaves_no_file_under_the_final_name(tmp_path):
    work = tmp_path / 'w'
    done = subprocess.run(
        [sys.executable, '-c', CUT_SCRIPT, ROOT, str(work)],
        capture_output=True,
        text=True,
        timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert (work / 'iter_2.pth').is_file() and not (work / 'iter_4.pth').exists()
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert checkpoint_problem(str(work / 'iter_2.pth')) is None
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_2.pth'), [])
    partial = [n for n in os.listdir(work) if is_partial(n)]
    assert partial  # the cut write is under a temporary name, removed by the next resume
    runner = toy_runner(work, max_iters=4, resume=True)
    runner.train()
    assert not [n for n in os.listdir(work) if is_partial(n)]
    assert (work / 'iter_4.pth').is_file()


def test_last_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    import mmengine.hooks.checkpoint_hook as ckpt_hook_module
    runner = toy_runner(tmp_path, max_iters=2)
    runner.train()
    pointer = tmp_path / 'last_checkpoint'
    assert pointer.read_text() == str(tmp_path / 'iter_2.pth')

    class HalfWrite:

        def __init__(self, path, mode='r'):
            self.f = open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:5])
            self.f.flush()
            raise KeyboardInterrupt('killed while writing last_checkpoint')

    monkeypatch.setattr(ckpt_hook_module, 'open', HalfWrite, raising=False)
    runner.train_loop._max_iters = 4
    with pytest.raises(KeyboardInterrupt):
        runner.train_loop.run()
    assert (tmp_path / 'iter_4.pth').is_file()  # complete: written before the pointer
    assert pointer.read_text() == str(tmp_path / 'iter_2.pth')  # the old pointer, whole
    assert not [n for n in os.listdir(tmp_path) if is_partial(n)]


# which checkpoint --resume takes


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.fixture(scope='module')
def toy_checkpoints(tmp_path_factory):
    work = tmp_path_factory.mktemp('toy_ckpts')
    toy_runner(work, max_iters=6).train()
    return work


def _copy(src, dst, names):
    import shutil
    dst.mkdir(exist_ok=True)
    for n in names:
        shutil.copy(src / n, dst / n)
    return dst


def test_resume_candidates_newest_readable_first(toy_checkpoints, tmp_path):
    work = _copy(toy_checkpoints, tmp_path / 'w', ['iter_2.pth', 'iter_4.pth', 'iter_6.pth'])
    (work / 'last_checkpoint').write_text(str(work / 'iter_6.pth'))
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_6.pth'), [])

    _truncate(work / 'iter_6.pth')
    path, bad = find_resume_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth')
    assert [p for p, _ in bad] == [str(work / 'iter_6.pth')]
    assert bad[0][1].startswith('truncated or not a torch file'), bad

    (work / 'last_checkpoint').write_text('')  # cut while written by an older mmengine
    path, bad = find_resume_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth') and len(bad) == 2
    (work / 'last_checkpoint').unlink()
    (work / 'iter_4.pth').write_bytes(b'')
    assert find_resume_checkpoint(str(work))[0] == str(work / 'iter_2.pth')
    assert checkpoint_problem(str(work / 'iter_4.pth')) == 'empty file'


def test_resume_with_nothing_readable_is_one_error_and_nothing_is_nothing(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) == (None, [])
    torch.save({'not': 'a checkpoint'}, tmp_path / 'iter_2.pth')
    (tmp_path / 'epoch_1.pth').write_bytes(b'\x00' * 100)
    with pytest.raises(UnreadableCheckpointError) as e:
        find_resume_checkpoint(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith(f'--resume: no checkpoint in {tmp_path} can be read')
    assert 'iter_2.pth: not an mmengine checkpoint' in msg and 'epoch_1.pth' in msg
    assert 'without --resume' in msg


def test_auto_resume_falls_back_and_removes_partial_files(toy_checkpoints, tmp_path, mm_logs):
    work = _copy(toy_checkpoints, tmp_path / 'w', ['iter_2.pth', 'iter_4.pth'])
    _truncate(work / 'iter_4.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    (work / '.iter_6.pth.tmp-12345').write_bytes(b'partial')
    runner = toy_runner(work, max_iters=6, resume=True)
    logs = mm_logs()
    runner.train()
    text = logs.getvalue()
    assert (f'--resume: {work / "iter_4.pth"} cannot be read' in text
            and f'resuming from {work / "iter_2.pth"}, the newest readable' in text), text
    assert 'removed .iter_6.pth.tmp-12345' in text and 'resumed epoch: 0, iter: 2' in text
    assert not (work / '.iter_6.pth.tmp-12345').exists()
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_6.pth'), [])


@pytest.fixture
def mm_logs():
    """What the current MMLogger logs during the test (levelname message, records split by
    \\x1e); the runner built in the test becomes the current logger, so read it afterwards."""
    import io
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter('%(levelname)s %(message)s\x1e'))
    loggers = []

    def attach():
        logger = MMLogger.get_current_instance()
        logger.addHandler(handler)
        loggers.append(logger)
        return stream

    yield attach
    for logger in loggers:
        logger.removeHandler(handler)


# exact resume with random draws in the main process (num_workers=0)


def test_single_process_resume_is_bit_identical_with_main_process_draws(tmp_path):
    straight = tmp_path / 'straight'
    toy_runner(straight, max_iters=6).train()
    cut = tmp_path / 'cut'
    toy_runner(cut, max_iters=2).train()
    # python / numpy / torch draws between the save and the resume must not matter
    np.random.rand(7), torch.rand(3), __import__('random').random()
    toy_runner(cut, max_iters=6, resume=True).train()
    a, b = _weights(straight / 'iter_6.pth'), _weights(cut / 'iter_6.pth')
    assert not torch.equal(a['linear.weight'], _weights(cut / 'iter_2.pth')['linear.weight'])
    for k in a:
        assert torch.equal(a[k], b[k]), k


def toy_epoch_runner(work_dir, max_epochs=2, **kw):
    """The toy run by epoch: 6 items of batch 2, 3 iterations an epoch, a checkpoint each."""
    return toy_runner(
        work_dir,
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=True),
            logger=dict(type='LoggerHook', interval=1)),
        **kw)


def test_epoch_based_resume_is_bit_identical(tmp_path):
    straight = tmp_path / 'straight'
    toy_epoch_runner(straight, max_epochs=3).train()
    cut = tmp_path / 'cut'
    toy_epoch_runner(cut, max_epochs=1).train()
    np.random.rand(5), torch.rand(2)  # draws between the save and the resume
    runner = toy_epoch_runner(cut, max_epochs=3, resume=True)
    runner.train()
    assert runner.epoch == 3 and runner.iter == 9
    a, b = _weights(straight / 'epoch_3.pth'), _weights(cut / 'epoch_3.pth')
    assert not torch.equal(b['linear.weight'], _weights(cut / 'epoch_1.pth')['linear.weight'])
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_order_counts_iterations_not_file_numbers(tmp_path):
    """iter_* and epoch_* files in one folder: tried by the iterations each holds."""
    by_iter, by_epoch = tmp_path / 'by_iter', tmp_path / 'by_epoch'
    toy_runner(by_iter, max_iters=4).train()  # iter_2, iter_4
    toy_epoch_runner(by_epoch, max_epochs=2).train()  # epoch_1 (3 iterations), epoch_2 (6)
    work = _copy(by_iter, tmp_path / 'w', ['iter_2.pth', 'iter_4.pth'])
    _copy(by_epoch, work, ['epoch_1.pth', 'epoch_2.pth'])
    assert find_resume_checkpoint(str(work)) == (str(work / 'epoch_2.pth'), [])
    _truncate(work / 'epoch_2.pth')
    path, bad = find_resume_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth') and [p for p, _ in bad] == [str(work / 'epoch_2.pth')]
    _truncate(work / 'iter_4.pth')
    path, bad = find_resume_checkpoint(str(work))
    assert path == str(work / 'epoch_1.pth')
    assert [p for p, _ in bad] == [str(work / 'epoch_2.pth'), str(work / 'iter_4.pth')]
    # the file last_checkpoint names comes first, whatever it holds
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_2.pth'), [])


class Noisy(torch.utils.data.Dataset):
    """Each item a draw of numpy's global generator (an augmentation in a worker)."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return float(np.random.rand())


def _persistent_loader(seed=0):
    from mmengine.dataset import worker_init_fn

    from mmliera.engine.worker_init import reseed_workers_each_epoch
    loader = torch.utils.data.DataLoader(
        Noisy(),
        batch_size=2,
        num_workers=1,
        persistent_workers=True,
        worker_init_fn=functools.partial(worker_init_fn, num_workers=1, rank=0, seed=seed))
    return reseed_workers_each_epoch(loader)


def _epoch(loader, epoch):
    from mmliera.engine.worker_init import set_worker_epoch
    set_worker_epoch(loader, epoch)
    return torch.cat(list(loader)).tolist()


def test_persistent_workers_draw_per_epoch_what_new_workers_draw():
    """A resumed run's new workers at epoch 2 draw what the uninterrupted run's persistent
    workers draw there; epoch 0 draws as mmengine seeds it, and epochs differ."""
    straight = _persistent_loader()
    epochs = [_epoch(straight, e) for e in range(3)]
    resumed = _persistent_loader()
    assert _epoch(resumed, 2) == epochs[2]
    assert len({tuple(e) for e in epochs}) == 3
    np.random.seed(0)  # mmengine's worker seed for seed 0, rank 0, worker 0
    assert epochs[0] == pytest.approx([np.random.rand() for _ in range(4)])


# ExactResumeHook's fallbacks, as rank 1 of 2 (the hook's view of the world patched)


@pytest.fixture
def as_rank_1_of_2(monkeypatch):
    from mmliera.engine.hooks import exact_resume_hook
    monkeypatch.setattr(exact_resume_hook, 'get_dist_info', lambda: (1, 2))


def _as_saved_by_2_processes(src, dst):
    ckpt = safe_load(str(src))
    ckpt['rng_state']['world_size'] = 2
    torch.save(ckpt, str(dst))
    return ckpt


@pytest.mark.parametrize('damage', ['missing', 'damaged', 'intact'])
def test_a_lost_rank_state_file_is_a_warning_not_a_crash(tmp_path, as_rank_1_of_2, damage):
    straight = tmp_path / 'straight'
    toy_runner(straight, max_iters=4, interval=2).train()
    cut = tmp_path / 'cut'
    cut.mkdir()
    ckpt = _as_saved_by_2_processes(straight / 'iter_2.pth', cut / 'iter_2.pth')
    rank_file = cut / 'iter_2.pth.rng-rank1'
    if damage == 'damaged':
        rank_file.write_bytes(b'PK\x03\x04 cut short')
    elif damage == 'intact':  # rank 1's states: here the one process's own
        torch.save(ckpt['rng_state'], str(rank_file))
    (cut / 'last_checkpoint').write_text(str(cut / 'iter_2.pth'))
    runner = toy_runner(cut, max_iters=4, interval=2, resume=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        runner.train()
    said = [str(w.message) for w in caught if 'ExactResumeHook' in str(w.message)]
    same = torch.equal(
        _weights(straight / 'iter_4.pth')['linear.weight'],
        _weights(cut / 'iter_4.pth')['linear.weight'])
    if damage == 'intact':
        assert said == [] and same  # restored: bit-identical to the straight run
    else:
        assert len(said) == 1 and f'cannot read its random-number state {rank_file}' in said[0]
        assert 'not bit-exact' in said[0] and runner.iter == 4 and not same


def test_stale_rank_state_files_go_with_their_checkpoints(tmp_path, as_rank_1_of_2):
    toy_runner(
        tmp_path,
        max_iters=6,
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1),
            logger=dict(type='LoggerHook', interval=1))).train()
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith(('iter_', 'epoch_')))
    assert names == ['iter_6.pth', 'iter_6.pth.rng-rank1']
    assert safe_load(str(tmp_path / 'iter_6.pth.rng-rank1'))['world_size'] == 2


def test_load_from_restores_no_random_state(tmp_path):
    """A checkpoint given as ``load_from`` starts a new run with its own seed: its saved
    random-number states are not restored (the same weights as from a copy without them)."""
    toy_runner(tmp_path / 'src', max_iters=2).train()
    src = tmp_path / 'src' / 'iter_2.pth'
    bare = tmp_path / 'bare.pth'
    ckpt = safe_load(str(src))
    assert 'rng_state' in ckpt
    del ckpt['rng_state']
    torch.save(ckpt, str(bare))
    for name, path in (('with', src), ('without', bare)):
        toy_runner(tmp_path / name, max_iters=2, load_from=str(path)).train()
    a, b = (_weights(tmp_path / name / 'iter_2.pth') for name in ('with', 'without'))
    assert not torch.equal(a['linear.weight'], _weights(src)['linear.weight'])  # it trained
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_rank_state_file_name():
    assert rank_state_file('/w/iter_4.pth', 3) == '/w/iter_4.pth.rng-rank3'


# non-finite loss


@pytest.mark.parametrize('value,shown', [(float('nan'), 'loss=nan'), (float('inf'), 'loss=inf')])
def test_nonfinite_loss_stops_before_the_step_is_saved(tmp_path, value, shown):
    runner = toy_runner(tmp_path, max_iters=4, hooks=[ScaleAtIter(3, value)])
    with pytest.raises(NonFiniteLossError) as e:
        runner.train()
    msg = str(e.value)
    assert msg.startswith(f'iteration 3: the loss is not finite ({shown}')
    assert 'loss_aux' not in msg  # finite terms are not named
    assert str(tmp_path / 'iter_2.pth') in msg and 'default_hooks.nonfinite_loss=None' in msg
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) == ['iter_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_2.pth')
    assert torch.isfinite(_weights(tmp_path / 'iter_2.pth')['linear.weight']).all()


def test_nonfinite_loss_guard_can_be_turned_off(tmp_path):
    runner = toy_runner(
        tmp_path,
        max_iters=4,
        hooks=[ScaleAtIter(3, float('nan'))],
        default_hooks=dict(
            nonfinite_loss=None, checkpoint=dict(type='CheckpointHook', interval=2,
                                                 by_epoch=False)))
    assert not any(type(h).__name__ == 'NonFiniteLossHook' for h in runner.hooks)
    runner.train()  # mmengine's behaviour: it trains on
    assert torch.isnan(_weights(tmp_path / 'iter_4.pth')['linear.weight']).all()


# processes that outlive their parent

WORKER_SCRIPT = r'''
import importlib.util, os, sys, time, torch
# the module alone, by its path (it imports only torch and the standard library): not the
# whole mmliera package and its mmdet / mmpretrain imports
spec = importlib.util.spec_from_file_location(
    'worker_init', os.path.join(sys.argv[1], 'mmliera', 'engine', 'worker_init.py'))
worker_init = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker_init)
end_workers_with_process = worker_init.end_workers_with_process

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        with open(sys.argv[2], 'w') as f:
            f.write(str(os.getpid()))
        time.sleep(120)  # a worker busy loading: it never polls for its parent
        return i

loader = torch.utils.data.DataLoader(Slow(), num_workers=1)
if sys.argv[3] == 'fix':
    end_workers_with_process(loader)
next(iter(loader))
'''


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:  # a zombie is dead
        return f.read().split(')')[-1].split()[0] != 'Z'


def _wait_gone(pid, seconds):
    deadline = time.time() + seconds
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


@pytest.mark.slow  # processes killed and waited for
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl is Linux only')
@pytest.mark.parametrize('fix', ['fix', 'plain'])
def test_a_killed_process_leaves_no_busy_worker(tmp_path, fix):
    script, pid_file = tmp_path / 'w.py', tmp_path / 'worker.pid'
    script.write_text(WORKER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), ROOT, str(pid_file), fix])
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        # with the fix the kernel kills the worker at once; without it the worker sleeps on
        assert _wait_gone(worker, 3) == (fix == 'fix')
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


ORPHAN_SCRIPT = r'''
import os, signal, subprocess, sys
child = subprocess.Popen([sys.executable, '-c', 'import signal, time; '
                          'signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'],
                         start_new_session=True)  # out of torchrun's reach, deaf to SIGTERM
open(sys.argv[1], 'w').write(str(child.pid))
sys.exit(3)
'''


@pytest.mark.slow  # a 2-process job stopped
@pytest.mark.skipif(not osp.isdir('/proc/self'), reason='the sweep reads /proc')
def test_dist_run_stops_what_the_job_leaves(tmp_path):
    from helpers import free_port
    script, pid_file = tmp_path / 'orphan.py', tmp_path / 'orphan.pid'
    script.write_text(ORPHAN_SCRIPT)
    done = subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_run.sh'),
         str(script), '1',
         str(pid_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PORT=str(free_port())))
    orphan = int(pid_file.read_text())
    try:
        assert done.returncode != 0
        assert 'stopping 1 leftover process(es) of the job' in done.stderr, done.stderr[-2000:]
        assert _wait_gone(orphan, 2)
    finally:
        if _alive(orphan):
            os.kill(orphan, signal.SIGKILL)


# one line per pretrained load


def test_pretrained_load_is_one_info_line(tmp_path, mm_logs):
    from mmdet.registry import MODELS
    from tiny_demo import write_random_backbone
    path = tmp_path / 'backbone.pth'
    write_random_backbone(path)
    ckpt = torch.load(path, weights_only=True)
    dropped = 'backbone.stages.3.0.pointwise_conv1.bias'
    del ckpt['state_dict'][dropped]
    ckpt['state_dict']['backbone.stages.9.extra'] = torch.zeros(1)
    torch.save(ckpt, path)
    backbone = MODELS.build(
        dict(
            type='LieRAConvNeXt',
            arch='atto',
            out_indices=[0, 1, 2, 3],
            use_grn=True,
            layer_scale_init_value=0.,
            gap_before_final_norm=False,
            adapter=dict(rank=2),
            init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.')))
    logs = mm_logs()
    backbone.init_weights()
    text = logs.getvalue()
    n_base = sum(1 for k in backbone.state_dict() if 'lora_' not in k)
    n_adapter = sum(1 for k in backbone.state_dict() if 'lora_' in k)
    assert (f'LieRAConvNeXt: {n_base - 1} of {n_base} tensors loaded into the frozen weights; '
            f'{n_adapter} adapter tensors (40 LieRA layers) start fresh') in text, text
    warnings = [r for r in text.split('\x1e') if r.strip().startswith('WARNING')]
    assert len(warnings) == 1 and 'do not match exactly' in warnings[0], warnings
    assert 'stages.3.0.pointwise_conv1.bias' in warnings[0] and 'stages.9.extra' in warnings[0]
    assert 'lora_' not in warnings[0]
    assert not hasattr(backbone, '_liera_load_report') or not backbone._liera_load_report
    # outside the report, torch's own load lists the adapters as missing again
    missing = backbone.load_state_dict({}, strict=False).missing_keys
    assert any('lora_A' in k for k in missing)


def test_the_end_of_a_distributed_run_lets_ddp_go_before_the_process_group():
    """``end_distributed(runner)``: the runner's DDP wrapper (whose reducer holds the process
    group) is released and the process group destroyed while the interpreter is alive; the
    plain model stays the runner's. (A gloo rank with a live wrapper at exit could abort.)"""
    import types
    import weakref

    import torch.distributed as dist
    from helpers import free_port
    from mmengine.model import MMDistributedDataParallel

    from mmliera.cli.launch import end_distributed
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)
    try:
        model = torch.nn.Linear(4, 2)
        runner = types.SimpleNamespace(model=MMDistributedDataParallel(model, device_ids=None))
        runner.model(torch.randn(3, 4)).sum().backward()
        wrapper = weakref.ref(runner.model)
        end_distributed(runner)
        assert wrapper() is None and runner.model is model and not dist.is_initialized()
        end_distributed(runner)  # (nothing left to end: a no-op)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
