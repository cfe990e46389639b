"""LieRAConvNeXt: mmpretrain's ConvNeXt (V1/V2) with LieRA adapters and build-time freezing."""
from mmdet.registry import MODELS
from mmpretrain.models.backbones import ConvNeXt

from ...adapters import init_from_weights, warn_exact_zeros
from ..adapt import adapt_module
from ..pretrained_report import pretrained_load_report


@MODELS.register_module()
class LieRAConvNeXt(ConvNeXt):
    """mmpretrain ``ConvNeXt`` (every argument of it) plus LieRA adapters.

    Args:
        adapter (dict): ``mode`` ('taylor' | 'exp' | 'lora'), ``rank`` (16), ``alpha``
            (None: 2·rank), ``dropout`` (0.), ``targets`` (None: every Conv2d and Linear: stem,
            downsample convs, depthwise 7x7 convs, pointwise linears); see
            :func:`mmliera.inject_adapters`.
        trainable (list[str]): parameter-name patterns that keep training besides the adapter
            factors (e.g. ``['norm', 'gamma', 'beta']``). Default: none.

    Parameter names are mmpretrain's (``stages.{s}.{b}...``) plus ``...lora_A/lora_B``, so
    mmpretrain checkpoints load through ``init_cfg=dict(type='Pretrained', ...)`` into the
    frozen weights, leaving the factors (B = 0) untouched.
    """

    def __init__(self, *args, adapter=None, trainable=(), **kwargs):
        super().__init__(*args, **kwargs)
        adapt_module(self, adapter, trainable)  # frozen_stages' layers keep adapters frozen

    def init_weights(self):
        """mmengine init / pretrained load into the frozen weights (one info line about the
        adapters, :mod:`mmliera.models.pretrained_report`); the factors keep B = 0."""
        with pretrained_load_report(self):
            super().init_weights()
        init_from_weights(self)  # PiSSA / DoRA state follows the (pretrained) weights
        warn_exact_zeros(self)

    def train(self, mode=True):
        super().train(mode)  # ConvNeXt.train re-applies frozen_stages; nothing is unfrozen
        return self
