"""A study's run records: their key, the results file they are kept in (read back; records of
format 1 upgraded; the runs of comparisons made elsewhere, ``--add-runs``), and the paths they
hold. A run's ``log`` and ``checkpoint`` are written relative to the study's work dir (``meta``'s
``work_dir``, itself relative to the checkout when inside it) and read back relative to the work
dir the study runs with; its ``config`` relative to the checkout (as given when outside it). A
results file without ``meta.work_dir`` (an earlier version of the tool) holds them relative to
the folder the tool ran in, or absolute: they are made relative when it is read."""
import json
import os.path as osp

from .errors import ComparisonError
from .paths import from_checkout, in_checkout, portable

FORMAT = 2
PATHS = ('log', 'checkpoint')  # a record's paths inside its study's work dir


def key(r):
    """(method, setting label, seed, phase): one run of a study."""
    return r['method'], r.get('setting_label', 'default'), r['seed'], r.get('phase', '')


def upgrade(r):
    """A format-1 record (train + test, no grid) as a format-2 final run."""
    if 'setting_label' not in r:
        r = dict(r, setting=[], setting_label='default', final=True)
    return r


def read(path):
    """The results file at ``path`` (its own study's): {'format', 'meta', 'runs'}."""
    with open(path) as f:
        return json.load(f)


def read_added(path):
    """(run records, meta) of a results.json given to --add-runs."""
    try:
        with open(path) as f:
            found = json.load(f)
        runs, meta = found['runs'], found.get('meta') or {}
        assert isinstance(runs, list) and all(isinstance(r, dict) for r in runs)
        assert isinstance(meta, dict)
        return runs, meta
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise ComparisonError(
            f'--add-runs {path}: not a results.json of '
            'projects/liera_study/tools/compare_methods.py '
            f'({type(e).__name__}: {e}); give the results.json that a comparison wrote in its '
            '--out-dir') from None


def work_dir_of(meta):
    """The folder a results file's run paths are relative to (None: an earlier version's file,
    whose paths are relative to the folder the tool ran in, or absolute)."""
    work_dir = (meta or {}).get('work_dir')
    return from_checkout(work_dir) if work_dir else None


def work_dir_entry(work_dir):
    """The study's work dir as ``meta`` records it (relative to the checkout when inside it)."""
    return in_checkout(work_dir)


def config_entry(config):
    """A config path as a record holds it (relative to the checkout when inside it)."""
    return in_checkout(config)


def _path(value):
    return isinstance(value, str) and bool(value)


def resolved(rec, work_dir):
    """A copy of ``rec`` whose paths name the files from here (its paths joined to the study's
    ``work_dir``; an absolute one as it is)."""
    return dict(rec, **{k: osp.join(work_dir, rec[k]) for k in PATHS if _path(rec.get(k))})


def relative(rec, work_dir):
    """A copy of ``rec`` (paths as :func:`resolved` gives them) with its paths relative to the
    study's ``work_dir`` (:func:`.paths.portable`)."""
    return dict(rec, **{k: portable(rec[k], work_dir) for k in PATHS if _path(rec.get(k))})


def rebase(rec, base, work_dir):
    """``rec`` (changed in place) with its paths, relative to ``base`` (another study's work dir;
    None: the folder the tool runs in), made relative to ``work_dir``."""
    for k in PATHS:
        path = rec.get(k)
        if _path(path):
            full = osp.join(base, path) if base else path
            rec[k] = portable(full, work_dir)
    return rec
