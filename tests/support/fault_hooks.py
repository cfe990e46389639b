"""Test-only hooks that make faults happen at a chosen iteration (set by environment variables).

- ``KillRankHook``: MMLIERA_TEST_KILL_RANK=R with MMLIERA_TEST_KILL_AFTER_ITER=N sends SIGKILL
  to rank R itself once iteration N's checkpoint (or the file MMLIERA_TEST_KILL_WAIT_FOR names
  in the work dir) is on disk (its workers are left as orphans); the time of the kill goes to
  ``work_dir/killed_at``.
- ``PauseInValHook``: MMLIERA_TEST_PAUSE_IN_VAL_AT_ITER=N waits (up to 120 s) in the
  validation after iteration N (its checkpoint saved, the validation not logged), after
  writing ``work_dir/paused_at``.
- ``NaNAtIterHook``: MMLIERA_TEST_NAN_AT_ITER=N fills the box classifier's bias with NaN before
  iteration N, so that iteration's loss is NaN (on rank MMLIERA_TEST_NAN_RANK only, when set).
"""
import os
import os.path as osp
import signal
import time

import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


def _env_int(name):
    return int(os.environ.get(name, 0))


@HOOKS.register_module()
class KillRankHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook and ExactResumeHook

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        n = _env_int('MMLIERA_TEST_KILL_AFTER_ITER')
        rank = os.environ.get('MMLIERA_TEST_KILL_RANK')
        if not n or rank is None or runner.iter + 1 != n or get_rank() != int(rank):
            return
        ckpt = osp.join(runner.work_dir,
                        os.environ.get('MMLIERA_TEST_KILL_WAIT_FOR', f'iter_{n}.pth'))
        deadline = time.time() + 120
        while not osp.exists(ckpt) and time.time() < deadline:  # rank 0 saves it
            time.sleep(0.1)
        with open(osp.join(runner.work_dir, 'killed_at'), 'w') as f:
            f.write(repr(time.time()))
        os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PauseInValHook(Hook):

    def before_val_epoch(self, runner):
        if runner.iter != _env_int('MMLIERA_TEST_PAUSE_IN_VAL_AT_ITER'):
            return
        with open(osp.join(runner.work_dir, 'paused_at'), 'w') as f:
            f.write(repr(time.time()))
        time.sleep(120)


@HOOKS.register_module()
class NaNAtIterHook(Hook):

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        rank = os.environ.get('MMLIERA_TEST_NAN_RANK')
        if rank is not None and get_rank() != int(rank):
            return
        if runner.iter + 1 == _env_int('MMLIERA_TEST_NAN_AT_ITER'):
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            with torch.no_grad():
                model.roi_head.bbox_head.fc_cls.bias.fill_(float('nan'))
            with open(osp.join(runner.work_dir, 'nan_at'), 'w') as f:
                f.write(repr(time.time()))
