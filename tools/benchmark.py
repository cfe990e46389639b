"""Training-step time and peak memory of LieRA vs LoRA vs exp vs full fine-tuning vs PEFT.

    python tools/benchmark.py [--arch base] [--batch 1] [--size 384] [--rank 16]
                              [--repeats 5] [--warmup 2] [--out work_dirs/benchmark]

One step = forward + backward + AdamW step of a ConvNeXt-V2 backbone (mmpretrain), loss = mean
of squared outputs of the four stages. Methods:

  full         plain backbone, every parameter trains
  frozen       plain backbone, nothing trains (the floor: forward only)
  lora         mmliera mode 'lora' (W + ΔW), every Conv2d + Linear, same factor shapes as LieRA
  liera        mmliera LieRA Taylor (W + W ⊙ ΔW), every Conv2d + Linear
  liera_exp    mmliera LieRA exp (W ⊙ exp ΔW), every Conv2d + Linear
  peft_lora    Hugging Face PEFT LoRA on the layers it accepts (not depthwise convs)
  peft_hira    Hugging Face PEFT HiRA on the layers it accepts (not grouped convs)
  liera_peft   LieRA Taylor on exactly the layers PEFT accepts (the fair HiRA comparison)
  plain_infer / merged_infer   eval forward of the plain vs the merged LieRA backbone

Times: all methods in one process, interleaved (warm-up, then ``repeats`` rounds), median and
min-max. Peak memory: each method in its own process (peak RSS = VmHWM on CPU, max allocated on
CUDA),
also shown as the part above the memory of the built model (what the steps add).
PEFT is an optional dependency (``pip install peft``); without it those rows are skipped.
Writes ``benchmark.md`` and ``benchmark.json`` to ``--out`` and prints the table.
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

TRAIN = ['full', 'frozen', 'lora', 'liera', 'liera_exp', 'peft_lora', 'peft_hira',
         'liera_peft']
INFER = ['plain_infer', 'merged_infer']


def have_peft():
    try:
        import peft  # noqa: F401
        return True
    except Exception:
        return False


def peft_targets(backbone, kind):
    """Module names PEFT's LoRA / HiRA accept: Linear and ungrouped Conv2d."""
    names = []
    for n, m in backbone.named_modules():
        if isinstance(m, torch.nn.Linear) or (isinstance(m, torch.nn.Conv2d) and m.groups == 1):
            names.append(n)
    return names


def build(method, args, device):
    """(module, trainable params, train?) for a method."""
    from mmpretrain.models.backbones import ConvNeXt

    import mmliera
    torch.manual_seed(0)
    m = ConvNeXt(arch=args.arch, use_grn=True, layer_scale_init_value=0.,
                 out_indices=[0, 1, 2, 3], gap_before_final_norm=False, init_cfg=None)
    if method == 'full':
        return m.to(device), True
    for p in m.parameters():
        p.requires_grad_(False)
    if method in ('frozen', 'plain_infer'):
        return m.to(device), method == 'frozen'
    if method in ('lora', 'liera', 'liera_exp', 'merged_infer'):
        mode = dict(lora='lora', liera_exp='exp').get(method, 'taylor')
        mmliera.inject_adapters(m, rank=args.rank, mode=mode, check_zeros=False)
    elif method == 'liera_peft':
        mmliera.inject_adapters(m, rank=args.rank, targets=[
            n.replace('.', r'\.') for n in peft_targets(m, 'hira')], check_zeros=False)
    elif method in ('peft_lora', 'peft_hira'):
        from peft import HiraConfig, LoraConfig, inject_adapter_in_model
        config_cls = LoraConfig if method == 'peft_lora' else HiraConfig
        m = inject_adapter_in_model(config_cls(r=args.rank, target_modules=peft_targets(
            m, method)), m)
        for n, p in m.named_parameters():
            p.requires_grad_('lora_' in n or 'hira_' in n)
    for layer in mmliera.adapter_layers(m).values():  # a trained-looking adapter, not B = 0
        torch.nn.init.normal_(layer.lora_B, std=1e-3)
    if method == 'merged_infer':
        mmliera.merge_adapters(m)
        return m.to(device), False
    return m.to(device), True


class Step:
    """One training step (or one eval forward) of a built method."""

    def __init__(self, method, args, device):
        self.method = method
        self.model, self.train = build(method, args, device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4) if self.params else None
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(device)
        self.device = device
        if self.train:
            self.model.train()
        else:
            self.model.eval()

    def __call__(self):
        if not self.train:
            with torch.no_grad():
                self.model(self.x)
        else:
            outs = self.model(self.x)
            if self.params:
                loss = sum(o.float().pow(2).mean() for o in outs)
                loss.backward()
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
        if self.device.type == 'cuda':
            torch.cuda.synchronize()


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_times(methods, args, device):
    steps = {m: Step(m, args, device) for m in methods}
    counts = {m: sum(p.numel() for p in s.params) for m, s in steps.items()}
    for _ in range(args.warmup):
        for s in steps.values():
            s()
    times = {m: [] for m in methods}
    for _ in range(args.repeats):
        for m, s in steps.items():
            times[m].append(timed(s))
    return times, counts


def peak_memory(method, args):
    """Run one method in a fresh process; its peak memory in MB."""
    cmd = [sys.executable, osp.abspath(__file__), '--worker', method, '--arch', args.arch,
           '--batch', str(args.batch), '--size', str(args.size), '--rank', str(args.rank),
           '--warmup', '1', '--repeats', '2', '--device', args.device]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f'memory worker for {method} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_mb(key):
    """A /proc/self/status figure (kB) in MB. VmHWM is the peak RSS of this program image:
    unlike getrusage's ru_maxrss it does not inherit the parent's high-water mark via fork."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def current_rss_mb():
    return _status_mb('VmRSS')


def peak_rss_mb():
    try:
        return _status_mb('VmHWM')
    except (OSError, KeyError):  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args, device):
    s = Step(args.worker, args, device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = current_rss_mb()
    for _ in range(args.warmup + args.repeats):
        s()
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_rss_mb()
    print(json.dumps(dict(method=args.worker, peak_mb=peak, above_model_mb=peak - before)))


def ratio(a, b):
    return None if a is None or b is None else a / b


def report(times, counts, memory, above, args, device):
    med = {m: statistics.median(t) for m, t in times.items()}
    rows = []
    for m in times:
        rows.append(dict(method=m, trainable=counts[m], median_s=med[m], min_s=min(times[m]),
                         max_s=max(times[m]), peak_mb=memory.get(m),
                         above_model_mb=above.get(m)))
    ratios = {
        'liera / full (time)': ratio(med.get('liera'), med.get('full')),
        'liera / full (peak memory)': ratio(memory.get('liera'), memory.get('full')),
        'liera / lora (time)': ratio(med.get('liera'), med.get('lora')),
        'liera_exp / liera (time)': ratio(med.get('liera_exp'), med.get('liera')),
        'liera_exp / liera (peak memory)': ratio(memory.get('liera_exp'), memory.get('liera')),
        'liera / full (step memory above the built model)': ratio(above.get('liera'),
                                                                  above.get('full')),
        'merged_infer / plain_infer (time)': ratio(med.get('merged_infer'),
                                                   med.get('plain_infer')),
        'liera_peft / peft_hira (time)': ratio(med.get('liera_peft'), med.get('peft_hira')),
    }
    targets = {'liera / full (step memory above the built model)': 0.90,
               'liera / full (time)': 1.00, 'liera / full (peak memory)': 0.90,
               'liera / lora (time)': 1.03, 'liera_exp / liera (time)': 1.05,
               'liera_exp / liera (peak memory)': 1.02,
               'merged_infer / plain_infer (time)': 1.02, 'liera_peft / peft_hira (time)': 0.75}
    head = (f'ConvNeXt-V2-{args.arch}, batch {args.batch}, 3x{args.size}x{args.size}, rank '
            f'{args.rank}, device {device} ({platform.processor() or platform.machine()}, '
            f'{torch.get_num_threads()} threads), torch {torch.__version__}, '
            f'{args.repeats} timed rounds after {args.warmup} warm-up')
    lines = [head, '', '| method | trainable params | step time median (s) | min-max (s) | '
             'peak memory (MB) | of which steps (MB) |', '|---|---:|---:|---:|---:|---:|']
    for r in rows:
        mem = '' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"
        step = '' if r['above_model_mb'] is None else f"{r['above_model_mb']:.0f}"
        lines.append(f"| {r['method']} | {r['trainable']:,} | {r['median_s']:.3f} | "
                     f"{r['min_s']:.3f}-{r['max_s']:.3f} | {mem} | {step} |")
    lines += ['', '| ratio | measured | target |', '|---|---:|---:|']
    for k, v in ratios.items():
        if v is not None:
            ok = 'ok' if v <= targets[k] else 'missed'
            lines.append(f'| {k} | {v:.3f} | <= {targets[k]:.2f} ({ok}) |')
    return '\n'.join(lines), dict(setting=head, rows=rows, ratios=ratios, targets=targets)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='base')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--size', type=int, default=384)
    p.add_argument('--rank', type=int, default=16)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--methods', nargs='+', default=TRAIN + INFER,
                   choices=TRAIN + INFER)
    p.add_argument('--no-memory', action='store_true', help='skip the per-process peak memory')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--out', default='work_dirs/benchmark')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.worker:
        return worker(args, device)

    methods = list(args.methods)
    if not have_peft():
        skipped = [m for m in methods if m.startswith('peft_')]
        if skipped:
            print(f'PEFT is not installed (pip install peft): skipping {skipped}')
        methods = [m for m in methods if m not in skipped]
    print(f'device: {device}; methods: {methods}', flush=True)
    t0 = time.time()
    times, counts = run_times(methods, args, device)
    mem = {} if args.no_memory else {m: peak_memory(m, args) for m in methods}
    memory = {m: v['peak_mb'] for m, v in mem.items()}
    above = {m: v['above_model_mb'] for m, v in mem.items()}
    table, data = report(times, counts, memory, above, args, device)
    data['seconds'] = time.time() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'benchmark.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.out, 'benchmark.json'), 'w') as f:
        json.dump(data, f, indent=1)
    print(table)
    print(f'\n({data["seconds"]:.0f} s; written to {args.out}/benchmark.md and .json)')


if __name__ == '__main__':
    main()
