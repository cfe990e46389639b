"""Test-only hook: exit the process right after iteration N's checkpoint (a simulated kill)."""
import multiprocessing
import os

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class KillAfterIterHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        n = int(os.environ.get('MMLIERA_TEST_KILL_AFTER_ITER', 0))
        if n and runner.iter + 1 == n:
            print(f'killed after iteration {n}', flush=True)
            for child in multiprocessing.active_children():  # data loader workers
                child.kill()
            os._exit(17)
