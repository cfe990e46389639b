"""Does a checkpoint fit a model? One clear error before anything is evaluated.

mmengine loads ``load_from`` with ``strict=False``: a backbone-only file, a state dict without
the neck / heads, or a merged (plain) model given with a LieRA config is "loaded" with a warning
and the run evaluates randomly initialised heads or untrained adapters. ``check_checkpoint_fits``
compares the checkpoint's tensors with the model's and raises :class:`CheckpointMismatchError`
naming what is missing (grouped as ``neck.*``, ``backbone.*.lora_*``, ...) or what does not fit.
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..models.peft import is_adapter_key
from ..utils.errors import UserError
from .safe_load import safe_load

ADAPTER_GROUP = 'backbone.*.lora_*'
TRAIN_HINT = 'pass a checkpoint written by tools/train.py with this config'


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint that does not fit the model it is meant for (nothing was evaluated)."""


def read_state_dict(path):
    """The state dict (``module.`` prefixes stripped) of a torch / mmengine checkpoint file."""
    if not osp.isfile(path):
        raise CheckpointMismatchError(f'checkpoint {path} does not exist')
    if path.endswith('.safetensors'):
        raise CheckpointMismatchError(
            f'{path} is an adapter-only checkpoint; tools/infer.py reads it directly, and '
            'for tools/test.py merge it first: `python '
            f'tools/model_converters/merge_adapters.py CONFIG {path} OUT_DIR` then '
            '`python tools/test.py OUT_DIR/config.py OUT_DIR/model.pth`')
    try:  # memory-mapped: a large checkpoint is not read twice into memory
        ckpt = safe_load(path, mmap=True)
    except Exception as e:
        raise CheckpointMismatchError(
            f'{path} cannot be read as a checkpoint ({type(e).__name__}: '
            f'{str(e).splitlines()[0] if str(e) else ""}); {TRAIN_HINT}') from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(f'{path} holds no state dict of tensors; {TRAIN_HINT}')
    return ckpt, OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state.items())


def key_group(key):
    """``neck.fpn_convs.0.conv.weight`` -> ``neck.*``; adapter keys -> ``backbone.*.lora_*``."""
    top = key.split('.', 1)[0]
    if is_adapter_key(key):
        return f'{top}.*.lora_*'
    return f'{top}.*'


def _groups(keys):
    counts = OrderedDict()
    for k in sorted(keys):
        counts[key_group(k)] = counts.get(key_group(k), 0) + 1
    return ', '.join(f'{g} ({n})' for g, n in counts.items())


def checkpoint_mismatch(model: nn.Module,
                        state: Dict[str, torch.Tensor],
                        path: str = 'checkpoint') -> Optional[str]:
    """None when ``state`` fits ``model`` (every tensor there, same shapes), else the sentence."""
    expected = {
        k: v
        for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')
    }
    missing = [k for k in expected if k not in state]
    extra_adapters = [k for k in state if k not in expected and is_adapter_key(k)]
    if missing and all(is_adapter_key(k) for k in missing):
        return (f'checkpoint {path} has weights for every layer of the model but none of its '
                f'LieRA adapter tensors ({_groups(missing)}): it is a plain or merged model, '
                'not a checkpoint of this LieRA config; evaluate a model written by '
                'tools/model_converters/merge_adapters.py with the config.py written beside it, or '
                f'{TRAIN_HINT}')
    if missing:
        return (f'checkpoint {path} has no weights for {_groups(missing)} ({len(missing)} of '
                f'{len(expected)} tensors of the model are missing; it holds '
                f'{_groups(state) or "no tensors"}); {TRAIN_HINT} (e.g. '
                'work_dirs/<config>/iter_N.pth or epoch_N.pth), not a pretrained backbone')
    if extra_adapters:
        return (f'checkpoint {path} holds LieRA adapter tensors ({_groups(extra_adapters)}) '
                'but the config\'s model has no adapters there: use the config the run was '
                'trained with, or merge them first with tools/model_converters/merge_adapters.py')
    shapes = [
        f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if shapes:
        return (f'checkpoint {path} does not fit the config\'s model: {len(shapes)} tensors '
                f'have other shapes (checkpoint vs model: {"; ".join(shapes[:3])}'
                f'{" ..." if len(shapes) > 3 else ""}); use the config the checkpoint was '
                'trained with')
    return None


def check_checkpoint_fits(model: nn.Module, path: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """Raise CheckpointMismatchError unless the checkpoint at ``path`` fits ``model``.

    Returns the loaded checkpoint (dict) and its state dict."""
    ckpt, state = read_state_dict(path)
    message = checkpoint_mismatch(model, state, path)
    if message is not None:
        raise CheckpointMismatchError(message)
    return ckpt, state


def check_config_checkpoint(cfg, path):
    """Build ``cfg.model`` (no weights are initialised or downloaded) and check ``path``."""
    from ..models.builder import build_model
    check_checkpoint_fits(build_model(cfg), path)
