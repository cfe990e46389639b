"""Parameter reports: trainable / frozen / adapter counts per top-level module, and adapter
parameters by layer kind (stem, downsample, depthwise, pointwise, ...)."""
from collections import OrderedDict

import torch.nn as nn

from .peft.inject import adapter_layers
from .peft.names import is_adapter_factor


def layer_kind(name, layer):
    """Kind of an adapted layer from its dotted name and shape."""
    parts = name.split('.')
    if 'stem' in parts or 'downsample_layers.0' in name:
        return 'stem'
    if any(p.startswith('downsample') for p in parts):
        return 'downsample'
    if isinstance(layer, nn.Conv2d):
        if layer.groups > 1 and layer.groups == layer.in_channels:
            return 'depthwise'
        kh, kw = layer.kernel_size
        return 'pointwise' if (kh, kw) == (1, 1) else f'conv{kh}x{kw}'
    return 'pointwise'  # Linear


def adapter_counts(model):
    """OrderedDict kind -> (layers, adapter parameters), in first-seen order, plus 'total'."""
    counts = OrderedDict()
    for name, layer in adapter_layers(model).items():
        n, p = counts.get(layer_kind(name, layer), (0, 0))
        counts[layer_kind(name, layer)] = (n + 1, p + layer.num_adapter_params())
    counts['total'] = (sum(v[0] for v in counts.values()), sum(v[1] for v in counts.values()))
    return counts


def format_counts(counts):
    lines = [f'{"kind":<12}{"layers":>8}{"adapter params":>18}']
    lines += [f'{k:<12}{n:>8}{p:>18,}' for k, (n, p) in counts.items()]
    return '\n'.join(lines)


def parameter_table(model):
    """Rows (top-level module, trainable, frozen, adapter, role) with a final 'total' row.

    role: ``adapted`` (its trainable parameters are adapter factors), ``frozen``, ``trained
    fully``, or ``adapted + N new`` / ``frozen + N new`` where N trainable parameters outside
    the adapters train fully (a detector's re-created class layers, norms made trainable).
    """
    rows = {}
    for n, p in model.named_parameters():
        top = n.split('.', 1)[0]
        r = rows.setdefault(top, [0, 0, 0, 0])  # trainable, frozen, adapter, trainable adapter
        r[0 if p.requires_grad else 1] += p.numel()
        if is_adapter_factor(n):
            r[2] += p.numel()
            r[3] += p.numel() if p.requires_grad else 0
    out = [(k, *v[:3], _role(*v)) for k, v in rows.items()]
    out.append(('total', *[sum(r[i] for r in rows.values()) for i in range(3)], ''))
    return out


def _role(trainable, frozen, adapter, trainable_adapter):
    full = trainable - trainable_adapter
    if not frozen:
        return 'trained fully'
    base = 'adapted' if trainable_adapter else 'frozen'
    return f'{base} + {full:,} trained fully' if full else base


def format_table(rows):
    """A plain-text table of ``parameter_table`` rows."""
    head = ('module', 'trainable', 'frozen', 'adapter', 'role')
    body = [(r[0], *(f'{x:,}' for x in r[1:4]), *r[4:]) for r in rows]
    widths = [max(len(str(row[i])) for row in [head] + body) for i in range(5)]
    fmt = '{:<%d}  {:>%d}  {:>%d}  {:>%d}  {:<%d}' % tuple(widths)
    lines = [fmt.format(*head).rstrip(), '  '.join('-' * w for w in widths)]
    lines += [fmt.format(*row).rstrip() for row in body]
    return '\n'.join(lines)
