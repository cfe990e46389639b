"""Adapter parameter counts by layer kind (stem, downsample, depthwise, pointwise, ...)."""
from collections import OrderedDict

import torch.nn as nn

from .adapters import adapter_layers


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
