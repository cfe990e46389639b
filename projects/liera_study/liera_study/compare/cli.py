"""The command line of the comparison (``projects/liera_study/tools/compare_methods.py``):
:func:`parse_args`, and :func:`main`, which checks the request, plans it and runs the
:class:`.study.Study`."""
import argparse
import sys

from . import runs
from .configs import forget_read_configs, parse_methods
from .errors import ComparisonError
from .grid import parse_grid
from .plan import Plan, parse_pairs
from .study import Study, backbone_change

TOOL = 'projects/liera_study/tools/compare_methods.py'


def _study_arguments(parser):
    """The methods, their grids, the seeds and what is reported."""
    from mmengine.config import DictAction
    parser.add_argument(
        'methods',
        nargs='+',
        metavar='[NAME=]CONFIG',
        help='one config per method; NAME defaults to the file name')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument(
        '--grid',
        nargs='+',
        default=[],
        metavar='[METHOD,...:]KEY=V1,V2',
        help='settings to screen on the val split, e.g. lr_mult=0.1,1,10 '
        '(every method) or full:lr_mult=0.1,0.3,1 (that method)')
    parser.add_argument(
        '--screen-seed',
        '--screen-seeds',
        dest='screen_seeds',
        nargs='+',
        type=int,
        help='the seeds of the screening runs (default: the first of --seeds); with several, '
        'each setting trains once per seed and the best mean val figure wins')
    parser.add_argument(
        '--test-screening',
        action='store_true',
        help='test each screening run of a final seed right after it trains, sealed: no '
        'choice, table or plot reads its test figures until it is chosen as a final run (for '
        'studies whose checkpoints do not outlive a session; needs the screening and final '
        'runs to share their options)')
    parser.add_argument(
        '--diff',
        nargs='+',
        default=[],
        metavar='A-B',
        help='paired differences to report, e.g. liera_taylor-lora')
    parser.add_argument(
        '--reference',
        nargs='+',
        default=[],
        metavar='NAME',
        help='methods drawn as reference lines (e.g. frozen full)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/compare_methods',
        help='runs go to WORK_DIR/NAME/SETTING/seed_S')
    parser.add_argument('--out-dir', help='where the outputs go (default: WORK_DIR)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='config overrides for every run, e.g. train_cfg.max_iters=4')


def _running_arguments(parser):
    """How the runs go: their order, side by side, threads, the phases' own options; what is
    kept or run again."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--order',
        choices=('seed', 'method'),
        default='seed',
        help='seed: all screening, then every method at the first seed, the second, ... (a '
        'busier machine later touches every method alike); method: one method after the '
        'other, its screening then its seeds (a cut-short study has whole methods)')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='runs at once (default 1). On a CPU, N runs of cores/N threads each finish more '
        'runs per hour than one run on every core '
        '(projects/liera_study/tools/benchmark_lanes.sh measures it); '
        'all screening runs go before the final runs')
    parser.add_argument(
        '--threads',
        type=int,
        help='CPU threads of each run (OMP_NUM_THREADS / MKL_NUM_THREADS; default: the '
        'cores / --jobs when --jobs > 1, else as inherited). Recorded per run: the thread count '
        'changes the last bits of every sum, so compare runs of one thread count')
    parser.add_argument(
        '--no-diagnostics',
        action='store_true',
        help='skip the weight-change diagnostics (one model build per run)')
    parser.add_argument(
        '--screen-cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='overrides for the screening runs only (e.g. a shorter schedule)')
    parser.add_argument(
        '--final-cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='overrides for the final runs only (e.g. a longer schedule: then the final run of '
        'the screening seed is trained anew instead of reusing the screening run)')
    parser.add_argument(
        '--add-runs',
        nargs='+',
        default=[],
        metavar='RESULTS_JSON',
        help='results.json files of runs made elsewhere (another machine, or several '
        'comparisons run side by side on one GPU): their runs count as earlier runs of this '
        'one, kept when their config, options and starting backbone match')
    parser.add_argument(
        '--rerun',
        action='store_true',
        help='run everything again instead of skipping steps already done')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='train and test nothing: write the tables, pairs and plots again from the runs '
        'recorded in OUT_DIR/results.json (e.g. with other --diff pairs, while or after the '
        'study runs); runs not made yet are left out and counted')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and test methods (configs) x seeds, a per-method grid chosen on '
        'the val split; write results.json/csv, table.md, grid.md, pairs.md, diagnostics.md '
        'and plots.')
    _study_arguments(parser)
    _running_arguments(parser)
    return parser.parse_args(argv)


def check(args, names):
    """Refuse a request that cannot run, before anything runs; the --diff pairs."""
    if len(set(args.seeds)) != len(args.seeds):
        raise ComparisonError(f'--seeds has repeats: {args.seeds}')
    if args.screen_seeds and len(set(args.screen_seeds)) != len(args.screen_seeds):
        raise ComparisonError(f'--screen-seeds has repeats: {args.screen_seeds}')
    pairs = parse_pairs(args.diff, names)
    if args.rerun and args.add_runs:
        raise ComparisonError('--rerun runs everything again, --add-runs keeps runs made '
                              'elsewhere: give one of them')
    if args.report_only and args.rerun:
        raise ComparisonError('--report-only trains nothing, --rerun trains everything again: '
                              'give one of them')
    for ref in args.reference:
        if ref not in names:
            raise ComparisonError(f'--reference {ref}: no such method (methods: '
                                  f'{", ".join(names)})')
    if args.jobs < 1:
        raise ComparisonError(f'--jobs {args.jobs}: give 1 or more runs at once')
    if args.threads is not None and args.threads < 1:
        raise ComparisonError(f'--threads {args.threads}: give 1 or more threads per run')
    return pairs


def main(argv=None, train=runs.train, test=runs.test, diagnose=backbone_change):
    """Run the comparison ``argv`` asks for (``train`` / ``test`` / ``diagnose``: those of
    :class:`.study.Study`); its exit status."""
    args = parse_args(argv)
    forget_read_configs()  # (a comparison reads each config once)
    methods = parse_methods(args.methods)
    names = [n for n, _ in methods]
    pairs = check(args, names)
    grids = parse_grid(args.grid, names)
    plan = Plan(
        methods,
        grids,
        dict(args.cfg_options),
        dict(screen=args.screen_cfg_options, final=args.final_cfg_options),
        seeds=args.seeds,
        screen_seeds=args.screen_seeds or args.seeds[:1],
        order=args.order)
    study = Study(
        plan,
        args.work_dir,
        args.out_dir,
        jobs=args.jobs,
        threads=args.threads,
        diagnostics=not args.no_diagnostics,
        test_screening=args.test_screening,
        pairs=pairs,
        references=args.reference,
        command=' '.join([f'python {TOOL}'] + (argv if argv is not None else sys.argv[1:])),
        train=train,
        test=test,
        diagnose=diagnose)
    study.load(rerun=args.rerun, add_runs=args.add_runs, report_only=args.report_only)
    return study.report_only() if args.report_only else study.run()
