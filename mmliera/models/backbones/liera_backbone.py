"""``type='LieRA'``: build any registered backbone and adapt it in place (same class, same names).

    backbone=dict(type='LieRA',
                  backbone=dict(type='ResNet', depth=50, ...),      # any registered type,
                  adapter=dict(mode='taylor', rank=8, targets=[...]),  # 'mmpretrain.X' too
                  trainable=[])

returns the inner backbone itself, with LieRA adapters injected and build-time freezing applied
(:func:`mmliera.models.adapt_module`), so its class, parameter names, ``init_cfg`` pretrained
loading, ``frozen_stages`` / ``norm_eval`` and layer-decay constructors behave as for the plain
backbone. ``LieRAConvNeXt`` is the same mechanism on mmpretrain's ConvNeXt, as a named class.
"""
from ...registry import MODELS
from ...utils.errors import UserError
from ..adapt import adapt_module


class UnknownBackboneError(UserError, KeyError):
    """The inner backbone type of ``type='LieRA'`` is not in the registry."""

    def __str__(self):
        return str(self.args[0])


class LieRABackboneSpecError(UserError, TypeError):
    """``type='LieRA'`` without ``backbone=dict(type=...)``."""


def build_liera_backbone(backbone, adapter=None, trainable=()):
    """Build ``backbone`` through the registry, then adapt it; returns that same module."""
    if not isinstance(backbone, dict) or 'type' not in backbone:
        raise LieRABackboneSpecError(
            "LieRA needs backbone=dict(type=..., ...) (the backbone to adapt), got "
            f'{backbone!r}')
    inner_type = backbone['type']
    if isinstance(inner_type, str):
        try:
            found = MODELS.get(inner_type)
        except (KeyError, ImportError) as e:  # unknown scope prefix
            raise UnknownBackboneError(
                f'LieRA: backbone type {inner_type!r} cannot be resolved ({e})') \
                from None
        if found is None:
            scope = MODELS.current.scope
            other = 'mmdet.ResNet' if scope == 'mmpretrain' else 'mmpretrain.VisionTransformer'
            raise UnknownBackboneError(
                f'LieRA: backbone type {inner_type!r} is not registered in {scope}\'s MODELS '
                "registry (the config's default scope, or its parents); check the spelling, "
                f"prefix another package's types with its scope (e.g. {other!r}) and import "
                'it via custom_imports.')
    module = MODELS.build(backbone)
    return adapt_module(module, adapter, trainable)


MODELS.register_module(name='LieRA', module=build_liera_backbone)
