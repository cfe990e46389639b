"""One comparison run (method, setting, seed): train (validating on the val split as the config
says), then, for a final run, test the last checkpoint; read its figures back from the logs."""
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from mmliera.checkpoint.resume import find_resume_checkpoint, read_last_checkpoint
from mmliera.utils.errors import UserError
from .metrics import DETECTION


class ComparisonError(UserError, ValueError):
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


def options_list(options):
    return [f'{k}={v}' for k, v in (options or {}).items()]


_READ = {}  # (path, mtime_ns, size) -> the Config as read; main() empties it for each comparison


def load_config(config, options):
    """``Config.fromfile(config)`` with ``options`` merged. A file is read once per comparison
    (and again when it changes): mmengine reads the model indexes of a ``mmdet::`` base's
    package on every read, ~1 s, and a comparison loads each config many times."""
    import copy

    from mmengine.config import Config
    stat = os.stat(config)
    key = (osp.abspath(config), stat.st_mtime_ns, stat.st_size)
    if key not in _READ:
        _READ[key] = Config.fromfile(config)
    cfg = copy.deepcopy(_READ[key])
    if options:
        cfg.merge_from_dict(options)
    return cfg


def forget_read_configs():
    """Read every config afresh from now on (a new comparison)."""
    _READ.clear()


def fingerprint(config, options):
    """Hash of the config as a run sees it (file + its bases, merged, with the options)."""
    return fingerprints(config, options)[0]


def checkout_root(config):
    """The folder whose absolute path a config's ``{{ fileDirname }}`` paths start with: the
    nearest one above ``config`` holding ``.git``, else the current folder."""
    folder = osp.dirname(osp.abspath(config))
    while True:
        if osp.exists(osp.join(folder, '.git')):
            return folder
        parent = osp.dirname(folder)
        if parent == folder:
            return os.getcwd()
        folder = parent


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprints(config, options):
    """(hash of the whole config, hash of what the trainable count depends on: the model and
    the custom hooks) of the config as a run sees it, with the checkout's path as ``<root>``
    (a study's records stay valid in another clone or on another machine)."""
    cfg = load_config(config, options)
    root = checkout_root(config).rstrip(os.sep) + os.sep
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
    model = repr((cfg.get('model'), cfg.get('custom_hooks')))
    return _sha(text.replace(root, '<root>/')), _sha(model.replace(root, '<root>/'))


def earlier_fingerprints(config, options):
    """The whole config's hash as earlier versions of the tool took it (of its ``pretty_text``:
    with the checkout's path itself, then as ``<root>``), so their records are recognised."""
    text = load_config(config, options).pretty_text  # (yapf-formatted: ~1.5 s)
    root = checkout_root(config).rstrip(os.sep) + os.sep
    return {_sha(text), _sha(text.replace(root, '<root>/'))}


def count_trainable(config, options):
    """(detector trainable parameters, backbone trainable parameters, {part: trainable}) as
    training builds them (the freezing policy applied)."""
    from mmliera.apis.model import build_model
    from mmliera.engine.hooks.freeze_hook import freeze_hooks_of
    cfg = load_config(config, options)
    model = build_model(cfg)
    for hook in freeze_hooks_of(cfg.get('custom_hooks')):
        hook.policy.apply(model)
    parts = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            part = n.split('.', 1)[0]
            parts[part] = parts.get(part, 0) + p.numel()
    return sum(parts.values()), parts.get('backbone', 0), parts


def start_checkpoint(cfg):
    """The local file the run starts from: ``load_from`` (a whole detector, e.g. for
    ``type='LieRADetector'``), else the backbone's ``init_cfg`` Pretrained; or None."""
    init = (cfg.get('model', {}).get('backbone', {}) or {}).get('init_cfg') or {}
    path = cfg.get('load_from') or (init.get('checkpoint') if isinstance(init, dict) else None)
    return path if isinstance(path, str) and '://' not in path else None


def has_validation(cfg):
    return bool(
        cfg.get('val_dataloader') and cfg.get('val_evaluator') and cfg.get('val_cfg') is not None)


# ---------------------------------------------------------------------------------------------
# one run

# runs side by side (--jobs): the processes running now, and whether the tool is stopping
_live = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


def thread_env(threads):
    """The environment of a run limited to ``threads`` CPU threads (None: this one's)."""
    if not threads:
        return None
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def clear_stop():
    """Runs may start again (a new comparison in this process)."""
    _stopping.clear()


def stop_all():
    """Stop every run in progress (called by the main thread when the tool is stopped while
    runs go side by side); their threads then see ``KeyboardInterrupt``."""
    _stopping.set()
    with _live_lock:
        procs = list(_live)

    def ended(wait):  # signals only: each run's own thread reaps its process
        end = time.time() + wait
        while time.time() < end:
            with _live_lock:
                if not _live & set(procs):
                    return True
            time.sleep(0.1)
        return False

    _stop_groups(procs, ended)


# the checkout holding this project (projects/liera_study/liera_study/compare/runs.py): the
# runs' configs import projects.liera_study.liera_study, so it goes first on their PYTHONPATH
CHECKOUT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))


def _run(cmd, log_path, env=None):
    """Run ``cmd`` with its output appended to ``log_path``; (exit status, peak RSS in MiB)."""
    if _stopping.is_set():
        raise KeyboardInterrupt
    env = dict(os.environ if env is None else env)
    env['PYTHONPATH'] = os.pathsep.join(p for p in [CHECKOUT, env.get('PYTHONPATH')] if p)
    with open(log_path, 'a') as log:
        log.write(f'$ {" ".join(cmd)}\n')
        log.flush()
        # its own process group: an interrupt stops the run with its data-loader workers
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        with _live_lock:
            _live.add(proc)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C or a kill of this tool: do not leave the run behind
            _stop_group(proc)
            raise
        finally:
            with _live_lock:
                _live.discard(proc)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if _stopping.is_set():  # stopped by stop_all (another thread): not the run's failure
        raise KeyboardInterrupt
    return proc.returncode, usage.ru_maxrss / 1024  # Linux: kilobytes


def _stop_groups(procs, ended):
    """SIGINT, then SIGTERM, then SIGKILL to the process groups of ``procs`` until
    ``ended(seconds)`` says (within that time) that they have all ended; then SIGKILL to what
    is left in the groups (data-loader workers of a leader that is gone)."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        if ended(wait):
            break
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop_group(proc):
    """Stop ``proc``'s process group (:func:`_stop_groups`) and reap ``proc``."""

    def ended(wait):
        try:
            proc.wait(wait)
            return True
        except subprocess.TimeoutExpired:
            return False

    _stop_groups([proc], ended)
    proc.wait()


def _last_error(log_path):
    """The most telling line of a failed run's log: its ``error:`` line or the last line."""
    with open(log_path, errors='replace') as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith('error:') or 'Error' in ln.split(':')[0]:
            return ln[:300]
    return lines[-1][:300] if lines else 'no output'


EMPTY_RESULTS = 'testing results of the whole dataset is empty'  # mmdet's CocoMetric


def _no_val_note(log_path):
    """Why a trained run has no validation figure, when its log says: mmdet's CocoMetric
    returns no metric (only an error line) when the model detects nothing at all."""
    try:
        with open(log_path, errors='replace') as f:
            empty = any(EMPTY_RESULTS in ln for ln in f)
    except OSError:
        return None
    return 'no detections at its validation (mmdet: the results are empty), as bad as mAP 0' \
        if empty else None


def _newest(pattern):
    found = sorted(glob.glob(pattern), key=osp.getmtime)
    return found[-1] if found else None


def read_train_log(run_dir, metrics=DETECTION):
    """From the train scalars: seconds per iteration (mean ``time`` after the first logging
    window of each part), peak CUDA memory (MiB) or None, and the validation curve
    [[iter, metric, ...]] (``metrics`` in order; a validation is one that logs the first). A
    run resumed after a stop has one scalars file per part (its timestamped log dirs, in
    order): the curve joins them, a later part's validation replacing one at the same
    iteration."""
    paths = sorted(
        glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')),
        key=lambda p: (osp.basename(osp.dirname(osp.dirname(p))), osp.getmtime(p)))
    if not paths:
        return None, None, []
    times, memory, curve = [], [], {}
    for path in paths:
        with open(path) as f:
            records = [json.loads(ln) for ln in f if ln.strip()]
        train = [r for r in records if 'time' in r and 'loss' in r]
        times += [r['time'] for r in train[1:]] or [r['time'] for r in train]
        memory += [r['memory'] for r in train if 'memory' in r]
        last_iter = None  # (a val record's step is the epoch: take the train iter)
        for r in records:
            if metrics[0].log_key in r:
                curve[last_iter] = [last_iter] + [r.get(m.log_key) for m in metrics]
            elif 'loss' in r:
                last_iter = r.get('iter', r.get('step'))
    sec = sum(times) / len(times) if times else None
    ordered = sorted(curve.values(), key=lambda c: (c[0] is None, c[0] or 0))
    return sec, (max(memory) if memory else None), ordered


def test_metrics(test_dir, metrics=DETECTION):
    """{metric key: value} of the newest test run under ``test_dir`` (mmengine's json)."""
    path = _newest(osp.join(test_dir, '*', '*.json'))
    if path is None:
        return {}
    with open(path) as f:
        found = json.load(f)
    return {m.key: found[m.log_key] for m in metrics if m.log_key in found}


def resume_point(run_dir):
    """The checkpoint a stopped run in ``run_dir`` would go on from, or None."""
    try:
        return find_resume_checkpoint(run_dir)[0] if osp.isdir(run_dir) else None
    except Exception:  # (none readable: start afresh)
        return None


def train(record,
          config,
          options,
          run_dir,
          metrics=DETECTION,
          env=None,
          resume=False,
          val_iters=()):
    """Train one run into ``run_dir`` (in the environment ``env``: None for this one's); fills
    ``record`` (status 'trained' or 'failed'; 'interrupted' when the tool is stopped
    meanwhile). Afresh, unless ``resume`` and ``run_dir`` holds a checkpoint of the stopped
    run: then it goes on from there (``--resume``; bit-identical to a run not stopped, with
    the same threads), ``resumed_at`` lists the iterations and ``train_s`` adds up the parts;
    a checkpoint at one of ``val_iters`` (:func:`validation_iters`, read by the caller: configs
    are not read in a run's thread) whose validation the stop cut off is validated first."""
    ckpt = resume_point(run_dir) if resume else None
    before = (record.get('train_s') or 0) if ckpt else 0
    if ckpt is None:
        if osp.exists(run_dir):  # an unfinished earlier attempt: start it afresh
            shutil.rmtree(run_dir)
        os.makedirs(run_dir)
        record.pop('resumed_at', None)
    else:
        found = re.search(r'iter_(\d+)\.pth$', ckpt)
        record['resumed_at'] = list(record.get('resumed_at') or []) + \
            [int(found.group(1)) if found else osp.basename(ckpt)]
    log = osp.join(run_dir, 'run.log')
    record.update(status='failed', log=log)
    record.pop('train_s', None)
    start = time.time()
    cmd = [sys.executable, '-m', 'mmliera.cli', 'train', config, '--work-dir', run_dir] + \
        (['--resume'] if ckpt else []) + ['--cfg-options'] + options_list(options)
    try:
        if ckpt:
            _validate_skipped(ckpt, config, options, run_dir, metrics, log, env, val_iters)
        code, rss = _run(cmd, log, env)
    except KeyboardInterrupt:  # stopped by the user: not a failure, run again next time
        record.update(status='interrupted', train_s=round(before + time.time() - start, 1))
        raise
    record['train_s'] = round(before + time.time() - start, 1)
    if code:
        record['error'] = f'train exit status {code}: {_last_error(log)}'
        return record
    sec, mem, curve = read_train_log(run_dir, metrics)
    record.update(
        sec_per_iter=sec,
        peak_memory_mib=mem if mem is not None else rss,
        memory_kind='cuda max_memory_allocated'
        if mem is not None else 'cpu peak RSS (train process)',
        val_curve=curve)
    ckpt = read_last_checkpoint(run_dir)
    if ckpt is None:
        record['error'] = 'training wrote no last_checkpoint'
        return record
    if record.get('resumed_at'):  # the validations made before going on (above)
        curve = _with_skipped_validations(curve, record['resumed_at'], run_dir, metrics)
        record['val_curve'] = curve
    record.pop('val_note', None)  # (of an earlier attempt)
    if curve:
        record['val'] = {m.key: v for m, v in zip(metrics, curve[-1][1:])}
    else:
        note = _no_val_note(log)
        if note:
            record['val_note'] = note
    record.update(status='trained', checkpoint=ckpt)
    record.pop('error', None)
    return record


def validation_iters(cfg, up_to):
    """The iterations ``1..up_to`` after which an iteration-based run of ``cfg`` validates
    (mmengine's IterBasedTrainLoop: every ``val_interval`` from ``val_begin``, and the last);
    None for an epoch-based run."""
    loop = cfg.get('train_cfg') or {}
    if loop.get('by_epoch') or 'max_iters' not in loop or not cfg.get('val_dataloader'):
        return None
    interval, begin, last = loop.get('val_interval', 1), loop.get('val_begin', 1), \
        loop['max_iters']
    return [i for i in range(1, up_to + 1) if i >= begin and (i % interval == 0 or i == last)]


def _validate_skipped(ckpt, config, options, run_dir, metrics, log, env, val_iters):
    """A run stopped while it validated after a checkpoint goes on from that checkpoint
    without that validation (mmengine resumes after it), and the checkpoint may be gone by the
    run's end (``max_keep_ckpts``): validate it before going on (``mmliera.cli test --split
    val``, into ``run_dir/val_<iter>``) when the run's logs lack its validation.
    Iteration-based runs only (an epoch-based run's curve keeps the gap)."""
    found = re.search(r'iter_(\d+)\.pth$', ckpt)
    k = int(found.group(1)) if found else None
    if k is None or k not in (val_iters or ()):
        return
    if any(c[0] == k for c in read_train_log(run_dir, metrics)[2]) or \
            len(test_metrics(osp.join(run_dir, f'val_{k}'), metrics)) == len(metrics):
        return
    cmd = [
        sys.executable, '-m', 'mmliera.cli', 'test', config, ckpt, '--split', 'val', '--work-dir',
        osp.join(run_dir, f'val_{k}'), '--cfg-options'
    ] + options_list(options)
    _run(cmd, log, env)  # (a failure leaves the point out: the curve says what it has)


def _with_skipped_validations(curve, resumed_at, run_dir, metrics):
    """``curve`` with the points :func:`_validate_skipped` made (``run_dir/val_<iter>``) at
    iterations it lacks."""
    have = {c[0] for c in curve}
    for k in resumed_at:
        found = test_metrics(osp.join(run_dir, f'val_{k}'), metrics)
        if k not in have and len(found) == len(metrics):
            curve = curve + [[k] + [found[m.key] for m in metrics]]
    return sorted(curve, key=lambda c: (c[0] is None, c[0] or 0))


def test(record, config, options, metrics=DETECTION, env=None):
    """Test a trained run's last checkpoint on the config's test split; fills ``record``
    (status 'ok' with its ``metrics``, e.g. bbox_mAP / segm_mAP, or 'failed')."""
    run_dir = osp.dirname(record['checkpoint'])
    log = record['log']
    start = time.time()
    test_dir = osp.join(run_dir, 'test')
    cmd = [
        sys.executable, '-m', 'mmliera.cli', 'test', config, record['checkpoint'], '--work-dir',
        test_dir, '--cfg-options'
    ] + options_list(options)
    try:
        code, _ = _run(cmd, log, env)
    except KeyboardInterrupt:  # stopped: tested again next time
        record.update(status='trained')
        raise
    record['test_s'] = round(time.time() - start, 1)
    found = test_metrics(test_dir, metrics) if code == 0 else {}
    if code == 0 and len(found) == len(metrics):
        record.update(found, status='ok')
        record.pop('error', None)
    else:
        record.update(
            status='failed',
            error=f'test exit status {code}: {_last_error(log)}'
            if code else f'the test wrote no {" / ".join(m.log_key for m in metrics)}')
    return record
