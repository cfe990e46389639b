"""ExactResumeHook: every rank's random-number state is saved with each checkpoint and restored
on resume, so a resumed run (one process or many) continues exactly like an uninterrupted one.

mmengine restores weights, optimizer, schedulers and the iteration count, but not the random
number generators: after a resume RPN / RoI sampling and augmentation draw other numbers. Saved
per checkpoint ``C``:

- rank 0: ``C['rng_state']`` (python, numpy, torch, CUDA and the train loader's generator),
  written in ``before_save_checkpoint`` (mmengine saves on rank 0 only);
- rank r > 0: its own small file ``C.rng-rank{r}`` beside ``C``, written atomically by that
  rank right after ``CheckpointHook`` ran. No collective is involved, so checkpointing cannot
  hang on a slow or dead rank.

On resume the states are restored just before the first batch after the ones mmengine skips
(re-iterating the loader draws from the global generators when ``num_workers=0``). A resume with
another number of processes, or without a rank's file, continues with fresh draws and says so.
LieRARunner installs this hook and gives data loaders a private generator.
"""
import glob
import os
import os.path as osp
import random
import warnings

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook

from ...checkpoint.atomic import atomic_path
from ...checkpoint.safe_load import safe_load
from ...registry import HOOKS
from ..worker_init import set_worker_epoch


def get_rng_state():
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _cpu(t):
    """A generator state as the CPU ByteTensor torch wants: mmengine's resume maps every tensor
    of a checkpoint to the GPU on a CUDA machine (``map_location='default'``)."""
    return t.cpu() if isinstance(t, torch.Tensor) else t


def set_rng_state(state):
    torch.set_rng_state(_cpu(state['torch']))
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_cpu(s) for s in state['cuda']])


def rank_state_file(checkpoint, rank):
    """The file beside ``checkpoint`` that holds rank ``rank``'s states (rank > 0)."""
    return f'{checkpoint}.rng-rank{rank}'


def _train_generator(runner):
    loader = getattr(runner.train_loop, 'dataloader', None)
    return getattr(loader, 'generator', None)


def _states(runner):
    """This rank's states: global generators plus the train loader's private one."""
    gen = _train_generator(runner)
    return dict(
        world_size=get_dist_info()[1],
        state=get_rng_state(),
        loader=None if gen is None else gen.get_state())


class _RestoreBeforeBatch:
    """Iterator wrapper that calls ``restore`` once, right before batch number ``skip + 1``."""

    def __init__(self, iterator, skip, restore):
        self._iterator, self._skip, self._restore = iterator, skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._restore is not None:
            self._restore()
            self._restore = None
        self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save every rank's RNG states with each checkpoint; restore them on resume."""

    priority = 95  # after CheckpointHook (VERY_LOW, 90) in after_train_iter / epoch

    def __init__(self):
        self._saved = None  # states from the resumed checkpoint: rank 0's
        self._seen_ckpt = None  # the last checkpoint whose state file this rank wrote

    # saving

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_state'] = _states(runner)

    def _write_rank_file(self, runner):
        ckpt = runner.message_hub.get_info('last_ckpt')
        rank, world_size = get_dist_info()
        if ckpt is None or ckpt == self._seen_ckpt or '://' in str(ckpt):
            return
        self._seen_ckpt = ckpt
        if rank == 0 or world_size == 1:
            return
        with atomic_path(rank_state_file(ckpt, rank)) as tmp:
            torch.save(_states(runner), tmp)
        for old in glob.glob(rank_state_file(osp.join(osp.dirname(ckpt), '*'), rank)):
            stem = old[:-len(f'.rng-rank{rank}')]
            if stem != ckpt and not osp.exists(stem):  # its checkpoint was removed
                try:
                    os.remove(old)
                except OSError:
                    pass

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._write_rank_file(runner)

    def after_train_epoch(self, runner):
        self._write_rank_file(runner)

    def after_val_epoch(self, runner, metrics=None):
        self._write_rank_file(runner)

    def before_train_epoch(self, runner):
        loader = getattr(runner.train_loop, 'dataloader', None)
        if loader is not None:  # persistent workers reseed from the epoch (worker_init.py)
            set_worker_epoch(loader, runner.epoch)

    # restoring

    def after_load_checkpoint(self, runner, checkpoint):
        # resume only: a checkpoint given as load_from starts a new run with its own seed
        if getattr(runner, '_resume', False):
            self._saved = checkpoint.get('rng_state')

    def before_train(self, runner):
        self._seen_ckpt = runner.message_hub.get_info('last_ckpt')
        saved, self._saved = self._saved, None
        if not saved:
            return
        rank, world_size = get_dist_info()
        source = getattr(runner, 'liera_resumed_from', None) or self._seen_ckpt
        if saved.get('world_size', 1) != world_size:
            if rank == 0:
                runner.logger.warning(
                    f'ExactResumeHook: {source} was saved by a run of {saved["world_size"]} '
                    f'processes, this run has {world_size}. Weights, optimizer, schedule and '
                    'iteration resume, but not exactly: the data order and the random draws '
                    '(sampling, augmentation) follow the new process count. Resume with '
                    f'{saved["world_size"]} processes to continue bit for bit.')
            return
        if rank > 0:
            path = rank_state_file(source, rank) if source else None
            try:
                saved = safe_load(path)
            except Exception as e:  # missing (killed before writing it) or damaged
                warnings.warn(f'ExactResumeHook: rank {rank} cannot read its random-number '
                              f'state {path} ({type(e).__name__}); this rank continues with '
                              'fresh random draws, so the resume is not bit-exact')
                return

        def restore():
            set_rng_state(saved['state'])
            gen = _train_generator(runner)
            if gen is not None and saved.get('loader') is not None:
                gen.set_state(_cpu(saved['loader']))

        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop skips runner.iter batches
            loop.dataloader_iterator = _RestoreBeforeBatch(loop.dataloader_iterator, runner.iter,
                                                           restore)
        else:  # epoch-based loops resume at an epoch start: nothing is skipped
            restore()
        if rank == 0:
            others = f' (ranks > 0: from {rank_state_file(source, "<rank>")})' \
                if world_size > 1 else ''
            runner.logger.info(f'ExactResumeHook: random-number states restored from {source}'
                               f'{others}')
