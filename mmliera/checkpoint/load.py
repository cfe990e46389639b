"""load_weights: a model's weights from any file mmliera writes, all or nothing.

- adapter-only ``.safetensors`` (:mod:`.adapter_file`): the base weights come from the model's
  own ``init_weights`` (its pretrained ``init_cfg``) and ``base`` (the config's ``load_from``:
  the detector a ``LieRADetector`` adapts), then the adapters and whatever else trained;
- an mmengine checkpoint or a plain state dict (a run's ``iter_N.pth``, an exported
  ``model.pth``): it must fit the model (:mod:`.fit`), else one clear error, nothing loaded.
"""
from typing import Optional, Tuple

import torch.nn as nn
from mmengine.runner.checkpoint import load_checkpoint, load_state_dict

from .adapter_file import load_adapter_checkpoint
from .fit import check_checkpoint_fits
from .safe_load import mmengine_safe_globals


def load_base_weights(model: nn.Module, base: Optional[str] = None) -> None:
    """The weights training started from: ``init_weights()`` (pretrained ``init_cfg``), then
    ``base`` (a checkpoint path or URL, the config's ``load_from``) if given, as the runner
    does; adapter-related load warnings in one line."""
    from ..models.adapt import load_reports
    from ..models.peft.inject import init_adapters_from_weights
    with mmengine_safe_globals(), load_reports(model):
        model.init_weights()
        if base:
            load_checkpoint(model, base, map_location='cpu', strict=False)
    init_adapters_from_weights(model)


def load_weights(model: nn.Module, path: str, base: Optional[str] = None) -> Tuple[dict, dict]:
    """Load ``path`` into ``model``; returns ``(kind, meta)``: kind 'adapters' or 'checkpoint',
    meta the file's metadata (adapter file) or its ``meta`` dict (checkpoint). ``base``: the
    config's ``load_from``, read under an adapter file (:func:`load_base_weights`)."""
    if str(path).endswith('.safetensors'):
        load_base_weights(model, base)
        return 'adapters', load_adapter_checkpoint(model, path)
    ckpt, state = check_checkpoint_fits(model, path)
    load_state_dict(model, state, strict=False)  # fits: checked above
    return 'checkpoint', ckpt.get('meta') or {}
