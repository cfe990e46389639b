"""Merge adapters and export a plain mmdet model: checkpoint + config that need no mmliera.

``plain_config(cfg)`` rewrites an mmliera config into plain mmdet/mmpretrain terms:
``LieRAConvNeXt`` -> ``mmpretrain.ConvNeXt`` (same arguments, minus ``adapter``/``trainable``),
``type='LieRA'`` -> its inner backbone, ``type='LieRADetector'`` -> its detector, a generated
dataset -> the plain dataset it says it exports as (its classmethod ``plain_dataset(cfg)``,
e.g. ``SyntheticCocoDataset`` -> ``CocoDataset`` with its classes; the import that registered
it is dropped), and drops mmliera's hooks (also top-level helper variables holding one, e.g.
``pretrain_hook``),
runner and import. ``export_merged`` folds every adapter into its weight (W' in the layer's
mode) and writes ``model.pth`` (state dict without any ``lora_*`` key) and ``config.py``
(``load_from`` pointing at it).
"""
import copy
import os
import os.path as osp
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

from ..models.peft import is_adapter_key, merge_adapters, unmerge_adapters
from ..utils.errors import UserError
from .atomic import atomic_path

MMLIERA_HOOKS = ('LieRAFreezeHook', 'PretrainBackboneHook', 'AdapterCheckpointHook',
                 'ExactResumeHook', 'NonFiniteLossHook', 'AtomicCheckpointHook', 'LieRACompileHook')
MMLIERA_TYPES = MMLIERA_HOOKS + ('LieRAConvNeXt', 'LieRA', 'LieRADetector', 'LieRARunner',
                                 'SyntheticCocoDataset')
LIERA_DETECTOR_KEYS = ('detector', 'adapters', 'new_layers', 'trainable')


class ExportError(UserError, ValueError):
    """A config whose mmliera parts have no plain mmdet equivalent."""


def _plain_backbone(backbone):
    backbone = copy.deepcopy(dict(backbone))
    if backbone.get('type') == 'LieRA':
        backbone = copy.deepcopy(dict(backbone['backbone']))
    elif backbone.get('type') == 'LieRAConvNeXt':
        backbone.pop('adapter', None)
        backbone.pop('trainable', None)
        backbone['type'] = 'mmpretrain.ConvNeXt'
    backbone['init_cfg'] = None  # the merged weights come from load_from
    return backbone


def _plain_model(model):
    """``type='LieRADetector'`` -> the detector it wraps (its settings, no adapter keys)."""
    model = copy.deepcopy(dict(model))
    if model.get('type') != 'LieRADetector':
        return model
    inner = model.get('detector')
    if isinstance(inner, dict):
        return copy.deepcopy(dict(inner))
    plain = {k: v for k, v in model.items() if k not in LIERA_DETECTOR_KEYS}
    plain['type'] = inner
    return plain


def _dataset_class(type_):
    """The dataset class a config's ``type`` names, if any registry of mmliera's kinds knows it."""
    if isinstance(type_, type):
        return type_
    if not isinstance(type_, str):
        return None
    from ..registry import DATASETS
    name = type_.split('.')[-1]
    return next((r.module_dict[name] for r in DATASETS.registries if name in r.module_dict), None)


def _plain_datasets(node, modules):
    """Replace every generated dataset anywhere in a config tree by the plain dataset its class
    exports as (``plain_dataset(cfg)``: the data already written stays readable by it); the
    modules of the replaced classes are added to ``modules``."""
    if isinstance(node, dict):
        node = {k: _plain_datasets(v, modules) for k, v in node.items()}
        cls = _dataset_class(node.get('type'))
        if cls is not None and callable(getattr(cls, 'plain_dataset', None)):
            modules.add(cls.__module__)
            node = dict(cls.plain_dataset(copy.deepcopy(node)))
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(_plain_datasets(v, modules) for v in node)
    return node


def _find_types(node, found, path=''):
    if isinstance(node, dict):
        if node.get('type') in MMLIERA_TYPES:
            found.append(f'{path or "<root>"}: {node["type"]}')
        for k, v in node.items():
            _find_types(v, found, f'{path}.{k}' if path else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _find_types(v, found, f'{path}[{i}]')


def plain_config(cfg: Config) -> Config:
    """A copy of ``cfg`` (mmengine Config) that plain mmdet builds without mmliera."""
    dataset_modules = set()
    d = _plain_datasets(copy.deepcopy(cfg.to_dict()), dataset_modules)
    d['model'] = _plain_model(d['model'])
    d['model']['backbone'] = _plain_backbone(d['model']['backbone'])

    def serves_mmliera(m):  # mmliera, or a package that registered an exported dataset
        return any(x == m or x.startswith(m + '.') for x in ['mmliera', *dataset_modules])

    imports = [
        m for m in (d.get('custom_imports') or {}).get('imports', []) if not serves_mmliera(m)
    ]
    if str(d['model']['backbone'].get('type', '')).startswith('mmpretrain.') and \
            'mmpretrain.models' not in imports:
        imports.append('mmpretrain.models')
    if imports:
        d['custom_imports'] = dict(imports=imports, allow_failed_imports=False)
    else:
        d.pop('custom_imports', None)
    if d.get('runner_type') == 'LieRARunner':
        d.pop('runner_type')
    d['custom_hooks'] = [
        h for h in d.get('custom_hooks') or []
        if not (isinstance(h, dict) and h.get('type') in MMLIERA_HOOKS)
    ]
    default_hooks = d.get('default_hooks') or {}
    default_hooks.pop('nonfinite_loss', None)  # LieRARunner's; plain mmengine refuses the key
    if (default_hooks.get('checkpoint') or {}).get('type') == 'AtomicCheckpointHook':
        default_hooks['checkpoint']['type'] = 'CheckpointHook'
    d.pop('pretrained', None)
    for key in [k for k, v in d.items() if isinstance(v, dict) and v.get('type') in MMLIERA_HOOKS]:
        d.pop(key)  # a helper variable of the config (e.g. pretrain_hook), not a setting
    found = []
    _find_types(d, found)
    if found:
        raise ExportError('cannot export: these parts of the config are mmliera components '
                          f'with no plain mmdet equivalent: {found}')
    return Config(d)


def merged_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The plain model's state dict: adapters folded into the weights, factors dropped."""
    model = getattr(model, 'module', model)
    done = merge_adapters(model)
    try:
        return {
            k: v.detach().clone()
            for k, v in model.state_dict().items() if not is_adapter_key(k)
        }
    finally:
        if done:
            unmerge_adapters(model)


def export_merged(cfg: Config, model: nn.Module, out_dir: str) -> Tuple[str, str]:
    """Write ``out_dir/model.pth`` and ``out_dir/config.py``; returns their paths."""
    plain = plain_config(cfg)  # fail before writing anything if the config cannot be exported
    os.makedirs(out_dir, exist_ok=True)
    ckpt = osp.abspath(osp.join(out_dir, 'model.pth'))
    state = merged_state_dict(model)
    with atomic_path(ckpt) as tmp:
        torch.save(
            dict(
                meta=dict(source='mmliera merge-and-export', config=getattr(cfg, 'filename', None)),
                state_dict=state), tmp)
    plain.load_from = ckpt
    path = osp.join(out_dir, 'config.py')
    plain.dump(path)
    return ckpt, path
