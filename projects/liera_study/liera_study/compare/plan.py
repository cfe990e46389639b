"""The plan of a comparison: its methods and their configs, each method's grid of settings (those
with several are screened on val), the phases' own options, the seeds, and what a record must
match to count as one of the plan's runs (the config's fingerprint, the starting backbone)."""
import os
import os.path as osp

from .configs import (count_trainable, earlier_fingerprints, fingerprints, has_validation,
                      load_config, start_checkpoint, validation_iters)
from .errors import ComparisonError
from .grid import resolve_key, settings, slug
from .metrics import of_config


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


def setting_of(rec):
    """A record's setting as the plan holds settings: ((key, value), ...)."""
    return tuple(map(tuple, rec.get('setting') or ()))


class Plan:
    """The methods, their resolved grids and settings, the seeds, and the configs' fingerprints.

    ``screen_seeds``: the seeds each screening setting trains with (the choice reads their mean
    val figure); ``order``: 'seed' or 'method' (:meth:`finals`)."""

    def __init__(self,
                 methods,
                 grids,
                 options,
                 phase_options=None,
                 seeds=(0, ),
                 screen_seeds=None,
                 order='seed'):
        self.methods, self.options = methods, options
        # per phase ('screen', 'final'): its own options; a phase without any is labelled ''
        self.phase_options = {k: dict(v) for k, v in (phase_options or {}).items() if v}
        self.seeds, self.order = list(seeds), order
        self.screen_seeds = list(screen_seeds or self.seeds[:1])
        self.configs = dict(methods)
        self.settings, self.unusable, self.fps, self.counts = {}, {}, {}, {}
        self.metrics = None  # every method's test evaluator must give the same figures
        self._first = None
        self._iters, self._shas = {}, {}
        for name, config in methods:
            try:
                self._read(name, config, grids[name])
            except ComparisonError:
                raise
            except Exception as e:  # reported as this method's failure; the others still run
                self.unusable[name] = f'the config does not build: {type(e).__name__}: {e}'[:300]
                self.settings[name] = [()]
        # the methods screened on val: those with several settings (and a config that builds)
        self.screened = {
            n: self.settings[n]
            for n, _ in methods if len(self.settings[n]) > 1 and n not in self.unusable
        }

    def _read(self, name, config, grid):
        """Read ``name``'s config: its metrics, its grid's settings, their trainable counts."""
        cfg = load_config(config, self.options)
        metrics = of_config(cfg, f'method {name} ({config})')
        if self.metrics is None:
            self.metrics, self._first = metrics, name
        elif metrics != self.metrics:
            raise ComparisonError(
                f'method {name} is scored by {", ".join(m.label for m in metrics)}, '
                f'method {self._first} by {", ".join(m.label for m in self.metrics)}; '
                'compare methods of one task (the same test_evaluator)')
        grid = {resolve_key(cfg, k, f'method {name} ({config})'): v for k, v in grid.items()}
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

    def phase(self, phase):
        """The label of a phase's runs: '' when it has no options of its own."""
        return phase if phase in self.phase_options else ''

    def run_options(self, setting, phase=''):
        return dict(self.options, **self.phase_options.get(phase, {}), **{k: v for k, v in setting})

    def finals(self):
        """[(method, seed)] of the final runs in the order they run (``order``)."""
        if self.order == 'seed':
            return [(n, seed) for seed in self.seeds for n, _ in self.methods]
        return [(n, seed) for n, _ in self.methods for seed in self.seeds]

    def fingerprints(self, name, setting, phase=''):
        """(config fingerprint, model fingerprint) of a run's config
        (:func:`.configs.fingerprints`)."""
        key = (name, slug(setting), phase)
        if key not in self.fps:
            self.fps[key] = fingerprints(self.configs[name], self.run_options(setting, phase))
        return self.fps[key]

    def earlier_fingerprints(self, name, setting, phase=''):
        """The whole config's fingerprints as earlier versions took them (computed once per
        run config, only when a record does not match: :func:`.configs.earlier_fingerprints`)."""
        key = ('earlier', name, slug(setting), phase)
        if key not in self.fps:
            self.fps[key] = earlier_fingerprints(self.configs[name],
                                                 self.run_options(setting, phase))
        return self.fps[key]

    def same_config(self, rec, setting, label):
        """Whether a record ran the config and options a run of ``setting`` in the phase
        labelled ``label`` gets now (its fingerprint, or an earlier version's form of it)."""
        name = rec['method']
        fp, _ = self.fingerprints(name, setting, label)
        return rec.get('fingerprint') == fp or \
            rec.get('fingerprint') in self.earlier_fingerprints(name, setting, label)

    def is_run_of(self, rec):
        """Whether a record is a run of this plan's config and options, whatever backbone it
        started from (records of other schedules or methods are history: not compared)."""
        if rec['method'] not in self.configs:
            return False
        return self.same_config(rec, setting_of(rec), rec.get('phase', ''))

    def matches(self, rec, setting, label):
        """Whether a record is a run of this plan: the config and options it would get now
        (:meth:`same_config`) and the starting backbone there is now (when both are known;
        another one: run it again)."""
        if not self.same_config(rec, setting, label):
            return False
        sha = rec.get('start_sha256') and self.start_sha(rec['method'], setting, label)
        return not (sha and sha != rec['start_sha256'])

    def start_sha(self, name, setting, phase):
        """The weights sha256 of the file a run starts from (None: none, or not there)."""
        path = start_checkpoint(load_config(self.configs[name], self.run_options(setting, phase)))
        if not path or not osp.isfile(path):
            return None
        stamp = (path, os.stat(path).st_mtime_ns, os.stat(path).st_size)
        if stamp not in self._shas:
            from mmliera.checkpoint.digest import weights_sha256
            self._shas[stamp] = weights_sha256(path)
        return self._shas[stamp]

    def iters(self, name, label):
        """Training iterations of ``name``'s runs with the phase label ``label`` (1 when the
        config does not say: epoch-based), for the ETA."""
        if (name, label) not in self._iters:
            try:
                cfg = load_config(self.configs[name], self.run_options((), label))
                n = int(cfg.train_cfg.get('max_iters') or 0)
            except Exception:
                n = 0
            self._iters[name, label] = n if n > 0 else 1
        return self._iters[name, label]

    def val_iters(self, name, setting, phase):
        """The iterations after which ``name``'s run validates (read by the caller's thread:
        mmengine's config reading is not thread-safe)."""
        cfg = load_config(self.configs[name], self.run_options(setting, phase))
        return validation_iters(cfg, int((cfg.get('train_cfg') or {}).get('max_iters') or 0))
