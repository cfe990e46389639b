"""Data-loader workers that end with their process, so a killed rank leaves no worker behind.

torch's workers notice a dead parent only when they next poll, and one blocked elsewhere stays
alive as an orphan holding its memory. On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` makes the
kernel kill the worker as soon as the process that started it exits, however it exits.
"""
import ctypes
import functools
import os
import signal
import sys

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
