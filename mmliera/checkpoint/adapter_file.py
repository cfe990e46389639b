"""Adapter-only checkpoints: safetensors tensors + JSON metadata, loaded with no pickle.

What is saved is what training changes: every parameter that requires grad (adapter factors,
neck, heads, any ``trainable`` pattern) and the persistent buffers outside the adapted modules
(``adapted_modules``, default the backbone, and every module built with adapters: with
``type='LieRADetector'`` the whole detector, whose frozen statistics come from its
checkpoint), plus the adapter settings of every LieRA layer
(mode, rank, alpha, factor shapes), the base config, the task's class names and the sha256 of
the base weights under the adapters (every tensor of the model the file does not hold:
:func:`base_weights_sha256`). Loading into a model built from the same
config (with the base pretrained weights) restores it exactly; any mismatch (other arch, rank,
mode, missing or extra tensors, truncated or non-safetensors file) raises one
:class:`AdapterCheckpointError` before a single tensor of the model is touched.
"""
import json
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file

from ..models.freeze_policy import adapted_parts
from ..models.peft import AdapterConfig, adapter_layers, is_adapter_key
from ..utils.errors import UserError
from .atomic import atomic_path
from .digest import combine_digests, tensor_digests

FORMAT = 'mmliera.adapters'
# settings added after version 1 files were first written: their value when a file lacks them
ADAPTER_FILE_DEFAULTS = {k: AdapterConfig.defaults()[k] for k in ('dora', 'init')}
VERSION = 1


class AdapterCheckpointError(UserError, ValueError):
    """An adapter checkpoint that does not fit the model (nothing was loaded)."""


def _unwrap(model):
    return getattr(model, 'module', model)


def adapter_settings(model: nn.Module) -> Dict[str, dict]:
    """{layer name: {mode, rank, alpha, lora_A, lora_B shapes}} of every LieRA layer."""
    return {
        n:
        dict(
            mode=m.mode,
            rank=m.rank,
            alpha=float(m.alpha),
            dora=m.dora,
            init=m.init,
            lora_A=list(m.lora_A.shape),
            lora_B=list(m.lora_B.shape))
        for n, m in adapter_layers(_unwrap(model)).items()
    }


def adapter_state_dict(
        model: nn.Module,
        adapted_modules: Sequence[str] = ('backbone', ),
) -> Dict[str, torch.Tensor]:
    """The tensors an adapter checkpoint holds (see the module docstring)."""
    model = _unwrap(model)
    out = {n: p for n, p in model.named_parameters() if p.requires_grad}
    parts = tuple(adapted_parts(model))  # modules built with adapters ('': a whole detector)
    prefixes = tuple(m + '.' if m else '' for m in tuple(adapted_modules) + parts)
    persistent = model.state_dict(keep_vars=True)
    for n, b in model.named_buffers():
        if n in persistent and (not n.startswith(prefixes) or is_adapter_key(n)):
            out[n] = b  # buffers of the trained modules, and adapters' own (PiSSA's A0, B0)
    return {n: t.detach() for n, t in out.items()}


def base_digests(model: nn.Module) -> Dict[str, str]:
    """Per-tensor digests (:func:`~.digest.tensor_digests`) of the model's state dict, adapter
    tensors left out: what :func:`base_weights_sha256` combines."""
    state = _unwrap(model).state_dict()
    return tensor_digests({k: v for k, v in state.items() if not is_adapter_key(k)})


def base_weights_sha256(model: nn.Module, held: Sequence[str], digests=None) -> str:
    """sha256 of the model's tensors that an adapter file holding the keys ``held`` leaves to
    the base (adapter tensors excluded): :func:`~.digest.combine_digests` of
    :func:`base_digests` (or the ``digests`` given, taken earlier)."""
    held = set(held)
    digests = base_digests(model) if digests is None else digests
    return combine_digests({k: v for k, v in digests.items() if k not in held})


def save_adapter_checkpoint(model: nn.Module,
                            path,
                            config=None,
                            adapted_modules=('backbone', ),
                            extra_meta=None,
                            classes=None):
    """Write ``path`` (.safetensors) atomically; returns the number of tensors. ``classes``:
    the task's class names (default: the model's ``dataset_meta``, if any)."""
    tensors = {
        k: v.contiguous().cpu()
        for k, v in adapter_state_dict(model, adapted_modules).items()
    }
    if not tensors:
        raise AdapterCheckpointError('the model has no trainable parameter to save')
    if classes is None:
        classes = (getattr(_unwrap(model), 'dataset_meta', None) or {}).get('classes')
    if any(getattr(m, 'merged', False) for m in adapter_layers(_unwrap(model)).values()):
        raise AdapterCheckpointError('the model has merged adapters: unmerge them '
                                     '(mmliera.unmerge_adapters(model)) before saving')
    meta = dict(
        format=FORMAT,
        version=str(VERSION),
        adapters=json.dumps(adapter_settings(model), sort_keys=True),
        adapted_modules=json.dumps(list(adapted_modules)),
        model_class=type(_unwrap(model)).__name__,
        config=config if isinstance(config, str) else '',
        base_sha256=base_weights_sha256(model, tensors),
        extra=json.dumps(extra_meta or {}, sort_keys=True, default=str))
    if classes:
        meta['classes'] = json.dumps([str(c) for c in classes])
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return len(tensors)


def read_adapter_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(tensors, metadata) of an adapter checkpoint; AdapterCheckpointError if unreadable."""
    if not osp.isfile(path):
        raise AdapterCheckpointError(f'{path}: no such adapter checkpoint')
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # not safetensors, truncated, corrupt header
        raise AdapterCheckpointError(
            f'{path} is not a readable safetensors adapter checkpoint ({type(e).__name__}: '
            f'{e}); save one with mmliera.save_adapter_checkpoint or AdapterCheckpointHook'
        ) from None
    if meta.get('format') != FORMAT:
        raise AdapterCheckpointError(f'{path} is a safetensors file but not an mmliera adapter '
                                     f'checkpoint (format={meta.get("format")!r})')
    if int(meta.get('version', 0)) > VERSION:
        raise AdapterCheckpointError(f'{path} has format version {meta["version"]}; this '
                                     f'mmliera reads up to {VERSION}: upgrade mmliera')
    return tensors, meta


def load_adapter_checkpoint(model: nn.Module,
                            path: str,
                            adapted_modules: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Load an adapter checkpoint into ``model`` (all or nothing); returns its metadata."""
    tensors, meta = read_adapter_checkpoint(path)
    model = _unwrap(model)
    saved = json.loads(meta['adapters'])
    have = adapter_settings(model)
    missing, extra = sorted(set(have) - set(saved)), sorted(set(saved) - set(have))
    if missing or extra:
        raise AdapterCheckpointError(
            f'{path} does not fit this model: adapted layers differ (model only: '
            f'{missing[:3]}{"..." if len(missing) > 3 else ""}; file only: {extra[:3]}'
            f'{"..." if len(extra) > 3 else ""}); build the model from the config the adapters '
            'were trained with')
    for name, want in have.items():
        got = saved[name]
        for key in ('mode', 'rank', 'alpha', 'dora', 'init', 'lora_A', 'lora_B'):
            value = got.get(key, ADAPTER_FILE_DEFAULTS.get(key))
            if value != want[key]:
                raise AdapterCheckpointError(
                    f'{path} does not fit this model: layer {name} has {key}={value!r} in '
                    f'the file but {want[key]!r} in the model; build the model with the '
                    "adapter settings the file was trained with")
    prefixes = json.loads(meta.get('adapted_modules', '["backbone"]')) \
        if adapted_modules is None else list(adapted_modules)
    expected = adapter_state_dict(model, prefixes)
    state = model.state_dict()
    not_in_model = sorted(k for k in tensors if k not in state)
    absent = sorted(set(expected) - set(tensors))
    if not_in_model or absent:
        raise AdapterCheckpointError(
            f'{path} does not fit this model: tensors only in the file: {not_in_model[:3]}; '
            f'trained tensors of the model missing from the file: {absent[:3]}')
    for k, t in tensors.items():
        if tuple(t.shape) != tuple(state[k].shape):
            raise AdapterCheckpointError(
                f'{path} does not fit this model: {k} has shape {tuple(t.shape)} in the file, '
                f'{tuple(state[k].shape)} in the model')
    with torch.no_grad():
        for k, t in tensors.items():
            state[k].copy_(t)
    return meta
