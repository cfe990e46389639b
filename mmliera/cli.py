"""The train / test command lines (mmdet's), shared by tools/*.py and ``python -m mmliera.cli``.

    python -m mmliera.cli train CONFIG [train options]
    python -m mmliera.cli test CONFIG CHECKPOINT [test options]

Before building the runner both check that the config's data is there, and test that the
checkpoint fits the model; these user errors end the program with one ``error: ...`` sentence
and exit status 1 (no traceback). Training ends by printing the commands that make pictures
(tools/infer.py) and curves (tools/plot_curves.py) of the run.
"""
import argparse
import functools
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process

from .checkpoint import AdapterCheckpointError
from .checkpoint_fit import CheckpointMismatchError, check_config_checkpoint
from .data_check import DataNotFoundError, check_data
from .engine.hooks import NonFiniteLossError
from .engine.resume import UnreadableCheckpointError, checkpoint_problem
from .engine.runner.launch import build_runner, setup_distributed
from .next_steps import next_steps

# errors that name the user's mistake and its fix in one sentence: no traceback for them
USER_ERRORS = (CheckpointMismatchError, DataNotFoundError, AdapterCheckpointError,
               UnreadableCheckpointError, NonFiniteLossError)


def exit_on_user_error(main, errors=USER_ERRORS):
    """Run ``main``; on one of ``errors`` exit with status 1 and the error's sentence only."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except errors as e:
            raise SystemExit(f'error: {e}') from None

    return wrapped


def _parse_common(parser, argv):
    """The options train and test share; parses and exports LOCAL_RANK."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _load_config(args):
    """The config with --cfg-options, the launcher (gloo on CPU) and the work dir applied."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    setup_distributed(cfg, args.launcher)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def parse_train_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector (mmliera)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch / auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'when no path is given')
    return _parse_common(parser, argv)


@exit_on_user_error
def train_main(argv=None, show_next_steps=True):
    """tools/train.py; at the end prints the commands for pictures and curves of the run."""
    args = parse_train_args(argv)
    cfg = _load_config(args)
    check_data(cfg, ('train', 'val'), args.config)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            if optim_wrapper != 'OptimWrapper':
                raise ValueError(f'--amp needs optim_wrapper type OptimWrapper, got '
                                 f'{optim_wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        from mmengine.device import get_device
        if get_device() == 'cpu':  # mmengine would assert deep inside the runner's build
            raise ValueError(
                "mixed precision (--amp / AmpOptimWrapper) needs a GPU: mmengine's "
                'AmpOptimWrapper runs on CUDA, NPU, MLU or MUSA devices and this machine has '
                'none; train without --amp here')

    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr') or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) '
                               'in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume}: no such checkpoint file')
        problem = checkpoint_problem(args.resume)
        if problem:
            raise UnreadableCheckpointError(
                f'--resume {args.resume}: the checkpoint cannot be read ({problem}); pass '
                'another checkpoint, or --resume alone for the newest readable one')
        cfg.resume = True
        cfg.load_from = args.resume

    runner = build_runner(cfg)
    runner.train()
    if show_next_steps and is_main_process():
        print(next_steps(cfg, args.config, runner.work_dir), flush=True)


def parse_test_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector (mmliera)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl/.pickle)')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='save painted images into this dir (under the '
                        'work dir\'s timestamp folder)')
    parser.add_argument('--wait-time', type=float, default=2, help='interval of --show (s)')
    return _parse_common(parser, argv)


@exit_on_user_error
def test_main(argv=None):
    """tools/test.py."""
    args = parse_test_args(argv)
    if not osp.isfile(args.checkpoint):
        raise CheckpointMismatchError(f'checkpoint {args.checkpoint} does not exist')
    cfg = _load_config(args)
    check_data(cfg, ('test', ), args.config)
    check_config_checkpoint(cfg, args.checkpoint)  # before anything is evaluated
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        vis = cfg.default_hooks.visualization
        vis.draw = True
        vis.interval = 1
        if args.show:
            vis.show = True
            vis.wait_time = args.wait_time
        if args.show_dir:
            vis.test_out_dir = args.show_dir

    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl or .pickle file')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) \
            else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpDetResults', out_file_path=args.out))

    runner = build_runner(cfg)
    runner.test()



def build_model_from_config(config, cfg_options=None):
    """(cfg, model): the config's model built in its default scope, with no weights loaded."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg, MODELS.build(cfg.model)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # train without the closing hints: PretrainBackboneHook's sub-run comes through here
    commands = dict(train=functools.partial(train_main, show_next_steps=False), test=test_main)
    if not argv or argv[0] not in commands:
        raise SystemExit('usage: python -m mmliera.cli {train,test} ...')
    commands[argv[0]](argv[1:])


if __name__ == '__main__':
    main()
