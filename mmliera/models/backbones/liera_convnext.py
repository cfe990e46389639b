"""LieRAConvNeXt: mmpretrain's ConvNeXt (V1/V2) adapted by :func:`mmliera.models.adapt_module`."""
from mmpretrain.models.backbones import ConvNeXt

from ...registry import MODELS
from ..adapt import adapt_module, init_weights_reported


@MODELS.register_module()
class LieRAConvNeXt(ConvNeXt):
    """mmpretrain ``ConvNeXt`` (every argument of it) plus LieRA adapters.

    The same mechanism as ``type='LieRA'`` with ``backbone=dict(type='mmpretrain.ConvNeXt')``,
    as a named class for configs and layer-decay constructors (which look for ``ConvNeXt``).

    Args:
        adapter (dict): :class:`mmliera.models.peft.AdapterConfig` settings; default: Taylor,
            rank 16, every Conv2d and Linear (stem, downsample convs, depthwise 7x7 convs,
            pointwise linears).
        trainable (list[str]): parameter-name patterns that keep training besides the adapter
            factors (e.g. ``['norm', 'gamma', 'beta']``); honoured by the freezing policy
            (:class:`mmliera.FreezePolicy`), an error when one matches nothing. Default: none.

    Parameter names are mmpretrain's (``stages.{s}.{b}...``) plus ``...lora_A/lora_B``, so
    mmpretrain checkpoints load through ``init_cfg=dict(type='Pretrained', ...)`` into the
    frozen weights, leaving the factors (B = 0) untouched.
    """

    def __init__(self, *args, adapter=None, trainable=(), **kwargs):
        super().__init__(*args, **kwargs)
        adapt_module(self, adapter, trainable)  # frozen_stages' layers keep adapters frozen

    def init_weights(self):
        """mmengine init / pretrained load into the frozen weights (one info line about the
        adapters); weight-derived adapter state follows (:func:`finish_weights_init`)."""
        init_weights_reported(self, super().init_weights)
