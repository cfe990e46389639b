"""Inject LieRA adapters into a module in place; merge / unmerge them all.

Targets: ``None`` adapts every nn.Conv2d and nn.Linear. Otherwise a list whose items are a regex
string or ``dict(pattern=regex, rank=..., alpha=..., mode=..., dropout=...)`` with per-target
overrides (a ``{regex: {overrides}}`` mapping works too). A regex matches a module when it
full-matches the module's dotted name or one of its dotted suffixes (``'depthwise_conv'`` and
``'stages\\.0\\..*'`` both match ``stages.0.1.depthwise_conv``). The first matching item wins.
"""
import re
import warnings

import torch.nn as nn

from .layers import LieRAConv2d, LieRALayer, LieRALinear, is_adapter_factor

OVERRIDE_KEYS = ('rank', 'alpha', 'mode', 'dropout', 'dora', 'init')


def _adapter_class(module):
    """LieRA class for an adaptable module, or None."""
    if isinstance(module, LieRALayer):
        return None
    if isinstance(module, nn.Conv2d):
        return LieRAConv2d
    # nn.MultiheadAttention reads out_proj.weight directly, never calls its forward.
    if isinstance(module, nn.Linear) and not isinstance(
            module, nn.modules.linear.NonDynamicallyQuantizableLinear):
        return LieRALinear
    return None


def _parse_targets(targets):
    """[(pattern, compiled regex, overrides)]; raises on malformed items."""
    if isinstance(targets, str):
        targets = [targets]
    elif isinstance(targets, dict):
        targets = ([targets] if 'pattern' in targets else
                   [dict(pattern=p, **(o or {})) for p, o in targets.items()])
    if not isinstance(targets, (list, tuple)) or not targets:
        raise ValueError('targets must be None or a non-empty list of regex strings / '
                         f'dict(pattern=..., rank=..., alpha=...), got {targets!r}')
    specs = []
    for item in targets:
        if isinstance(item, str):
            pattern, overrides = item, {}
        elif isinstance(item, dict) and isinstance(item.get('pattern'), str):
            overrides = {k: v for k, v in item.items() if k != 'pattern'}
            unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
            if unknown:
                raise ValueError(f'target {item!r}: unknown keys {unknown}; allowed: pattern, '
                                 f'{", ".join(OVERRIDE_KEYS)}')
            pattern = item['pattern']
        else:
            raise ValueError(f'target {item!r} must be a regex string or a dict with a '
                             "'pattern' string")
        try:
            regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(f'target {pattern!r} is not a valid regex: {e}') from None
        specs.append((pattern, regex, overrides))
    return specs


def _name_matches(regex, name):
    parts = name.split('.')
    return any(regex.fullmatch('.'.join(parts[i:])) for i in range(len(parts)))


def _plan(module, specs):
    """{module name: overrides} of the modules to adapt."""
    named = [(n, m) for n, m in module.named_modules() if n]
    if specs is None:
        done = [n for n, m in named if isinstance(m, LieRALayer)]
        if done:
            raise ValueError(f'{done[0]}: already has a LieRA adapter ({len(done)} layers '
                             'do); inject adapters only once')
        return {n: {} for n, m in named if _adapter_class(m) is not None}
    plan, hits = {}, {p: [] for p, _, _ in specs}
    for name, m in named:
        for pattern, regex, overrides in specs:
            if _name_matches(regex, name):
                hits[pattern].append((name, m))
                if isinstance(m, LieRALayer):
                    raise ValueError(f'{name}: already has a LieRA adapter; inject adapters '
                                     'only once')
                if name not in plan and _adapter_class(m) is not None:
                    plan[name] = overrides
    for pattern, found in hits.items():
        if not found:
            examples = [n for n, m in named if _adapter_class(m) is not None][:5]
            raise ValueError(f'target {pattern!r} matched no module of {type(module).__name__}; '
                             f'Conv2d/Linear names look like {examples}')
        if all(_adapter_class(m) is None for _, m in found):
            kinds = ', '.join(f'{n} ({type(m).__name__})' for n, m in found[:5])
            raise TypeError(f'target {pattern!r} matched only modules that are not adaptable '
                            f'nn.Conv2d / nn.Linear: {kinds}; point it at Conv2d/Linear layers')
    return plan


def inject_adapters(module, rank, alpha=None, mode='taylor', dropout=0.0, targets=None, *,
                    check_zeros=True, dora=False, init='default', freeze_base=True):
    """Replace matching Conv2d/Linear submodules of ``module`` by LieRA layers, in place.

    Weights are shared, not copied. All-or-nothing: every adapter is validated and built before
    any submodule is replaced. Returns the sorted list of replaced module names.
    ``freeze_base`` (default True, as PEFT and mmpretrain's LoRAModel): afterwards only the
    adapter parameters of ``module`` require grad (factors, DoRA's magnitude); every other
    parameter of ``module`` is frozen. ``freeze_base=False`` leaves requires_grad as it was.
    ``check_zeros``: warn per layer about exact zeros in W (pass False when the real weights
    are loaded later, and call :func:`warn_exact_zeros` then). ``dora``: DoRA's magnitude on
    the LieRA weight; ``init='pissa'``: PiSSA factors (see ``LieRALayer.reset_adapter``).
    """
    specs = None if targets is None else _parse_targets(targets)
    plan = _plan(module, specs)
    if not plan:
        raise ValueError(f'no nn.Conv2d / nn.Linear submodule of {type(module).__name__} '
                         'matched the targets; nothing to adapt')
    built = []
    for name in sorted(plan):
        parent_name, _, child = name.rpartition('.')
        parent = module.get_submodule(parent_name)
        old = getattr(parent, child)
        kw = dict(rank=rank, alpha=alpha, mode=mode, dropout=dropout, dora=dora, init=init)
        kw.update(plan[name])
        if 'rank' in plan[name] and 'alpha' not in plan[name]:
            kw['alpha'] = None  # alpha follows an overridden rank (2 * rank) unless given
        built.append((parent, child, _adapter_class(old).from_module(
            old, name=name, check_zeros=check_zeros, **kw)))
    for parent, child, new in built:
        setattr(parent, child, new)
    if freeze_base:
        for n, p in module.named_parameters():
            p.requires_grad_(is_adapter_factor(n))
    return sorted(plan)


def adapter_layers(module):
    """{name: layer} of every LieRA layer in ``module``."""
    return {n: m for n, m in module.named_modules() if isinstance(m, LieRALayer)}


def init_from_weights(module):
    """Re-derive W-dependent adapter state (PiSSA factors, DoRA magnitudes) of every layer."""
    for layer in adapter_layers(module).values():
        layer.init_from_weight()


def warn_exact_zeros(module):
    """One warning for all adapted layers whose W has exact zeros; returns the total count."""
    counts = {n: m.exact_zeros() for n, m in adapter_layers(module).items()}
    counts = {n: c for n, c in counts.items() if c}
    if counts:
        listed = ', '.join(f'{n} ({c})' for n, c in list(counts.items())[:10])
        warnings.warn(f'{sum(counts.values())} weights in {len(counts)} LieRA layers are exactly '
                      f'0 and a multiplicative update cannot move them: {listed}'
                      + (' ...' if len(counts) > 10 else ''))
    return sum(counts.values())


def merge_adapters(module):
    """Merge every LieRA layer; if one fails, those merged by this call are unmerged again."""
    done = []
    try:
        for layer in adapter_layers(module).values():
            if not layer.merged:
                layer.merge()
                done.append(layer)
    except Exception:
        for layer in done:
            layer.unmerge()
        raise
    return len(done)


def unmerge_adapters(module):
    """Unmerge every merged LieRA layer (restores the original weights bit-exactly)."""
    layers = [m for m in adapter_layers(module).values() if m.merged]
    for layer in layers:
        layer.unmerge()
    return len(layers)
