"""Adapt a built backbone in place: inject LieRA adapters, then build-time freezing.

``adapter`` keys (defaults): mode='taylor', rank=16, alpha=None (2·rank), dropout=0.0,
targets=None (every Conv2d and Linear), dora=False (DoRA magnitude on the LieRA weight),
init='default' ('pissa': PiSSA factors). ``trainable``: extra parameter-name patterns that keep
training (e.g. norms); everything else but the adapter factors is frozen.
"""
import torch

from ..adapters import adapter_layers, inject_adapters
from ..freeze import freeze_all_but_adapters

ADAPTER_DEFAULTS = dict(mode='taylor', rank=16, alpha=None, dropout=0.0, targets=None,
                        dora=False, init='default')


def adapter_config(adapter=None):
    """The full adapter settings: defaults updated by ``adapter``; unknown keys raise."""
    adapter = {} if adapter is None else adapter
    if not isinstance(adapter, dict):
        raise TypeError(f'adapter must be a dict like {ADAPTER_DEFAULTS}, got {adapter!r}')
    unknown = sorted(set(adapter) - set(ADAPTER_DEFAULTS))
    if unknown:
        raise ValueError(f'unknown adapter keys {unknown}; allowed: {sorted(ADAPTER_DEFAULTS)}')
    cfg = dict(ADAPTER_DEFAULTS)
    cfg.update(adapter)
    return cfg


def adapt_module(module, adapter=None, trainable=()):
    """Inject adapters into ``module`` and freeze all but their factors; returns ``module``.

    Layers whose weight the backbone had frozen itself (``frozen_stages``) keep their adapter
    factors frozen as well. Exact zeros in the weights are not reported here (the real weights usually load later,
    in ``init_weights``; call :func:`mmliera.adapters.warn_exact_zeros` then).
    Sets ``module.liera_adapter`` (the full settings) and ``module.liera_layers`` (names).
    """
    cfg = adapter_config(adapter)
    # layers the backbone froze itself (e.g. frozen_stages) keep their adapters frozen too
    frozen_by_backbone = {n for n, m in module.named_modules()
                          if getattr(m, 'weight', None) is not None
                          and isinstance(m.weight, torch.nn.Parameter)
                          and not m.weight.requires_grad}
    module.liera_layers = inject_adapters(module, **cfg, check_zeros=False)
    module.liera_adapter = cfg
    module.liera_trainable = list(trainable or ())
    freeze_all_but_adapters(module, trainable)
    for name, layer in adapter_layers(module).items():
        if name in frozen_by_backbone:
            for p in layer._factors():
                p.requires_grad_(False)
    return module
