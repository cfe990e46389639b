"""``tools/test.py`` (mmdet's test command line, plus mmliera's checks).

Before anything is evaluated it checks that the config's test data is there and that the
checkpoint fits the config's model; expected mistakes end in one ``error: ...`` line.
"""
import argparse
import os.path as osp

from ..checkpoint.fit import CheckpointMismatchError, check_config_checkpoint
from .data_check import check_data
from .errors import UsageError, exit_on_user_error
from .launch import build_runner, end_distributed, load_run_config, parse_common


def parse_test_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector (mmliera)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl/.pickle)')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='save painted images into this dir (under the '
        'work dir\'s timestamp folder)')
    parser.add_argument('--wait-time', type=float, default=2, help='interval of --show (s)')
    parser.add_argument(
        '--split',
        choices=['test', 'val'],
        default='test',
        help="evaluate on the config's test split (default) or its val split "
        '(val_dataloader, val_evaluator): a checkpoint validated as the training would')
    return parse_common(parser, argv)


@exit_on_user_error
def test_main(argv=None):
    """tools/test.py."""
    args = parse_test_args(argv)
    if not osp.isfile(args.checkpoint):
        raise CheckpointMismatchError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_run_config(args)
    if args.split == 'val':
        if not cfg.get('val_dataloader') or not cfg.get('val_evaluator'):
            raise UsageError(f'--split val: {args.config} has no val_dataloader / val_evaluator; '
                             'add them, or test on the test split (leave out --split)')
        cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
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
            raise UsageError(f'--out must be a .pkl or .pickle file, got {args.out}')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) \
            else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpDetResults', out_file_path=args.out))

    runner = build_runner(cfg)
    runner.test()
    end_distributed(runner)
