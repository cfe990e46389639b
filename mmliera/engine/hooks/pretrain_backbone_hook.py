"""PretrainBackboneHook: make the pretrained backbone checkpoint a config starts from, if
missing."""
import os
import os.path as osp
import subprocess
import sys

import torch
import torch.distributed as dist
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook

from ...checkpoint.atomic import atomic_path
from ...checkpoint.resume import read_last_checkpoint
from ...checkpoint.safe_load import safe_load
from ...registry import HOOKS

# torchrun's variables: the pre-training subprocess is a plain single-process run
_DIST_ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'ROLE_RANK',
             'ROLE_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_RUN_ID')


def export_backbone(src, dst, prefix='backbone.'):
    """Write the ``prefix`` weights of checkpoint ``src`` to ``dst`` in mmpretrain's format.

    ``{'meta': {...}, 'state_dict': {'backbone.<name>': tensor}}``: what mmpretrain's model zoo
    ships and ``init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.')`` reads.
    """
    ckpt = safe_load(src)
    state = {k: v for k, v in ckpt.get('state_dict', ckpt).items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f'{src} has no parameters under {prefix!r}')
    meta = dict(source=osp.abspath(src), iter=ckpt.get('meta', {}).get('iter'))
    with atomic_path(dst) as tmp:
        torch.save(dict(meta=meta, state_dict=state), tmp)
    return dst


@HOOKS.register_module()
class PretrainBackboneHook(Hook):
    """Before the run, make sure ``checkpoint`` exists: if not, train ``config`` and export it.

    The pre-training (e.g. a short full training of a plain ConvNeXt Mask R-CNN on another data
    split) runs as ``python -m mmliera.cli train config`` in a subprocess on rank 0 (other ranks
    wait); its last checkpoint's backbone is written to ``checkpoint`` in mmpretrain's format.
    mmengine initialises weights after the ``before_run`` hooks, so the model's
    ``init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')`` loads it.

    Args:
        config (str): the pre-training config.
        checkpoint (str): where the mmpretrain-format backbone checkpoint is (to be) written.
        work_dir (str, optional): the pre-training work dir (default: beside ``checkpoint``).
        cfg_options (dict, optional): ``--cfg-options`` for the pre-training run.
    """

    priority = 'VERY_HIGH'

    def __init__(self, config, checkpoint, work_dir=None, cfg_options=None):
        self.config = config
        self.checkpoint = checkpoint
        self.work_dir = work_dir or osp.join(osp.dirname(osp.abspath(checkpoint)), 'work_dir')
        self.cfg_options = dict(cfg_options or {})

    def before_run(self, runner):
        rank, world_size = get_dist_info()
        if rank == 0 and not osp.isfile(self.checkpoint):
            self._pretrain(runner)
        if world_size > 1:
            dist.barrier()
        if not osp.isfile(self.checkpoint):
            raise FileNotFoundError(f'PretrainBackboneHook: {self.checkpoint} was not written')

    def _pretrain(self, runner):
        if not osp.isfile(self.config):
            raise FileNotFoundError(f'PretrainBackboneHook: pre-training config {self.config} '
                                    'does not exist')
        cmd = [
            sys.executable, '-m', 'mmliera.cli', 'train', self.config, '--work-dir', self.work_dir
        ]
        if self.cfg_options:
            cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in self.cfg_options.items()]
        runner.logger.info(f'PretrainBackboneHook: no backbone checkpoint at {self.checkpoint}; '
                           f'pre-training it first: {" ".join(cmd)}')
        env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
        done = subprocess.run(cmd, env=env)
        if done.returncode:
            raise RuntimeError(f'PretrainBackboneHook: pre-training failed (exit code '
                               f'{done.returncode}); see its log in {self.work_dir}')
        last = read_last_checkpoint(self.work_dir)
        if last is None:
            raise RuntimeError(f'PretrainBackboneHook: the pre-training in {self.work_dir} '
                               'wrote no last_checkpoint')
        export_backbone(last, self.checkpoint)
        runner.logger.info(f'PretrainBackboneHook: wrote {self.checkpoint} (mmpretrain format) '
                           f'from {last}')
