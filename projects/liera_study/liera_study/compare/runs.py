"""One comparison run (method, setting, seed) through the real command lines: train
(``python -m mmliera.cli train``, validating on the val split as the config says), then, for a
final run, test the last checkpoint (``python -m mmliera.cli test``); its record filled from the
logs. Each run is a process group of its own, stopped whole when the tool is stopped."""
import glob
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
from .metrics import DETECTION
from .paths import CHECKOUT

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


def options_list(options):
    return [f'{k}={v}' for k, v in (options or {}).items()]


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
    a checkpoint at one of ``val_iters`` (:func:`.configs.validation_iters`, read by the caller:
    configs are not read in a run's thread) whose validation the stop cut off is validated first."""
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
