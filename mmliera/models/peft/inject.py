"""Inject LieRA adapters into a module in place; merge / unmerge them all.

Targets (see :class:`~.config.AdapterConfig`): ``None`` adapts every nn.Conv2d and nn.Linear;
otherwise regexes or ``dict(pattern=regex, rank=..., ...)`` with per-target settings, matched
by :func:`~.names.matches` (the name or a dotted suffix of it). The first matching item wins.
"""
import warnings
from typing import Dict, List, Optional

import torch.nn as nn

from .config import AdapterConfig, AdapterConfigError, AdapterTargetTypeError
from .layers import LieRAConv2d, LieRALayer, LieRALinear
from .names import matches


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


def _plan(module, cfg, exclude=()):
    """{module name: AdapterConfig} of the modules to adapt (none of ``exclude`` nor inside it:
    e.g. the class layers a detector re-creates, which train fully)."""
    skip = tuple(exclude)
    named = [(n, m) for n, m in module.named_modules()
             if n and not any(n == e or n.startswith(e + '.') for e in skip)]
    if cfg.targets is None:
        done = [n for n, m in named if isinstance(m, LieRALayer)]
        if done:
            raise AdapterConfigError(f'{done[0]}: already has a LieRA adapter ({len(done)} '
                                     'layers do); inject adapters only once')
        return {n: cfg for n, m in named if _adapter_class(m) is not None}
    specs = cfg.target_specs()
    plan, hits = {}, {p: [] for p, _, _ in specs}
    for name, m in named:
        for pattern, regex, settings in specs:
            if matches(regex, name):
                hits[pattern].append((name, m))
                if isinstance(m, LieRALayer):
                    raise AdapterConfigError(f'{name}: already has a LieRA adapter; inject '
                                             'adapters only once')
                if name not in plan and _adapter_class(m) is not None:
                    plan[name] = settings
    for pattern, found in hits.items():
        if not found:
            examples = [n for n, m in named if _adapter_class(m) is not None][:5]
            raise AdapterConfigError(f'target {pattern!r} matched no module of '
                                     f'{type(module).__name__}; Conv2d/Linear names look like '
                                     f'{examples}')
        if all(_adapter_class(m) is None for _, m in found):
            kinds = ', '.join(f'{n} ({type(m).__name__})' for n, m in found[:5])
            raise AdapterTargetTypeError(
                f'target {pattern!r} matched only modules that are not adaptable nn.Conv2d / '
                f'nn.Linear: {kinds}; point it at Conv2d/Linear layers')
    return plan


def inject_adapters(module: nn.Module,
                    rank: Optional[int] = None,
                    *,
                    targets=None,
                    check_zeros=True,
                    adapter=None,
                    exclude=(),
                    **options) -> List[str]:
    """Replace matching Conv2d/Linear submodules of ``module`` by LieRA layers, in place.

    Settings: ``rank`` and the keywords of :class:`~.config.AdapterConfig` (``mode``,
    ``alpha``, ``dropout``, ``dora``, ``init``, ``targets``), or ``adapter=AdapterConfig(...)``
    / a dict of them. Weights are shared, not copied. All-or-nothing: every adapter is
    validated and built before any submodule is replaced. Returns the sorted replaced names.
    No parameter's ``requires_grad`` changes here: freezing is the layer above's
    (``mmliera.inject_adapters`` and :func:`mmliera.models.adapt_module` apply
    :class:`mmliera.FreezePolicy` afterwards). ``check_zeros``: warn per layer about exact zeros in
    W (pass False when the real
    weights are loaded later, and call :func:`warn_exact_zeros` then). ``exclude``: module
    names (relative to ``module``) left without adapters, their submodules too.
    """
    given = dict(options, targets=targets)
    if rank is not None:
        given['rank'] = rank
    if adapter is not None:
        base = AdapterConfig.from_dict(adapter, check=False)
        cfg = base.replace(**{k: v for k, v in given.items() if v is not None})
    else:
        if 'rank' not in given:
            raise AdapterConfigError('inject_adapters needs rank=... (or adapter=dict(...))')
        cfg = AdapterConfig.from_dict(given, check=False)
    # each layer checks its own settings, so an error names the layer
    plan = _plan(module, cfg, exclude)
    if not plan:
        raise AdapterConfigError(f'no nn.Conv2d / nn.Linear submodule of '
                                 f'{type(module).__name__} matched the targets; nothing to adapt')
    built = []
    for name in sorted(plan):
        parent_name, _, child = name.rpartition('.')
        parent = module.get_submodule(parent_name)
        old = getattr(parent, child)
        built.append((parent, child, _adapter_class(old).from_module(
            old, name=name, check_zeros=check_zeros, **plan[name].layer_settings())))
    for parent, child, new in built:
        setattr(parent, child, new)
    return sorted(plan)


def adapter_layers(module: nn.Module) -> Dict[str, LieRALayer]:
    """{name: layer} of every LieRA layer in ``module``."""
    return {n: m for n, m in module.named_modules() if isinstance(m, LieRALayer)}


def init_adapters_from_weights(module: nn.Module) -> None:
    """Re-derive W-dependent adapter state (PiSSA factors, DoRA magnitudes) of every layer,
    e.g. after the weights were initialised or loaded."""
    for layer in adapter_layers(module).values():
        layer.init_from_weight()


def warn_exact_zeros(module: nn.Module) -> int:
    """One warning for all adapted layers whose W has exact zeros; returns the total count."""
    counts = {n: m.exact_zeros() for n, m in adapter_layers(module).items()}
    counts = {n: c for n, c in counts.items() if c}
    if counts:
        listed = ', '.join(f'{n} ({c})' for n, c in list(counts.items())[:10])
        warnings.warn(f'{sum(counts.values())} weights in {len(counts)} LieRA layers are exactly '
                      f'0 and a multiplicative update cannot move them: {listed}' +
                      (' ...' if len(counts) > 10 else ''))
    return sum(counts.values())


def merge_adapters(module: nn.Module, keep_original: bool = True) -> int:
    """Merge every LieRA layer (``keep_original``: see :meth:`~.layers.LieRALayer.merge`); if
    one fails, those merged by this call are unmerged again."""
    done = []
    try:
        for layer in adapter_layers(module).values():
            if not layer.merged:
                layer.merge(keep_original)
                done.append(layer)
    except Exception:
        for layer in done:
            layer.unmerge()
        raise
    return len(done)


def unmerge_adapters(module: nn.Module) -> int:
    """Unmerge every merged LieRA layer (the original weights: bit-exactly, or up to rounding
    for layers merged without a copy of W)."""
    layers = [m for m in adapter_layers(module).values() if m.merged]
    for layer in layers:
        layer.unmerge()
    return len(layers)
