"""Command-line plumbing shared by tools/train.py and tools/test.py: common options, the run
config, the process group and the runner.

``setup_distributed(cfg, launcher)``: with ``--launcher pytorch`` and no CUDA, initialise a gloo
process group from torchrun's environment before the Runner is built (mmengine's own pytorch
launcher calls ``torch.cuda.set_device``) and wrap the model in DDP without device ids, so
``bash tools/dist_train.sh CONFIG 2`` runs on CPUs exactly as on two GPUs.
"""
import datetime
import gc
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import DictAction

from ..apis.model import load_config
from .errors import UsageError


def setup_distributed(cfg, launcher):
    """Set ``cfg.launcher``; on CPU-only machines, start gloo and make DDP device-agnostic."""
    cfg.launcher = launcher
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    missing = [
        k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ
    ]
    if missing:
        raise UsageError(f'--launcher pytorch needs torchrun\'s environment ({missing} are '
                         'unset); start it with `bash tools/dist_train.sh CONFIG N` or '
                         '`torchrun --nproc_per_node N tools/train.py CONFIG --launcher '
                         'pytorch`')
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        kw = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
        dist.init_process_group(backend='gloo', **kw)
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return True


def end_distributed(runner=None):
    """After a finished run: let ``runner``'s DDP wrapper go (its reducer holds the process
    group and gloo's last work), then every rank waits for the others and the process group is
    destroyed, so no rank exits while another still talks to it. Either left out, a rank can
    abort in torch's exit handlers ("terminate called without an active exception"; two gloo
    ranks of a tiny DDP model, `barrier` + `destroy_process_group` at the end: 8 of 35 runs
    aborted with the wrapper alive at exit, 0 of 35 with it released first)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if runner is not None:
        from mmengine.model import is_model_wrapper
        if is_model_wrapper(getattr(runner, 'model', None)):
            runner.model = runner.model.module  # (the wrapper's last reference)
            gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def build_runner(cfg):
    """mmengine's Runner, or the config's ``runner_type`` (e.g. LieRARunner)."""
    from mmengine.runner import Runner

    from ..registry import RUNNERS
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def parse_common(parser, argv):
    """The options train and test share; parses and exports LOCAL_RANK."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the traceback of an expected mistake (also MMLIERA_DEBUG=1)')
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_run_config(args):
    """The config with --cfg-options, the launcher (gloo on CPU) and the work dir applied."""
    cfg = load_config(args.config, args.cfg_options)
    setup_distributed(cfg, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
