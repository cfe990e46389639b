"""Weight decay of adapter parameters: ``decay_mult`` times the group's (default 0).

AdamW's decay pulls a parameter towards 0. For LoRA / LieRA factors, PiSSA's factors and DoRA's
magnitudes 0 is not where they start (PiSSA, DoRA) or not a meaningful prior on the update, so
PEFT practice trains them without decay. :func:`split_adapter_decay` moves the adapter
parameters (``lora_A``, ``lora_B``, ``lora_magnitude``) of every param group into a group of
their own right after it, equal but for ``weight_decay * decay_mult``. The split depends only
on the model and the built groups, so a resumed run rebuilds the same groups and its optimizer
state loads.

Configured by ``optim_wrapper.paramwise_cfg.adapter_decay_mult`` (default
:data:`ADAPTER_DECAY_MULT` = 0.0; 1.0 keeps the base decay), read by :class:`LieRARunner`.
"""
from typing import Dict

import torch
import torch.nn as nn

from ...models.peft.names import is_adapter_factor

ADAPTER_DECAY_MULT = 0.0


def split_adapter_decay(optimizer: torch.optim.Optimizer,
                        model: nn.Module,
                        decay_mult: float = ADAPTER_DECAY_MULT) -> int:
    """Give ``model``'s adapter parameters ``decay_mult`` x their group's weight decay.

    Returns the number of adapter tensors moved (0 when there are none, when the groups have
    no ``weight_decay`` or when ``decay_mult`` is 1).
    """
    if not isinstance(decay_mult, (int, float)) or isinstance(decay_mult, bool) \
            or decay_mult < 0:
        raise ValueError(f'optim_wrapper.paramwise_cfg.adapter_decay_mult must be a number >= 0 '
                         f'(0: no decay on adapter parameters, 1: the base decay), got '
                         f'{decay_mult!r}')
    adapter: Dict[int, str] = {
        id(p): n
        for n, p in model.named_parameters() if is_adapter_factor(n)
    }
    if not adapter or decay_mult == 1:
        return 0
    groups, moved = [], 0
    for group in optimizer.param_groups:
        ours = [p for p in group['params'] if id(p) in adapter]
        if not ours or not group.get('weight_decay'):
            groups.append(group)
            continue
        rest = [p for p in group['params'] if id(p) not in adapter]
        if rest:
            groups.append(dict(group, params=rest))
        groups.append(dict(group, params=ours, weight_decay=group['weight_decay'] * decay_mult))
        moved += len(ours)
    optimizer.param_groups[:] = groups
    return moved
