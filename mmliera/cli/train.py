"""``tools/train.py`` (mmdet's train command line, plus mmliera's checks).

Before the runner is built it checks that the config's data is there; expected mistakes end in
one ``error: ...`` line (:mod:`.errors`). Training ends by printing the commands that make
pictures (tools/infer.py) and curves (tools/analysis_tools/plot_curves.py) of the run.
"""
import argparse
import os.path as osp

from mmengine.dist import is_main_process

from ..checkpoint.resume import UnreadableCheckpointError, checkpoint_problem
from .data_check import check_data, check_load_from
from .errors import UsageError, exit_on_user_error
from .launch import build_runner, end_distributed, load_run_config, parse_common
from .next_steps import next_steps


def parse_train_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector (mmliera)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by total batch / auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work dir '
        'when no path is given')
    return parse_common(parser, argv)


@exit_on_user_error
def train_main(argv=None, show_next_steps=True):
    """tools/train.py; at the end prints the commands for pictures and curves of the run."""
    args = parse_train_args(argv)
    cfg = load_run_config(args)
    check_data(cfg, ('train', 'val'), args.config)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            if optim_wrapper != 'OptimWrapper':
                raise UsageError(f'--amp needs optim_wrapper type OptimWrapper, got '
                                 f'{optim_wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        from mmengine.device import get_device
        if get_device() == 'cpu':  # mmengine would assert deep inside the runner's build
            raise UsageError(
                "mixed precision (--amp / AmpOptimWrapper) needs a GPU: mmengine's "
                'AmpOptimWrapper runs on CUDA, NPU, MLU or MUSA devices and this machine has '
                'none; train without --amp here')

    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr') or 'base_batch_size' not in cfg.auto_scale_lr:
            raise UsageError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) '
                             'in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise UsageError(f'--resume {args.resume}: no such checkpoint file; pass an '
                             'existing checkpoint, or --resume alone for the newest one')
        problem = checkpoint_problem(args.resume)
        if problem:
            raise UnreadableCheckpointError(
                f'--resume {args.resume}: the checkpoint cannot be read ({problem}); pass '
                'another checkpoint, or --resume alone for the newest readable one')
        cfg.resume = True
        cfg.load_from = args.resume

    check_load_from(cfg, args.config)
    runner = build_runner(cfg)
    runner.train()
    end_distributed(runner)
    if show_next_steps and is_main_process():
        print(next_steps(cfg, args.config, runner.work_dir), flush=True)
