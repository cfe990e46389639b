"""Compare fine-tuning methods (configs) x seeds through the real train and test path.

    python tools/compare_methods.py [NAME=]CONFIG ... --seeds 0 1 2 --work-dir DIR

Each run (method, seed) is two subprocesses, ``python -m mmliera.cli train CONFIG`` (what
``tools/train.py`` runs) with ``randomness.seed=SEED``, then ``python -m mmliera.cli test CONFIG
LAST_CHECKPOINT`` (``tools/test.py``: the config's test split, mmdet's ``CocoMetric``). Per run it
records bbox / segm mAP, trainable parameters (the whole detector and its backbone, counted on
the model built as training builds it, freezing policy applied), seconds per iteration (mean of
the train log's ``time`` after its first logging window), peak memory (CUDA:
``max_memory_allocated`` from the train log; CPU: the train process's peak resident set size)
and wall time.

Results are written after every run (atomically) to ``DIR/results.json``; a restarted
comparison skips every run already done with the same config and options, and re-runs failed
ones. At the end (and after each run) it writes ``results.csv``, ``table.md`` (mean ± sample
standard deviation over seeds; failed runs are listed with their error) and ``plot.png`` (mAP
against the backbone's trainable parameters, one marker per method, error bars = std).
Exit status: 0 when every run succeeded, 1 otherwise.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import subprocess
import sys

from .report import markdown_table, plot, write_outputs  # noqa: F401 (API)
from .runs import ComparisonError, count_trainable, fingerprint, parse_methods, run_one
from .stats import summarise  # noqa: F401 (API)

FORMAT = 1


def _git_commit():
    try:
        here = osp.dirname(osp.abspath(__file__))
        out = subprocess.run(['git', 'rev-parse', 'HEAD'],
                             cwd=here,
                             capture_output=True,
                             text=True,
                             timeout=10)
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=here,
                               capture_output=True,
                               text=True,
                               timeout=10).stdout
        return out.stdout.strip() + ('+uncommitted' if dirty.strip() else '') \
            if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _duration(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 60} min {seconds % 60:02d} s' if seconds >= 60 else f'{seconds} s'


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Train and test methods (configs) x seeds; write results.json, '
        'results.csv, table.md and plot.png.')
    parser.add_argument(
        'methods',
        nargs='+',
        metavar='[NAME=]CONFIG',
        help='one config per method; NAME defaults to the file name')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument(
        '--work-dir',
        default='work_dirs/compare_methods',
        help='runs go to WORK_DIR/NAME/seed_S; results.json etc. too')
    parser.add_argument(
        '--out-dir', help='where results.json/csv, table.md and plot.png go '
        '(default: WORK_DIR)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='config overrides for every run, e.g. train_cfg.max_iters=4')
    parser.add_argument(
        '--rerun',
        action='store_true',
        help='run everything again instead of skipping runs already done')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    methods = parse_methods(args.methods)
    if len(set(args.seeds)) != len(args.seeds):
        raise ComparisonError(f'--seeds has repeats: {args.seeds}')
    out_dir = args.out_dir or args.work_dir
    results_path = osp.join(out_dir, 'results.json')
    options = dict(args.cfg_options)
    previous, previous_meta = {}, {}
    if osp.isfile(results_path) and not args.rerun:
        with open(results_path) as f:
            found = json.load(f)
        previous = {(r['method'], r['seed']): r for r in found.get('runs', [])}
        previous_meta = found.get('meta', {})

    built, unusable = {}, {}
    for name, config in methods:
        try:
            built[name] = fingerprint(config, options), count_trainable(config, options)
        except Exception as e:  # reported as this method's failure; the others still run
            unusable[name] = f'the config does not build: {type(e).__name__}: {e}'[:300]
            built[name] = None, (None, None)
    # seed-major: every method's first seed before any second seed (a slower or busier
    # machine later on touches every method alike; a cut-short study covers every method)
    plan = [(name, config, seed) + built[name] for seed in args.seeds for name, config in methods]
    results = dict(
        format=FORMAT,
        runs=[],
        meta=dict(
            command=' '.join(['python tools/compare_methods.py'] +
                             (argv if argv is not None else sys.argv[1:])),
            commit=_git_commit(),
            started=datetime.datetime.now().isoformat(timespec='seconds'),
            machine=f'{platform.machine()}, {os.cpu_count()} cores, {platform.system()}',
            python=platform.python_version(),
            cfg_options=options))
    import torch
    results['meta']['torch'] = torch.__version__

    keys = [(name, seed) for name, _, seed, _, _ in plan]
    fps = {(name, seed): fp for name, _, seed, fp, _ in plan}
    # earlier records: those of this plan still valid (same config and options), and every
    # run of other methods / seeds, kept as they were
    earlier = {k: r for k, r in previous.items() if k not in fps or r.get('fingerprint') == fps[k]}
    for r in earlier.values():  # (records of format 1 without their own commit)
        r.setdefault('commit', previous_meta.get('commit'))
    current = {}

    def snapshot():
        runs = [current.get(k) or earlier[k] for k in keys if k in current or k in earlier]
        return dict(results, runs=runs + [r for k, r in earlier.items() if k not in fps])

    all_methods = methods + [(r['method'], r['config']) for r in snapshot()['runs']]
    all_methods = list(dict((n, (n, c)) for n, c in reversed(all_methods)).values())[::-1]
    durations, total = [], len(plan)
    todo = sum(1 for k in keys if earlier.get(k, {}).get('status') != 'ok')
    for i, (name, config, seed, fp, (params, bb_params)) in enumerate(plan, 1):
        tag = f'[{i}/{total}] {name} seed {seed}'
        done = earlier.get((name, seed))
        if done and done.get('status') == 'ok':
            print(f'{tag}: done earlier (bbox {done["bbox_mAP"]:.3f}), skipped', flush=True)
            current[(name, seed)] = done
            continue
        if name in unusable:
            record = dict(
                method=name,
                config=config,
                seed=seed,
                status='failed',
                error=unusable[name],
                wall_s=0.0)
        else:
            print(f'{tag}: training and testing {config} ...', flush=True)
            try:
                record = run_one(name, config, seed, options,
                                 osp.join(args.work_dir, name, f'seed_{seed}'))
            except KeyboardInterrupt:
                done = sum(1 for r in snapshot()['runs'] if r['status'] == 'ok')
                write_outputs(snapshot(), all_methods, out_dir)
                print(
                    f'\ninterrupted during {tag}: the {done} finished runs are in '
                    f'{results_path}; the same command again goes on from here',
                    flush=True)
                return 130
        record.update(
            fingerprint=fp,
            trainable_params=params,
            backbone_trainable_params=bb_params,
            commit=results['meta']['commit'])
        current[(name, seed)] = record
        if 'log' in record:  # (a config that does not build takes no time)
            durations.append(record['wall_s'])
        todo -= 1
        eta = f'; ETA {_duration(todo * sum(durations) / len(durations))}' if todo else ''
        if record['status'] == 'ok':
            print(
                f'{tag}: bbox {record["bbox_mAP"]:.3f} segm {record["segm_mAP"]:.3f}, '
                f'{record["sec_per_iter"]:.3f} s/iter, {_duration(record["wall_s"])}{eta}',
                flush=True)
        else:
            where = f'; log: {record["log"]}' if 'log' in record else ''
            print(f'{tag}: FAILED ({record["error"]}){where}{eta}', flush=True)
        write_outputs(snapshot(), all_methods, out_dir)
    results = snapshot()
    now = datetime.datetime.now().isoformat(timespec='seconds')
    if durations or not previous_meta:
        results['meta']['finished'] = now
    else:  # nothing ran: the outputs were only rewritten; keep the study's own record
        results['meta'] = dict(
            previous_meta, outputs_rewritten=now, outputs_commit=results['meta']['commit'])
    rows = write_outputs(results, all_methods, out_dir)
    print(markdown_table(rows))
    failed = [current[k] for k in keys if current[k]['status'] != 'ok']
    print(f'wrote {results_path}, results.csv, table.md and plot.png in {out_dir}')
    if failed:
        print(
            f'{len(failed)} of {total} runs failed: ' + '; '.join(f'{r["method"]} seed {r["seed"]}'
                                                                  for r in failed),
            flush=True)
        return 1
    return 0
