"""Training-step time and peak memory of LieRA vs LoRA vs exp vs full fine-tuning vs PEFT.

    python tools/analysis_tools/benchmark.py [--arch base] [--batch 1] [--size 384] [--rank 16]
                              [--device cpu|cuda] [--amp] [--paper] [--compile] [--count-ops]
                              [--repeats 5] [--warmup 2] [--out work_dirs/benchmark]

``--paper``: the paper's detection setting (ConvNeXt-V2-B, batch 2, 3x1024x1024). ``--amp``: the
step under autocast (CUDA: float16 with a GradScaler, as mmengine's AmpOptimWrapper; CPU:
bfloat16; ``--amp-dtype`` picks), the optimizer on the fp32 parameters. ``--compile``: full,
lora, liera and liera_exp also compiled (``<method>+compile``: the backbone through
:func:`mmliera.models.compile_parts`, inductor), with each method's first step (the compile)
timed apart. ``--count-ops``: instead of times and memory, the operators one training step runs
(:func:`count_ops`), eager and, with ``--compile``, compiled.

(One command-line tool in one file, about 430 lines: the methods, the timing and memory workers,
and the ratio report are read together and used nowhere else.)

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
min-max; on CUDA timed with CUDA events around the step. Peak memory: CPU, each method in its
own process (peak RSS = VmHWM; ``--memory fork``: forked from a server holding the imports,
no interpreter start-up per method); CUDA, ``torch.cuda.max_memory_allocated`` of each method's
steps in the same process once the others are freed (``--memory process`` for a fresh process
each), also shown as the part above the memory of the built model (what the steps add).
PEFT is an optional dependency (``pip install peft``); without it those rows are skipped.
Writes ``benchmark.md`` and ``benchmark.json`` to ``--out`` and prints the table.
"""
import argparse
import gc
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

from mmliera.cli.errors import UsageError

TRAIN = ['full', 'frozen', 'lora', 'liera', 'liera_exp', 'peft_lora', 'peft_hira', 'liera_peft']
INFER = ['plain_infer', 'merged_infer']
COMPILABLE = ['full', 'lora', 'liera', 'liera_exp']  # --compile: also '<method>+compile'
COMPILED = [f'{m}+compile' for m in COMPILABLE]


def have_peft():
    try:
        import peft  # noqa: F401
        return True
    except Exception:
        return False


def peft_targets(backbone):
    """Module names PEFT's LoRA / HiRA accept: Linear and ungrouped Conv2d."""
    names = []
    for n, m in backbone.named_modules():
        if isinstance(m, torch.nn.Linear) or (isinstance(m, torch.nn.Conv2d) and m.groups == 1):
            names.append(n)
    return names


def build(method, args, device):
    """(module, train?) for a method; ``<method>+compile``: its backbone compiled."""
    model, train = _build(method.split('+')[0], args, device)
    if method.endswith('+compile'):
        from mmliera.models import compile_parts
        compile_parts(model, [''], backend=args.compile_backend)
    return model, train


def _build(method, args, device):
    from mmpretrain.models.backbones import ConvNeXt

    import mmliera
    torch.manual_seed(0)
    m = ConvNeXt(
        arch=args.arch,
        use_grn=True,
        layer_scale_init_value=0.,
        out_indices=[0, 1, 2, 3],
        gap_before_final_norm=False,
        init_cfg=None)
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
        mmliera.inject_adapters(
            m,
            rank=args.rank,
            targets=[n.replace('.', r'\.') for n in peft_targets(m)],
            check_zeros=False)
    elif method in ('peft_lora', 'peft_hira'):
        from peft import HiraConfig, LoraConfig, inject_adapter_in_model
        config_cls = LoraConfig if method == 'peft_lora' else HiraConfig
        m = inject_adapter_in_model(config_cls(r=args.rank, target_modules=peft_targets(m)), m)
        for n, p in m.named_parameters():
            p.requires_grad_('lora_' in n or 'hira_' in n)
    for layer in mmliera.adapter_layers(m).values():  # a trained-looking adapter, not B = 0
        torch.nn.init.normal_(layer.lora_B, std=1e-3)
    if method == 'merged_infer':
        mmliera.merge_adapters(m)
        return m.to(device), False
    return m.to(device), True


def amp_dtype(args, device):
    """The autocast dtype of ``--amp`` (None without it)."""
    if not args.amp:
        return None
    if args.amp_dtype:
        return getattr(torch, args.amp_dtype)
    return torch.float16 if device.type == 'cuda' else torch.bfloat16


class Step:
    """One training step (or one eval forward) of a built method."""

    def __init__(self, method, args, device):
        self.method = method
        self.model, self.train = build(method, args, device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4) if self.params else None
        self.amp = amp_dtype(args, device)
        # fp16 needs loss scaling (mmengine's AmpOptimWrapper uses a GradScaler); bf16 does not
        self.scaler = torch.amp.GradScaler(device.type) \
            if self.amp == torch.float16 and self.params else None
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(device)
        self.device = device
        if self.train:
            self.model.train()
        else:
            self.model.eval()

    def __call__(self):
        autocast = torch.autocast(
            self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None)
        if not self.train:
            with torch.no_grad(), autocast:
                self.model(self.x)
        else:
            with autocast:
                outs = self.model(self.x)
            if self.params:
                loss = sum(o.float().pow(2).mean() for o in outs)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.opt)
                    self.scaler.update()
                else:
                    loss.backward()
                    self.opt.step()
                self.opt.zero_grad(set_to_none=True)


def timed(fn, device):
    """Seconds of one call: CUDA events on CUDA (the GPU's time, synchronised), else the
    wall clock."""
    if device.type == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_times(methods, args, device):
    """(step times, trainable counts, first step's seconds: a compiled method's compile)."""
    steps = {m: Step(m, args, device) for m in methods}
    counts = {m: sum(p.numel() for p in s.params) for m, s in steps.items()}
    first = {m: timed(s, device) for m, s in steps.items()}
    for _ in range(args.warmup - 1):
        for s in steps.values():
            s()
    times = {m: [] for m in methods}
    for _ in range(args.repeats):
        for m, s in steps.items():
            times[m].append(timed(s, device))
    return times, counts, first


# what makes no kernel: views, allocations, dtype queries (an op counts if it or an op it
# calls is not one of these, e.g. aten::to with a copy)
NO_KERNEL = {
    'aten::' + n
    for n in ('view', 'reshape', '_reshape_alias', '_unsafe_view', 't', 'transpose', 'permute',
              'expand', 'expand_as', 'unsqueeze', 'squeeze', 'as_strided', 'detach', 'alias',
              'select', 'slice', 'unbind', 'split', 'chunk', 'narrow', 'flatten', 'view_as',
              'empty', 'empty_like', 'empty_strided', 'to', 'contiguous', 'resolve_conj',
              'resolve_neg', 'result_type', 'promote_types', 'lift_fresh', 'numpy_T', 'mT',
              'is_nonzero', 'size', 'stride', 'set_', 'resize_')
} | {'detach'}


def count_ops(step, device):
    """{'ops': operators one call of ``step`` runs, ...} from torch's profiler: aten operators
    not called by another aten operator (what the Python code and autograd dispatch, the
    conv or matmul counted once, not its inner calls), leaving out those that make no kernel
    (:data:`NO_KERNEL`), plus the kernels of compiled code (inductor's C++ kernels, recorded
    when ``torch._inductor.config.cpp.enable_kernel_profile`` was set before compiling). CUDA:
    also ``gpu_kernels``, every kernel and copy the GPU ran. ``optimizer_ops``: the part inside
    the optimizer's step (torch's CPU AdamW runs a loop of operators per parameter; on CUDA it
    runs a few multi-tensor kernels). Deterministic for a fixed step."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
        torch.cuda.synchronize()
    with profile(activities=activities) as prof:
        step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
    events = prof.events()

    def real(e):
        return e.name not in NO_KERNEL or any(real(c) for c in e.cpu_children)

    def kernel(e):
        return '_fused_' in e.name and not e.name.startswith('aten::')

    ops = compiled = optimizer = 0
    for e in events:
        if e.device_type != DeviceType.CPU:
            continue
        up, inside, in_optimizer = e.cpu_parent, False, False
        while up is not None:
            if up.name.startswith('aten::') or kernel(up):
                inside = True
                break
            in_optimizer |= up.name.startswith('Optimizer.step')
            up = up.cpu_parent
        if inside:
            continue
        if kernel(e):
            compiled += 1
        elif e.name.startswith('aten::') and real(e):
            ops += 1
            optimizer += in_optimizer
    found = dict(
        ops=ops + compiled, aten_ops=ops, compiled_kernels=compiled, optimizer_ops=optimizer)
    if device.type == 'cuda':
        found['gpu_kernels'] = sum(1 for e in events if e.device_type == DeviceType.CUDA)
    return found


def run_count_ops(methods, args, device):
    """``--count-ops``: the table of :func:`count_ops` per method (after the warm-up steps)."""
    import torch._inductor.config as inductor_config
    inductor_config.cpp.enable_kernel_profile = True  # before any compile: kernels recorded
    rows = {}
    for m in methods:
        s = Step(m, args, device)
        for _ in range(max(args.warmup, 2)):
            s()
        rows[m] = count_ops(s, device)
        print(f'{m}: {rows[m]}', flush=True)
        del s
    head = (f'ConvNeXt-V2-{args.arch}, batch {args.batch}, 3x{args.size}x{args.size}, rank '
            f'{args.rank}, device {device}, torch {torch.__version__}: operators of one '
            'training step (forward, backward, AdamW)')
    gpu = device.type == 'cuda'
    lines = [
        head, '', '| method | operators | forward + backward | optimizer step | of which '
        'compiled kernels |' + (' GPU kernels |' if gpu else ''),
        '|---|---:|---:|---:|---:|' + ('---:|' if gpu else '')
    ]
    for m, r in rows.items():
        lines.append(f"| {m} | {r['ops']} | {r['ops'] - r['optimizer_ops']} | "
                     f"{r['optimizer_ops']} | {r['compiled_kernels']} |" +
                     (f" {r['gpu_kernels']} |" if gpu else ''))
    return '\n'.join(lines), dict(setting=head, rows=rows)


def peak_memory(method, args):
    """Run one method in a fresh process; its peak memory in MB."""
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--worker', method, '--arch', args.arch, '--batch',
        str(args.batch), '--size',
        str(args.size), '--rank',
        str(args.rank), '--warmup', '1', '--repeats', '2', '--device', args.device,
        '--compile-backend', args.compile_backend
    ]
    if args.amp:
        cmd += ['--amp'] + (['--amp-dtype', args.amp_dtype] if args.amp_dtype else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f'memory worker for {method} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory_child(method, args, conn):
    """In a process of its own: ``method``'s peak memory (dict), or the traceback (str), sent
    through ``conn``."""
    try:
        conn.send(measure_memory(method, args, torch.device(args.device), 1, 2))
    except BaseException:
        import traceback
        conn.send(traceback.format_exc())
    finally:
        conn.close()


def peak_memory_forked(methods, args):
    """``--memory fork``: {method: peak memory} with each method in a process of its own,
    forked from a server that imported torch, mmpretrain and mmliera once (``multiprocessing``'s
    forkserver, started apart from this process and its models): no interpreter start-up per
    method. Its peak RSS counts that method alone, but not the shared-library pages that only
    the imports touched (a new interpreter's count does: CPU, about 340 MB more)."""
    import multiprocessing as mp
    ctx = mp.get_context('forkserver')
    ctx.set_forkserver_preload(['torch', 'mmpretrain.models', 'mmliera'] +
                               (['peft'] if have_peft() else []))
    found = {}
    for method in methods:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_memory_child, args=(method, args, send), daemon=True)
        proc.start()
        send.close()
        try:
            result = recv.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            result = None
        proc.join()
        if not isinstance(result, dict):
            raise RuntimeError(f'memory worker for {method} failed (exit code {proc.exitcode}):'
                               f'\n{(result or "")[-3000:]}')
        found[method] = result
    return found


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


def measure_memory(method, args, device, warmup, repeats):
    """Peak memory (MB) of one method's steps, and its part above the built model. CPU: this
    process's VmHWM, so a fresh process per method (``peak_memory``). CUDA: the allocator's
    peak, which counts live tensors only, so after the other methods are freed it is measured
    in this process as well as in a fresh one."""
    if device.type == 'cuda':
        gc.collect()
        torch.cuda.empty_cache()
    s = Step(method, args, device)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = current_rss_mb()
    for _ in range(warmup + repeats):
        s()
    if device.type == 'cuda':
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_rss_mb()
    del s
    return dict(method=method, peak_mb=peak, above_model_mb=peak - before)


def worker(args, device):
    print(json.dumps(measure_memory(args.worker, args, device, 1, 2)))


# name -> (numerator, denominator, 'time' | 'memory' | 'above', target or None: reported only);
# 'above' = step memory above the built model
RATIOS = {
    'liera / full (time)': ('liera', 'full', 'time', 1.00),
    'liera / full (peak memory)': ('liera', 'full', 'memory', None),  # see target()
    'liera / full (step memory above the built model)': ('liera', 'full', 'above', 0.90),
    'liera / lora (time)': ('liera', 'lora', 'time', 1.00),
    'liera / lora (peak memory)': ('liera', 'lora', 'memory', 1.00),
    'liera_exp / liera (time)': ('liera_exp', 'liera', 'time', 1.05),
    'liera_exp / liera (peak memory)': ('liera_exp', 'liera', 'memory', 1.02),
    'liera_peft / peft_lora (time)': ('liera_peft', 'peft_lora', 'time', None),
    'liera_peft / peft_lora (peak memory)': ('liera_peft', 'peft_lora', 'memory', 1.00),
    'liera_peft / peft_hira (time)': ('liera_peft', 'peft_hira', 'time', 0.75),
    'merged_infer / plain_infer (time)': ('merged_infer', 'plain_infer', 'time', 1.02),
    # --compile (goals: compiled LieRA no slower than eager LieRA; on a GPU, compiled LieRA no
    # slower than compiled full fine-tuning, keeping its memory advantage)
    'liera+compile / liera (time)': ('liera+compile', 'liera', 'time', 1.00),
    'liera+compile / full+compile (time)': ('liera+compile', 'full+compile', 'time', 1.00),
    'liera+compile / full+compile (peak memory)': ('liera+compile', 'full+compile', 'memory', None),
    'liera+compile / lora+compile (time)': ('liera+compile', 'lora+compile', 'time', None),
    'liera_exp+compile / liera+compile (time)':
    ('liera_exp+compile', 'liera+compile', 'time', None),
    'full+compile / full (time)': ('full+compile', 'full', 'time', None),
}
# the paper's COCO figures (ConvNeXt-V2-B, r=16, minutes/epoch and GB): Table 5 LieRA 50.17 /
# 9.97 vs LoRA 55.42 / 8.62; Table 6 without Taylor 76.28 / 14.74
PAPER = {
    'liera / lora (time)': 50.17 / 55.42,
    'liera / lora (peak memory)': 9.97 / 8.62,
    'liera_exp / liera (time)': 76.28 / 50.17,
    'liera_exp / liera (peak memory)': 14.74 / 9.97
}


def target(name, args):
    """The ratio's target; LieRA / full peak memory: <= 0.80 at the CPU setting (384 px, batch
    1), reported elsewhere (at detection sizes activations dominate both)."""
    if name == 'liera / full (peak memory)':
        return 0.80 if (args.size, args.batch) == (384, 1) else None
    return RATIOS[name][3]


def ratio(a, b):
    return None if a is None or b is None else a / b


def report(times, counts, memory, above, args, device, first=None):
    med = {m: statistics.median(t) for m, t in times.items()}
    rows = []
    for m in times:
        rows.append(
            dict(
                method=m,
                trainable=counts[m],
                median_s=med[m],
                min_s=min(times[m]),
                max_s=max(times[m]),
                peak_mb=memory.get(m),
                above_model_mb=above.get(m),
                first_step_s=(first or {}).get(m)))
    figures = dict(time=med, memory=memory, above=above)
    ratios = {
        name: ratio(figures[fig].get(a), figures[fig].get(b))
        for name, (a, b, fig, _) in RATIOS.items()
    }
    targets = {name: target(name, args) for name in RATIOS}
    if device.type == 'cuda':
        where = f'{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}'
    else:
        where = f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'
    amp = amp_dtype(args, device)
    head = (f'ConvNeXt-V2-{args.arch}, batch {args.batch}, 3x{args.size}x{args.size}, rank '
            f'{args.rank}, device {device} ({where}), torch {torch.__version__}, ' +
            (f'autocast {str(amp).replace("torch.", "")}, ' if amp else 'fp32, ') +
            f'{args.repeats} timed rounds after {args.warmup} warm-up' +
            ('' if args.no_memory else ', peak memory of each method ' + dict(
                inline='in one process, the others freed',
                fork='in a process of its own forked from one holding the imports',
                process='in its own process')[args.memory]))
    lines = [
        head, '', '| method | trainable params | step time median (s) | min-max (s) | '
        'peak memory (MB) | of which steps (MB) | first step (s) |',
        '|---|---:|---:|---:|---:|---:|---:|'
    ]
    for r in rows:
        mem = '' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"
        step = '' if r['above_model_mb'] is None else f"{r['above_model_mb']:.0f}"
        once = '' if r['first_step_s'] is None else f"{r['first_step_s']:.1f}"
        lines.append(f"| {r['method']} | {r['trainable']:,} | {r['median_s']:.3f} | "
                     f"{r['min_s']:.3f}-{r['max_s']:.3f} | {mem} | {step} | {once} |")
    lines += [
        '', '| ratio | measured | target | paper (COCO, Tables 5-6) |', '|---|---:|---:|---:|'
    ]
    for k, v in ratios.items():
        if v is not None:
            t = targets[k]
            goal = 'reported' if t is None else \
                f"<= {t:.2f} ({'ok' if v <= t else 'missed'})"
            paper = '' if k not in PAPER else f'{PAPER[k]:.3f}'
            lines.append(f'| {k} | {v:.3f} | {goal} | {paper} |')
    return '\n'.join(lines), dict(
        setting=head, rows=rows, ratios=ratios, targets=targets, paper=PAPER)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', help='ConvNeXt-V2 arch (default: base)')
    p.add_argument('--batch', type=int, help='default: 1 (--paper: 2)')
    p.add_argument('--size', type=int, help='input side in pixels (default: 384; --paper: 1024)')
    p.add_argument('--rank', type=int, default=16)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument(
        '--methods',
        nargs='+',
        choices=TRAIN + INFER + COMPILED,
        help='default: all (--compile: full, lora, liera, liera_exp)')
    p.add_argument(
        '--compile',
        action='store_true',
        help='also each of full, lora, liera, liera_exp with its backbone compiled '
        '(torch.compile, inductor): <method>+compile')
    p.add_argument(
        '--compile-backend',
        default='inductor',
        help='the torch.compile backend of the +compile methods (default: inductor)')
    p.add_argument(
        '--count-ops',
        action='store_true',
        help='count the operators of one training step per method instead of timing')
    p.add_argument('--no-memory', action='store_true', help='skip the peak memory')
    p.add_argument(
        '--memory',
        choices=['process', 'fork', 'inline'],
        help='peak memory of each method in a new interpreter (process: the CPU default), '
        'in a process forked from one that holds the imports (fork: no start-up per '
        'method; on CPU its RSS leaves out library pages that only the imports touch) or '
        'in this process after the others are freed (inline: the CUDA default; the '
        "allocator's peak counts live tensors only). CPU needs process or fork: its peak "
        'RSS never goes down')
    p.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda (default: cuda when available)')
    p.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: autocast float16 on CUDA (with a GradScaler), '
        'bfloat16 on CPU')
    p.add_argument(
        '--amp-dtype',
        choices=['float16', 'bfloat16'],
        help='the autocast dtype of --amp (default: float16 on CUDA, bfloat16 on CPU)')
    p.add_argument(
        '--paper',
        action='store_true',
        help="the paper's detection setting: --arch base --size 1024 --batch 2 "
        '(each unless given)')
    p.add_argument('--out', default='work_dirs/benchmark')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, default, paper in (('arch', 'base', 'base'), ('size', 384, 1024), ('batch', 1, 2)):
        if getattr(args, name) is None:
            setattr(args, name, paper if args.paper else default)
    if args.amp_dtype and not args.amp:
        raise UsageError('--amp-dtype needs --amp')
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UsageError('--device cuda: torch sees no CUDA device here (torch '
                         f'{torch.__version__}); use --device cpu')
    if device.type not in ('cpu', 'cuda'):
        raise UsageError(f'--device {args.device}: use cpu or cuda')
    if args.memory == 'inline' and device.type != 'cuda':
        raise UsageError('--memory inline needs --device cuda (the CPU peak RSS never goes '
                         'down); use --memory process or fork')
    args.memory = args.memory or ('inline' if device.type == 'cuda' else 'process')
    if args.worker:
        return worker(args, device)

    methods = list(args.methods or (COMPILABLE if args.compile else TRAIN + INFER))
    if args.compile:
        methods += [f'{m}+compile' for m in methods if m in COMPILABLE]
        methods = list(dict.fromkeys(methods))
    if any(m.endswith('+compile') for m in methods):
        from mmliera.models.compile_parts import check_compile_kwargs, check_cpp_compiler
        check_compile_kwargs(dict(backend=args.compile_backend), '--compile-backend')
        if device.type == 'cpu' and args.compile_backend == 'inductor':
            check_cpp_compiler('--compile')
    if not have_peft():
        skipped = [m for m in methods if m.startswith('peft_')]
        if skipped:
            print(f'PEFT is not installed (pip install peft): skipping {skipped}')
        methods = [m for m in methods if m not in skipped]
    print(f'device: {device}; methods: {methods}', flush=True)
    t0 = time.time()
    if args.count_ops:
        table, data = run_count_ops(methods, args, device)
        return _write(args, table, data, 'ops', t0)
    times, counts, first = run_times(methods, args, device)
    if args.no_memory:
        mem = {}
    elif args.memory == 'inline':
        mem = {m: measure_memory(m, args, device, 1, 2) for m in methods}
    elif args.memory == 'fork':
        mem = peak_memory_forked(methods, args)
    else:
        mem = {m: peak_memory(m, args) for m in methods}
    memory = {m: v['peak_mb'] for m, v in mem.items()}
    above = {m: v['above_model_mb'] for m, v in mem.items()}
    table, data = report(times, counts, memory, above, args, device, first)
    _write(args, table, data, 'benchmark', t0)


def _write(args, table, data, name, t0):
    data['seconds'] = time.time() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, f'{name}.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.out, f'{name}.json'), 'w') as f:
        json.dump(data, f, indent=1)
    print(table)
    print(f'\n({data["seconds"]:.0f} s; written to {args.out}/{name}.md and .json)')


if __name__ == '__main__':
    from mmliera.cli.errors import exit_on_user_error
    exit_on_user_error(main)()
