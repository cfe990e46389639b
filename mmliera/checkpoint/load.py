"""load_weights: a model's weights from any file mmliera writes, all or nothing.

- adapter-only ``.safetensors`` (:mod:`.adapter_file`): the base weights come from the model's
  own ``init_weights`` (its pretrained ``init_cfg``), then the adapters, neck and heads;
- an mmengine checkpoint or a plain state dict (a run's ``iter_N.pth``, an exported
  ``model.pth``): it must fit the model (:mod:`.fit`), else one clear error, nothing loaded.
"""
from typing import Tuple

import torch.nn as nn
from mmengine.runner.checkpoint import load_state_dict

from .adapter_file import load_adapter_checkpoint
from .fit import check_checkpoint_fits
from .safe_load import mmengine_safe_globals


def load_weights(model: nn.Module, path: str) -> Tuple[dict, dict]:
    """Load ``path`` into ``model``; returns ``(kind, meta)``: kind 'adapters' or 'checkpoint',
    meta the file's metadata (adapter file) or its ``meta`` dict (checkpoint)."""
    if str(path).endswith('.safetensors'):
        from ..models.adapt import load_reports
        with mmengine_safe_globals(), load_reports(model):
            model.init_weights()  # the base weights from the config's pretrained init_cfg
        return 'adapters', load_adapter_checkpoint(model, path)
    ckpt, state = check_checkpoint_fits(model, path)
    load_state_dict(model, state, strict=False)  # fits: checked above
    return 'checkpoint', ckpt.get('meta') or {}
