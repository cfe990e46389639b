"""Serving several task adapters from one base model: memory and switch time.

    python tools/analysis_tools/benchmark_adapters.py [CONFIG] [--counts 1 4 16] [--rank 8]
                              [--switches 20] [--size 512] [--device cpu|cuda]
                              [--out work_dirs/benchmark_adapters]

CONFIG (default: the ConvNeXt-V2-B Mask R-CNN whole-detector config,
configs/whole_detector/liera_maskrcnn_convnextv2_whole_balloon.py) with ``--rank`` in every
adapted part; its weights random (the benchmark measures sizes and times, not predictions), no
download. It writes max(counts) adapter files (every trained tensor moved by seeded noise) and
measures:

- memory: N adapters on one base (:class:`~mmliera.checkpoint.AdapterBank`) against N separate
  models, each loaded with one file; each arrangement in its own process, the resident memory
  (CPU: RSS after loading, minus the process's RSS with the libraries imported; CUDA:
  ``torch.cuda.memory_allocated``);
- switch time with the bank's three ways (merge None: pointers only; 'copy': unmerge, swap,
  re-fold W'; 'inplace': re-fold into W's memory, no copy of W), median over ``--switches``
  switches between adapters;
- one eval forward (``--size`` px, batch 1) unmerged vs merged: what an unmerged switch defers
  to every forward.

Writes ``benchmark_adapters.md`` and ``.json`` to ``--out`` and prints the table.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmliera.cli import exit_on_user_error  # noqa: E402
from mmliera.cli.errors import UsageError  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'whole_detector',
                          'liera_maskrcnn_convnextv2_whole_balloon.py')


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def build_base(config, rank, device):
    """(cfg, model): the config's model with ``rank`` in every adapted part, random weights
    (seed 0), eval mode, on ``device``."""
    from mmliera.apis.model import build_model, load_config
    cfg = load_config(config)
    cfg.load_from = None
    adapters = cfg.model.get('adapters')
    if adapters:  # a whole detector: each part's rank
        for part in adapters.values():
            part['rank'] = rank
    elif 'adapter' in cfg.model.get('backbone', {}):
        cfg.model.backbone.adapter['rank'] = rank
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    return cfg, model.to(device).eval()


def make_adapters(cfg, model, count, out_dir):
    """``count`` adapter files of ``model`` (trained tensors moved by noise, seeds 1..count)."""
    from mmliera.checkpoint import save_adapter_checkpoint
    trained = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in trained]
    paths = []
    for k in range(1, count + 1):
        torch.manual_seed(k)
        with torch.no_grad():
            for p, p0 in zip(trained, saved):
                p.copy_(p0 + torch.randn_like(p0) * 0.02)
        path = osp.join(out_dir, f'task{k}.safetensors')
        save_adapter_checkpoint(model, path, config=cfg.pretty_text, classes=[f'class{k}'])
        paths.append(path)
    with torch.no_grad():
        for p, p0 in zip(trained, saved):
            p.copy_(p0)
    return paths


def _resident(device):
    if device.startswith('cuda'):
        _sync(device)
        return torch.cuda.memory_allocated() / 2**20
    import psutil
    return psutil.Process().memory_info().rss / 2**20


def memory_worker(args):
    """One arrangement in this process: {'before', 'after'} MiB."""
    cfg_json = json.loads(args.worker)
    device = cfg_json['device']
    before = _resident(device)
    from mmliera.checkpoint import AdapterBank, load_adapter_checkpoint
    paths = cfg_json['paths']
    if cfg_json['kind'] == 'bank':
        cfg, model = build_base(cfg_json['config'], cfg_json['rank'], device)
        bank = AdapterBank(model, config=cfg)
        for i, path in enumerate(paths):
            bank.load(f't{i}', path)
        bank.set('t0')
        keep = [bank]
        held = sum(bank.nbytes(n) for n in bank.names) / 2**20
    else:
        keep, held = [], 0.0
        for path in paths:
            _, model = build_base(cfg_json['config'], cfg_json['rank'], device)
            load_adapter_checkpoint(model, path)
            keep.append(model)
            held += sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    after = _resident(device)
    print(json.dumps(dict(before=before, after=after, tensors=held)))


def measure_memory(args, paths):
    rows = []
    for n in args.counts:
        row = dict(count=n)
        for kind in ('bank', 'separate'):
            spec = dict(
                kind=kind, config=args.config, rank=args.rank, device=args.device, paths=paths[:n])
            out = subprocess.run([sys.executable, __file__, '--worker',
                                  json.dumps(spec)],
                                 capture_output=True,
                                 text=True)
            if out.returncode:
                raise RuntimeError(f'{kind} x{n} failed: {out.stderr.strip().splitlines()[-1:]}')
            got = json.loads(out.stdout.strip().splitlines()[-1])
            row[kind] = got['after'] - got['before']
            row[kind + '_tensors'] = got['tensors']
            print(f'memory: {n} x {kind}: {row[kind]:.0f} MiB', flush=True)
        rows.append(row)
    return rows


def measure_switches(args, paths):
    """{merge: (median ms, min, max)} of a switch, and the forward times."""
    from mmliera.checkpoint import AdapterBank
    names = [f't{i}' for i in range(min(4, len(paths)))]
    out = {}
    for merge in (None, 'copy', 'inplace'):
        cfg, model = build_base(args.config, args.rank, args.device)
        bank = AdapterBank(model, config=cfg, merge=merge)
        for name, path in zip(names, paths):
            bank.load(name, path)
        times = []
        for i in range(args.switches + 1):
            _sync(args.device)
            start = time.perf_counter()
            bank.set(names[i % len(names)])
            _sync(args.device)
            if i:  # (the first one folds from the base)
                times.append((time.perf_counter() - start) * 1e3)
        out[str(merge)] = (statistics.median(times), min(times), max(times))
        print(f'switch, merge={merge}: {out[str(merge)][0]:.2f} ms', flush=True)
        if merge in (None, 'copy'):
            out[f'forward {merge}'] = forward_ms(model, args)
            print(f'forward, merge={merge}: {out[f"forward {merge}"]:.0f} ms', flush=True)
        del bank, model
    return out


def forward_ms(model, args, repeats=3):
    x = torch.rand(1, 3, args.size, args.size, device=args.device)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            _sync(args.device)
            start = time.perf_counter()
            model.extract_feat(x)
            _sync(args.device)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[1:])


def report(args, memory, switches, sizes):
    lines = [
        f'# Several adapters on one base: {osp.relpath(args.config, ROOT)}, rank {args.rank}', '',
        f'{platform.machine()}, {os.cpu_count()} cores, {args.device}, torch {torch.__version__}, '
        f'{time.strftime("%Y-%m-%d")}; one adapter file: {sizes[0] / 2**20:.1f} MiB '
        f'({sizes[1]:,} tensor elements); the base model: {sizes[2] / 2**20:.0f} MiB of '
        'tensors. Memory: the process\'s growth (RSS), in brackets the tensors it holds '
        '(the bank: the adapters\' own; separate models: all of each).', '',
        '| adapters | one base + N adapters (MiB) | N separate models (MiB) | ratio |',
        '|---:|---:|---:|---:|'
    ]
    for r in memory:
        lines.append(f'| {r["count"]} | {r["bank"]:.0f} ({r["bank_tensors"]:.0f}) | '
                     f'{r["separate"]:.0f} ({r["separate_tensors"]:.0f}) | '
                     f'{r["separate"] / max(r["bank"], 1e-9):.1f}x |')
    lines += ['', '| switch | median ms | min | max |', '|---|---:|---:|---:|']
    for merge, label in (('None', 'unmerged (pointers)'), ('copy', 'merged, W kept'),
                         ('inplace', 'merged in place (no copy of W)')):
        med, lo, hi = switches[merge]
        lines.append(f'| {label} | {med:.2f} | {lo:.2f} | {hi:.2f} |')
    lines += [
        '', f'Backbone + neck forward at {args.size} px, batch 1: unmerged '
        f'{switches["forward None"]:.0f} ms, merged {switches["forward copy"]:.0f} ms.'
    ]
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    p.add_argument('--counts', nargs='+', type=int, default=[1, 4, 16])
    p.add_argument('--rank', type=int, default=8)
    p.add_argument('--switches', type=int, default=20)
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--device', default='cpu')
    p.add_argument('--out', default='work_dirs/benchmark_adapters')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _quiet():
    """mmengine's per-module init lines off (warnings stay)."""
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)


def _main(argv=None):
    args = parse_args(argv)
    _quiet()
    if args.worker:
        return memory_worker(args)
    if not osp.isfile(args.config):
        raise UsageError(f'config {args.config} does not exist')
    if min(args.counts) < 1 or args.switches < 1 or args.rank < 1:
        raise UsageError('--counts, --switches and --rank take positive numbers')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise UsageError(f'--device {args.device}: no CUDA device here; use --device cpu')
    with tempfile.TemporaryDirectory() as tmp:
        cfg, model = build_base(args.config, args.rank, 'cpu')
        paths = make_adapters(cfg, model, max(args.counts), tmp)
        tensors = sum(p.numel() for p in model.parameters() if p.requires_grad)
        sizes = (osp.getsize(paths[0]), tensors,
                 sum(t.numel() * t.element_size() for t in model.state_dict().values()))
        del model
        memory = measure_memory(args, paths)
        switches = measure_switches(args, paths)
    text = report(args, memory, switches, sizes)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'benchmark_adapters.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out, 'benchmark_adapters.json'), 'w') as f:
        json.dump(dict(memory=memory, switches=switches, sizes=sizes, args=vars(args)), f, indent=1)
    print(text)


main = exit_on_user_error(_main)

if __name__ == '__main__':
    main()
