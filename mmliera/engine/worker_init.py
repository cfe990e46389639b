"""Data-loader workers that end with their process and draw per epoch what a resume can redo.

- End with their process: torch's workers notice a dead parent only when they next poll, and one
  blocked elsewhere stays alive as an orphan holding its memory. On Linux,
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` makes the kernel kill the worker as soon as the process
  that started it exits, however it exits.
- Seeds per epoch: a persistent worker's random state (augmentations drawn in the worker) runs
  on from one epoch into the next, so a run resumed at an epoch start, whose workers are new,
  would draw other augmentations than the uninterrupted run. With
  :func:`reseed_workers_each_epoch`, a worker reseeds python, numpy and torch before the first
  item of every epoch e > 0 from (its start seed, e); epoch 0 keeps mmengine's worker seeds, so
  iteration-based runs (one "epoch") draw what they drew before.
"""
import ctypes
import functools
import multiprocessing
import os
import random
import signal
import sys

import numpy as np
import torch

PR_SET_PDEATHSIG = 1


def die_with_parent(worker_id, parent_pid, init_fn=None):
    """``worker_init_fn``: ask for SIGKILL when the parent exits, then run ``init_fn``."""
    if sys.platform.startswith('linux'):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    if init_fn is not None:
        init_fn(worker_id)


def end_workers_with_process(loader):
    """Make ``loader``'s workers (if any) end when this process ends; returns ``loader``."""
    if getattr(loader, 'num_workers', 0) > 0:
        loader.worker_init_fn = functools.partial(
            die_with_parent, parent_pid=os.getpid(), init_fn=loader.worker_init_fn)
    return loader


def epoch_seed(root, epoch):
    """The seed a worker started with ``root`` takes at ``epoch`` (independent of history)."""
    return int(np.random.SeedSequence([root, epoch]).generate_state(1)[0])


def _seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _reseed_by_epoch(worker_id, epoch, init_fn=None):
    """``worker_init_fn``: run ``init_fn``, then make this worker's dataset reseed everything
    whenever the shared ``epoch`` value changes (checked before each item)."""
    if init_fn is not None:
        init_fn(worker_id)
    root = torch.initial_seed()  # mmengine's worker seed: seed + rank and worker id
    dataset = torch.utils.data.get_worker_info().dataset
    base, seen = type(dataset), [0]

    def __getitem__(self, idx):
        if epoch.value != seen[0]:
            seen[0] = epoch.value
            _seed_all(epoch_seed(root, seen[0]))
        return base.__getitem__(self, idx)

    try:  # this worker's copy only: the dataset in the main process is untouched
        dataset.__class__ = type(base.__name__, (base, ), dict(__getitem__=__getitem__))
    except TypeError:  # a class that cannot be subclassed this way: mmengine's seeds stand
        pass


def reseed_workers_each_epoch(loader):
    """Give ``loader``'s persistent workers per-epoch seeds (:func:`epoch_seed`); the train
    loop tells them the epoch through :func:`set_worker_epoch`. Returns ``loader``."""
    if getattr(loader, 'num_workers', 0) > 0 and getattr(loader, 'persistent_workers', False):
        ctx = loader.multiprocessing_context
        if ctx is None or isinstance(ctx, str):
            ctx = multiprocessing.get_context(ctx)
        epoch = ctx.RawValue('q', 0)
        loader.liera_worker_epoch = epoch
        loader.worker_init_fn = functools.partial(
            _reseed_by_epoch, epoch=epoch, init_fn=loader.worker_init_fn)
    return loader


def set_worker_epoch(loader, epoch):
    """Tell ``loader``'s workers (see :func:`reseed_workers_each_epoch`) that ``epoch`` starts."""
    value = getattr(loader, 'liera_worker_epoch', None)
    if value is not None:
        value.value = int(epoch)
