"""One comparison run (method, seed): train then test through the real command lines, and
read its figures (mAP, speed, memory) back from the logs."""
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

from ...checkpoint.resume import read_last_checkpoint
from ...utils.errors import UserError

METRICS = ('bbox_mAP', 'segm_mAP')


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
    from ...apis.model import build_model_from_config
    from ...engine.hooks.freeze_hook import freeze_hooks_of
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
    train = [
        sys.executable, '-m', 'mmliera.cli', 'train', config, '--work-dir', run_dir, '--cfg-options'
    ] + opts
    code, rss = _run(train, log)
    if code == 0:
        sec, mem, kind = train_speed_and_memory(run_dir)
        record.update(
            sec_per_iter=sec,
            peak_memory_mib=mem if mem is not None else rss,
            memory_kind=kind if mem is not None else 'cpu peak RSS (train process)')
        ckpt = read_last_checkpoint(run_dir)
        if ckpt is None:
            record['error'] = 'training wrote no last_checkpoint'
        else:
            test = [
                sys.executable, '-m', 'mmliera.cli', 'test', config, ckpt, '--work-dir',
                osp.join(run_dir, 'test'), '--cfg-options'
            ] + opts
            code, _ = _run(test, log)
            metrics = test_metrics(osp.join(run_dir, 'test')) if code == 0 else {}
            if code == 0 and len(metrics) == len(METRICS):
                record.update(metrics, status='ok')
            else:
                record['error'] = (f'test exit status {code}: {_last_error(log)}'
                                   if code else 'the test wrote no bbox/segm mAP')
    else:
        record['error'] = f'train exit status {code}: {_last_error(log)}'
    record['wall_s'] = round(time.time() - start, 1)
    return record
