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
import csv
import datetime
import glob
import hashlib
import io
import json
import math
import os
import os.path as osp
import platform
import shutil
import signal
import subprocess
import sys
import time

from .atomic_file import atomic_path, write_text_atomic

FORMAT = 1
METRICS = ('bbox_mAP', 'segm_mAP')


class ComparisonError(ValueError):
    """A bad comparison request (the message says what to change)."""


# ---------------------------------------------------------------------------------------------
# the plan

def parse_methods(specs):
    """[(name, config path)] from ``CONFIG`` or ``NAME=CONFIG`` items; names must be unique."""
    methods = []
    for spec in specs:
        name, sep, config = spec.partition('=')
        if not sep:
            name, config = osp.splitext(osp.basename(spec))[0], spec
        if not name or not config:
            raise ComparisonError(f'method {spec!r}: write CONFIG or NAME=CONFIG')
        if not osp.isfile(config):
            raise ComparisonError(f'method {name}: config {config} does not exist')
        if any(n == name for n, _ in methods):
            raise ComparisonError(f'method name {name!r} is given twice; name them apart with '
                                  'NAME=CONFIG')
        methods.append((name, config))
    return methods


def _options_list(options):
    return [f'{k}={v}' for k, v in (options or {}).items()]


def fingerprint(config, options):
    """Hash of the config as a run sees it (file + its bases, merged, with the options)."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if options:
        cfg.merge_from_dict(options)
    return hashlib.sha256(cfg.pretty_text.encode()).hexdigest()[:16]


def count_trainable(config, options):
    """(detector trainable parameters, backbone trainable parameters) as training builds them."""
    from .cli import build_model_from_config
    from .engine.runner.liera_runner import freeze_hooks_of
    _, model = build_model_from_config(config, options)
    for hook in freeze_hooks_of(_.get('custom_hooks')):
        hook.policy.apply(model)
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    backbone = getattr(model, 'backbone', None)
    bb = sum(p.numel() for p in backbone.parameters() if p.requires_grad) if backbone else 0
    return total, bb


# ---------------------------------------------------------------------------------------------
# one run

def _run(cmd, log_path):
    """Run ``cmd`` with its output appended to ``log_path``; (exit status, peak RSS in MiB)."""
    with open(log_path, 'a') as log:
        log.write(f'$ {" ".join(cmd)}\n')
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C or a kill of this tool: do not leave the run behind
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024  # Linux: kilobytes


def _last_error(log_path):
    """The most telling line of a failed run's log: its ``error:`` line or the last line."""
    with open(log_path, errors='replace') as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith('error:') or 'Error' in ln.split(':')[0]:
            return ln[:300]
    return lines[-1][:300] if lines else 'no output'


def _newest(pattern):
    found = sorted(glob.glob(pattern), key=osp.getmtime)
    return found[-1] if found else None


def train_speed_and_memory(run_dir):
    """(seconds per iteration, peak memory MiB or None, memory kind) from the train scalars."""
    path = _newest(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))
    if path is None:
        return None, None, None
    with open(path) as f:
        records = [json.loads(ln) for ln in f if ln.strip()]
    train = [r for r in records if 'time' in r and 'loss' in r]
    times = [r['time'] for r in train[1:]] or [r['time'] for r in train]
    memory = [r['memory'] for r in train if 'memory' in r]
    sec = sum(times) / len(times) if times else None
    return sec, (max(memory) if memory else None), 'cuda max_memory_allocated'


def test_metrics(test_dir):
    """{bbox_mAP, segm_mAP} of the newest test run under ``test_dir`` (mmengine's json)."""
    path = _newest(osp.join(test_dir, '*', '*.json'))
    if path is None:
        return {}
    with open(path) as f:
        found = json.load(f)
    return {m: found[f'coco/{m}'] for m in METRICS if f'coco/{m}' in found}


def run_one(name, config, seed, options, run_dir):
    """Train then test one (method, seed); returns its result record."""
    if osp.exists(run_dir):  # an unfinished earlier attempt: start it afresh
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    log = osp.join(run_dir, 'run.log')
    opts = _options_list(dict(options or {}, **{'randomness.seed': seed}))
    record = dict(method=name, config=config, seed=seed, status='failed', log=log)
    start = time.time()
    train = [sys.executable, '-m', 'mmliera.cli', 'train', config, '--work-dir', run_dir,
             '--cfg-options'] + opts
    code, rss = _run(train, log)
    if code == 0:
        sec, mem, kind = train_speed_and_memory(run_dir)
        record.update(sec_per_iter=sec, peak_memory_mib=mem if mem is not None else rss,
                      memory_kind=kind if mem is not None else 'cpu peak RSS (train process)')
        last = osp.join(run_dir, 'last_checkpoint')
        ckpt = open(last).read().strip() if osp.isfile(last) else None
        if ckpt is None:
            record['error'] = 'training wrote no last_checkpoint'
        else:
            test = [sys.executable, '-m', 'mmliera.cli', 'test', config, ckpt, '--work-dir',
                    osp.join(run_dir, 'test'), '--cfg-options'] + opts
            code, _ = _run(test, log)
            metrics = test_metrics(osp.join(run_dir, 'test')) if code == 0 else {}
            if code == 0 and len(metrics) == len(METRICS):
                record.update(metrics, status='ok')
            else:
                record['error'] = (f'test exit status {code}: {_last_error(log)}' if code
                                   else 'the test wrote no bbox/segm mAP')
    else:
        record['error'] = f'train exit status {code}: {_last_error(log)}'
    record['wall_s'] = round(time.time() - start, 1)
    return record


# ---------------------------------------------------------------------------------------------
# results: json, csv, table, plot

def _stats(values):
    """(mean, sample std or None) of the non-None values, or (None, None)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(results, methods):
    """Per method (in the given order): counts, mean/std of every figure, failures."""
    rows = []
    for name, config in methods:
        runs = [r for r in results['runs'] if r['method'] == name]
        ok = [r for r in runs if r['status'] == 'ok']
        row = dict(method=name, config=config, runs=len(runs), ok=len(ok),
                   seeds=sorted(r['seed'] for r in ok),
                   failed=[(r['seed'], r.get('error', '')) for r in runs
                           if r['status'] != 'ok'],
                   trainable_params=runs[0].get('trainable_params') if runs else None,
                   backbone_trainable_params=runs[0].get('backbone_trainable_params')
                   if runs else None,
                   memory_kind=ok[0].get('memory_kind') if ok else None)
        for key in METRICS + ('sec_per_iter', 'peak_memory_mib'):
            row[key] = _stats([r.get(key) for r in ok])
        rows.append(row)
    return rows


def _pm(stat, fmt):
    mean, std = stat
    if mean is None:
        return '-'
    return format(mean, fmt) + (f' ± {format(std, fmt)}' if std is not None else '')


def markdown_table(rows):
    head = ('| Method | Trainable params (backbone) | bbox mAP | segm mAP | s / iter '
            '| Peak memory (MiB) | Seeds |\n|---|---:|---:|---:|---:|---:|---|')
    lines = [head]
    for r in rows:
        params = '-' if r['trainable_params'] is None else \
            f'{r["trainable_params"]:,} ({r["backbone_trainable_params"]:,})'
        seeds = ', '.join(map(str, r['seeds'])) or 'none'
        if r['failed']:
            seeds += '; **failed**: ' + '; '.join(
                f'seed {s}: {e}'.replace('|', '\\|') for s, e in r['failed'])
        lines.append(f'| {r["method"]} | {params} | {_pm(r["bbox_mAP"], ".3f")} | '
                     f'{_pm(r["segm_mAP"], ".3f")} | {_pm(r["sec_per_iter"], ".3f")} | '
                     f'{_pm(r["peak_memory_mib"], ".0f")} | {seeds} |')
    kinds = sorted({r['memory_kind'] for r in rows if r['memory_kind']})
    notes = ['', 'mean ± sample standard deviation over the seeds that ran; trainable '
             'parameters: the whole detector (its backbone in brackets).']
    if kinds:
        notes.append(f'Peak memory: {", ".join(kinds)}.')
    return '\n'.join(lines + notes) + '\n'


def write_csv(results, path):
    keys = ['method', 'seed', 'status', 'bbox_mAP', 'segm_mAP', 'trainable_params',
            'backbone_trainable_params', 'sec_per_iter', 'peak_memory_mib', 'memory_kind',
            'wall_s', 'config', 'fingerprint', 'commit', 'error']
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    for r in results['runs']:
        writer.writerow(r)
    write_text_atomic(path, buf.getvalue())


def plot(rows, path, title=None):
    """mAP (bbox, segm) against the backbone's trainable parameters; returns the figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    markers = 'osD^vP*Xhp<>'
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    xs = [r['backbone_trainable_params'] or 0 for r in rows]
    linthresh = max(1, min([x for x in xs if x > 0], default=1)) / 2
    for ax, key, label in zip(axes, METRICS, ('bbox mAP', 'segm mAP')):
        for i, r in enumerate(rows):
            mean, std = r[key]
            if mean is None:
                continue
            # methods with about the same count (within 30 %) are drawn side by side
            same = [j for j, x in enumerate(xs)
                    if (x == xs[i] == 0) or (x and xs[i] and max(x, xs[i]) <= 1.3 * min(x, xs[i]))]
            step = same.index(i) - (len(same) - 1) / 2
            x = xs[i] * 1.12 ** step if xs[i] else step * linthresh * 0.15
            ax.errorbar(x, mean, yerr=std or 0, fmt=markers[i % len(markers)],
                        color=f'C{i % 10}', capsize=3, markersize=7, label=r['method'])
        ax.set_xscale('symlog', linthresh=linthresh)
        ax.set_xlabel('trainable backbone parameters (symlog)')
        ax.set_ylabel(f'{label} (mean ± std over seeds)')
        ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], marker=markers[i % len(markers)], color=f'C{i % 10}',
                      linestyle='', label=r['method']) for i, r in enumerate(rows)
               if r['bbox_mAP'][0] is not None]
    fig.legend(handles=handles, loc='center right', frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format='png')
    plt.close(fig)
    return fig


def write_outputs(results, methods, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomic(osp.join(out_dir, 'results.json'), json.dumps(results, indent=1) + '\n')
    write_csv(results, osp.join(out_dir, 'results.csv'))
    rows = summarise(results, methods)
    write_text_atomic(osp.join(out_dir, 'table.md'), markdown_table(rows))
    if any(r['bbox_mAP'][0] is not None for r in rows):
        plot(rows, osp.join(out_dir, 'plot.png'))
    return rows


# ---------------------------------------------------------------------------------------------
# the command

def _git_commit():
    try:
        here = osp.dirname(osp.abspath(__file__))
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=here, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout
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
    parser.add_argument('methods', nargs='+', metavar='[NAME=]CONFIG',
                        help='one config per method; NAME defaults to the file name')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--work-dir', default='work_dirs/compare_methods',
                        help='runs go to WORK_DIR/NAME/seed_S; results.json etc. too')
    parser.add_argument('--out-dir', help='where results.json/csv, table.md and plot.png go '
                        '(default: WORK_DIR)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides for every run, e.g. train_cfg.max_iters=4')
    parser.add_argument('--rerun', action='store_true',
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
    results = dict(format=FORMAT, runs=[], meta=dict(
        command=' '.join(['python tools/compare_methods.py'] + (argv if argv is not None
                                                                else sys.argv[1:])),
        commit=_git_commit(), started=datetime.datetime.now().isoformat(timespec='seconds'),
        machine=f'{platform.machine()}, {os.cpu_count()} cores, {platform.system()}',
        python=platform.python_version(), cfg_options=options))
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
            record = dict(method=name, config=config, seed=seed, status='failed',
                          error=unusable[name], wall_s=0.0)
        else:
            print(f'{tag}: training and testing {config} ...', flush=True)
            try:
                record = run_one(name, config, seed, options,
                                 osp.join(args.work_dir, name, f'seed_{seed}'))
            except KeyboardInterrupt:
                done = sum(1 for r in snapshot()['runs'] if r['status'] == 'ok')
                write_outputs(snapshot(), all_methods, out_dir)
                print(f'\ninterrupted during {tag}: the {done} finished runs are in '
                      f'{results_path}; the same command again goes on from here', flush=True)
                return 130
        record.update(fingerprint=fp, trainable_params=params, backbone_trainable_params=bb_params,
                      commit=results['meta']['commit'])
        current[(name, seed)] = record
        if 'log' in record:  # (a config that does not build takes no time)
            durations.append(record['wall_s'])
        todo -= 1
        eta = f'; ETA {_duration(todo * sum(durations) / len(durations))}' if todo else ''
        if record['status'] == 'ok':
            print(f'{tag}: bbox {record["bbox_mAP"]:.3f} segm {record["segm_mAP"]:.3f}, '
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
        results['meta'] = dict(previous_meta, outputs_rewritten=now,
                               outputs_commit=results['meta']['commit'])
    rows = write_outputs(results, all_methods, out_dir)
    print(markdown_table(rows))
    failed = [current[k] for k in keys if current[k]['status'] != 'ok']
    print(f'wrote {results_path}, results.csv, table.md and plot.png in {out_dir}')
    if failed:
        print(f'{len(failed)} of {total} runs failed: '
              + '; '.join(f'{r["method"]} seed {r["seed"]}' for r in failed), flush=True)
        return 1
    return 0
