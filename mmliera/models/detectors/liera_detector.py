"""``type='LieRADetector'``: a whole trained detector adapted to new data, per-part adapters.

    _base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'   # any detector config
    model = dict(
        type='LieRADetector', detector='MaskRCNN',   # the detector's type; its keys stay
        adapters=dict(backbone=dict(rank=16), neck=dict(rank=8), rpn_head=dict(rank=4),
                      roi_head=dict(rank=8, targets=['shared_fcs.*', 'convs.*'])),
        new_layers='auto',          # the class-dependent layers, re-created and trained fully
        trainable=[])               # parameter patterns that train anyway (e.g. head norms)
    load_from = 'https://download.openmmlab.com/mmdetection/...'  # the plain detector

builds the detector (``detector`` and every other key, or ``detector=dict(type=..., ...)``)
and returns it adapted in place: its class, parameter names, ``data_preprocessor`` and
mmdet's tools stay as they are (``cfg.model.backbone`` still exists for ``init_detector``),
so a plain detector's checkpoint loads as it is. What trains:

- ``adapters``: {part: :class:`~mmliera.models.peft.AdapterConfig` settings}; a part is a
  submodule name (``backbone``, ``neck``, ``rpn_head``, ``roi_head``, ``roi_head.mask_head``,
  ``bbox_head``, ...). Only their adapter factors train.
- ``new_layers``: ``'auto'`` (:func:`~.class_layers.class_dependent_layers`: the layers whose
  shape follows ``num_classes``), a list of module names, or ``[]``. They get no adapter,
  train fully, and a checkpoint whose tensors of them have other shapes is reported in one
  line (:func:`~.class_layers.report_recreated_layers`).
- ``trainable``: patterns (:class:`~mmliera.FreezePolicy`) that train anyway.
- everything else is frozen: parts without adapters, norms (a frozen BN keeps its statistics:
  :mod:`.frozen_norms`), biases, the backbone's own ``frozen_stages``.
"""
import copy
import re

from mmengine.config import ConfigDict

from ...registry import MODELS
from ...utils.errors import UserError
from ..adapt import adapt_module
from ..freeze_policy import FreezePolicy
from ..peft import AdapterConfig, adapter_layers
from .class_layers import class_dependent_layers, report_recreated_layers
from .frozen_norms import keep_frozen_norms_in_eval


class LieRADetectorError(UserError, ValueError):
    """A ``type='LieRADetector'`` setting that cannot be used (the message says the fix)."""


def _detector_spec(detector, kwargs):
    if isinstance(detector, dict):
        if 'type' not in detector:
            raise LieRADetectorError('LieRADetector: detector=dict(...) needs a type, e.g. '
                                     "detector=dict(type='MaskRCNN', ...)")
        if kwargs:
            raise LieRADetectorError(
                f'LieRADetector: with detector=dict(...), give the detector\'s settings inside '
                f'it, not beside it: {sorted(kwargs)}')
        return ConfigDict(copy.deepcopy(dict(detector)))
    if not isinstance(detector, str) or not detector:
        raise LieRADetectorError(
            "LieRADetector needs detector='MaskRCNN' (the detector's type, its settings beside "
            f"it) or detector=dict(type=..., ...), got detector={detector!r}")
    return ConfigDict(copy.deepcopy(kwargs), type=detector)


def _part(model, name):
    try:
        return model.get_submodule(name)
    except AttributeError:
        parts = [n for n, _ in model.named_children() if n != 'data_preprocessor']
        raise LieRADetectorError(
            f'LieRADetector: adapters names the part {name!r}, which {type(model).__name__} '
            f'does not have; its parts are {parts} (dotted names reach deeper, e.g. '
            "'roi_head.mask_head')") from None


def _new_layers(new_layers, spec, model):
    if new_layers == 'auto':
        return class_dependent_layers(spec, model)
    if isinstance(new_layers, str):
        new_layers = [new_layers]
    if not isinstance(new_layers, (list, tuple)) or not all(isinstance(n, str) for n in new_layers):
        raise LieRADetectorError(
            "LieRADetector: new_layers must be 'auto', [] or a list of module names, got "
            f'{new_layers!r}')
    modules = dict(model.named_modules())
    for name in new_layers:
        if name not in modules:
            heads = [n for n in modules if n.endswith(('cls', 'reg', 'logits'))][:6]
            raise LieRADetectorError(
                f'LieRADetector: new layer {name!r} is not a module of {type(model).__name__}; '
                f'give full module names, e.g. {heads}')
    return list(new_layers)


def adapt_detector(model, adapters=None, new_layers=(), trainable=()):
    """Adapt a built detector in place (the rules of the module docstring); returns it."""
    adapters = {} if adapters is None else adapters
    if not isinstance(adapters, dict):
        raise LieRADetectorError(
            'LieRADetector: adapters must be a dict {part: adapter settings}, e.g. '
            f"dict(backbone=dict(rank=16), neck=dict(rank=8)), got {adapters!r}")
    trainable = [trainable] if isinstance(trainable, str) else list(trainable or ())
    base_frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    settings = {}
    for name, adapter in adapters.items():
        part = _part(model, name)
        if adapter_layers(part):
            raise LieRADetectorError(
                f'LieRADetector: the part {name!r} has LieRA adapters already (e.g. a '
                f"LieRAConvNeXt or type='LieRA' backbone); give its adapter in one place: a "
                f'plain {name} here, or no adapters.{name}')
        inside = [n[len(name) + 1:] for n in new_layers if n.startswith(name + '.')]
        adapt_module(
            part, AdapterConfig.from_dict(adapter, where=f'adapters.{name}'), exclude=inside)
        settings[name] = part.liera_adapter
    model.liera_adapter = settings
    model.liera_new_layers = list(new_layers)
    model.liera_trainable = [re.escape(n) for n in new_layers] + trainable
    model.liera_base_frozen = sorted(base_frozen)
    model.liera_layers = sorted(adapter_layers(model))
    FreezePolicy(adapted_modules=()).apply(model)
    keep_frozen_norms_in_eval(model)
    report_recreated_layers(model, new_layers)
    return model


def build_liera_detector(detector=None, adapters=None, new_layers='auto', trainable=(), **kwargs):
    """Build the detector, then :func:`adapt_detector`; returns the detector itself."""
    spec = _detector_spec(detector, kwargs)
    model = MODELS.build(spec)
    return adapt_detector(model, adapters, _new_layers(new_layers, spec, model), trainable)


MODELS.register_module(name='LieRADetector', module=build_liera_detector)
