"""NonFiniteLossHook: stop training at the first iteration whose loss is NaN or inf.

mmengine trains on (and checkpoints) whatever a diverged step produced. This hook checks the
loss terms each training step returns (``loss`` and every ``loss_*`` the model logs) and raises
:class:`NonFiniteLossError` naming the iteration and the terms that are not finite. It runs
before ``CheckpointHook`` and ``AdapterCheckpointHook``, so the step's weights are never saved
and the last checkpoint stays the last good one. With several processes the ranks agree first
(one all-reduce of a per-rank flag per iteration): a NaN on one rank only still poisons every
rank's weights through the all-reduced gradients, so every rank stops at the same iteration with
the same one-line error naming the ranks and terms, and none saves the step. LieRARunner installs
it as the default hook
``nonfinite_loss``; ``default_hooks = dict(nonfinite_loss=None)`` (or
``--cfg-options default_hooks.nonfinite_loss=None``) turns it off.
"""
import math

import torch
from mmengine.dist import all_gather_object, all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook

from ...registry import HOOKS
from ...utils.errors import UserError


class NonFiniteLossError(UserError, RuntimeError):
    """A training step returned a NaN or infinite loss."""


def nonfinite_terms(outputs):
    """``{name: value}`` of the scalar loss terms (names containing 'loss') of a training
    step's ``outputs`` that are NaN or infinite; one device sync when all are finite."""
    terms = {
        k: v
        for k, v in (outputs or {}).items() if 'loss' in k and (
            isinstance(v, (int, float)) or isinstance(v, torch.Tensor) and v.numel() == 1)
    }
    tensors = [
        v.detach().float().reshape(()) for v in terms.values() if isinstance(v, torch.Tensor)
    ]
    if (not tensors or bool(torch.isfinite(torch.stack(tensors)).all())) and all(
            math.isfinite(v) for v in terms.values() if not isinstance(v, torch.Tensor)):
        return {}
    values = {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in terms.items()}
    return {k: v for k, v in values.items() if not math.isfinite(v)}


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` at the first non-finite loss (see the module doc)."""

    priority = 65  # after LoggerHook (60) logs the step, before every checkpoint hook (>= 70)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        bad = nonfinite_terms(outputs)
        where = ''
        world = get_world_size()
        if world > 1:  # every rank learns which ranks saw a non-finite loss
            flags = torch.zeros(world, dtype=torch.float32)
            flags[get_rank()] = 1.0 if bad else 0.0
            all_reduce(flags, op='sum')
            ranks = [r for r in range(world) if flags[r] > 0]
            if not ranks:
                return
            gathered = all_gather_object(bad)
            bad = {k: v for r in ranks for k, v in gathered[r].items()}
            where = f' on rank{"s" if len(ranks) > 1 else ""} {", ".join(map(str, ranks))}'
        if not bad:
            return
        terms = ', '.join(f'{k}={v}' for k, v in bad.items())
        last = runner.message_hub.get_info('last_ckpt')
        raise NonFiniteLossError(
            f'iteration {runner.iter + 1}: the loss is not finite{where} ({terms}); training '
            f'stopped before this step was saved, the last checkpoint '
            f'({last or "none yet"}) is the '
            'last good one. Lower the learning rate, clip gradients (optim_wrapper.clip_grad) '
            'or check the data; default_hooks.nonfinite_loss=None turns this check off')
