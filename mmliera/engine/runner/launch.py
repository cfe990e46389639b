"""Command-line plumbing shared by tools/train.py and tools/test.py.

``setup_distributed(cfg, launcher)``: with ``--launcher pytorch`` and no CUDA, initialise a gloo
process group from torchrun's environment before the Runner is built (mmengine's own pytorch
launcher calls ``torch.cuda.set_device``) and wrap the model in DDP without device ids, so
``bash tools/dist_train.sh CONFIG 2`` runs on CPUs exactly as on two GPUs.
"""
import os

import torch
import torch.distributed as dist


def setup_distributed(cfg, launcher):
    """Set ``cfg.launcher``; on CPU-only machines, start gloo and make DDP device-agnostic."""
    cfg.launcher = launcher
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch needs torchrun\'s environment ({missing} are '
                           'unset); start it with `bash tools/dist_train.sh CONFIG N` or '
                           '`torchrun --nproc_per_node N tools/train.py CONFIG --launcher '
                           'pytorch`')
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        kw = {} if timeout is None else dict(timeout=__import__('datetime').timedelta(
            seconds=timeout))
        dist.init_process_group(backend='gloo', **kw)
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return True


def build_runner(cfg):
    """mmengine's Runner, or the config's ``runner_type`` (e.g. LieRARunner)."""
    from mmdet.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
