"""Class-dependent layers of a detector: found from its config, reported in one line on load.

A detector adapted to a dataset with other classes keeps every layer of its checkpoint except
the ones whose shape follows ``num_classes`` (Mask R-CNN: ``roi_head.bbox_head.fc_cls``,
``fc_reg`` unless class-agnostic, ``roi_head.mask_head.conv_logits``; RetinaNet:
``bbox_head.retina_cls``; FCOS: ``bbox_head.conv_cls``). :func:`class_dependent_layers` finds
them for any detector: it builds the config a second time (on the meta device: no memory, no
init) with every ``num_classes`` changed and compares the parameter shapes.

:func:`report_recreated_layers` registers load-state-dict hooks on the detector (kept for its
life, honoured by torch's and mmengine's loaders, so ``load_from``, ``init_detector`` and
mmdet's tools all see them): a checkpoint tensor of one of these layers whose shape differs
from the model's (a model-zoo detector with 80 COCO classes) is not loaded, and one info line
names the layers instead of mmengine's size-mismatch and missing-key warnings; so does a
checkpoint without them (a detector saved without its class layers, as the embedded demo's).
The layers keep their fresh initialisation and train fully. A checkpoint whose class layers
have the new shapes (as many classes) loads them: a trained run's checkpoint, or a start
whose class layers you keep.
"""
import copy
import logging
from typing import Dict, List

import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import print_log

from ...registry import MODELS

OTHER_CLASSES = 7  # added to every num_classes for the second build


def _shift_num_classes(node):
    """A copy of a config tree with every integer ``num_classes`` increased; (copy, found)."""
    found = False
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == 'num_classes' and isinstance(v, int) and not isinstance(v, bool):
                out[k], found = v + OTHER_CLASSES, True
            else:
                out[k], sub = _shift_num_classes(v)
                found |= sub
        return out, found
    if isinstance(node, (list, tuple)):
        items = [_shift_num_classes(v) for v in node]
        return type(node)(v for v, _ in items), any(f for _, f in items)
    return node, False


def class_dependent_layers(detector_cfg: dict, detector: nn.Module) -> List[str]:
    """Names of the modules of ``detector`` (built from ``detector_cfg``) whose parameter
    shapes depend on ``num_classes``; [] when the config has no ``num_classes``."""
    other_cfg, found = _shift_num_classes(copy.deepcopy(dict(detector_cfg)))
    if not found:
        return []
    other_cfg = ConfigDict(other_cfg)
    try:
        with torch.device('meta'):
            other = MODELS.build(other_cfg)
    except Exception:  # a constructor that needs real tensors: build it on the CPU
        other = MODELS.build(other_cfg)
    shapes = {n: p.shape for n, p in detector.named_parameters()}
    return sorted({
        n.rpartition('.')[0]
        for n, p in other.named_parameters() if n in shapes and shapes[n] != p.shape
    })


class _RecreatedLayersReport:
    """Load-state-dict pre/post hooks of :func:`report_recreated_layers` (picklable: a model
    deep-copied for EMA or saved whole keeps working)."""

    def __init__(self, layers):
        self.layers = list(layers)
        self.dropped: Dict[str, tuple] = {}

    def pre(self, module, state_dict, prefix, *args):
        module.liera_recreated_keys = []  # what this load left out (read by the adapter report)
        own = {}
        for layer in self.layers:
            sub = module.get_submodule(layer)
            for n, t in list(sub.named_parameters(recurse=False)) + list(
                    sub.named_buffers(recurse=False)):
                own[f'{prefix}{layer}.{n}'] = t.shape
        for key, shape in own.items():
            if key in state_dict and tuple(state_dict[key].shape) != tuple(shape):
                self.dropped[key] = (tuple(state_dict[key].shape), tuple(shape))
                del state_dict[key]

    def post(self, module, incompatible):
        prefixes = tuple(f'{layer}.' for layer in self.layers)
        absent = [
            k for k in incompatible.missing_keys
            if k not in self.dropped and _in_layers(k, prefixes)
        ]
        if not self.dropped and not absent:
            return
        module.liera_recreated_keys = list(self.dropped) + absent
        for key in module.liera_recreated_keys:
            if key in incompatible.missing_keys:
                incompatible.missing_keys.remove(key)
        shapes = [
            f'{k} {"x".join(map(str, a))} -> {"x".join(map(str, b))}'
            for k, (a, b) in self.dropped.items() if k.endswith('weight')
        ]
        shapes += [f'{k} (not in the checkpoint)' for k in absent if k.endswith('weight')]
        layers = sorted({k.rpartition('.')[0] for k in module.liera_recreated_keys})
        print_log(
            f'{type(module).__name__}: {len(layers)} class-dependent layers re-created for the '
            'new classes (they start fresh and train fully): ' + '; '.join(shapes),
            logger='current',
            level=logging.INFO)
        self.dropped = {}


def _in_layers(key, prefixes):
    """Whether a (possibly prefixed) state-dict key belongs to one of the layers."""
    return any(key.startswith(p) or f'.{p}' in key for p in prefixes)


def report_recreated_layers(detector: nn.Module, layers) -> None:
    """Register the hooks described in the module docstring on ``detector`` for ``layers``."""
    if not layers:
        return
    report = _RecreatedLayersReport(layers)
    detector._register_load_state_dict_pre_hook(report.pre, with_module=True)
    detector.register_load_state_dict_post_hook(report.post)
