"""AtomicCheckpointHook: mmengine's CheckpointHook whose ``last_checkpoint`` is written atomically.

LieRARunner writes every checkpoint through a temporary file that is renamed when complete
(:meth:`LieRARunner.save_checkpoint`); this hook does the same for the one-line
``work_dir/last_checkpoint`` that auto-resume reads, so a kill at any moment leaves the previous
pointer or the new one, never a cut one. Same arguments as ``CheckpointHook``; LieRARunner uses it
wherever a config asks for ``CheckpointHook``.
"""
import os
import os.path as osp
import shutil

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from ...checkpoint.atomic import write_text_atomic
from ...registry import HOOKS


class _WorkDirElsewhere:
    """The runner, except that ``work_dir`` is another folder (where CheckpointHook writes its
    ``last_checkpoint`` file)."""

    def __init__(self, runner, work_dir):
        self.__dict__.update(_runner=runner, work_dir=work_dir)

    def __getattr__(self, name):
        return getattr(self._runner, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (every argument of it) with an atomically replaced ``last_checkpoint``."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not is_main_process():
            return super()._save_checkpoint_with_step(runner, step, meta)
        staging = osp.join(runner.work_dir, f'.last_checkpoint-staging.tmp-{os.getpid()}')
        os.makedirs(staging, exist_ok=True)
        try:
            super()._save_checkpoint_with_step(_WorkDirElsewhere(runner, staging), step, meta)
            written = osp.join(staging, 'last_checkpoint')
            if osp.isfile(written):
                with open(written) as f:
                    write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), f.read())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
