"""A comparison as an object: :class:`Study` holds the plan, the run records (earlier ones and
this invocation's), the lock that guards them while runs go side by side, and the outputs
written from them after every step. Its steps: :meth:`Study.screen` a method's settings on val,
:meth:`Study.choose` one, :meth:`Study.final` (train unless the screening did, then test),
:meth:`Study.run` the whole plan, :meth:`Study.report_only` the outputs again from the records.
The functions that train and test one run are given to it (the real ones of :mod:`.runs` by
default), so that a test may give small stand-ins instead."""
import os
import os.path as osp
import platform
import signal
import threading
import time
from functools import partial

from . import records, runs
from .errors import ComparisonError
from .grid import at_edge, edge_note, select, slug
from .lanes import side_by_side, unlocked
from .metrics import DETECTION
from .plan import setting_of
from .progress import Progress, duration
from .provenance import device, git_commit, machine, now
from .report import markdown_table, write_outputs
from .stats import paired_differences, summarise

# what a new training run replaces in its record (with the test figures)
STALE = ('val', 'val_curve', 'weight_change', 'error', 'sealed', 'sealed_error')


def backbone_change(config, options, checkpoint):
    """The default diagnostic of a trained run: :func:`.diagnostics.backbone_change` (imported
    when first used: it builds the model)."""
    from .diagnostics import backbone_change as change
    return change(config, options, checkpoint)


def _stop(signum, frame):  # a kill (e.g. the end of a session): save like Ctrl-C
    raise KeyboardInterrupt


class Study:
    """A comparison of ``plan``'s methods: runs go to ``work_dir``/METHOD/SETTING/seed_S, the
    records and tables to ``out_dir`` (default: ``work_dir``).

    ``jobs`` runs at once, each with ``threads`` CPU threads (None: the cores / ``jobs`` when
    ``jobs`` > 1, else as inherited); ``diagnostics``: the weight change of each trained run;
    ``test_screening``: test each screening run of a final seed right after it trains, its test
    figures sealed (``rec['sealed']``: read by nothing until the run is chosen as a final run);
    ``pairs``: the paired differences reported; ``references``: methods drawn as reference lines;
    ``command``: the command line recorded in ``meta``. ``train(record, config, options, run_dir,
    metrics, env=, resume=, val_iters=)`` and ``test(record, config, options, metrics, env=)``
    run one run and fill its record (:func:`.runs.train`, :func:`.runs.test`); ``diagnose(config,
    options, checkpoint)`` gives {stage: relative change}."""

    def __init__(self,
                 plan,
                 work_dir,
                 out_dir=None,
                 *,
                 jobs=1,
                 threads=None,
                 diagnostics=True,
                 test_screening=False,
                 pairs=(),
                 references=(),
                 command='',
                 train=runs.train,
                 test=runs.test,
                 diagnose=backbone_change):
        self.plan = plan
        self.work_dir, self.out_dir = work_dir, out_dir or work_dir
        self.results_path = osp.join(self.out_dir, 'results.json')
        self.jobs = jobs
        self.threads = threads or (max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None)
        self.env = runs.thread_env(self.threads)
        self.diagnostics, self.pairs, self.references = diagnostics, list(pairs), list(references)
        self.test_screening = test_screening
        self.command = command
        self._train, self._test, self._diagnose = train, test, diagnose
        self.metrics = plan.metrics or DETECTION
        self.unusable = dict(plan.unusable)  # (and a method whose every screening run failed)
        self.records, self.meta, self.previous_meta = {}, {}, {}
        # per method: the setting chosen on val, its label, a note when it lies at the grid's edge
        self.choice, self.chosen, self.edges = {}, {}, {}
        self.failed, self.sha_warned, self.plotted = [], set(), None
        # runs side by side (--jobs): each run's thread holds ``lock`` for its bookkeeping and
        # lets it go while its process works (:mod:`.lanes`)
        self.lock = threading.Lock()
        self.progress = Progress(jobs)

    # -----------------------------------------------------------------------------------------
    # the records

    def load(self, rerun=False, add_runs=(), report_only=False):
        """Take the earlier runs (this study's results.json unless ``rerun``, and those of the
        results files ``add_runs``), start ``meta`` and count what is left to run."""
        if report_only and not osp.isfile(self.results_path):
            raise ComparisonError(f'--report-only: no {self.results_path} to report from: run the '
                                  'comparison first (or give its --out-dir)')
        if osp.isfile(self.results_path) and not rerun:
            found = records.read(self.results_path)
            self.previous_meta = found.get('meta', {})
            base = records.work_dir_of(self.previous_meta)
            for r in map(records.upgrade, found.get('runs', [])):
                if base is None:  # (an earlier version's paths: made relative)
                    records.rebase(r, None, self.work_dir)
                self.records[records.key(r)] = r
        for path in add_runs:
            self._add(path)
        self.meta = self._start_meta(add_runs)
        for r in self.records.values():  # final runs are those of this plan's final phase
            if r['method'] in self.plan.configs and r.get('phase', '') != self.plan.phase('final'):
                r.pop('final', None)
        self._count_left()
        self._drop_other_finals()

    def _add(self, path):
        """The tested and trained runs of another study's results file, as earlier runs (their
        unfinished runs' work dirs are elsewhere: not taken)."""
        added, meta = records.read_added(path)
        base = records.work_dir_of(meta)
        for r in map(records.upgrade, added):
            if r.get('status') not in ('ok', 'trained'):
                continue
            records.rebase(r, base, self.work_dir)
            key = records.key(r)
            # (this study's own record stays unless the added one counts for more: a run of
            # another schedule never replaces one of this plan)
            if key not in self.records or self._standing(r) > self._standing(self.records[key]):
                self.records[key] = r

    def _standing(self, r):
        """How much a record counts when two share a key: a run of this plan over another
        schedule's, then tested over trained over the rest."""
        return self.plan.is_run_of(r), {'ok': 2, 'trained': 1}.get(r.get('status'), 0)

    def _start_meta(self, add_runs):
        import torch
        plan, previous = self.plan, self.previous_meta
        meta = dict(
            command=self.command,
            commit=git_commit(),
            started=now(),
            machine=machine(),
            python=platform.python_version(),
            cfg_options=plan.options,
            screen_cfg_options=dict(plan.phase_options.get('screen', {})),
            final_cfg_options=dict(plan.phase_options.get('final', {})),
            screen_seed=plan.screen_seeds[0],
            screen_seeds=list(plan.screen_seeds),
            device=device(),
            metrics=[m.key for m in self.metrics])
        if add_runs:
            meta['added_runs'] = list(add_runs)
        if previous.get('first_started') or previous.get('started'):
            meta['first_started'] = previous.get('first_started') or previous['started']
        meta['torch'] = torch.__version__
        meta['jobs'] = self.jobs
        # the threads each run gets (inherited: what torch takes here, or OMP_NUM_THREADS)
        meta['threads'] = self.threads or int(os.environ.get('OMP_NUM_THREADS') or 0) or \
            torch.get_num_threads()
        meta['work_dir'] = records.work_dir_entry(self.work_dir)
        return meta

    def _count_left(self):
        """The ETA's count: screening runs not done yet, plus every final run (an upper
        bound)."""
        plan, screen, final = self.plan, self.plan.phase('screen'), self.plan.phase('final')
        self.progress.left_iters = sum(
            plan.iters(n, screen) for n, tried in plan.screened.items()
            for seed in plan.screen_seeds for s in tried
            if self.peek(n, s, seed, 'screen') is None) + \
            sum(plan.iters(n, final) for n, _ in plan.methods) * len(plan.seeds)
        self.progress.left_tests = len(plan.methods) * len(plan.seeds)

    def _drop_other_finals(self):
        """A final run recorded with another config, final options (e.g. a longer schedule) or
        starting backbone is not one of this plan's final runs: the tables leave it out (its
        record stays until the run is made again)."""
        for r in self.records.values():
            if r.get('final') and r['method'] in self.plan.configs and \
                    r['method'] not in self.unusable:
                try:
                    current = self.plan.matches(r, setting_of(r), self.plan.phase('final'))
                except ComparisonError:  # (a setting this config cannot take any more)
                    current = False
                if not current:
                    r.pop('final')

    def snapshot(self):
        return dict(format=records.FORMAT, meta=self.meta, runs=list(self.records.values()))

    def save(self, last=False):
        """Every output; the plots (~0.2 s each) at most once a minute and at the end."""
        plots = last or self.plotted is None or time.monotonic() - self.plotted >= 60
        write_outputs(self.snapshot(), self.plan.methods, self.out_dir, self.pairs, self.references,
                      self.chosen, self.edges, plots)
        if plots:
            self.plotted = time.monotonic()

    def path(self, path):
        """A record's path (relative to the work dir) as a path to open from here."""
        return osp.join(self.work_dir, path)

    def figures(self, rec):
        """'bbox mAP 0.123 segm mAP 0.101' of a record (or of its val dict)."""
        return ' '.join(f'{m.label} {rec[m.key]:{m.fmt}}' for m in self.metrics
                        if rec.get(m.key) is not None)

    def peek(self, name, setting, seed, phase):
        """The earlier record of this run if it is still valid, or None: same fingerprint and
        tested, or trained with what the phase needs (screening: its val scores, or none when
        its validation gave none; a final run: its checkpoint, to test it), from the starting
        backbone there is now (when both are known). Records survive without their work dir
        (a fresh clone)."""
        label = self.plan.phase(phase)
        old = self.records.get((name, slug(setting), seed, label))
        if not old or old['status'] not in ('trained', 'ok') or \
                not self.plan.matches(old, setting, label):
            return None
        if old['status'] == 'ok' or phase == 'screen' or old.get('sealed') or \
                osp.isfile(self.path(old.get('checkpoint') or '')):
            # (a screening run needs only its val scores: trained without any, e.g. it detected
            # nothing, it would give none again; an earlier version's fingerprint: this one)
            old['fingerprint'] = self.plan.fingerprints(name, setting, label)[0]
            return old
        return None

    def fresh(self, name, setting, seed, phase):
        """(the earlier record of this run if it is still valid, else a new one; whether it is
        the earlier one)."""
        old = self.peek(name, setting, seed, phase)
        if old is not None:
            return old, True
        label = self.plan.phase(phase)
        key = (name, slug(setting), seed, label)
        fp, model_fp = self.plan.fingerprints(name, setting, label)
        total, bb, parts = self.plan.counts[model_fp]
        rec = dict(
            method=name,
            config=records.config_entry(self.plan.configs[name]),
            setting=[list(kv) for kv in setting],
            setting_label=slug(setting),
            seed=seed,
            fingerprint=fp,
            status='pending',
            trainable_params=total,
            backbone_trainable_params=bb,
            params_by_part=parts,
            commit=self.meta['commit'])
        if label:
            rec['phase'] = label
        prior = self.records.get(key) or {}
        if prior.get('screen'):
            rec['screen'] = True  # (a screening run trained again to be a final run)
        if prior.get('status') == 'interrupted' and prior.get('fingerprint') == fp and \
                prior.get('threads') == self.meta['threads'] and \
                prior.get('start_sha256') == self.plan.start_sha(name, setting, label):
            # stopped mid-way (e.g. a session's end): go on from its last checkpoint, if any
            rec.update(
                resume=True,
                train_s=prior.get('train_s') or 0,
                resumed_at=prior.get('resumed_at') or [])
        self.records[key] = rec
        return rec, False

    # -----------------------------------------------------------------------------------------
    # one run

    def train_run(self, rec, setting, tag):
        """Train ``rec``'s run (``self.train`` in its run dir; the lock let go meanwhile), then
        record what it gave and save."""
        name, phase = rec['method'], rec.get('phase', '')
        config = self.plan.configs[name]
        print(f'{tag}: training {config} ({rec["setting_label"]}) ...', flush=True)
        run_dir = osp.join(self.work_dir, name, rec['setting_label'],
                           f'{phase + "_" if phase else ""}seed_{rec["seed"]}')
        opts = dict(self.plan.run_options(setting, phase), **{'randomness.seed': rec['seed']})
        for k in STALE + tuple(m.key for m in self.metrics):
            rec.pop(k, None)
        resume = rec.pop('resume', False)
        # (kept by a stopped run too: whether it may go on later)
        rec.update(
            device=self.meta['device'],
            threads=self.meta['threads'],
            jobs=self.jobs,
            start_sha256=self.plan.start_sha(name, setting, phase))
        work = records.resolved(rec, self.work_dir)  # (filled while other threads may save)
        # (read here, under the lock: inside ``unlocked()`` it would run in the run's thread)
        val_iters = self.plan.val_iters(name, setting, phase) if resume else ()
        try:
            with unlocked(self.lock, self.jobs):
                self._train(
                    work,
                    config,
                    opts,
                    run_dir,
                    self.metrics,
                    env=self.env,
                    resume=resume,
                    val_iters=val_iters)
        finally:
            rec.clear()
            rec.update(records.relative(work, self.work_dir))
        if rec.get('resumed_at') and resume:
            print(
                f'{tag}: went on from iteration {rec["resumed_at"][-1]} of its stopped run',
                flush=True)
        self._trained(rec, setting, tag)

    def _trained(self, rec, setting, tag):
        name, phase = rec['method'], rec.get('phase', '')
        if rec['status'] == 'trained':  # (a failed run's time is not that of its iterations)
            self.progress.trained(rec['train_s'], self.plan.iters(name, phase))
        rec['start_sha256'] = self.plan.start_sha(name, setting, phase)
        self._warn_other_start(rec, tag)
        if rec['status'] == 'trained' and self.diagnostics:
            try:
                rec['weight_change'] = dict(
                    self._diagnose(self.plan.configs[name], self.plan.run_options(setting, phase),
                                   self.path(rec['checkpoint'])))
            except Exception as e:  # a diagnostic never fails the run
                rec['diagnostics_error'] = f'{type(e).__name__}: {e}'[:200]
        val = rec.get('val') or {}
        if rec['status'] == 'trained':
            shown = f'val {self.figures(val)}, ' if val else ''
            print(
                f'{tag}: trained, {shown}{rec["sec_per_iter"]:.3f} s/iter, '
                f'{duration(rec["train_s"])}{self.progress.eta()}',
                flush=True)
        else:
            print(
                f'{tag}: FAILED ({rec["error"]}); log: {self.path(rec["log"])}'
                f'{self.progress.eta()}',
                flush=True)
        self.save()

    def _warn_other_start(self, rec, tag):
        """Say (once per starting backbone, not per run) that a run started from another
        backbone than this plan's other runs: their results are not comparable."""
        sha = rec['start_sha256']
        others = {
            r.get('start_sha256')
            for r in self.records.values() if r is not rec and r.get('start_sha256')
            and r['status'] != 'failed' and self.plan.is_run_of(r)
        }
        if sha and others - {sha} and sha not in self.sha_warned:
            self.sha_warned.add(sha)
            print(
                f'{tag}: WARNING: started from a backbone with weights sha256 '
                f'{sha[:16]}..., other runs of this study from '
                f'{", ".join(s[:16] + "..." for s in sorted(others - {sha}))}'
                '; their results are not comparable',
                flush=True)

    def test_run(self, rec, setting, tag, quiet=False):
        """Test ``rec``'s trained run (``self.test``; the lock let go meanwhile) and save;
        ``quiet``: print no figures."""
        opts = dict(
            self.plan.run_options(setting, rec.get('phase', '')),
            **{'randomness.seed': rec['seed']})
        work = records.resolved(rec, self.work_dir)
        try:
            with unlocked(self.lock, self.jobs):
                self._test(work, self.plan.configs[rec['method']], opts, self.metrics, env=self.env)
        finally:
            rec.clear()
            rec.update(records.relative(work, self.work_dir))
        self.progress.tested(rec['test_s'])
        if quiet:
            print(f'{tag}: tested ({rec["status"]}){self.progress.eta()}', flush=True)
        elif rec['status'] == 'ok':
            print(f'{tag}: test {self.figures(rec)}{self.progress.eta()}', flush=True)
        else:
            print(
                f'{tag}: FAILED ({rec["error"]}); log: {self.path(rec["log"])}'
                f'{self.progress.eta()}',
                flush=True)
        self.save()

    # -----------------------------------------------------------------------------------------
    # the steps

    def screen_runs(self, name):
        """``name``'s screening runs still to train: [(setting, record, tag)]."""
        todo = []
        for seed in self.plan.screen_seeds:
            for s in self.plan.screened[name]:
                rec, done = self.fresh(name, s, seed, 'screen')
                rec['screen'] = True
                if not done:
                    todo.append((s, seed, rec))
        return [(s, rec, f'[{name}: screen {i}/{len(todo)}] {slug(s)} seed {seed}')
                for i, (s, seed, rec) in enumerate(todo, 1)]

    def screen_one(self, setting, rec, tag):
        self.progress.left_iters -= self.plan.iters(rec['method'], self.plan.phase('screen'))
        self.train_run(rec, setting, tag)
        if self.test_screening and rec['status'] == 'trained' and \
                rec['seed'] in self.plan.seeds and \
                self.plan.phase('screen') == self.plan.phase('final'):
            self.sealed_test(rec, setting, tag)

    def sealed_test(self, rec, setting, tag):
        """Test a screening run that may become a final run now, while its checkpoint exists,
        and seal the figures: ``rec['sealed']`` holds them, the record stays 'trained' (nothing
        prints or reads them; :meth:`final` unseals them if the run is chosen). A failed test is
        noted (``sealed_error``) and left to :meth:`final`."""
        print(
            f'{tag}: testing now, sealed (the figures stay hidden unless it is chosen) ...',
            flush=True)
        self.test_run(rec, setting, tag, quiet=True)
        if rec['status'] == 'ok':
            rec['sealed'] = {m.key: rec.pop(m.key) for m in self.metrics if m.key in rec}
        else:
            rec['sealed_error'] = rec.pop('error', 'the test failed')
        rec['status'] = 'trained'
        self.save()

    def screen(self, name):
        """Screen ``name``'s settings on val (the screening seeds) and choose one."""
        for setting, rec, tag in self.screen_runs(name):
            self.screen_one(setting, rec, tag)
        self.choose(name)

    def _screen_score(self, name, setting):
        """The mean val figure of ``setting``'s screening runs, None unless each has one (a
        failed one is counted among the failures)."""
        key, seeds = self.metrics[0].key, self.plan.screen_seeds
        values = []
        for seed in seeds:
            rec = self.records[(name, slug(setting), seed, self.plan.phase('screen'))]
            val = rec.get('val') or {}
            if rec['status'] in ('trained', 'ok') and val.get(key) is not None:
                values.append(val[key])
            elif rec['status'] == 'failed':
                self.failed.append(rec)
        return sum(values) / len(values) if values and len(values) == len(seeds) else None

    def choose(self, name):
        """Choose ``name``'s setting from its screening runs' val scores
        (:func:`.grid.select`); a choice at the grid's edge is warned about."""
        main, tried = self.metrics[0], self.plan.screened[name]
        scores = {s: self._screen_score(name, s) for s in tried}
        scores = {s: v for s, v in scores.items() if v is not None}
        chosen = select(scores)
        if chosen is None:
            self.unusable[name] = 'every screening run failed'
            return
        self.choice[name], self.chosen[name] = chosen, slug(chosen)
        for r in self.records.values():  # final runs of an earlier choice are not final any more
            if r['method'] == name and r.get('setting_label') != slug(chosen):
                r.pop('final', None)
        print(
            f'{name}: chose {slug(chosen)} (val {main.label} '
            f'{scores[chosen]:{main.fmt}}; {len(scores)} of {len(tried)} settings screened)',
            flush=True)
        note = edge_note(at_edge(chosen, tried))
        if note:
            print(
                f'WARNING: {name}: {note}: the best may lie beyond it; extend the grid that '
                'way (--grid) and run again (what is done is kept)',
                flush=True)
            self.edges[name] = note
        else:
            self.edges.pop(name, None)
        self.save()

    def setting(self, name):
        """The setting of ``name``'s final runs: the one chosen on val, or its only one."""
        return self.choice[name] if name in self.choice else self.plan.settings[name][0]

    def final(self, name, seed, tag=None):
        """Train (unless the screening did) and test ``name``'s final run of ``seed``."""
        tag = tag or f'{name} seed {seed}'
        setting, label = self.setting(name), self.plan.phase('final')
        if name in self.unusable:
            return self._unusable_final(name, setting, seed, tag)
        rec, done = self.fresh(name, setting, seed, 'final')
        rec['final'] = True
        self.progress.left_iters -= self.plan.iters(name, label)
        if rec['status'] == 'ok':
            self.progress.left_tests -= 1
            print(f'{tag}: done earlier (test {self.figures(rec)}), skipped', flush=True)
            return
        if rec['status'] == 'trained' and rec.get('sealed'):
            self.progress.left_tests -= 1
            rec.update(rec.pop('sealed'), status='ok')
            print(
                f'{tag}: tested after its screening (sealed till now): test '
                f'{self.figures(rec)}',
                flush=True)
            self.save()
            return
        if not done:
            self.train_run(rec, setting, tag)
        self.progress.left_tests -= 1
        if rec['status'] == 'failed':
            self.failed.append(rec)
            return
        print(f'{tag}: testing {self.path(rec["checkpoint"])} ...', flush=True)
        self.test_run(rec, setting, tag)
        if rec['status'] != 'ok':
            self.failed.append(rec)

    def _unusable_final(self, name, setting, seed, tag):
        """The final run of a method that cannot run (its config does not build, or every
        screening run failed): recorded as failed with the reason."""
        label = self.plan.phase('final')
        rec = dict(
            method=name,
            config=records.config_entry(self.plan.configs[name]),
            setting=[],
            setting_label=slug(setting),
            seed=seed,
            status='failed',
            error=self.unusable[name],
            final=True)
        self.records[(name, slug(setting), seed, label)] = rec
        self.failed.append(rec)
        self.progress.left_iters -= self.plan.iters(name, label)
        self.progress.left_tests -= 1
        print(f'{tag}: FAILED ({rec["error"]})', flush=True)

    def _finals(self, finals):
        for i, (name, seed) in enumerate(finals, 1):
            self.final(name, seed, f'[{i}/{len(finals)}] {name} seed {seed}')

    # -----------------------------------------------------------------------------------------
    # the whole study

    def run(self):
        """Screen, choose and make the final runs; the exit status: 0 when every needed run
        succeeded, else 1; 130 when stopped (Ctrl-C or SIGTERM: the records are saved, the same
        command goes on from there)."""
        previous_handler = signal.signal(signal.SIGTERM, _stop)
        runs.clear_stop()
        try:
            self._run_plan()
        except KeyboardInterrupt:
            signal.signal(signal.SIGTERM, previous_handler)
            self.save(last=True)
            done = sum(1 for r in self.records.values() if r['status'] == 'ok')
            print(
                f'\ninterrupted: {done} tested runs and every finished step are in '
                f'{self.results_path}; the same command again goes on from here',
                flush=True)
            return 130
        signal.signal(signal.SIGTERM, previous_handler)
        self.meta['finished'] = now()
        self.save(last=True)
        return self._summary()

    def _run_plan(self):
        plan = self.plan
        screened = [n for n, _ in plan.methods if n in plan.screened]
        if self.jobs > 1:  # every screening run, then every final run, self.jobs at a time
            side_by_side([
                partial(self.screen_one, s, rec, tag) for n in screened
                for s, rec, tag in self.screen_runs(n)
            ], self.jobs, self.lock)
            with self.lock:
                for n in screened:
                    self.choose(n)
            finals = plan.finals()
            side_by_side([
                partial(self.final, n, seed, f'[{i}/{len(finals)}] {n} seed {seed}')
                for i, (n, seed) in enumerate(finals, 1)
            ], self.jobs, self.lock)
        elif plan.order == 'seed':  # all screening, then every method's first seed, ...
            for n in screened:
                self.screen(n)
            self._finals(plan.finals())
        else:  # one method after the other: its screening, then all its seeds
            for n, _ in plan.methods:
                if n in plan.screened:
                    self.screen(n)
                self._finals([(n, seed) for seed in plan.seeds])

    def _summary(self):
        """Print the table, the paired differences and the failures; the exit status."""
        rows = summarise(self.snapshot(), self.plan.methods)
        print(markdown_table(rows))
        for d in paired_differences(rows, self.pairs):
            if d['mean'] is not None:
                iv = d['t']
                shown = f' (95 % t interval [{iv[0]:+.4g}, {iv[1]:+.4g}])' if iv else ''
                print(f'{d["pair"]} {d["metric"]}: {d["mean"]:+.4g} over {len(d["seeds"])} seeds'
                      f'{shown}')
        print(f'wrote {self.results_path}, results.csv and the tables and plots in {self.out_dir}')
        if self.failed:
            print(
                f'{len(self.failed)} runs failed: ' +
                '; '.join(f'{r["method"]} {r.get("setting_label", "")} seed {r["seed"]}'
                          for r in self.failed),
                flush=True)
            return 1
        return 0

    def report_only(self):
        """Choose where every screening run is in, then write the outputs from the records
        as they are (nothing trained or tested); the study's own command, commit and start stay
        in ``meta``. The exit status: 0."""
        plan = self.plan
        for n, tried in plan.screened.items():
            if all(self._screened(n, s, seed) for seed in plan.screen_seeds for s in tried):
                self.choose(n)
        for key in ('command', 'commit', 'started', 'finished', 'jobs', 'threads'):
            if key in self.previous_meta:
                self.meta[key] = self.previous_meta[key]
        self.meta['reported'] = dict(command=self.command, at=now())
        self.save(last=True)
        missing = sum(1 for n, seed in plan.finals() if not any(
            r.get('final') and r['method'] == n and r['seed'] == seed and r['status'] == 'ok'
            for r in self.records.values()))
        unchosen = [n for n in plan.screened if n not in self.chosen]
        print(
            f'wrote the tables and plots in {self.out_dir} from {self.results_path}, nothing '
            f'trained; {missing} final runs not tested yet are left out' +
            (f'; not chosen yet (screening not done): {", ".join(unchosen)}' if unchosen else ''),
            flush=True)
        return 0

    def _screened(self, name, setting, seed):
        """Whether a screening run is in: valid, or failed."""
        rec = self.records.get((name, slug(setting), seed, self.plan.phase('screen'))) or {}
        return self.peek(name, setting, seed, 'screen') is not None or \
            rec.get('status') == 'failed'
