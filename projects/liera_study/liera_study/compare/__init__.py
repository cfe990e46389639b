"""Compare fine-tuning methods (configs) x seeds through the real train and test path, with a
per-method grid chosen on the validation split and paired differences between methods.

    python projects/liera_study/tools/compare_methods.py [NAME=]CONFIG ... --seeds 0 1 2 3 4
    --work-dir DIR \\
        [--grid [METHOD,...:]KEY=V1,V2,...] [--diff A-B ...] [--reference NAME ...]

1. **Screening** (methods whose grid has several settings): each setting trains once (seed
   ``--screen-seed``, default the first of ``--seeds``) with the config's validation during
   training; the setting with the best last val figure is chosen (bbox mAP for detection,
   top-1 accuracy for classification; ties: the lower value).
2. **Final runs**: each method at its chosen setting, every seed: ``python -m mmliera.cli train``
   (= ``tools/train.py``) then ``python -m mmliera.cli test`` on the last checkpoint (the test
   split: mmdet's ``CocoMetric`` or mmpretrain's ``Accuracy``, :mod:`.metrics`). The screening
   run of the chosen setting is the final run of its seed (it is only tested).

Per run it records the val and test figures (bbox / segm mAP or top-k accuracy), the val
curve, trainable parameters (whole model, backbone, per top-level part, as training builds the
model), the relative weight change of each backbone stage (:mod:`.diagnostics`), seconds per
iteration, peak memory (CUDA: ``max_memory_allocated`` from the log; CPU: the train process's
peak RSS), wall times, and the weights sha256 of the backbone it started from (a run that
started from another backbone than earlier runs is reported). ``results.json`` is written
(atomically) after every step; a restarted comparison skips every step already done with the
same config, options and setting (a config's paths inside the checkout count relative to it,
so records stay valid in another clone); a final run recorded with other options (e.g. before a
longer ``--final-cfg-options`` schedule) is left out of the tables from the start.
``--add-runs A/results.json B/results.json`` takes
the runs of comparisons made elsewhere (another machine; or parts of one study run side by side
on one GPU, each with its own ``--work-dir``) as earlier runs; each record names the ``device``
it trained on. ``--jobs N`` makes N runs at once (all screening, then the finals), each with
``--threads`` CPU threads (recorded per run; a table of mixed thread counts says so).
Outputs: results.json / .csv, table.md, grid.md, pairs.md, diagnostics.md, plot.png,
curves.png, grid.png (:mod:`.report`). Exit status: 0 when every needed run succeeded, else 1.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial

from .grid import at_edge, edge_note, parse_grid, resolve_key, select, settings, slug
from .metrics import DETECTION, of_config
from .report import markdown_table, plot, write_outputs  # noqa: F401 (API)
from .runs import fingerprint  # noqa: F401 (API)
from .runs import (ComparisonError, clear_stop, count_trainable, earlier_fingerprints, fingerprints,
                   forget_read_configs, has_validation, load_config, parse_methods,
                   start_checkpoint, stop_all, test, thread_env, train, validation_iters)
from .stats import paired_differences, summarise  # noqa: F401 (API)

FORMAT = 2


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
    if seconds >= 3600:
        return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'
    return f'{seconds // 60} min {seconds % 60:02d} s' if seconds >= 60 else f'{seconds} s'


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Train and test methods (configs) x seeds, a per-method grid chosen on '
        'the val split; write results.json/csv, table.md, grid.md, pairs.md, diagnostics.md '
        'and plots.')
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
        type=int,
        help='the seed of the screening runs '
        '(default: the first of --seeds)')
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
    return parser.parse_args(argv)


def parse_pairs(specs, names):
    """[(a, b)] from ``A-B`` items (split where both sides are method names)."""
    pairs = []
    for spec in specs:
        splits = [(spec[:i], spec[i + 1:]) for i, c in enumerate(spec) if c == '-']
        found = [(a, b) for a, b in splits if a in names and b in names]
        if len(found) != 1:
            raise ComparisonError(f'--diff {spec!r}: write A-B with two method names (methods: '
                                  f'{", ".join(names)})')
        pairs.append(found[0])
    return pairs


class _Plan:
    """The methods, their resolved grids and settings, and the run records (old and new)."""

    def __init__(self, methods, grids, options, phase_options=None):
        self.methods, self.options = methods, options
        # per phase ('screen', 'final'): its own options; a phase without any is labelled ''
        self.phase_options = {k: dict(v) for k, v in (phase_options or {}).items() if v}
        self.configs = dict(methods)
        self.settings, self.unusable, self.fps, self.counts = {}, {}, {}, {}
        self.metrics = None  # every method's test evaluator must give the same figures
        for name, config in methods:
            try:
                cfg = load_config(config, options)
                metrics = of_config(cfg, f'method {name} ({config})')
                if self.metrics is None:
                    self.metrics, first = metrics, name
                elif metrics != self.metrics:
                    raise ComparisonError(
                        f'method {name} is scored by {", ".join(m.label for m in metrics)}, '
                        f'method {first} by {", ".join(m.label for m in self.metrics)}; '
                        'compare methods of one task (the same test_evaluator)')
                grid = {
                    resolve_key(cfg, k, f'method {name} ({config})'): v
                    for k, v in grids[name].items()
                }
                self.settings[name] = settings(grid)
                if len(self.settings[name]) > 1 and not has_validation(cfg):
                    raise ComparisonError(
                        f'method {name}: a grid is chosen on the validation split, but '
                        f'{config} has none; set val_dataloader, val_evaluator, val_cfg and '
                        'train_cfg.val_interval')
                for setting in self.settings[name]:
                    _, model_fp = self.fingerprints(name, setting)
                    if model_fp not in self.counts:  # (a grid over lr_mult: built once)
                        self.counts[model_fp] = count_trainable(config, self.run_options(setting))
            except ComparisonError:
                raise
            except Exception as e:  # reported as this method's failure; the others still run
                self.unusable[name] = f'the config does not build: {type(e).__name__}: {e}'[:300]
                self.settings[name] = [()]

    def phase(self, phase):
        """The label of a phase's runs: '' when it has no options of its own."""
        return phase if phase in self.phase_options else ''

    def run_options(self, setting, phase=''):
        return dict(self.options, **self.phase_options.get(phase, {}), **{k: v for k, v in setting})

    def fingerprints(self, name, setting, phase=''):
        """(config fingerprint, model fingerprint) of a run's config
        (:func:`.runs.fingerprints`)."""
        key = (name, slug(setting), phase)
        if key not in self.fps:
            self.fps[key] = fingerprints(self.configs[name], self.run_options(setting, phase))
        return self.fps[key]

    def earlier_fingerprints(self, name, setting, phase=''):
        """The whole config's fingerprints as earlier versions took them (computed once per
        run config, only when a record does not match: :func:`.runs.earlier_fingerprints`)."""
        key = ('earlier', name, slug(setting), phase)
        if key not in self.fps:
            self.fps[key] = earlier_fingerprints(self.configs[name],
                                                 self.run_options(setting, phase))
        return self.fps[key]


def _record_key(r):
    return r['method'], r.get('setting_label', 'default'), r['seed'], r.get('phase', '')


def _device():
    """What the runs train on: 'cuda: NAME' or 'cpu: N cores'."""
    import torch
    if torch.cuda.is_available():
        return f'cuda: {torch.cuda.get_device_name(0)}'
    return f'cpu: {platform.machine()}, {os.cpu_count()} cores'


def _read_runs(path):
    """The run records of a results.json given to --add-runs."""
    try:
        with open(path) as f:
            runs = json.load(f)['runs']
        assert isinstance(runs, list) and all(isinstance(r, dict) for r in runs)
        return runs
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise ComparisonError(
            f'--add-runs {path}: not a results.json of '
            'projects/liera_study/tools/compare_methods.py '
            f'({type(e).__name__}: {e}); give the results.json that a comparison wrote in its '
            '--out-dir') from None


def _upgrade(r):
    """A format-1 record (train + test, no grid) as a format-2 final run."""
    if 'setting_label' not in r:
        r = dict(r, setting=[], setting_label='default', final=True)
    return r


def main(argv=None):
    args = parse_args(argv)
    forget_read_configs()  # (a comparison reads each config once)
    methods = parse_methods(args.methods)
    names = [n for n, _ in methods]
    if len(set(args.seeds)) != len(args.seeds):
        raise ComparisonError(f'--seeds has repeats: {args.seeds}')
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
    threads = args.threads or (max(1,
                                   (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None)
    env = thread_env(threads)
    grids = parse_grid(args.grid, names)
    screen_seed = args.seeds[0] if args.screen_seed is None else args.screen_seed
    options = dict(args.cfg_options)
    plan = _Plan(methods, grids, options,
                 dict(screen=args.screen_cfg_options, final=args.final_cfg_options))

    out_dir = args.out_dir or args.work_dir
    results_path = osp.join(out_dir, 'results.json')
    previous, previous_meta = {}, {}
    if args.report_only and not osp.isfile(results_path):
        raise ComparisonError(f'--report-only: no {results_path} to report from: run the '
                              'comparison first (or give its --out-dir)')
    if osp.isfile(results_path) and not args.rerun:
        with open(results_path) as f:
            found = json.load(f)
        previous = {_record_key(r): r for r in map(_upgrade, found.get('runs', []))}
        previous_meta = found.get('meta', {})

    def of_this_plan(rec):
        """Whether a record is a run of this plan's config and options, whatever backbone it
        started from (records of other schedules or methods are history: not compared)."""
        if rec['method'] not in dict(methods):
            return False
        setting = tuple(map(tuple, rec.get('setting') or ()))
        label = rec.get('phase', '')
        fp, _ = plan.fingerprints(rec['method'], setting, label)
        return rec.get('fingerprint') == fp or \
            rec.get('fingerprint') in plan.earlier_fingerprints(rec['method'], setting, label)

    def standing(r):
        """How much a record counts when two share a key: a run of this plan over another
        schedule's, then tested over trained over the rest."""
        return of_this_plan(r), {'ok': 2, 'trained': 1}.get(r.get('status'), 0)

    for path in args.add_runs:  # (their unfinished runs' work dirs are elsewhere: not taken)
        for r in map(_upgrade, _read_runs(path)):
            if r.get('status') not in ('ok', 'trained'):
                continue
            key = _record_key(r)
            # (this study's own record stays unless the added one counts for more: a run of
            # another schedule never replaces one of this plan)
            if key not in previous or standing(r) > standing(previous[key]):
                previous[key] = r
    meta = dict(
        command=' '.join(['python projects/liera_study/tools/compare_methods.py'] +
                         (argv if argv is not None else sys.argv[1:])),
        commit=_git_commit(),
        started=datetime.datetime.now().isoformat(timespec='seconds'),
        machine=f'{platform.machine()}, {os.cpu_count()} cores, {platform.system()}',
        python=platform.python_version(),
        cfg_options=options,
        screen_cfg_options=dict(args.screen_cfg_options),
        final_cfg_options=dict(args.final_cfg_options),
        screen_seed=screen_seed,
        device=_device(),
        metrics=[m.key for m in plan.metrics or DETECTION])
    metrics = plan.metrics or DETECTION
    main_metric = metrics[0]

    def figures(rec):
        """'bbox mAP 0.123 segm mAP 0.101' of a record (or of its val dict)."""
        return ' '.join(f'{m.label} {rec[m.key]:{m.fmt}}' for m in metrics
                        if rec.get(m.key) is not None)

    if args.add_runs:
        meta['added_runs'] = list(args.add_runs)
    if previous_meta.get('first_started') or previous_meta.get('started'):
        meta['first_started'] = previous_meta.get('first_started') or previous_meta['started']
    import torch
    meta['torch'] = torch.__version__
    meta['jobs'] = args.jobs
    # the threads each run gets (inherited: what torch takes here, or OMP_NUM_THREADS)
    run_threads = threads or int(os.environ.get('OMP_NUM_THREADS') or 0) or \
        torch.get_num_threads()
    meta['threads'] = run_threads
    records = dict(previous)  # key -> record; the current study's records replace old ones
    for r in records.values():  # final runs are those of this plan's final phase (set below)
        if r['method'] in plan.configs and r.get('phase', '') != plan.phase('final'):
            r.pop('final', None)
    sha_cache = {}
    # runs side by side (--jobs): each run's thread holds ``lock`` for its bookkeeping and lets
    # it go while its process works, so records, counters and files change one thread at a time
    lock = threading.Lock()

    @contextmanager
    def unlocked():
        if args.jobs == 1:
            yield
            return
        lock.release()
        try:
            yield
        finally:
            lock.acquire()

    state = dict(
        durations=dict(train=[], test=[]), chosen={}, edges={}, sha_warned=set(), plotted=None)

    def snapshot():
        return dict(format=FORMAT, meta=meta, runs=list(records.values()))

    def save(last=False):
        """Every output; the plots (~0.2 s each) at most once a minute and at the end."""
        plots = last or state['plotted'] is None or time.monotonic() - state['plotted'] >= 60
        write_outputs(snapshot(), methods, out_dir, pairs, args.reference, state['chosen'],
                      state['edges'], plots)
        if plots:
            state['plotted'] = time.monotonic()

    def peek(name, setting, seed, phase):
        """The earlier record of this run if it is still valid, or None: same fingerprint and
        tested, or trained with what the phase needs (screening: its val scores, or none when
        its validation gave none; a final run: its checkpoint, to test it), from the starting
        backbone there is now (when both are known). Records survive without their work dir
        (a fresh clone)."""
        label = plan.phase(phase)
        old = records.get((name, slug(setting), seed, label))
        if not old or old['status'] not in ('trained', 'ok') or not matches(old, setting, label):
            return None
        if old['status'] == 'ok' or osp.isfile(old.get('checkpoint', '')) or phase == 'screen':
            # (a screening run needs only its val scores: trained without any, e.g. it detected
            # nothing, it would give none again; an earlier version's fingerprint: this one)
            old['fingerprint'] = plan.fingerprints(name, setting, label)[0]
            return old
        return None

    def matches(rec, setting, label):
        """Whether a record is a run of this plan: the config and options it would get now
        (fingerprint, or an earlier version's form of it) and the starting backbone there is
        now (when both are known; another one: run it again)."""
        name = rec['method']
        fp, _ = plan.fingerprints(name, setting, label)
        if rec.get('fingerprint') != fp and \
                rec.get('fingerprint') not in plan.earlier_fingerprints(name, setting, label):
            return False
        sha = rec.get('start_sha256') and start_sha(dict(methods)[name], setting, label)
        return not (sha and sha != rec['start_sha256'])

    def fresh(name, config, setting, seed, phase):
        """The earlier record of this run if it is still valid, else a new one."""
        old = peek(name, setting, seed, phase)
        if old is not None:
            return old, True
        phase = plan.phase(phase)
        fp, model_fp = plan.fingerprints(name, setting, phase)
        total, bb, parts = plan.counts[model_fp]
        rec = dict(
            method=name,
            config=config,
            setting=[list(kv) for kv in setting],
            setting_label=slug(setting),
            seed=seed,
            fingerprint=fp,
            status='pending',
            trainable_params=total,
            backbone_trainable_params=bb,
            params_by_part=parts,
            commit=meta['commit'])
        if phase:
            rec['phase'] = phase
        prior = records.get((name, slug(setting), seed, phase)) or {}
        if prior.get('screen'):
            rec['screen'] = True  # (a screening run trained again to be a final run)
        if prior.get('status') == 'interrupted' and prior.get('fingerprint') == fp and \
                prior.get('threads') == run_threads and \
                prior.get('start_sha256') == start_sha(config, setting, phase):
            # stopped mid-way (e.g. a session's end): go on from its last checkpoint, if any
            rec.update(
                resume=True,
                train_s=prior.get('train_s') or 0,
                resumed_at=prior.get('resumed_at') or [])
        records[(name, slug(setting), seed, phase)] = rec
        return rec, False

    def plan_val_iters(name, setting, phase):
        """The iterations after which ``name``'s run validates (read here, under the lock:
        mmengine's config reading is not thread-safe)."""
        cfg = load_config(plan.configs[name], plan.run_options(setting, phase))
        return validation_iters(cfg, int((cfg.get('train_cfg') or {}).get('max_iters') or 0))

    def start_sha(config, setting, phase):
        path = start_checkpoint(load_config(config, plan.run_options(setting, phase)))
        if not path or not osp.isfile(path):
            return None
        stamp = (path, os.stat(path).st_mtime_ns, os.stat(path).st_size)
        if stamp not in sha_cache:
            from mmliera.checkpoint.digest import weights_sha256
            sha_cache[stamp] = weights_sha256(path)
        return sha_cache[stamp]

    def do_train(rec, config, setting, tag):
        print(f'{tag}: training {config} ({rec["setting_label"]}) ...', flush=True)
        phase = rec.get('phase', '')
        run_dir = osp.join(args.work_dir, rec['method'], rec['setting_label'],
                           f'{phase + "_" if phase else ""}seed_{rec["seed"]}')
        opts = dict(plan.run_options(setting, phase), **{'randomness.seed': rec['seed']})
        for k in ('val', 'val_curve', 'weight_change', 'error') + tuple(m.key for m in metrics):
            rec.pop(k, None)
        resume = rec.pop('resume', False)
        # (kept by a stopped run too: whether it may go on later)
        rec.update(
            device=meta['device'],
            threads=run_threads,
            jobs=args.jobs,
            start_sha256=start_sha(config, setting, phase))
        work = dict(rec)  # (filled while other threads may save the records)
        # (read here, under the lock: inside ``unlocked()`` it would run in the run's thread)
        val_iters = plan_val_iters(rec['method'], setting, phase) if resume else ()
        try:
            with unlocked():
                train(
                    work,
                    config,
                    opts,
                    run_dir,
                    metrics,
                    env=env,
                    resume=resume,
                    val_iters=val_iters)
        finally:
            rec.clear()
            rec.update(work)
        if rec.get('resumed_at') and resume:
            print(
                f'{tag}: went on from iteration {rec["resumed_at"][-1]} of its stopped run',
                flush=True)
        if rec['status'] == 'trained':  # (a failed run's time is not that of its iterations)
            state['durations']['train'].append((rec['train_s'], iters(rec['method'], phase)))
        rec['start_sha256'] = start_sha(config, setting, phase)
        others = {
            r.get('start_sha256')
            for r in records.values() if r is not rec and r.get('start_sha256')
            and r['status'] != 'failed' and of_this_plan(r)
        }
        if rec['start_sha256'] and others - {rec['start_sha256']} and \
                rec['start_sha256'] not in state['sha_warned']:  # once per start, not per run
            state['sha_warned'].add(rec['start_sha256'])
            print(
                f'{tag}: WARNING: started from a backbone with weights sha256 '
                f'{rec["start_sha256"][:16]}..., other runs of this study from '
                f'{", ".join(s[:16] + "..." for s in sorted(others - {rec["start_sha256"]}))}'
                '; their results are not comparable',
                flush=True)
        if rec['status'] == 'trained' and not args.no_diagnostics:
            try:
                from .diagnostics import backbone_change
                rec['weight_change'] = dict(
                    backbone_change(config, plan.run_options(setting, phase), rec['checkpoint']))
            except Exception as e:  # a diagnostic never fails the run
                rec['diagnostics_error'] = f'{type(e).__name__}: {e}'[:200]
        val = rec.get('val') or {}
        if rec['status'] == 'trained':
            shown = f'val {figures(val)}, ' if val else ''
            print(
                f'{tag}: trained, {shown}{rec["sec_per_iter"]:.3f} s/iter, '
                f'{_duration(rec["train_s"])}{eta()}',
                flush=True)
        else:
            print(f'{tag}: FAILED ({rec["error"]}); log: {rec["log"]}{eta()}', flush=True)
        save()

    def do_test(rec, config, setting, tag):
        opts = dict(
            plan.run_options(setting, rec.get('phase', '')), **{'randomness.seed': rec['seed']})
        work = dict(rec)
        try:
            with unlocked():
                test(work, config, opts, metrics, env=env)
        finally:
            rec.clear()
            rec.update(work)
        state['durations']['test'].append(rec['test_s'])
        if rec['status'] == 'ok':
            print(f'{tag}: test {figures(rec)}{eta()}', flush=True)
        else:
            print(f'{tag}: FAILED ({rec["error"]}); log: {rec["log"]}{eta()}', flush=True)
        save()

    pending = dict(train=0, test=0)  # training iterations, tests still to run
    iters_cache = {}

    def iters(name, label):
        """Training iterations of ``name``'s runs with the phase label ``label`` (1 when the
        config does not say: epoch-based), for the ETA."""
        if (name, label) not in iters_cache:
            try:
                cfg = load_config(plan.configs[name], plan.run_options((), label))
                n = int(cfg.train_cfg.get('max_iters') or 0)
            except Exception:
                n = 0
            iters_cache[name, label] = n if n > 0 else 1
        return iters_cache[name, label]

    def eta():
        d = state['durations']
        if not d['train'] or not (pending['train'] or pending['test']):
            return ''
        per_iter = sum(s for s, _ in d['train']) / sum(n for _, n in d['train'])
        runs = len(d['train'])
        mean_test = sum(d['test']) / len(d['test']) if d['test'] else \
            0.15 * per_iter * sum(n for _, n in d['train']) / runs
        left = (pending['train'] * per_iter + pending['test'] * mean_test) / args.jobs
        return f'; ETA {_duration(left)}'

    failed = []
    screened = {
        n: plan.settings[n]
        for n, _ in methods if len(plan.settings[n]) > 1 and n not in plan.unusable
    }
    # the ETA's count: screening runs not done yet, plus every final run (an upper bound)
    pending['train'] = sum(
        iters(n, plan.phase('screen')) for n, c in methods for s in screened.get(n, ())
        if peek(n, s, screen_seed, 'screen') is None) + \
        sum(iters(n, plan.phase('final')) for n, _ in methods) * len(args.seeds)
    pending['test'] = len(methods) * len(args.seeds)

    def screen_runs(n, c):
        """``n``'s screening runs still to train: [(setting, record, tag)]."""
        todo = []
        for s in screened[n]:
            rec, done = fresh(n, c, s, screen_seed, 'screen')
            rec['screen'] = True
            if not done:
                todo.append((s, rec))
        return [(s, rec, f'[{n}: screen {i}/{len(todo)}] {slug(s)} seed {screen_seed}')
                for i, (s, rec) in enumerate(todo, 1)]

    def screen_one(c, s, rec, tag):
        pending['train'] -= iters(rec['method'], plan.phase('screen'))
        do_train(rec, c, s, tag)

    def screen_method(n, c):
        """Screen ``n``'s settings on val (one seed) and choose one."""
        for s, rec, tag in screen_runs(n, c):
            screen_one(c, s, rec, tag)
        choose(n)

    def choose(n):
        """Choose ``n``'s setting from its screening runs' val scores."""
        scores = {}
        for s in screened[n]:
            rec = records[(n, slug(s), screen_seed, plan.phase('screen'))]
            val = rec.get('val') or {}
            if rec['status'] in ('trained', 'ok') and val.get(main_metric.key) is not None:
                scores[s] = val[main_metric.key]
            elif rec['status'] == 'failed':
                failed.append(rec)
        chosen = select(scores)
        if chosen is None:
            plan.unusable[n] = 'every screening run failed'
            return
        state['chosen'][n] = slug(chosen)
        plan.settings[n] = [chosen]
        for r in records.values():  # final runs of an earlier choice are not final any more
            if r['method'] == n and r.get('setting_label') != slug(chosen):
                r.pop('final', None)
        print(
            f'{n}: chose {slug(chosen)} (val {main_metric.label} '
            f'{scores[chosen]:{main_metric.fmt}}; {len(scores)} of '
            f'{len(screened[n])} settings screened)',
            flush=True)
        note = edge_note(at_edge(chosen, screened[n]))
        if note:
            print(
                f'WARNING: {n}: {note}: the best may lie beyond it; extend the grid that '
                'way (--grid) and run again (what is done is kept)',
                flush=True)
            state['edges'][n] = note
        else:
            state['edges'].pop(n, None)
        save()

    def final_runs(finals):
        """Train (unless the screening did) and test each (method, config, seed)."""
        for i, (n, c, seed) in enumerate(finals, 1):
            final_one(f'[{i}/{len(finals)}] {n} seed {seed}', n, c, seed)

    def final_one(tag, n, c, seed):
        """Train (unless the screening did) and test one final run."""
        setting = plan.settings[n][0]
        if n in plan.unusable:
            rec = dict(
                method=n,
                config=c,
                setting=[],
                setting_label=slug(setting),
                seed=seed,
                status='failed',
                error=plan.unusable[n],
                final=True)
            records[(n, slug(setting), seed, plan.phase('final'))] = rec
            failed.append(rec)
            pending['train'] -= iters(n, plan.phase('final'))
            pending['test'] -= 1
            print(f'{tag}: FAILED ({rec["error"]})', flush=True)
            return
        rec, done = fresh(n, c, setting, seed, 'final')
        rec['final'] = True
        if rec['status'] == 'ok':
            pending['train'] -= iters(n, plan.phase('final'))
            pending['test'] -= 1
            print(f'{tag}: done earlier (test {figures(rec)}), skipped', flush=True)
            return
        pending['train'] -= iters(n, plan.phase('final'))
        if not done:
            do_train(rec, c, setting, tag)
        pending['test'] -= 1
        if rec['status'] == 'failed':
            failed.append(rec)
            return
        print(f'{tag}: testing {rec["checkpoint"]} ...', flush=True)
        do_test(rec, c, setting, tag)
        if rec['status'] != 'ok':
            failed.append(rec)

    # a final run recorded with another config, final options (e.g. a longer schedule) or
    # starting backbone is not one of this plan's final runs: the tables leave it out (its
    # record stays until the run is made again)
    for r in records.values():
        if r.get('final') and r['method'] in plan.configs and r['method'] not in plan.unusable:
            try:
                current = matches(r, tuple(map(tuple, r.get('setting') or ())), plan.phase('final'))
            except ComparisonError:  # (a setting this config cannot take any more)
                current = False
            if not current:
                r.pop('final')

    def stop(signum, frame):  # a kill (e.g. the end of a session): save like Ctrl-C
        raise KeyboardInterrupt

    def side_by_side(tasks):
        """Run ``tasks`` (callables) on ``args.jobs`` threads, each holding ``lock`` but while
        its run's process works; stop them all at the first error or interrupt. (The main
        thread does not hold ``lock`` meanwhile.)"""

        def call(task):
            with lock:
                task()

        pool, left = ThreadPoolExecutor(args.jobs), set()
        try:
            left = {pool.submit(call, t) for t in tasks}
            while left:
                done, left = wait(left, timeout=1, return_when=FIRST_COMPLETED)
                for f in done:
                    if f.exception() is not None:
                        raise f.exception()
        except BaseException:
            for f in left:  # (runs not started yet stay pending)
                f.cancel()
            stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def report_only():
        """Choose where every screening run is in, then write the outputs from the records
        as they are; the study's own command, commit and start stay in ``meta``."""
        for n in screened:
            if all(
                    peek(n, s, screen_seed, 'screen') is not None or records.get((n, slug(
                        s), screen_seed, plan.phase('screen')), {}).get('status') == 'failed'
                    for s in screened[n]):
                choose(n)
        for key in ('command', 'commit', 'started', 'finished', 'jobs', 'threads'):
            if key in previous_meta:
                meta[key] = previous_meta[key]
        meta['reported'] = dict(
            command=' '.join(['python projects/liera_study/tools/compare_methods.py'] +
                             (argv if argv is not None else sys.argv[1:])),
            at=datetime.datetime.now().isoformat(timespec='seconds'))
        save(last=True)
        missing = sum(1 for n, _, seed in finals_in_order() if not any(
            r.get('final') and r['method'] == n and r['seed'] == seed and r['status'] == 'ok'
            for r in records.values()))
        unchosen = [n for n in screened if n not in state['chosen']]
        print(
            f'wrote the tables and plots in {out_dir} from {results_path}, nothing trained; '
            f'{missing} final runs not tested yet are left out' +
            (f'; not chosen yet (screening not done): {", ".join(unchosen)}' if unchosen else ''),
            flush=True)
        return 0

    def finals_in_order():
        if args.order == 'seed':
            return [(n, c, seed) for seed in args.seeds for n, c in methods]
        return [(n, c, seed) for n, c in methods for seed in args.seeds]

    if args.report_only:
        return report_only()

    previous_handler = signal.signal(signal.SIGTERM, stop)
    clear_stop()
    try:
        if args.jobs > 1:  # every screening run, then every final run, args.jobs at a time
            side_by_side([
                partial(screen_one, c, s, rec, tag) for n, c in methods if n in screened
                for s, rec, tag in screen_runs(n, c)
            ])
            with lock:
                for n, c in methods:
                    if n in screened:
                        choose(n)
            finals = finals_in_order()
            side_by_side([
                partial(final_one, f'[{i}/{len(finals)}] {n} seed {seed}', n, c, seed)
                for i, (n, c, seed) in enumerate(finals, 1)
            ])
        elif args.order == 'seed':  # all screening, then every method's first seed, ...
            for n, c in methods:
                if n in screened:
                    screen_method(n, c)
            final_runs([(n, c, seed) for seed in args.seeds for n, c in methods])
        else:  # one method after the other: its screening, then all its seeds
            for n, c in methods:
                if n in screened:
                    screen_method(n, c)
                final_runs([(n, c, seed) for seed in args.seeds])
    except KeyboardInterrupt:
        signal.signal(signal.SIGTERM, previous_handler)
        save(last=True)
        done = sum(1 for r in records.values() if r['status'] == 'ok')
        print(
            f'\ninterrupted: {done} tested runs and every finished step are in '
            f'{results_path}; the same command again goes on from here',
            flush=True)
        return 130
    signal.signal(signal.SIGTERM, previous_handler)
    meta['finished'] = datetime.datetime.now().isoformat(timespec='seconds')
    save(last=True)
    rows = summarise(snapshot(), methods)
    print(markdown_table(rows))
    for d in paired_differences(rows, pairs):
        if d['mean'] is not None:
            iv = d['t']
            shown = f' (95 % t interval [{iv[0]:+.4g}, {iv[1]:+.4g}])' if iv else ''
            print(f'{d["pair"]} {d["metric"]}: {d["mean"]:+.4g} over {len(d["seeds"])} seeds'
                  f'{shown}')
    print(f'wrote {results_path}, results.csv and the tables and plots in {out_dir}')
    if failed:
        print(
            f'{len(failed)} runs failed: ' +
            '; '.join(f'{r["method"]} {r.get("setting_label", "")} seed {r["seed"]}'
                      for r in failed),
            flush=True)
        return 1
    return 0
