"""adapt_module: the one adapting mechanism (``type='LieRA'``, ``LieRAConvNeXt``, any module).

Inject adapters into a built module, then apply the freezing policy to it, recording on the
module what the policy needs later: its adapter settings (``liera_adapter``), its adapted
layers (``liera_layers``), the ``trainable`` patterns it was built with (``liera_trainable``)
and the parameters it had frozen itself (``liera_base_frozen``: e.g. ``frozen_stages``; their
adapters stay frozen too). :func:`finish_weights_init` re-derives weight-dependent adapter
state after the module's weights were initialised or loaded.
"""
import contextlib

import torch.nn as nn

from .freeze_policy import FreezePolicy
from .peft import inject as peft_inject
from .peft.config import AdapterConfig
from .peft.inject import adapter_layers, init_adapters_from_weights, warn_exact_zeros
from .pretrained_report import pretrained_load_report

ADAPTER_DEFAULTS = AdapterConfig.defaults()


def adapter_config(adapter=None) -> dict:
    """The full adapter settings: defaults updated by ``adapter``; bad values raise."""
    return AdapterConfig.from_dict(adapter).to_dict()


def inject_adapters(module: nn.Module, rank=None, *, freeze_base=True, **settings):
    """Replace matching Conv2d/Linear submodules of ``module`` by LieRA layers, in place
    (:func:`mmliera.models.peft.inject_adapters`: ``rank``, ``targets``, ``mode``, ...,
    ``adapter=``, ``exclude=``, ``check_zeros=``); returns the sorted replaced names.

    ``freeze_base`` (default True, as PEFT and mmpretrain's LoRAModel): afterwards only the
    adapter parameters of ``module`` require grad (:class:`FreezePolicy` with no extra
    pattern); ``False`` leaves every ``requires_grad`` as it was.
    """
    names = peft_inject.inject_adapters(module, rank, **settings)
    if freeze_base:
        FreezePolicy(adapted_modules=()).apply(module)
    return names


def adapt_module(module: nn.Module, adapter=None, trainable=(), exclude=()) -> nn.Module:
    """Inject adapters into ``module`` and freeze all but their factors and ``trainable``.

    ``adapter``: :class:`~.peft.config.AdapterConfig` settings (dict). ``trainable``: extra
    parameter-name patterns (relative to ``module``) that keep training, e.g. ``['norm']``;
    one that matches nothing raises. ``exclude``: module names (relative to ``module``) that
    get no adapter (see :func:`~.peft.inject.inject_adapters`). Exact zeros in the weights are
    not reported here (the real weights usually load later; :func:`finish_weights_init`
    reports them). Returns ``module``.
    """
    cfg = AdapterConfig.from_dict(adapter)
    trainable = [trainable] if isinstance(trainable, str) else list(trainable or ())
    base_frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
    frozen_layers = {n.rpartition('.')[0] for n in base_frozen if n.endswith('.weight')}
    module.liera_layers = peft_inject.inject_adapters(
        module, adapter=cfg, check_zeros=False, exclude=exclude)
    for name, layer in adapter_layers(module).items():
        if name in frozen_layers:  # the module froze this layer: its adapter stays frozen
            base_frozen |= {
                f'{name}.{n}'
                for n, _ in layer.named_parameters() if n.startswith('lora_')
            }
    module.liera_adapter = cfg.to_dict()
    module.liera_trainable = trainable
    module.liera_base_frozen = sorted(base_frozen)
    FreezePolicy(adapted_modules=()).apply(module)
    return module


def finish_weights_init(module: nn.Module):
    """After ``module``'s weights were initialised or loaded: PiSSA factors / DoRA magnitudes
    follow them, and exact zeros a multiplicative update cannot move are reported."""
    init_adapters_from_weights(module)
    warn_exact_zeros(module)


def init_weights_reported(module: nn.Module, init_weights):
    """Run ``init_weights()`` (mmengine init / pretrained load) with one info line about the
    adapters instead of a list of missing keys, then :func:`finish_weights_init`."""
    with pretrained_load_report(module):
        init_weights()
    finish_weights_init(module)


@contextlib.contextmanager
def load_reports(model: nn.Module):
    """Within this block, pretrained loads into any adapted part of ``model`` report in one
    line (see :mod:`.pretrained_report`)."""
    with contextlib.ExitStack() as stack:
        outer = []  # the outermost adapted modules: one line each (a whole detector: one)
        for name, m in model.named_modules():
            if hasattr(m, 'liera_layers') and not any(
                    name.startswith(o + '.') or o == '' for o in outer):
                outer.append(name)
                stack.enter_context(pretrained_load_report(m))
        yield
